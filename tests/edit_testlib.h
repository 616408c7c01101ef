/* edit_testlib: what the edit tests share — fact loading, a locate-like neuron choice, and a locate.h5 writer. */
#ifndef LAFN_EDIT_TESTLIB_H
#define LAFN_EDIT_TESTLIB_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_optimise.h"
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
