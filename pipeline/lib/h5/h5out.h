/* h5out: durable stage outputs in parallel HDF5 — provenance, identity, per-rank shards, resume, collective merge.
 *
 * Files of a stage STAGE in a run's output directory (docs/HDF5_LAYOUT.md):
 *   STAGE.shard-RANK-SEQ.h5        one batch of finished facts written by one rank
 *   STAGE.shard-RANK-SEQ.h5.tmp    the same while being written (ignored by everyone)
 *   STAGE.h5                       the merged stage file (STAGE.h5.tmp while merging)
 * A parallel HDF5 file killed mid-write is generally unreadable, so a file is
 * written under its .tmp name, closed, and renamed: the rename is the commit point.
 *
 * Every file's root group carries string attributes: the identity
 * (lafn_stage, lafn_run_id, lafn_file_kind "shard"/"stage") and the integer
 * lafn_format_version; the provenance (lafn_pipeline_file, lafn_config_resolved,
 * lafn_model_path, lafn_model_size, lafn_model_sha256, lafn_command_line,
 * lafn_version_mpi, lafn_version_hdf5, lafn_version_openblas,
 * lafn_version_libconfig, lafn_git_revision, lafn_git_revision_source,
 * lafn_git_dirty, lafn_host, lafn_time_utc).
 * Data: /facts (int64, one row per fact: the fact's index in the data set);
 * per-fact fixed-size rows as a 2-D dataset NAME (n_facts, row_len); ragged
 * per-fact lists as CSR: NAME/offsets (int64, n_facts + 1, offsets[0] = 0,
 * non-decreasing) and NAME/values (the lists concatenated; fact i owns
 * values[offsets[i] .. offsets[i+1])). Each data object has an attribute
 * lafn_layout = "rows" or "csr". Row i of every dataset belongs to facts[i]. */
#ifndef LAFN_H5OUT_H
#define LAFN_H5OUT_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/lafn_err.h"

#define H5OUT_FORMAT_VERSION 1

/* What identifies a run's stage output and where it came from. All strings are
 * the caller's; NULL is written as "". stage (a name of [a-z0-9_]) and run_id
 * must be non-empty. model_size is the file size in bytes as text; model_sha256
 * the hex digest of the whole model file. */
typedef struct {
    const char *stage;
    const char *run_id;
    const char *pipeline_text;   /* the pipeline file as read */
    const char *config_resolved; /* config_print of the resolved configuration */
    const char *model_path;
    const char *model_size;
    const char *model_sha256;
    const char *command_line;
} h5out_provenance;

typedef enum { H5OUT_I32, H5OUT_I64, H5OUT_F32, H5OUT_F64, H5OUT_U8 } h5out_dtype; /* U8: bytes, e.g. UTF-8 text */
typedef enum { H5OUT_ROWS, H5OUT_CSR } h5out_layout;

/* The h5out_dtype of what ptr points to (int32_t, int64_t, float, double or uint8_t; another type does not
 * compile): a dataset's dtype can follow from the type of its buffer. */
#define H5OUT_DTYPE_OF(ptr) \
    _Generic(*(ptr), int32_t : H5OUT_I32, int64_t : H5OUT_I64, float : H5OUT_F32, double : H5OUT_F64, \
             uint8_t : H5OUT_U8)

/* One per-fact dataset of a batch. As a merge schema, values/offsets are unused. */
typedef struct {
    const char *name; /* HDF5 path, e.g. "lafn" or "scores/blk.12.ffn_down"; groups are created */
    h5out_layout layout;
    h5out_dtype dtype;
    size_t row_len;         /* ROWS: elements per fact (> 0) */
    const void *values;     /* ROWS: (n_facts, row_len); CSR: offsets[n_facts] elements */
    const int64_t *offsets; /* CSR: n_facts + 1 entries, offsets[0] = 0, non-decreasing */
} h5out_dataset;

/* A committed shard found in a directory. */
typedef struct {
    char *path;
    int rank;
    size_t seq;
} h5out_shard;

/* Size in bytes of one element of dtype. */
size_t h5out_dtype_size(h5out_dtype t);

/* Writes the identity and provenance attributes to the root group of file
 * (collective over comm, the communicator the file was opened with; host, time
 * and git revision are taken on rank 0 and broadcast). kind is "shard" or
 * "stage". Returns 0, or -1 with err set. */
int h5out_provenance_write(hid_t file, const h5out_provenance *p, const char *kind, MPI_Comm comm, lafn_err *err);

/* Reads string attribute `name` of obj (fixed or variable length) into a new
 * string the caller frees. Returns 0, or -1 with err naming the attribute. */
int h5out_attr_string(hid_t obj, const char *name, char **out, lafn_err *err);

/* Checks the identity attributes of an open file: lafn_stage == stage,
 * lafn_format_version == H5OUT_FORMAT_VERSION and, unless run_id is NULL,
 * lafn_run_id == run_id. Returns 0, or -1 with err naming path and the mismatch. */
int h5out_check_identity(hid_t file, const char *path, const char *stage, const char *run_id, lafn_err *err);

/* Checks that path begins with the HDF5 signature and a superblock of version 2 or later: the
 * format lafn writes (libver v18..latest), whose superblock, object headers and heaps HDF5 checks
 * by checksum before parsing them. Older superblocks carry no checksums, and HDF5 1.10.8 parses
 * their metadata as found (a corrupt one made it request an 8 EB allocation), so a file in that
 * format is refused before HDF5 reads it. Returns 0, or -1 with err naming path and the version. */
int h5out_check_format(const char *path, lafn_err *err);

/* H5Fopen(path, flags, fapl) after h5out_check_format, with HDF5's error stack silenced: every reader of a file lafn
 * did not just write opens it so. Returns the file (the caller's to H5Fclose), or H5I_INVALID_HID with err: the
 * format check's message, or "PATH: cannot open as HDF5 (missing, or not a complete HDF5 file)". */
hid_t h5out_fopen(const char *path, unsigned flags, hid_t fapl, lafn_err *err);

/* Opens a merged stage file read-only, collectively over comm (MPI-IO driver),
 * checks its format as h5out_check_format, its identity as h5out_check_identity and that it is not a shard. On success *file is the caller's
 * to H5Fclose. Returns 0, or -1 with err set and nothing left open. */
int h5out_open(const char *path, const char *stage, const char *run_id, MPI_Comm comm, hid_t *file, lafn_err *err);

/* Writes one rank's batch of n_facts (> 0) finished facts and its datasets to
 * DIR/STAGE.shard-RANK-SEQ.h5 (serial HDF5; written as .tmp, synced, renamed).
 * Returns 0, or -1 with err set; on failure no committed shard exists. */
int h5out_shard_write(const char *dir, const h5out_provenance *p, int rank, size_t seq, const int64_t *facts,
                      size_t n_facts, const h5out_dataset *ds, size_t n_ds, lafn_err *err);

/* Lists the committed shards of stage in dir (names STAGE.shard-RANK-SEQ.h5
 * exactly; .tmp files and others are ignored), sorted by rank then seq. The
 * caller frees with h5out_shards_free. Returns 0, or -1 with err set. */
int h5out_shard_list(const char *dir, const char *stage, h5out_shard **out, size_t *n, lafn_err *err);
void h5out_shards_free(h5out_shard *s, size_t n);

/* Before a resume, on one process: checks every committed shard of stage in
 * dir and renames each damaged one — not a readable HDF5 file (HDF5 refuses a
 * truncated file: its superblock records the end of file), or its /facts
 * unreadable or empty — to NAME.damaged, which no listing, resume or merge
 * matches: it is never merged, its facts are missing from h5out_resume's list
 * and so are done again. Each one set aside is named on log (may be NULL). A
 * shard of another stage or run is not damage but an error naming it, as in
 * h5out_resume. Returns 0, or -1 with err. */
int h5out_shards_set_aside(const char *dir, const char *stage, const char *run_id, FILE *log, lafn_err *err);

/* Resume: the sorted, distinct fact indices already in committed shards of
 * stage in dir (each shard's identity checked against stage and run_id), and
 * the first unused shard seq of `rank`. *done (may be NULL when *n_done is 0) is
 * the caller's to free. Returns 0, or -1 with err naming the shard at fault. */
int h5out_resume(const char *dir, const char *stage, const char *run_id, int rank, int64_t **done, size_t *n_done,
                 size_t *next_seq, lafn_err *err);

/* Collectively (every rank of comm, also ranks with no shard) merges the
 * committed shards of p->stage in dir into DIR/STAGE.h5: written as .tmp and
 * renamed only when complete, so a failed merge leaves an existing STAGE.h5
 * untouched. schema lists the datasets every shard must hold (name, layout,
 * dtype, row_len). Rows are in shard order (rank, seq); /facts maps rows to
 * facts; a fact in two shards is an error. Returns 0 on every rank, or -1 on
 * every rank with the same err. */
int h5out_merge(const char *dir, const h5out_provenance *p, const h5out_dataset *schema, size_t n_schema, MPI_Comm comm,
                lafn_err *err);

/* Reads a whole 1-D or 2-D dataset of an open file (serial or collective reads)
 * into a new buffer of dtype: checks the rank, that dims[1] == row_len for a
 * 2-D dataset (row_len 0: 1-D) and that the stored type is of dtype's class.
 * *n_rows gets dims[0]. Returns 0, or -1 with err naming path and dataset. */
int h5out_read_all(hid_t file, const char *path, const char *name, h5out_dtype dtype, size_t row_len, void **out,
                   size_t *n_rows, lafn_err *err);

/* Reads rows [row0, row0 + n_rows) of a ROWS dataset (row_len > 0) or a 1-D
 * dataset (row_len 0) into a new buffer of dtype, the caller's. For a stage's
 * ranks each reading its share of a stage file. Returns 0, or -1 with err naming
 * path, dataset and the range or shape at fault. */
int h5out_read_rows(hid_t file, const char *path, const char *name, h5out_dtype dtype, size_t row_len, size_t row0,
                    size_t n_rows, void **out, lafn_err *err);

/* Reads rows [row0, row0 + n_rows) of CSR dataset `name`: *offsets gets
 * n_rows + 1 entries rebased to start at 0, *values the rows' values (both new,
 * the caller's). The offsets read are checked (non-decreasing, inside values).
 * Returns 0, or -1 with err set. */
int h5out_read_csr(hid_t file, const char *path, const char *name, h5out_dtype dtype, size_t row0, size_t n_rows,
                   int64_t **offsets, void **values, lafn_err *err);

/* Reads dataset ds (layout, dtype, row_len from the schema) of n_facts rows:
 * ROWS into *values; CSR into *offsets (checked: n_facts + 1 entries, 0 first,
 * non-decreasing, last == number of values) and *values. Buffers are new and
 * the caller's. Returns 0, or -1 with err naming path, dataset and the fault. */
int h5out_read_dataset(hid_t file, const char *path, const h5out_dataset *ds, size_t n_facts, void **values,
                       int64_t **offsets, lafn_err *err);

#endif
