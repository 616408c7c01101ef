/* bench_forward: forward tokens/s, backward/forward time ratio and peak memory of the engine on a prompt batch. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

char *openblas_get_corename(void);
int openblas_get_num_threads(void);

enum { BENCH_MAX_PROMPTS = 4096, BENCH_MAX_TOKENS = 1 << 16 };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads "lang<TAB>text" lines and tokenizes them; returns the number of prompts or -1. */
static int read_prompts(const char *path, const model *m, int32_t *tokens, int *seq_len, size_t *n_tokens) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "bench_forward: cannot open %s\n", path); return -1; }
    char line[8192];
    int n = 0;
    *n_tokens = 0;
    lafn_err err = {{0}};
    while (n < BENCH_MAX_PROMPTS && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        size_t got = 0;
        if (tokenizer_encode(m->tok, tab + 1, strlen(tab + 1), tokenizer_adds_bos(m->tok), tokens + *n_tokens,
                             BENCH_MAX_TOKENS - *n_tokens, &got, &err) != 0 ||
            *n_tokens + got > BENCH_MAX_TOKENS) {
            fprintf(stderr, "bench_forward: %s\n", err.msg[0] ? err.msg : "too many tokens");
            fclose(f);
            return -1;
        }
        seq_len[n++] = (int)got;
        *n_tokens += got;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_forward MODEL PROMPTS.tsv IDS_OUT [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    MPI_Init(&argc, &argv);
    lafn_err err = {{0}};
    model *m = NULL;
    engine_run *run = NULL;
    static int32_t tokens[BENCH_MAX_TOKENS];
    static int seq_len[BENCH_MAX_PROMPTS], last_pos[BENCH_MAX_PROMPTS];
    if (model_load(&m, argv[1], MPI_COMM_NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    size_t n_tokens = 0;
    int n_seq = read_prompts(argv[2], m, tokens, seq_len, &n_tokens);
    if (n_seq <= 0) return 1;
    FILE *ids = fopen(argv[3], "w");
    if (!ids) { fprintf(stderr, "bench_forward: cannot write %s\n", argv[3]); return 1; }
    for (int s = 0, off = 0; s < n_seq; off += seq_len[s++]) {
        for (int t = 0; t < seq_len[s]; t++) fprintf(ids, "%s%d", t ? " " : "", tokens[off + t]);
        fprintf(ids, "\n");
        last_pos[s] = off + seq_len[s] - 1;
    }
    fclose(ids);
    if (engine_run_init(&run, m, n_tokens, (size_t)n_seq, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    engine_batch batch = {.n_seq = n_seq, .seq_len = seq_len, .tokens = tokens};
    engine_forward_opts fo = engine_forward_defaults();
    fo.logit_pos = last_pos;
    fo.n_logit_pos = n_seq;
    float *dlogits = malloc((size_t)n_seq * m->cfg.vocab * sizeof *dlogits);
    int32_t *target = malloc((size_t)n_seq * sizeof *target);
    for (int s = 0; s < n_seq; s++) target[s] = tokens[last_pos[s]];
    double best_fwd = 1e30, best_bwd = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_seconds();
        if (engine_forward(run, &batch, &fo, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double t1 = now_seconds();
        engine_nll(engine_logits(run), n_seq, m->cfg.vocab, target, NULL, NULL, dlogits);
        double t2 = now_seconds();
        if (engine_backward(run, dlogits, 0, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double t3 = now_seconds();
        if (t1 - t0 < best_fwd) best_fwd = t1 - t0;
        if (t3 - t2 < best_bwd) best_bwd = t3 - t2;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("kernel=%s threads=%d prompts=%d tokens=%zu forward_s=%.3f forward_tok_per_s=%.1f "
           "backward_s=%.3f backward_over_forward=%.2f peak_rss_mb=%.0f\n",
           openblas_get_corename(), openblas_get_num_threads(), n_seq, n_tokens, best_fwd, n_tokens / best_fwd,
           best_bwd, best_bwd / best_fwd, ru.ru_maxrss / 1024.0);
    free(dlogits);
    free(target);
    engine_run_free(run);
    model_free(m);
    MPI_Finalize();
    return 0;
}
