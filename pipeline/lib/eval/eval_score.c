/* eval_score: teacher-forced and prefix-argmax predictions of one (prompt, target) pair, unedited and through a gated edit. */
#include "eval/stage_eval_int.h"

#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"
#include "stage/stage.h"

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

/* Fills p from logits (the rows of pair b, from its first scored position). */
static int pred_fill(const eval_scorer *s, const float *logits, const pair_batch *b, const stage_sequence *seq,
                     eval_pred *p, lafn_err *err) {
    size_t T = seq->n_target;
    int V = s->m->cfg.vocab;
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

/* The n pairs of one call packed into one engine batch. */
typedef struct {
    size_t n;
    stage_sequence *seq;  /* (n) */
    pair_batch *pb;       /* (n) */
    size_t *pos0;         /* (n) first scored position of each pair */
    int *last;            /* (n) global position of each pair's last prompt token */
    int32_t *tokens;      /* (N) */
    int *seq_len;         /* (B) */
    int *logit_pos;       /* (P) */
    size_t *pair_of;      /* (B) pair of each sequence */
    size_t N, B, P;
} multi_batch;

static void multi_free(multi_batch *mb) {
    for (size_t i = 0; i < mb->n; i++) {
        if (mb->seq) stage_sequence_free(&mb->seq[i]);
        if (mb->pb) pair_batch_free(&mb->pb[i]);
    }
    free(mb->seq); free(mb->pb); free(mb->pos0); free(mb->last); free(mb->tokens); free(mb->seq_len);
    free(mb->logit_pos); free(mb->pair_of);
    *mb = (multi_batch){0};
}

/* Concatenates the built pairs into one batch. */
static int multi_pack(multi_batch *mb, lafn_err *err) {
    for (size_t i = 0; i < mb->n; i++) {
        mb->N += mb->pb[i].n_tok;
        mb->B += (size_t)mb->pb[i].n_seq;
        mb->P += (size_t)mb->pb[i].n_pos;
    }
    mb->tokens = malloc(mb->N * sizeof *mb->tokens);
    mb->seq_len = malloc(mb->B * sizeof *mb->seq_len);
    mb->logit_pos = malloc(mb->P * sizeof *mb->logit_pos);
    mb->pair_of = malloc(mb->B * sizeof *mb->pair_of);
    if (!mb->tokens || !mb->seq_len || !mb->logit_pos || !mb->pair_of)
        return lafn_err_set(err, "out of memory packing %zu pairs", mb->n);
    size_t t = 0, b = 0, p = 0;
    for (size_t i = 0; i < mb->n; i++) {
        const pair_batch *pb = &mb->pb[i];
        memcpy(mb->tokens + t, pb->tokens, pb->n_tok * sizeof *mb->tokens);
        for (int k = 0; k < pb->n_seq; k++, b++) { mb->seq_len[b] = pb->seq_len[k]; mb->pair_of[b] = i; }
        for (int k = 0; k < pb->n_pos; k++) mb->logit_pos[p + (size_t)k] = (int)t + pb->logit_pos[k];
        mb->pos0[i] = p;
        mb->last[i] = (int)(t + mb->seq[i].n_prompt - 1);
        t += pb->n_tok;
        p += (size_t)pb->n_pos;
    }
    return 0;
}

/* Tokenizes and packs the n pairs of language lang. */
static int multi_build(const tokenizer *tok, const char *lang, size_t n, const char *const *prompts,
                       const char *const *targets, multi_batch *mb, lafn_err *err) {
    const facts_lang_info *info = facts_lang_find(lang);
    *mb = (multi_batch){.n = n};
    if (!info) return lafn_err_set(err, "unknown language '%s'", lang);
    mb->seq = calloc(n, sizeof *mb->seq);
    mb->pb = calloc(n, sizeof *mb->pb);
    mb->pos0 = malloc(n * sizeof *mb->pos0);
    mb->last = malloc(n * sizeof *mb->last);
    if (!mb->seq || !mb->pb || !mb->pos0 || !mb->last) return lafn_err_set(err, "out of memory for %zu pairs", n);
    for (size_t i = 0; i < n; i++) {
        if (stage_sequence_build(tok, lang, prompts[i], targets[i], &mb->seq[i], err) != 0)
            return lafn_err_wrap(err, "%s prompt '%.60s'", lang, prompts[i]);
        if (mb->seq[i].n_target == 0 || mb->seq[i].n_prompt == 0)
            return lafn_err_set(err, "%s: target '%.40s' or its prompt encodes to no tokens", lang, targets[i]);
        if (pair_batch_build(tok, info->sep, prompts[i], &mb->seq[i], &mb->pb[i], err) != 0)
            return lafn_err_wrap(err, "%s prompt '%.60s'", lang, prompts[i]);
    }
    return multi_pack(mb, err);
}

/* Post forward (the run holds the unedited forward of mb): the cache's gates
 * are read at each pair's last prompt token and decide for every sequence of
 * that pair. fired[i] = 1 if an edit applied to pair i; if any did, the run
 * then holds the edited forward. */
static int forward_cached(eval_scorer *s, const multi_batch *mb, const engine_batch *eb,
                          const engine_forward_opts *o, const edit_cache *c, int *fired, lafn_err *err) {
    size_t E = c->n_entries, n = mb->n, B = mb->B;
    uint8_t *per_pair = malloc(E * n + 1), *fires = malloc(E * B + 1);
    edit_cache_edit ce = {0};
    int rc = -1;
    for (size_t i = 0; i < n; i++) fired[i] = 0;
    if (!per_pair || !fires) { lafn_err_set(err, "out of memory for %zu gate flags", E * B); goto done; }
    if (edit_cache_fires(c, s->run, &s->m->cfg, mb->last, (int)n, mb->N, per_pair, err) != 0) goto done;
    for (size_t e = 0; e < E; e++)
        for (size_t b = 0; b < B; b++) fires[e * B + b] = per_pair[e * n + mb->pair_of[b]];
    if (edit_cache_compose(c, fires, (int)B, s->m->cfg.n_layer, s->m->cfg.d_model, &ce, err) != 0) goto done;
    if (ce.edit.n > 0) {
        engine_forward_opts edited = *o;
        edited.edit = &ce.edit;
        edited.from_layer = ce.min_layer;
        if (engine_forward(s->run, eb, &edited, err) != 0) goto done;
        for (size_t e = 0; e < E; e++)
            for (size_t i = 0; i < n; i++) fired[i] |= per_pair[e * n + i] && c->entries[e].n > 0;
    }
    rc = 0;
done:
    edit_cache_edit_free(&ce);
    free(per_pair);
    free(fires);
    return rc;
}

int eval_predict_batch(eval_scorer *s, const char *lang, size_t n, const char *const *prompts,
                       const char *const *targets, const edit_cache *cache, eval_pred *pre, eval_pred *post,
                       lafn_err *err) {
    multi_batch mb = {0};
    int *fired = calloc(n + 1, sizeof *fired);
    size_t V = (size_t)s->m->cfg.vocab;
    for (size_t i = 0; i < n; i++) pre[i] = post[i] = (eval_pred){0};
    if (!fired) return lafn_err_set(err, "out of memory");
    if (multi_build(s->m->tok, lang, n, prompts, targets, &mb, err) != 0 || scorer_reserve(s, mb.N, mb.P, err) != 0)
        goto fail;
    engine_batch eb = {.n_seq = (int)mb.B, .seq_len = mb.seq_len, .tokens = mb.tokens};
    engine_forward_opts o = engine_forward_defaults();
    o.logit_pos = mb.logit_pos;
    o.n_logit_pos = (int)mb.P;
    if (engine_forward(s->run, &eb, &o, err) != 0) goto fail;
    for (size_t i = 0; i < n; i++)
        if (pred_fill(s, engine_logits(s->run) + mb.pos0[i] * V, &mb.pb[i], &mb.seq[i], &pre[i], err) != 0) goto fail;
    if (cache && cache->n_entries > 0 && forward_cached(s, &mb, &eb, &o, cache, fired, err) != 0) goto fail;
    for (size_t i = 0; i < n; i++) {
        int rc = fired[i] ? pred_fill(s, engine_logits(s->run) + mb.pos0[i] * V, &mb.pb[i], &mb.seq[i], &post[i], err)
                          : pred_copy(&pre[i], &post[i], err);
        if (rc != 0) goto fail;
        post[i].fired = fired[i];
    }
    multi_free(&mb);
    free(fired);
    return 0;
fail:
    for (size_t i = 0; i < n; i++) { eval_pred_free(&pre[i]); eval_pred_free(&post[i]); }
    multi_free(&mb);
    free(fired);
    return -1;
}

int eval_predict(eval_scorer *s, const char *lang, const char *prompt, const char *target, const edit_cache *cache,
                 eval_pred *pre, eval_pred *post, lafn_err *err) {
    return eval_predict_batch(s, lang, 1, &prompt, &target, cache, pre, post, err);
}
