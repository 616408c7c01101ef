/* stage_paraphrase: the paraphrase stage's run — facts dealt by tokens, candidates generated and judged per rank into shards, merged into paraphrase.h5 with per-language totals and the templates. */
#include "paraphrase/paraphrase_int.h"

#include <stdlib.h>
#include <string.h>

#include "h5/h5global.h"
#include "stage/fact_loop.h"

typedef struct {
    stage_context *ctx;
    paraphrase_opts o;
    paraphrase_templates t;
    paraphrase_work *w;
    paraphrase_batch b;
} para_state;

static int process(void *user, size_t i, lafn_err *err) {
    para_state *s = user;
    facts_edit_view v;
    int slot[FACTS_MAX_LANGS];
    const facts_record *rec = &s->ctx->facts.facts[i];
    if (facts_edit_view_build(rec, &v, err) != 0) return -1;
    int rc = stage_view_langs(s->ctx, &v, slot, err);
    if (rc == 0) rc = paraphrase_fact(s->w, &s->t, &v, rec->index, slot, &s->b, err);
    facts_edit_view_free(&v);
    return rc;
}

static int commit(void *user, size_t seq, lafn_err *err) {
    para_state *s = user;
    h5out_dataset ds[PARAPHRASE_N_DATASETS];
    paraphrase_batch_datasets(&s->b, ds);
    int rc = h5out_shard_write(s->ctx->out_dir, &s->ctx->prov, s->ctx->rank, seq, s->b.facts, s->b.n_facts, ds,
                               PARAPHRASE_N_DATASETS, err);
    paraphrase_batch_reset(&s->b);
    return rc;
}

/* Cost of every fact (prompt tokens prefilled plus tokens generated) and the longest prompt. */
static int fact_costs(para_state *s, size_t *cost, size_t *max_prompt, lafn_err *err) {
    const stage_context *ctx = s->ctx;
    size_t width = s->o.decode.mode == DECODE_BEAM ? (size_t)s->o.decode.n_beams : s->o.candidates;
    *max_prompt = 1;
    for (size_t i = 0; i < ctx->facts.n_facts; i++) {
        const facts_record *r = &ctx->facts.facts[i];
        cost[i] = 0;
        for (size_t l = 0; l < r->n_sides; l++) {
            size_t n = 0;
            if (paraphrase_prompt_tokens(ctx->m, &s->t, r->sides[l].lang, r->sides[l].src, &n, err) != 0)
                return lafn_err_wrap(err, "fact '%s', language %s", r->id, r->sides[l].lang);
            cost[i] += n + width * (size_t)s->o.decode.max_new_tokens;
            if (n > *max_prompt) *max_prompt = n;
        }
    }
    return 0;
}

/* The per-language totals of paraphrase.h5's counts, summed over the ranks' shares of the rows. */
static int read_totals(para_state *s, int64_t *tot, lafn_err *err) {
    stage_context *ctx = s->ctx;
    size_t NL = ctx->facts.n_langs, row = NL * PARAPHRASE_N_COUNTS, n_rows = 0;
    char path[4096];
    hid_t file = H5I_INVALID_HID;
    int64_t *facts = NULL;
    int32_t *counts = NULL;
    snprintf(path, sizeof path, "%s/paraphrase.h5", ctx->out_dir);
    int rc = h5out_open(path, "paraphrase", ctx->run_id, ctx->comm, &file, err);
    if (rc == 0) rc = h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&facts, &n_rows, err);
    size_t r0 = n_rows * (size_t)ctx->rank / (size_t)ctx->size, r1 = n_rows * (size_t)(ctx->rank + 1) / (size_t)ctx->size;
    if (rc == 0 && r1 > r0) rc = h5out_read_rows(file, path, "counts", H5OUT_I32, row, r0, r1 - r0, (void **)&counts, err);
    for (size_t r = 0; rc == 0 && r < r1 - r0; r++)
        for (size_t k = 0; k < row; k++)
            if (counts[r * row + k] > 0) tot[k] += counts[r * row + k];
    if (file >= 0) H5Fclose(file);
    free(facts);
    free(counts);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) return -1;
    MPI_Allreduce(MPI_IN_PLACE, tot, (int)row, MPI_INT64_T, MPI_SUM, ctx->comm);
    return 0;
}

/* Prints one line per language: generated, kept, and what each filter rejected (rank 0). */
static void log_totals(const para_state *s, const int64_t *tot) {
    FILE *log = s->ctx->log;
    if (s->ctx->rank != 0 || !log) return;
    for (size_t l = 0; l < s->ctx->facts.n_langs; l++) {
        const int64_t *c = tot + l * PARAPHRASE_N_COUNTS;
        fprintf(log, "paraphrase: %s: %lld generated, %lld kept (%.1f %%); rejected:", s->ctx->facts.langs[l],
                (long long)c[0], (long long)c[1 + PARAPHRASE_KEPT], c[0] ? 100.0 * (double)c[1] / (double)c[0] : 0.0);
        for (int v = PARAPHRASE_KEPT + 1; v < PARAPHRASE_N_VERDICTS; v++)
            fprintf(log, " %s %lld", paraphrase_verdict_names[v], (long long)c[1 + v]);
        fputc('\n', log);
    }
}

/* "a,b,c" of n strings into buf (cap). */
static void join_names(const char *const *names, size_t n, char *buf, size_t cap) {
    buf[0] = '\0';
    for (size_t i = 0, len = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", names[i]);
}

/* Collective: adds global/lang_counts and the attributes naming the generator, templates and decoding knobs. */
static int write_globals(para_state *s, const int64_t *tot, lafn_err *err) {
    stage_context *ctx = s->ctx;
    enum { N_FIXED = 11 };
    char langs[FACTS_MAX_LANGS * 4 + 1], verdicts[256], names[2 * FACTS_MAX_LANGS][48], num[6][32];
    h5global_attr at[N_FIXED + 2 * FACTS_MAX_LANGS];
    join_names((const char *const *)ctx->facts.langs, ctx->facts.n_langs, langs, sizeof langs);
    join_names(paraphrase_verdict_names, PARAPHRASE_N_VERDICTS, verdicts, sizeof verdicts);
    const decode_opts *d = &s->o.decode;
    snprintf(num[0], sizeof num[0], "%zu", s->o.candidates);
    snprintf(num[1], sizeof num[1], "%d", d->max_new_tokens);
    snprintf(num[2], sizeof num[2], "%.9g", (double)d->temperature);
    snprintf(num[3], sizeof num[3], "%.9g", (double)d->top_p);
    snprintf(num[4], sizeof num[4], "%d", d->n_beams);
    snprintf(num[5], sizeof num[5], "%llu", (unsigned long long)s->o.seed);
    h5global_attr fixed[N_FIXED] = {
        {"lafn_langs", langs}, {"lafn_paraphrase_verdicts", verdicts},
        {"lafn_paraphrase_generator_path", ctx->m->path}, {"lafn_paraphrase_generator_sha256", ctx->m->sha256},
        {"lafn_paraphrase_method", d->mode == DECODE_BEAM ? "beam" : "sample"}, {"lafn_paraphrase_candidates", num[0]},
        {"lafn_paraphrase_max_new_tokens", num[1]}, {"lafn_paraphrase_temperature", num[2]},
        {"lafn_paraphrase_top_p", num[3]}, {"lafn_paraphrase_n_beams", num[4]}, {"lafn_paraphrase_seed", num[5]},
    };
    memcpy(at, fixed, sizeof fixed);
    for (size_t l = 0; l < s->t.n; l++) {
        snprintf(names[2 * l], sizeof names[0], "lafn_paraphrase_template_%s", s->t.lang[l]);
        snprintf(names[2 * l + 1], sizeof names[0], "lafn_paraphrase_template_sha256_%s", s->t.lang[l]);
        at[N_FIXED + 2 * l] = (h5global_attr){names[2 * l], s->t.file[l]};
        at[N_FIXED + 2 * l + 1] = (h5global_attr){names[2 * l + 1], s->t.sha256[l]};
    }
    h5global_dataset ds[] = {
        {"global/lang_counts", H5OUT_I64, ctx->facts.n_langs, PARAPHRASE_N_COUNTS, tot},
    };
    return h5global_add(ctx->out_dir, "paraphrase", ds, 1, at, N_FIXED + 2 * s->t.n, ctx->comm, err);
}

/* Knobs, templates, run id, costs and work space; agreed by every rank. */
static int prepare(para_state *s, size_t *cost, lafn_err *err) {
    stage_context *ctx = s->ctx;
    const char *dir = "";
    int64_t shard_facts = 1;
    size_t max_prompt = 1;
    int rc = paraphrase_opts_from_config(&ctx->cfg, &s->o, err);
    if (rc == 0) rc = config_get_string(&ctx->cfg, "paraphrase.template_dir", &dir, err);
    if (rc == 0) rc = paraphrase_templates_load(&s->t, dir, (const char *const *)ctx->facts.langs, ctx->facts.n_langs, err);
    if (rc == 0) rc = paraphrase_run_id(&ctx->cfg, ctx->m->sha256, &s->t, ctx->run_id, err);
    if (rc == 0) rc = config_get_int(&ctx->cfg, "run.shard_facts", &shard_facts, err);
    if (rc == 0) rc = fact_costs(s, cost, &max_prompt, err);
    if (rc == 0) rc = paraphrase_work_init(&s->w, ctx->m, &s->o, max_prompt, err);
    if (rc == 0) rc = paraphrase_batch_init(&s->b, (size_t)shard_facts, ctx->facts.n_langs, err);
    return mpi_status_agree(ctx->comm, rc, err);
}

static int paraphrase_body(para_state *s, lafn_err *err) {
    stage_context *ctx = s->ctx;
    size_t NL = ctx->facts.n_langs, n_mine = 0;
    size_t *cost = malloc((ctx->facts.n_facts + 1) * sizeof *cost);
    int64_t *tot = calloc(NL * PARAPHRASE_N_COUNTS + 1, sizeof *tot);
    int rc = cost && tot ? prepare(s, cost, err) : mpi_status_agree(ctx->comm, lafn_err_set(err, "out of memory"), err);
    stage_loop_fns fns = {process, commit, s};
    double t0 = MPI_Wtime();
    if (rc == 0) rc = stage_loop_run(ctx, cost, &fns, &n_mine, err);
    if (rc == 0 && ctx->log && n_mine)
        fprintf(ctx->log, "paraphrase: rank %d generated for %zu facts in %.1f s\n", ctx->rank, n_mine,
                MPI_Wtime() - t0);
    h5out_dataset schema[PARAPHRASE_N_DATASETS];
    paraphrase_batch_datasets(&s->b, schema);
    if (rc == 0) rc = h5out_merge(ctx->out_dir, &ctx->prov, schema, PARAPHRASE_N_DATASETS, ctx->comm, err);
    if (rc == 0) rc = read_totals(s, tot, err);
    if (rc == 0) log_totals(s, tot);
    if (rc == 0) rc = write_globals(s, tot, err);
    free(cost);
    free(tot);
    return rc;
}

int stage_paraphrase_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                         MPI_Comm comm, FILE *log, lafn_err *err) {
    stage_context ctx;
    if (stage_context_init(&ctx, "paraphrase", cfg_path, overrides, n_overrides, command_line, comm, log, err) != 0)
        return -1;
    para_state s = {.ctx = &ctx};
    int rc = paraphrase_body(&s, err);
    paraphrase_batch_free(&s.b);
    paraphrase_work_free(s.w);
    paraphrase_templates_free(&s.t);
    stage_context_free(&ctx);
    return rc;
}
