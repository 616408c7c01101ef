#!/usr/bin/env bash
# run_bench.sh — engine forward/backward speed and memory against llama.cpp on the same prompts, both OpenBLAS kernels.
#
# Usage: tests/bench/run_bench.sh [MODEL] [PROMPTS_PER_LANGUAGE]
# Needs: a build in $LAFN_BUILD_DIR (default build/, made by scripts/setup.sh), llama-cpp-python (installed here if missing),
# the MzsRE data in ../shared/data/mzsre (or $LAFN_MZSRE).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model="${1:-$repo/models/gemma-3-270m-q4_k_m.gguf}"
per_lang="${2:-10}"
data="${LAFN_MZSRE:-$repo/../shared/data/mzsre}"
threads=2
build="${LAFN_BUILD_DIR:-$repo/build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -c "import llama_cpp" 2>/dev/null || python3 -m pip install --quiet llama-cpp-python==0.3.36

python3 - "$data" "$per_lang" > "$work/prompts.tsv" <<'PY'
import json, sys, pathlib
data, per_lang = pathlib.Path(sys.argv[1]), int(sys.argv[2])
files = sorted(data.glob("mzsre_dev500_en*.json"))
for f in files:
    records = json.load(open(f))
    sides = [f.stem[-2:]] + (["en"] if f == files[0] else [])  # the en side repeats in every file
    for side in sides:
        for r in records[:per_lang]:
            print(f"{side}\t{r[side]['src']}")
PY

echo "model: $model; $(wc -l < "$work/prompts.tsv") prompts; threads: $threads"
for coretype in "" Cooperlake; do
  label="${coretype:-machine default}"
  ours=$(env ${coretype:+OPENBLAS_CORETYPE=$coretype} OPENBLAS_NUM_THREADS=$threads \
         "$build/tests/bench_forward" "$model" "$work/prompts.tsv" "$work/ids.txt" 3)
  theirs=$(python3 "$repo/tests/bench/llamacpp_prompt_speed.py" "$model" "$work/ids.txt" "$threads")
  ours_tps=$(sed -n 's/.*forward_tok_per_s=\([0-9.]*\).*/\1/p' <<<"$ours")
  theirs_tps=$(sed -n 's/.*tok_per_s=\([0-9.]*\).*/\1/p' <<<"$theirs")
  echo "[$label] lafn:     $ours"
  echo "[$label] llama.cpp: $theirs"
  python3 -c "print('[$label] lafn / llama.cpp prompt tokens per second = %.2f' % ($ours_tps / $theirs_tps))"
done
