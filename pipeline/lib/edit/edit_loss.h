/* edit_loss: the per-position losses of an edit's forward — log-likelihood of the new answer at the target positions, KL to the unedited model at the neutral ones — by the fused LM head, or from stored logits (the reference). */
#ifndef LAFN_EDIT_LOSS_H
#define LAFN_EDIT_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"
#include "engine/engine.h"
#include "model/model.h"

/* Scored rows: P_t target positions first, then P_n neutral ones (the order
 * of the forward's logit positions). Dimension names as in model.h. */
typedef struct {
    int fused;              /* 1: engine_xent, one pass over the vocabulary; 0: logits, log-softmax, dlogits */
    size_t P_t, P_n, V, D;
    const int32_t *target;  /* (P_t) borrowed */
    const float *weight;    /* (P_t) borrowed: each target row's NLL weight */
    const double *kl_w;     /* (P_n) borrowed: each neutral row's KL weight */
    float *logp0;           /* (P_n, V) reference: unedited log-probabilities */
    float *dlogits;         /* (P_t + P_n, V) reference: the loss's logit gradient */
    int32_t *x_target;      /* (P) fused: target ids, −1 on neutral rows */
    float *x_weight;        /* (P) fused */
    float *p0, *p0w;        /* (P_n, V), (P_n, D) fused: unedited probabilities and p0 · W_out */
    double *h0, *s0;        /* (P_n) fused: Σ p0 log p0 and Σ p0 of each neutral row */
    double *lse, *zq;       /* (P) fused: the engine's outputs */
    engine_xent x;
} edit_loss;

/* Allocates the losses of P_t target rows (target ids, NLL weights) and P_n
 * neutral rows (KL weights); the arrays are borrowed and must outlive L.
 * Returns 0, or -1 with err (L then freed). */
int edit_loss_init(edit_loss *L, const model *m, int fused, size_t P_t, size_t P_n, const int32_t *target,
                   const float *weight, const double *kl_w, lafn_err *err);
void edit_loss_free(edit_loss *L);

/* Takes the unedited model's distributions at the neutral rows from their
 * logits (P_n, V) of an unedited forward. */
void edit_loss_reference(edit_loss *L, const model *m, const float *logits);

/* Sets what the forward must compute for edit_loss_rows (fused: o->xent). */
void edit_loss_forward_opts(edit_loss *L, engine_forward_opts *o);

/* After that forward: logp (P_t) the log-probability of each target row's
 * token, kl (P_n) each neutral row's KL(unedited ‖ edited) (unweighted); the
 * reference path also fills L->dlogits. Returns Σ −weight · logp. */
double edit_loss_rows(edit_loss *L, const engine_run *run, float *logp, double *kl);

/* What engine_backward takes after edit_loss_rows: NULL on the fused path. */
const float *edit_loss_dlogits(const edit_loss *L);

#endif
