/* engine_ops: the engine's layer kernels, each a forward/backward pair with mirrored arguments (internal). */
#ifndef LAFN_ENGINE_OPS_H
#define LAFN_ENGINE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "base/lafn_err.h"
#include "model/model.h"

/* Dimension names as in model.h: N tokens, D width, F FFN width, H query
 * heads, K kv heads, E head dim, V vocabulary, P scored positions.
 * Every backward ADDS into its input gradients (the caller zeroes them), as in
 * llm.c; weight gradients are never computed (the weights are frozen). */

/* Packed sequences of a batch: sequence b holds the global positions
 * [seq_start[b], seq_start[b + 1]). */
typedef struct {
    int n_seq;               /* B */
    const size_t *seq_start; /* (B + 1) */
} engine_seqs;

/* ---- engine_norm.c ---- */

/* out = inp / sqrt(mean(inp²) + eps) * w over n rows of d; rstd (n) keeps 1/sqrt(...). */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                     size_t n, size_t d, float eps);
/* dinp += d out/d inp · dout for the rows above (uses the inp and rstd of the forward). */
void rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t n, size_t d);

/* ---- engine_ffn.c ---- */

/* out (n, dout) = inp (n, din) · wᵀ (+ bias), one sgemm (sgemv for n = 1). */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                    size_t n, size_t din, size_t dout);
/* dinp (n, din) += dout (n, dout) · w (dout, din), one sgemm. */
void matmul_backward(float *dinp, const float *dout, const float *w, size_t n, size_t din,
                     size_t d_out);
/* act (n, f) = act_fn(gate) ⊙ up. */
void glu_forward(float *act, const float *gate, const float *up, size_t n, size_t f, model_act kind);
/* dgate += dact ⊙ up ⊙ act_fn'(gate); dup += dact ⊙ act_fn(gate). */
void glu_backward(float *dgate, float *dup, const float *dact, const float *gate, const float *up,
                  size_t n, size_t f, model_act kind);

/* ---- engine_rope.c ---- */

/* Rotation table: cos/sin (max_pos, E/2) of θ_i(p) = p · base^(−2i/E) / factor[i]
 * (factors NULL = 1). */
void rope_table(float *cos_t, float *sin_t, size_t max_pos, int E, double base, const float *factors);
/* Rotates x (n, heads, E) in place, NeoX pairing (i, i + E/2), at positions pos (n). */
void rope_forward(float *x, const int *pos, size_t n, int heads, int E, const float *cos_t,
                  const float *sin_t);
/* Maps dx (gradient w.r.t. the rotated x) in place to the gradient w.r.t. the input
 * (the inverse rotation; in place, so it overwrites instead of adding). */
void rope_backward(float *dx, const int *pos, size_t n, int heads, int E, const float *cos_t,
                   const float *sin_t);

/* ---- engine_attention.c ---- */

typedef struct {
    int H, K, E;
    float scale;  /* multiplier of q·k */
    int window;   /* 0: full causal; w > 0: key position > query position − w */
} attn_dims;

/* out (N, H*E) = softmax(scale q kᵀ, causal per sequence) v with q (N, H*E),
 * k, v (N, K*E); query head h reads kv head h / (H/K). lse (N, H) keeps the
 * log-sum-exp of each score row for backward. Blocks of query rows go through
 * sgemm; scratch holds attention_scratch_floats(longest sequence) floats. */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const engine_seqs *s, const attn_dims *a, float *scratch);
/* dq, dk, dv += gradients from dout, recomputing the probabilities from q, k, lse;
 * out is the forward's output. scratch as for attention_forward. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                        const float *lse, const float *q, const float *k, const float *v,
                        const engine_seqs *s, const attn_dims *a, float *scratch);
/* Floats of scratch the two functions above need for sequences of up to max_n tokens. */
size_t attention_scratch_floats(size_t max_n);
/* The same two passes one query row at a time with plain loops: the oracle of
 * the blocked ones (scratch of the forward: max_n floats; the backward needs none). */
void attention_forward_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                           const engine_seqs *s, const attn_dims *a, float *scratch);
void attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *out,
                            const float *lse, const float *q, const float *k, const float *v,
                            const engine_seqs *s, const attn_dims *a);

/* Query rows of one sequence's newest tokens against all its keys: q, out
 * (T, H*E) and lse (T, H) are the tokens at positions [t_first, t_first + T);
 * k, v (t_first + T, K*E) hold the sequence from position 0 (a KV cache).
 * The same blocked kernel as attention_forward (which is the case t_first = 0);
 * scratch holds attention_scratch_floats(t_first + T) floats. */
void attention_forward_tail(float *out, float *lse, const float *q, const float *k, const float *v,
                            size_t t_first, size_t T, const attn_dims *a, float *scratch);

/* ---- engine_embed.c ---- */

/* out (n, D) = token_embd[tokens] * scale. Token ids must be checked by the caller. */
void embed_forward(float *out, const int32_t *tokens, const float *token_embd, size_t n, size_t D,
                   float scale);
/* Gathers rows pos (P) of resid (N, D), applies the final norm into xf (P, D),
 * rstd (P), and computes logits (P, V) = xf · w_outᵀ. */
void logits_forward(float *logits, float *xf, float *rstd, const float *resid, const int *pos,
                    size_t P, const float *norm_w, const float *w_out, size_t V, size_t D, float eps);
/* dresid (N, D) += gradient of the logits through the output matrix and the
 * final norm, scattered back to rows pos; dxf (P, D) is scratch. */
void logits_backward(float *dresid, float *dxf, const float *dlogits, const float *rstd, const float *resid, const int *pos, size_t P,
                     const float *norm_w, const float *w_out, size_t V, size_t D);

/* The final norm alone, at rows pos (P) of resid: xf (P, D), rstd (P); and
 * its backward, dresid (N, D) += the gradient of dxf (P, D) scattered back to rows pos. */
void final_norm_forward(float *xf, float *rstd, const float *resid, const int *pos, size_t P, const float *norm_w,
                        size_t D, float eps);
void final_norm_backward(float *dresid, const float *dxf, const float *rstd, const float *resid, const int *pos,
                         size_t P, const float *norm_w, size_t D);

/* ---- engine_head.c ---- */

/* Rows of w_out per block of the fused LM head: 128 rows × D 640 fp32 are
 * 320 KiB, which stay in a core's L2 cache between the block's two products. */
#define HEAD_BLOCK_ROWS 128
/* Floats of scratch head_xent_forward needs for P rows. */
size_t head_xent_scratch_floats(size_t P);
/* The cross-entropies of engine_xent from xf (P, D), the final norm's
 * output: fills x->lse and x->zq, and dxf (P, D) with the loss's gradient
 * at xf, in one pass over w_out (V, D) by blocks of HEAD_BLOCK_ROWS rows. */
void head_xent_forward(float *dxf, const float *xf, size_t P, const engine_xent *x, const float *w_out, size_t V,
                       size_t D, float *scratch);

/* ---- engine_edit.c ---- */

/* Where the tokens of a batch belong, for applying per-sequence edit masks. */
typedef struct {
    size_t N, D, F;
    int n_seq;         /* B: the row length of edit->seq_mask */
    const int *seq_of; /* (N) sequence of each token */
} edit_dims;

/* Checks an edit against the model and from_layer; *min_layer receives the
 * lowest edited layer (cfg->n_layer if none). Returns 0 or -1 with err. */
int edit_check(const engine_edit *ed, const model_config *cfg, int from_layer, int *min_layer,
               lafn_err *err);
/* 1 if ed (may be NULL) changes layer's FFN activation: activation offsets at that layer. */
int edit_changes_act(const engine_edit *ed, int layer);
/* act (N, F) of layer: act[n, j_e] += delta_e for the applicable entries (activation offsets). */
void edit_offsets_forward(float *act, const engine_edit *ed, int layer, const edit_dims *d);
/* d_delta (n) += Σ_n dact[n, j_e] over the applicable tokens. */
void edit_offsets_backward(float *d_delta, const float *dact, const engine_edit *ed, int layer,
                           const edit_dims *d);
/* y (N, D) += act[n, j_e] · delta_e (D) for the applicable entries (value vectors). */
void edit_values_forward(float *y, const float *act, const engine_edit *ed, int layer,
                         const edit_dims *d);
/* d_delta (n, D) += Σ_n act[n, j_e] dy[n] (skipped if d_delta is NULL); dact[n, j_e] += delta_e · dy[n]. */
void edit_values_backward(float *d_delta, float *dact, const float *dy, const float *act,
                          const engine_edit *ed, int layer, const edit_dims *d);

/* ---- engine_layer.c: one layer's forward pieces, shared by engine_run and engine_kv ---- */

/* A slice of n floats to carve out of one block; *ptr is NULL when n = 0. */
typedef struct {
    float **ptr;
    size_t n;
} float_slice;

/* Allocates one block holding every slice and points each into it (llm.c
 * style). Returns the block (the caller frees it), or NULL with *total the
 * floats that could not be had. */
float *float_block_alloc(const float_slice *slices, size_t n_slices, size_t *total);

/* RoPE tables of the global and the local (sliding-window) layers: cos/sin (max_pos, E/2) each. */
typedef struct {
    const float *cos_g, *sin_g, *cos_l, *sin_l;
} rope_tables;

/* Floats of storage rope_tables_init needs for positions [0, max_pos). */
size_t rope_tables_floats(const model_config *c, size_t max_pos);
/* Fills storage with the model's four tables and points t into it. */
void rope_tables_init(rope_tables *t, float *storage, const model *m, size_t max_pos);
/* The tables layer l rotates with (local layers use the local base). */
void rope_tables_layer(const rope_tables *t, const model_config *c, int l, const float **cos_t,
                       const float **sin_t);
/* Heads, scale and window of layer l's attention. */
attn_dims layer_attn_dims(const model_config *c, int l);

/* Where one layer's forward over n tokens writes (the caller's storage; the
 * QK-norm and post-norm entries are used only by models that have them). */
typedef struct {
    float *xn, *rstd_attn;     /* (n, D), (n): attn_norm output and its 1/rms */
    float *q_raw, *k_raw;      /* (n, H*E), (n, K*E): projections before QK-norm */
    float *rstd_q, *rstd_k;    /* (n, H), (n, K) */
    float *q, *k, *v;          /* (n, H*E), (n, K*E) x2: attention inputs after QK-norm and RoPE */
    float *att;                /* (n, H*E): attention output, input of wo (the caller fills it) */
    float *o, *rstd_post_attn; /* (n, D), (n): wo output before the post-attention norm */
    float *h;                  /* (n, D): stream after the attention block */
    float *hn, *rstd_ffn;      /* (n, D), (n): ffn_norm output */
    float *gate, *up, *act;    /* (n, F) x3; act after scaling and edits */
    float *y, *rstd_post_ffn;  /* (n, D), (n): FFN output before the post-FFN norm */
} layer_bufs;

/* x (n, D) → b->q, b->k, b->v: attn_norm, the three projections (+ bias),
 * QK-norm, RoPE at positions pos (n). */
void layer_qkv_forward(const model *m, int l, const float *x, const int *pos, size_t n,
                       const rope_tables *rt, const layer_bufs *b);
/* b->att → b->h = x + (post-norm of) att · woᵀ. */
void layer_attn_out_forward(const model *m, int l, const float *x, size_t n, const layer_bufs *b);
/* b->h → out (n, D) = h + (post-norm of) the FFN, its activation multiplied by
 * scale (1 = none), with the entries of edit (NULL = none) for layer l
 * applied where d says they apply. */
void layer_ffn_forward(const model *m, int l, float *out, size_t n, const layer_bufs *b, float scale,
                       const engine_edit *edit, const edit_dims *d);
/* The second half of layer_ffn_forward: b->act → out (n, D) = h + (post-norm
 * of) act · W_downᵀ with the value-vector entries of edit for layer l. */
void layer_ffn_down_forward(const model *m, int l, float *out, size_t n, const layer_bufs *b, const engine_edit *edit,
                            const edit_dims *d);

#endif
