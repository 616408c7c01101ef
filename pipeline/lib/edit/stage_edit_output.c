/* stage_edit_output: edit.h5 — per-fact records, their shards and schema, and the reader of stored edits. */
#include "edit/stage_edit_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/mpi_status.h"

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
    free(r->keys);
    free(r->key_center);
    free(r->curve_nll);
    free(r->curve_loss);
    memset(r, 0, sizeof *r);
}

/* The datasets of edit.h5. The table and the packed values are both indexed
 * by this enum (designated initializers), so their order cannot drift apart. */
enum { DS_STATUS, DS_PARAM, DS_GROUP, DS_ORDER, DS_STEPS, DS_EARLY, DS_NLL_B, DS_NLL_A, DS_LOSS, DS_WALL, DS_MEM,
       DS_G_INFO, DS_G_LAYER, DS_G_NEURON, DS_G_SIGN, DS_G_THR, DS_D_LAYER, DS_D_NEURON, DS_D_VAL, DS_K_INFO,
       DS_K_THR, DS_K_CENTER, DS_K_VAL, DS_RANK, DS_C_NLL, DS_C_LOSS, DS_COUNT };
_Static_assert(DS_COUNT == EDIT_SCHEMA_MAX, "EDIT_SCHEMA_MAX must count edit.h5's datasets");
_Static_assert(DS_COUNT - DS_RANK == EDIT_SCHEMA_ADDED, "the datasets added later must come last");

size_t edit_schema(h5out_dataset *ds, size_t n_langs, size_t n_evals) {
    /* len 0: one value per language for rows, free length for CSR */
    static const struct { const char *name; h5out_layout layout; h5out_dtype dtype; size_t len; } t[DS_COUNT] = {
        [DS_STATUS] = {"status", H5OUT_ROWS, H5OUT_I32, 1},
        [DS_PARAM] = {"param", H5OUT_ROWS, H5OUT_I32, 1},
        [DS_GROUP] = {"group", H5OUT_ROWS, H5OUT_I64, 1},
        [DS_ORDER] = {"order", H5OUT_ROWS, H5OUT_I64, 1},
        [DS_STEPS] = {"steps", H5OUT_ROWS, H5OUT_I32, 1},
        [DS_EARLY] = {"early_stopped", H5OUT_ROWS, H5OUT_I32, 1},
        [DS_NLL_B] = {"nll_before", H5OUT_ROWS, H5OUT_F64, 0},
        [DS_NLL_A] = {"nll_after", H5OUT_ROWS, H5OUT_F64, 0},
        [DS_LOSS] = {"loss", H5OUT_ROWS, H5OUT_F64, 4},
        [DS_WALL] = {"wall_seconds", H5OUT_ROWS, H5OUT_F64, 1},
        [DS_MEM] = {"memory_kb", H5OUT_ROWS, H5OUT_I64, 2},
        [DS_G_INFO] = {"gate_info", H5OUT_ROWS, H5OUT_I32, 3},
        [DS_G_LAYER] = {"gate/layer", H5OUT_CSR, H5OUT_I32, 0},
        [DS_G_NEURON] = {"gate/neuron", H5OUT_CSR, H5OUT_I32, 0},
        [DS_G_SIGN] = {"gate/sign", H5OUT_CSR, H5OUT_F32, 0},
        [DS_G_THR] = {"gate/threshold", H5OUT_CSR, H5OUT_F32, 0},
        [DS_D_LAYER] = {"delta/layer", H5OUT_CSR, H5OUT_I32, 0},
        [DS_D_NEURON] = {"delta/neuron", H5OUT_CSR, H5OUT_I32, 0},
        [DS_D_VAL] = {"delta/values", H5OUT_CSR, H5OUT_F32, 0},
        [DS_K_INFO] = {"key_info", H5OUT_ROWS, H5OUT_I32, 2},
        [DS_K_THR] = {"key_threshold", H5OUT_ROWS, H5OUT_F32, 1},
        [DS_K_CENTER] = {"key/center", H5OUT_CSR, H5OUT_F32, 0},
        [DS_K_VAL] = {"key/values", H5OUT_CSR, H5OUT_F32, 0},
        [DS_RANK] = {"rank", H5OUT_ROWS, H5OUT_I32, 2},
        [DS_C_NLL] = {"curve/nll", H5OUT_ROWS, H5OUT_F64, 0},  /* row length set below */
        [DS_C_LOSS] = {"curve/loss", H5OUT_ROWS, H5OUT_F64, 0},
    };
    for (size_t i = 0; i < DS_COUNT; i++)
        ds[i] = (h5out_dataset){.name = t[i].name, .layout = t[i].layout, .dtype = t[i].dtype,
                                .row_len = t[i].len ? t[i].len : (t[i].layout == H5OUT_ROWS ? n_langs : 0)};
    ds[DS_C_NLL].row_len = n_evals * n_langs;
    ds[DS_C_LOSS].row_len = n_evals;
    return DS_COUNT;
}

int edit_schema_for_shards(const char *dir, MPI_Comm comm, size_t *n_schema, lafn_err *err) {
    int rank, rc = 0;
    long long n = DS_COUNT;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        h5out_shard *sh = NULL;
        size_t n_sh = 0;
        rc = h5out_shard_list(dir, "edit", &sh, &n_sh, err);
        for (size_t i = 0; rc == 0 && i < n_sh && n == DS_COUNT; i++) {
            hid_t f = H5I_INVALID_HID;
            f = h5out_fopen(sh[i].path, H5F_ACC_RDONLY, H5P_DEFAULT, err);
            htri_t has = f >= 0 ? H5Lexists(f, "curve", H5P_DEFAULT) : -1;
            if (f >= 0) H5Fclose(f);
            if (has < 0) rc = f < 0 ? lafn_err_wrap(err, "a committed shard")
                                    : lafn_err_set(err, "%s: cannot read the committed shard", sh[i].path);
            else if (has == 0) n = DS_RANK;
        }
        h5out_shards_free(sh, n_sh);
    }
    if (mpi_status_agree(comm, rc, err)) return -1;
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, comm);
    *n_schema = (size_t)n;
    return 0;
}

/* Packed arrays of a batch of records, pointed to by the datasets. */
typedef struct {
    int64_t *facts, *group, *order, *mem, *g_off, *d_off, *v_off, *kc_off, *kv_off;
    int32_t *status, *param, *ginfo, *steps, *early, *g_layer, *g_neuron, *d_layer, *d_neuron, *kinfo, *rank;
    double *nll_b, *nll_a, *loss, *wall, *c_nll, *c_loss;
    float *g_sign, *g_thr, *d_val, *k_thr, *k_center, *k_val;
} packed;

static void packed_free(packed *p) {
    void *all[] = {p->ginfo, p->facts, p->group, p->order, p->mem, p->g_off, p->d_off, p->v_off, p->kc_off,
                   p->kv_off, p->status, p->param, p->steps, p->early, p->g_layer, p->g_neuron, p->d_layer,
                   p->d_neuron, p->kinfo, p->nll_b, p->nll_a, p->loss, p->wall, p->g_sign, p->g_thr, p->d_val,
                   p->k_thr, p->k_center, p->k_val, p->rank, p->c_nll, p->c_loss};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* Element counts of a batch: n records, L languages, E loss evaluations per curve, ng gate neurons, nd delta
 * entries, nv delta floats, nkc key centre floats, nkv key floats. */
typedef struct {
    size_t n, L, E, ng, nd, nv, nkc, nkv;
} packed_sizes;

/* malloc of n elements of size es, at least one byte. */
static void *alloc_n(size_t n, size_t es) { return malloc(n ? n * es : 1); }

static int packed_alloc(packed *p, const packed_sizes *z) {
    size_t n = z->n;
    p->facts = alloc_n(n, sizeof *p->facts); p->group = alloc_n(n, sizeof *p->group);
    p->order = alloc_n(n, sizeof *p->order); p->mem = alloc_n(2 * n, sizeof *p->mem);
    p->g_off = alloc_n(n + 1, sizeof *p->g_off); p->d_off = alloc_n(n + 1, sizeof *p->d_off);
    p->v_off = alloc_n(n + 1, sizeof *p->v_off); p->kc_off = alloc_n(n + 1, sizeof *p->kc_off);
    p->kv_off = alloc_n(n + 1, sizeof *p->kv_off);
    p->status = alloc_n(n, sizeof *p->status); p->ginfo = alloc_n(3 * n, sizeof *p->ginfo);
    p->param = alloc_n(n, sizeof *p->param); p->steps = alloc_n(n, sizeof *p->steps);
    p->early = alloc_n(n, sizeof *p->early); p->kinfo = alloc_n(2 * n, sizeof *p->kinfo);
    p->g_layer = alloc_n(z->ng, sizeof *p->g_layer); p->g_neuron = alloc_n(z->ng, sizeof *p->g_neuron);
    p->g_thr = alloc_n(z->ng, sizeof *p->g_thr); p->g_sign = alloc_n(z->ng, sizeof *p->g_sign);
    p->d_layer = alloc_n(z->nd, sizeof *p->d_layer); p->d_neuron = alloc_n(z->nd, sizeof *p->d_neuron);
    p->d_val = alloc_n(z->nv, sizeof *p->d_val);
    p->k_thr = alloc_n(n, sizeof *p->k_thr); p->k_center = alloc_n(z->nkc, sizeof *p->k_center);
    p->k_val = alloc_n(z->nkv, sizeof *p->k_val);
    p->nll_b = alloc_n(n * z->L, sizeof *p->nll_b); p->nll_a = alloc_n(n * z->L, sizeof *p->nll_a);
    p->loss = alloc_n(4 * n, sizeof *p->loss); p->wall = alloc_n(n, sizeof *p->wall);
    p->rank = alloc_n(2 * n, sizeof *p->rank); p->c_nll = alloc_n(n * z->E * z->L, sizeof *p->c_nll);
    p->c_loss = alloc_n(n * z->E, sizeof *p->c_loss);
    return p->rank && p->c_nll && p->c_loss && p->ginfo && p->facts && p->group && p->order && p->mem && p->g_off && p->d_off && p->v_off && p->kc_off &&
           p->kv_off && p->status && p->param && p->steps && p->early && p->kinfo && p->g_layer && p->g_neuron &&
           p->g_sign && p->g_thr && p->d_layer && p->d_neuron && p->d_val && p->k_thr && p->k_center && p->k_val &&
           p->nll_b && p->nll_a && p->loss && p->wall ? 0 : -1;
}

/* Appends r's trigger keys (the centre and the keys; nothing for a neuron trigger) at record i. */
static void pack_keys(packed *p, size_t i, const edit_record *r, size_t D) {
    size_t nc = r->n_keys > 0 ? D : 0, nk = (size_t)r->n_keys * D;
    p->kinfo[2 * i] = r->n_keys;
    p->kinfo[2 * i + 1] = r->key_layer;
    p->k_thr[i] = r->key_threshold;
    if (nc) memcpy(p->k_center + (size_t)p->kc_off[i], r->key_center, nc * sizeof *p->k_center);
    if (nk) memcpy(p->k_val + (size_t)p->kv_off[i], r->keys, nk * sizeof *p->k_val);
    p->kc_off[i + 1] = p->kc_off[i] + (int64_t)nc;
    p->kv_off[i + 1] = p->kv_off[i] + (int64_t)nk;
}

/* Packs record r as row i; L languages, E loss evaluations per curve, width floats per delta entry, D model width. */
static void pack_one(packed *p, size_t i, const edit_record *r, size_t L, size_t E, size_t width, size_t D) {
    p->facts[i] = r->fact; p->group[i] = r->group; p->order[i] = r->order;
    p->mem[2 * i] = r->peak_rss_kb; p->mem[2 * i + 1] = r->pss_kb;
    p->status[i] = r->status; p->param[i] = r->kind == ENGINE_EDIT_VALUE_VECTOR ? 0 : 1;
    p->ginfo[3 * i] = r->gate_candidates;
    p->ginfo[3 * i + 1] = r->n_gate;
    p->ginfo[3 * i + 2] = r->gate_specific;
    p->steps[i] = r->steps; p->early[i] = r->early_stopped; p->wall[i] = r->wall_seconds;
    memcpy(p->nll_b + i * L, r->nll_before, L * sizeof *p->nll_b);
    memcpy(p->nll_a + i * L, r->nll_after, L * sizeof *p->nll_a);
    memcpy(p->loss + 4 * i, r->loss, sizeof r->loss);
    p->rank[2 * i] = r->rank; p->rank[2 * i + 1] = r->unit_ranks;
    memcpy(p->c_nll + i * E * L, r->curve_nll, E * L * sizeof *p->c_nll);
    memcpy(p->c_loss + i * E, r->curve_loss, E * sizeof *p->c_loss);
    size_t g = (size_t)p->g_off[i], d = (size_t)p->d_off[i], ng = (size_t)r->n_gate, nd = (size_t)r->n_delta;
    memcpy(p->g_layer + g, r->gate_layer, ng * sizeof *p->g_layer);
    memcpy(p->g_neuron + g, r->gate_neuron, ng * sizeof *p->g_neuron);
    memcpy(p->g_sign + g, r->gate_sign, ng * sizeof *p->g_sign);
    memcpy(p->g_thr + g, r->gate_threshold, ng * sizeof *p->g_thr);
    memcpy(p->d_layer + d, r->delta_layer, nd * sizeof *p->d_layer);
    memcpy(p->d_neuron + d, r->delta_neuron, nd * sizeof *p->d_neuron);
    memcpy(p->d_val + (size_t)p->v_off[i], r->delta, nd * width * sizeof *p->d_val);
    p->g_off[i + 1] = (int64_t)(g + ng);
    p->d_off[i + 1] = (int64_t)(d + nd);
    p->v_off[i + 1] = p->v_off[i] + (int64_t)(nd * width);
    pack_keys(p, i, r, D);
}

int edit_records_write(const char *dir, const h5out_provenance *prov, int rank, size_t seq, const edit_record *r,
                       size_t n, size_t n_langs, size_t D, lafn_err *err) {
    packed_sizes z = {.n = n, .L = n_langs, .E = n ? (size_t)r[0].n_evals : 1};
    for (size_t i = 0; i < n; i++) {
        if ((size_t)r[i].n_evals != z.E || !r[i].curve_nll || !r[i].curve_loss)
            return lafn_err_set(err, "edit: record of fact %lld has %d loss evaluations, the first of shard %zu %zu",
                                (long long)r[i].fact, r[i].n_evals, seq, z.E);
        size_t width = r[i].kind == ENGINE_EDIT_VALUE_VECTOR ? D : 1;
        z.ng += (size_t)r[i].n_gate;
        z.nd += (size_t)r[i].n_delta;
        z.nv += (size_t)r[i].n_delta * width;
        z.nkc += r[i].n_keys > 0 ? D : 0;
        z.nkv += (size_t)r[i].n_keys * D;
    }
    packed p = {0};
    if (packed_alloc(&p, &z)) {
        packed_free(&p);
        return lafn_err_set(err, "edit: out of memory packing %zu facts for shard %zu", n, seq);
    }
    p.g_off[0] = p.d_off[0] = p.v_off[0] = p.kc_off[0] = p.kv_off[0] = 0;
    for (size_t i = 0; i < n; i++)
        pack_one(&p, i, &r[i], n_langs, z.E, r[i].kind == ENGINE_EDIT_VALUE_VECTOR ? D : 1, D);
    h5out_dataset ds[DS_COUNT];
    edit_schema(ds, n_langs, z.E);
    /* each dataset's values with the dtype of their C type, checked against the table */
#define VALUES(i, ptr) [i] = {ptr, H5OUT_DTYPE_OF(ptr)}
    const struct { const void *v; h5out_dtype t; } vals[DS_COUNT] = {
        VALUES(DS_STATUS, p.status), VALUES(DS_PARAM, p.param), VALUES(DS_GROUP, p.group),
        VALUES(DS_ORDER, p.order), VALUES(DS_STEPS, p.steps), VALUES(DS_EARLY, p.early),
        VALUES(DS_NLL_B, p.nll_b), VALUES(DS_NLL_A, p.nll_a), VALUES(DS_LOSS, p.loss), VALUES(DS_WALL, p.wall),
        VALUES(DS_MEM, p.mem), VALUES(DS_G_INFO, p.ginfo), VALUES(DS_G_LAYER, p.g_layer),
        VALUES(DS_G_NEURON, p.g_neuron), VALUES(DS_G_SIGN, p.g_sign), VALUES(DS_G_THR, p.g_thr),
        VALUES(DS_D_LAYER, p.d_layer), VALUES(DS_D_NEURON, p.d_neuron), VALUES(DS_D_VAL, p.d_val),
        VALUES(DS_K_INFO, p.kinfo), VALUES(DS_K_THR, p.k_thr), VALUES(DS_K_CENTER, p.k_center),
        VALUES(DS_K_VAL, p.k_val), VALUES(DS_RANK, p.rank), VALUES(DS_C_NLL, p.c_nll),
        VALUES(DS_C_LOSS, p.c_loss)};
#undef VALUES
    const int64_t *offs[DS_COUNT] = {[DS_G_LAYER] = p.g_off, [DS_G_NEURON] = p.g_off, [DS_G_SIGN] = p.g_off,
                                     [DS_G_THR] = p.g_off, [DS_D_LAYER] = p.d_off, [DS_D_NEURON] = p.d_off,
                                     [DS_D_VAL] = p.v_off, [DS_K_CENTER] = p.kc_off, [DS_K_VAL] = p.kv_off};
    for (size_t i = 0; i < DS_COUNT; i++) {
        if (vals[i].t != ds[i].dtype) {
            packed_free(&p);
            return lafn_err_set(err, "edit.h5 schema: dataset %s is declared with dtype %d but packed as %d",
                                ds[i].name, (int)ds[i].dtype, (int)vals[i].t);
        }
        ds[i].values = vals[i].v;
        ds[i].offsets = offs[i];
    }
    int rc = h5out_shard_write(dir, prov, rank, seq, p.facts, n, ds, DS_COUNT, err);
    packed_free(&p);
    return rc;
}

void edit_store_free(edit_store *s) {
    void *all[] = {s->facts, s->group, s->order, s->status, s->gate_off, s->gate_layer, s->gate_neuron,
                   s->gate_sign, s->gate_threshold, s->delta_off, s->delta_layer, s->delta_neuron, s->delta,
                   s->key_info, s->key_threshold, s->key_center_off, s->key_off, s->key_center, s->keys, s->entries};
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
    for (size_t i = 0; i < s->n_facts; i++) {
        int64_t nk = s->key_info[2 * i], nc = s->key_center_off[i + 1] - s->key_center_off[i];
        if (nk < 0 || s->key_off[i + 1] - s->key_off[i] != nk * D || nc != (nk > 0 ? D : 0))
            return lafn_err_set(err, "%s: row %zu: key_info says %lld keys, key/values holds %lld floats and key/center "
                                "%lld (expected keys x %d and %d)", path, i, (long long)nk,
                                (long long)(s->key_off[i + 1] - s->key_off[i]), (long long)nc, D, nk > 0 ? D : 0);
    }
    if (!(s->entries = calloc(s->n_facts + 1, sizeof *s->entries)))
        return lafn_err_set(err, "%s: out of memory for %zu cache entries", path, s->n_facts);
    for (size_t i = 0; i < s->n_facts; i++) {
        int64_t g = s->gate_off[i], d = s->delta_off[i];
        s->entries[i] = (edit_cache_entry){
            .group = s->group[i], .n_gate = (int)(s->gate_off[i + 1] - g), .gate_layer = s->gate_layer + g,
            .gate_neuron = s->gate_neuron + g,
            .gate_sign = s->gate_sign + g, .gate_threshold = s->gate_threshold + g,
            .n_keys = s->key_info[2 * i], .key_layer = s->key_info[2 * i + 1], .keys = s->keys ? s->keys + s->key_off[i] : NULL,
            .key_center = s->key_center ? s->key_center + s->key_center_off[i] : NULL, .key_threshold = s->key_threshold[i],
            .n = (int)(s->delta_off[i + 1] - d), .layer = s->delta_layer + d, .neuron = s->delta_neuron + d,
            .delta = s->delta + (size_t)d * s->width};
    }
    return 0;
}

int edit_store_read_file(hid_t file, const char *path, int D, edit_store *s, lafn_err *err) {
    h5out_dataset ds[EDIT_SCHEMA_MAX];
    int64_t *o[5] = {0};
    int32_t *param = NULL;
    void *vals = NULL;
    memset(s, 0, sizeof *s);
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&s->facts, &s->n_facts, err)) goto fail;
    edit_schema(ds, 1, 1);
    size_t n = s->n_facts;
    if (read_rows(file, path, &ds[DS_STATUS], n, (void **)&s->status, err) ||
        read_rows(file, path, &ds[DS_PARAM], n, (void **)&param, err) ||
        read_rows(file, path, &ds[DS_GROUP], n, (void **)&s->group, err) ||
        read_rows(file, path, &ds[DS_ORDER], n, (void **)&s->order, err) ||
        read_rows(file, path, &ds[DS_K_INFO], n, (void **)&s->key_info, err) ||
        read_rows(file, path, &ds[DS_K_THR], n, (void **)&s->key_threshold, err) ||
        h5out_read_dataset(file, path, &ds[DS_K_CENTER], n, (void **)&s->key_center, &s->key_center_off, err) ||
        h5out_read_dataset(file, path, &ds[DS_K_VAL], n, (void **)&s->keys, &s->key_off, err))
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
    for (int i = 0; i < 5; i++) free(o[i]);
    free(param);
    return 0;
fail:
    for (int i = 0; i < 5; i++) free(o[i]);
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

edit_cache edit_store_cache(const edit_store *s, const edit_trigger *t) {
    return (edit_cache){.kind = s->kind, .trigger = *t, .n_entries = s->n_facts, .n_rivals = s->n_facts, .rivals = s->entries,
                        .entries = s->entries};
}

int edit_trigger_from_config(const lafn_config *cfg, edit_trigger *t, lafn_err *err) {
    double g, floor;
    const char *kind, *method;
    if (config_get_float(cfg, "edit.gate", &g, err) || config_get_string(cfg, "edit.trigger", &kind, err) ||
        config_get_float(cfg, "edit.key_nearest_floor", &floor, err) || config_get_string(cfg, "edit.method", &method, err))
        return -1;
    if (strcmp(method, "lafn") != 0) g = 0.0; /* a baseline's edit changes the model for every input */
    *t = (edit_trigger){.gate = (float)g, .nearest_floor = (float)floor,
                        .kind = !strcmp(kind, "key")           ? EDIT_TRIGGER_KEY
                                : !strcmp(kind, "nearest_key") ? EDIT_TRIGGER_NEAREST_KEY
                                                               : EDIT_TRIGGER_NEURONS};
    return 0;
}
