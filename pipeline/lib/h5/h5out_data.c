/* h5out_data: typed per-fact datasets (rows and CSR) — hyperslab writes, checked whole reads, file names, fsync. */
#include "h5/h5out_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

size_t h5out_dtype_size(h5out_dtype t) {
    return t == H5OUT_U8 ? 1 : t == H5OUT_I32 || t == H5OUT_F32 ? 4 : 8;
}

hid_t h5out_mem_type(h5out_dtype t) {
    switch (t) {
    case H5OUT_I32: return H5T_NATIVE_INT32;
    case H5OUT_I64: return H5T_NATIVE_INT64;
    case H5OUT_F32: return H5T_NATIVE_FLOAT;
    case H5OUT_F64: return H5T_NATIVE_DOUBLE;
    case H5OUT_U8: return H5T_NATIVE_UINT8;
    }
    return H5I_INVALID_HID;
}

hid_t h5out_file_type(h5out_dtype t) {
    switch (t) {
    case H5OUT_I32: return H5T_STD_I32LE;
    case H5OUT_I64: return H5T_STD_I64LE;
    case H5OUT_F32: return H5T_IEEE_F32LE;
    case H5OUT_F64: return H5T_IEEE_F64LE;
    case H5OUT_U8: return H5T_STD_U8LE;
    }
    return H5I_INVALID_HID;
}

int h5out_write_rows(hid_t loc, const char *name, h5out_dtype t, size_t n_rows_total, size_t row_len,
                  size_t row0, size_t n_rows, const void *buf, hid_t dxpl, const char *layout,
                  lafn_err *err) {
    hid_t lcpl = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hid_t dset = H5I_INVALID_HID;
    int nd = row_len ? 2 : 1, rc = -1;
    hsize_t dims[2] = {n_rows_total, row_len}, start[2] = {row0, 0}, count[2] = {n_rows, row_len};
    if (row0 > n_rows_total || n_rows > n_rows_total - row0) {
        return lafn_err_set(err, "dataset '%s': rows [%zu, %zu) outside (%zu)", name, row0,
                            row0 + n_rows, n_rows_total);
    }
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) goto fail;
    if ((fspace = H5Screate_simple(nd, dims, NULL)) < 0) goto fail;
    if ((dset = H5Dcreate2(loc, name, h5out_file_type(t), fspace, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        goto fail;
    if ((mspace = H5Screate_simple(nd, count, NULL)) < 0) goto fail;
    if (n_rows == 0) {
        if (H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0) goto fail;
    } else if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        goto fail;
    }
    /* An empty dataset (the same on every rank) has no storage to write: HDF5
     * fails a collective write of zero elements with an address overflow. */
    if (n_rows_total > 0 && H5Dwrite(dset, h5out_mem_type(t), mspace, fspace, dxpl, buf) < 0) goto fail;
    if (layout && h5out_attr_put_string(dset, "lafn_layout", layout, err)) goto fail;
    rc = 0;
fail:
    if (dset >= 0 && H5Dclose(dset) < 0) rc = -1;
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (rc) lafn_err_set(err, "cannot write dataset '%s' (%zu x %zu, rows %zu..%zu)", name,
                         n_rows_total, row_len, row0, row0 + n_rows);
    return rc;
}

/* Checks that the n_rows x cols elements of type a dataset claims are stored in the file (lafn writes
 * every element; a file of a few KB whose header claims 2^40 rows would otherwise have the reader
 * allocate and fill terabytes). Returns 0, or -1 with err. */
static int check_storage(hid_t dset, hid_t type, const char *path, const char *name, size_t n_rows, size_t cols,
                         lafn_err *err) {
    hsize_t stored = H5Dget_storage_size(dset), file_size = 0;
    size_t type_size = H5Tget_size(type);
    hid_t file = H5Iget_file_id(dset);
    herr_t rc = file < 0 ? -1 : H5Fget_filesize(file, &file_size);
    if (file >= 0) H5Fclose(file);
    if (rc < 0 || type_size == 0 || stored > file_size || n_rows > stored / type_size / cols)
        return lafn_err_set(err, "%s: dataset '%s' claims %zu rows of %zu elements of %zu bytes, but holds %llu bytes "
                            "in a file of %llu (a truncated or tampered file)", path, name, n_rows, cols, type_size,
                            (unsigned long long)stored, (unsigned long long)file_size);
    return 0;
}

/* Reads rows [row0, row0 + want) of 1-D (row_len 0) or 2-D dataset `name`
 * (want == ALL_ROWS: to the end) into a new buffer; *got = rows read, *total =
 * rows in the dataset. Checks rank, columns, type class and the range. */
#define ALL_ROWS ((size_t)-1)
static int read_range(hid_t file, const char *path, const char *name, h5out_dtype dtype,
                      size_t row_len, size_t row0, size_t want, void **out, size_t *got,
                      size_t *total, lafn_err *err) {
    hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID;
    hsize_t dims[2] = {0, 0};
    void *buf = NULL;
    int rc = -1, want_nd = row_len ? 2 : 1;
    H5T_class_t cls = dtype == H5OUT_F32 || dtype == H5OUT_F64 ? H5T_FLOAT : H5T_INTEGER;
    *out = NULL;
    H5E_BEGIN_TRY { dset = H5Dopen2(file, name, H5P_DEFAULT); } H5E_END_TRY;
    if (dset < 0) return lafn_err_set(err, "%s: no dataset '%s'", path, name);
    if ((space = H5Dget_space(dset)) < 0 || (type = H5Dget_type(dset)) < 0) goto io;
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd != want_nd || H5Sget_simple_extent_dims(space, dims, NULL) < 0 ||
        (row_len && dims[1] != row_len) || H5Tget_class(type) != cls) {
        lafn_err_set(err, "%s: dataset '%s': expected %s %s with %zu columns, found %d-D (%llu x %llu)",
                     path, name, cls == H5T_FLOAT ? "float" : "integer", want_nd == 2 ? "2-D" : "1-D",
                     row_len, nd, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        goto fail;
    }
    size_t n_total = (size_t)dims[0], n = want == ALL_ROWS && row0 <= n_total ? n_total - row0 : want;
    if (row0 > n_total || n > n_total - row0) {
        lafn_err_set(err, "%s: dataset '%s': rows [%zu, %zu) asked, it has %zu", path, name, row0,
                     row0 + n, n_total);
        goto fail;
    }
    if (check_storage(dset, type, path, name, n_total, row_len ? row_len : 1, err)) goto fail;
    size_t n_elem = n * (row_len ? row_len : 1);
    hsize_t start[2] = {row0, 0}, count[2] = {n, row_len};
    if (!(buf = malloc(n_elem ? n_elem * h5out_dtype_size(dtype) : 1))) {
        lafn_err_set(err, "%s: dataset '%s': cannot allocate %zu elements", path, name, n_elem);
        goto fail;
    }
    if (n_elem && ((mspace = H5Screate_simple(nd, count, NULL)) < 0 ||
                   H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                   H5Dread(dset, h5out_mem_type(dtype), mspace, space, H5P_DEFAULT, buf) < 0))
        goto io;
    *out = buf;
    buf = NULL;
    *got = n;
    *total = n_total;
    rc = 0;
    goto fail;
io:
    lafn_err_set(err, "%s: cannot read dataset '%s'", path, name);
fail:
    free(buf);
    if (mspace >= 0) H5Sclose(mspace);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    return rc;
}

int h5out_read_all(hid_t file, const char *path, const char *name, h5out_dtype dtype,
                   size_t row_len, void **out, size_t *n_rows, lafn_err *err) {
    size_t total;
    return read_range(file, path, name, dtype, row_len, 0, ALL_ROWS, out, n_rows, &total, err);
}

int h5out_read_rows(hid_t file, const char *path, const char *name, h5out_dtype dtype,
                    size_t row_len, size_t row0, size_t n_rows, void **out, lafn_err *err) {
    size_t got, total;
    return read_range(file, path, name, dtype, row_len, row0, n_rows, out, &got, &total, err);
}

int h5out_read_csr(hid_t file, const char *path, const char *name, h5out_dtype dtype, size_t row0,
                   size_t n_rows, int64_t **offsets, void **values, lafn_err *err) {
    char on[1024], vn[1024];
    size_t got, n_off_total, n_val, total;
    int64_t *off = NULL;
    *offsets = NULL;
    *values = NULL;
    if (snprintf(on, sizeof on, "%s/offsets", name) >= (int)sizeof on ||
        snprintf(vn, sizeof vn, "%s/values", name) >= (int)sizeof vn)
        return lafn_err_set(err, "%s: dataset name '%s' too long", path, name);
    if (read_range(file, path, on, H5OUT_I64, 0, row0, n_rows + 1, (void **)&off, &got, &n_off_total, err))
        return -1;
    if (read_range(file, path, vn, dtype, 0, 0, 0, values, &got, &n_val, err)) goto fail;
    free(*values);
    *values = NULL;
    for (size_t i = 0; i < n_rows; i++)
        if (off[i + 1] < off[i]) {
            lafn_err_set(err, "%s: '%s' decreases at row %zu", path, on, row0 + i);
            goto fail;
        }
    if (off[0] < 0 || (uint64_t)off[n_rows] > n_val) {
        lafn_err_set(err, "%s: '%s' rows %zu..%zu point to values [%lld, %lld) of %zu", path, on,
                     row0, row0 + n_rows, (long long)off[0], (long long)off[n_rows], n_val);
        goto fail;
    }
    if (read_range(file, path, vn, dtype, 0, (size_t)off[0], (size_t)(off[n_rows] - off[0]), values,
                   &got, &total, err))
        goto fail;
    for (size_t i = n_rows + 1; i-- > 0;) off[i] -= off[0];
    *offsets = off;
    return 0;
fail:
    free(off);
    return -1;
}

/* Checks CSR offsets: n_facts + 1 entries, 0 first, non-decreasing, last == n_values. */
static int check_offsets(const char *path, const char *name, const int64_t *off, size_t n_off,
                         size_t n_facts, size_t n_values, lafn_err *err) {
    if (n_off != n_facts + 1)
        return lafn_err_set(err, "%s: '%s/offsets' has %zu entries, expected %zu (facts + 1)",
                            path, name, n_off, n_facts + 1);
    if (off[0] != 0) return lafn_err_set(err, "%s: '%s/offsets'[0] = %lld, expected 0", path, name,
                                         (long long)off[0]);
    for (size_t i = 0; i < n_facts; i++)
        if (off[i + 1] < off[i])
            return lafn_err_set(err, "%s: '%s/offsets' decreases at %zu (%lld > %lld)", path, name,
                                i, (long long)off[i], (long long)off[i + 1]);
    if ((uint64_t)off[n_facts] != n_values)
        return lafn_err_set(err, "%s: '%s/offsets' ends at %lld but there are %zu values", path,
                            name, (long long)off[n_facts], n_values);
    return 0;
}

int h5out_read_dataset(hid_t file, const char *path, const h5out_dataset *ds, size_t n_facts,
                       void **values, int64_t **offsets, lafn_err *err) {
    char name[1024];
    size_t n = 0, n_off = 0;
    *values = NULL;
    *offsets = NULL;
    if (ds->layout == H5OUT_ROWS) {
        if (h5out_read_all(file, path, ds->name, ds->dtype, ds->row_len, values, &n, err)) return -1;
        if (n == n_facts) return 0;
        lafn_err_set(err, "%s: dataset '%s' has %zu rows, expected %zu (one per fact)", path,
                     ds->name, n, n_facts);
        goto fail;
    }
    if (snprintf(name, sizeof name, "%s/offsets", ds->name) >= (int)sizeof name)
        return lafn_err_set(err, "%s: dataset name '%s' too long", path, ds->name);
    if (h5out_read_all(file, path, name, H5OUT_I64, 0, (void **)offsets, &n_off, err)) goto fail;
    snprintf(name, sizeof name, "%s/values", ds->name);
    if (h5out_read_all(file, path, name, ds->dtype, 0, values, &n, err)) goto fail;
    if (check_offsets(path, ds->name, *offsets, n_off, n_facts, n, err)) goto fail;
    return 0;
fail:
    free(*values);
    free(*offsets);
    *values = NULL;
    *offsets = NULL;
    return -1;
}

int h5out_check_batch(const h5out_dataset *d, size_t n_facts, lafn_err *err) {
    if (!d->name || !d->name[0] || d->name[0] == '/')
        return lafn_err_set(err, "dataset name must be non-empty and relative");
    if (!strcmp(d->name, "facts"))
        return lafn_err_set(err, "dataset name 'facts' is reserved for the fact indices");
    if (d->layout == H5OUT_ROWS && d->row_len == 0)
        return lafn_err_set(err, "dataset '%s': rows need row_len > 0", d->name);
    if (d->layout != H5OUT_CSR) return 0;
    if (!d->offsets) return lafn_err_set(err, "dataset '%s': CSR without offsets", d->name);
    return check_offsets("batch", d->name, d->offsets, n_facts + 1, n_facts,
                         (size_t)(d->offsets[n_facts] < 0 ? 0 : d->offsets[n_facts]), err);
}

int h5out_stage_path(char *buf, size_t cap, const char *dir, const char *stage, int tmp) {
    int n = snprintf(buf, cap, "%s/%s.h5%s", dir, stage, tmp ? ".tmp" : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int h5out_check_space(const char *dir, const char *path, double need, const char *what, lafn_err *err) {
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0 || vfs.f_blocks == 0) return 0;
    double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
    if (avail >= need) return 0;
    return lafn_err_set(err, "%s: not enough space to %s: up to %.0f kB needed, %.0f kB free — the disk holding %s is "
                        "full; %s", path, what, need / 1e3, avail / 1e3, dir, H5OUT_FULL_HINT);
}

int h5out_sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc ? -1 : 0;
}

int h5out_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc ? -1 : 0;
}

int h5out_write_csr(hid_t loc, const char *name, h5out_dtype t, size_t n_rows_total, size_t row0,
                 size_t n_rows, const int64_t *offsets, size_t n_values_total, size_t value0,
                 const void *values, int last, hid_t dxpl, lafn_err *err) {
    hid_t lcpl = H5I_INVALID_HID, grp = H5I_INVALID_HID;
    size_t n_off = n_rows + (last ? 1 : 0);
    int64_t *off = malloc((n_off ? n_off : 1) * sizeof *off);
    int rc = -1;
    if (!off) return lafn_err_set(err, "CSR '%s': cannot allocate %zu offsets", name, n_off);
    for (size_t i = 0; i < n_off; i++) off[i] = offsets[i] + (int64_t)value0;
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        (grp = H5Gcreate2(loc, name, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        lafn_err_set(err, "cannot create group '%s'", name);
        goto fail;
    }
    if (h5out_attr_put_string(grp, "lafn_layout", "csr", err)) goto fail;
    if (h5out_write_rows(grp, "offsets", H5OUT_I64, n_rows_total + 1, 0, row0, n_off, off, dxpl, NULL, err))
        goto fail;
    size_t n_values = n_rows ? (size_t)(offsets[n_rows] - offsets[0]) : 0;
    if (h5out_write_rows(grp, "values", t, n_values_total, 0, value0, n_values, values, dxpl, NULL, err))
        goto fail;
    rc = 0;
fail:
    if (grp >= 0 && H5Gclose(grp) < 0) rc = -1;
    if (lcpl >= 0) H5Pclose(lcpl);
    free(off);
    if (rc) lafn_err_wrap(err, "CSR dataset '%s'", name);
    return rc;
}

int h5out_stage_name_ok(const char *stage) {
    if (!stage || !stage[0]) return 0;
    for (const char *c = stage; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}
