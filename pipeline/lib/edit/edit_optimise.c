/* edit_optimise: the Adam loop over the edit deltas — NLL of the new answer, KL on neutral prompts, L2, norm clamp, early stop. */
#include "edit/edit_optimise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/lafn_clock.h"
#include "edit/edit_loss.h"
#include "edit/edit_method.h"
#include "stage/stage.h"

/* This rank's sequences packed for the engine. Logit positions: every target
 * position (P_t, in sequence order) first, then the last token of every
 * neutral prompt (P_n). A target sequence goes in without its last token:
 * no scored position reads it (attention is causal). */
typedef struct {
    engine_batch b;
    int *seq_len;       /* (B) */
    int32_t *tokens;    /* (N) */
    size_t N, P_t, P_n;
    int *logit_pos;     /* (P_t + P_n) */
    int32_t *target;    /* (P_t) */
    float *weight;      /* (P_t) seq weight / n_target */
    size_t *pos_seq;    /* (P_t + P_n) sequence of each position */
    int *last_pos;      /* (B) last prompt token of each sequence */
} opt_batch;

/* Working state of one optimisation. */
typedef struct {
    engine_run *run;
    opt_batch ob;
    size_t width, nd;     /* floats per entry, n · width */
    int n_all;            /* trainable + fixed entries */
    int *layer, *neuron;  /* (n_all) */
    float *delta;         /* (n_all, width): trainable first, then the fixed edits */
    uint8_t *mask;        /* (n_all, B) or NULL when nothing is fixed */
    float *d_delta;       /* (n_all, width) */
    double *grad, *adam_m, *adam_v; /* (nd) */
    float *vnorm;         /* (n) norm of each original value vector */
    float *w0;            /* (n, width) the original value vectors, for weight decay (NULL without) */
    double *kl_w;         /* (P_n) weight of each neutral position's KL */
    edit_loss loss;       /* the scored positions' losses */
    float *logp;          /* (P_t) log-probability of each target token */
    double *kl;           /* (P_n) KL at each neutral position */
    double *red;          /* (n_facts · n_langs + 2) reduced slot NLLs, NLL term, KL term */
    double loss_s, adam_s;/* seconds in the loss and in Adam (the engine times the rest) */
    int lowest;           /* lowest edited layer */
    engine_edit_kind kind;
    engine_edit edit;
} opt_state;

static void batch_free(opt_batch *ob) {
    free(ob->seq_len);
    free(ob->tokens);
    free(ob->logit_pos);
    free(ob->target);
    free(ob->weight);
    free(ob->pos_seq);
    free(ob->last_pos);
    memset(ob, 0, sizeof *ob);
}

static size_t packed_len(const edit_seq *q) { return q->n_prompt + q->n_target - (q->n_target ? 1 : 0); }

/* Packs the problem's sequences; with prompt_last every target token is scored at the last prompt token. */
static int batch_build(opt_batch *ob, const edit_problem *p, int prompt_last, lafn_err *err) {
    size_t B = p->n_seqs, N = 0, P_t = 0, P_n = 0;
    for (size_t s = 0; s < B; s++) {
        N += packed_len(&p->seqs[s]);
        if (p->seqs[s].n_target) P_t += p->seqs[s].n_target; else P_n++;
    }
    if (N > (size_t)INT32_MAX) return lafn_err_set(err, "edit: %zu tokens in one unit exceed the engine's int positions", N);
    ob->seq_len = malloc((B + 1) * sizeof *ob->seq_len);
    ob->tokens = malloc((N + 1) * sizeof *ob->tokens);
    ob->logit_pos = malloc((P_t + P_n + 1) * sizeof *ob->logit_pos);
    ob->target = malloc((P_t + 1) * sizeof *ob->target);
    ob->weight = malloc((P_t + 1) * sizeof *ob->weight);
    ob->pos_seq = malloc((P_t + P_n + 1) * sizeof *ob->pos_seq);
    ob->last_pos = malloc((B + 1) * sizeof *ob->last_pos);
    if (!ob->seq_len || !ob->tokens || !ob->logit_pos || !ob->target || !ob->weight || !ob->pos_seq || !ob->last_pos)
        return lafn_err_set(err, "edit: out of memory for a batch of %zu sequences, %zu tokens", B, N);
    size_t start = 0, pt = 0, pn = P_t;
    for (size_t s = 0; s < B; s++) {
        const edit_seq *q = &p->seqs[s];
        size_t len = packed_len(q);
        ob->seq_len[s] = (int)len;
        memcpy(ob->tokens + start, q->ids, len * sizeof *q->ids);
        ob->last_pos[s] = (int)(start + q->n_prompt - 1);
        for (size_t k = 0; k < q->n_target; k++, pt++) {
            ob->logit_pos[pt] = (int)(start + q->n_prompt + (prompt_last ? 0 : k) - 1);
            ob->target[pt] = q->ids[q->n_prompt + k];
            ob->weight[pt] = (float)(q->weight / (double)q->n_target);
            ob->pos_seq[pt] = s;
        }
        if (!q->n_target) {
            ob->logit_pos[pn] = ob->last_pos[s];
            ob->pos_seq[pn++] = s;
        }
        start += len;
    }
    ob->N = N;
    ob->P_t = P_t;
    ob->P_n = P_n;
    ob->b = (engine_batch){.n_seq = (int)B, .seq_len = ob->seq_len, .tokens = ob->tokens};
    return 0;
}

static void state_free(opt_state *st) {
    engine_run_free(st->run);
    batch_free(&st->ob);
    free(st->layer);
    free(st->neuron);
    free(st->delta);
    free(st->mask);
    free(st->d_delta);
    free(st->grad);
    free(st->adam_m);
    free(st->adam_v);
    free(st->vnorm);
    free(st->w0);
    free(st->kl_w);
    edit_loss_free(&st->loss);
    free(st->logp);
    free(st->kl);
    free(st->red);
    memset(st, 0, sizeof *st);
}

/* Norms of the original value vectors (columns of W_down), for the clamp; with w0 not NULL also the vectors
 * themselves (n, D). */
static void value_norms(const model *m, int n, const int *layer, const int *neuron, float *out, float *w0) {
    size_t D = (size_t)m->cfg.d_model, F = (size_t)m->cfg.d_ffn;
    for (int e = 0; e < n; e++) {
        const float *w = m->w.layers[layer[e]].w_down;
        double s = 0.0;
        for (size_t i = 0; i < D; i++) {
            float x = w[i * F + (size_t)neuron[e]];
            s += (double)x * x;
            if (w0) w0[(size_t)e * D + i] = x;
        }
        out[e] = (float)sqrt(s);
    }
}

static int state_alloc(opt_state *st, const model *m, const edit_problem *p, int n, const edit_cache_edit *fx,
                       const edit_hparams *h, lafn_err *err) {
    size_t B = p->n_seqs, n_all = (size_t)n + (size_t)fx->edit.n;
    size_t P = st->ob.P_t + st->ob.P_n, slots = (size_t)p->n_facts * (size_t)p->n_langs;
    st->n_all = (int)n_all;
    st->layer = malloc((n_all + 1) * sizeof *st->layer);
    st->neuron = malloc((n_all + 1) * sizeof *st->neuron);
    st->delta = calloc(n_all * st->width + 1, sizeof *st->delta);
    st->d_delta = calloc(n_all * st->width + 1, sizeof *st->d_delta);
    st->grad = calloc(st->nd + 1, sizeof *st->grad);
    st->adam_m = calloc(st->nd + 1, sizeof *st->adam_m);
    st->adam_v = calloc(st->nd + 1, sizeof *st->adam_v);
    st->vnorm = malloc(((size_t)n + 1) * sizeof *st->vnorm);
    st->logp = malloc((st->ob.P_t + 1) * sizeof *st->logp);
    st->kl = malloc((st->ob.P_n + 1) * sizeof *st->kl);
    st->red = calloc(slots + 2, sizeof *st->red);
    if (fx->edit.n && !(st->mask = malloc(n_all * B + 1))) goto oom;
    if (h->weight_decay > 0.0 && st->kind == ENGINE_EDIT_VALUE_VECTOR && !(st->w0 = malloc(st->nd * sizeof *st->w0)))
        goto oom;
    if (!st->layer || !st->neuron || !st->delta || !st->d_delta || !st->grad || !st->adam_m || !st->adam_v ||
        !st->vnorm || !st->logp || !st->kl || !st->red)
        goto oom;
    return 0;
oom:
    return lafn_err_set(err, "edit: out of memory for %zu edit entries and %zu scored positions", n_all, P);
}

/* Runs the unedited forward: neutral reference distributions, the gates of
 * the fixed edits, and the combined entry arrays (trainable first). */
static int state_setup(opt_state *st, const model *m, const edit_problem *p, int n, const int *layer,
                       const int *neuron, const edit_cache *fixed, const edit_hparams *h, edit_cache_edit *fx,
                       lafn_err *err) {
    size_t B = p->n_seqs, P_t = st->ob.P_t, P_n = st->ob.P_n;
    uint8_t *fires = NULL;
    if (!(st->kl_w = malloc((P_n + 1) * sizeof *st->kl_w)))
        return lafn_err_set(err, "edit: out of memory for %zu neutral prompts", P_n);
    for (size_t q = 0; q < P_n; q++) st->kl_w[q] = h->kl_weight * p->seqs[st->ob.pos_seq[P_t + q]].weight;
    if (B) {
        if (engine_run_init(&st->run, m, st->ob.N, P_t + P_n, err) ||
            edit_loss_init(&st->loss, m, h->fused_head, P_t, P_n, st->ob.target, st->ob.weight, st->kl_w, err))
            return -1;
        engine_forward_opts o = engine_forward_defaults();
        o.logit_pos = st->ob.logit_pos + P_t; /* the neutral positions */
        o.n_logit_pos = (int)P_n;
        if (engine_forward(st->run, &st->ob.b, &o, err)) return -1;
        double t = lafn_now_seconds();
        edit_loss_reference(&st->loss, m, engine_logits(st->run));
        st->loss_s += lafn_now_seconds() - t;
    }
    if (fixed && fixed->n_entries && B) {
        if (!(fires = malloc(fixed->n_entries * B)))
            return lafn_err_set(err, "edit: out of memory for the gates of %zu earlier edits", fixed->n_entries);
        int rc = edit_cache_fires(fixed, st->run, &m->cfg, st->ob.last_pos, (int)B, st->ob.N, fires, err);
        if (rc == 0) rc = edit_cache_compose(fixed, fires, (int)B, m->cfg.n_layer, m->cfg.d_model, fx, err);
        free(fires);
        if (rc) return -1;
    }
    if (state_alloc(st, m, p, n, fx, h, err)) return -1;
    st->lowest = m->cfg.n_layer;
    for (int e = 0; e < st->n_all; e++) {
        st->layer[e] = e < n ? layer[e] : fx->layer[e - n];
        st->neuron[e] = e < n ? neuron[e] : fx->neuron[e - n];
        if (st->layer[e] < st->lowest) st->lowest = st->layer[e];
    }
    if (fx->edit.n) {
        memset(st->mask, 1, (size_t)n * B);
        memcpy(st->mask + (size_t)n * B, fx->seq_mask, (size_t)fx->edit.n * B);
        memcpy(st->delta + st->nd, fx->delta, (size_t)fx->edit.n * st->width * sizeof(float));
    }
    value_norms(m, n, layer, neuron, st->vnorm, st->w0);
    st->edit = (engine_edit){.kind = st->kind, .n = st->n_all,
                             .layer = st->layer, .neuron = st->neuron, .delta = st->delta, .seq_mask = st->mask};
    return 0;
}

/* Forward with the current delta, the loss's gradient ready for backward;
 * this rank's slot NLLs, NLL term and KL term into st->red (not yet reduced). */
static int loss_local(opt_state *st, const edit_problem *p, const edit_hparams *h, lafn_err *err) {
    size_t slots = (size_t)p->n_facts * (size_t)p->n_langs;
    memset(st->red, 0, (slots + 2) * sizeof *st->red);
    if (!p->n_seqs) return 0;
    engine_forward_opts o = engine_forward_defaults();
    o.edit = &st->edit;
    o.logit_pos = st->ob.logit_pos;
    o.n_logit_pos = (int)(st->ob.P_t + st->ob.P_n);
    o.from_layer = h->reuse_lower ? st->lowest : 0; /* state_setup ran the unedited forward of this batch */
    edit_loss_forward_opts(&st->loss, &o);
    if (engine_forward(st->run, &st->ob.b, &o, err)) return -1;
    double t = lafn_now_seconds();
    st->red[slots] = edit_loss_rows(&st->loss, st->run, st->logp, st->kl);
    for (size_t q = 0; q < st->ob.P_t; q++) {
        const edit_seq *s = &p->seqs[st->ob.pos_seq[q]];
        /* slot NLL: mean over the slot's prompts of the per-token mean NLL */
        st->red[(size_t)s->fact * (size_t)p->n_langs + (size_t)s->lang] -=
            (double)st->logp[q] * s->slot_weight / (double)s->n_target;
    }
    for (size_t q = 0; q < st->ob.P_n; q++) st->red[slots + 1] += st->kl_w[q] * st->kl[q];
    st->loss_s += lafn_now_seconds() - t;
    return 0;
}

/* Sums the local losses over comm and fills the totals; returns the loss. */
static double loss_reduce(opt_state *st, const edit_problem *p, const edit_hparams *h, MPI_Comm comm,
                          double *kl, double *l2) {
    size_t slots = (size_t)p->n_facts * (size_t)p->n_langs;
    MPI_Allreduce(MPI_IN_PLACE, st->red, (int)(slots + 2), MPI_DOUBLE, MPI_SUM, comm);
    double sq = 0.0;
    for (size_t i = 0; i < st->nd; i++) sq += (double)st->delta[i] * st->delta[i];
    *kl = st->red[slots + 1];
    *l2 = h->l2 * sq;
    return st->red[slots] + *kl + *l2;
}

/* 1 when every present slot's NLL is below stop_nll. */
static int all_below(const opt_state *st, const edit_problem *p, double stop_nll) {
    size_t slots = (size_t)p->n_facts * (size_t)p->n_langs;
    for (size_t i = 0; i < slots; i++)
        if (p->present[i] && !(st->red[i] < stop_nll)) return 0;
    return 1;
}

static void copy_slots(double *out, const opt_state *st, const edit_problem *p) {
    size_t slots = (size_t)p->n_facts * (size_t)p->n_langs;
    for (size_t i = 0; i < slots; i++) out[i] = p->present[i] ? st->red[i] : NAN;
}

/* Backward, gradient reduction over comm, L2, one Adam update (t from 1) and the clamp. */
static int adam_step(opt_state *st, const edit_problem *p, const edit_hparams *h, int t, MPI_Comm comm,
                     lafn_err *err) {
    int rc = 0;
    memset(st->grad, 0, st->nd * sizeof *st->grad);
    if (p->n_seqs) {
        rc = engine_backward(st->run, edit_loss_dlogits(&st->loss), st->lowest, st->d_delta, err);
        for (size_t i = 0; rc == 0 && i < st->nd; i++) st->grad[i] = (double)st->d_delta[i];
    }
    if (mpi_status_agree(comm, rc, err)) return -1;
    double t0 = lafn_now_seconds();
    MPI_Allreduce(MPI_IN_PLACE, st->grad, (int)st->nd, MPI_DOUBLE, MPI_SUM, comm);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
    for (size_t i = 0; i < st->nd; i++) {
        double g = st->grad[i] + 2.0 * h->l2 * (double)st->delta[i];
        if (h->weight_decay > 0.0) g += h->weight_decay * ((st->w0 ? (double)st->w0[i] : 0.0) + (double)st->delta[i]);
        st->adam_m[i] = b1 * st->adam_m[i] + (1.0 - b1) * g;
        st->adam_v[i] = b2 * st->adam_v[i] + (1.0 - b2) * g * g;
        st->delta[i] -= (float)(h->lr * (st->adam_m[i] / c1) / (sqrt(st->adam_v[i] / c2) + eps));
    }
    if (h->linf > 0.0)
        for (size_t i = 0; i < st->nd; i++)
            st->delta[i] = st->delta[i] > h->linf ? (float)h->linf : st->delta[i] < -h->linf ? (float)-h->linf : st->delta[i];
    if (h->norm_clamp > 0.0)
        for (size_t e = 0; e < st->nd / st->width; e++) {
            float *d = st->delta + e * st->width;
            double s = 0.0, cap = h->norm_clamp * (st->width > 1 ? (double)st->vnorm[e] : 1.0);
            for (size_t i = 0; i < st->width; i++) s += (double)d[i] * d[i];
            if (sqrt(s) > cap)
                for (size_t i = 0; i < st->width; i++) d[i] = (float)(d[i] * cap / sqrt(s));
        }
    st->adam_s += lafn_now_seconds() - t0;
    return 0;
}

/* The engine's and the loop's time accounts into res->seconds. */
static void phase_seconds(const opt_state *st, int n_layer, edit_result *res) {
    res->seconds[EDIT_PHASE_LOSS] = st->loss_s;
    res->seconds[EDIT_PHASE_ADAM] = st->adam_s;
    if (!st->run) return;
    engine_times t = engine_run_times(st->run);
    for (int l = 0; l < n_layer; l++) {
        res->seconds[l < st->lowest ? EDIT_PHASE_LOWER : EDIT_PHASE_LAYERS_FWD] += t.layer_fwd[l];
        res->seconds[EDIT_PHASE_LAYERS_BWD] += t.layer_bwd[l];
    }
    res->seconds[EDIT_PHASE_HEAD_FWD] = t.head_fwd;
    res->seconds[EDIT_PHASE_HEAD_BWD] = t.head_bwd;
}

void edit_result_free(edit_result *r) {
    free(r->nll_before);
    free(r->nll_after);
    free(r->curve_nll);
    free(r->curve_loss);
    memset(r, 0, sizeof *r);
}

int edit_optimise(const model *m, const edit_problem *p, int n, const int *layer, const int *neuron, float *delta,
                  const edit_cache *fixed, const edit_hparams *h, MPI_Comm comm, edit_result *res, lafn_err *err) {
    opt_state st = {.kind = h->kind};
    edit_cache_edit fx = {0};
    size_t slots = (size_t)p->n_facts * (size_t)p->n_langs;
    memset(res, 0, sizeof *res);
    st.width = h->kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)m->cfg.d_model : 1;
    st.nd = (size_t)n * st.width;
    int rc = n > 0 ? 0 : lafn_err_set(err, "edit: no neurons to optimise");
    if (rc == 0 && fixed && fixed->kind != h->kind)
        rc = lafn_err_set(err, "edit: earlier edits are of another kind than edit.param");
    if (rc == 0) rc = batch_build(&st.ob, p, h->prompt_last, err);
    if (rc == 0) rc = state_setup(&st, m, p, n, layer, neuron, fixed, h, &fx, err);
    res->nll_before = malloc(slots * sizeof *res->nll_before);
    res->nll_after = malloc(slots * sizeof *res->nll_after);
    size_t n_evals = (size_t)h->steps + 1;
    res->curve_nll = malloc((n_evals * slots + 1) * sizeof *res->curve_nll);
    res->curve_loss = malloc(n_evals * sizeof *res->curve_loss);
    if (rc == 0 && (!res->nll_before || !res->nll_after || !res->curve_nll || !res->curve_loss))
        rc = lafn_err_set(err, "edit: out of memory for results");
    for (size_t i = 0; rc == 0 && i < n_evals * slots; i++) res->curve_nll[i] = NAN;
    for (size_t i = 0; rc == 0 && i < n_evals; i++) res->curve_loss[i] = NAN;
    if (mpi_status_agree(comm, rc, err)) goto fail;
    memcpy(st.delta, delta, st.nd * sizeof *delta);
    for (int t = 0;; t++) {
        double kl, l2;
        if (mpi_status_agree(comm, loss_local(&st, p, h, err), err)) goto fail;
        double loss = loss_reduce(&st, p, h, comm, &kl, &l2);
        copy_slots(res->curve_nll + (size_t)t * slots, &st, p);
        res->curve_loss[t] = loss;
        if (t == 0) {
            res->loss_first = loss;
            copy_slots(res->nll_before, &st, p);
        }
        res->steps = t;
        int below = all_below(&st, p, h->stop_nll);
        /* The delta handed back: the last one, or with keep_best the lowest-loss
         * one seen (an early-stopping one always). */
        if (!h->keep_best || t == 0 || loss < res->loss_last || isnan(res->loss_last) || below) {
            res->loss_last = loss;
            res->kl_last = kl;
            res->l2_last = l2;
            copy_slots(res->nll_after, &st, p);
            memcpy(delta, st.delta, st.nd * sizeof *delta);
        }
        if (below) { res->early_stopped = 1; break; }
        if (t == h->steps) break;
        if (adam_step(&st, p, h, t + 1, comm, err)) goto fail;
    }
    phase_seconds(&st, m->cfg.n_layer, res);
    state_free(&st);
    edit_cache_edit_free(&fx);
    return 0;
fail:
    state_free(&st);
    edit_cache_edit_free(&fx);
    edit_result_free(res);
    return -1;
}

int edit_hparams_from_config(const lafn_config *cfg, edit_hparams *h, lafn_err *err) {
    const char *param;
    int64_t steps;
    if (config_get_string(cfg, "edit.param", &param, err) || config_get_float(cfg, "edit.lr", &h->lr, err) ||
        config_get_bool(cfg, "edit.kl_other_facts", &h->kl_other_facts, err) ||
        config_get_bool(cfg, "edit.keep_best", &h->keep_best, err) ||
        config_get_int(cfg, "edit.steps", &steps, err) || config_get_float(cfg, "edit.stop_nll", &h->stop_nll, err) ||
        config_get_float(cfg, "edit.kl_weight", &h->kl_weight, err) || config_get_float(cfg, "edit.l2", &h->l2, err) ||
        config_get_float(cfg, "edit.norm_clamp", &h->norm_clamp, err))
        return -1;
    h->kind = strcmp(param, "activation_offset") ? ENGINE_EDIT_VALUE_VECTOR : ENGINE_EDIT_ACTIVATION_OFFSET;
    h->steps = (int)steps;
    h->reuse_lower = 1;
    h->fused_head = 1;
    return edit_method_hparams(cfg, h, err);
}

int edit_optimise_fact(const model *m, const facts_edit_view *views, size_t n_views, size_t self, const char *only,
                       int n, const int *layer, const int *neuron, const edit_hparams *h, float *delta,
                       edit_result *res, lafn_err *err) {
    const facts_edit_view *v = &views[self];
    int slot[FACTS_MAX_LANGS], used = 0;
    if (v->n_langs > FACTS_MAX_LANGS) return lafn_err_set(err, "edit: fact %s has %zu languages", v->id, v->n_langs);
    for (size_t l = 0; l < v->n_langs; l++) {
        slot[l] = !only || !strcmp(v->langs[l].lang, only) ? (int)l : -1;
        used += slot[l] >= 0;
    }
    if (!used) return lafn_err_set(err, "edit: fact %s has no side in language '%s'", v->id, only);
    memset(delta, 0, (size_t)n * (h->kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)m->cfg.d_model : 1) * sizeof *delta);
    edit_problem p;
    int rc = edit_problem_init(&p, 1, (int)v->n_langs, h->kl_other_facts, err);
    if (rc == 0) rc = edit_problem_add_fact(&p, m->tok, v, 0, slot, views, n_views, self, NULL, NULL, err);
    if (rc == 0) rc = edit_optimise(m, &p, n, layer, neuron, delta, NULL, h, MPI_COMM_SELF, res, err);
    edit_problem_free(&p);
    return rc;
}
