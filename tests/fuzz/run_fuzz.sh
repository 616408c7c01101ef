#!/usr/bin/env bash
# run_fuzz.sh — builds the libFuzzer harnesses with clang (ASan + UBSan) and fuzzes one, or each in turn, for a given time.
#
# Usage: tests/fuzz/run_fuzz.sh HARNESS|all SECONDS [OUT_DIR [RUNS]]
#   HARNESS  fuzz_gguf, fuzz_config, ... (tests/fuzz/fuzz_*.c); all: every harness, one after another
#   SECONDS  wall time per harness at most
#   OUT_DIR  build, working corpora, crash inputs and logs (default /tmp/lafn-fuzz)
#   RUNS     executions per harness at most (default: no limit; issue 11 asks 10000000)
# One fuzzing process at a time, under nice -n 19. The working corpus grows in OUT_DIR/work/HARNESS and
# starts from the committed seeds (tests/fuzz/corpus/HARNESS), which it never changes; crash inputs land in
# OUT_DIR/crashes/HARNESS. The last lines of each log are libFuzzer's final statistics and the CPU time used
# (on a shared machine far less than the wall time).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ $# -ge 2 ] || { sed -n '4,11p' "${BASH_SOURCE[0]}" >&2; exit 2; }
which="$1" seconds="$2" out="${3:-/tmp/lafn-fuzz}" runs="${4:--1}"

build="$out/build"
cmake -S "$repo" -B "$build" -DCMAKE_C_COMPILER=clang -DLAFN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$out.cmake.log" 2>&1 ||
  { tail -n 30 "$out.cmake.log" >&2; exit 1; }

harnesses=()
if [ "$which" = all ]; then
  for src in "$repo"/tests/fuzz/fuzz_*.c; do
    name="$(basename "$src" .c)"
    case "$name" in fuzz_util | fuzz_replay) ;; *) harnesses+=("$name") ;; esac
  done
else
  harnesses=("$which")
fi

export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1"
export LSAN_OPTIONS="suppressions=$repo/tests/asan/lsan.supp"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
for h in "${harnesses[@]}"; do
  nice -n 19 cmake --build "$build" --target "$h" -j 1 >"$out/build-$h.log" 2>&1 ||
    { tail -n 30 "$out/build-$h.log" >&2; exit 1; }
  mkdir -p "$out/work/$h" "$out/crashes/$h"
  echo "run_fuzz: $h for ${seconds}s or $runs runs (log $out/$h.log)" >&2
  # HDF5 and libconfig leak on most bad inputs (tests/asan/lsan.supp), and a leak check after every such
  # input made those harnesses 30 to 100 times slower: they fuzz without it; their replay tests check
  # leaks at exit.
  leaks=1
  case "$h" in *_h5 | fuzz_config) leaks=0 ;; esac
  status=0
  TIMEFORMAT="run_fuzz: $h: %R s wall, %U s user + %S s system CPU"
  { time nice -n 19 "$build/tests/fuzz/$h" -max_total_time="$seconds" -runs="$runs" -print_final_stats=1 -timeout=20 \
      -rss_limit_mb=2048 -detect_leaks="$leaks" -artifact_prefix="$out/crashes/$h/" \
      "$out/work/$h" "$repo/tests/fuzz/corpus/$h" >"$out/$h.log" 2>&1 || status=$?; } 2>>"$out/$h.log"
  grep -E "^#[0-9]+.*(DONE|pulse)|^stat::|^run_fuzz:" "$out/$h.log" | tail -n 8 >&2
  ls "$out/crashes/$h" | sed "s|^|run_fuzz: $h: finding |" >&2
  [ "$status" -eq 0 ] || echo "run_fuzz: $h stopped with status $status (a finding; see the log)" >&2
done
