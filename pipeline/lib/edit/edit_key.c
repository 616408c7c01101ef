/* edit_key: unit keys of prompt states, nearest-key cosine, and the per-fact threshold. */
#include "edit/edit_key.h"

#include <math.h>

void edit_key_of(const float *h, const float *c, int D, float *out) {
    double ss = 0.0;
    for (int i = 0; i < D; i++) {
        out[i] = h[i] - c[i];
        ss += (double)out[i] * out[i];
    }
    float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int i = 0; i < D; i++) out[i] *= inv;
}

/* Dot product of two D-vectors, accumulated in double. */
static double dot(const float *a, const float *b, int D) {
    double s = 0.0;
    for (int i = 0; i < D; i++) s += (double)a[i] * b[i];
    return s;
}

float edit_key_nearest(const float *q, const float *keys, int n, int D) {
    double best = -1.0;
    for (int k = 0; k < n; k++) {
        double d = dot(q, keys + (size_t)k * (size_t)D, D);
        if (d > best) best = d;
    }
    return (float)best;
}

float edit_key_threshold(const float *own, int n_own, const float *neg, int n_neg, int D, float floor, float margin) {
    float t = -1.0f;
    for (int j = 0; j < n_neg; j++) {
        float d = edit_key_nearest(neg + (size_t)j * (size_t)D, own, n_own, D) + margin;
        if (d > t) t = d;
    }
    if (t < floor) t = floor;
    return t < EDIT_KEY_MAX_THRESHOLD ? t : EDIT_KEY_MAX_THRESHOLD;
}
