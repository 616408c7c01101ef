#!/usr/bin/env bash
# run_bench.sh — engine forward/backward speed and memory against llama.cpp on the same prompts (prompt by prompt and as one batch of sequences), both OpenBLAS kernels, rounds alternating.
#
# Usage: tests/bench/run_bench.sh [MODEL] [PROMPTS_PER_LANGUAGE]   (LAFN_BENCH_REPEATS rounds, default 3)
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

reps="${LAFN_BENCH_REPEATS:-3}"
echo "model: $model; $(wc -l < "$work/prompts.tsv") prompts; threads: $threads; $reps rounds, lafn and llama.cpp alternating"
for coretype in "" Cooperlake; do
  label="${coretype:-machine default}"
  : > "$work/rounds.txt"
  for round in $(seq "$reps"); do
    ours=$(env ${coretype:+OPENBLAS_CORETYPE=$coretype} OPENBLAS_NUM_THREADS=$threads \
           "$build/tests/bench_forward" "$model" "$work/prompts.tsv" "$work/ids.txt" 3)
    theirs=$(python3 "$repo/tests/bench/llamacpp_prompt_speed.py" "$model" "$work/ids.txt" "$threads" each,batch 2>/dev/null)
    echo "[$label] round $round lafn:      $ours"
    sed "s/^/[$label] round $round /" <<<"$theirs"
    echo "$ours" >> "$work/rounds.txt"
    echo "$theirs" >> "$work/rounds.txt"
  done
  python3 - "$label" "$work/rounds.txt" <<'PY'
import re, statistics, sys
label, lines = sys.argv[1], open(sys.argv[2]).read().splitlines()
ours = [float(m[1]) for l in lines if (m := re.search(r"forward_tok_per_s=([0-9.]+)", l))]
for mode, what in (("each", "prompt by prompt"), ("batch", "all prompts as one batch of sequences")):
    theirs = [float(m[1]) for l in lines if (m := re.search(rf"mode={mode} .*tok_per_s=([0-9.]+)", l))]
    r = [a / b for a, b in zip(ours, theirs)]
    print(f"[{label}] lafn / llama.cpp {what}: prompt tokens per second ratio median {statistics.median(r):.2f} "
          f"(min {min(r):.2f}, max {max(r):.2f}, {len(r)} rounds)")
PY
done
