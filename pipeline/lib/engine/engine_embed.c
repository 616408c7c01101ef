/* engine_embed: token embedding lookup, and the final norm + output projection at the scored positions. */
#include <string.h>

#include "engine/engine_ops.h"

void embed_forward(float *out, const int32_t *tokens, const float *token_embd, size_t n, size_t D,
                   float scale) {
    for (size_t i = 0; i < n; i++) {
        const float *e = token_embd + (size_t)tokens[i] * D;
        for (size_t d = 0; d < D; d++) out[i * D + d] = e[d] * scale;
    }
}

void final_norm_forward(float *xf, float *rstd, const float *resid, const int *pos, size_t P, const float *norm_w,
                        size_t D, float eps) {
    for (size_t p = 0; p < P; p++)
        rmsnorm_forward(xf + p * D, rstd + p, resid + (size_t)pos[p] * D, norm_w, 1, D, eps);
}

void final_norm_backward(float *dresid, const float *dxf, const float *rstd, const float *resid, const int *pos,
                         size_t P, const float *norm_w, size_t D) {
    for (size_t p = 0; p < P; p++) {
        size_t row = (size_t)pos[p] * D;
        rmsnorm_backward(dresid + row, dxf + p * D, resid + row, norm_w, rstd + p, 1, D);
    }
}

void logits_forward(float *logits, float *xf, float *rstd, const float *resid, const int *pos,
                    size_t P, const float *norm_w, const float *w_out, size_t V, size_t D, float eps) {
    final_norm_forward(xf, rstd, resid, pos, P, norm_w, D, eps);
    matmul_forward(logits, xf, w_out, NULL, P, D, V);
}

void logits_backward(float *dresid, float *dxf, const float *dlogits, const float *rstd,
                     const float *resid, const int *pos, size_t P, const float *norm_w,
                     const float *w_out, size_t V, size_t D) {
    memset(dxf, 0, P * D * sizeof *dxf);
    matmul_backward(dxf, dlogits, w_out, P, D, V);
    final_norm_backward(dresid, dxf, rstd, resid, pos, P, norm_w, D);
}
