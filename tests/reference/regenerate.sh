#!/bin/sh
# Regenerates the committed reference fixtures under tests/fixtures/ (needs PyPI; CI never runs this).
#
# Installs exactly the Python packages the reference scripts were run with, then runs
# the fixture scripts in tests/reference/ from the repository root (not make_nfc_tables.py,
# which generates a source header from the Python unicodedata tables). Set PYTHON to choose the
# interpreter (a virtualenv is recommended: torch and llama-cpp-python are large, and
# llama-cpp-python compiles llama.cpp from source for several minutes).
# The real models must be in models/ and the MzsRE data in ../shared/data/mzsre/
# (make_forward_fixtures.py --data DIR and make_tokenizer_fixtures.py --mzsre DIR override it).
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}

"$PY" -m pip install \
    "numpy==2.4.6" \
    "torch==2.15.0" \
    "transformers==5.24.0" \
    "tokenizers==0.23.3" \
    "safetensors==0.8.0" \
    "accelerate==1.15.0" \
    "gguf==0.19.0" \
    "llama-cpp-python==0.3.36"

"$PY" tests/reference/make_tiny_models.py
"$PY" tests/reference/make_forward_fixtures.py smollm2
"$PY" tests/reference/make_forward_fixtures.py gemma3
for s in make_dequant_fixtures.py make_tokenizer_fixtures.py make_model_load_fixtures.py make_hf_fixtures.py; do
    if [ -f "tests/reference/$s" ]; then
        "$PY" "tests/reference/$s"
    fi
done
du -sh tests/fixtures
