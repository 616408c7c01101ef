/* stage_edit_gate: calibrates each fact's cache gate on its own prompts against other facts' questions. */
#include "edit/stage_edit_loop.h"

#include <stdlib.h>
#include <string.h>

#include "edit/edit_key.h"

/* Packed prompts (no targets) of one calibration batch. */
typedef struct {
    int32_t *tokens;
    int *seq_len, *last;
    size_t N, B, cap_tokens, cap_seqs;
} gate_batch;

static void gate_batch_free(gate_batch *g) {
    free(g->tokens);
    free(g->seq_len);
    free(g->last);
    memset(g, 0, sizeof *g);
}

static int gate_add(gate_batch *g, const tokenizer *tok, const char *lang, const char *prompt, lafn_err *err) {
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

/* Own prompts of fact i (every language), then the src of up to
 * EDIT_GATE_REFS other facts per language; *n_own receives the count of the first. */
static int gate_prompts(const edit_stage *S, size_t i, gate_batch *g, int *n_own, lafn_err *err) {
    const facts_edit_view *v = &S->views[i];
    size_t n = S->ctx.facts.n_facts;
    for (size_t l = 0; l < v->n_langs; l++)
        for (size_t p = 0; p < v->langs[l].n_prompts; p++)
            if (gate_add(g, S->ctx.m->tok, v->langs[l].lang, v->langs[l].prompts[p], err)) return -1;
    *n_own = (int)g->B;
    for (size_t l = 0; l < v->n_langs; l++) {
        size_t found = 0;
        for (size_t k = 1; k < n && found < EDIT_GATE_REFS; k++) {
            const facts_edit_view *o = &S->views[(i + k) % n];
            for (size_t q = 0; q < o->n_langs; q++)
                if (!strcmp(o->langs[q].lang, v->langs[l].lang) && o->langs[q].n_prompts) {
                    if (gate_add(g, S->ctx.m->tok, o->langs[q].lang, o->langs[q].prompts[0], err)) return -1;
                    found++;
                }
        }
    }
    return 0;
}

/* Prompts per forward when the key centre is computed. */
#define KEY_CENTER_BATCH 64

/* Adds the states entering layer S->key_layer at the last tokens of g's prompts to sum (D); forwards g and empties it. */
static int add_states(const edit_stage *S, gate_batch *g, double *sum, lafn_err *err) {
    engine_run *run = NULL;
    size_t D = (size_t)S->ctx.m->cfg.d_model;
    int rc = g->B ? engine_run_init(&run, S->ctx.m, g->N, 1, err) : 0;
    if (rc == 0 && g->B) {
        engine_batch b = {.n_seq = (int)g->B, .seq_len = g->seq_len, .tokens = g->tokens};
        engine_forward_opts o = engine_forward_defaults();
        rc = engine_forward(run, &b, &o, err);
    }
    for (size_t q = 0; rc == 0 && q < g->B; q++) {
        const float *h = engine_residual(run, S->key_layer) + (size_t)g->last[q] * D;
        for (size_t d = 0; d < D; d++) sum[d] += h[d];
    }
    engine_run_free(run);
    g->N = g->B = 0;
    return rc;
}

/* This rank's share (facts i with i mod size = rank) of the sums of the src states; *count gets their number. */
static int center_sums(const edit_stage *S, double *sum, double *count, lafn_err *err) {
    gate_batch g = {0};
    int rc = 0;
    for (size_t i = (size_t)S->ctx.rank; rc == 0 && i < S->ctx.facts.n_facts; i += (size_t)S->ctx.size) {
        const facts_edit_view *v = &S->views[i];
        for (size_t l = 0; rc == 0 && l < v->n_langs; l++) {
            if (!v->langs[l].n_prompts) continue;
            rc = gate_add(&g, S->ctx.m->tok, v->langs[l].lang, v->langs[l].prompts[0], err);
            *count += 1.0;
            if (rc == 0 && g.B == KEY_CENTER_BATCH) rc = add_states(S, &g, sum, err);
        }
    }
    if (rc == 0) rc = add_states(S, &g, sum, err);
    gate_batch_free(&g);
    return rc;
}

int edit_key_center_compute(edit_stage *S, lafn_err *err) {
    size_t D = (size_t)S->ctx.m->cfg.d_model;
    double *sum = calloc(D + 1, sizeof *sum), count = 0.0;
    S->key_center = malloc(D * sizeof *S->key_center);
    int rc = sum && S->key_center ? center_sums(S, sum, &count, err)
                                  : lafn_err_set(err, "edit: out of memory for the key centre");
    if (mpi_status_agree(S->ctx.comm, rc, err) == 0) {
        sum[D] = count;
        MPI_Allreduce(MPI_IN_PLACE, sum, (int)D + 1, MPI_DOUBLE, MPI_SUM, S->ctx.comm);
        for (size_t d = 0; d < D; d++) S->key_center[d] = sum[D] > 0.0 ? (float)(sum[d] / sum[D]) : 0.0f;
    } else {
        rc = -1;
    }
    free(sum);
    return rc;
}

/* The unit keys of the fact's own prompts (the first n_own of the
 * forward in run) and its threshold against the reference prompts (the rest),
 * into rec (arrays allocated here, freed with the record). */
static int key_for_fact(const edit_stage *S, const engine_run *run, const gate_batch *g, int n_own, edit_record *rec,
                        lafn_err *err) {
    int D = S->ctx.m->cfg.d_model, n_neg = (int)g->B - n_own;
    const float *h = engine_residual(run, S->key_layer);
    float *neg = malloc(((size_t)n_neg + 1) * (size_t)D * sizeof *neg);
    rec->keys = malloc((size_t)n_own * (size_t)D * sizeof *rec->keys);
    rec->key_center = malloc((size_t)D * sizeof *rec->key_center);
    if (!neg || !rec->keys || !rec->key_center) {
        free(neg);
        return lafn_err_set(err, "edit key: out of memory for %d keys", n_own);
    }
    memcpy(rec->key_center, S->key_center, (size_t)D * sizeof *rec->key_center);
    for (int b = 0; b < (int)g->B; b++)
        edit_key_of(h + (size_t)g->last[b] * (size_t)D, S->key_center, D,
                    b < n_own ? rec->keys + (size_t)b * (size_t)D : neg + (size_t)(b - n_own) * (size_t)D);
    rec->n_keys = n_own;
    rec->key_layer = S->key_layer;
    rec->key_threshold = edit_key_threshold(rec->keys, n_own, neg, n_neg, D, S->key_floor, S->key_margin);
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

int edit_gate_for_fact(const edit_stage *S, size_t i, edit_record *rec, lafn_err *err) {
    long r = S->row[i];
    int64_t off = S->nr.offsets[r];
    int n = (int)(S->nr.offsets[r + 1] - off), n_own = 0;
    gate_batch g = {0};
    engine_run *run = NULL;
    uint8_t *keep = malloc((size_t)n + 1);
    float *thr = malloc(((size_t)n + 1) * sizeof *thr), *sign = malloc(((size_t)n + 1) * sizeof *sign);
    int rc = keep && thr && sign ? 0 : lafn_err_set(err, "edit gate: out of memory for %d neurons", n);
    if (rc == 0) rc = gate_prompts(S, i, &g, &n_own, err);
    if (rc == 0) rc = engine_run_init(&run, S->ctx.m, g.N, 1, err);
    if (rc == 0) {
        engine_batch b = {.n_seq = (int)g.B, .seq_len = g.seq_len, .tokens = g.tokens};
        engine_forward_opts o = engine_forward_defaults();
        rc = engine_forward(run, &b, &o, err);
    }
    if (rc == 0) {
        for (int k = 0; k < n; k++) sign[k] = candidate_sign(S, run, g.last, n_own, off + k);
        int kept = edit_gate_calibrate(run, &S->ctx.m->cfg, g.last, n_own, (int)g.B, n, S->nr.layer + off,
                                       S->nr.neuron + off, sign, S->nr.threshold + off, keep, thr);
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
        rc = key_for_fact(S, run, &g, n_own, rec, err);
    }
    engine_run_free(run);
    gate_batch_free(&g);
    free(keep);
    free(thr);
    free(sign);
    return rc ? lafn_err_wrap(err, "edit gate of fact %s", S->ctx.facts.facts[i].id) : 0;
}
