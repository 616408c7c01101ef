/* gguf: a validating reader of GGUF v2/v3 files (metadata and tensor table, data memory-mapped).
 *
 * File layout (little-endian):
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × { string key | u32 type | value }
 *   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 *   string = u64 length + bytes (no terminator); array = u32 elem_type + u64 n + elems.
 * Every count, length, offset and shape is checked against the file size
 * before it is used or anything is allocated from it. */
#ifndef LAFN_GGUF_H
#define LAFN_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
} gguf_type;

/* ggml tensor types (numbering as in ggml). */
typedef enum {
    GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6, GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q4_K = 12, GGML_TYPE_Q5_K = 13, GGML_TYPE_Q6_K = 14, GGML_TYPE_BF16 = 30,
} ggml_type;

typedef struct {
    const char *key;       /* NUL-terminated copy */
    gguf_type type;
    gguf_type elem_type;   /* for arrays */
    uint64_t n;            /* array length; 1 for scalars */
    const uint8_t *data;   /* scalar value, or first array element (strings: the u64-prefixed records) */
} gguf_kv;

typedef struct {
    const char *name;      /* NUL-terminated copy */
    int n_dims;
    uint64_t ne[4];        /* ne[0] is the fastest-varying (row length); unused dims are 1 */
    ggml_type type;
    uint64_t n_elements;
    uint64_t n_bytes;
    const uint8_t *data;   /* inside the mapping; valid until gguf_close */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates path; returns 0 and *out, or -1 with err naming the file
 * and the field ("tensor 'blk.3.ffn_down.weight': data ends at byte X past file size Y").
 * Unknown tensor types are rejected here. Release with gguf_close. */
int gguf_open(gguf_file **out, const char *path, lafn_err *err);
void gguf_close(gguf_file *f);

const char *gguf_path(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
/* The whole mapped file (for hashing). */
const uint8_t *gguf_file_bytes(const gguf_file *f);

/* Metadata lookup; NULL if absent. */
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
/* Typed getters: 0 on success, -1 with err naming the key if absent (and
 * required) or of another type. Integer getters accept any integer type whose
 * value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, lafn_err *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, lafn_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, lafn_err *err);
/* String value: pointer into the mapping (not NUL-terminated) and its length. */
int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len, lafn_err *err);
/* Array element access for arrays of strings / numbers; index is bounds-checked. */
int gguf_array_str(const gguf_kv *kv, uint64_t i, const char **s, size_t *len, lafn_err *err);

size_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

#endif
