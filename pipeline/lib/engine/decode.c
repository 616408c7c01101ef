/* decode: the decoding driver — options, the edit mask over cache slots, results and stop strings, and the greedy/sampling loop. */
#include "engine/decode.h"

#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "engine/decode_int.h"
#include "tokenizer/tokenizer.h"

decode_opts decode_defaults(void) {
    decode_opts o = {.mode = DECODE_GREEDY, .max_new_tokens = 16, .temperature = 1.0f, .top_p = 1.0f,
                     .seed = 0, .n_beams = 1, .n_return = 1, .stop = NULL, .n_stop = 0, .edit = NULL};
    return o;
}

void decode_result_free(decode_result *r) {
    free(r->ids);
    free(r->logp);
    free(r->text);
    memset(r, 0, sizeof *r);
}

int decode_result_alloc(decode_result *r, int max_new, lafn_err *err) {
    memset(r, 0, sizeof *r);
    r->ids = malloc((size_t)max_new * sizeof *r->ids);
    r->logp = malloc((size_t)max_new * sizeof *r->logp);
    if (r->ids && r->logp) return 0;
    decode_result_free(r);
    return lafn_err_set(err, "decode: out of memory for %d tokens", max_new);
}

void decode_result_copy(decode_result *dst, const decode_result *src) {
    memcpy(dst->ids, src->ids, src->n * sizeof *dst->ids);
    memcpy(dst->logp, src->logp, src->n * sizeof *dst->logp);
    dst->n = src->n;
    dst->score = src->score;
    dst->why = src->why;
}

/* Offset of the first stop string in text (the earliest of them), or -1. */
static long stop_find(const decode_opts *o, const char *text) {
    long first = -1;
    for (int i = 0; i < o->n_stop; i++) {
        const char *hit = o->stop[i][0] ? strstr(text, o->stop[i]) : NULL;
        if (hit && (first < 0 || hit - text < first)) first = hit - text;
    }
    return first;
}

int decode_push(const decode_ctx *c, decode_result *r, int32_t tok, float logp, lafn_err *err) {
    r->score += logp;
    if (tok == c->eos) {
        r->why = DECODE_STOP_EOS;
        return 1;
    }
    r->ids[r->n] = tok;
    r->logp[r->n++] = logp;
    if (c->o->n_stop > 0) {
        char *text = tokenizer_decode(c->m->tok, r->ids, r->n, err);
        if (!text) return lafn_err_wrap(err, "decode");
        long at = stop_find(c->o, text);
        free(text);
        if (at >= 0) {
            r->why = DECODE_STOP_STRING;
            return 1;
        }
    }
    if (r->n < (size_t)c->o->max_new_tokens) return 0;
    r->why = DECODE_STOP_MAX;
    return 1;
}

/* Decodes r's tokens into r->text, cut before the first stop string. */
static int result_text(const decode_ctx *c, decode_result *r, lafn_err *err) {
    r->text = tokenizer_decode(c->m->tok, r->ids, r->n, err);
    if (!r->text) return lafn_err_wrap(err, "decode");
    long at = stop_find(c->o, r->text);
    if (at >= 0) r->text[at] = '\0';
    return 0;
}

static int opts_check(const engine_batch *p, const decode_opts *o, lafn_err *err) {
    if (!p || p->n_seq <= 0 || !p->seq_len || !p->tokens)
        return lafn_err_set(err, "decode: no prompts (n_seq %d)", p ? p->n_seq : 0);
    if (o->mode != DECODE_GREEDY && o->mode != DECODE_SAMPLE && o->mode != DECODE_BEAM)
        return lafn_err_set(err, "decode: unknown mode %d", (int)o->mode);
    if (o->max_new_tokens < 1) return lafn_err_set(err, "decode: max_new_tokens %d; expected ≥ 1", o->max_new_tokens);
    if (o->mode == DECODE_SAMPLE && !(o->temperature > 0.0f && o->top_p > 0.0f && o->top_p <= 1.0f))
        return lafn_err_set(err, "decode: temperature %g must be > 0 and top_p %g in (0, 1]", o->temperature,
                            o->top_p);
    if (o->mode == DECODE_BEAM && o->n_beams < 1)
        return lafn_err_set(err, "decode: n_beams %d; expected ≥ 1", o->n_beams);
    if (o->n_return < 1 || (o->mode == DECODE_BEAM && o->n_return > o->n_beams) ||
        (o->mode == DECODE_GREEDY && o->n_return > 1))
        return lafn_err_set(err, "decode: n_return %d; expected 1%s", o->n_return,
                            o->mode == DECODE_BEAM ? " to n_beams" : o->mode == DECODE_SAMPLE ? " or more" : " (more only "
                            "with sampling or beam search)");
    if (o->n_stop < 0 || (o->n_stop > 0 && !o->stop))
        return lafn_err_set(err, "decode: %d stop strings but no array", o->n_stop);
    return 0;
}

/* Copies the edit with its mask over prompts spread to the prompts' slots. */
static int ctx_edit(decode_ctx *c, size_t S, lafn_err *err) {
    const engine_edit *e = c->o->edit;
    if (!e) return 0;
    c->edit = *e;
    c->ed = &c->edit;
    if (!e->seq_mask || e->n <= 0) return 0;
    c->slot_mask = malloc((size_t)e->n * S);
    if (!c->slot_mask) return lafn_err_set(err, "decode: out of memory for an edit mask of %d x %zu", e->n, S);
    for (size_t i = 0; i < (size_t)e->n; i++)
        for (size_t s = 0; s < S; s++) c->slot_mask[i * S + s] = e->seq_mask[i * (size_t)c->P + s / (size_t)c->width];
    c->edit.seq_mask = c->slot_mask;
    return 0;
}

static void ctx_free(decode_ctx *c) {
    free(c->slot_mask);
    free(c->cand);
    free(c->weight);
    free(c->slots);
    free(c->toks);
}

static int ctx_init(decode_ctx *c, engine_kv *kv, const model *m, const engine_batch *p, const decode_opts *o,
                    lafn_err *err) {
    int width = o->mode == DECODE_BEAM ? o->n_beams : o->mode == DECODE_SAMPLE ? o->n_return : 1;
    *c = (decode_ctx){.m = m, .kv = kv, .o = o, .P = p->n_seq, .width = width, .eos = tokenizer_eos(m->tok)};
    size_t S = (size_t)c->P * (size_t)c->width, V = (size_t)m->cfg.vocab;
    c->slots = malloc(S * sizeof *c->slots);
    c->toks = malloc(S * sizeof *c->toks);
    if (o->mode == DECODE_SAMPLE) {
        c->cand = malloc(V * sizeof *c->cand);
        c->weight = malloc(V * sizeof *c->weight);
    }
    if (!c->slots || !c->toks || (o->mode == DECODE_SAMPLE && (!c->cand || !c->weight)))
        return lafn_err_set(err, "decode: out of memory for %zu sequences", S);
    return ctx_edit(c, S, err);
}

/* Resets the slots and prefills prompt p into slot p · width. */
static int prefill(decode_ctx *c, const engine_batch *p, lafn_err *err) {
    for (int s = 0; s < c->P * c->width; s++)
        if (engine_kv_reset(c->kv, s, err)) return -1;
    for (int i = 0; i < c->P; i++) c->slots[i] = i * c->width;
    if (engine_kv_prefill(c->kv, c->P, c->slots, p->seq_len, p->tokens, c->ed, err))
        return lafn_err_wrap(err, "decode: prefill of %d prompts", c->P);
    return 0;
}

/* The token draw s (slot s) takes from a row of logits z, from its stream rng. */
static int32_t choose(decode_ctx *c, const float *z, uint64_t *rng) {
    return c->o->mode == DECODE_SAMPLE ? decode_row_sample(c, z, rng) : decode_row_argmax(z, c->m->cfg.vocab);
}

/* Greedy or sampling: width draws per prompt, draw r of prompt p in slot p · width + r. The prefill left
 * prompt p's logits in row p and its cache in slot p · width: each draw takes its first token from that row,
 * the prompt's other slots get a copy of the cache, then the unfinished draws step together. */
static int decode_simple(decode_ctx *c, decode_result *out, lafn_err *err) {
    int V = c->m->cfg.vocab, W = c->width, S = c->P * W, n_live = 0;
    int *live = c->slots; /* the prefill is done with them */
    uint64_t *rng = malloc((size_t)S * sizeof *rng);
    if (!rng) return lafn_err_set(err, "decode: out of memory for %d random streams", S);
    for (int s = 0; s < S; s++) {
        uint64_t t = c->o->seed * 0xD1B54A32D192ED03ull + (uint64_t)s;
        rng[s] = rng_next(&t);
    }
    const float *logits = engine_kv_logits(c->kv);
    int rc = 0;
    for (int s = 0; s < S && rc == 0; s++) {
        const float *z = logits + (size_t)(s / W) * (size_t)V;
        int32_t tok = choose(c, z, &rng[s]);
        int done = decode_push(c, &out[s], tok, (float)(z[tok] - decode_row_lse(z, V)), err);
        if (done < 0) rc = -1;
        else if (!done && s % W != 0 && engine_kv_fork(c->kv, s - s % W, s, err)) rc = -1;
        else if (!done) live[n_live] = s, c->toks[n_live++] = tok;
    }
    while (n_live > 0 && rc == 0) {
        if (engine_kv_step(c->kv, n_live, live, c->toks, c->ed, err)) {
            rc = lafn_err_wrap(err, "decode: step");
            break;
        }
        logits = engine_kv_logits(c->kv);
        int next = 0;
        for (int i = 0; i < n_live && rc == 0; i++) {
            const float *z = logits + (size_t)i * (size_t)V;
            int s = live[i];
            int32_t tok = choose(c, z, &rng[s]);
            int done = decode_push(c, &out[s], tok, (float)(z[tok] - decode_row_lse(z, V)), err);
            if (done < 0) rc = -1;
            else if (!done) live[next] = s, c->toks[next++] = tok;
        }
        n_live = next;
    }
    free(rng);
    return rc;
}

int decode_generate(engine_kv *kv, const model *m, const engine_batch *prompts, const decode_opts *o,
                    decode_result *out, lafn_err *err) {
    if (opts_check(prompts, o, err)) return -1;
    decode_ctx c;
    int rc = ctx_init(&c, kv, m, prompts, o, err), n_out = c.P * o->n_return;
    for (int r = 0; r < n_out; r++) memset(&out[r], 0, sizeof out[r]);
    for (int r = 0; r < n_out && rc == 0; r++) rc = decode_result_alloc(&out[r], o->max_new_tokens, err);
    if (rc == 0) rc = prefill(&c, prompts, err);
    if (rc == 0) rc = o->mode == DECODE_BEAM ? decode_beam(&c, out, err) : decode_simple(&c, out, err);
    for (int r = 0; r < n_out && rc == 0; r++) rc = result_text(&c, &out[r], err);
    if (rc != 0)
        for (int r = 0; r < n_out; r++) decode_result_free(&out[r]);
    ctx_free(&c);
    return rc;
}
