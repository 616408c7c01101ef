#!/usr/bin/env bash
# demo.sh — sets up lafn (packages, models, build) and runs the main job: the LAFN pipeline on the demo facts.
#
# Usage: scripts/demo.sh [lafn run options, e.g. --no-resume or section.key=value ...]
# Runs probe → locate → edit → eval of conf/demo.cfg (12 facts of the embedded set, en zh de fr es ru,
# Gemma 3 270M, 2 MPI ranks) and ends with the results table and the paths of the output files.
# A second start resumes (finished facts are kept); --no-resume starts over.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh" "$repo/build"
cd "$repo"
exec "$repo/build/lafn" run conf/demo.cfg "$@"
