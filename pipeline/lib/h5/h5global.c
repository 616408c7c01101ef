/* h5global: run-wide datasets added to a merged stage file — copy, add, sync, rename. */
#include "h5/h5global.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5/h5fault.h"
#include "h5/h5out_int.h"
#include "base/mpi_status.h"

/* Copies file src to dst (created or truncated). Returns 0, or -1 with err and the errno of the failed call in
 * *saved_errno. */
static int copy_file(const char *src, const char *dst, int *saved_errno, lafn_err *err) {
    FILE *in = fopen(src, "rb"), *out = NULL;
    char *buf = malloc(1 << 20);
    int rc = -1;
    if (!in) { lafn_err_set(err, "cannot open '%s': %s", src, strerror(errno)); goto fail; }
    if (!(out = fopen(dst, "wb"))) { lafn_err_set(err, "cannot create '%s': %s", dst, strerror(errno)); goto fail; }
    if (!buf) { lafn_err_set(err, "out of memory copying '%s'", src); goto fail; }
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            *saved_errno = errno;
            lafn_err_set(err, "cannot write '%s'", dst);
            goto fail;
        }
    if (ferror(in)) { lafn_err_set(err, "cannot read '%s'", src); goto fail; }
    rc = 0;
fail:
    if (out && fclose(out) != 0 && rc == 0) {
        *saved_errno = errno;
        rc = lafn_err_set(err, "cannot close '%s': %s", dst, strerror(errno));
    }
    if (in) fclose(in);
    free(buf);
    return rc;
}

/* Writes the datasets and attributes into the open file. */
static int write_items(hid_t file, const h5global_dataset *ds, size_t n_ds, const h5global_attr *attrs,
                       size_t n_attrs, lafn_err *err) {
    for (size_t i = 0; i < n_ds; i++)
        if (h5out_write_rows(file, ds[i].name, ds[i].dtype, ds[i].n0, ds[i].n1, 0, ds[i].n0, ds[i].values,
                          H5P_DEFAULT, NULL, err) != 0)
            return -1;
    for (size_t i = 0; i < n_attrs; i++)
        if (h5out_attr_put_string(file, attrs[i].name, attrs[i].value, err) != 0) return -1;
    return h5out_attr_put_string(file, "lafn_global_complete", "yes", err);
}

int h5global_amend(const char *dir, const char *stage, h5global_writer write, void *arg, lafn_err *err) {
    char path[4096], tmp[4200];
    if (h5out_stage_path(path, sizeof path, dir, stage, 0) != 0)
        return lafn_err_set(err, "%s: output path too long", stage);
    snprintf(tmp, sizeof tmp, "%s.global.tmp", path);
    hid_t file = H5I_INVALID_HID;
    int rc = -1, saved_errno = 0;
    struct stat st;
    if (h5out_check_space(dir, path, H5OUT_SPACE_SLACK + (stat(path, &st) == 0 ? (double)st.st_size : 0.0),
                          "add the run-wide datasets", err) != 0)
        return -1;
    if (copy_file(path, tmp, &saved_errno, err) != 0) goto fail;
    if ((file = h5out_fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT, err)) < 0) {
        lafn_err_wrap(err, "adding the run-wide datasets");
        goto fail;
    }
    if (write(file, path, arg, err) != 0) {
        saved_errno = errno;
        goto fail;
    }
    h5fault_point(stage, "global", 0); /* rank 0 amends */
    rc = 0;
fail:
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0) {
        saved_errno = errno;
        rc = lafn_err_set(err, "cannot close '%s'", tmp);
    }
    if (rc == 0 && h5out_sync_path(tmp) != 0) {
        saved_errno = errno;
        rc = lafn_err_set(err, "cannot sync '%s'", tmp);
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = lafn_err_set(err, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc != 0) {
        lafn_err_disk_full(err, dir, saved_errno, H5OUT_FULL_HINT);
        remove(tmp);
    }
    if (rc == 0 && h5out_sync_dir(dir) != 0) rc = lafn_err_set(err, "%s: renamed, but its folder cannot be synced", path);
    return rc;
}

/* What h5global_add writes, for h5global_amend. */
typedef struct {
    const h5global_dataset *ds;
    size_t n_ds;
    const h5global_attr *attrs;
    size_t n_attrs;
} global_items;

static int write_global_items(hid_t file, const char *path, void *arg, lafn_err *err) {
    const global_items *g = arg;
    return write_items(file, g->ds, g->n_ds, g->attrs, g->n_attrs, err) == 0
               ? 0 : lafn_err_wrap(err, "%s: run-wide datasets", path);
}

int h5global_add(const char *dir, const char *stage, const h5global_dataset *ds, size_t n_ds,
                 const h5global_attr *attrs, size_t n_attrs, MPI_Comm comm, lafn_err *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    global_items g = {ds, n_ds, attrs, n_attrs};
    int rc = rank == 0 ? h5global_amend(dir, stage, write_global_items, &g, err) : 0;
    return mpi_status_agree(comm, rc, err);
}

int h5global_check(hid_t file, const char *path, lafn_err *err) {
    char *v = NULL;
    if (h5out_attr_string(file, "lafn_global_complete", &v, err) != 0)
        return lafn_err_set(err, "%s: no run-wide datasets (the stage was interrupted after its merge; run it "
                            "again with run.resume = true to finish it)", path);
    int ok = strcmp(v, "yes") == 0;
    free(v);
    return ok ? 0 : lafn_err_set(err, "%s: lafn_global_complete is not 'yes'", path);
}
