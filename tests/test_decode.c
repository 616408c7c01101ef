/* test_decode: decoding on the KV cache against the cache-less full forward — greedy (tiny models, and 50 multilingual prompts on Gemma 3 270M), with edits; sampling, top-p, beam search (exhaustive check, n best), stop strings. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "engine/decode.h"
#include "engine/engine.h"
#include "engine/engine_kv.h"
#include "facts/facts.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "testutil.h"

enum { MAX_P = 64, MAX_PROMPT = 64, MAX_NEW = 16 };

typedef struct {
    int P;
    int len[MAX_P];
    int32_t tok[MAX_P * MAX_PROMPT]; /* packed */
    size_t N;
} prompt_set;

static void prompts_encode(prompt_set *ps, const model *m, const char *const *texts, int P) {
    memset(ps, 0, sizeof *ps);
    lafn_err err = {{0}};
    for (int p = 0; p < P && p < MAX_P; p++) {
        size_t n = 0;
        if (tokenizer_encode(m->tok, texts[p], strlen(texts[p]), tokenizer_adds_bos(m->tok), ps->tok + ps->N,
                             MAX_PROMPT, &n, &err) || n > MAX_PROMPT) {
            CHECK(0, "encode '%s': %s", texts[p], err.msg);
            return;
        }
        ps->len[ps->P++] = (int)n;
        ps->N += n;
    }
}

static engine_batch prompts_batch(const prompt_set *ps) {
    engine_batch b = {.n_seq = ps->P, .seq_len = ps->len, .tokens = ps->tok};
    return b;
}

/* The cache-less reference: each step re-runs every prompt with the tokens
 * chosen so far as one full forward and takes the argmax; a prompt stops at
 * EOS (not kept) or after max_new tokens. ids (P, MAX_NEW), n (P). */
static void full_greedy(const model *m, const prompt_set *ps, int max_new, const engine_edit *ed, int32_t *ids, int *n) {
    int P = ps->P, V = m->cfg.vocab, len[MAX_P], pos[MAX_P], done[MAX_P] = {0}, eos = tokenizer_eos(m->tok);
    int32_t *tok = malloc((ps->N + (size_t)P * (size_t)max_new) * sizeof *tok);
    engine_run *run = NULL;
    lafn_err err = {{0}};
    if (engine_run_init(&run, m, ps->N + (size_t)P * (size_t)max_new, (size_t)P, &err)) CHECK(0, "run: %s", err.msg);
    for (int p = 0; p < P; p++) n[p] = 0;
    for (int step = 0; run && step < max_new; step++) {
        size_t off = 0, src = 0;
        for (int p = 0; p < P; src += (size_t)ps->len[p++]) {
            memcpy(tok + off, ps->tok + src, (size_t)ps->len[p] * sizeof *tok);
            memcpy(tok + off + ps->len[p], ids + p * MAX_NEW, (size_t)n[p] * sizeof *tok);
            len[p] = ps->len[p] + n[p];
            off += (size_t)len[p];
            pos[p] = (int)off - 1;
        }
        engine_batch b = {.n_seq = P, .seq_len = len, .tokens = tok};
        engine_forward_opts fo = engine_forward_defaults();
        fo.edit = ed, fo.logit_pos = pos, fo.n_logit_pos = P;
        if (engine_forward(run, &b, &fo, &err)) { CHECK(0, "full forward: %s", err.msg); break; }
        for (int p = 0; p < P; p++) {
            const float *z = engine_logits(run) + (size_t)p * (size_t)V;
            int32_t best = 0;
            for (int v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
            if (done[p]) continue;
            if (best == eos) done[p] = 1;
            else ids[p * MAX_NEW + n[p]++] = best;
        }
    }
    engine_run_free(run);
    free(tok);
}

/* Runs decode_generate on a fresh cache sized for the prompts; out (P × n_return). */
static int run_decode(const model *m, const prompt_set *ps, const decode_opts *o, decode_result *out) {
    engine_kv *kv = NULL;
    lafn_err err = {{0}};
    int width = o->mode == DECODE_BEAM ? o->n_beams : o->n_return, maxlen = 0;
    for (int p = 0; p < ps->P; p++) maxlen = ps->len[p] > maxlen ? ps->len[p] : maxlen;
    engine_batch b = prompts_batch(ps);
    int rc = engine_kv_init(&kv, m, (size_t)(ps->P * width), (size_t)(maxlen + o->max_new_tokens), &err);
    if (rc == 0) rc = decode_generate(kv, m, &b, o, out, &err);
    CHECK(rc == 0, "decode_generate: %s", err.msg);
    engine_kv_free(kv);
    return rc;
}

/* Greedy on the cache equals the full-forward reference on every prompt; returns how many agree. */
static int check_greedy(const char *tag, const model *m, const prompt_set *ps, int max_new, const engine_edit *ed) {
    static int32_t ref[MAX_P * MAX_NEW];
    int n_ref[MAX_P], same = 0;
    decode_result out[MAX_P];
    full_greedy(m, ps, max_new, ed, ref, n_ref);
    decode_opts o = decode_defaults();
    o.max_new_tokens = max_new, o.edit = ed;
    if (run_decode(m, ps, &o, out)) return 0;
    for (int p = 0; p < ps->P; p++) {
        int ok = out[p].n == (size_t)n_ref[p] && !memcmp(out[p].ids, ref + p * MAX_NEW, out[p].n * sizeof(int32_t));
        if (!ok) fprintf(stderr, "%s: prompt %d: cache gives %zu tokens '%s', cache-less %d tokens\n", tag, p, out[p].n,
                         out[p].text, n_ref[p]);
        same += ok;
        decode_result_free(&out[p]);
    }
    printf("%-20s greedy%s, %d new tokens: cache = cache-less on %d/%d prompts\n", tag, ed ? " with an edit" : "",
           max_new, same, ps->P);
    CHECK(same == ps->P, "%s: greedy with the cache differs from the cache-less path on %d of %d prompts", tag,
          ps->P - same, ps->P);
    return same;
}

static int same_ids(const decode_result *a, const decode_result *b) {
    return a->n == b->n && !memcmp(a->ids, b->ids, a->n * sizeof *a->ids);
}

/* Same seed → same tokens (and the same for a prompt whatever shares its batch); another seed → others; tiny top-p → greedy. */
static void check_sampling(const char *tag, const model *m, const prompt_set *ps) {
    decode_result g[MAX_P], s1[MAX_P], s1b[MAX_P], s2[MAX_P], tp[MAX_P], mix[2];
    decode_opts o = decode_defaults();
    o.max_new_tokens = 12;
    run_decode(m, ps, &o, g);
    o.mode = DECODE_SAMPLE, o.seed = 1, o.temperature = 1.0f;
    run_decode(m, ps, &o, s1);
    run_decode(m, ps, &o, s1b);
    o.seed = 2;
    run_decode(m, ps, &o, s2);
    o.top_p = 1e-6f, o.temperature = 0.7f;
    run_decode(m, ps, &o, tp);
    prompt_set two = {.P = 2, .len = {ps->len[0], ps->len[2]}, .N = (size_t)(ps->len[0] + ps->len[2])};
    memcpy(two.tok, ps->tok, (size_t)ps->len[0] * sizeof(int32_t));
    memcpy(two.tok + ps->len[0], ps->tok + ps->len[0] + ps->len[1], (size_t)ps->len[2] * sizeof(int32_t));
    o.seed = 1, o.top_p = 1.0f, o.temperature = 1.0f;
    run_decode(m, &two, &o, mix);
    int n_same = 0, n_diff = 0, n_tp = 0;
    for (int p = 0; p < ps->P; p++) {
        n_same += same_ids(&s1[p], &s1b[p]);
        n_diff += !same_ids(&s1[p], &s2[p]);
        n_tp += same_ids(&tp[p], &g[p]);
    }
    printf("%-20s sampling: seed 1 twice same on %d/%d, seed 2 differs on %d/%d, top_p 1e-6 = greedy on %d/%d\n", tag,
           n_same, ps->P, n_diff, ps->P, n_tp, ps->P);
    CHECK(n_same == ps->P, "%s: the same seed gave other tokens", tag);
    CHECK(n_diff >= 1, "%s: seeds 1 and 2 gave the same tokens on every prompt", tag);
    CHECK(n_tp == ps->P, "%s: top_p 1e-6 differs from greedy", tag);
    CHECK(same_ids(&mix[0], &s1[0]), "%s: prompt 0's sample changed with the other prompts of its batch", tag);
    for (int p = 0; p < ps->P; p++) {
        decode_result_free(&g[p]), decode_result_free(&s1[p]), decode_result_free(&s1b[p]);
        decode_result_free(&s2[p]), decode_result_free(&tp[p]);
    }
    decode_result_free(&mix[0]), decode_result_free(&mix[1]);
}

/* Beam search with 1 beam equals greedy, stop strings included. */
static void check_beam_one(const char *tag, const model *m, const prompt_set *ps, const char *const *stop, int n_stop) {
    decode_result g[MAX_P], b[MAX_P];
    decode_opts o = decode_defaults();
    o.max_new_tokens = 12, o.stop = stop, o.n_stop = n_stop;
    run_decode(m, ps, &o, g);
    o.mode = DECODE_BEAM, o.n_beams = 1;
    run_decode(m, ps, &o, b);
    int same = 0;
    for (int p = 0; p < ps->P; p++) {
        same += same_ids(&g[p], &b[p]) && g[p].score == b[p].score && g[p].why == b[p].why &&
                !strcmp(g[p].text, b[p].text) && !memcmp(g[p].logp, b[p].logp, g[p].n * sizeof(float));
        decode_result_free(&g[p]), decode_result_free(&b[p]);
    }
    printf("%-20s beam search with 1 beam%s = greedy on %d/%d prompts\n", tag, n_stop ? " (stop strings)" : "", same,
           ps->P);
    CHECK(same == ps->P, "%s: 1 beam differs from greedy on %d prompts", tag, ps->P - same);
}

/* The score of every continuation of at most 2 tokens (ending early only on
 * EOS), by brute force on the full forward: scores (V, V), entry (v, t) for
 * tokens v then t; a first token EOS ends there, scored once in (EOS, 0), its
 * other entries -inf. Returns 0, or -1 after a failed check. */
static int two_token_scores(const model *m, const int32_t *prompt, int len, double *scores) {
    int V = m->cfg.vocab, eos = tokenizer_eos(m->tok), *lens = malloc((size_t)V * sizeof(int)), *pos = malloc((size_t)V * sizeof(int));
    int32_t *tok = malloc((size_t)V * (size_t)(len + 1) * sizeof *tok);
    float *lp1 = malloc((size_t)V * sizeof *lp1), *lp2 = malloc((size_t)V * sizeof *lp2);
    int32_t *all_ids = malloc((size_t)V * sizeof *all_ids);
    engine_run *run = NULL;
    lafn_err err = {{0}};
    int rc = -1;
    if (engine_run_init(&run, m, (size_t)V * (size_t)(len + 1), (size_t)V, &err)) { CHECK(0, "%s", err.msg); goto done; }
    engine_batch one = {.n_seq = 1, .seq_len = &len, .tokens = prompt};
    engine_forward_opts fo = engine_forward_defaults();
    pos[0] = len - 1, fo.logit_pos = pos, fo.n_logit_pos = 1;
    if (engine_forward(run, &one, &fo, &err)) { CHECK(0, "%s", err.msg); goto done; }
    for (int32_t v = 0; v < V; v++) engine_nll(engine_logits(run), 1, V, &v, NULL, &lp1[v], NULL);
    for (int v = 0; v < V; v++) {
        memcpy(tok + (size_t)v * (size_t)(len + 1), prompt, (size_t)len * sizeof *tok);
        tok[(size_t)v * (size_t)(len + 1) + (size_t)len] = v;
        lens[v] = len + 1, pos[v] = (v + 1) * (len + 1) - 1;
        all_ids[v] = v;
    }
    engine_batch all = {.n_seq = V, .seq_len = lens, .tokens = tok};
    fo.n_logit_pos = V;
    if (engine_forward(run, &all, &fo, &err)) { CHECK(0, "%s", err.msg); goto done; }
    for (int v = 0; v < V; v++) {
        const float *z = engine_logits(run) + (size_t)v * (size_t)V;
        for (int t = 0; t < V; t++) engine_nll(z, 1, V, &all_ids[t], NULL, &lp2[t], NULL);
        for (int t = 0; t < V; t++)
            scores[(size_t)v * (size_t)V + (size_t)t] = v != eos ? (double)lp1[v] + (double)lp2[t] : t == 0 ? (double)lp1[v] : -INFINITY;
    }
    rc = 0;
done:
    engine_run_free(run);
    free(lens), free(pos), free(tok), free(lp1), free(lp2), free(all_ids);
    return rc;
}

/* The best score of any continuation of at most 2 tokens (two_token_scores). */
static double best_two(const model *m, const int32_t *prompt, int len) {
    size_t VV = (size_t)m->cfg.vocab * (size_t)m->cfg.vocab;
    double *scores = malloc(VV * sizeof *scores), best = -INFINITY;
    if (scores && two_token_scores(m, prompt, len, scores) == 0)
        for (size_t i = 0; i < VV; i++) best = scores[i] > best ? scores[i] : best;
    free(scores);
    return best;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* With as many beams as the vocabulary, 2 new tokens and n_return 3, the
 * search returns the 3 best of all continuations, best first and distinct. */
static void check_beam_nbest(const char *tag, const model *m, const prompt_set *ps) {
    enum { R = 3 };
    size_t VV = (size_t)m->cfg.vocab * (size_t)m->cfg.vocab;
    double *scores = malloc(VV * sizeof *scores);
    decode_result out[R];
    decode_opts o = decode_defaults();
    o.mode = DECODE_BEAM, o.n_beams = m->cfg.vocab, o.max_new_tokens = 2, o.n_return = R;
    prompt_set one = *ps;
    one.P = 1;
    if (!scores || two_token_scores(m, ps->tok, ps->len[0], scores) || run_decode(m, &one, &o, out)) {
        free(scores);
        return;
    }
    qsort(scores, VV, sizeof *scores, cmp_desc);
    for (int r = 0; r < R; r++) {
        printf("%-20s %d beams, n_return %d: result %d scores %.6f, rank %d of all continuations %.6f\n", tag,
               o.n_beams, R, r, out[r].score, r, scores[r]);
        CHECK(fabs(out[r].score - scores[r]) < 1e-4, "%s: result %d scores %.6f, the %d-th best is %.6f", tag, r,
              out[r].score, r, scores[r]);
        for (int q = 0; q < r; q++)
            CHECK(!(same_ids(&out[q], &out[r]) && out[q].why == out[r].why), "%s: results %d and %d are the same", tag, q, r);
    }
    for (int r = 0; r < R; r++) decode_result_free(&out[r]);
    free(scores);
}

/* With as many beams as the vocabulary and 2 new tokens the search is
 * exhaustive: its score is the best of all V² continuations. */
static void check_beam_exhaustive(const char *tag, const model *m, const prompt_set *ps) {
    prompt_set two = *ps;
    two.P = 2;
    decode_result out[2];
    decode_opts o = decode_defaults();
    o.mode = DECODE_BEAM, o.n_beams = m->cfg.vocab, o.max_new_tokens = 2;
    if (run_decode(m, &two, &o, out)) return;
    for (int p = 0; p < 2; p++) {
        double best = best_two(m, ps->tok + (p ? ps->len[0] : 0), ps->len[p]), sum = 0.0;
        for (size_t i = 0; i < out[p].n; i++) sum += out[p].logp[i];
        printf("%-20s %d beams, 2 tokens, prompt %d: beam score %.6f, best of all %d² continuations %.6f\n", tag,
               o.n_beams, p, out[p].score, m->cfg.vocab, best);
        CHECK(fabs(out[p].score - best) < 1e-4, "%s: beam search found %.6f, the best is %.6f", tag, out[p].score, best);
        CHECK(out[p].why == DECODE_STOP_EOS || fabs(sum - out[p].score) < 1e-9, "%s: score %.6f is not Σ logp %.6f",
              tag, out[p].score, sum);
        decode_result_free(&out[p]);
    }
}

/* A stop string ends the continuation where the greedy text first contains it, cut before it. */
static void check_stop(const char *tag, const model *m, const prompt_set *ps) {
    decode_result g[MAX_P], s[MAX_P];
    decode_opts o = decode_defaults();
    o.max_new_tokens = 12;
    if (run_decode(m, ps, &o, g)) return;
    lafn_err err = {{0}};
    char *t6 = tokenizer_decode(m->tok, g[0].ids, g[0].n < 6 ? g[0].n : 6, &err), stop[8];
    size_t l6 = strlen(t6);
    snprintf(stop, sizeof stop, "%s", t6 + (l6 > 3 ? l6 - 3 : 0)); /* the last bytes of the 6-token text */
    free(t6);
    const char *stops[2] = {"\x01never", stop};
    o.stop = stops, o.n_stop = 2;
    run_decode(m, ps, &o, s);
    int ok = 0, n_hit = 0;
    for (int p = 0; p < ps->P; p++) {
        size_t k = 0;
        char *text = NULL, *hit = NULL;
        for (k = 1; k <= g[p].n && !hit; k++) {
            free(text);
            text = tokenizer_decode(m->tok, g[p].ids, k, &err);
            hit = strstr(text, stop);
        }
        size_t want_n = hit ? k - 1 : g[p].n;
        if (hit) *hit = '\0';
        int good = s[p].n == want_n && !memcmp(s[p].ids, g[p].ids, want_n * sizeof(int32_t)) &&
                   (hit ? s[p].why == DECODE_STOP_STRING && !strcmp(s[p].text, text) : same_ids(&s[p], &g[p]));
        if (!good) fprintf(stderr, "%s: prompt %d stop '%s': %zu tokens '%s', expected %zu\n", tag, p, stop, s[p].n, s[p].text, want_n);
        ok += good;
        n_hit += hit != NULL;
        free(text);
        decode_result_free(&g[p]), decode_result_free(&s[p]);
    }
    printf("%-20s stop string '%s': stopped where expected on %d/%d prompts (%d by the string)\n", tag, stop, ok, ps->P,
           n_hit);
    CHECK(ok == ps->P, "%s: stop strings handled wrongly on %d prompts", tag, ps->P - ok);
    CHECK(n_hit > 0, "%s: the stop string '%s' stopped no prompt", tag, stop);
}

/* A value-vector edit on prompts 0 and 2: the cache matches the edited full forward and changes only those prompts. */
static void check_edit(const char *tag, const model *m, const prompt_set *ps) {
    enum { NE = 8 };
    int layer[NE], neuron[NE], D = m->cfg.d_model;
    uint8_t mask[NE * MAX_P];
    float *delta = malloc((size_t)NE * (size_t)D * sizeof *delta);
    uint64_t seed = 99;
    for (int e = 0; e < NE; e++) {
        layer[e] = e % m->cfg.n_layer, neuron[e] = (int)rng_below(&seed, (uint64_t)m->cfg.d_ffn);
        for (int p = 0; p < ps->P; p++) mask[e * ps->P + p] = p % 2 == 0;
        for (int d = 0; d < D; d++) delta[e * D + d] = (float)(rng_uniform(&seed) - 0.5) * 20.0f;
    }
    engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = NE, .layer = layer, .neuron = neuron, .delta = delta,
                      .seq_mask = mask};
    check_greedy(tag, m, ps, 10, &ed);
    decode_result plain[MAX_P], edited[MAX_P];
    decode_opts o = decode_defaults();
    o.max_new_tokens = 10;
    run_decode(m, ps, &o, plain);
    o.edit = &ed;
    run_decode(m, ps, &o, edited);
    int changed = 0, kept = 1;
    for (int p = 0; p < ps->P; p++) {
        if (p % 2 == 0) changed += !same_ids(&plain[p], &edited[p]);
        else kept &= same_ids(&plain[p], &edited[p]);
        decode_result_free(&plain[p]), decode_result_free(&edited[p]);
    }
    CHECK(changed > 0, "%s: the edit changed none of the prompts it applies to", tag);
    CHECK(kept, "%s: the edit changed a prompt its mask leaves out", tag);
    free(delta);
}

/* Every check on one tiny model. */
/* Sampling R draws of each prompt from one prefill (n_return R) gives draw r of prompt p exactly what R
 * separately prefilled copies of the prompts give copy p·R + r (the same stream), and the draws differ. */
static void check_sample_draws(const char *tag, const model *m, const prompt_set *ps) {
    enum { P = 2, R = 3 };
    prompt_set copies = {0};
    for (int p = 0, src = 0; p < P; src += ps->len[p++])
        for (int r = 0; r < R; r++) {
            memcpy(copies.tok + copies.N, ps->tok + src, (size_t)ps->len[p] * sizeof(int32_t));
            copies.len[copies.P++] = ps->len[p];
            copies.N += (size_t)ps->len[p];
        }
    prompt_set two = *ps;
    two.P = P;
    decode_result drawn[P * R], copied[P * R];
    decode_opts o = decode_defaults();
    o.mode = DECODE_SAMPLE, o.seed = 7, o.temperature = 1.0f, o.max_new_tokens = 10;
    run_decode(m, &copies, &o, copied);
    o.n_return = R;
    if (run_decode(m, &two, &o, drawn)) return;
    int n_same = 0, n_distinct = 0;
    for (int i = 0; i < P * R; i++) {
        int same = same_ids(&drawn[i], &copied[i]);
        for (size_t t = 0; same && t < drawn[i].n; t++) same = fabsf(drawn[i].logp[t] - copied[i].logp[t]) < 1e-4f;
        n_same += same;
        n_distinct += i % R != 0 && !same_ids(&drawn[i], &drawn[i - i % R]);
    }
    printf("%-20s sampling %d draws of %d prompts from one prefill: = %d separate copies on %d, %d draws differ "
           "from the prompt's first\n", tag, R, P, P * R, n_same, n_distinct);
    CHECK(n_same == P * R, "%s: draws from one prefill differ from separately prefilled copies", tag);
    CHECK(n_distinct >= 1, "%s: every draw of a prompt is the same", tag);
    for (int i = 0; i < P * R; i++) decode_result_free(&drawn[i]), decode_result_free(&copied[i]);
}

static void check_tiny(const char *tag, const char *path) {
    static const char *const texts[] = {"The Eiffel Tower is located in the city of", "Der Eiffelturm befindet sich in",
                                        "埃菲尔铁塔位于", "La capitale de l'Italie est", "a"};
    model *m = NULL;
    lafn_err err = {{0}};
    if (model_load(&m, testutil_repo_path(path), MPI_COMM_NULL, &err)) { CHECK(0, "%s: %s", tag, err.msg); return; }
    prompt_set ps;
    prompts_encode(&ps, m, texts, 5);
    check_greedy(tag, m, &ps, 12, NULL);
    check_edit(tag, m, &ps);
    check_sampling(tag, m, &ps);
    check_sample_draws(tag, m, &ps);
    check_beam_one(tag, m, &ps, NULL, 0);
    check_stop(tag, m, &ps);
    static const char *const nl[] = {"\n", "e"};
    check_beam_one(tag, m, &ps, nl, 2);
    check_beam_exhaustive(tag, m, &ps);
    check_beam_nbest(tag, m, &ps);
    model_free(m);
}

/* 50 questions (the demo facts' src prompts in en zh de fr es ru) on the real model, 8 new tokens each. */
static void check_gemma(void) {
    model *m = NULL;
    facts_set fs = {0};
    facts_opts fo = {.langs = "en,zh,de,fr,es,ru", .count = 9};
    lafn_err err = {{0}};
    if (model_load(&m, testutil_default_model(), MPI_COMM_NULL, &err) ||
        facts_load_jsonl(testutil_repo_path("conf/data/demo_facts.jsonl"), &fo, &fs, &err)) {
        CHECK(0, "gemma setup: %s", err.msg);
        model_free(m);
        return;
    }
    const char *texts[MAX_P];
    int P = 0;
    for (size_t f = 0; f < fs.n_facts; f++)
        for (size_t l = 0; l < fs.n_langs && P < 50; l++) {
            const facts_side *side = facts_record_side(&fs.facts[f], fs.langs[l]);
            if (side) texts[P++] = side->src;
        }
    CHECK(P == 50, "only %d prompts", P);
    prompt_set ps;
    prompts_encode(&ps, m, texts, P);
    check_greedy("gemma-3-270m", m, &ps, 8, NULL);
    facts_set_free(&fs);
    model_free(m);
}

/* A cache too small for the prompts is refused with a message. */
static void check_refusal(void) {
    model *m = NULL;
    engine_kv *kv = NULL;
    lafn_err err = {{0}};
    if (model_load(&m, testutil_repo_path("tests/fixtures/models/tiny-llama.gguf"), MPI_COMM_NULL, &err) ||
        engine_kv_init(&kv, m, 1, 4, &err)) {
        CHECK(0, "%s", err.msg);
    } else {
        int32_t tok[3] = {1, 2, 3};
        int len = 3;
        engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = tok};
        decode_opts o = decode_defaults();
        decode_result out = {0};
        o.max_new_tokens = 5;
        CHECK(decode_generate(kv, m, &b, &o, &out, &err) == -1 && strstr(err.msg, "max_len"), "too short: '%s'", err.msg);
        o.mode = DECODE_BEAM, o.n_beams = 2, o.max_new_tokens = 1;
        CHECK(decode_generate(kv, m, &b, &o, &out, &err) == -1 && strstr(err.msg, "slot"), "too few slots: '%s'", err.msg);
        o.n_return = 3;
        CHECK(decode_generate(kv, m, &b, &o, &out, &err) == -1 && strstr(err.msg, "n_return"), "n_return > n_beams: '%s'",
              err.msg);
        o.mode = DECODE_GREEDY;
        CHECK(decode_generate(kv, m, &b, &o, &out, &err) == -1 && strstr(err.msg, "n_return"), "greedy n_return 3: '%s'",
              err.msg);
        o.mode = DECODE_SAMPLE, o.n_return = 2;
        CHECK(decode_generate(kv, m, &b, &o, &out, &err) == -1 && strstr(err.msg, "slot"), "2 draws in 1 slot: '%s'",
              err.msg);
        CHECK(out.ids == NULL, "a failed decode left results");
    }
    engine_kv_free(kv);
    model_free(m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    check_tiny("tiny-gemma3 (GGUF)", "tests/fixtures/models/tiny-gemma3.gguf");
    check_tiny("tiny-llama (HF)", "tests/fixtures/models/tiny-llama");
    check_tiny("tiny-qwen2 (GGUF)", "tests/fixtures/models/tiny-qwen2.gguf");
    check_refusal();
    check_gemma();
    int rc = testutil_finish("test_decode");
    MPI_Finalize();
    return rc;
}
