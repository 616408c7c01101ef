#!/usr/bin/env bash
# test.sh — sets up lafn (packages, models, build) and runs the whole test suite with ctest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh" --tests "$repo/build"
cd "$repo/build"
ctest --output-on-failure --timeout 1800 "$@"
