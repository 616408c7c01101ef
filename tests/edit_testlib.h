/* edit_testlib: what the edit tests share — fact loading, a locate-like neuron choice, and a locate.h5 writer. */
#ifndef LAFN_EDIT_TESTLIB_H
#define LAFN_EDIT_TESTLIB_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_optimise.h"
#include "edit/stage_edit.h"
#include "engine/engine.h"
#include "facts/facts.h"
#include "h5/h5out.h"
#include "model/model.h"
#include "stage/stage.h"
#include "locate/stage_locate.h"
#include "testutil.h"

/* One fact's chosen neurons, as locate would hand them to edit. */
typedef struct {
    int n;
    int layer[64], neuron[64];
    float sign[64], threshold[64];
} etl_neurons;

/* Top-k neurons by mean |a| at the last prompt token over the fact's prompts
 * (every language of the view), in layers [lo, hi]; sign = sign of the mean
 * a; threshold = LOCATE_GATE_FACTOR × the smallest |a| over the prompts —
 * the rule of docs/stage_locate.md, computed independently of locate. */
static inline int etl_top_neurons(const model *m, const facts_edit_view *v, int lo, int hi, int k, etl_neurons *out,
                           lafn_err *err) {
    size_t F = (size_t)m->cfg.d_ffn, B = 0, N = 0;
    int32_t tokens[4096];
    int seq_len[64], last[64];
    for (size_t l = 0; l < v->n_langs; l++)
        for (size_t p = 0; p < v->langs[l].n_prompts && B < 64; p++) {
            stage_sequence s = {0};
            if (stage_sequence_build(m->tok, v->langs[l].lang, v->langs[l].prompts[p], NULL, &s, err)) return -1;
            if (N + s.n_prompt > 4096) { stage_sequence_free(&s); return lafn_err_set(err, "test: too many tokens"); }
            memcpy(tokens + N, s.ids, s.n_prompt * sizeof *tokens);
            seq_len[B] = (int)s.n_prompt;
            N += s.n_prompt;
            last[B++] = (int)N - 1;
            stage_sequence_free(&s);
        }
    engine_run *r = NULL;
    if (engine_run_init(&r, m, N, 1, err)) return -1;
    engine_batch b = {.n_seq = (int)B, .seq_len = seq_len, .tokens = tokens};
    engine_forward_opts o = engine_forward_defaults();
    if (engine_forward(r, &b, &o, err)) { engine_run_free(r); return -1; }
    out->n = 0;
    for (int pick = 0; pick < k; pick++) {
        double best = -1.0;
        int bl = -1, bj = -1;
        for (int l = lo; l <= hi; l++)
            for (size_t j = 0; j < F; j++) {
                int taken = 0;
                for (int q = 0; q < out->n; q++) taken |= out->layer[q] == l && out->neuron[q] == (int)j;
                double s = 0.0;
                for (size_t q = 0; q < B; q++) s += fabs(engine_ffn_act(r, l)[(size_t)last[q] * F + j]);
                if (!taken && s > best) { best = s; bl = l; bj = (int)j; }
            }
        double mean = 0.0, mn = INFINITY;
        for (size_t q = 0; q < B; q++) {
            double a = engine_ffn_act(r, bl)[(size_t)last[q] * F + (size_t)bj];
            mean += a;
            if (fabs(a) < mn) mn = fabs(a);
        }
        out->layer[out->n] = bl;
        out->neuron[out->n] = bj;
        out->sign[out->n] = mean < 0 ? -1.0f : 1.0f;
        out->threshold[out->n++] = (float)(LOCATE_GATE_FACTOR * mn);
    }
    engine_run_free(r);
    return 0;
}

/* -mean over the answer tokens of log p(y_k | x) of prompt p of ps, read from the logits at the last prompt token
 * for every k (prompt_last, FT-L's objective) or teacher forced, under edit ed (NULL = unedited): an independent
 * full forward of the one sequence with a double-precision log-softmax, the tests' reference. NaN on failure. */
static inline double etl_reference_loss(const model *m, const facts_prompt_set *ps, size_t p, int prompt_last,
                                        const engine_edit *ed) {
    stage_sequence s = {0};
    lafn_err err;
    if (stage_sequence_build(m->tok, ps->lang, ps->prompts[p], ps->target, &s, &err)) return NAN;
    size_t T = s.n_prompt + s.n_target, V = (size_t)m->cfg.vocab;
    int len = (int)T, pos[64];
    for (size_t k = 0; k < s.n_target && k < 64; k++) pos[k] = (int)(s.n_prompt + (prompt_last ? 0 : k) - 1);
    engine_run *r = NULL;
    engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = s.ids};
    engine_forward_opts o = engine_forward_defaults();
    o.edit = ed;
    o.logit_pos = pos;
    o.n_logit_pos = (int)s.n_target;
    double nll = NAN;
    if (s.n_target <= 64 && engine_run_init(&r, m, T, s.n_target, &err) == 0 && engine_forward(r, &b, &o, &err) == 0) {
        nll = 0.0;
        for (size_t k = 0; k < s.n_target; k++) {
            const float *z = engine_logits(r) + k * V;
            double mx = z[0], sum = 0.0;
            for (size_t i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
            for (size_t i = 0; i < V; i++) sum += exp((double)z[i] - mx);
            nll += (mx + log(sum) - (double)z[s.ids[s.n_prompt + k]]) / (double)s.n_target;
        }
    }
    engine_run_free(r);
    stage_sequence_free(&s);
    return nll;
}

/* The loss of language l of view v: the mean of etl_reference_loss over the language's prompts. */
static inline double etl_reference_lang_loss(const model *m, const facts_edit_view *v, size_t l, int prompt_last,
                                             const engine_edit *ed) {
    double total = 0.0;
    for (size_t p = 0; p < v->langs[l].n_prompts; p++)
        total += etl_reference_loss(m, &v->langs[l], p, prompt_last, ed) / (double)v->langs[l].n_prompts;
    return total;
}

/* The edits of DIR/edit.h5 (model width D) with their per-language NLLs (2 languages), losses, steps and,
 * where the file has them, the loss curves and writing ranks (NULL otherwise). */
typedef struct {
    edit_store s;
    double *nll_before, *nll_after;        /* (n_facts, 2) */
    double *loss;                          /* (n_facts, 4) */
    int32_t *steps;                        /* (n_facts) */
    size_t n_evals;                        /* evaluations per curve row (edit.steps + 1), 0 without curves */
    double *curve_nll, *curve_loss;        /* (n_facts, n_evals, 2), (n_facts, n_evals) */
    int32_t *rank;                         /* (n_facts, 2) */
} etl_stored;

/* Columns of 2-D dataset name of open file f, or 0. */
static inline size_t etl_columns(hid_t f, const char *name) {
    hsize_t dims[2] = {0, 0};
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2;
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return ok ? (size_t)dims[1] : 0;
}

static inline int etl_read_stored(const char *dir, int D, MPI_Comm comm, etl_stored *out, lafn_err *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/edit.h5", dir);
    memset(out, 0, sizeof *out);
    if (edit_store_read(path, NULL, D, comm, &out->s, err)) return -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t n;
    int rc = h5out_read_all(f, path, "nll_before", H5OUT_F64, 2, (void **)&out->nll_before, &n, err);
    if (rc == 0) rc = h5out_read_all(f, path, "nll_after", H5OUT_F64, 2, (void **)&out->nll_after, &n, err);
    if (rc == 0) rc = h5out_read_all(f, path, "loss", H5OUT_F64, 4, (void **)&out->loss, &n, err);
    if (rc == 0) rc = h5out_read_all(f, path, "steps", H5OUT_I32, 1, (void **)&out->steps, &n, err);
    if (rc == 0 && H5Lexists(f, "curve", H5P_DEFAULT) > 0) {
        out->n_evals = etl_columns(f, "curve/loss");
        rc = h5out_read_all(f, path, "curve/nll", H5OUT_F64, 2 * out->n_evals, (void **)&out->curve_nll, &n, err);
        if (rc == 0)
            rc = h5out_read_all(f, path, "curve/loss", H5OUT_F64, out->n_evals, (void **)&out->curve_loss, &n, err);
        if (rc == 0) rc = h5out_read_all(f, path, "rank", H5OUT_I32, 2, (void **)&out->rank, &n, err);
    }
    H5Fclose(f);
    return rc;
}

static inline void etl_stored_free(etl_stored *s) {
    edit_store_free(&s->s);
    free(s->nll_before);
    free(s->nll_after);
    free(s->loss);
    free(s->steps);
    free(s->curve_nll);
    free(s->curve_loss);
    free(s->rank);
}

/* Row of fact index `fact` in s, or -1. */
static inline long etl_row_of(const etl_stored *s, int64_t fact) {
    for (size_t i = 0; i < s->s.n_facts; i++)
        if (s->s.facts[i] == fact) return (long)i;
    return -1;
}

/* Checks that a and b hold the same facts, statuses and deltas (max abs difference <= tol); rank 0 (print)
 * prints the worst difference. */
static inline void etl_check_same(const etl_stored *a, const etl_stored *b, double tol, const char *what, int print) {
    CHECK(a->s.n_facts == b->s.n_facts, "%s: %zu vs %zu rows", what, a->s.n_facts, b->s.n_facts);
    double worst = 0.0;
    long long wf = -1;
    for (size_t i = 0; i < a->s.n_facts; i++) {
        long j = etl_row_of(b, a->s.facts[i]);
        CHECK(j >= 0, "%s: fact %lld missing in the second", what, (long long)a->s.facts[i]);
        if (j < 0) continue;
        CHECK(a->s.status[i] == b->s.status[j], "%s: fact %lld status %d vs %d", what, (long long)a->s.facts[i],
              a->s.status[i], b->s.status[j]);
        int64_t na = a->s.delta_off[i + 1] - a->s.delta_off[i], nb = b->s.delta_off[j + 1] - b->s.delta_off[j];
        CHECK(na == nb, "%s: fact %lld: %lld vs %lld deltas", what, (long long)a->s.facts[i], (long long)na,
              (long long)nb);
        if (na != nb) continue;
        const float *da = a->s.delta + (size_t)a->s.delta_off[i] * a->s.width;
        const float *db = b->s.delta + (size_t)b->s.delta_off[j] * b->s.width;
        for (size_t k = 0; k < (size_t)na * a->s.width; k++)
            if (fabs((double)da[k] - db[k]) > worst) {
                worst = fabs((double)da[k] - db[k]);
                wf = a->s.facts[i];
            }
    }
    if (print) printf("%s: worst delta difference %.3g (fact %lld; -1: all equal)\n", what, worst, wf);
    CHECK(worst <= tol, "%s: deltas of fact %lld differ by %g > %g", what, wf, worst, tol);
}

/* The edit stage in-process on comm with run.output_dir = dir and the overrides extra[0..n) (NULL ones skipped). */
static inline int etl_run_edit(const char *cfg, const char *dir, const char *const *extra, int n, MPI_Comm comm,
                               lafn_err *err) {
    char ov[300];
    char *ovs[8] = {ov};
    int k = 1;
    snprintf(ov, sizeof ov, "run.output_dir=%s", dir);
    for (int i = 0; i < n && k < 8; i++)
        if (extra[i]) ovs[k++] = (char *)extra[i];
    return stage_edit_run(cfg, ovs, k, "test", comm, NULL, err);
}

/* Builds the edit views of every fact of set into views (n_facts). */
static inline int etl_views(const facts_set *set, facts_edit_view *views, lafn_err *err) {
    for (size_t i = 0; i < set->n_facts; i++)
        if (facts_edit_view_build(&set->facts[i], &views[i], err)) return -1;
    return 0;
}

/* The optimiser tests' problem on the tiny Gemma 3 (loaded here, owned):
 * fact 0 of the demo set in en and de, another fact's src among its neutral
 * prompts, and 4 top-|a| neurons of layers 1-2. */
typedef struct {
    model *m;
    facts_set set;
    facts_edit_view views[3];
    etl_neurons nr;
    edit_problem p;
} etl_fixture;

static inline int etl_fixture_init(etl_fixture *fx, lafn_err *err) {
    memset(fx, 0, sizeof *fx);
    if (model_load(&fx->m, testutil_repo_path("tests/fixtures/models/tiny-gemma3.gguf"), MPI_COMM_NULL, err)) return -1;
    const model *m = fx->m;
    size_t idx[3] = {0, 1, 2};
    facts_opts fo = {.langs = "en,de", .indices = idx, .n_indices = 3};
    if (facts_load_jsonl(testutil_repo_path("conf/data/demo_facts.jsonl"), &fo, &fx->set, err)) return -1;
    if (etl_views(&fx->set, fx->views, err)) return -1;
    if (etl_top_neurons(m, &fx->views[0], 1, 2, 4, &fx->nr, err)) return -1;
    if (edit_problem_init(&fx->p, 1, 2, 1, err)) return -1;
    int slots[2] = {0, 1};
    return edit_problem_add_fact(&fx->p, m->tok, &fx->views[0], 0, slots, fx->views, 3, 0, NULL, NULL, err);
}

static inline void etl_fixture_free(etl_fixture *fx) {
    edit_problem_free(&fx->p);
    for (int i = 0; i < 3; i++) facts_edit_view_free(&fx->views[i]);
    facts_set_free(&fx->set);
    model_free(fx->m);
}

/* Writes DIR/locate.h5 of run run_id (collective over comm; rank 0 writes the
 * one shard): for each fact, neurons[i] as the edit/ set; a fact with
 * neurons[i].n == 0 gets found = 0 ("no LAFN found"). */
static inline int etl_write_locate(const char *dir, const h5out_provenance *prov, const facts_set *set,
                            const etl_neurons *neurons, MPI_Comm comm, lafn_err *err) {
    size_t n = set->n_facts, nnz = 0;
    for (size_t i = 0; i < n; i++) nnz += (size_t)neurons[i].n;
    int64_t *facts = calloc(n, 8), *off = calloc(n + 1, 8);
    int32_t *status = calloc(n * LOCATE_STATUS_LEN, 4), *layer = calloc(nnz + 1, 4), *neuron = calloc(nnz + 1, 4);
    float *act = calloc(nnz + 1, 4), *thr = calloc(nnz + 1, 4);
    int rank, rc = 0;
    MPI_Comm_rank(comm, &rank);
    for (size_t i = 0, k = 0; i < n; i++) {
        facts[i] = (int64_t)set->facts[i].index;
        status[i * LOCATE_STATUS_LEN] = neurons[i].n > 0;
        for (int e = 0; e < neurons[i].n; e++, k++) {
            layer[k] = neurons[i].layer[e];
            neuron[k] = neurons[i].neuron[e];
            act[k] = neurons[i].sign[e];
            thr[k] = neurons[i].threshold[e];
        }
        off[i + 1] = off[i] + neurons[i].n;
    }
    h5out_dataset ds[] = {
        {"edit/layer", H5OUT_CSR, H5OUT_I32, 0, layer, off},
        {"edit/neuron", H5OUT_CSR, H5OUT_I32, 0, neuron, off},
        {"edit/act_mean", H5OUT_CSR, H5OUT_F32, 0, act, off},
        {"edit/gate_threshold", H5OUT_CSR, H5OUT_F32, 0, thr, off},
        {"status", H5OUT_ROWS, H5OUT_I32, LOCATE_STATUS_LEN, status, NULL},
    };
    if (rank == 0) rc = h5out_shard_write(dir, prov, 0, 0, facts, n, ds, 5, err);
    if (mpi_status_agree(comm, rc, err) == 0) rc = h5out_merge(dir, prov, ds, 5, comm, err);
    else rc = -1;
    free(facts), free(off), free(status), free(layer), free(neuron), free(act), free(thr);
    return rc;
}

#endif
