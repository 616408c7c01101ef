/* engine_head: the LM head's cross-entropy in one pass over the vocabulary — blocks of output rows kept in cache, an online log-sum-exp, the gradient at the final norm without storing the logits. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "engine/engine_ops.h"

size_t head_xent_scratch_floats(size_t P) { return P * (HEAD_BLOCK_ROWS + 1); }

/* Folds one block of logits S (P, B) of vocabulary rows [v0, v0 + B) into the
 * running state: zq, the running maximum mx (P) and sum (P), and turns S into
 * exp(S − mx) — the weights of the block's rows of w_out in acc (P, D), whose
 * rows are first rescaled where the maximum grew. */
static void block_fold(float *S, size_t P, size_t B, size_t v0, const engine_xent *x, size_t V, float *mx,
                       double *sum, float *acc, size_t D) {
    size_t k = 0; /* dense rows before p */
    for (size_t p = 0; p < P; p++) {
        float *row = S + p * B, bm = row[0];
        int32_t t = x->target[p];
        if (t >= 0 && (size_t)t >= v0 && (size_t)t < v0 + B) x->zq[p] = row[(size_t)t - v0];
        if (t < 0) {
            const float *q = x->q + (k++) * V + v0;
            double s = 0.0;
            for (size_t j = 0; j < B; j++) s += (double)q[j] * row[j];
            x->zq[p] += s;
        }
        for (size_t j = 1; j < B; j++) bm = row[j] > bm ? row[j] : bm;
        if (bm > mx[p]) {
            float scale = expf(mx[p] - bm); /* 0 on the first block (mx = −inf) */
            sum[p] *= scale;
            for (size_t d = 0; d < D; d++) acc[p * D + d] *= scale;
            mx[p] = bm;
        }
        double s = 0.0;
        for (size_t j = 0; j < B; j++) s += row[j] = expf(row[j] - mx[p]);
        sum[p] += s;
    }
}

void head_xent_forward(float *dxf, const float *xf, size_t P, const engine_xent *x, const float *w_out, size_t V,
                       size_t D, float *scratch) {
    float *S = scratch, *mx = scratch + P * HEAD_BLOCK_ROWS;
    double *sum = x->lse; /* the running sums, until they become log-sum-exps */
    memset(dxf, 0, P * D * sizeof *dxf);
    for (size_t p = 0; p < P; p++) {
        mx[p] = -INFINITY;
        sum[p] = 0.0;
        x->zq[p] = 0.0;
    }
    for (size_t v0 = 0; v0 < V; v0 += HEAD_BLOCK_ROWS) {
        size_t B = V - v0 < HEAD_BLOCK_ROWS ? V - v0 : HEAD_BLOCK_ROWS;
        const float *w = w_out + v0 * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)P, (blasint)B, (blasint)D, 1.0f, xf,
                    (blasint)D, w, (blasint)D, 0.0f, S, (blasint)B);
        block_fold(S, P, B, v0, x, V, mx, sum, dxf, D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)P, (blasint)D, (blasint)B, 1.0f, S,
                    (blasint)B, w, (blasint)D, 1.0f, dxf, (blasint)D);
    }
    size_t k = 0;
    for (size_t p = 0; p < P; p++) { /* dxf = weight · (Σ softmax_v w_v − Σ q_v w_v) */
        const float *qw = x->target[p] >= 0 ? w_out + (size_t)x->target[p] * D : x->qw + (k++) * D;
        float a = (float)((double)x->weight[p] / sum[p]);
        for (size_t d = 0; d < D; d++) dxf[p * D + d] = a * dxf[p * D + d] - x->weight[p] * qw[d];
        x->lse[p] = (double)mx[p] + log(sum[p]);
    }
}

void engine_head_qw(const model *m, const float *q, size_t n, float *qw) {
    size_t V = (size_t)m->cfg.vocab, D = (size_t)m->cfg.d_model;
    if (n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n, (blasint)D, (blasint)V, 1.0f, q, (blasint)V,
                m->w.output, (blasint)D, 0.0f, qw, (blasint)D);
}
