/* h5out_merge: collective merge of a stage's committed shards into STAGE.h5 (hyperslab per rank, tmp name, rename). */
#include "h5/h5out_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/mpi_status.h"
#include "h5/h5fault.h"

/* One schema dataset's rows held by this rank (the concatenation of its shards). */
typedef struct {
    char *values;     /* ROWS: (n, row_len); CSR: off[n] elements */
    size_t n_values;  /* elements in values */
    int64_t *off;     /* CSR: n + 1 local offsets, off[0] = 0 */
} part;

typedef struct {
    int64_t *facts;   /* (n) */
    size_t n;
    part *parts;      /* one per schema dataset */
    size_t n_parts;
} held;

static void held_free(held *h) {
    for (size_t i = 0; h->parts && i < h->n_parts; i++) {
        free(h->parts[i].values);
        free(h->parts[i].off);
    }
    free(h->parts);
    free(h->facts);
    memset(h, 0, sizeof *h);
}

/* Appends n elements of size es from src to *dst (holding *len elements). */
static int append(char **dst, size_t *len, const void *src, size_t n, size_t es) {
    char *g = realloc(*dst, (*len + n) * es + 1);
    if (!g) return -1;
    if (n) memcpy(g + *len * es, src, n * es);
    *dst = g;
    *len += n;
    return 0;
}

/* Appends dataset d of a shard with n facts to part pt. */
static int take_dataset(hid_t f, const char *path, const h5out_dataset *d, size_t n, part *pt,
                        size_t n_held, lafn_err *err) {
    void *vals = NULL;
    int64_t *off = NULL;
    int rc = -1;
    if (h5out_read_dataset(f, path, d, n, &vals, &off, err)) return -1;
    size_t es = h5out_dtype_size(d->dtype), nv = d->layout == H5OUT_ROWS ? n * d->row_len : (size_t)off[n];
    if (append(&pt->values, &pt->n_values, vals, nv, es)) goto oom;
    if (d->layout == H5OUT_CSR) {
        int64_t *g = realloc(pt->off, (n_held + n + 1) * sizeof *g);
        if (!g) goto oom;
        pt->off = g;
        if (n_held == 0) g[0] = 0;
        for (size_t i = 1; i <= n; i++) g[n_held + i] = g[n_held] + off[i];
    }
    rc = 0;
    goto done;
oom:
    lafn_err_set(err, "%s: out of memory merging '%s'", path, d->name);
done:
    free(vals);
    free(off);
    return rc;
}

/* Reads the shards dealt to this rank (i % size == rank) into h. */
static int load_mine(char **paths, size_t n_paths, int rank, int size, const h5out_provenance *p,
                     const h5out_dataset *schema, size_t n_schema, held *h, lafn_err *err) {
    h->n_parts = n_schema;
    h->parts = calloc(n_schema ? n_schema : 1, sizeof *h->parts);
    if (!h->parts) return lafn_err_set(err, "merge: out of memory");
    for (size_t s = 0; s < n_schema; s++)
        if (schema[s].layout == H5OUT_CSR && !(h->parts[s].off = calloc(1, sizeof(int64_t))))
            return lafn_err_set(err, "merge: out of memory");
    for (size_t i = (size_t)rank; i < n_paths; i += (size_t)size) {
        hid_t f = H5I_INVALID_HID;
        int64_t *facts = NULL;
        size_t n = 0;
        if (h5out_shard_open(paths[i], p->stage, p->run_id, &f, err)) return -1;
        int rc = h5out_read_all(f, paths[i], "facts", H5OUT_I64, 0, (void **)&facts, &n, err);
        for (size_t s = 0; !rc && s < n_schema; s++)
            rc = take_dataset(f, paths[i], &schema[s], n, &h->parts[s], h->n, err);
        if (H5Fclose(f) < 0 && !rc) rc = lafn_err_set(err, "%s: cannot close", paths[i]);
        size_t len = h->n;
        if (!rc && append((char **)&h->facts, &len, facts, n, sizeof(int64_t)))
            rc = lafn_err_set(err, "%s: out of memory", paths[i]);
        free(facts);
        if (rc) return -1;
        h->n = len;
    }
    return 0;
}

/* Rank 0 lists the shards; every rank gets the same list of paths. */
static int shared_list(const char *dir, const char *stage, MPI_Comm comm, char ***paths,
                       size_t *n_paths, char **blob_out, lafn_err *err) {
    int rank, rc = 0;
    unsigned long long counts[2] = {0, 0}; /* paths, bytes */
    char *blob = NULL;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        h5out_shard *sh = NULL;
        size_t n = 0;
        rc = h5out_shard_list(dir, stage, &sh, &n, err);
        for (size_t i = 0; !rc && i < n; i++) counts[1] += strlen(sh[i].path) + 1;
        if (!rc && !(blob = malloc(counts[1] + 1))) rc = lafn_err_set(err, "merge: out of memory");
        for (size_t i = 0, at = 0; !rc && i < n; at += strlen(sh[i].path) + 1, i++)
            memcpy(blob + at, sh[i].path, strlen(sh[i].path) + 1);
        counts[0] = rc ? 0 : n;
        h5out_shards_free(sh, n);
    }
    if (mpi_status_agree(comm, rc, err)) return -1;
    MPI_Bcast(counts, 2, MPI_UNSIGNED_LONG_LONG, 0, comm);
    if (counts[1] > INT_MAX) return lafn_err_set(err, "merge: shard list too long");
    if (rank != 0) blob = malloc(counts[1] + 1);
    *paths = calloc(counts[0] + 1, sizeof **paths);
    if (mpi_status_agree(comm, !blob || !*paths, err)) {
        free(blob);
        free(*paths);
        return lafn_err_set(err, "merge: out of memory");
    }
    MPI_Bcast(blob, (int)counts[1], MPI_CHAR, 0, comm);
    for (size_t i = 0, at = 0; i < counts[0]; at += strlen(blob + at) + 1, i++) (*paths)[i] = blob + at;
    *n_paths = counts[0];
    *blob_out = blob;
    return 0;
}

/* Exclusive prefix sum of x over comm into *start; total into *total. */
static void scan_counts(MPI_Comm comm, size_t x, size_t *start, size_t *total) {
    unsigned long long v = x, ex = 0, tot = 0;
    int rank;
    MPI_Comm_rank(comm, &rank);
    MPI_Exscan(&v, &ex, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
    MPI_Allreduce(&v, &tot, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
    *start = rank == 0 ? 0 : (size_t)ex;
    *total = (size_t)tot;
}

static int i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Fails (on every rank) if a fact index is held twice over all ranks. */
static int check_distinct(MPI_Comm comm, const held *h, lafn_err *err) {
    int size, n = (int)h->n, rc = 0;
    size_t start, total;
    scan_counts(comm, h->n, &start, &total);
    MPI_Comm_size(comm, &size);
    if (total > INT_MAX) return lafn_err_set(err, "merge: %zu facts, more than one merge handles", total);
    int *counts = malloc((size_t)size * sizeof *counts), *displs = malloc((size_t)size * sizeof *displs);
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    if (mpi_status_agree(comm, !counts || !displs || !all, err)) {
        rc = lafn_err_set(err, "merge: out of memory checking fact indices");
        goto done;
    }
    MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, comm);
    for (int r = 0, at = 0; r < size; at += counts[r], r++) displs[r] = at;
    MPI_Allgatherv(h->facts, n, MPI_INT64_T, all, counts, displs, MPI_INT64_T, comm);
    qsort(all, total, sizeof *all, i64_cmp);
    for (size_t i = 1; i < total && !rc; i++)
        if (all[i] == all[i - 1])
            rc = lafn_err_set(err, "merge: fact %lld is in two shards (a resumed run redid it?)",
                              (long long)all[i]);
done:
    free(counts);
    free(displs);
    free(all);
    return rc;
}

/* The message of a failed write into the stage file's .tmp in dir: the file, and a full disk when that was the
 * cause — by errno or, as MPI-IO does not always hand errno back, by a folder left with almost no room. */
static int write_failed(lafn_err *err, const char *dir, const char *tmp, int saved_errno) {
    struct statvfs vfs;
    if (saved_errno != ENOSPC && saved_errno != EDQUOT && statvfs(dir, &vfs) == 0 && vfs.f_blocks > 0 &&
        (double)vfs.f_bavail * (double)vfs.f_frsize < H5OUT_SPACE_SLACK)
        saved_errno = ENOSPC;
    lafn_err_wrap(err, "%s", tmp);
    lafn_err_disk_full(err, dir, saved_errno, H5OUT_FULL_HINT);
    return -1;
}

/* Writes facts and every schema dataset collectively into an open file (dir/tmp, for messages). */
static int write_all(hid_t file, const char *dir, const char *tmp, const held *h, const h5out_dataset *schema,
                     size_t n_schema, MPI_Comm comm, hid_t dxpl, lafn_err *err) {
    int rank, size;
    size_t row0, n_total;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    scan_counts(comm, h->n, &row0, &n_total);
    int rc = h5out_write_rows(file, "facts", H5OUT_I64, n_total, 0, row0, h->n, h->facts, dxpl, "rows", err);
    if (mpi_status_agree(comm, rc ? write_failed(err, dir, tmp, errno) : 0, err)) return -1;
    for (size_t s = 0; s < n_schema; s++) {
        const h5out_dataset *d = &schema[s];
        const part *pt = &h->parts[s];
        if (d->layout == H5OUT_ROWS) {
            rc = h5out_write_rows(file, d->name, d->dtype, n_total, d->row_len, row0, h->n, pt->values,
                               dxpl, "rows", err);
        } else {
            size_t v0, v_total;
            scan_counts(comm, pt->n_values, &v0, &v_total);
            rc = h5out_write_csr(file, d->name, d->dtype, n_total, row0, h->n, pt->off, v_total, v0,
                              pt->values, rank == size - 1, dxpl, err);
        }
        if (mpi_status_agree(comm, rc ? write_failed(err, dir, tmp, errno) : 0, err)) return -1;
    }
    return 0;
}

/* Creates the stage file's tmp name collectively and fills it. */
static int write_stage(const char *dir, const char *tmp, const h5out_provenance *p, const held *h,
                       const h5out_dataset *schema, size_t n_schema, MPI_Comm comm, lafn_err *err) {
    hid_t fapl = H5I_INVALID_HID, dxpl = H5I_INVALID_HID, file = H5I_INVALID_HID;
    int rc = -1, rank;
    MPI_Comm_rank(comm, &rank);
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0 ||
        (dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
        lafn_err_set(err, "%s: cannot set up MPI-IO access", tmp);
        goto fail;
    }
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (mpi_status_agree(comm, file < 0 ? lafn_err_set(err, "%s: cannot create", tmp) : 0, err)) goto fail;
    int prov = h5out_provenance_write(file, p, "stage", comm, err);
    if (mpi_status_agree(comm, prov ? write_failed(err, dir, tmp, errno) : 0, err)) goto fail;
    h5fault_point(p->stage, "merge", rank);
    if (write_all(file, dir, tmp, h, schema, n_schema, comm, dxpl, err)) goto fail;
    hid_t f = file;
    file = H5I_INVALID_HID;
    rc = 0;
    if (H5Fclose(f) < 0) {
        int saved_errno = errno;
        lafn_err_set(err, "cannot close");
        rc = write_failed(err, dir, tmp, saved_errno);
    }
fail:
    if (file >= 0) {
        /* Every rank is here after an agreed failure, perhaps a full disk: the
         * collective close still flushes metadata, and a write failing on one
         * rank there would leave the others waiting in HDF5 for ever. The
         * .tmp is discarded anyway, so rank 0 first empties it to make room. */
        if (rank == 0 && truncate(tmp, 0) != 0) lafn_err_wrap(err, "(and %s could not be emptied)", tmp);
        MPI_Barrier(comm);
        H5Fclose(file);
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    if (fapl >= 0) H5Pclose(fapl);
    return mpi_status_agree(comm, rc, err);
}

/* On one rank: fails when dir has less room than the shards (paths) take. The merged file holds their rows
 * once, so it is never larger than the shards together plus H5OUT_SPACE_SLACK; starting a collective write
 * that runs out of space part-way could leave the ranks waiting on each other in HDF5. */
static int check_space(const char *dir, const char *path, char *const *paths, size_t n_paths, lafn_err *err) {
    double need = H5OUT_SPACE_SLACK;
    for (size_t i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0) need += (double)st.st_size;
    }
    return h5out_check_space(dir, path, need, "merge", err);
}

int h5out_merge(const char *dir, const h5out_provenance *p, const h5out_dataset *schema,
                size_t n_schema, MPI_Comm comm, lafn_err *err) {
    char path[4096], tmp[4096];
    char **paths = NULL, *blob = NULL;
    size_t n_paths = 0;
    held h = {0};
    int rank, size, rc = -1, bad = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (!h5out_stage_name_ok(p->stage) || !p->run_id || !p->run_id[0] ||
        h5out_stage_path(path, sizeof path, dir, p->stage, 0) || h5out_stage_path(tmp, sizeof tmp, dir, p->stage, 1))
        bad = lafn_err_set(err, "merge: stage must be [a-z0-9_]+, run_id non-empty, path short");
    for (size_t s = 0; !bad && s < n_schema; s++)
        if (!schema[s].name || !schema[s].name[0] || !strcmp(schema[s].name, "facts") ||
            (schema[s].layout == H5OUT_ROWS && schema[s].row_len == 0))
            bad = lafn_err_set(err, "merge: schema dataset %zu: bad name or row_len", s);
    if (mpi_status_agree(comm, bad, err)) return -1;
    if (shared_list(dir, p->stage, comm, &paths, &n_paths, &blob, err)) return -1;
    int loaded = load_mine(paths, n_paths, rank, size, p, schema, n_schema, &h, err);
    if (mpi_status_agree(comm, loaded, err) || mpi_status_agree(comm, check_distinct(comm, &h, err), err)) goto done;
    int roomy = rank == 0 ? check_space(dir, path, paths, n_paths, err) : 0;
    if (mpi_status_agree(comm, roomy, err)) goto done;
    if (write_stage(dir, tmp, p, &h, schema, n_schema, comm, err)) goto fail_tmp;
    int moved = 0;
    if (rank == 0 && (h5out_sync_path(tmp) || rename(tmp, path) || h5out_sync_dir(dir)))
        moved = lafn_err_set(err, "%s: cannot sync and rename to %s", tmp, path);
    if (mpi_status_agree(comm, moved, err)) goto fail_tmp;
    rc = 0;
    goto done;
fail_tmp:
    if (rank == 0) unlink(tmp);
done:
    free(blob);
    free(paths);
    held_free(&h);
    return rc;
}
