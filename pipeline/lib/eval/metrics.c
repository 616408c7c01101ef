/* metrics: token accuracy, the benchmarks' F1/EM over token-id multisets, and bootstrap confidence intervals. */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

double metrics_token_accuracy(const int32_t *predicted, const int32_t *target, size_t n) {
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) hits += predicted[i] == target[i];
    return (double)hits / (double)n;
}

static int compare_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Size of the multiset intersection of two sorted id arrays. */
static size_t sorted_common(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0, j = 0, common = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) { common++; i++; j++; }
        else if (a[i] < b[j]) i++;
        else j++;
    }
    return common;
}

metrics_f1_em metrics_bizsre_f1_em(const int32_t *answer, size_t n_answer, const int32_t *target,
                                   size_t n_target, const char *answer_text, const char *target_text) {
    metrics_f1_em r = {0.0, 0.0, 0};
    if (n_answer == 0 && n_target == 0) return (metrics_f1_em){1.0, 1.0, 1};
    if (n_answer == 0 || n_target == 0) return r;
    r.em = strcmp(answer_text, target_text) == 0;
    int32_t *a = malloc(n_answer * sizeof *a), *b = malloc(n_target * sizeof *b);
    if (!a || !b) { free(a); free(b); r.f1 = r.f1_harmonic = NAN; return r; }
    memcpy(a, answer, n_answer * sizeof *a);
    memcpy(b, target, n_target * sizeof *b);
    qsort(a, n_answer, sizeof *a, compare_i32);
    qsort(b, n_target, sizeof *b, compare_i32);
    double common = (double)sorted_common(a, n_answer, b, n_target);
    free(a);
    free(b);
    double precision = common / (double)n_answer, recall = common / (double)n_target;
    r.f1 = precision * recall;
    r.f1_harmonic = common > 0 ? 2.0 * precision * recall / (precision + recall) : 0.0;
    return r;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int metrics_bootstrap_mean(const double *x, size_t n, int samples, double confidence, uint64_t *rng_state,
                           double *mean, double *lo, double *hi, lafn_err *err) {
    if (n == 0) return lafn_err_set(err, "bootstrap: no values to average");
    if (samples < 1) return lafn_err_set(err, "bootstrap: samples must be >= 1, got %d", samples);
    if (!(confidence > 0.0 && confidence < 1.0))
        return lafn_err_set(err, "bootstrap: confidence must be in (0, 1), got %g", confidence);
    double *means = malloc((size_t)samples * sizeof *means);
    if (!means) return lafn_err_set(err, "bootstrap: out of memory for %d samples", samples);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    *mean = sum / (double)n;
    for (int s = 0; s < samples; s++) {
        double resampled = 0.0;
        for (size_t i = 0; i < n; i++) resampled += x[rng_below(rng_state, n)];
        means[s] = resampled / (double)n;
    }
    qsort(means, (size_t)samples, sizeof *means, compare_double);
    double tail = (1.0 - confidence) / 2.0;
    size_t lo_i = (size_t)floor(tail * (samples - 1)), hi_i = (size_t)ceil((1.0 - tail) * (samples - 1));
    *lo = means[lo_i];
    *hi = means[hi_i];
    free(means);
    return 0;
}
