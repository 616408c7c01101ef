/* lafn_runner: runs the built `lafn` command from a test and keeps its output. */
#include "lafn_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

extern char **environ;

pid_t lafn_runner_start(char **argv, const char *out_path) {
    const char *lafn = testutil_lafn_binary();
    if (!lafn) {
        fprintf(stderr, "lafn_runner: no lafn binary beside tests/\n");
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    argv[0] = (char *)lafn;
    pid_t pid = -1;
    if (posix_spawn(&pid, lafn, &fa, &at, argv, environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return pid;
}

int lafn_runner_run(char **argv, const char *out_path, char **out) {
    pid_t pid = lafn_runner_start(argv, out_path);
    int status = -1, ws = 0;
    if (pid > 0) {
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    }
    if (out) {
        *out = pid > 0 ? testutil_read_text(out_path) : NULL;
        if (!*out) *out = calloc(1, 1);
    }
    return status;
}

void lafn_runner_tiny_cfg(const char *path, int n_facts, const char *extra) {
    FILE *f = fopen(path, "w");
    int ok = f && fprintf(f,
                          "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
                          "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; fact_range = [0, %d]; };\n"
                          "languages = { codes = [\"en\", \"zh\"]; };\n"
                          "run = { ranks = 2; shard_facts = 1; seed = 7; };\n"
                          "edit = { steps = 10; stop_nll = 0.0; };\n"
                          "eval = { bootstrap_samples = 20; };\n%s",
                          n_facts, extra) > 0;
    if (f && fclose(f) != 0) ok = 0;
    CHECK(ok, "cannot write the pipeline file %s", path);
}

long lafn_runner_resumed(const char *out, const char *stage) {
    char key[64];
    snprintf(key, sizeof key, "\n%s: ", stage);
    for (const char *at = strstr(out, key); at; at = strstr(at + 1, key)) {
        const char *line = at + strlen(key), *facts = strstr(line, " facts on "), *open = strstr(line, " ranks (");
        const char *end = strchr(line, '\n');
        if (facts && open && facts < open && (!end || open < end)) return strtol(open + 8, NULL, 10);
    }
    return -1;
}
