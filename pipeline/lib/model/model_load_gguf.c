/* model_load_gguf: model_config from GGUF metadata, tensor shape checks, and dequantisation into the block. */
#include "model/model_load_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dequant.h"

#define GEMMA3_ROPE_BASE_LOCAL 10000.0f /* llama.cpp hard-codes it for gemma3 */
#define GEMMA3_SLIDING_PATTERN 6

/* Reads "<arch>.<suffix>" as u32 into *out; if def >= 0 the key is optional. */
static int arch_u32(const gguf_file *f, const char *arch, const char *suffix, int64_t def, int *out, lafn_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (def >= 0 && !gguf_find_kv(f, key)) {
        *out = (int)def;
        return 0;
    }
    uint32_t v;
    if (gguf_get_u32(f, key, &v, err)) return -1;
    if (v > (1u << 24)) return lafn_err_set(err, "%s: metadata key '%s' is %u (expected <= %u)", gguf_path(f), key, v, 1u << 24);
    *out = (int)v;
    return 0;
}

static int arch_f32(const gguf_file *f, const char *arch, const char *suffix, float def, int optional, float *out,
                    lafn_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (optional && !gguf_find_kv(f, key)) {
        *out = def;
        return 0;
    }
    return gguf_get_f32(f, key, out, err);
}

/* Rejects RoPE scaling the engine does not implement (rope_freqs factors are handled). */
static int check_rope_scaling(const gguf_file *f, const char *arch, lafn_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *s;
    size_t n;
    if (!gguf_find_kv(f, key)) return 0;
    if (gguf_get_str(f, key, &s, &n, err)) return -1;
    if (n == 4 && memcmp(s, "none", 4) == 0) return 0;
    return lafn_err_set(err, "%s: metadata key '%s' is '%.*s'; only 'none' (or Llama 3 rope_freqs) is supported",
                        gguf_path(f), key, (int)n, s);
}

/* Gemma 3 layer pattern: <arch>.attention.sliding_window_pattern as a period (u32) or as
 * per-layer flags (array of bool, true = sliding window, as llama.cpp's swa_layers); default 6. */
static int gemma_pattern(const gguf_file *f, const char *arch, model_config *c, lafn_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const gguf_kv *kv = gguf_find_kv(f, key);
    c->sliding_pattern = GEMMA3_SLIDING_PATTERN;
    if (!kv) return 0;
    if (kv->type != GGUF_TYPE_ARRAY) return arch_u32(f, arch, "attention.sliding_window_pattern", -1, &c->sliding_pattern, err);
    if (kv->elem_type != GGUF_TYPE_BOOL || kv->n != (uint64_t)c->n_layer)
        return lafn_err_set(err, "%s: metadata key '%s' is not an array of %d bools", gguf_path(f), key, c->n_layer);
    if (model_pattern_from_flags(kv->data, c->n_layer, GEMMA3_SLIDING_PATTERN, &c->sliding_pattern))
        return lafn_err_set(err, "%s: metadata key '%s' is not 'global every N-th layer' (the only layout supported)",
                            gguf_path(f), key);
    return 0;
}

/* Architecture-specific parts of the config. */
static int arch_specific(const gguf_file *f, const char *arch, model_config *c, lafn_err *err) {
    if (c->arch == MODEL_ARCH_GEMMA3) {
        c->act = MODEL_ACT_GELU_TANH;
        if (arch_f32(f, arch, "rope.freq_base_swa", GEMMA3_ROPE_BASE_LOCAL, 1, &c->rope_base_local, err)) return -1;
        if (arch_u32(f, arch, "attention.sliding_window", -1, &c->sliding_window, err)) return -1;
        if (gemma_pattern(f, arch, c, err)) return -1;
        /* query_pre_attn_scalar: head_dim, except Gemma 3 27B (62 layers) uses D/H, as llama.cpp does;
         * an explicit <arch>.attention.scale wins */
        float qpas = c->n_layer == 62 ? (float)c->d_model / (float)c->n_head : (float)c->head_dim;
        if (arch_f32(f, arch, "attention.scale", 1.0f / sqrtf(qpas), 1, &c->attn_scale, err)) return -1;
        c->embed_scale = sqrtf((float)c->d_model);
        c->has_qk_norm = 1;
        c->has_post_norms = 1;
        return 0;
    }
    c->act = MODEL_ACT_SILU;
    c->rope_base_local = c->rope_base;
    if (arch_f32(f, arch, "attention.scale", 1.0f / sqrtf((float)c->head_dim), 1, &c->attn_scale, err)) return -1;
    c->embed_scale = 1.0f;
    c->has_qkv_bias = c->arch == MODEL_ARCH_QWEN2;
    c->has_rope_factors = gguf_find_tensor(f, "rope_freqs.weight") != NULL;
    return 0;
}

static int read_arch(const gguf_file *f, char *arch, size_t cap, model_arch *out, lafn_err *err) {
    const char *s;
    size_t n;
    if (gguf_get_str(f, "general.architecture", &s, &n, err)) return -1;
    snprintf(arch, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    if (strcmp(arch, "llama") == 0) *out = MODEL_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0) *out = MODEL_ARCH_QWEN2;
    else if (strcmp(arch, "gemma3") == 0) *out = MODEL_ARCH_GEMMA3;
    else
        return lafn_err_set(err, "%s: general.architecture '%s' not supported (expected llama, qwen2 or gemma3)",
                            gguf_path(f), arch);
    return 0;
}

int model_gguf_config(const gguf_file *f, model_config *c, char **name, lafn_err *err) {
    char arch[32];
    memset(c, 0, sizeof *c);
    if (read_arch(f, arch, sizeof arch, &c->arch, err)) return -1;
    if (arch_u32(f, arch, "block_count", -1, &c->n_layer, err) ||
        arch_u32(f, arch, "embedding_length", -1, &c->d_model, err) ||
        arch_u32(f, arch, "feed_forward_length", -1, &c->d_ffn, err) ||
        arch_u32(f, arch, "attention.head_count", -1, &c->n_head, err) ||
        arch_u32(f, arch, "attention.head_count_kv", c->n_head, &c->n_head_kv, err))
        return -1;
    int def_e = c->n_head > 0 ? c->d_model / c->n_head : 0, ve = 0, rd = 0;
    if (arch_u32(f, arch, "attention.key_length", def_e, &c->head_dim, err) ||
        arch_u32(f, arch, "attention.value_length", c->head_dim, &ve, err) ||
        arch_u32(f, arch, "rope.dimension_count", c->head_dim, &rd, err))
        return -1;
    if (ve != c->head_dim)
        return lafn_err_set(err, "%s: %s.attention.value_length %d differs from key_length %d (not supported)",
                            gguf_path(f), arch, ve, c->head_dim);
    if (rd != c->head_dim)
        return lafn_err_set(err, "%s: %s.rope.dimension_count %d differs from head dim %d (partial RoPE not supported)",
                            gguf_path(f), arch, rd, c->head_dim);
    if (arch_f32(f, arch, "attention.layer_norm_rms_epsilon", 0, 0, &c->norm_eps, err) ||
        arch_f32(f, arch, "rope.freq_base", 10000.0f, 1, &c->rope_base, err) || check_rope_scaling(f, arch, err))
        return -1;
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te || te->n_dims != 2)
        return lafn_err_set(err, "%s: tensor 'token_embd.weight' %s; expected a matrix [%d, vocab]", gguf_path(f),
                            te ? "is not 2-D" : "is missing", c->d_model);
    c->vocab = te->ne[1] > (1u << 24) ? -1 : (int)te->ne[1];
    c->tied_output = gguf_find_tensor(f, "output.weight") == NULL;
    if (arch_specific(f, arch, c, err) || model_config_check(c, gguf_path(f), err)) return -1;
    const char *s;
    size_t n;
    if (gguf_find_kv(f, "general.name") && gguf_get_str(f, "general.name", &s, &n, NULL) == 0)
        *name = strndup(s, n);
    else
        *name = strdup(arch);
    if (!*name) return lafn_err_set(err, "%s: out of memory", gguf_path(f));
    return 0;
}

int model_gguf_check(const gguf_file *f, const model_plan *p, lafn_err *err) {
    for (size_t i = 0; i < p->n; i++) {
        const model_slot *s = &p->v[i];
        const gguf_tensor *t = gguf_find_tensor(f, s->name);
        if (!t) return lafn_err_set(err, "%s: tensor '%s' is missing", gguf_path(f), s->name);
        int ok = s->is_matrix ? (t->n_dims == 2 && t->ne[0] == s->cols && t->ne[1] == s->rows)
                              : (t->n_dims == 1 && t->ne[0] == s->cols);
        if (ok) continue;
        char got[96], want[64];
        int k = snprintf(got, sizeof got, "[");
        for (int d = 0; d < t->n_dims; d++)
            k += snprintf(got + k, sizeof got - (size_t)k, "%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
        snprintf(got + k, sizeof got - (size_t)k, "]");
        if (s->is_matrix) snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)s->cols, (unsigned long long)s->rows);
        else snprintf(want, sizeof want, "[%llu]", (unsigned long long)s->cols);
        return lafn_err_set(err, "%s: tensor '%s' has shape %s; expected %s", gguf_path(f), s->name, got, want);
    }
    return 0;
}

int model_gguf_fill(const gguf_file *f, const model_plan *p, float *block, lafn_err *err) {
    for (size_t i = 0; i < p->n; i++) {
        const model_slot *s = &p->v[i];
        const gguf_tensor *t = gguf_find_tensor(f, s->name);
        size_t row_bytes = dequant_row_bytes(t->type, s->cols);
        float *dst = block + s->off;
        for (uint64_t r = 0; r < s->rows; r++) {
            float *row = dst + model_slot_dst_row(s, r) * s->cols;
            if (dequant_to_f32(t->type, t->data + r * row_bytes, row, s->cols))
                return lafn_err_set(err, "%s: tensor '%s': cannot decode type %u", gguf_path(f), s->name, t->type);
        }
        /* GGUF gemma3 norms already hold 1 + w: no SLOT_NORM_ADD_ONE here */
    }
    return 0;
}
