/* stage_locate: the locate stage's run — probe.h5 in, facts dealt by kept-neuron count, LAFN sets per rank into shards, locate.h5 with the atlas. */
#include "locate/stage_locate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5/h5global.h"
#include "stage/stage.h"
#include "stage/fact_loop.h"

typedef struct {
    stage_context *ctx;
    locate_opts o;
    locate_batch b;
    hid_t probe;
    char probe_path[4096];
    int32_t *layers;   /* (n_probed) from probe.h5 */
    size_t n_probed;
    size_t *row_of;    /* (n_facts) probe.h5 row of ctx->facts.facts[i] */
    size_t *cost;      /* (n_facts) kept entries + 1 */
    double *run_sum;   /* (n_layer · n_ffn + 1) locate.rank_by = contrast: Σ kept score per neuron, then the prompts */
} locate_state;

/* The run's languages joined with ',' (as probe.h5's lafn_langs). */
static void join_langs(const stage_context *ctx, char *out, size_t cap) {
    out[0] = '\0';
    for (size_t k = 0; k < ctx->facts.n_langs; k++) {
        if (k) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, ctx->facts.langs[k], cap - strlen(out) - 1);
    }
}

typedef struct {
    int64_t fact;
    size_t row;
} row_key;

static int by_fact(const void *a, const void *b) {
    const row_key *x = a, *y = b;
    return (x->fact > y->fact) - (x->fact < y->fact);
}

/* Maps each fact of the run to its probe.h5 row and its cost; every fact must be there. */
static int map_rows(locate_state *s, lafn_err *err) {
    stage_context *ctx = s->ctx;
    int64_t *facts = NULL, *off = NULL;
    row_key *order = NULL;
    size_t n_rows = 0, n_off = 0;
    int rc = -1;
    if (h5out_read_all(s->probe, s->probe_path, "facts", H5OUT_I64, 0, (void **)&facts, &n_rows, err) ||
        h5out_read_all(s->probe, s->probe_path, "kept/neuron/offsets", H5OUT_I64, 0, (void **)&off, &n_off, err))
        goto fail;
    if (n_off != n_rows + 1) {
        lafn_err_set(err, "%s: kept/neuron/offsets has %zu entries, expected %zu", s->probe_path, n_off, n_rows + 1);
        goto fail;
    }
    s->row_of = malloc((ctx->facts.n_facts + 1) * sizeof *s->row_of);
    s->cost = malloc((ctx->facts.n_facts + 1) * sizeof *s->cost);
    if (!s->row_of || !s->cost) { lafn_err_set(err, "locate: out of memory"); goto fail; }
    if (!(order = malloc((n_rows + 1) * sizeof *order))) { lafn_err_set(err, "locate: out of memory"); goto fail; }
    for (size_t r = 0; r < n_rows; r++) order[r] = (row_key){facts[r], r};
    qsort(order, n_rows, sizeof *order, by_fact);
    for (size_t i = 0; i < ctx->facts.n_facts; i++) {
        row_key want = {(int64_t)ctx->facts.facts[i].index, 0};
        const row_key *hit = bsearch(&want, order, n_rows, sizeof *order, by_fact);
        size_t r = hit ? hit->row : n_rows;
        if (r == n_rows) {
            lafn_err_set(err, "%s: fact '%s' (index %zu) is missing; run probe again", s->probe_path,
                         ctx->facts.facts[i].id, ctx->facts.facts[i].index);
            goto fail;
        }
        s->row_of[i] = r;
        s->cost[i] = (size_t)(off[r + 1] - off[r]) + 1;
    }
    rc = 0;
fail:
    free(order);
    free(facts);
    free(off);
    return rc;
}

/* Opens probe.h5 of this pipeline file and reads what every fact needs. */
static int open_probe(locate_state *s, lafn_err *err) {
    stage_context *ctx = s->ctx;
    char probe_id[STAGE_RUN_ID_LEN + 1], want[FACTS_MAX_LANGS * 4 + 1], *langs = NULL;
    snprintf(s->probe_path, sizeof s->probe_path, "%s/probe.h5", ctx->out_dir);
    if (stage_run_id(&ctx->cfg, ctx->m->sha256, "probe", probe_id, err) != 0) return -1;
    if (h5out_open(s->probe_path, "probe", probe_id, ctx->comm, &s->probe, err) != 0) return -1;
    if (h5global_check(s->probe, s->probe_path, err) != 0) return -1;
    if (h5out_attr_string(s->probe, "lafn_langs", &langs, err) != 0) return -1;
    join_langs(ctx, want, sizeof want);
    int same = strcmp(langs, want) == 0;
    free(langs);
    if (!same) return lafn_err_set(err, "%s: languages differ from this run's '%s'", s->probe_path, want);
    if (h5out_read_all(s->probe, s->probe_path, "global/layers", H5OUT_I32, 0, (void **)&s->layers, &s->n_probed,
                       err) != 0)
        return -1;
    for (size_t y = 0; y < s->n_probed; y++)
        if (s->layers[y] < 0 || s->layers[y] >= ctx->m->cfg.n_layer || (y && s->layers[y] <= s->layers[y - 1]))
            return lafn_err_set(err, "%s: global/layers[%zu] = %d is not an ascending layer of 0..%d", s->probe_path,
                                y, s->layers[y], ctx->m->cfg.n_layer - 1);
    return map_rows(s, err);
}

/* This rank's share (facts i with i mod size = rank) of the run-wide kept-score sums and prompt count. */
static int add_run_sums(locate_state *s, size_t n_cells, lafn_err *err) {
    stage_context *ctx = s->ctx;
    for (size_t i = (size_t)ctx->rank; i < ctx->facts.n_facts; i += (size_t)ctx->size) {
        locate_input in;
        if (locate_input_read(s->probe, s->probe_path, s->row_of[i], s->layers, s->n_probed, ctx->facts.n_langs,
                              ctx->m->cfg.d_ffn, &in, err) != 0)
            return -1;
        for (size_t e = 0; e < in.n_kept; e++)
            s->run_sum[(size_t)in.k_layer[e] * (size_t)ctx->m->cfg.d_ffn + (size_t)in.k_neuron[e]] += in.k_score[e];
        s->run_sum[n_cells] += (double)in.n_prompts;
        locate_input_free(&in);
    }
    return 0;
}

/* locate.rank_by = contrast: every neuron's kept score summed over all the run's prompts (collective). */
static int run_sums(locate_state *s, lafn_err *err) {
    stage_context *ctx = s->ctx;
    size_t n_cells = (size_t)ctx->m->cfg.n_layer * (size_t)ctx->m->cfg.d_ffn;
    s->run_sum = calloc(n_cells + 1, sizeof *s->run_sum);
    int rc = s->run_sum ? add_run_sums(s, n_cells, err) : lafn_err_set(err, "locate: out of memory for %zu sums", n_cells);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) return -1;
    MPI_Allreduce(MPI_IN_PLACE, s->run_sum, (int)(n_cells + 1), MPI_DOUBLE, MPI_SUM, ctx->comm);
    s->o.run_sum = s->run_sum;
    s->o.run_prompts = s->run_sum[n_cells];
    return 0;
}

static int process(void *user, size_t i, lafn_err *err) {
    locate_state *s = user;
    locate_input in;
    if (locate_input_read(s->probe, s->probe_path, s->row_of[i], s->layers, s->n_probed, s->ctx->facts.n_langs,
                          s->ctx->m->cfg.d_ffn, &in, err) != 0)
        return -1;
    int rc = locate_fact(&in, &s->o, &s->b, err);
    locate_input_free(&in);
    return rc == 0 ? 0 : lafn_err_wrap(err, "fact '%s'", s->ctx->facts.facts[i].id);
}

static int commit(void *user, size_t seq, lafn_err *err) {
    locate_state *s = user;
    h5out_dataset ds[LOCATE_N_DATASETS];
    locate_batch_datasets(&s->b, ds);
    int rc = h5out_shard_write(s->ctx->out_dir, &s->ctx->prov, s->ctx->rank, seq, s->b.facts, s->b.n_facts, ds,
                               LOCATE_N_DATASETS, err);
    locate_batch_reset(&s->b);
    return rc;
}

/* Run-wide totals reduced over ranks: status columns, LAFNs per layer, Jaccard per language pair. */
typedef struct {
    double *counts;  /* (6): facts, found, no LAFN, relaxed, LAFNs, capped prompt-layers */
    double *hist;    /* (L) */
    double *jac;     /* (NL * NL) Σ Jaccard */
    double *jac_n;   /* (NL * NL) facts counted */
    int32_t *per_neuron; /* (L, F) facts listing neuron (i, j) among their LAFNs */
} locate_totals;

/* Counts, per neuron, the facts of rows [r0, r1) that list it among their LAFNs. */
static int count_neurons(hid_t file, const char *path, size_t r0, size_t r1, size_t L, size_t F, int32_t *per_neuron,
                         lafn_err *err) {
    int64_t *o1 = NULL, *o2 = NULL;
    int32_t *layer = NULL, *neuron = NULL;
    int rc = h5out_read_csr(file, path, "lafn/layer", H5OUT_I32, r0, r1 - r0, &o1, (void **)&layer, err) ||
             h5out_read_csr(file, path, "lafn/neuron", H5OUT_I32, r0, r1 - r0, &o2, (void **)&neuron, err) ? -1 : 0;
    for (int64_t e = 0; rc == 0 && e < o1[r1 - r0]; e++) {
        if (layer[e] < 0 || (size_t)layer[e] >= L || neuron[e] < 0 || (size_t)neuron[e] >= F)
            rc = lafn_err_set(err, "%s: lafn entry %lld names blk.%d.ffn_down neuron %d, outside the model", path,
                              (long long)e, layer[e], neuron[e]);
        else
            per_neuron[(size_t)layer[e] * F + (size_t)neuron[e]]++;
    }
    free(o1); free(o2); free(layer); free(neuron);
    return rc;
}

static void add_rows(const int32_t *st, const int32_t *hist, const int32_t *pairs, size_t n, size_t L, size_t NL,
                     locate_totals *t) {
    for (size_t r = 0; r < n; r++) {
        const int32_t *s = st + r * LOCATE_STATUS_LEN, *p = pairs + r * 2 * NL * NL;
        t->counts[0] += 1;
        t->counts[1] += s[0] == 1;
        t->counts[2] += s[0] != 1;
        t->counts[3] += s[0] == 1 && s[3] > 0;
        t->counts[4] += s[1];
        t->counts[5] += s[4];
        for (size_t l = 0; l < L; l++) t->hist[l] += hist[r * L + l];
        for (size_t k = 0; k < NL * NL; k++)
            if (p[2 * k + 1] > 0) {
                t->jac[k] += (double)p[2 * k] / p[2 * k + 1];
                t->jac_n[k] += 1;
            }
    }
}

static int read_totals(locate_state *s, hid_t file, const char *path, locate_totals *t, lafn_err *err) {
    size_t L = (size_t)s->ctx->m->cfg.n_layer, NL = s->ctx->facts.n_langs, n_rows = 0;
    int64_t *facts = NULL;
    int32_t *st = NULL, *hist = NULL, *pairs = NULL;
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&facts, &n_rows, err) != 0) return -1;
    free(facts);
    size_t r0 = n_rows * (size_t)s->ctx->rank / (size_t)s->ctx->size;
    size_t r1 = n_rows * (size_t)(s->ctx->rank + 1) / (size_t)s->ctx->size;
    int rc = 0;
    if (r1 > r0)
        rc = h5out_read_rows(file, path, "status", H5OUT_I32, LOCATE_STATUS_LEN, r0, r1 - r0, (void **)&st, err) ||
             h5out_read_rows(file, path, "layer_hist", H5OUT_I32, L, r0, r1 - r0, (void **)&hist, err) ||
             h5out_read_rows(file, path, "pairs", H5OUT_I32, 2 * NL * NL, r0, r1 - r0, (void **)&pairs, err) ? -1 : 0;
    if (rc == 0 && r1 > r0) add_rows(st, hist, pairs, r1 - r0, L, NL, t);
    if (rc == 0 && r1 > r0) rc = count_neurons(file, path, r0, r1, L, (size_t)s->ctx->m->cfg.d_ffn, t->per_neuron, err);
    free(st);
    free(hist);
    free(pairs);
    return rc;
}

static void log_totals(const locate_state *s, const locate_totals *t) {
    FILE *log = s->ctx->log;
    size_t L = (size_t)s->ctx->m->cfg.n_layer, NL = s->ctx->facts.n_langs;
    if (s->ctx->rank != 0 || !log) return;
    fprintf(log, "locate: %.0f facts: %.0f with LAFNs (%.0f after relaxing the language fraction), %.0f with no "
            "LAFN found; %.0f LAFNs in all\n", t->counts[0], t->counts[1], t->counts[3], t->counts[2], t->counts[4]);
    if (t->counts[5] > 0)
        fprintf(log, "locate: warning: %.0f prompt-layers hit probe.keep_max above the threshold; raise "
                "probe.keep_max for exact active sets\n", t->counts[5]);
    size_t LF = L * (size_t)s->ctx->m->cfg.d_ffn, shared = 0, distinct = 0;
    for (size_t k = 0; k < LF; k++) {
        distinct += t->per_neuron[k] > 0;
        shared += t->counts[0] > 1 && 2.0 * t->per_neuron[k] > t->counts[0];
    }
    fprintf(log, "locate: %zu distinct LAFNs; %zu of them are LAFNs of more than half of the facts\n", distinct, shared);
    fprintf(log, "locate: LAFNs per layer:");
    for (size_t l = 0; l < L; l++) fprintf(log, " %zu:%.0f", l, t->hist[l]);
    fprintf(log, "\nlocate: mean Jaccard of D_l between languages:\n");
    for (size_t a = 0; a < NL; a++) {
        fprintf(log, "locate:   %-3s", s->ctx->facts.langs[a]);
        for (size_t b = 0; b < NL; b++)
            fprintf(log, " %5.3f", t->jac_n[a * NL + b] > 0 ? t->jac[a * NL + b] / t->jac_n[a * NL + b] : 0.0);
        fprintf(log, "\n");
    }
}

static int write_totals(locate_state *s, const locate_totals *t, lafn_err *err) {
    size_t L = (size_t)s->ctx->m->cfg.n_layer, NL = s->ctx->facts.n_langs;
    int64_t *ints = calloc(6 + L + NL * NL, sizeof *ints);
    double *jac = calloc(NL * NL, sizeof *jac);
    char langs[FACTS_MAX_LANGS * 4 + 1];
    int local = ints && jac ? 0 : lafn_err_set(err, "locate: out of memory");
    if (mpi_status_agree(s->ctx->comm, local, err) != 0) { free(ints); free(jac); return -1; }
    int64_t *hist = ints + 6, *jn = hist + L;
    for (size_t k = 0; k < 6; k++) ints[k] = (int64_t)t->counts[k];
    for (size_t l = 0; l < L; l++) hist[l] = (int64_t)t->hist[l];
    for (size_t k = 0; k < NL * NL; k++) {
        jn[k] = (int64_t)t->jac_n[k];
        jac[k] = t->jac_n[k] > 0 ? t->jac[k] / t->jac_n[k] : NAN;
    }
    join_langs(s->ctx, langs, sizeof langs);
    h5global_dataset ds[] = {
        {"global/counts", H5OUT_I64, 6, 0, ints},
        {"global/lafn_per_layer", H5OUT_I64, L, 0, hist},
        {"global/jaccard", H5OUT_F64, NL, NL, jac},
        {"global/jaccard_n", H5OUT_I64, NL, NL, jn},
        {"global/lafn_fact_count", H5OUT_I32, L, (size_t)s->ctx->m->cfg.d_ffn, t->per_neuron},
    };
    h5global_attr at[] = {{"lafn_langs", langs},
                          {"lafn_counts_columns", "facts,found,no_lafn,relaxed,lafn_total,capped_prompt_layers"}};
    int rc = h5global_add(s->ctx->out_dir, "locate", ds, sizeof ds / sizeof ds[0], at, 2, s->ctx->comm, err);
    free(ints);
    free(jac);
    return rc;
}

/* Collective: reads back locate.h5's rows, reduces the atlas, adds /global. */
static int locate_globals(locate_state *s, lafn_err *err) {
    size_t L = (size_t)s->ctx->m->cfg.n_layer, NL = s->ctx->facts.n_langs;
    char path[4096];
    snprintf(path, sizeof path, "%s/locate.h5", s->ctx->out_dir);
    size_t n = 6 + L + 2 * NL * NL;
    double *buf = calloc(n, sizeof *buf);
    if (mpi_status_agree(s->ctx->comm, buf ? 0 : lafn_err_set(err, "locate: out of memory"), err) != 0) {
        free(buf);
        return -1;
    }
    size_t LF = L * (size_t)s->ctx->m->cfg.d_ffn;
    int32_t *per_neuron = calloc(LF, sizeof *per_neuron);
    if (mpi_status_agree(s->ctx->comm, per_neuron ? 0 : lafn_err_set(err, "locate: out of memory"), err) != 0) {
        free(buf);
        return -1;
    }
    locate_totals t = {buf, buf + 6, buf + 6 + L, buf + 6 + L + NL * NL, per_neuron};
    hid_t file = H5I_INVALID_HID;
    int rc = h5out_open(path, "locate", s->ctx->run_id, s->ctx->comm, &file, err);
    if (rc == 0) {
        rc = read_totals(s, file, path, &t, err);
        H5Fclose(file);
    }
    if (mpi_status_agree(s->ctx->comm, rc, err) != 0) { free(buf); free(per_neuron); return -1; }
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, s->ctx->comm);
    MPI_Allreduce(MPI_IN_PLACE, per_neuron, (int)LF, MPI_INT32_T, MPI_SUM, s->ctx->comm);
    log_totals(s, &t);
    rc = write_totals(s, &t, err);
    free(buf);
    free(per_neuron);
    return rc;
}

static int locate_body(locate_state *s, lafn_err *err) {
    stage_context *ctx = s->ctx;
    int64_t shard_facts = 1, keep_max = 0;
    int rc = locate_opts_from_config(&ctx->cfg, ctx->m->cfg.n_layer, ctx->m->cfg.d_ffn, &s->o, err);
    if (rc == 0) rc = config_get_int(&ctx->cfg, "run.shard_facts", &shard_facts, err);
    if (rc == 0) rc = config_get_int(&ctx->cfg, "probe.keep_max", &keep_max, err);
    if (rc == 0) rc = open_probe(s, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) return -1;
    if (s->o.contrast && run_sums(s, err) != 0) return -1;
    if (rc == 0) rc = locate_batch_init(&s->b, (size_t)shard_facts, ctx->facts.n_langs, (size_t)ctx->m->cfg.n_layer, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) return -1;
    if (ctx->rank == 0 && ctx->log && s->o.top_k > (size_t)keep_max)
        fprintf(ctx->log, "locate: warning: locate.top_k = %zu > probe.keep_max = %lld: at most keep_max neurons "
                "per prompt and layer are available\n", s->o.top_k, (long long)keep_max);
    stage_loop_fns fns = {process, commit, s};
    size_t n_mine = 0;
    double t0 = MPI_Wtime();
    rc = stage_loop_run(ctx, s->cost, &fns, &n_mine, err);
    if (rc == 0 && ctx->log && n_mine)
        fprintf(ctx->log, "locate: rank %d located %zu facts in %.3f s\n", ctx->rank, n_mine, MPI_Wtime() - t0);
    H5Fclose(s->probe); /* collective: every rank, also after a failure */
    s->probe = H5I_INVALID_HID;
    if (rc != 0) return -1;
    h5out_dataset schema[LOCATE_N_DATASETS];
    locate_batch_datasets(&s->b, schema);
    if (h5out_merge(ctx->out_dir, &ctx->prov, schema, LOCATE_N_DATASETS, ctx->comm, err) != 0) return -1;
    return locate_globals(s, err);
}

int stage_locate_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                     MPI_Comm comm, FILE *log, lafn_err *err) {
    stage_context ctx;
    if (stage_context_init(&ctx, "locate", cfg_path, overrides, n_overrides, command_line, comm, log, err) != 0)
        return -1;
    locate_state s = {.ctx = &ctx, .probe = H5I_INVALID_HID};
    int rc = locate_body(&s, err);
    if (s.probe >= 0) H5Fclose(s.probe);
    locate_batch_free(&s.b);
    locate_opts_free(&s.o);
    free(s.layers);
    free(s.row_of);
    free(s.cost);
    free(s.run_sum);
    stage_context_free(&ctx);
    return rc;
}
