/* stage_eval_run: the evaluation stage's entry — context, edit.h5 of the same run, the cache each fact is evaluated with. */
#include "eval/stage_eval.h"

#include <stdlib.h>
#include <string.h>

#include "eval/stage_eval_int.h"
#include "paraphrase/paraphrase.h"

/* What stage_eval_run owns besides the context. */
typedef struct {
    edit_store store;
    edit_cache *caches;          /* (n_facts) */
    edit_cache_entry *ordered;   /* (n_facts) entries grouped, the delta-carrying one first (batch mode) */
    double *wall;                /* (n_facts) */
    int64_t *mem;                /* (n_facts, 2) */
    eval_each each;
    int have_each;
} eval_inputs;

static void inputs_free(eval_inputs *in) {
    edit_store_free(&in->store);
    eval_each_free(&in->each);
    free(in->caches);
    free(in->ordered);
    free(in->wall);
    free(in->mem);
    *in = (eval_inputs){0};
}

/* Group, then entries with a delta before members without, then row. */
static int by_group(const void *a, const void *b) {
    const edit_cache_entry *x = a, *y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if ((x->n == 0) != (y->n == 0)) return x->n == 0 ? 1 : -1;
    return (x > y) - (x < y);
}

/* The cache each fact is evaluated with, per edit.mode: single = its own edit;
 * batch = its batch's shared delta set; sequential = every edit (the model
 * after the whole sequence). */
static int build_caches(eval_inputs *in, const char *mode, const edit_trigger *t, lafn_err *err) {
    const edit_store *s = &in->store;
    size_t n = s->n_facts;
    in->caches = malloc((n ? n : 1) * sizeof *in->caches);
    in->ordered = malloc((n ? n : 1) * sizeof *in->ordered);
    if (!in->caches || !in->ordered) return lafn_err_set(err, "eval: out of memory for %zu edits", n);
    memcpy(in->ordered, s->entries, n * sizeof *in->ordered);
    qsort(in->ordered, n, sizeof *in->ordered, by_group);
    edit_cache all = edit_store_cache(s, t);
    for (size_t i = 0; i < n; i++) {
        in->caches[i] = all;
        if (!strcmp(mode, "sequential")) {
            continue;
        } else if (!strcmp(mode, "batch")) {
            size_t lo = 0;
            while (lo < n && in->ordered[lo].group != s->group[i]) lo++;
            size_t hi = lo;
            while (hi < n && in->ordered[hi].group == s->group[i]) hi++;
            in->caches[i].entries = in->ordered + lo;
            in->caches[i].n_entries = hi - lo;
        } else {
            in->caches[i].entries = &s->entries[i];
            in->caches[i].n_entries = 1;
        }
    }
    return 0;
}

/* Reads edit.h5's per-edit wall time and memory (rows as the edit store's). */
static int read_costs(eval_inputs *in, const char *path, const char *run_id, MPI_Comm comm, lafn_err *err) {
    hid_t file;
    size_t n1 = 0, n2 = 0;
    if (h5out_open(path, "edit", run_id, comm, &file, err) != 0) return -1;
    int rc = h5out_read_all(file, path, "wall_seconds", H5OUT_F64, 1, (void **)&in->wall, &n1, err);
    if (!rc) rc = h5out_read_all(file, path, "memory_kb", H5OUT_I64, 2, (void **)&in->mem, &n2, err);
    H5Fclose(file);
    if (!rc && (n1 != in->store.n_facts || n2 != in->store.n_facts))
        rc = lafn_err_set(err, "%s: wall_seconds/memory_kb have %zu/%zu rows, expected %zu", path, n1, n2,
                          in->store.n_facts);
    return rc;
}

static int load_inputs(stage_context *ctx, eval_inputs *in, lafn_err *err) {
    char edit_id[STAGE_RUN_ID_LEN + 1], path[4096];
    const char *mode, *sets;
    edit_trigger trigger;
    if (config_get_string(&ctx->cfg, "edit.mode", &mode, err) || edit_trigger_from_config(&ctx->cfg, &trigger, err) ||
        config_get_string(&ctx->cfg, "eval.edit_sets", &sets, err) ||
        stage_run_id(&ctx->cfg, ctx->m->sha256, "edit", edit_id, err))
        return -1;
    snprintf(path, sizeof path, "%s/edit.h5", ctx->out_dir);
    if (edit_store_read(path, edit_id, ctx->m->cfg.d_model, ctx->comm, &in->store, err) != 0) return -1;
    if (read_costs(in, path, edit_id, ctx->comm, err) != 0) return -1;
    if (build_caches(in, mode, &trigger, err) != 0) return -1;
    if (strcmp(sets, "each") != 0) return 0;
    if (eval_each_init(ctx, &in->store, &trigger, &in->each, err) != 0) return -1;
    in->have_each = 1;
    return 0;
}

int stage_eval_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                   MPI_Comm comm, FILE *log, lafn_err *err) {
    stage_context ctx;
    eval_inputs in = {0};
    if (stage_context_init(&ctx, "eval", cfg_path, overrides, n_overrides, command_line, comm, log, err) != 0)
        return -1;
    int status = paraphrase_join(&ctx, err);
    if (status == 0) status = load_inputs(&ctx, &in, err);
    if (mpi_status_agree(comm, status, err) == 0) {
        eval_edit_table t = {.n_facts = in.store.n_facts, .facts = in.store.facts, .caches = in.caches,
                             .status = in.store.status, .wall_seconds = in.wall, .memory_kb = in.mem,
                             .each = in.have_each ? &in.each : NULL};
        status = stage_eval_execute(&ctx, &t, err);
    } else {
        status = -1;
    }
    inputs_free(&in);
    stage_context_free(&ctx);
    return status;
}
