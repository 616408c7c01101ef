"""torch_edit_speed: lafn's edit of one fact (same fp32 weights, sequences, neurons, loss and Adam steps) written in PyTorch as a researcher would — a padded batch, a forward hook adding the value-vector deltas on the down projection, the whole model run every step — and timed on the same cores."""
import argparse
import json
import math
import time

import gguf
import numpy as np
import torch
import torch.nn.functional as F


def load_gguf(path):
    """fp32 weights (name -> tensor, ggml's (out, in) as torch's) and the Gemma 3 config of a GGUF file."""
    reader = gguf.GGUFReader(path)
    field = lambda k: reader.fields[k].parts[reader.fields[k].data[0]][0]
    cfg = {
        "D": int(field("gemma3.embedding_length")), "L": int(field("gemma3.block_count")),
        "F": int(field("gemma3.feed_forward_length")), "H": int(field("gemma3.attention.head_count")),
        "K": int(field("gemma3.attention.head_count_kv")), "E": int(field("gemma3.attention.key_length")),
        "eps": float(field("gemma3.attention.layer_norm_rms_epsilon")),
        "rope_global": float(field("gemma3.rope.freq_base")), "rope_local": 10000.0,
        "window": int(field("gemma3.attention.sliding_window")), "pattern": 6,
    }
    weights = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        weights[t.name] = torch.from_numpy(w.reshape(tuple(int(s) for s in reversed(t.shape))).copy())
    return weights, cfg


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w  # GGUF gemma3 norms hold 1 + w


def rope(x, pos, base):
    """NeoX rotation of x (B, heads, T, E) at positions pos (T)."""
    E = x.shape[-1]
    inv = base ** (-torch.arange(0, E, 2, dtype=torch.float64) / E)
    ang = (pos[:, None].double() * inv[None, :]).float()
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : E // 2], x[..., E // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Mlp(torch.nn.Module):
    def __init__(self, w, l):
        super().__init__()
        self.gate = torch.nn.Linear(1, 1, bias=False)
        self.up = torch.nn.Linear(1, 1, bias=False)
        self.down_proj = torch.nn.Linear(1, 1, bias=False)
        self.gate.weight = torch.nn.Parameter(w[f"blk.{l}.ffn_gate.weight"], requires_grad=False)
        self.up.weight = torch.nn.Parameter(w[f"blk.{l}.ffn_up.weight"], requires_grad=False)
        self.down_proj.weight = torch.nn.Parameter(w[f"blk.{l}.ffn_down.weight"], requires_grad=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate(x), approximate="tanh") * self.up(x))


class Gemma3(torch.nn.Module):
    """Gemma 3 as llama.cpp and lafn read it from GGUF (tied output matrix)."""

    def __init__(self, w, cfg):
        super().__init__()
        self.w, self.c = w, cfg
        self.mlps = torch.nn.ModuleList([Mlp(w, l) for l in range(cfg["L"])])

    def hidden(self, ids, mask):
        """Final-norm output (B, T, D) of a right-padded batch ids (B, T); mask (B, T) marks real tokens."""
        w, c = self.w, self.c
        B, T = ids.shape
        x = w["token_embd.weight"][ids] * math.sqrt(c["D"])
        pos = torch.arange(T)
        causal = pos[None, :] <= pos[:, None]
        for l in range(c["L"]):
            p = f"blk.{l}."
            local = (l + 1) % c["pattern"] != 0
            allowed = causal & (pos[:, None] - pos[None, :] < c["window"]) if local else causal
            att_mask = allowed[None, None] & mask[:, None, None, :]
            h = rms_norm(x, w[p + "attn_norm.weight"], c["eps"])
            q = (h @ w[p + "attn_q.weight"].T).view(B, T, c["H"], c["E"]).transpose(1, 2)
            k = (h @ w[p + "attn_k.weight"].T).view(B, T, c["K"], c["E"]).transpose(1, 2)
            v = (h @ w[p + "attn_v.weight"].T).view(B, T, c["K"], c["E"]).transpose(1, 2)
            q = rms_norm(q, w[p + "attn_q_norm.weight"], c["eps"])
            k = rms_norm(k, w[p + "attn_k_norm.weight"], c["eps"])
            base = c["rope_local"] if local else c["rope_global"]
            q, k = rope(q, pos, base), rope(k, pos, base)
            k = k.repeat_interleave(c["H"] // c["K"], 1)
            v = v.repeat_interleave(c["H"] // c["K"], 1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=att_mask, scale=c["E"] ** -0.5)
            a = a.transpose(1, 2).reshape(B, T, c["H"] * c["E"]) @ w[p + "attn_output.weight"].T
            x = x + rms_norm(a, w[p + "post_attention_norm.weight"], c["eps"])
            m = self.mlps[l](rms_norm(x, w[p + "ffn_norm.weight"], c["eps"]))
            x = x + rms_norm(m, w[p + "post_ffw_norm.weight"], c["eps"])
        return rms_norm(x, w["output_norm.weight"], c["eps"])


def add_delta_hooks(model, neurons, delta):
    """Forward hooks on each edited layer's down projection: y += a[:, :, j_e] @ delta[e] for its entries."""
    handles = []
    for l in sorted({layer for layer, _ in neurons}):
        rows = [e for e, (layer, _) in enumerate(neurons) if layer == l]
        cols = torch.tensor([neurons[e][1] for e in rows])
        rows = torch.tensor(rows)
        hook = lambda mod, inp, out, rows=rows, cols=cols: out + inp[0][..., cols] @ delta[rows]
        handles.append(model.mlps[l].down_proj.register_forward_hook(hook))
    return handles


def build_batch(seqs):
    """The padded batch and the scored rows: (ids, mask, target rows (b, pos, token, weight, slot), neutral rows (b, pos, weight))."""
    T = max(len(s["ids"]) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    tgt, neu = [], []
    for b, s in enumerate(seqs):
        ids[b, : len(s["ids"])] = torch.tensor(s["ids"])
        mask[b, : len(s["ids"])] = True
        for k in range(s["n_target"]):
            tgt.append((b, s["n_prompt"] + k - 1, s["ids"][s["n_prompt"] + k], s["weight"] / s["n_target"],
                        s["slot_weight"] / s["n_target"], s["lang"]))
        if not s["n_target"]:
            neu.append((b, s["n_prompt"] - 1, s["weight"]))
    return ids, mask, tgt, neu


def edit(model, prob, steps, head):
    """Runs the edit; returns ((wall, CPU seconds), steps made, first loss, last loss, NLL per language, delta)."""
    hp, w_out = prob["hparams"], model.w["token_embd.weight"]
    ids, mask, tgt, neu = build_batch(prob["seqs"])
    tb, tp, tt = (torch.tensor([r[i] for r in tgt]) for i in range(3))
    tw = torch.tensor([r[3] for r in tgt], dtype=torch.float64)
    nb, npos = (torch.tensor([r[i] for r in neu]) for i in range(2))
    nw = torch.tensor([hp["kl_weight"] * r[2] for r in neu], dtype=torch.float64)
    n_langs = prob["n_langs"]

    def logits_at(b, p):
        hid = model.hidden(ids, mask)
        if head == "all":  # the LM head over every position of the padded batch, as a model's .logits gives
            return (hid @ w_out.T)[b, p]
        return hid[b, p] @ w_out.T  # the LM head only where the loss looks

    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        logp0 = torch.log_softmax(logits_at(nb, npos), -1)
    delta = torch.zeros(len(prob["neurons"]), model.c["D"], requires_grad=True)
    handles = add_delta_hooks(model, prob["neurons"], delta)
    opt = torch.optim.Adam([delta], lr=hp["lr"], betas=(0.9, 0.999), eps=1e-8)
    first = last = None
    made = 0
    for t in range(steps + 1):
        logits = logits_at(torch.cat([tb, nb]), torch.cat([tp, npos]))
        logp = torch.log_softmax(logits, -1)
        lp_t = logp[: len(tgt)].gather(1, tt[:, None])[:, 0].double()
        nll_term = -(tw * lp_t).sum()
        kl = (logp0.exp() * (logp0 - logp[len(tgt):])).sum(-1).double()
        loss = nll_term + (nw * kl).sum() + hp["l2"] * delta.double().pow(2).sum()
        slot = [0.0] * n_langs
        for r, v in zip(tgt, lp_t.tolist()):
            slot[r[5]] -= r[4] * v
        last = loss.item()
        first = last if first is None else first
        if all(v < hp["stop_nll"] for v in slot) or t == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        made += 1
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    for h in handles:
        h.remove()
    return seconds, made, first, last, slot, delta.detach()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("problem", help="the JSON bench_edit writes (DUMP)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="Adam steps (default: the problem's edit.steps)")
    ap.add_argument("--head", choices=["scored", "all"], default="scored",
                    help="LM head only at the scored positions (default) or at every position")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    prob = json.load(open(a.problem))
    steps = a.steps if a.steps is not None else prob["hparams"]["steps"]
    weights, cfg = load_gguf(a.model)
    model = Gemma3(weights, cfg)
    secs, made, first, last, slot, delta = edit(model, prob, steps, a.head)
    lafn = prob["lafn"]
    ref = torch.tensor(lafn["delta"]).view_as(delta)
    print(f"torch threads={a.threads} head={a.head} steps={made} seconds={secs[0]:.3f} cpu_s={secs[1]:.3f} "
          f"loss_first={first:.7f} "
          f"(lafn {lafn['loss_first']:.7f}) loss_last={last:.7f} (lafn {lafn['loss_last']:.7f} after {lafn['steps']} steps) "
          f"mean_nll={sum(slot) / len(slot):.5f} (lafn {sum(lafn['nll_after']) / len(slot):.5f}) "
          f"delta_max_diff={float((delta - ref).abs().max()):.3g} (max |delta| {float(ref.abs().max()):.3g})")


if __name__ == "__main__":
    main()
