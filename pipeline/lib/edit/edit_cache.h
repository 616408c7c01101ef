/* edit_cache: edits stored beside the model and the gate that decides, per input sequence, whether each one fires. */
#ifndef LAFN_EDIT_CACHE_H
#define LAFN_EDIT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "base/lafn_err.h"

/* One cached edit: its triggers — the fact's gate neurons (its LAFNs with
 * their calibrated thresholds) and the keys of its prompts (edit_key.h; the
 * cache's trigger chooses) — and the edited entries with their deltas. Entries of one group
 * (the facts of one batch-mode edit, which share one delta set) fire together
 * and their delta is applied once: an entry whose `group` equals an earlier
 * entry's carries n = 0 or the same delta, which is then ignored. All arrays
 * are the caller's. */
typedef struct {
    long long group;             /* facts sharing one delta set share a group; else unique */
    int n_gate;                  /* gate neurons */
    const int *gate_layer;       /* (n_gate) */
    const int *gate_neuron;      /* (n_gate) */
    const float *gate_sign;      /* (n_gate) +1 or -1: the sign of the neuron's mean activation */
    const float *gate_threshold; /* (n_gate) a neuron passes when a · gate_sign >= gate_threshold */
    int n_keys;                  /* keys of the fact's prompts (0: none stored) */
    int key_layer;               /* keys are of the residual stream entering this layer */
    const float *keys;           /* (n_keys, D) unit keys of the fact's prompts */
    const float *key_center;     /* (D) subtracted from an input's state before comparing */
    float key_threshold;         /* fires when the nearest key's cosine >= key_threshold */
    int n;                       /* edited entries */
    const int *layer;            /* (n) */
    const int *neuron;           /* (n) */
    const float *delta;          /* (n, D) value vectors or (n) activation offsets */
} edit_cache_entry;

/* What decides that an entry fires on an input (edit.trigger). Entries
 * without keys always fire by their gate neurons. */
typedef enum {
    EDIT_TRIGGER_NEURONS,    /* >= gate of the gate neurons pass their thresholds */
    EDIT_TRIGGER_KEY,        /* the nearest of the fact's keys has cosine >= the fact's key_threshold */
    EDIT_TRIGGER_NEAREST_KEY /* the fact's nearest key has cosine >= nearest_floor and is nearer than
                              * every rival fact's nearest key (a nearest-neighbour choice among the facts) */
} edit_trigger_kind;

/* The knobs that decide where a stored edit fires: edit.gate, edit.trigger, edit.key_nearest_floor. */
typedef struct {
    float gate; /* fraction of gate neurons that must pass; 0 = always fire (for every kind) */
    edit_trigger_kind kind;
    float nearest_floor;
} edit_trigger;

typedef struct {
    engine_edit_kind kind;
    edit_trigger trigger;
    size_t n_entries;
    const edit_cache_entry *entries; /* (n_entries) */
    size_t n_rivals;                 /* EDIT_TRIGGER_NEAREST_KEY: the facts an input is matched against (the */
    const edit_cache_entry *rivals;  /* run's edits, entries included; members of an entry's group are skipped) */
} edit_cache;

/* An engine_edit composed from a cache for one batch, with its own arrays. */
typedef struct {
    engine_edit edit;    /* what engine_forward receives */
    int *layer, *neuron; /* (n) */
    float *delta;        /* (n, D) or (n) */
    uint8_t *seq_mask;   /* (n, B) */
    int min_layer;       /* lowest edited layer (L when n = 0) */
} edit_cache_edit;

/* Decides which entries fire on each sequence of the batch. r must hold an
 * UNEDITED forward of the batch (engine_ffn_act of every gate layer,
 * engine_residual of every key layer);
 * last_pos[b] is the global position of sequence b's last prompt token.
 * fires (n_entries, B) receives 1 where an entry fires (for a group, only its
 * first entry is set, if any member's gate passes). Returns 0, or -1 with err
 * (a gate neuron outside the model, a position outside the batch). */
int edit_cache_fires(const edit_cache *c, const engine_run *r, const model_config *cfg, const int *last_pos,
                     int n_seq, size_t n_tokens, uint8_t *fires, lafn_err *err);

/* Composes the entries that fire anywhere into out->edit, with seq_mask from
 * fires (n_entries, B). D is the model width. out is the caller's, freed with
 * edit_cache_edit_free (also after a failure). Returns 0, or -1 with err. */
int edit_cache_compose(const edit_cache *c, const uint8_t *fires, int n_seq, int n_layer, int D,
                       edit_cache_edit *out, lafn_err *err);
void edit_cache_edit_free(edit_cache_edit *e);

/* Calibrates a fact's gate so that it separates the fact's prompts from
 * other prompts. For candidate k (locate's threshold[k]), with x = a · sign
 * its signed activation at a prompt's last token: own_min[k] = min of x over
 * the fact's own prompts (src + paraphrases), ref_max[k] = max over the
 * reference prompts (other facts' questions; -inf without any).
 * A candidate separates the sets when own_min > ref_max and own_min >=
 * threshold[k]; those are kept (keep[k] = 1) with thr_out[k] =
 * max(threshold[k], (own_min + ref_max) / 2), midway between the sets. If
 * none separates, every candidate is kept with the own-prompt floor
 * thr_out[k] = own_min - EDIT_GATE_SLACK · |own_min| (locate's threshold is
 * not applied: a neuron whose sign differs between languages would fail
 * it on some own prompts), so that every own prompt passes every neuron (the slack absorbs rounding
 * differences between batches and leaves room for close paraphrases) and an
 * input must look like them on (gate ×) all of them.
 * Returns the number of separating candidates (0: the floor was used). */
#define EDIT_GATE_SLACK 0.05f
int edit_gate_calibrate(int n, const float *own_min, const float *ref_max, const float *threshold, uint8_t *keep,
                        float *thr_out);

/* Decides which entries fire on each sequence of the batch from an unedited
 * forward of it (run into r with opts, NULL = defaults, less the edit and
 * from_layer; last_pos[b] is sequence b's last prompt token) and composes them
 * into out, whose edit has seq_mask (n, B) over the batch's sequences — what
 * engine_forward and decode_opts.edit take. fires (n_entries, B) may be NULL.
 * out is freed with edit_cache_edit_free (also after a failure). Returns 0,
 * or -1 with err. */
int edit_cache_decide(engine_run *r, const model *m, const engine_batch *b, const int *last_pos, const edit_cache *c,
                      const engine_forward_opts *opts, uint8_t *fires, edit_cache_edit *out, lafn_err *err);

/* Runs the batch with the cache applied: an unedited forward (its FFN
 * activations decide the gates), then, if anything fires, an edited forward
 * from the lowest edited layer with opts' logit positions. fires (n_entries,
 * B) may be NULL. On return the run holds the edited forward (or the unedited
 * one when nothing fired); its logits and activations can be read, but the
 * composed edit is freed, so engine_backward must not follow. Returns 0, or
 * -1 with err. */
int edit_cache_forward(engine_run *r, const model *m, const engine_batch *b, const int *last_pos,
                       const edit_cache *c, const engine_forward_opts *opts, uint8_t *fires, lafn_err *err);

#endif
