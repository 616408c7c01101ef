/* stage_probe_loop: the per-rank fact loop shared by probe and locate — assignment by cost, resume, shards of run.shard_facts facts, progress. */
#ifndef LAFN_STAGE_PROBE_LOOP_H
#define LAFN_STAGE_PROBE_LOOP_H

#include <stddef.h>

#include "base/lafn_err.h"
#include "stage/stage.h"

typedef struct {
    /* Processes ctx->facts.facts[i] into the caller's current batch. 0 or -1 with err. */
    int (*process)(void *user, size_t i, lafn_err *err);
    /* Writes the current batch (n facts) as shard `seq` and empties it. 0 or -1 with err. */
    int (*commit)(void *user, size_t seq, lafn_err *err);
    void *user;
} stage_loop_fns;

/* Collective over ctx->comm. Deals the facts to the ranks by cost[i] (one per
 * ctx->facts.facts[i]); with run.resume skips the facts already in committed
 * shards of ctx->stage in ctx->out_dir (without it, rank 0 first removes the
 * stage's old shards); processes this rank's remaining facts in index order,
 * committing every run.shard_facts facts and the rest at the end; reports
 * progress to ctx->log. *n_mine gets the facts this rank processed. Returns 0
 * on every rank, or -1 on every rank with err (the first failing rank's message). */
int stage_loop_run(stage_context *ctx, const size_t *cost, const stage_loop_fns *fns, size_t *n_mine,
                   lafn_err *err);

/* The facts (indices into ctx->facts.facts) this rank owns under the assignment
 * by cost, in index order, into a new array *mine (*n entries). Collective-free,
 * deterministic. Returns 0 or -1 with err. */
int stage_loop_mine(const stage_context *ctx, const size_t *cost, size_t **mine, size_t *n, lafn_err *err);

#endif
