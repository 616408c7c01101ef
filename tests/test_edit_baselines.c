/* test_edit_baselines: the fine-tuning baselines on the tiny Gemma 3 — FT-L's L-infinity bound and last-token objective, FT-M's masked answer loss, and that a whole layer of value vectors is the dense matrix update. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_method.h"
#include "edit_testlib.h"
#include "testutil.h"

/* The baseline's hyper-parameters and layer through the pipeline-file path (edit.method and its section). */
static int baseline_hparams(const char *method, const char *extra, const model *m, edit_hparams *h, int *layer) {
    lafn_config cfg = {0};
    lafn_err err = {{0}};
    char a[64];
    snprintf(a, sizeof a, "edit.method=%s", method);
    char *ov[2] = {a, (char *)extra};
    int n_layers = 0, rc = config_defaults(&cfg, &err);
    if (rc == 0) rc = config_override_all(&cfg, ov, extra ? 2 : 1, &err);
    if (rc == 0) rc = edit_hparams_from_config(&cfg, h, &err);
    if (rc == 0) rc = edit_method_layers(&cfg, method, m->cfg.n_layer, layer, 1, &n_layers, &err);
    CHECK(rc == 0 && n_layers == 1, "%s: %s", method, err.msg);
    config_free(&cfg);
    return rc;
}

/* Optimises fact 0 of the fixture with h on every neuron of `layer`; delta (F, D) is allocated here. */
static int run_whole_layer(etl_fixture *fx, const edit_hparams *h, int layer, int *lay, int *neu, float **delta,
                           edit_result *res) {
    int F = fx->m->cfg.d_ffn;
    for (int j = 0; j < F; j++) lay[j] = layer, neu[j] = j;
    *delta = calloc((size_t)F * (size_t)fx->m->cfg.d_model, sizeof **delta);
    lafn_err err = {{0}};
    int rc = edit_optimise(fx->m, &fx->p, F, lay, neu, *delta, NULL, h, MPI_COMM_SELF, res, &err);
    CHECK(rc == 0, "edit_optimise: %s", err.msg);
    return rc;
}

/* The optimiser's per-language losses before and after equal the reference objective. */
static void check_objective(etl_fixture *fx, const char *name, int prompt_last, const engine_edit *ed,
                            const edit_result *res) {
    for (size_t l = 0; l < 2; l++) {
        double before = etl_reference_lang_loss(fx->m, &fx->views[0], l, prompt_last, NULL);
        double after = etl_reference_lang_loss(fx->m, &fx->views[0], l, prompt_last, ed);
        printf("%s: %s loss %.4f -> %.4f (optimiser %.4f -> %.4f)\n", name, fx->views[0].langs[l].lang, before, after,
               res->nll_before[l], res->nll_after[l]);
        CHECK(fabs(before - res->nll_before[l]) < 1e-3 * (1 + before), "%s: %s: optimiser's loss before %.6f, "
              "reference %.6f", name, fx->views[0].langs[l].lang, res->nll_before[l], before);
        CHECK(fabs(after - res->nll_after[l]) < 1e-3 * (1 + after), "%s: %s: optimiser's loss after %.6f, reference "
              "%.6f", name, fx->views[0].langs[l].lang, res->nll_after[l], after);
        CHECK(after < before - 0.1, "%s: %s: loss %.4f did not fall below %.4f", name, fx->views[0].langs[l].lang,
              after, before);
    }
}

/* FT-L: every element of the change stays within norm_constraint of the original matrix, and the bound binds. */
static void test_ft_l(etl_fixture *fx) {
    edit_hparams h;
    int layer, lay[4096], neu[4096];
    if (baseline_hparams("ft_l", "ft_l.lr=0.01", fx->m, &h, &layer)) return;
    CHECK(h.prompt_last == 1 && h.linf == 5e-4 && h.steps == 25 && h.kl_weight == 0.0,
          "ft_l: prompt_last %d, norm_constraint %g, num_steps %d, kl %g: not EasyEdit's FT-L", h.prompt_last, h.linf,
          h.steps, h.kl_weight);
    h.linf = 0.02; /* a bound the tiny model can edit within */
    float *delta = NULL;
    edit_result res = {0};
    if (run_whole_layer(fx, &h, layer, lay, neu, &delta, &res) == 0) {
        size_t nd = (size_t)fx->m->cfg.d_ffn * (size_t)fx->m->cfg.d_model, at = 0;
        double worst = 0.0;
        for (size_t i = 0; i < nd; i++)
            if (fabs(delta[i]) > worst) worst = fabs(delta[i]), at = i;
        printf("ft_l: blk.%d.ffn_down, %d steps, max |delta| %.6g (bound %g) at neuron %zu\n", layer, res.steps, worst,
               h.linf, at / (size_t)fx->m->cfg.d_model);
        CHECK(worst <= (float)h.linf, "ft_l: |delta| %.9g of blk.%d neuron %zu exceeds norm_constraint %g", worst, layer,
              at / (size_t)fx->m->cfg.d_model, h.linf);
        CHECK(worst >= 0.999 * h.linf, "ft_l: max |delta| %.6g never reached the bound %g: the test cannot tell", worst,
              h.linf);
        engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = fx->m->cfg.d_ffn, .layer = lay, .neuron = neu,
                          .delta = delta};
        check_objective(fx, "ft_l", 1, &ed, &res);
    }
    edit_result_free(&res);
    free(delta);
}

/* The logits of fact 0's first prompt with W_down of `layer` replaced by W_down + delta^T (the dense update),
 * against the value-vector edit of every column: the stored form applies the same change. */
static void check_dense(etl_fixture *fx, int layer, const int *lay, const int *neu, const float *delta) {
    size_t D = (size_t)fx->m->cfg.d_model, F = (size_t)fx->m->cfg.d_ffn, V = (size_t)fx->m->cfg.vocab;
    const facts_prompt_set *ps = &fx->views[0].langs[0];
    stage_sequence s = {0};
    lafn_err err = {{0}};
    CHECK(stage_sequence_build(fx->m->tok, ps->lang, ps->prompts[0], NULL, &s, &err) == 0, "%s", err.msg);
    int len = (int)s.n_prompt, pos = len - 1;
    engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = s.ids};
    engine_forward_opts o = engine_forward_defaults();
    o.logit_pos = &pos;
    o.n_logit_pos = 1;
    engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = (int)F, .layer = lay, .neuron = neu, .delta = delta};
    float *edited = malloc(V * sizeof *edited), *w = (float *)fx->m->w.layers[layer].w_down; /* (D, F) */
    float *saved = malloc(D * F * sizeof *saved);
    engine_run *r = NULL;
    int rc = engine_run_init(&r, fx->m, s.n_prompt, 1, &err);
    o.edit = &ed;
    if (rc == 0) rc = engine_forward(r, &b, &o, &err);
    if (rc == 0) memcpy(edited, engine_logits(r), V * sizeof *edited);
    memcpy(saved, w, D * F * sizeof *saved);
    for (size_t j = 0; j < F; j++)
        for (size_t i = 0; i < D; i++) w[i * F + j] += delta[j * D + i];
    o.edit = NULL;
    if (rc == 0) rc = engine_forward(r, &b, &o, &err);
    CHECK(rc == 0, "dense forward: %s", err.msg);
    double worst = 0.0, scale = 0.0;
    for (size_t v = 0; rc == 0 && v < V; v++) {
        worst = fmax(worst, fabs((double)engine_logits(r)[v] - edited[v]));
        scale = fmax(scale, fabs((double)edited[v]));
    }
    memcpy(w, saved, D * F * sizeof *saved);
    printf("dense: W_down + delta vs %zu value vectors: max |logit difference| %.3g of max |logit| %.3g\n", F, worst,
           scale);
    CHECK(worst <= 1e-5 * scale, "the value vectors of every column differ from the dense update by %.3g", worst);
    engine_run_free(r);
    stage_sequence_free(&s);
    free(edited);
    free(saved);
}

/* FT-M: the teacher-forced loss on the answer tokens only, unconstrained; the stored form is the dense update. */
static void test_ft_m(etl_fixture *fx) {
    edit_hparams h;
    int layer, lay[4096], neu[4096];
    if (baseline_hparams("ft_m", "ft_m.lr=0.01", fx->m, &h, &layer)) return;
    CHECK(h.prompt_last == 0 && h.linf == 0.0 && h.lr == 0.01, "ft_m: prompt_last %d, norm_constraint %g, lr %g",
          h.prompt_last, h.linf, h.lr);
    float *delta = NULL;
    edit_result res = {0};
    if (run_whole_layer(fx, &h, layer, lay, neu, &delta, &res) == 0) {
        engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = fx->m->cfg.d_ffn, .layer = lay, .neuron = neu,
                          .delta = delta};
        check_objective(fx, "ft_m", 0, &ed, &res);
        check_dense(fx, layer, lay, neu, delta);
    }
    edit_result_free(&res);
    free(delta);
}

/* The knobs are checked with messages naming them. */
static void test_config(const model *m) {
    lafn_config cfg = {0};
    lafn_err err = {{0}};
    int layers[4], n = 0;
    CHECK(config_defaults(&cfg, &err) == 0, "%s", err.msg);
    CHECK(config_override(&cfg, "ft_l.layers=[7]", &err) == 0, "%s", err.msg);
    CHECK(edit_method_layers(&cfg, "ft_l", m->cfg.n_layer, layers, 4, &n, &err) != 0 && strstr(err.msg, "ft_l.layers"),
          "layer 7 of a 3-layer model accepted, or the message does not name ft_l.layers: %s", err.msg);
    edit_trigger t;
    CHECK(edit_trigger_from_config(&cfg, &t, &err) == 0 && t.gate == 1.0f, "lafn: gate %g, expected edit.gate 1",
          (double)t.gate);
    CHECK(config_override(&cfg, "edit.method=ft_m", &err) == 0, "%s", err.msg);
    CHECK(edit_trigger_from_config(&cfg, &t, &err) == 0 && t.gate == 0.0f,
          "ft_m: gate %g, expected 0: a baseline's edit applies to every input", (double)t.gate);
    CHECK(config_override(&cfg, "edit.param=activation_offset", &err) != 0 && strstr(err.msg, "edit.method"),
          "ft_m with activation offsets accepted: %s", err.msg);
    config_free(&cfg);
}

/* The run id of stage under the defaults with the overrides ov[0..n): edit's (stage "edit") or eval's run id. */
static void run_id_of(const char *stage, const char *const *ov, int n, char out[STAGE_RUN_ID_LEN + 1]) {
    lafn_config cfg = {0};
    lafn_err err = {{0}};
    out[0] = '\0';
    int rc = config_defaults(&cfg, &err);
    if (rc == 0) rc = config_override_all(&cfg, (char *const *)ov, (size_t)n, &err);
    if (rc == 0) rc = stage_run_id(&cfg, "00", stage, out, &err);
    CHECK(rc == 0, "run id: %s", err.msg);
    config_free(&cfg);
}

/* The run ids of edit and eval change with the method and its own knobs only; lafn's stay what they were. */
static void test_run_ids(void) {
    static const char *const lafn[] = {"edit.method=lafn", "ft_l.lr=0.1"}, *const ftl[] = {"edit.method=ft_l"},
                             *const ftl_lr[] = {"edit.method=ft_l", "ft_l.lr=0.1"},
                             *const ftl_other[] = {"edit.method=ft_l", "ft_m.lr=0.1"}, *const ftm[] = {"edit.method=ft_m"};
    for (int s = 0; s < 2; s++) {
        const char *stage = s ? "eval" : "edit";
        char base[STAGE_RUN_ID_LEN + 1], a[STAGE_RUN_ID_LEN + 1], b[STAGE_RUN_ID_LEN + 1], c[STAGE_RUN_ID_LEN + 1],
            d[STAGE_RUN_ID_LEN + 1], e[STAGE_RUN_ID_LEN + 1];
        run_id_of(stage, NULL, 0, base);
        run_id_of(stage, lafn, 2, a);
        run_id_of(stage, ftl, 1, b);
        run_id_of(stage, ftl_lr, 2, c);
        run_id_of(stage, ftl_other, 2, d);
        run_id_of(stage, ftm, 1, e);
        CHECK(!strcmp(base, a), "%s: lafn's run id changed with a baseline's knob", stage);
        CHECK(strcmp(base, b) && strcmp(b, c) && strcmp(b, e), "%s: the run id does not change with edit.method or "
              "ft_l.lr", stage);
        CHECK(!strcmp(b, d), "%s: ft_l's run id changed with ft_m.lr", stage);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    etl_fixture fx;
    lafn_err err = {{0}};
    if (etl_fixture_init(&fx, &err)) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        MPI_Finalize();
        return 1;
    }
    test_ft_l(&fx);
    test_ft_m(&fx);
    test_config(fx.m);
    test_run_ids();
    etl_fixture_free(&fx);
    MPI_Finalize();
    return testutil_finish("test_edit_baselines");
}
