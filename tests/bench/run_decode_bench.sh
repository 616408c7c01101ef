#!/usr/bin/env bash
# run_decode_bench.sh — token generation speed of the KV-cache decoder at prompt lengths 16, 128, 512 against llama.cpp on the same prompt ids, same run.
#
# Usage: tests/bench/run_decode_bench.sh [MODEL] [NEW_TOKENS] [BATCH]
# Needs: a build in $LAFN_BUILD_DIR (default build/); the Python package llama_cpp for the comparison (skipped with a
# message when it cannot be imported). Prompts are windows of conf/data/demo_facts.jsonl's text, BOS first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model="${1:-$repo/models/gemma-3-270m-q4_k_m.gguf}"
new_tokens="${2:-32}"
batch="${3:-16}"
threads=2
build="${LAFN_BUILD_DIR:-$repo/build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "model: $model; $new_tokens new tokens per prompt (greedy); lafn batch 1 and $batch; threads: $threads"
ours=$(OPENBLAS_NUM_THREADS=$threads "$build/tests/bench_decode" "$model" "$repo/conf/data/demo_facts.jsonl" \
       "$work/ids.txt" "$new_tokens" "$batch")
echo "$ours"
if ! python3 -c "import llama_cpp" 2>/dev/null; then
  echo "llama_cpp is not importable: the llama.cpp comparison is skipped (pip install llama-cpp-python)"
  exit 0
fi
theirs=$(python3 "$repo/tests/bench/llamacpp_decode_speed.py" "$model" "$work/ids.txt" "$threads" "$new_tokens")
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import re, sys
def rates(text, who):
    out = {}
    for line in text.splitlines():
        m = re.match(who + r" prompt_len=(\d+) batch=(\d+) .*tok_per_s=([0-9.]+)", line)
        if m: out[(int(m[1]), int(m[2]))] = float(m[3])
    return out
ours, theirs = rates(sys.argv[1], "lafn"), rates(sys.argv[2], "llamacpp")
for (length, batch), tps in sorted(ours.items()):
    ref = theirs.get((length, 1))
    if ref: print(f"prompt {length:4d}, lafn batch {batch:2d}: lafn / llama.cpp (batch 1) generation tokens per second = {tps / ref:.2f}")
PY
