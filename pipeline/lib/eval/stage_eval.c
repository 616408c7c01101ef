/* stage_eval: the evaluation loop — facts dealt to ranks, scored pre and post per language, written in shards, merged into eval.h5. */
#include "eval/stage_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/stage_eval_int.h"
#include "stage/fact_loop.h"

/* Per-fact rows of a batch (k facts): see docs/stage_eval.md for the layout. */
typedef struct {
    size_t cap, k, n_langs, each;  /* each: 1 when the "each" edit set is evaluated */
    int64_t *facts;                /* (k) */
    double *pre, *post;            /* (k, n_langs, C, M) */
    int32_t *fired;                /* (k, n_langs, C) */
    double *post_each;             /* (k, n_langs edit, n_langs test, C, M) */
    int32_t *fired_each;           /* (k, n_langs edit, n_langs test, C) */
    int32_t *same, *status;        /* (k, n_langs), (k) */
    double *wall;                  /* (k) */
    int64_t *mem;                  /* (k, 2) */
} eval_rows;

static void rows_free(eval_rows *r) {
    free(r->facts); free(r->pre); free(r->post); free(r->fired); free(r->post_each); free(r->fired_each);
    free(r->same); free(r->status); free(r->wall); free(r->mem);
    *r = (eval_rows){0};
}

static int rows_init(eval_rows *r, size_t cap, size_t n_langs, int each, lafn_err *err) {
    size_t L = n_langs, E = each ? L * L : 1;
    *r = (eval_rows){.cap = cap, .n_langs = L, .each = (size_t)each};
    r->facts = malloc(cap * sizeof *r->facts);
    r->pre = malloc(cap * L * EVAL_N_VALUES * sizeof *r->pre);
    r->post = malloc(cap * L * EVAL_N_VALUES * sizeof *r->post);
    r->fired = malloc(cap * L * EVAL_N_CRIT * sizeof *r->fired);
    r->post_each = malloc(cap * E * EVAL_N_VALUES * sizeof *r->post_each);
    r->fired_each = malloc(cap * E * EVAL_N_CRIT * sizeof *r->fired_each);
    r->same = malloc(cap * L * sizeof *r->same);
    r->status = malloc(cap * sizeof *r->status);
    r->wall = malloc(cap * sizeof *r->wall);
    r->mem = malloc(cap * 2 * sizeof *r->mem);
    if (r->facts && r->pre && r->post && r->fired && r->post_each && r->fired_each && r->same && r->status &&
        r->wall && r->mem)
        return 0;
    rows_free(r);
    return lafn_err_set(err, "eval: out of memory for a batch of %zu facts x %zu languages", cap, n_langs);
}

/* Fills ds with the batch's datasets (with NULL buffers: the merge schema); returns their count. */
static size_t rows_datasets(const eval_rows *r, h5out_dataset *ds) {
    size_t L = r->n_langs, n = 0;
    ds[n++] = (h5out_dataset){"pre", H5OUT_ROWS, H5OUT_F64, L * EVAL_N_VALUES, r->pre, NULL};
    ds[n++] = (h5out_dataset){"post/all", H5OUT_ROWS, H5OUT_F64, L * EVAL_N_VALUES, r->post, NULL};
    ds[n++] = (h5out_dataset){"fired/all", H5OUT_ROWS, H5OUT_I32, L * EVAL_N_CRIT, r->fired, NULL};
    ds[n++] = (h5out_dataset){"rephrase_is_src", H5OUT_ROWS, H5OUT_I32, L, r->same, NULL};
    ds[n++] = (h5out_dataset){"edit_status", H5OUT_ROWS, H5OUT_I32, 1, r->status, NULL};
    ds[n++] = (h5out_dataset){"edit_wall_seconds", H5OUT_ROWS, H5OUT_F64, 1, r->wall, NULL};
    ds[n++] = (h5out_dataset){"edit_memory_kb", H5OUT_ROWS, H5OUT_I64, 2, r->mem, NULL};
    if (r->each) {
        ds[n++] = (h5out_dataset){"post/each", H5OUT_ROWS, H5OUT_F64, L * L * EVAL_N_VALUES, r->post_each, NULL};
        ds[n++] = (h5out_dataset){"fired/each", H5OUT_ROWS, H5OUT_I32, L * L * EVAL_N_CRIT, r->fired_each, NULL};
    }
    return n;
}

#define EVAL_MAX_DS 9

/* Row of fact index `fact` in the edit table, or -1. */
static long table_find(const eval_edit_table *t, int64_t fact) {
    for (size_t i = 0; i < t->n_facts; i++)
        if (t->facts[i] == fact) return (long)i;
    return -1;
}

/* Scores fact f into slot r->k of the batch. */
static int score_fact(eval_scorer *s, const facts_set *fs, size_t f, const eval_edit_table *t, eval_rows *r,
                      lafn_err *err) {
    const facts_record *rec = &fs->facts[f];
    long row = table_find(t, (int64_t)rec->index);
    if (row < 0) return lafn_err_set(err, "fact %s (index %zu) has no row in the edits (edit.h5)", rec->id, rec->index);
    size_t k = r->k, L = r->n_langs;
    r->facts[k] = (int64_t)rec->index;
    r->status[k] = t->status ? t->status[row] : -1;
    r->wall[k] = t->wall_seconds ? t->wall_seconds[row] : NAN;
    r->mem[2 * k] = t->memory_kb ? t->memory_kb[2 * row] : -1;
    r->mem[2 * k + 1] = t->memory_kb ? t->memory_kb[2 * row + 1] : -1;
    for (size_t l = 0; l < L; l++) {
        size_t v = (k * L + l) * EVAL_N_VALUES, c = (k * L + l) * EVAL_N_CRIT;
        if (eval_fact_lang(s, rec, fs->langs[l], &t->caches[row], r->pre + v, r->post + v, r->fired + c,
                           r->same + k * L + l, err) != 0)
            return -1;
    }
    if (!r->each) return 0;
    for (size_t e = 0; e < L; e++) {
        eval_edit ed = {0};
        if (f < t->each->n_facts && eval_each_make(t->each, f, e, &ed, err) != 0) return -1;
        for (size_t l = 0; l < L; l++) {
            size_t v = ((k * L + e) * L + l) * EVAL_N_VALUES, c = ((k * L + e) * L + l) * EVAL_N_CRIT;
            double pre[EVAL_N_VALUES];
            int32_t same;
            if (f >= t->each->n_facts) {
                for (size_t i = 0; i < EVAL_N_VALUES; i++) r->post_each[v + i] = NAN;
                for (size_t i = 0; i < EVAL_N_CRIT; i++) r->fired_each[c + i] = -1;
            } else if (eval_fact_lang(s, rec, fs->langs[l], &ed.cache, pre, r->post_each + v, r->fired_each + c,
                                      &same, err) != 0) {
                eval_edit_free(&ed);
                return lafn_err_wrap(err, "edit set each, edit language %s", fs->langs[e]);
            }
        }
        eval_edit_free(&ed);
    }
    return 0;
}

/* Tokens of every evaluated string of fact f (the cost stage_assign balances). */
static size_t fact_cost(const tokenizer *tok, const facts_record *rec, const char *const *langs, size_t n_langs) {
    size_t cost = 1;
    for (size_t l = 0; l < n_langs; l++) {
        const facts_side *side = facts_record_side(rec, langs[l]);
        const facts_eval *ev = facts_record_eval(rec, langs[l]);
        if (!side || !ev) continue;
        const char *s[] = {side->src, side->alt, ev->rephrase, ev->loc, ev->loc_ans, ev->port_q, ev->port_a};
        for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
            size_t n = 0;
            lafn_err ignore;
            if (s[i] && tokenizer_encode(tok, s[i], strlen(s[i]), 0, NULL, 0, &n, &ignore) == 0) cost += n;
        }
    }
    return cost;
}

/* The loop's state: the scorer and the rows of the shard being filled. */
typedef struct {
    stage_context *ctx;
    const eval_edit_table *t;
    eval_scorer s;
    eval_rows r;
} eval_state;

static int process(void *user, size_t f, lafn_err *err) {
    eval_state *e = user;
    if (score_fact(&e->s, &e->ctx->facts, f, e->t, &e->r, err) != 0) return -1;
    e->r.k++;
    return 0;
}

static int commit(void *user, size_t seq, lafn_err *err) {
    eval_state *e = user;
    h5out_dataset ds[EVAL_MAX_DS];
    size_t n_ds = rows_datasets(&e->r, ds);
    int rc = h5out_shard_write(e->ctx->out_dir, &e->ctx->prov, e->ctx->rank, seq, e->r.facts, e->r.k, ds, n_ds, err);
    e->r.k = 0;
    return rc;
}

/* The scorer with eval.criteria and rows for run.shard_facts facts. */
static int state_init(eval_state *e, stage_context *ctx, const eval_edit_table *t, lafn_err *err) {
    *e = (eval_state){.ctx = ctx, .t = t};
    char *const *crit;
    size_t n_crit;
    int64_t shard_facts;
    if (config_get_string_list(&ctx->cfg, "eval.criteria", &crit, &n_crit, err) != 0 ||
        config_get_int(&ctx->cfg, "run.shard_facts", &shard_facts, err) != 0 ||
        eval_scorer_init(&e->s, ctx->m, err) != 0)
        return -1;
    for (int c = 0; c < EVAL_N_CRIT; c++) {
        e->s.criteria[c] = 0;
        for (size_t k = 0; k < n_crit; k++) e->s.criteria[c] |= !strcmp(crit[k], eval_criterion_names[c]);
    }
    return rows_init(&e->r, (size_t)shard_facts, ctx->facts.n_langs, t->each != NULL, err);
}

static void state_free(eval_state *e) {
    rows_free(&e->r);
    eval_scorer_free(&e->s);
}

int stage_eval_execute(stage_context *ctx, const eval_edit_table *t, lafn_err *err) {
    size_t n = ctx->facts.n_facts, n_mine = 0;
    size_t *cost = malloc((n + 1) * sizeof *cost);
    eval_state e = {0};
    int status = cost ? state_init(&e, ctx, t, err) : lafn_err_set(err, "eval: out of memory for %zu facts", n);
    for (size_t f = 0; !status && f < n; f++)
        cost[f] = fact_cost(ctx->m->tok, &ctx->facts.facts[f], ctx->facts.langs, ctx->facts.n_langs);
    if (mpi_status_agree(ctx->comm, status, err) != 0) goto fail;
    stage_loop_fns fns = {process, commit, &e};
    if (stage_loop_run(ctx, cost, &fns, &n_mine, err) != 0) goto fail;
    eval_rows schema_rows = {.n_langs = ctx->facts.n_langs, .each = t->each != NULL};
    h5out_dataset schema[EVAL_MAX_DS];
    size_t n_schema = rows_datasets(&schema_rows, schema);
    if (h5out_merge(ctx->out_dir, &ctx->prov, schema, n_schema, ctx->comm, err) != 0) goto fail;
    status = ctx->rank == 0 ? eval_cells_write(ctx, err) : 0;
    if (!status && ctx->rank == 0) status = eval_summary_write(ctx, err);
    if (mpi_status_agree(ctx->comm, status, err) != 0) goto fail;
    if (ctx->rank == 0 && ctx->log)
        fprintf(ctx->log, "eval: %s/eval.h5, summary.json, summary.csv: %zu facts x %zu languages, edit sets all%s\n",
                ctx->out_dir, n, ctx->facts.n_langs, t->each ? " + each" : "");
    state_free(&e);
    free(cost);
    return 0;
fail:
    state_free(&e);
    free(cost);
    return -1;
}
