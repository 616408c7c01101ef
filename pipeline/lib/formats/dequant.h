/* dequant: conversion of ggml tensor data (F32, F16, BF16, Q4_0 … Q6_K) to fp32. */
#ifndef LAFN_DEQUANT_H
#define LAFN_DEQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"

/* Elements per block and bytes per block of a type; 0 for unknown types. */
size_t dequant_block_elems(ggml_type t);
size_t dequant_block_bytes(ggml_type t);
/* Name as ggml prints it ("Q4_K"), or NULL. */
const char *dequant_type_name(ggml_type t);

/* Bytes taken by n elements of type t; 0 if t is unknown or n is not a
 * multiple of the block size. */
size_t dequant_row_bytes(ggml_type t, uint64_t n);

/* Writes n floats decoded from src (dequant_row_bytes(t, n) bytes) into dst.
 * Returns 0, or -1 if t is unknown or n is not a multiple of its block. */
int dequant_to_f32(ggml_type t, const void *src, float *dst, uint64_t n);

/* Plain IEEE conversions used by the loaders. */
float dequant_f16_to_f32(uint16_t h);
float dequant_bf16_to_f32(uint16_t h);

#endif
