#!/usr/bin/env bash
# sweep.sh — runs every variant of a sweep file through `lafn run` (resumable) and tabulates them.
#
# Usage: scripts/sweep.sh PIPELINE.cfg SWEEP_FILE OUT_DIR
#   SWEEP_FILE: one variant per line, `NAME [from=OTHER] section.key=value ...`
#   (# comments). Each variant runs into OUT_DIR/NAME with its overrides.
#   from=OTHER seeds it with OTHER's probe, locate and edit files (merged and
#   committed shards: resume goes by the shards), so a
#   variant that changes only eval knobs (eval.*, edit.gate) reruns eval only;
#   the stages whose knobs differ redo their work (run ids decide).
# The whole file is checked (names, duplicates, from= targets) before anything
# runs. Rerunning the same command resumes: finished variants are recognised
# and kept, an interrupted one continues from its last committed shard.
# Ends with OUT_DIR/sweep.tsv (scripts/sweep_table.py).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 3 ] || { echo "usage: scripts/sweep.sh PIPELINE.cfg SWEEP_FILE OUT_DIR" >&2; exit 2; }
pipeline="$1" sweep_file="$2" out="$3"
[ -f "$pipeline" ] || { echo "sweep: $pipeline: no such pipeline file" >&2; exit 2; }
[ -f "$sweep_file" ] || { echo "sweep: $sweep_file: no such sweep file" >&2; exit 2; }
lafn="${LAFN_BUILD_DIR:-$repo/build}/lafn"
[ -x "$lafn" ] || { echo "sweep: $lafn not built (run scripts/setup.sh)" >&2; exit 2; }
python3 -c 'import h5py, numpy' 2>/dev/null ||
  { echo "sweep: the table needs python3 with h5py and numpy (scripts/setup.sh installs them)" >&2; exit 2; }
mkdir -p "$out"

# First pass: every line checked before anything runs.
names=() lines=()
line_no=0
while IFS= read -r line || [ -n "$line" ]; do
  line_no=$((line_no + 1))
  line="${line%%#*}"
  read -r -a words <<<"$line"
  [ "${#words[@]}" -gt 0 ] || continue
  name="${words[0]}"
  [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] ||
    { echo "sweep: $sweep_file:$line_no: bad variant name '$name' (letters, digits, _ . - only)" >&2; exit 2; }
  for known in "${names[@]}"; do
    [ "$known" != "$name" ] || { echo "sweep: $sweep_file:$line_no: variant '$name' appears twice" >&2; exit 2; }
  done
  if [ "${#words[@]}" -gt 1 ] && [[ "${words[1]}" == from=* ]]; then
    seed="${words[1]#from=}" seen=0
    for known in "${names[@]}"; do [ "$known" != "$seed" ] || seen=1; done
    [ "$seen" -eq 1 ] || [ -f "$out/$seed/edit.h5" ] ||
      { echo "sweep: $sweep_file:$line_no: from=$seed: no earlier variant of that name and no $out/$seed/edit.h5" >&2; exit 2; }
  fi
  names+=("$name")
  lines+=("${words[*]}")
done < "$sweep_file"
[ "${#names[@]}" -gt 0 ] || { echo "sweep: $sweep_file: no variants" >&2; exit 2; }

# Second pass: the runs.
: > "$out/.variants.new"
for line in "${lines[@]}"; do
  read -r -a words <<<"$line"
  name="${words[0]}"
  overrides=("${words[@]:1}")
  if [ "${#overrides[@]}" -gt 0 ] && [[ "${overrides[0]}" == from=* ]]; then
    seed="$out/${overrides[0]#from=}"
    overrides=("${overrides[@]:1}")
    mkdir -p "$out/$name"
    for path in "$seed"/{probe,locate,edit}.h5 "$seed"/{probe,locate,edit}.shard-*.h5; do
      f="$(basename "$path")"
      if [ ! -e "$out/$name/$f" ]; then cp "$path" "$out/$name/$f.tmp" && mv -f "$out/$name/$f.tmp" "$out/$name/$f"; fi
    done
  fi
  echo "== sweep: variant $name: ${overrides[*]:-(pipeline defaults)}"
  "$lafn" run "$pipeline" "run.output_dir=$out/$name" "${overrides[@]}" < /dev/null > "$out/$name.out" 2>&1 ||
    { echo "sweep: variant $name failed; its output: $out/$name.out" >&2; exit 1; }
  printf '%s\t%s\n' "$name" "${overrides[*]:-}" >> "$out/.variants.new"
done
mv -f "$out/.variants.new" "$out/variants.tsv"

python3 "$repo/scripts/sweep_table.py" "$out"
