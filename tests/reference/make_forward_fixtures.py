#!/usr/bin/env python3
"""Reference next-token log-probs of the real GGUF models, made with HF transformers (fp32, eager).

The GGUF tensors are dequantised with gguf-py and loaded into a Hugging Face
model built from an explicit config (our own name mapping: Gemma norm weights
stored as 1+w get 1 subtracted, Llama Q/K rows are un-permuted). The result is
cross-checked against transformers' own GGUF loader and, when llama-cpp-python
is installed, against llama.cpp's argmax on the same token ids.

Usage: make_forward_fixtures.py {gemma3|smollm2} [--out FILE] [--repo DIR]
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import random
import sys

import numpy as np
import torch

import gguf
import transformers

LANGS = ["en", "zh", "cz", "de", "du", "es", "fr", "pt", "ru", "th", "tr", "vi"]
NO_SPACE_LANGS = {"zh", "ja", "th"}
TOPK = 10


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def dequant_all(reader):
    """Every tensor of the GGUF as a float32 numpy array in HF (rows=ne1, cols=ne0) layout."""
    out = {}
    for t in reader.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape))
        out[t.name] = np.ascontiguousarray(a.reshape(shape).astype(np.float32))
    return out


def unpermute(w, n_head):
    """Inverse of llama.cpp's convert_hf_to_gguf permute() for interleaved RoPE."""
    d = w.shape[0] // n_head // 2
    return w.reshape(n_head, d, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gemma3_model(reader, tensors):
    arch = "gemma3"
    g = lambda k: gguf_field(reader, f"{arch}.{k}")
    n_layer = int(g("block_count"))
    cfg = transformers.Gemma3TextConfig(
        vocab_size=tensors["token_embd.weight"].shape[0],
        hidden_size=int(g("embedding_length")),
        intermediate_size=int(g("feed_forward_length")),
        num_hidden_layers=n_layer,
        num_attention_heads=int(g("attention.head_count")),
        num_key_value_heads=int(g("attention.head_count_kv")),
        head_dim=int(g("attention.key_length")),
        rms_norm_eps=float(g("attention.layer_norm_rms_epsilon")),
        rope_theta=float(g("rope.freq_base")),
        rope_local_base_freq=10000.0,
        sliding_window=int(g("attention.sliding_window")),
        query_pre_attn_scalar=256,
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n_layer)],
        max_position_embeddings=int(g("context_length")),
        hidden_activation="gelu_pytorch_tanh",
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=2, eos_token_id=1, pad_token_id=0,
        attn_implementation="eager",
    )
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
             "attn_k_norm": "self_attn.k_norm", "attn_norm": "input_layernorm",
             "post_attention_norm": "post_attention_layernorm", "ffn_norm": "pre_feedforward_layernorm",
             "post_ffw_norm": "post_feedforward_layernorm", "ffn_gate": "mlp.gate_proj",
             "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    sd = {}
    for name, w in tensors.items():
        if name.endswith("norm.weight"):
            w = w - np.float32(1.0)  # llama.cpp stored 1+w; HF computes x*(1+w)
        if name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = w
        elif name == "output_norm.weight":
            sd["model.norm.weight"] = w
        elif name == "output.weight":
            sd["lm_head.weight"] = w
        else:
            _, i, base, _ = name.split(".")
            sd[f"model.layers.{i}.{names[base]}.weight"] = w
    return transformers.Gemma3ForCausalLM(cfg), sd


def llama_model(reader, tensors):
    arch = "llama"
    g = lambda k: gguf_field(reader, f"{arch}.{k}")
    n_head, n_kv = int(g("attention.head_count")), int(g("attention.head_count_kv"))
    cfg = transformers.LlamaConfig(
        vocab_size=tensors["token_embd.weight"].shape[0],
        hidden_size=int(g("embedding_length")),
        intermediate_size=int(g("feed_forward_length")),
        num_hidden_layers=int(g("block_count")),
        num_attention_heads=n_head,
        num_key_value_heads=n_kv,
        rms_norm_eps=float(g("attention.layer_norm_rms_epsilon")),
        rope_theta=float(g("rope.freq_base")),
        max_position_embeddings=int(g("context_length")),
        tie_word_embeddings="output.weight" not in tensors,
        hidden_act="silu",
        attn_implementation="eager",
    )
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
             "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    sd = {}
    for name, w in tensors.items():
        if name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = w
        elif name == "output_norm.weight":
            sd["model.norm.weight"] = w
        elif name == "output.weight":
            sd["lm_head.weight"] = w
        else:
            _, i, base, _ = name.split(".")
            if base == "attn_q":
                w = unpermute(w, n_head)
            elif base == "attn_k":
                w = unpermute(w, n_kv)
            sd[f"model.layers.{i}.{names[base]}.weight"] = w
    return transformers.LlamaForCausalLM(cfg), sd


def build_own(path):
    reader = gguf.GGUFReader(path)
    arch = gguf_field(reader, "general.architecture")
    tensors = dequant_all(reader)
    model, sd = (gemma3_model if arch == "gemma3" else llama_model)(reader, tensors)
    sd = {k: torch.from_numpy(v) for k, v in sd.items()}
    if model.config.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        sys.exit(f"{path}: state dict mismatch: missing {missing} unexpected {unexpected}")
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    return model.float().eval(), reader


def select_prompts(data_dir, per_lang, langs, seed):
    """per_lang prompts per language: alternately src and loc of seeded random records."""
    rng = random.Random(seed)
    prompts = []
    for lang in langs:
        fname = "mzsre_dev500_enzh.json" if lang == "en" else f"mzsre_dev500_en{lang}.json"
        with open(os.path.join(data_dir, fname), encoding="utf-8") as f:
            recs = json.load(f)
        idx = rng.sample(range(len(recs)), per_lang)
        for k, i in enumerate(idx):
            side = recs[i][lang]
            field = "src" if k % 2 == 0 else "loc"
            prompts.append({"lang": lang, "record": i, "field": field, "text": side[field],
                            "alt": side["alt"]})
    return prompts


class LlamaCpp:
    """llama.cpp via llama-cpp-python, or None-like if it is not installed."""

    def __init__(self, path):
        try:
            import llama_cpp
        except ImportError:
            self.llm, self.version = None, None
            return
        self.version = llama_cpp.__version__
        self.llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=512, n_threads=2,
                                   verbose=False)

    def tokenize(self, text, add_bos):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)

    def argmax(self, tokens):
        self.llm.reset()
        self.llm.eval(tokens)
        scores = np.asarray(self.llm.scores[: len(tokens)])
        return [int(x) for x in scores.argmax(axis=1)]


def top_entries(logits):
    lp = torch.log_softmax(logits.float(), dim=-1)
    v, i = torch.topk(lp, TOPK, dim=-1)
    return ([[int(x) for x in row] for row in i],
            [[round(float(x), 6) for x in row] for row in v],
            [int(x) for x in logits.argmax(dim=-1)])


def ffn_grad(model, layer, tokens, n_prompt, keep):
    """NLL of tokens[n_prompt:] given the prefix, and the FFN activations of one layer with the
    largest |dNLL/da|: over all positions, and at the last prompt position."""
    store = {}

    def hook(mod, args):
        a = args[0]
        a.retain_grad()
        store["a"] = a

    h = model.model.layers[layer].mlp.down_proj.register_forward_pre_hook(hook)
    try:
        ids = torch.tensor([tokens])
        logits = model(ids).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        tgt = torch.tensor(tokens[n_prompt:])
        nll = -lp[n_prompt - 1: len(tokens) - 1].gather(1, tgt[:, None]).sum()
        nll.backward()
    finally:
        h.remove()
    a, g = store["a"][0].detach(), store["a"].grad[0]

    def top(rows):
        ga, aa = g[rows].flatten(), a[rows].flatten()
        F = g.shape[1]
        order = torch.argsort(ga.abs(), descending=True, stable=True)[:keep]
        return [[int(rows[int(o // F)]), int(o % F), float(ga[o]), float(aa[o])] for o in order]

    return nll.item(), top(list(range(len(tokens)))), top([n_prompt - 1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["gemma3", "smollm2"])
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("--data", help="MzsRE folder (default: ../shared/data/mzsre next to the repository)")
    ap.add_argument("--out")
    args = ap.parse_args()
    data = args.data or os.path.join(args.repo, "..", "shared", "data", "mzsre")
    torch.manual_seed(0)
    torch.set_num_threads(2)
    if args.which == "gemma3":
        mfile, langs, per_lang, grad_prompts = "gemma-3-270m-q4_k_m.gguf", LANGS, 17, 3
    else:
        mfile, langs, per_lang, grad_prompts = "SmolLM2-135M-Instruct.Q4_1.gguf", ["en"], 60, 0
    path = os.path.join(args.repo, "models", mfile)
    out = args.out or os.path.join(args.repo, "tests", "fixtures", f"forward_{args.which}.json")

    model, reader = build_own(path)
    add_bos = bool(gguf_field(reader, "tokenizer.ggml.add_bos_token"))
    bos = int(gguf_field(reader, "tokenizer.ggml.bos_token_id"))
    mdir, mname = os.path.split(path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(mdir, gguf_file=mname)
    lcpp = LlamaCpp(path)
    prompts = select_prompts(data, per_lang, langs, seed=20240611)

    tok_agree = 0
    for p in prompts:
        hf_ids = hf_tok(p["text"], add_special_tokens=False)["input_ids"]
        hf_ids = ([bos] if add_bos else []) + hf_ids
        if lcpp.llm is not None:
            p["tokens"] = lcpp.tokenize(p["text"], add_bos)
            tok_agree += p["tokens"] == hf_ids
        else:
            p["tokens"] = hf_ids

    # Cross-check our weight mapping against transformers' own GGUF loader.
    hf_gguf = transformers.AutoModelForCausalLM.from_pretrained(
        mdir, gguf_file=mname, dtype=torch.float32, attn_implementation="eager").eval()
    maxdiff = 0.0
    with torch.no_grad():
        for p in prompts[:: max(1, len(prompts) // 12)]:
            ids = torch.tensor([p["tokens"]])
            d = (model(ids).logits - hf_gguf(ids).logits).abs().max().item()
            maxdiff = max(maxdiff, d)
    del hf_gguf
    print(f"own mapping vs transformers GGUF loader: max |logit diff| = {maxdiff:.3g}")

    n_pos = n_agree = 0
    res = []
    for k, p in enumerate(prompts):
        with torch.no_grad():
            logits = model(torch.tensor([p["tokens"]])).logits[0]
        top_ids, top_lp, amax = top_entries(logits)
        lc = lcpp.argmax(p["tokens"]) if lcpp.llm is not None else None
        if lc is not None:
            n_pos += len(amax)
            n_agree += sum(a == b for a, b in zip(amax, lc))
        res.append({"lang": p["lang"], "record": p["record"], "field": p["field"], "text": p["text"],
                    "tokens": p["tokens"], "top_ids": top_ids, "top_logprobs": top_lp, "argmax": amax,
                    "llamacpp_argmax": lc})
        if k < grad_prompts:
            sep = "" if p["lang"] in NO_SPACE_LANGS else " "
            tgt = (lcpp.tokenize(sep + p["alt"], False) if lcpp.llm is not None
                   else hf_tok(sep + p["alt"], add_special_tokens=False)["input_ids"])
            full = p["tokens"] + tgt
            nll, top, top_last = ffn_grad(model, 9, full, len(p["tokens"]), 50)
            res[-1]["grad"] = {"layer": 9, "target_text": sep + p["alt"], "tokens": full,
                               "n_prompt": len(p["tokens"]), "nll": nll, "top": top, "top_last": top_last}
    agree = f"{n_agree}/{n_pos} = {n_agree / n_pos:.4f}" if n_pos else "n/a (llama-cpp-python missing)"
    print(f"HF vs llama.cpp argmax agreement: {agree}")
    tok_src = (f"llama.cpp tokenizer (llama-cpp-python {lcpp.version}); HF GGUF tokenizer agrees on "
               f"{tok_agree}/{len(prompts)} prompts" if lcpp.llm is not None
               else "HF tokenizer built from the GGUF by transformers")
    reference = (f"transformers {transformers.__version__} {type(model).__name__}, torch {torch.__version__}, "
                 f"gguf-py {importlib.metadata.version('gguf')}: every GGUF tensor "
                 f"dequantised with gguf.quants.dequantize to fp32, own name mapping (Gemma norms 1+w -> w, "
                 f"Llama Q/K un-permuted), fp32 eager attention, one prompt per forward; max |logit diff| vs "
                 f"transformers' own GGUF loader {maxdiff:.3g}; tokens: {tok_src}; log-probs = log_softmax(fp32 "
                 f"logits) rounded to 6 decimals; llamacpp_argmax from llama_cpp.Llama(logits_all=True, n_ctx=512, "
                 f"n_threads=2) on the same ids; HF/llama.cpp argmax agreement {agree}; made by "
                 f"tests/reference/make_forward_fixtures.py {args.which}")
    doc = {"model": mfile, "model_sha256": sha256_file(path), "reference": reference,
           "hf_llamacpp_argmax_agreement": agree, "prompts": res}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out}: {len(res)} prompts")


if __name__ == "__main__":
    main()
