/* slurm_test_submit: lafn submit through a real Slurm — the chain gives lafn run's results; a failed and a cancelled stage stop their dependents and a resubmission resumes; lafn status. */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "h5/h5out.h"
#include "testutil.h"
#include "testutil_lafn.h"

enum { N_STAGES = 4, N_FACTS = 8, JOB_WAIT_S = 600, SKIP = 77 };
static const char *const stages[N_STAGES] = {"probe", "locate", "edit", "eval"};
/* 8 facts of ~0.6 s of editing each (unloaded): the edit job runs for seconds after its first shard. */
static char range[] = "data.fact_range=[0,8]", steps[] = "edit.steps=80";
static char tmp[PATH_MAX], cfg[PATH_MAX + 16], ref[PATH_MAX + 16];

/* Runs cmd under /bin/sh; its output (up to cap - 1 bytes) into buf. Returns the exit status, -1 if it did not run. */
static int shell(const char *cmd, char *buf, size_t cap) {
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (!p) { buf[0] = '\0'; return -1; }
    n = fread(buf, 1, cap - 1, p);
    buf[n] = '\0';
    int ws = pclose(p);
    return ws == -1 ? -1 : WEXITSTATUS(ws);
}

/* 1 when a Slurm controller answers and its (first) node takes jobs; else why not, in why. */
static int cluster_reachable(char *why, size_t cap) {
    char out[1024];
    if (shell("command -v sbatch squeue scontrol sinfo scancel 2>&1", out, sizeof out) != 0)
        return snprintf(why, cap, "the Slurm commands (sbatch squeue scontrol sinfo scancel) are not all on PATH"), 0;
    if (shell("scontrol ping 2>&1", out, sizeof out) != 0 || !strstr(out, "is UP")) {
        while (*out && out[strlen(out) - 1] == '\n') out[strlen(out) - 1] = '\0';
        const char *last = strrchr(out, '\n'); /* its last line says why */
        return snprintf(why, cap, "no Slurm controller answers (scontrol ping: %.200s)", last ? last + 1 : out), 0;
    }
    shell("sinfo -h -o %T 2>&1 | head -n 1", out, sizeof out);
    out[strcspn(out, "\n")] = '\0';
    if (strcmp(out, "idle") && strcmp(out, "mixed") && strcmp(out, "allocated") && strcmp(out, "completing"))
        return snprintf(why, cap, "the Slurm node is '%.100s', not idle, mixed or allocated", out), 0;
    return 1;
}

/* State and reason of job id from squeue ("" when squeue no longer knows it). */
static void job_state(const char *id, char *state, size_t cap, char *reason, size_t rcap) {
    char cmd[128], out[256];
    snprintf(cmd, sizeof cmd, "squeue -h -t all -j %s -o '%%T|%%r' 2>/dev/null", id);
    shell(cmd, out, sizeof out);
    out[strcspn(out, "\n")] = '\0';
    char *bar = strchr(out, '|');
    if (bar) *bar++ = '\0';
    snprintf(state, cap, "%.63s", out);
    snprintf(reason, rcap, "%.127s", bar ? bar : "");
}

/* Waits until job id has left PENDING, CONFIGURING, RUNNING and COMPLETING; its final state into state. */
static void wait_job_end(const char *id, char *state, size_t cap) {
    char reason[128];
    for (int i = 0; i < 10 * JOB_WAIT_S; i++) {
        job_state(id, state, cap, reason, sizeof reason);
        if (strcmp(state, "PENDING") && strcmp(state, "CONFIGURING") && strcmp(state, "RUNNING") &&
            strcmp(state, "COMPLETING"))
            return;
        if (!strcmp(state, "PENDING") && !strcmp(reason, "DependencyNeverSatisfied")) return;
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
}

/* lafn submit with the tiny pipeline into run folder dir; the 4 job ids, from its output, into ids. Returns its exit
 * status (1 also when an id is missing). */
static int submit(const char *dir, char ids[N_STAGES][32]) {
    char o_dir[PATH_MAX + 32], o_out[PATH_MAX + 32], *out = NULL;
    snprintf(o_dir, sizeof o_dir, "run.output_dir=%s", dir);
    snprintf(o_out, sizeof o_out, "%s-submit.txt", dir);
    char *argv[] = {NULL, "submit", cfg, o_dir, range, steps, NULL};
    int st = testutil_lafn_run(argv, o_out, &out);
    for (int i = 0; i < N_STAGES; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "/%s.sbatch as job ", stages[i]);
        const char *at = out ? strstr(out, needle) : NULL;
        ids[i][0] = '\0';
        if (!at || sscanf(at + strlen(needle), "%31[0-9]", ids[i]) != 1) st = st ? st : 1;
    }
    CHECK(st == 0, "lafn submit into %s: status %d: %s", dir, st, out ? out : "");
    free(out);
    return st;
}

/* Waits for the whole chain and checks every job COMPLETED. */
static void check_chain_completes(char ids[N_STAGES][32], const char *what) {
    for (int i = 0; i < N_STAGES; i++) {
        char state[64];
        wait_job_end(ids[i], state, sizeof state);
        CHECK(!strcmp(state, "COMPLETED"), "%s: job %s (%s) ended %s, expected COMPLETED", what, ids[i], stages[i], state);
    }
}

/* The `lafn status` line of stage in run folder dir, parsed into *s (a failed check when missing); the whole
 * output into *out (the caller frees). */
static void status_of(const char *dir, const char *stage, testutil_stage_status *s, char **out) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s-status.txt", dir);
    char *argv[] = {NULL, "status", (char *)dir, NULL};
    int st = testutil_lafn_run(argv, path, out);
    CHECK(st == 0 && testutil_status_parse(*out, stage, s) == 0, "lafn status %s (%s): status %d: %s", dir, stage, st,
          *out ? *out : "");
}

/* The log of a stage's job: the number in "(N resumed)" of the stage's summary line, -1 if absent. */
static long resumed_in_log(const char *dir, const char *stage, const char *id) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/logs/%s-%s.log", dir, stage, id);
    char *text = testutil_read_text(path), *at = text ? strstr(text, " resumed)") : NULL;
    long n = -1;
    while (at && at > text && at[-1] >= '0' && at[-1] <= '9') at--;
    if (at && text && at > text && at[-1] == '(') n = strtol(at, NULL, 10);
    free(text);
    return n;
}

/* Committed edit shards in dir. */
static size_t edit_shards(const char *dir) {
    lafn_err err = {{0}};
    h5out_shard *s = NULL;
    size_t n = 0;
    if (h5out_shard_list(dir, "edit", &s, &n, &err) != 0) n = 0;
    h5out_shards_free(s, n);
    return n;
}

/* The chain runs to completion through sbatch, each job logged, and gives the results of lafn run; status agrees. */
static void test_chain(void) {
    char dir[PATH_MAX + 16], ids[N_STAGES][32], *out = NULL;
    snprintf(dir, sizeof dir, "%s/chain", tmp);
    if (submit(dir, ids) != 0) return;
    check_chain_completes(ids, "the chain");
    testutil_check_same_results(ref, dir, "the submitted chain");
    for (int i = 0; i < N_STAGES; i++) {
        testutil_stage_status s;
        char want[160];
        snprintf(want, sizeof want, "%s COMPLETED", ids[i]);
        status_of(dir, stages[i], &s, &out);
        CHECK(s.facts == N_FACTS && s.shards == N_FACTS && s.merged_facts == N_FACTS && s.failed == 0 &&
                  !strcmp(s.jobs, want),
              "lafn status of the chain, %s: expected %d facts in %d shards, merged, no failure, jobs '%s': %s",
              stages[i], N_FACTS, N_FACTS, want, out);
        free(out);
    }
}

/* SIGKILL to one rank of the edit job (a rank that dies: the job FAILED), found with scontrol listpids. */
static int kill_a_rank(const char *id) {
    char cmd[128], out[4096];
    snprintf(cmd, sizeof cmd, "scontrol listpids %s 2>&1", id);
    shell(cmd, out, sizeof out);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        long pid = strtol(line, NULL, 10);
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (f && fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
        if (f) fclose(f);
        if (!strcmp(comm, "lafn-edit") && kill((pid_t)pid, SIGKILL) == 0) return 0;
    }
    return -1;
}

/* Ends the running edit job of a chain after it committed a shard, by way of how ("kill" a rank, or "scancel"):
 * the job ends in final_state, eval never starts (DependencyNeverSatisfied), lafn status shows it; the same
 * submission again redoes only edit's missing facts and gives lafn run's results. */
static void check_interrupted(const char *how, const char *final_state) {
    char dir[PATH_MAX + 16], ids[N_STAGES][32], again[N_STAGES][32], state[64], reason[128], *out = NULL;
    snprintf(dir, sizeof dir, "%s/%s", tmp, how);
    if (submit(dir, ids) != 0) return;
    int ended = 0;
    for (int i = 0; i < 10 * JOB_WAIT_S && !ended; i++) {
        job_state(ids[2], state, sizeof state, reason, sizeof reason);
        if (strcmp(state, "PENDING") && strcmp(state, "RUNNING")) break;
        if (!strcmp(state, "RUNNING") && edit_shards(dir) > 0) {
            char cmd[64];
            snprintf(cmd, sizeof cmd, "scancel %s 2>&1", ids[2]);
            ended = !strcmp(how, "kill") ? kill_a_rank(ids[2]) == 0 : shell(cmd, reason, sizeof reason) == 0;
        } else nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    CHECK(ended, "%s: the edit job %s was not caught running with a committed shard (state %s)", how, ids[2], state);
    wait_job_end(ids[2], state, sizeof state);
    CHECK(!strcmp(state, final_state), "%s: the edit job %s ended %s, expected %s", how, ids[2], state, final_state);
    for (int i = 0; i < 1200; i++) { /* the controller marks the dependency at its next scheduling pass */
        job_state(ids[3], state, sizeof state, reason, sizeof reason);
        if (strcmp(state, "PENDING") || strcmp(reason, "Dependency")) break;
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
    char log[PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/logs/eval-%s.log", dir, ids[3]);
    CHECK(!strcmp(state, "PENDING") && !strcmp(reason, "DependencyNeverSatisfied") && access(log, F_OK) != 0,
          "%s: eval (job %s) must never start: %s (%s), log %s", how, ids[3], state, reason, log);
    testutil_stage_status edit, eval;
    status_of(dir, "edit", &edit, &out);
    free(out);
    status_of(dir, "eval", &eval, &out);
    CHECK(edit.facts > 0 && edit.facts < N_FACTS && edit.merged_facts < 0 && edit.failed == 1 &&
              strstr(edit.jobs, final_state) && strstr(eval.jobs, "PENDING (DependencyNeverSatisfied)") &&
              strstr(out, "edit: latest error: "),
          "%s: lafn status after the interruption: %s", how, out);
    free(out);
    snprintf(reason, sizeof reason, "scancel %s", ids[3]);
    shell(reason, state, sizeof state);
    if (submit(dir, again) != 0) return;
    check_chain_completes(again, how);
    long probe_resumed = resumed_in_log(dir, "probe", again[0]), edit_resumed = resumed_in_log(dir, "edit", again[2]);
    CHECK(probe_resumed == N_FACTS && edit_resumed > 0 && edit_resumed < N_FACTS,
          "%s: the resubmission must only re-merge probe (%ld of %d resumed) and resume part of edit (%ld)", how,
          probe_resumed, N_FACTS, edit_resumed);
    testutil_check_same_results(ref, dir, how);
    status_of(dir, "edit", &edit, &out);
    CHECK(edit.facts == N_FACTS && edit.merged_facts == N_FACTS && edit.failed == 1 && strstr(edit.jobs, again[2]) &&
              !strstr(out, "latest error"),
          "%s: lafn status after the resubmission: %s", how, out);
    free(out);
}

/* A stage made to fail (a rank killed): dependents never start, a resubmission resumes. */
static void test_failure(void) { check_interrupted("kill", "FAILED"); }

/* scancel of the running edit job: dependents never start, a resubmission resumes from the committed shards. */
static void test_cancel(void) { check_interrupted("scancel", "CANCELLED"); }

int main(int argc, char **argv) {
    char why[512];
    if (!cluster_reachable(why, sizeof why)) {
        printf("slurm_test_submit: SKIPPED: %s; start a single-node cluster with slurm/local_cluster.sh start (as "
               "root)\n", why);
        return SKIP;
    }
    const char *lafn = testutil_lafn_binary();
    /* Beside the build, so that a cluster's nodes see it where the build is on a shared file system. */
    snprintf(tmp, sizeof tmp, "%.*s/slurm-test-XXXXXX", lafn ? (int)(strrchr(lafn, '/') - lafn) : 4, lafn ? lafn : "/tmp");
    if (!lafn || !mkdtemp(tmp)) {
        fprintf(stderr, "slurm_test_submit: no lafn binary beside tests/ or no temporary folder %s\n", tmp);
        return 1;
    }
    snprintf(cfg, sizeof cfg, "%s/tiny.cfg", tmp);
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    testutil_write_tiny_cfg(cfg, ref, "conf/data/demo_facts.jsonl");
    char out_path[PATH_MAX + 16], *out = NULL;
    snprintf(out_path, sizeof out_path, "%s/ref-run.txt", tmp);
    char *run_argv[] = {NULL, "run", cfg, range, steps, NULL};
    int st = testutil_lafn_run(run_argv, out_path, &out);
    CHECK(st == 0, "the reference lafn run: status %d: %s", st, out ? out : "");
    free(out);
    const char *only = argc > 1 ? argv[1] : NULL;
    const struct { const char *name; void (*run)(void); } tests[] = {
        {"chain", test_chain}, {"failure", test_failure}, {"cancel", test_cancel}};
    for (size_t i = 0; st == 0 && i < sizeof tests / sizeof tests[0]; i++)
        if (!only || !strcmp(only, tests[i].name)) tests[i].run();
    char rm[PATH_MAX + 16];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmp);
    if (testutil_failures == 0 && system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    else if (testutil_failures) fprintf(stderr, "slurm_test_submit: kept %s for a look\n", tmp);
    return testutil_finish("slurm_test_submit");
}
