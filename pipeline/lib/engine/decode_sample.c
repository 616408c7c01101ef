/* decode_sample: choosing tokens from a row of logits — argmax, the top k, and temperature/top-p sampling. */
#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "engine/decode_int.h"

double decode_row_lse(const float *z, int V) {
    float mx = z[decode_row_argmax(z, V)];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
    return mx + log(sum);
}

int32_t decode_row_argmax(const float *z, int V) {
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    return best;
}

int decode_row_top(const float *z, int V, int k, int32_t *ids) {
    int n = 0;
    for (int v = 0; v < V; v++) {
        if (n == k && z[v] <= z[ids[k - 1]]) continue;
        int i = n < k ? n++ : k - 1; /* insert v, dropping the last if full */
        while (i > 0 && z[v] > z[ids[i - 1]]) {
            ids[i] = ids[i - 1];
            i--;
        }
        ids[i] = v;
    }
    return n;
}

/* Heavier weight first, lower id first among equals (the argmax's order). */
static int cand_cmp(const void *a, const void *b) {
    const decode_cand *x = a, *y = b;
    if (x->w != y->w) return x->w < y->w ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The top-p nucleus of weights w_v = exp((z_v − max) / temperature) summing to
 * total: sorts the candidates with w ≥ θ, lowering θ until their mass reaches
 * top_p·total (every token left out weighs less than each one kept, so the
 * nucleus is a prefix of them). Returns the nucleus size; *mass its weight. */
static size_t nucleus(decode_cand *cand, const float *w, int V, double total, double top_p, double *mass) {
    size_t n = 0;
    double goal = top_p * total, got = 0.0;
    for (double theta = 1e-3;; theta = theta > 1e-30 ? theta * 1e-3 : 0.0) {
        n = 0;
        got = 0.0;
        for (int v = 0; v < V; v++)
            if (w[v] >= theta) {
                cand[n++] = (decode_cand){.w = w[v], .id = v};
                got += w[v];
            }
        if (got >= goal || theta == 0.0) break;
    }
    qsort(cand, n, sizeof *cand, cand_cmp);
    double cum = 0.0;
    size_t k = 0;
    while (k < n && (k == 0 || cum < goal)) cum += cand[k++].w;
    *mass = cum;
    return k;
}

int32_t decode_row_sample(decode_ctx *c, const float *z, uint64_t *rng) {
    int V = c->m->cfg.vocab;
    float mx = z[decode_row_argmax(z, V)], inv_t = 1.0f / c->o->temperature;
    float *w = c->weight;
    double total = 0.0;
    for (int v = 0; v < V; v++) total += w[v] = expf((z[v] - mx) * inv_t);
    if (c->o->top_p >= 1.0f) {
        double u = rng_uniform(rng) * total, cum = 0.0;
        for (int v = 0; v < V; v++)
            if ((cum += w[v]) > u) return v;
        return decode_row_argmax(z, V);
    }
    double mass;
    size_t k = nucleus(c->cand, w, V, total, c->o->top_p, &mass);
    double u = rng_uniform(rng) * mass, cum = 0.0;
    for (size_t i = 0; i < k; i++)
        if ((cum += c->cand[i].w) > u) return c->cand[i].id;
    return c->cand[0].id;
}
