/* stage_edit_gate: calibrates each fact's cache gate and keys on its own prompts against its references (other facts' questions). */
#include "edit/stage_edit_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_key.h"

void edit_prompt_batch_free(edit_prompt_batch *g) {
    free(g->tokens);
    free(g->seq_len);
    free(g->last);
    memset(g, 0, sizeof *g);
}

int edit_prompt_batch_add(edit_prompt_batch *g, const tokenizer *tok, const char *lang, const char *prompt,
                          lafn_err *err) {
    stage_sequence s = {0};
    if (stage_sequence_build(tok, lang, prompt, NULL, &s, err)) return -1;
    if (g->N + s.n_prompt > g->cap_tokens || g->B + 1 > g->cap_seqs) {
        size_t ct = 2 * (g->N + s.n_prompt) + 64, cs = 2 * g->B + 16;
        int32_t *t = realloc(g->tokens, ct * sizeof *t);
        if (t) g->tokens = t;
        int *l = realloc(g->seq_len, cs * sizeof *l);
        if (l) g->seq_len = l;
        int *p = realloc(g->last, cs * sizeof *p);
        if (p) g->last = p;
        if (!t || !l || !p) {
            stage_sequence_free(&s);
            return lafn_err_set(err, "edit gate: out of memory for %zu prompts", g->B + 1);
        }
        g->cap_tokens = ct;
        g->cap_seqs = cs;
    }
    memcpy(g->tokens + g->N, s.ids, s.n_prompt * sizeof *s.ids);
    g->seq_len[g->B] = (int)s.n_prompt;
    g->N += s.n_prompt;
    g->last[g->B++] = (int)g->N - 1;
    stage_sequence_free(&s);
    return 0;
}

int edit_prompt_batch_forward(const model *m, const edit_prompt_batch *g, engine_run **out, lafn_err *err) {
    *out = NULL;
    if (engine_run_init(out, m, g->N, 1, err)) return -1;
    engine_batch b = {.n_seq = (int)g->B, .seq_len = g->seq_len, .tokens = g->tokens};
    engine_forward_opts o = engine_forward_defaults();
    return engine_forward(*out, &b, &o, err);
}

/* The unit keys of the fact's own prompts (g, forwarded into run) and its threshold against its references'
 * states, into rec (arrays allocated here, freed with the record). */
static int key_for_fact(const edit_stage *S, size_t i, const engine_run *run, const edit_prompt_batch *g,
                        edit_record *rec, lafn_err *err) {
    int D = S->ctx.m->cfg.d_model, n_own = (int)g->B;
    const edit_gate_refs *R = &S->refs;
    int64_t n_neg = R->ref_off[i + 1] - R->ref_off[i];
    const float *h = engine_residual(run, S->key_layer);
    float *neg = malloc(((size_t)n_neg + 1) * (size_t)D * sizeof *neg);
    rec->keys = malloc((size_t)n_own * (size_t)D * sizeof *rec->keys);
    rec->key_center = malloc((size_t)D * sizeof *rec->key_center);
    if (!neg || !rec->keys || !rec->key_center) {
        free(neg);
        return lafn_err_set(err, "edit key: out of memory for %d keys", n_own);
    }
    memcpy(rec->key_center, S->key_center, (size_t)D * sizeof *rec->key_center);
    for (int b = 0; b < n_own; b++)
        edit_key_of(h + (size_t)g->last[b] * (size_t)D, S->key_center, D, rec->keys + (size_t)b * (size_t)D);
    for (int64_t e = 0; e < n_neg; e++)
        edit_key_of(R->state + (size_t)R->ref_row[R->ref_off[i] + e] * (size_t)D, S->key_center, D,
                    neg + (size_t)e * (size_t)D);
    rec->n_keys = n_own;
    rec->key_layer = S->key_layer;
    rec->key_threshold = edit_key_threshold(rec->keys, n_own, neg, (int)n_neg, D, S->key_floor, S->key_margin);
    free(neg);
    return 0;
}

/* The sign of candidate k: locate's, or where locate left it 0 (the random
 * control) the sign of its mean activation over the fact's own prompts. */
static float candidate_sign(const edit_stage *S, const engine_run *run, const int *last, int n_own, int64_t k) {
    if (S->nr.sign[k] != 0.0f) return S->nr.sign[k];
    const float *act = engine_ffn_act(run, S->nr.layer[k]);
    double sum = 0.0;
    for (int b = 0; b < n_own; b++) sum += act[(size_t)last[b] * (size_t)S->ctx.m->cfg.d_ffn + (size_t)S->nr.neuron[k]];
    return sum < 0.0 ? -1.0f : 1.0f;
}

/* own_min[k] and ref_max[k] of edit_gate_calibrate for fact i's n candidates (from entry off of S->nr), signed. */
static void gate_extremes(const edit_stage *S, size_t i, const engine_run *run, const edit_prompt_batch *g,
                          int64_t off, int n, const float *sign, float *own_min, float *ref_max) {
    const edit_gate_refs *R = &S->refs;
    size_t F = (size_t)S->ctx.m->cfg.d_ffn;
    int64_t n_ref = R->ref_off[i + 1] - R->ref_off[i];
    const float *ref = R->act + R->act_off[i];
    for (int k = 0; k < n; k++) {
        const float *act = engine_ffn_act(run, S->nr.layer[off + k]);
        own_min[k] = INFINITY, ref_max[k] = -INFINITY;
        for (size_t b = 0; b < g->B; b++) {
            float x = act[(size_t)g->last[b] * F + (size_t)S->nr.neuron[off + k]] * sign[k];
            own_min[k] = x < own_min[k] ? x : own_min[k];
        }
        for (int64_t e = 0; e < n_ref; e++) {
            float x = ref[e * n + k] * sign[k];
            ref_max[k] = x > ref_max[k] ? x : ref_max[k];
        }
    }
}

int edit_gate_for_fact(const edit_stage *S, size_t i, edit_record *rec, lafn_err *err) {
    long r = S->row[i];
    int64_t off = S->nr.offsets[r];
    int n = (int)(S->nr.offsets[r + 1] - off);
    edit_prompt_batch g = {0};
    engine_run *run = NULL;
    uint8_t *keep = malloc((size_t)n + 1);
    float *thr = malloc(((size_t)n + 1) * sizeof *thr), *sign = malloc(((size_t)n + 1) * sizeof *sign);
    float *own_min = malloc(((size_t)n + 1) * sizeof *own_min), *ref_max = malloc(((size_t)n + 1) * sizeof *ref_max);
    int rc = keep && thr && sign && own_min && ref_max ? 0 : lafn_err_set(err, "edit gate: out of memory for %d neurons", n);
    const facts_edit_view *v = &S->views[i];
    for (size_t l = 0; rc == 0 && l < v->n_langs; l++)
        for (size_t p = 0; rc == 0 && p < v->langs[l].n_prompts; p++)
            rc = edit_prompt_batch_add(&g, S->ctx.m->tok, v->langs[l].lang, v->langs[l].prompts[p], err);
    if (rc == 0) rc = edit_prompt_batch_forward(S->ctx.m, &g, &run, err);
    if (rc == 0) {
        for (int k = 0; k < n; k++) sign[k] = candidate_sign(S, run, g.last, (int)g.B, off + k);
        gate_extremes(S, i, run, &g, off, n, sign, own_min, ref_max);
        int kept = edit_gate_calibrate(n, own_min, ref_max, S->nr.threshold + off, keep, thr);
        rec->gate_candidates = n;
        rec->gate_specific = kept > 0;
        rec->n_gate = 0;
        for (int k = 0; k < n; k++) {
            if (!keep[k]) continue;
            int q = rec->n_gate++;
            rec->gate_layer[q] = S->nr.layer[off + k];
            rec->gate_neuron[q] = S->nr.neuron[off + k];
            rec->gate_sign[q] = sign[k];
            rec->gate_threshold[q] = thr[k];
        }
        rc = key_for_fact(S, i, run, &g, rec, err);
    }
    engine_run_free(run);
    edit_prompt_batch_free(&g);
    free(keep);
    free(thr);
    free(sign);
    free(own_min);
    free(ref_max);
    return rc ? lafn_err_wrap(err, "edit gate of fact %s", S->ctx.facts.facts[i].id) : 0;
}
