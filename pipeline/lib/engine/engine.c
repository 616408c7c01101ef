/* engine: run state and the orchestration of the forward and backward passes over all layers. */
#include "engine/engine.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/lafn_clock.h"
#include "engine/engine_ops.h"

/* Memory, in floats. Kept for backward, per token and layer:
 *   D·(4 + 2 with post norms)  resid, xn, h, hn (+ o, y)
 *   + H·E·(2 + 1 with QK-norm) q, att (+ q before the norm)
 *   + K·E·(2 + 1 with QK-norm) k, v (+ k before the norm)
 *   + 4 F                      gate, up, act, act gradient
 *   + H + small                lse, 1/rms of every norm
 * Gemma 3 270M (D 640, H·E 1024, K·E 256, F 2048, post norms, QK-norm):
 * ≈ 15.9 k floats = 64 KB per token and layer, 1.15 MB per token over 18 layers.
 * Per scored position: V + D (logits: 1 MB for V = 262144). Backward scratch
 * (not per layer): 3 D + 2 F + 2 H·E + 3 K·E per token; attention scratch
 * 128 floats per token. */
struct engine_run {
    const model *m;
    size_t max_n, max_p;
    float *block; /* every float buffer below */
    /* activations (L = layers, N = max_n) */
    float *resid;          /* (L+1, N, D) stream entering each layer; [L] = before the final norm */
    float *xn;             /* (L, N, D) attn_norm output */
    float *rstd_attn;      /* (L, N) */
    float *q_raw, *k_raw;  /* (L, N, H*E), (L, N, K*E) before QK-norm; QK-norm only */
    float *rstd_q, *rstd_k;/* (L, N, H), (L, N, K); QK-norm only */
    float *q, *k, *v;      /* (L, N, H*E), (L, N, K*E) x2: attention inputs (after norm, RoPE) */
    float *att;            /* (L, N, H*E) attention output, input of wo */
    float *lse;            /* (L, N, H) log-sum-exp of each score row */
    float *o;              /* (L, N, D) wo output; post norms only */
    float *rstd_post_attn; /* (L, N); post norms only */
    float *h;              /* (L, N, D) stream after the attention block */
    float *hn;             /* (L, N, D) ffn_norm output */
    float *rstd_ffn;       /* (L, N) */
    float *gate, *up, *act;/* (L, N, F) x3; act after scaling and edits */
    float *y;              /* (L, N, D) FFN output with edits; post norms only */
    float *rstd_post_ffn;  /* (L, N); post norms only */
    float *xf;             /* (P, D) final-norm output at scored positions */
    float *rstd_f;         /* (P) */
    float *logits;         /* (P, V) */
    /* gradients */
    float *d_act;          /* (L, N, F) dLoss/d act */
    float *dres, *dh, *dtmp; /* (N, D) x3 */
    float *dgate, *dup;    /* (N, F) x2 */
    float *dq, *datt;      /* (N, H*E) x2 */
    float *dk, *dv, *dk2;  /* (N, K*E) x3 */
    float *dxf;            /* (P, D) */
    /* RoPE tables and scratch */
    float *rope_buf;       /* rope_tables_floats(N): the tables below */
    rope_tables rope;
    float *scratch;        /* attention_scratch_floats(N): blocks of attention probabilities */
    float *head_scratch;   /* head_xent_scratch_floats(P): the fused LM head's blocks of logits */
    /* the current batch */
    int *pos;              /* (N) position inside the sequence */
    int *seq_of;           /* (N) */
    size_t *seq_start;     /* (N + 1) */
    int32_t *tokens;       /* (N) copy, to recognise the same batch for from_layer */
    int *seq_len;          /* (N) copy */
    int n_seq;
    size_t n_tok;
    int *logit_pos;        /* (P) copy */
    size_t n_pos;
    /* state of the last forward */
    int have_forward;
    int clean_upto;        /* residuals entering layers <= clean_upto are unedited */
    int act_clean_upto;    /* layers <= act_clean_upto hold their unedited FFN activation (and all before it) */
    int xent_done;         /* the last forward took its loss's gradient to dxf (engine_xent) */
    const engine_edit *edit; /* the caller's, read again by backward */
    int scale_layer;
    float scale_alpha;
    int grad_lowest;       /* lowest layer with a valid act gradient; L+1 = none */
    /* time accounts since engine_run_init (engine_run_times) */
    double *t_layer;       /* (2 L): each layer's forwards, then each layer's backwards, in seconds */
    double t_head_fwd, t_head_bwd;
};

/* Lays out the run's float buffers in one block (llm.c style). */
static int run_alloc_block(engine_run *r, lafn_err *err) {
    const model_config *c = &r->m->cfg;
    size_t L = (size_t)c->n_layer, N = r->max_n, P = r->max_p, D = (size_t)c->d_model;
    size_t F = (size_t)c->d_ffn, H = (size_t)c->n_head, K = (size_t)c->n_head_kv;
    size_t QE = H * (size_t)c->head_dim, KE = K * (size_t)c->head_dim;
    size_t qkn = c->has_qk_norm ? 1 : 0, pn = c->has_post_norms ? 1 : 0;
    float_slice specs[] = {
        {&r->resid, (L + 1) * N * D}, {&r->xn, L * N * D}, {&r->rstd_attn, L * N},
        {&r->q_raw, qkn * L * N * QE}, {&r->k_raw, qkn * L * N * KE},
        {&r->rstd_q, qkn * L * N * H}, {&r->rstd_k, qkn * L * N * K},
        {&r->q, L * N * QE}, {&r->k, L * N * KE}, {&r->v, L * N * KE}, {&r->att, L * N * QE},
        {&r->lse, L * N * H}, {&r->o, pn * L * N * D}, {&r->rstd_post_attn, pn * L * N},
        {&r->h, L * N * D}, {&r->hn, L * N * D}, {&r->rstd_ffn, L * N},
        {&r->gate, L * N * F}, {&r->up, L * N * F}, {&r->act, L * N * F},
        {&r->y, pn * L * N * D}, {&r->rstd_post_ffn, pn * L * N},
        {&r->xf, P * D}, {&r->rstd_f, P}, {&r->logits, P * (size_t)c->vocab},
        {&r->d_act, L * N * F}, {&r->dres, N * D}, {&r->dh, N * D}, {&r->dtmp, N * D},
        {&r->dgate, N * F}, {&r->dup, N * F}, {&r->dq, N * QE}, {&r->datt, N * QE},
        {&r->dk, N * KE}, {&r->dv, N * KE}, {&r->dk2, N * KE}, {&r->dxf, P * D},
        {&r->rope_buf, rope_tables_floats(c, N)},
        {&r->scratch, attention_scratch_floats(N)}, {&r->head_scratch, head_xent_scratch_floats(P)},
    };
    size_t total;
    r->block = float_block_alloc(specs, sizeof specs / sizeof specs[0], &total);
    if (!r->block)
        return lafn_err_set(err, "engine_run_init: cannot allocate %zu MiB of activations "
                                 "(max_tokens %zu, max_logit_pos %zu)",
                            total * sizeof(float) >> 20, N, P);
    return 0;
}

int engine_run_init(engine_run **out, const model *m, size_t max_tokens, size_t max_logit_pos,
                    lafn_err *err) {
    *out = NULL;
    if (model_config_check(&m->cfg, m->path ? m->path : "model", err)) return lafn_err_wrap(err, "engine_run_init");
    if (max_tokens == 0 || max_tokens > (size_t)INT_MAX || max_logit_pos > (size_t)INT_MAX)
        return lafn_err_set(err, "engine_run_init: max_tokens %zu must be in [1, %d] and "
                                 "max_logit_pos %zu at most %d (BLAS takes int dimensions)",
                            max_tokens, INT_MAX, max_logit_pos, INT_MAX);
    engine_run *r = calloc(1, sizeof *r);
    if (!r) return lafn_err_set(err, "engine_run_init: out of memory");
    r->m = m;
    r->max_n = max_tokens;
    r->max_p = max_logit_pos;
    if (run_alloc_block(r, err)) goto fail;
    r->pos = malloc(max_tokens * sizeof *r->pos);
    r->seq_of = malloc(max_tokens * sizeof *r->seq_of);
    r->seq_start = malloc((max_tokens + 1) * sizeof *r->seq_start);
    r->tokens = malloc(max_tokens * sizeof *r->tokens);
    r->seq_len = malloc(max_tokens * sizeof *r->seq_len);
    r->logit_pos = malloc((max_logit_pos + 1) * sizeof *r->logit_pos);
    r->t_layer = calloc(2 * (size_t)m->cfg.n_layer, sizeof *r->t_layer);
    if (!r->pos || !r->seq_of || !r->seq_start || !r->tokens || !r->seq_len || !r->logit_pos || !r->t_layer) {
        lafn_err_set(err, "engine_run_init: out of memory for %zu tokens", max_tokens);
        goto fail;
    }
    rope_tables_init(&r->rope, r->rope_buf, m, max_tokens);
    r->grad_lowest = m->cfg.n_layer + 1;
    *out = r;
    return 0;
fail:
    engine_run_free(r);
    return -1;
}

void engine_run_free(engine_run *r) {
    if (!r) return;
    free(r->block);
    free(r->pos);
    free(r->seq_of);
    free(r->seq_start);
    free(r->tokens);
    free(r->seq_len);
    free(r->logit_pos);
    free(r->t_layer);
    free(r);
}

engine_forward_opts engine_forward_defaults(void) {
    engine_forward_opts o = {.edit = NULL, .xent = NULL, .logit_pos = NULL, .n_logit_pos = 0, .from_layer = 0,
                             .scale_layer = -1, .scale_alpha = 1.0f};
    return o;
}

/* Returns 1 if b is the batch stored in the run. */
static int batch_is_current(const engine_run *r, const engine_batch *b) {
    if (b->n_seq != r->n_seq || !b->seq_len || !b->tokens) return 0;
    if (memcmp(b->seq_len, r->seq_len, (size_t)b->n_seq * sizeof *b->seq_len)) return 0;
    return !memcmp(b->tokens, r->tokens, r->n_tok * sizeof *b->tokens);
}

/* Validates the batch and stores its layout (positions, sequence of each token). */
static int batch_load(engine_run *r, const engine_batch *b, lafn_err *err) {
    if (b->n_seq <= 0 || !b->seq_len || !b->tokens)
        return lafn_err_set(err, "engine_forward: empty batch (n_seq %d)", b->n_seq);
    if ((size_t)b->n_seq > r->max_n)
        return lafn_err_set(err, "engine_forward: %d sequences exceed max_tokens %zu", b->n_seq,
                            r->max_n);
    size_t n = 0;
    for (int s = 0; s < b->n_seq; s++) {
        if (b->seq_len[s] <= 0 || (size_t)b->seq_len[s] > r->max_n - n)
            return lafn_err_set(err, "engine_forward: sequence %d has length %d; lengths must be "
                                     "positive and sum to at most max_tokens %zu",
                                s, b->seq_len[s], r->max_n);
        r->seq_start[s] = n;
        for (int t = 0; t < b->seq_len[s]; t++, n++) {
            r->pos[n] = t;
            r->seq_of[n] = s;
        }
    }
    r->seq_start[b->n_seq] = n;
    for (size_t i = 0; i < n; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= r->m->cfg.vocab)
            return lafn_err_set(err, "engine_forward: token %zu has id %d outside [0, %d)", i,
                                (int)b->tokens[i], r->m->cfg.vocab);
    memcpy(r->tokens, b->tokens, n * sizeof *b->tokens);
    memcpy(r->seq_len, b->seq_len, (size_t)b->n_seq * sizeof *b->seq_len);
    r->n_seq = b->n_seq;
    r->n_tok = n;
    return 0;
}

/* Checks the options; *min_edit receives the lowest layer changed by edit or scaling. */
static int opts_check(engine_run *r, const engine_batch *b, const engine_forward_opts *o,
                      int *min_edit, lafn_err *err) {
    const model_config *c = &r->m->cfg;
    if (o->from_layer < 0 || o->from_layer > c->n_layer)
        return lafn_err_set(err, "engine_forward: from_layer %d outside [0, %d]", o->from_layer,
                            c->n_layer);
    if (o->from_layer > 0) {
        if (!r->have_forward || !batch_is_current(r, b))
            return lafn_err_set(err, "engine_forward: from_layer %d needs a previous forward of "
                                     "the same batch",
                                o->from_layer);
        if (r->clean_upto < o->from_layer)
            return lafn_err_set(err, "engine_forward: from_layer %d, but the stored stream "
                                     "entering it carries edits of layer %d",
                                o->from_layer, r->clean_upto);
    }
    if (o->scale_layer < -1 || o->scale_layer >= c->n_layer ||
        (o->scale_layer >= 0 && o->scale_layer < o->from_layer))
        return lafn_err_set(err, "engine_forward: scale_layer %d outside [from_layer %d, %d)",
                            o->scale_layer, o->from_layer, c->n_layer);
    if (o->n_logit_pos < 0 || (size_t)o->n_logit_pos > r->max_p ||
        (o->n_logit_pos > 0 && !o->logit_pos))
        return lafn_err_set(err, "engine_forward: %d logit positions; the run holds %zu",
                            o->n_logit_pos, r->max_p);
    if (edit_check(o->edit, c, o->from_layer, min_edit, err))
        return lafn_err_wrap(err, "engine_forward");
    if (o->scale_layer >= 0 && o->scale_layer < *min_edit) *min_edit = o->scale_layer;
    return 0;
}

static int logit_pos_load(engine_run *r, const engine_forward_opts *o, lafn_err *err) {
    for (int p = 0; p < o->n_logit_pos; p++)
        if (o->logit_pos[p] < 0 || (size_t)o->logit_pos[p] >= r->n_tok)
            return lafn_err_set(err, "engine_forward: logit position %d is %d, outside the "
                                     "batch's [0, %zu)",
                                p, o->logit_pos[p], r->n_tok);
    if (o->n_logit_pos > 0)
        memcpy(r->logit_pos, o->logit_pos, (size_t)o->n_logit_pos * sizeof *r->logit_pos);
    r->n_pos = (size_t)o->n_logit_pos;
    return 0;
}

static engine_seqs run_seqs(const engine_run *r) {
    engine_seqs s = {.n_seq = r->n_seq, .seq_start = r->seq_start};
    return s;
}

static edit_dims run_edit_dims(const engine_run *r) {
    const model_config *c = &r->m->cfg;
    edit_dims d = {.N = r->n_tok, .D = (size_t)c->d_model, .F = (size_t)c->d_ffn,
                   .n_seq = r->n_seq, .seq_of = r->seq_of};
    return d;
}

/* Offsets of layer l's slices: per-token widths times N tokens. */
#define LAYER(buf, l, width) ((buf) + (size_t)(l) * r->max_n * (size_t)(width))

/* Layer l's slices of the activation buffers. */
static layer_bufs run_layer_bufs(const engine_run *r, int l) {
    const model_config *c = &r->m->cfg;
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ffn, H = (size_t)c->n_head, K = (size_t)c->n_head_kv;
    size_t QE = H * (size_t)c->head_dim, KE = K * (size_t)c->head_dim;
    layer_bufs b = {
        .xn = LAYER(r->xn, l, D), .rstd_attn = LAYER(r->rstd_attn, l, 1),
        .q_raw = c->has_qk_norm ? LAYER(r->q_raw, l, QE) : NULL,
        .k_raw = c->has_qk_norm ? LAYER(r->k_raw, l, KE) : NULL,
        .rstd_q = c->has_qk_norm ? LAYER(r->rstd_q, l, H) : NULL,
        .rstd_k = c->has_qk_norm ? LAYER(r->rstd_k, l, K) : NULL,
        .q = LAYER(r->q, l, QE), .k = LAYER(r->k, l, KE), .v = LAYER(r->v, l, KE),
        .att = LAYER(r->att, l, QE),
        .o = c->has_post_norms ? LAYER(r->o, l, D) : NULL,
        .rstd_post_attn = c->has_post_norms ? LAYER(r->rstd_post_attn, l, 1) : NULL,
        .h = LAYER(r->h, l, D), .hn = LAYER(r->hn, l, D), .rstd_ffn = LAYER(r->rstd_ffn, l, 1),
        .gate = LAYER(r->gate, l, F), .up = LAYER(r->up, l, F), .act = LAYER(r->act, l, F),
        .y = c->has_post_norms ? LAYER(r->y, l, D) : NULL,
        .rstd_post_ffn = c->has_post_norms ? LAYER(r->rstd_post_ffn, l, 1) : NULL,
    };
    return b;
}

/* Layer l: resid[l] -> h[l] -> resid[l+1], with scaling and edits. With
 * reuse_act, the stored FFN activation of layer l (the same input, nothing
 * changed before it) is taken as it is and only the down projection runs. */
static void layer_forward(engine_run *r, int l, int reuse_act) {
    const model_config *c = &r->m->cfg;
    size_t D = (size_t)c->d_model, N = r->n_tok;
    layer_bufs b = run_layer_bufs(r, l);
    edit_dims ed = run_edit_dims(r);
    if (reuse_act) {
        layer_ffn_down_forward(r->m, l, LAYER(r->resid, l + 1, D), N, &b, r->edit, &ed);
        return;
    }
    const float *x = LAYER(r->resid, l, D);
    layer_qkv_forward(r->m, l, x, r->pos, N, &r->rope, &b);
    engine_seqs s = run_seqs(r);
    attn_dims a = layer_attn_dims(c, l);
    attention_forward(b.att, LAYER(r->lse, l, c->n_head), b.q, b.k, b.v, &s, &a, r->scratch);
    layer_attn_out_forward(r->m, l, x, N, &b);
    float scale = l == r->scale_layer ? r->scale_alpha : 1.0f;
    layer_ffn_forward(r->m, l, LAYER(r->resid, l + 1, D), N, &b, scale, r->edit, &ed);
}

int engine_forward(engine_run *r, const engine_batch *b, const engine_forward_opts *opts,
                   lafn_err *err) {
    engine_forward_opts defaults = engine_forward_defaults();
    const engine_forward_opts *o = opts ? opts : &defaults;
    const model_config *c = &r->m->cfg;
    int min_edit = c->n_layer;
    if (!b) return lafn_err_set(err, "engine_forward: batch is NULL");
    if (opts_check(r, b, o, &min_edit, err)) return -1;
    if (o->from_layer == 0) {
        r->have_forward = 0;
        if (batch_load(r, b, err)) return -1;
    }
    if (logit_pos_load(r, o, err)) return -1;
    /* from_layer's activation is unchanged when the last forward left it clean and this one does not change it */
    int reuse_act = o->from_layer > 0 && o->from_layer <= r->act_clean_upto && o->scale_layer != o->from_layer &&
                    !edit_changes_act(o->edit, o->from_layer);
    r->edit = o->edit;
    r->scale_layer = o->scale_layer;
    r->scale_alpha = o->scale_alpha;
    r->grad_lowest = c->n_layer + 1;
    size_t D = (size_t)c->d_model;
    if (o->from_layer == 0)
        embed_forward(r->resid, r->tokens, r->m->w.token_embd, r->n_tok, D, c->embed_scale);
    double t = lafn_now_seconds(), t1;
    for (int l = o->from_layer; l < c->n_layer; l++, t = t1) {
        layer_forward(r, l, reuse_act && l == o->from_layer);
        r->t_layer[l] += (t1 = lafn_now_seconds()) - t;
    }
    const float *last = LAYER(r->resid, c->n_layer, D);
    if (o->xent) {
        final_norm_forward(r->xf, r->rstd_f, last, r->logit_pos, r->n_pos, r->m->w.output_norm, D, c->norm_eps);
        head_xent_forward(r->dxf, r->xf, r->n_pos, o->xent, r->m->w.output, (size_t)c->vocab, D, r->head_scratch);
    } else {
        logits_forward(r->logits, r->xf, r->rstd_f, last, r->logit_pos, r->n_pos, r->m->w.output_norm,
                       r->m->w.output, (size_t)c->vocab, D, c->norm_eps);
    }
    r->t_head_fwd += lafn_now_seconds() - t;
    r->have_forward = 1;
    r->xent_done = o->xent != NULL;
    r->clean_upto = min_edit;
    int act_changed = min_edit < c->n_layer && (o->scale_layer == min_edit || edit_changes_act(o->edit, min_edit));
    r->act_clean_upto = (min_edit < c->n_layer ? min_edit : c->n_layer - 1) - act_changed;
    return 0;
}

const float *engine_logits(const engine_run *r) { return r->logits; }

engine_times engine_run_times(const engine_run *r) {
    engine_times t = {.layer_fwd = r->t_layer, .layer_bwd = r->t_layer + r->m->cfg.n_layer,
                      .head_fwd = r->t_head_fwd, .head_bwd = r->t_head_bwd};
    return t;
}

const float *engine_ffn_act(const engine_run *r, int layer) {
    if (!r->have_forward || layer < 0 || layer >= r->m->cfg.n_layer) return NULL;
    return LAYER(r->act, layer, r->m->cfg.d_ffn);
}

const float *engine_residual(const engine_run *r, int layer) {
    if (!r->have_forward || layer < 0 || layer > r->m->cfg.n_layer) return NULL;
    return LAYER(r->resid, layer, r->m->cfg.d_model);
}

const float *engine_ffn_act_grad(const engine_run *r, int layer) {
    if (layer < r->grad_lowest || layer >= r->m->cfg.n_layer) return NULL;
    return LAYER(r->d_act, layer, r->m->cfg.d_ffn);
}

/* FFN half of layer l backward: r->dres holds dLoss/d resid[l+1]. Leaves
 * d_act[l], the edit gradients of layer l, and (unless l is the lowest layer)
 * dLoss/d h[l] in r->dh. */
static void layer_ffn_backward(engine_run *r, int l, int lowest, float *d_delta) {
    const model_config *c = &r->m->cfg;
    const model_layer *w = &r->m->w.layers[l];
    size_t N = r->n_tok, D = (size_t)c->d_model, F = (size_t)c->d_ffn;
    const float *dy = r->dres;
    if (c->has_post_norms) {
        memset(r->dtmp, 0, N * D * sizeof(float));
        rmsnorm_backward(r->dtmp, r->dres, LAYER(r->y, l, D), w->post_ffn_norm,
                         LAYER(r->rstd_post_ffn, l, 1), N, D);
        dy = r->dtmp;
    }
    float *dact = LAYER(r->d_act, l, F);
    const float *act = LAYER(r->act, l, F);
    memset(dact, 0, N * F * sizeof(float));
    matmul_backward(dact, dy, w->w_down, N, F, D);
    edit_dims ed = run_edit_dims(r);
    if (r->edit && r->edit->kind == ENGINE_EDIT_VALUE_VECTOR)
        edit_values_backward(d_delta, dact, dy, act, r->edit, l, &ed);
    if (r->edit && d_delta && r->edit->kind == ENGINE_EDIT_ACTIVATION_OFFSET)
        edit_offsets_backward(d_delta, dact, r->edit, l, &ed);
    if (l == lowest) return;
    memcpy(r->dh, r->dres, N * D * sizeof(float));
    memset(r->dgate, 0, N * F * sizeof(float));
    memset(r->dup, 0, N * F * sizeof(float));
    glu_backward(r->dgate, r->dup, dact, LAYER(r->gate, l, F), LAYER(r->up, l, F), N, F, c->act);
    if (l == r->scale_layer)
        for (size_t i = 0; i < N * F; i++) {
            r->dgate[i] *= r->scale_alpha;
            r->dup[i] *= r->scale_alpha;
        }
    memset(r->dtmp, 0, N * D * sizeof(float));
    matmul_backward(r->dtmp, r->dgate, w->w_gate, N, D, F);
    matmul_backward(r->dtmp, r->dup, w->w_up, N, D, F);
    rmsnorm_backward(r->dh, r->dtmp, LAYER(r->h, l, D), w->ffn_norm, LAYER(r->rstd_ffn, l, 1), N, D);
}

/* Attention half of layer l backward: r->dh holds dLoss/d h[l]; leaves
 * dLoss/d resid[l] in r->dres. */
static void layer_attention_backward(engine_run *r, int l) {
    const model_config *c = &r->m->cfg;
    const model_layer *w = &r->m->w.layers[l];
    size_t N = r->n_tok, D = (size_t)c->d_model, H = (size_t)c->n_head, K = (size_t)c->n_head_kv;
    size_t E = (size_t)c->head_dim, QE = H * E, KE = K * E;
    const float *d_o = r->dh;
    if (c->has_post_norms) {
        memset(r->dtmp, 0, N * D * sizeof(float));
        rmsnorm_backward(r->dtmp, r->dh, LAYER(r->o, l, D), w->post_attn_norm,
                         LAYER(r->rstd_post_attn, l, 1), N, D);
        d_o = r->dtmp;
    }
    memset(r->datt, 0, N * QE * sizeof(float));
    matmul_backward(r->datt, d_o, w->wo, N, QE, D);
    memset(r->dq, 0, N * QE * sizeof(float));
    memset(r->dk, 0, N * KE * sizeof(float));
    memset(r->dv, 0, N * KE * sizeof(float));
    engine_seqs s = run_seqs(r);
    attn_dims a = layer_attn_dims(c, l);
    attention_backward(r->dq, r->dk, r->dv, r->datt, LAYER(r->att, l, QE), LAYER(r->lse, l, H),
                       LAYER(r->q, l, QE), LAYER(r->k, l, KE), LAYER(r->v, l, KE), &s, &a,
                       r->scratch);
    const float *ct, *st;
    rope_tables_layer(&r->rope, c, l, &ct, &st);
    rope_backward(r->dq, r->pos, N, (int)H, (int)E, ct, st);
    rope_backward(r->dk, r->pos, N, (int)K, (int)E, ct, st);
    const float *dq = r->dq, *dk = r->dk;
    if (c->has_qk_norm) { /* datt is free again: it receives dq before the norm */
        memset(r->datt, 0, N * QE * sizeof(float));
        memset(r->dk2, 0, N * KE * sizeof(float));
        rmsnorm_backward(r->datt, r->dq, LAYER(r->q_raw, l, QE), w->q_norm, LAYER(r->rstd_q, l, H),
                         N * H, E);
        rmsnorm_backward(r->dk2, r->dk, LAYER(r->k_raw, l, KE), w->k_norm, LAYER(r->rstd_k, l, K),
                         N * K, E);
        dq = r->datt;
        dk = r->dk2;
    }
    memset(r->dtmp, 0, N * D * sizeof(float));
    matmul_backward(r->dtmp, dq, w->wq, N, D, QE);
    matmul_backward(r->dtmp, dk, w->wk, N, D, KE);
    matmul_backward(r->dtmp, r->dv, w->wv, N, D, KE);
    memcpy(r->dres, r->dh, N * D * sizeof(float));
    rmsnorm_backward(r->dres, r->dtmp, LAYER(r->resid, l, D), w->attn_norm,
                     LAYER(r->rstd_attn, l, 1), N, D);
}

static size_t edit_delta_floats(const engine_edit *ed, size_t D) {
    if (!ed) return 0;
    return (size_t)ed->n * (ed->kind == ENGINE_EDIT_VALUE_VECTOR ? D : 1);
}

int engine_backward(engine_run *r, const float *dlogits, int lowest_layer, float *d_delta,
                    lafn_err *err) {
    const model_config *c = &r->m->cfg;
    size_t N = r->n_tok, D = (size_t)c->d_model;
    if (!r->have_forward) return lafn_err_set(err, "engine_backward: no forward to go back through");
    if (lowest_layer < 0 || lowest_layer >= c->n_layer)
        return lafn_err_set(err, "engine_backward: lowest_layer %d outside [0, %d)", lowest_layer,
                            c->n_layer);
    if (r->n_pos > 0 && !r->xent_done && !dlogits)
        return lafn_err_set(err, "engine_backward: dlogits is NULL for %zu positions", r->n_pos);
    if (r->xent_done && dlogits)
        return lafn_err_set(err, "engine_backward: the forward computed its cross-entropy gradient; pass no dlogits");
    if (d_delta && r->edit)
        for (int e = 0; e < r->edit->n; e++)
            if (r->edit->layer[e] < lowest_layer)
                return lafn_err_set(err, "engine_backward: edit entry %d is at layer %d, below "
                                         "lowest_layer %d; its gradient would be missing",
                                    e, r->edit->layer[e], lowest_layer);
    if (d_delta) memset(d_delta, 0, edit_delta_floats(r->edit, D) * sizeof(float));
    double t = lafn_now_seconds(), t1;
    memset(r->dres, 0, N * D * sizeof(float));
    const float *last = LAYER(r->resid, c->n_layer, D);
    if (r->xent_done)
        final_norm_backward(r->dres, r->dxf, r->rstd_f, last, r->logit_pos, r->n_pos, r->m->w.output_norm, D);
    else
        logits_backward(r->dres, r->dxf, dlogits, r->rstd_f, last, r->logit_pos, r->n_pos, r->m->w.output_norm,
                        r->m->w.output, (size_t)c->vocab, D);
    r->t_head_bwd += (t1 = lafn_now_seconds()) - t;
    for (int l = c->n_layer - 1; l >= lowest_layer; l--, t1 = t) {
        layer_ffn_backward(r, l, lowest_layer, d_delta);
        if (l > lowest_layer) layer_attention_backward(r, l);
        r->t_layer[c->n_layer + l] += (t = lafn_now_seconds()) - t1;
    }
    r->grad_lowest = lowest_layer;
    return 0;
}
