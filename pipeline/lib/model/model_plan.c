/* model_plan: which tensors a model_config needs, where each sits in the fp32 block, and binding pointers to it. */
#include "model/model_load_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_ALIGN 16 /* floats: every tensor starts on a 64-byte boundary */
#define SLOTS_PER_LAYER 16

typedef struct {
    model_plan *p;
    size_t cap;
    size_t next;  /* next free float */
    int overflow;
} plan_builder;

static void add(plan_builder *b, const char *name, float **dst, uint64_t rows, uint64_t cols, int is_matrix,
                int flags, int layer) {
    model_slot *s = &b->p->v[b->p->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dst = dst;
    s->rows = rows;
    s->cols = cols;
    s->is_matrix = is_matrix;
    s->flags = flags;
    s->layer = layer;
    s->off = b->next;
    uint64_t n = rows * cols; /* rows, cols < 2^31 (model_config_check) */
    uint64_t padded = (n + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
    if (padded > SIZE_MAX / sizeof(float) - b->next) b->overflow = 1;
    else b->next += (size_t)padded;
}

static void add_layer(plan_builder *b, model *m, int i) {
    const model_config *c = &m->cfg;
    model_layer *l = &m->w.layers[i];
    uint64_t D = (uint64_t)c->d_model, F = (uint64_t)c->d_ffn, E = (uint64_t)c->head_dim;
    uint64_t HE = (uint64_t)c->n_head * E, KE = (uint64_t)c->n_head_kv * E;
    int norm = c->arch == MODEL_ARCH_GEMMA3 ? SLOT_NORM_ADD_ONE : 0;
    int perm = c->arch == MODEL_ARCH_LLAMA ? SLOT_PERMUTE : 0;
    char n[64];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, i), n)
    add(b, NAME("attn_norm.weight"), &l->attn_norm, 1, D, 0, norm, i);
    add(b, NAME("attn_q.weight"), &l->wq, HE, D, 1, perm, i);
    b->p->v[b->p->n - 1].perm_heads = c->n_head;
    add(b, NAME("attn_k.weight"), &l->wk, KE, D, 1, perm, i);
    b->p->v[b->p->n - 1].perm_heads = c->n_head_kv;
    add(b, NAME("attn_v.weight"), &l->wv, KE, D, 1, 0, i);
    if (c->has_qkv_bias) {
        add(b, NAME("attn_q.bias"), &l->bq, 1, HE, 0, 0, i);
        add(b, NAME("attn_k.bias"), &l->bk, 1, KE, 0, 0, i);
        add(b, NAME("attn_v.bias"), &l->bv, 1, KE, 0, 0, i);
    }
    if (c->has_qk_norm) {
        add(b, NAME("attn_q_norm.weight"), &l->q_norm, 1, E, 0, norm, i);
        add(b, NAME("attn_k_norm.weight"), &l->k_norm, 1, E, 0, norm, i);
    }
    add(b, NAME("attn_output.weight"), &l->wo, D, HE, 1, 0, i);
    if (c->has_post_norms) add(b, NAME("post_attention_norm.weight"), &l->post_attn_norm, 1, D, 0, norm, i);
    add(b, NAME("ffn_norm.weight"), &l->ffn_norm, 1, D, 0, norm, i);
    add(b, NAME("ffn_gate.weight"), &l->w_gate, F, D, 1, 0, i);
    add(b, NAME("ffn_up.weight"), &l->w_up, F, D, 1, 0, i);
    add(b, NAME("ffn_down.weight"), &l->w_down, D, F, 1, 0, i);
    if (c->has_post_norms) add(b, NAME("post_ffw_norm.weight"), &l->post_ffn_norm, 1, D, 0, norm, i);
#undef NAME
}

int model_plan_build(model_plan *p, model *m, lafn_err *err) {
    const model_config *c = &m->cfg;
    memset(p, 0, sizeof *p);
    size_t cap = 4 + (size_t)c->n_layer * SLOTS_PER_LAYER;
    p->v = calloc(cap, sizeof *p->v);
    if (!p->v) return lafn_err_set(err, "%s: out of memory for the tensor plan", m->path);
    plan_builder b = {p, cap, 0, 0};
    int norm = c->arch == MODEL_ARCH_GEMMA3 ? SLOT_NORM_ADD_ONE : 0;
    uint64_t V = (uint64_t)c->vocab, D = (uint64_t)c->d_model;
    add(&b, "token_embd.weight", &m->w.token_embd, V, D, 1, 0, -1);
    for (int i = 0; i < c->n_layer; i++) add_layer(&b, m, i);
    add(&b, "output_norm.weight", &m->w.output_norm, 1, D, 0, norm, -1);
    if (!c->tied_output) add(&b, "output.weight", &m->w.output, V, D, 1, 0, -1);
    if (c->has_rope_factors)
        add(&b, "rope_freqs.weight", &m->w.rope_freq_factors, 1, (uint64_t)c->head_dim / 2, 0, 0, -1);
    if (b.overflow) {
        model_plan_free(p);
        return lafn_err_set(err, "%s: weight block size overflows size_t", m->path);
    }
    p->n_floats = b.next;
    return 0;
}

void model_plan_bind(const model_plan *p, model *m, float *block) {
    for (size_t i = 0; i < p->n; i++) *p->v[i].dst = block + p->v[i].off;
    if (m->cfg.tied_output) m->w.output = m->w.token_embd;
}

void model_plan_free(model_plan *p) {
    free(p->v);
    memset(p, 0, sizeof *p);
}

uint64_t model_slot_dst_row(const model_slot *s, uint64_t r) {
    if (!(s->flags & SLOT_PERMUTE)) return r;
    /* llama.cpp's converter wrote row h*E + 2i + j from HF row h*E + j*E/2 + i */
    uint64_t E = s->rows / (uint64_t)s->perm_heads;
    uint64_t h = r / E, k = r % E;
    return h * E + (k % 2) * (E / 2) + k / 2;
}

int model_pattern_from_flags(const unsigned char *is_local, int n_layer, int hint, int *pattern) {
    for (int cand = 0; cand <= n_layer + 1; cand++) {
        int p = cand == 0 ? hint : cand, ok = p > 0;
        for (int i = 0; ok && i < n_layer; i++) ok = (is_local[i] != 0) == ((i + 1) % p != 0);
        if (ok) return *pattern = p, 0;
    }
    return -1;
}

int model_config_check(const model_config *c, const char *path, lafn_err *err) {
    const int lim = 1 << 24;
    struct { const char *name; int v; } dims[] = {
        {"n_layer", c->n_layer}, {"d_model", c->d_model}, {"d_ffn", c->d_ffn}, {"n_head", c->n_head},
        {"n_head_kv", c->n_head_kv}, {"head_dim", c->head_dim}, {"vocab", c->vocab},
    };
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
        if (dims[i].v <= 0 || dims[i].v > lim)
            return lafn_err_set(err, "%s: %s is %d (expected 1..%d)", path, dims[i].name, dims[i].v, lim);
    if (c->head_dim % 2 != 0) return lafn_err_set(err, "%s: head_dim %d is odd (RoPE needs pairs)", path, c->head_dim);
    if (c->n_head % c->n_head_kv != 0)
        return lafn_err_set(err, "%s: n_head %d is not a multiple of n_head_kv %d", path, c->n_head, c->n_head_kv);
    if (!(c->norm_eps > 0) || !(c->rope_base > 0))
        return lafn_err_set(err, "%s: norm_eps %g and rope_base %g must be > 0", path, c->norm_eps, c->rope_base);
    if (c->sliding_window < 0 || c->sliding_pattern < 0)
        return lafn_err_set(err, "%s: sliding_window %d / sliding_pattern %d must be >= 0", path, c->sliding_window,
                            c->sliding_pattern);
    return 0;
}
