/* h5out_shard: one rank's batch of finished facts as a small HDF5 file committed by rename; listing shards; resume. */
#include "h5/h5out_int.h"
#include "h5/h5fault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes facts and datasets into an open serial file. */
static int shard_fill(hid_t file, const h5out_provenance *p, int rank, size_t seq,
                      const int64_t *facts, size_t n, const h5out_dataset *ds, size_t n_ds,
                      lafn_err *err) {
    if (h5out_provenance_write(file, p, "shard", MPI_COMM_SELF, err)) return -1;
    if (h5out_attr_put_int(file, "lafn_shard_rank", rank, err)) return -1;
    if (h5out_attr_put_int(file, "lafn_shard_seq", (int64_t)seq, err)) return -1;
    if (h5out_write_rows(file, "facts", H5OUT_I64, n, 0, 0, n, facts, H5P_DEFAULT, "rows", err)) return -1;
    for (size_t i = 0; i < n_ds; i++) {
        const h5out_dataset *d = &ds[i];
        int rc = d->layout == H5OUT_ROWS
            ? h5out_write_rows(file, d->name, d->dtype, n, d->row_len, 0, n, d->values, H5P_DEFAULT,
                            "rows", err)
            : h5out_write_csr(file, d->name, d->dtype, n, 0, n, d->offsets, (size_t)d->offsets[n], 0,
                           d->values, 1, H5P_DEFAULT, err);
        if (rc) return -1;
    }
    return 0;
}

/* The shard as an HDF5 file image built in memory (core driver, nothing on disk): *image (the caller frees) and
 * *size. HDF5 never touches the disk here, so a full disk cannot leave it a half-closed file. */
static int shard_image(const char *tmp, const h5out_provenance *p, int rank, size_t seq, const int64_t *facts,
                       size_t n_facts, const h5out_dataset *ds, size_t n_ds, void **image, size_t *size,
                       lafn_err *err) {
    hid_t fapl = H5I_INVALID_HID, file = H5I_INVALID_HID;
    int rc = -1;
    *image = NULL;
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        lafn_err_set(err, "%s: cannot set up file access", tmp);
        goto fail;
    }
    if ((file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) {
        lafn_err_set(err, "%s: cannot create in memory", tmp);
        goto fail;
    }
    if (shard_fill(file, p, rank, seq, facts, n_facts, ds, n_ds, err)) {
        lafn_err_wrap(err, "%s", tmp);
        goto fail;
    }
    ssize_t n = H5Fflush(file, H5F_SCOPE_LOCAL) < 0 ? -1 : H5Fget_file_image(file, NULL, 0);
    if (n <= 0 || !(*image = malloc((size_t)n)) || H5Fget_file_image(file, *image, (size_t)n) != n ||
        h5out_image_fix_superblock(*image, (size_t)n) != 0) {
        lafn_err_set(err, "%s: cannot take the file image (%zd bytes)", tmp, n);
        goto fail;
    }
    *size = (size_t)n;
    rc = 0;
fail:
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0) rc = lafn_err_set(err, "%s: cannot close in memory", tmp);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc) {
        free(*image);
        *image = NULL;
    }
    return rc;
}

/* Writes size bytes to tmp (created or truncated) and syncs it. Returns 0, or -1 with errno set. */
static int write_synced(const char *tmp, const void *image, size_t size) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    for (size_t at = 0; at < size;) {
        ssize_t w = write(fd, (const char *)image + at, size - at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            errno = e;
            return -1;
        }
        at += (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

int h5out_shard_write(const char *dir, const h5out_provenance *p, int rank, size_t seq,
                      const int64_t *facts, size_t n_facts, const h5out_dataset *ds, size_t n_ds,
                      lafn_err *err) {
    char path[4096], tmp[4200];
    if (!h5out_stage_name_ok(p->stage) || !p->run_id || !p->run_id[0])
        return lafn_err_set(err, "shard: stage '%s' must be [a-z0-9_]+ and run_id non-empty",
                            p->stage ? p->stage : "(null)");
    if (n_facts == 0 || rank < 0) return lafn_err_set(err, "shard: needs >= 1 fact and rank >= 0");
    int n = snprintf(path, sizeof path, "%s/%s.shard-%d-%zu.h5", dir, p->stage, rank, seq);
    if (n < 0 || (size_t)n >= sizeof path) return lafn_err_set(err, "shard: path too long in %s", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (size_t i = 0; i < n_ds; i++)
        if (h5out_check_batch(&ds[i], n_facts, err)) return lafn_err_wrap(err, "shard %s", path);
    void *image = NULL;
    size_t size = 0;
    if (shard_image(tmp, p, rank, seq, facts, n_facts, ds, n_ds, &image, &size, err)) return -1;
    int rc = 0;
    if (write_synced(tmp, image, size) != 0) {
        int saved_errno = errno;
        rc = lafn_err_set(err, "%s: cannot write %zu bytes", tmp, size);
        if (!lafn_err_disk_full(err, dir, saved_errno, H5OUT_FULL_HINT))
            lafn_err_set(err, "%s: cannot write %zu bytes: %s", tmp, size, strerror(saved_errno));
        unlink(tmp);
    } else if (rename(tmp, path) != 0 || h5out_sync_dir(dir) != 0) {
        rc = lafn_err_set(err, "%s: cannot rename to %s and sync the folder: %s", tmp, path, strerror(errno));
        unlink(tmp);
    }
    free(image);
    if (rc == 0) h5fault_point(p->stage, "shard", rank);
    return rc;
}

/* Parses "STAGE.shard-RANK-SEQ.h5" exactly; 0 if name is a committed shard of stage. */
static int parse_shard_name(const char *name, const char *stage, int *rank, size_t *seq) {
    size_t ls = strlen(stage);
    if (strncmp(name, stage, ls) || strncmp(name + ls, ".shard-", 7)) return -1;
    const char *p = name + ls + 7;
    char *end;
    if (*p < '0' || *p > '9') return -1;
    unsigned long r = strtoul(p, &end, 10);
    if (*end != '-' || r > 0x7fffffffUL || end[1] < '0' || end[1] > '9') return -1;
    unsigned long long s = strtoull(end + 1, &end, 10);
    if (strcmp(end, ".h5")) return -1;
    *rank = (int)r;
    *seq = (size_t)s;
    return 0;
}

static int shard_cmp(const void *a, const void *b) {
    const h5out_shard *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void h5out_shards_free(h5out_shard *s, size_t n) {
    for (size_t i = 0; s && i < n; i++) free(s[i].path);
    free(s);
}

int h5out_shard_list(const char *dir, const char *stage, h5out_shard **out, size_t *n,
                     lafn_err *err) {
    DIR *d = opendir(dir);
    h5out_shard *list = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    *out = NULL;
    *n = 0;
    if (!d) return lafn_err_set(err, "%s: cannot open directory", dir);
    while ((e = readdir(d))) {
        int rank;
        size_t seq;
        if (parse_shard_name(e->d_name, stage, &rank, &seq)) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            h5out_shard *g = realloc(list, cap * sizeof *g);
            if (!g) goto oom;
            list = g;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(list[cnt].path = malloc(len))) goto oom;
        snprintf(list[cnt].path, len, "%s/%s", dir, e->d_name);
        list[cnt].rank = rank;
        list[cnt++].seq = seq;
    }
    closedir(d);
    if (cnt) qsort(list, cnt, sizeof *list, shard_cmp);
    *out = list;
    *n = cnt;
    return 0;
oom:
    closedir(d);
    h5out_shards_free(list, cnt);
    return lafn_err_set(err, "%s: out of memory listing shards", dir);
}

/* Opens a committed shard read-only (serial) and checks its identity. */
int h5out_shard_open(const char *path, const char *stage, const char *run_id, hid_t *file,
                  lafn_err *err) {
    hid_t f = H5I_INVALID_HID;
    if ((f = h5out_fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT, err)) < 0) return lafn_err_wrap(err, "a committed shard");
    if (h5out_check_identity(f, path, stage, run_id, err)) {
        H5Fclose(f);
        return -1;
    }
    *file = f;
    return 0;
}

/* Why the committed shard at path is damaged — not a readable HDF5 file, or its facts cannot be read — into why;
 * 0 if it is sound (and of this stage and run), 1 if damaged, -1 with err if it belongs to another stage or run. */
static int shard_damage(const char *path, const char *stage, const char *run_id, char *why, size_t cap,
                        lafn_err *err) {
    hid_t f = H5I_INVALID_HID;
    lafn_err open_err = {{0}};
    if ((f = h5out_fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT, &open_err)) < 0) {
        snprintf(why, cap, "not a readable HDF5 file, truncated or overwritten (%.400s)", open_err.msg);
        return 1;
    }
    int64_t *facts = NULL;
    size_t n = 0;
    lafn_err read_err = {{0}};
    int rc = h5out_check_identity(f, path, stage, run_id, err);
    if (rc == 0) {
        H5E_BEGIN_TRY { rc = h5out_read_all(f, path, "facts", H5OUT_I64, 0, (void **)&facts, &n, &read_err); } H5E_END_TRY;
        if (rc != 0 || n == 0) {
            snprintf(why, cap, "%.500s", rc != 0 ? read_err.msg : "it holds no facts");
            rc = 1;
        }
    }
    free(facts);
    H5Fclose(f);
    return rc;
}

int h5out_shards_set_aside(const char *dir, const char *stage, const char *run_id, FILE *log, lafn_err *err) {
    h5out_shard *sh = NULL;
    size_t n_sh = 0;
    int rc = h5out_shard_list(dir, stage, &sh, &n_sh, err);
    for (size_t i = 0; rc == 0 && i < n_sh; i++) {
        char why[600], aside[4200];
        int bad = shard_damage(sh[i].path, stage, run_id, why, sizeof why, err);
        if (bad <= 0) {
            rc = bad;
            continue;
        }
        snprintf(aside, sizeof aside, "%s.damaged", sh[i].path);
        if (rename(sh[i].path, aside) != 0 || h5out_sync_dir(dir) != 0)
            rc = lafn_err_set(err, "%s: committed shard is damaged (%s) and cannot be set aside as %s: %s", sh[i].path,
                              why, aside, strerror(errno));
        else if (log)
            fprintf(log, "%s: committed shard %s is damaged (%s): set aside as %s, never merged; its facts are done "
                         "again\n", stage, sh[i].path, why, aside);
    }
    h5out_shards_free(sh, n_sh);
    return rc;
}

static int i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int h5out_resume(const char *dir, const char *stage, const char *run_id, int rank,
                 int64_t **done, size_t *n_done, size_t *next_seq, lafn_err *err) {
    h5out_shard *sh = NULL;
    size_t n_sh = 0, cnt = 0;
    int64_t *all = NULL;
    *done = NULL;
    *n_done = 0;
    *next_seq = 0;
    if (h5out_shard_list(dir, stage, &sh, &n_sh, err)) return -1;
    for (size_t i = 0; i < n_sh; i++) {
        hid_t f = H5I_INVALID_HID;
        int64_t *facts = NULL;
        size_t n = 0;
        if (sh[i].rank == rank && sh[i].seq >= *next_seq) *next_seq = sh[i].seq + 1;
        if (h5out_shard_open(sh[i].path, stage, run_id, &f, err)) goto fail;
        int rc = h5out_read_all(f, sh[i].path, "facts", H5OUT_I64, 0, (void **)&facts, &n, err);
        if (H5Fclose(f) < 0 && !rc) rc = lafn_err_set(err, "%s: cannot close", sh[i].path);
        int64_t *g = rc ? NULL : realloc(all, (cnt + n + 1) * sizeof *all);
        if (!g) {
            free(facts);
            if (!rc) lafn_err_set(err, "%s: out of memory", sh[i].path);
            goto fail;
        }
        all = g;
        memcpy(all + cnt, facts, n * sizeof *all);
        cnt += n;
        free(facts);
    }
    if (cnt) qsort(all, cnt, sizeof *all, i64_cmp);
    size_t u = 0;
    for (size_t i = 0; i < cnt; i++)
        if (u == 0 || all[i] != all[u - 1]) all[u++] = all[i];
    h5out_shards_free(sh, n_sh);
    *done = all;
    *n_done = u;
    return 0;
fail:
    free(all);
    h5out_shards_free(sh, n_sh);
    return -1;
}
