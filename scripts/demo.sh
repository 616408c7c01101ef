#!/usr/bin/env bash
# demo.sh — sets up lafn (packages, models, build) and runs the main job on the embedded default.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh" "$repo/build"
cd "$repo"
exec "$repo/build/lafn" ask --questions conf/ask_demo.tsv "$@"
