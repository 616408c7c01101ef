#!/usr/bin/env bash
# test.sh — sets up lafn (packages, models, build) and runs the whole test suite with ctest.
#
# The Slurm tests (ctest label slurm) need a Slurm controller: unless one answers already, test.sh starts the
# single-node cluster of slurm/local_cluster.sh (as root) and stops it after ctest, also when ctest fails or is
# interrupted. Where none can be started the Slurm tests skip and say why.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh" --tests "$repo/build"

cluster_started=0
stop_cluster() {
  if [ "$cluster_started" -eq 1 ]; then "$repo/slurm/local_cluster.sh" stop || true; fi
}
trap stop_cluster EXIT
trap 'exit 130' INT # a signal ends the script through its EXIT trap too
trap 'exit 143' TERM
if scontrol ping 2>/dev/null | grep -q "is UP"; then
  echo "test.sh: a Slurm controller answers; the Slurm tests use it"
elif [ "$(id -u)" -eq 0 ]; then
  cluster_started=1 # stop ends whatever part of it did start
  "$repo/slurm/local_cluster.sh" start || echo "test.sh: the local Slurm cluster did not start; the Slurm tests will skip"
else
  echo "test.sh: not root, so no local Slurm cluster is started; the Slurm tests will skip"
fi

cd "$repo/build"
ctest --output-on-failure --timeout 1800 "$@"
