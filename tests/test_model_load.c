/* test_model_load: real GGUF models and tiny HF folders load with the right config, identity and weights (fixtures from gguf-py / transformers). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *tag, *path, *fixture;
    model_config want; /* fields compared below */
    const char *name;
    int n_global;      /* layers that are not sliding-window */
} model_case;

/* Returns the tensor of m named as in GGUF with its shape (rows, cols), or NULL. */
static const float *tensor_shape(const model *m, const char *name, size_t *rows, size_t *cols) {
    const model_config *c = &m->cfg;
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ffn, E = (size_t)c->head_dim;
    size_t HE = (size_t)c->n_head * E, KE = (size_t)c->n_head_kv * E;
    int i, n = 0;
    char rest[64];
    *rows = 1;
    if (strcmp(name, "token_embd.weight") == 0) return *rows = (size_t)c->vocab, *cols = D, m->w.token_embd;
    if (strcmp(name, "output.weight") == 0) return *rows = (size_t)c->vocab, *cols = D, m->w.output;
    if (strcmp(name, "output_norm.weight") == 0) return *cols = D, m->w.output_norm;
    if (sscanf(name, "blk.%d.%63s%n", &i, rest, &n) != 2 || i < 0 || i >= c->n_layer) return NULL;
    const model_layer *l = &m->w.layers[i];
    const struct { const char *s; const float *p; size_t rows, cols; } T[] = {
        {"attn_q.weight", l->wq, HE, D},         {"attn_k.weight", l->wk, KE, D},       {"attn_v.weight", l->wv, KE, D},
        {"attn_output.weight", l->wo, D, HE},    {"ffn_gate.weight", l->w_gate, F, D},  {"ffn_up.weight", l->w_up, F, D},
        {"ffn_down.weight", l->w_down, D, F},    {"attn_norm.weight", l->attn_norm, 1, D},
        {"ffn_norm.weight", l->ffn_norm, 1, D},  {"attn_q_norm.weight", l->q_norm, 1, E},
        {"attn_k_norm.weight", l->k_norm, 1, E}, {"post_attention_norm.weight", l->post_attn_norm, 1, D},
        {"post_ffw_norm.weight", l->post_ffn_norm, 1, D}, {"attn_q.bias", l->bq, 1, HE},
        {"attn_k.bias", l->bk, 1, KE},           {"attn_v.bias", l->bv, 1, KE},
    };
    for (size_t k = 0; k < sizeof T / sizeof *T; k++)
        if (strcmp(rest, T[k].s) == 0) return *rows = T[k].rows, *cols = T[k].cols, T[k].p;
    return NULL;
}

static const float *tensor_by_name(const model *m, const char *name, size_t *cols) {
    size_t rows;
    return tensor_shape(m, name, &rows, cols);
}

/* The same model as GGUF and as HF folder: identical config and weights (tests both loaders' conventions). */
static void check_same_model(const char *gguf_path, const char *hf_path) {
    static const char *suffixes[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "attn_norm.weight", "ffn_norm.weight",
        "attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight",
        "attn_q.bias", "attn_k.bias", "attn_v.bias"};
    lafn_err err = {{0}};
    model *a = NULL, *b = NULL;
    int ok = model_load(&a, testutil_repo_path(gguf_path), MPI_COMM_NULL, &err) == 0;
    CHECK(ok, "%s", err.msg);
    if (ok) ok = model_load(&b, testutil_repo_path(hf_path), MPI_COMM_NULL, &err) == 0;
    CHECK(ok, "%s", err.msg);
    if (ok) {
        model_config ca = a->cfg, cb = b->cfg;
        ok = memcmp(&ca, &cb, sizeof ca) == 0;
        CHECK(ok, "%s vs %s: configs differ (pattern %d/%d, attn_scale %g/%g, rope %g,%g/%g,%g, window %d/%d)",
              gguf_path, hf_path, ca.sliding_pattern, cb.sliding_pattern, ca.attn_scale, cb.attn_scale, ca.rope_base,
              ca.rope_base_local, cb.rope_base, cb.rope_base_local, ca.sliding_window, cb.sliding_window);
    }
    double worst = 0;
    char worst_name[160] = "";
    for (int i = -1; ok && i < a->cfg.n_layer; i++) {
        for (size_t k = 0; k < (i < 0 ? 3 : sizeof suffixes / sizeof *suffixes); k++) {
            static const char *globals[] = {"token_embd.weight", "output_norm.weight", "output.weight"};
            char name[96];
            size_t rows, cols, rb, cb2;
            if (i < 0) snprintf(name, sizeof name, "%s", globals[k]);
            else snprintf(name, sizeof name, "blk.%d.%s", i, suffixes[k]);
            const float *x = tensor_shape(a, name, &rows, &cols), *y = tensor_shape(b, name, &rb, &cb2);
            CHECK((x == NULL) == (y == NULL), "%s: present in only one of %s / %s", name, gguf_path, hf_path);
            for (size_t e = 0; x && y && e < rows * cols; e++) {
                double d = fabs((double)x[e] - y[e]) / fmax(1.0, fabs(y[e]));
                if (d > worst) worst = d, snprintf(worst_name, sizeof worst_name, "%s[%zu]", name, e);
            }
        }
    }
    printf("%s vs %s: config %s, worst relative weight difference %.3g %s\n", gguf_path, hf_path,
           ok ? "identical" : "DIFFERS", worst, worst_name);
    CHECK(worst <= 1e-6, "%s vs %s: weights differ, worst %s (%.3g)", gguf_path, hf_path, worst_name, worst);
    model_free(a);
    model_free(b);
}

/* Checks every fixture line of this model. */
static void check_values(const model *m, const char *tag, const char *fixture) {
    FILE *f = fopen(testutil_repo_path(fixture), "r");
    CHECK(f != NULL, "cannot open %s (run the script in tests/reference/ that writes it)", fixture);
    if (!f) return;
    char line[512], t[32], name[96], sha[80];
    int good = 0, total = 0, ident = 0;
    double worst = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long bytes;
        size_t r, c, cols;
        double v;
        if (sscanf(line, "model %31s %79s %llu", t, sha, &bytes) == 3 && strcmp(t, tag) == 0) {
            CHECK(strcmp(m->sha256, sha) == 0, "%s: sha256 %s, hashlib says %s", tag, m->sha256, sha);
            CHECK(m->file_bytes == bytes, "%s: file_bytes %llu, expected %llu", tag, (unsigned long long)m->file_bytes, bytes);
            ident += strcmp(m->sha256, sha) == 0 && m->file_bytes == bytes;
            continue;
        }
        if (sscanf(line, "rope %31s %zu %lf", t, &r, &v) == 3 && strcmp(t, tag) == 0) {
            int ok = m->w.rope_freq_factors && r < (size_t)m->cfg.head_dim / 2 &&
                     fabs(m->w.rope_freq_factors[r] - v) <= 1e-5 * fabs(v);
            CHECK(ok, "%s: rope_freq_factors[%zu] = %.9g, transformers %.9g", tag, r,
                  m->w.rope_freq_factors ? m->w.rope_freq_factors[r] : NAN, v);
            ident += ok;
            continue;
        }
        if (sscanf(line, "w %31s %95s %zu %zu %lf", t, name, &r, &c, &v) != 5 || strcmp(t, tag) != 0) continue;
        total++;
        const float *w = tensor_by_name(m, name, &cols);
        CHECK(w != NULL, "%s: tensor '%s' has no pointer", tag, name);
        if (!w) continue;
        double got = w[r * cols + c], e = fabs(got - v);
        worst = fmax(worst, e);
        CHECK(e <= 1e-6 * fmax(1.0, fabs(v)), "%s: %s[%zu, %zu] = %.9g, gguf-py %.9g", tag, name, r, c, got, v);
        good += e <= 1e-6 * fmax(1.0, fabs(v));
    }
    fclose(f);
    printf("%s: %d/%d sampled weights match the reference (max |err| %.3g)\n", tag, good, total, worst);
    CHECK(total >= 50, "%s: only %d fixture values", tag, total);
    CHECK(ident >= 1, "%s: no matching identity line", tag);
}

static void check_config(const model *m, const model_case *mc) {
    const model_config *c = &m->cfg, *w = &mc->want;
    int ok = c->arch == w->arch && c->act == w->act && c->n_layer == w->n_layer && c->d_model == w->d_model &&
             c->d_ffn == w->d_ffn && c->n_head == w->n_head && c->n_head_kv == w->n_head_kv &&
             c->head_dim == w->head_dim && c->vocab == w->vocab && c->sliding_window == w->sliding_window &&
             c->sliding_pattern == w->sliding_pattern && c->has_qkv_bias == w->has_qkv_bias &&
             c->has_qk_norm == w->has_qk_norm && c->has_post_norms == w->has_post_norms &&
             c->tied_output == w->tied_output && c->has_rope_factors == w->has_rope_factors;
    CHECK(ok, "%s: config arch %d act %d L %d D %d F %d H %d K %d E %d V %d window %d pattern %d bias %d qkn %d post %d "
          "tied %d ropef %d", mc->tag, c->arch, c->act, c->n_layer, c->d_model, c->d_ffn, c->n_head, c->n_head_kv,
          c->head_dim, c->vocab, c->sliding_window, c->sliding_pattern, c->has_qkv_bias, c->has_qk_norm,
          c->has_post_norms, c->tied_output, c->has_rope_factors);
    int fl = fabsf(c->norm_eps - w->norm_eps) <= 1e-3f * w->norm_eps && c->rope_base == w->rope_base &&
             c->rope_base_local == w->rope_base_local && fabsf(c->attn_scale - w->attn_scale) < 1e-7f &&
             fabsf(c->embed_scale - w->embed_scale) < 1e-5f;
    CHECK(fl, "%s: eps %g rope %g local %g attn_scale %g embed_scale %g", mc->tag, c->norm_eps, c->rope_base,
          c->rope_base_local, c->attn_scale, c->embed_scale);
    int n_global = 0;
    for (int i = 0; i < c->n_layer; i++) n_global += !model_layer_is_local(c, i);
    CHECK(n_global == mc->n_global, "%s: %d global layers, expected %d", mc->tag, n_global, mc->n_global);
    CHECK(strcmp(m->name, mc->name) == 0, "%s: name '%s', expected '%s'", mc->tag, m->name, mc->name);
    CHECK((m->w.output == m->w.token_embd) == (c->tied_output != 0), "%s: output/token_embd sharing is not tied_output", mc->tag);
    CHECK(m->tok && tokenizer_vocab_size(m->tok) <= c->vocab, "%s: tokenizer missing or larger than the vocabulary", mc->tag);
    CHECK(m->win == MPI_WIN_NULL && m->block && m->block_floats > 0, "%s: private block expected", mc->tag);
    int nulls = ((m->w.layers[0].bq != NULL) != (c->has_qkv_bias != 0)) +
                ((m->w.rope_freq_factors != NULL) != (c->has_rope_factors != 0)) +
                ((m->w.layers[0].q_norm != NULL) != (c->has_qk_norm != 0));
    CHECK(nulls == 0, "%s: optional tensors present that the config does not declare", mc->tag);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    model_case cases[] = {
        {"gemma", "models/gemma-3-270m-q4_k_m.gguf", "tests/fixtures/model_load/values.txt",
         {.arch = MODEL_ARCH_GEMMA3, .act = MODEL_ACT_GELU_TANH, .n_layer = 18, .d_model = 640, .d_ffn = 2048,
          .n_head = 4, .n_head_kv = 1, .head_dim = 256, .vocab = 262144, .norm_eps = 1e-6f, .rope_base = 1e6f,
          .rope_base_local = 1e4f, .sliding_window = 512, .sliding_pattern = 6, .attn_scale = 0.0625f,
          .embed_scale = 25.298221f, .has_qk_norm = 1, .has_post_norms = 1, .tied_output = 1},
         "Gemma 3 270m", 3},
        {"smollm2", "models/SmolLM2-135M-Instruct.Q4_1.gguf", "tests/fixtures/model_load/values.txt",
         {.arch = MODEL_ARCH_LLAMA, .act = MODEL_ACT_SILU, .n_layer = 30, .d_model = 576, .d_ffn = 1536, .n_head = 9,
          .n_head_kv = 3, .head_dim = 64, .vocab = 49152, .norm_eps = 1e-5f, .rope_base = 1e5f, .rope_base_local = 1e5f,
          .attn_scale = 0.125f, .embed_scale = 1.0f, .tied_output = 1},
         "Smollm2 135M 8k Lc100K Mix1 Ep2", 30},
        {"tiny-llama3", "tests/fixtures/hf/tiny-llama3", "tests/fixtures/hf/values.txt",
         {.arch = MODEL_ARCH_LLAMA, .act = MODEL_ACT_SILU, .n_layer = 2, .d_model = 16, .d_ffn = 32, .n_head = 2,
          .n_head_kv = 1, .head_dim = 8, .vocab = 300, .norm_eps = 1e-6f, .rope_base = 1e4f, .rope_base_local = 1e4f,
          .attn_scale = 0.35355339f, .embed_scale = 1.0f, .has_rope_factors = 1},
         "tiny-llama3", 2},
        {"tiny-qwen2", "tests/fixtures/hf/tiny-qwen2/", "tests/fixtures/hf/values.txt",
         {.arch = MODEL_ARCH_QWEN2, .act = MODEL_ACT_SILU, .n_layer = 2, .d_model = 16, .d_ffn = 32, .n_head = 2,
          .n_head_kv = 1, .head_dim = 8, .vocab = 300, .norm_eps = 1e-6f, .rope_base = 1e6f, .rope_base_local = 1e6f,
          .attn_scale = 0.35355339f, .embed_scale = 1.0f, .has_qkv_bias = 1, .tied_output = 1},
         "tiny-qwen2", 2},
        {"tiny-gemma3", "tests/fixtures/hf/tiny-gemma3", "tests/fixtures/hf/values.txt",
         {.arch = MODEL_ARCH_GEMMA3, .act = MODEL_ACT_GELU_TANH, .n_layer = 6, .d_model = 16, .d_ffn = 32, .n_head = 2,
          .n_head_kv = 1, .head_dim = 8, .vocab = 300, .norm_eps = 1e-6f, .rope_base = 1e6f, .rope_base_local = 1e4f,
          .sliding_window = 64, .sliding_pattern = 6, .attn_scale = 0.28867513f, .embed_scale = 4.0f,
          .has_qk_norm = 1, .has_post_norms = 1, .tied_output = 1},
         "tiny-gemma3", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lafn_err err = {{0}};
        model *m = NULL;
        int rc = model_load(&m, testutil_repo_path(cases[i].path), MPI_COMM_NULL, &err);
        CHECK(rc == 0, "%s: %s", cases[i].tag, err.msg);
        if (rc) continue;
        check_config(m, &cases[i]);
        check_values(m, cases[i].tag, cases[i].fixture);
        model_free(m);
    }
    check_same_model("tests/fixtures/models/tiny-llama.gguf", "tests/fixtures/models/tiny-llama");
    check_same_model("tests/fixtures/models/tiny-qwen2.gguf", "tests/fixtures/models/tiny-qwen2");
    check_same_model("tests/fixtures/models/tiny-gemma3.gguf", "tests/fixtures/models/tiny-gemma3");
    model_free(NULL);
    int status = testutil_finish("test_model_load");
    MPI_Finalize();
    return status;
}
