/* test_gguf_bad: writes a tiny valid Llama GGUF, then corrupted variants; each must fail with a message naming the fault. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "model/model.h"
#include "testutil.h"

/* Tiny Llama: L 1, D 32, F 64, H 2, K 1, E 16, V 40. */
enum { D = 32, F = 64, H = 2, KV = 1, E = 16, V = 40 };

typedef enum {
    BAD_NONE, BAD_MAGIC, BAD_VERSION1, BAD_NTENSORS, BAD_NKV, BAD_STRLEN, BAD_ARRAY_COUNT, BAD_OFFSET_PAST_END,
    BAD_MISALIGNED, BAD_TYPE, BAD_NDIMS5, BAD_TRUNCATED, BAD_MISSING_TENSOR, BAD_SHAPE, BAD_MISSING_KEY,
    BAD_DUP_TENSOR, BAD_NE_OVERFLOW, BAD_ALIGNMENT,
} bad_kind;

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_u32(buf *b, const char *k, uint32_t v) { put_str(b, k); put_u32(b, GGUF_TYPE_UINT32); put_u32(b, v); }
static void kv_f32(buf *b, const char *k, float v) { put_str(b, k); put_u32(b, GGUF_TYPE_FLOAT32); put(b, &v, 4); }
static void kv_str(buf *b, const char *k, const char *v) { put_str(b, k); put_u32(b, GGUF_TYPE_STRING); put_str(b, v); }

typedef struct {
    const char *name;
    int n_dims;
    uint64_t ne[4];
} tdesc;

/* The tensors of the tiny model, in file order. */
static size_t tensor_list(tdesc *t) {
    size_t n = 0;
    t[n++] = (tdesc){"token_embd.weight", 2, {D, V}};
    t[n++] = (tdesc){"output_norm.weight", 1, {D}};
    t[n++] = (tdesc){"blk.0.attn_norm.weight", 1, {D}};
    t[n++] = (tdesc){"blk.0.attn_q.weight", 2, {D, H * E}};
    t[n++] = (tdesc){"blk.0.attn_k.weight", 2, {D, KV * E}};
    t[n++] = (tdesc){"blk.0.attn_v.weight", 2, {D, KV * E}};
    t[n++] = (tdesc){"blk.0.attn_output.weight", 2, {H * E, D}};
    t[n++] = (tdesc){"blk.0.ffn_norm.weight", 1, {D}};
    t[n++] = (tdesc){"blk.0.ffn_gate.weight", 2, {D, F}};
    t[n++] = (tdesc){"blk.0.ffn_up.weight", 2, {D, F}};
    t[n++] = (tdesc){"blk.0.ffn_down.weight", 2, {F, D}};
    return n;
}

/* Metadata: architecture, sizes and a small SentencePiece-style vocabulary; returns the record count. */
static uint64_t write_kvs(buf *b, bad_kind bad) {
    uint64_t n = 0;
    kv_str(b, "general.architecture", "llama"), n++;
    if (bad == BAD_STRLEN) { /* general.name claims 2^40 bytes */
        put_str(b, "general.name"), put_u32(b, GGUF_TYPE_STRING), put_u64(b, 1ull << 40), n++;
    } else {
        kv_str(b, "general.name", "tiny"), n++;
    }
    if (bad == BAD_ALIGNMENT) kv_u32(b, "general.alignment", 48), n++;
    kv_u32(b, "llama.block_count", 1), n++;
    kv_u32(b, "llama.embedding_length", D), n++;
    kv_u32(b, "llama.feed_forward_length", F), n++;
    if (bad != BAD_MISSING_KEY) kv_u32(b, "llama.attention.head_count", H), n++;
    kv_u32(b, "llama.attention.head_count_kv", KV), n++;
    kv_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f), n++;
    kv_f32(b, "llama.rope.freq_base", 10000.0f), n++;
    kv_str(b, "tokenizer.ggml.model", "llama"), n++;
    put_str(b, "tokenizer.ggml.tokens"), put_u32(b, GGUF_TYPE_ARRAY), put_u32(b, GGUF_TYPE_STRING), put_u64(b, V), n++;
    for (int i = 0; i < V; i++) {
        char s[16];
        snprintf(s, sizeof s, i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "\xe2\x96\x81w%d", i);
        put_str(b, s);
    }
    put_str(b, "tokenizer.ggml.scores"), put_u32(b, GGUF_TYPE_ARRAY), put_u32(b, GGUF_TYPE_FLOAT32), n++;
    put_u64(b, bad == BAD_ARRAY_COUNT ? (1ull << 62) + 1 : V); /* n * 4 wraps to 4 in 64 bits */
    for (int i = 0; i < V; i++) {
        float score = -(float)i;
        put(b, &score, 4);
    }
    put_str(b, "tokenizer.ggml.token_type"), put_u32(b, GGUF_TYPE_ARRAY), put_u32(b, GGUF_TYPE_INT32), put_u64(b, V), n++;
    for (int i = 0; i < V; i++) put_u32(b, i == 0 ? 2 : i < 3 ? 3 : 1);
    kv_u32(b, "tokenizer.ggml.bos_token_id", 1), n++;
    kv_u32(b, "tokenizer.ggml.eos_token_id", 2), n++;
    return n;
}

/* Writes the tiny model with one fault into path; returns 0 or -1. */
static int write_gguf(const char *path, bad_kind bad) {
    tdesc t[16];
    size_t nt = tensor_list(t);
    if (bad == BAD_MISSING_TENSOR) nt--; /* drops ffn_down */
    if (bad == BAD_SHAPE) t[10].ne[1] = D / 2;
    if (bad == BAD_DUP_TENSOR) t[9].name = t[8].name;
    if (bad == BAD_NE_OVERFLOW) t[0].ne[0] = t[0].ne[1] = 1ull << 40;
    buf kvs = {0}, b = {0};
    uint64_t n_kv = write_kvs(&kvs, bad);
    put(&b, bad == BAD_MAGIC ? "GGUG" : "GGUF", 4);
    put_u32(&b, bad == BAD_VERSION1 ? 1 : 3);
    put_u64(&b, bad == BAD_NTENSORS ? 1ull << 40 : nt);
    put_u64(&b, bad == BAD_NKV ? 1ull << 40 : n_kv);
    put(&b, kvs.p, kvs.n);
    uint64_t off = 0, sizes[16];
    for (size_t i = 0; i < nt; i++) {
        put_str(&b, t[i].name);
        put_u32(&b, bad == BAD_NDIMS5 && i == 1 ? 5 : (uint32_t)t[i].n_dims);
        for (int d = 0; d < t[i].n_dims; d++) put_u64(&b, t[i].ne[d]);
        put_u32(&b, bad == BAD_TYPE && i == 2 ? 77 : GGML_TYPE_F32);
        uint64_t o = off;
        if (bad == BAD_OFFSET_PAST_END && i == 3) o = 1ull << 32;
        if (bad == BAD_MISALIGNED && i == 3) o += 4;
        put_u64(&b, o);
        sizes[i] = bad == BAD_NE_OVERFLOW && i == 0 ? 0 : t[i].ne[0] * (t[i].n_dims > 1 ? t[i].ne[1] : 1) * 4;
        off += (sizes[i] + 31) / 32 * 32;
    }
    while (b.n % 32) put(&b, "", 1);
    for (size_t i = 0; i < nt; i++) {
        for (uint64_t j = 0; j < sizes[i] / 4; j++) {
            float v = (float)sin((double)(i * 1000 + j)) * 0.1f + (t[i].n_dims == 1 ? 1.0f : 0.0f);
            put(&b, &v, 4);
        }
        while (b.n % 32) put(&b, "", 1);
    }
    size_t len = bad == BAD_TRUNCATED ? b.n - 100 : b.n;
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(b.p, 1, len, f) == len ? 0 : -1;
    if (f) fclose(f);
    free(kvs.p);
    free(b.p);
    return rc;
}

typedef struct {
    bad_kind kind;
    const char *what;
    const char *want1, *want2; /* both must appear in the message */
    int via_model;             /* 1: gguf_open succeeds and model_load must fail */
} bad_case;

static const bad_case CASES[] = {
    {BAD_MAGIC, "wrong magic", "bad magic", "GGUF", 0},
    {BAD_VERSION1, "version 1", "version 1", "expected 2 or 3", 0},
    {BAD_NTENSORS, "n_tensors past end", "n_tensors", "cannot fit", 0},
    {BAD_NKV, "n_kv past end", "n_kv", "cannot fit", 0},
    {BAD_STRLEN, "string length past end", "general.name", "past file size", 0},
    {BAD_ARRAY_COUNT, "array count overflow", "tokenizer.ggml.scores", "past file size", 0},
    {BAD_OFFSET_PAST_END, "tensor offset past end", "blk.0.attn_q.weight", "past file size", 0},
    {BAD_MISALIGNED, "misaligned tensor offset", "blk.0.attn_q.weight", "not a multiple of the alignment", 0},
    {BAD_TYPE, "unknown tensor type", "blk.0.attn_norm.weight", "unknown tensor type 77", 0},
    {BAD_NDIMS5, "n_dims 5", "output_norm.weight", "n_dims 5", 0},
    {BAD_TRUNCATED, "truncated data", "blk.0.ffn_down.weight", "truncated", 0},
    {BAD_DUP_TENSOR, "duplicate tensor name", "duplicate tensor name", "blk.0.ffn_gate.weight", 0},
    {BAD_NE_OVERFLOW, "element count overflow", "token_embd.weight", "overflows", 0},
    {BAD_ALIGNMENT, "alignment not a power of two", "general.alignment", "power of two", 0},
    {BAD_MISSING_TENSOR, "missing required tensor", "tensor 'blk.0.ffn_down.weight'", "is missing", 1},
    {BAD_SHAPE, "wrong shape", "tensor 'blk.0.ffn_down.weight' has shape [64, 16]", "expected [64, 32]", 1},
    {BAD_MISSING_KEY, "missing metadata key", "missing metadata key", "llama.attention.head_count'", 1},
};

/* The valid file opens and loads, with the config it declares. */
static void check_valid(const char *path) {
    lafn_err err = {{0}};
    gguf_file *g = NULL;
    model *m = NULL;
    CHECK(write_gguf(path, BAD_NONE) == 0, "cannot write %s", path);
    int rc = gguf_open(&g, path, &err);
    CHECK(rc == 0, "valid file rejected: %s", err.msg);
    if (rc) return;
    uint32_t u;
    const char *s;
    size_t n;
    CHECK(gguf_n_tensors(g) == 11 && gguf_get_u32(g, "llama.embedding_length", &u, &err) == 0 && u == D,
          "valid file: %zu tensors, embedding_length %u", gguf_n_tensors(g), u);
    const gguf_kv *toks = gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(toks && gguf_array_str(toks, 39, &s, &n, &err) == 0 && n == 6 && memcmp(s, "\xe2\x96\x81w39", 6) == 0,
          "token 39 not read back");
    CHECK(toks && gguf_array_str(toks, 40, &s, &n, &err) == -1 && strstr(err.msg, "out of range"),
          "index 40 of 40 tokens not rejected: %s", err.msg);
    CHECK(gguf_get_f32(g, "llama.block_count", NULL, &err) == -1 && strstr(err.msg, "expected float32"),
          "u32 read as f32: %s", err.msg);
    gguf_close(g);
    rc = model_load(&m, path, MPI_COMM_NULL, &err);
    CHECK(rc == 0, "valid tiny model not loaded: %s", err.msg);
    if (rc) return;
    int ok = m->cfg.n_layer == 1 && m->cfg.d_model == D && m->cfg.n_head == H && m->cfg.n_head_kv == KV &&
             m->cfg.head_dim == E && m->cfg.vocab == V && m->cfg.tied_output && m->w.output == m->w.token_embd;
    CHECK(ok, "tiny model config: L %d D %d H %d K %d E %d V %d tied %d", m->cfg.n_layer, m->cfg.d_model,
          m->cfg.n_head, m->cfg.n_head_kv, m->cfg.head_dim, m->cfg.vocab, m->cfg.tied_output);
    model_free(m);
}

/* One corrupted variant: must fail with both expected phrases in the message. */
static void check_bad(const char *path, const bad_case *c) {
    lafn_err err = {{0}};
    gguf_file *g = NULL;
    model *m = NULL;
    CHECK(write_gguf(path, c->kind) == 0, "cannot write %s", path);
    int rc = gguf_open(&g, path, &err);
    if (c->via_model) {
        CHECK(rc == 0, "%s: gguf_open should accept the file: %s", c->what, err.msg);
        gguf_close(g);
        rc = model_load(&m, path, MPI_COMM_NULL, &err);
        model_free(m);
    } else {
        gguf_close(g);
    }
    int ok = rc == -1 && strstr(err.msg, c->want1) && strstr(err.msg, c->want2) && strstr(err.msg, path);
    CHECK(ok, "%s: rc %d, message '%s' lacks '%s' / '%s' / the path", c->what, rc, err.msg, c->want1, c->want2);
    printf("%-30s -> %s\n", c->what, err.msg);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    char dir[] = "/tmp/lafn_gguf_bad_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    check_valid(path);
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) check_bad(path, &CASES[i]);
    lafn_err err = {{0}};
    gguf_file *g = NULL;
    model *m = NULL;
    char missing[96];
    snprintf(missing, sizeof missing, "%s/absent.gguf", dir);
    CHECK(gguf_open(&g, missing, &err) == -1 && strstr(err.msg, "absent.gguf") && strstr(err.msg, "cannot open"),
          "missing path: '%s'", err.msg);
    CHECK(model_load(&m, missing, MPI_COMM_NULL, &err) == -1 && strstr(err.msg, "absent.gguf") &&
              strstr(err.msg, "no such file"), "missing path via model_load: '%s'", err.msg);
    unlink(path);
    rmdir(dir);
    int status = testutil_finish("test_gguf_bad");
    MPI_Finalize();
    return status;
}
