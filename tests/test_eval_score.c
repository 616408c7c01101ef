/* test_eval_score: the evaluation's scores against an unbatched reference on a tiny model; locality 1 for a zero edit, low for a destructive one. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_cache.h"
#include "engine/engine.h"
#include "facts/facts.h"
#include "engine/decode.h"
#include "engine/engine_kv.h"
#include "stage/stage.h"
#include "eval/stage_eval_int.h"
#include "testutil.h"

/* Reference argmax after the single, unbatched sequence ids (n): its last position. */
static int32_t ref_next(engine_run *r, const int32_t *ids, size_t n, int V) {
    int len = (int)n, pos = (int)n - 1;
    engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = ids};
    engine_forward_opts o = engine_forward_defaults();
    o.logit_pos = &pos;
    o.n_logit_pos = 1;
    lafn_err err = {{0}};
    if (engine_forward(r, &b, &o, &err)) { CHECK(0, "forward: %s", err.msg); return -1; }
    const float *l = engine_logits(r);
    int best = 0;
    for (int v = 1; v < V; v++) if (l[v] > l[best]) best = v;
    return best;
}

/* evaluate.py's F1 loop: remove each common word once from both lists. */
static double ref_f1(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    if (!na && !nb) return 1.0;
    if (!na || !nb) return 0.0;
    int32_t *bb = malloc(nb * sizeof *bb);
    memcpy(bb, b, nb * sizeof *bb);
    size_t common = 0, left = nb;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < left; j++)
            if (bb[j] == a[i]) { bb[j] = bb[--left]; common++; break; }
    free(bb);
    return (double)(common * common) / (double)(na * nb);
}

static size_t encode(const tokenizer *t, const char *s, int bos, int32_t *ids, size_t cap) {
    size_t n = 0;
    lafn_err err = {{0}};
    if (tokenizer_encode(t, s, strlen(s), bos, ids, cap, &n, &err)) CHECK(0, "encode: %s", err.msg);
    return n < cap ? n : cap;
}

/* One pair scored by eval_predict/eval_pred_scores against the reference built token by token. */
static void check_pair(eval_scorer *s, engine_run *ref, const char *lang, const char *prompt, const char *target,
                       double *token_em_out) {
    const model *m = s->m;
    const tokenizer *t = m->tok;
    int V = m->cfg.vocab;
    eval_pred pre, post;
    double got[EVAL_N_METRIC];
    lafn_err err = {{0}};
    if (eval_predict(s, lang, prompt, target, NULL, &pre, &post, &err) || eval_pred_scores(t, &pre, got, &err)) {
        CHECK(0, "%s: %s", prompt, err.msg);
        return;
    }
    stage_sequence seq;
    if (stage_sequence_build(t, lang, prompt, target, &seq, &err)) { CHECK(0, "%s", err.msg); return; }
    size_t T = seq.n_target, hits = 0;
    int32_t answer[64], buf[512];
    for (size_t k = 0; k < T && k < 64; k++) {
        hits += ref_next(ref, seq.ids, seq.n_prompt + k, V) == seq.ids[seq.n_prompt + k];
        char *piece = tokenizer_decode(t, seq.ids + seq.n_prompt, k, &err), text[1024];
        snprintf(text, sizeof text, "%s%s%s", prompt, k && strcmp(lang, "zh") && piece[0] != ' ' ? " " : "", piece);
        free(piece);
        size_t n = encode(t, text, tokenizer_adds_bos(t), buf, 512);
        answer[k] = ref_next(ref, buf, n, V);
    }
    double tem = (double)hits / (double)T;
    CHECK(fabs(got[EVAL_TOKEN_EM] - tem) < 1e-12, "%s: token_em %g, reference %g", prompt, got[EVAL_TOKEN_EM], tem);
    CHECK(!memcmp(pre.answer, answer, T * sizeof *answer), "%s: prefix answers differ from the reference", prompt);
    char *ans = tokenizer_decode(t, answer, T, &err), *tgt = tokenizer_decode(t, seq.ids + seq.n_prompt, T, &err);
    const char *a = ans + strspn(ans, " "), *g = tgt + strspn(tgt, " ");
    int32_t ia[256], ib[256];
    size_t na = encode(t, a, 0, ia, 256), nb = encode(t, g, 0, ib, 256);
    double f1 = ref_f1(ia, na, ib, nb);
    CHECK(fabs(got[EVAL_F1] - f1) < 1e-12, "%s: f1 %g, reference %g (answer '%s', target '%s')", prompt, got[EVAL_F1],
          f1, a, g);
    CHECK(got[EVAL_EM] == (double)(strcmp(a, g) == 0), "%s: em %g but answer '%s' target '%s'", prompt, got[EVAL_EM], a, g);
    for (int k = 0; k < EVAL_N_METRIC; k++)
        CHECK(got[k] >= 0.0 && got[k] <= 1.0, "%s: metric %s = %g outside [0,1]", prompt, eval_metric_names[k], got[k]);
    if (strcmp(target, "Zyxwv qqq") == 0) CHECK(got[EVAL_TOKEN_EM] < 1.0, "%s: unlikely target 'Zyxwv qqq' has token_em 1", prompt);
    CHECK(post.fired == 0 && !memcmp(pre.tf, post.tf, T * sizeof *pre.tf), "no edit: post must equal pre");
    *token_em_out = got[EVAL_TOKEN_EM];
    free(ans);
    free(tgt);
    stage_sequence_free(&seq);
    eval_pred_free(&pre);
    eval_pred_free(&post);
}

/* The greedy continuation of prompt (up to max_new tokens) as text, NULL on failure; its ids in out. */
static char *greedy_text(const model *m, const char *prompt, int max_new, int32_t *out, size_t *n_out) {
    int32_t ids[256];
    int len = (int)encode(m->tok, prompt, tokenizer_adds_bos(m->tok), ids, 256);
    engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = ids};
    decode_opts o = decode_defaults();
    o.max_new_tokens = max_new;
    decode_result r = {0};
    engine_kv *kv = NULL;
    lafn_err err = {{0}};
    char *text = NULL;
    if (engine_kv_init(&kv, m, 1, (size_t)(len + max_new), &err) == 0 && decode_generate(kv, m, &b, &o, &r, &err) == 0 &&
        r.n > 0) {
        memcpy(out, r.ids, r.n * sizeof *out);
        *n_out = r.n;
        text = r.text;
        r.text = NULL;
    }
    decode_result_free(&r);
    engine_kv_free(kv);
    return text;
}

/* A target the model surely predicts (its own greedy continuation, where that
 * re-tokenizes to the same ids) scores 1; an unlikely one scores less; every
 * pair matches the unbatched reference. */
static void test_pairs(eval_scorer *s, engine_run *ref, const facts_set *fs) {
    const model *m = s->m;
    int n_greedy = 0, n_ref = 0;
    for (size_t f = 0; f < fs->n_facts; f++)
        for (size_t l = 0; l < fs->n_langs; l++) {
            const facts_side *side = facts_record_side(&fs->facts[f], fs->langs[l]);
            for (int max_new = 1; side && max_new <= 2; max_new++) {
                int32_t out[8];
                size_t n_out = 0;
                char *cont = greedy_text(m, side->src, max_new, out, &n_out);
                if (!cont) { CHECK(0, "greedy continuation of '%s' failed", side->src); continue; }
                const char *target = cont + strspn(cont, " ");
                stage_sequence seq;
                lafn_err err = {{0}};
                int same = target[0] && !stage_sequence_build(m->tok, fs->langs[l], side->src, target, &seq, &err) &&
                           seq.n_target == n_out && !memcmp(seq.ids + seq.n_prompt, out, n_out * sizeof *out);
                if (target[0] && !err.msg[0]) stage_sequence_free(&seq);
                double tem = -1;
                if (same || n_ref < 4) { check_pair(s, ref, fs->langs[l], side->src, target, &tem); n_ref++; }
                if (same) {
                    n_greedy++;
                    CHECK(tem == 1.0, "%s: greedy continuation '%s' has token_em %g, expected 1", side->src, target, tem);
                }
                free(cont);
            }
            if (f < 3) check_pair(s, ref, fs->langs[l], side->src, "Zyxwv qqq", &(double){0});
        }
    CHECK(n_greedy >= 1, "no greedy continuation re-tokenized to its own ids; the 'surely predicted' case was not tested");
    printf("greedy continuations scored: %d (token_em 1 each)\n", n_greedy);
}

/* Builds a one-entry cache on layers [l0, L) x all neurons with delta = scale * pattern, gate as given. */
static void make_edit(eval_edit *e, const model *m, int l0, float scale, float gate, float threshold) {
    int L = m->cfg.n_layer, F = m->cfg.d_ffn, D = m->cfg.d_model, n = (L - l0) * F;
    *e = (eval_edit){0};
    e->layer = malloc(n * sizeof(int));
    e->neuron = malloc(n * sizeof(int));
    e->delta = malloc((size_t)n * D * sizeof(float));
    e->gate_layer = malloc(sizeof(int));
    e->gate_neuron = malloc(sizeof(int));
    e->gate_threshold = malloc(sizeof(float));
    e->gate_sign = malloc(sizeof(float));
    for (int i = 0; i < n; i++) {
        e->layer[i] = l0 + i / F;
        e->neuron[i] = i % F;
        for (int d = 0; d < D; d++) e->delta[(size_t)i * D + d] = scale * (float)(((i * 31 + d * 17) % 13) - 6);
    }
    e->gate_layer[0] = l0;
    e->gate_neuron[0] = 0;
    e->gate_threshold[0] = threshold;
    e->gate_sign[0] = 1.0f;
    e->entry = (edit_cache_entry){.group = 0, .n_gate = 1, .gate_layer = e->gate_layer, .gate_neuron = e->gate_neuron,
                                  .gate_sign = e->gate_sign, .gate_threshold = e->gate_threshold, .n = n, .layer = e->layer,
                                  .neuron = e->neuron, .delta = e->delta};
    e->cache = (edit_cache){.kind = ENGINE_EDIT_VALUE_VECTOR, .trigger = {.gate = gate}, .n_entries = 1,
                            .entries = &e->entry};
}

/* Mean post value of (criterion, metric) over the facts and languages; counts fired prompts. */
static double mean_post(eval_scorer *s, const facts_set *fs, const edit_cache *c, int crit, int metric, int *n_fired,
                        int *all_pre_one) {
    double sum = 0.0;
    int n = 0;
    *n_fired = 0;
    *all_pre_one = 1;
    for (size_t f = 0; f < fs->n_facts; f++)
        for (size_t l = 0; l < fs->n_langs; l++) {
            double pre[EVAL_N_VALUES], post[EVAL_N_VALUES];
            int32_t fired[EVAL_N_CRIT], same;
            lafn_err err = {{0}};
            if (eval_fact_lang(s, &fs->facts[f], fs->langs[l], c, pre, post, fired, &same, &err)) {
                CHECK(0, "%s", err.msg);
                continue;
            }
            for (int k = 0; k < EVAL_N_VALUES; k++)
                CHECK(isnan(post[k]) || (post[k] >= 0 && post[k] <= 1), "value %d = %g outside [0,1]", k, post[k]);
            double v = post[crit * EVAL_N_METRIC + metric];
            if (pre[EVAL_LOCALITY * EVAL_N_METRIC + metric] != 1.0) *all_pre_one = 0;
            if (!isnan(v)) { sum += v; n++; }
            *n_fired += fired[crit] == 1;
        }
    return n ? sum / n : NAN;
}

/* eval_fact_lang packs a fact's four questions into one batch; each row and
 * gate decision must equal the question scored alone (eval_predict). */
static void test_batched_equals_single(eval_scorer *s, const facts_set *fs, const edit_cache *c, int *n_fired) {
    size_t diff = 0, fired_diff = 0;
    for (size_t f = 0; f < fs->n_facts; f++)
        for (size_t l = 0; l < fs->n_langs; l++) {
            const facts_side *side = facts_record_side(&fs->facts[f], fs->langs[l]);
            const facts_eval *ev = facts_record_eval(&fs->facts[f], fs->langs[l]);
            const char *P[EVAL_N_CRIT] = {side->src, ev->rephrase, ev->loc, ev->port_q};
            const char *T[EVAL_N_CRIT] = {side->alt, side->alt, ev->loc_ans, ev->port_a};
            double pre[EVAL_N_VALUES], post[EVAL_N_VALUES];
            int32_t fired[EVAL_N_CRIT], same;
            lafn_err err = {{0}};
            if (eval_fact_lang(s, &fs->facts[f], fs->langs[l], c, pre, post, fired, &same, &err)) {
                CHECK(0, "%s", err.msg);
                continue;
            }
            for (int k = 0; k < EVAL_N_CRIT; k++) {
                eval_pred a, b;
                double rp[EVAL_N_METRIC], rq[EVAL_N_METRIC];
                if (eval_predict(s, fs->langs[l], P[k], T[k], c, &a, &b, &err)) { CHECK(0, "%s", err.msg); continue; }
                if (k == EVAL_LOCALITY) {
                    eval_pred_unchanged(s->m->tok, &a, &a, rp, &err);
                    eval_pred_unchanged(s->m->tok, &a, &b, rq, &err);
                } else {
                    eval_pred_scores(s->m->tok, &a, rp, &err);
                    eval_pred_scores(s->m->tok, &b, rq, &err);
                }
                for (int m = 0; m < EVAL_N_METRIC; m++)
                    if (rp[m] != pre[k * EVAL_N_METRIC + m] || rq[m] != post[k * EVAL_N_METRIC + m]) {
                        if (!diff) fprintf(stderr, "fact %zu %s %s %s: batched %g/%g, alone %g/%g\n", f, fs->langs[l],
                                           eval_criterion_names[k], eval_metric_names[m], pre[k * EVAL_N_METRIC + m],
                                           post[k * EVAL_N_METRIC + m], rp[m], rq[m]);
                        diff++;
                    }
                fired_diff += fired[k] != b.fired;
                *n_fired += b.fired;
                eval_pred_free(&a);
                eval_pred_free(&b);
            }
        }
    CHECK(diff == 0, "%zu values differ between the batched questions and each question alone", diff);
    CHECK(fired_diff == 0, "%zu gate decisions differ between batched and alone", fired_diff);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median over the questions of blk.1 neuron 0's activation at the last prompt token (unedited). */
static float median_gate_act(const model *m, const facts_set *fs) {
    float v[256];
    size_t n = 0;
    engine_run *r = NULL;
    lafn_err err = {{0}};
    if (engine_run_init(&r, m, 256, 1, &err)) { CHECK(0, "%s", err.msg); return 0.0f; }
    for (size_t f = 0; f < fs->n_facts; f++)
        for (size_t l = 0; l < fs->n_langs; l++) {
            const facts_side *side = facts_record_side(&fs->facts[f], fs->langs[l]);
            const facts_eval *ev = facts_record_eval(&fs->facts[f], fs->langs[l]);
            const char *P[EVAL_N_CRIT] = {side->src, ev->rephrase, ev->loc, ev->port_q};
            for (int k = 0; k < EVAL_N_CRIT && n < 256; k++) {
                int32_t ids[256];
                int len = (int)encode(m->tok, P[k], tokenizer_adds_bos(m->tok), ids, 256);
                engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = ids};
                engine_forward_opts o = engine_forward_defaults();
                if (engine_forward(r, &b, &o, &err)) { CHECK(0, "%s", err.msg); continue; }
                v[n++] = engine_ffn_act(r, 1)[(size_t)(len - 1) * (size_t)m->cfg.d_ffn];
            }
        }
    engine_run_free(r);
    qsort(v, n, sizeof *v, cmp_float);
    return n ? v[n / 2] : 0.0f;
}

static void test_locality(eval_scorer *s, const facts_set *fs) {
    const model *m = s->m;
    eval_edit zero, wreck, shut;
    int fired, pre_one, n_prompts = (int)(fs->n_facts * fs->n_langs);
    make_edit(&zero, m, 1, 0.0f, 0.0f, 0.0f);
    double loc = mean_post(s, fs, &zero.cache, EVAL_LOCALITY, EVAL_TOKEN_EM, &fired, &pre_one);
    CHECK(loc == 1.0, "locality with a zero delta is %g, expected exactly 1", loc);
    CHECK(fired == n_prompts, "gate 0 fires on %d of %d loc prompts", fired, n_prompts);
    CHECK(pre_one, "unedited locality must be 1");
    double em = mean_post(s, fs, &zero.cache, EVAL_LOCALITY, EVAL_EM, &fired, &pre_one);
    CHECK(em == 1.0, "locality EM with a zero delta is %g", em);
    make_edit(&wreck, m, 1, 50.0f, 0.0f, 0.0f);
    loc = mean_post(s, fs, &wreck.cache, EVAL_LOCALITY, EVAL_TOKEN_EM, &fired, &pre_one);
    printf("destructive edit: locality token_em %.3f over %d prompts\n", loc, n_prompts);
    CHECK(loc < 0.5, "a destructive edit (delta 50x, %d neurons, gate 0) leaves locality at %g", zero.entry.n, loc);
    make_edit(&shut, m, 1, 50.0f, 1.0f, 1e30f);
    loc = mean_post(s, fs, &shut.cache, EVAL_LOCALITY, EVAL_TOKEN_EM, &fired, &pre_one);
    CHECK(loc == 1.0 && fired == 0, "a destructive edit whose gate never passes: locality %g, fired %d", loc, fired);
    int n_fired = 0;
    test_batched_equals_single(s, fs, &wreck.cache, &n_fired);
    eval_edit half;
    make_edit(&half, m, 1, 50.0f, 1.0f, median_gate_act(m, fs)); /* one gate neuron: passes on about half */
    n_fired = 0;
    test_batched_equals_single(s, fs, &half.cache, &n_fired);
    printf("gate a >= median on blk.1 neuron 0: fired on %d of %d questions\n", n_fired, n_prompts * EVAL_N_CRIT);
    CHECK(n_fired > 0 && n_fired < n_prompts * EVAL_N_CRIT, "the half gate fired on %d of %d questions; pick another threshold",
          n_fired, n_prompts * EVAL_N_CRIT);
    eval_edit_free(&half);
    eval_edit_free(&zero);
    eval_edit_free(&wreck);
    eval_edit_free(&shut);
}

/* The pair checks on another tiny architecture and tokenizer (byte-level BPE Llama, no BOS). */
static void test_other_model(const char *rel, const facts_set *all) {
    model *m = NULL;
    eval_scorer s = {0};
    engine_run *ref = NULL;
    lafn_err err = {{0}};
    if (model_load(&m, testutil_repo_path(rel), MPI_COMM_NULL, &err) || eval_scorer_init(&s, m, &err) ||
        engine_run_init(&ref, m, 512, 1, &err))
        CHECK(0, "%s: %s", rel, err.msg);
    else
        test_pairs(&s, ref, all);
    if (ref) engine_run_free(ref);
    eval_scorer_free(&s);
    model_free(m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    model *m = NULL;
    lafn_err err = {{0}};
    facts_set fs = {0};
    eval_scorer s = {0};
    engine_run *ref = NULL;
    facts_opts fo = {.langs = "en,de", .count = 3}, fo_all = {.langs = "en,de"};
    facts_set all = {0};
    if (model_load(&m, testutil_repo_path("tests/fixtures/models/tiny-gemma3.gguf"), MPI_COMM_NULL, &err) ||
        facts_load_jsonl(testutil_repo_path("conf/data/demo_facts.jsonl"), &fo, &fs, &err) ||
        facts_load_jsonl(testutil_repo_path("conf/data/demo_facts.jsonl"), &fo_all, &all, &err) ||
        eval_scorer_init(&s, m, &err) || engine_run_init(&ref, m, 512, 1, &err)) {
        CHECK(0, "setup: %s", err.msg);
    } else {
        test_pairs(&s, ref, &all);
        test_locality(&s, &fs);
        test_other_model("tests/fixtures/models/tiny-llama.gguf", &all);
    }
    if (ref) engine_run_free(ref);
    eval_scorer_free(&s);
    facts_set_free(&fs);
    facts_set_free(&all);
    model_free(m);
    int rc = testutil_finish("test_eval_score");
    MPI_Finalize();
    return rc;
}
