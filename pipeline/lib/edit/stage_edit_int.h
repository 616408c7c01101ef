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
    int32_t rank, unit_ranks;       /* rank of the stage's communicator that wrote the record; ranks of its unit */
    int n_evals;                    /* loss evaluations a curve row holds: edit.steps + 1 */
    double *curve_nll;              /* (n_evals, n_langs) NLL_ℓ at each evaluation, NaN after the last */
    double *curve_loss;             /* (n_evals) the unit's total loss at each evaluation, NaN after the last */
} edit_record;

void edit_record_free(edit_record *r);

/* Fills ds[] with the datasets of edit.h5 (no values) for n_langs languages and curves of n_evals loss
 * evaluations (edit.steps + 1); returns their count. The last EDIT_SCHEMA_ADDED of them (rank, curve/nll,
 * curve/loss) came later: shards written before lack them. */
size_t edit_schema(h5out_dataset *ds, size_t n_langs, size_t n_evals);
#define EDIT_SCHEMA_MAX 26
#define EDIT_SCHEMA_ADDED 3

/* The number of edit_schema's datasets the merge can ask of the committed edit shards in dir: all of them,
 * or without the EDIT_SCHEMA_ADDED later ones when some shard was written before them (a resumed older
 * run; its edit.h5 then has no curves). Rank 0 looks, the others receive it (collective over comm).
 * Returns 0 with *n_schema on every rank, or -1 on every rank with err naming the shard. */
int edit_schema_for_shards(const char *dir, MPI_Comm comm, size_t *n_schema, lafn_err *err);

/* Writes records r[0..n) as shard seq of rank into dir. D is the model width. */
int edit_records_write(const char *dir, const h5out_provenance *prov, int rank, size_t seq, const edit_record *r,
                       size_t n, size_t n_langs, size_t D, lafn_err *err);

/* Peak RSS (getrusage) and current Pss (/proc/self/smaps_rollup, 0 if unreadable) in KiB. */
void edit_memory_kb(int64_t *peak_rss_kb, int64_t *pss_kb);

#endif
