/* model_load_int: the layout plan shared by the GGUF and Hugging Face loaders (internal to model_load*.c). */
#ifndef LAFN_MODEL_LOAD_INT_H
#define LAFN_MODEL_LOAD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "base/lafn_err.h"
#include "model/model.h"

enum {
    SLOT_NORM_ADD_ONE = 1, /* HF Gemma RMSNorm: store 1 + w */
    SLOT_PERMUTE = 2,      /* GGUF Llama Q/K: undo llama.cpp's interleaving permutation of rows */
};

/* One tensor of the weight block, named as in GGUF (the HF loader maps names). */
typedef struct {
    char name[64];
    float **dst;     /* the pointer in model_weights to bind */
    uint64_t rows;   /* out; 1 for vectors */
    uint64_t cols;   /* in; the length for vectors */
    int is_matrix;
    int flags;
    int perm_heads;  /* heads of the SLOT_PERMUTE rows (H for Q, K for K) */
    int layer;       /* -1 for global tensors */
    size_t off;      /* offset in floats into the block */
} model_slot;

typedef struct {
    model_slot *v;   /* (n) */
    size_t n;
    size_t n_floats; /* block size */
} model_plan;

/* Lists every tensor m->cfg requires (m->w.layers must be allocated), with
 * offsets aligned to 16 floats; 0 or -1 with err (sizes overflow). */
int model_plan_build(model_plan *p, model *m, lafn_err *err);
/* Points m->w into block by the plan; output = token_embd when tied. */
void model_plan_bind(const model_plan *p, model *m, float *block);
void model_plan_free(model_plan *p);
/* Maps source row r of a permuted slot to its destination row (identity otherwise). */
uint64_t model_slot_dst_row(const model_slot *s, uint64_t r);
/* Finds the pattern P (layer i global iff (i + 1) % P == 0) matching per-layer flags
 * is_local (n_layer); tries hint first. Returns 0, or -1 if no P fits. */
int model_pattern_from_flags(const unsigned char *is_local, int n_layer, int hint, int *pattern);

/* GGUF: config and name from metadata; checks every planned tensor exists with
 * its shape; fills the block (rank 0 only). */
int model_gguf_config(const gguf_file *f, model_config *cfg, char **name, lafn_err *err);
int model_gguf_check(const gguf_file *f, const model_plan *p, lafn_err *err);
int model_gguf_fill(const gguf_file *f, const model_plan *p, float *block, lafn_err *err);

/* Hugging Face folder (config.json + *.safetensors). */
typedef struct hf_model hf_model;
int model_hf_open(hf_model **out, const char *dir, model_config *cfg, char **name, lafn_err *err);
int model_hf_check(hf_model *h, const model_plan *p, lafn_err *err);
int model_hf_fill(hf_model *h, const model_plan *p, float *block, lafn_err *err);
/* SHA-256 hex of the safetensors files concatenated in name order, and their total size. */
int model_hf_hash(hf_model *h, char hex[65], uint64_t *bytes, lafn_err *err);
void model_hf_close(hf_model *h);

#endif
