/* stage_probe: the probe stage's run — facts dealt by tokens, scored per rank into shards, merged into probe.h5 with run-wide activation statistics. */
#include "probe/stage_probe.h"

#include <stdlib.h>
#include <string.h>

#include "h5/h5global.h"
#include "paraphrase/paraphrase.h"
#include "stage/stage.h"
#include "stage/fact_loop.h"

typedef struct {
    stage_context *ctx;
    probe_opts o;
    probe_work *w;
    probe_batch b;
} probe_state;

static int process(void *user, size_t i, lafn_err *err) {
    probe_state *s = user;
    facts_edit_view v;
    int idx[FACTS_MAX_LANGS];
    if (facts_edit_view_build(&s->ctx->facts.facts[i], &v, err) != 0) return -1;
    int rc = stage_view_langs(s->ctx, &v, idx, err);
    if (rc == 0) rc = probe_fact(s->w, &v, idx, &s->b, err);
    facts_edit_view_free(&v);
    return rc;
}

static int commit(void *user, size_t seq, lafn_err *err) {
    probe_state *s = user;
    h5out_dataset ds[PROBE_N_DATASETS];
    probe_batch_datasets(&s->b, ds);
    int rc = h5out_shard_write(s->ctx->out_dir, &s->ctx->prov, s->ctx->rank, seq, s->b.facts, s->b.n_facts, ds,
                               PROBE_N_DATASETS, err);
    probe_batch_reset(&s->b);
    return rc;
}

/* Token cost of every fact, and the work-space sizes of the largest fact (any rank may get any fact). */
static int fact_sizes(probe_state *s, size_t *cost, size_t *max_tok, size_t *max_q, size_t *max_p, lafn_err *err) {
    stage_context *ctx = s->ctx;
    int with_target = s->o.score == PROBE_SCORE_GRAD_X_ACT || s->o.score == PROBE_SCORE_IG;
    int rc = 0;
    *max_tok = *max_q = *max_p = 1;
    for (size_t i = 0; i < ctx->facts.n_facts && rc == 0; i++) {
        facts_edit_view v;
        size_t n_tok = 0, n_q = 0, n_p = 0;
        if ((rc = facts_edit_view_build(&ctx->facts.facts[i], &v, err)) != 0) break;
        rc = probe_fact_size(ctx->m->tok, &v, with_target, &n_tok, &n_q, &n_p, err);
        facts_edit_view_free(&v);
        cost[i] = n_tok;
        if (n_tok > *max_tok) *max_tok = n_tok;
        if (n_q > *max_q) *max_q = n_q;
        if (n_p > *max_p) *max_p = n_p;
    }
    return rc;
}

/* Run-wide statistics reduced over the ranks from the merged rows. */
typedef struct {
    double *sum, *max, *count; /* (Y) */
    double *lang;              /* (2 * n_langs): prompts, subject fallbacks */
} probe_totals;

static int read_totals(probe_state *s, hid_t file, const char *path, probe_totals *t, lafn_err *err) {
    size_t Y = s->o.n_layers, NL = s->ctx->facts.n_langs, n_rows = 0;
    int64_t *facts = NULL;
    double *as = NULL;
    int32_t *ls = NULL;
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&facts, &n_rows, err) != 0) return -1;
    free(facts);
    size_t r0 = n_rows * (size_t)s->ctx->rank / (size_t)s->ctx->size;
    size_t r1 = n_rows * (size_t)(s->ctx->rank + 1) / (size_t)s->ctx->size;
    if (r1 > r0 && (h5out_read_rows(file, path, "act_stats", H5OUT_F64, 3 * Y, r0, r1 - r0, (void **)&as, err) ||
                    h5out_read_rows(file, path, "lang_stats", H5OUT_I32, 2 * NL, r0, r1 - r0, (void **)&ls, err))) {
        free(as);
        return -1;
    }
    for (size_t r = 0; r < r1 - r0; r++) {
        for (size_t y = 0; y < Y; y++) {
            t->sum[y] += as[r * 3 * Y + 3 * y];
            if (as[r * 3 * Y + 3 * y + 1] > t->max[y]) t->max[y] = as[r * 3 * Y + 3 * y + 1];
            t->count[y] += as[r * 3 * Y + 3 * y + 2];
        }
        for (size_t k = 0; k < 2 * NL; k++) t->lang[k] += ls[r * 2 * NL + k];
    }
    free(as);
    free(ls);
    return 0;
}

/* Logs the per-language subject fallbacks and the per-layer statistics (rank 0). */
static void log_totals(const probe_state *s, const probe_totals *t) {
    FILE *log = s->ctx->log;
    if (s->ctx->rank != 0 || !log) return;
    for (size_t k = 0; s->o.position == PROBE_POS_SUBJECT && k < s->ctx->facts.n_langs; k++)
        fprintf(log, "probe: %s: %.0f prompts, %.0f fell back from the subject to the last token\n",
                s->ctx->facts.langs[k], t->lang[2 * k], t->lang[2 * k + 1]);
    for (size_t y = 0; y < s->o.n_layers; y++)
        fprintf(log, "probe: blk.%d.ffn_down: mean |a| %.4g, max |a| %.4g over %.0f values\n", s->o.layers[y],
                t->count[y] > 0 ? t->sum[y] / t->count[y] : 0.0, t->max[y], t->count[y]);
}

/* Writes the global datasets into probe.h5 (see docs/stage_probe.md). */
static int write_totals(probe_state *s, const probe_totals *t, lafn_err *err) {
    size_t Y = s->o.n_layers, NL = s->ctx->facts.n_langs;
    double *mean = calloc(Y + 1, sizeof *mean);
    int64_t *cnt = calloc(Y + 2 * NL + 1, sizeof *cnt);
    char langs[FACTS_MAX_LANGS * 4 + 1] = "";
    int local = mean && cnt ? 0 : lafn_err_set(err, "probe: out of memory");
    if (mpi_status_agree(s->ctx->comm, local, err) != 0) { free(mean); free(cnt); return -1; }
    int64_t *lp = cnt + Y, *lf = cnt + Y + NL;
    for (size_t y = 0; y < Y; y++) {
        mean[y] = t->count[y] > 0 ? t->sum[y] / t->count[y] : 0.0;
        cnt[y] = (int64_t)t->count[y];
    }
    for (size_t k = 0; k < NL; k++) {
        lp[k] = (int64_t)t->lang[2 * k];
        lf[k] = (int64_t)t->lang[2 * k + 1];
        size_t used = strlen(langs);
        snprintf(langs + used, sizeof langs - used, "%s%s", k ? "," : "", s->ctx->facts.langs[k]);
    }
    const char *pos = "", *score = "";
    if (config_get_string(&s->ctx->cfg, "probe.position", &pos, err) ||
        config_get_string(&s->ctx->cfg, "probe.score", &score, err)) {
        free(mean);
        free(cnt);
        return -1;
    }
    h5global_dataset ds[] = {
        {"global/layers", H5OUT_I32, Y, 0, s->o.layers},
        {"global/act_mean_abs", H5OUT_F64, Y, 0, mean},
        {"global/act_max_abs", H5OUT_F64, Y, 0, t->max},
        {"global/act_count", H5OUT_I64, Y, 0, cnt},
        {"global/lang_prompts", H5OUT_I64, NL, 0, lp},
        {"global/lang_subject_fallbacks", H5OUT_I64, NL, 0, lf},
    };
    h5global_attr at[] = {{"lafn_langs", langs}, {"lafn_probe_position", pos}, {"lafn_probe_score", score}};
    int rc = h5global_add(s->ctx->out_dir, "probe", ds, sizeof ds / sizeof ds[0], at, 3, s->ctx->comm, err);
    free(mean);
    free(cnt);
    return rc;
}

/* Collective: reads back probe.h5's rows, reduces the statistics, adds /global. */
static int probe_globals(probe_state *s, lafn_err *err) {
    size_t Y = s->o.n_layers, NL = s->ctx->facts.n_langs;
    char path[4096];
    snprintf(path, sizeof path, "%s/probe.h5", s->ctx->out_dir);
    double *buf = calloc(3 * Y + 2 * NL + 1, sizeof *buf);
    if (mpi_status_agree(s->ctx->comm, buf ? 0 : lafn_err_set(err, "probe: out of memory"), err) != 0) {
        free(buf);
        return -1;
    }
    probe_totals t = {buf, buf + Y, buf + 2 * Y, buf + 3 * Y};
    hid_t file = H5I_INVALID_HID;
    int rc = h5out_open(path, "probe", s->ctx->run_id, s->ctx->comm, &file, err);
    if (rc == 0) {
        rc = read_totals(s, file, path, &t, err);
        H5Fclose(file);
    }
    if (mpi_status_agree(s->ctx->comm, rc, err) != 0) { free(buf); return -1; }
    MPI_Allreduce(MPI_IN_PLACE, t.sum, (int)Y, MPI_DOUBLE, MPI_SUM, s->ctx->comm);
    MPI_Allreduce(MPI_IN_PLACE, t.max, (int)Y, MPI_DOUBLE, MPI_MAX, s->ctx->comm);
    MPI_Allreduce(MPI_IN_PLACE, t.count, (int)Y, MPI_DOUBLE, MPI_SUM, s->ctx->comm);
    MPI_Allreduce(MPI_IN_PLACE, t.lang, (int)(2 * NL), MPI_DOUBLE, MPI_SUM, s->ctx->comm);
    log_totals(s, &t);
    rc = write_totals(s, &t, err);
    free(buf);
    return rc;
}

static int probe_body(probe_state *s, lafn_err *err) {
    stage_context *ctx = s->ctx;
    size_t *cost = malloc((ctx->facts.n_facts + 1) * sizeof *cost), mt = 0, mq = 0, mp = 0, n_mine = 0;
    int rc = cost ? probe_opts_from_config(&ctx->cfg, ctx->m->cfg.n_layer, &s->o, err)
                  : lafn_err_set(err, "probe: out of memory");
    int64_t shard_facts = 1;
    if (rc == 0) rc = config_get_int(&ctx->cfg, "run.shard_facts", &shard_facts, err);
    if (rc == 0) rc = fact_sizes(s, cost, &mt, &mq, &mp, err);
    if (rc == 0) rc = probe_work_init(&s->w, ctx->m, &s->o, mt, mq, mp, err);
    if (rc == 0) rc = probe_batch_init(&s->b, (size_t)shard_facts, s->o.n_layers, ctx->facts.n_langs, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) { free(cost); return -1; }
    stage_loop_fns fns = {process, commit, s};
    double t0 = MPI_Wtime();
    rc = stage_loop_run(ctx, cost, &fns, &n_mine, err);
    double dt = MPI_Wtime() - t0;
    free(cost);
    if (rc != 0) return -1;
    if (ctx->log && n_mine)
        fprintf(ctx->log, "probe: rank %d scored %zu facts in %.2f s (%.3f s per fact)\n", ctx->rank, n_mine, dt,
                dt / (double)n_mine);
    h5out_dataset schema[PROBE_N_DATASETS];
    probe_batch_datasets(&s->b, schema);
    if (h5out_merge(ctx->out_dir, &ctx->prov, schema, PROBE_N_DATASETS, ctx->comm, err) != 0) return -1;
    return probe_globals(s, err);
}

int stage_probe_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                    MPI_Comm comm, FILE *log, lafn_err *err) {
    stage_context ctx;
    if (stage_context_init(&ctx, "probe", cfg_path, overrides, n_overrides, command_line, comm, log, err) != 0)
        return -1;
    probe_state s = {.ctx = &ctx};
    int rc = paraphrase_join(&ctx, err);
    if (rc == 0) rc = probe_body(&s, err);
    probe_batch_free(&s.b);
    probe_work_free(s.w);
    probe_opts_free(&s.o);
    stage_context_free(&ctx);
    return rc;
}
