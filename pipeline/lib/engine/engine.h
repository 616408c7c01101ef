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

/* The loss at the scored positions as cross-entropies, computed with the
 * output matrix in one pass over the vocabulary (blocks of its rows, an
 * online log-sum-exp): row p's loss is weight[p] · (lse_p − Σ_v q_p[v] z_p[v])
 * with z_p its logits and q_p its target distribution — one-hot at
 * target[p] ≥ 0, or, where target[p] < 0, the next row of q. The gradient
 * weight[p] · (softmax(z_p) − q_p) is taken to the final norm during the
 * forward, so the P × V logits are never stored (engine_logits is then
 * undefined) and engine_backward takes dlogits = NULL. */
typedef struct {
    const int32_t *target; /* (P) */
    const float *q;        /* (P_q, V) target distributions of the rows with target < 0, in row order */
    const float *qw;       /* (P_q, D) q · W_out of the same rows (engine_head_qw) */
    const float *weight;   /* (P) */
    double *lse;           /* (P) out: log-sum-exp of the row's logits */
    double *zq;            /* (P) out: Σ_v q_p[v] z_p[v] (on one-hot rows the target's logit) */
} engine_xent;

/* qw (n, D) = q (n, V) · W_out: the target side of engine_xent's gradient for dense rows. */
void engine_head_qw(const model *m, const float *q, size_t n, float *qw);

typedef struct {
    const engine_edit *edit;  /* NULL = unedited model */
    const engine_xent *xent;  /* NULL: logits at logit_pos (engine_logits); else their cross-entropies */
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
 * to the logits of the last forward; NULL after a forward with xent, whose
 * gradient is already taken — down to layer lowest_layer.
 * Afterwards engine_ffn_act_grad(r, i) holds dLoss/d(ffn act of layer i) for
 * every i >= lowest_layer, and, if d_delta is not NULL and the forward had an
 * edit, d_delta (shape of edit->delta) receives dLoss/d(delta) (overwritten,
 * not accumulated). The forward's edit (struct and arrays) must still be
 * valid. Edit entries below lowest_layer are an error when d_delta is asked
 * for; engine_ffn_act_grad of layers below lowest_layer is NULL. Returns 0,
 * or -1 with err. */
int engine_backward(engine_run *r, const float *dlogits, int lowest_layer, float *d_delta, lafn_err *err);
const float *engine_ffn_act_grad(const engine_run *r, int layer); /* (N, F) */

/* Wall seconds a run has spent since engine_run_init, per phase: the cheap,
 * always-on clock (one read per layer) behind the edit stage's profile
 * (docs/PERFORMANCE.md). The arrays belong to the run. */
typedef struct {
    const double *layer_fwd; /* (L) each layer's forwards */
    const double *layer_bwd; /* (L) each layer's backwards */
    double head_fwd;         /* final norm and output matrix at the scored positions */
    double head_bwd;         /* gradient back through the output matrix and the final norm */
} engine_times;
engine_times engine_run_times(const engine_run *r);

/* Teacher-forced log-likelihood at P positions: logp[p] = log_softmax(logits[p])[target[p]].
 * If dlogits is not NULL it receives d(-Σ_p weight[p] * logp[p]) / d logits (P, V);
 * weight NULL means 1. Returns -Σ weight*logp. */
double engine_nll(const float *logits, int n_pos, int vocab, const int32_t *target,
                  const float *weight, float *logp, float *dlogits);

#endif
