/* h5out_provenance: identity and provenance attributes of lafn HDF5 files, and opening a stage file with its identity checked. */
#include "h5/h5out_int.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int h5out_attr_put_string(hid_t obj, const char *name, const char *value, lafn_err *err) {
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    const char *v = value ? value : "";
    size_t len = strlen(v);
    int rc = -1;
    if ((type = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(type, len ? len : 1) < 0 ||
        H5Tset_strpad(type, H5T_STR_NULLPAD) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0)
        goto fail;
    if ((space = H5Screate(H5S_SCALAR)) < 0) goto fail;
    if ((attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
    if (H5Awrite(attr, type, len ? v : "") < 0) goto fail;
    rc = 0;
fail:
    if (attr >= 0 && H5Aclose(attr) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (rc) lafn_err_set(err, "cannot write attribute '%s' (%zu bytes)", name, len);
    return rc;
}

int h5out_attr_put_int(hid_t obj, const char *name, int64_t value, lafn_err *err) {
    hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    int rc = -1;
    if ((space = H5Screate(H5S_SCALAR)) < 0) goto fail;
    if ((attr = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
    if (H5Awrite(attr, H5T_NATIVE_INT64, &value) < 0) goto fail;
    rc = 0;
fail:
    if (attr >= 0 && H5Aclose(attr) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (rc) lafn_err_set(err, "cannot write attribute '%s'", name);
    return rc;
}

int h5out_attr_get_int(hid_t obj, const char *name, int64_t *out, lafn_err *err) {
    hid_t attr = H5I_INVALID_HID, space = H5I_INVALID_HID;
    int rc = -1;
    if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0) goto fail;
    if ((space = H5Aget_space(attr)) < 0 || H5Sget_simple_extent_npoints(space) != 1) goto fail;
    if (H5Aread(attr, H5T_NATIVE_INT64, out) < 0) goto fail;
    rc = 0;
fail:
    if (space >= 0) H5Sclose(space);
    if (attr >= 0) H5Aclose(attr);
    if (rc) lafn_err_set(err, "cannot read integer attribute '%s'", name);
    return rc;
}

/* Reads a scalar string attribute of open attr with file type ftype. */
static int attr_read_string(hid_t attr, hid_t ftype, char **out) {
    hid_t mtype = H5I_INVALID_HID;
    int rc = -1;
    char *s = NULL;
    if ((mtype = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0) goto fail;
    if (H5Tis_variable_str(ftype) > 0) {
        char *v = NULL;
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Aread(attr, mtype, &v) < 0 || !v) goto fail;
        s = strdup(v);
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(ftype);
        if (n == 0 || n > ((size_t)1 << 30) || H5Tset_size(mtype, n + 1) < 0) goto fail;
        if (H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0 || !(s = calloc(n + 1, 1))) goto fail;
        if (H5Aread(attr, mtype, s) < 0) goto fail;
    }
    if (!s) goto fail;
    *out = s;
    s = NULL;
    rc = 0;
fail:
    free(s);
    if (mtype >= 0) H5Tclose(mtype);
    return rc;
}

int h5out_attr_string(hid_t obj, const char *name, char **out, lafn_err *err) {
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    int rc = -1;
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return lafn_err_set(err, "no attribute '%s'", name);
    if ((attr = H5Aopen(obj, name, H5P_DEFAULT)) < 0) goto fail;
    if ((type = H5Aget_type(attr)) < 0 || H5Tget_class(type) != H5T_STRING) goto fail;
    if ((space = H5Aget_space(attr)) < 0 || H5Sget_simple_extent_npoints(space) != 1) goto fail;
    rc = attr_read_string(attr, type, out);
fail:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    if (rc) lafn_err_set(err, "cannot read attribute '%s' as one string", name);
    return rc;
}

/* Runs git with args in the source tree; first line of its output into out. 0 if git exited 0. */
static int run_git(char *const argv[], char *out, size_t cap) {
    int fds[2], status = 0, rc = -1;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    out[0] = '\0';
    if (pipe(fds)) return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int spawned = posix_spawnp(&pid, "git", &fa, NULL, argv, environ) == 0;
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (spawned && (r = read(fds[0], out + len, cap - 1 - len)) > 0 && len + 1 < cap)
        len += (size_t)r;
    char sink[256];
    while (spawned && read(fds[0], sink, sizeof sink) > 0) {}
    close(fds[0]);
    out[len] = '\0';
    out[strcspn(out, "\n")] = '\0';
    if (spawned && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = 0;
    return rc;
}

/* Git revision of the source tree: at run time if git and the tree are there
 * (asked once per process), else the compile-time definition. */
static void git_revision(char *rev, size_t cap, const char **source, char *dirty, size_t dcap) {
    static char c_rev[128], c_dirty[16];
    static const char *c_source;
    char dir[] = LAFN_SOURCE_DIR;
    char *rp[] = {"git", "-C", dir, "rev-parse", "HEAD", NULL};
    char *st[] = {"git", "-C", dir, "status", "--porcelain", "--untracked-files=no", NULL};
    if (!c_source) {
        snprintf(c_dirty, sizeof c_dirty, "unknown");
        char line[256];
        if (run_git(rp, c_rev, sizeof c_rev) == 0 && strlen(c_rev) >= 40) {
            c_source = "git rev-parse HEAD at run time in " LAFN_SOURCE_DIR;
            if (run_git(st, line, sizeof line) == 0)
                snprintf(c_dirty, sizeof c_dirty, "%s", line[0] ? "yes" : "no");
        } else {
#ifdef LAFN_GIT_REVISION
            snprintf(c_rev, sizeof c_rev, "%s", LAFN_GIT_REVISION);
            c_source = "compile-time definition LAFN_GIT_REVISION";
#else
            snprintf(c_rev, sizeof c_rev, "unknown");
            c_source = "unavailable (no git at run time, no LAFN_GIT_REVISION at compile time)";
#endif
        }
    }
    snprintf(rev, cap, "%s", c_rev);
    snprintf(dirty, dcap, "%s", c_dirty);
    *source = c_source;
}

/* The run-time facts of rank 0 (host, time, git, library versions) as one
 * NUL-separated buffer, the same on every rank. */
static char *runtime_facts(MPI_Comm comm, size_t *len_out) {
    int rank, len = 0;
    char *buf = NULL;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        char host[256] = "", when[64] = "", rev[128], dirty[16], mpi[MPI_MAX_LIBRARY_VERSION_STRING];
        const char *source = "";
        unsigned maj, min, rel;
        time_t now = time(NULL);
        struct tm tm;
        gethostname(host, sizeof host - 1);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        git_revision(rev, sizeof rev, &source, dirty, sizeof dirty);
        int mlen = 0;
        MPI_Get_library_version(mpi, &mlen);
        H5get_libversion(&maj, &min, &rel);
        size_t cap = 8192 + (size_t)mlen;
        buf = malloc(cap);
        if (buf)
            len = snprintf(buf, cap, "%s%c%s%c%s%c%s%c%s%c%s%c%u.%u.%u%c%s%c%d.%d.%d", host, 0,
                           when, 0, rev, 0, source, 0, dirty, 0, mpi, 0, maj, min, rel, 0,
                           openblas_get_config(), 0, LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
                           LIBCONFIG_VER_REVISION) + 1;
        if (len <= 0 || (size_t)len > cap) len = 0;
    }
    MPI_Bcast(&len, 1, MPI_INT, 0, comm);
    if (rank != 0) buf = len > 0 ? malloc((size_t)len) : NULL;
    if (len <= 0 || !buf) len = 0;
    int ok = len > 0, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    if (!all_ok) {
        free(buf);
        return NULL;
    }
    MPI_Bcast(buf, len, MPI_CHAR, 0, comm);
    *len_out = (size_t)len;
    return buf;
}

int h5out_provenance_write(hid_t file, const h5out_provenance *p, const char *kind, MPI_Comm comm,
                           lafn_err *err) {
    static const char *facts_names[] = {"lafn_host", "lafn_time_utc", "lafn_git_revision",
        "lafn_git_revision_source", "lafn_git_dirty", "lafn_version_mpi", "lafn_version_hdf5",
        "lafn_version_openblas", "lafn_version_libconfig"};
    size_t len = 0;
    char *facts = runtime_facts(comm, &len);
    if (!facts) return lafn_err_set(err, "provenance: cannot gather host, time and versions");
    int size = 1;
    MPI_Comm_size(comm, &size);
    const char *names[] = {"lafn_stage", "lafn_run_id", "lafn_file_kind", "lafn_pipeline_file",
        "lafn_config_resolved", "lafn_model_path", "lafn_model_size", "lafn_model_sha256",
        "lafn_command_line"};
    const char *vals[] = {p->stage, p->run_id, kind, p->pipeline_text, p->config_resolved,
        p->model_path, p->model_size, p->model_sha256, p->command_line};
    int rc = -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (h5out_attr_put_string(file, names[i], vals[i], err)) goto done;
    const char *f = facts;
    for (size_t i = 0; i < sizeof facts_names / sizeof facts_names[0]; i++, f += strlen(f) + 1)
        if (f >= facts + len || h5out_attr_put_string(file, facts_names[i], f, err)) goto done;
    if (h5out_attr_put_int(file, "lafn_format_version", H5OUT_FORMAT_VERSION, err)) goto done;
    if (h5out_attr_put_int(file, "lafn_mpi_ranks", size, err)) goto done;
    rc = 0;
done:
    free(facts);
    return rc;
}

int h5out_check_identity(hid_t file, const char *path, const char *stage, const char *run_id,
                         lafn_err *err) {
    char *got_stage = NULL, *got_run = NULL;
    int64_t version = -1;
    int rc = -1;
    if (h5out_attr_string(file, "lafn_stage", &got_stage, err)) {
        lafn_err_set(err, "%s: not a lafn stage file (no readable attribute lafn_stage)", path);
        goto done;
    }
    if (strcmp(got_stage, stage)) {
        lafn_err_set(err, "%s: file is from stage '%s', expected stage '%s'", path, got_stage, stage);
        goto done;
    }
    if (h5out_attr_get_int(file, "lafn_format_version", &version, err) || version != H5OUT_FORMAT_VERSION) {
        lafn_err_set(err, "%s: format version %lld, this lafn reads version %d", path,
                     (long long)version, H5OUT_FORMAT_VERSION);
        goto done;
    }
    if (run_id && (h5out_attr_string(file, "lafn_run_id", &got_run, err) || strcmp(got_run, run_id))) {
        lafn_err_set(err, "%s: file belongs to run '%s', this run is '%s'; the directory holds "
                     "another run's output: use a new run.output_dir or remove the old files",
                     path, got_run ? got_run : "?", run_id);
        goto done;
    }
    rc = 0;
done:
    free(got_stage);
    free(got_run);
    return rc;
}

int h5out_check_format(const char *path, lafn_err *err) {
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[9];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (!f) return lafn_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    if (n < sizeof head || memcmp(head, sig, sizeof sig))
        return lafn_err_set(err, "%s: not an HDF5 file (no HDF5 signature at its start)", path);
    if (head[8] < 2)
        return lafn_err_set(err, "%s: HDF5 superblock version %d, expected 2 or later (the format lafn writes, "
                            "with checksummed metadata); not a file lafn wrote, or rewritten by another tool",
                            path, head[8]);
    return 0;
}

hid_t h5out_fopen(const char *path, unsigned flags, hid_t fapl, lafn_err *err) {
    hid_t f = H5I_INVALID_HID;
    if (h5out_check_format(path, err)) return H5I_INVALID_HID;
    H5E_BEGIN_TRY { f = H5Fopen(path, flags, fapl); } H5E_END_TRY;
    if (f < 0) lafn_err_set(err, "%s: cannot open as HDF5 (missing, or not a complete HDF5 file)", path);
    return f;
}

int h5out_open(const char *path, const char *stage, const char *run_id, MPI_Comm comm,
               hid_t *file, lafn_err *err) {
    hid_t fapl = H5I_INVALID_HID, f = H5I_INVALID_HID;
    int rc = -1;
    *file = H5I_INVALID_HID;
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
        lafn_err_set(err, "%s: cannot set up MPI-IO file access", path);
        goto fail;
    }
    if ((f = h5out_fopen(path, H5F_ACC_RDONLY, fapl, err)) < 0) goto fail;
    if (h5out_check_identity(f, path, stage, run_id, err)) goto fail;
    char *kind = NULL;
    if (h5out_attr_string(f, "lafn_file_kind", &kind, err) || strcmp(kind, "stage")) {
        lafn_err_set(err, "%s: a file of kind '%s', not a merged stage file (merge the shards "
                     "first with h5out_merge)", path, kind ? kind : "?");
        free(kind);
        goto fail;
    }
    free(kind);
    *file = f;
    f = H5I_INVALID_HID;
    rc = 0;
fail:
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    return rc;
}
