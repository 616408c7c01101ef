/* driver_submit: `lafn submit` — one sbatch script per stage in RUN_DIR/slurm/, submitted as an afterok dependency chain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

static const char submit_usage[] =
    "usage: lafn submit FILE.cfg [--dry-run] [--sbatch=OPTION ...] [--stages ...] [--facts A-B] [--languages en,zh]\n"
    "                   [--resume | --no-resume] [--ranks N] [section.key=value ...]\n"
    "  writes RUN_DIR/slurm/STAGE.sbatch for each stage and submits them with sbatch --parsable,\n"
    "  each after the previous one succeeded (--dependency=afterok:ID), and records the job ids in\n"
    "  RUN_DIR/slurm/jobs.tsv (see them with lafn status RUN_DIR); --dry-run writes without submitting;\n"
    "  --sbatch=OPTION adds '#SBATCH OPTION' to every script (e.g. --sbatch=--partition=cpu --sbatch=--time=2:00:00)\n";

/* Writes s single-quoted for the shell. */
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputs("'\\''", f);
        else fputc(*s, f);
    }
    fputc('\'', f);
}

/* Writes RUN_DIR/slurm/STAGE.sbatch. */
static int write_script(const driver_plan *p, int i, const char *cwd, char *const *sbatch, size_t n_sbatch,
                        const char *path, lafn_err *err) {
    int64_t threads = 1;
    config_get_int(&p->cfg, "run.threads_per_rank", &threads, NULL);
    FILE *f = fopen(path, "w");
    if (!f) return lafn_err_set(err, "%s: cannot write: %s", path, strerror(errno));
    const char *st = driver_stage_names[i];
    fprintf(f, "#!/bin/bash\n# lafn stage %s of %s, written by lafn submit; run from the folder below.\n", st, p->cfg_path);
    fprintf(f, "#SBATCH --job-name=lafn-%s\n#SBATCH --ntasks=%lld\n#SBATCH --cpus-per-task=%lld\n", st,
            (long long)p->ranks, (long long)threads);
    fprintf(f, "#SBATCH --chdir=%s\n#SBATCH --output=%s/logs/%s-%%j.log\n", cwd, p->out_dir, st);
    for (size_t k = 0; k < n_sbatch; k++) fprintf(f, "#SBATCH %s\n", sbatch[k]);
    fprintf(f, "set -euo pipefail\n# OPENBLAS_CORETYPE etc. travel with sbatch's default --export=ALL and mpirun -x.\n");
    fprintf(f, "# A job that runs as root (a single-machine test cluster) needs mpirun's consent, as lafn run gives it.\n");
    fprintf(f, "as_root=()\nif [ \"$(id -u)\" -eq 0 ]; then as_root=(--allow-run-as-root); fi\n");
    fprintf(f, "# --bind-to none: mpirun would bind every job's rank 0 to the node's core 0 (and a rank's BLAS threads "
               "to one core).\n");
    fprintf(f, "exec mpirun -np \"$SLURM_NTASKS\" --bind-to none \"${as_root[@]}\"");
    const char *fwd[] = {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"};
    for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++)
        if (getenv(fwd[k])) fprintf(f, " -x %s", fwd[k]);
    fputc(' ', f);
    put_quoted(f, p->stage_path[i]);
    fputc(' ', f);
    put_quoted(f, p->cfg_path);
    for (size_t k = 0; k < p->n_overrides; k++) {
        fputc(' ', f);
        put_quoted(f, p->overrides[k]);
    }
    fputc('\n', f);
    if (fclose(f) != 0) return lafn_err_set(err, "%s: write failed", path);
    return 0;
}

/* sbatch --parsable [--dependency=afterok:PREV] SCRIPT; the job id into id. */
static int submit_one(const char *script, const char *prev, char *id, size_t cap, lafn_err *err) {
    char dep[128];
    snprintf(dep, sizeof dep, "--dependency=afterok:%s", prev);
    char *argv[] = {"sbatch", "--parsable", prev[0] ? dep : (char *)script, prev[0] ? (char *)script : NULL, NULL};
    FILE *out = tmpfile();
    if (!out) return lafn_err_set(err, "tmpfile: %s", strerror(errno));
    int status = 0, rc = driver_spawn_logged(argv, NULL, out, &status, err);
    char line[512], last[512] = "";
    rewind(out);
    while (fgets(line, sizeof line, out)) memcpy(last, line, sizeof line);
    fclose(out);
    if (rc != 0) return -1;
    last[strcspn(last, ";\r\n")] = '\0'; /* "ID;cluster" */
    if (status != 0 || !last[0] || strspn(last, "0123456789") != strlen(last) || strlen(last) >= cap)
        return lafn_err_set(err, "sbatch %s failed (exit status %d): %s", script, status, last);
    memcpy(id, last, strlen(last) + 1);
    return 0;
}

/* Splits --sbatch=OPTION arguments out of argv (kept in order) into sbatch[]. Returns the remaining argc. */
static int take_sbatch_options(int argc, char **argv, char **sbatch, size_t *n_sbatch) {
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--sbatch=", 9) == 0) sbatch[(*n_sbatch)++] = argv[i] + 9;
        else argv[n++] = argv[i];
    }
    return n;
}

int driver_submit(int argc, char **argv) {
    driver_plan p;
    lafn_err err = {{0}};
    int usage_error = 0, status = 0;
    char **sbatch = calloc((size_t)argc + 1, sizeof *sbatch), cwd[PATH_MAX], prev[64] = "";
    size_t n_sbatch = 0;
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(submit_usage, stdout);
        free(sbatch);
        return 0;
    }
    if (!sbatch || !getcwd(cwd, sizeof cwd)) { fprintf(stderr, "lafn submit: out of memory or no cwd\n"); free(sbatch); return 1; }
    argc = take_sbatch_options(argc, argv, sbatch, &n_sbatch);
    if (driver_plan_init(&p, argc, argv, 1, &usage_error, &err) != 0) {
        fprintf(stderr, "lafn submit: %s\n%s", err.msg, usage_error ? submit_usage : "nothing was submitted\n");
        free(sbatch);
        return 2;
    }
    char dir[4096], logs[4096];
    snprintf(dir, sizeof dir, "%s/slurm", p.out_dir);
    snprintf(logs, sizeof logs, "%s/logs", p.out_dir);
    if (driver_mkdir_writable(dir, "run.output_dir", &err) || driver_mkdir_writable(logs, "run.output_dir", &err)) status = 1;
    char *sb = status == 0 && !p.dry_run ? driver_which("sbatch") : NULL;
    if (status == 0 && !p.dry_run && !sb) {
        snprintf(err.msg, sizeof err.msg, "sbatch is not on PATH; use --dry-run to only write the scripts");
        status = 1;
    }
    for (int i = 0; status == 0 && i < DRIVER_N_STAGES; i++) {
        if (!p.stage_on[i]) continue;
        char script[4200], id[64];
        snprintf(script, sizeof script, "%s/%s.sbatch", dir, driver_stage_names[i]);
        if (write_script(&p, i, cwd, sbatch, n_sbatch, script, &err) != 0) { status = 1; break; }
        if (p.dry_run) { printf("wrote %s\n", script); continue; }
        if (submit_one(script, prev, id, sizeof id, &err) != 0) { status = 1; break; }
        printf("submitted %s as job %s%s%s\n", script, id, prev[0] ? " after " : "", prev);
        if (driver_jobs_record(p.out_dir, driver_stage_names[i], id, prev, &err) != 0) { status = 1; break; }
        snprintf(prev, sizeof prev, "%s", id);
    }
    if (status != 0) fprintf(stderr, "lafn submit: %s\n", err.msg);
    else if (!p.dry_run)
        printf("logs: %s/logs/STAGE-JOBID.log; job ids: %s/slurm/jobs.tsv; watch with: lafn status %s\n", p.out_dir,
               p.out_dir, p.out_dir);
    free(sb);
    free(sbatch);
    driver_plan_free(&p);
    return status;
}
