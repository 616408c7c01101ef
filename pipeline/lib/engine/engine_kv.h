/* engine_kv: a key/value cache per sequence slot for incremental decoding — prefill prompts, then one token per sequence per step, batched over slots. */
#ifndef LAFN_ENGINE_KV_H
#define LAFN_ENGINE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"
#include "engine/engine.h"
#include "model/model.h"

/* S slots, each holding the keys and values (after QK-norm and RoPE) of up
 * to T tokens of one sequence in every layer. A call appends tokens to B
 * distinct slots at once: the projections and the FFN run as one sgemm over
 * the B sequences' new tokens, attention reads each slot's cache (sliding-
 * window layers only its last sliding_window positions, as in the full
 * forward), and the next-token logits after each sequence's last new token
 * come out as (B, V). */
typedef struct engine_kv engine_kv;

/* Allocates max_seqs (S) empty slots of up to max_len (T) tokens and the
 * buffers of one call (2·L·S·T·K·E floats of cache, S·V of logits, and work
 * for 512 tokens at a time: longer prefills go in chunks). The model must
 * outlive the cache. Returns 0, or -1 with err (sizes outside their range,
 * the allocation that failed). Release with engine_kv_free. */
int engine_kv_init(engine_kv **out, const model *m, size_t max_seqs, size_t max_len, lafn_err *err);
void engine_kv_free(engine_kv *kv);

/* Appends seq_len[b] tokens to slot slots[b] for each of the n_seq (B)
 * sequences — tokens (Σ seq_len) packed end to end, as in engine_batch — and
 * computes the logits after each sequence's last token (engine_kv_logits row b).
 * A slot continues the sequence it holds: reset it first for a new prompt.
 * edit (NULL: none) applies to the appended tokens, as in engine_forward,
 * except that its seq_mask, if not NULL, is (n, S) and indexed by SLOT; the
 * cached tokens keep the edit they were computed with, so a sequence gets the
 * same edit at every call to match a full edited forward. Slots must be
 * distinct. Returns 0, or -1 with err (a slot outside [0, S) or repeated, a
 * sequence past max_len, a token id outside the vocabulary, a bad edit); the
 * cache is unchanged on failure. */
int engine_kv_prefill(engine_kv *kv, int n_seq, const int *slots, const int *seq_len,
                      const int32_t *tokens, const engine_edit *edit, lafn_err *err);

/* engine_kv_prefill with one token per sequence: tokens (B). */
int engine_kv_step(engine_kv *kv, int n_seq, const int *slots, const int32_t *tokens,
                   const engine_edit *edit, lafn_err *err);

/* (B, V) raw logits of the last prefill or step; valid until the next one. */
const float *engine_kv_logits(const engine_kv *kv);

/* Tokens held by slot (0 for a slot outside [0, S)). */
size_t engine_kv_len(const engine_kv *kv, int slot);

/* Empties slot. Returns 0, or -1 with err if it is outside [0, S). */
int engine_kv_reset(engine_kv *kv, int slot, lafn_err *err);

/* Copies slot src's sequence into slot dst (beam search), replacing what dst
 * held; src == dst does nothing. Returns 0, or -1 with err (a slot outside [0, S)). */
int engine_kv_fork(engine_kv *kv, int src, int dst, lafn_err *err);

#endif
