#!/usr/bin/env python3
"""Reference token ids for tests/test_tokenizer_mzsre.c, from two independent tokenizers.

For every string of the MzsRE development files (src, rephrase, alt, loc,
loc_ans, portability New Question / New Answer; the en side, identical in all
files, is taken once from the first file), tokenizes with
  - llama.cpp: llama_cpp.Llama(model, vocab_only=True).tokenize(text, add_bos=True, special=False)
  - Hugging Face: AutoTokenizer.from_pretrained(models/, gguf_file=model)(text).input_ids
and stores, per string, the token count and the 64-bit FNV-1a hash of the
llama.cpp ids (little-endian int32, BOS included). Strings where HF differs are
listed with HF's count and hash. The data itself is not stored: a string is
named by (file, language, field, record index). Full ids are kept for the first
FULL_IDS strings, for debugging.

Edge cases (tests/test_tokenizer.c): a list of short texts (some invalid UTF-8)
with llama.cpp's ids for both GGUF models (edge_cases.json), and three tiny
tokenizer.json folders trained here with HF `tokenizers` on a made-up
multilingual corpus (hf_spm: byte-fallback BPE with Prepend/Replace; hf_bytelevel:
Digits + ByteLevel; hf_split: NFC + Llama-3-style Split regex + ByteLevel, ignore_merges)
with HF's ids and decoded text for the same cases; and tiny GGUF vocabularies
(tiny_bpe_<pre>.gguf for each supported tokenizer.ggml.pre, trained without a
pre-tokenizer so that the regex decides the split; tiny_spm_prefix.gguf with
add_space_prefix) with llama.cpp's ids for the edge cases and the corpus.

Usage: python3 tests/reference/make_tokenizer_fixtures.py [--mzsre DIR] [--only MODEL|edge]
Writes tests/fixtures/tokenizer/{mzsre_gemma3.json, mzsre_smollm2.json,
edge_cases.json, hf_spm/, hf_bytelevel/, hf_split/, tiny_*.gguf}.
"""
import argparse
import json
import os
import struct
import sys
import unicodedata

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIELDS = [("src",), ("rephrase",), ("alt",), ("loc",), ("loc_ans",),
          ("portability", "New Question"), ("portability", "New Answer")]
FULL_IDS = 300
MODELS = [
    # (model file, fixture name, languages: None = all, else a set)
    ("gemma-3-270m-q4_k_m.gguf", "mzsre_gemma3.json", None),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "mzsre_smollm2.json", None),
]


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for b in struct.pack("<%di" % len(ids), *ids):
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def field_name(path):
    return ".".join(path)


def collect(mzsre_dir, langs):
    """[(file, lang, field, [strings per record])] in a fixed order."""
    files = sorted(f for f in os.listdir(mzsre_dir) if f.startswith("mzsre_dev500_en") and f.endswith(".json"))
    sets = []
    for fi, name in enumerate(files):
        with open(os.path.join(mzsre_dir, name), encoding="utf-8") as fh:
            records = json.load(fh)
        other = name[len("mzsre_dev500_en"):-len(".json")]
        sides = (["en"] if fi == 0 else []) + [other]
        for lang in sides:
            if langs is not None and lang not in langs:
                continue
            for path in FIELDS:
                strings = []
                for r in records:
                    v = r[lang]
                    for k in path:
                        v = v[k]
                    strings.append(v)
                sets.append((name, lang, field_name(path), strings))
    return sets


def make(model, out_name, langs, mzsre_dir):
    import llama_cpp
    import transformers
    from transformers import AutoTokenizer

    model_path = os.path.join(REPO, "models", model)
    ll = llama_cpp.Llama(model_path, vocab_only=True, verbose=False)
    hf = AutoTokenizer.from_pretrained(os.path.join(REPO, "models"), gguf_file=model)
    sets = collect(mzsre_dir, langs)
    out_sets, hf_diff, full = [], [], []
    n_total = n_same = 0
    for name, lang, field, strings in sets:
        counts, hashes = [], []
        for i, s in enumerate(strings):
            ids_ll = ll.tokenize(s.encode("utf-8"), add_bos=True, special=False)
            ids_hf = hf(s)["input_ids"]
            counts.append(len(ids_ll))
            hashes.append("%016x" % fnv1a64(ids_ll))
            n_total += 1
            if ids_hf == ids_ll:
                n_same += 1
            else:
                hf_diff.append({"file": name, "lang": lang, "field": field, "index": i,
                                "n": len(ids_hf), "h": "%016x" % fnv1a64(ids_hf)})
            if len(full) < FULL_IDS:
                full.append({"file": name, "lang": lang, "field": field, "index": i, "ids": ids_ll})
        out_sets.append({"file": name, "lang": lang, "field": field, "n": counts, "h": "".join(hashes)})
    doc = {
        "model": model,
        "reference": "llama.cpp via llama-cpp-python %s: tokenize(text, add_bos=True, special=False)"
                     % llama_cpp.__version__,
        "second_reference": "transformers %s AutoTokenizer(gguf_file)" % transformers.__version__,
        "hash": "FNV-1a 64 of the ids as little-endian int32, BOS included",
        "n_strings": n_total,
        "n_hf_identical": n_same,
        "sets": out_sets,
        "hf_diff": hf_diff,
        "full": full,
    }
    path = os.path.join(REPO, "tests", "fixtures", "tokenizer", out_name)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    os.replace(path + ".tmp", path)
    print("%s: %d strings, HF identical to llama.cpp on %d, written %s" % (model, n_total, n_same, path))


EDGE_CASES = [
    ("empty", b""),
    ("one space", b" "),
    ("three spaces", b"   "),
    ("newline", b"\n"),
    ("two newlines", b"\n\n"),
    ("crlf", b"a\r\nb"),
    ("tab", b"\t"),
    ("space newline space", b" \n "),
    ("multiple spaces", b"  multiple   spaces  here    "),
    ("emoji", "😀".encode()),
    ("emoji zwj family", "👨\u200d👩\u200d👧 family".encode()),
    ("flag", "🇫🇷 France".encode()),
    ("invalid ff", b"\xff"),
    ("truncated 2-byte", b"abc\xc3"),
    ("truncated 3-byte", b"x\xe2\x96"),
    ("lone continuation", b"a\x80b"),
    ("surrogate", b"\xed\xa0\x80z"),
    ("overlong", b"\xc0\xaf"),
    ("thai", "ประเทศไทยเป็นประเทศในเอเชียตะวันออกเฉียงใต้".encode()),
    ("chinese", "中华人民共和国成立于1949年10月1日".encode()),
    ("japanese", "東京は日本の首都です。".encode()),
    ("punctuation and numbers", b"Hello, world! It's 3.14159 -- ok? 1234567"),
    ("contractions", b"I'LL we've they'd SHE'S"),
    ("html and eos text", b"<b>tag</b> and </s> <bos>"),
    ("chat markers", b"<|im_start|>user<|im_end|>"),
    ("lower one eighth block", "▁literal ▁▁ block".encode()),
    ("combining accent", "e\u0301te\u0301 l'été Ça".encode()),
    ("nbsp and thin space", "a\u00a0b\u2009c\u3000d".encode()),
    ("cyrillic", "Москва — столица России.".encode()),
    ("vietnamese", "Việt Nam nằm ở Đông Nam Á.".encode()),
    ("long digits", b"0123456789012345678901234567890"),
    ("trailing space", b"end "),
    ("not NFC", "Vie\u0323\u0302t Nam \u212b \u1100\u1161\u11a8 a\u0302\u0323".encode()),
]

NFC_CASES = ["e\u0301", "Vie\u0323\u0302t", "\u212b", "\u1100\u1161\u11a8", "a\u0302\u0323", "a\u0323\u0302",
             "\u0958", "\u1f82", "\u0344", "A\u030a\u0301", "\u0e33", "\uac00\u11a8", "plain ascii", "\u00e9t\u00e9",
             "Sự am sát thực vật", "\u0f73", "q\u0307\u0323"]

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 12:30 and we've got 3.5 hours left.",
    "Paris is the capital of France; Berlin is the capital of Germany. Who founded Rome?",
    "Le château d'été se trouve près de la rivière. Ça va très bien, merci !",
    "Der Bär läuft über die Straße und isst Äpfel. Größe: 42 cm.",
    "Москва — столица России. В городе живут миллионы людей.",
    "東京は日本の首都です。京都は古い都です。",
    "中国的首都是北京。上海是一个大城市。",
    "ประเทศไทยมีกรุงเทพเป็นเมืองหลวง",
    "Việt Nam có thủ đô là Hà Nội. Thành phố Hồ Chí Minh rất lớn.",
    "İstanbul Türkiye'nin en büyük şehridir. Ankara başkenttir.",
    "def main():\n    return 0\n\n# comment\tTab",
    "    indented    text with   many spaces   ",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14159",
]


def gguf_edge_ids(model):
    import llama_cpp
    ll = llama_cpp.Llama(os.path.join(REPO, "models", model), vocab_only=True, verbose=False)
    out = []
    for _, text in EDGE_CASES:
        try:
            out.append(ll.tokenize(text, add_bos=True, special=False))
        except Exception:  # llama.cpp may refuse invalid UTF-8: no reference then
            out.append(None)
    return out


def tiny_spm():
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    doc = json.loads(tok.to_str())
    vocab = doc["model"]["vocab"]
    for b in range(256):  # byte-fallback pieces live in the model vocabulary, as in Llama/Gemma files
        vocab.setdefault("<0x%02X>" % b, len(vocab))
    tok = Tokenizer.from_str(json.dumps(doc))
    tok.add_tokens(["<tag>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True}


def tiny_bytelevel(split):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(ignore_merges=split))
    if split:
        tok.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json
        llama3 = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(llama3), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens(["<tag>"])
    return tok, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": split}


TINY_BPE_PRES = ["default", "gpt-2", "smollm", "llama-bpe", "qwen2"]


def tiny_unsplit_bytelevel():
    """Byte-level BPE trained without any pre-tokenizer regex, so that its merges
    cross word, digit and whitespace boundaries and the pre-tokenizer decides."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.add_tokens(["<tag>"])
    return tok


def vocab_of(tok):
    doc = json.loads(tok.to_str())
    vocab = dict(doc["model"]["vocab"])
    kinds = {}
    for a in doc["added_tokens"]:
        vocab[a["content"]] = a["id"]
        kinds[a["id"]] = 3 if a["special"] else 4  # GGUF control / user-defined
    pieces = [""] * (max(vocab.values()) + 1)
    for k, v in vocab.items():
        pieces[v] = k
    merges = [" ".join(m) if isinstance(m, list) else m for m in doc["model"]["merges"]]
    return pieces, [kinds.get(i, 1) for i in range(len(pieces))], merges


def write_tiny_gguf(path, model, pre, pieces, types, merges=None, scores=None, add_bos=False, space_prefix=False):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64)  # llama.cpp wants the hyper-parameters even for vocab_only
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(8)
    w.add_vocab_size(len(pieces))
    w.add_tokenizer_model(model)
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(pieces)
    w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    if scores is not None:
        w.add_token_scores(scores)
        w.add_add_space_prefix(space_prefix)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_tiny_ggufs():
    """Tiny GGUF vocabularies for every supported pre-tokenizer, and a SentencePiece
    one with add_space_prefix; returns {file name: llama.cpp ids per text}."""
    import llama_cpp
    texts = [t for _, t in EDGE_CASES] + [c.encode() for c in CORPUS]
    folder = os.path.join(REPO, "tests", "fixtures", "tokenizer")
    pieces, types, merges = vocab_of(tiny_unsplit_bytelevel())
    files = []
    for pre in TINY_BPE_PRES:
        name = "tiny_bpe_%s.gguf" % pre
        write_tiny_gguf(os.path.join(folder, name), "gpt2", pre, pieces, types, merges=merges,
                        add_bos=pre == "llama-bpe")
        files.append(name)
    spm, _ = tiny_spm()
    sp_pieces, sp_types, _ = vocab_of(spm)
    sp_types = [6 if p.startswith("<0x") and len(p) == 6 else t for p, t in zip(sp_pieces, sp_types)]
    sp_types[0] = 2  # <unk>
    scores = [-float(i) for i in range(len(sp_pieces))]  # earlier (more frequent) merges score higher
    write_tiny_gguf(os.path.join(folder, "tiny_spm_prefix.gguf"), "llama", None, sp_pieces, sp_types,
                    scores=scores, add_bos=True, space_prefix=True)
    files.append("tiny_spm_prefix.gguf")
    out = {}
    for name in files:
        ll = llama_cpp.Llama(os.path.join(folder, name), vocab_only=True, verbose=False)
        ids = []
        for t in texts:
            try:
                ids.append(ll.tokenize(t, add_bos=True, special=False))
            except Exception:
                ids.append(None)
        out[name] = ids
    return out


def make_edge():
    import tokenizers
    doc = {"cases": [{"name": n, "hex": t.hex()} for n, t in EDGE_CASES], "gguf": {}, "hf": {},
           "reference": "llama.cpp (llama-cpp-python) for the GGUF models; HF tokenizers %s for the folders"
                        % tokenizers.__version__}
    for model, _, _ in MODELS:
        doc["gguf"][model] = gguf_edge_ids(model)
    for name, (tok, config) in [("hf_spm", tiny_spm()), ("hf_bytelevel", tiny_bytelevel(False)),
                                ("hf_split", tiny_bytelevel(True))]:
        folder = os.path.join(REPO, "tests", "fixtures", "tokenizer", name)
        os.makedirs(folder, exist_ok=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as fh:
            json.dump(config, fh, indent=1)
        bos = tok.token_to_id(config["bos_token"])
        tok.encode_special_tokens = True  # special tokens are not parsed from text (lafn's contract)
        ids, decoded = [], []
        for _, text in EDGE_CASES + [(None, c.encode()) for c in CORPUS]:
            try:
                s = text.decode("utf-8")
            except UnicodeDecodeError:  # HF takes str only: no reference for invalid UTF-8
                ids.append(None)
                decoded.append(None)
                continue
            e = tok.encode(s).ids
            if config["add_bos_token"] and (not e or e[0] != bos):
                e = [bos] + e
            ids.append(e)
            decoded.append(tok.decode(e, skip_special_tokens=True).encode().hex())
        doc["hf"][name] = {"ids": ids, "decoded_hex": decoded}
    doc["corpus_hex"] = [c.encode().hex() for c in CORPUS]
    doc["gguf_tiny"] = make_tiny_ggufs()
    doc["nfc"] = [[c.encode().hex(), unicodedata.normalize("NFC", c).encode().hex()] for c in NFC_CASES]
    path = os.path.join(REPO, "tests", "fixtures", "tokenizer", "edge_cases.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    print("written", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mzsre", default=os.environ.get("LAFN_MZSRE",
                                                      os.path.join(os.path.dirname(REPO), "shared", "data", "mzsre")))
    ap.add_argument("--only", help="model file name to regenerate (default: all)")
    args = ap.parse_args()
    if not os.path.isdir(args.mzsre):
        sys.exit("MzsRE folder not found: %s (set --mzsre or LAFN_MZSRE)" % args.mzsre)
    for model, out_name, langs in MODELS:
        if args.only and args.only != model:
            continue
        make(model, out_name, langs, args.mzsre)
    if not args.only or args.only == "edge":
        make_edge()


if __name__ == "__main__":
    main()
