#!/usr/bin/env python3
"""Writes tests/fixtures/model_load/values.txt: identity and sampled weights of the two real GGUF models.

Lines:  model <tag> <sha256> <file_bytes>
        w <tag> <tensor> <row> <col> <value>     (row-major (out, in) as lafn stores it)
Values come from gguf-py's dequantisation. For arch llama, attn_q/attn_k rows are un-permuted
with numpy (inverse of llama.cpp convert_hf_to_gguf LlamaModel.permute), so lafn's NeoX pairing
(i, i + E/2) applies. If transformers is importable, the same values are cross-checked against
transformers' own GGUF loader (its q_proj/k_proj, and Gemma norms stored as w where GGUF has 1 + w).
Run from the repository root: python3 tests/reference/make_model_load_fixtures.py
"""
import hashlib
import os

import numpy as np
import gguf
from gguf.quants import dequantize

OUT = "tests/fixtures/model_load/values.txt"
MODELS = [("gemma", "models/gemma-3-270m-q4_k_m.gguf", "gemma3"),
          ("smollm2", "models/SmolLM2-135M-Instruct.Q4_1.gguf", "llama")]
PICKS = 6  # sampled elements per tensor


def unpermute(w, n_head):
    """Inverse of w.reshape(n_head, 2, E/2, in).swapaxes(1, 2).reshape(w.shape)."""
    e = w.shape[0] // n_head
    return w.reshape(n_head, e // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


def tensor_values(reader, arch):
    fields = reader.fields
    n_head = int(fields[f"{arch}.attention.head_count"].contents())
    n_kv = int(fields[f"{arch}.attention.head_count_kv"].contents())
    n_layer = int(fields[f"{arch}.block_count"].contents())
    names = ["token_embd.weight", "output_norm.weight"]
    for i in (0, n_layer - 1):
        names += [f"blk.{i}.{n}.weight" for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                                  "ffn_down", "attn_norm", "ffn_norm")]
        if arch == "gemma3":
            names += [f"blk.{i}.{n}.weight" for n in ("attn_q_norm", "attn_k_norm", "post_attention_norm", "post_ffw_norm")]
    tensors = {t.name: t for t in reader.tensors}
    out = {}
    for name in names:
        t = tensors[name]
        w = dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)]).astype(np.float32)
        if w.ndim == 1:
            w = w.reshape(1, -1)
        if arch == "llama" and ".attn_q." in name:
            w = unpermute(w, n_head)
        if arch == "llama" and ".attn_k." in name:
            w = unpermute(w, n_kv)
        out[name] = w
    return out


def hf_name(name):
    table = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
             "attn_norm": "input_layernorm", "ffn_norm": "pre_feedforward_layernorm", "attn_q_norm": "self_attn.q_norm",
             "attn_k_norm": "self_attn.k_norm", "post_attention_norm": "post_attention_layernorm",
             "post_ffw_norm": "post_feedforward_layernorm"}
    parts = name.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{table[parts[2]]}.weight"
    return table[parts[0]] + ".weight"


def cross_check(path, arch, values):
    """Compares with transformers' GGUF loader; returns the number of tensors compared."""
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        return 0
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
    n = 0
    for name, w in values.items():
        key = hf_name(name)
        if arch == "llama" and "ffn_norm" in name:
            key = key.replace("pre_feedforward_layernorm", "post_attention_layernorm")
        if arch == "gemma3" and key.startswith("model.") and key not in sd:
            key = key.replace("model.", "model.language_model.", 1)
        ref = sd[key].reshape(w.shape)
        if arch == "gemma3" and "norm" in name:
            ref = ref + 1.0  # HF Gemma stores w; GGUF and lafn hold 1 + w
        err = float(np.abs(ref - w).max())
        assert err <= 1e-6 * max(1.0, float(np.abs(w).max())), f"{path}: {name} vs transformers {key}: max err {err}"
        n += 1
    return n


def main():
    rng = np.random.default_rng(7)
    lines = []
    for tag, path, arch in MODELS:
        with open(path, "rb") as f:
            data = f.read()
        lines.append(f"model {tag} {hashlib.sha256(data).hexdigest()} {len(data)}")
        values = tensor_values(gguf.GGUFReader(path), arch)
        for name, w in values.items():
            for _ in range(PICKS):
                r, c = int(rng.integers(w.shape[0])), int(rng.integers(w.shape[1]))
                lines.append(f"w {tag} {name} {r} {c} {float(w[r, c]):.9g}")
        n = cross_check(path, arch, values)
        print(f"{tag}: {len(values)} tensors sampled, {n} cross-checked against transformers")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} lines to {OUT}")


if __name__ == "__main__":
    main()
