/* engine_ffn: projections (sgemm over all tokens) and the gated FFN activation, forward and backward. */
#include <cblas.h>
#include <math.h>

#include "engine/engine_ops.h"

void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    size_t n, size_t din, size_t dout) {
    if (n == 0) return;
    if (n == 1) /* one token (a decode step of one sequence): sgemv streams w once, where sgemm
                   first packs it — 2.4x slower for Gemma 3's output matrix (docs/PERFORMANCE.md) */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)dout, (blasint)din, 1.0f, w, (blasint)din, inp, 1,
                    0.0f, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)n, (blasint)dout, (blasint)din,
                    1.0f, inp, (blasint)din, w, (blasint)din, 0.0f, out, (blasint)dout);
    if (!bias) return;
    for (size_t i = 0; i < n; i++)
        for (size_t o = 0; o < dout; o++) out[i * dout + o] += bias[o];
}

void matmul_backward(float *dinp, const float *dout, const float *w, size_t n, size_t din,
                     size_t d_out) {
    if (n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n, (blasint)din, (blasint)d_out,
                1.0f, dout, (blasint)d_out, w, (blasint)din, 1.0f, dinp, (blasint)din);
}

/* GELU, tanh approximation (HF gelu_pytorch_tanh): 0.5 x (1 + tanh(u)) with
 * u = c (x + 0.044715 x³), computed as x σ(2u) (the same function, one expf).
 * SiLU: x σ(x). act_eval gives the value and, if deriv is not NULL, the derivative. */
#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

static float act_eval(float x, model_act kind, float *deriv) {
    if (kind == MODEL_ACT_SILU) {
        float s = 1.0f / (1.0f + expf(-x));
        if (deriv) *deriv = s * (1.0f + x * (1.0f - s));
        return x * s;
    }
    float u2 = 2.0f * GELU_C * (x + 0.044715f * x * x * x);
    float s = 1.0f / (1.0f + expf(-u2));
    if (deriv) *deriv = s + x * s * (1.0f - s) * 2.0f * GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
    return x * s;
}

void glu_forward(float *act, const float *gate, const float *up, size_t n, size_t f, model_act kind) {
    for (size_t i = 0; i < n * f; i++) act[i] = act_eval(gate[i], kind, NULL) * up[i];
}

void glu_backward(float *dgate, float *dup, const float *dact, const float *gate, const float *up,
                  size_t n, size_t f, model_act kind) {
    for (size_t i = 0; i < n * f; i++) {
        float d, v = act_eval(gate[i], kind, &d);
        dgate[i] += dact[i] * up[i] * d;
        dup[i] += dact[i] * v;
    }
}
