/* safetensors: a validating reader of .safetensors files (F32/F16/BF16 tensors, data memory-mapped).
 *
 * File layout: u64 N (little-endian) | N bytes of JSON header | data.
 * Header: { "<tensor>": {"dtype": "F32"|"F16"|"BF16", "shape": [..], "data_offsets": [begin, end]},
 *           "__metadata__": {string: string} (optional) }, offsets relative to the start of data.
 * Every shape, offset and size is checked against the file size before use. */
#ifndef LAFN_SAFETENSORS_H
#define LAFN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"

#define SAFETENSORS_MAX_DIMS 8

typedef enum {
    SAFETENSORS_F32,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
} safetensors_dtype;

typedef struct {
    const char *name;          /* NUL-terminated copy */
    safetensors_dtype dtype;
    int n_dims;
    uint64_t shape[SAFETENSORS_MAX_DIMS]; /* shape[0] slowest (row-major, as torch) */
    uint64_t n_elements;
    const uint8_t *data;       /* inside the mapping; valid until safetensors_close */
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

/* Opens and validates path; returns 0 and *out, or -1 with err naming the file
 * and the tensor ("tensor 'x': data_offsets [a, b] hold 12 bytes; shape [2, 3] of F32 needs 24").
 * Tensors of other dtypes are rejected. Release with safetensors_close. */
int safetensors_open(safetensors_file **out, const char *path, lafn_err *err);
void safetensors_close(safetensors_file *f);

const char *safetensors_path(const safetensors_file *f);
uint64_t safetensors_file_size(const safetensors_file *f);
const uint8_t *safetensors_file_bytes(const safetensors_file *f);
size_t safetensors_n_tensors(const safetensors_file *f);
const safetensors_tensor *safetensors_tensor_at(const safetensors_file *f, size_t i);
/* NULL if absent. */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);

/* Converts n elements of t starting at element first into dst; returns 0, or -1
 * if the range is outside the tensor. */
int safetensors_to_f32(const safetensors_tensor *t, uint64_t first, uint64_t n, float *dst);

#endif
