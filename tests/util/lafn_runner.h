/* lafn_runner: the fault tests' quick pipeline file and the resume counts read from lafn's output (running lafn: testutil_lafn.h). */
#ifndef LAFN_RUNNER_H
#define LAFN_RUNNER_H

/* Writes a pipeline file at path for a quick run: facts [0, n_facts) of the demo set in en and zh on the
 * tiny random-weight Gemma 3 (tests/fixtures/models), 2 ranks, one fact per shard, 10 edit steps, 20
 * bootstrap samples, then the text extra (more sections, or "" for none). A failure is a failed check. */
void lafn_runner_tiny_cfg(const char *path, int n_facts, const char *extra);

/* From a run's output, R of the stage's line "STAGE: N facts on K ranks (R resumed)", or -1 if there is none. */
long lafn_runner_resumed(const char *out, const char *stage);

#endif
