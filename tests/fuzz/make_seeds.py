#!/usr/bin/env python3
"""make_seeds.py: writes the fuzz seed corpora (tests/fuzz/corpus/HARNESS/) from the repository's real files.

Usage: tests/fuzz/make_seeds.py [RUN_DIR]
  RUN_DIR: a finished run (locate.h5, edit.h5) whose files are cut down to two facts
  for the fuzz_locate_h5 / fuzz_edit_h5 seeds (needs h5py); without it those seeds are left alone.
Every seed stays small (a few KB; the HDF5 seeds tens of KB): a seed is a starting point, not a test set.
"""
import json
import os
import struct
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(REPO, "tests", "fuzz", "corpus")
MZSRE = os.path.join(REPO, "..", "shared", "data", "mzsre")


def write(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


# ---- GGUF: the tiny Gemma 3 fixture's metadata (tokenizer included) over a cut-down tensor table ----

def gguf_read(path):
    """Returns (version, raw metadata bytes, n_kv, [(name, ne, type, bytes)])."""
    b = open(path, "rb").read()
    _, ver, nt, nkv = struct.unpack_from("<4sIQQ", b, 0)
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, p):
        if t == 8:
            return p + 8 + struct.unpack_from("<Q", b, p)[0]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, p)
            p += 12
            for _ in range(n):
                p = skip(et, p)
            return p
        return p + size[t]

    p = 24
    for _ in range(nkv):
        p += 8 + struct.unpack_from("<Q", b, p)[0]
        t, = struct.unpack_from("<I", b, p)
        p = skip(t, p + 4)
    meta = b[24:p]
    tensors = []
    for _ in range(nt):
        n, = struct.unpack_from("<Q", b, p)
        name = b[p + 8:p + 8 + n]
        p += 8 + n
        nd, = struct.unpack_from("<I", b, p)
        ne = struct.unpack_from("<%dQ" % nd, b, p + 4)
        p += 4 + 8 * nd
        ty, off = struct.unpack_from("<IQ", b, p)
        p += 12
        tensors.append((name, ne, ty, off))
    data0 = (p + 31) // 32 * 32
    elem = {0: 4, 1: 2}
    out = []
    for name, ne, ty, off in tensors:
        n = 1
        for x in ne:
            n *= x
        out.append((name, ne, ty, b[data0 + off:data0 + off + n * elem[ty]]))
    return ver, meta, nkv, out


def gguf_write(ver, meta, nkv, tensors):
    head = struct.pack("<4sIQQ", b"GGUF", ver, len(tensors), nkv) + meta
    table, data = b"", b""
    for name, ne, ty, raw in tensors:
        table += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        table += struct.pack("<IQ", ty, len(data))
        data += raw + b"\0" * ((-len(raw)) % 32)
    out = head + table
    return out + b"\0" * ((-len(out)) % 32) + data


def gguf_seeds():
    ver, meta, nkv, tensors = gguf_read(os.path.join(REPO, "tests", "fixtures", "models", "tiny-gemma3.gguf"))
    by = {t[0]: t for t in tensors}
    norm = by[b"output_norm.weight"]
    embd = by[b"token_embd.weight"]
    small_embd = (embd[0], (embd[1][0], 4), embd[2], embd[3][:embd[1][0] * 4 * 2])
    write("fuzz_gguf", "tiny-gemma3-cut.gguf", gguf_write(ver, meta, nkv, [norm, small_embd]))
    write("fuzz_gguf", "tiny-gemma3-header.gguf", gguf_write(ver, meta, nkv, [norm]))
    write("fuzz_gguf", "empty-v3.gguf", struct.pack("<4sIQQ", b"GGUF", 3, 0, 0))


# ---- safetensors: the tiny models' files ----

def safetensors_seeds():
    hf = os.path.join(REPO, "tests", "fixtures", "hf")
    for model, name in (("tiny-llama3", "model-00002-of-00002.safetensors"),
                        ("tiny-llama3", "model-00001-of-00002.safetensors")):
        write("fuzz_safetensors", model + "-" + name, open(os.path.join(hf, model, name), "rb").read())
    header = json.dumps({"__metadata__": {"format": "pt"}, "x": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
                         "y": {"dtype": "F16", "shape": [], "data_offsets": [8, 10]}}).encode()
    write("fuzz_safetensors", "bf16-f16.safetensors", struct.pack("<Q", len(header)) + header + bytes(range(10)))


# ---- tokenizer.json: the tiny byte-level BPE and a SentencePiece-style one, with their config files ----

def tokenizer_seeds():
    hf = os.path.join(REPO, "tests", "fixtures", "hf", "tiny-gemma3")
    tok = open(os.path.join(hf, "tokenizer.json"), "rb").read()
    cfg = open(os.path.join(hf, "config.json"), "rb").read()
    write("fuzz_tokenizer_json", "tiny-bpe", tok)
    write("fuzz_tokenizer_json", "tiny-bpe-configs", tok + b"\0" + json.dumps(
        {"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": True}).encode() + b"\0" + cfg)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for i in range(256):
        vocab["<0x%02X>" % i] = len(vocab)
    for piece in ("▁", "T", "h", "e", "▁T", "he", "▁The", "塔"):
        vocab[piece] = len(vocab)
    spm = {"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                                              {"id": 1, "content": "<s>", "special": True},
                                              {"id": 2, "content": "</s>", "special": True}],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                              {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
           "pre_tokenizer": None, "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}]},
           "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>", "vocab": vocab,
                     "merges": ["▁ T", "h e", "▁T he"]}}
    write("fuzz_tokenizer_json", "tiny-spm", json.dumps(spm, ensure_ascii=False))


# ---- facts: the demo set, MzsRE records, paraphrase lines, and the malformed cases of the tests ----

def facts_seeds():
    lines = [l for l in open(os.path.join(REPO, "conf", "data", "demo_facts.jsonl"), encoding="utf-8")]
    write("fuzz_facts_jsonl", "demo-2", "".join(lines[:3]))
    write("fuzz_facts_jsonl", "bad-mixed", '# c\n\n{"id": "a", "langs": {"en": {"src": "s", "alt": "x"}}}\n'
          '{"id": "a", "langs": {"en": {"src": "s"}}}\n{"id": 3}\n[1,2]\n{"id": "b", "langs": {"xx": {}}}\n')
    if os.path.isdir(MZSRE):
        zh = json.load(open(os.path.join(MZSRE, "mzsre_dev500_enzh.json"), encoding="utf-8"))[:2]
        de = json.load(open(os.path.join(MZSRE, "mzsre_dev500_ende.json"), encoding="utf-8"))[:2]
        write("fuzz_facts_mzsre", "dev-2-zh", json.dumps(zh, ensure_ascii=False))
        write("fuzz_facts_mzsre", "dev-2-zh-de", json.dumps(zh, ensure_ascii=False) + "\0" + json.dumps(de, ensure_ascii=False))
        de[1]["en"]["src"] = "another question?"
        write("fuzz_facts_mzsre", "bad-en-differs", json.dumps(zh, ensure_ascii=False) + "\0" + json.dumps(de, ensure_ascii=False))
    write("fuzz_facts_mzsre", "bad-shapes", '[{"en": {"src": 1}}, [], {"zh": {}}, {"en": {"src": "q", "alt": "a"}, "zh": {"src": "q", "alt": "a", "portability": {}}}]')
    write("fuzz_facts_paraphrase", "by-id-and-index",
          '{"id": "f0", "lang": "en", "paraphrases": ["The Eiffel Tower stands in", "Where is the Eiffel Tower?"]}\n'
          '{"index": 1, "lang": "en", "paraphrases": ["Mount Fuji lies in"]}\n'
          '{"id": "f0", "lang": "zh", "paraphrases": ["埃菲尔铁塔在"]}\n')
    write("fuzz_facts_paraphrase", "bad-lines",
          '{"id": "f0", "lang": "en", "paraphrases": ["a"]}\n{"id": "f0", "lang": "en", "paraphrases": ["b"]}\n'
          '{"id": "zz", "lang": "en", "paraphrases": ["c"]}\n{"index": -1, "lang": "qq", "paraphrases": [""]}\nnot json\n')


# ---- pipeline files and overrides ----

def config_seeds():
    for name in ("demo.cfg", "mzsre.cfg"):
        write("fuzz_config", name, open(os.path.join(REPO, "conf", name), "rb").read())
    demo = open(os.path.join(REPO, "conf", "demo.cfg"), "rb").read()
    write("fuzz_config", "demo-overrides", demo + b"\0locate.threshold=0.3\0data.fact_range=[0, 5]\0"
          b"languages.codes=en,zh\0locate.min_neurons=40\0locate.max_neurons=40\0edit.trigger=key")
    write("fuzz_config", "bad-keys", b"locate = { threshold = \"x\"; tresh = 1; };\nfoo = 3;\n\0nope\0locate.top_k=-1")


# ---- HDF5 stage files: a real run's locate.h5 / edit.h5 cut down to two facts ----

def h5_cut(src, dst, keep, drop_prefixes, limit):
    """Copies src's root attributes and its datasets, rows of the facts at positions keep only
    (CSR groups: their rows' first limit[group] values, if listed), leaving out datasets under drop_prefixes."""
    import h5py
    import numpy as np
    # The format lafn writes (h5out: libver bounds v18..latest, so metadata carries checksums).
    with h5py.File(src, "r") as f, h5py.File(dst, "w", libver=("v108", "latest")) as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        n = f["facts"].shape[0]
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            if any(name.startswith(p) for p in drop_prefixes) or name.endswith("/values"):
                continue
            ds = f[name]
            if name.endswith("/offsets"):
                base = name[:-len("offsets")]
                off, vals = ds[()], f[base + "values"][()]
                cap = limit.get(base[:-1], None)
                parts = [vals[off[i]:off[i + 1]][:cap] for i in keep]
                g.create_dataset(base + "offsets", data=np.cumsum([0] + [len(p) for p in parts]).astype(off.dtype))
                g.create_dataset(base + "values", data=np.concatenate(parts).astype(vals.dtype))
            else:
                data = ds[()][keep] if ds.shape and ds.shape[0] == n else ds[()]
                if name == "key_info":  # column 0 counts the keys kept
                    data[:, 0] = np.minimum(data[:, 0], limit["key/values"] // limit["key/center"])
                g.create_dataset(name, data=data)
            for k, v in ds.attrs.items():
                g[name].attrs[k] = v


def h5_seeds(run):
    import h5py
    with h5py.File(os.path.join(run, "edit.h5"), "r") as f:
        off, status = f["delta/values/offsets"][()], f["status"][()][:, 0]
        koff = f["key/values/offsets"][()]
        cost = [(off[i + 1] - off[i]) + (koff[i + 1] - koff[i]) for i in range(len(status))]
        edited = [i for i in range(len(status)) if status[i] != 1]
        keep = sorted({min(edited, key=lambda i: cost[i]), min(range(len(status)), key=lambda i: cost[i])})
        d = f["key/center/values"].shape[0] // max(1, sum(1 for i in range(len(status)) if f["key_info"][i, 0] > 0))
    tmp = os.path.join(CORPUS, "tmp.h5")
    h5_cut(os.path.join(run, "locate.h5"), tmp, keep, ("dset/", "global/", "lafn/", "specific/"), {})
    write("fuzz_locate_h5", "locate-cut.h5", open(tmp, "rb").read())
    # Two edited neurons and one key per fact (D floats each), so the seed stays small.
    limit = {g: 2 for g in ("gate/layer", "gate/neuron", "gate/sign", "gate/threshold", "delta/layer", "delta/neuron")}
    limit.update({"delta/values": 2 * d, "key/values": d, "key/center": d})
    h5_cut(os.path.join(run, "edit.h5"), tmp, keep, (), limit)
    write("fuzz_edit_h5", "edit-cut.h5", open(tmp, "rb").read())
    os.remove(tmp)


if __name__ == "__main__":
    gguf_seeds()
    safetensors_seeds()
    tokenizer_seeds()
    facts_seeds()
    config_seeds()
    if len(sys.argv) > 1:
        h5_seeds(sys.argv[1])
