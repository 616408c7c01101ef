/* fact_loop: the per-rank fact loop every stage runs — resume, assignment by cost, shard commits, progress. */
#include "stage/fact_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int stage_shards_reset(const stage_context *ctx, lafn_err *err) {
    h5out_shard *s = NULL;
    size_t n = 0;
    if (h5out_shard_list(ctx->out_dir, ctx->stage, &s, &n, err) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (unlink(s[i].path) != 0 && errno != ENOENT)
            rc = lafn_err_set(err, "%s: run.resume = false: cannot remove old shard '%s': %s", ctx->stage, s[i].path,
                              strerror(errno));
    if (rc == 0 && n && ctx->log)
        fprintf(ctx->log, "%s: run.resume = false: removed %zu old shards\n", ctx->stage, n);
    h5out_shards_free(s, n);
    return rc;
}

/* 1 if fact index x is in the sorted list done[0..n). */
static int in_sorted(const int64_t *done, size_t n, int64_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (done[mid] == x) return 1;
        if (done[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* This rank's part of stage_resume_init. */
static int resume_local(stage_resume *r, const stage_context *ctx, int resume, lafn_err *err) {
    size_t nf = ctx->facts.n_facts;
    if (!(r->done = calloc(nf ? nf : 1, 1))) return lafn_err_set(err, "%s: out of memory for %zu facts", ctx->stage, nf);
    if (!resume) return ctx->rank == 0 ? stage_shards_reset(ctx, err) : 0;
    int64_t *done = NULL;
    size_t n_done = 0;
    if (h5out_resume(ctx->out_dir, ctx->stage, ctx->run_id, ctx->rank, &done, &n_done, &r->next_seq, err) != 0)
        return -1;
    for (size_t i = 0; i < nf; i++)
        if (in_sorted(done, n_done, (int64_t)ctx->facts.facts[i].index)) {
            r->done[i] = 1;
            r->n_done++;
        }
    free(done);
    return 0;
}

int stage_resume_init(stage_resume *r, const stage_context *ctx, lafn_err *err) {
    *r = (stage_resume){0};
    int resume = 1;
    int rc = config_get_bool(&ctx->cfg, "run.resume", &resume, err);
    if (rc == 0 && resume && ctx->rank == 0)
        rc = h5out_shards_set_aside(ctx->out_dir, ctx->stage, ctx->run_id, ctx->log, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) return -1;
    return mpi_status_agree(ctx->comm, resume_local(r, ctx, resume, err), err);
}

void stage_resume_free(stage_resume *r) {
    free(r->done);
    *r = (stage_resume){0};
}

/* The facts not done that this rank owns when all facts are dealt by cost (so
 * a fact stays with its rank across restarts), in index order, into *mine (*n). */
static int deal_mine(const stage_context *ctx, const size_t *cost, const uint8_t *done, size_t **mine, size_t *n,
                     lafn_err *err) {
    size_t nf = ctx->facts.n_facts;
    int *owner = malloc((nf + 1) * sizeof *owner), rc = 0;
    *mine = malloc((nf + 1) * sizeof **mine);
    *n = 0;
    if (!owner || !*mine) rc = lafn_err_set(err, "%s: out of memory assigning %zu facts", ctx->stage, nf);
    if (rc == 0) rc = stage_assign(cost, nf, ctx->size, owner, err);
    for (size_t i = 0; rc == 0 && i < nf; i++)
        if (owner[i] == ctx->rank && !done[i]) (*mine)[(*n)++] = i;
    free(owner);
    return rc;
}

/* This rank's loop over its facts; commits a shard whenever shard_facts are pending. */
static int loop_local(const size_t *mine, size_t n_mine, size_t shard_facts, size_t seq, const stage_loop_fns *fns,
                      stage_progress *p, lafn_err *err) {
    size_t pending = 0;
    for (size_t k = 0; k < n_mine; k++) {
        if (fns->process(fns->user, mine[k], err) != 0) return -1;
        stage_progress_step(p, 1);
        if (++pending == shard_facts) {
            if (fns->commit(fns->user, seq++, err) != 0) return -1;
            pending = 0;
        }
    }
    return pending ? fns->commit(fns->user, seq, err) : 0;
}

int stage_loop_run(stage_context *ctx, const size_t *cost, const stage_loop_fns *fns, size_t *n_mine,
                   lafn_err *err) {
    stage_resume r;
    size_t *mine = NULL;
    int64_t shard_facts = 1;
    *n_mine = 0;
    if (stage_resume_init(&r, ctx, err) != 0) {
        stage_resume_free(&r);
        return -1;
    }
    int rc = config_get_int(&ctx->cfg, "run.shard_facts", &shard_facts, err);
    if (rc == 0) rc = deal_mine(ctx, cost, r.done, &mine, n_mine, err);
    if (mpi_status_agree(ctx->comm, rc, err) != 0) {
        free(mine);
        stage_resume_free(&r);
        return -1;
    }
    if (ctx->rank == 0 && ctx->log)
        fprintf(ctx->log, "%s: %zu facts on %d ranks (%zu resumed)\n", ctx->stage, ctx->facts.n_facts, ctx->size,
                r.n_done);
    stage_progress p;
    stage_progress_init(&p, ctx->comm, ctx->stage, ctx->facts.n_facts, r.n_done, ctx->rank == 0 ? ctx->log : NULL);
    rc = loop_local(mine, *n_mine, (size_t)shard_facts, r.next_seq, fns, &p, err);
    rc = mpi_status_agree(ctx->comm, rc, err);
    stage_progress_free(&p);
    free(mine);
    stage_resume_free(&r);
    return rc;
}
