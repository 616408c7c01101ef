/* engine_rope: rotary position embeddings (NeoX pairing), forward and backward. */
#include <math.h>

#include "engine/engine_ops.h"

void rope_table(float *cos_t, float *sin_t, size_t max_pos, int E, double base, const float *factors) {
    int half = E / 2;
    for (int i = 0; i < half; i++) {
        double inv_freq = pow(base, -2.0 * i / (double)E);
        if (factors) inv_freq /= (double)factors[i];
        for (size_t p = 0; p < max_pos; p++) {
            double theta = (double)p * inv_freq;
            cos_t[p * (size_t)half + (size_t)i] = (float)cos(theta);
            sin_t[p * (size_t)half + (size_t)i] = (float)sin(theta);
        }
    }
}

/* Rotates each pair (x_i, x_{i+E/2}) by +θ (sign = 1) or −θ (sign = −1). */
static void rope_rotate(float *x, const int *pos, size_t n, int heads, int E, const float *cos_t,
                        const float *sin_t, float sign) {
    size_t half = (size_t)E / 2;
    for (size_t t = 0; t < n; t++) {
        const float *c = cos_t + (size_t)pos[t] * half;
        const float *s = sin_t + (size_t)pos[t] * half;
        for (int h = 0; h < heads; h++) {
            float *v = x + (t * (size_t)heads + (size_t)h) * (size_t)E;
            for (size_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}

void rope_forward(float *x, const int *pos, size_t n, int heads, int E, const float *cos_t,
                  const float *sin_t) {
    rope_rotate(x, pos, n, heads, E, cos_t, sin_t, 1.0f);
}

/* The rotation is orthogonal, so the gradient w.r.t. the input is the
 * gradient w.r.t. the output rotated back by −θ. */
void rope_backward(float *dx, const int *pos, size_t n, int heads, int E, const float *cos_t,
                   const float *sin_t) {
    rope_rotate(dx, pos, n, heads, E, cos_t, sin_t, -1.0f);
}
