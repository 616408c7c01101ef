#!/usr/bin/env bash
# sweep.sh — runs every variant of a sweep file through `lafn run` (resumable) and tabulates them.
#
# Usage: scripts/sweep.sh PIPELINE.cfg SWEEP_FILE OUT_DIR
#   SWEEP_FILE: one variant per line, `NAME [from=OTHER] section.key=value ...`
#   (# comments). Each variant runs into OUT_DIR/NAME with its overrides.
#   from=OTHER seeds it with OTHER's probe, locate and edit files (merged and
#   committed shards: resume goes by the shards), so it reruns eval only; such
#   a variant must repeat OTHER's overrides and may differ only in eval-time
#   knobs (eval.*, edit.gate, edit.trigger, edit.key_nearest_floor), which is checked.
# The whole file is checked (names, duplicates, from= targets, every variant's
# overrides through `lafn run --dry-run`) before anything runs. Rerunning the same command resumes: finished variants are recognised
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
  { echo "sweep: the table needs python3 with h5py and numpy (scripts/setup.sh --tests installs them)" >&2; exit 2; }
mkdir -p "$out"

# The overrides of a variant line that shape probe, locate or edit (all but eval.* and the trigger knobs), sorted.
method_overrides() {
  local w
  for w in "$@"; do [[ "$w" == eval.* || "$w" == edit.gate=* || "$w" == edit.trigger=* || "$w" == edit.key_nearest_floor=* || "$w" == from=* ]] || echo "$w"; done | sort
}

# First pass: every line checked before anything runs.
names=() lines=()
declare -A method_of
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
  method_of[$name]="$(method_overrides "${words[@]:1}")"
  if [ "${#words[@]}" -gt 1 ] && [[ "${words[1]}" == from=* ]]; then
    seed="${words[1]#from=}"
    [ -n "${method_of[$seed]+set}" ] ||
      { echo "sweep: $sweep_file:$line_no: from=$seed: no earlier variant of that name" >&2; exit 2; }
    [ "${method_of[$seed]}" = "${method_of[$name]}" ] ||
      { echo "sweep: $sweep_file:$line_no: $name differs from $seed in more than eval.*, edit.gate, edit.trigger and edit.key_nearest_floor; only those can reuse $seed's edits" >&2; exit 2; }
  fi
  overrides=("${words[@]:1}")
  [[ "${overrides[0]:-}" != from=* ]] || overrides=("${overrides[@]:1}")
  "$lafn" run "$pipeline" "run.output_dir=$out/$name" "${overrides[@]}" --dry-run > /dev/null 2> "$out/.check.err" < /dev/null ||
    { echo "sweep: $sweep_file:$line_no: variant $name: $(grep -v '^nothing was run' "$out/.check.err" | head -n 5)" >&2
    rm -f "$out/.check.err"; exit 2; }
  names+=("$name")
  lines+=("${words[*]}")
done < "$sweep_file"
rm -f "$out/.check.err"
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
    shopt -s nullglob
    for path in "$seed"/{probe,locate,edit}.h5 "$seed"/{probe,locate,edit}.shard-*.h5; do
      f="$(basename "$path")"
      if [ ! -e "$out/$name/$f" ]; then cp "$path" "$out/$name/$f.tmp" && mv -f "$out/$name/$f.tmp" "$out/$name/$f"; fi
    done
    shopt -u nullglob
  fi
  echo "== sweep: variant $name: ${overrides[*]:-(pipeline defaults)}"
  "$lafn" run "$pipeline" "run.output_dir=$out/$name" "${overrides[@]}" < /dev/null > "$out/$name.out" 2>&1 ||
    { echo "sweep: variant $name failed; its output: $out/$name.out" >&2; exit 1; }
  printf '%s\t%s\n' "$name" "${overrides[*]:-}" >> "$out/.variants.new"
done
mv -f "$out/.variants.new" "$out/variants.tsv"

python3 "$repo/scripts/sweep_table.py" "$out"
