/* stage_edit_int: what the edit stage's files share — one fact's result record and the edit.h5 schema. */
#ifndef LAFN_STAGE_EDIT_INT_H
#define LAFN_STAGE_EDIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "edit/edit_optimise.h"
#include "edit/stage_edit.h"

/* One fact's row of edit.h5, owned arrays. */
typedef struct {
    int64_t fact, group, order;
    int32_t status, steps, early_stopped;
    engine_edit_kind kind;
    double *nll_before, *nll_after; /* (n_langs), NaN where the fact lacks the language */
    double loss[4];                 /* first total, last total, last KL term, last L2 term */
    double wall_seconds;
    double seconds[EDIT_PHASES];    /* the unit's time per phase, for the log (not written to edit.h5) */
    int64_t peak_rss_kb, pss_kb;
    int32_t gate_candidates;        /* locate's neurons of the fact */
    int32_t gate_specific;          /* 1: the gate holds the neurons that separate the fact's prompts */
    int n_gate;
    int32_t *gate_layer, *gate_neuron;
    float *gate_sign, *gate_threshold; /* (n_gate) each */
    int n_keys;                     /* key trigger (edit.trigger = key); 0: the gate neurons decide */
    int32_t key_layer;
    float key_threshold;
    float *keys;                    /* (n_keys, D) unit keys of the fact's prompts */
    float *key_center;              /* (D) */
    int n_delta;
    int32_t *delta_layer, *delta_neuron;
    float *delta;                   /* (n_delta, D) or (n_delta) */
} edit_record;

void edit_record_free(edit_record *r);

/* Fills ds[] with the datasets of edit.h5 (no values) for n_langs languages; returns their count. */
size_t edit_schema(h5out_dataset *ds, size_t n_langs);
#define EDIT_SCHEMA_MAX 23

/* Writes records r[0..n) as shard seq of rank into dir. D is the model width. */
int edit_records_write(const char *dir, const h5out_provenance *prov, int rank, size_t seq, const edit_record *r,
                       size_t n, size_t n_langs, size_t D, lafn_err *err);

/* Peak RSS (getrusage) and current Pss (/proc/self/smaps_rollup, 0 if unreadable) in KiB. */
void edit_memory_kb(int64_t *peak_rss_kb, int64_t *pss_kb);

#endif
