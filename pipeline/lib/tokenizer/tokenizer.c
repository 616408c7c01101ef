/* tokenizer: vocabulary tables, special-token splitting, encode/decode dispatch for SPM and byte-level BPE. */
#define _GNU_SOURCE /* memmem, qsort_r */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"
#include "base/utf8.h"

static uint64_t tok_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static size_t tok_pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int tok_alloc(tokenizer **out, tokenizer_kind kind, size_t n, size_t text_bytes, int with_scores,
              lafn_err *err)
{
    *out = NULL;
    if (n == 0 || n > INT32_MAX) return lafn_err_set(err, "tokenizer: vocabulary size %zu out of range", n);
    tokenizer *t = calloc(1, sizeof(*t));
    if (!t) return lafn_err_set(err, "tokenizer: out of memory");
    t->kind = kind;
    t->n_vocab = n;
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int c = 0; c < 512; c++) t->byte_of_cp[c] = -1;
    t->text = malloc(text_bytes + n);
    t->off = malloc(n * sizeof(*t->off));
    t->len = malloc(n * sizeof(*t->len));
    t->type = malloc(n);
    t->score = with_scores ? calloc(n, sizeof(*t->score)) : NULL;
    if (!t->text || !t->off || !t->len || !t->type || (with_scores && !t->score)) {
        tokenizer_free(t);
        return lafn_err_set(err, "tokenizer: out of memory for %zu pieces", n);
    }
    memset(t->type, TOK_TYPE_NORMAL, n);
    *out = t;
    return 0;
}

void tok_vocab_set(tokenizer *t, size_t i, const char *s, size_t len, size_t *pos)
{
    memcpy(t->text + *pos, s, len);
    t->text[*pos + len] = '\0';
    t->off[i] = *pos;
    t->len[i] = (uint32_t)len;
    *pos += len + 1;
}

int tok_build_index(tokenizer *t, lafn_err *err)
{
    size_t cap = tok_pow2_at_least(2 * t->n_vocab);
    t->slot = malloc(cap * sizeof(*t->slot));
    if (!t->slot) return lafn_err_set(err, "tokenizer: out of memory for the piece index");
    memset(t->slot, 0xff, cap * sizeof(*t->slot));
    t->slot_mask = cap - 1;
    for (size_t i = 0; i < t->n_vocab; i++) {
        const char *s = t->text + t->off[i];
        size_t h = (size_t)tok_hash(s, t->len[i]) & t->slot_mask;
        while (t->slot[h] >= 0) {
            int32_t o = t->slot[h];
            if (t->len[o] == t->len[i] && memcmp(t->text + t->off[o], s, t->len[i]) == 0) break;
            h = (h + 1) & t->slot_mask;
        }
        t->slot[h] = (int32_t)i;
    }
    return 0;
}

int32_t tok_find(const tokenizer *t, const char *s, size_t len)
{
    size_t h = (size_t)tok_hash(s, len) & t->slot_mask;
    while (t->slot[h] >= 0) {
        int32_t o = t->slot[h];
        if (t->len[o] == len && memcmp(t->text + t->off[o], s, len) == 0) return o;
        h = (h + 1) & t->slot_mask;
    }
    return -1;
}

static size_t tok_pair_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key;
}

int tok_pairs_alloc(tokenizer *t, size_t n, lafn_err *err)
{
    size_t cap = tok_pow2_at_least(2 * n + 1);
    t->pair_key = malloc(cap * sizeof(*t->pair_key));
    t->pair_rank = malloc(cap * sizeof(*t->pair_rank));
    if (!t->pair_key || !t->pair_rank) return lafn_err_set(err, "tokenizer: out of memory for %zu merges", n);
    memset(t->pair_key, 0xff, cap * sizeof(*t->pair_key));
    t->pair_mask = cap - 1;
    return 0;
}

void tok_pairs_add(tokenizer *t, int32_t left, int32_t right, int32_t rank)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t h = tok_pair_hash(key) & t->pair_mask;
    while (t->pair_key[h] != UINT64_MAX) {
        if (t->pair_key[h] == key) return; /* the first (lowest) rank of a repeated merge wins */
        h = (h + 1) & t->pair_mask;
    }
    t->pair_key[h] = key;
    t->pair_rank[h] = rank;
}

int32_t tok_pair_rank(const tokenizer *t, int32_t left, int32_t right)
{
    if (!t->pair_key || left < 0 || right < 0) return -1;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t h = tok_pair_hash(key) & t->pair_mask;
    while (t->pair_key[h] != UINT64_MAX) {
        if (t->pair_key[h] == key) return t->pair_rank[h];
        h = (h + 1) & t->pair_mask;
    }
    return -1;
}

/* Longest piece first; equal lengths by id, so the order is reproducible. */
static int tok_cmp_longest(const void *a, const void *b, void *ctx)
{
    const tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return x < y ? -1 : (x > y);
}

int tok_collect_special(tokenizer *t, int type, lafn_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_vocab; i++) n += t->type[i] == type && t->len[i] > 0;
    free(t->special);
    t->special = NULL;
    t->n_special = 0;
    if (n == 0) return 0;
    t->special = malloc(n * sizeof(*t->special));
    if (!t->special) return lafn_err_set(err, "tokenizer: out of memory for %zu special pieces", n);
    for (size_t i = 0; i < t->n_vocab; i++)
        if (t->type[i] == type && t->len[i] > 0) t->special[t->n_special++] = (int32_t)i;
    qsort_r(t->special, t->n_special, sizeof(*t->special), tok_cmp_longest, t);
    return 0;
}

void tok_spm_byte_ids(tokenizer *t)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char buf[6] = { '<', '0', 'x', hex[b >> 4], hex[b & 15], '>' };
        int32_t id = tok_find(t, buf, sizeof(buf));
        if (id >= 0 && t->type[id] == TOK_TYPE_NORMAL) t->type[id] = TOK_TYPE_BYTE; /* HF vocabularies */
        if (id < 0) id = tok_find(t, (const char *)&(char){ (char)b }, 1);
        t->byte_id[b] = id;
    }
}

int tok_ids_push(tok_ids *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int32_t *p = realloc(v->ids, cap * sizeof(*p));
        if (!p) return -1;
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

void tokenizer_free(tokenizer *t)
{
    if (!t) return;
    tok_pretok_free(&t->pre);
    free(t->text);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->slot);
    free(t->pair_key);
    free(t->pair_rank);
    free(t->special);
    free(t);
}

tokenizer_kind tokenizer_get_kind(const tokenizer *t) { return t->kind; }
int tokenizer_vocab_size(const tokenizer *t) { return (int)t->n_vocab; }
int tokenizer_bos(const tokenizer *t) { return t->bos; }
int tokenizer_eos(const tokenizer *t) { return t->eos; }
int tokenizer_adds_bos(const tokenizer *t) { return t->add_bos && t->bos >= 0; }

const char *tokenizer_piece(const tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n_vocab) return NULL;
    return t->text + t->off[id];
}

/* Whether a space goes before a fragment at position where (TOK_AT_START | TOK_AFTER_SPECIAL). */
static int tok_wants_prefix(const tokenizer *t, const char *s, size_t n, int where)
{
    int want = (t->prefix == TOK_PREFIX_ALWAYS) ||
               (t->prefix == TOK_PREFIX_FIRST && (where & TOK_AT_START)) ||
               (t->prefix == TOK_PREFIX_AFTER_SPECIAL && (where & TOK_AFTER_SPECIAL));
    if (want && t->prefix_if_absent && n > 0 &&
        (s[0] == ' ' || (n >= 3 && memcmp(s, "\xE2\x96\x81", 3) == 0)))
        want = 0;
    return want;
}

/* SPM fragment: spaces -> "▁", then merging, one word (or one per "▁" with spm_split). */
static int tok_encode_spm_fragment(const tokenizer *t, const char *s, size_t n, int prefix,
                                   tok_ids *out, lafn_err *err)
{
    char *buf = malloc(3 * (n + 1) + 1);
    if (!buf) return lafn_err_set(err, "tokenizer: out of memory for a %zu-byte text", n);
    size_t m = 0;
    if (prefix) {
        memcpy(buf, "\xE2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(buf + m, "\xE2\x96\x81", 3);
            m += 3;
        } else {
            buf[m++] = s[i];
        }
    }
    int rc = 0;
    size_t w0 = 0;
    for (size_t i = 1; t->spm_split && rc == 0 && i + 3 <= m; i++) {
        if (memcmp(buf + i, "\xE2\x96\x81", 3) != 0) continue;
        rc = tok_merge_word(t, buf + w0, i - w0, out, err);
        w0 = i;
    }
    if (rc == 0) rc = tok_merge_word(t, buf + w0, m - w0, out, err);
    free(buf);
    return rc;
}

typedef struct {
    const tokenizer *t;
    tok_ids *out;
    lafn_err *err;
} tok_bpe_ctx;

static int tok_bpe_emit(void *ctx, const char *s, size_t n)
{
    tok_bpe_ctx *c = ctx;
    return tok_bpe_encode(c->t, s, n, c->out, c->err);
}

/* Byte-level BPE sees the text as llama.cpp does: decoded leniently (invalid
 * bytes become U+FFFD, overlong forms their code point) and re-encoded, after
 * the optional prefix space. */
static char *tok_bpe_clean_text(const char *s, size_t n, int prefix, size_t *m)
{
    char *buf = malloc(3 * n + 2);
    if (!buf) return NULL;
    *m = 0;
    if (prefix) buf[(*m)++] = ' ';
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_decode_lenient(s + i, n - i, &cp);
        *m += utf8_encode(cp, buf + *m);
    }
    return buf;
}

/* One fragment of raw text (no special pieces inside it), already normalised. */
static int tok_encode_normalized(const tokenizer *t, const char *s, size_t n, int where, tok_ids *out,
                                 lafn_err *err)
{
    int prefix = tok_wants_prefix(t, s, n, where);
    if (t->kind == TOKENIZER_KIND_SPM) return tok_encode_spm_fragment(t, s, n, prefix, out, err);
    tok_bpe_ctx ctx = { t, out, err };
    size_t m;
    char *buf = tok_bpe_clean_text(s, n, prefix, &m);
    if (!buf) return lafn_err_set(err, "tokenizer: out of memory for a %zu-byte text", n);
    int rc = t->pre.n == 0 ? tok_bpe_emit(&ctx, buf, m) : tok_pretok_split(&t->pre, buf, m, tok_bpe_emit, &ctx, err);
    free(buf);
    return rc;
}

/* One fragment of raw text (no special pieces inside it). */
static int tok_encode_fragment(const tokenizer *t, const char *s, size_t n, int where, tok_ids *out,
                               lafn_err *err)
{
    if (!t->nfc) return tok_encode_normalized(t, s, n, where, out, err);
    char *norm;
    size_t m;
    if (utf8_nfc(s, n, &norm, &m) != 0) return lafn_err_set(err, "tokenizer: out of memory normalising %zu bytes", n);
    int rc = tok_encode_normalized(t, norm, m, where, out, err);
    free(norm);
    return rc;
}

/* Splits s at the user-defined (HF: non-special added) pieces as llama.cpp's partition does:
 * each piece in turn, longest first, cuts every remaining fragment at all its occurrences.
 * Taking the first piece (from index k0 on) that occurs and cutting at its leftmost
 * occurrence gives the same fragments; the text left of the cut cannot contain pieces
 * before k + 1. where: TOK_AT_START / TOK_AFTER_SPECIAL flags of the first fragment. */
static int tok_encode_text(const tokenizer *t, const char *s, size_t n, tok_ids *out, int where,
                           size_t k0, lafn_err *err)
{
    while (n > 0) {
        const char *hit = NULL;
        size_t k = k0, plen = 0;
        for (; k < t->n_special; k++) {
            int32_t id = t->special[k];
            plen = t->len[id];
            if (plen <= n && (hit = memmem(s, n, t->text + t->off[id], plen)) != NULL) break;
        }
        if (!hit) return tok_encode_fragment(t, s, n, where, out, err);
        size_t left = (size_t)(hit - s);
        if (left > 0 && tok_encode_text(t, s, left, out, where, k + 1, err) != 0) return -1;
        if (tok_ids_push(out, t->special[k]) != 0) return lafn_err_set(err, "tokenizer: out of memory");
        s = hit + plen;
        n -= left + plen;
        where = TOK_AFTER_SPECIAL;
        k0 = k;
    }
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos,
                     int32_t *ids, size_t cap, size_t *n_out, lafn_err *err)
{
    tok_ids out = { 0 };
    *n_out = 0;
    if (add_bos && t->bos >= 0 && tok_ids_push(&out, t->bos) != 0) goto oom;
    if (len > 0 && tok_encode_text(t, text, len, &out, TOK_AT_START | TOK_AFTER_SPECIAL, 0, err) != 0)
        goto fail;
    *n_out = out.n;
    if (ids && out.n > 0) memcpy(ids, out.ids, (out.n < cap ? out.n : cap) * sizeof(*ids));
    free(out.ids);
    return 0;
oom:
    lafn_err_set(err, "tokenizer_encode: out of memory");
fail:
    free(out.ids);
    return -1;
}

/* Appends the decoded bytes of one piece to buf; BPE pieces go back through the byte map. */
static void tok_decode_piece(const tokenizer *t, int32_t id, char *buf, size_t *m)
{
    const char *p = t->text + t->off[id];
    size_t len = t->len[id];
    if (t->type[id] == TOK_TYPE_BYTE && t->kind == TOKENIZER_KIND_SPM && len == 6) {
        buf[(*m)++] = (char)strtol((char[3]){ p[3], p[4], 0 }, NULL, 16);
        return;
    }
    if (t->type[id] != TOK_TYPE_NORMAL) {
        memcpy(buf + *m, p, len);
        *m += len;
        return;
    }
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_decode(p + i, len - i, &cp);
        if (k == 0) { /* a malformed piece is copied through byte by byte */
            buf[(*m)++] = p[i++];
            continue;
        }
        if (t->kind == TOKENIZER_KIND_SPM && cp == 0x2581) {
            buf[(*m)++] = ' ';
        } else if (t->kind == TOKENIZER_KIND_BPE && cp < 512 && t->byte_of_cp[cp] >= 0) {
            buf[(*m)++] = (char)t->byte_of_cp[cp];
        } else {
            memcpy(buf + *m, p + i, k);
            *m += k;
        }
        i += k;
    }
}

char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, lafn_err *err)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->n_vocab) {
            lafn_err_set(err, "tokenizer_decode: id %d at position %zu is outside the vocabulary (0..%zu)",
                         ids[i], i, t->n_vocab - 1);
            return NULL;
        }
        total += t->len[ids[i]];
    }
    char *buf = malloc(total);
    if (!buf) {
        lafn_err_set(err, "tokenizer_decode: out of memory for %zu bytes", total);
        return NULL;
    }
    size_t m = 0;
    int strip_space = t->kind == TOKENIZER_KIND_SPM && t->prefix != TOK_PREFIX_NONE;
    for (size_t i = 0; i < n; i++) {
        int type = t->type[ids[i]];
        if (type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNUSED) continue;
        size_t start = m;
        tok_decode_piece(t, ids[i], buf, &m);
        if (strip_space && type == TOK_TYPE_NORMAL && m > start && buf[start] == ' ') {
            memmove(buf + start, buf + start + 1, m - start - 1);
            m--;
        }
        strip_space = 0;
    }
    buf[m] = '\0';
    return buf;
}
