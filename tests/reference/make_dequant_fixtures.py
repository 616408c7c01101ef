#!/usr/bin/env python3
"""Writes tests/fixtures/dequant/: raw ggml blocks and gguf-py's own fp32 dequantisation of them.

For each case: <case>.q (raw block bytes), <case>.f32 (expected little-endian float32),
and one line "<case> <TYPE> <n_elements>" in manifest.txt.
Sources: seeded random data quantised by gguf.quants.quantize (types it can quantise);
random raw super-blocks with finite scales (K types, which gguf-py cannot quantise);
real blocks taken from the two model files in models/ (Q4_K Q6_K Q5_0 Q8_0 from Gemma,
Q4_1 from SmolLM2). Run from the repository root: python3 tests/reference/make_dequant_fixtures.py
"""
import importlib.metadata
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

OUT = "tests/fixtures/dequant"
MODELS = {"gemma": "models/gemma-3-270m-q4_k_m.gguf", "smollm2": "models/SmolLM2-135M-Instruct.Q4_1.gguf"}
N_RANDOM = 1024  # elements per random case
N_REAL = 512     # elements per real-block case
# byte offsets of the f16 scale fields inside a K super-block: (d, dmin) or d only
K_SCALE_OFFSETS = {Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,)}


def write_case(manifest, name, qtype, raw, n):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    block, size = GGML_QUANT_SIZES[qtype]
    assert n % block == 0 and raw.size == n // block * size, name
    expected = dequantize(raw.reshape(1, -1), qtype).reshape(-1).astype("<f4")
    assert expected.size == n and np.all(np.isfinite(expected)), name
    raw.tofile(os.path.join(OUT, name + ".q"))
    expected.tofile(os.path.join(OUT, name + ".f32"))
    manifest.append(f"{name} {qtype.name} {n}")


def random_case(manifest, rng, qtype):
    x = (rng.standard_normal(N_RANDOM) * rng.uniform(0.01, 2.0)).astype(np.float32)
    if qtype == Q.F16:
        x[:8] = [0.0, -0.0, 6.0e-8, -6.0e-8, 6.1e-5, 65504.0, -65504.0, 1.0]  # zero, subnormal, min normal, max
    raw = quantize(x.reshape(1, -1), qtype).view(np.uint8)
    write_case(manifest, qtype.name.lower() + "_random", qtype, raw, N_RANDOM)


def random_k_case(manifest, rng, qtype):
    block, size = GGML_QUANT_SIZES[qtype]
    nb = N_RANDOM // block
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off in K_SCALE_OFFSETS[qtype]:
        scales = (rng.uniform(1e-4, 1e-2, nb) * rng.choice([-1, 1], nb)).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(nb, 2)
    write_case(manifest, qtype.name.lower() + "_random", qtype, raw, N_RANDOM)


def real_case(manifest, reader, tag, qtype):
    block, size = GGML_QUANT_SIZES[qtype]
    for t in reader.tensors:
        if t.tensor_type == qtype and t.n_elements >= 4 * N_REAL:
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            start = raw.size // 2 // size * size  # from the middle of the tensor
            write_case(manifest, f"{qtype.name.lower()}_{tag}", qtype, raw[start:start + N_REAL // block * size], N_REAL)
            return
    sys.exit(f"no {qtype.name} tensor in {tag}")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    manifest = []
    for qt in [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]:
        random_case(manifest, rng, qt)
    for qt in [Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        random_k_case(manifest, rng, qt)
    gemma = gguf.GGUFReader(MODELS["gemma"])
    for qt in [Q.Q4_K, Q.Q6_K, Q.Q5_0, Q.Q8_0]:
        real_case(manifest, gemma, "gemma", qt)
    real_case(manifest, gguf.GGUFReader(MODELS["smollm2"]), "smollm2", Q.Q4_1)
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print(f"wrote {len(manifest)} cases to {OUT} (gguf-py {importlib.metadata.version('gguf')})")


if __name__ == "__main__":
    main()
