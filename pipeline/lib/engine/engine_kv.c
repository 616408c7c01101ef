/* engine_kv: the KV cache — per-slot keys and values, and the forward of new tokens against them with the shared layer pieces. */
#include "engine/engine_kv.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_ops.h"

/* Tokens one pass of the layers handles; a longer prefill goes in chunks. */
#define KV_CHUNK_TOKENS 512

/* A run of consecutive new tokens of one sequence inside a chunk. */
typedef struct {
    int b;          /* the sequence in the call */
    int slot;
    size_t tok;     /* index of its first token in the call's tokens */
    size_t n;       /* tokens */
    int ends;       /* 1 if this is the sequence's last piece (its logits are wanted) */
} kv_piece;

struct engine_kv {
    const model *m;
    size_t S, T, C;       /* slots, tokens per slot, tokens per chunk */
    float *block;         /* every float buffer below */
    float *k, *v;         /* (L, S, T, K*E) x2: cached keys (after QK-norm and RoPE) and values */
    size_t *len;          /* (S) tokens held by each slot */
    /* work of one chunk (C tokens) */
    float *x;             /* (C, D) the stream: embeddings, then each layer's output in place */
    layer_bufs lb;        /* (C, ...) one layer's activations, reused by every layer */
    float *lse;           /* (C, H) */
    float *scratch;       /* attention_scratch_floats(T) */
    float *rope_buf;      /* rope_tables_floats(T) */
    rope_tables rope;
    int *pos, *slot_of;   /* (C) position and slot of each token of the chunk */
    kv_piece *pieces;     /* (S) pieces of the current chunk */
    uint8_t *seen;        /* (S) slot check */
    /* outputs */
    float *xf, *rstd_f;   /* (S, D), (S) */
    float *logits;        /* (S, V) */
    int *last_row;        /* (S) chunk row of each ending piece's last token */
    int *ones;            /* (S) all 1: the lengths of a step */
};

/* Lays out the float buffers in one block. */
static int kv_alloc_block(engine_kv *kv, lafn_err *err) {
    const model_config *c = &kv->m->cfg;
    size_t L = (size_t)c->n_layer, S = kv->S, T = kv->T, C = kv->C, D = (size_t)c->d_model;
    size_t F = (size_t)c->d_ffn, H = (size_t)c->n_head, K = (size_t)c->n_head_kv;
    size_t QE = H * (size_t)c->head_dim, KE = K * (size_t)c->head_dim;
    size_t qkn = c->has_qk_norm ? 1 : 0, pn = c->has_post_norms ? 1 : 0;
    layer_bufs *b = &kv->lb;
    float_slice specs[] = {
        {&kv->k, L * S * T * KE}, {&kv->v, L * S * T * KE}, {&kv->x, C * D},
        {&b->xn, C * D}, {&b->rstd_attn, C}, {&b->q_raw, qkn * C * QE}, {&b->k_raw, qkn * C * KE},
        {&b->rstd_q, qkn * C * H}, {&b->rstd_k, qkn * C * K}, {&b->q, C * QE}, {&b->k, C * KE},
        {&b->v, C * KE}, {&b->att, C * QE}, {&b->o, pn * C * D}, {&b->rstd_post_attn, pn * C},
        {&b->h, C * D}, {&b->hn, C * D}, {&b->rstd_ffn, C}, {&b->gate, C * F}, {&b->up, C * F},
        {&b->act, C * F}, {&b->y, pn * C * D}, {&b->rstd_post_ffn, pn * C}, {&kv->lse, C * H},
        {&kv->scratch, attention_scratch_floats(T)}, {&kv->rope_buf, rope_tables_floats(c, T)},
        {&kv->xf, S * D}, {&kv->rstd_f, S}, {&kv->logits, S * (size_t)c->vocab},
    };
    size_t total;
    kv->block = float_block_alloc(specs, sizeof specs / sizeof specs[0], &total);
    if (!kv->block)
        return lafn_err_set(err, "engine_kv_init: cannot allocate %zu MiB (max_seqs %zu, max_len %zu)",
                            total * sizeof(float) >> 20, S, T);
    return 0;
}

int engine_kv_init(engine_kv **out, const model *m, size_t max_seqs, size_t max_len, lafn_err *err) {
    *out = NULL;
    if (model_config_check(&m->cfg, m->path ? m->path : "model", err))
        return lafn_err_wrap(err, "engine_kv_init");
    if (max_seqs == 0 || max_seqs > (size_t)INT_MAX || max_len == 0 || max_len > (size_t)INT_MAX)
        return lafn_err_set(err, "engine_kv_init: max_seqs %zu and max_len %zu must be in [1, %d]",
                            max_seqs, max_len, INT_MAX);
    engine_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return lafn_err_set(err, "engine_kv_init: out of memory");
    kv->m = m;
    kv->S = max_seqs;
    kv->T = max_len;
    kv->C = KV_CHUNK_TOKENS;
    if (kv_alloc_block(kv, err)) goto fail;
    kv->len = calloc(max_seqs, sizeof *kv->len);
    kv->pos = malloc(kv->C * sizeof *kv->pos);
    kv->slot_of = malloc(kv->C * sizeof *kv->slot_of);
    kv->pieces = malloc(max_seqs * sizeof *kv->pieces);
    kv->seen = calloc(max_seqs, 1);
    kv->last_row = malloc(max_seqs * sizeof *kv->last_row);
    kv->ones = malloc(max_seqs * sizeof *kv->ones);
    if (!kv->len || !kv->pos || !kv->slot_of || !kv->pieces || !kv->seen || !kv->last_row || !kv->ones) {
        lafn_err_set(err, "engine_kv_init: out of memory for %zu slots", max_seqs);
        goto fail;
    }
    for (size_t s = 0; s < max_seqs; s++) kv->ones[s] = 1;
    rope_tables_init(&kv->rope, kv->rope_buf, m, max_len);
    *out = kv;
    return 0;
fail:
    engine_kv_free(kv);
    return -1;
}

void engine_kv_free(engine_kv *kv) {
    if (!kv) return;
    free(kv->block);
    free(kv->len);
    free(kv->pos);
    free(kv->slot_of);
    free(kv->pieces);
    free(kv->seen);
    free(kv->last_row);
    free(kv->ones);
    free(kv);
}

const float *engine_kv_logits(const engine_kv *kv) { return kv->logits; }

size_t engine_kv_len(const engine_kv *kv, int slot) {
    return slot >= 0 && (size_t)slot < kv->S ? kv->len[slot] : 0;
}

static int slot_check(const engine_kv *kv, int slot, const char *what, lafn_err *err) {
    if (slot < 0 || (size_t)slot >= kv->S)
        return lafn_err_set(err, "engine_kv: %s slot %d outside [0, %zu)", what, slot, kv->S);
    return 0;
}

int engine_kv_reset(engine_kv *kv, int slot, lafn_err *err) {
    if (slot_check(kv, slot, "reset", err)) return -1;
    kv->len[slot] = 0;
    return 0;
}

/* Layer l's keys (or values) of slot s: (T, K*E). */
static float *kv_rows(const engine_kv *kv, float *cache, int l, int s) {
    size_t KE = (size_t)kv->m->cfg.n_head_kv * (size_t)kv->m->cfg.head_dim;
    return cache + ((size_t)l * kv->S + (size_t)s) * kv->T * KE;
}

int engine_kv_fork(engine_kv *kv, int src, int dst, lafn_err *err) {
    if (slot_check(kv, src, "fork source", err) || slot_check(kv, dst, "fork destination", err)) return -1;
    if (src == dst) return 0;
    size_t KE = (size_t)kv->m->cfg.n_head_kv * (size_t)kv->m->cfg.head_dim, n = kv->len[src] * KE;
    for (int l = 0; l < kv->m->cfg.n_layer; l++) {
        memcpy(kv_rows(kv, kv->k, l, dst), kv_rows(kv, kv->k, l, src), n * sizeof(float));
        memcpy(kv_rows(kv, kv->v, l, dst), kv_rows(kv, kv->v, l, src), n * sizeof(float));
    }
    kv->len[dst] = kv->len[src];
    return 0;
}

/* Checks a call before anything changes: slots distinct and in range, room, token ids, edit. */
static int kv_call_check(engine_kv *kv, int n_seq, const int *slots, const int *seq_len,
                         const int32_t *tokens, const engine_edit *edit, lafn_err *err) {
    const model_config *c = &kv->m->cfg;
    if (n_seq <= 0 || (size_t)n_seq > kv->S || !slots || !seq_len || !tokens)
        return lafn_err_set(err, "engine_kv: %d sequences; a call takes 1 to %zu", n_seq, kv->S);
    int min_layer, rc = 0;
    size_t n = 0;
    for (int b = 0; b < n_seq && rc == 0; b++) {
        int s = slots[b];
        if (slot_check(kv, s, "sequence's", err)) rc = -1;
        else if (kv->seen[s]) rc = lafn_err_set(err, "engine_kv: slot %d appears twice in one call", s);
        else if (seq_len[b] <= 0 || (size_t)seq_len[b] > kv->T - kv->len[s])
            rc = lafn_err_set(err, "engine_kv: sequence %d appends %d tokens to slot %d holding %zu; "
                                   "expected 1 to %zu (max_len %zu)",
                              b, seq_len[b], s, kv->len[s], kv->T - kv->len[s], kv->T);
        else kv->seen[s] = 1, n += (size_t)seq_len[b];
    }
    for (int b = 0; b < n_seq; b++)
        if (slots[b] >= 0 && (size_t)slots[b] < kv->S) kv->seen[slots[b]] = 0;
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return lafn_err_set(err, "engine_kv: token %zu has id %d outside [0, %d)", i, (int)tokens[i],
                                c->vocab);
    if (edit_check(edit, c, 0, &min_layer, err)) return lafn_err_wrap(err, "engine_kv");
    return 0;
}

/* Attention of every piece's new rows against its slot, after storing their keys and values. */
static void kv_attention(engine_kv *kv, int l, size_t n_pieces) {
    const model_config *c = &kv->m->cfg;
    size_t KE = (size_t)c->n_head_kv * (size_t)c->head_dim, QE = (size_t)c->n_head * (size_t)c->head_dim;
    attn_dims a = layer_attn_dims(c, l);
    size_t row = 0;
    for (size_t p = 0; p < n_pieces; p++) {
        const kv_piece *pc = &kv->pieces[p];
        size_t t0 = kv->len[pc->slot];
        float *kc = kv_rows(kv, kv->k, l, pc->slot), *vc = kv_rows(kv, kv->v, l, pc->slot);
        memcpy(kc + t0 * KE, kv->lb.k + row * KE, pc->n * KE * sizeof(float));
        memcpy(vc + t0 * KE, kv->lb.v + row * KE, pc->n * KE * sizeof(float));
        attention_forward_tail(kv->lb.att + row * QE, kv->lse + row * (size_t)c->n_head,
                               kv->lb.q + row * QE, kc, vc, t0, pc->n, &a, kv->scratch);
        row += pc->n;
    }
}

/* Runs the layers over one chunk of pieces and takes the logits of those that end. */
static void kv_chunk(engine_kv *kv, size_t n_pieces, const int32_t *tokens, const engine_edit *edit) {
    const model_config *c = &kv->m->cfg;
    size_t D = (size_t)c->d_model, n = 0, n_end = 0;
    int first_end = -1;
    for (size_t p = 0; p < n_pieces; p++) {
        const kv_piece *pc = &kv->pieces[p];
        embed_forward(kv->x + n * D, tokens + pc->tok, kv->m->w.token_embd, pc->n, D, c->embed_scale);
        for (size_t i = 0; i < pc->n; i++) {
            kv->pos[n + i] = (int)(kv->len[pc->slot] + i);
            kv->slot_of[n + i] = pc->slot;
        }
        n += pc->n;
        if (!pc->ends) continue;
        if (first_end < 0) first_end = pc->b; /* ending pieces are consecutive sequences */
        kv->last_row[n_end++] = (int)(n - 1);
    }
    edit_dims ed = {.N = n, .D = D, .F = (size_t)c->d_ffn, .n_seq = (int)kv->S, .seq_of = kv->slot_of};
    for (int l = 0; l < c->n_layer; l++) {
        layer_qkv_forward(kv->m, l, kv->x, kv->pos, n, &kv->rope, &kv->lb);
        kv_attention(kv, l, n_pieces);
        layer_attn_out_forward(kv->m, l, kv->x, n, &kv->lb);
        layer_ffn_forward(kv->m, l, kv->x, n, &kv->lb, 1.0f, edit, &ed);
    }
    for (size_t p = 0; p < n_pieces; p++) kv->len[kv->pieces[p].slot] += kv->pieces[p].n;
    if (n_end == 0) return;
    size_t V = (size_t)c->vocab;
    logits_forward(kv->logits + (size_t)first_end * V, kv->xf, kv->rstd_f, kv->x, kv->last_row, n_end,
                   kv->m->w.output_norm, kv->m->w.output, V, D, c->norm_eps);
}

int engine_kv_prefill(engine_kv *kv, int n_seq, const int *slots, const int *seq_len,
                      const int32_t *tokens, const engine_edit *edit, lafn_err *err) {
    if (kv_call_check(kv, n_seq, slots, seq_len, tokens, edit, err)) return -1;
    size_t n_pieces = 0, filled = 0, tok = 0;
    for (int b = 0; b < n_seq; b++) {
        for (size_t done = 0; done < (size_t)seq_len[b];) {
            size_t take = (size_t)seq_len[b] - done;
            if (take > kv->C - filled) take = kv->C - filled;
            kv->pieces[n_pieces++] = (kv_piece){.b = b, .slot = slots[b], .tok = tok, .n = take,
                                                .ends = done + take == (size_t)seq_len[b]};
            done += take, tok += take, filled += take;
            if (filled == kv->C) {
                kv_chunk(kv, n_pieces, tokens, edit);
                n_pieces = filled = 0;
            }
        }
    }
    if (n_pieces) kv_chunk(kv, n_pieces, tokens, edit);
    return 0;
}

int engine_kv_step(engine_kv *kv, int n_seq, const int *slots, const int32_t *tokens,
                   const engine_edit *edit, lafn_err *err) {
    return engine_kv_prefill(kv, n_seq, slots, kv->ones, tokens, edit, err);
}
