/* testutil: check counters, repository-relative paths and the MPI tests' temporary directory. */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file_map.h"

int testutil_checks = 0;
int testutil_failures = 0;

const char *testutil_repo_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", LAFN_SOURCE_DIR, rel);
    return buf;
}

const char *testutil_default_model(void) {
    static char buf[4096];
    const char *env = getenv("LAFN_MODEL");
    if (env && *env) return env;
    snprintf(buf, sizeof buf, "%s/models/gemma-3-270m-q4_k_m.gguf", LAFN_SOURCE_DIR);
    return buf;
}

const char *testutil_mzsre_dir(void) {
    static char buf[4096];
    const char *env = getenv("LAFN_MZSRE");
    if (env && *env) return env;
    snprintf(buf, sizeof buf, "%s/../shared/data/mzsre", LAFN_SOURCE_DIR);
    return buf;
}

const char *testutil_lafn_binary(void) {
    static char path[PATH_MAX + 8];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) { /* BUILD/tests/NAME -> BUILD */
        char *slash = strrchr(exe, '/');
        if (!slash) return NULL;
        *slash = '\0';
    }
    snprintf(path, sizeof path, "%s/lafn", exe);
    return access(path, X_OK) == 0 ? path : NULL;
}

char *testutil_read_text(const char *path) {
    char *buf = NULL;
    size_t len = 0;
    lafn_err err = {{0}};
    if (file_read_all(path, SIZE_MAX, &buf, &len, &err) != 0) fprintf(stderr, "%s\n", err.msg);
    return buf;
}

char *testutil_read_file(const char *path, size_t *n) {
    char *buf = NULL;
    size_t len = 0;
    lafn_err err = {{0}};
    if (file_read_all(path, SIZE_MAX, &buf, &len, &err) != 0) return NULL;
    if (n) *n = len;
    return buf;
}

void testutil_copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int ok = a && b;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    CHECK(ok, "cannot copy %s to %s", from, to);
}

void testutil_mpi_tmpdir(MPI_Comm comm, const char *tag, char *out, size_t cap) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        int n = snprintf(out, cap, "/tmp/lafn_%s_XXXXXX", tag);
        int fits = n >= 0 && (size_t)n < cap;
        if (!fits) errno = ENAMETOOLONG;
        int made = fits && mkdtemp(out) != NULL;
        CHECK(made, "cannot make a temporary directory /tmp/lafn_%s_XXXXXX: %s", tag, strerror(errno));
        if (!made) MPI_Abort(comm, 1);
    }
    MPI_Bcast(out, (int)cap, MPI_CHAR, 0, comm);
}

int testutil_mpi_tmpdir_end(MPI_Comm comm, const char *dir) {
    int rank, failures = testutil_failures, total = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, comm);
    if (rank == 0 && total) fprintf(stderr, "%s is kept for a look: %d checks failed\n", dir, total);
    if (rank == 0 && !total) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0, "cannot remove %s", dir);
    }
    return total;
}

int testutil_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, testutil_checks - testutil_failures, testutil_failures);
    if (testutil_checks == 0) fprintf(stderr, "%s: no check was made\n", name);
    return testutil_failures > 0 || testutil_checks == 0 ? 1 : 0;
}
