/* test_engine_autograd: tiny random models (HF folder and GGUF) vs PyTorch autograd fixtures: log-probs, NLL, neuron and edit gradients. */
#include <cjson/cJSON.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/model.h"
#include "testutil.h"

/* Tolerances, ~10x the measured worst case (fp32 here against float64 autograd,
 * the same weights in both files: max |d log p| 3e-6, gradient errors 2e-6).
 * Log-probs: max |diff|; gradients: ‖g − ref‖ / max(‖g‖, ‖ref‖). */
#define TOL_LOGP 3e-5
#define TOL_NLL_REL 1e-6
#define TOL_GRAD 3e-5

typedef struct {
    int n_seq;
    int *seq_len;
    int32_t *tokens;
    size_t n_tok;
    int n_pos;
    int *logit_pos;
    int32_t *targets;
    float *logprobs;     /* (P, V) */
    int vocab;
    double nll;
    int grad_layer;
    float *grad_act;     /* (N, F) */
    size_t n_grad_act;
    int n_edit;
    int *edit_layer, *edit_neuron;
    float *grad_vv;      /* (n, D) */
    size_t n_grad_vv;
    float *grad_off;     /* (n) */
} ref_case;

/* Flattens a JSON array of numbers (nesting allowed) into a new float array; *n its length. */
static size_t json_count(const cJSON *a) {
    if (cJSON_IsNumber(a)) return 1;
    size_t n = 0;
    for (const cJSON *x = a ? a->child : NULL; x; x = x->next) n += json_count(x);
    return n;
}

static void json_fill(const cJSON *a, float *out, size_t *i) {
    if (cJSON_IsNumber(a)) {
        out[(*i)++] = (float)a->valuedouble;
        return;
    }
    for (const cJSON *x = a ? a->child : NULL; x; x = x->next) json_fill(x, out, i);
}

static float *json_floats(const cJSON *a, size_t *n) {
    *n = json_count(a);
    float *out = malloc((*n ? *n : 1) * sizeof *out);
    size_t i = 0;
    if (out) json_fill(a, out, &i);
    return out;
}

static int *json_ints(const cJSON *a, size_t *n) {
    float *f = json_floats(a, n);
    int *out = malloc((*n ? *n : 1) * sizeof *out);
    for (size_t i = 0; f && out && i < *n; i++) out[i] = (int)f[i];
    free(f);
    return out;
}

static int ref_case_load(ref_case *rc, const char *path) {
    memset(rc, 0, sizeof *rc);
    char *text = testutil_read_text(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root) return -1;
    const cJSON *seqs = cJSON_GetObjectItem(root, "sequences");
    size_t n = 0;
    rc->n_seq = cJSON_GetArraySize(seqs);
    rc->seq_len = calloc((size_t)rc->n_seq + 1, sizeof *rc->seq_len);
    int i = 0;
    for (const cJSON *s = seqs ? seqs->child : NULL; s; s = s->next) rc->seq_len[i++] = cJSON_GetArraySize(s);
    rc->tokens = (int32_t *)json_ints(seqs, &rc->n_tok);
    rc->logit_pos = json_ints(cJSON_GetObjectItem(root, "logit_pos"), &n);
    rc->n_pos = (int)n;
    rc->targets = (int32_t *)json_ints(cJSON_GetObjectItem(root, "targets"), &n);
    rc->logprobs = json_floats(cJSON_GetObjectItem(root, "logprobs"), &n);
    rc->vocab = rc->n_pos ? (int)(n / (size_t)rc->n_pos) : 0;
    rc->nll = cJSON_GetObjectItem(root, "nll") ? cJSON_GetObjectItem(root, "nll")->valuedouble : NAN;
    const cJSON *gl = cJSON_GetObjectItem(root, "grad_layer");
    rc->grad_layer = gl ? gl->valueint : -1;
    rc->grad_act = json_floats(cJSON_GetObjectItem(root, "grad_ffn_act"), &rc->n_grad_act);
    rc->edit_layer = json_ints(cJSON_GetObjectItem(root, "edit_layer"), &n);
    rc->n_edit = (int)n;
    rc->edit_neuron = json_ints(cJSON_GetObjectItem(root, "edit_neuron"), &n);
    rc->grad_vv = json_floats(cJSON_GetObjectItem(root, "grad_value_vector"), &rc->n_grad_vv);
    rc->grad_off = json_floats(cJSON_GetObjectItem(root, "grad_activation_offset"), &n);
    cJSON_Delete(root);
    int ok = rc->seq_len && rc->tokens && rc->logit_pos && rc->targets && rc->logprobs && rc->grad_act &&
             rc->edit_layer && rc->edit_neuron && rc->grad_vv && rc->grad_off && rc->n_pos > 0 &&
             (size_t)rc->n_edit == n && rc->grad_layer >= 0;
    return ok ? 0 : -1;
}

static void ref_case_free(ref_case *rc) {
    free(rc->seq_len), free(rc->tokens), free(rc->logit_pos), free(rc->targets), free(rc->logprobs);
    free(rc->grad_act), free(rc->edit_layer), free(rc->edit_neuron), free(rc->grad_vv), free(rc->grad_off);
}

static void expect_grad(const char *what, const float *g, const float *ref, size_t n) {
    double d2 = 0, g2 = 0, r2 = 0, wmax = -1;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] - ref[i];
        d2 += d * d, g2 += (double)g[i] * g[i], r2 += (double)ref[i] * ref[i];
        if (fabs(d) > wmax) wmax = fabs(d), w = i;
    }
    double e = fmax(g2, r2) > 0 ? sqrt(d2 / fmax(g2, r2)) : 0.0;
    printf("  %-40s normalised error %.2e (bound %.0e), worst [%zu]: %.6g vs %.6g\n", what, e, TOL_GRAD, w,
           g[w], ref[w]);
    CHECK(e <= TOL_GRAD, "%s: normalised error %.3e > %.0e; worst element %zu: got %.7g, reference %.7g", what,
          e, TOL_GRAD, w, g[w], ref[w]);
}

/* Forward (optionally edited, delta 0), NLL gradient, backward to lowest. */
static int run_pass(engine_run *r, const ref_case *rc, const engine_edit *ed, int lowest, float *logp,
                    double *nll, float *d_delta, int vocab) {
    lafn_err err;
    engine_batch b = {.n_seq = rc->n_seq, .seq_len = rc->seq_len, .tokens = rc->tokens};
    engine_forward_opts o = engine_forward_defaults();
    o.edit = ed, o.logit_pos = rc->logit_pos, o.n_logit_pos = rc->n_pos;
    float *dlogits = malloc((size_t)rc->n_pos * (size_t)vocab * sizeof *dlogits);
    int ok = dlogits && engine_forward(r, &b, &o, &err) == 0;
    if (ok) {
        const float *z = engine_logits(r);
        *nll = engine_nll(z, rc->n_pos, vocab, rc->targets, NULL, NULL, dlogits);
        for (int p = 0; logp && p < rc->n_pos; p++) {
            const float *zp = z + (size_t)p * (size_t)vocab;
            double mx = zp[0], s = 0;
            for (int v = 1; v < vocab; v++) mx = fmax(mx, zp[v]);
            for (int v = 0; v < vocab; v++) s += exp(zp[v] - mx);
            for (int v = 0; v < vocab; v++) logp[(size_t)p * (size_t)vocab + (size_t)v] = (float)(zp[v] - mx - log(s));
        }
        ok = engine_backward(r, dlogits, lowest, d_delta, &err) == 0;
    }
    CHECK(ok, "forward/backward: %s", err.msg);
    free(dlogits);
    return ok ? 0 : -1;
}

static void check_logprobs(const char *tag, const ref_case *rc, const float *logp, double nll) {
    size_t n = (size_t)rc->n_pos * (size_t)rc->vocab, w = 0;
    double mx = -1;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)logp[i] - rc->logprobs[i]) > mx) mx = fabs((double)logp[i] - rc->logprobs[i]), w = i;
    printf("  %-40s max |d log p| %.2e (bound %.0e) at position %zu, id %zu; NLL %.7g vs %.7g\n", tag, mx,
           TOL_LOGP, w / (size_t)rc->vocab, w % (size_t)rc->vocab, nll, rc->nll);
    CHECK(mx <= TOL_LOGP, "%s: log-prob of id %zu at scored position %zu: %.7g vs reference %.7g", tag,
          w % (size_t)rc->vocab, w / (size_t)rc->vocab, logp[w], rc->logprobs[w]);
    CHECK(fabs(nll - rc->nll) <= TOL_NLL_REL * fabs(rc->nll), "%s: NLL %.9g vs reference %.9g", tag, nll,
          rc->nll);
}

static void check_gradients(const char *tag, engine_run *r, const model *m, const ref_case *rc) {
    size_t F = (size_t)m->cfg.d_ffn, D = (size_t)m->cfg.d_model;
    double nll;
    char what[160];
    if (run_pass(r, rc, NULL, rc->grad_layer, NULL, &nll, NULL, m->cfg.vocab) == 0) {
        CHECK(rc->n_grad_act == rc->n_tok * F, "%s: grad_ffn_act has %zu values, expected N*F = %zu", tag,
              rc->n_grad_act, rc->n_tok * F);
        snprintf(what, sizeof what, "%s d act blk.%d", tag, rc->grad_layer);
        if (rc->n_grad_act == rc->n_tok * F) expect_grad(what, engine_ffn_act_grad(r, rc->grad_layer), rc->grad_act, rc->n_grad_act);
    }
    int lowest = m->cfg.n_layer - 1;
    for (int e = 0; e < rc->n_edit; e++)
        if (rc->edit_layer[e] < lowest) lowest = rc->edit_layer[e];
    float *delta = calloc((size_t)rc->n_edit * D + 1, sizeof *delta);
    float *d_delta = calloc((size_t)rc->n_edit * D + 1, sizeof *d_delta);
    for (int k = 0; k < 2 && delta && d_delta; k++) {
        engine_edit ed = {.kind = k ? ENGINE_EDIT_ACTIVATION_OFFSET : ENGINE_EDIT_VALUE_VECTOR,
                          .n = rc->n_edit, .layer = rc->edit_layer, .neuron = rc->edit_neuron, .delta = delta};
        if (run_pass(r, rc, &ed, lowest, NULL, &nll, d_delta, m->cfg.vocab)) continue;
        snprintf(what, sizeof what, "%s d %s", tag, k ? "activation offset" : "value vector");
        size_t n = k ? (size_t)rc->n_edit : (size_t)rc->n_edit * D;
        size_t have = k ? (size_t)rc->n_edit : rc->n_grad_vv;
        CHECK(have == n, "%s: reference has %zu values, expected %zu", what, have, n);
        if (have == n) expect_grad(what, d_delta, k ? rc->grad_off : rc->grad_vv, n);
    }
    free(delta), free(d_delta);
}

static void check_arch(const char *arch) {
    char json[4096], path[4096], tag[128];
    ref_case rc;
    snprintf(json, sizeof json, "%s", testutil_repo_path("tests/fixtures/"));
    snprintf(json + strlen(json), sizeof json - strlen(json), "tiny-%s_ref.json", arch);
    if (ref_case_load(&rc, json)) {
        CHECK(0, "cannot read fixture %s (made by the reference scripts in tests/reference)", json);
        ref_case_free(&rc);
        return;
    }
    for (int fmt = 0; fmt < 2; fmt++) {
        snprintf(path, sizeof path, "%s", testutil_repo_path("tests/fixtures/models/"));
        snprintf(path + strlen(path), sizeof path - strlen(path), "tiny-%s%s", arch, fmt ? ".gguf" : "");
        snprintf(tag, sizeof tag, "tiny-%s (%s)", arch, fmt ? "GGUF" : "HF");
        model *m = NULL;
        lafn_err err;
        engine_run *r = NULL;
        if (model_load(&m, path, MPI_COMM_NULL, &err)) {
            CHECK(0, "model_load %s: %s", path, err.msg);
            continue;
        }
        CHECK(m->cfg.vocab == rc.vocab, "%s: vocab %d, fixture log-probs have %d per position", tag, m->cfg.vocab, rc.vocab);
        if (m->cfg.vocab == rc.vocab && engine_run_init(&r, m, rc.n_tok, (size_t)rc.n_pos, &err) == 0) {
            float *logp = malloc((size_t)rc.n_pos * (size_t)rc.vocab * sizeof *logp);
            double nll;
            if (logp && run_pass(r, &rc, NULL, m->cfg.n_layer - 1, logp, &nll, NULL, rc.vocab) == 0)
                check_logprobs(tag, &rc, logp, nll);
            free(logp);
            check_gradients(tag, r, m, &rc);
        } else if (m->cfg.vocab == rc.vocab) {
            CHECK(0, "%s: engine_run_init: %s", tag, err.msg);
        }
        engine_run_free(r);
        model_free(m);
    }
    ref_case_free(&rc);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    check_arch("llama");
    check_arch("qwen2");
    check_arch("gemma3");
    int rc = testutil_finish("test_engine_autograd");
    MPI_Finalize();
    return rc;
}
