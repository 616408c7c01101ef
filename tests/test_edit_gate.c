/* test_edit_gate: the gated cache on the real model — a fact's edit fires on its own prompts and not on unrelated ones; composed edits follow the gates. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_cache.h"
#include "edit/edit_key.h"
#include "edit_testlib.h"
#include "testutil.h"

/* Unrelated prompts written for this test (not from the data set). */
static const char *const unrelated[][2] = {
    {"en", "Water boils at a temperature of"},
    {"en", "The author of the play Hamlet is"},
    {"en", "My favourite kind of fruit is"},
    {"en", "The largest planet in the solar system is"},
    {"zh", "水的沸点是"},
    {"zh", "我最喜欢的水果是"},
    {"zh", "日本的首都是"},
};
enum { N_UNRELATED = 7 };

/* Packs prompts (no targets) into tokens/seq_len/last (64 prompts, 2048 tokens at most). */
static int pack(const model *m, const char *const *langs, const char *const *prompts, int B, int32_t *tokens,
                int *seq_len, int *last, size_t *n_tokens, lafn_err *err) {
    size_t N = 0;
    for (int b = 0; b < B; b++) {
        stage_sequence s = {0};
        if (stage_sequence_build(m->tok, langs[b], prompts[b], NULL, &s, err)) return -1;
        if (N + s.n_prompt > 2048) { stage_sequence_free(&s); return lafn_err_set(err, "test: too many tokens"); }
        memcpy(tokens + N, s.ids, s.n_prompt * sizeof *tokens);
        seq_len[b] = (int)s.n_prompt;
        N += s.n_prompt;
        last[b] = (int)N - 1;
        stage_sequence_free(&s);
    }
    *n_tokens = N;
    return 0;
}

/* Calibrates the gate of the fact's candidate neurons: own prompts vs the src of the other facts. */
static int calibrate(const model *m, const facts_edit_view *views, size_t n_views, etl_neurons *nr, int *kept,
                     lafn_err *err) {
    const char *langs[64], *prompts[64];
    int B = 0, n_own, seq_len[64], last[64];
    for (size_t l = 0; l < views[0].n_langs; l++)
        for (size_t p = 0; p < views[0].langs[l].n_prompts; p++, B++) {
            langs[B] = views[0].langs[l].lang;
            prompts[B] = views[0].langs[l].prompts[p];
        }
    n_own = B;
    for (size_t f = 1; f < n_views; f++)
        for (size_t l = 0; l < views[f].n_langs && B < 64; l++, B++) {
            langs[B] = views[f].langs[l].lang;
            prompts[B] = views[f].langs[l].prompts[0];
        }
    int32_t tokens[2048];
    size_t N;
    if (pack(m, langs, prompts, B, tokens, seq_len, last, &N, err)) return -1;
    engine_run *r = NULL;
    engine_batch b = {.n_seq = B, .seq_len = seq_len, .tokens = tokens};
    engine_forward_opts o = engine_forward_defaults();
    int rc = engine_run_init(&r, m, N, 1, err);
    if (rc == 0) rc = engine_forward(r, &b, &o, err);
    uint8_t keep[64];
    float thr[64];
    if (rc == 0) {
        float own_min[64], ref_max[64];
        for (int k = 0; k < nr->n; k++) {
            const float *act = engine_ffn_act(r, nr->layer[k]);
            own_min[k] = INFINITY, ref_max[k] = -INFINITY;
            for (int q = 0; q < B; q++) {
                float x = act[(size_t)last[q] * (size_t)m->cfg.d_ffn + (size_t)nr->neuron[k]] * nr->sign[k];
                if (q < n_own) own_min[k] = fminf(own_min[k], x);
                else ref_max[k] = fmaxf(ref_max[k], x);
            }
        }
        *kept = edit_gate_calibrate(nr->n, own_min, ref_max, nr->threshold, keep, thr);
        int q = 0;
        for (int k = 0; k < nr->n; k++)
            if (keep[k]) {
                nr->layer[q] = nr->layer[k], nr->neuron[q] = nr->neuron[k], nr->sign[q] = nr->sign[k];
                nr->threshold[q++] = thr[k];
            }
        nr->n = q;
    }
    engine_run_free(r);
    return rc;
}

/* Runs the prompts through the cache; fires[b] = whether entry 0 fired on prompt b. */
static int gate_on(const model *m, const edit_cache *c, const char *const *langs, const char *const *prompts, int B,
                   uint8_t *fires, lafn_err *err) {
    int32_t tokens[2048];
    int seq_len[64], last[64];
    size_t N = 0;
    if (pack(m, langs, prompts, B, tokens, seq_len, last, &N, err)) return -1;
    engine_run *r = NULL;
    engine_batch batch = {.n_seq = B, .seq_len = seq_len, .tokens = tokens};
    engine_forward_opts o = engine_forward_defaults();
    o.logit_pos = last;
    o.n_logit_pos = B;
    int rc = engine_run_init(&r, m, N, (size_t)B, err);
    if (rc == 0) rc = edit_cache_forward(r, m, &batch, last, c, &o, fires, err);
    engine_run_free(r);
    return rc;
}

/* The states entering layer `layer` at the last tokens of the prompts, as unit keys around centre (NULL: first
 * computes the centre as their mean into center_out). keys (B, D). */
static int prompt_keys(const model *m, const char *const *langs, const char *const *prompts, int B, int layer,
                       const float *center, float *center_out, float *keys, lafn_err *err) {
    int32_t tokens[2048];
    int seq_len[64], last[64];
    size_t N = 0, D = (size_t)m->cfg.d_model;
    if (pack(m, langs, prompts, B, tokens, seq_len, last, &N, err)) return -1;
    engine_run *r = NULL;
    engine_batch batch = {.n_seq = B, .seq_len = seq_len, .tokens = tokens};
    engine_forward_opts o = engine_forward_defaults();
    int rc = engine_run_init(&r, m, N, 1, err);
    if (rc == 0) rc = engine_forward(r, &batch, &o, err);
    if (rc == 0 && !center) {
        memset(center_out, 0, D * sizeof *center_out);
        for (int b = 0; b < B; b++)
            for (size_t d = 0; d < D; d++) center_out[d] += engine_residual(r, layer)[(size_t)last[b] * D + d] / (float)B;
        center = center_out;
    }
    for (int b = 0; rc == 0 && b < B; b++) edit_key_of(engine_residual(r, layer) + (size_t)last[b] * D, center, (int)D,
                                                      keys + (size_t)b * D);
    engine_run_free(r);
    return rc;
}

/* The nearest-key trigger: fact 0 (entry e0, keys of its own prompts) against every other fact of the views
 * (keys of their src, src_keys as test_key_trigger lays them out) fires on fact 0's own prompts and on none of
 * the other facts' src, whose own keys are nearer; the unrelated prompts it fires on are counted and bounded by
 * the floor (a floor of 1 fires on nothing but exact own prompts). */
static void test_nearest_key_trigger(const model *m, const facts_edit_view *views, size_t n_views,
                                     const edit_cache_entry *e0, const float *src_keys) {
    edit_cache_entry rivals[64];
    const char *langs[64], *prompts[64];
    size_t n_rivals = 0, off = 0;
    int D = m->cfg.d_model, n_neg = 0;
    rivals[n_rivals++] = *e0;
    for (size_t f = 0; f < n_views && n_rivals < 64; f++) {
        if (f > 0) {
            rivals[n_rivals] = *e0;
            rivals[n_rivals].group = (long long)f;
            rivals[n_rivals].n_keys = (int)views[f].n_langs;
            rivals[n_rivals++].keys = src_keys + off * (size_t)D;
        }
        for (size_t l = 0; l < views[f].n_langs; l++, off++)
            if (f > 0 && n_neg < 64) {
                langs[n_neg] = views[f].langs[l].lang;
                prompts[n_neg++] = views[f].langs[l].prompts[0];
            }
    }
    edit_cache c = {.kind = ENGINE_EDIT_VALUE_VECTOR,
                    .trigger = {.gate = 1.0f, .kind = EDIT_TRIGGER_NEAREST_KEY, .nearest_floor = 0.5f},
                    .n_entries = 1, .entries = e0, .n_rivals = n_rivals, .rivals = rivals};
    uint8_t fires[64];
    lafn_err err = {{0}};
    int n_fire = 0, n_unrelated = 0;
    CHECK(gate_on(m, &c, langs, prompts, n_neg, fires, &err) == 0, "%s", err.msg);
    for (int b = 0; b < n_neg; b++) n_fire += fires[b];
    CHECK(n_fire == 0, "the nearest-key trigger of fact 0 fires on %d of %d other facts' src, which are their own "
          "facts' keys", n_fire, n_neg);
    const char *own_langs[64], *own_prompts[64];
    int n_own = 0;
    for (size_t l = 0; l < views[0].n_langs; l++)
        for (size_t p = 0; p < views[0].langs[l].n_prompts && n_own < 64; p++, n_own++) {
            own_langs[n_own] = views[0].langs[l].lang;
            own_prompts[n_own] = views[0].langs[l].prompts[p];
        }
    CHECK(gate_on(m, &c, own_langs, own_prompts, n_own, fires, &err) == 0, "%s", err.msg);
    for (int b = 0; b < n_own; b++) CHECK(fires[b], "the nearest-key trigger does not fire on own prompt '%s'", own_prompts[b]);
    for (int b = 0; b < N_UNRELATED; b++) {
        langs[b] = unrelated[b][0];
        prompts[b] = unrelated[b][1];
    }
    CHECK(gate_on(m, &c, langs, prompts, N_UNRELATED, fires, &err) == 0, "%s", err.msg);
    for (int b = 0; b < N_UNRELATED; b++) n_unrelated += fires[b];
    c.trigger.nearest_floor = 1.0f;
    CHECK(gate_on(m, &c, langs, prompts, N_UNRELATED, fires, &err) == 0 && !memchr(fires, 1, N_UNRELATED),
          "the nearest-key trigger with floor 1 fires on an unrelated prompt");
    printf("nearest-key trigger (floor 0.5, %zu facts): fires on %d own prompts, 0 of %d other facts' src, %d of %d "
           "unrelated prompts\n", n_rivals, n_own, n_neg, n_unrelated, N_UNRELATED);
}

/* The key trigger of fact 0: keys of its prompts around the mean state of every fact's src, its threshold above
 * the other facts' src; fires on its own prompts, on none of the other facts' questions, on no unrelated prompt. */
static void test_key_trigger(const model *m, const facts_edit_view *views, size_t n_views) {
    const char *langs[64], *prompts[64];
    int n_src = 0, n_own = 0, layer = (int)(0.85 * m->cfg.n_layer), D = m->cfg.d_model;
    for (size_t f = 0; f < n_views; f++)
        for (size_t l = 0; l < views[f].n_langs && n_src < 64; l++, n_src++) {
            langs[n_src] = views[f].langs[l].lang;
            prompts[n_src] = views[f].langs[l].prompts[0];
        }
    float *center = malloc((size_t)D * sizeof *center), *src = malloc(64 * (size_t)D * sizeof *src);
    float *own = malloc(64 * (size_t)D * sizeof *own), *delta = calloc((size_t)D, sizeof *delta);
    lafn_err err = {{0}};
    int rc = prompt_keys(m, langs, prompts, n_src, layer, NULL, center, src, &err);
    const char *own_langs[64], *own_prompts[64];
    for (size_t l = 0; l < views[0].n_langs; l++)
        for (size_t p = 0; p < views[0].langs[l].n_prompts && n_own < 64; p++, n_own++) {
            own_langs[n_own] = views[0].langs[l].lang;
            own_prompts[n_own] = views[0].langs[l].prompts[p];
        }
    if (rc == 0) rc = prompt_keys(m, own_langs, own_prompts, n_own, layer, center, NULL, own, &err);
    int n_neg = n_src - (int)views[0].n_langs; /* the other facts' src follow fact 0's */
    float thr = edit_key_threshold(own, n_own, src + views[0].n_langs * (size_t)D, n_neg, D, 0.5f, 0.02f);
    int zero = 0;
    edit_cache_entry e = {.group = 0, .n_keys = n_own, .key_layer = layer, .keys = own, .key_center = center,
                          .key_threshold = thr, .n = 1, .layer = &zero, .neuron = &zero, .delta = delta};
    edit_cache c = {.kind = ENGINE_EDIT_VALUE_VECTOR, .trigger = {.gate = 1.0f, .kind = EDIT_TRIGGER_KEY}, .n_entries = 1, .entries = &e};
    uint8_t fires[64];
    int n_fire = 0;
    CHECK(rc == 0 && gate_on(m, &c, own_langs, own_prompts, n_own, fires, &err) == 0, "%s", err.msg);
    for (int b = 0; b < n_own; b++) CHECK(fires[b], "the key trigger does not fire on the own prompt '%s'", own_prompts[b]);
    CHECK(gate_on(m, &c, langs + views[0].n_langs, prompts + views[0].n_langs, n_neg, fires, &err) == 0, "%s", err.msg);
    for (int b = 0; b < n_neg; b++) n_fire += fires[b];
    CHECK(n_fire == 0, "the key trigger (threshold %.3f) fires on %d of the %d other facts' questions it was "
          "calibrated above", (double)thr, n_fire, n_neg);
    for (int b = 0; b < N_UNRELATED; b++) {
        langs[b] = unrelated[b][0];
        prompts[b] = unrelated[b][1];
    }
    n_fire = 0;
    CHECK(gate_on(m, &c, langs, prompts, N_UNRELATED, fires, &err) == 0, "%s", err.msg);
    for (int b = 0; b < N_UNRELATED; b++) n_fire += fires[b];
    CHECK(n_fire == 0, "the key trigger fires on %d of %d unrelated prompts", n_fire, N_UNRELATED);
    printf("key trigger (layer %d, threshold %.3f): fires on %d own prompts, 0 of %d other facts' questions\n", layer,
           (double)thr, n_own, n_neg);
    test_nearest_key_trigger(m, views, n_views, &e, src);
    free(center);
    free(src);
    free(own);
    free(delta);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    lafn_err err = {{0}};
    model *m = NULL;
    facts_set set = {0};
    enum { NV = 9 };
    facts_edit_view views[NV] = {0}, v = {0};
    facts_opts fo = {.langs = "en,zh", .first = 0, .count = NV};
    int rc = model_load(&m, testutil_default_model(), MPI_COMM_NULL, &err);
    if (rc == 0) rc = facts_load_jsonl(testutil_repo_path("conf/data/demo_facts.jsonl"), &fo, &set, &err);
    if (rc == 0) rc = etl_views(&set, views, &err);
    etl_neurons nr;
    int kept = 0;
    if (rc == 0) rc = etl_top_neurons(m, &views[0], 4, 12, 16, &nr, &err);
    int n_candidates = nr.n;
    if (rc == 0) rc = calibrate(m, views, set.n_facts, &nr, &kept, &err);
    CHECK(rc == 0, "%s", err.msg);
    printf("gate: %d of %d candidate neurons separate the fact's prompts from %zu other facts' questions%s\n", kept,
           n_candidates, set.n_facts - 1, kept ? "" : " (own-prompt floor used)");
    v = views[0];
    if (rc == 0) {
        float *delta = calloc((size_t)m->cfg.d_model, sizeof *delta);
        int layer = nr.layer[0], neuron = nr.neuron[0];
        edit_cache_entry e = {.group = 0, .n_gate = nr.n, .gate_layer = nr.layer, .gate_neuron = nr.neuron,
                              .gate_sign = nr.sign, .gate_threshold = nr.threshold, .n = 1, .layer = &layer,
                              .neuron = &neuron, .delta = delta};
        /* gate 1: every gate neuron must reach its calibrated threshold (see docs/stage_edit.md for 0.5 and 0.75) */
        edit_cache c = {.kind = ENGINE_EDIT_VALUE_VECTOR, .trigger = {.gate = 1.0f}, .n_entries = 1, .entries = &e};
        const char *langs[64], *prompts[64];
        int B = 0;
        for (size_t l = 0; l < v.n_langs; l++)
            for (size_t p = 0; p < v.langs[l].n_prompts; p++, B++) {
                langs[B] = v.langs[l].lang;
                prompts[B] = v.langs[l].prompts[p];
            }
        uint8_t fires[64];
        rc = gate_on(m, &c, langs, prompts, B, fires, &err);
        CHECK(rc == 0, "%s", err.msg);
        for (int b = 0; rc == 0 && b < B; b++) {
            printf("own prompt  [%s] %-50s fires %d\n", langs[b], prompts[b], fires[b]);
            CHECK(fires[b], "the gate does not fire on the fact's own prompt '%s'", prompts[b]);
        }
        for (int b = 0; b < N_UNRELATED; b++) {
            langs[b] = unrelated[b][0];
            prompts[b] = unrelated[b][1];
        }
        rc = gate_on(m, &c, langs, prompts, N_UNRELATED, fires, &err);
        CHECK(rc == 0, "%s", err.msg);
        for (int b = 0; rc == 0 && b < N_UNRELATED; b++) {
            printf("unrelated   [%s] %-50s fires %d\n", langs[b], prompts[b], fires[b]);
            CHECK(!fires[b], "the gate fires on the unrelated prompt '%s'", prompts[b]);
        }
        for (int g = 0; g < 2; g++) {
            c.trigger.gate = g ? 0.75f : 0.5f;
            int n_fire = 0;
            if (gate_on(m, &c, langs, prompts, N_UNRELATED, fires, &err) == 0)
                for (int b = 0; b < N_UNRELATED; b++) n_fire += fires[b];
            printf("gate %.2f: fires on %d of %d unrelated prompts\n", (double)c.trigger.gate, n_fire, N_UNRELATED);
        }
        int n_ref = 0;
        for (size_t f = 1; f < set.n_facts; f++)
            for (size_t l = 0; l < views[f].n_langs; l++, n_ref++) {
                langs[n_ref] = views[f].langs[l].lang;
                prompts[n_ref] = views[f].langs[l].prompts[0];
            }
        c.trigger.gate = 1.0f;
        if (gate_on(m, &c, langs, prompts, n_ref, fires, &err) == 0) {
            int n_fire = 0;
            for (int b = 0; b < n_ref; b++) n_fire += fires[b];
            printf("gate 1.00: fires on %d of %d other facts' questions (the calibration's references)\n", n_fire, n_ref);
        }
        for (int b = 0; b < N_UNRELATED; b++) {
            langs[b] = unrelated[b][0];
            prompts[b] = unrelated[b][1];
        }
        c.trigger.gate = 0.0f;
        rc = gate_on(m, &c, langs, prompts, N_UNRELATED, fires, &err);
        for (int b = 0; rc == 0 && b < N_UNRELATED; b++) CHECK(fires[b], "gate 0 must always fire ('%s')", prompts[b]);
        free(delta);
    }
    if (rc == 0) test_key_trigger(m, views, set.n_facts);
    for (int i = 0; i < NV; i++) facts_edit_view_free(&views[i]);
    facts_set_free(&set);
    model_free(m);
    int status = testutil_finish("test_edit_gate");
    MPI_Finalize();
    return status;
}
