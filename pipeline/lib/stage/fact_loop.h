/* fact_loop: the per-rank fact loop every stage runs — resume from committed shards, assignment by cost, shard commits, progress. */
#ifndef LAFN_FACT_LOOP_H
#define LAFN_FACT_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"
#include "stage/stage.h"

/* What a stage already has from an earlier start. */
typedef struct {
    uint8_t *done;   /* (ctx->facts.n_facts) 1 if the fact is in a committed shard of this run */
    size_t n_done;   /* facts of the set already done, over all ranks */
    size_t next_seq; /* this rank's first unused shard number */
} stage_resume;

/* Collective over ctx->comm. With run.resume, rank 0 first sets damaged
 * committed shards aside (h5out_shards_set_aside: truncated or unreadable
 * ones are renamed NAME.damaged, named on ctx->log, and their facts done
 * again), then r is filled from the committed shards of ctx->stage in
 * ctx->out_dir (each checked against ctx->run_id: a shard of another run is
 * an error naming it). Without run.resume, rank 0
 * removes those shards (stage_shards_reset) and r says nothing is done.
 * Returns 0 on every rank, or -1 on every rank with err; free r with
 * stage_resume_free in both cases. */
int stage_resume_init(stage_resume *r, const stage_context *ctx, lafn_err *err);
void stage_resume_free(stage_resume *r);

/* Removes the committed shards of ctx->stage in ctx->out_dir (a shard that is
 * already gone is not an error). Call on one rank. Returns 0 or -1 with err
 * naming the shard that could not be removed. */
int stage_shards_reset(const stage_context *ctx, lafn_err *err);

typedef struct {
    /* Processes ctx->facts.facts[i] into the caller's current batch. 0 or -1 with err. */
    int (*process)(void *user, size_t i, lafn_err *err);
    /* Writes the current batch as this rank's shard number `seq` and empties it. 0 or -1 with err. */
    int (*commit)(void *user, size_t seq, lafn_err *err);
    void *user;
} stage_loop_fns;

/* Collective over ctx->comm. Resumes (stage_resume_init), deals all facts to
 * the ranks by cost[i] (one per ctx->facts.facts[i]; stage_assign — a fact
 * stays with its rank across restarts), processes this rank's facts not yet
 * done in index order, committing every run.shard_facts
 * facts and the rest at the end, and reports progress to ctx->log.
 * *n_mine gets the facts this rank processed. Returns 0 on every rank, or -1
 * on every rank with err (the lowest failing rank's message). */
int stage_loop_run(stage_context *ctx, const size_t *cost, const stage_loop_fns *fns, size_t *n_mine,
                   lafn_err *err);

#endif
