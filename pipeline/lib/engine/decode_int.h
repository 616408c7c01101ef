/* decode_int: state and token choice shared by the decoding loops (internal to decode*.c). */
#ifndef LAFN_DECODE_INT_H
#define LAFN_DECODE_INT_H

#include "engine/decode.h"

/* A token and its (unnormalised) weight, for the top-p nucleus. */
typedef struct {
    float w;
    int32_t id;
} decode_cand;

typedef struct {
    const model *m;
    engine_kv *kv;
    const decode_opts *o;
    int P;                    /* prompts */
    int width;                /* slots per prompt: n_beams for BEAM, n_return for SAMPLE, else 1 */
    int eos;                  /* the tokenizer's EOS id, or -1 */
    engine_edit edit;         /* o->edit with its mask over slots */
    uint8_t *slot_mask;       /* (n, P·width) */
    const engine_edit *ed;    /* &edit, or NULL without an edit */
    decode_cand *cand;        /* (V) sampling scratch: the nucleus */
    float *weight;            /* (V) sampling scratch: exp((z − max) / temperature) */
    int *slots;               /* (P·width) the sequences of a step */
    int32_t *toks;            /* (P·width) their tokens */
} decode_ctx;

/* log Σ exp(z) over a row of V logits (in double). */
double decode_row_lse(const float *z, int V);
/* The largest logit's id (the lowest id among equals). */
int32_t decode_row_argmax(const float *z, int V);
/* Up to k ids of the largest logits, best first (lower id first among equals); returns how many. */
int decode_row_top(const float *z, int V, int k, int32_t *ids);
/* A draw from softmax(z / temperature) cut to the top_p nucleus, from *rng. */
int32_t decode_row_sample(decode_ctx *c, const float *z, uint64_t *rng);

/* Allocates r's arrays for max_new_tokens. Returns 0 or -1 with err. */
int decode_result_alloc(decode_result *r, int max_new, lafn_err *err);
/* Makes dst a copy of src's tokens, log-probabilities and score (same capacity). */
void decode_result_copy(decode_result *dst, const decode_result *src);
/* Appends tok, chosen with log-probability logp, to r. Returns 1 if r has
 * ended (EOS — not appended —, a stop string, max_new_tokens; r->why set),
 * 0 if it goes on, -1 with err (the tokenizer failed). */
int decode_push(const decode_ctx *c, decode_result *r, int32_t tok, float logp, lafn_err *err);

/* Beam search over every prompt (decode_beam.c); the prompts are prefilled
 * into the first slot of each prompt's n_beams; out (P × n_return). */
int decode_beam(decode_ctx *c, decode_result *out, lafn_err *err);

#endif
