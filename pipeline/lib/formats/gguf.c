/* gguf: validating GGUF v2/v3 reader — header, metadata and tensor table parsed from a read-only mapping. */
#include "formats/gguf.h"

#include "base/file_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "formats/dequant.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 4096 /* longest key / tensor name we accept */

/* One metadata record plus, for arrays of strings, the offset of each record. */
typedef struct {
    gguf_kv kv;
    uint64_t *str_off; /* (n) offsets from kv.data; NULL unless an array of strings */
} gguf_kv_rec;

struct gguf_file {
    char *path;
    const uint8_t *map;
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    gguf_kv_rec *kvs;      /* (n_kv) */
    size_t n_kv;
    gguf_tensor *tensors;  /* (n_tensors) */
    size_t n_tensors;
};

/* Parse cursor over the mapping; every read is bounds-checked. */
typedef struct {
    const uint8_t *p;
    uint64_t size;
    uint64_t off;
    const char *path;
    char ctx[GGUF_MAX_NAME + 32]; /* the record being parsed, for messages */
    lafn_err *err;
} cursor;

static int cur_need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->off)
        return lafn_err_set(c->err, "%s: %s%s at byte %llu needs %llu bytes, past file size %llu",
                            c->path, c->ctx, what, (unsigned long long)c->off, (unsigned long long)n,
                            (unsigned long long)c->size);
    return 0;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (cur_need(c, 4, what)) return -1;
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return 0;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (cur_need(c, 8, what)) return -1;
    memcpy(v, c->p + c->off, 8);
    c->off += 8;
    return 0;
}

/* Reads a u64-prefixed string; *s points into the mapping. */
static int cur_str(cursor *c, const char **s, uint64_t *len, const char *what) {
    if (cur_u64(c, len, what)) return -1;
    if (*len > c->size - c->off)
        return lafn_err_set(c->err, "%s: %s%s: string length %llu at byte %llu runs past file size %llu",
                            c->path, c->ctx, what, (unsigned long long)*len, (unsigned long long)(c->off - 8),
                            (unsigned long long)c->size);
    *s = (const char *)(c->p + c->off);
    c->off += *len;
    return 0;
}

static char *copy_name(const char *s, uint64_t len) {
    char *out = malloc((size_t)len + 1);
    if (!out) return NULL;
    memcpy(out, s, (size_t)len);
    out[len] = '\0';
    return out;
}

/* Size in bytes of a scalar of type t; 0 for strings, arrays and unknown types. */
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* Parses an array value (after its type tag) into rec. */
static int parse_array(cursor *c, gguf_kv_rec *rec) {
    uint32_t et;
    uint64_t n;
    const char *key = rec->kv.key;
    if (cur_u32(c, &et, "array element type") || cur_u64(c, &n, "array length")) return -1;
    rec->kv.elem_type = (gguf_type)et;
    rec->kv.n = n;
    rec->kv.data = c->p + c->off;
    if (et == GGUF_TYPE_STRING) {
        if (n > (c->size - c->off) / 8)
            return lafn_err_set(c->err, "%s: key '%s': array of %llu strings cannot fit in the %llu bytes left",
                                c->path, key, (unsigned long long)n, (unsigned long long)(c->size - c->off));
        rec->str_off = malloc((size_t)(n ? n : 1) * sizeof *rec->str_off);
        if (!rec->str_off) return lafn_err_set(c->err, "%s: key '%s': out of memory", c->path, key);
        uint64_t base = c->off;
        for (uint64_t i = 0; i < n; i++) {
            const char *s;
            uint64_t len;
            rec->str_off[i] = c->off - base;
            if (cur_str(c, &s, &len, "array string")) return -1;
        }
        return 0;
    }
    size_t es = scalar_size(et);
    if (es == 0)
        return lafn_err_set(c->err, "%s: key '%s': array element type %u not supported (expected a number, bool or string)",
                            c->path, key, et);
    if (n > (c->size - c->off) / es)
        return lafn_err_set(c->err, "%s: key '%s': array of %llu × %zu bytes runs past file size %llu",
                            c->path, key, (unsigned long long)n, es, (unsigned long long)c->size);
    c->off += n * es;
    return 0;
}

/* Parses one key/value record. */
static int parse_kv(cursor *c, gguf_kv_rec *rec, uint64_t index) {
    const char *s;
    uint64_t len;
    uint32_t t;
    snprintf(c->ctx, sizeof c->ctx, "metadata record %llu: ", (unsigned long long)index);
    if (cur_str(c, &s, &len, "key")) return -1;
    if (len == 0 || len > GGUF_MAX_NAME)
        return lafn_err_set(c->err, "%s: metadata record %llu: key length %llu (expected 1..%d)",
                            c->path, (unsigned long long)index, (unsigned long long)len, GGUF_MAX_NAME);
    rec->kv.key = copy_name(s, len);
    if (!rec->kv.key) return lafn_err_set(c->err, "%s: out of memory", c->path);
    snprintf(c->ctx, sizeof c->ctx, "key '%s': ", rec->kv.key);
    if (cur_u32(c, &t, "value type")) return -1;
    rec->kv.type = (gguf_type)t;
    rec->kv.elem_type = (gguf_type)t;
    rec->kv.n = 1;
    rec->kv.data = c->p + c->off;
    if (t == GGUF_TYPE_ARRAY) return parse_array(c, rec);
    if (t == GGUF_TYPE_STRING) {
        if (cur_str(c, &s, &len, "string value")) return -1;
        return 0;
    }
    size_t es = scalar_size(t);
    if (es == 0)
        return lafn_err_set(c->err, "%s: key '%s': unknown value type %u (expected 0..12)", c->path, rec->kv.key, t);
    if (cur_need(c, es, "scalar value")) return -1;
    c->off += es;
    return 0;
}

/* Parses one tensor-info record (shape, type, offset) without checking the data range yet. */
static int parse_tensor_info(cursor *c, gguf_tensor *t, uint64_t index) {
    const char *s;
    uint64_t len, off;
    uint32_t nd, type;
    snprintf(c->ctx, sizeof c->ctx, "tensor record %llu: ", (unsigned long long)index);
    if (cur_str(c, &s, &len, "name")) return -1;
    if (len == 0 || len > GGUF_MAX_NAME)
        return lafn_err_set(c->err, "%s: tensor record %llu: name length %llu (expected 1..%d)",
                            c->path, (unsigned long long)index, (unsigned long long)len, GGUF_MAX_NAME);
    t->name = copy_name(s, len);
    if (!t->name) return lafn_err_set(c->err, "%s: out of memory", c->path);
    snprintf(c->ctx, sizeof c->ctx, "tensor '%s': ", t->name);
    if (cur_u32(c, &nd, "n_dims")) return -1;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return lafn_err_set(c->err, "%s: tensor '%s': n_dims %u (expected 1..%d)", c->path, t->name, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t n_el = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= (int)nd) continue;
        if (cur_u64(c, &t->ne[d], "dimension")) return -1;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / n_el)
            return lafn_err_set(c->err, "%s: tensor '%s': dimension %d is %llu (zero, or element count overflows)",
                                c->path, t->name, d, (unsigned long long)t->ne[d]);
        n_el *= t->ne[d];
    }
    t->n_elements = n_el;
    if (cur_u32(c, &type, "type") || cur_u64(c, &off, "data offset")) return -1;
    t->type = (ggml_type)type;
    size_t bb = dequant_block_bytes(t->type), be = dequant_block_elems(t->type);
    if (bb == 0)
        return lafn_err_set(c->err, "%s: tensor '%s': unknown tensor type %u (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K)",
                            c->path, t->name, type);
    if (t->ne[0] % be != 0)
        return lafn_err_set(c->err, "%s: tensor '%s': row length %llu is not a multiple of the %s block size %zu",
                            c->path, t->name, (unsigned long long)t->ne[0], dequant_type_name(t->type), be);
    if (n_el / be > UINT64_MAX / bb)
        return lafn_err_set(c->err, "%s: tensor '%s': byte size overflows", c->path, t->name);
    t->n_bytes = n_el / be * bb;
    t->data = (const uint8_t *)(uintptr_t)off; /* offset until the data section is known */
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails if two entries of names (n pointers) are equal; sorts names. */
static int check_unique(const char **names, size_t n, const char *path, const char *what, lafn_err *err) {
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return lafn_err_set(err, "%s: duplicate %s '%s'", path, what, names[i]);
    return 0;
}

/* Reads general.alignment (default 32; must be a power of two). */
static int read_alignment(gguf_file *f, lafn_err *err) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!gguf_find_kv(f, "general.alignment")) return 0;
    uint32_t a;
    if (gguf_get_u32(f, "general.alignment", &a, err)) return -1;
    if (a == 0 || (a & (a - 1)) != 0)
        return lafn_err_set(err, "%s: general.alignment is %u (expected a power of two)", f->path, a);
    f->alignment = a;
    return 0;
}

/* Resolves tensor offsets to pointers after checking alignment and range. */
static int place_tensors(gguf_file *f, uint64_t header_end, lafn_err *err) {
    uint64_t data_start = (header_end + f->alignment - 1) / f->alignment * f->alignment;
    if (data_start > f->size) {
        if (f->n_tensors == 0) return 0;
        return lafn_err_set(err, "%s: tensor data section starts at byte %llu, past file size %llu",
                            f->path, (unsigned long long)data_start, (unsigned long long)f->size);
    }
    uint64_t avail = f->size - data_start;
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t off = (uint64_t)(uintptr_t)t->data;
        if (off % f->alignment != 0)
            return lafn_err_set(err, "%s: tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                                f->path, t->name, (unsigned long long)off, (unsigned long long)f->alignment);
        if (off > avail || t->n_bytes > avail - off)
            return lafn_err_set(err, "%s: tensor '%s': data ends at byte %llu past file size %llu (truncated file?)",
                                f->path, t->name, (unsigned long long)(data_start + off + t->n_bytes),
                                (unsigned long long)f->size);
        t->data = f->map + data_start + off;
    }
    return 0;
}

/* Parses header, metadata and tensor table of the mapped file f. */
static int parse_file(gguf_file *f, lafn_err *err) {
    cursor c = {f->map, f->size, 0, f->path, "header: ", err};
    uint64_t n_tensors, n_kv;
    if (f->size < 4 || memcmp(f->map, GGUF_MAGIC, 4) != 0)
        return lafn_err_set(err, "%s: bad magic (expected \"GGUF\"); not a GGUF file", f->path);
    c.off = 4;
    if (cur_u32(&c, &f->version, "version")) return -1;
    if (f->version != 2 && f->version != 3)
        return lafn_err_set(err, "%s: GGUF version %u not supported (expected 2 or 3)", f->path, f->version);
    if (cur_u64(&c, &n_tensors, "n_tensors") || cur_u64(&c, &n_kv, "n_kv")) return -1;
    /* a record takes at least 13 bytes (kv) / 28 bytes (tensor info): check before allocating */
    uint64_t left = f->size - c.off;
    if (n_kv > left / 13)
        return lafn_err_set(err, "%s: n_kv %llu cannot fit in the %llu bytes after the header",
                            f->path, (unsigned long long)n_kv, (unsigned long long)left);
    if (n_tensors > left / 28)
        return lafn_err_set(err, "%s: n_tensors %llu cannot fit in the %llu bytes after the header",
                            f->path, (unsigned long long)n_tensors, (unsigned long long)left);
    /* one spare zeroed record each, so gguf_close can free a half-parsed one */
    f->kvs = calloc((size_t)n_kv + 1, sizeof *f->kvs);
    f->tensors = calloc((size_t)n_tensors + 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) return lafn_err_set(err, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < n_kv; i++, f->n_kv++)
        if (parse_kv(&c, &f->kvs[i], i)) return -1;
    for (uint64_t i = 0; i < n_tensors; i++, f->n_tensors++)
        if (parse_tensor_info(&c, &f->tensors[i], i)) return -1;
    if (read_alignment(f, err)) return -1;
    size_t n_names = f->n_kv > f->n_tensors ? f->n_kv : f->n_tensors;
    const char **names = malloc((n_names ? n_names : 1) * sizeof *names);
    if (!names) return lafn_err_set(err, "%s: out of memory", f->path);
    for (size_t i = 0; i < f->n_kv; i++) names[i] = f->kvs[i].kv.key;
    int rc = check_unique(names, f->n_kv, f->path, "metadata key", err);
    for (size_t i = 0; i < f->n_tensors; i++) names[i] = f->tensors[i].name;
    if (rc == 0) rc = check_unique(names, f->n_tensors, f->path, "tensor name", err);
    free(names);
    if (rc) return -1;
    return place_tensors(f, c.off, err);
}

int gguf_open(gguf_file **out, const char *path, lafn_err *err) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return lafn_err_set(err, "%s: out of memory", path);
    f->path = strdup(path);
    if (!f->path) { lafn_err_set(err, "%s: out of memory", path); goto fail; }
    const uint8_t *map = NULL;
    if (file_map_readonly(path, 24, "a GGUF header (24 bytes)", &map, &f->size, err)) goto fail;
    f->map = map;
    if (parse_file(f, err)) goto fail;
    *out = f;
    return 0;
fail:
    gguf_close(f);
    return -1;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_kv; i++) {
        free((char *)f->kvs[i].kv.key);
        free(f->kvs[i].str_off);
    }
    /* a record that failed mid-parse may hold a key or name: n_kv/n_tensors count only whole ones */
    if (f->kvs) {
        free((char *)f->kvs[f->n_kv].kv.key);
        free(f->kvs[f->n_kv].str_off);
    }
    for (size_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    if (f->tensors) free((char *)f->tensors[f->n_tensors].name);
    free(f->kvs);
    free(f->tensors);
    if (f->map) munmap((void *)f->map, (size_t)f->size);
    free(f->path);
    free(f);
}

const char *gguf_path(const gguf_file *f) { return f->path; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
const uint8_t *gguf_file_bytes(const gguf_file *f) { return f->map; }
size_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (size_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kvs[i].kv.key, key) == 0) return &f->kvs[i].kv;
    return NULL;
}

static const char *type_name(gguf_type t) {
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                  "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "unknown";
}

/* Finds a scalar key; fails naming the key if absent or an array. */
static const gguf_kv *find_scalar(const gguf_file *f, const char *key, lafn_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) {
        lafn_err_set(err, "%s: missing metadata key '%s'", f->path, key);
        return NULL;
    }
    if (kv->type == GGUF_TYPE_ARRAY) {
        lafn_err_set(err, "%s: metadata key '%s' is an array; expected a scalar", f->path, key);
        return NULL;
    }
    return kv;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, lafn_err *err) {
    const gguf_kv *kv = find_scalar(f, key, err);
    if (!kv) return -1;
    int64_t sv = 0;
    uint64_t uv = 0;
    int is_signed = 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: uv = kv->data[0]; break;
    case GGUF_TYPE_INT8: sv = (int8_t)kv->data[0]; is_signed = 1; break;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, kv->data, 2); uv = v; break; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, kv->data, 2); sv = v; is_signed = 1; break; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, kv->data, 4); uv = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, kv->data, 4); sv = v; is_signed = 1; break; }
    case GGUF_TYPE_UINT64: memcpy(&uv, kv->data, 8); break;
    case GGUF_TYPE_INT64: memcpy(&sv, kv->data, 8); is_signed = 1; break;
    default:
        return lafn_err_set(err, "%s: metadata key '%s' has type %s; expected an integer", f->path, key,
                            type_name(kv->type));
    }
    if (is_signed) {
        if (sv < 0) return lafn_err_set(err, "%s: metadata key '%s' is %lld; expected a value >= 0", f->path, key, (long long)sv);
        uv = (uint64_t)sv;
    }
    if (uv > UINT32_MAX)
        return lafn_err_set(err, "%s: metadata key '%s' is %llu; does not fit 32 bits", f->path, key, (unsigned long long)uv);
    *out = (uint32_t)uv;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, lafn_err *err) {
    const gguf_kv *kv = find_scalar(f, key, err);
    if (!kv) return -1;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        memcpy(out, kv->data, 4);
        return 0;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return 0;
    }
    return lafn_err_set(err, "%s: metadata key '%s' has type %s; expected float32", f->path, key, type_name(kv->type));
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, lafn_err *err) {
    const gguf_kv *kv = find_scalar(f, key, err);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_BOOL)
        return lafn_err_set(err, "%s: metadata key '%s' has type %s; expected bool", f->path, key, type_name(kv->type));
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len, lafn_err *err) {
    const gguf_kv *kv = find_scalar(f, key, err);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_STRING)
        return lafn_err_set(err, "%s: metadata key '%s' has type %s; expected string", f->path, key, type_name(kv->type));
    uint64_t n;
    memcpy(&n, kv->data, 8);
    *s = (const char *)kv->data + 8;
    *len = (size_t)n;
    return 0;
}

int gguf_array_str(const gguf_kv *kv, uint64_t i, const char **s, size_t *len, lafn_err *err) {
    if (kv->type != GGUF_TYPE_ARRAY || kv->elem_type != GGUF_TYPE_STRING)
        return lafn_err_set(err, "metadata key '%s' is not an array of strings", kv->key);
    if (i >= kv->n)
        return lafn_err_set(err, "metadata key '%s': index %llu out of range (array has %llu strings)", kv->key,
                            (unsigned long long)i, (unsigned long long)kv->n);
    /* kv points at the first member of a gguf_kv_rec (gguf_find_kv hands out no other kind) */
    const gguf_kv_rec *rec = (const gguf_kv_rec *)kv;
    const uint8_t *p = kv->data + rec->str_off[i];
    uint64_t n;
    memcpy(&n, p, 8);
    *s = (const char *)p + 8;
    *len = (size_t)n;
    return 0;
}
