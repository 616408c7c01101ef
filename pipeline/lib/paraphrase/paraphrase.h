/* paraphrase: the paraphrase stage — paraphrases of src generated from few-shot templates, filtered, stored in paraphrase.h5 and joined into the prompts of the later stages. */
#ifndef LAFN_PARAPHRASE_H
#define LAFN_PARAPHRASE_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/lafn_err.h"
#include "config/config.h"
#include "facts/facts.h"
#include "paraphrase/paraphrase_filter.h"
#include "stage/stage.h"

/* Runs the paraphrase stage (docs/stage_paraphrase.md): collective over comm.
 * Loads the pipeline file cfg_path with the "section.key=value" overrides
 * (paraphrase.method must be sample or beam), the generator
 * (stage_model_path) and one template per language of the run; generates
 * paraphrase.candidates continuations of every (fact, language) dealt to this
 * rank, judges them (paraphrase_filter), writes shards of run.shard_facts
 * facts, merges them into run.output_dir/paraphrase.h5 and adds the
 * per-language totals, the templates and the decoding knobs (/global and root
 * attributes), printing the totals to log. Returns 0 on every rank, or -1 on
 * every rank with err. */
int stage_paraphrase_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                         MPI_Comm comm, FILE *log, lafn_err *err);

/* ---- templates (paraphrase_template.c) ---- */

#define PARAPHRASE_SRC_MARK "{src}"

/* The few-shot prompt of each language: the file DIR/LANG.txt (LANG the
 * canonical code), without its leading comment lines (those starting with
 * '#') and trailing white space, holding PARAPHRASE_SRC_MARK exactly once. */
typedef struct {
    size_t n;
    const char *lang[FACTS_MAX_LANGS]; /* canonical codes (static) */
    char *path[FACTS_MAX_LANGS];       /* DIR/LANG.txt */
    char *file[FACTS_MAX_LANGS];       /* the file's text as read */
    const char *prompt[FACTS_MAX_LANGS]; /* into file: the template itself (its end cut at the trailing white space) */
    char sha256[FACTS_MAX_LANGS][65];  /* of the file's bytes */
} paraphrase_templates;

/* Reads the templates of the n languages langs from dir. Returns 0 and *t
 * (free with paraphrase_templates_free), or -1 with err naming
 * paraphrase.template_dir and the file: missing or unreadable, not UTF-8, or
 * without exactly one {src}; an unknown language is named too. */
int paraphrase_templates_load(paraphrase_templates *t, const char *dir, const char *const *langs, size_t n,
                              lafn_err *err);
void paraphrase_templates_free(paraphrase_templates *t);

/* Language lang's template with {src} replaced by src: a new string (the
 * caller frees), or NULL with err (no template for lang, out of memory). */
char *paraphrase_prompt(const paraphrase_templates *t, const char *lang, const char *src, lafn_err *err);

/* The run id of paraphrase.h5 under cfg: stage_run_id of stage "paraphrase"
 * with, as model digest, the SHA-256 of the generator's digest and of every
 * template's (so a changed template or generator is a new run). Returns 0,
 * or -1 with err. */
int paraphrase_run_id(const lafn_config *cfg, const char *generator_sha256, const paraphrase_templates *t,
                      char out[STAGE_RUN_ID_LEN + 1], lafn_err *err);

/* ---- paraphrase.h5 (paraphrase_file.c; layout in docs/stage_paraphrase.md) ---- */

/* Per (fact, language) counters in paraphrase.h5's counts rows: the candidates generated, then one per verdict. */
#define PARAPHRASE_N_COUNTS (1 + PARAPHRASE_N_VERDICTS)

/* Every candidate of a paraphrase.h5, read whole. */
typedef struct {
    size_t n_rows, n_cands, n_langs;
    int64_t *facts;          /* (n_rows) fact indices */
    int64_t *off;            /* (n_rows + 1) row r's candidates are [off[r], off[r + 1]) */
    int32_t *lang, *verdict; /* (n_cands) language slot (into langs), paraphrase_verdict */
    char **text;             /* (n_cands) into the text block, NUL-terminated */
    int32_t *counts;         /* (n_rows, n_langs × PARAPHRASE_N_COUNTS) */
    const char *langs[FACTS_MAX_LANGS]; /* the file's languages (attribute lafn_langs), canonical codes */
    uint8_t *text_block;
} paraphrase_table;

/* Reads an open paraphrase.h5 (path for messages) into *t (free with
 * paraphrase_table_free), checking that it is complete (lafn_global_complete),
 * that its CSR datasets share their offsets, and every language slot,
 * verdict and text. Returns 0, or -1 with err naming path and what is wrong. */
int paraphrase_table_read(hid_t file, const char *path, paraphrase_table *t, lafn_err *err);
void paraphrase_table_free(paraphrase_table *t);

/* ---- the later stages' prompts (paraphrase_join.c) ---- */

/* Collective over ctx->comm, right after stage_context_init, in the stages
 * that read the prompt sets (probe, edit, eval). When paraphrase.method is
 * sample or beam, opens run.output_dir/paraphrase.h5, checks that it is this
 * run's (paraphrase_run_id with the templates as they are now and the
 * generator's digest — ctx->m's when paraphrase.model is "", else the one the
 * file records) and complete, and appends each fact's kept paraphrases to its
 * sides after those of a data.paraphrases file, dropping any whose key equals
 * src's or an earlier paraphrase's; every fact of the run must be in the file.
 * With method none or file it does nothing. Returns 0 on every rank, or -1 on
 * every rank with err naming the file. */
int paraphrase_join(stage_context *ctx, lafn_err *err);

#endif
