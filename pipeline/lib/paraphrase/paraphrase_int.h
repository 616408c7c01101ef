/* paraphrase_int: what the paraphrase stage's files share — its knobs, the rows it writes, the generation work space; not a public interface. */
#ifndef LAFN_PARAPHRASE_INT_H
#define LAFN_PARAPHRASE_INT_H

#include "base/grow_vec.h"
#include "engine/decode.h"
#include "h5/h5out.h"
#include "paraphrase/paraphrase.h"

/* The paraphrase.* knobs of a generating run, resolved. */
typedef struct {
    decode_opts decode;            /* SAMPLE (one prompt per candidate) or BEAM (n_return = candidates) */
    size_t candidates;             /* per (fact, language) */
    uint64_t seed;                 /* paraphrase.seed */
    char *const *languages;        /* paraphrase.languages (the config's strings); n_languages 0 = every language */
    size_t n_languages;
    paraphrase_filter_opts filter;
} paraphrase_opts;

/* Reads the paraphrase section of cfg. Returns 0, or -1 with err (method none
 * or file: the stage has nothing to generate). */
int paraphrase_opts_from_config(const lafn_config *cfg, paraphrase_opts *o, lafn_err *err);

/* Rows of paraphrase.h5 for a batch of facts, laid out as its datasets:
 *   counts               (n_facts, n_langs × PARAPHRASE_N_COUNTS) int32, -1 for a language the fact lacks
 *   candidates/lang      CSR int32: each candidate's language slot, languages in the run's order
 *   candidates/verdict   CSR int32: its paraphrase_verdict
 *   candidates/text      CSR uint8: the candidates' texts, each ended by a NUL byte */
typedef struct {
    size_t n_facts, cap_facts, n_langs;
    int64_t *facts;               /* (n_facts) fact indices */
    int32_t *counts;              /* (cap_facts, n_langs × PARAPHRASE_N_COUNTS) */
    int64_t *off_cand, *off_text; /* (cap_facts + 1) each */
    grow_vec cand_lang, cand_verdict; /* int32 */
    grow_vec text;                /* uint8 */
} paraphrase_batch;

#define PARAPHRASE_N_DATASETS 4

int paraphrase_batch_init(paraphrase_batch *b, size_t cap_facts, size_t n_langs, lafn_err *err);
void paraphrase_batch_reset(paraphrase_batch *b);
void paraphrase_batch_free(paraphrase_batch *b);

/* Opens the row of fact `index` (its counters -1 until a language is added);
 * 0, or -1 with err when the batch is full. */
int paraphrase_batch_begin(paraphrase_batch *b, int64_t index, lafn_err *err);

/* Adds to the open row language slot l's n candidates (texts) with their
 * verdicts and counts them. Returns 0, or -1 with err (out of memory). */
int paraphrase_batch_add(paraphrase_batch *b, size_t l, char *const *texts, const paraphrase_verdict *verdicts,
                         size_t n, lafn_err *err);

/* Closes the open row. */
void paraphrase_batch_end(paraphrase_batch *b);

/* Fills ds[PARAPHRASE_N_DATASETS] describing b's data (or, with b->n_facts ==
 * 0, the merge schema). Pointers into b. */
void paraphrase_batch_datasets(const paraphrase_batch *b, h5out_dataset ds[PARAPHRASE_N_DATASETS]);

/* ---- generation (stage_paraphrase_fact.c) ---- */

/* The KV cache and buffers of one rank's generation. */
typedef struct paraphrase_work paraphrase_work;

/* Work space for prompts of up to max_prompt tokens. Returns 0, or -1 with err. */
int paraphrase_work_init(paraphrase_work **out, const model *m, const paraphrase_opts *o, size_t max_prompt,
                         lafn_err *err);
void paraphrase_work_free(paraphrase_work *w);

/* Tokens of language l's prompt for src (template filled, BOS as the model wants): *n. Returns 0, or -1 with err. */
int paraphrase_prompt_tokens(const model *m, const paraphrase_templates *t, const char *lang, const char *src,
                             size_t *n, lafn_err *err);

/* Generates and judges the candidates of view v (fact `index`; lang_slot[l]
 * is the run's slot of v->langs[l]) into a new row of b. Returns 0, or -1
 * with err naming the fact and language. */
int paraphrase_fact(paraphrase_work *w, const paraphrase_templates *t, const facts_edit_view *v, size_t index,
                    const int *lang_slot, paraphrase_batch *b, lafn_err *err);

#endif
