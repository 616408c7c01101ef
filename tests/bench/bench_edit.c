/* bench_edit: one fact's edit on the real model as the edit stage runs it (single mode), timed per phase, each path of the LM head side by side; writes the problem for torch_edit_speed.py. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/lafn_clock.h"
#include "edit/stage_edit_loop.h"

char *openblas_get_corename(void);
int openblas_get_num_threads(void);

enum { MAX_REPEATS = 32, MAX_FACTS = 64 };

/* The paths compared: the reference (logits stored, log-softmax, backward
 * through the stored gradient) and the one the stage runs. */
typedef struct {
    const char *name;
    int fused_head;
} variant;
static const variant variants[] = {{"reference", 0}, {"fused", 1}};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

/* One run of one variant on one fact: wall and CPU seconds (on a shared
 * machine the CPU time of a one-thread run counts the work without the
 * waits for a core). */
typedef struct {
    double total, cpu, seconds[EDIT_PHASES];
    edit_record rec;
} sample;

static const char *const phase_names[EDIT_PHASES] = {"lower", "layers_fwd", "head_fwd", "loss",
                                                     "head_bwd", "layers_bwd", "adam", "gate"};

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Largest |a − b| over n values, and the largest |a| (the scale). */
static double max_diff(const float *a, const float *b, size_t n, double *scale) {
    double d = 0.0;
    *scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        *scale = fmax(*scale, fabs((double)a[i]));
    }
    return d;
}

/* Tokens and scored positions of the fact's problem; with dump, the problem as JSON for torch_edit_speed.py. */
static int problem_size(const edit_stage *S, size_t i, size_t *tokens, size_t *positions, FILE *dump,
                        const sample *ref, lafn_err *err) {
    edit_problem p = {0};
    int slot = -1;
    int rc = edit_unit_problem(S, &i, 1, MPI_COMM_SELF, &p, &slot, err);
    *tokens = *positions = 0;
    for (size_t s = 0; rc == 0 && s < p.n_seqs; s++) {
        *tokens += p.seqs[s].n_prompt + p.seqs[s].n_target;
        *positions += p.seqs[s].n_target ? p.seqs[s].n_target : 1;
    }
    if (rc == 0 && dump) {
        const edit_record *r = &ref->rec;
        const edit_hparams *h = &S->h;
        fprintf(dump, "{\"fact\": %zu, \"n_langs\": %d,\n \"hparams\": {\"lr\": %.17g, \"steps\": %d, \"stop_nll\": %.17g, "
                "\"kl_weight\": %.17g, \"l2\": %.17g, \"norm_clamp\": %.17g, \"keep_best\": %d},\n \"neurons\": [",
                S->ctx.facts.facts[i].index, p.n_langs, h->lr, h->steps, h->stop_nll, h->kl_weight, h->l2,
                h->norm_clamp, h->keep_best);
        for (int e = 0; e < r->n_delta; e++)
            fprintf(dump, "%s[%d, %d]", e ? ", " : "", r->delta_layer[e], r->delta_neuron[e]);
        fprintf(dump, "],\n \"seqs\": [");
        for (size_t s = 0; s < p.n_seqs; s++) {
            const edit_seq *q = &p.seqs[s];
            fprintf(dump, "%s\n  {\"lang\": %d, \"n_prompt\": %zu, \"n_target\": %zu, \"weight\": %.17g, "
                    "\"slot_weight\": %.17g, \"ids\": [", s ? "," : "", q->lang, q->n_prompt, q->n_target, q->weight,
                    q->slot_weight);
            for (size_t k = 0; k < q->n_prompt + q->n_target; k++) fprintf(dump, "%s%d", k ? ", " : "", q->ids[k]);
            fprintf(dump, "]}");
        }
        fprintf(dump, "],\n \"lafn\": {\"steps\": %d, \"loss_first\": %.17g, \"loss_last\": %.17g, \"kl_last\": %.17g, "
                "\"optimise_seconds\": %.6f, \"nll_after\": [", r->steps, r->loss[0], r->loss[1], r->loss[2],
                ref->total - ref->seconds[EDIT_PHASE_GATE]);
        for (int l = 0; l < p.n_langs; l++) fprintf(dump, "%s%.17g", l ? ", " : "", r->nll_after[l]);
        fprintf(dump, "], \"nll_before\": [");
        for (int l = 0; l < p.n_langs; l++) fprintf(dump, "%s%.17g", l ? ", " : "", r->nll_before[l]);
        fprintf(dump, "],\n  \"delta\": [");
        for (size_t k = 0; k < (size_t)r->n_delta * (size_t)S->ctx.m->cfg.d_model; k++)
            fprintf(dump, "%s%.9g", k ? ", " : "", r->delta[k]);
        fprintf(dump, "]}}\n");
    }
    edit_problem_free(&p);
    return rc;
}

/* Runs variant v on fact i as the stage's single mode does. */
static int run_once(edit_stage *S, const edit_hparams *base, const variant *v, size_t i, sample *out, lafn_err *err) {
    S->h = *base;
    S->h.fused_head = v->fused_head;
    memset(out, 0, sizeof *out);
    double t0 = lafn_now_seconds(), c0 = cpu_seconds();
    if (edit_unit_run(S, &i, 1, (long long)i, MPI_COMM_SELF, NULL, &out->rec, err)) return -1;
    out->total = lafn_now_seconds() - t0;
    out->cpu = cpu_seconds() - c0;
    memcpy(out->seconds, out->rec.seconds, sizeof out->seconds);
    return 0;
}

/* Prints how far every variant's result is from the reference's. */
static void print_equality(const edit_stage *S, size_t i, sample s[N_VARIANTS]) {
    const edit_record *a = &s[0].rec;
    for (int v = 1; v < N_VARIANTS; v++) {
        const edit_record *b = &s[v].rec;
        double nll = 0.0, scale = 0.0;
        for (size_t l = 0; l < S->ctx.facts.n_langs; l++)
            if (!isnan(a->nll_after[l])) nll = fmax(nll, fabs(a->nll_after[l] - b->nll_after[l]));
        size_t nd = (size_t)a->n_delta * (size_t)S->ctx.m->cfg.d_model;
        double dd = a->n_delta == b->n_delta ? max_diff(a->delta, b->delta, nd, &scale) : INFINITY;
        printf("fact=%zu equality %s vs %s: steps %d vs %d, loss_first %.9g vs %.9g (rel %.2e), loss_last %.9g vs "
               "%.9g (rel %.2e), KL %.3e, max |nll_after diff| %.2e, max |delta diff| %.2e (max |delta| %.3g)\n",
               S->ctx.facts.facts[i].index, variants[v].name, variants[0].name, b->steps, a->steps, b->loss[0],
               a->loss[0], fabs(b->loss[0] - a->loss[0]) / fabs(a->loss[0]), b->loss[1], a->loss[1],
               fabs(b->loss[1] - a->loss[1]) / fabs(a->loss[1]), fabs(b->loss[2] - a->loss[2]), nll, dd, scale);
    }
}

/* Prints a variant's medians over the repeats: total, per phase, per step. */
static void print_variant(size_t fact, const variant *v, sample *runs, int n, size_t tokens, size_t positions) {
    double t[MAX_REPEATS];
    for (int r = 0; r < n; r++) t[r] = runs[r].total;
    int steps = runs[0].rec.steps;
    double c[MAX_REPEATS];
    for (int r = 0; r < n; r++) c[r] = runs[r].cpu;
    printf("fact=%zu variant=%s tokens=%zu positions=%zu steps=%d total_s=%.2f cpu_s=%.2f", fact, v->name, tokens,
           positions, steps, median(t, n), median(c, n));
    for (int ph = 0; ph < EDIT_PHASES; ph++) {
        for (int r = 0; r < n; r++) t[r] = runs[r].seconds[ph];
        printf(" %s=%.3f", phase_names[ph], median(t, n));
    }
    printf("\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int only = -1; /* --only NAME: that path alone */
    if (argc > 2 && !strcmp(argv[1], "--only")) {
        for (int v = 0; v < N_VARIANTS; v++) only = strcmp(argv[2], variants[v].name) ? only : v;
        if (only < 0) { fprintf(stderr, "bench_edit: --only takes reference or fused\n"); return 2; }
        argc -= 2, argv += 2;
    }
    if (argc < 6) {
        fprintf(stderr, "usage: bench_edit [--only reference|fused] FIRST COUNT REPEATS DUMP.json|- CONFIG [section.key=value ...]\n"
                        "  edits facts FIRST..FIRST+COUNT-1 of the configuration's set (its locate.h5 must exist),\n"
                        "  REPEATS times each path, alternating; DUMP receives the first fact's problem.\n");
        return 2;
    }
    size_t first = (size_t)atol(argv[1]), count = (size_t)atol(argv[2]);
    int repeats = atoi(argv[3]);
    if (repeats < 1 || repeats > MAX_REPEATS || count < 1 || count > MAX_FACTS) {
        fprintf(stderr, "bench_edit: REPEATS in [1, %d], COUNT in [1, %d]\n", MAX_REPEATS, MAX_FACTS);
        return 2;
    }
    MPI_Init(&argc, &argv);
    lafn_err err = {{0}};
    edit_stage S;
    if (edit_stage_init(&S, argv[5], argv + 6, argc - 6, "bench_edit", MPI_COMM_WORLD, NULL, &err)) {
        fprintf(stderr, "bench_edit: %s\n", err.msg);
        return 1;
    }
    FILE *dump = strcmp(argv[4], "-") ? fopen(argv[4], "w") : NULL;
    printf("kernel=%s threads=%d model=%s facts=%zu..%zu repeats=%d\n", openblas_get_corename(),
           openblas_get_num_threads(), S.ctx.m->name, first, first + count - 1, repeats);
    edit_hparams base = S.h;
    static sample runs[N_VARIANTS][MAX_REPEATS];
    double ratio[MAX_FACTS * MAX_REPEATS], cpu_ratio[MAX_FACTS * MAX_REPEATS];
    int n_ratio = 0, lo_v = only < 0 ? 0 : only, hi_v = only < 0 ? N_VARIANTS - 1 : only;
    for (size_t i = first; i < first + count && i < S.ctx.facts.n_facts; i++) {
        if (!edit_fact_has_neurons(&S, i)) { printf("fact=%zu no LAFN: not edited\n", i); continue; }
        for (int r = 0; r < repeats; r++)
            for (int k = lo_v; k <= hi_v; k++) {
                int v = r % 2 ? lo_v + hi_v - k : k; /* alternate the order */
                if (run_once(&S, &base, &variants[v], i, &runs[v][r], &err)) {
                    fprintf(stderr, "bench_edit: fact %zu: %s\n", i, err.msg);
                    return 1;
                }
            }
        size_t tokens, positions;
        if (problem_size(&S, i, &tokens, &positions, i == first ? dump : NULL, &runs[hi_v][0], &err)) {
            fprintf(stderr, "bench_edit: %s\n", err.msg);
            return 1;
        }
        size_t fact = S.ctx.facts.facts[i].index;
        for (int v = lo_v; v <= hi_v; v++) print_variant(fact, &variants[v], runs[v], repeats, tokens, positions);
        if (only < 0) {
            sample firsts[N_VARIANTS];
            for (int v = 0; v < N_VARIANTS; v++) firsts[v] = runs[v][0];
            print_equality(&S, i, firsts);
            for (int r = 0; r < repeats; r++, n_ratio++) {
                ratio[n_ratio] = runs[0][r].total / runs[N_VARIANTS - 1][r].total;
                cpu_ratio[n_ratio] = runs[0][r].cpu / runs[N_VARIANTS - 1][r].cpu;
            }
        }
        for (int v = lo_v; v <= hi_v; v++)
            for (int r = 0; r < repeats; r++) edit_record_free(&runs[v][r].rec);
    }
    if (dump) fclose(dump);
    for (int k = 0; n_ratio && k < 2; k++) {
        double *q = k ? cpu_ratio : ratio, lo = q[0], hi = q[0];
        for (int j = 1; j < n_ratio; j++) lo = fmin(lo, q[j]), hi = fmax(hi, q[j]);
        printf("speed-up %s / %s in %s seconds (per fact and repeat, side by side): median %.2f, min %.2f, max %.2f, "
               "n %d\n", variants[0].name, variants[N_VARIANTS - 1].name, k ? "CPU" : "wall", median(q, n_ratio), lo,
               hi, n_ratio);
    }
    edit_stage_free(&S);
    MPI_Finalize();
    return 0;
}
