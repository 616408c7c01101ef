/* tokenizer_merge: the symbol-merging core shared by SentencePiece-style (scores or ranks) and byte-level BPE.
 *
 * A word starts as one symbol per UTF-8 character. Adjacent pairs that may be
 * joined go into a min-heap keyed by (priority, left position): SPM with scores
 * joins the pair whose concatenation is the piece with the highest score
 * (priority = -score), BPE joins the pair with the lowest merge rank. A popped
 * pair whose symbols changed since it was pushed is stale and skipped (as in
 * llama.cpp: both alive and their lengths still adding up to the pair's). Each
 * final symbol becomes its piece id, or its bytes through byte fallback. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"
#include "base/utf8.h"

typedef struct {
    size_t start;   /* byte offset in the word */
    size_t n;       /* bytes; 0 once merged into its left neighbour */
    int32_t id;     /* piece id of the symbol's text, -1 if none */
    int32_t prev, next;
} tok_sym;

typedef struct {
    double key;     /* smaller first */
    int32_t left, right;
    size_t size;    /* bytes of the joined pair when pushed */
    int32_t id;     /* piece id of the joined text (-1 possible for rank merges) */
} tok_pair;

typedef struct {
    tok_pair *v;
    size_t n, cap;
} tok_heap;

static int tok_pair_less(const tok_pair *a, const tok_pair *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static int tok_heap_push(tok_heap *h, tok_pair p)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        tok_pair *v = realloc(h->v, cap * sizeof(*v));
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!tok_pair_less(&p, &h->v[up])) break;
        h->v[i] = h->v[up];
        i = up;
    }
    h->v[i] = p;
    return 0;
}

static tok_pair tok_heap_pop(tok_heap *h)
{
    tok_pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && tok_pair_less(&h->v[c + 1], &h->v[c])) c++;
        if (!tok_pair_less(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

/* Pushes the pair (left, right) if it may be joined. */
static int tok_try_pair(const tokenizer *t, const char *w, const tok_sym *sym, int32_t left,
                        int32_t right, tok_heap *h)
{
    if (left < 0 || right < 0) return 0;
    const tok_sym *l = &sym[left], *r = &sym[right];
    size_t size = l->n + r->n;
    tok_pair p = { 0, left, right, size, -1 };
    if (t->kind == TOKENIZER_KIND_SPM && t->spm_merge == TOK_SPM_MERGE_SCORES) {
        p.id = tok_find(t, w + l->start, size);
        if (p.id < 0) return 0;
        p.key = -(double)t->score[p.id];
    } else {
        int32_t rank = tok_pair_rank(t, l->id, r->id);
        if (rank < 0) return 0;
        p.key = rank;
        p.id = tok_find(t, w + l->start, size);
    }
    return tok_heap_push(h, p);
}

/* Emits the ids of one final symbol (byte fallback when it is no piece). */
static int tok_emit_symbol(const tokenizer *t, const char *w, const tok_sym *s, tok_ids *out)
{
    if (s->id >= 0) return tok_ids_push(out, s->id);
    if (t->kind == TOKENIZER_KIND_SPM) {
        for (size_t j = 0; j < s->n; j++) {
            int32_t id = t->byte_id[(uint8_t)w[s->start + j]];
            if (id < 0) id = t->unk;
            if (id >= 0 && tok_ids_push(out, id) != 0) return -1;
        }
        return 0;
    }
    /* byte-level BPE: every mapped character stands for one byte */
    for (size_t j = 0; j < s->n;) {
        uint32_t cp = 0;
        size_t k = utf8_decode(w + s->start + j, s->n - j, &cp);
        if (k == 0) k = 1;
        int b = cp < 512 ? t->byte_of_cp[cp] : -1;
        int32_t id = b >= 0 ? t->byte_id[b] : -1;
        if (id < 0) id = t->unk;
        if (id >= 0 && tok_ids_push(out, id) != 0) return -1;
        j += k;
    }
    return 0;
}

static int tok_merge_run(const tokenizer *t, const char *w, tok_sym *sym, tok_heap *h)
{
    for (;;) {
        if (h->n == 0) return 0;
        tok_pair p = tok_heap_pop(h);
        tok_sym *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue;
        l->n += r->n;
        l->id = p.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        if (tok_try_pair(t, w, sym, l->prev, p.left, h) != 0) return -1;
        if (tok_try_pair(t, w, sym, p.left, l->next, h) != 0) return -1;
    }
}

int tok_merge_word(const tokenizer *t, const char *w, size_t n, tok_ids *out, lafn_err *err)
{
    if (n == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = tok_find(t, w, n);
        if (id >= 0) return tok_ids_push(out, id) == 0 ? 0 : lafn_err_set(err, "tokenizer: out of memory");
    }
    if (n > INT32_MAX) return lafn_err_set(err, "tokenizer: a %zu-byte word is too long", n);
    tok_sym *sym = malloc(n * sizeof(*sym));
    tok_heap h = { 0 };
    if (!sym) return lafn_err_set(err, "tokenizer: out of memory for a %zu-byte word", n);
    int32_t ns = 0;
    for (size_t off = 0; off < n; ns++) {
        size_t len = utf8_seq_len((uint8_t)w[off]);
        if (len > n - off) len = n - off;
        sym[ns] = (tok_sym){ off, len, tok_find(t, w + off, len), ns - 1, off + len == n ? -1 : ns + 1 };
        off += len;
    }
    for (int32_t i = 1; i < ns; i++)
        if (tok_try_pair(t, w, sym, i - 1, i, &h) != 0) goto oom;
    if (tok_merge_run(t, w, sym, &h) != 0) goto oom;
    for (int32_t i = 0; i != -1; i = sym[i].next)
        if (tok_emit_symbol(t, w, &sym[i], out) != 0) goto oom;
    free(h.v);
    free(sym);
    return 0;
oom:
    free(h.v);
    free(sym);
    return lafn_err_set(err, "tokenizer: out of memory while merging a %zu-byte word", n);
}
