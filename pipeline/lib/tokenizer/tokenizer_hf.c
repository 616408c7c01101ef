/* tokenizer_hf: builds the tokenizer from a Hugging Face folder (tokenizer.json model BPE, tokenizer_config.json, config.json). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file_map.h"
#include "tokenizer/tokenizer_impl.h"

/* Reads and parses folder/name; *out NULL (and 0 returned) if the file is absent and optional. */
static int tok_hf_read_json(cJSON **out, const char *folder, const char *name, int required, lafn_err *err)
{
    *out = NULL;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", folder, name) >= (int)sizeof(path))
        return lafn_err_set(err, "%s/%s: path too long", folder, name);
    if (access(path, F_OK) != 0 && !required) return 0;
    char *buf = NULL;
    size_t size = 0;
    if (file_read_all(path, SIZE_MAX, &buf, &size, err) != 0)
        return lafn_err_wrap(err, "%s", required ? "required for the tokenizer" : "tokenizer file");
    *out = cJSON_ParseWithLength(buf, size);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        long off = at ? (long)(at - buf) : -1;
        free(buf);
        return lafn_err_set(err, "%s: not valid JSON (error near byte %ld)", path, off);
    }
    free(buf);
    return 0;
}

static const char *tok_hf_type(const cJSON *o)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

/* Vocabulary size: one past the largest id of model.vocab and added_tokens, which must be below
 * their number of entries (ids are dense), so a stray large id cannot make a huge table. */
static int tok_hf_count(const cJSON *vocab, const cJSON *added, size_t *n, size_t *bytes, lafn_err *err)
{
    long max_id = -1, n_entries = 0;
    const char *max_piece = "";
    *bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX)
            return lafn_err_set(err, "tokenizer.json: model.vocab['%s'] is not an id", e->string);
        if (e->valueint > max_id) {
            max_id = e->valueint;
            max_piece = e->string;
        }
        *bytes += strlen(e->string);
        n_entries++;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX || !cJSON_IsString(content))
            return lafn_err_set(err, "tokenizer.json: an added_tokens entry lacks a valid id or content");
        if (id->valueint > max_id) {
            max_id = id->valueint;
            max_piece = content->valuestring;
        }
        *bytes += strlen(content->valuestring);
        n_entries++;
    }
    if (max_id < 0) return lafn_err_set(err, "tokenizer.json: model.vocab is empty");
    if (max_id >= n_entries)
        return lafn_err_set(err, "tokenizer.json: id %ld of '%s' is not below the %ld entries of model.vocab and "
                            "added_tokens (expected ids 0 to %ld)", max_id, max_piece, n_entries, n_entries - 1);
    *n = (size_t)max_id + 1;
    return 0;
}

/* Pieces from model.vocab, then added_tokens (special -> control, others matched in text). */
static int tok_hf_vocab(tokenizer **out, tokenizer_kind kind, const cJSON *model, const cJSON *added,
                        lafn_err *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return lafn_err_set(err, "tokenizer.json: model.vocab missing or not an object");
    size_t n = 0, bytes = 0;
    if (tok_hf_count(vocab, added, &n, &bytes, err) != 0) return -1;
    if (tok_alloc(out, kind, n, bytes, 0, err) != 0) return -1;
    tokenizer *t = *out;
    memset(t->type, TOK_TYPE_UNUSED, n);
    /* pieces go in id order: collect pointers first */
    const char **piece = calloc(n, sizeof(*piece));
    if (!piece) return lafn_err_set(err, "tokenizer.json: out of memory for %zu pieces", n);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        piece[e->valueint] = e->string;
        t->type[e->valueint] = TOK_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(e, added) {
        int id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
        piece[id] = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        t->type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? TOK_TYPE_CONTROL
                                                                                  : TOK_TYPE_USER_DEFINED;
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) tok_vocab_set(t, i, piece[i] ? piece[i] : "", piece[i] ? strlen(piece[i]) : 0, &pos);
    free(piece);
    return tok_build_index(t, err);
}

static int tok_hf_merges(tokenizer *t, const cJSON *model, lafn_err *err)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return lafn_err_set(err, "tokenizer.json: model.merges missing or not an array");
    size_t n = (size_t)cJSON_GetArraySize(merges);
    if (tok_pairs_alloc(t, n, err) != 0) return -1;
    int32_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        if (cJSON_IsString(m)) {
            if (tok_bpe_add_merge(t, m->valuestring, strlen(m->valuestring), rank, "tokenizer.json", err) != 0)
                return -1;
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *l = m->child->valuestring, *r = m->child->next->valuestring;
            int32_t il = tok_find(t, l, strlen(l)), ir = tok_find(t, r, strlen(r));
            if (il >= 0 && ir >= 0) tok_pairs_add(t, il, ir, rank);
        } else {
            return lafn_err_set(err, "tokenizer.json: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", rank);
        }
        rank++;
    }
    return 0;
}

static int tok_hf_is_str(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

/* String pattern of a Replace/Split: {"String": s}; NULL if it is a regex or absent. */
static const char *tok_hf_pattern_string(const cJSON *o)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String");
    return cJSON_IsString(p) ? p->valuestring : NULL;
}

/* SentencePiece-style normalizers: Replace(" " -> "▁"), Prepend("▁"), Sequence. */
static int tok_hf_spm_normalizer(tokenizer *t, const cJSON *n, int *replaces, lafn_err *err)
{
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = tok_hf_type(n);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers"))
            if (tok_hf_spm_normalizer(t, e, replaces, err) != 0) return -1;
        return 0;
    }
    if (strcmp(ty, "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    const char *pat = tok_hf_pattern_string(n);
    if (strcmp(ty, "Replace") == 0 && pat && strcmp(pat, " ") == 0 && tok_hf_is_str(n, "content", "\xE2\x96\x81")) {
        *replaces = 1;
        return 0;
    }
    if (strcmp(ty, "Prepend") == 0 && tok_hf_is_str(n, "prepend", "\xE2\x96\x81")) {
        t->prefix = TOK_PREFIX_ALWAYS;
        return 0;
    }
    return lafn_err_set(err, "tokenizer.json: normalizer '%s' is not supported for a byte-fallback BPE "
                        "(supported: NFC, Replace ' '->'\xE2\x96\x81', Prepend '\xE2\x96\x81', Sequence)", ty);
}

/* SentencePiece-style pre-tokenizers: Metaspace, a no-op Split on " " after the Replace, Sequence. */
static int tok_hf_spm_pretok(tokenizer *t, const cJSON *p, int *replaces, lafn_err *err)
{
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = tok_hf_type(p);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
            if (tok_hf_spm_pretok(t, e, replaces, err) != 0) return -1;
        return 0;
    }
    const char *pat = tok_hf_pattern_string(p);
    if (strcmp(ty, "Split") == 0 && *replaces && pat && strcmp(pat, " ") == 0) return 0;
    if (strcmp(ty, "Metaspace") == 0 && tok_hf_is_str(p, "replacement", "\xE2\x96\x81")) {
        *replaces = 1;
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
        if (cJSON_IsString(scheme))
            t->prefix = strcmp(scheme->valuestring, "always") == 0  ? TOK_PREFIX_ALWAYS
                        : strcmp(scheme->valuestring, "first") == 0 ? TOK_PREFIX_FIRST
                                                                    : TOK_PREFIX_NONE;
        else if (cJSON_IsBool(add))
            t->prefix = cJSON_IsTrue(add) ? TOK_PREFIX_ALWAYS : TOK_PREFIX_NONE;
        t->prefix_if_absent = 1;
        t->spm_split = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "split"));
        return 0;
    }
    return lafn_err_set(err, "tokenizer.json: pre_tokenizer '%s' is not supported for a byte-fallback BPE "
                        "(supported: Metaspace, Split on ' ' after Replace, Sequence)", ty);
}

/* Byte-level BPE normalizers: none, NFC (as Qwen2), or a Sequence of NFC. */
static int tok_hf_bpe_normalizer(tokenizer *t, const cJSON *n, lafn_err *err)
{
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = tok_hf_type(n);
    if (strcmp(ty, "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers"))
            if (tok_hf_bpe_normalizer(t, e, err) != 0) return -1;
        return 0;
    }
    return lafn_err_set(err, "tokenizer.json: normalizer '%s' with a byte-level BPE is not supported "
                        "(supported: NFC, Sequence)", ty);
}

/* Byte-level pre-tokenizers: ByteLevel, Split(Regex, Isolated), Digits, Sequence. */
static int tok_hf_bpe_pretok(tokenizer *t, const cJSON *p, int *byte_level, lafn_err *err)
{
    const char *ty = tok_hf_type(p);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
            if (tok_hf_bpe_pretok(t, e, byte_level, err) != 0) return -1;
        return 0;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        *byte_level = 1;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space"))) {
            if (t->pre.n > 0)
                return lafn_err_set(err, "tokenizer.json: ByteLevel add_prefix_space after a Split is not supported");
            t->prefix = TOK_PREFIX_ALWAYS;
            t->prefix_if_absent = 1;
        }
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "use_regex"))) return 0;
        static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
        return tok_pretok_add(&t->pre, gpt2, sizeof(gpt2) - 1, err);
    }
    if (strcmp(ty, "Digits") == 0) {
        int single = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "individual_digits"));
        return tok_pretok_add(&t->pre, single ? "\\p{N}" : "\\p{N}+", single ? 5 : 6, err);
    }
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
    if (strcmp(ty, "Split") == 0 && cJSON_IsString(re) && tok_hf_is_str(p, "behavior", "Isolated") &&
        !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "invert")))
        return tok_pretok_add(&t->pre, re->valuestring, strlen(re->valuestring), err);
    return lafn_err_set(err, "tokenizer.json: pre_tokenizer '%s' is not supported for a byte-level BPE "
                        "(supported: ByteLevel, Split with a Regex and behavior Isolated, Digits, Sequence)", ty);
}

/* BOS from the post-processor template: the SpecialToken opening "single". */
static void tok_hf_template_bos(tokenizer *t, const cJSON *pp)
{
    if (!pp || cJSON_IsNull(pp)) return;
    const cJSON *e;
    if (strcmp(tok_hf_type(pp), "Sequence") == 0) {
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) tok_hf_template_bos(t, e);
        return;
    }
    if (strcmp(tok_hf_type(pp), "TemplateProcessing") != 0) return;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
    if (!cJSON_IsString(id)) return;
    int32_t bos = tok_find(t, id->valuestring, strlen(id->valuestring));
    if (bos < 0) return;
    t->bos = bos;
    t->add_bos = 1;
}

/* A token named in tokenizer_config.json: a string or {"content": string}. */
static int32_t tok_hf_named(const tokenizer *t, const cJSON *v)
{
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return -1;
    return tok_find(t, v->valuestring, strlen(v->valuestring));
}

/* A config.json id that names a special (added, special=true) token of this vocabulary:
 * a model config copied from elsewhere can name an id that is ordinary text here. */
static int tok_hf_special_id(const tokenizer *t, const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && (size_t)v->valuedouble < t->n_vocab &&
           t->type[v->valueint] == TOK_TYPE_CONTROL;
}

/* BOS/EOS: tokenizer_config.json first, config.json ids (of special tokens) as fallback. */
static int tok_hf_config(tokenizer *t, const char *folder, lafn_err *err)
{
    cJSON *tc = NULL, *mc = NULL;
    if (tok_hf_read_json(&tc, folder, "tokenizer_config.json", 0, err) != 0) return -1;
    if (tok_hf_read_json(&mc, folder, "config.json", 0, err) != 0) {
        cJSON_Delete(tc);
        return -1;
    }
    int32_t id;
    if ((id = tok_hf_named(t, cJSON_GetObjectItemCaseSensitive(tc, "bos_token"))) >= 0) t->bos = id;
    if ((id = tok_hf_named(t, cJSON_GetObjectItemCaseSensitive(tc, "eos_token"))) >= 0) t->eos = id;
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(tc, "add_bos_token");
    if (cJSON_IsBool(add)) t->add_bos = cJSON_IsTrue(add);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(mc, "bos_token_id");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(mc, "eos_token_id");
    if (t->bos < 0 && tok_hf_special_id(t, b)) t->bos = b->valueint;
    if (t->eos < 0 && tok_hf_special_id(t, e)) t->eos = e->valueint;
    cJSON_Delete(tc);
    cJSON_Delete(mc);
    return 0;
}

/* Kind-specific setup from normalizer and pre_tokenizer. */
static int tok_hf_setup(tokenizer *t, const cJSON *root, lafn_err *err)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (t->kind == TOKENIZER_KIND_SPM) {
        int replaces = 0;
        t->spm_merge = TOK_SPM_MERGE_RANKS;
        if (tok_hf_spm_normalizer(t, norm, &replaces, err) != 0 || tok_hf_spm_pretok(t, pre, &replaces, err) != 0)
            return -1;
        if (!replaces)
            return lafn_err_set(err, "tokenizer.json: byte-fallback BPE without a Replace or Metaspace turning "
                                "spaces into '\xE2\x96\x81' is not supported");
        tok_spm_byte_ids(t);
        return 0;
    }
    if (tok_hf_bpe_normalizer(t, norm, err) != 0) return -1;
    int byte_level = 0;
    if (pre && !cJSON_IsNull(pre) && tok_hf_bpe_pretok(t, pre, &byte_level, err) != 0) return -1;
    if (!byte_level)
        return lafn_err_set(err, "tokenizer.json: model BPE has neither byte_fallback nor a ByteLevel "
                            "pre_tokenizer; lafn supports only those two kinds");
    tok_bpe_init_bytes(t);
    return 0;
}

int tokenizer_from_hf_folder(tokenizer **out, const char *folder, lafn_err *err)
{
    *out = NULL;
    cJSON *root = NULL;
    tokenizer *t = NULL;
    if (tok_hf_read_json(&root, folder, "tokenizer.json", 1, err) != 0) return -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (strcmp(tok_hf_type(model), "BPE") != 0) {
        lafn_err_set(err, "model.type '%s' is not supported (lafn reads BPE tokenizers)", tok_hf_type(model));
        goto fail;
    }
    int fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    tokenizer_kind kind = fallback ? TOKENIZER_KIND_SPM : TOKENIZER_KIND_BPE;
    if (tok_hf_vocab(&t, kind, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err) != 0 ||
        tok_hf_merges(t, model, err) != 0 || tok_hf_setup(t, root, err) != 0)
        goto fail;
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    t->unk = tok_hf_named(t, cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
    tok_hf_template_bos(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (tok_hf_config(t, folder, err) != 0 || tok_collect_special(t, TOK_TYPE_USER_DEFINED, err) != 0) goto fail;
    cJSON_Delete(root);
    *out = t;
    return 0;
fail:
    lafn_err_wrap(err, "tokenizer_from_hf_folder(%s)", folder);
    tokenizer_free(t);
    cJSON_Delete(root);
    return -1;
}
