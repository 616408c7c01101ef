/* stage_eval: the evaluation stage — apply each fact's cached edit, score every (edit set, test language) pair pre and post, write eval.h5 and the summaries. */
#ifndef LAFN_STAGE_EVAL_H
#define LAFN_STAGE_EVAL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edit/edit_cache.h"
#include "base/lafn_err.h"
#include "stage/stage.h"

/* Runs the evaluation stage (collective over comm): reads the pipeline file
 * with the overrides, edit.h5 of the same run from run.output_dir, scores
 * every fact dealt to this rank in every language (unedited and edited),
 * writes shards of run.shard_facts facts (resuming from committed ones when
 * run.resume), merges them into eval.h5, adds the cell means with bootstrap
 * intervals, and writes summary.json and summary.csv beside it (rank 0).
 * Progress goes to log. Returns 0 on every rank, or -1 on every rank with err. */
int stage_eval_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                   MPI_Comm comm, FILE *log, lafn_err *err);

typedef struct eval_each eval_each;

/* The edits the evaluation applies, one row per fact (the caller's arrays). */
typedef struct {
    size_t n_facts;
    const int64_t *facts;        /* (n_facts) fact index in the data set */
    const edit_cache *caches;    /* (n_facts) what is applied while that fact is evaluated */
    const int32_t *status;       /* (n_facts) EDIT_STATUS_* of edit.h5, or NULL (= -1, unknown) */
    const double *wall_seconds;  /* (n_facts) time of the edit, or NULL */
    const int64_t *memory_kb;    /* (n_facts, 2) memory of the edit as edit.h5 records it, or NULL */
    const eval_each *each;       /* edit set "each": edits made in one language (NULL = not evaluated) */
} eval_edit_table;

/* The stage's work after its context is set up (stage_eval_run = context +
 * edit.h5 + this): scores ctx's facts with the edits of t, writes the shards,
 * eval.h5 and the summaries into ctx->out_dir. Collective over ctx->comm.
 * Tests call it with hand-built edits. Returns 0 on every rank, or -1 with err. */
int stage_eval_execute(stage_context *ctx, const eval_edit_table *t, lafn_err *err);

#endif
