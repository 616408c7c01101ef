/* stage_edit_refs: the gates' reference questions — every fact's src forwarded once, one batch per fact, and what the gates and keys read of them gathered on every rank. */
#include "edit/stage_edit_loop.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/lafn_clock.h"

void edit_gate_refs_free(edit_gate_refs *g) {
    free(g->row_off);
    free(g->state);
    free(g->ref_off);
    free(g->ref_row);
    free(g->act_off);
    free(g->act);
    memset(g, 0, sizeof *g);
}

/* Candidate neurons (locate's) of fact i: the count, from entry *off of S->nr; 0 without any. */
static int64_t candidates(const edit_stage *S, size_t i, int64_t *off) {
    long r = S->row[i];
    *off = r < 0 ? 0 : S->nr.offsets[r];
    return r < 0 ? 0 : S->nr.offsets[r + 1] - S->nr.offsets[r];
}

/* Fact i's references, written as rows into row (NULL: only counted); returns their count. */
static int64_t fact_refs(const edit_stage *S, size_t i, int64_t *row) {
    const facts_edit_view *v = &S->views[i];
    size_t n = S->ctx.facts.n_facts;
    int64_t count = 0;
    for (size_t l = 0; l < v->n_langs; l++) {
        size_t found = 0;
        for (size_t k = 1; k < n && found < EDIT_GATE_REFS; k++) {
            size_t j = (i + k) % n;
            const facts_edit_view *o = &S->views[j];
            int64_t at = S->refs.row_off[j];
            for (size_t q = 0; q < o->n_langs; q++) {
                if (!o->langs[q].n_prompts) continue;
                if (!strcmp(o->langs[q].lang, v->langs[l].lang)) {
                    if (row) row[count] = at;
                    count++;
                    found++;
                }
                at++;
            }
        }
    }
    return count;
}

/* Rows, references and the act blocks of every fact, the tables zeroed. */
static int refs_layout(edit_stage *S, lafn_err *err) {
    edit_gate_refs *R = &S->refs;
    size_t n = S->ctx.facts.n_facts, D = (size_t)S->ctx.m->cfg.d_model;
    R->row_off = malloc((n + 1) * sizeof *R->row_off);
    R->ref_off = malloc((n + 1) * sizeof *R->ref_off);
    R->act_off = malloc((n + 1) * sizeof *R->act_off);
    if (!R->row_off || !R->ref_off || !R->act_off) return lafn_err_set(err, "edit gate: out of memory for %zu facts", n);
    R->row_off[0] = 0;
    for (size_t j = 0; j < n; j++) {
        R->row_off[j + 1] = R->row_off[j];
        for (size_t q = 0; q < S->views[j].n_langs; q++) R->row_off[j + 1] += S->views[j].langs[q].n_prompts > 0;
    }
    R->ref_off[0] = R->act_off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t off, refs = fact_refs(S, i, NULL);
        R->ref_off[i + 1] = R->ref_off[i] + refs;
        R->act_off[i + 1] = R->act_off[i] + refs * candidates(S, i, &off);
    }
    R->state = calloc((size_t)R->row_off[n] * D + 1, sizeof *R->state);
    R->ref_row = malloc(((size_t)R->ref_off[n] + 1) * sizeof *R->ref_row);
    R->act = calloc((size_t)R->act_off[n] + 1, sizeof *R->act);
    if (!R->state || !R->ref_row || !R->act)
        return lafn_err_set(err, "edit gate: out of memory for %lld questions and %lld references of %zu facts",
                            (long long)R->row_off[n], (long long)R->ref_off[n], n);
    for (size_t i = 0; i < n; i++) fact_refs(S, i, R->ref_row + R->ref_off[i]);
    return 0;
}

/* For every row, the references that are it (by_off (rows + 1) into by_ref) and each reference's fact. */
typedef struct {
    int64_t *by_off, *by_ref, *fact;
} refs_index;

static int index_build(const edit_stage *S, refs_index *x, lafn_err *err) {
    const edit_gate_refs *R = &S->refs;
    size_t n = S->ctx.facts.n_facts, rows = (size_t)R->row_off[n], refs = (size_t)R->ref_off[n];
    x->by_off = calloc(rows + 2, sizeof *x->by_off);
    x->by_ref = malloc((refs + 1) * sizeof *x->by_ref);
    x->fact = malloc((refs + 1) * sizeof *x->fact);
    if (!x->by_off || !x->by_ref || !x->fact) return lafn_err_set(err, "edit gate: out of memory for %zu references", refs);
    for (size_t i = 0; i < n; i++)
        for (int64_t e = R->ref_off[i]; e < R->ref_off[i + 1]; e++) {
            x->fact[e] = (int64_t)i;
            x->by_off[R->ref_row[e] + 2]++;
        }
    for (size_t r = 0; r < rows; r++) x->by_off[r + 2] += x->by_off[r + 1];
    for (size_t e = 0; e < refs; e++) x->by_ref[x->by_off[R->ref_row[e] + 1]++] = (int64_t)e;
    return 0;
}

static void index_free(refs_index *x) {
    free(x->by_off);
    free(x->by_ref);
    free(x->fact);
}

/* Forwards fact j's src questions as one batch; writes their rows' states and, for every reference that is
 * one of them, the activations of the referring fact's candidates. */
static int forward_fact(edit_stage *S, size_t j, const refs_index *x, lafn_err *err) {
    edit_gate_refs *R = &S->refs;
    const facts_edit_view *v = &S->views[j];
    size_t D = (size_t)S->ctx.m->cfg.d_model, F = (size_t)S->ctx.m->cfg.d_ffn;
    edit_prompt_batch g = {0};
    engine_run *run = NULL;
    int rc = 0;
    for (size_t q = 0; rc == 0 && q < v->n_langs; q++)
        if (v->langs[q].n_prompts) rc = edit_prompt_batch_add(&g, S->ctx.m->tok, v->langs[q].lang, v->langs[q].prompts[0], err);
    if (rc == 0 && g.B) rc = edit_prompt_batch_forward(S->ctx.m, &g, &run, err);
    for (size_t b = 0; rc == 0 && b < g.B; b++) {
        int64_t row = R->row_off[j] + (int64_t)b;
        size_t at = (size_t)g.last[b];
        memcpy(R->state + (size_t)row * D, engine_residual(run, S->key_layer) + at * D, D * sizeof *R->state);
        for (int64_t t = x->by_off[row]; t < x->by_off[row + 1]; t++) {
            int64_t e = x->by_ref[t], i = x->fact[e], off, nc = candidates(S, (size_t)i, &off);
            float *out = R->act + R->act_off[i] + (e - R->ref_off[i]) * nc;
            for (int64_t k = 0; k < nc; k++)
                out[k] = engine_ffn_act(run, S->nr.layer[off + k])[at * F + (size_t)S->nr.neuron[off + k]];
        }
    }
    engine_run_free(run);
    edit_prompt_batch_free(&g);
    return rc ? lafn_err_wrap(err, "the src questions of fact %s", S->ctx.facts.facts[j].id) : 0;
}

/* Sums a (n) over comm's ranks in place, in pieces an int can count. */
static void sum_over_ranks(float *a, size_t n, MPI_Comm comm) {
    for (size_t at = 0; at < n; at += INT_MAX / 2) {
        size_t len = n - at < (size_t)INT_MAX / 2 ? n - at : (size_t)INT_MAX / 2;
        MPI_Allreduce(MPI_IN_PLACE, a + at, (int)len, MPI_FLOAT, MPI_SUM, comm);
    }
}

/* The key centre: the mean of every row's state, in row order (the same on every rank). */
static int center_of_states(edit_stage *S, lafn_err *err) {
    const edit_gate_refs *R = &S->refs;
    size_t D = (size_t)S->ctx.m->cfg.d_model, rows = (size_t)R->row_off[S->ctx.facts.n_facts];
    double *sum = calloc(D, sizeof *sum);
    S->key_center = malloc(D * sizeof *S->key_center);
    if (!sum || !S->key_center) {
        free(sum);
        return lafn_err_set(err, "edit: out of memory for the key centre");
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t d = 0; d < D; d++) sum[d] += R->state[r * D + d];
    for (size_t d = 0; d < D; d++) S->key_center[d] = rows ? (float)(sum[d] / (double)rows) : 0.0f;
    free(sum);
    return 0;
}

int edit_gate_refs_compute(edit_stage *S, lafn_err *err) {
    refs_index x = {0};
    size_t n = S->ctx.facts.n_facts;
    double t0 = lafn_now_seconds();
    int rc = refs_layout(S, err);
    if (rc == 0) rc = index_build(S, &x, err);
    for (size_t j = (size_t)S->ctx.rank; rc == 0 && j < n; j += (size_t)S->ctx.size) rc = forward_fact(S, j, &x, err);
    index_free(&x);
    if (mpi_status_agree(S->ctx.comm, rc, err)) return -1;
    const edit_gate_refs *R = &S->refs;
    sum_over_ranks(R->state, (size_t)R->row_off[n] * (size_t)S->ctx.m->cfg.d_model, S->ctx.comm);
    sum_over_ranks(R->act, (size_t)R->act_off[n], S->ctx.comm);
    if (mpi_status_agree(S->ctx.comm, center_of_states(S, err), err)) return -1;
    if (S->ctx.rank == 0 && S->ctx.log)
        fprintf(S->ctx.log, "edit: gate references: the src questions of %zu facts (%lld) forwarded once in %.1f s\n",
                n, (long long)R->row_off[n], lafn_now_seconds() - t0);
    return 0;
}
