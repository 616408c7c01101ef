/* tokenizer_gguf: builds the tokenizer from GGUF metadata (tokenizer.ggml.*), SentencePiece "llama" or byte-level "gpt2". */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"

/* Optional u32 id: *out keeps its default when the key is absent; checked against the vocabulary. */
static int tok_gguf_id(const gguf_file *f, const char *key, size_t n_vocab, int32_t *out, lafn_err *err)
{
    if (!gguf_find_kv(f, key)) return 0;
    uint32_t v;
    if (gguf_get_u32(f, key, &v, err) != 0) return -1;
    if (v >= n_vocab)
        return lafn_err_set(err, "%s: metadata '%s' = %u, expected an id below the vocabulary size %zu",
                            gguf_path(f), key, v, n_vocab);
    *out = (int32_t)v;
    return 0;
}

static int tok_gguf_flag(const gguf_file *f, const char *key, int *out, lafn_err *err)
{
    if (!gguf_find_kv(f, key)) return 0;
    return gguf_get_bool(f, key, out, err);
}

/* A numeric array of exactly n 4-byte elements of the given type, copied out. */
static int tok_gguf_array4(const gguf_file *f, const char *key, gguf_type elem, size_t n, void *dst,
                           lafn_err *err)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type != elem || kv->n != n)
        return lafn_err_set(err, "%s: metadata '%s': expected an array of %zu elements of GGUF type %d, "
                            "found type %d / element type %d / %llu elements", gguf_path(f), key, n,
                            (int)elem, (int)kv->type, (int)kv->elem_type, (unsigned long long)kv->n);
    memcpy(dst, kv->data, n * 4);
    return 0;
}

/* llama.cpp treats pieces with these texts as end-of-generation control tokens
 * whatever their stored type, so it never matches them in text; we follow it. */
static const char *const tok_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
};

static void tok_gguf_mark_eog(tokenizer *t)
{
    for (size_t k = 0; k < sizeof(tok_eog_texts) / sizeof(tok_eog_texts[0]); k++) {
        int32_t id = tok_find(t, tok_eog_texts[k], strlen(tok_eog_texts[k]));
        if (id >= 0) t->type[id] = TOK_TYPE_CONTROL;
    }
}

/* Pieces, scores and types. */
static int tok_gguf_vocab(tokenizer **out, tokenizer_kind kind, const gguf_file *f, lafn_err *err)
{
    const gguf_kv *toks = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_TYPE_ARRAY || toks->elem_type != GGUF_TYPE_STRING)
        return lafn_err_set(err, "%s: metadata 'tokenizer.ggml.tokens' missing or not an array of strings",
                            gguf_path(f));
    size_t n = (size_t)toks->n, bytes = 0;
    const char *s;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        if (gguf_array_str(toks, i, &s, &len, err) != 0) return -1;
        bytes += len;
    }
    int with_scores = kind == TOKENIZER_KIND_SPM;
    if (tok_alloc(out, kind, n, bytes, with_scores, err) != 0) return lafn_err_wrap(err, "%s", gguf_path(f));
    tokenizer *t = *out;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_array_str(toks, i, &s, &len, err);
        tok_vocab_set(t, i, s, len, &pos);
    }
    if (with_scores && gguf_find_kv(f, "tokenizer.ggml.scores") &&
        tok_gguf_array4(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, n, t->score, err) != 0)
        return -1;
    if (gguf_find_kv(f, "tokenizer.ggml.token_type")) {
        int32_t *ty = malloc(n * sizeof(*ty));
        if (!ty) return lafn_err_set(err, "%s: out of memory for token types", gguf_path(f));
        int rc = tok_gguf_array4(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, n, ty, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (ty[i] < 0 || ty[i] > TOK_TYPE_BYTE)
                rc = lafn_err_set(err, "%s: tokenizer.ggml.token_type[%zu] = %d, expected 0..6",
                                  gguf_path(f), i, ty[i]);
            else t->type[i] = (uint8_t)ty[i];
        }
        free(ty);
        if (rc != 0) return -1;
    }
    return tok_build_index(t, err);
}

static int tok_gguf_merges(tokenizer *t, const gguf_file *f, lafn_err *err)
{
    const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING)
        return lafn_err_set(err, "%s: metadata 'tokenizer.ggml.merges' missing or not an array of strings "
                            "(required by the gpt2 tokenizer)", gguf_path(f));
    if (kv->n > INT32_MAX) return lafn_err_set(err, "%s: %llu merges is too many", gguf_path(f),
                                               (unsigned long long)kv->n);
    if (tok_pairs_alloc(t, (size_t)kv->n, err) != 0) return -1;
    for (uint64_t i = 0; i < kv->n; i++) {
        const char *s;
        size_t len;
        if (gguf_array_str(kv, i, &s, &len, err) != 0) return -1;
        if (tok_bpe_add_merge(t, s, len, (int32_t)i, gguf_path(f), err) != 0) return -1;
    }
    return 0;
}

/* Byte-level BPE: merges, byte map, pre-tokenizer family. */
static int tok_gguf_bpe(tokenizer *t, const gguf_file *f, lafn_err *err)
{
    const char *pre = "default";
    size_t pre_len = strlen(pre);
    if (gguf_find_kv(f, "tokenizer.ggml.pre") && gguf_get_str(f, "tokenizer.ggml.pre", &pre, &pre_len, err) != 0)
        return -1;
    if (tok_pretok_by_name(&t->pre, pre, pre_len, &t->ignore_merges, &t->add_bos, err) != 0)
        return lafn_err_wrap(err, "%s", gguf_path(f));
    if (tok_gguf_merges(t, f, err) != 0) return -1;
    tok_bpe_init_bytes(t);
    return 0;
}

int tokenizer_from_gguf(tokenizer **out, const gguf_file *f, lafn_err *err)
{
    *out = NULL;
    const char *model;
    size_t model_len;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, &model_len, err) != 0) return -1;
    tokenizer_kind kind;
    if (model_len == 5 && memcmp(model, "llama", 5) == 0) kind = TOKENIZER_KIND_SPM;
    else if (model_len == 4 && memcmp(model, "gpt2", 4) == 0) kind = TOKENIZER_KIND_BPE;
    else return lafn_err_set(err, "%s: tokenizer.ggml.model '%.*s' is not supported (expected 'llama' or 'gpt2')",
                             gguf_path(f), (int)(model_len < 100 ? model_len : 100), model);
    tokenizer *t = NULL;
    if (tok_gguf_vocab(&t, kind, f, err) != 0) goto fail;
    if (kind == TOKENIZER_KIND_SPM) {
        t->bos = 1; /* SentencePiece defaults, as llama.cpp assumes them */
        t->eos = 2;
        t->unk = 0;
        t->add_bos = 1;
        t->spm_merge = TOK_SPM_MERGE_SCORES;
        tok_spm_byte_ids(t);
    } else if (tok_gguf_bpe(t, f, err) != 0) {
        goto fail;
    }
    if (tok_gguf_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err) != 0 ||
        tok_gguf_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err) != 0 ||
        tok_gguf_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err) != 0 ||
        tok_gguf_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err) != 0)
        goto fail;
    int space_prefix = kind == TOKENIZER_KIND_SPM; /* llama.cpp's default for SentencePiece */
    if (kind == TOKENIZER_KIND_SPM && tok_gguf_flag(f, "tokenizer.ggml.add_space_prefix", &space_prefix, err) != 0)
        goto fail;
    t->prefix = space_prefix ? TOK_PREFIX_AFTER_SPECIAL : TOK_PREFIX_NONE;
    tok_gguf_mark_eog(t);
    if (tok_collect_special(t, TOK_TYPE_USER_DEFINED, err) != 0) goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return -1;
}
