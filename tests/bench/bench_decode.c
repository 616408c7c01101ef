/* bench_decode: generation tokens/s of the KV-cache decoder (greedy) at prompt lengths 16, 128 and 512, one sequence and a batch; writes the prompt ids for llamacpp_decode_speed.py. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/decode.h"
#include "engine/engine_kv.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

char *openblas_get_corename(void);
int openblas_get_num_threads(void);

enum { N_LENGTHS = 3, MAX_BATCH = 64 };
static const int lengths[N_LENGTHS] = {16, 128, 512};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The tokens of a text file, as one stream (without BOS); NULL after printing why. */
static int32_t *read_stream(const model *m, const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "bench_decode: cannot open %s\n", path); return NULL; }
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    lafn_err err = {{0}};
    if (!ids || tokenizer_encode(m->tok, text, len, 0, ids, len + 1, n, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        free(ids);
        return NULL;
    }
    return ids;
}

/* Prompts b = 0..B-1 of L tokens: BOS (if the model wants one) and a window of the stream. */
static void make_prompts(const model *m, const int32_t *stream, size_t n_stream, int L, int B, int32_t *tok, int *len) {
    int bos = tokenizer_adds_bos(m->tok) ? tokenizer_bos(m->tok) : -1, k = 0;
    for (int b = 0; b < B; b++) {
        size_t start = ((size_t)b * 977) % (n_stream - (size_t)L);
        if (bos >= 0) tok[k++] = bos;
        for (int i = bos >= 0 ? 1 : 0; i < L; i++) tok[k++] = stream[start + (size_t)i];
        len[b] = L;
    }
}

/* Greedy generation of new tokens for B prompts of length L: prints tokens/s of the steps (prefill timed apart). */
static int bench_one(const model *m, engine_kv *kv, const int32_t *tok, int *len, int L, int B, int new_tokens,
                     FILE *ids_out) {
    engine_batch b = {.n_seq = B, .seq_len = len, .tokens = tok};
    decode_opts o = decode_defaults();
    o.max_new_tokens = new_tokens;
    decode_result out[MAX_BATCH];
    int slots[MAX_BATCH];
    lafn_err err = {{0}};
    for (int i = 0; i < B; i++) slots[i] = i, engine_kv_reset(kv, i, &err);
    double t0 = now_seconds();
    if (engine_kv_prefill(kv, B, slots, len, tok, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    double t1 = now_seconds();
    if (decode_generate(kv, m, &b, &o, out, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    double t2 = now_seconds(), steps = (t2 - t1) - (t1 - t0); /* decode_generate prefills again */
    size_t generated = 0;
    for (int i = 0; i < B; i++) {
        generated += out[i].n + (out[i].why == DECODE_STOP_EOS) - 1; /* the first token comes from the prefill */
        if (ids_out && i == 0) {
            for (int t = 0; t < L; t++) fprintf(ids_out, "%s%d", t ? " " : "", tok[t]);
            fprintf(ids_out, "\n");
        }
        decode_result_free(&out[i]);
    }
    printf("lafn prompt_len=%d batch=%d prefill_s=%.3f new_tokens=%zu decode_s=%.3f tok_per_s=%.1f ms_per_step=%.1f\n", L,
           B, t1 - t0, generated + (size_t)B, steps, generated / steps, 1e3 * steps / (double)(new_tokens - 1));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_decode MODEL TEXT_FILE IDS_OUT NEW_TOKENS BATCH\n");
        return 2;
    }
    int new_tokens = atoi(argv[4]), batch = atoi(argv[5]);
    if (new_tokens < 2 || batch < 1 || batch > MAX_BATCH) { fprintf(stderr, "bench_decode: NEW_TOKENS ≥ 2, BATCH in [1, %d]\n", MAX_BATCH); return 2; }
    MPI_Init(&argc, &argv);
    lafn_err err = {{0}};
    model *m = NULL;
    engine_kv *kv = NULL;
    size_t n_stream = 0;
    int32_t *stream = NULL, *tok = malloc((size_t)MAX_BATCH * 512 * sizeof *tok);
    int len[MAX_BATCH];
    if (model_load(&m, argv[1], MPI_COMM_NULL, &err) ||
        engine_kv_init(&kv, m, (size_t)batch, (size_t)(lengths[N_LENGTHS - 1] + new_tokens), &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    if (!(stream = read_stream(m, argv[2], &n_stream)) || n_stream < 2048) return 1;
    FILE *ids = fopen(argv[3], "w");
    if (!ids) { fprintf(stderr, "bench_decode: cannot write %s\n", argv[3]); return 1; }
    printf("kernel=%s threads=%d model=%s\n", openblas_get_corename(), openblas_get_num_threads(), m->name);
    for (int k = 0; k < N_LENGTHS; k++) {
        make_prompts(m, stream, n_stream, lengths[k], batch, tok, len);
        if (bench_one(m, kv, tok, len, lengths[k], 1, new_tokens, ids) ||
            (batch > 1 && bench_one(m, kv, tok, len, lengths[k], batch, new_tokens, NULL)))
            return 1;
    }
    fclose(ids);
    free(stream);
    free(tok);
    engine_kv_free(kv);
    model_free(m);
    MPI_Finalize();
    return 0;
}
