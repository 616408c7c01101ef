/* engine: batched fp32 forward and backward of a loaded model, exposing FFN neurons and edit gradients. */
#ifndef LAFN_ENGINE_H
#define LAFN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"
#include "model/model.h"

/* A batch of B token sequences packed end to end (no padding): N = Σ seq_len.
 * Token n of the batch is "global position" n. Attention is causal within a
 * sequence and never crosses sequences. */
typedef struct {
    int n_seq;              /* B */
    const int *seq_len;     /* (B) */
    const int32_t *tokens;  /* (N) */
} engine_batch;

typedef enum {
    ENGINE_EDIT_VALUE_VECTOR,      /* y_i += a_i[j] * delta_e : delta (n, D) added to column j of W_down */
    ENGINE_EDIT_ACTIVATION_OFFSET, /* a_i[j] += delta_e       : delta (n) */
} engine_edit_kind;

/* Edit parameters applied during a forward pass: n neurons (layer[e], neuron[e]).
 * seq_mask, if not NULL, is (n, B): entry e applies to sequence b iff
 * seq_mask[e*B + b] (the gated cache); NULL applies every entry everywhere.
 * Several entries may name the same neuron; their effects add. */
typedef struct {
    engine_edit_kind kind;
    int n;
    const int *layer;        /* (n) */
    const int *neuron;       /* (n) */
    const float *delta;      /* (n, D) or (n) */
    const uint8_t *seq_mask; /* (n, B) or NULL */
} engine_edit;

typedef struct {
    const engine_edit *edit;  /* NULL = unedited model */
    const int *logit_pos;     /* (P) global positions whose next-token logits are wanted */
    int n_logit_pos;          /* P */
    int from_layer;           /* 0: from the embeddings. l > 0: reuse the residual
                                 stream entering layer l stored by the previous forward
                                 of the same batch (hidden states below the lowest
                                 edited layer are computed once) */
    int scale_layer;          /* -1: none. Else multiply that layer's FFN activation
                                 (every neuron, every position) by scale_alpha before
                                 W_down (integrated gradients) */
    float scale_alpha;
} engine_forward_opts;

typedef struct engine_run engine_run;

/* Allocates buffers for batches of up to max_tokens tokens (N) and
 * max_logit_pos scored positions (P). The model must outlive the run.
 * Returns 0, or -1 with err (sizes and the allocation that failed). */
int engine_run_init(engine_run **out, const model *m, size_t max_tokens, size_t max_logit_pos,
                    lafn_err *err);
void engine_run_free(engine_run *r);

/* Default options: no edit, no logits, from_layer 0, scale_layer -1. */
engine_forward_opts engine_forward_defaults(void);

/* Runs the forward pass over the batch, keeping every activation backward
 * needs. Returns 0, or -1 with err (batch larger than the run, token id out of
 * range, from_layer without a previous forward of the same batch, ...). */
int engine_forward(engine_run *r, const engine_batch *b, const engine_forward_opts *opts, lafn_err *err);

/* Results of the last forward; pointers valid until the next forward. */
const float *engine_logits(const engine_run *r);             /* (P, V) raw logits */
const float *engine_ffn_act(const engine_run *r, int layer); /* (N, F) input of W_down, edits applied */
const float *engine_residual(const engine_run *r, int layer);/* (N, D) stream entering layer; layer = L: after the last layer, before the final norm */

/* Backpropagates dlogits (P, V) — the gradient of a scalar loss with respect
 * to the logits of the last forward — down to layer lowest_layer.
 * Afterwards engine_ffn_act_grad(r, i) holds dLoss/d(ffn act of layer i) for
 * every i >= lowest_layer, and, if d_delta is not NULL and the forward had an
 * edit, d_delta (shape of edit->delta) receives dLoss/d(delta) (overwritten,
 * not accumulated). The forward's edit (struct and arrays) must still be
 * valid. Edit entries below lowest_layer are an error when d_delta is asked
 * for; engine_ffn_act_grad of layers below lowest_layer is NULL. Returns 0,
 * or -1 with err. */
int engine_backward(engine_run *r, const float *dlogits, int lowest_layer, float *d_delta, lafn_err *err);
const float *engine_ffn_act_grad(const engine_run *r, int layer); /* (N, F) */

/* Teacher-forced log-likelihood at P positions: logp[p] = log_softmax(logits[p])[target[p]].
 * If dlogits is not NULL it receives d(-Σ_p weight[p] * logp[p]) / d logits (P, V);
 * weight NULL means 1. Returns -Σ weight*logp. */
double engine_nll(const float *logits, int n_pos, int vocab, const int32_t *target,
                  const float *weight, float *logp, float *dlogits);

#endif
