/* driver_run: `lafn run` — checks the pipeline file, then runs each stage program under mpirun, logging and stopping at the first failure. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/lafn_clock.h"
#include "driver.h"
#include "eval/eval_table.h"

static const char run_usage[] =
    "usage: lafn run FILE.cfg [--resume | --no-resume] [--dry-run] [--all-metrics] [--stages probe,locate,edit,eval]\n"
    "                [--facts A-B | --facts 1,4,7-9] [--languages en,zh] [--ranks N] [section.key=value ...]\n";

/* Runs one stage: mpirun -np R lafn-STAGE FILE.cfg OVERRIDES..., output to stdout and OUT/logs/STAGE.log.
 * Returns 0, or -1 with err and the stage's exit status in *status (1 if it never started). */
static int run_stage(const driver_plan *p, int i, int *status, lafn_err *err) {
    *status = 1;
    char logs[4096], log_path[4200];
    snprintf(logs, sizeof logs, "%s/logs", p->out_dir);
    if (driver_mkdir_writable(logs, "run.output_dir", err) != 0) return -1;
    snprintf(log_path, sizeof log_path, "%s/%s.log", logs, driver_stage_names[i]);
    char **args = calloc(p->n_overrides + 1, sizeof *args), **argv = NULL;
    if (!args) return lafn_err_set(err, "out of memory");
    args[0] = (char *)p->cfg_path;
    for (size_t k = 0; k < p->n_overrides; k++) args[k + 1] = p->overrides[k];
    int rc = driver_mpirun_argv(p->ranks, p->stage_path[i], args, p->n_overrides + 1, &argv, err);
    free(args);
    if (rc != 0) return -1;
    printf("\n== stage %s (%lld rank%s) — log: %s\n", driver_stage_names[i], (long long)p->ranks,
           p->ranks == 1 ? "" : "s", log_path);
    double t0 = lafn_now_seconds();
    rc = driver_spawn_logged(argv, log_path, stdout, status, err);
    driver_argv_free(argv);
    if (rc != 0) return -1;
    double secs = lafn_now_seconds() - t0;
    if (*status != 0) {
        char why[512];
        driver_log_errors(log_path, driver_stage_names[i], why, sizeof why);
        return lafn_err_set(err, "stage %s failed (exit status %d%s) after %.1f s%s%s; its log: %s%s",
                            driver_stage_names[i], *status, *status > 128 ? ", killed by a signal" : "", secs,
                            why[0] ? ": " : "", why, log_path, *status > 128 ? "; rerun the same command to resume" : "");
    }
    printf("== stage %s done in %.1f s\n", driver_stage_names[i], secs);
    return 0;
}

/* 1 for the files people read: merged stage files and summaries, not shards, temporaries or hidden files. */
static int is_output_file(const char *name) {
    size_t n = strlen(name);
    return name[0] != '.' && !strstr(name, ".shard-") && !(n > 4 && strcmp(name + n - 4, ".tmp") == 0);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists the output folder's result files (sorted) with their sizes. */
static void print_outputs(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char *names[256];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 256;)
        if (is_output_file(e->d_name) && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    printf("\noutputs in %s/:\n", dir);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            printf("  %-28s %10.1f kB\n", names[i], (double)st.st_size / 1e3);
        else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            printf("  %-28s (folder)\n", names[i]);
        free(names[i]);
    }
}

/* The final table from RUN_DIR/eval.h5, when the eval stage ran. */
static int print_table(const driver_plan *p, lafn_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/eval.h5", p->out_dir);
    printf("\nresults (%s):\n", path);
    fflush(stdout);
    return eval_table_print(path, p->all_metrics, stdout, err);
}

int driver_run(int argc, char **argv) {
    driver_plan p;
    lafn_err err = {{0}};
    int usage_error = 0;
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(run_usage, stdout);
        return 0;
    }
    if (driver_plan_init(&p, argc, argv, 1, &usage_error, &err) != 0) {
        fprintf(stderr, "lafn run: %s\n%s", err.msg, usage_error ? run_usage : "nothing was run\n");
        return 2;
    }
    driver_plan_print(&p, stdout);
    int status = 0;
    if (driver_cost_print(&p, stdout, &err) != 0) {
        fprintf(stderr, "lafn run: %s\nnothing was run\n", err.msg);
        status = 2;
    }
    for (int i = 0; status == 0 && !p.dry_run && i < DRIVER_N_STAGES; i++) {
        if (!p.stage_on[i]) continue;
        fflush(stdout);
        if (run_stage(&p, i, &status, &err) != 0) {
            fprintf(stderr, "lafn run: %s\n", err.msg);
            if (status <= 0 || status > 255) status = 1;
        }
    }
    if (status == 0 && p.dry_run) printf("\ndry run: nothing was run\n");
    if (status == 0 && !p.dry_run && p.stage_on[DRIVER_N_STAGES - 1] && print_table(&p, &err) != 0) {
        fprintf(stderr, "lafn run: the stages finished but the results table failed: %s\n", err.msg);
        status = 1;
    }
    if (!p.dry_run && status != 2) print_outputs(p.out_dir);
    driver_plan_free(&p);
    return status;
}
