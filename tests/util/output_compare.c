/* output_compare: a resumed run's outputs against an uninterrupted run's — stage files fact by fact, summaries. */
#include "output_compare.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Two open stage files and the row of b that holds each row's fact of a. */
typedef struct {
    hid_t a, b;
    const char *a_path, *b_path;
    const char *const *skip_ds;
    const char *const *skip_attrs;
    int64_t *facts;   /* (n) facts of a, by row */
    size_t *perm;     /* (n) row of b holding facts[i] */
    size_t n;
    size_t n_objects; /* objects visited in a */
    int diffs;
} cmp;

static int listed(const char *const *list, const char *name) {
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

/* Counts a difference as a failed check naming the object. */
static void differ(cmp *c, const char *obj, const char *what) {
    c->diffs++;
    CHECK(0, "%s vs %s: '%s': %s", c->b_path, c->a_path, obj, what);
}

/* The whole dataset `name` of file f read in its own file type: bytes in *buf, dims[0] rows (1 for a scalar). */
static int read_raw(hid_t f, const char *name, hid_t *type, char **buf, size_t *bytes, size_t *rows) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), s = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hsize_t dims[8] = {1};
    int nd = s >= 0 ? H5Sget_simple_extent_dims(s, dims, NULL) : -1;
    *type = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    *buf = NULL;
    int ok = nd >= 0 && *type >= 0;
    if (ok) {
        *bytes = H5Tget_size(*type) * (size_t)H5Sget_simple_extent_npoints(s);
        *rows = nd ? (size_t)dims[0] : 1;
        ok = (*buf = malloc(*bytes + 1)) && (*bytes == 0 || H5Dread(d, *type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) >= 0);
    }
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return ok ? 0 : -1;
}

/* Every attribute of object `name` in a is in b with the same type and bytes (root: skip_attrs left out). */
static void compare_attrs(cmp *c, const char *name) {
    hid_t oa = H5Oopen(c->a, name, H5P_DEFAULT), ob = H5Oopen(c->b, name, H5P_DEFAULT);
    int root = strcmp(name, ".") == 0;
    H5O_info_t ia, ib;
    if (oa < 0 || ob < 0 || H5Oget_info2(oa, &ia, H5O_INFO_NUM_ATTRS) < 0 || H5Oget_info2(ob, &ib, H5O_INFO_NUM_ATTRS) < 0) {
        differ(c, name, "missing in one file");
    } else {
        if (ia.num_attrs != ib.num_attrs) differ(c, name, "a different number of attributes");
        for (hsize_t k = 0; k < ia.num_attrs; k++) {
            char an[256];
            hid_t aa = H5Aopen_by_idx(oa, ".", H5_INDEX_NAME, H5_ITER_INC, k, H5P_DEFAULT, H5P_DEFAULT), ab = -1;
            if (aa < 0 || H5Aget_name(aa, sizeof an, an) < 0) { differ(c, name, "unreadable attribute"); goto next; }
            if (root && listed(c->skip_attrs, an)) goto next;
            if (H5Aexists(ob, an) <= 0 || (ab = H5Aopen(ob, an, H5P_DEFAULT)) < 0) { differ(c, an, "attribute missing"); goto next; }
            hid_t ta = H5Aget_type(aa), tb = H5Aget_type(ab);
            size_t na = (size_t)H5Aget_storage_size(aa), nb = (size_t)H5Aget_storage_size(ab);
            char *ba = calloc(na + 1, 1), *bb = calloc(nb + 1, 1);
            int same = H5Tequal(ta, tb) > 0 && na == nb && ba && bb && H5Aread(aa, ta, ba) >= 0 && H5Aread(ab, tb, bb) >= 0 &&
                       memcmp(ba, bb, na) == 0;
            if (!same) differ(c, an, root ? "root attribute differs" : "attribute differs");
            free(ba);
            free(bb);
            H5Tclose(ta);
            H5Tclose(tb);
        next:
            if (ab >= 0) H5Aclose(ab);
            if (aa >= 0) H5Aclose(aa);
        }
    }
    if (oa >= 0) H5Oclose(oa);
    if (ob >= 0) H5Oclose(ob);
}

/* The lafn_layout attribute of object `name` of f ("rows", "csr" or "" when absent). */
static void layout_of(hid_t f, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    if (H5Aexists_by_name(f, name, "lafn_layout", H5P_DEFAULT) <= 0) return;
    hid_t a = H5Aopen_by_name(f, name, "lafn_layout", H5P_DEFAULT, H5P_DEFAULT), t = H5Aget_type(a);
    size_t n = H5Tget_size(t);
    if (n < cap && H5Aread(a, t, out) >= 0) out[n] = '\0';
    H5Tclose(t);
    H5Aclose(a);
}

/* A per-fact rows dataset (rows == facts) compared fact by fact, or any other dataset as a whole. */
static void compare_dataset(cmp *c, const char *name, int per_fact) {
    hid_t ta = H5I_INVALID_HID, tb = H5I_INVALID_HID;
    char *ba = NULL, *bb = NULL, msg[160];
    size_t na = 0, nb = 0, ra = 0, rb = 0;
    if (read_raw(c->a, name, &ta, &ba, &na, &ra) || read_raw(c->b, name, &tb, &bb, &nb, &rb)) differ(c, name, "unreadable or missing");
    else if (H5Tequal(ta, tb) <= 0 || na != nb || ra != rb) differ(c, name, "type or shape differs");
    else if (!per_fact || ra != c->n) {
        if (memcmp(ba, bb, na) != 0) differ(c, name, "values differ");
    } else {
        size_t w = ra ? na / ra : 0;
        for (size_t i = 0; i < c->n; i++)
            if (memcmp(ba + i * w, bb + c->perm[i] * w, w) != 0) {
                snprintf(msg, sizeof msg, "the row of fact %lld differs", (long long)c->facts[i]);
                differ(c, name, msg);
                break;
            }
    }
    if (ta >= 0) H5Tclose(ta);
    if (tb >= 0) H5Tclose(tb);
    free(ba);
    free(bb);
}

/* A CSR group: each fact's list of values (and its length) the same in both files. */
static void compare_csr(cmp *c, const char *name) {
    char off_name[512], val_name[512], msg[160];
    snprintf(off_name, sizeof off_name, "%s/offsets", name);
    snprintf(val_name, sizeof val_name, "%s/values", name);
    hid_t t[4] = {-1, -1, -1, -1};
    char *oa = NULL, *ob = NULL, *va = NULL, *vb = NULL;
    size_t n[4], rows[4];
    if (read_raw(c->a, off_name, &t[0], &oa, &n[0], &rows[0]) || read_raw(c->b, off_name, &t[1], &ob, &n[1], &rows[1]) ||
        read_raw(c->a, val_name, &t[2], &va, &n[2], &rows[2]) || read_raw(c->b, val_name, &t[3], &vb, &n[3], &rows[3]) ||
        rows[0] != c->n + 1 || rows[1] != c->n + 1 || H5Tequal(t[2], t[3]) <= 0 || n[2] != n[3]) {
        differ(c, name, "CSR offsets or values unreadable, missing or of another shape or type");
    } else {
        const int64_t *a_off = (const int64_t *)oa, *b_off = (const int64_t *)ob;
        size_t es = H5Tget_size(t[2]);
        for (size_t i = 0; i < c->n; i++) {
            size_t j = c->perm[i], len = (size_t)(a_off[i + 1] - a_off[i]);
            if ((size_t)(b_off[j + 1] - b_off[j]) != len ||
                memcmp(va + (size_t)a_off[i] * es, vb + (size_t)b_off[j] * es, len * es) != 0) {
                snprintf(msg, sizeof msg, "the list of fact %lld differs", (long long)c->facts[i]);
                differ(c, name, msg);
                break;
            }
        }
    }
    for (int k = 0; k < 4; k++)
        if (t[k] >= 0) H5Tclose(t[k]);
    free(oa); free(ob); free(va); free(vb);
}

static herr_t visit(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    cmp *c = data;
    char layout[16], parent[512], parent_layout[16] = "";
    c->n_objects++;
    layout_of(c->a, name, layout, sizeof layout);
    snprintf(parent, sizeof parent, "%s", name);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = '\0';
        layout_of(c->a, parent, parent_layout, sizeof parent_layout);
    }
    if (strcmp(parent_layout, "csr") == 0) return 0; /* offsets and values: compared by their group */
    if (info->type == H5O_TYPE_DATASET && listed(c->skip_ds, name)) return 0;
    compare_attrs(c, name);
    if (info->type == H5O_TYPE_GROUP && strcmp(layout, "csr") == 0) compare_csr(c, name);
    else if (info->type == H5O_TYPE_DATASET) compare_dataset(c, name, strcmp(layout, "rows") == 0);
    return 0;
}

static herr_t count_objects(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    (*(size_t *)data)++;
    return 0;
}

/* c->facts and c->perm from both files' /facts; 0, or -1 if they do not hold the same facts once each. */
static int match_facts(cmp *c) {
    hid_t ta = H5I_INVALID_HID, tb = H5I_INVALID_HID;
    char *fa = NULL, *fb = NULL;
    size_t na, nb, ra = 0, rb = 0;
    int rc = read_raw(c->a, "facts", &ta, &fa, &na, &ra) || read_raw(c->b, "facts", &tb, &fb, &nb, &rb) || ra != rb ||
             !(c->perm = calloc(ra + 1, sizeof *c->perm)) ? -1 : 0;
    const int64_t *a = (const int64_t *)fa, *b = (const int64_t *)fb;
    c->n = ra;
    for (size_t i = 0; rc == 0 && i < ra; i++) {
        size_t found = 0;
        for (size_t j = 0; j < rb; j++)
            if (b[j] == a[i]) c->perm[i] = j, found++;
        if (found != 1) rc = -1;
    }
    if (ta >= 0) H5Tclose(ta);
    if (tb >= 0) H5Tclose(tb);
    c->facts = (int64_t *)fa;
    free(fb);
    return rc;
}

int output_compare_stage(const char *a_path, const char *b_path, const char *const *skip_ds,
                         const char *const *skip_attrs) {
    cmp c = {.a_path = a_path, .b_path = b_path, .skip_ds = skip_ds, .skip_attrs = skip_attrs};
    c.a = H5Fopen(a_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    c.b = H5Fopen(b_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t n_b = 0;
    if (c.a < 0 || c.b < 0) differ(&c, "/", "a file does not open");
    else if (match_facts(&c) != 0) differ(&c, "facts", "the files do not hold the same facts once each");
    else {
        H5Ovisit2(c.a, H5_INDEX_NAME, H5_ITER_INC, visit, &c, H5O_INFO_BASIC);
        H5Ovisit2(c.b, H5_INDEX_NAME, H5_ITER_INC, count_objects, &n_b, H5O_INFO_BASIC);
        if (n_b != c.n_objects) differ(&c, "/", "the files hold different numbers of objects");
    }
    if (c.a >= 0) H5Fclose(c.a);
    if (c.b >= 0) H5Fclose(c.b);
    free(c.facts);
    free(c.perm);
    return c.diffs;
}

/* Drops the timing and memory keys from every object of j, recursively. */
static void drop_timing(cJSON *j) {
    static const char *const keys[] = {"wall_seconds", "peak_rss_kb", "pss_kb"};
    for (size_t k = 0; cJSON_IsObject(j) && k < 3; k++) cJSON_DeleteItemFromObjectCaseSensitive(j, keys[k]);
    for (cJSON *e = j ? j->child : NULL; e; e = e->next) drop_timing(e);
}

static int compare_json(const char *a_path, const char *b_path, const char *ta, const char *tb) {
    cJSON *a = cJSON_Parse(ta), *b = cJSON_Parse(tb);
    drop_timing(a);
    drop_timing(b);
    int same = a && b && cJSON_Compare(a, b, 1);
    CHECK(same, "%s differs from %s beyond timing and memory (or does not parse)", b_path, a_path);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return !same;
}

/* A copy of CSV text without the contents of the timing and memory columns (found in the header line). */
static char *strip_timing_columns(const char *text) {
    static const char *const cols[] = {"edit_wall_seconds", "edit_peak_rss_kb", "edit_pss_kb"};
    int skip[256] = {0}, col = 0, quoted = 0;
    const char *p = text, *start = text;
    for (;; p++) { /* the header: mark the columns */
        if (*p != ',' && *p != '\r' && *p != '\n' && *p != '\0') continue;
        for (size_t k = 0; k < 3 && col < 256; k++)
            skip[col] |= (size_t)(p - start) == strlen(cols[k]) && strncmp(start, cols[k], strlen(cols[k])) == 0;
        col++;
        start = p + 1;
        if (*p != ',') break;
    }
    char *out = malloc(strlen(text) + 1), *w = out;
    for (p = text, col = -1; out && *p; p++) { /* col -1: the header, kept whole; RFC 4180 quoting */
        if (*p == '"') quoted = !quoted;
        if (!quoted && *p == '\n') col = 0;
        else if (!quoted && *p == ',' && col >= 0) col++;
        else if (col >= 0 && col < 256 && skip[col] && *p != '\r') continue;
        *w++ = *p;
    }
    if (out) *w = '\0';
    return out;
}

int output_compare_summary(const char *a_path, const char *b_path) {
    char *ta = testutil_read_text(a_path), *tb = testutil_read_text(b_path);
    size_t n = strlen(a_path);
    int diffs = 0;
    if (!ta || !tb) {
        CHECK(0, "%s or %s is unreadable", a_path, b_path);
        diffs = 1;
    } else if (n > 5 && strcmp(a_path + n - 5, ".json") == 0) {
        diffs = compare_json(a_path, b_path, ta, tb);
    } else {
        char *sa = strip_timing_columns(ta), *sb = strip_timing_columns(tb);
        diffs = !sa || !sb || strcmp(sa, sb) != 0;
        CHECK(!diffs, "%s differs from %s beyond the timing and memory columns", b_path, a_path);
        free(sa);
        free(sb);
    }
    free(ta);
    free(tb);
    return diffs;
}

int output_compare_run(const char *a_dir, const char *b_dir, const char *const *stages, size_t n_stages,
                       const char *when) {
    static const char *const skip_attrs[] = {"lafn_time_utc", NULL};
    static const char *const skip_ds[] = {"wall_seconds", "memory_kb", "edit_wall_seconds", "edit_memory_kb", NULL};
    static const char *const summaries[] = {"summary.json", "summary.csv"};
    char a[4096], b[4096];
    int diffs = 0;
    for (size_t s = 0; s < n_stages; s++) {
        snprintf(a, sizeof a, "%s/%s.h5", a_dir, stages[s]);
        snprintf(b, sizeof b, "%s/%s.h5", b_dir, stages[s]);
        int d = output_compare_stage(a, b, skip_ds, skip_attrs);
        CHECK(d == 0, "%s: %s differs from the uninterrupted run in %d objects", when, b, d);
        diffs += d;
    }
    for (int k = 0; k < 2; k++) {
        snprintf(a, sizeof a, "%s/%s", a_dir, summaries[k]);
        snprintf(b, sizeof b, "%s/%s", b_dir, summaries[k]);
        int d = output_compare_summary(a, b);
        CHECK(d == 0, "%s: %s differs from the uninterrupted run", when, b);
        diffs += d;
    }
    return diffs;
}
