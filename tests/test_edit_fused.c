/* test_edit_fused: the fused LM head (engine_xent, edit_hparams.fused_head) against the reference path on the tiny Gemma 3 — row losses and edit gradients of one forward, and whole optimisations of both edit kinds. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_loss.h"
#include "edit_testlib.h"
#include "testutil.h"

/* Largest |a − b| relative to the largest |b|. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0.0 ? d / s : d;
}

/* One edited forward of the problem's sequences: the rows' log-probabilities,
 * KLs and the value-vector gradient, fused and from the logits. */
static void test_one_forward(etl_fixture *fx) {
    const model *m = fx->m;
    size_t D = (size_t)m->cfg.d_model, N = 0, P_t = 0, P_n = 0, start = 0;
    int32_t tokens[2048], target[256];
    int seq_len[32], pos[256];
    float weight[256];
    double kl_w[32];
    for (size_t s = 0; s < fx->p.n_seqs; s++) P_t += fx->p.seqs[s].n_target;
    for (size_t s = 0; s < fx->p.n_seqs; s++) { /* target rows first, then the neutral ones, as edit_optimise */
        const edit_seq *q = &fx->p.seqs[s];
        size_t len = q->n_prompt + q->n_target;
        memcpy(tokens + N, q->ids, len * sizeof *tokens);
        seq_len[s] = (int)len;
        for (size_t k = 0; k < q->n_target; k++) {
            pos[start] = (int)(N + q->n_prompt + k - 1);
            target[start] = q->ids[q->n_prompt + k];
            weight[start++] = (float)(q->weight / (double)q->n_target);
        }
        if (!q->n_target) pos[P_t + P_n] = (int)(N + q->n_prompt - 1), kl_w[P_n++] = 0.1 * q->weight;
        N += len;
    }
    float *delta = malloc((size_t)fx->nr.n * D * sizeof *delta), *g[2];
    for (size_t i = 0; i < (size_t)fx->nr.n * D; i++) delta[i] = 0.05f * (float)sin(0.37 * (double)i);
    engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = fx->nr.n, .layer = fx->nr.layer,
                      .neuron = fx->nr.neuron, .delta = delta};
    engine_batch b = {.n_seq = (int)fx->p.n_seqs, .seq_len = seq_len, .tokens = tokens};
    float logp[2][256];
    double kl[2][32], nll[2];
    lafn_err err = {{0}};
    for (int fused = 0; fused < 2; fused++) {
        engine_run *r = NULL;
        edit_loss L = {0};
        g[fused] = malloc((size_t)fx->nr.n * D * sizeof *g[fused]);
        engine_forward_opts o = engine_forward_defaults();
        o.logit_pos = pos + P_t;
        o.n_logit_pos = (int)P_n;
        int rc = engine_run_init(&r, m, N, P_t + P_n, &err) || engine_forward(r, &b, &o, &err) ||
                 edit_loss_init(&L, m, fused, P_t, P_n, target, weight, kl_w, &err);
        if (rc == 0) {
            edit_loss_reference(&L, m, engine_logits(r));
            o.edit = &ed;
            o.logit_pos = pos;
            o.n_logit_pos = (int)(P_t + P_n);
            edit_loss_forward_opts(&L, &o);
            rc = engine_forward(r, &b, &o, &err);
        }
        if (rc == 0) nll[fused] = edit_loss_rows(&L, r, logp[fused], kl[fused]);
        if (rc == 0) rc = engine_backward(r, edit_loss_dlogits(&L), 0, g[fused], &err);
        CHECK(rc == 0, "%s forward: %s", fused ? "fused" : "reference", err.msg);
        edit_loss_free(&L);
        engine_run_free(r);
    }
    double dl = 0.0, dk = 0.0;
    for (size_t q = 0; q < P_t; q++) dl = fmax(dl, fabs((double)logp[0][q] - logp[1][q]));
    for (size_t q = 0; q < P_n; q++) dk = fmax(dk, fabs(kl[0][q] - kl[1][q]));
    double dg = rel_diff(g[1], g[0], (size_t)fx->nr.n * D);
    printf("one forward (%zu target rows, %zu neutral rows): NLL term %.9f vs %.9f, max |log p diff| %.2e, "
           "max |KL diff| %.2e (KL up to %.3g), gradient max diff / max %.2e\n", P_t, P_n, nll[1], nll[0], dl, dk,
           kl[0][0], dg);
    CHECK(fabs(nll[1] - nll[0]) < 1e-5 * fabs(nll[0]), "NLL term %.9f (fused) vs %.9f", nll[1], nll[0]);
    CHECK(dl < 1e-5, "log-probabilities differ by %g", dl);
    CHECK(dk < 1e-5, "KLs differ by %g", dk);
    CHECK(dg < 1e-5, "value-vector gradients differ by %g of their largest", dg);
    free(g[0]);
    free(g[1]);
    free(delta);
}

/* Whole optimisations: same steps, losses, NLLs and deltas, both edit kinds. */
static void test_optimise(etl_fixture *fx, engine_edit_kind kind, const char *name) {
    size_t nd = (size_t)fx->nr.n * (kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)fx->m->cfg.d_model : 1);
    float *delta[2] = {calloc(nd, sizeof(float)), calloc(nd, sizeof(float))};
    edit_result res[2];
    lafn_err err = {{0}};
    int rc = 0;
    for (int fused = 0; fused < 2; fused++) {
        edit_hparams h = {.kind = kind, .lr = kind == ENGINE_EDIT_VALUE_VECTOR ? 0.1 : 1.0, .steps = 12,
                          .stop_nll = 0.0, .kl_weight = 0.1, .reuse_lower = 1, .fused_head = fused};
        rc |= edit_optimise(fx->m, &fx->p, fx->nr.n, fx->nr.layer, fx->nr.neuron, delta[fused], NULL, &h,
                            MPI_COMM_SELF, &res[fused], &err);
        CHECK(rc == 0, "%s: %s", name, err.msg);
    }
    if (rc == 0) {
        double dn = 0.0;
        for (int l = 0; l < 2; l++) dn = fmax(dn, fabs(res[1].nll_after[l] - res[0].nll_after[l]));
        double dd = rel_diff(delta[1], delta[0], nd);
        printf("%s, 12 steps: loss %.7f -> %.7f (fused) vs %.7f -> %.7f, KL term %.3g vs %.3g, max |NLL diff| "
               "%.2e, delta max diff / max %.2e\n", name, res[1].loss_first, res[1].loss_last, res[0].loss_first,
               res[0].loss_last, res[1].kl_last, res[0].kl_last, dn, dd);
        CHECK(res[1].steps == res[0].steps, "%s: %d steps vs %d", name, res[1].steps, res[0].steps);
        CHECK(fabs(res[1].loss_first - res[0].loss_first) < 1e-6 * res[0].loss_first, "%s: first loss %.9f vs %.9f",
              name, res[1].loss_first, res[0].loss_first);
        CHECK(fabs(res[1].loss_last - res[0].loss_last) < 1e-4 * res[0].loss_last, "%s: last loss %.9f vs %.9f",
              name, res[1].loss_last, res[0].loss_last);
        CHECK(fabs(res[1].kl_last - res[0].kl_last) < 1e-4 * (res[0].kl_last + 1e-3), "%s: KL %.9g vs %.9g", name,
              res[1].kl_last, res[0].kl_last);
        CHECK(dn < 1e-4, "%s: NLL after differs by %g", name, dn);
        CHECK(dd < 1e-3, "%s: deltas differ by %g of their largest", name, dd);
        edit_result_free(&res[0]);
        edit_result_free(&res[1]);
    }
    free(delta[0]);
    free(delta[1]);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    lafn_err err = {{0}};
    etl_fixture fx;
    int rc = etl_fixture_init(&fx, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc == 0) {
        test_one_forward(&fx);
        test_optimise(&fx, ENGINE_EDIT_VALUE_VECTOR, "value_vector");
        test_optimise(&fx, ENGINE_EDIT_ACTIVATION_OFFSET, "activation_offset");
    }
    etl_fixture_free(&fx);
    int status = testutil_finish("test_edit_fused");
    MPI_Finalize();
    return status;
}
