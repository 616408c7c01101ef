#!/usr/bin/env python3
"""Seeded random-weight tiny Llama / Qwen2 / Gemma3 checkpoints (HF folder + GGUF) and float64 autograd references.

For each arch A in {llama, qwen2, gemma3} this writes
  tests/fixtures/models/tiny-A/        config.json, model.safetensors, tokenizer.json, tokenizer_config.json
  tests/fixtures/models/tiny-A.gguf    the same weights in llama.cpp's GGUF conventions
  tests/fixtures/tiny-A_ref.json       log-probs, NLL and gradients computed by torch autograd in float64
The weights are rounded so that the safetensors dtype and every GGUF tensor type
hold them exactly; both files therefore describe the same function and share one
reference. The GGUF is read back with gguf-py and compared bit for bit.

Usage: make_tiny_models.py [--repo DIR] [--arch A ...]
"""
import argparse
import importlib.metadata
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

import gguf
import tokenizers
import transformers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers

Q = gguf.GGMLQuantizationType
SEED = 1234
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS = [
    "The capital of France is Paris. The capital of Germany is Berlin.",
    "Who wrote the novel? It was written by a famous author in 1851.",
    "When was the company founded? The company was founded in 1998 by two engineers.",
    "Die Hauptstadt von Deutschland ist Berlin. Wer hat das Buch geschrieben?",
    "La capitale de la France est Paris. Qui a fondé la société?",
    "What is the name of the river that flows through the city of London?",
    "The Thames flows through London; the Seine flows through Paris.",
    "In which country is the mountain located? It is located in Nepal, near Tibet.",
    "Numbers: 12, 345, 6789 and 2024-06-11 are dates or counts.",
    "Who is the author of the song and which language was it sung in?",
]
TEXTS = {  # test sequences; every one is longer than the Gemma sliding window
    "llama": ["The capital of France is Paris.", "The Thames flows through London.", "The capital is naïve?"],
    "qwen2": ["Paris is 2024€.", "The Thames flows through London.", "The capital is naïve?"],
    "gemma3": ["The capital is Berlin.", "Who founded the company?", "Köln is Paris."],
}


# ----------------------------------------------------------------------------- tokenizers

def byte_level_tokenizer(regex, specials, vocab_size):
    """Byte-level BPE (Llama 3 / Qwen2 style) trained on CORPUS."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def spm_tokenizer(n_pieces):
    """SentencePiece-like BPE (Gemma style): '▁' for space, no prefix, byte fallback, ids pad0 eos1 bos2 unk3."""
    tmp = tokenizers.Tokenizer(models.BPE())
    tmp.normalizer = normalizers.Replace(" ", "▁")
    tmp.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tmp.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=n_pieces, show_progress=False))
    trained = json.loads(tmp.to_str())["model"]
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                                          fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", 2)])
    return tok


def spm_encode(text, vocab, scores):
    """llama.cpp's SentencePiece algorithm: merge the adjacent pair whose concatenation is the
    highest-scoring vocab entry (leftmost on ties), then byte fallback for unknown symbols."""
    syms = list(text.replace(" ", "▁"))
    while True:
        best = None
        for i in range(len(syms) - 1):
            s = syms[i] + syms[i + 1]
            if s in vocab and (best is None or scores[vocab[s]] > best[0]):
                best = (scores[vocab[s]], i)
        if best is None:
            break
        i = best[1]
        syms[i:i + 2] = [syms[i] + syms[i + 1]]
    ids = []
    for s in syms:
        if s in vocab:
            ids.append(vocab[s])
        else:
            ids.extend(vocab[f"<0x{b:02X}>"] for b in s.encode("utf-8"))
    return ids


# ----------------------------------------------------------------------------- models

def llama3_rope_factors(rp, head_dim):
    """Per-frequency divisors of llama3 RoPE scaling, as llama.cpp's rope_freqs.weight stores them."""
    base = rp["rope_theta"]
    inv = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    old = rp["original_max_position_embeddings"]
    lo, hi, factor = rp["low_freq_factor"], rp["high_freq_factor"], rp["factor"]
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < old / hi:
            out.append(1.0)
        elif wl > old / lo:
            out.append(factor)
        else:
            s = (old / wl - lo) / (hi - lo)
            out.append(1.0 / ((1 - s) / factor + s))
    return np.array(out, dtype=np.float32)


def make_config(arch, V, bos, eos, pad):
    common = dict(vocab_size=V, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                  bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, attn_implementation="eager")
    if arch == "llama":
        return transformers.LlamaConfig(
            intermediate_size=128, rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu",
            rope_parameters={"rope_type": "llama3", "rope_theta": 100.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, **common)
    if arch == "qwen2":
        return transformers.Qwen2Config(intermediate_size=128, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
                                        use_sliding_window=False, hidden_act="silu", **common)
    return transformers.Gemma3TextConfig(
        intermediate_size=128, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=24, sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}},
        final_logit_softcapping=None, attn_logit_softcapping=None, **common)


def exact_in(x, dtype):
    """x (float64 numpy) rounded to the nearest value of torch dtype, back as float64."""
    return torch.from_numpy(x).to(dtype).to(torch.float64).numpy()


def q8_0_exact(x):
    """x rounded through Q8_0 so that Q8_0 stores it losslessly (checked)."""
    y = gguf.quants.dequantize(gguf.quants.quantize(x.astype(np.float32), Q.Q8_0), Q.Q8_0).astype(np.float64)
    z = gguf.quants.dequantize(gguf.quants.quantize(y.astype(np.float32), Q.Q8_0), Q.Q8_0)
    if not np.array_equal(y, z):
        sys.exit("Q8_0 round trip is not idempotent")
    return y


def gguf_types(arch, name):
    """GGUF tensor type per tensor: a mix of F32/F16/BF16/Q8_0 that holds the HF weights exactly."""
    if name.endswith("norm.weight") or name.endswith(".bias") or name == "rope_freqs.weight":
        return Q.F32
    if arch == "llama":
        if name == "token_embd.weight" or name.split(".")[-2] in ("ffn_gate", "ffn_up"):
            return Q.Q8_0
        return Q.F32 if name == "blk.2.ffn_down.weight" else Q.F16
    return Q.BF16 if arch == "qwen2" else Q.F16


def random_weights(model, arch, dtype, rng):
    """Seeded weights: matrices (embeddings too) ~ N(0, 1/cols), norms 1+U or U (Gemma), biases N(0,0.1);
    rounded to dtype, and through Q8_0 where the GGUF stores Q8_0."""
    sd = {}
    for name, p in model.state_dict().items():
        if "rotary_emb" in name or name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        shape = tuple(p.shape)
        if name.endswith("norm.weight"):
            w = np.round(rng.uniform(-0.5, 0.5, shape) * 256) / 256
            w = w if arch == "gemma3" else 1.0 + w
        elif name.endswith(".bias"):
            w = rng.normal(0, 0.1, shape)
        else:
            w = rng.normal(0, 1.0 / math.sqrt(shape[1]), shape)
        w = exact_in(w, dtype)
        gname = to_gguf_name(name, arch)
        if gguf_types(arch, gname) == Q.Q8_0:
            w = exact_in(q8_0_exact(w), dtype)
        if gguf_types(arch, gname) == Q.F16:
            w = exact_in(w, torch.float16)
        sd[name] = torch.from_numpy(w)
    return sd


HF2GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
           "input_layernorm": "attn_norm", "pre_feedforward_layernorm": "ffn_norm",
           "post_feedforward_layernorm": "post_ffw_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down"}


def to_gguf_name(name, arch=None):
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")  # model.layers.N.<module...>.weight|bias
    mod = ".".join(parts[3:-1])
    if mod == "post_attention_layernorm":
        base = "ffn_norm" if arch in ("llama", "qwen2") else "post_attention_norm"
    else:
        base = HF2GGUF[mod]
    return f"blk.{parts[2]}.{base}.{parts[-1]}"


def permute(w, n_head, n_head_kv=None):
    """llama.cpp convert_hf_to_gguf permute(): rows reordered for interleaved RoPE."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(arch, sd, cfg):
    """HF state dict (float64 numpy) -> {gguf name: float32 array} in llama.cpp's conventions."""
    out = {}
    for name, w in sd.items():
        g = to_gguf_name(name, arch)
        w = w.astype(np.float64)
        if arch == "llama" and g.endswith("attn_q.weight"):
            w = permute(w, cfg.num_attention_heads)
        elif arch == "llama" and g.endswith("attn_k.weight"):
            w = permute(w, cfg.num_attention_heads, cfg.num_key_value_heads)
        if arch == "gemma3" and g.endswith("norm.weight"):
            w = w + 1.0  # llama.cpp stores Gemma's RMSNorm weight as 1+w
        out[g] = w.astype(np.float32)
        if not np.array_equal(out[g].astype(np.float64), w):
            sys.exit(f"{arch} {g}: not exact in float32")
    if arch == "llama":
        out["rope_freqs.weight"] = llama3_rope_factors(cfg.rope_parameters, cfg.head_dim)
    return out


def write_gguf(path, arch, cfg, tensors, tok_meta):
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny-{arch}")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(cfg.vocab_size)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    if arch == "gemma3":
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
        w.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])
        w.add_rope_freq_base_swa(cfg.rope_parameters["sliding_attention"]["rope_theta"])
        w.add_sliding_window(cfg.sliding_window)
        # Extensions (llama.cpp derives these from the model size): per layer true = sliding, and the
        # attention scale 1/sqrt(query_pre_attn_scalar).
        w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg.layer_types])
        w.add_attention_scale(1.0 / math.sqrt(cfg.query_pre_attn_scalar))
    else:
        w.add_rope_dimension_count(cfg.head_dim)
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    for k, v in tok_meta.items():
        getattr(w, k)(v)
    for name in sorted(tensors, key=gguf_sort_key):
        t = gguf_types(arch, name)
        data = tensors[name]
        if t == Q.F32:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, gguf.quants.quantize(data, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_sort_key(name):
    p = name.split(".")
    return (1, int(p[1]), name) if p[0] == "blk" else (0, 0, name)


def tokenizer_meta(arch, tok, hf_tok):
    """tokenizer.ggml.* keys as llama.cpp's converter writes them."""
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [None] * len(vocab)
    for s, i in vocab.items():
        tokens[i] = s
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    m = {"add_tokenizer_model": "gpt2" if arch != "gemma3" else "llama", "add_token_list": tokens}
    if arch == "gemma3":
        types, scores = [], []
        for i, s in enumerate(tokens):
            if s == "<unk>":
                types.append(2)
            elif s in special:
                types.append(3)
            elif s.startswith("<0x") and len(s) == 6:
                types.append(6)
            else:
                types.append(1)
            scores.append(0.0 if types[-1] != 1 else -float(i))
        m.update(add_token_scores=scores, add_token_types=types, add_tokenizer_pre="default",
                 add_add_space_prefix=False, add_bos_token_id=2, add_eos_token_id=1, add_unk_token_id=3,
                 add_pad_token_id=0, add_add_bos_token=True, add_add_eos_token=False)
    else:
        merges = json.loads(tok.to_str())["model"]["merges"]
        merges = [" ".join(x) if isinstance(x, list) else x for x in merges]
        m.update(add_token_types=[3 if s in special else 1 for s in tokens], add_token_merges=merges,
                 add_tokenizer_pre="llama-bpe" if arch == "llama" else "qwen2",
                 add_bos_token_id=hf_tok.bos_token_id if arch == "llama" else hf_tok.eos_token_id,
                 add_eos_token_id=hf_tok.eos_token_id, add_add_bos_token=arch == "llama",
                 add_add_eos_token=False)
    return m


# ----------------------------------------------------------------------------- reference

def build_tokenizer(arch):
    """(tokenizers.Tokenizer, transformers fast tokenizer) for arch."""
    if arch == "llama":
        tok = byte_level_tokenizer(LLAMA3_RE, ["<|begin_of_text|>", "<|end_of_text|>"], 320)
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)])
        hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                                  eos_token="<|end_of_text|>")
    elif arch == "qwen2":
        tok = byte_level_tokenizer(QWEN2_RE, ["<|endoftext|>"], 320)
        hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                                  pad_token="<|endoftext|>")
    else:
        tok = spm_tokenizer(140)
        hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                                  unk_token="<unk>", pad_token="<pad>")
    return tok, hf


def ffn_grads(model, seqs, logit_pos, targets, grad_layer, edit_layer, edit_neuron, vv0=None, off0=None):
    """float64 autograd: NLL over the scored positions; dNLL/d(FFN act of grad_layer) per global
    position; gradient of the value-vector deltas and activation offsets of the edit neurons
    (at vv0/off0, default zero)."""
    D = model.config.hidden_size
    n = len(edit_layer)
    vv = (torch.zeros(n, D, dtype=torch.float64) if vv0 is None else vv0.clone()).requires_grad_(True)
    off = (torch.zeros(n, dtype=torch.float64) if off0 is None else off0.clone()).requires_grad_(True)
    acts, hooks = [], []

    def pre_hook(layer):
        def f(mod, args):
            a = args[0]
            for e in range(n):
                if edit_layer[e] == layer:
                    a = a + off[e] * torch.nn.functional.one_hot(
                        torch.tensor(edit_neuron[e]), a.shape[-1]).to(a.dtype)
            if layer == grad_layer:
                a.retain_grad()
                acts.append(a)
            return (a,)
        return f

    def post_hook(layer):
        def f(mod, args, out):
            a = args[0]
            for e in range(n):
                if edit_layer[e] == layer:
                    out = out + a[..., edit_neuron[e], None] * vv[e]
            return out
        return f

    for i, lay in enumerate(model.model.layers):
        hooks.append(lay.mlp.down_proj.register_forward_pre_hook(pre_hook(i)))
        hooks.append(lay.mlp.down_proj.register_forward_hook(post_hook(i)))
    try:
        logps, base = [], 0
        for s in seqs:
            logits = model(torch.tensor([s])).logits[0]
            logps.append(torch.log_softmax(logits, dim=-1))
            base += len(s)
        lp = torch.cat(logps)
        nll = -sum(lp[p, t] for p, t in zip(logit_pos, targets))
        nll.backward()
    finally:
        for h in hooks:
            h.remove()
    g_act = torch.cat([a.grad[0] for a in acts])
    return lp[logit_pos].detach(), float(nll), g_act, vv.grad, off.grad


def patch_float64():
    """HF computes RMSNorm and the attention softmax in float32 even for a float64 model; make them
    float64 so that the reference is float64 throughout (RoPE angles stay float32, as in HF)."""
    from transformers.models.gemma3 import modeling_gemma3
    from transformers.models.llama import modeling_llama
    from transformers.models.qwen2 import modeling_qwen2

    def rms(x, eps):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    modeling_llama.LlamaRMSNorm.forward = lambda self, x: self.weight * rms(x, self.variance_epsilon)
    modeling_qwen2.Qwen2RMSNorm.forward = lambda self, x: self.weight * rms(x, self.variance_epsilon)
    modeling_gemma3.Gemma3RMSNorm.forward = lambda self, x: rms(x, self.eps) * (1.0 + self.weight)
    softmax = torch.nn.functional.softmax

    def softmax64(x, dim=None, _stacklevel=3, dtype=None):
        return softmax(x, dim=dim, dtype=torch.float64 if x.dtype == torch.float64 else dtype)

    torch.nn.functional.softmax = softmax64


def check_grads(ref, seqs, logit_pos, targets, grad_layer, edit_layer, edit_neuron, g_act, g_vv, g_off):
    """Central finite differences of the NLL for every edit entry (offset and one value-vector
    component), and offset gradient = sum over positions of the activation gradient."""
    args = (ref, seqs, logit_pos, targets, grad_layer, edit_layer, edit_neuron)
    n, D, h = len(edit_layer), g_vv.shape[1], 1e-5
    for e in range(n):
        d = e % D
        for kind, g in (("offset", g_off[e]), ("value_vector", g_vv[e, d])):
            nll = []
            for sgn in (1, -1):
                vv = torch.zeros(n, D, dtype=torch.float64)
                off = torch.zeros(n, dtype=torch.float64)
                (off.__setitem__(e, sgn * h) if kind == "offset" else vv.__setitem__((e, d), sgn * h))
                nll.append(ffn_grads(*args, vv0=vv, off0=off)[1])
            fd = (nll[0] - nll[1]) / (2 * h)
            if abs(fd - float(g)) > 1e-6 * max(1.0, abs(fd)):
                sys.exit(f"edit {e} {kind}: autograd {float(g)} finite difference {fd}")
        if edit_layer[e] == grad_layer and abs(float(g_act[:, edit_neuron[e]].sum() - g_off[e])) > 1e-9:
            sys.exit(f"edit {e}: offset gradient != sum of activation gradients")


def sig(x, digits=7):
    return [float(f"{v:.{digits}g}") for v in np.asarray(x, dtype=np.float64).ravel()]


def check_gguf(path, arch, cfg, sd):
    """Reads the GGUF back, undoes llama.cpp's conventions and compares with the HF weights bit for bit."""
    r = gguf.GGUFReader(path)
    got = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).reshape(tuple(int(x) for x in reversed(t.shape)))
           for t in r.tensors}
    for name, w in sd.items():
        g = to_gguf_name(name, arch)
        x = got[g].astype(np.float64)
        if arch == "gemma3" and g.endswith("norm.weight"):
            x = x - 1.0
        if arch == "llama" and g.endswith("attn_q.weight"):
            x = unpermute(x, cfg.num_attention_heads)
        elif arch == "llama" and g.endswith("attn_k.weight"):
            x = unpermute(x, cfg.num_key_value_heads)
        if not np.array_equal(x, w):
            sys.exit(f"{path}: {g} differs from HF {name}: max {np.abs(x - w).max()}")
    return {t.name: t.tensor_type.name for t in r.tensors}


def unpermute(w, n_head):
    d = w.shape[0] // n_head // 2
    return w.reshape(n_head, d, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llamacpp_check(gpath, texts, seqs, logit_pos, refs):
    """llama.cpp on the GGUF: tokenisation against the HF tokenizer, and max |log-prob difference|
    at the scored positions against each reference in refs {label: (P, V) tensor}."""
    try:
        import llama_cpp
    except ImportError:
        return None
    llm = llama_cpp.Llama(model_path=gpath, logits_all=True, n_ctx=64, n_threads=1, verbose=False)
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    tok_ok = sum(llm.tokenize(t.encode("utf-8"), add_bos=add_bos, special=False) == s for t, s in zip(texts, seqs))
    lps = []
    for s in seqs:
        llm.reset()
        llm.eval(s)
        lps.append(torch.log_softmax(torch.tensor(np.asarray(llm.scores[: len(s)]), dtype=torch.float64), -1))
    lp = torch.cat(lps)[logit_pos]
    out = {"version": llama_cpp.__version__, "tokenize_agree": f"{tok_ok}/{len(texts)}"}
    for label, ref in refs.items():
        out[label] = float(f"{(lp - ref).abs().max().item():.3g}")
    return out


def logprobs_with(ref, seqs, logit_pos, **overrides):
    """Log-probs at logit_pos of the same weights under a config with some fields overridden."""
    cfg = ref.config.__class__.from_dict({**ref.config.to_dict(), **overrides})
    m = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").double().eval()
    m.load_state_dict(ref.state_dict(), strict=False)
    with torch.no_grad():
        lp = torch.cat([torch.log_softmax(m(torch.tensor([s])).logits[0], -1) for s in seqs])
    return lp[logit_pos]


def classic_hf_files(out_dir, arch, cfg, dtype):
    """Rewrites config.json in the widespread transformers-4 form (rope_theta, rope_scaling,
    rope_local_base_freq, torch_dtype) that real checkpoints carry, and states add_bos_token /
    add_eos_token in tokenizer_config.json as real checkpoints do."""
    path = os.path.join(out_dir, "config.json")
    with open(path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    c.pop("_sliding_window_pattern", None)
    if arch == "gemma3":
        c["rope_theta"] = rp["full_attention"]["rope_theta"]
        c["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
        c["rope_scaling"] = None
    else:
        c["rope_theta"] = rp.pop("rope_theta")
        c["rope_scaling"] = rp if rp.get("rope_type", "default") != "default" else None
    c["torch_dtype"] = str(dtype).split(".")[1]
    with open(path, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    path = os.path.join(out_dir, "tokenizer_config.json")
    with open(path) as f:
        t = json.load(f)
    t["add_bos_token"] = arch != "qwen2"
    t["add_eos_token"] = False
    with open(path, "w") as f:
        json.dump(t, f, indent=2, sort_keys=True)
        f.write("\n")


def make_arch(arch, repo):
    dtype = {"llama": torch.float32, "qwen2": torch.bfloat16, "gemma3": torch.float16}[arch]
    rng = np.random.default_rng(SEED + ["llama", "qwen2", "gemma3"].index(arch))
    tok, hf_tok = build_tokenizer(arch)
    V = tok.get_vocab_size(with_added_tokens=True)
    bos = hf_tok.bos_token_id if arch != "qwen2" else None
    cfg = make_config(arch, V, bos, hf_tok.eos_token_id, hf_tok.pad_token_id)
    torch.manual_seed(SEED)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    sd = random_weights(model, arch, dtype, rng)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        sys.exit(f"{arch}: state dict mismatch {missing} {unexpected}")
    if arch == "llama":
        factors = llama3_rope_factors(cfg.rope_parameters, cfg.head_dim)
        base = 1.0 / (100.0 ** (np.arange(0, 16, 2) / 16))
        hf_inv = model.model.rotary_emb.inv_freq.double().numpy()
        if np.all(factors == 1) or np.abs(hf_inv - base / factors).max() > 1e-6 * base.max():
            sys.exit(f"llama3 rope factors {factors} disagree with HF inv_freq {hf_inv}")

    out_dir = os.path.join(repo, "tests", "fixtures", "models", f"tiny-{arch}")
    shutil.rmtree(out_dir, ignore_errors=True)
    model.to(dtype).save_pretrained(out_dir, safe_serialization=True)
    hf_tok.save_pretrained(out_dir)
    for extra in ("generation_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(out_dir, extra)):
            os.remove(os.path.join(out_dir, extra))

    classic_hf_files(out_dir, arch, cfg, dtype)

    # Reload from disk in float64: the reference is of what was written.
    ref = transformers.AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float64,
                                                            attn_implementation="eager").eval()
    for key in ("rope_parameters", "layer_types", "sliding_window", "query_pre_attn_scalar", "head_dim"):
        if getattr(ref.config, key, None) != getattr(cfg, key, None):
            sys.exit(f"{arch}: {key} changed on reload: {getattr(cfg, key, None)} -> {getattr(ref.config, key, None)}")
    sd64 = {k: v.numpy() for k, v in ref.state_dict().items()
            if "rotary_emb" not in k and not (k == "lm_head.weight" and cfg.tie_word_embeddings)}
    gpath = os.path.join(repo, "tests", "fixtures", "models", f"tiny-{arch}.gguf")
    write_gguf(gpath, arch, cfg, gguf_tensors(arch, sd64, cfg), tokenizer_meta(arch, tok, hf_tok))
    types = check_gguf(gpath, arch, cfg, sd64)

    loaded_tok = transformers.AutoTokenizer.from_pretrained(out_dir)
    seqs = [loaded_tok(t)["input_ids"] for t in TEXTS[arch]]
    if arch == "gemma3":
        vocab = tok.get_vocab(with_added_tokens=True)
        scores = tokenizer_meta(arch, tok, hf_tok)["add_token_scores"]
        for t, s in zip(TEXTS[arch] + CORPUS, seqs + [loaded_tok(c)["input_ids"] for c in CORPUS]):
            if s[1:] != spm_encode(t, vocab, scores):
                sys.exit(f"gemma3 tokenizer: HF BPE and SPM-by-score disagree on {t!r}")
    if any((s[0] == bos) != (arch != "qwen2") for s in seqs):
        sys.exit(f"{arch}: BOS handling differs from the tokenizer config: {seqs}")
    if not all(6 <= len(s) <= 12 for s in seqs):
        sys.exit(f"{arch}: sequence lengths {[len(s) for s in seqs]} outside 6..12")
    offs = np.cumsum([0] + [len(s) for s in seqs])
    logit_pos, targets = [], []
    for b, s in enumerate(seqs):
        for p in range(len(s) - 5, len(s) - 1):
            logit_pos.append(int(offs[b] + p))
            targets.append(int(s[p + 1]))
    grad_layer = 1
    edit_layer, edit_neuron = [0, 1, 1, 2], [5, 17, 100, 3]
    lp, nll, g_act, g_vv, g_off = ffn_grads(ref, seqs, logit_pos, targets, grad_layer, edit_layer, edit_neuron)
    check_grads(ref, seqs, logit_pos, targets, grad_layer, edit_layer, edit_neuron, g_act, g_vv, g_off)
    refs = {"max_abs_logprob_diff": lp}
    if arch == "gemma3":  # llama.cpp ignores attention.scale for gemma3 and uses 1/sqrt(head_dim)
        refs["max_abs_logprob_diff_vs_hf_with_query_pre_attn_scalar_eq_head_dim"] = logprobs_with(
            ref, seqs, logit_pos, query_pre_attn_scalar=cfg.head_dim)
    lcpp = llamacpp_check(gpath, TEXTS[arch], seqs, logit_pos, refs)
    doc = {
        "arch": arch, "model_dir": f"tests/fixtures/models/tiny-{arch}",
        "gguf": f"tests/fixtures/models/tiny-{arch}.gguf", "safetensors_dtype": str(dtype).split(".")[1],
        "gguf_tensor_types": types,
        "reference": (f"torch {torch.__version__} autograd in float64 (RMSNorm and softmax patched to float64; "
                      f"RoPE cos/sin computed in float32 as HF does) on transformers {transformers.__version__} "
                      f"{type(ref).__name__} reloaded from model_dir (eager attention), each sequence run "
                      f"separately; tokenizers {tokenizers.__version__}, GGUF by gguf-py {importlib.metadata.version('gguf')}; "
                      f"made by tests/reference/make_tiny_models.py"),
        "texts": TEXTS[arch], "sequences": seqs, "logit_pos": logit_pos, "targets": targets,
        "logprobs": [sig(row) for row in lp.numpy()], "nll": nll,
        "grad_layer": grad_layer, "grad_ffn_act": sig(g_act.numpy()),
        "edit_layer": edit_layer, "edit_neuron": edit_neuron,
        "grad_value_vector": sig(g_vv.numpy()), "grad_activation_offset": sig(g_off.numpy()),
        "llamacpp_check": lcpp,
    }
    with open(os.path.join(repo, "tests", "fixtures", f"tiny-{arch}_ref.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"tiny-{arch}: V={V} seq lens {[len(s) for s in seqs]} nll={nll:.6f} gguf types "
          f"{sorted(set(types.values()))} llama.cpp {lcpp}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("--arch", nargs="*", default=["llama", "qwen2", "gemma3"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    patch_float64()
    os.makedirs(os.path.join(args.repo, "tests", "fixtures", "models"), exist_ok=True)
    for arch in args.arch:
        make_arch(arch, args.repo)


if __name__ == "__main__":
    main()
