/* eval_score: teacher-forced and prefix-argmax predictions of one (prompt, target) pair, unedited and through a gated edit. */
#include "stage_eval_int.h"

#include <stdlib.h>
#include <string.h>

#include "facts.h"
#include "stage.h"

/* Dimension names: V vocabulary, N tokens of the batch, B sequences, P scored positions, T target tokens. */

/* First size of the engine run; it grows when a pair needs more. Scored
 * positions stay few: each holds V logits (1 MiB for Gemma 3's vocabulary). */
#define EVAL_MIN_TOKENS 128
#define EVAL_MIN_POS 16

int eval_scorer_init(eval_scorer *s, const model *m, lafn_err *err) {
    *s = (eval_scorer){.m = m};
    for (int c = 0; c < EVAL_N_CRIT; c++) s->criteria[c] = 1;
    if (engine_run_init(&s->run, m, EVAL_MIN_TOKENS, EVAL_MIN_POS, err) != 0)
        return lafn_err_wrap(err, "eval scorer");
    s->max_tokens = EVAL_MIN_TOKENS;
    s->max_pos = EVAL_MIN_POS;
    return 0;
}

void eval_scorer_free(eval_scorer *s) {
    if (s->run) engine_run_free(s->run);
    *s = (eval_scorer){0};
}

/* Makes the engine run hold n_tok tokens and n_pos scored positions. */
static int scorer_reserve(eval_scorer *s, size_t n_tok, size_t n_pos, lafn_err *err) {
    if (n_tok <= s->max_tokens && n_pos <= s->max_pos) return 0;
    size_t nt = n_tok > s->max_tokens ? n_tok : s->max_tokens, np = n_pos > s->max_pos ? n_pos : s->max_pos;
    engine_run_free(s->run);
    s->run = NULL;
    s->max_tokens = s->max_pos = 0;
    if (engine_run_init(&s->run, s->m, nt, np, err) != 0) return lafn_err_wrap(err, "eval scorer");
    s->max_tokens = nt;
    s->max_pos = np;
    return 0;
}

void eval_edit_free(eval_edit *e) {
    free(e->gate_layer);
    free(e->gate_neuron);
    free(e->gate_sign);
    free(e->gate_threshold);
    free(e->layer);
    free(e->neuron);
    free(e->delta);
    *e = (eval_edit){0};
}

void eval_pred_free(eval_pred *p) {
    free(p->target);
    free(p->tf);
    free(p->answer);
    free(p->answer_text);
    free(p->target_text);
    *p = (eval_pred){0};
}

/* The packed batch of one pair: sequence 0 is prompt + sep + target (teacher
 * forcing); then one sequence per prefix k >= 1 whose re-tokenized text
 * prompt + sep + decode(target[:k]) differs from the first n_prompt + k ids of
 * sequence 0 (an identical prefix has the same causal prediction). */
typedef struct {
    int32_t *tokens;  /* (N) */
    int *seq_len;     /* (B) */
    int *logit_pos;   /* (P) */
    int n_seq, n_pos;
    size_t n_tok;
    size_t *answer_pos; /* (T) index into logit_pos of answer[k] */
    size_t n_prompt;
} pair_batch;

static void pair_batch_free(pair_batch *b) {
    free(b->tokens);
    free(b->seq_len);
    free(b->logit_pos);
    free(b->answer_pos);
    *b = (pair_batch){0};
}

/* Appends ids (n) as a new sequence whose last position is scored; returns its logit index. */
static int batch_append(pair_batch *b, const int32_t *ids, size_t n, size_t *cap, lafn_err *err) {
    if (b->n_tok + n > *cap) {
        size_t nc = 2 * (*cap + n);
        int32_t *nt = realloc(b->tokens, nc * sizeof *nt);
        if (!nt) return lafn_err_set(err, "out of memory for a batch of %zu tokens", nc);
        b->tokens = nt;
        *cap = nc;
    }
    memcpy(b->tokens + b->n_tok, ids, n * sizeof *ids);
    b->seq_len[b->n_seq++] = (int)n;
    b->logit_pos[b->n_pos++] = (int)(b->n_tok + n - 1);
    b->n_tok += n;
    return 0;
}

/* prompt + sep + decode(target[:k]) — sep only when the decoded piece does not already start with it. */
static char *prefix_text(const tokenizer *t, const char *sep, const char *prompt, const int32_t *target, size_t k,
                         lafn_err *err) {
    char *piece = tokenizer_decode(t, target, k, err);
    if (!piece) return NULL;
    size_t ls = strlen(sep);
    int need_sep = ls && strncmp(piece, sep, ls) != 0;
    size_t len = strlen(prompt) + (need_sep ? ls : 0) + strlen(piece) + 1;
    char *text = malloc(len);
    if (text) snprintf(text, len, "%s%s%s", prompt, need_sep ? sep : "", piece);
    else lafn_err_set(err, "out of memory for a prefix of '%.40s'", prompt);
    free(piece);
    return text;
}

int eval_encode(const tokenizer *t, const char *text, int add_bos, int32_t **ids, size_t *n, lafn_err *err) {
    size_t len = strlen(text), need = 0;
    *ids = NULL;
    *n = 0;
    if (tokenizer_encode(t, text, len, add_bos, NULL, 0, &need, err) != 0) return -1;
    *ids = malloc((need ? need : 1) * sizeof **ids);
    if (!*ids) return lafn_err_set(err, "out of memory tokenizing '%.40s'", text);
    if (tokenizer_encode(t, text, len, add_bos, *ids, need, n, err) != 0 || *n != need) {
        free(*ids);
        *ids = NULL;
        return *n != need ? lafn_err_set(err, "tokenizer gave %zu then %zu ids for '%.40s'", need, *n, text) : -1;
    }
    return 0;
}

/* Builds the batch of the pair seq (prompt text and language separator given). */
static int pair_batch_build(const tokenizer *t, const char *sep, const char *prompt, const stage_sequence *seq,
                            pair_batch *b, lafn_err *err) {
    size_t T = seq->n_target, cap = 0;
    *b = (pair_batch){.n_prompt = seq->n_prompt};
    b->seq_len = malloc(T * sizeof *b->seq_len);
    b->logit_pos = malloc(2 * T * sizeof *b->logit_pos);
    b->answer_pos = malloc(T * sizeof *b->answer_pos);
    if (!b->seq_len || !b->logit_pos || !b->answer_pos) goto oom;
    if (batch_append(b, seq->ids, seq->n_prompt + T, &cap, err) != 0) goto fail;
    b->n_pos = 0; /* sequence 0 scores every target position, not only its last */
    for (size_t k = 0; k < T; k++) b->logit_pos[b->n_pos++] = (int)(seq->n_prompt - 1 + k);
    b->answer_pos[0] = 0;
    for (size_t k = 1; k < T; k++) {
        char *text = prefix_text(t, sep, prompt, seq->ids + seq->n_prompt, k, err);
        if (!text) goto fail;
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = eval_encode(t, text, tokenizer_adds_bos(t), &ids, &n, err);
        free(text);
        if (rc != 0) goto fail;
        if (n == seq->n_prompt + k && !memcmp(ids, seq->ids, n * sizeof *ids)) {
            b->answer_pos[k] = k;
        } else if (n == 0) {
            free(ids);
            lafn_err_set(err, "prefix %zu of '%.40s' encodes to no tokens", k, prompt);
            goto fail;
        } else {
            b->answer_pos[k] = (size_t)b->n_pos;
            rc = batch_append(b, ids, n, &cap, err);
        }
        free(ids);
        if (rc != 0) goto fail;
    }
    return 0;
oom:
    lafn_err_set(err, "out of memory for the batch of '%.40s'", prompt);
fail:
    pair_batch_free(b);
    return -1;
}

static int32_t argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Decodes ids and drops leading spaces (as the benchmarks' SentencePiece decode drops the word-start space). */
static char *decode_trimmed(const tokenizer *t, const int32_t *ids, size_t n, lafn_err *err) {
    char *s = tokenizer_decode(t, ids, n, err);
    if (!s) return NULL;
    size_t i = 0;
    while (s[i] == ' ') i++;
    memmove(s, s + i, strlen(s + i) + 1);
    return s;
}

/* Fills p from the logits of the last forward of b. */
static int pred_fill(const eval_scorer *s, const pair_batch *b, const stage_sequence *seq, eval_pred *p,
                     lafn_err *err) {
    size_t T = seq->n_target;
    int V = s->m->cfg.vocab;
    const float *logits = engine_logits(s->run);
    *p = (eval_pred){.n_target = T};
    p->target = malloc(T * sizeof *p->target);
    p->tf = malloc(T * sizeof *p->tf);
    p->answer = malloc(T * sizeof *p->answer);
    if (!p->target || !p->tf || !p->answer) {
        eval_pred_free(p);
        return lafn_err_set(err, "out of memory for %zu target tokens", T);
    }
    memcpy(p->target, seq->ids + seq->n_prompt, T * sizeof *p->target);
    for (size_t k = 0; k < T; k++) {
        p->tf[k] = argmax(logits + k * (size_t)V, V);
        p->answer[k] = argmax(logits + b->answer_pos[k] * (size_t)V, V);
    }
    p->answer_text = decode_trimmed(s->m->tok, p->answer, T, err);
    p->target_text = p->answer_text ? decode_trimmed(s->m->tok, p->target, T, err) : NULL;
    if (!p->target_text) {
        eval_pred_free(p);
        return -1;
    }
    return 0;
}

static int pred_copy(const eval_pred *a, eval_pred *p, lafn_err *err) {
    size_t T = a->n_target;
    *p = (eval_pred){.n_target = T};
    p->target = malloc(T * sizeof *p->target);
    p->tf = malloc(T * sizeof *p->tf);
    p->answer = malloc(T * sizeof *p->answer);
    p->answer_text = strdup(a->answer_text);
    p->target_text = strdup(a->target_text);
    if (!p->target || !p->tf || !p->answer || !p->answer_text || !p->target_text) {
        eval_pred_free(p);
        return lafn_err_set(err, "out of memory copying a prediction");
    }
    memcpy(p->target, a->target, T * sizeof *p->target);
    memcpy(p->tf, a->tf, T * sizeof *p->tf);
    memcpy(p->answer, a->answer, T * sizeof *p->answer);
    return 0;
}

/* Post forward of the batch b (run holds its unedited forward): the cache's
 * gates read at global position last_pos (the prompt's last token in
 * sequence 0) decide for every sequence of the pair. *fired = 1 if anything
 * applied, and then the run holds the edited forward. */
static int forward_cached(eval_scorer *s, const engine_batch *eb, const engine_forward_opts *o, int last_pos,
                          size_t n_tok, const edit_cache *c, int *fired, lafn_err *err) {
    size_t B = (size_t)eb->n_seq;
    uint8_t *one = malloc(c->n_entries + 1), *fires = malloc(c->n_entries * B + 1);
    edit_cache_edit ce = {0};
    int rc = -1;
    *fired = 0;
    if (!one || !fires) { lafn_err_set(err, "out of memory for %zu gate flags", c->n_entries * B); goto done; }
    if (edit_cache_fires(c, s->run, &s->m->cfg, &last_pos, 1, n_tok, one, err) != 0) goto done;
    for (size_t i = 0; i < c->n_entries; i++) memset(fires + i * B, one[i], B);
    if (edit_cache_compose(c, fires, eb->n_seq, s->m->cfg.n_layer, s->m->cfg.d_model, &ce, err) != 0) goto done;
    if (ce.edit.n > 0) {
        engine_forward_opts edited = *o;
        edited.edit = &ce.edit;
        edited.from_layer = ce.min_layer;
        if (engine_forward(s->run, eb, &edited, err) != 0) goto done;
        *fired = 1;
    }
    rc = 0;
done:
    edit_cache_edit_free(&ce);
    free(one);
    free(fires);
    return rc;
}

int eval_predict(eval_scorer *s, const char *lang, const char *prompt, const char *target, const edit_cache *cache,
                 eval_pred *pre, eval_pred *post, lafn_err *err) {
    *pre = *post = (eval_pred){0};
    stage_sequence seq = {0};
    pair_batch b = {0};
    const facts_lang_info *info = facts_lang_find(lang);
    if (!info) return lafn_err_set(err, "unknown language '%s'", lang);
    if (stage_sequence_build(s->m->tok, lang, prompt, target, &seq, err) != 0) goto fail;
    if (seq.n_target == 0 || seq.n_prompt == 0) {
        lafn_err_set(err, "target '%.40s' or its prompt encodes to no tokens", target);
        goto fail;
    }
    if (pair_batch_build(s->m->tok, info->sep, prompt, &seq, &b, err) != 0) goto fail;
    if (scorer_reserve(s, b.n_tok, (size_t)b.n_pos, err) != 0) goto fail;
    engine_batch eb = {.n_seq = b.n_seq, .seq_len = b.seq_len, .tokens = b.tokens};
    engine_forward_opts o = engine_forward_defaults();
    o.logit_pos = b.logit_pos;
    o.n_logit_pos = b.n_pos;
    if (engine_forward(s->run, &eb, &o, err) != 0 || pred_fill(s, &b, &seq, pre, err) != 0) goto fail;
    int fired = 0;
    if (cache && cache->n_entries > 0 &&
        forward_cached(s, &eb, &o, (int)seq.n_prompt - 1, b.n_tok, cache, &fired, err) != 0)
        goto fail;
    if (fired) {
        if (pred_fill(s, &b, &seq, post, err) != 0) goto fail;
    } else if (pred_copy(pre, post, err) != 0) {
        goto fail;
    }
    post->fired = fired;
    pair_batch_free(&b);
    stage_sequence_free(&seq);
    return 0;
fail:
    lafn_err_wrap(err, "%s prompt '%.60s'", lang, prompt);
    eval_pred_free(pre);
    eval_pred_free(post);
    pair_batch_free(&b);
    stage_sequence_free(&seq);
    return -1;
}
