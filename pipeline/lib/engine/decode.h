/* decode: continuations of many prompts at once on the KV cache — greedy, temperature/top-p sampling, beam search — with stop strings and edits. */
#ifndef LAFN_DECODE_H
#define LAFN_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"
#include "engine/engine.h"
#include "engine/engine_kv.h"
#include "model/model.h"

typedef enum {
    DECODE_GREEDY, /* the most likely token (the lowest id among equals) */
    DECODE_SAMPLE, /* a draw from softmax(logits / temperature), cut to the top_p nucleus */
    DECODE_BEAM,   /* beam search over n_beams hypotheses per prompt, ranked by plain Σ log p */
} decode_mode;

typedef struct {
    decode_mode mode;
    int max_new_tokens;      /* ≥ 1: generated tokens per prompt at most */
    float temperature;       /* SAMPLE: > 0 */
    float top_p;             /* SAMPLE: in (0, 1]: draw from the fewest most likely tokens whose
                                probability reaches top_p (1 = the whole vocabulary) */
    uint64_t seed;           /* SAMPLE: draw r of prompt p draws from its own splitmix64 stream,
                                started from (seed, p·n_return + r): the same seed gives it the
                                same output whatever the other prompts of the batch are */
    int n_beams;             /* BEAM: ≥ 1 */
    int n_return;            /* continuations returned per prompt: 1; for SAMPLE any number of
                                independent draws (the prompt prefilled once, its cache forked);
                                for BEAM up to n_beams (the n_return best finished hypotheses,
                                best first) */
    const char *const *stop; /* (n_stop) a continuation ends when its decoded text contains one */
    int n_stop;
    const engine_edit *edit; /* NULL, or an edit applied to prompt and continuation; its seq_mask,
                                if not NULL, is (n, n_prompts) over the prompts */
} decode_opts;

typedef enum {
    DECODE_STOP_MAX,    /* max_new_tokens reached */
    DECODE_STOP_EOS,    /* the model chose its EOS token */
    DECODE_STOP_STRING, /* the text came to contain a stop string */
} decode_stop;

/* One prompt's continuation; the arrays are owned (decode_result_free). */
typedef struct {
    int32_t *ids;     /* (n) generated tokens: EOS is not among them; the token that completed
                         a stop string is */
    float *logp;      /* (n) log-probability of each under the model's raw logits (before
                         temperature or top-p) when it was chosen */
    size_t n;
    char *text;       /* ids decoded, cut before the first stop string */
    double score;     /* Σ logp, plus the EOS token's log-probability if it ended on EOS */
    decode_stop why;
} decode_result;

/* Greedy, max_new_tokens 16, temperature 1, top_p 1, seed 0, 1 beam, 1 continuation per prompt, no stop
 * strings, no edit. */
decode_opts decode_defaults(void);

/* Continues each of the prompts->n_seq (P) prompts (packed as in engine_batch,
 * BOS included where the model wants one) until EOS, a stop string or
 * max_new_tokens, all prompts stepping together on kv: kv needs P slots
 * (P × n_return for SAMPLE, P × n_beams for BEAM) and max_len ≥ the longest
 * prompt + max_new_tokens;
 * its slots [0, P·width) are reset and overwritten. out (P × n_return)
 * receives the continuations, prompt p's in out[p·n_return ..] (the caller
 * frees each with decode_result_free). Beam search keeps n_beams live
 * hypotheses per prompt, each step taking the n_beams best one-token
 * extensions of them; an extension that ends (EOS, stop string,
 * max_new_tokens) leaves the beam as a finished hypothesis, and the search
 * stops when the n_return-th best finished Σ log p is at least every live one
 * (it can only fall); the results are the n_return best finished hypotheses,
 * best first (equal scores in the order they finished; with a vocabulary
 * smaller than n_beams fewer may exist, and the rest stay empty). With 1
 * beam, or top_p below the top token's probability, the result equals
 * greedy. Returns 0, or -1 with err (options out of range, kv too small, a
 * prompt too long, a failure of the cache or the tokenizer), with out left
 * empty. */
int decode_generate(engine_kv *kv, const model *m, const engine_batch *prompts, const decode_opts *o,
                    decode_result *out, lafn_err *err);

/* Frees r's arrays and zeroes it; a zeroed result is fine. */
void decode_result_free(decode_result *r);

#endif
