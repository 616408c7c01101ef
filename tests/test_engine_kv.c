/* test_engine_kv: the KV cache against the full forward — prefill, batched steps of sequences of different lengths, multi-token appends, forks and edits — on every architecture (tiny HF and GGUF, real Gemma 3 270M and SmolLM2), past the sliding window. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "engine/engine.h"
#include "engine/engine_kv.h"
#include "model/model.h"
#include "testutil.h"

/* max |Δ logit| over every compared position, relative to the largest |logit|
 * of the full forward there: both sides are fp32 with the same kernels; only
 * the attention's blocks (and so its order of summation) differ. */
#define TOL_REL 1e-4

enum { B = 4, FORK_SEQ = 3, FORK_FROM = 1, N_EDIT = 3 };

/* Four sequences; sequence 3 shares sequence 1's prefill, fork = pre[1] tokens (its cache is forked). */
typedef struct {
    int len[B], pre[B], fork;
    int32_t *tok;   /* (N) packed */
    size_t off[B];  /* first token of each */
    size_t N;
} seq_set;

typedef struct {
    engine_edit ed;          /* for the full forward: seq_mask (n, B) */
    engine_edit ed_kv;       /* for the cache: seq_mask (n, S) over slots */
    int layer[N_EDIT], neuron[N_EDIT];
    float *delta;
    uint8_t mask[N_EDIT * B], mask_kv[N_EDIT * 16];
} test_edit;

/* One compared output: the cache's logits after token pos of sequence b. */
typedef struct {
    int b, pos;
} record;

static void seqs_make(seq_set *s, const model *m, const int *len, const int *pre, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->fork = pre[FORK_FROM];
    for (int b = 0; b < B; b++) s->len[b] = len[b], s->pre[b] = pre[b], s->off[b] = s->N, s->N += (size_t)len[b];
    s->tok = malloc(s->N * sizeof *s->tok);
    for (size_t i = 0; i < s->N; i++) s->tok[i] = (int32_t)rng_below(&seed, (uint64_t)m->cfg.vocab);
    memcpy(s->tok + s->off[FORK_SEQ], s->tok + s->off[FORK_FROM], (size_t)s->fork * sizeof *s->tok);
}

/* Slot of sequence b: backwards from the top, with slots left unused. */
static int slot_of(int b, int S) { return S - 1 - b; }

/* A value-vector or activation-offset edit on neurons of the first and last
 * layers, applied to sequences 1 and 3 (a fork shares its prefix's edit) only. */
static void edit_make(test_edit *e, const model *m, engine_edit_kind kind, int S) {
    int L = m->cfg.n_layer, F = m->cfg.d_ffn, D = m->cfg.d_model;
    size_t width = kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)D : 1;
    uint64_t seed = 7;
    e->delta = malloc(N_EDIT * width * sizeof *e->delta);
    for (size_t i = 0; i < N_EDIT * width; i++) e->delta[i] = (float)(rng_uniform(&seed) - 0.5) * 2.0f;
    for (int i = 0; i < N_EDIT; i++) {
        e->layer[i] = i == 0 ? 0 : L - 1;
        e->neuron[i] = (int)rng_below(&seed, (uint64_t)F);
        memset(e->mask_kv + i * S, 0, (size_t)S);
        for (int b = 0; b < B; b++) {
            e->mask[i * B + b] = b == FORK_FROM || b == FORK_SEQ;
            e->mask_kv[i * S + slot_of(b, S)] = e->mask[i * B + b];
        }
    }
    e->ed = (engine_edit){.kind = kind, .n = N_EDIT, .layer = e->layer, .neuron = e->neuron, .delta = e->delta,
                          .seq_mask = e->mask};
    e->ed_kv = e->ed;
    e->ed_kv.seq_mask = e->mask_kv;
}

/* Keeps the logits of the last call (rows = the call's sequences) as records. */
static void keep(const engine_kv *kv, int V, const int *bs, int n, const int *pos, float *store, record *rec,
                 size_t *n_rec) {
    for (int i = 0; i < n; i++) {
        memcpy(store + *n_rec * (size_t)V, engine_kv_logits(kv) + (size_t)i * (size_t)V, (size_t)V * sizeof(float));
        rec[(*n_rec)++] = (record){.b = bs[i], .pos = pos[i]};
    }
}

/* Appends up to `chunk` next tokens of every unfinished sequence in one call (chunk 1: a step). */
static int kv_append(engine_kv *kv, const seq_set *s, int *done, int chunk, int S, const engine_edit *ed, int V,
                     float *store, record *rec, size_t *n_rec) {
    int bs[B], slots[B], n_new[B], pos[B], n = 0;
    int32_t toks[B * 8];
    size_t t = 0;
    for (int b = 0; b < B; b++) {
        int take = s->len[b] - done[b] < chunk ? s->len[b] - done[b] : chunk;
        if (take <= 0) continue;
        take = take > 8 ? 8 : take;
        memcpy(toks + t, s->tok + s->off[b] + done[b], (size_t)take * sizeof *toks);
        t += (size_t)take;
        bs[n] = b, slots[n] = slot_of(b, S), n_new[n] = take, done[b] += take, pos[n++] = done[b] - 1;
    }
    if (n == 0) return 0;
    lafn_err err = {{0}};
    int rc = chunk == 1 ? engine_kv_step(kv, n, slots, toks, ed, &err) : engine_kv_prefill(kv, n, slots, n_new, toks, ed, &err);
    CHECK(rc == 0, "append: %s", err.msg);
    if (rc == 0) keep(kv, V, bs, n, pos, store, rec, n_rec);
    return rc == 0 ? n : 0;
}

/* Runs the schedule on the cache: prefill 0-2, fork 1 → 3, two steps, a
 * multi-token append, then steps to the end. Returns the records kept. */
static size_t kv_schedule(engine_kv *kv, const seq_set *s, int S, const engine_edit *ed, int V, float *store,
                          record *rec) {
    lafn_err err = {{0}};
    int done[B] = {0}, slots[3], pos[3], bs[3] = {0, 1, 2};
    size_t n_rec = 0, off = 0;
    for (int b = 0; b < B; b++) CHECK(engine_kv_reset(kv, slot_of(b, S), &err) == 0, "reset: %s", err.msg);
    for (int b = 0; b < 3; b++) slots[b] = slot_of(b, S), done[b] = s->pre[b], pos[b] = s->pre[b] - 1;
    int32_t *toks = malloc(s->N * sizeof *toks);
    for (int b = 0; b < 3; off += (size_t)s->pre[b++]) memcpy(toks + off, s->tok + s->off[b], (size_t)s->pre[b] * sizeof *toks);
    int rc = engine_kv_prefill(kv, 3, slots, s->pre, toks, ed, &err);
    free(toks);
    CHECK(rc == 0, "prefill: %s", err.msg);
    if (rc) return 0;
    keep(kv, V, bs, 3, pos, store, rec, &n_rec);
    CHECK(engine_kv_fork(kv, slot_of(FORK_FROM, S), slot_of(FORK_SEQ, S), &err) == 0, "fork: %s", err.msg);
    CHECK(engine_kv_len(kv, slot_of(FORK_SEQ, S)) == (size_t)s->fork, "forked slot holds %zu tokens, expected %d",
          engine_kv_len(kv, slot_of(FORK_SEQ, S)), s->fork);
    done[FORK_SEQ] = s->fork;
    for (int i = 0; i < 2; i++) kv_append(kv, s, done, 1, S, ed, V, store, rec, &n_rec);
    kv_append(kv, s, done, 6, S, ed, V, store, rec, &n_rec);
    while (kv_append(kv, s, done, 1, S, ed, V, store, rec, &n_rec) > 0) {}
    return n_rec;
}

/* The full forward's logits at the records' positions; returns max |Δ| / max |logit|. */
static double compare_full(const model *m, const seq_set *s, const engine_edit *ed, const float *store,
                           const record *rec, size_t n_rec) {
    int V = m->cfg.vocab, *lp = malloc(n_rec * sizeof *lp);
    for (size_t r = 0; r < n_rec; r++) lp[r] = (int)s->off[rec[r].b] + rec[r].pos;
    engine_run *run = NULL;
    lafn_err err = {{0}};
    engine_batch batch = {.n_seq = B, .seq_len = s->len, .tokens = s->tok};
    engine_forward_opts fo = engine_forward_defaults();
    fo.edit = ed;
    fo.logit_pos = lp;
    fo.n_logit_pos = (int)n_rec;
    double worst = INFINITY;
    if (engine_run_init(&run, m, s->N, n_rec, &err) || engine_forward(run, &batch, &fo, &err)) {
        CHECK(0, "full forward: %s", err.msg);
    } else {
        double dmax = 0.0, scale = 0.0;
        const float *full = engine_logits(run);
        for (size_t i = 0; i < n_rec * (size_t)V; i++) {
            double d = fabs((double)full[i] - store[i]);
            dmax = d > dmax ? d : dmax;
            scale = fabs(full[i]) > scale ? fabs(full[i]) : scale;
        }
        worst = dmax / scale;
    }
    engine_run_free(run);
    free(lp);
    return worst;
}

/* The cache (unedited, and with each edit kind) against the full forward on one model. */
static void check_model(const char *tag, const char *path, const int *len, const int *pre, int n_edit_kinds) {
    model *m = NULL;
    engine_kv *kv = NULL;
    lafn_err err = {{0}};
    int S = B + 2, maxlen = 0;
    for (int b = 0; b < B; b++) maxlen = len[b] > maxlen ? len[b] : maxlen;
    if (model_load(&m, testutil_repo_path(path), MPI_COMM_NULL, &err) ||
        engine_kv_init(&kv, m, (size_t)S, (size_t)maxlen, &err)) {
        CHECK(0, "%s: %s", tag, err.msg);
        model_free(m);
        return;
    }
    seq_set s;
    seqs_make(&s, m, len, pre, 12345);
    int V = m->cfg.vocab;
    float *store = malloc(s.N * (size_t)V * sizeof *store);
    record *rec = malloc(s.N * sizeof *rec);
    static const char *const kinds[] = {"unedited", "value-vector edit", "activation-offset edit"};
    for (int k = 0; k < 1 + n_edit_kinds; k++) {
        test_edit e = {0};
        if (k > 0) edit_make(&e, m, k == 1 ? ENGINE_EDIT_VALUE_VECTOR : ENGINE_EDIT_ACTIVATION_OFFSET, S);
        size_t n_rec = kv_schedule(kv, &s, S, k ? &e.ed_kv : NULL, V, store, rec);
        double rel = compare_full(m, &s, k ? &e.ed : NULL, store, rec, n_rec);
        printf("%-22s %-24s %3zu positions (lengths %d %d %d %d, window %d): max |Δ logit| / max |logit| = %.2e\n",
               tag, kinds[k], n_rec, len[0], len[1], len[2], len[3], m->cfg.sliding_window, rel);
        CHECK(rel <= TOL_REL, "%s %s: cache vs full forward %.3e > %.0e", tag, kinds[k], rel, TOL_REL);
        for (int b = 0; b < B; b++) {
            int last = 0;
            for (size_t r = 0; r < n_rec; r++) last |= rec[r].b == b && rec[r].pos == len[b] - 1;
            CHECK(last, "%s: the schedule never reached sequence %d's last token", tag, b);
        }
        free(e.delta);
    }
    free(store);
    free(rec);
    free(s.tok);
    engine_kv_free(kv);
    model_free(m);
}

/* Refusals leave the cache as it was. */
static void check_errors(void) {
    model *m = NULL;
    engine_kv *kv = NULL;
    lafn_err err = {{0}};
    if (model_load(&m, testutil_repo_path("tests/fixtures/models/tiny-llama.gguf"), MPI_COMM_NULL, &err) ||
        engine_kv_init(&kv, m, 2, 8, &err)) {
        CHECK(0, "errors setup: %s", err.msg);
        model_free(m);
        return;
    }
    int slots2[2] = {0, 0}, len5[1] = {5}, one[1] = {0};
    int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bad[1] = {m->cfg.vocab};
    CHECK(engine_kv_prefill(kv, 1, one, len5, toks, NULL, &err) == 0, "prefill: %s", err.msg);
    CHECK(engine_kv_step(kv, 2, slots2, toks, NULL, &err) == -1 && strstr(err.msg, "twice"), "repeated slot: '%s'", err.msg);
    CHECK(engine_kv_prefill(kv, 1, one, len5, toks, NULL, &err) == -1 && strstr(err.msg, "max_len"),
          "past max_len: '%s'", err.msg);
    CHECK(engine_kv_step(kv, 1, one, bad, NULL, &err) == -1 && strstr(err.msg, "outside"), "bad token: '%s'", err.msg);
    CHECK(engine_kv_fork(kv, 0, 2, &err) == -1 && strstr(err.msg, "outside"), "fork to slot 2: '%s'", err.msg);
    CHECK(engine_kv_len(kv, 0) == 5, "a refused call changed the cache: %zu tokens", engine_kv_len(kv, 0));
    engine_kv_free(kv);
    model_free(m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    /* lengths and prefill lengths (sequence 3 forks sequence 1's prefill) */
    static const int tl[B] = {13, 40, 7, 25}, tp[B] = {5, 9, 1, 0};
    static const char *const arch[] = {"llama", "qwen2", "gemma3"};
    char tag[64], path[256];
    for (int a = 0; a < 3; a++)
        for (int fmt = 0; fmt < 2; fmt++) {
            snprintf(tag, sizeof tag, "tiny-%s (%s)", arch[a], fmt ? "GGUF" : "HF");
            snprintf(path, sizeof path, "tests/fixtures/models/tiny-%s%s", arch[a], fmt ? ".gguf" : "");
            check_model(tag, path, tl, tp, 2);
        }
    /* a 600-token prefill: two chunks of the cache's work buffer, far past the window of 4 */
    static const int ll[B] = {620, 30, 12, 40}, lpre[B] = {600, 20, 3, 0};
    check_model("tiny-gemma3 long", "tests/fixtures/models/tiny-gemma3.gguf", ll, lpre, 1);
    /* Gemma 3 270M: sliding window 512 on 5 of 6 layers; sequence 0 steps across it */
    static const int gl[B] = {530, 30, 9, 40}, gp[B] = {505, 12, 2, 0};
    check_model("gemma-3-270m", "models/gemma-3-270m-q4_k_m.gguf", gl, gp, 1);
    static const int sl[B] = {21, 40, 9, 30}, sp[B] = {14, 25, 2, 0};
    check_model("SmolLM2-135M", "models/SmolLM2-135M-Instruct.Q4_1.gguf", sl, sp, 1);
    check_errors();
    int rc = testutil_finish("test_engine_kv");
    MPI_Finalize();
    return rc;
}
