/* engine_ffn: projections (sgemm over all tokens) and the gated FFN activation, forward and backward. */
#include <cblas.h>
#include <math.h>

#include "engine_ops.h"

void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    size_t n, size_t din, size_t dout) {
    if (n == 0) return;
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

/* GELU, tanh approximation (HF gelu_pytorch_tanh): 0.5 x (1 + tanh(c (x + 0.044715 x³))). */
#define GELU_C 0.7978845608028654 /* sqrt(2/pi) */

static float act_value(float x, model_act kind) {
    if (kind == MODEL_ACT_SILU) return x / (1.0f + expf(-x));
    float t = tanhf((float)GELU_C * (x + 0.044715f * x * x * x));
    return 0.5f * x * (1.0f + t);
}

static float act_deriv(float x, model_act kind) {
    if (kind == MODEL_ACT_SILU) {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    float u = (float)GELU_C * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    float du = (float)GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

void glu_forward(float *act, const float *gate, const float *up, size_t n, size_t f, model_act kind) {
    for (size_t i = 0; i < n * f; i++) act[i] = act_value(gate[i], kind) * up[i];
}

void glu_backward(float *dgate, float *dup, const float *dact, const float *gate, const float *up,
                  size_t n, size_t f, model_act kind) {
    for (size_t i = 0; i < n * f; i++) {
        dgate[i] += dact[i] * up[i] * act_deriv(gate[i], kind);
        dup[i] += dact[i] * act_value(gate[i], kind);
    }
}
