/* h5global: run-wide datasets (statistics, atlases) added to a merged stage file after the per-fact merge. */
#ifndef LAFN_H5GLOBAL_H
#define LAFN_H5GLOBAL_H

#include <mpi.h>
#include <stddef.h>

#include "h5/h5out.h"
#include "base/lafn_err.h"

/* One run-wide dataset: shape (n0) when n1 == 0, else (n0, n1). */
typedef struct {
    const char *name;   /* HDF5 path, e.g. "global/lafn_per_layer"; groups are created */
    h5out_dtype dtype;
    size_t n0, n1;
    const void *values; /* n0 * max(n1, 1) elements of dtype */
} h5global_dataset;

/* A string attribute of the root group. */
typedef struct {
    const char *name;
    const char *value;
} h5global_attr;

/* Adds to an open copy of a merged stage file; path names the stage file for messages. */
typedef int (*h5global_writer)(hid_t file, const char *path, void *arg, lafn_err *err);

/* Serial (one process): copies DIR/STAGE.h5 to DIR/STAGE.h5.global.tmp, lets
 * write add to the copy, syncs it and renames it over STAGE.h5 — so STAGE.h5
 * is at every moment either the merged file or the amended one; on a failure
 * before the rename the copy is removed and STAGE.h5 is untouched (a failed
 * directory sync after it is reported, the amended file in place). Returns 0,
 * or -1 with err. */
int h5global_amend(const char *dir, const char *stage, h5global_writer write, void *arg, lafn_err *err);

/* Collective over comm; only rank 0's arguments are used. Rank 0 copies
 * DIR/STAGE.h5 to DIR/STAGE.h5.global.tmp, adds the datasets, the attributes
 * and the attribute lafn_global_complete = "yes", syncs the copy and renames it
 * over STAGE.h5 — so STAGE.h5 is at every moment either the merged file or the
 * complete one. Returns 0 on every rank, or -1 on every rank with err. */
int h5global_add(const char *dir, const char *stage, const h5global_dataset *ds, size_t n_ds,
                 const h5global_attr *attrs, size_t n_attrs, MPI_Comm comm, lafn_err *err);

/* Checks that an open stage file carries its run-wide datasets
 * (lafn_global_complete = "yes"). Returns 0, or -1 with err naming path. */
int h5global_check(hid_t file, const char *path, lafn_err *err);

#endif
