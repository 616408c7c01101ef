/* stage_probe: the probe stage — per-prompt FFN neuron scores of every fact, kept sparsely per layer (probe.h5). */
#ifndef LAFN_STAGE_PROBE_H
#define LAFN_STAGE_PROBE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "engine/engine.h"
#include "facts/facts.h"
#include "h5/h5out.h"
#include "base/grow_vec.h"
#include "base/lafn_err.h"
#include "model/model.h"

/* Runs the probe stage (docs/stage_probe.md): collective over comm. Loads the
 * pipeline file cfg_path with the "section.key=value" overrides, scores every
 * fact dealt to this rank, writes shards of run.shard_facts facts, merges them
 * into run.output_dir/probe.h5 and adds the run-wide statistics (/global).
 * Progress and counts go to log. Returns 0 on every rank, or -1 on every rank
 * with err set. */
int stage_probe_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                    MPI_Comm comm, FILE *log, lafn_err *err);

typedef enum { PROBE_POS_LAST, PROBE_POS_SUBJECT, PROBE_POS_MEAN } probe_position;
typedef enum {
    PROBE_SCORE_ACTIVATION,     /* max(a, 0) */
    PROBE_SCORE_ABS_ACTIVATION, /* |a| */
    PROBE_SCORE_GRAD_X_ACT,     /* a * d log p(alt | prompt) / da */
    PROBE_SCORE_IG,             /* integrated gradients along a -> alpha a */
} probe_score;

/* The probe.* knobs, resolved. */
typedef struct {
    probe_position position;
    probe_score score;
    int steps;            /* integrated gradients */
    double min_fraction;
    size_t keep_max;
    size_t n_layers;      /* probed layers, ascending, distinct */
    int *layers;          /* (n_layers), owned */
} probe_opts;

/* Reads the probe section of cfg for a model of n_layer layers. Returns 0 and
 * *o (free with probe_opts_free), or -1 naming the key (a layer >= n_layer). */
int probe_opts_from_config(const lafn_config *cfg, int n_layer, probe_opts *o, lafn_err *err);
void probe_opts_free(probe_opts *o);

/* The probe results of a batch of facts, laid out as probe.h5's datasets.
 * Three CSR families, each with its own offsets (n_facts + 1):
 *   prompt/...  one entry per prompt of the fact (languages in set order, then src, paraphrases)
 *   layer/...   one entry per (prompt, probed layer), prompt-major
 *   kept/...    one entry per kept neuron, ordered by prompt, layer, neuron
 * and two row datasets (act_stats, lang_stats). */
typedef struct {
    size_t n_facts, cap_facts, n_probed, n_langs;
    int64_t *facts;                         /* (n_facts) fact indices */
    int64_t *off_prompt, *off_layer, *off_kept; /* (n_facts + 1) each */
    grow_vec prompt_lang, prompt_ntok, prompt_pos, prompt_fallback; /* int32 */
    grow_vec layer_max;                    /* float: max score of the prompt in the layer */
    grow_vec layer_above;                  /* int32: neurons >= min_fraction * max before the keep_max cap */
    grow_vec kept_prompt, kept_layer, kept_neuron; /* int32 */
    grow_vec kept_score, kept_act;         /* float: score; activation a at the last prompt token */
    double *act_stats;                      /* (n_facts, 3 * n_probed): sum |a|, max |a|, count per layer */
    int32_t *lang_stats;                    /* (n_facts, 2 * n_langs): prompts, subject fallbacks per language */
} probe_batch;

#define PROBE_N_DATASETS 13

int probe_batch_init(probe_batch *b, size_t cap_facts, size_t n_probed, size_t n_langs, lafn_err *err);
void probe_batch_reset(probe_batch *b);
void probe_batch_free(probe_batch *b);

/* Fills ds[PROBE_N_DATASETS] describing b's data (or, with b->n_facts == 0,
 * the merge schema). Pointers into b. */
void probe_batch_datasets(const probe_batch *b, h5out_dataset ds[PROBE_N_DATASETS]);

/* Work space of probe_fact, sized for facts of up to max_tokens tokens, max_prompts
 * prompts and max_logit target positions. */
typedef struct probe_work probe_work;

int probe_work_init(probe_work **out, const model *m, const probe_opts *o, size_t max_tokens, size_t max_prompts,
                    size_t max_logit, lafn_err *err);
void probe_work_free(probe_work *w);

/* Scores fact v (its languages' indices in the run's language list in lang_index,
 * one per v->langs) and appends it as fact `index` to b. Returns 0, or -1 with
 * err naming the fact and language. */
int probe_fact(probe_work *w, const facts_edit_view *v, const int *lang_index, probe_batch *b, lafn_err *err);

/* Tokens of fact v as probe runs it: *n_tokens over all prompts (with the
 * target when the score needs gradients), *n_prompts, *n_logit target positions. */
int probe_fact_size(const tokenizer *t, const facts_edit_view *v, int with_target, size_t *n_tokens,
                    size_t *n_prompts, size_t *n_logit, lafn_err *err);

/* The token of prompt ids (n_prompt ids of `prompt`, BOS first iff has_bos) at
 * which `subject` ends: the last token overlapping the subject's first
 * occurrence in the prompt. Returns 0 and *pos, or 1 if the subject is NULL,
 * empty or not a substring (the caller falls back to the last token), or -1
 * with err. */
int probe_subject_position(const tokenizer *t, const char *prompt, const char *subject, const int32_t *ids,
                           size_t n_prompt, int has_bos, size_t *pos, lafn_err *err);

#endif
