/* h5out_int: helpers shared by the h5out_*.c files (attributes, typed hyperslab writes), not a public interface. */
#ifndef LAFN_H5OUT_INT_H
#define LAFN_H5OUT_INT_H

#include "h5/h5out.h"

/* Scalar attributes on obj. Return 0, or -1 with err naming the attribute. */
int h5out_attr_put_string(hid_t obj, const char *name, const char *value, lafn_err *err);
int h5out_attr_put_int(hid_t obj, const char *name, int64_t value, lafn_err *err);
int h5out_attr_get_int(hid_t obj, const char *name, int64_t *out, lafn_err *err);

/* Native memory type and little-endian file type of dtype. */
hid_t h5out_mem_type(h5out_dtype t);
hid_t h5out_file_type(h5out_dtype t);

/* Creates dataset `name` in loc of shape (n_rows_total) when row_len == 0, else
 * (n_rows_total, row_len), and writes this rank's rows [row0, row0 + n_rows)
 * from buf (ranks with n_rows == 0 select nothing but still take part). dxpl
 * selects collective or independent transfer. Intermediate groups are created.
 * lafn_layout (may be NULL) is written as attribute "lafn_layout". Returns 0, or
 * -1 with err naming the dataset. */
int h5out_write_rows(hid_t loc, const char *name, h5out_dtype t, size_t n_rows_total, size_t row_len,
                  size_t row0, size_t n_rows, const void *buf, hid_t dxpl, const char *layout,
                  lafn_err *err);

/* Writes a CSR dataset: group `name` (attribute lafn_layout = "csr") with
 * offsets (n_rows_total + 1) and values (n_values_total). This rank writes
 * offsets rows [row0, row0 + n_rows) — plus the closing entry when `last` —
 * from offsets (n_rows + 1 local entries from 0), shifted by value0, and values
 * [value0, value0 + offsets[n_rows]). Returns 0, or -1 with err set. */
int h5out_write_csr(hid_t loc, const char *name, h5out_dtype t, size_t n_rows_total, size_t row0,
                 size_t n_rows, const int64_t *offsets, size_t n_values_total, size_t value0,
                 const void *values, int last, hid_t dxpl, lafn_err *err);

/* What a disk-full message tells the user (lafn_err_disk_full's hint). */
#define H5OUT_FULL_HINT "the committed shards are kept: free space and run the stage again to resume"

/* 1 if stage is a non-empty name of [a-z0-9_] (it becomes part of file names). */
int h5out_stage_name_ok(const char *stage);

/* Checks a batch's dataset against its description: layout/dtype/row_len
 * sane, CSR offsets of n_facts + 1 entries starting at 0, non-decreasing. */
int h5out_check_batch(const h5out_dataset *d, size_t n_facts, lafn_err *err);

/* Opens a committed shard read-only (serial HDF5) and checks its identity
 * (stage, format version, run_id). Returns 0 with *file open, or -1 with err set. */
int h5out_shard_open(const char *path, const char *stage, const char *run_id, hid_t *file,
                  lafn_err *err);

/* Stage file names: "DIR/STAGE.h5" (tmp: with ".tmp"), into buf; -1 if too long. */
int h5out_stage_path(char *buf, size_t cap, const char *dir, const char *stage, int tmp);

/* Bytes of room wanted beyond the files a merge or an amendment reads (h5out_check_space). */
#define H5OUT_SPACE_SLACK (64.0 * 1024.0)

/* Before writing path in dir (what: "merge", "add the run-wide datasets"): 0 if dir has at least need bytes
 * available (or the file system does not say), else -1 with err naming path, both amounts and a full disk.
 * HDF5 (1.10) handles a write that runs out of space badly — a collective one can leave the ranks waiting on
 * each other, a failed close crashes at exit — so the writers check before they start. */
int h5out_check_space(const char *dir, const char *path, double need, const char *what, lafn_err *err);

/* Recomputes the superblock checksum of an HDF5 file image of size bytes in place: HDF5 1.10's
 * H5Fget_file_image clears the superblock's status flags without it (HDFGroup/hdf5#1915, fixed in 2025), so
 * the image would not open. Versions 0 and 1 (no checksum) are left alone. Returns 0, or -1 if image does not
 * start with an HDF5 superblock of 4- or 8-byte addresses. */
int h5out_image_fix_superblock(uint8_t *image, size_t size);

/* fsync of a file and of the directory holding it; 0 or -1. */
int h5out_sync_path(const char *path);
int h5out_sync_dir(const char *dir);

#endif
