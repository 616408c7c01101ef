/* engine_loss: teacher-forced negative log-likelihood of targets at scored positions, and its logit gradient. */
#include <math.h>

#include "engine/engine.h"

double engine_nll(const float *logits, int n_pos, int vocab, const int32_t *target,
                  const float *weight, float *logp, float *dlogits) {
    double nll = 0.0;
    for (int p = 0; p < n_pos; p++) {
        const float *z = logits + (size_t)p * (size_t)vocab;
        float mx = z[0];
        for (int v = 1; v < vocab; v++)
            if (z[v] > mx) mx = z[v];
        double sum = 0.0;
        for (int v = 0; v < vocab; v++) sum += expf(z[v] - mx); /* ≤ 1 each, summed in double */
        double lse = mx + log(sum);
        double lp = (double)z[target[p]] - lse;
        double w = weight ? (double)weight[p] : 1.0;
        if (logp) logp[p] = (float)lp;
        nll -= w * lp;
        if (!dlogits) continue;
        float *dz = dlogits + (size_t)p * (size_t)vocab;
        float fl = (float)lse, fw = (float)w;
        for (int v = 0; v < vocab; v++) dz[v] = fw * expf(z[v] - fl);
        dz[target[p]] -= (float)w;
    }
    return nll;
}
