/* stage_probe_fact: one fact through the engine — every (language, prompt) in one batch, a score per FFN neuron at the scored position, the kept neurons. */
#include "probe/stage_probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stage/stage.h"
#include "tokenizer/tokenizer.h"

/* Dimensions: F neurons per layer, V vocabulary, N tokens of the fact's batch,
 * Q prompts of the fact, Y probed layers, P target positions. */
struct probe_work {
    const model *m;
    const probe_opts *o;
    engine_run *run;
    size_t max_tokens, max_prompts, max_logit;
    int with_target;
    int32_t *tokens;     /* (N) */
    int *seq_len;        /* (Q) prompt + target tokens */
    size_t *seq_off;     /* (Q) global position of each sequence's first token */
    size_t *n_prompt;    /* (Q) prompt tokens (BOS included) */
    size_t *pos_lo, *pos_hi; /* (Q) scored token range [lo, hi) inside the sequence */
    int32_t *fallback;   /* (Q) 1: position = subject fell back to the last token */
    int32_t *prompt_lang;/* (Q) index into the run's language list */
    int *logit_pos;      /* (P) */
    int32_t *logit_target; /* (P) */
    float *dlogits;      /* (P, V) */
    float *score;        /* (Q, Y, F) */
    float *a_last;       /* (Q, Y, F) activation at the last prompt token */
    float *a_base;       /* (N, F) integrated gradients: unscaled activation of one layer */
    float *g_sum;        /* (N, F) integrated gradients: Σ over steps of dlogp/da */
    double *stats;       /* (Y, 3) this fact's sum |a|, max |a|, count */
    size_t N, Q, P;
};

typedef struct {
    float s;
    int j;
} cand;

void probe_work_free(probe_work *w) {
    if (!w) return;
    engine_run_free(w->run);
    free(w->tokens); free(w->seq_len); free(w->seq_off); free(w->n_prompt); free(w->pos_lo); free(w->pos_hi);
    free(w->fallback); free(w->prompt_lang); free(w->logit_pos); free(w->logit_target); free(w->dlogits);
    free(w->score); free(w->a_last); free(w->a_base); free(w->g_sum); free(w->stats);
    free(w);
}

int probe_work_init(probe_work **out, const model *m, const probe_opts *o, size_t max_tokens, size_t max_prompts,
                    size_t max_logit, lafn_err *err) {
    probe_work *w = calloc(1, sizeof *w);
    if (!w) return lafn_err_set(err, "probe: out of memory");
    size_t F = (size_t)m->cfg.d_ffn, V = (size_t)m->cfg.vocab, Y = o->n_layers;
    w->m = m;
    w->o = o;
    w->with_target = o->score == PROBE_SCORE_GRAD_X_ACT || o->score == PROBE_SCORE_IG;
    w->max_tokens = max_tokens;
    w->max_prompts = max_prompts;
    w->max_logit = w->with_target ? max_logit : 0;
    size_t Q = max_prompts ? max_prompts : 1, P = w->max_logit ? w->max_logit : 1;
    w->tokens = malloc(max_tokens * sizeof *w->tokens);
    w->seq_len = malloc(Q * sizeof *w->seq_len);
    w->seq_off = malloc(Q * sizeof *w->seq_off);
    w->n_prompt = malloc(Q * sizeof *w->n_prompt);
    w->pos_lo = malloc(Q * sizeof *w->pos_lo);
    w->pos_hi = malloc(Q * sizeof *w->pos_hi);
    w->fallback = malloc(Q * sizeof *w->fallback);
    w->prompt_lang = malloc(Q * sizeof *w->prompt_lang);
    w->logit_pos = malloc(P * sizeof *w->logit_pos);
    w->logit_target = malloc(P * sizeof *w->logit_target);
    w->dlogits = w->with_target ? malloc(P * V * sizeof *w->dlogits) : NULL;
    w->score = malloc(Q * Y * F * sizeof *w->score);
    w->a_last = malloc(Q * Y * F * sizeof *w->a_last);
    w->stats = malloc(Y * 3 * sizeof *w->stats);
    if (o->score == PROBE_SCORE_IG) {
        w->a_base = malloc(max_tokens * F * sizeof *w->a_base);
        w->g_sum = malloc(max_tokens * F * sizeof *w->g_sum);
    }
    if (!w->tokens || !w->seq_len || !w->seq_off || !w->n_prompt || !w->pos_lo || !w->pos_hi || !w->fallback ||
        !w->prompt_lang || !w->logit_pos || !w->logit_target || (w->with_target && !w->dlogits) || !w->score ||
        !w->a_last || !w->stats || (o->score == PROBE_SCORE_IG && (!w->a_base || !w->g_sum))) {
        probe_work_free(w);
        return lafn_err_set(err, "probe: out of memory for the work space (%zu tokens, %zu prompts, %zu layers)",
                            max_tokens, max_prompts, Y);
    }
    if (engine_run_init(&w->run, m, max_tokens, w->max_logit, err) != 0) {
        probe_work_free(w);
        return lafn_err_wrap(err, "probe");
    }
    *out = w;
    return 0;
}

int probe_fact_size(const tokenizer *t, const facts_edit_view *v, int with_target, size_t *n_tokens,
                    size_t *n_prompts, size_t *n_logit, lafn_err *err) {
    *n_tokens = *n_prompts = *n_logit = 0;
    for (size_t l = 0; l < v->n_langs; l++) {
        const facts_prompt_set *ps = &v->langs[l];
        for (size_t q = 0; q < ps->n_prompts; q++) {
            stage_sequence s;
            if (stage_sequence_build(t, ps->lang, ps->prompts[q], with_target ? ps->target : NULL, &s, err) != 0)
                return lafn_err_wrap(err, "fact '%s' language %s prompt %zu", v->id, ps->lang, q);
            *n_tokens += s.n_prompt + s.n_target;
            *n_logit += s.n_target;
            stage_sequence_free(&s);
            (*n_prompts)++;
        }
    }
    return 0;
}

int probe_subject_position(const tokenizer *t, const char *prompt, const char *subject, const int32_t *ids,
                           size_t n_prompt, int has_bos, size_t *pos, lafn_err *err) {
    const char *hit = subject && subject[0] ? strstr(prompt, subject) : NULL;
    if (!hit) return 1;
    size_t end = (size_t)(hit - prompt) + strlen(subject), start = has_bos ? 1 : 0;
    char *full = tokenizer_decode(t, ids + start, n_prompt - start, err);
    if (!full) return -1;
    int roundtrip = strcmp(full, prompt) == 0;
    free(full);
    if (!roundtrip) return 1; /* token boundaries cannot be mapped to the prompt's bytes */
    for (size_t k = start + 1; k <= n_prompt; k++) {
        char *text = tokenizer_decode(t, ids + start, k - start, err);
        if (!text) return -1;
        size_t len = strlen(text);
        free(text);
        if (len >= end) {
            *pos = k - 1;
            return 0;
        }
    }
    return 1;
}

/* Places one prompt's sequence s at the end of the batch and decides its scored positions. */
static int add_sequence(probe_work *w, const facts_prompt_set *ps, size_t q, const stage_sequence *s, int lang,
                        lafn_err *err) {
    size_t len = s->n_prompt + s->n_target, i = w->Q;
    if (s->n_prompt == 0) return lafn_err_set(err, "prompt %zu tokenizes to nothing", q);
    if (w->with_target && s->n_target == 0) return lafn_err_set(err, "target '%s' tokenizes to nothing", ps->target);
    if (i >= w->max_prompts || len > w->max_tokens - w->N || s->n_target > w->max_logit - w->P)
        return lafn_err_set(err, "fact larger than the work space (%zu tokens, %zu prompts)", w->max_tokens,
                            w->max_prompts);
    memcpy(w->tokens + w->N, s->ids, len * sizeof *s->ids);
    w->seq_len[i] = (int)len;
    w->seq_off[i] = w->N;
    w->n_prompt[i] = s->n_prompt;
    w->prompt_lang[i] = lang;
    w->fallback[i] = 0;
    int has_bos = tokenizer_adds_bos(w->m->tok) && tokenizer_bos(w->m->tok) >= 0 && s->ids[0] == tokenizer_bos(w->m->tok);
    w->pos_lo[i] = s->n_prompt - 1;
    w->pos_hi[i] = s->n_prompt;
    if (w->o->position == PROBE_POS_MEAN) {
        w->pos_lo[i] = has_bos && s->n_prompt > 1 ? 1 : 0;
    } else if (w->o->position == PROBE_POS_SUBJECT) {
        size_t pos;
        int rc = probe_subject_position(w->m->tok, ps->prompts[q], ps->subject, s->ids, s->n_prompt, has_bos, &pos, err);
        if (rc < 0) return -1;
        if (rc == 0) w->pos_lo[i] = pos, w->pos_hi[i] = pos + 1;
        else w->fallback[i] = 1;
    }
    for (size_t k = 0; k < s->n_target; k++) {
        w->logit_pos[w->P] = (int)(w->N + s->n_prompt - 1 + k);
        w->logit_target[w->P++] = s->ids[s->n_prompt + k];
    }
    w->N += len;
    w->Q++;
    return 0;
}

/* Tokenizes every (language, prompt) of v into the work space. */
static int build_batch(probe_work *w, const facts_edit_view *v, const int *lang_index, lafn_err *err) {
    w->N = w->Q = w->P = 0;
    for (size_t l = 0; l < v->n_langs; l++) {
        const facts_prompt_set *ps = &v->langs[l];
        for (size_t q = 0; q < ps->n_prompts; q++) {
            stage_sequence s;
            if (stage_sequence_build(w->m->tok, ps->lang, ps->prompts[q], w->with_target ? ps->target : NULL, &s,
                                     err) != 0)
                return lafn_err_wrap(err, "language %s prompt %zu", ps->lang, q);
            int rc = add_sequence(w, ps, q, &s, lang_index[l], err);
            stage_sequence_free(&s);
            if (rc != 0) return lafn_err_wrap(err, "language %s prompt %zu", ps->lang, q);
        }
    }
    return 0;
}

/* Score of activation a with gradient g (dlogp/da; unused for activation scores). */
static float score_of(probe_score kind, float a, float g) {
    switch (kind) {
    case PROBE_SCORE_ACTIVATION: return a > 0 ? a : 0;
    case PROBE_SCORE_ABS_ACTIVATION: return fabsf(a);
    default: return a * g;
    }
}

/* score[q, y, :] = mean over q's scored positions of score_of(act, -grad); act and
 * grad are (N, F) of one layer (grad NULL for activation scores, scaled by gscale). */
static void score_layer(probe_work *w, size_t y, const float *act, const float *grad, float gscale) {
    size_t F = (size_t)w->m->cfg.d_ffn, Y = w->o->n_layers;
    for (size_t q = 0; q < w->Q; q++) {
        float *s = w->score + (q * Y + y) * F;
        size_t lo = w->seq_off[q] + w->pos_lo[q], hi = w->seq_off[q] + w->pos_hi[q];
        memset(s, 0, F * sizeof *s);
        for (size_t n = lo; n < hi; n++)
            for (size_t j = 0; j < F; j++)
                s[j] += score_of(w->o->score, act[n * F + j], grad ? -gscale * grad[n * F + j] : 0.0f);
        float inv = 1.0f / (float)(hi - lo);
        for (size_t j = 0; j < F; j++) s[j] *= inv;
    }
}

/* From the unscaled forward: activation at the last prompt token, and the
 * layer statistics of |a| at the scored positions (mean over positions per neuron). */
static void take_activations(probe_work *w) {
    size_t F = (size_t)w->m->cfg.d_ffn, Y = w->o->n_layers;
    for (size_t y = 0; y < Y; y++) {
        const float *act = engine_ffn_act(w->run, w->o->layers[y]);
        double sum = 0, mx = 0;
        for (size_t q = 0; q < w->Q; q++) {
            size_t last = w->seq_off[q] + w->n_prompt[q] - 1;
            memcpy(w->a_last + (q * Y + y) * F, act + last * F, F * sizeof *act);
            size_t lo = w->seq_off[q] + w->pos_lo[q], hi = w->seq_off[q] + w->pos_hi[q];
            for (size_t j = 0; j < F; j++) {
                double m = 0;
                for (size_t n = lo; n < hi; n++) m += fabsf(act[n * F + j]);
                m /= (double)(hi - lo);
                sum += m;
                if (m > mx) mx = m;
            }
        }
        w->stats[3 * y] = sum;
        w->stats[3 * y + 1] = mx;
        w->stats[3 * y + 2] = (double)(w->Q * F);
    }
}

/* grad_x_act and integrated gradients: the loss is -Σ log p(target tokens | prefix) over every prompt. */
static void loss_grad(probe_work *w) {
    engine_nll(engine_logits(w->run), (int)w->P, w->m->cfg.vocab, w->logit_target, NULL, NULL, w->dlogits);
}

/* Integrated gradients of every probed layer, from the top down so that each
 * forward can start at its own layer (the residual below it is the unscaled one). */
static int score_integrated(probe_work *w, engine_forward_opts base, const engine_batch *b, lafn_err *err) {
    size_t F = (size_t)w->m->cfg.d_ffn, NF = w->N * F;
    for (size_t yy = w->o->n_layers; yy-- > 0;) {
        int l = w->o->layers[yy];
        memcpy(w->a_base, engine_ffn_act(w->run, l), NF * sizeof *w->a_base);
        memset(w->g_sum, 0, NF * sizeof *w->g_sum);
        for (int k = 1; k <= w->o->steps; k++) {
            engine_forward_opts o = base;
            o.from_layer = l;
            o.scale_layer = l;
            o.scale_alpha = (float)k / (float)w->o->steps;
            if (engine_forward(w->run, b, &o, err) != 0) return -1;
            loss_grad(w);
            if (engine_backward(w->run, w->dlogits, l, NULL, err) != 0) return -1;
            const float *g = engine_ffn_act_grad(w->run, l);
            for (size_t i = 0; i < NF; i++) w->g_sum[i] += g[i];
        }
        score_layer(w, yy, w->a_base, w->g_sum, 1.0f / (float)w->o->steps);
    }
    return 0;
}

/* Runs the engine over the batch and fills w->score, w->a_last, w->stats. */
static int score_batch(probe_work *w, lafn_err *err) {
    engine_batch b = {.n_seq = (int)w->Q, .seq_len = w->seq_len, .tokens = w->tokens};
    engine_forward_opts o = engine_forward_defaults();
    if (w->with_target) {
        o.logit_pos = w->logit_pos;
        o.n_logit_pos = (int)w->P;
    }
    if (engine_forward(w->run, &b, &o, err) != 0) return -1;
    take_activations(w);
    if (w->o->score == PROBE_SCORE_IG) return score_integrated(w, o, &b, err);
    if (w->o->score == PROBE_SCORE_GRAD_X_ACT) {
        loss_grad(w);
        if (engine_backward(w->run, w->dlogits, w->o->layers[0], NULL, err) != 0) return -1;
    }
    for (size_t y = 0; y < w->o->n_layers; y++) {
        int l = w->o->layers[y];
        score_layer(w, y, engine_ffn_act(w->run, l),
                    w->with_target ? engine_ffn_act_grad(w->run, l) : NULL, 1.0f);
    }
    return 0;
}

static int cand_by_score(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return (x->j > y->j) - (x->j < y->j);
}

static int cand_by_neuron(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return (x->j > y->j) - (x->j < y->j);
}

/* Appends the kept neurons of prompt q in probed layer y to the batch. */
static int keep_layer(probe_work *w, size_t q, size_t y, cand *c, probe_batch *out, lafn_err *err) {
    size_t F = (size_t)w->m->cfg.d_ffn, Y = w->o->n_layers;
    const float *s = w->score + (q * Y + y) * F, *a = w->a_last + (q * Y + y) * F;
    float mx = 0;
    for (size_t j = 0; j < F; j++) {
        if (!isfinite(s[j]))
            return lafn_err_set(err, "prompt %zu: blk.%d.ffn_down neuron %zu has a non-finite score", q,
                                w->o->layers[y], j);
        if (s[j] > mx) mx = s[j];
    }
    size_t n = 0;
    float cut = (float)w->o->min_fraction * mx;
    for (size_t j = 0; mx > 0 && j < F; j++)
        if (s[j] > 0 && s[j] >= cut) c[n++] = (cand){s[j], (int)j};
    int32_t above = (int32_t)n, qi = (int32_t)q, li = w->o->layers[y];
    if (n > w->o->keep_max) {
        qsort(c, n, sizeof *c, cand_by_score);
        n = w->o->keep_max;
        qsort(c, n, sizeof *c, cand_by_neuron);
    }
    if (grow_vec_push(&out->layer_max, &mx, 1, err) || grow_vec_push(&out->layer_above, &above, 1, err))
        return -1;
    for (size_t k = 0; k < n; k++) {
        int32_t j = c[k].j;
        if (grow_vec_push(&out->kept_prompt, &qi, 1, err) || grow_vec_push(&out->kept_layer, &li, 1, err) ||
            grow_vec_push(&out->kept_neuron, &j, 1, err) || grow_vec_push(&out->kept_score, &c[k].s, 1, err) ||
            grow_vec_push(&out->kept_act, &a[j], 1, err))
            return -1;
    }
    return 0;
}

/* Appends the fact's prompts, kept neurons and statistics as row out->n_facts. */
static int append_fact(probe_work *w, const facts_edit_view *v, probe_batch *out, lafn_err *err) {
    size_t F = (size_t)w->m->cfg.d_ffn, Y = w->o->n_layers, f = out->n_facts;
    cand *c = malloc(F * sizeof *c);
    if (!c) return lafn_err_set(err, "out of memory");
    memset(out->lang_stats + f * 2 * out->n_langs, 0, 2 * out->n_langs * sizeof *out->lang_stats);
    int rc = 0;
    for (size_t q = 0; q < w->Q && rc == 0; q++) {
        int32_t ntok = (int32_t)w->n_prompt[q], pos = (int32_t)(w->pos_hi[q] - 1);
        rc = grow_vec_push(&out->prompt_lang, &w->prompt_lang[q], 1, err) ||
             grow_vec_push(&out->prompt_ntok, &ntok, 1, err) || grow_vec_push(&out->prompt_pos, &pos, 1, err) ||
             grow_vec_push(&out->prompt_fallback, &w->fallback[q], 1, err) ? -1 : 0;
        for (size_t y = 0; y < Y && rc == 0; y++) rc = keep_layer(w, q, y, c, out, err);
        int32_t *ls = out->lang_stats + f * 2 * out->n_langs;
        ls[2 * w->prompt_lang[q]] += 1;
        ls[2 * w->prompt_lang[q] + 1] += w->fallback[q];
    }
    free(c);
    if (rc != 0) return -1;
    memcpy(out->act_stats + f * 3 * Y, w->stats, 3 * Y * sizeof *w->stats);
    out->facts[f] = (int64_t)v->index;
    out->off_prompt[f + 1] = (int64_t)out->prompt_lang.n;
    out->off_layer[f + 1] = (int64_t)out->layer_max.n;
    out->off_kept[f + 1] = (int64_t)out->kept_neuron.n;
    out->n_facts++;
    return 0;
}

int probe_fact(probe_work *w, const facts_edit_view *v, const int *lang_index, probe_batch *b, lafn_err *err) {
    if (b->n_facts >= b->cap_facts) return lafn_err_set(err, "probe: batch of %zu facts is full", b->cap_facts);
    size_t n_above = b->prompt_lang.n, l_above = b->layer_max.n, k_above = b->kept_neuron.n;
    if (build_batch(w, v, lang_index, err) != 0 || score_batch(w, err) != 0 || append_fact(w, v, b, err) != 0) {
        /* drop whatever this fact appended, so the batch stays consistent */
        b->prompt_lang.n = b->prompt_ntok.n = b->prompt_pos.n = b->prompt_fallback.n = n_above;
        b->layer_max.n = b->layer_above.n = l_above;
        b->kept_prompt.n = b->kept_layer.n = b->kept_neuron.n = b->kept_score.n = b->kept_act.n = k_above;
        return lafn_err_wrap(err, "probe: fact '%s'", v->id);
    }
    return 0;
}
