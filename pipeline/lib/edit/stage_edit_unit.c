/* stage_edit_unit: one unit of the edit stage — a fact (single, sequential) or a batch of facts sharing one delta set. */
#include "edit/stage_edit_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/lafn_clock.h"

void edit_memory_kb(int64_t *peak_rss_kb, int64_t *pss_kb) {
    struct rusage ru;
    *peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss : 0;
    *pss_kb = 0;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return;
    char line[256];
    long long kb;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %lld kB", &kb) == 1) { *pss_kb = kb; break; }
    fclose(f);
}

/* The union of the unit's located neurons, in first-seen order. */
static int neuron_union(const edit_stage *S, const size_t *facts, size_t n, int **layer, int **neuron, int *n_out,
                        lafn_err *err) {
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        long r = S->row[facts[i]];
        cap += (size_t)(S->nr.offsets[r + 1] - S->nr.offsets[r]);
    }
    *layer = malloc((cap + 1) * sizeof **layer);
    *neuron = malloc((cap + 1) * sizeof **neuron);
    if (!*layer || !*neuron) return lafn_err_set(err, "edit: out of memory for %zu neurons", cap);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        long r = S->row[facts[i]];
        for (int64_t e = S->nr.offsets[r]; e < S->nr.offsets[r + 1]; e++) {
            int dup = 0;
            for (int q = 0; q < k && !dup; q++) dup = (*layer)[q] == S->nr.layer[e] && (*neuron)[q] == S->nr.neuron[e];
            if (!dup) { (*layer)[k] = S->nr.layer[e]; (*neuron)[k++] = S->nr.neuron[e]; }
        }
    }
    *n_out = k;
    return 0;
}

/* 1 if fact i (index into the set) has located neurons. */
int edit_fact_has_neurons(const edit_stage *S, size_t i) {
    long r = S->row[i];
    return (S->nr.found[r] != 0 || S->language_specific) && S->nr.offsets[r + 1] > S->nr.offsets[r];
}

typedef struct {
    size_t counter;
    int rank, size;
} keep_rr;

/* Deals the unit's sequences round-robin over the unit's ranks. */
static int keep_round_robin(size_t i, void *arg) {
    keep_rr *k = arg;
    (void)i;
    return (int)(k->counter++ % (size_t)k->size) == k->rank;
}

/* Fills the record of fact i (index into the set) after the unit's optimisation. */
static int fill_record(edit_record *rec, const edit_stage *S, size_t i, long long group, size_t slot,
                       const edit_problem *p, const edit_result *res, int n, const int *layer, const int *neuron,
                       const float *delta, lafn_err *err) {
    size_t L = S->ctx.facts.n_langs, width = S->h.kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)S->ctx.m->cfg.d_model : 1;
    long r = S->row[i];
    int has = edit_fact_has_neurons(S, i) && res;
    size_t ng = S->h.method == EDIT_METHOD_LAFN ? (size_t)(S->nr.offsets[r + 1] - S->nr.offsets[r]) : 0;
    *rec = (edit_record){.fact = (int64_t)S->ctx.facts.facts[i].index, .group = has ? group : -1 - (int64_t)i,
                         .order = (int64_t)i, .kind = S->h.kind, .n_gate = has ? (int)ng : 0,
                         .n_delta = has ? n : 0, .n_evals = S->h.steps + 1};
    size_t E = (size_t)rec->n_evals, slots = p->n_facts > 0 ? (size_t)p->n_facts * L : 0;
    rec->nll_before = malloc(L * sizeof *rec->nll_before);
    rec->nll_after = malloc(L * sizeof *rec->nll_after);
    rec->gate_layer = malloc((ng + 1) * sizeof *rec->gate_layer);
    rec->gate_neuron = malloc((ng + 1) * sizeof *rec->gate_neuron);
    rec->gate_sign = malloc((ng + 1) * sizeof *rec->gate_sign);
    rec->gate_threshold = malloc((ng + 1) * sizeof *rec->gate_threshold);
    rec->delta_layer = malloc(((size_t)n + 1) * sizeof *rec->delta_layer);
    rec->delta_neuron = malloc(((size_t)n + 1) * sizeof *rec->delta_neuron);
    rec->delta = malloc(((size_t)n * width + 1) * sizeof *rec->delta);
    rec->curve_nll = malloc(E * L * sizeof *rec->curve_nll);
    rec->curve_loss = malloc(E * sizeof *rec->curve_loss);
    if (!rec->nll_before || !rec->nll_after || !rec->gate_layer || !rec->gate_neuron || !rec->gate_sign ||
        !rec->gate_threshold || !rec->delta_layer || !rec->delta_neuron || !rec->delta || !rec->curve_nll ||
        !rec->curve_loss)
        return lafn_err_set(err, "edit: out of memory for the record of fact %s", S->ctx.facts.facts[i].id);
    for (size_t l = 0; l < L; l++) {
        rec->nll_before[l] = has ? res->nll_before[slot * L + l] : NAN;
        rec->nll_after[l] = has ? res->nll_after[slot * L + l] : NAN;
    }
    for (size_t t = 0; t < E; t++) {
        rec->curve_loss[t] = has ? res->curve_loss[t] : NAN;
        for (size_t l = 0; l < L; l++) rec->curve_nll[t * L + l] = has ? res->curve_nll[t * slots + slot * L + l] : NAN;
    }
    if (!has) { rec->status = EDIT_STATUS_NO_LAFN; return 0; }
    double t = lafn_now_seconds();
    if (S->h.method == EDIT_METHOD_LAFN && edit_gate_for_fact(S, i, rec, err)) return -1; /* baselines: no gate */
    memcpy(rec->seconds, res->seconds, sizeof rec->seconds);
    rec->seconds[EDIT_PHASE_GATE] = lafn_now_seconds() - t;
    memcpy(rec->delta_layer, layer, (size_t)n * sizeof *rec->delta_layer);
    memcpy(rec->delta_neuron, neuron, (size_t)n * sizeof *rec->delta_neuron);
    memcpy(rec->delta, delta, (size_t)n * width * sizeof *rec->delta);
    int reached = 1;
    for (size_t l = 0; l < L; l++)
        if (p->present[slot * L + l] && !(res->nll_after[slot * L + l] < S->h.stop_nll)) reached = 0;
    rec->status = reached ? EDIT_STATUS_EDITED : EDIT_STATUS_NOT_REACHED;
    rec->steps = res->steps;
    rec->early_stopped = res->early_stopped;
    rec->loss[0] = res->loss_first;
    rec->loss[1] = res->loss_last;
    rec->loss[2] = res->kl_last;
    rec->loss[3] = res->l2_last;
    return 0;
}

int edit_unit_problem(const edit_stage *S, const size_t *facts, size_t n, MPI_Comm comm, edit_problem *p, int *slot,
                      lafn_err *err) {
    keep_rr kr = {0};
    MPI_Comm_rank(comm, &kr.rank);
    MPI_Comm_size(comm, &kr.size);
    int n_slots = 0;
    for (size_t k = 0; k < n; k++) slot[k] = edit_fact_has_neurons(S, facts[k]) ? n_slots++ : -1;
    if (edit_problem_init(p, n_slots, (int)S->ctx.facts.n_langs, S->h.kl_other_facts, err)) return -1;
    for (size_t k = 0; k < n; k++) {
        if (slot[k] < 0) continue;
        const facts_edit_view *v = &S->views[facts[k]];
        int ls[FACTS_MAX_LANGS];
        for (size_t l = 0; l < v->n_langs; l++) {
            ls[l] = -1;
            for (size_t q = 0; q < S->ctx.facts.n_langs; q++)
                if (!strcmp(v->langs[l].lang, S->ctx.facts.langs[q])) ls[l] = (int)q;
        }
        if (edit_problem_add_fact(p, S->ctx.m->tok, v, slot[k], ls, S->views, S->ctx.facts.n_facts, facts[k],
                                  keep_round_robin, &kr, err))
            return -1;
    }
    return 0;
}

int edit_unit_run(edit_stage *S, const size_t *facts, size_t n, long long group, MPI_Comm comm,
                  const edit_cache *fixed, edit_record *out, lafn_err *err) {
    double t0 = lafn_now_seconds();
    edit_problem p = {0};
    edit_result res = {0};
    int *layer = NULL, *neuron = NULL, *slot = calloc(n + 1, sizeof *slot), n_neurons = 0, have_res = 0, rc = -1;
    float *delta = NULL;
    size_t width = S->h.kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)S->ctx.m->cfg.d_model : 1;
    int local = slot ? neuron_union(S, facts, n, &layer, &neuron, &n_neurons, err)
                     : lafn_err_set(err, "edit: out of memory for %zu slots", n);
    if (mpi_status_agree(comm, local, err)) goto fail;
    if (n_neurons > 0) {
        if (!(delta = calloc((size_t)n_neurons * width, sizeof *delta))) {
            lafn_err_set(err, "edit: out of memory for %d deltas", n_neurons);
            goto fail;
        }
        if (mpi_status_agree(comm, edit_unit_problem(S, facts, n, comm, &p, slot, err), err)) goto fail;
        if (edit_optimise(S->ctx.m, &p, n_neurons, layer, neuron, delta, fixed, &S->h, comm, &res, err)) goto fail;
        have_res = 1;
    }
    double wall = lafn_now_seconds() - t0;
    int64_t peak, pss;
    edit_memory_kb(&peak, &pss);
    int unit_ranks;
    MPI_Comm_size(comm, &unit_ranks);
    local = 0;
    for (size_t k = 0; k < n && local == 0; k++) {
        if ((local = fill_record(&out[k], S, facts[k], group, slot[k] < 0 ? 0 : (size_t)slot[k], &p,
                                 have_res && slot[k] >= 0 ? &res : NULL, n_neurons, layer, neuron, delta, err)))
            break;
        out[k].wall_seconds = wall;
        out[k].peak_rss_kb = peak;
        out[k].pss_kb = pss;
        out[k].rank = S->ctx.rank;
        out[k].unit_ranks = unit_ranks;
    }
    rc = mpi_status_agree(comm, local, err);
fail:
    edit_result_free(&res);
    edit_problem_free(&p);
    free(layer);
    free(neuron);
    free(slot);
    free(delta);
    return rc;
}
