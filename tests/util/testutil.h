/* testutil: check macros and paths shared by the test programs. */
#ifndef LAFN_TESTUTIL_H
#define LAFN_TESTUTIL_H

#include <stdio.h>

/* Counts a failure (printing file:line and the message) without stopping the test. */
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            testutil_failures++;                                                \
        }                                                                       \
    } while (0)

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

/* Prints "<name>: N passed, M failed" and returns the process exit status. */
int testutil_finish(const char *name, int n_checks_passed);

#endif
