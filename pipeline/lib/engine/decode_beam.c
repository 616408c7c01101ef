/* decode_beam: beam search on the KV cache — n_beams live hypotheses per prompt in its own slots, ranked by plain Σ log p, forked as they branch; the n_return best finished ones kept. */
#include <stdlib.h>
#include <string.h>

#include "engine/decode_int.h"

/* A one-token extension of a live beam. */
typedef struct {
    int parent;   /* slot of the beam it extends */
    int rank;     /* place of tok among the parent's top tokens */
    int32_t tok;
    float logp;
    double score; /* the parent's score + logp */
} beam_cand;

typedef struct {
    decode_ctx *c;
    int nb;               /* beams per prompt */
    decode_result *hyp;   /* (S) the live hypothesis in each slot */
    uint8_t *live;        /* (S) */
    int *row;             /* (S) logits row of each live slot in the last call */
    decode_result *next;  /* (nb) the new beams of one prompt */
    beam_cand *cand;      /* (nb · nb) */
    int32_t *top;         /* (nb) */
    uint8_t *claimed;     /* (nb) per slot of the prompt: 0 free, 1 taken, 2 kept for its parent's first child */
    uint8_t *keep;        /* (nb) per new beam: 1 if it goes on */
    int R;                /* finished hypotheses kept per prompt (n_return) */
    int *n_found;         /* (P) finished hypotheses in out[p·R ..], best first */
    int n_call;           /* sequences of the next step (in c->slots, c->toks) */
} beam_state;

/* Higher score first; among equal scores, the order they were made in (parent slot, then rank). */
static int cand_cmp(const void *a, const void *b) {
    const beam_cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    if (x->parent != y->parent) return x->parent - y->parent;
    return x->rank - y->rank;
}

/* The best nb extensions of prompt p's live beams, best first; returns how many. */
static int beam_candidates(beam_state *st, int p) {
    int V = st->c->m->cfg.vocab, n = 0;
    const float *logits = engine_kv_logits(st->c->kv);
    for (int s = p * st->nb; s < (p + 1) * st->nb; s++) {
        if (!st->live[s]) continue;
        const float *z = logits + (size_t)st->row[s] * (size_t)V;
        double lse = decode_row_lse(z, V);
        int k = decode_row_top(z, V, st->nb, st->top);
        for (int j = 0; j < k; j++) {
            float lp = (float)(z[st->top[j]] - lse);
            st->cand[n++] = (beam_cand){.parent = s, .rank = j, .tok = st->top[j], .logp = lp,
                                        .score = st->hyp[s].score + (double)lp};
        }
    }
    qsort(st->cand, (size_t)n, sizeof *st->cand, cand_cmp);
    return n < st->nb ? n : st->nb;
}

/* 1 if a hypothesis of score s ranks among prompt p's R best finished ones (strictly above the R-th). */
static int beam_ranks(const beam_state *st, const decode_result *out, int p, double s) {
    return st->n_found[p] < st->R || s > out[p * st->R + st->R - 1].score;
}

/* Files finished hypothesis h among prompt p's best, best first (after equal scores); the R-th best drops out. */
static void beam_file(beam_state *st, decode_result *out, int p, const decode_result *h) {
    decode_result *list = out + p * st->R;
    int at = st->n_found[p] < st->R ? st->n_found[p]++ : st->R - 1;
    decode_result spare = list[at]; /* the free or the dropped entry's arrays take h */
    for (; at > 0 && list[at - 1].score < h->score; at--) list[at] = list[at - 1];
    list[at] = spare;
    decode_result_copy(&list[at], h);
}

/* Puts new beam k (extending slot parent) into a slot: its parent's if still
 * unclaimed, else a free one that receives a copy of the parent's cache. */
static int beam_place(beam_state *st, int p, int k, int parent, lafn_err *err) {
    int base = p * st->nb, slot = parent;
    if (st->claimed[parent - base]) {
        for (slot = base; st->claimed[slot - base]; slot++) {}
        if (engine_kv_fork(st->c->kv, parent, slot, err)) return -1;
    }
    st->claimed[slot - base] = 1;
    decode_result_copy(&st->hyp[slot], &st->next[k]);
    st->c->slots[st->n_call] = slot;
    st->c->toks[st->n_call++] = st->next[k].ids[st->next[k].n - 1];
    return 0;
}

/* One step of prompt p: extends its beams, files the finished ones, places the live ones. */
static int beam_prompt(beam_state *st, int p, decode_result *out, lafn_err *err) {
    int n = beam_candidates(st, p), base = p * st->nb;
    uint8_t *keep = st->keep;
    for (int k = 0; k < n; k++) {
        const beam_cand *cd = &st->cand[k];
        decode_result_copy(&st->next[k], &st->hyp[cd->parent]);
        int done = decode_push(st->c, &st->next[k], cd->tok, cd->logp, err);
        if (done < 0) return -1;
        keep[k] = !done;
        if (done && beam_ranks(st, out, p, st->next[k].score)) beam_file(st, out, p, &st->next[k]);
    }
    memset(st->claimed, 0, (size_t)st->nb);
    memset(st->live + base, 0, (size_t)st->nb);
    for (int k = 0; k < n; k++) /* a live beam at or below the R-th best finished one cannot rank */
        keep[k] = keep[k] && beam_ranks(st, out, p, st->next[k].score);
    for (int k = 0; k < n; k++)
        if (keep[k] && !st->claimed[st->cand[k].parent - base]) st->claimed[st->cand[k].parent - base] = 2;
    for (int k = 0; k < n; k++) {
        if (!keep[k]) continue;
        int parent = st->cand[k].parent;
        if (st->claimed[parent - base] == 2) st->claimed[parent - base] = 0; /* its first child takes it */
        if (beam_place(st, p, k, parent, err)) return -1;
    }
    for (int i = 0; i < st->nb; i++) st->live[base + i] = st->claimed[i] != 0;
    return 0;
}

static void beam_free(beam_state *st) {
    for (int s = 0; st->hyp && s < st->c->P * st->nb; s++) decode_result_free(&st->hyp[s]);
    for (int k = 0; st->next && k < st->nb; k++) decode_result_free(&st->next[k]);
    free(st->hyp);
    free(st->live);
    free(st->row);
    free(st->next);
    free(st->cand);
    free(st->top);
    free(st->claimed);
    free(st->keep);
    free(st->n_found);
}

static int beam_init(beam_state *st, decode_ctx *c, lafn_err *err) {
    int nb = c->width, S = c->P * nb, max_new = c->o->max_new_tokens;
    *st = (beam_state){.c = c, .nb = nb, .R = c->o->n_return};
    st->hyp = calloc((size_t)S, sizeof *st->hyp);
    st->live = calloc((size_t)S, 1);
    st->row = calloc((size_t)S, sizeof *st->row);
    st->next = calloc((size_t)nb, sizeof *st->next);
    st->cand = malloc((size_t)nb * (size_t)nb * sizeof *st->cand);
    st->top = malloc((size_t)nb * sizeof *st->top);
    st->claimed = malloc((size_t)nb);
    st->keep = malloc((size_t)nb);
    st->n_found = calloc((size_t)c->P, sizeof *st->n_found);
    if (!st->hyp || !st->live || !st->row || !st->next || !st->cand || !st->top || !st->claimed || !st->keep || !st->n_found)
        return lafn_err_set(err, "decode: out of memory for %d beams", S);
    for (int s = 0; s < S; s++)
        if (decode_result_alloc(&st->hyp[s], max_new, err)) return -1;
    for (int k = 0; k < nb; k++)
        if (decode_result_alloc(&st->next[k], max_new, err)) return -1;
    for (int p = 0; p < c->P; p++) { /* the prefill: prompt p in slot p·nb, logits row p */
        st->live[p * nb] = 1;
        st->row[p * nb] = p;
    }
    return 0;
}

int decode_beam(decode_ctx *c, decode_result *out, lafn_err *err) {
    beam_state st;
    int rc = beam_init(&st, c, err);
    while (rc == 0) {
        st.n_call = 0;
        for (int p = 0; p < c->P && rc == 0; p++)
            if (memchr(st.live + p * st.nb, 1, (size_t)st.nb)) rc = beam_prompt(&st, p, out, err);
        if (rc != 0 || st.n_call == 0) break;
        for (int i = 0; i < st.n_call; i++) st.row[c->slots[i]] = i;
        if (engine_kv_step(c->kv, st.n_call, c->slots, c->toks, c->ed, err)) rc = lafn_err_wrap(err, "decode: beam step");
    }
    beam_free(&st);
    return rc;
}
