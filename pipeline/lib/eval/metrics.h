/* metrics: the knowledge-editing scores — token accuracy, Bi-ZsRE/MzsRE F1 and EM, bootstrap intervals. */
#ifndef LAFN_METRICS_H
#define LAFN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"

/* EasyEdit's token_em: the share of target positions whose teacher-forced
 * argmax equals the target token. n must be > 0 (an empty target has no
 * accuracy; the caller reports it separately). */
double metrics_token_accuracy(const int32_t *predicted, const int32_t *target, size_t n);

/* The Bi-ZsRE/MzsRE evaluate.py scores of a predicted answer against a target. */
typedef struct {
    double f1;          /* |common|^2 / (|answer| * |target|), common = multiset intersection of token ids
                           (precision × recall — what the benchmarks call F1) */
    double f1_harmonic; /* 2PR / (P + R), the usual F1, reported beside it and labelled */
    int em;             /* 1 iff the decoded answer text equals the target text */
} metrics_f1_em;

/* Scores answer ids against target ids (the model tokenizer's ids, no BOS)
 * and the decoded texts. Both empty: f1 = 1, em = 1; exactly one empty: 0, 0
 * (as evaluate.py). */
metrics_f1_em metrics_bizsre_f1_em(const int32_t *answer, size_t n_answer, const int32_t *target,
                                   size_t n_target, const char *answer_text, const char *target_text);

/* Percentile bootstrap of the mean of x (n > 0 values): `samples` resamples
 * with replacement drawn from *rng_state (advanced), interval at level
 * `confidence` (e.g. 0.95). Writes mean, lo, hi. Returns 0, or -1 with err
 * for n = 0, samples < 1, confidence outside (0, 1) or no memory. */
int metrics_bootstrap_mean(const double *x, size_t n, int samples, double confidence, uint64_t *rng_state,
                           double *mean, double *lo, double *hi, lafn_err *err);

#endif
