/* model_load_hf: Hugging Face folders — config.json to model_config, *.safetensors tensors mapped to GGUF names. */
#include "model/model_load_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file_map.h"
#include "formats/safetensors.h"
#include "base/sha256.h"

#define HF_MAX_FILES 4096

struct hf_model {
    char *dir;
    safetensors_file **files; /* (n_files), sorted by name */
    size_t n_files;
    const char *prefix;       /* "model." or the Gemma 3 multimodal prefix of the text model */
    const char *lm_head;
    model_arch arch;
    /* Llama 3 RoPE scaling (rope_type "llama3"), used to compute rope_freq_factors */
    double rope_factor, rope_low, rope_high, rope_orig_ctx;
    double rope_theta;
    int head_dim;
};

/* ---- config.json ---- */

static cJSON *read_json(const char *path, lafn_err *err) {
    char *buf = NULL;
    size_t n = 0;
    if (file_read_all(path, (size_t)64 << 20, &buf, &n, err) != 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        lafn_err_set(err, "%s: not a readable JSON object", path);
        return NULL;
    }
    return j;
}

/* Integer key; def < 0 makes it required. */
static int cfg_int(const cJSON *o, const char *key, int def, int *out, const char *path, lafn_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if ((!v || cJSON_IsNull(v)) && def >= 0) {
        *out = def;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? cJSON_GetNumberValue(v) : -1;
    if (!(d >= 0 && d <= (1 << 24) && d == floor(d)))
        return lafn_err_set(err, "%s: key '%s' %s; expected an integer in 0..%d", path, key,
                            v ? "has another type or range" : "is missing", 1 << 24);
    *out = (int)d;
    return 0;
}

/* Number key (optional: def used when absent or null). */
static int cfg_num(const cJSON *o, const char *key, double def, double *out, const char *path, lafn_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return lafn_err_set(err, "%s: key '%s' is not a number", path, key);
    *out = cJSON_GetNumberValue(v);
    return 0;
}

static const char *cfg_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? cJSON_GetStringValue(v) : NULL;
}

static const cJSON *cfg_obj(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsObject(v) ? v : NULL;
}

/* RoPE scaling of one rope-parameter object: none, or llama3 (Llama only); keyname names it in errors. */
static int rope_scaling(hf_model *h, const cJSON *rs, const char *keyname, const char *path, lafn_err *err) {
    if (!rs) return 0;
    const char *type = cfg_str(rs, "rope_type");
    if (!type) type = cfg_str(rs, "type");
    if (!type || strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "llama3") != 0 || h->arch != MODEL_ARCH_LLAMA)
        return lafn_err_set(err, "%s: key '%s.rope_type' is '%s'; only 'default' (and 'llama3' for Llama) are supported",
                            path, keyname, type);
    if (cfg_num(rs, "factor", 8.0, &h->rope_factor, path, err) || cfg_num(rs, "low_freq_factor", 1.0, &h->rope_low, path, err) ||
        cfg_num(rs, "high_freq_factor", 4.0, &h->rope_high, path, err) ||
        cfg_num(rs, "original_max_position_embeddings", 8192, &h->rope_orig_ctx, path, err))
        return -1;
    if (!(h->rope_factor > 0) || !(h->rope_high > h->rope_low) || !(h->rope_low > 0))
        return lafn_err_set(err, "%s: key '%s': llama3 factors need factor > 0 and high_freq_factor > low_freq_factor > 0",
                            path, keyname);
    return 1;
}

/* Gemma 3: which layers are global. Uses layer_types when present, else the pattern (default 6). */
static int gemma_pattern(const cJSON *o, model_config *c, const char *path, lafn_err *err) {
    int p;
    if (cfg_int(o, "sliding_window_pattern", 6, &p, path, err)) return -1;
    if (cJSON_GetObjectItemCaseSensitive(o, "_sliding_window_pattern") && !cJSON_GetObjectItemCaseSensitive(o, "sliding_window_pattern") &&
        cfg_int(o, "_sliding_window_pattern", 6, &p, path, err))
        return -1;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(o, "layer_types");
    if (!lt) return c->sliding_pattern = p, 0;
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->n_layer)
        return lafn_err_set(err, "%s: key 'layer_types' is not an array of %d strings", path, c->n_layer);
    unsigned char is_local[1 << 12];
    if (c->n_layer > (int)sizeof is_local) return lafn_err_set(err, "%s: %d layers is too many", path, c->n_layer);
    int ok = 1;
    for (int i = 0; i < c->n_layer; i++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(lt, i));
        is_local[i] = s && strcmp(s, "sliding_attention") == 0;
        ok &= s && (is_local[i] || strcmp(s, "full_attention") == 0);
    }
    if (ok && model_pattern_from_flags(is_local, c->n_layer, p, &c->sliding_pattern) == 0) return 0;
    return lafn_err_set(err, "%s: key 'layer_types' is not 'full_attention' every N-th layer and 'sliding_attention' "
                        "otherwise (the only layout supported)", path);
}

static int gemma_config(hf_model *h, const cJSON *o, model_config *c, const char *path, lafn_err *err) {
    double qpas = 0, local = 10000, softcap = 0;
    const cJSON *rp = cfg_obj(o, "rope_parameters");
    const cJSON *full = rp ? cfg_obj(rp, "full_attention") : NULL, *slide = rp ? cfg_obj(rp, "sliding_attention") : NULL;
    if (full && cfg_num(full, "rope_theta", h->rope_theta, &h->rope_theta, path, err)) return -1;
    if (slide && cfg_num(slide, "rope_theta", local, &local, path, err)) return -1;
    if (cfg_num(o, "rope_local_base_freq", local, &local, path, err) ||
        cfg_num(o, "query_pre_attn_scalar", 256, &qpas, path, err) ||
        cfg_int(o, "sliding_window", 4096, &c->sliding_window, path, err) || gemma_pattern(o, c, path, err))
        return -1;
    if (rope_scaling(h, full, "rope_parameters.full_attention", path, err) ||
        rope_scaling(h, slide, "rope_parameters.sliding_attention", path, err) ||
        rope_scaling(h, cfg_obj(o, "rope_scaling"), "rope_scaling", path, err))
        return -1;
    if (cfg_num(o, "final_logit_softcapping", 0, &softcap, path, err) || softcap != 0 ||
        cfg_num(o, "attn_logit_softcapping", 0, &softcap, path, err) || softcap != 0)
        return lafn_err_set(err, "%s: logit soft-capping (final_logit_softcapping / attn_logit_softcapping) is not supported", path);
    const char *act = cfg_str(o, "hidden_activation");
    if (act && strcmp(act, "gelu_pytorch_tanh") != 0)
        return lafn_err_set(err, "%s: key 'hidden_activation' is '%s'; expected 'gelu_pytorch_tanh'", path, act);
    c->act = MODEL_ACT_GELU_TANH;
    c->rope_base_local = (float)local;
    c->attn_scale = (float)(1.0 / sqrt(qpas));
    c->embed_scale = sqrtf((float)c->d_model);
    c->has_qk_norm = c->has_post_norms = 1;
    return 0;
}

static int llama_config(hf_model *h, const cJSON *o, model_config *c, const char *path, lafn_err *err) {
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(o, "sliding_window"), *usw = cJSON_GetObjectItemCaseSensitive(o, "use_sliding_window");
    int uses_window = c->arch == MODEL_ARCH_QWEN2 ? cJSON_IsTrue(usw) : (sw && !cJSON_IsNull(sw));
    if (uses_window)
        return lafn_err_set(err, "%s: key '%s' enables sliding-window attention on every layer (not supported)", path,
                            c->arch == MODEL_ARCH_QWEN2 ? "use_sliding_window" : "sliding_window");
    const char *act = cfg_str(o, "hidden_act");
    if (act && strcmp(act, "silu") != 0) return lafn_err_set(err, "%s: key 'hidden_act' is '%s'; expected 'silu'", path, act);
    const cJSON *rs = cfg_obj(o, "rope_scaling");
    int r = rope_scaling(h, rs ? rs : cfg_obj(o, "rope_parameters"), rs ? "rope_scaling" : "rope_parameters", path, err);
    if (r < 0) return -1;
    c->has_rope_factors = r == 1;
    c->act = MODEL_ACT_SILU;
    c->rope_base_local = c->rope_base;
    c->attn_scale = (float)(1.0 / sqrt((double)c->head_dim));
    c->embed_scale = 1.0f;
    c->has_qkv_bias = c->arch == MODEL_ARCH_QWEN2;
    return 0;
}

/* model_type → arch; Gemma 3 multimodal configs carry the text model in text_config. */
static const cJSON *pick_arch(hf_model *h, const cJSON *root, const char *path, lafn_err *err) {
    const char *mt = cfg_str(root, "model_type");
    if (!mt) mt = "(none)";
    if (strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0) h->arch = MODEL_ARCH_LLAMA;
    else if (strcmp(mt, "qwen2") == 0) h->arch = MODEL_ARCH_QWEN2;
    else if (strcmp(mt, "gemma3_text") == 0) h->arch = MODEL_ARCH_GEMMA3;
    else if (strcmp(mt, "gemma3") == 0 && cfg_obj(root, "text_config")) {
        h->arch = MODEL_ARCH_GEMMA3;
        return cfg_obj(root, "text_config");
    } else {
        lafn_err_set(err, "%s: key 'model_type' is '%s'; expected llama, mistral, qwen2, gemma3_text or gemma3", path, mt);
        return NULL;
    }
    return root;
}

static int hf_config(hf_model *h, const cJSON *root, model_config *c, const char *path, lafn_err *err) {
    memset(c, 0, sizeof *c);
    const cJSON *o = pick_arch(h, root, path, err);
    if (!o) return -1;
    c->arch = h->arch;
    int gemma = h->arch == MODEL_ARCH_GEMMA3;
    double eps = 0, theta = 0;
    if (cfg_int(o, "num_hidden_layers", -1, &c->n_layer, path, err) || cfg_int(o, "hidden_size", -1, &c->d_model, path, err) ||
        cfg_int(o, "intermediate_size", -1, &c->d_ffn, path, err) ||
        cfg_int(o, "num_attention_heads", -1, &c->n_head, path, err) ||
        cfg_int(o, "num_key_value_heads", c->n_head, &c->n_head_kv, path, err) ||
        cfg_int(o, "head_dim", c->n_head ? c->d_model / c->n_head : 0, &c->head_dim, path, err) ||
        cfg_int(o, "vocab_size", -1, &c->vocab, path, err) || cfg_num(o, "rms_norm_eps", 1e-6, &eps, path, err))
        return -1;
    const cJSON *rp = cfg_obj(o, "rope_parameters");
    if (cfg_num(rp ? rp : o, "rope_theta", gemma ? 1e6 : 1e4, &theta, path, err) ||
        cfg_num(o, "rope_theta", theta, &h->rope_theta, path, err))
        return -1;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(o, "tie_word_embeddings");
    if (!tie) tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    c->tied_output = tie ? cJSON_IsTrue(tie) : gemma;
    if (gemma ? gemma_config(h, o, c, path, err) : llama_config(h, o, c, path, err)) return -1;
    c->norm_eps = (float)eps;
    c->rope_base = (float)h->rope_theta;
    if (!gemma) c->rope_base_local = c->rope_base;
    h->head_dim = c->head_dim;
    return model_config_check(c, path, err);
}

/* ---- safetensors files ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists dir/ *.safetensors sorted by name into a malloc'ed array of malloc'ed names. */
static int list_files(const char *dir, char ***out, size_t *n, lafn_err *err) {
    DIR *d = opendir(dir);
    if (!d) return lafn_err_set(err, "%s: cannot open folder", dir);
    char **names = calloc(HF_MAX_FILES, sizeof *names);
    *n = 0;
    struct dirent *e;
    int rc = names ? 0 : lafn_err_set(err, "%s: out of memory", dir);
    while (rc == 0 && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 12 || strcmp(e->d_name + len - 12, ".safetensors") != 0) continue;
        if (*n == HF_MAX_FILES) rc = lafn_err_set(err, "%s: more than %d safetensors files", dir, HF_MAX_FILES);
        else if (!(names[(*n)++] = strdup(e->d_name))) rc = lafn_err_set(err, "%s: out of memory", dir);
    }
    closedir(d);
    if (rc == 0 && *n == 0) rc = lafn_err_set(err, "%s: no *.safetensors files in the folder", dir);
    if (rc == 0) qsort(names, *n, sizeof *names, cmp_str);
    *out = names;
    return rc;
}

static int open_files(hf_model *h, lafn_err *err) {
    char **names = NULL;
    size_t n = 0;
    int rc = list_files(h->dir, &names, &n, err);
    if (rc == 0 && !(h->files = calloc(n, sizeof *h->files))) rc = lafn_err_set(err, "%s: out of memory", h->dir);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = strlen(h->dir) + strlen(names[i]) + 2;
        char *p = malloc(len);
        if (!p) rc = lafn_err_set(err, "%s: out of memory", h->dir);
        else snprintf(p, len, "%s/%s", h->dir, names[i]);
        if (rc == 0 && (rc = safetensors_open(&h->files[i], p, err)) == 0) h->n_files++;
        free(p);
    }
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* Finds a tensor in any file; sets *file. NULL if absent. */
static const safetensors_tensor *find_any(const hf_model *h, const char *name, const safetensors_file **file) {
    for (size_t i = 0; i < h->n_files; i++) {
        const safetensors_tensor *t = safetensors_find(h->files[i], name);
        if (t) return *file = h->files[i], t;
    }
    return NULL;
}

/* Rejects a tensor name present in two files (each file is checked for its own duplicates). */
static int check_no_duplicates(const hf_model *h, lafn_err *err) {
    for (size_t i = 0; i < h->n_files; i++)
        for (size_t j = i + 1; j < h->n_files; j++)
            for (size_t k = 0; k < safetensors_n_tensors(h->files[i]); k++) {
                const char *name = safetensors_tensor_at(h->files[i], k)->name;
                if (safetensors_find(h->files[j], name))
                    return lafn_err_set(err, "%s: tensor '%s' is in both %s and %s", h->dir, name,
                                        safetensors_path(h->files[i]), safetensors_path(h->files[j]));
            }
    return 0;
}

static void pick_prefix(hf_model *h) {
    static const char *prefixes[] = {"model.", "model.language_model.", "language_model.model."};
    static const char *heads[] = {"lm_head.weight", "lm_head.weight", "language_model.lm_head.weight"};
    const safetensors_file *f;
    h->prefix = prefixes[0];
    h->lm_head = heads[0];
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        char name[128];
        snprintf(name, sizeof name, "%sembed_tokens.weight", prefixes[i]);
        if (find_any(h, name, &f)) {
            h->prefix = prefixes[i];
            h->lm_head = heads[i];
            return;
        }
    }
}

/* HF name of a plan slot (GGUF name); returns 0, or -1 if it has none (rope_freqs: computed). */
static int hf_name(const hf_model *h, const char *gguf, char *out, size_t cap) {
    static const struct { const char *g, *hf; } T[] = {
        {"attn_norm.weight", "input_layernorm.weight"},      {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},            {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},            {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},   {"attn_output.weight", "self_attn.o_proj.weight"},
        {"post_attention_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},         {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},         {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
    };
    int layer, n = 0;
    if (strcmp(gguf, "token_embd.weight") == 0) return snprintf(out, cap, "%sembed_tokens.weight", h->prefix), 0;
    if (strcmp(gguf, "output_norm.weight") == 0) return snprintf(out, cap, "%snorm.weight", h->prefix), 0;
    if (strcmp(gguf, "output.weight") == 0) return snprintf(out, cap, "%s", h->lm_head), 0;
    if (sscanf(gguf, "blk.%d.%n", &layer, &n) != 1 || n == 0) return -1;
    const char *rest = gguf + n;
    if (strcmp(rest, "ffn_norm.weight") == 0) {
        const char *s = h->arch == MODEL_ARCH_GEMMA3 ? "pre_feedforward_layernorm" : "post_attention_layernorm";
        return snprintf(out, cap, "%slayers.%d.%s.weight", h->prefix, layer, s), 0;
    }
    for (size_t i = 0; i < sizeof T / sizeof *T; i++)
        if (strcmp(rest, T[i].g) == 0) return snprintf(out, cap, "%slayers.%d.%s", h->prefix, layer, T[i].hf), 0;
    return -1;
}

/* ---- the loader interface ---- */

int model_hf_open(hf_model **out, const char *dir, model_config *cfg, char **name, lafn_err *err) {
    *out = NULL;
    hf_model *h = calloc(1, sizeof *h);
    cJSON *root = NULL;
    char path[4096];
    if (!h || !(h->dir = strdup(dir))) {
        free(h);
        return lafn_err_set(err, "%s: out of memory", dir);
    }
    size_t len = strlen(h->dir);
    while (len > 1 && h->dir[len - 1] == '/') h->dir[--len] = '\0';
    snprintf(path, sizeof path, "%s/config.json", h->dir);
    if (!(root = read_json(path, err)) || hf_config(h, root, cfg, path, err) || open_files(h, err) ||
        check_no_duplicates(h, err))
        goto fail;
    pick_prefix(h);
    const char *base = strrchr(h->dir, '/');
    if (!(*name = strdup(base ? base + 1 : h->dir))) {
        lafn_err_set(err, "%s: out of memory", dir);
        goto fail;
    }
    cJSON_Delete(root);
    *out = h;
    return 0;
fail:
    cJSON_Delete(root);
    model_hf_close(h);
    return -1;
}

int model_hf_check(hf_model *h, const model_plan *p, lafn_err *err) {
    for (size_t i = 0; i < p->n; i++) {
        const model_slot *s = &p->v[i];
        char name[160];
        const safetensors_file *f;
        if (hf_name(h, s->name, name, sizeof name)) continue; /* computed, not read */
        const safetensors_tensor *t = find_any(h, name, &f);
        if (!t) return lafn_err_set(err, "%s: tensor '%s' (%s) is missing from the *.safetensors files", h->dir, name, s->name);
        int ok = s->is_matrix ? (t->n_dims == 2 && t->shape[0] == s->rows && t->shape[1] == s->cols)
                              : (t->n_dims == 1 && t->shape[0] == s->cols);
        if (ok) continue;
        char got[96], want[64];
        int k = snprintf(got, sizeof got, "[");
        for (int d = 0; d < t->n_dims && d < 4; d++)
            k += snprintf(got + k, sizeof got - (size_t)k, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
        snprintf(got + k, sizeof got - (size_t)k, "]");
        if (s->is_matrix) snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)s->rows, (unsigned long long)s->cols);
        else snprintf(want, sizeof want, "[%llu]", (unsigned long long)s->cols);
        return lafn_err_set(err, "%s: tensor '%s' has shape %s; expected %s", safetensors_path(f), name, got, want);
    }
    return 0;
}

/* Llama 3 rope_freq_factors (divisors of each frequency), as llama.cpp's converter computes them. */
static void llama3_factors(const hf_model *h, float *dst) {
    double lo_wavelen = h->rope_orig_ctx / h->rope_low, hi_wavelen = h->rope_orig_ctx / h->rope_high;
    for (int i = 0; i < h->head_dim / 2; i++) {
        float freq = 1.0f / powf((float)h->rope_theta, (float)(2 * i) / (float)h->head_dim);
        double wavelen = 2 * M_PI / freq;
        if (wavelen < hi_wavelen) dst[i] = 1.0f;
        else if (wavelen > lo_wavelen) dst[i] = (float)h->rope_factor;
        else {
            double smooth = (h->rope_orig_ctx / wavelen - h->rope_low) / (h->rope_high - h->rope_low);
            dst[i] = (float)(1.0 / ((1 - smooth) / h->rope_factor + smooth));
        }
    }
}

int model_hf_fill(hf_model *h, const model_plan *p, float *block, lafn_err *err) {
    for (size_t i = 0; i < p->n; i++) {
        const model_slot *s = &p->v[i];
        char name[160];
        const safetensors_file *f;
        float *dst = block + s->off;
        if (hf_name(h, s->name, name, sizeof name)) {
            llama3_factors(h, dst); /* the only computed slot: rope_freqs.weight */
            continue;
        }
        const safetensors_tensor *t = find_any(h, name, &f);
        if (!t || safetensors_to_f32(t, 0, s->rows * s->cols, dst))
            return lafn_err_set(err, "%s: tensor '%s' cannot be read", h->dir, name);
        if (s->flags & SLOT_NORM_ADD_ONE)
            for (uint64_t k = 0; k < s->rows * s->cols; k++) dst[k] += 1.0f;
    }
    return 0;
}

int model_hf_hash(hf_model *h, char hex[65], uint64_t *bytes, lafn_err *err) {
    sha256_ctx ctx;
    uint8_t dig[32];
    sha256_init(&ctx);
    *bytes = 0;
    for (size_t i = 0; i < h->n_files; i++) {
        sha256_update(&ctx, safetensors_file_bytes(h->files[i]), (size_t)safetensors_file_size(h->files[i]));
        *bytes += safetensors_file_size(h->files[i]);
    }
    sha256_final(&ctx, dig);
    sha256_hex(dig, hex);
    return 0;
}

void model_hf_close(hf_model *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n_files; i++) safetensors_close(h->files[i]);
    free(h->files);
    free(h->dir);
    free(h);
}
