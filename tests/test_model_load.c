/* test_model_load: real GGUF models and tiny HF folders load with the right config, identity and weights (fixtures from gguf-py / transformers). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "testutil.h"
#include "tokenizer.h"

typedef struct {
    const char *tag, *path, *fixture;
    model_config want; /* fields compared below */
    const char *name;
    int n_global;      /* layers that are not sliding-window */
} model_case;

/* Returns the tensor of m named as in GGUF and its row length, or NULL. */
static const float *tensor_by_name(const model *m, const char *name, size_t *cols) {
    const model_config *c = &m->cfg;
    size_t D = (size_t)c->d_model, F = (size_t)c->d_ffn, HE = (size_t)c->n_head * c->head_dim;
    int i, n = 0;
    char rest[64];
    if (strcmp(name, "token_embd.weight") == 0) return *cols = D, m->w.token_embd;
    if (strcmp(name, "output_norm.weight") == 0) return *cols = D, m->w.output_norm;
    if (strcmp(name, "output.weight") == 0) return *cols = D, m->w.output;
    if (sscanf(name, "blk.%d.%63s%n", &i, rest, &n) != 2 || i < 0 || i >= c->n_layer) return NULL;
    const model_layer *l = &m->w.layers[i];
    static const struct { const char *s; size_t off; int cols; } T[] = {
        {"attn_q.weight", offsetof(model_layer, wq), 'D'},   {"attn_k.weight", offsetof(model_layer, wk), 'D'},
        {"attn_v.weight", offsetof(model_layer, wv), 'D'},   {"attn_output.weight", offsetof(model_layer, wo), 'H'},
        {"ffn_gate.weight", offsetof(model_layer, w_gate), 'D'}, {"ffn_up.weight", offsetof(model_layer, w_up), 'D'},
        {"ffn_down.weight", offsetof(model_layer, w_down), 'F'}, {"attn_norm.weight", offsetof(model_layer, attn_norm), 'D'},
        {"ffn_norm.weight", offsetof(model_layer, ffn_norm), 'D'}, {"attn_q_norm.weight", offsetof(model_layer, q_norm), 'E'},
        {"attn_k_norm.weight", offsetof(model_layer, k_norm), 'E'},
        {"post_attention_norm.weight", offsetof(model_layer, post_attn_norm), 'D'},
        {"post_ffw_norm.weight", offsetof(model_layer, post_ffn_norm), 'D'},
        {"attn_q.bias", offsetof(model_layer, bq), 'H'}, {"attn_k.bias", offsetof(model_layer, bk), 'E'},
        {"attn_v.bias", offsetof(model_layer, bv), 'E'},
    };
    for (size_t k = 0; k < sizeof T / sizeof *T; k++) {
        if (strcmp(rest, T[k].s) != 0) continue;
        *cols = T[k].cols == 'D' ? D : T[k].cols == 'F' ? F : T[k].cols == 'H' ? HE : (size_t)c->head_dim;
        return *(float *const *)((const char *)l + T[k].off);
    }
    return NULL;
}

/* Checks every fixture line of this model; returns the number of values that matched. */
static int check_values(const model *m, const char *tag, const char *fixture) {
    FILE *f = fopen(testutil_repo_path(fixture), "r");
    CHECK(f != NULL, "cannot open %s (run the script in tests/reference/ that writes it)", fixture);
    if (!f) return 0;
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
    return good + ident;
}

static int check_config(const model *m, const model_case *mc) {
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
    return ok && fl && n_global == mc->n_global && nulls == 0;
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
    int passed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lafn_err err = {{0}};
        model *m = NULL;
        int rc = model_load(&m, testutil_repo_path(cases[i].path), MPI_COMM_NULL, &err);
        CHECK(rc == 0, "%s: %s", cases[i].tag, err.msg);
        if (rc) continue;
        passed += check_config(m, &cases[i]);
        passed += check_values(m, cases[i].tag, cases[i].fixture);
        model_free(m);
    }
    model_free(NULL);
    int status = testutil_finish("test_model_load", passed);
    MPI_Finalize();
    return status;
}
