/* driver_status: `lafn status RUN_DIR` — per stage the facts in committed shards, the merged file, failed attempts and the Slurm jobs. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "h5/h5out.h"

static const char status_usage[] =
    "usage: lafn status RUN_DIR\n"
    "  per stage: distinct facts in committed shards, the shards, whether STAGE.h5 is merged (its facts),\n"
    "  failed attempts (lafn run's logs/STAGE.log and the Slurm jobs lafn submit recorded in slurm/jobs.tsv),\n"
    "  and those jobs with their states from squeue (or sacct); then the latest error of each stage that has one\n";

/* What is on disk and in Slurm for one stage. */
typedef struct {
    size_t facts, shards, merged_facts, unreadable; /* distinct facts in shards; shards; rows of STAGE.h5 */
    int merged, failed;                             /* STAGE.h5 exists; failed attempts */
    char error[4608];                               /* the latest attempt's error, "" none */
} stage_status;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Rows of /facts in the HDF5 file at path, appended to *facts; -1 when unreadable. */
static int read_facts(const char *path, int64_t **facts, size_t *n) {
    lafn_err err = {{0}};
    int64_t *rows = NULL;
    size_t n_rows = 0;
    hid_t f = h5out_fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT, &err);
    int rc = f >= 0 ? h5out_read_all(f, path, "facts", H5OUT_I64, 0, (void **)&rows, &n_rows, &err) : -1;
    if (f >= 0) H5Fclose(f);
    int64_t *grown = rc == 0 ? realloc(*facts, (*n + n_rows + 1) * sizeof *grown) : NULL;
    if (grown) {
        if (n_rows) memcpy(grown + *n, rows, n_rows * sizeof *rows);
        *facts = grown;
        *n += n_rows;
    }
    free(rows);
    return grown ? 0 : -1;
}

/* Shards and the merged file of stage in dir. */
static void count_files(const char *dir, const char *stage, stage_status *s) {
    lafn_err err = {{0}};
    h5out_shard *shards = NULL;
    size_t n_shards = 0, n = 0;
    int64_t *facts = NULL;
    if (h5out_shard_list(dir, stage, &shards, &n_shards, &err) == 0) {
        for (size_t i = 0; i < n_shards; i++) s->unreadable += read_facts(shards[i].path, &facts, &n) != 0;
        s->shards = n_shards;
    }
    h5out_shards_free(shards, n_shards);
    if (n) qsort(facts, n, sizeof *facts, cmp_i64);
    for (size_t i = 0; i < n; i++) s->facts += i == 0 || facts[i] != facts[i - 1];
    free(facts);
    facts = NULL;
    n = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.h5", dir, stage);
    if (access(path, F_OK) == 0) {
        s->merged = 1;
        if (read_facts(path, &facts, &n) == 0) s->merged_facts = n;
        else s->unreadable++;
    }
    free(facts);
}

/* A state Slurm gives a job that ended without success. */
static int failed_state(const char *state) {
    static const char *const bad[] = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                      "BOOT_FAIL", "DEADLINE", "PREEMPTED"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strncmp(state, bad[i], strlen(bad[i])) == 0) return 1;
    return 0;
}

/* Failed attempts from lafn run's log and the stage's Slurm jobs (in submission order), the latest error kept. */
static void count_failures(const char *dir, const char *stage, const driver_job *jobs, size_t n_jobs, stage_status *s) {
    char log[4200], why[512];
    snprintf(log, sizeof log, "%s/logs/%s.log", dir, stage);
    s->failed = driver_log_errors(log, stage, s->error, sizeof s->error);
    for (size_t i = 0; i < n_jobs; i++) {
        if (strcmp(jobs[i].stage, stage) != 0) continue;
        snprintf(log, sizeof log, "%s/logs/%s-%s.log", dir, stage, jobs[i].id);
        int logged = driver_log_errors(log, stage, why, sizeof why);
        if (failed_state(jobs[i].state) || (!jobs[i].state[0] && logged)) {
            s->failed++;
            if (why[0]) snprintf(s->error, sizeof s->error, "job %s %s: %s", jobs[i].id, jobs[i].state, why);
            else snprintf(s->error, sizeof s->error, "job %s %s; its log: %s", jobs[i].id, jobs[i].state, log);
        } else if (jobs[i].state[0]) s->error[0] = '\0'; /* a later job of the stage did not fail */
    }
}

/* The stage's jobs as "ID STATE (REASON), ..." ("-" for none). */
static void print_jobs(const char *stage, const driver_job *jobs, size_t n_jobs) {
    int any = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        if (strcmp(jobs[i].stage, stage) != 0) continue;
        printf("%s%s %s", any ? ", " : "", jobs[i].id, jobs[i].state[0] ? jobs[i].state : "unknown");
        if (jobs[i].reason[0]) printf(" (%s)", jobs[i].reason);
        any = 1;
    }
    printf("%s\n", any ? "" : "-");
}

int driver_status(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(status_usage, argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    const char *dir = argv[1];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "lafn status: %s is not a folder (give run.output_dir of a run)\n", dir);
        return 2;
    }
    lafn_err err = {{0}};
    driver_job *jobs = NULL;
    size_t n_jobs = 0;
    if (driver_jobs_read(dir, &jobs, &n_jobs, &err) != 0) {
        fprintf(stderr, "lafn status: %s\n", err.msg);
        return 1;
    }
    size_t known = driver_jobs_states(jobs, n_jobs);
    printf("run %s\n%-11s %7s %7s  %-14s %6s  %s\n", dir, "stage", "facts", "shards", "merged", "failed",
           "slurm jobs (oldest first)");
    stage_status s[DRIVER_N_STAGES] = {{0}};
    for (int i = 0; i < DRIVER_N_STAGES; i++) {
        const char *stage = driver_stage_names[i];
        count_files(dir, stage, &s[i]);
        count_failures(dir, stage, jobs, n_jobs, &s[i]);
        char merged[32] = "no";
        if (s[i].merged) snprintf(merged, sizeof merged, "yes (%zu)", s[i].merged_facts);
        printf("%-11s %7zu %7zu  %-14s %6d  ", stage, s[i].facts, s[i].shards, merged, s[i].failed);
        print_jobs(stage, jobs, n_jobs);
    }
    for (int i = 0; i < DRIVER_N_STAGES; i++) {
        if (s[i].error[0]) printf("%s: latest error: %s\n", driver_stage_names[i], s[i].error);
        if (s[i].unreadable) printf("%s: %zu file(s) unreadable (a shard or %s.h5 being written?)\n", driver_stage_names[i],
                                    s[i].unreadable, driver_stage_names[i]);
    }
    if (n_jobs && known < n_jobs)
        printf("%zu of %zu jobs unknown to Slurm (squeue forgets finished jobs after MinJobAge; sacct needs accounting)\n",
               n_jobs - known, n_jobs);
    free(jobs);
    return 0;
}
