/* stage_edit_output: edit.h5 — per-fact records, their shards and schema, and the reader of stored edits. */
#include "edit/stage_edit_int.h"

#include <stdlib.h>
#include <string.h>

void edit_record_free(edit_record *r) {
    free(r->nll_before);
    free(r->nll_after);
    free(r->gate_layer);
    free(r->gate_neuron);
    free(r->gate_sign);
    free(r->gate_threshold);
    free(r->delta_layer);
    free(r->delta_neuron);
    free(r->delta);
    memset(r, 0, sizeof *r);
}

/* The datasets of edit.h5 in schema order; values filled by edit_rows_pack. */
enum { DS_STATUS, DS_PARAM, DS_GROUP, DS_ORDER, DS_STEPS, DS_EARLY, DS_NLL_B, DS_NLL_A, DS_LOSS, DS_WALL, DS_MEM,
       DS_G_INFO, DS_G_LAYER, DS_G_NEURON, DS_G_SIGN, DS_G_THR, DS_D_LAYER, DS_D_NEURON, DS_D_VAL, DS_COUNT };

size_t edit_schema(h5out_dataset *ds, size_t n_langs) {
    static const struct { const char *name; h5out_layout layout; h5out_dtype dtype; size_t len; } t[DS_COUNT] = {
        {"status", H5OUT_ROWS, H5OUT_I32, 1},        {"param", H5OUT_ROWS, H5OUT_I32, 1},
        {"group", H5OUT_ROWS, H5OUT_I64, 1},         {"order", H5OUT_ROWS, H5OUT_I64, 1},
        {"steps", H5OUT_ROWS, H5OUT_I32, 1},         {"early_stopped", H5OUT_ROWS, H5OUT_I32, 1},
        {"nll_before", H5OUT_ROWS, H5OUT_F64, 0},    {"nll_after", H5OUT_ROWS, H5OUT_F64, 0},
        {"loss", H5OUT_ROWS, H5OUT_F64, 4},          {"wall_seconds", H5OUT_ROWS, H5OUT_F64, 1},
        {"memory_kb", H5OUT_ROWS, H5OUT_I64, 2},     {"gate_info", H5OUT_ROWS, H5OUT_I32, 3},
        {"gate/layer", H5OUT_CSR, H5OUT_I32, 0},
        {"gate/neuron", H5OUT_CSR, H5OUT_I32, 0},    {"gate/sign", H5OUT_CSR, H5OUT_F32, 0},
        {"gate/threshold", H5OUT_CSR, H5OUT_F32, 0},
        {"delta/layer", H5OUT_CSR, H5OUT_I32, 0},    {"delta/neuron", H5OUT_CSR, H5OUT_I32, 0},
        {"delta/values", H5OUT_CSR, H5OUT_F32, 0},
    };
    for (size_t i = 0; i < DS_COUNT; i++)
        ds[i] = (h5out_dataset){.name = t[i].name, .layout = t[i].layout, .dtype = t[i].dtype,
                                .row_len = t[i].len ? t[i].len : (t[i].layout == H5OUT_ROWS ? n_langs : 0)};
    return DS_COUNT;
}

/* Packed arrays of a batch of records, pointed to by the datasets. */
typedef struct {
    int64_t *facts, *group, *order, *mem, *g_off, *d_off, *v_off;
    int32_t *status, *param, *ginfo, *steps, *early, *g_layer, *g_neuron, *d_layer, *d_neuron;
    double *nll_b, *nll_a, *loss, *wall;
    float *g_sign, *g_thr, *d_val;
} packed;

static void packed_free(packed *p) {
    void *all[] = {p->ginfo, p->facts, p->group, p->order, p->mem, p->g_off, p->d_off, p->v_off, p->status, p->param,
                   p->steps, p->early, p->g_layer, p->g_neuron, p->d_layer, p->d_neuron, p->nll_b, p->nll_a,
                   p->loss, p->wall, p->g_sign, p->g_thr, p->d_val};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

static int packed_alloc(packed *p, size_t n, size_t L, size_t ng, size_t nd, size_t nv) {
    p->facts = malloc(n * 8); p->group = malloc(n * 8); p->order = malloc(n * 8); p->mem = malloc(2 * n * 8);
    p->g_off = malloc((n + 1) * 8); p->d_off = malloc((n + 1) * 8); p->v_off = malloc((n + 1) * 8);
    p->status = malloc(n * 4); p->ginfo = malloc(3 * n * 4); p->param = malloc(n * 4); p->steps = malloc(n * 4); p->early = malloc(n * 4);
    p->g_layer = malloc(ng * 4 + 4); p->g_neuron = malloc(ng * 4 + 4); p->g_thr = malloc(ng * 4 + 4);
    p->g_sign = malloc(ng * 4 + 4);
    p->d_layer = malloc(nd * 4 + 4); p->d_neuron = malloc(nd * 4 + 4); p->d_val = malloc(nv * 4 + 4);
    p->nll_b = malloc(n * L * 8); p->nll_a = malloc(n * L * 8); p->loss = malloc(4 * n * 8); p->wall = malloc(n * 8);
    return p->ginfo && p->facts && p->group && p->order && p->mem && p->g_off && p->d_off && p->v_off && p->status &&
           p->param && p->steps && p->early && p->g_layer && p->g_neuron && p->g_sign && p->g_thr && p->d_layer &&
           p->d_neuron && p->d_val && p->nll_b && p->nll_a && p->loss && p->wall ? 0 : -1;
}

static void pack_one(packed *p, size_t i, const edit_record *r, size_t L, size_t width) {
    p->facts[i] = r->fact; p->group[i] = r->group; p->order[i] = r->order;
    p->mem[2 * i] = r->peak_rss_kb; p->mem[2 * i + 1] = r->pss_kb;
    p->status[i] = r->status; p->param[i] = r->kind == ENGINE_EDIT_VALUE_VECTOR ? 0 : 1;
    p->ginfo[3 * i] = r->gate_candidates;
    p->ginfo[3 * i + 1] = r->n_gate;
    p->ginfo[3 * i + 2] = r->gate_specific;
    p->steps[i] = r->steps; p->early[i] = r->early_stopped; p->wall[i] = r->wall_seconds;
    memcpy(p->nll_b + i * L, r->nll_before, L * sizeof(double));
    memcpy(p->nll_a + i * L, r->nll_after, L * sizeof(double));
    memcpy(p->loss + 4 * i, r->loss, sizeof r->loss);
    size_t g = (size_t)p->g_off[i], d = (size_t)p->d_off[i];
    memcpy(p->g_layer + g, r->gate_layer, (size_t)r->n_gate * 4);
    memcpy(p->g_neuron + g, r->gate_neuron, (size_t)r->n_gate * 4);
    memcpy(p->g_sign + g, r->gate_sign, (size_t)r->n_gate * 4);
    memcpy(p->g_thr + g, r->gate_threshold, (size_t)r->n_gate * 4);
    memcpy(p->d_layer + d, r->delta_layer, (size_t)r->n_delta * 4);
    memcpy(p->d_neuron + d, r->delta_neuron, (size_t)r->n_delta * 4);
    memcpy(p->d_val + (size_t)p->v_off[i], r->delta, (size_t)r->n_delta * width * 4);
    p->g_off[i + 1] = (int64_t)(g + (size_t)r->n_gate);
    p->d_off[i + 1] = (int64_t)(d + (size_t)r->n_delta);
    p->v_off[i + 1] = p->v_off[i] + (int64_t)((size_t)r->n_delta * width);
}

int edit_records_write(const char *dir, const h5out_provenance *prov, int rank, size_t seq, const edit_record *r,
                       size_t n, size_t n_langs, size_t D, lafn_err *err) {
    size_t ng = 0, nd = 0, nv = 0;
    for (size_t i = 0; i < n; i++) {
        size_t width = r[i].kind == ENGINE_EDIT_VALUE_VECTOR ? D : 1;
        ng += (size_t)r[i].n_gate;
        nd += (size_t)r[i].n_delta;
        nv += (size_t)r[i].n_delta * width;
    }
    packed p = {0};
    if (packed_alloc(&p, n, n_langs, ng, nd, nv)) {
        packed_free(&p);
        return lafn_err_set(err, "edit: out of memory packing %zu facts for shard %zu", n, seq);
    }
    p.g_off[0] = p.d_off[0] = p.v_off[0] = 0;
    for (size_t i = 0; i < n; i++) pack_one(&p, i, &r[i], n_langs, r[i].kind == ENGINE_EDIT_VALUE_VECTOR ? D : 1);
    h5out_dataset ds[DS_COUNT];
    edit_schema(ds, n_langs);
    const void *vals[DS_COUNT] = {p.status, p.param, p.group, p.order, p.steps, p.early, p.nll_b, p.nll_a, p.loss,
                                  p.wall, p.mem, p.ginfo, p.g_layer, p.g_neuron, p.g_sign, p.g_thr, p.d_layer, p.d_neuron, p.d_val};
    const int64_t *offs[DS_COUNT] = {[DS_G_LAYER] = p.g_off, [DS_G_NEURON] = p.g_off, [DS_G_SIGN] = p.g_off,
                                     [DS_G_THR] = p.g_off,
                                     [DS_D_LAYER] = p.d_off, [DS_D_NEURON] = p.d_off, [DS_D_VAL] = p.v_off};
    for (size_t i = 0; i < DS_COUNT; i++) {
        ds[i].values = vals[i];
        ds[i].offsets = offs[i];
    }
    int rc = h5out_shard_write(dir, prov, rank, seq, p.facts, n, ds, DS_COUNT, err);
    packed_free(&p);
    return rc;
}

void edit_store_free(edit_store *s) {
    void *all[] = {s->facts, s->group, s->order, s->status, s->gate_off, s->gate_layer, s->gate_neuron,
                   s->gate_sign, s->gate_threshold, s->delta_off, s->delta_layer, s->delta_neuron, s->delta, s->entries};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    memset(s, 0, sizeof *s);
}

/* Reads rows dataset i of the schema (n rows). */
static int read_rows(hid_t file, const char *path, const h5out_dataset *ds, size_t n, void **out, lafn_err *err) {
    int64_t *off = NULL;
    int rc = h5out_read_dataset(file, path, ds, n, out, &off, err);
    free(off);
    return rc;
}

/* Checks the stored kinds agree and builds the entries. */
static int store_finish(edit_store *s, const int32_t *param, const char *path, int D, lafn_err *err) {
    for (size_t i = 0; i < s->n_facts; i++)
        if (param[i] != param[0] || (param[i] != 0 && param[i] != 1))
            return lafn_err_set(err, "%s: row %zu has param %d, row 0 has %d (expected one kind, 0 or 1)", path, i,
                                (int)param[i], (int)param[0]);
    s->kind = s->n_facts && param[0] == 1 ? ENGINE_EDIT_ACTIVATION_OFFSET : ENGINE_EDIT_VALUE_VECTOR;
    s->width = s->kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)D : 1;
    if ((size_t)s->delta_off[s->n_facts] * s->width != s->n_delta_values)
        return lafn_err_set(err, "%s: delta/values holds %zu floats, expected %lld entries x %zu", path,
                            s->n_delta_values, (long long)s->delta_off[s->n_facts], s->width);
    if (!(s->entries = calloc(s->n_facts + 1, sizeof *s->entries)))
        return lafn_err_set(err, "%s: out of memory for %zu cache entries", path, s->n_facts);
    for (size_t i = 0; i < s->n_facts; i++) {
        int64_t g = s->gate_off[i], d = s->delta_off[i];
        s->entries[i] = (edit_cache_entry){
            .group = s->group[i], .n_gate = (int)(s->gate_off[i + 1] - g), .gate_layer = s->gate_layer + g,
            .gate_neuron = s->gate_neuron + g,
            .gate_sign = s->gate_sign + g, .gate_threshold = s->gate_threshold + g,
            .n = (int)(s->delta_off[i + 1] - d), .layer = s->delta_layer + d, .neuron = s->delta_neuron + d,
            .delta = s->delta + (size_t)d * s->width};
    }
    return 0;
}

int edit_store_read_file(hid_t file, const char *path, int D, edit_store *s, lafn_err *err) {
    h5out_dataset ds[EDIT_SCHEMA_MAX];
    int64_t *o[7] = {0};
    int32_t *param = NULL;
    void *vals = NULL;
    memset(s, 0, sizeof *s);
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&s->facts, &s->n_facts, err)) goto fail;
    edit_schema(ds, 1);
    size_t n = s->n_facts;
    if (read_rows(file, path, &ds[DS_STATUS], n, (void **)&s->status, err) ||
        read_rows(file, path, &ds[DS_PARAM], n, (void **)&param, err) ||
        read_rows(file, path, &ds[DS_GROUP], n, (void **)&s->group, err) ||
        read_rows(file, path, &ds[DS_ORDER], n, (void **)&s->order, err))
        goto fail;
    if (h5out_read_dataset(file, path, &ds[DS_G_LAYER], n, (void **)&s->gate_layer, &s->gate_off, err) ||
        h5out_read_dataset(file, path, &ds[DS_G_NEURON], n, (void **)&s->gate_neuron, &o[0], err) ||
        h5out_read_dataset(file, path, &ds[DS_G_SIGN], n, (void **)&s->gate_sign, &o[4], err) ||
        h5out_read_dataset(file, path, &ds[DS_G_THR], n, (void **)&s->gate_threshold, &o[1], err) ||
        h5out_read_dataset(file, path, &ds[DS_D_LAYER], n, (void **)&s->delta_layer, &s->delta_off, err) ||
        h5out_read_dataset(file, path, &ds[DS_D_NEURON], n, (void **)&s->delta_neuron, &o[2], err) ||
        h5out_read_dataset(file, path, &ds[DS_D_VAL], n, &vals, &o[3], err))
        goto fail;
    s->delta = vals;
    vals = NULL;
    s->n_delta_values = (size_t)o[3][n];
    size_t sz = (n + 1) * sizeof(int64_t);
    if (memcmp(s->gate_off, o[0], sz) || memcmp(s->gate_off, o[1], sz) || memcmp(s->gate_off, o[4], sz) || memcmp(s->delta_off, o[2], sz)) {
        lafn_err_set(err, "%s: gate/* or delta/layer and delta/neuron have different offsets", path);
        goto fail;
    }
    if (store_finish(s, param, path, D, err)) goto fail;
    for (int i = 0; i < 7; i++) free(o[i]);
    free(param);
    return 0;
fail:
    for (int i = 0; i < 7; i++) free(o[i]);
    free(param);
    free(vals);
    edit_store_free(s);
    return -1;
}

int edit_store_read(const char *path, const char *run_id, int D, MPI_Comm comm, edit_store *out, lafn_err *err) {
    hid_t file = H5I_INVALID_HID;
    memset(out, 0, sizeof *out);
    if (h5out_open(path, "edit", run_id, comm, &file, err)) return -1;
    int rc = edit_store_read_file(file, path, D, out, err);
    H5Fclose(file);
    return rc;
}

edit_cache edit_store_cache(const edit_store *s, float gate) {
    return (edit_cache){.kind = s->kind, .gate = gate, .n_entries = s->n_facts,
                        .entries = s->entries};
}
