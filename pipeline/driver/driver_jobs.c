/* driver_jobs: the Slurm jobs lafn submit records in RUN_DIR/slurm/jobs.tsv, and their states from squeue or sacct. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver.h"

static const char jobs_header[] = "# time_utc\tstage\tjob_id\tafter_job_id   (written by lafn submit, one line per job)\n";

int driver_jobs_record(const char *run_dir, const char *stage, const char *id, const char *after, lafn_err *err) {
    char path[4200], when[32];
    snprintf(path, sizeof path, "%s/slurm/jobs.tsv", run_dir);
    FILE *f = fopen(path, "a");
    if (!f) return lafn_err_set(err, "%s: cannot append the job id %s: %s", path, id, strerror(errno));
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (ftell(f) == 0) fputs(jobs_header, f);
    fprintf(f, "%s\t%s\t%s\t%s\n", when, stage, id, after);
    if (fclose(f) != 0) return lafn_err_set(err, "%s: write failed", path);
    return 0;
}

/* 1 when s is a non-empty string of decimal digits (a Slurm job id) shorter than cap. */
static int is_job_id(const char *s, size_t cap) {
    size_t n = strlen(s);
    return n > 0 && n < cap && strspn(s, "0123456789") == n;
}

/* Splits one line "TIME\tSTAGE\tID\tAFTER" into j. Returns 0, or -1 if a field is missing or malformed. */
static int parse_job_line(char *line, driver_job *j) {
    char *field[4] = {0};
    line[strcspn(line, "\r\n")] = '\0';
    for (int k = 0; k < 4; k++) {
        field[k] = line;
        line += strcspn(line, "\t");
        if (k < 3 && *line != '\t') return -1;
        if (*line) *line++ = '\0';
    }
    *j = (driver_job){0};
    if (strlen(field[0]) >= sizeof j->time || strlen(field[1]) >= sizeof j->stage || !is_job_id(field[2], sizeof j->id) ||
        (field[3][0] && !is_job_id(field[3], sizeof j->after)))
        return -1;
    strcpy(j->time, field[0]);
    strcpy(j->stage, field[1]);
    strcpy(j->id, field[2]);
    strcpy(j->after, field[3]);
    return 0;
}

int driver_jobs_read(const char *run_dir, driver_job **jobs, size_t *n, lafn_err *err) {
    char path[4200], line[512];
    *jobs = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/slurm/jobs.tsv", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : lafn_err_set(err, "%s: cannot read: %s", path, strerror(errno));
    for (size_t lineno = 1; fgets(line, sizeof line, f); lineno++) {
        if (line[0] == '#' || line[0] == '\n') continue;
        driver_job *grown = realloc(*jobs, (*n + 1) * sizeof **jobs);
        if (!grown) { fclose(f); return lafn_err_set(err, "out of memory"); }
        *jobs = grown;
        if (parse_job_line(line, &(*jobs)[*n]) != 0) {
            fclose(f);
            return lafn_err_set(err, "%s:%zu: expected 'TIME<tab>STAGE<tab>JOB_ID<tab>AFTER_JOB_ID' with numeric ids",
                                path, lineno);
        }
        (*n)++;
    }
    fclose(f);
    return 0;
}

/* Runs cmd (a fixed command line; job ids are digits only) and copies "ID|STATE|REASON" lines into the matching jobs.
 * Returns how many jobs got a state. */
static size_t states_from(const char *cmd, driver_job *jobs, size_t n) {
    FILE *p = popen(cmd, "r");
    char line[512];
    size_t found = 0;
    while (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *state = strchr(line, '|'), *reason = NULL;
        if (!state) continue;
        *state++ = '\0';
        if ((reason = strchr(state, '|'))) *reason++ = '\0';
        for (size_t i = 0; i < n; i++) {
            if (strcmp(jobs[i].id, line) != 0 || jobs[i].state[0]) continue;
            snprintf(jobs[i].state, sizeof jobs[i].state, "%s", state);
            snprintf(jobs[i].reason, sizeof jobs[i].reason, "%s", reason && strcmp(reason, "None") ? reason : "");
            found++;
        }
    }
    if (p) pclose(p);
    return found;
}

size_t driver_jobs_states(driver_job *jobs, size_t n) {
    if (n == 0) return 0;
    char *squeue = driver_which("squeue"), *sacct = driver_which("sacct");
    size_t found = squeue ? states_from("squeue -h -t all -o '%i|%T|%r' 2>/dev/null", jobs, n) : 0;
    if (found < n && sacct) {
        size_t len = 64;
        for (size_t i = 0; i < n; i++) len += strlen(jobs[i].id) + 1;
        char *cmd = malloc(len + 64);
        if (cmd) {
            strcpy(cmd, "sacct -n -X -P -o JobID,State -j ");
            for (size_t i = 0; i < n; i++) strcat(strcat(cmd, jobs[i].id), i + 1 < n ? "," : "");
            strcat(cmd, " 2>/dev/null");
            found += states_from(cmd, jobs, n);
            free(cmd);
        }
    }
    free(squeue);
    free(sacct);
    return found;
}
