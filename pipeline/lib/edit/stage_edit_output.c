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

/* Packed arrays of a batch of records: /facts, the CSR offsets and one array per dataset of edit.h5. */
typedef struct {
    int64_t *facts, *g_off, *d_off, *v_off;
    int32_t *status, *param, *steps, *early, *ginfo, *g_layer, *g_neuron, *d_layer, *d_neuron;
    int64_t *group, *order, *mem;
    double *nll_b, *nll_a, *loss, *wall;
    float *g_sign, *g_thr, *d_val;
} packed;

enum { MEM_LEN = 2, GINFO_LEN = 3 }; /* memory_kb: peak RSS, Pss; gate_info: candidates, n_gate, specific */

/* A dataset over a packed array, its dtype that of the array. */
#define ROWS(name, row_len, buf) \
    { name, H5OUT_ROWS, H5OUT_DTYPE_OF(buf), row_len, buf, NULL }
#define CSR(name, buf, offsets) \
    { name, H5OUT_CSR, H5OUT_DTYPE_OF(buf), 0, buf, offsets }

/* Fills ds with the datasets of edit.h5 over p's arrays (a zeroed p: the schema alone) for L languages. Every
 * dataset sits at its EDIT_DS_ index, next to the array that fills it, so the order cannot drift from the enum. */
static void edit_datasets(const packed *p, size_t L, h5out_dataset ds[EDIT_N_DATASETS]) {
    const h5out_dataset d[] = {
        [EDIT_DS_STATUS] = ROWS("status", 1, p->status),
        [EDIT_DS_PARAM] = ROWS("param", 1, p->param),
        [EDIT_DS_GROUP] = ROWS("group", 1, p->group),
        [EDIT_DS_ORDER] = ROWS("order", 1, p->order),
        [EDIT_DS_STEPS] = ROWS("steps", 1, p->steps),
        [EDIT_DS_EARLY] = ROWS("early_stopped", 1, p->early),
        [EDIT_DS_NLL_BEFORE] = ROWS("nll_before", L, p->nll_b),
        [EDIT_DS_NLL_AFTER] = ROWS("nll_after", L, p->nll_a),
        [EDIT_DS_LOSS] = ROWS("loss", EDIT_N_LOSS, p->loss),
        [EDIT_DS_WALL] = ROWS("wall_seconds", 1, p->wall),
        [EDIT_DS_MEMORY] = ROWS("memory_kb", MEM_LEN, p->mem),
        [EDIT_DS_GATE_INFO] = ROWS("gate_info", GINFO_LEN, p->ginfo),
        [EDIT_DS_GATE_LAYER] = CSR("gate/layer", p->g_layer, p->g_off),
        [EDIT_DS_GATE_NEURON] = CSR("gate/neuron", p->g_neuron, p->g_off),
        [EDIT_DS_GATE_SIGN] = CSR("gate/sign", p->g_sign, p->g_off),
        [EDIT_DS_GATE_THRESHOLD] = CSR("gate/threshold", p->g_thr, p->g_off),
        [EDIT_DS_DELTA_LAYER] = CSR("delta/layer", p->d_layer, p->d_off),
        [EDIT_DS_DELTA_NEURON] = CSR("delta/neuron", p->d_neuron, p->d_off),
        [EDIT_DS_DELTA_VALUES] = CSR("delta/values", p->d_val, p->v_off),
    };
    _Static_assert(sizeof d / sizeof *d == EDIT_N_DATASETS, "edit.h5: the table and the EDIT_DS_ enum differ");
    memcpy(ds, d, sizeof d);
}

void edit_schema(h5out_dataset ds[EDIT_N_DATASETS], size_t n_langs) { edit_datasets(&(packed){0}, n_langs, ds); }

static void packed_free(packed *p) {
    void *all[] = {p->facts, p->g_off,   p->d_off,    p->v_off,   p->status,   p->param, p->steps, p->early,
                   p->ginfo, p->g_layer, p->g_neuron, p->d_layer, p->d_neuron, p->group, p->order, p->mem,
                   p->nll_b, p->nll_a,   p->loss,     p->wall,    p->g_sign,   p->g_thr, p->d_val};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* ptr = malloc of count elements of its type; true unless out of memory. */
#define ALLOC(ptr, count) (((ptr) = malloc((count) * sizeof *(ptr))) != NULL)

/* Allocates p's arrays for n facts of L languages, ng gate entries, nd delta entries of nv floats in all (the CSR
 * values one element more, so none is empty). Returns 0, or -1 with what was allocated left for packed_free. */
static int packed_alloc(packed *p, size_t n, size_t L, size_t ng, size_t nd, size_t nv) {
    int ok = ALLOC(p->facts, n) && ALLOC(p->g_off, n + 1) && ALLOC(p->d_off, n + 1) && ALLOC(p->v_off, n + 1) &&
             ALLOC(p->status, n) && ALLOC(p->param, n) && ALLOC(p->steps, n) && ALLOC(p->early, n) &&
             ALLOC(p->ginfo, GINFO_LEN * n) && ALLOC(p->group, n) && ALLOC(p->order, n) && ALLOC(p->mem, MEM_LEN * n) &&
             ALLOC(p->nll_b, n * L) && ALLOC(p->nll_a, n * L) && ALLOC(p->loss, EDIT_N_LOSS * n) && ALLOC(p->wall, n) &&
             ALLOC(p->g_layer, ng + 1) && ALLOC(p->g_neuron, ng + 1) && ALLOC(p->g_sign, ng + 1) &&
             ALLOC(p->g_thr, ng + 1) && ALLOC(p->d_layer, nd + 1) && ALLOC(p->d_neuron, nd + 1) &&
             ALLOC(p->d_val, nv + 1);
    return ok ? 0 : -1;
}

static void pack_one(packed *p, size_t i, const edit_record *r, size_t L, size_t width) {
    p->facts[i] = r->fact;
    p->group[i] = r->group;
    p->order[i] = r->order;
    p->mem[MEM_LEN * i] = r->peak_rss_kb;
    p->mem[MEM_LEN * i + 1] = r->pss_kb;
    p->status[i] = r->status;
    p->param[i] = r->kind == ENGINE_EDIT_VALUE_VECTOR ? 0 : 1;
    p->ginfo[GINFO_LEN * i] = r->gate_candidates;
    p->ginfo[GINFO_LEN * i + 1] = r->n_gate;
    p->ginfo[GINFO_LEN * i + 2] = r->gate_specific;
    p->steps[i] = r->steps;
    p->early[i] = r->early_stopped;
    p->wall[i] = r->wall_seconds;
    memcpy(p->nll_b + i * L, r->nll_before, L * sizeof *r->nll_before);
    memcpy(p->nll_a + i * L, r->nll_after, L * sizeof *r->nll_after);
    memcpy(p->loss + EDIT_N_LOSS * i, r->loss, sizeof r->loss);
    size_t g = (size_t)p->g_off[i], d = (size_t)p->d_off[i], ng = (size_t)r->n_gate, nd = (size_t)r->n_delta;
    memcpy(p->g_layer + g, r->gate_layer, ng * sizeof *r->gate_layer);
    memcpy(p->g_neuron + g, r->gate_neuron, ng * sizeof *r->gate_neuron);
    memcpy(p->g_sign + g, r->gate_sign, ng * sizeof *r->gate_sign);
    memcpy(p->g_thr + g, r->gate_threshold, ng * sizeof *r->gate_threshold);
    memcpy(p->d_layer + d, r->delta_layer, nd * sizeof *r->delta_layer);
    memcpy(p->d_neuron + d, r->delta_neuron, nd * sizeof *r->delta_neuron);
    memcpy(p->d_val + (size_t)p->v_off[i], r->delta, nd * width * sizeof *r->delta);
    p->g_off[i + 1] = (int64_t)(g + ng);
    p->d_off[i + 1] = (int64_t)(d + nd);
    p->v_off[i + 1] = p->v_off[i] + (int64_t)(nd * width);
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
    h5out_dataset ds[EDIT_N_DATASETS];
    edit_datasets(&p, n_langs, ds);
    int rc = h5out_shard_write(dir, prov, rank, seq, p.facts, n, ds, EDIT_N_DATASETS, err);
    packed_free(&p);
    return rc;
}

void edit_store_free(edit_store *s) {
    void *all[] = {s->facts,       s->group,        s->order,     s->status,         s->gate_off,
                   s->gate_layer,  s->gate_neuron,  s->gate_sign, s->gate_threshold, s->delta_off,
                   s->delta_layer, s->delta_neuron, s->delta,     s->entries};
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
        s->entries[i] = (edit_cache_entry){.group = s->group[i],
                                           .n_gate = (int)(s->gate_off[i + 1] - g),
                                           .gate_layer = s->gate_layer + g,
                                           .gate_neuron = s->gate_neuron + g,
                                           .gate_sign = s->gate_sign + g,
                                           .gate_threshold = s->gate_threshold + g,
                                           .n = (int)(s->delta_off[i + 1] - d),
                                           .layer = s->delta_layer + d,
                                           .neuron = s->delta_neuron + d,
                                           .delta = s->delta + (size_t)d * s->width};
    }
    return 0;
}

int edit_store_read_file(hid_t file, const char *path, int D, edit_store *s, lafn_err *err) {
    h5out_dataset ds[EDIT_N_DATASETS];
    int64_t *o[7] = {0};
    int32_t *param = NULL;
    void *vals = NULL;
    memset(s, 0, sizeof *s);
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&s->facts, &s->n_facts, err)) goto fail;
    edit_schema(ds, 1);
    size_t n = s->n_facts;
    if (read_rows(file, path, &ds[EDIT_DS_STATUS], n, (void **)&s->status, err) ||
        read_rows(file, path, &ds[EDIT_DS_PARAM], n, (void **)&param, err) ||
        read_rows(file, path, &ds[EDIT_DS_GROUP], n, (void **)&s->group, err) ||
        read_rows(file, path, &ds[EDIT_DS_ORDER], n, (void **)&s->order, err))
        goto fail;
    if (h5out_read_dataset(file, path, &ds[EDIT_DS_GATE_LAYER], n, (void **)&s->gate_layer, &s->gate_off, err) ||
        h5out_read_dataset(file, path, &ds[EDIT_DS_GATE_NEURON], n, (void **)&s->gate_neuron, &o[0], err) ||
        h5out_read_dataset(file, path, &ds[EDIT_DS_GATE_SIGN], n, (void **)&s->gate_sign, &o[4], err) ||
        h5out_read_dataset(file, path, &ds[EDIT_DS_GATE_THRESHOLD], n, (void **)&s->gate_threshold, &o[1], err) ||
        h5out_read_dataset(file, path, &ds[EDIT_DS_DELTA_LAYER], n, (void **)&s->delta_layer, &s->delta_off, err) ||
        h5out_read_dataset(file, path, &ds[EDIT_DS_DELTA_NEURON], n, (void **)&s->delta_neuron, &o[2], err) ||
        h5out_read_dataset(file, path, &ds[EDIT_DS_DELTA_VALUES], n, &vals, &o[3], err))
        goto fail;
    s->delta = vals;
    vals = NULL;
    s->n_delta_values = (size_t)o[3][n];
    size_t sz = (n + 1) * sizeof(int64_t);
    if (memcmp(s->gate_off, o[0], sz) || memcmp(s->gate_off, o[1], sz) || memcmp(s->gate_off, o[4], sz) ||
        memcmp(s->delta_off, o[2], sz)) {
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
    return (edit_cache){.kind = s->kind, .gate = gate, .n_entries = s->n_facts, .entries = s->entries};
}
