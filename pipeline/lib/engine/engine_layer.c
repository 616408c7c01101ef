/* engine_layer: one transformer layer's forward pieces over n tokens (norms, projections, QK-norm, RoPE, FFN with edits) and the buffer block, shared by the batch run and the KV cache. */
#include <stdlib.h>

#include "engine/engine_ops.h"

float *float_block_alloc(const float_slice *slices, size_t n_slices, size_t *total) {
    *total = 0;
    for (size_t i = 0; i < n_slices; i++) *total += slices[i].n;
    float *block = malloc(*total * sizeof(float)), *p = block;
    for (size_t i = 0; block && i < n_slices; i++) {
        *slices[i].ptr = slices[i].n ? p : NULL;
        p += slices[i].n;
    }
    return block;
}

size_t rope_tables_floats(const model_config *c, size_t max_pos) {
    return 4 * max_pos * ((size_t)c->head_dim / 2);
}

void rope_tables_init(rope_tables *t, float *storage, const model *m, size_t max_pos) {
    const model_config *c = &m->cfg;
    size_t one = max_pos * ((size_t)c->head_dim / 2);
    float *cg = storage, *sg = storage + one, *cl = storage + 2 * one, *sl = storage + 3 * one;
    rope_table(cg, sg, max_pos, c->head_dim, c->rope_base, m->w.rope_freq_factors);
    rope_table(cl, sl, max_pos, c->head_dim, c->rope_base_local, m->w.rope_freq_factors);
    *t = (rope_tables){.cos_g = cg, .sin_g = sg, .cos_l = cl, .sin_l = sl};
}

void rope_tables_layer(const rope_tables *t, const model_config *c, int l, const float **cos_t,
                       const float **sin_t) {
    int local = model_layer_is_local(c, l);
    *cos_t = local ? t->cos_l : t->cos_g;
    *sin_t = local ? t->sin_l : t->sin_g;
}

attn_dims layer_attn_dims(const model_config *c, int l) {
    int local = model_layer_is_local(c, l);
    attn_dims a = {.H = c->n_head, .K = c->n_head_kv, .E = c->head_dim, .scale = c->attn_scale,
                   .window = local ? c->sliding_window : 0};
    return a;
}

void layer_qkv_forward(const model *m, int l, const float *x, const int *pos, size_t n,
                       const rope_tables *rt, const layer_bufs *b) {
    const model_config *c = &m->cfg;
    const model_layer *w = &m->w.layers[l];
    size_t D = (size_t)c->d_model, H = (size_t)c->n_head, K = (size_t)c->n_head_kv;
    size_t E = (size_t)c->head_dim, QE = H * E, KE = K * E;
    rmsnorm_forward(b->xn, b->rstd_attn, x, w->attn_norm, n, D, c->norm_eps);
    float *qd = c->has_qk_norm ? b->q_raw : b->q;
    float *kd = c->has_qk_norm ? b->k_raw : b->k;
    matmul_forward(qd, b->xn, w->wq, w->bq, n, D, QE);
    matmul_forward(kd, b->xn, w->wk, w->bk, n, D, KE);
    matmul_forward(b->v, b->xn, w->wv, w->bv, n, D, KE);
    if (c->has_qk_norm) {
        rmsnorm_forward(b->q, b->rstd_q, qd, w->q_norm, n * H, E, c->norm_eps);
        rmsnorm_forward(b->k, b->rstd_k, kd, w->k_norm, n * K, E, c->norm_eps);
    }
    const float *ct, *st;
    rope_tables_layer(rt, c, l, &ct, &st);
    rope_forward(b->q, pos, n, (int)H, (int)E, ct, st);
    rope_forward(b->k, pos, n, (int)K, (int)E, ct, st);
}

void layer_attn_out_forward(const model *m, int l, const float *x, size_t n, const layer_bufs *b) {
    const model_config *c = &m->cfg;
    const model_layer *w = &m->w.layers[l];
    size_t D = (size_t)c->d_model, QE = (size_t)c->n_head * (size_t)c->head_dim;
    if (c->has_post_norms) {
        matmul_forward(b->o, b->att, w->wo, NULL, n, QE, D);
        rmsnorm_forward(b->h, b->rstd_post_attn, b->o, w->post_attn_norm, n, D, c->norm_eps);
    } else {
        matmul_forward(b->h, b->att, w->wo, NULL, n, QE, D);
    }
    for (size_t i = 0; i < n * D; i++) b->h[i] += x[i];
}

void layer_ffn_forward(const model *m, int l, float *out, size_t n, const layer_bufs *b, float scale,
                       const engine_edit *edit, const edit_dims *d) {
    const model_config *c = &m->cfg;
    const model_layer *w = &m->w.layers[l];
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ffn;
    rmsnorm_forward(b->hn, b->rstd_ffn, b->h, w->ffn_norm, n, D, c->norm_eps);
    matmul_forward(b->gate, b->hn, w->w_gate, NULL, n, D, F);
    matmul_forward(b->up, b->hn, w->w_up, NULL, n, D, F);
    glu_forward(b->act, b->gate, b->up, n, F, c->act);
    if (scale != 1.0f)
        for (size_t i = 0; i < n * F; i++) b->act[i] *= scale;
    if (edit && edit->kind == ENGINE_EDIT_ACTIVATION_OFFSET) edit_offsets_forward(b->act, edit, l, d);
    layer_ffn_down_forward(m, l, out, n, b, edit, d);
}

void layer_ffn_down_forward(const model *m, int l, float *out, size_t n, const layer_bufs *b, const engine_edit *edit,
                            const edit_dims *d) {
    const model_config *c = &m->cfg;
    const model_layer *w = &m->w.layers[l];
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ffn;
    float *y = c->has_post_norms ? b->y : out;
    matmul_forward(y, b->act, w->w_down, NULL, n, F, D);
    if (edit && edit->kind == ENGINE_EDIT_VALUE_VECTOR) edit_values_forward(y, b->act, edit, l, d);
    if (c->has_post_norms)
        rmsnorm_forward(out, b->rstd_post_ffn, y, w->post_ffn_norm, n, D, c->norm_eps);
    for (size_t i = 0; i < n * D; i++) out[i] += b->h[i];
}
