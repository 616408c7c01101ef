/* engine_norm: RMSNorm forward and backward over rows (layer norms, final norm, QK-norm). */
#include <math.h>

#include "engine/engine_ops.h"

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                     size_t n, size_t d, float eps) {
    for (size_t i = 0; i < n; i++) {
        const float *x = inp + i * d;
        float *y = out + i * d;
        double ss = 0.0;
        for (size_t j = 0; j < d; j++) ss += (double)x[j] * x[j];
        float r = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        for (size_t j = 0; j < d; j++) y[j] = x[j] * r * w[j];
        rstd[i] = r;
    }
}

/* With x̂ = x·r, y = x̂ ⊙ w and r = (mean(x²) + eps)^(-1/2):
 * dx = r · (g − x̂ · mean(g ⊙ x̂)) where g = dy ⊙ w. */
void rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t n, size_t d) {
    for (size_t i = 0; i < n; i++) {
        const float *x = inp + i * d;
        const float *dy = dout + i * d;
        float *dx = dinp + i * d;
        float r = rstd[i];
        double dot = 0.0;
        for (size_t j = 0; j < d; j++) dot += (double)dy[j] * w[j] * x[j] * r;
        float m = (float)(dot / (double)d);
        for (size_t j = 0; j < d; j++) dx[j] += r * (dy[j] * w[j] - x[j] * r * m);
    }
}
