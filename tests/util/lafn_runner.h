/* lafn_runner: runs the built `lafn` command from a test, keeps its output and reads its progress lines. */
#ifndef LAFN_RUNNER_H
#define LAFN_RUNNER_H

#include <sys/types.h>

/* Starts BUILD/lafn (testutil_lafn_binary) with argv[1..] (argv ends with NULL; argv[0] is set to the binary)
 * in its own process group (so a test can kill the whole group), stdout and stderr into out_path. Returns its
 * pid, or -1 if it could not start (said on stderr). */
pid_t lafn_runner_start(char **argv, const char *out_path);

/* lafn_runner_start, then waits for it. Returns its exit status (128 + signal if a signal ended it), or -1 if
 * it could not start. *out (out may be NULL) gets the output as a new string the caller frees ("" if none). */
int lafn_runner_run(char **argv, const char *out_path, char **out);

/* Writes a pipeline file at path for a quick run: facts [0, n_facts) of the demo set in en and zh on the
 * tiny random-weight Gemma 3 (tests/fixtures/models), 2 ranks, one fact per shard, 10 edit steps, 20
 * bootstrap samples, then the text extra (more sections, or "" for none). A failure is a failed check. */
void lafn_runner_tiny_cfg(const char *path, int n_facts, const char *extra);

/* From a run's output, R of the stage's line "STAGE: N facts on K ranks (R resumed)", or -1 if there is none. */
long lafn_runner_resumed(const char *out, const char *stage);

#endif
