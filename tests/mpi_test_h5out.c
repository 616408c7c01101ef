/* mpi_test_h5out: shards from 2 ranks, resume, collective merge read back with plain HDF5, kill-safety, identity, provenance. */
#include "h5/h5out.h"
#include "testutil.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rank = 0;
static char dir[256];

#define ROW_LEN 3

/* The data of fact f, defined independently of the library: a ragged int32
 * list of (f * 7) % 5 entries f*1000 + j, a ragged float64 list of f % 3
 * entries f + j/8, and a float32 row f + k/4. */
static size_t list_len(int64_t f) { return (size_t)((f * 7) % 5); }
static size_t list2_len(int64_t f) { return (size_t)(f % 3); }
static int32_t list_val(int64_t f, size_t j) { return (int32_t)(f * 1000 + (int64_t)j); }
static double list2_val(int64_t f, size_t j) { return (double)f + (double)j / 8.0; }
static float row_val(int64_t f, size_t k) { return (float)f + (float)k / 4.0f; }

static const h5out_dataset schema[] = {
    {"neurons", H5OUT_CSR, H5OUT_I32, 0, NULL, NULL},
    {"scores/blk.3.ffn_down", H5OUT_CSR, H5OUT_F64, 0, NULL, NULL},
    {"best", H5OUT_ROWS, H5OUT_F32, ROW_LEN, NULL, NULL},
};

/* Writes one shard of the given facts with all three datasets. */
static int write_batch(const h5out_provenance *p, int r, size_t seq, const int64_t *facts, size_t n, size_t n_ds,
                       lafn_err *err) {
    int64_t off[16] = {0}, off2[16] = {0};
    int32_t vals[64];
    double vals2[64];
    float rows[16 * ROW_LEN];
    for (size_t i = 0; i < n; i++) {
        off[i + 1] = off[i] + (int64_t)list_len(facts[i]);
        off2[i + 1] = off2[i] + (int64_t)list2_len(facts[i]);
        for (size_t j = 0; j < list_len(facts[i]); j++) vals[off[i] + (int64_t)j] = list_val(facts[i], j);
        for (size_t j = 0; j < list2_len(facts[i]); j++) vals2[off2[i] + (int64_t)j] = list2_val(facts[i], j);
        for (size_t k = 0; k < ROW_LEN; k++) rows[i * ROW_LEN + k] = row_val(facts[i], k);
    }
    h5out_dataset ds[3] = {schema[0], schema[1], schema[2]};
    ds[0].values = vals, ds[0].offsets = off;
    ds[1].values = vals2, ds[1].offsets = off2;
    ds[2].values = rows;
    return h5out_shard_write(dir, p, r, seq, facts, n, ds, n_ds, err);
}

/* Reads a whole 1-D dataset with plain HDF5 calls (independent of h5out_read_*). */
static void *read_plain(hid_t f, const char *name, hid_t mtype, size_t es, size_t *n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), s = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t np = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    void *buf = np >= 0 ? malloc((size_t)np * es + 1) : NULL;
    if (buf && np > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    *n = np > 0 ? (size_t)np : 0;
    return buf;
}

/* Checks one CSR dataset of the merged file against the generator, row by row. */
static void check_csr(hid_t f, const char *name, const int64_t *facts, size_t n, int is_f64) {
    char on[256], vn[256];
    size_t n_off = 0, n_val = 0;
    snprintf(on, sizeof on, "%s/offsets", name);
    snprintf(vn, sizeof vn, "%s/values", name);
    int64_t *off = read_plain(f, on, H5T_NATIVE_INT64, 8, &n_off);
    void *val = read_plain(f, vn, is_f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT32, is_f64 ? 8 : 4, &n_val);
    CHECK(off && val && n_off == n + 1, "%s: offsets %zu entries, expected %zu", name, n_off, n + 1);
    if (!off || !val || n_off != n + 1) goto done;
    CHECK(off[0] == 0 && off[n] == (int64_t)n_val, "%s: offsets [0]=%lld, last=%lld, values %zu", name,
          (long long)off[0], (long long)off[n], n_val);
    size_t bad = 0, first_bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t len = is_f64 ? list2_len(facts[i]) : list_len(facts[i]);
        if (off[i + 1] < off[i] || (size_t)(off[i + 1] - off[i]) != len || off[i + 1] > (int64_t)n_val) {
            bad++, first_bad = first_bad == (size_t)-1 ? i : first_bad;
            continue;
        }
        for (size_t j = 0; j < len; j++) {
            int ok = is_f64 ? ((double *)val)[off[i] + (int64_t)j] == list2_val(facts[i], j)
                            : ((int32_t *)val)[off[i] + (int64_t)j] == list_val(facts[i], j);
            if (!ok) bad++, first_bad = first_bad == (size_t)-1 ? i : first_bad;
        }
    }
    CHECK(bad == 0, "%s: %zu mismatches, first at row %zu (fact %lld)", name, bad, first_bad,
          first_bad == (size_t)-1 ? -1LL : (long long)facts[first_bad]);
done:
    free(off);
    free(val);
}

/* Opens the merged stage file (collectively), reads it back and checks every value. */
static void check_merged(const char *stage, const char *run, const int64_t *expect, size_t n_expect) {
    char path[512];
    hid_t f = H5I_INVALID_HID;
    lafn_err err = {{0}};
    snprintf(path, sizeof path, "%s/%s.h5", dir, stage);
    CHECK(h5out_open(path, stage, run, MPI_COMM_WORLD, &f, &err) == 0, "open %s: %s", path, err.msg);
    if (f < 0) return;
    size_t n = 0, n_rows = 0;
    int64_t *facts = read_plain(f, "facts", H5T_NATIVE_INT64, 8, &n);
    CHECK(facts && n == n_expect, "%s: %zu facts, expected %zu", path, n, n_expect);
    for (size_t e = 0; facts && e < n_expect; e++) {
        size_t hits = 0;
        for (size_t i = 0; i < n; i++) hits += facts[i] == expect[e];
        CHECK(hits == 1, "%s: fact %lld found %zu times", path, (long long)expect[e], hits);
    }
    if (facts && n == n_expect) {
        check_csr(f, "neurons", facts, n, 0);
        check_csr(f, "scores/blk.3.ffn_down", facts, n, 1);
        float *rows = read_plain(f, "best", H5T_NATIVE_FLOAT, 4, &n_rows);
        size_t bad = 0;
        float worst = 0;
        for (size_t i = 0; rows && n_rows == n * ROW_LEN && i < n_rows; i++) {
            float d = rows[i] - row_val(facts[i / ROW_LEN], i % ROW_LEN);
            if (d != 0) bad++, worst = d > worst || -d > worst ? (d > 0 ? d : -d) : worst;
        }
        CHECK(rows && n_rows == n * ROW_LEN && bad == 0,
              "%s/best: %zu elements (expected %zu), %zu "
              "mismatches, worst |diff| %g",
              path, n_rows, n * ROW_LEN, bad, worst);
        free(rows);
    }
    free(facts);
    H5Fclose(f);
}

/* Each rank reads its half of the rows through h5out_read_rows / h5out_read_csr. */
static void check_range_reads(const char *path, size_t n_total) {
    hid_t f = H5I_INVALID_HID;
    lafn_err err = {{0}};
    if (h5out_open(path, "probe", "run-A", MPI_COMM_WORLD, &f, &err)) {
        CHECK(0, "open %s: %s", path, err.msg);
        return;
    }
    size_t row0 = rank == 0 ? 0 : n_total / 2, n = rank == 0 ? n_total / 2 : n_total - n_total / 2;
    int64_t *facts = NULL, *off = NULL;
    int32_t *vals = NULL;
    float *rows = NULL;
    CHECK(h5out_read_rows(f, path, "facts", H5OUT_I64, 0, row0, n, (void **)&facts, &err) == 0 &&
              h5out_read_csr(f, path, "neurons", H5OUT_I32, row0, n, &off, (void **)&vals, &err) == 0 &&
              h5out_read_rows(f, path, "best", H5OUT_F32, ROW_LEN, row0, n, (void **)&rows, &err) == 0,
          "range reads of rows %zu..%zu: %s", row0, row0 + n, err.msg);
    size_t bad = 0;
    for (size_t i = 0; facts && off && vals && rows && i < n; i++) {
        bad += off[0] != 0 || (size_t)(off[i + 1] - off[i]) != list_len(facts[i]);
        for (size_t j = 0; !bad && j < list_len(facts[i]); j++)
            bad += vals[off[i] + (int64_t)j] != list_val(facts[i], j);
        for (size_t k = 0; k < ROW_LEN; k++) bad += rows[i * ROW_LEN + k] != row_val(facts[i], k);
    }
    CHECK(facts && off && vals && rows && bad == 0, "range reads rows %zu..%zu: %zu mismatches", row0, row0 + n, bad);
    void *none = NULL;
    CHECK(h5out_read_rows(f, path, "best", H5OUT_F32, ROW_LEN, n_total - 1, 2, &none, &err) == -1 &&
              strstr(err.msg, "best") && strstr(err.msg, "asked"),
          "read past the end: %s", err.msg);
    CHECK(h5out_read_rows(f, path, "best", H5OUT_F32, ROW_LEN + 1, 0, 1, &none, &err) == -1 &&
              strstr(err.msg, "columns"),
          "read with wrong row length: %s", err.msg);
    free(facts), free(off), free(vals), free(rows);
    H5Fclose(f);
}

static h5out_provenance prov(const char *stage, const char *run, const char *text) {
    h5out_provenance p = {stage,
                          run,
                          text,
                          "probe = {\n  position = \"last\";\n};\n",
                          "models/gemma-3-270m-q4_k_m.gguf",
                          "253114272",
                          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                          "lafn run conf/demo.cfg locate.threshold=0.3"};
    return p;
}

/* Provenance attributes equal what was given; run-time ones present. */
static void check_provenance(const char *path, const h5out_provenance *p, const char *kind) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "%s: cannot open", path);
    if (f < 0) return;
    const char *names[] = {"lafn_stage",           "lafn_run_id",       "lafn_pipeline_file",
                           "lafn_config_resolved", "lafn_model_path",   "lafn_model_size",
                           "lafn_model_sha256",    "lafn_command_line", "lafn_file_kind"};
    const char *want[] = {p->stage,           p->run_id,       p->pipeline_text,
                          p->config_resolved, p->model_path,   p->model_size,
                          p->model_sha256,    p->command_line, kind};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *got = NULL;
        lafn_err err = {{0}};
        int rc = h5out_attr_string(f, names[i], &got, &err);
        CHECK(rc == 0 && !strcmp(got, want[i]), "%s: %s = '%.60s', expected '%.60s' (%s)", path, names[i],
              got ? got : "(none)", want[i], err.msg);
        free(got);
    }
    const char *present[] = {"lafn_version_mpi",       "lafn_version_hdf5", "lafn_version_openblas",
                             "lafn_version_libconfig", "lafn_git_revision", "lafn_git_revision_source",
                             "lafn_git_dirty",         "lafn_host",         "lafn_time_utc"};
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++) {
        char *got = NULL;
        lafn_err err = {{0}};
        CHECK(h5out_attr_string(f, present[i], &got, &err) == 0 && got[0], "%s: %s missing/empty", path, present[i]);
        if (rank == 0 && got && !strcmp(kind, "stage")) printf("  %s: %.70s\n", present[i], got);
        free(got);
    }
    H5Fclose(f);
}

/* Reads a whole file into memory (to prove it unchanged). */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    *n = 0;
    if (!f) return NULL;
    if (!fseek(f, 0, SEEK_END) && ftell(f) > 0) {
        *n = (size_t)ftell(f);
        rewind(f);
        buf = malloc(*n);
        if (buf && fread(buf, 1, *n, f) != *n) *n = 0;
    }
    fclose(f);
    return buf;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void test_identity(const char *path) {
    hid_t f = H5I_INVALID_HID;
    lafn_err err = {{0}};
    CHECK(h5out_open(path, "locate", "run-A", MPI_COMM_WORLD, &f, &err) == -1 && f < 0,
          "a probe file opened as locate");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "stage 'probe'") && strstr(err.msg, "'locate'"),
          "stage mismatch message: %s", err.msg);
    if (rank == 0) printf("  refused: %s\n", err.msg);
    CHECK(h5out_open(path, "probe", "run-B", MPI_COMM_WORLD, &f, &err) == -1 && f < 0, "a run-A file opened by run-B");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "'run-A'") && strstr(err.msg, "'run-B'"), "run mismatch message: %s",
          err.msg);
    if (rank == 0) printf("  refused: %s\n", err.msg);
    int64_t *done = NULL;
    size_t n_done = 0, next = 0;
    CHECK(h5out_resume(dir, "probe", "run-B", rank, &done, &n_done, &next, &err) == -1 &&
              strstr(err.msg, "probe.shard-") && strstr(err.msg, "'run-A'"),
          "resume with another run id: %s", err.msg);
    free(done);
    char shard[600];
    snprintf(shard, sizeof shard, "%s/probe.shard-0-0.h5", dir);
    CHECK(h5out_open(shard, "probe", "run-A", MPI_COMM_WORLD, &f, &err) == -1 &&
              strstr(err.msg, "not a merged stage file"),
          "a shard opened as a stage file: %s", err.msg);
    CHECK(h5out_open("/nonexistent/probe.h5", "probe", "run-A", MPI_COMM_WORLD, &f, &err) == -1 &&
              strstr(err.msg, "/nonexistent/probe.h5"),
          "missing file: %s", err.msg);
}

static const int64_t all9[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};

/* Shards of facts 0..8 from both ranks, plus fact 9's shard left incomplete under its .tmp
 * name (as if killed before the rename); resume must see exactly 0..8. */
static void test_shards_and_resume(const h5out_provenance *pa) {
    static const int64_t f0a[] = {0, 2, 4}, f0b[] = {6, 8}, f1a[] = {1, 3, 5, 7}, f1b[] = {9};
    lafn_err err = {{0}};
    char path[512], tmp[600];
    if (rank == 0) {
        CHECK(write_batch(pa, 0, 0, f0a, 3, 3, &err) == 0, "shard 0-0: %s", err.msg);
        CHECK(write_batch(pa, 0, 1, f0b, 2, 3, &err) == 0, "shard 0-1: %s", err.msg);
    } else {
        CHECK(write_batch(pa, 1, 0, f1a, 4, 3, &err) == 0, "shard 1-0: %s", err.msg);
        CHECK(write_batch(pa, 1, 1, f1b, 1, 3, &err) == 0, "shard 1-1: %s", err.msg);
        snprintf(path, sizeof path, "%s/probe.shard-1-1.h5", dir);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        CHECK(truncate(path, 900) == 0 && rename(path, tmp) == 0, "cannot fake a killed shard");
    }
    MPI_Barrier(MPI_COMM_WORLD);
    int64_t *done = NULL;
    size_t n_done = 0, next = 0;
    CHECK(h5out_resume(dir, "probe", "run-A", rank, &done, &n_done, &next, &err) == 0, "resume: %s", err.msg);
    int ok = n_done == 9;
    for (size_t i = 0; ok && i < 9; i++) ok = done[i] == (int64_t)i;
    CHECK(ok, "resume: %zu facts done, expected 0..8", n_done);
    CHECK(next == (rank == 0 ? 2u : 1u), "resume: next seq %zu for rank %d", next, rank);
    free(done);
}

/* Failed merges (duplicate fact, shard of another run, missing dataset) leave the
 * complete stage file byte-for-byte as it was, and no .tmp. */
static void test_failed_merges(const h5out_provenance *pa, const char *path) {
    static const int64_t dup[] = {3}, other[] = {20}, miss[] = {21};
    const char *bad_runs[3] = {"duplicate", "other run", "missing dataset"};
    char tmp[600], shard[600];
    size_t n_before = 0, n_after = 0;
    char *before = slurp(path, &n_before);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (int b = 0; b < 3; b++) {
        lafn_err err = {{0}};
        h5out_provenance pb = prov("probe", "run-B", "");
        snprintf(shard, sizeof shard, "%s/probe.shard-0-%d.h5", dir, 7 + b);
        if (rank == 0) {
            int rc = b == 0   ? write_batch(pa, 0, 7, dup, 1, 3, &err)
                     : b == 1 ? write_batch(&pb, 0, 8, other, 1, 3, &err)
                              : write_batch(pa, 0, 9, miss, 1, 2, &err);
            CHECK(rc == 0, "bad shard %d: %s", b, err.msg);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        CHECK(h5out_merge(dir, pa, schema, 3, MPI_COMM_WORLD, &err) == -1, "merge with %s accepted", bad_runs[b]);
        const char *needle = b == 0 ? "fact 3 is in two shards" : b == 1 ? "'run-B'" : "no dataset 'best'";
        CHECK(strstr(err.msg, needle) != NULL, "merge with %s: message lacks '%s': %s", bad_runs[b], needle, err.msg);
        if (rank == 0) printf("  merge refused (%s): %s\n", bad_runs[b], err.msg);
        char *after = slurp(path, &n_after);
        CHECK(before && after && n_before == n_after && !memcmp(before, after, n_before),
              "%s changed by a failed merge (%zu -> %zu bytes)", path, n_before, n_after);
        free(after);
        CHECK(!exists(tmp), "%s left behind", tmp);
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0) unlink(shard);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    free(before);
}

/* One shard only: rank 1 merges nothing but takes part; a 200 kB pipeline text attribute. */
static void test_lonely_merge(void) {
    static const int64_t one[] = {4, 11};
    size_t big = 200000;
    char *text = malloc(big + 1), path[512];
    lafn_err err = {{0}};
    for (size_t i = 0; text && i < big; i++) text[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
    if (text) text[big] = '\0';
    h5out_provenance pe = prov("edit", "run-A", text);
    if (rank == 0) CHECK(write_batch(&pe, 0, 0, one, 2, 3, &err) == 0, "edit shard: %s", err.msg);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(h5out_merge(dir, &pe, schema, 3, MPI_COMM_WORLD, &err) == 0, "edit merge: %s", err.msg);
    check_merged("edit", "run-A", one, 2);
    snprintf(path, sizeof path, "%s/edit.h5", dir);
    check_provenance(path, &pe, "stage");
    free(text);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        fprintf(stderr, "mpi_test_h5out needs 2 ranks, has %d\n", size);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "h5out", dir, sizeof dir);
    lafn_err err = {{0}};
    h5out_provenance pa = prov("probe", "run-A", "model = { path = \"models/x.gguf\"; };\n");
    char path[512], shard[600];

    test_shards_and_resume(&pa);
    CHECK(h5out_merge(dir, &pa, schema, 3, MPI_COMM_WORLD, &err) == 0, "merge: %s", err.msg);
    check_merged("probe", "run-A", all9, 9);
    snprintf(path, sizeof path, "%s/probe.h5", dir);
    check_range_reads(path, 9);
    check_provenance(path, &pa, "stage");
    snprintf(shard, sizeof shard, "%s/probe.shard-1-0.h5", dir);
    check_provenance(shard, &pa, "shard");
    test_identity(path);
    MPI_Barrier(MPI_COMM_WORLD);
    test_failed_merges(&pa, path);
    check_merged("probe", "run-A", all9, 9);
    test_lonely_merge();

    testutil_mpi_tmpdir_end(MPI_COMM_WORLD, dir);
    char name[64];
    snprintf(name, sizeof name, "mpi_test_h5out[rank %d]", rank);
    int rc = testutil_finish(name), any = 0;
    MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
