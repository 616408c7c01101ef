/* test_edit_optimise: the edit optimiser on the tiny Gemma 3 model — loss and per-language NLL fall (checked by an independent forward), both parameter kinds, from_layer reuse, a destructive setting, the KL gradient. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit_testlib.h"
#include "testutil.h"

static double mild_kl = NAN; /* unrelated-prompt KL after the default value_vector edit */

/* The NLL (mean over target tokens, mean over prompts) of language l of view v under edit ed (NULL = unedited),
 * from the reference forward of edit_testlib.h. */
static double reference_nll(const model *m, const facts_edit_view *v, size_t l, const engine_edit *ed) {
    return etl_reference_lang_loss(m, v, l, 0, ed);
}

static double unrelated_kl(const model *m, const facts_edit_view *other, const engine_edit *ed);

static edit_hparams default_h(engine_edit_kind kind) {
    return (edit_hparams){.kind = kind, .lr = 0.1, .steps = 25, .stop_nll = 0.05, .kl_weight = 0.1, .l2 = 0.0,
                          .norm_clamp = 0.0, .reuse_lower = 1, .fused_head = 1};
}

/* The loss falls and every language's NLL falls, as the reference forward confirms. */
static void test_nll_drops(etl_fixture *fx, engine_edit_kind kind, const char *name) {
    size_t width = kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)fx->m->cfg.d_model : 1;
    float *delta = calloc((size_t)fx->nr.n * width, sizeof *delta);
    edit_hparams h = default_h(kind);
    if (kind == ENGINE_EDIT_ACTIVATION_OFFSET) h.lr = 1.0; /* one scalar per neuron needs larger steps */
    edit_result res;
    lafn_err err = {{0}};
    int rc = edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, delta, NULL, &h, MPI_COMM_SELF, &res,
                           &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    if (rc) { free(delta); return; }
    printf("%s: %d steps, loss %.4f -> %.4f (KL term %.5f)\n", name, res.steps, res.loss_first, res.loss_last,
           res.kl_last);
    CHECK(res.loss_last < res.loss_first, "%s: loss %.5f did not fall below %.5f", name, res.loss_last, res.loss_first);
    engine_edit ed = {.kind = kind, .n = fx->nr.n, .layer = fx->nr.layer, .neuron = fx->nr.neuron, .delta = delta};
    if (kind == ENGINE_EDIT_VALUE_VECTOR) mild_kl = unrelated_kl(fx->m, &fx->views[2], &ed);
    for (size_t l = 0; l < 2; l++) {
        double before = reference_nll(fx->m, &fx->views[0], l, NULL), after = reference_nll(fx->m, &fx->views[0], l, &ed);
        printf("%s: %s NLL %.4f -> %.4f (optimiser: %.4f -> %.4f)\n", name, fx->views[0].langs[l].lang, before, after,
               res.nll_before[l], res.nll_after[l]);
        /* 4 scalars move the output far less than 4 value vectors of width D */
        double margin = kind == ENGINE_EDIT_VALUE_VECTOR ? 0.5 : 0.05;
        CHECK(after < before - margin, "%s: %s: edited NLL %.4f is not %.2f below the unedited %.4f", name,
              fx->views[0].langs[l].lang, after, margin, before);
        CHECK(fabs(before - res.nll_before[l]) < 1e-3 * (1 + before), "%s: %s: optimiser's NLL before %.6f, reference %.6f",
              name, fx->views[0].langs[l].lang, res.nll_before[l], before);
        CHECK(fabs(after - res.nll_after[l]) < 1e-3 * (1 + after), "%s: %s: optimiser's NLL after %.6f, reference %.6f",
              name, fx->views[0].langs[l].lang, res.nll_after[l], after);
    }
    edit_result_free(&res);
    free(delta);
}

/* Steps that reuse the stored states below the lowest edited layer give the same deltas as full forwards. */
static void test_reuse(etl_fixture *fx) {
    size_t nd = (size_t)fx->nr.n * (size_t)fx->m->cfg.d_model;
    float *a = calloc(nd, sizeof *a), *b = calloc(nd, sizeof *b);
    edit_hparams h = default_h(ENGINE_EDIT_VALUE_VECTOR);
    h.steps = 6;
    h.stop_nll = 0.0;
    edit_result ra, rb;
    lafn_err err = {{0}};
    int rc = edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, a, NULL, &h, MPI_COMM_SELF, &ra, &err);
    CHECK(rc == 0, "reuse: %s", err.msg);
    h.reuse_lower = 0;
    rc |= edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, b, NULL, &h, MPI_COMM_SELF, &rb, &err);
    CHECK(rc == 0, "full: %s", err.msg);
    if (rc == 0) {
        double worst = 0.0;
        size_t wi = 0;
        for (size_t i = 0; i < nd; i++)
            if (fabs((double)a[i] - b[i]) > worst) { worst = fabs((double)a[i] - b[i]); wi = i; }
        printf("reuse: loss %.6f (reuse) vs %.6f (full), worst delta difference %.3g at entry %zu\n", ra.loss_last,
               rb.loss_last, worst, wi / (size_t)fx->m->cfg.d_model);
        CHECK(fabs(ra.loss_last - rb.loss_last) < 1e-4 * (1 + fabs(rb.loss_last)), "losses %.8f vs %.8f", ra.loss_last,
              rb.loss_last);
        CHECK(worst < 1e-4, "delta of entry %zu (blk.%d neuron %d) differs by %g", wi / (size_t)fx->m->cfg.d_model,
              fx->nr.layer[wi / (size_t)fx->m->cfg.d_model], fx->nr.neuron[wi / (size_t)fx->m->cfg.d_model], worst);
        edit_result_free(&ra);
        edit_result_free(&rb);
    }
    free(a);
    free(b);
}

/* KL(unedited || edited) of the next-token distribution after an unrelated prompt (never in the problem). */
static double unrelated_kl(const model *m, const facts_edit_view *other, const engine_edit *ed) {
    stage_sequence s = {0};
    lafn_err err;
    if (stage_sequence_build(m->tok, other->langs[0].lang, other->langs[0].prompts[0], NULL, &s, &err)) return NAN;
    size_t V = (size_t)m->cfg.vocab;
    int len = (int)s.n_prompt, pos = len - 1;
    engine_run *r = NULL;
    engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = s.ids};
    engine_forward_opts o = engine_forward_defaults();
    o.logit_pos = &pos;
    o.n_logit_pos = 1;
    float *lp0 = malloc(V * sizeof *lp0);
    double kl = NAN;
    if (engine_run_init(&r, m, (size_t)len, 1, &err) == 0 && engine_forward(r, &b, &o, &err) == 0) {
        edit_log_softmax(engine_logits(r), (int)V, lp0);
        o.edit = ed;
        if (engine_forward(r, &b, &o, &err) == 0) kl = edit_kl_row(lp0, engine_logits(r), (int)V, 0.0, NULL);
    }
    free(lp0);
    engine_run_free(r);
    stage_sequence_free(&s);
    return kl;
}

/* A destructive setting (huge lr, no KL, always applied) also changes an unrelated prompt; a zero delta changes nothing. */
static void test_destructive(etl_fixture *fx) {
    size_t nd = (size_t)fx->nr.n * (size_t)fx->m->cfg.d_model;
    float *delta = calloc(nd, sizeof *delta);
    engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = fx->nr.n, .layer = fx->nr.layer, .neuron = fx->nr.neuron,
                      .delta = delta};
    double kl0 = unrelated_kl(fx->m, &fx->views[2], &ed);
    CHECK(fabs(kl0) < 1e-5, "a zero delta changed the unrelated prompt: KL %g", kl0);
    edit_hparams h = default_h(ENGINE_EDIT_VALUE_VECTOR);
    h.lr = 20.0;
    h.kl_weight = 0.0;
    h.steps = 10;
    h.stop_nll = 0.0;
    edit_result res;
    lafn_err err = {{0}};
    int rc = edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, delta, NULL, &h, MPI_COMM_SELF, &res,
                           &err);
    CHECK(rc == 0, "destructive: %s", err.msg);
    double kl = unrelated_kl(fx->m, &fx->views[2], &ed);
    printf("destructive: KL(unedited || edited) on the unrelated prompt '%s': %.4f (default edit: %.4f, zero "
           "delta: %.2g)\n", fx->views[2].langs[0].prompts[0], kl, mild_kl, kl0);
    CHECK(kl > 0.1, "destructive edit left the unrelated prompt nearly unchanged: KL %g", kl);
    if (rc == 0) edit_result_free(&res);
    /* the KL term works: the same edit with a large kl_weight moves the unrelated prompt less */
    h = default_h(ENGINE_EDIT_VALUE_VECTOR);
    h.kl_weight = 10.0;
    memset(delta, 0, nd * sizeof *delta);
    rc = edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, delta, NULL, &h, MPI_COMM_SELF, &res, &err);
    CHECK(rc == 0, "kl_weight 10: %s", err.msg);
    double kl_reg = unrelated_kl(fx->m, &fx->views[2], &ed);
    printf("kl_weight 10: unrelated KL %.4f (kl_weight 0.1: %.4f)\n", kl_reg, mild_kl);
    CHECK(kl_reg < mild_kl, "kl_weight 10 gives unrelated KL %g, not below kl_weight 0.1's %g", kl_reg, mild_kl);
    if (rc == 0) edit_result_free(&res);
    free(delta);
}

/* keep_best: the delta handed back after 8 steps is the lowest-loss one of
 * the run. Runs of k = 0..8 steps without keep_best give the loss after each
 * step (the loop is deterministic); with a step size that overshoots, the
 * kept loss must equal their minimum, which the last step does not reach —
 * here the start, so the kept delta is the zero one. */
static void test_keep_best(etl_fixture *fx) {
    enum { STEPS = 8 };
    size_t nd = (size_t)fx->nr.n * (size_t)fx->m->cfg.d_model;
    float *delta = calloc(nd, sizeof *delta);
    edit_hparams h = default_h(ENGINE_EDIT_VALUE_VECTOR);
    h.lr = 20.0;
    h.l2 = 0.0003; /* with it Adam overshoots from the first step on */
    h.stop_nll = 0.0;
    double loss[STEPS + 1], lowest = INFINITY;
    edit_result r;
    lafn_err err = {{0}};
    int rc = 0;
    printf("keep_best: lr %g, l2 %g, loss after each step:", h.lr, h.l2);
    for (int k = 0; k <= STEPS && rc == 0; k++) {
        h.steps = k;
        memset(delta, 0, nd * sizeof *delta);
        rc = edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, delta, NULL, &h, MPI_COMM_SELF, &r, &err);
        if (rc) break;
        loss[k] = r.loss_last;
        lowest = fmin(lowest, loss[k]);
        printf(" %.4f", loss[k]);
        edit_result_free(&r);
    }
    printf("\n");
    CHECK(rc == 0, "keep_best trajectory: %s", err.msg);
    h.steps = STEPS;
    h.keep_best = 1;
    memset(delta, 0, nd * sizeof *delta);
    if (rc == 0)
        rc = edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, delta, NULL, &h, MPI_COMM_SELF, &r, &err);
    CHECK(rc == 0, "keep_best on: %s", err.msg);
    if (rc == 0) {
        printf("keep_best: kept delta's loss %.4f, lowest %.4f, last %.4f\n", r.loss_last, lowest, loss[STEPS]);
        CHECK(loss[STEPS] > lowest, "the last step is the lowest (%.4f): the case tests nothing", loss[STEPS]);
        CHECK(fabs(r.loss_last - lowest) < 1e-9 * (1 + lowest), "keep_best kept loss %.6f, the lowest was %.6f",
              r.loss_last, lowest);
        size_t nonzero = 0;
        for (size_t i = 0; i < nd; i++) nonzero += delta[i] != 0.0f;
        CHECK((lowest == loss[0]) == (nonzero == 0), "kept delta has %zu non-zero entries; lowest loss %s the start's",
              nonzero, lowest == loss[0] ? "is" : "is not");
        edit_result_free(&r);
    }
    free(delta);
}

/* One language only (eval's edit_sets = each): only that slot is optimised and reported. */
static void test_one_language(etl_fixture *fx) {
    float *delta = malloc((size_t)fx->nr.n * (size_t)fx->m->cfg.d_model * sizeof *delta);
    edit_hparams h = default_h(ENGINE_EDIT_VALUE_VECTOR);
    edit_result res;
    lafn_err err = {{0}};
    int rc = edit_optimise_fact(fx->m, fx->views, 3, 0, "de", fx->nr.n, fx->nr.layer, fx->nr.neuron, &h, delta, &res,
                                &err);
    CHECK(rc == 0, "one language: %s", err.msg);
    if (rc == 0) {
        printf("de only: de NLL %.4f -> %.4f, en not optimised (%g)\n", res.nll_before[1], res.nll_after[1],
               res.nll_after[0]);
        CHECK(res.nll_after[1] < res.nll_before[1] - 0.5, "de NLL %g -> %g", res.nll_before[1], res.nll_after[1]);
        CHECK(isnan(res.nll_after[0]), "en slot must be absent, got %g", res.nll_after[0]);
        edit_result_free(&res);
    }
    free(delta);
}

/* edit_kl_row's gradient against central differences of its value. */
static void test_kl_gradient(void) {
    enum { V = 7 };
    float z0[V] = {0.3f, -1.2f, 2.0f, 0.0f, 0.7f, -0.4f, 1.1f}, z[V] = {1.0f, -0.5f, 0.2f, 0.4f, -1.0f, 0.9f, 0.1f};
    float lp0[V], g[V];
    edit_log_softmax(z0, V, lp0);
    edit_kl_row(lp0, z, V, 1.0, g);
    double worst = 0.0;
    int wv = 0;
    for (int v = 0; v < V; v++) {
        float zp[V], zm[V];
        memcpy(zp, z, sizeof z);
        memcpy(zm, z, sizeof z);
        zp[v] += 1e-3f;
        zm[v] -= 1e-3f;
        double fd = (edit_kl_row(lp0, zp, V, 0, NULL) - edit_kl_row(lp0, zm, V, 0, NULL)) / 2e-3;
        if (fabs(fd - g[v]) > worst) { worst = fabs(fd - g[v]); wv = v; }
    }
    CHECK(worst < 1e-3, "KL gradient of logit %d off by %g", wv, worst);
    CHECK(edit_kl_row(lp0, z0, V, 0, NULL) < 1e-6, "KL of a distribution with itself is not 0");
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    lafn_err err = {{0}};
    etl_fixture fx;
    test_kl_gradient();
    int rc = etl_fixture_init(&fx, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc == 0) {
        printf("neurons:");
        for (int e = 0; e < fx.nr.n; e++) printf(" blk.%d[%d]", fx.nr.layer[e], fx.nr.neuron[e]);
        printf("; %zu sequences\n", fx.p.n_seqs);
        test_nll_drops(&fx, ENGINE_EDIT_VALUE_VECTOR, "value_vector");
        test_nll_drops(&fx, ENGINE_EDIT_ACTIVATION_OFFSET, "activation_offset");
        test_reuse(&fx);
        test_keep_best(&fx);
        test_one_language(&fx);
        test_destructive(&fx);
    }
    etl_fixture_free(&fx);
    int status = testutil_finish("test_edit_optimise");
    MPI_Finalize();
    return status;
}
