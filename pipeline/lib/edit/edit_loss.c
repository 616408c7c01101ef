/* edit_loss: NLL and KL rows of an edit's forward, fused into the LM head or from the stored logits. */
#include "edit/edit_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_optimise.h"

void edit_loss_free(edit_loss *L) {
    free(L->logp0);
    free(L->dlogits);
    free(L->x_target);
    free(L->x_weight);
    free(L->p0);
    free(L->p0w);
    free(L->h0);
    free(L->s0);
    free(L->lse);
    free(L->zq);
    memset(L, 0, sizeof *L);
}

int edit_loss_init(edit_loss *L, const model *m, int fused, size_t P_t, size_t P_n, const int32_t *target,
                   const float *weight, const double *kl_w, lafn_err *err) {
    size_t V = (size_t)m->cfg.vocab, D = (size_t)m->cfg.d_model, P = P_t + P_n;
    *L = (edit_loss){.fused = fused, .P_t = P_t, .P_n = P_n, .V = V, .D = D, .target = target, .weight = weight,
                     .kl_w = kl_w};
    int ok;
    if (fused) {
        L->x_target = malloc((P + 1) * sizeof *L->x_target);
        L->x_weight = malloc((P + 1) * sizeof *L->x_weight);
        L->p0 = malloc((P_n * V + 1) * sizeof *L->p0);
        L->p0w = malloc((P_n * D + 1) * sizeof *L->p0w);
        L->h0 = malloc((P_n + 1) * sizeof *L->h0);
        L->s0 = malloc((P_n + 1) * sizeof *L->s0);
        L->lse = malloc((P + 1) * sizeof *L->lse);
        L->zq = malloc((P + 1) * sizeof *L->zq);
        ok = L->x_target && L->x_weight && L->p0 && L->p0w && L->h0 && L->s0 && L->lse && L->zq;
    } else {
        L->logp0 = malloc((P_n * V + 1) * sizeof *L->logp0);
        L->dlogits = malloc((P * V + 1) * sizeof *L->dlogits);
        ok = L->logp0 && L->dlogits;
    }
    if (!ok) {
        edit_loss_free(L);
        return lafn_err_set(err, "edit: out of memory for %zu scored positions x %zu vocabulary", P, V);
    }
    if (fused) {
        for (size_t q = 0; q < P; q++) {
            L->x_target[q] = q < P_t ? target[q] : -1;
            L->x_weight[q] = q < P_t ? weight[q] : (float)kl_w[q - P_t];
        }
        L->x = (engine_xent){.target = L->x_target, .q = L->p0, .qw = L->p0w, .weight = L->x_weight,
                             .lse = L->lse, .zq = L->zq};
    }
    return 0;
}

void edit_loss_reference(edit_loss *L, const model *m, const float *logits) {
    size_t V = L->V;
    float *logp0 = L->fused ? L->p0 : L->logp0;
    for (size_t q = 0; q < L->P_n; q++) edit_log_softmax(logits + q * V, (int)V, logp0 + q * V);
    if (!L->fused) return;
    for (size_t q = 0; q < L->P_n; q++) { /* p0 = exp(log p0) in place; the constants of the KL */
        float *row = L->p0 + q * V;
        double h = 0.0, s = 0.0;
        for (size_t v = 0; v < V; v++) {
            float lp = row[v];
            row[v] = (float)exp((double)lp);
            h += (double)row[v] * lp;
            s += row[v];
        }
        L->h0[q] = h;
        L->s0[q] = s;
    }
    engine_head_qw(m, L->p0, L->P_n, L->p0w);
}

void edit_loss_forward_opts(edit_loss *L, engine_forward_opts *o) { o->xent = L->fused ? &L->x : NULL; }

double edit_loss_rows(edit_loss *L, const engine_run *run, float *logp, double *kl) {
    size_t V = L->V;
    if (!L->fused) {
        const float *logits = engine_logits(run);
        double nll = engine_nll(logits, (int)L->P_t, (int)V, L->target, L->weight, logp, L->dlogits);
        for (size_t q = 0; q < L->P_n; q++) {
            size_t row = L->P_t + q;
            kl[q] = edit_kl_row(L->logp0 + q * V, logits + row * V, (int)V, L->kl_w[q], L->dlogits + row * V);
        }
        return nll;
    }
    double nll = 0.0;
    for (size_t q = 0; q < L->P_t; q++) {
        double lp = L->zq[q] - L->lse[q];
        logp[q] = (float)lp;
        nll -= (double)L->weight[q] * lp;
    }
    /* KL(p0 ‖ p) = Σ p0 (log p0 − z + lse) */
    for (size_t q = 0; q < L->P_n; q++) kl[q] = L->h0[q] - L->zq[L->P_t + q] + L->lse[L->P_t + q] * L->s0[q];
    return nll;
}

const float *edit_loss_dlogits(const edit_loss *L) { return L->fused ? NULL : L->dlogits; }
