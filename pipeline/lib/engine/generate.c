/* generate: greedy decoding by re-running the full sequence each step (no KV cache needed at these lengths). */
#include "engine/generate.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* Index of the largest logit and its log-probability under log_softmax. */
static int32_t argmax_logprob(const float *logits, int vocab, float *logp) {
    int32_t best = 0;
    for (int v = 1; v < vocab; v++)
        if (logits[v] > logits[best]) best = v;
    engine_nll(logits, 1, vocab, &best, NULL, logp, NULL);
    return best;
}

/* 1 if the decoded text of token id contains a newline. */
static int token_has_newline(const model *m, int32_t id) {
    char *text = tokenizer_decode(m->tok, &id, 1, NULL);
    int found = text && strchr(text, '\n') != NULL;
    free(text);
    return found;
}

int generate_greedy(engine_run *run, const model *m, const int32_t *prompt, size_t n_prompt,
                    const generate_opts *opts, int32_t *out_ids, float *out_logp, size_t *n_out,
                    lafn_err *err) {
    size_t cap = n_prompt + (size_t)opts->max_new_tokens;
    int32_t *seq = malloc(cap * sizeof *seq);
    if (!seq) return lafn_err_set(err, "generate_greedy: out of memory for %zu tokens", cap);
    memcpy(seq, prompt, n_prompt * sizeof *seq);
    size_t len = n_prompt;
    *n_out = 0;
    int eos = tokenizer_eos(m->tok);
    while (*n_out < (size_t)opts->max_new_tokens) {
        int seq_len = (int)len;
        int pos = seq_len - 1;
        engine_batch batch = {.n_seq = 1, .seq_len = &seq_len, .tokens = seq};
        engine_forward_opts fo = engine_forward_defaults();
        fo.logit_pos = &pos;
        fo.n_logit_pos = 1;
        if (engine_forward(run, &batch, &fo, err) != 0) {
            free(seq);
            return lafn_err_wrap(err, "generate_greedy");
        }
        float logp;
        int32_t next = argmax_logprob(engine_logits(run), m->cfg.vocab, &logp);
        if (next == eos) break;
        if (opts->stop_at_newline && token_has_newline(m, next)) break;
        out_ids[*n_out] = next;
        out_logp[*n_out] = logp;
        (*n_out)++;
        seq[len++] = next;
    }
    free(seq);
    return 0;
}
