/* stage_probe_loop: the per-rank fact loop shared by probe and locate — assignment by cost, resume, shards, progress. */
#include "stage/stage_probe_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int stage_loop_mine(const stage_context *ctx, const size_t *cost, size_t **mine, size_t *n, lafn_err *err) {
    size_t nf = ctx->facts.n_facts, k = 0;
    int *owner = malloc((nf ? nf : 1) * sizeof *owner);
    *mine = malloc((nf ? nf : 1) * sizeof **mine);
    if (!owner || !*mine) {
        free(owner);
        free(*mine);
        *mine = NULL;
        return lafn_err_set(err, "%s: out of memory assigning %zu facts", ctx->stage, nf);
    }
    if (stage_assign(cost, nf, ctx->size, owner, err) != 0) {
        free(owner);
        free(*mine);
        *mine = NULL;
        return -1;
    }
    for (size_t i = 0; i < nf; i++)
        if (owner[i] == ctx->rank) (*mine)[k++] = i;
    free(owner);
    *n = k;
    return 0;
}

/* Rank 0 removes the committed shards of the stage (run.resume = false). */
static int remove_shards(const stage_context *ctx, lafn_err *err) {
    h5out_shard *s = NULL;
    size_t n = 0;
    if (h5out_shard_list(ctx->out_dir, ctx->stage, &s, &n, err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (unlink(s[i].path) != 0 && errno != ENOENT)
            rc = lafn_err_set(err, "%s: cannot remove old shard '%s': %s", ctx->stage, s[i].path, strerror(errno));
    if (rc == 0 && n && ctx->log)
        fprintf(ctx->log, "%s: run.resume = false: removed %zu old shards\n", ctx->stage, n);
    h5out_shards_free(s, n);
    return rc;
}

/* 1 if fact index x is in the sorted list done[0..n). */
static int is_done(const int64_t *done, size_t n, int64_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (done[mid] == x) return 1;
        if (done[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* This rank's loop over its facts not yet done; commits shards as they fill. */
static int loop_local(stage_context *ctx, const size_t *mine, size_t n_mine, const int64_t *done, size_t n_done,
                      size_t seq, const stage_loop_fns *fns, stage_progress *p, size_t *n_new, lafn_err *err) {
    int64_t shard_facts;
    if (config_get_int(&ctx->cfg, "run.shard_facts", &shard_facts, err) != 0) return -1;
    size_t pending = 0;
    *n_new = 0;
    for (size_t k = 0; k < n_mine; k++) {
        size_t i = mine[k];
        if (is_done(done, n_done, (int64_t)ctx->facts.facts[i].index)) continue;
        if (fns->process(fns->user, i, err) != 0) return -1;
        pending++;
        (*n_new)++;
        if (pending == (size_t)shard_facts) {
            if (fns->commit(fns->user, seq++, err) != 0) return -1;
            stage_progress_step(p, pending);
            pending = 0;
        }
    }
    if (pending) {
        if (fns->commit(fns->user, seq, err) != 0) return -1;
        stage_progress_step(p, pending);
    }
    return 0;
}

int stage_loop_run(stage_context *ctx, const size_t *cost, const stage_loop_fns *fns, size_t *n_mine,
                   lafn_err *err) {
    int resume = 1, rc = 0;
    int64_t *done = NULL;
    size_t n_done = 0, seq = 0, *mine = NULL, n_own = 0;
    stage_progress p = {.win = MPI_WIN_NULL};
    *n_mine = 0;
    rc = config_get_bool(&ctx->cfg, "run.resume", &resume, err);
    if (rc == 0 && !resume && ctx->rank == 0) rc = remove_shards(ctx, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) return -1;
    rc = resume ? h5out_resume(ctx->out_dir, ctx->stage, ctx->run_id, ctx->rank, &done, &n_done, &seq, err) : 0;
    if (rc == 0) rc = stage_loop_mine(ctx, cost, &mine, &n_own, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) {
        rc = -1;
        goto done;
    }
    if (ctx->rank == 0 && ctx->log)
        fprintf(ctx->log, "%s: %zu facts on %d ranks, %zu already in shards (resumed)\n", ctx->stage,
                ctx->facts.n_facts, ctx->size, n_done);
    if (mpi_status_agree(ctx->comm, stage_progress_init(&p, ctx->comm, ctx->stage, ctx->facts.n_facts, n_done,
                                                         ctx->rank == 0 ? ctx->log : NULL, err), err) != 0) {
        rc = -1;
        goto done;
    }
    rc = loop_local(ctx, mine, n_own, done, n_done, seq, fns, &p, n_mine, err);
    rc = mpi_status_agree(ctx->comm, rc, err);
done:
    stage_progress_free(&p);
    free(done);
    free(mine);
    return rc == 0 ? 0 : -1;
}
