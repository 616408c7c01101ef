/* stage: what every pipeline stage shares — work assignment, collective status, progress, prompt tokenization. */
#ifndef LAFN_STAGE_H
#define LAFN_STAGE_H

#include <limits.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "facts/facts.h"
#include "h5/h5out.h"
#include "base/lafn_err.h"
#include "base/mpi_status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* ---- the context every stage starts from (stage_context.c) ---- */

#define STAGE_RUN_ID_LEN 16

typedef struct {
    const char *stage;          /* "paraphrase", "probe", "locate", "edit" or "eval" */
    MPI_Comm comm;              /* the stage's ranks */
    MPI_Comm node_comm;         /* ranks sharing this node's copy of the weights */
    int rank, size;
    FILE *log;                  /* progress and messages (every rank may write) */
    lafn_config cfg;            /* the checked pipeline file with overrides applied */
    model *m;                   /* node-shared weights (the paraphrase stage: the generator, stage_model_path) */
    facts_set facts;            /* the selected facts and languages, paraphrases added */
    const char *out_dir;        /* run.output_dir (owned by cfg), created */
    char run_id[STAGE_RUN_ID_LEN + 1]; /* identity of this stage's output (the paraphrase stage sets it again
                                          once its templates are read: paraphrase/paraphrase.h) */
    char *model_size, *command_line, *config_text;
    h5out_provenance prov;      /* for every file the stage writes */
} stage_context;

/* Collective over comm: loads and checks the pipeline file, applies the
 * "section.key=value" overrides, sets the OpenBLAS threads, creates the output
 * folder, loads the facts and the model (node-shared), and fills the
 * provenance. Every rank returns the same status; on failure err names the
 * file, key or record, and nothing is left allocated. Free with
 * stage_context_free (collective). */
int stage_context_init(stage_context *ctx, const char *stage, const char *cfg_path, char *const *overrides,
                       int n_overrides, const char *command_line, MPI_Comm comm, FILE *log, lafn_err *err);
void stage_context_free(stage_context *ctx);

/* Maps each language of view v (a fact of ctx) to its index in the run's
 * language list ctx->facts.langs: idx (v->n_langs). Returns 0, or -1 with err
 * naming the fact and a language the run does not hold. */
int stage_view_langs(const stage_context *ctx, const facts_edit_view *v, int *idx, lafn_err *err);

/* The identity of a stage's output under cfg: the first STAGE_RUN_ID_LEN hex
 * digits of the SHA-256 of the model's digest and of the pipeline sections the
 * stage depends on (model, data, languages and the stages up to it), so a
 * later stage recognises an earlier stage's file as its own input and changing
 * only eval knobs keeps probe's output valid; edit.gate belongs to eval's
 * identity, not to edit's (except in sequential mode), since it only decides
 * where a stored edit applies. The paraphrase section belongs to probe's and
 * the later identities only when the paraphrase stage generates
 * (stage_paraphrases_generated); the paraphrase stage's own identity is its
 * sections data (without data.paraphrases), languages and paraphrase, with
 * model_sha256 the digest of its generator and templates
 * (paraphrase_run_id). Returns 0, or -1 for an unknown stage. */
int stage_run_id(const lafn_config *cfg, const char *model_sha256, const char *stage, char out[STAGE_RUN_ID_LEN + 1],
                 lafn_err *err);

/* 1 if cfg's paraphrase.method makes the paraphrase stage generate (sample or beam), else 0. */
int stage_paraphrases_generated(const lafn_config *cfg);

/* The baseline edit.method of cfg (ft_l, ft_m: it edits whole layers, so
 * neither probe nor locate feeds it), or NULL for lafn. */
const char *stage_edit_baseline(const lafn_config *cfg);

/* The model a stage runs: for the paraphrase stage paraphrase.model unless
 * it is "", else model.path. *path stays owned by cfg. Returns 0, or -1 with
 * err. */
int stage_model_path(const lafn_config *cfg, const char *stage, const char **path, lafn_err *err);

/* ---- the stage programs' main (stage_main.c) ---- */

/* A stage's library entry point: runs it collectively over comm with the
 * pipeline file and its "section.key=value" overrides; 0, or -1 with err on
 * every rank. */
typedef int (*stage_run_fn)(const char *cfg_path, char *const *overrides, int n_overrides,
                            const char *command_line, MPI_Comm comm, FILE *log, lafn_err *err);

/* The whole main of `program FILE.cfg [section.key=value ...]`: MPI_Init, run
 * on MPI_COMM_WORLD with stdout as log, MPI_Finalize. On failure "program:
 * message" is printed once (by rank 0, or by the failed rank when rank 0 did
 * not fail) and every rank exits with status 1; if a failed rank's peers have
 * not reached the exit within 10 s (stuck in a collective it never joins), it
 * prints its message and ends the job with MPI_Abort(1). Returns the exit
 * status (2 for a usage error). */
int stage_main(int argc, char **argv, const char *program, stage_run_fn run);

/* ---- work assignment (stage_assign.c) ---- */

/* Deals n facts with the given costs (tokens) to n_ranks ranks: largest cost
 * first, each to the least-loaded rank (ties: lowest rank; equal costs: lowest
 * index first). owner[i] receives fact i's rank. The result depends only on
 * (cost, n, n_ranks). Returns 0, or -1 with err. */
int stage_assign(const size_t *cost, size_t n, int n_ranks, int *owner, lafn_err *err);

/* ---- progress (stage_progress.c) ---- */

#define STAGE_PROGRESS_SECONDS 2.0

typedef struct {
    MPI_Win win;
    long long *counter;  /* facts done by all ranks (on rank 0 of the window) */
    const char *stage;
    size_t total;        /* facts of the stage, including resumed ones */
    size_t resumed;      /* facts already done before this start (not counted in the rate) */
    double start, last_print;
    FILE *log;           /* NULL: count silently */
} stage_progress;

/* Collective over comm: creates the shared counter, starting at already_done. */
void stage_progress_init(stage_progress *p, MPI_Comm comm, const char *stage, size_t total, size_t already_done,
                         FILE *log);
/* Any rank, any time: adds n_facts and, at most every STAGE_PROGRESS_SECONDS
 * per rank (and at the end), prints "STAGE: done/total facts, rate, ETA". */
void stage_progress_step(stage_progress *p, size_t n_facts);
/* Collective: releases the counter. */
void stage_progress_free(stage_progress *p);

/* ---- prompt + target tokens (stage_prompts.c) ---- */

/* A prompt followed by its target: ids = prompt ids (BOS first when the
 * model's convention adds one) then the ids of sep + target, encoded without
 * BOS, where sep is the language's separator (" ", or "" for zh, ja, th).
 * Teacher forcing predicts ids[n_prompt + k] from the prefix ids[0 .. n_prompt + k). */
typedef struct {
    int32_t *ids;     /* (n_prompt + n_target) */
    size_t n_prompt;
    size_t n_target;  /* 0 when built without a target */
} stage_sequence;

/* Tokenizes prompt (and target unless NULL) in language lang (a code or alias
 * known to facts_lang_find). Returns 0 and *out (free with
 * stage_sequence_free), or -1 with err. */
int stage_sequence_build(const tokenizer *t, const char *lang, const char *prompt, const char *target,
                         stage_sequence *out, lafn_err *err);
void stage_sequence_free(stage_sequence *s);

#endif
