/* testutil_lafn: running the built `lafn` command from a test, and comparing two runs' stage files fact by fact. */
#ifndef LAFN_TESTUTIL_LAFN_H
#define LAFN_TESTUTIL_LAFN_H

#include <stddef.h>
#include <sys/types.h>

/* Writes text to the file at path (created or truncated); a failure is a failed check naming path. */
void testutil_write_text(const char *path, const char *text);

/* Writes a pipeline file for the tiny random-weight Gemma 3 (tests/fixtures/models/tiny-gemma3.gguf): facts
 * [0, 6) of the JSON Lines file data in en and zh, 2 ranks, one fact per shard, run.output_dir out_dir,
 * 30 edit steps without early stop, 20 bootstrap samples. */
void testutil_write_tiny_cfg(const char *path, const char *out_dir, const char *data);

/* Starts lafn (argv[0] is set to testutil_lafn_binary(); argv is NULL-terminated) in a process group of its own,
 * stdout and stderr to the file out_path (truncated). Returns its pid, or -1 if it could not be started. */
pid_t testutil_lafn_start(char **argv, const char *out_path);

/* Waits for pid; returns its exit status, or 128 + the signal that ended it. */
int testutil_wait_status(pid_t pid);

/* Runs lafn (as testutil_lafn_start) to the end. Returns its exit status (-1 if it could not start) and its
 * output, read back from out_path, in *out unless out is NULL (up to 1 MiB, NUL-terminated; the caller frees). */
int testutil_lafn_run(char **argv, const char *out_path, char **out);

/* Reads dataset `name` (row_len values per fact; 0 for a 1-D dataset) of DIR/FILE as doubles, rows sorted by
 * /facts, into a new array of *n values (the caller frees). NULL after printing why to stderr. */
double *testutil_read_by_fact(const char *dir, const char *file, const char *name, size_t row_len, size_t *n);

/* Checks (CHECK) that runs ref and dir of the tests' tiny pipeline in 2 languages have the same edit.h5 nll_after
 * and loss and eval.h5 pre and post/all per fact, to 1e-6; what names the second run in the messages. */
void testutil_check_same_results(const char *ref, const char *dir, const char *what);

/* One stage's line of `lafn status` output. */
typedef struct {
    size_t facts, shards;
    long merged_facts; /* facts in the merged STAGE.h5, -1 when it is not merged */
    int failed;
    char jobs[512];    /* "ID STATE (REASON), ..." or "-" */
} testutil_stage_status;

/* Parses the line of stage in `lafn status` output into *s. Returns 0, or -1 when the line is missing or malformed. */
int testutil_status_parse(const char *out, const char *stage, testutil_stage_status *s);

#endif
