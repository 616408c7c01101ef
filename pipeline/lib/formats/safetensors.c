/* safetensors: validating .safetensors reader — JSON header via cJSON, tensor data memory-mapped. */
#include "formats/safetensors.h"

#include "base/file_map.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "formats/dequant.h"

#define ST_MAX_HEADER (100u << 20) /* the format's own limit on the header size */

struct safetensors_file {
    char *path;
    const uint8_t *map;
    uint64_t size;
    safetensors_tensor *tensors; /* (n) */
    size_t n;
};

static size_t dtype_size(safetensors_dtype d) { return d == SAFETENSORS_F32 ? 4 : 2; }
static const char *dtype_name(safetensors_dtype d) {
    return d == SAFETENSORS_F32 ? "F32" : d == SAFETENSORS_F16 ? "F16" : "BF16";
}

/* Reads a JSON number that must be a non-negative integer below 2^53. */
static int json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = cJSON_GetNumberValue(j);
    if (!(v >= 0) || v > 9007199254740992.0 || v != (double)(uint64_t)v) return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Parses one header entry into t; data_len is the size of the data section. */
static int parse_entry(safetensors_file *f, const cJSON *e, safetensors_tensor *t, uint64_t data_len,
                       const uint8_t *data, lafn_err *err) {
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return lafn_err_set(err, "%s: tensor '%s': expected {\"dtype\": string, \"shape\": [...], \"data_offsets\": [begin, end]}",
                            f->path, name);
    const char *ds = cJSON_GetStringValue(dt);
    if (strcmp(ds, "F32") == 0) t->dtype = SAFETENSORS_F32;
    else if (strcmp(ds, "F16") == 0) t->dtype = SAFETENSORS_F16;
    else if (strcmp(ds, "BF16") == 0) t->dtype = SAFETENSORS_BF16;
    else return lafn_err_set(err, "%s: tensor '%s': dtype '%s' not supported (expected F32, F16 or BF16)", f->path, name, ds);
    int nd = cJSON_GetArraySize(sh);
    if (nd > SAFETENSORS_MAX_DIMS)
        return lafn_err_set(err, "%s: tensor '%s': %d dimensions (at most %d)", f->path, name, nd, SAFETENSORS_MAX_DIMS);
    t->n_dims = nd;
    uint64_t n_el = 1;
    for (int d = 0; d < nd; d++) {
        uint64_t v;
        if (json_u64(cJSON_GetArrayItem(sh, d), &v))
            return lafn_err_set(err, "%s: tensor '%s': shape[%d] is not a non-negative integer", f->path, name, d);
        if (v != 0 && n_el > UINT64_MAX / 8 / v)
            return lafn_err_set(err, "%s: tensor '%s': element count overflows", f->path, name);
        t->shape[d] = v;
        n_el *= v;
    }
    t->n_elements = n_el;
    uint64_t b, en;
    if (json_u64(cJSON_GetArrayItem(of, 0), &b) || json_u64(cJSON_GetArrayItem(of, 1), &en) || b > en || en > data_len)
        return lafn_err_set(err, "%s: tensor '%s': data_offsets outside the %llu data bytes (file truncated?)", f->path,
                            name, (unsigned long long)data_len);
    if (en - b != n_el * dtype_size(t->dtype))
        return lafn_err_set(err, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes; %llu elements of %s need %llu",
                            f->path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                            (unsigned long long)n_el, dtype_name(t->dtype), (unsigned long long)(n_el * dtype_size(t->dtype)));
    t->name = strdup(name);
    if (!t->name) return lafn_err_set(err, "%s: out of memory", f->path);
    t->data = data + b;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const safetensors_tensor *)a)->name, ((const safetensors_tensor *)b)->name);
}

/* Parses the JSON header of the mapped file. */
static int parse_header(safetensors_file *f, lafn_err *err) {
    uint64_t hlen;
    memcpy(&hlen, f->map, 8);
    if (hlen > f->size - 8 || hlen > ST_MAX_HEADER)
        return lafn_err_set(err, "%s: header length %llu runs past file size %llu", f->path, (unsigned long long)hlen,
                            (unsigned long long)f->size);
    cJSON *root = cJSON_ParseWithLength((const char *)f->map + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lafn_err_set(err, "%s: header is not a JSON object", f->path);
    }
    int n = cJSON_GetArraySize(root), rc = 0;
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    if (!f->tensors) rc = lafn_err_set(err, "%s: out of memory", f->path);
    const uint8_t *data = f->map + 8 + hlen;
    for (const cJSON *e = root->child; rc == 0 && e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        rc = parse_entry(f, e, &f->tensors[f->n], f->size - 8 - hlen, data, err);
        if (rc == 0) f->n++;
    }
    cJSON_Delete(root);
    if (rc) return -1;
    qsort(f->tensors, f->n, sizeof *f->tensors, cmp_tensor_name);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return lafn_err_set(err, "%s: duplicate tensor name '%s'", f->path, f->tensors[i].name);
    return 0;
}

int safetensors_open(safetensors_file **out, const char *path, lafn_err *err) {
    *out = NULL;
    safetensors_file *f = calloc(1, sizeof *f);
    if (!f) return lafn_err_set(err, "%s: out of memory", path);
    f->path = strdup(path);
    if (!f->path) { lafn_err_set(err, "%s: out of memory", path); goto fail; }
    const uint8_t *map = NULL;
    if (file_map_readonly(path, 10, "a safetensors header", &map, &f->size, err)) goto fail;
    f->map = map;
    if (parse_header(f, err)) goto fail;
    *out = f;
    return 0;
fail:
    safetensors_close(f);
    return -1;
}

void safetensors_close(safetensors_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap((void *)f->map, (size_t)f->size);
    free(f->path);
    free(f);
}

const char *safetensors_path(const safetensors_file *f) { return f->path; }
uint64_t safetensors_file_size(const safetensors_file *f) { return f->size; }
const uint8_t *safetensors_file_bytes(const safetensors_file *f) { return f->map; }
size_t safetensors_n_tensors(const safetensors_file *f) { return f->n; }

const safetensors_tensor *safetensors_tensor_at(const safetensors_file *f, size_t i) {
    return i < f->n ? &f->tensors[i] : NULL;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int safetensors_to_f32(const safetensors_tensor *t, uint64_t first, uint64_t n, float *dst) {
    if (first > t->n_elements || n > t->n_elements - first) return -1;
    const uint8_t *p = t->data + first * dtype_size(t->dtype);
    for (uint64_t i = 0; i < n; i++) {
        if (t->dtype == SAFETENSORS_F32) {
            memcpy(&dst[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == SAFETENSORS_F16 ? dequant_f16_to_f32(h) : dequant_bf16_to_f32(h);
        }
    }
    return 0;
}
