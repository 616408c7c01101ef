/* generate: greedy continuation of a prompt with the engine, with per-token log-probabilities. */
#ifndef LAFN_GENERATE_H
#define LAFN_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "base/lafn_err.h"
#include "model/model.h"

typedef struct {
    int max_new_tokens;  /* upper bound on generated tokens */
    int stop_at_newline; /* stop before a token whose text contains '\n' */
} generate_opts;

/* Greedily extends prompt (n_prompt ids, BOS included if the model wants one)
 * by up to opts->max_new_tokens tokens, stopping at EOS. Writes the new ids to
 * out_ids and their log-probabilities (under the model, at the step they were
 * chosen) to out_logp, both with room for max_new_tokens; *n_out receives the
 * count. The run must hold n_prompt + max_new_tokens tokens and one logit
 * position. Returns 0, or -1 with err. */
int generate_greedy(engine_run *run, const model *m, const int32_t *prompt, size_t n_prompt,
                    const generate_opts *opts, int32_t *out_ids, float *out_logp, size_t *n_out,
                    lafn_err *err);

#endif
