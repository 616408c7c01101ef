/* stage_locate: the locate stage — from probe.h5's per-prompt scores to each fact's LAFNs, its per-language sets and the run's atlas (locate.h5). */
#ifndef LAFN_STAGE_LOCATE_H
#define LAFN_STAGE_LOCATE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "h5/h5out.h"
#include "base/lafn_err.h"
#include "probe/stage_probe.h"

/* The edit stage's gated cache fires a fact's edit for an input when enough of
 * its neurons pass their threshold: neuron (i, j) passes when
 * a_i[j] * sign(act_mean) >= gate_threshold at the input's last prompt token,
 * where gate_threshold = LOCATE_GATE_FACTOR * (the smallest |a_i[j]| at the last
 * prompt token over the fact's prompts in which the neuron was active). */
#define LOCATE_GATE_FACTOR 0.5f

/* Runs the locate stage (docs/stage_locate.md): collective over comm. Opens
 * run.output_dir/probe.h5 (refused unless it is the probe output of this
 * pipeline file), computes every fact's neuron sets on the rank it is dealt to,
 * writes shards, merges them into locate.h5 and adds the atlas (/global).
 * Returns 0 on every rank, or -1 on every rank with err set. */
int stage_locate_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                     MPI_Comm comm, FILE *log, lafn_err *err);

/* locate.neuron_set: which neurons edit/ hands to the edit stage. */
typedef enum {
    LOCATE_SET_LAFN,              /* the LAFNs */
    LOCATE_SET_LANGUAGE_SPECIFIC, /* the language-specific sets (ablation) */
    LOCATE_SET_RANDOM,            /* the control: per fact, as many random neurons per layer as it has LAFNs */
} locate_neuron_set;

/* The locate.* knobs, resolved. */
typedef struct {
    double threshold;
    int global_scope;         /* threshold_scope = global */
    size_t top_k;             /* > 0: top_k per layer instead of the threshold */
    double prompt_fraction, language_fraction, min_language_fraction, language_fraction_step;
    size_t max_neurons, min_neurons;
    size_t n_edit_layers;     /* 0: every probed layer (edit_layers = [] and floor(edit_from_depth · n_layer) = 0) */
    int *edit_layers;         /* (n_edit_layers) ascending, owned */
    locate_neuron_set neuron_set;
    int contrast;             /* rank_by = contrast */
    const double *run_sum;    /* (n_layer, n_ffn) contrast: Σ kept score over every prompt of the run (not owned) */
    double run_prompts;       /* contrast: prompts of the run */
    uint64_t seed;            /* run.seed: the random control's draws */
    int n_ffn;                /* neurons per layer */
} locate_opts;

/* Resolves the locate.* knobs of cfg (and run.seed) for a model of n_layer
 * layers of n_ffn neurons into *o (free with locate_opts_free): an empty
 * edit_layers becomes the layers from floor(edit_from_depth · n_layer) on, or
 * stays empty (every probed layer) when that depth is 0. Returns 0, or -1
 * with err naming the key. */
int locate_opts_from_config(const lafn_config *cfg, int n_layer, int n_ffn, locate_opts *o, lafn_err *err);
void locate_opts_free(locate_opts *o);

/* One fact as probe.h5 holds it (see docs/stage_probe.md). */
typedef struct {
    int64_t index;          /* the fact's index */
    size_t n_prompts;
    int32_t *prompt_lang;   /* (n_prompts) index into the run's languages */
    size_t n_probed;
    const int32_t *layers;  /* (n_probed) probed layers, ascending (not owned) */
    float *layer_max;       /* (n_prompts, n_probed) */
    int32_t *n_above;       /* (n_prompts, n_probed) */
    size_t n_kept;
    int32_t *k_prompt, *k_layer, *k_neuron; /* (n_kept) */
    float *k_score, *k_act;                 /* (n_kept) */
} locate_input;

void locate_input_free(locate_input *in);

/* Reads row `row` of an open probe.h5 (path for messages) into *in, checking
 * every count and index (n_langs languages, n_ffn neurons per layer). */
int locate_input_read(hid_t file, const char *path, size_t row, const int32_t *layers, size_t n_probed,
                      size_t n_langs, int n_ffn, locate_input *in, lafn_err *err);

/* The locate results of a batch of facts, laid out as locate.h5's datasets:
 * CSR families lafn/..., dset/..., specific/..., edit/... and row datasets. */
#define LOCATE_STATUS_LEN 7 /* found, n_lafn, n_langs, relax_steps, capped, n_specific, n_edit */
typedef struct {
    size_t n_facts, cap_facts, n_langs, n_layer;
    int64_t *facts;
    int64_t *off_lafn, *off_dset, *off_spec, *off_edit;  /* (n_facts + 1) each */
    grow_vec lafn_layer, lafn_neuron, lafn_score, lafn_nlangs, lafn_act_mean, lafn_act_min, lafn_gate;
    grow_vec dset_lang, dset_layer, dset_neuron, dset_score;
    grow_vec spec_lang, spec_layer, spec_neuron, spec_score, spec_act_mean, spec_gate;
    grow_vec edit_layer, edit_neuron, edit_act_mean, edit_gate;
    int32_t *status;        /* (n_facts, LOCATE_STATUS_LEN) */
    double *lang_fraction;  /* (n_facts) language fraction finally used */
    int32_t *layer_hist;    /* (n_facts, n_layer) LAFNs per layer */
    int32_t *pairs;         /* (n_facts, 2 * n_langs * n_langs): |D_a ∩ D_b|, |D_a ∪ D_b| */
} locate_batch;

#define LOCATE_N_DATASETS 25

int locate_batch_init(locate_batch *b, size_t cap_facts, size_t n_langs, size_t n_layer, lafn_err *err);
void locate_batch_reset(locate_batch *b);
void locate_batch_free(locate_batch *b);
void locate_batch_datasets(const locate_batch *b, h5out_dataset ds[LOCATE_N_DATASETS]);

/* Computes the neuron sets of one fact and appends them to b as row b->n_facts.
 * Pure: the result depends only on (in, o). Returns 0, or -1 with err. */
int locate_fact(const locate_input *in, const locate_opts *o, locate_batch *b, lafn_err *err);

#endif
