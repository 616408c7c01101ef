/* test_fault_kill: `lafn run` with one rank SIGKILLed at every stage's shard commit, merge and run-wide step, then --resume; truncated committed shards. */
#include <glob.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h5/h5fault.h"
#include "h5/h5out.h"
#include "lafn_runner.h"
#include "testutil_lafn.h"
#include "output_compare.h"
#include "testutil.h"

#define N_FACTS 6
#define N_STAGES 5

static const char *const stages[N_STAGES] = {"paraphrase", "probe", "locate", "edit", "eval"};

static char tmp[PATH_MAX], run_dir[PATH_MAX + 16], ref_dir[PATH_MAX + 16], cfg[PATH_MAX + 16];

/* lafn run --resume into run_dir, from stage `from` on (a kill stops the run there; the stages before it are
 * complete), with LAFN_TEST_KILL = kill (NULL: none). Returns the exit status; *out its output. */
static int run(const char *kill, int from, char **out) {
    char out_path[PATH_MAX + 16], o_dir[PATH_MAX + 32], list[128] = "";
    snprintf(out_path, sizeof out_path, "%s/out.txt", tmp);
    snprintf(o_dir, sizeof o_dir, "run.output_dir=%s", run_dir);
    for (int s = from; s < N_STAGES; s++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", s > from ? "," : "", stages[s]);
    if (kill) setenv(H5FAULT_ENV, kill, 1);
    char *argv[] = {NULL, "run", cfg, o_dir, "--resume", "--stages", list, NULL};
    int st = testutil_lafn_run(argv, out_path, out);
    unsetenv(H5FAULT_ENV);
    return st;
}

static void stage_path(char *buf, size_t cap, const char *dir, const char *stage, const char *suffix) {
    snprintf(buf, cap, "%s/%s%s", dir, stage, suffix);
}

/* 1 if the file opens as HDF5 and its lafn_file_kind is kind; *complete gets whether lafn_global_complete is set. */
static int opens_as(const char *path, const char *kind, int *complete) {
    hid_t f = H5I_INVALID_HID;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) return 0;
    char *k = NULL;
    lafn_err err = {{0}};
    int ok = h5out_attr_string(f, "lafn_file_kind", &k, &err) == 0 && strcmp(k, kind) == 0;
    if (complete) *complete = H5Aexists(f, "lafn_global_complete") > 0;
    free(k);
    H5Fclose(f);
    return ok;
}

/* Every committed shard of stage in run_dir opens as a shard (a kill never leaves a half-written one). */
static void check_shards(const char *stage) {
    h5out_shard *s = NULL;
    size_t n = 0;
    lafn_err err = {{0}};
    CHECK(h5out_shard_list(run_dir, stage, &s, &n, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) CHECK(opens_as(s[i].path, "shard", NULL), "committed shard %s does not open", s[i].path);
    h5out_shards_free(s, n);
}

/* One rank of stages[s] killed at a point in a run from stages[from] on (from <= s): it fails there, every stage file is whole, the killed stage's file is absent
 * or as it was (shard, merge) or the merged file still without its run-wide datasets (global), and its committed
 * shards are whole. Before the kill the stage resumed between lo and hi facts. */
static void kill_once(int from, int s, const char *point, int rank, long lo, long hi) {
    const char *stage = stages[s];
    char spec[96], said[160], path[PATH_MAX + 64], *out = NULL;
    snprintf(spec, sizeof spec, "%s:%s:%d", stage, point, rank);
    snprintf(said, sizeof said, "%s: rank %d of stage %s kills itself at '%s'", H5FAULT_ENV, rank, stage, point);
    stage_path(path, sizeof path, run_dir, stage, ".h5");
    size_t n_before = 0, n_after = 0;
    char *before = testutil_read_file(path, &n_before);
    int st = run(spec, from, &out);
    char stage_failed[64];
    snprintf(stage_failed, sizeof stage_failed, "stage %s failed", stage);
    CHECK(st != 0 && strstr(out, said) && strstr(out, stage_failed),
          "kill %s: expected the kill and a failed stage %s; status %d:\n%s", spec, stage, st, out);
    long resumed = lafn_runner_resumed(out, stage);
    CHECK(resumed >= lo && resumed <= hi, "kill %s: the stage resumed %ld facts before it, expected %ld to %ld", spec,
          resumed, lo, hi);
    for (int k = 0; k < N_STAGES; k++) {
        char other[PATH_MAX + 64];
        stage_path(other, sizeof other, run_dir, stages[k], ".h5");
        CHECK(access(other, F_OK) != 0 || opens_as(other, "stage", NULL), "kill %s: %s is not a whole stage file", spec,
              other);
    }
    char *after = testutil_read_file(path, &n_after);
    int complete = 1;
    if (strcmp(point, "global") == 0)
        CHECK(after && opens_as(path, "stage", &complete) && !complete,
              "kill %s: %s must be the merged file without its run-wide datasets", spec, path);
    else
        CHECK((!before && !after) || (before && after && n_before == n_after && memcmp(before, after, n_before) == 0),
              "kill %s: %s must be as before the run (%s before, %s after)", spec, path, before ? "present" : "absent",
              after ? "present" : "absent");
    check_shards(stage);
    free(before);
    free(after);
    free(out);
}

/* Number of files in dir whose name ends with ".tmp". */
static size_t count_tmp(const char *dir) {
    char pattern[PATH_MAX + 64];
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/*.tmp", dir);
    size_t n = glob(pattern, 0, NULL, &g) == 0 ? g.gl_pathc : 0;
    globfree(&g);
    return n;
}

/* The kills, in the order a run meets them; each resumed run goes on to the next kill. The last one kills a
 * merge over a complete probe.h5, which must stay as it was. */
static void test_kills(void) {
    static const struct { const char *stage, *point; int rank; } kills[] = {
        {"paraphrase", "shard", 1}, {"paraphrase", "merge", 1}, {"paraphrase", "global", 0},
        {"probe", "shard", 1},      {"probe", "merge", 0},      {"probe", "global", 0},
        {"locate", "shard", 0},     {"locate", "merge", 1},     {"locate", "global", 0},
        {"edit", "shard", 1},       {"edit", "merge", 1},
        {"eval", "shard", 1},       {"eval", "merge", 0},       {"eval", "global", 0},
        {"probe", "merge", 1}};
    const size_t n_kills = sizeof kills / sizeof kills[0];
    const char *last_point[N_STAGES] = {NULL}; /* the last kill of each stage: what its next start resumes */
    int prev = 0;                              /* the stage the previous kill left unfinished */
    for (size_t k = 0; k < n_kills; k++) {
        int s = 0;
        while (s < N_STAGES - 1 && strcmp(stages[s], kills[k].stage) != 0) s++;
        long lo = !last_point[s] ? 0 : strcmp(last_point[s], "shard") == 0 ? 1 : N_FACTS;
        long hi = !last_point[s] ? 0 : strcmp(last_point[s], "shard") == 0 ? N_FACTS - 1 : N_FACTS;
        kill_once(prev < s ? prev : s, s, kills[k].point, kills[k].rank, lo, hi);
        last_point[s] = kills[k].point;
        prev = s;
    }
    char *out = NULL;
    int st = run(NULL, 0, &out);
    CHECK(st == 0, "the run resumed after %zu kills failed: status %d:\n%s", n_kills, st, out);
    for (int s = 0; s < N_STAGES; s++)
        CHECK(lafn_runner_resumed(out, stages[s]) == N_FACTS, "stage %s: all %d facts must be resumed at the end:\n%s",
              stages[s], N_FACTS, out);
    CHECK(count_tmp(run_dir) == 0, "no .tmp file may remain in %s", run_dir);
    free(out);
    output_compare_run(ref_dir, run_dir, stages, N_STAGES, "after the kills");
}

/* Committed shards truncated on disk: resume names each, sets it aside as .damaged, redoes its fact, merges the rest. */
static void test_truncated(void) {
    char *out = NULL;
    if (access(run_dir, F_OK) != 0) { /* run alone: a complete run to damage */
        CHECK(run(NULL, 0, &out) == 0, "a complete run to damage failed:\n%s", out);
        free(out);
    }
    static const struct { const char *shard; long keep; } cut[] = { /* keep < 0: that many bytes off the end */
        {"probe.shard-1-1.h5", -1}, {"locate.shard-0-0.h5", 0}, {"edit.shard-1-0.h5", 4096}, {"eval.shard-0-1.h5", -2000}};
    for (size_t i = 0; i < 4; i++) {
        char path[PATH_MAX + 64];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", run_dir, cut[i].shard);
        long size = stat(path, &st) == 0 ? (long)st.st_size : -1;
        long keep = cut[i].keep < 0 ? size + cut[i].keep : cut[i].keep;
        CHECK(size > 4096 && truncate(path, keep) == 0, "cannot truncate %s (%ld bytes) to %ld", path, size, keep);
    }
    int st = run(NULL, 0, &out);
    CHECK(st == 0, "the run over truncated shards failed: status %d:\n%s", st, out);
    for (size_t i = 0; i < 4; i++) {
        char said[PATH_MAX + 128], aside[PATH_MAX + 96], stage[16];
        snprintf(stage, sizeof stage, "%.*s", (int)strcspn(cut[i].shard, "."), cut[i].shard);
        snprintf(said, sizeof said, "committed shard %s/%s is damaged", run_dir, cut[i].shard);
        snprintf(aside, sizeof aside, "%s/%s.damaged", run_dir, cut[i].shard);
        CHECK(strstr(out, said) && access(aside, F_OK) == 0, "%s must be named and set aside as %s:\n%s", cut[i].shard,
              aside, out);
        CHECK(lafn_runner_resumed(out, stage) == N_FACTS - 1, "stage %s must redo exactly the truncated shard's fact (%ld resumed)",
              stage, lafn_runner_resumed(out, stage));
        check_shards(stage);
    }
    free(out);
    output_compare_run(ref_dir, run_dir, stages, N_STAGES, "after truncated shards");
}

int main(int argc, char **argv) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(tmp, sizeof tmp, "/tmp/lafn-test-fault-XXXXXX");
    if (!mkdtemp(tmp) || !testutil_lafn_binary()) {
        fprintf(stderr, "test_fault_kill: no temporary folder or no lafn binary beside tests/\n");
        return 1;
    }
    snprintf(run_dir, sizeof run_dir, "%s/run", tmp);
    snprintf(ref_dir, sizeof ref_dir, "%s/ref", tmp);
    snprintf(cfg, sizeof cfg, "%s/fault.cfg", tmp);
    lafn_runner_tiny_cfg(cfg, N_FACTS, "paraphrase = { method = \"sample\"; candidates = 2; max_new_tokens = 8; };\n");
    /* The uninterrupted run, in the same folder as the others (the folder is part of every file's provenance). */
    char *out = NULL;
    int st = run(NULL, 0, &out);
    CHECK(st == 0 && rename(run_dir, ref_dir) == 0, "uninterrupted run: status %d:\n%s", st, out);
    free(out);
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "kills")) test_kills();
    if (!only || !strcmp(only, "truncated")) test_truncated();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("test_fault_kill: %.1f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (testutil_failures == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return testutil_finish("test_fault_kill");
}
