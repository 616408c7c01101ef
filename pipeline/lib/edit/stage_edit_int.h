/* stage_edit_int: what the edit stage's files share — one fact's result record and the edit.h5 schema. */
#ifndef LAFN_STAGE_EDIT_INT_H
#define LAFN_STAGE_EDIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "edit/edit_optimise.h"
#include "edit/stage_edit.h"

#define EDIT_N_LOSS 4 /* the terms of edit_record.loss, one row of edit.h5's "loss" */

/* One fact's row of edit.h5, owned arrays. */
typedef struct {
    int64_t fact, group, order;
    int32_t status, steps, early_stopped;
    engine_edit_kind kind;
    double *nll_before, *nll_after; /* (n_langs), NaN where the fact lacks the language */
    double loss[EDIT_N_LOSS];       /* first total, last total, last KL term, last L2 term */
    double wall_seconds;
    int64_t peak_rss_kb, pss_kb;
    int32_t gate_candidates; /* locate's neurons of the fact */
    int32_t gate_specific;   /* 1: the gate holds the neurons that separate the fact's prompts */
    int n_gate;
    int32_t *gate_layer, *gate_neuron;
    float *gate_sign, *gate_threshold; /* (n_gate) each */
    int n_delta;
    int32_t *delta_layer, *delta_neuron;
    float *delta; /* (n_delta, D) or (n_delta) */
} edit_record;

void edit_record_free(edit_record *r);

/* The datasets of edit.h5 in schema order: their index in edit_schema's table (docs/stage_edit.md). */
enum {
    EDIT_DS_STATUS,
    EDIT_DS_PARAM,
    EDIT_DS_GROUP,
    EDIT_DS_ORDER,
    EDIT_DS_STEPS,
    EDIT_DS_EARLY,
    EDIT_DS_NLL_BEFORE,
    EDIT_DS_NLL_AFTER,
    EDIT_DS_LOSS,
    EDIT_DS_WALL,
    EDIT_DS_MEMORY,
    EDIT_DS_GATE_INFO,
    EDIT_DS_GATE_LAYER,
    EDIT_DS_GATE_NEURON,
    EDIT_DS_GATE_SIGN,
    EDIT_DS_GATE_THRESHOLD,
    EDIT_DS_DELTA_LAYER,
    EDIT_DS_DELTA_NEURON,
    EDIT_DS_DELTA_VALUES,
    EDIT_N_DATASETS
};

/* Fills ds with the datasets of edit.h5 for n_langs languages (name, layout, dtype, row length; no values). */
void edit_schema(h5out_dataset ds[EDIT_N_DATASETS], size_t n_langs);

/* Writes records r[0..n) as shard seq of rank into dir. D is the model width. Returns 0, or -1 with err (no shard
 * committed). */
int edit_records_write(const char *dir, const h5out_provenance *prov, int rank, size_t seq, const edit_record *r,
                       size_t n, size_t n_langs, size_t D, lafn_err *err);

/* Peak RSS (getrusage) and current Pss (/proc/self/smaps_rollup, 0 if unreadable) in KiB. */
void edit_memory_kb(int64_t *peak_rss_kb, int64_t *pss_kb);

#endif
