/* engine_attention: causal (optionally sliding-window) grouped-query attention per sequence, forward and backward (sgemm over blocks of query rows, plus the plain per-row reference). */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "engine/engine_ops.h"

/* First key position (inside the sequence) that query position t may attend to. */
static size_t attn_first_key(size_t t, int window) {
    if (window <= 0 || t < (size_t)window) return 0;
    return t - (size_t)window + 1;
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One query row of one head: scores into sc[j0..t], softmax, weighted sum of v. */
static void attention_row_forward(float *o, float *lse, const float *qi, const float *k,
                                  const float *v, size_t j0, size_t t, size_t kv_stride,
                                  const attn_dims *a, float *sc) {
    float mx = -INFINITY;
    for (size_t j = j0; j <= t; j++) {
        sc[j] = a->scale * dot(qi, k + j * kv_stride, a->E);
        if (sc[j] > mx) mx = sc[j];
    }
    double sum = 0.0;
    for (size_t j = j0; j <= t; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    float inv = (float)(1.0 / sum);
    memset(o, 0, (size_t)a->E * sizeof *o);
    for (size_t j = j0; j <= t; j++) {
        const float *vj = v + j * kv_stride;
        float p = sc[j] * inv;
        for (int e = 0; e < a->E; e++) o[e] += p * vj[e];
    }
    *lse = mx + (float)log(sum);
}

void attention_forward_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                           const engine_seqs *s, const attn_dims *a, float *scratch) {
    size_t qs = (size_t)a->H * (size_t)a->E, ks = (size_t)a->K * (size_t)a->E;
    int group = a->H / a->K;
    for (int b = 0; b < s->n_seq; b++) {
        size_t start = s->seq_start[b], T = s->seq_start[b + 1] - start;
        for (int h = 0; h < a->H; h++) {
            size_t koff = (size_t)(h / group) * (size_t)a->E;
            const float *kb = k + start * ks + koff, *vb = v + start * ks + koff;
            for (size_t t = 0; t < T; t++) {
                size_t n = start + t;
                attention_row_forward(out + n * qs + (size_t)h * (size_t)a->E,
                                      lse + n * (size_t)a->H + (size_t)h,
                                      q + n * qs + (size_t)h * (size_t)a->E, kb, vb,
                                      attn_first_key(t, a->window), t, ks, a, scratch);
            }
        }
    }
}

/* One query row of one head. With p_j = exp(s_j − lse), dp_j = do·v_j and
 * Σ_j p_j dp_j = do·o: ds_j = p_j (dp_j − do·o); dq += scale Σ ds_j k_j,
 * dk_j += scale ds_j q, dv_j += p_j do. */
static void attention_row_backward(float *dqi, float *dk, float *dv, const float *doi,
                                   const float *oi, float lse, const float *qi, const float *k,
                                   const float *v, size_t j0, size_t t, size_t kv_stride,
                                   const attn_dims *a) {
    float d_o = dot(doi, oi, a->E);
    for (size_t j = j0; j <= t; j++) {
        const float *kj = k + j * kv_stride, *vj = v + j * kv_stride;
        float p = expf(a->scale * dot(qi, kj, a->E) - lse);
        float ds = p * (dot(doi, vj, a->E) - d_o) * a->scale;
        float *dkj = dk + j * kv_stride, *dvj = dv + j * kv_stride;
        for (int e = 0; e < a->E; e++) {
            dqi[e] += ds * kj[e];
            dkj[e] += ds * qi[e];
            dvj[e] += p * doi[e];
        }
    }
}

void attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *out,
                            const float *lse, const float *q, const float *k, const float *v,
                            const engine_seqs *s, const attn_dims *a) {
    size_t qs = (size_t)a->H * (size_t)a->E, ks = (size_t)a->K * (size_t)a->E;
    int group = a->H / a->K;
    for (int b = 0; b < s->n_seq; b++) {
        size_t start = s->seq_start[b], T = s->seq_start[b + 1] - start;
        for (int h = 0; h < a->H; h++) {
            size_t qoff = (size_t)h * (size_t)a->E, koff = (size_t)(h / group) * (size_t)a->E;
            size_t kb = start * ks + koff;
            for (size_t t = 0; t < T; t++) {
                size_t n = start + t;
                attention_row_backward(dq + n * qs + qoff, dk + kb, dv + kb, dout + n * qs + qoff,
                                       out + n * qs + qoff, lse[n * (size_t)a->H + (size_t)h],
                                       q + n * qs + qoff, k + kb, v + kb,
                                       attn_first_key(t, a->window), t, ks, a);
            }
        }
    }
}

/* ---- blocked version: rows [t0, t1) of one head of one sequence at a time ---- */

/* Pointers to one head of one sequence: q/o rows have stride qs, k/v rows ks. */
typedef struct {
    const float *q, *k, *v, *o; /* q and o at the block's first row; k and v at key kstart */
    size_t qs, ks;
    size_t t0, kstart, R, W;    /* R query rows from t0, W keys from kstart */
} attn_block;

/* S (R, W) = scale · Q Kᵀ, then rows turned into probabilities P: exp(S − lse)
 * where lse is given (backward), or computed and stored (forward, lse_out).
 * Keys outside a row's causal window get probability 0. */
static void block_probs(float *S, const attn_block *b, const attn_dims *a, float *lse_out,
                        const float *lse_in, size_t lse_stride) {
    if (b->R == 1) /* one query row (a decode step): sgemv, which does not pack the keys first */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)b->W, a->E, a->scale, b->k, (blasint)b->ks, b->q, 1,
                    0.0f, S, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)b->R, (blasint)b->W, a->E, a->scale,
                    b->q, (blasint)b->qs, b->k, (blasint)b->ks, 0.0f, S, (blasint)b->W);
    for (size_t i = 0; i < b->R; i++) {
        size_t t = b->t0 + i, lo = attn_first_key(t, a->window) - b->kstart, hi = t - b->kstart;
        float *row = S + i * b->W;
        float l;
        if (lse_in) {
            l = lse_in[i * lse_stride];
        } else {
            float mx = -INFINITY;
            for (size_t j = lo; j <= hi; j++) mx = row[j] > mx ? row[j] : mx;
            double sum = 0.0;
            for (size_t j = lo; j <= hi; j++) sum += exp((double)row[j] - mx);
            l = lse_out[i * lse_stride] = mx + (float)log(sum);
        }
        for (size_t j = 0; j < b->W; j++) row[j] = (j >= lo && j <= hi) ? expf(row[j] - l) : 0.0f;
    }
}

#define ATTN_BLOCK_ROWS 64

size_t attention_scratch_floats(size_t max_n) { return 2 * ATTN_BLOCK_ROWS * max_n; }

typedef void (*attn_block_fn)(const attn_block *b, size_t row0, int h, int kh, void *ctx);

/* Calls fn for every (head, block of query rows) of one sequence: its T query
 * rows are rows [row0, row0 + T) of q (and o) at positions [t_first, t_first + T);
 * k and v point at the sequence's position 0. */
static void attention_seq_blocks(const float *q, const float *k, const float *v, const float *o,
                                 size_t row0, size_t t_first, size_t T, const attn_dims *a,
                                 attn_block_fn fn, void *ctx) {
    size_t qs = (size_t)a->H * (size_t)a->E, ks = (size_t)a->K * (size_t)a->E;
    int group = a->H / a->K;
    for (int h = 0; h < a->H; h++) {
        int kh = h / group;
        for (size_t i0 = 0; i0 < T; i0 += ATTN_BLOCK_ROWS) {
            attn_block b = {.qs = qs, .ks = ks, .t0 = t_first + i0};
            b.R = T - i0 < ATTN_BLOCK_ROWS ? T - i0 : ATTN_BLOCK_ROWS;
            b.kstart = attn_first_key(b.t0, a->window);
            b.W = b.t0 + b.R - b.kstart;
            size_t qoff = (row0 + i0) * qs + (size_t)h * (size_t)a->E;
            size_t koff = b.kstart * ks + (size_t)kh * (size_t)a->E;
            b.q = q + qoff, b.o = o ? o + qoff : NULL, b.k = k + koff, b.v = v + koff;
            fn(&b, row0 + i0, h, kh, ctx);
        }
    }
}

/* Calls fn for every (sequence, head, block of query rows) of a packed batch. */
static void attention_blocks(const float *q, const float *k, const float *v, const float *o,
                             const engine_seqs *s, const attn_dims *a, attn_block_fn fn, void *ctx) {
    size_t ks = (size_t)a->K * (size_t)a->E;
    for (int sq = 0; sq < s->n_seq; sq++) {
        size_t start = s->seq_start[sq], T = s->seq_start[sq + 1] - start;
        attention_seq_blocks(q, k + start * ks, v + start * ks, o, start, 0, T, a, fn, ctx);
    }
}

typedef struct {
    float *out, *lse, *scratch;
    const attn_dims *a;
} fwd_ctx;

static void block_forward(const attn_block *b, size_t row0, int h, int kh, void *p) {
    fwd_ctx *c = p;
    float *S = c->scratch;
    block_probs(S, b, c->a, c->lse + row0 * (size_t)c->a->H + (size_t)h, NULL, (size_t)c->a->H);
    float *o = c->out + row0 * b->qs + (size_t)h * (size_t)c->a->E;
    if (b->R == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)b->W, c->a->E, 1.0f, b->v, (blasint)b->ks, S, 1, 0.0f, o, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)b->R, c->a->E, (blasint)b->W, 1.0f, S,
                    (blasint)b->W, b->v, (blasint)b->ks, 0.0f, o, (blasint)b->qs);
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const engine_seqs *s, const attn_dims *a, float *scratch) {
    fwd_ctx c = {.out = out, .lse = lse, .scratch = scratch, .a = a};
    attention_blocks(q, k, v, NULL, s, a, block_forward, &c);
}

void attention_forward_tail(float *out, float *lse, const float *q, const float *k, const float *v,
                            size_t t_first, size_t T, const attn_dims *a, float *scratch) {
    fwd_ctx c = {.out = out, .lse = lse, .scratch = scratch, .a = a};
    attention_seq_blocks(q, k, v, NULL, 0, t_first, T, a, block_forward, &c);
}

typedef struct {
    float *dq, *dk, *dv, *scratch;
    const float *dout, *lse;
    const attn_dims *a;
} bwd_ctx;

/* With P from block_probs: dP = dO Vᵀ; dS = scale · P ⊙ (dP − rowdot(dO, O));
 * dQ += dS K; dK += dSᵀ Q; dV += Pᵀ dO. */
static void block_backward(const attn_block *b, size_t row0, int h, int kh, void *p) {
    bwd_ctx *c = p;
    const attn_dims *a = c->a;
    size_t E = (size_t)a->E, qoff = row0 * b->qs + (size_t)h * E;
    size_t koff = (row0 - b->t0 + b->kstart) * b->ks + (size_t)kh * E;
    float *P = c->scratch, *dP = c->scratch + b->R * b->W;
    const float *dO = c->dout + qoff;
    block_probs(P, b, a, NULL, c->lse + row0 * (size_t)a->H + (size_t)h, (size_t)a->H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)b->R, (blasint)b->W, a->E, 1.0f, dO,
                (blasint)b->qs, b->v, (blasint)b->ks, 0.0f, dP, (blasint)b->W);
    for (size_t i = 0; i < b->R; i++) {
        float d_o = dot(dO + i * b->qs, b->o + i * b->qs, a->E);
        for (size_t j = 0; j < b->W; j++) dP[i * b->W + j] = a->scale * P[i * b->W + j] * (dP[i * b->W + j] - d_o);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)b->R, a->E, (blasint)b->W, 1.0f, dP,
                (blasint)b->W, b->k, (blasint)b->ks, 1.0f, c->dq + qoff, (blasint)b->qs);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)b->W, a->E, (blasint)b->R, 1.0f, dP,
                (blasint)b->W, b->q, (blasint)b->qs, 1.0f, c->dk + koff, (blasint)b->ks);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)b->W, a->E, (blasint)b->R, 1.0f, P,
                (blasint)b->W, dO, (blasint)b->qs, 1.0f, c->dv + koff, (blasint)b->ks);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                        const float *lse, const float *q, const float *k, const float *v,
                        const engine_seqs *s, const attn_dims *a, float *scratch) {
    bwd_ctx c = {.dq = dq, .dk = dk, .dv = dv, .scratch = scratch, .dout = dout, .lse = lse, .a = a};
    attention_blocks(q, k, v, out, s, a, block_backward, &c);
}
