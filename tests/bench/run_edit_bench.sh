#!/usr/bin/env bash
# run_edit_bench.sh — one MzsRE fact's edit (12 languages, default knobs) by lafn and by tests/bench/torch_edit_speed.py (the same weights, sequences, neurons, loss and Adam steps in PyTorch), side by side on the same cores, rounds alternating; prints the ratio.
#
# Usage: tests/bench/run_edit_bench.sh [MODEL] [FACT] [STEPS] [ROUNDS]   (FACT in 0-9, default 0; STEPS default 40; ROUNDS 3)
# Needs: a build in $LAFN_BUILD_DIR (default build/); the MzsRE data in ../shared/data/mzsre; a Python with torch and
# gguf in $LAFN_TORCH_PYTHON (default python3; without torch the comparison is skipped with a message — installing
# torch from PyPI is described in docs/PERFORMANCE.md). Probe and locate of facts 0-9 run once into
# $LAFN_EDIT_BENCH_RUN (default: a temporary folder).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model="${1:-$repo/models/gemma-3-270m-q4_k_m.gguf}"
fact="${2:-0}"
steps="${3:-40}"
rounds="${4:-3}"
threads=2
build="${LAFN_BUILD_DIR:-$repo/build}"
py="${LAFN_TORCH_PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run="${LAFN_EDIT_BENCH_RUN:-$work/run}"
cd "$repo"
overrides=(model.path="$model" data.fact_range=0,10 run.output_dir="$run" edit.steps="$steps")

if [ ! -f "$run/locate.h5" ]; then
  echo "probe and locate of MzsRE facts 0-9 into $run ..."
  "$build/lafn" run conf/mzsre.cfg --stages probe,locate "${overrides[@]}" > "$work/probe_locate.log" 2>&1 ||
    { tail -5 "$work/probe_locate.log"; exit 1; }
fi
if ! "$py" -c "import torch, gguf" 2>/dev/null; then
  echo "torch and gguf are not importable with $py: the PyTorch comparison is skipped (docs/PERFORMANCE.md)"
  exit 0
fi
echo "fact $fact of MzsRE dev, 12 languages, $steps Adam steps, $threads threads for both, $rounds rounds alternating"
: > "$work/rounds.txt"
for round in $(seq "$rounds"); do
  ours=$(OPENBLAS_NUM_THREADS=$threads "$build/tests/bench_edit" --only fused "$fact" 1 1 "$work/problem.json" \
         conf/mzsre.cfg "${overrides[@]}" run.threads_per_rank="$threads" | grep "variant=fused")
  theirs=$("$py" "$repo/tests/bench/torch_edit_speed.py" "$model" "$work/problem.json" --threads "$threads" \
           --steps "$steps")
  echo "round $round lafn:  $ours"
  echo "round $round torch: $theirs"
  printf '%s\n%s\n' "$ours" "$theirs" >> "$work/rounds.txt"
done
python3 - "$work/rounds.txt" <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
num = lambda key, l: float(re.search(key + r"=([0-9.]+)", l)[1])
for what, mine, other in (("wall", "total_s", "seconds"), ("CPU", "cpu_s", "cpu_s")):
    # lafn's unit includes its gate calibration, which the PyTorch edit does not do: taken out (by its wall share)
    ours = [num(mine, l) * (1 - num("gate", l) / num("total_s", l)) for l in lines if "variant=fused" in l]
    theirs = [num(other, l) for l in lines if l.startswith("torch")]
    r = [t / o for o, t in zip(ours, theirs)]
    print(f"optimisation {what} seconds: lafn median {statistics.median(ours):.1f}, torch median "
          f"{statistics.median(theirs):.1f}; torch / lafn median {statistics.median(r):.2f} (min {min(r):.2f}, "
          f"max {max(r):.2f}, {len(r)} rounds)")
PY
