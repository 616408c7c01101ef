/* testutil: check macros, paths and the MPI tests' temporary directory, shared by the test programs. */
#ifndef LAFN_TESTUTIL_H
#define LAFN_TESTUTIL_H

#include <mpi.h>
#include <stddef.h>
#include <stdio.h>

/* Evaluates cond once and counts the check in testutil_checks; if cond is false,
 * also counts a failure in testutil_failures and prints file:line, the condition
 * and the printf-style message, then lets the test go on. Every check of a test
 * goes through CHECK, so these two counters are all testutil_finish needs. */
#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        testutil_checks++;                                                           \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            testutil_failures++;                                                     \
        }                                                                            \
    } while (0)

/* Checks made and checks failed so far in this process (for MPI tests: on this rank). */
extern int testutil_checks;
extern int testutil_failures;

/* Path of the repository (compile-time) joined with rel; returns a static buffer. */
const char *testutil_repo_path(const char *rel);
/* Path of the default real model (models/gemma-3-270m-q4_k_m.gguf, or $LAFN_MODEL). */
const char *testutil_default_model(void);
/* Path of the MzsRE data folder ($LAFN_MZSRE, else ../shared/data/mzsre beside the repository). */
const char *testutil_mzsre_dir(void);

/* Path of the built `lafn` driver: BUILD/lafn for a test running as
 * BUILD/tests/NAME (found from /proc/self/exe); NULL if it is not there. */
const char *testutil_lafn_binary(void);

/* The whole file at path as a NUL-terminated string (the caller frees), or
 * NULL after printing why to stderr. */
char *testutil_read_text(const char *path);

/* The whole file at path with its length in *n (n may be NULL), NUL-terminated, or NULL if it cannot be read
 * (nothing printed: for files that may be absent). The caller frees. */
char *testutil_read_file(const char *path, size_t *n);

/* Copies the file from to the file to (created or truncated); a failure is a failed check naming both. */
void testutil_copy_file(const char *from, const char *to);

/* Collective over comm: rank 0 makes a new, empty directory /tmp/lafn_TAG_XXXXXX (mkdtemp; the make is a check
 * it counts) and every rank gets its path in out (cap bytes). A test cannot go on without it: if it cannot be
 * made, or its path does not fit in cap, rank 0 says why and aborts comm. The caller ends it with
 * testutil_mpi_tmpdir_end. */
void testutil_mpi_tmpdir(MPI_Comm comm, const char *tag, char *out, size_t cap);

/* Collective over comm, at the end of a test: sums testutil_failures over the ranks of comm and returns the sum.
 * With no failure, rank 0 removes dir and everything in it (a removal that fails is a failed check of rank 0,
 * made after the sum); with failures, dir is kept for a look and rank 0 names it on stderr. */
int testutil_mpi_tmpdir_end(MPI_Comm comm, const char *dir);

/* Prints "<name>: N passed, M failed" from the counters (passed = checks - failures)
 * and returns the process exit status: 1 if a check failed or no check was made
 * at all (a test that checked nothing has not passed; it says so on stderr), else 0.
 * In MPI tests it covers this rank's checks only; tests that report on rank 0
 * alone reduce testutil_failures over the ranks for their exit status. */
int testutil_finish(const char *name);

#endif
