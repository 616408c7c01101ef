/* stage_edit: the edit stage — optimise the update values of every fact's located neurons, write edit.h5. */
#ifndef LAFN_STAGE_EDIT_H
#define LAFN_STAGE_EDIT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "edit/edit_cache.h"
#include "h5/h5out.h"
#include "base/lafn_err.h"

/* Status of a fact in edit.h5 (dataset "status"). */
enum {
    EDIT_STATUS_EDITED = 0,   /* optimised; every language's NLL fell below edit.stop_nll */
    EDIT_STATUS_NO_LAFN = 1,  /* locate found no neurons: not edited (no delta) */
    EDIT_STATUS_NOT_REACHED = 2, /* optimised for edit.steps; some language stayed >= stop_nll (delta kept) */
};

/* Runs the edit stage (collective over comm): reads the pipeline file with
 * the overrides, locate.h5 of the same run from run.output_dir, optimises per
 * edit.mode, writes shards of run.shard_facts facts (resuming from committed
 * ones when run.resume) and merges them into edit.h5. Progress goes to log.
 * Returns 0 on every rank, or -1 on every rank with err. */
int stage_edit_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                   MPI_Comm comm, FILE *log, lafn_err *err);

/* ---- the neurons handed over by locate (stage_edit_input.c) ---- */

/* Per fact of locate.h5: its neurons (CSR) with their gate thresholds. */
typedef struct {
    size_t n_facts;
    int64_t *facts;      /* (n_facts) fact index in the data set */
    int32_t *found;      /* (n_facts) locate's status column 0: 1 = neurons found, 0 = no LAFN */
    int64_t *offsets;    /* (n_facts + 1) */
    int32_t *layer;      /* (offsets[n_facts]) */
    int32_t *neuron;     /* (offsets[n_facts]) */
    float *sign;         /* (offsets[n_facts]) sign of the neuron's mean activation (+1 / -1); 0: not known
                            (the random control), taken from the fact's prompts when its gate is calibrated */
    float *threshold;    /* (offsets[n_facts]) the gate: a · sign >= threshold */
} edit_neurons;

/* Reads the neurons locate.h5 at path hands to edit (edit/layer, edit/neuron,
 * edit/act_mean, edit/gate_threshold: the LAFNs or the language-specific
 * neurons per locate.neuron_set; status column 0 = found), checked to belong
 * to run run_id, on every rank of comm (collective open). Checks every neuron against n_layer × d_ffn. Returns 0, or -1 with
 * err naming the file, dataset and fault. */
int edit_neurons_read(const char *path, const char *run_id, int n_layer, int d_ffn, MPI_Comm comm,
                      edit_neurons *out, lafn_err *err);
/* The same from a locate.h5 the caller opened (identity checked or not, as it chooses); path names it in messages. */
int edit_neurons_read_file(hid_t file, const char *path, int n_layer, int d_ffn, edit_neurons *out, lafn_err *err);
void edit_neurons_free(edit_neurons *n);
/* Row of fact index `fact`, or -1. */
long edit_neurons_find(const edit_neurons *n, int64_t fact);

/* ---- the cached edits of edit.h5 (stage_edit_output.c) ---- */

/* Every fact's edit as stored: gate neurons and deltas, in edit.h5 row order. */
typedef struct {
    engine_edit_kind kind;
    size_t width;            /* floats per delta entry: D or 1 */
    size_t n_facts;
    int64_t *facts;          /* (n_facts) */
    int64_t *group;          /* (n_facts) facts sharing a delta set (batch mode) share a group */
    int64_t *order;          /* (n_facts) order in which edits were made (sequential mode) */
    int32_t *status;         /* (n_facts) EDIT_STATUS_* */
    int64_t *gate_off;       /* (n_facts + 1) */
    int32_t *gate_layer, *gate_neuron;
    float *gate_sign, *gate_threshold;
    int64_t *delta_off;      /* (n_facts + 1) entries */
    int32_t *delta_layer, *delta_neuron;
    float *delta;            /* (delta_off[n_facts], width) */
    size_t n_delta_values;   /* delta_off[n_facts] · width */
    int32_t *key_info;       /* (n_facts, 2) keys of the fact (0: its gate neurons decide), key layer */
    float *key_threshold;    /* (n_facts) */
    int64_t *key_center_off, *key_off; /* (n_facts + 1) floats, into key_center and keys */
    float *key_center, *keys;          /* (D per fact with keys), (n_keys · D per fact) */
    edit_cache_entry *entries; /* (n_facts) views into the arrays above */
} edit_store;

/* Reads the edits of a merged edit.h5 (or, with kind "shard", of one shard —
 * used by sequential resume) into *out. D is the model width (the delta row
 * length for value-vector edits). Returns 0, or -1 with err. */
int edit_store_read_file(hid_t file, const char *path, int D, edit_store *out, lafn_err *err);
/* Opens edit.h5 (collective over comm, identity checked against run_id) and reads it. */
int edit_store_read(const char *path, const char *run_id, int D, MPI_Comm comm, edit_store *out, lafn_err *err);
void edit_store_free(edit_store *s);
/* An edit_cache over the stored facts (entries of status NO_LAFN carry no delta) with the trigger knobs. */
edit_cache edit_store_cache(const edit_store *s, const edit_trigger *t);

/* The knobs that decide where a stored edit fires (edit.gate, edit.trigger,
 * edit.key_nearest_floor), read at eval and ask time (and by sequential
 * edits); with a baseline edit.method the gate is 0: its edits apply to
 * every input. Returns 0, or -1 with err. */
int edit_trigger_from_config(const lafn_config *cfg, edit_trigger *t, lafn_err *err);

#endif
