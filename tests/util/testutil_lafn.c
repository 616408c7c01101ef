/* testutil_lafn: starting the built lafn command from tests, and comparing two runs' stage files fact by fact. */
#include "testutil_lafn.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "h5/h5out.h"
#include "testutil.h"

extern char **environ;

void testutil_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    CHECK(ok, "cannot write %s: %s", path, strerror(errno));
}

void testutil_write_tiny_cfg(const char *path, const char *out_dir, const char *data) {
    char text[3 * 4096];
    snprintf(text, sizeof text,
             "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
             "data = { format = \"jsonl\"; path = \"%s\"; fact_range = [0, 6]; };\n"
             "languages = { codes = [\"en\", \"zh\"]; };\n"
             "run = { output_dir = \"%s\"; ranks = 2; shard_facts = 1; seed = 7; };\n"
             "edit = { steps = 30; stop_nll = 0.0; };\n"
             "eval = { bootstrap_samples = 20; };\n",
             data, out_dir);
    testutil_write_text(path, text);
}

pid_t testutil_lafn_start(char **argv, const char *out_path) {
    const char *lafn = testutil_lafn_binary();
    if (!lafn) return -1;
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

int testutil_wait_status(pid_t pid) {
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

int testutil_lafn_run(char **argv, const char *out_path, char **out) {
    pid_t pid = testutil_lafn_start(argv, out_path);
    int status = pid > 0 ? testutil_wait_status(pid) : -1;
    if (!out) return status;
    FILE *f = fopen(out_path, "r");
    *out = calloc(1, 1 << 20);
    if (f && *out) { size_t n = fread(*out, 1, (1 << 20) - 1, f); (*out)[n] = '\0'; }
    if (f) fclose(f);
    return status;
}

double *testutil_read_by_fact(const char *dir, const char *file, const char *name, size_t row_len, size_t *n) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    lafn_err err = {{0}};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t *facts = NULL;
    double *v = NULL, *sorted = NULL;
    size_t nf = 0, nr = 0;
    if (f >= 0 && h5out_read_all(f, path, "facts", H5OUT_I64, 0, (void **)&facts, &nf, &err) == 0 &&
        h5out_read_all(f, path, name, H5OUT_F64, row_len, (void **)&v, &nr, &err) == 0 && nr == nf &&
        (sorted = calloc(nf * (row_len ? row_len : 1), sizeof *sorted))) {
        size_t w = row_len ? row_len : 1;
        for (size_t i = 0; i < nf; i++) {
            size_t rank = 0;
            for (size_t k = 0; k < nf; k++) rank += facts[k] < facts[i];
            memcpy(sorted + rank * w, v + i * w, w * sizeof *v);
        }
        *n = nf * w;
    } else fprintf(stderr, "%s: %s\n", path, err.msg);
    if (f >= 0) H5Fclose(f);
    free(facts);
    free(v);
    return sorted;
}

/* Largest difference of two arrays; NaN only where both are NaN. */
static double max_diff(const double *a, const double *b, size_t n, size_t *worst) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (isnan(a[i]) && isnan(b[i])) ? 0 : fabs(a[i] - b[i]);
        if (isnan(d) || d > m) { m = isnan(d) ? INFINITY : d; *worst = i; }
    }
    return m;
}

void testutil_check_same_results(const char *ref, const char *dir, const char *what) {
    const struct { const char *file, *name; size_t row_len; } cmp[] = {
        {"edit.h5", "nll_after", 2}, {"edit.h5", "loss", 4}, /* 2 languages; 4 loss terms */
        {"eval.h5", "pre", 32}, {"eval.h5", "post/all", 32}};  /* 2 languages x 4 criteria x 4 metrics */
    for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
        size_t na = 0, nb = 0, worst = 0;
        double *a = testutil_read_by_fact(ref, cmp[k].file, cmp[k].name, cmp[k].row_len, &na);
        double *b = testutil_read_by_fact(dir, cmp[k].file, cmp[k].name, cmp[k].row_len, &nb);
        CHECK(a && b && na == nb && na > 0, "%s/%s readable in both runs (%zu vs %zu values)", cmp[k].file,
              cmp[k].name, na, nb);
        double d = a && b && na == nb ? max_diff(a, b, na, &worst) : INFINITY;
        CHECK(d <= 1e-6, "%s/%s: %s differs from the reference run by %g at element %zu (%g vs %g)", cmp[k].file,
              cmp[k].name, what, d, worst, a && worst < na ? a[worst] : NAN, b && worst < nb ? b[worst] : NAN);
        free(a);
        free(b);
    }
}

int testutil_status_parse(const char *out, const char *stage, testutil_stage_status *s) {
    size_t n = strlen(stage);
    const char *line = out;
    while (line && !(strncmp(line, stage, n) == 0 && line[n] == ' ')) {
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (!line) return -1;
    *s = (testutil_stage_status){.merged_facts = -1};
    int used = 0, tail = 0;
    if (sscanf(line + n, " %zu %zu %n", &s->facts, &s->shards, &used) != 2) return -1;
    line += n + used;
    used = 0;
    if (sscanf(line, "yes (%ld) %n", &s->merged_facts, &used) != 1) {
        s->merged_facts = -1;
        sscanf(line, "no %n", &used);
        if (used == 0) return -1;
    }
    if (sscanf(line + used, "%d %n", &s->failed, &tail) != 1) return -1;
    line += used + tail;
    size_t len = strcspn(line, "\n");
    if (len == 0 || len >= sizeof s->jobs) return -1;
    memcpy(s->jobs, line, len);
    s->jobs[len] = '\0';
    return 0;
}
