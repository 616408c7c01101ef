#!/usr/bin/env python3
"""Writes tests/fixtures/hf/: three tiny seeded random-weight Hugging Face folders and expected values.

  tiny-llama3  Llama, rope_scaling llama3, BF16, two shards + index, untied lm_head
  tiny-qwen2   Qwen2 (Q/K/V bias), F32, tied embeddings
  tiny-gemma3  Gemma 3 text, 6 layers (layer 5 global), F16, query_pre_attn_scalar 12
Each folder gets a tiny byte-level BPE tokenizer.json trained here. values.txt holds, per model,
"model <name> <sha256 of the safetensors files concatenated in name order> <bytes>",
"w <name> <gguf tensor> <row> <col> <value>" sampled from transformers' state dict in lafn's
layout (Gemma norms as 1 + w), and "rope <name> <i> <factor>" = transformers' default inv_freq /
its llama3-scaled inv_freq (float32). Run from the repository root: python3 tests/reference/make_hf_fixtures.py
"""
import glob
import hashlib
import os
import shutil

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

OUT = "tests/fixtures/hf"
TEXT = ["The capital of France is Paris.", "Die Hauptstadt von Deutschland ist Berlin.",
        "La capitale de l'Italie est Rome.", "東京は日本の首都です。", "Madrid is the capital of Spain."] * 4
DIMS = dict(vocab_size=300, hidden_size=16, intermediate_size=32, num_attention_heads=2, num_key_value_heads=1,
            head_dim=8, rms_norm_eps=1e-6, max_position_embeddings=2048)
GGUF_OF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "self_attn.q_norm": "attn_q_norm",
           "self_attn.k_norm": "attn_k_norm", "post_feedforward_layernorm": "post_ffw_norm",
           "pre_feedforward_layernorm": "ffn_norm"}


def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=290, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    return tok


def gguf_name(hf, gemma):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    layer, rest, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    if rest == "post_attention_layernorm":
        return f"blk.{layer}.{'post_attention_norm' if gemma else 'ffn_norm'}.{kind}"
    return f"blk.{layer}.{GGUF_OF[rest]}.{kind}"


def build(name, cls, cfg, dtype, shard):
    torch.manual_seed(sum(map(ord, name)))
    model = cls(cfg).eval()
    with torch.no_grad():
        for k, p in model.named_parameters():
            if "norm" in k or k.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.3)  # non-trivial norms and biases
    model = model.to(dtype)
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    model.save_pretrained(path, max_shard_size=shard, safe_serialization=True)
    tokenizer().save(os.path.join(path, "tokenizer.json"))
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))
    return model, path


def describe(name, model, path, gemma, rng):
    files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    h = hashlib.sha256()
    size = 0
    for f in files:
        data = open(f, "rb").read()
        h.update(data)
        size += len(data)
    lines = [f"model {name} {h.hexdigest()} {size}"]
    for k, v in model.state_dict().items():
        if "rotary" in k or (k == "lm_head.weight" and model.config.tie_word_embeddings):
            continue
        w = v.float().numpy()
        if gemma and "norm" in k:
            w = w + 1.0
        w = w.reshape(w.shape[0] if w.ndim == 2 else 1, -1)
        for _ in range(3):
            r, c = int(rng.integers(w.shape[0])), int(rng.integers(w.shape[1]))
            lines.append(f"w {name} {gguf_name(k, gemma)} {r} {c} {float(w[r, c]):.9g}")
    return lines


def rope_lines(name, model):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    cfg = model.config
    scaled = LlamaRotaryEmbedding(cfg).inv_freq.double()  # fresh float32 buffer (the model's was cast)
    theta = cfg.rope_parameters["rope_theta"]
    default = 1.0 / (theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).double() / cfg.head_dim))
    return [f"rope {name} {i} {float(f):.9g}" for i, f in enumerate(default / scaled)]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(11)
    lines = []
    llama_cfg = LlamaConfig(num_hidden_layers=2, tie_word_embeddings=False, rope_theta=10000.0,
                            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}, **DIMS)
    m, p = build("tiny-llama3", LlamaForCausalLM, llama_cfg, torch.bfloat16, "20KB")
    lines += describe("tiny-llama3", m, p, False, rng) + rope_lines("tiny-llama3", m)
    qwen_cfg = Qwen2Config(num_hidden_layers=2, tie_word_embeddings=True, rope_theta=1000000.0, **DIMS)
    m, p = build("tiny-qwen2", Qwen2ForCausalLM, qwen_cfg, torch.float32, "10MB")
    lines += describe("tiny-qwen2", m, p, False, rng)
    gemma_cfg = Gemma3TextConfig(num_hidden_layers=6, sliding_window=64, query_pre_attn_scalar=12,
                                 rope_theta=1000000.0, rope_local_base_freq=10000.0, **DIMS)
    m, p = build("tiny-gemma3", Gemma3ForCausalLM, gemma_cfg, torch.float16, "10MB")
    lines += describe("tiny-gemma3", m, p, True, rng)
    with open(os.path.join(OUT, "values.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} lines to {OUT}/values.txt")


if __name__ == "__main__":
    main()
