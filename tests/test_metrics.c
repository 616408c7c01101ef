/* test_metrics: the scores against hand-computed cases, including evaluate.py's F1 and its edge cases. */
#include <math.h>
#include <string.h>

#include "eval/metrics.h"
#include "testutil.h"

static void check_close(double got, double want, const char *what) {
    CHECK(fabs(got - want) < 1e-12, "%s: got %.15g, want %.15g", what, got, want);
}

static void test_token_accuracy(void) {
    const int32_t pred[] = {5, 7, 9, 11}, target[] = {5, 8, 9, 12};
    check_close(metrics_token_accuracy(pred, target, 4), 0.5, "2 of 4 tokens");
    check_close(metrics_token_accuracy(pred, target, 1), 1.0, "single-token target");
}

static void test_f1(void) {
    /* answer {1,2,2,3}, target {2,2,4}: common {2,2} = 2; f1 = 4 / (4*3) = 1/3;
     * P = 2/4, R = 2/3, harmonic = 2*(1/2)(2/3)/(1/2+2/3) = 4/7. */
    const int32_t a[] = {3, 2, 1, 2}, b[] = {2, 4, 2};
    metrics_f1_em r = metrics_bizsre_f1_em(a, 4, b, 3, "x y", "x z");
    check_close(r.f1, 1.0 / 3.0, "f1 of {1,2,2,3} vs {2,2,4}");
    check_close(r.f1_harmonic, 4.0 / 7.0, "harmonic f1 of {1,2,2,3} vs {2,2,4}");
    CHECK(r.em == 0, "different texts are not an exact match");
    /* A repeated id counts once per occurrence on both sides: {7,7,7} vs {7}: common 1, f1 = 1/3. */
    const int32_t c[] = {7, 7, 7}, d[] = {7};
    check_close(metrics_bizsre_f1_em(c, 3, d, 1, "a", "b").f1, 1.0 / 3.0, "multiset, not set");
    /* Identical answers: f1 1, em 1. */
    metrics_f1_em same = metrics_bizsre_f1_em(b, 3, b, 3, "Paris", "Paris");
    check_close(same.f1, 1.0, "identical f1");
    CHECK(same.em == 1, "identical texts match exactly");
    /* No overlap. */
    const int32_t e[] = {1}, f[] = {2};
    check_close(metrics_bizsre_f1_em(e, 1, f, 1, "a", "b").f1_harmonic, 0.0, "no overlap");
    /* Edge cases of evaluate.py: both empty = 1/1, one empty = 0/0. */
    metrics_f1_em both = metrics_bizsre_f1_em(NULL, 0, NULL, 0, "", "");
    check_close(both.f1, 1.0, "both empty f1");
    CHECK(both.em == 1, "both empty em");
    metrics_f1_em one = metrics_bizsre_f1_em(e, 1, NULL, 0, "a", "");
    check_close(one.f1, 0.0, "empty target f1");
    CHECK(one.em == 0, "empty target em");
}

static void test_bootstrap(void) {
    lafn_err err = {{0}};
    const double constant[] = {0.25, 0.25, 0.25, 0.25};
    uint64_t rng = 42;
    double mean, lo, hi;
    CHECK(metrics_bootstrap_mean(constant, 4, 200, 0.95, &rng, &mean, &lo, &hi, &err) == 0, "%s", err.msg);
    check_close(mean, 0.25, "mean of constants");
    check_close(lo, 0.25, "interval of constants (lo)");
    check_close(hi, 0.25, "interval of constants (hi)");
    /* 0/1 values with mean 0.5 over 100: the 95% interval is about ±0.1 and must contain the mean. */
    double coin[100];
    for (int i = 0; i < 100; i++) coin[i] = i % 2;
    rng = 7;
    CHECK(metrics_bootstrap_mean(coin, 100, 2000, 0.95, &rng, &mean, &lo, &hi, &err) == 0, "%s", err.msg);
    CHECK(lo < 0.5 && hi > 0.5 && lo > 0.35 && hi < 0.65, "interval [%g, %g] around 0.5", lo, hi);
    /* The same seed reproduces the same interval. */
    double lo2, hi2;
    rng = 7;
    metrics_bootstrap_mean(coin, 100, 2000, 0.95, &rng, &mean, &lo2, &hi2, &err);
    CHECK(lo == lo2 && hi == hi2, "seeded bootstrap is reproducible");
    CHECK(metrics_bootstrap_mean(coin, 0, 10, 0.95, &rng, &mean, &lo, &hi, &err) != 0 && strstr(err.msg, "no values"),
          "empty input rejected: %s", err.msg);
    CHECK(metrics_bootstrap_mean(coin, 10, 10, 1.5, &rng, &mean, &lo, &hi, &err) != 0 && strstr(err.msg, "confidence"),
          "bad confidence rejected: %s", err.msg);
}

int main(void) {
    test_token_accuracy();
    test_f1();
    test_bootstrap();
    return testutil_finish("test_metrics");
}
