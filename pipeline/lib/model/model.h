/* model: a decoder-only transformer's configuration and fp32 weights, loaded once per node. */
#ifndef LAFN_MODEL_H
#define LAFN_MODEL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"

/* Dimension names used across the numeric code:
 *   L layers, D model width, F FFN width (neurons per layer), H query heads,
 *   K key/value heads, E head dim, V vocabulary, N tokens in a batch,
 *   B sequences in a batch, T tokens in one sequence, P scored positions. */

typedef enum {
    MODEL_ARCH_LLAMA,  /* Llama 2/3, Mistral: SwiGLU, RMSNorm w, no bias */
    MODEL_ARCH_QWEN2,  /* Qwen2/2.5: as Llama plus Q/K/V bias */
    MODEL_ARCH_GEMMA3, /* GeGLU, (1+w) RMSNorm, pre/post norms, QK-norm, local/global layers */
} model_arch;

typedef enum {
    MODEL_ACT_SILU,      /* a = silu(gate) * up */
    MODEL_ACT_GELU_TANH, /* a = gelu_tanh(gate) * up */
} model_act;

typedef struct {
    model_arch arch;
    model_act act;
    int n_layer;   /* L */
    int d_model;   /* D */
    int d_ffn;     /* F */
    int n_head;    /* H */
    int n_head_kv; /* K */
    int head_dim;  /* E */
    int vocab;     /* V */
    float norm_eps;
    float rope_base;       /* RoPE base of global layers */
    float rope_base_local; /* RoPE base of sliding-window layers (Gemma 3) */
    int sliding_window;    /* window of local layers in tokens; 0 = no local layers */
    int sliding_pattern;   /* Gemma 3: layer i is global iff (i + 1) % pattern == 0; 0 = all global */
    float attn_scale;      /* multiplier of q·k (1/sqrt(E), or 1/sqrt(query_pre_attn_scalar)) */
    float embed_scale;     /* multiplier of token embeddings (sqrt(D) for Gemma, else 1) */
    int has_qkv_bias;      /* Qwen2 */
    int has_qk_norm;       /* Gemma 3: RMSNorm over each head of q and k */
    int has_post_norms;    /* Gemma 3: post_attention_norm and post_ffw_norm */
    int tied_output;       /* output projection is token_embd */
    int has_rope_factors;  /* Llama 3.1+: per-frequency divisors in rope_freq_factors */
} model_config;

/* One layer's weights. Matrices are row-major (out, in): y = W x.
 * Norm weights hold the multiplier actually applied (Gemma's 1 + w is
 * resolved at load time, whatever the file format stored).
 * RoPE pairs dimensions NeoX-style (i, i + E/2) for every architecture; the
 * GGUF Llama loader undoes llama.cpp's interleaving permutation of Q/K rows. */
typedef struct {
    float *attn_norm;      /* (D) */
    float *wq;             /* (H*E, D) */
    float *wk;             /* (K*E, D) */
    float *wv;             /* (K*E, D) */
    float *bq;             /* (H*E) or NULL */
    float *bk;             /* (K*E) or NULL */
    float *bv;             /* (K*E) or NULL */
    float *q_norm;         /* (E) or NULL */
    float *k_norm;         /* (E) or NULL */
    float *wo;             /* (D, H*E) */
    float *post_attn_norm; /* (D) or NULL */
    float *ffn_norm;       /* (D) */
    float *w_gate;         /* (F, D) */
    float *w_up;           /* (F, D) */
    float *w_down;         /* (D, F): column j is neuron j's value vector */
    float *post_ffn_norm;  /* (D) or NULL */
} model_layer;

/* All weights live in one block (node-shared memory when loaded under MPI);
 * the pointers below slice it. */
typedef struct {
    float *token_embd;        /* (V, D) */
    float *output_norm;       /* (D) */
    float *output;            /* (V, D); equals token_embd when tied */
    float *rope_freq_factors; /* (E/2) or NULL */
    model_layer *layers;      /* (L) */
} model_weights;

typedef struct tokenizer tokenizer;

typedef struct {
    char *path;          /* file or folder it was loaded from */
    char *sha256;        /* hex SHA-256 of the model file (GGUF) or of the safetensors files, concatenated in name order */
    uint64_t file_bytes; /* size of the file(s) read */
    char *name;          /* general.name or the folder name */
    model_config cfg;
    model_weights w;
    tokenizer *tok;
    /* storage */
    float *block;        /* the weight block */
    size_t block_floats;
    MPI_Win win;         /* shared-memory window holding block, or MPI_WIN_NULL */
} model;

/* Loads a model from a GGUF file or a Hugging Face folder (config.json,
 * *.safetensors, tokenizer.json). With node_comm != MPI_COMM_NULL (a
 * communicator of ranks on one node, from MPI_Comm_split_type), rank 0 of
 * node_comm reads the file into an MPI-3 shared window and the others map the
 * same pages; collective over node_comm. With MPI_COMM_NULL the block is
 * private. Returns 0, or -1 with err naming the file, tensor or key. On
 * success *out is owned by the caller: release with model_free (collective
 * over the same node_comm). */
int model_load(model **out, const char *path, MPI_Comm node_comm, lafn_err *err);

/* Frees everything model_load allocated; NULL is ignored. */
void model_free(model *m);

/* Returns 1 if layer i uses sliding-window attention and the local RoPE base. */
int model_layer_is_local(const model_config *cfg, int i);

/* Checks a model config: every size in 1..2^24, head_dim even, n_head a
 * multiple of n_head_kv, norm_eps and rope_base > 0, sliding-window fields
 * >= 0. Returns 0, or -1 with err naming `path` and the field. */
int model_config_check(const model_config *c, const char *path, lafn_err *err);

#endif
