/* driver: the `lafn` command's subcommands, each a function over argc/argv returning an exit status. */
#ifndef LAFN_DRIVER_H
#define LAFN_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "facts/facts.h"
#include "base/lafn_err.h"

/* `lafn ask`: answers prompts with the model (--questions / PROMPT...), or shows
 * the unedited and the edited model side by side for one fact of a finished run
 * (RUN_DIR FACT). Runs inside an MPI singleton. */
int driver_ask(int argc, char **argv);

/* `lafn ask RUN_DIR FACT [section.key=value ...]`: the side-by-side view (driver_ask_run.c). */
int driver_ask_run(int argc, char **argv);

/* `lafn doctor`: checks MPI (also that mpirun starts 2 ranks), the stage
 * programs, parallel HDF5, the BLAS kernel and the model. Calls MPI_Init itself
 * (after running mpirun), so main must not. */
int driver_doctor(int argc, char **argv);

/* ---- lafn doctor's BLAS check (driver_doctor_blas.c) ---- */

/* One GEMM check in this process: the kernel OpenBLAS chose, the largest
 * error against a double-precision reference (relative to sum |a b|), speed. */
typedef struct {
    char kernel[64];
    double max_error, gflops;
} driver_gemm_check;

/* What doctor found about the CPU's faster kernel, if it differs from the one in use. */
typedef struct {
    char best[32];                     /* the kernel the CPU's flags allow ("" = the one in use) */
    int tried, best_ran;               /* checks done; the child with OPENBLAS_CORETYPE=best reported */
    driver_gemm_check current, faster; /* this process's kernel; the child's */
} driver_blas_probe;

/* Runs the GEMM check in this process; 0, or -1 when out of memory. */
int driver_doctor_gemm_check(driver_gemm_check *out);
/* `lafn doctor --blas-child`: the GEMM check, printed as one line for the parent. */
int driver_doctor_blas_child(void);
/* When the CPU allows a faster kernel than the one in use, checks both: this
 * process's, and the faster one in a child started with OPENBLAS_CORETYPE set
 * (so call it before MPI_Init, like any fork). Always returns 0. */
int driver_doctor_blas_probe(driver_blas_probe *p);
/* Prints the BLAS line: kernel, threads, config, the pin, and what the probe
 * found — a faster kernel that computes correctly, with its speed ratio, or
 * one that does not. Returns 0 (advice, never a failure). */
int driver_doctor_blas(const driver_blas_probe *p);

/* `lafn run FILE.cfg ...`: runs the stages under mpirun (driver_run.c). No MPI_Init. */
int driver_run(int argc, char **argv);

/* `lafn submit FILE.cfg ...`: one sbatch script per stage, submitted as a dependency chain (driver_submit.c). */
int driver_submit(int argc, char **argv);

/* `lafn status RUN_DIR`: per stage the facts in committed shards, the merged file, failed attempts and the
 * Slurm jobs with their states, from what is on disk and squeue/sacct (driver_status.c). No MPI. */
int driver_status(int argc, char **argv);

/* ---- the Slurm jobs of a run (driver_jobs.c) ---- */

/* One job lafn submit recorded, and (after driver_jobs_states) what Slurm says of it. */
typedef struct {
    char time[32], stage[16], id[32], after[32]; /* submission time (UTC), stage, job id, the job it waits for ("" none) */
    char state[32], reason[64];                  /* e.g. "PENDING" and "DependencyNeverSatisfied"; "" unknown */
} driver_job;

/* Appends one line "TIME<tab>STAGE<tab>JOB_ID<tab>AFTER_JOB_ID" to RUN_DIR/slurm/jobs.tsv (the folder must exist;
 * the file gets a header line when new). Returns 0, or -1 with err naming the file. */
int driver_jobs_record(const char *run_dir, const char *stage, const char *id, const char *after, lafn_err *err);

/* Reads RUN_DIR/slurm/jobs.tsv in file order into *jobs (*n of them, the caller frees; no file: 0 jobs).
 * Returns 0, or -1 with err naming file:line of a malformed line. */
int driver_jobs_read(const char *run_dir, driver_job **jobs, size_t *n, lafn_err *err);

/* Fills state and reason of each job from `squeue -t all` (jobs the controller still holds), then from sacct
 * for the rest (where accounting is on); a job neither knows keeps state "". Returns the number of jobs with a
 * state; without squeue and sacct, 0. Never fails. */
size_t driver_jobs_states(driver_job *jobs, size_t n);

/* Default model path, relative to the working directory (the repository). */
#define DRIVER_DEFAULT_MODEL "models/gemma-3-270m-q4_k_m.gguf"

/* ---- the stages, in pipeline order ---- */

enum { DRIVER_PARAPHRASE, DRIVER_PROBE, DRIVER_LOCATE, DRIVER_EDIT, DRIVER_EVAL, DRIVER_N_STAGES };
extern const char *const driver_stage_names[DRIVER_N_STAGES]; /* paraphrase probe locate edit eval */

/* ---- a checked plan shared by run and submit (driver_plan.c) ---- */

typedef struct {
    const char *cfg_path;
    char **overrides;        /* (n_overrides) "section.key=value", owned: generated ones then the user's */
    size_t n_overrides;
    int stage_on[DRIVER_N_STAGES]; /* 1 = the stage runs (paraphrase only when paraphrase.method generates) */
    int stages_named;        /* --stages was given */
    int dry_run;
    int all_metrics;         /* --all-metrics: the full results table */
    lafn_config cfg;         /* the pipeline file with the overrides applied */
    const char *out_dir;     /* run.output_dir (owned by cfg) */
    int64_t ranks;           /* run.ranks */
    char *bin_dir;           /* folder of the lafn binary and the stage programs, owned */
    char *stage_path[DRIVER_N_STAGES]; /* lafn-NAME of each stage, owned */
} driver_plan;

/* Parses `FILE.cfg [--resume|--no-resume] [--dry-run] [--stages a,b] [--facts SPEC]
 * [--languages a,b] [--ranks N] [section.key=value ...]` (argv[0] is the
 * subcommand), turning the options into overrides. Then checks, before any
 * work: the pipeline file with every override, the stage programs next to the
 * lafn binary, that the model, generator and data paths exist, that each
 * skipped stage's output exists when a later stage needs it (probe needs
 * paraphrase.h5 only when paraphrase.method generates, and the paraphrase
 * stage runs only then), and that run.output_dir can be created and written
 * (unless dry_run). Returns 0 and *p (free with
 * driver_plan_free), or -1 with err naming the option, key or path at fault
 * (2 in *usage_error for a malformed command line). */
int driver_plan_init(driver_plan *p, int argc, char **argv, int allow_dry_run, int *usage_error, lafn_err *err);
void driver_plan_free(driver_plan *p);

/* Prints the plan: stages, model, data, languages, ranks, output folder. */
void driver_plan_print(const driver_plan *p, FILE *out);

/* Prints the cost estimate of the plan (facts x languages x prompts x tokens,
 * forward/backward passes and FLOPs per stage), tokenizing the selected facts.
 * Returns 0, or -1 with err (model or data unreadable). (driver_cost.c) */
int driver_cost_print(const driver_plan *p, FILE *out, lafn_err *err);

/* Loads the facts a pipeline selects (data.*, languages.codes) as the stages do,
 * malformed records skipped silently. Returns 0 and *set (free with
 * facts_set_free), or -1 with err. (driver_cost.c) */
int driver_load_facts(const lafn_config *cfg, facts_set *set, lafn_err *err);

/* `lafn paraphrases RUN_DIR [--candidates]`: paraphrase.h5's kept paraphrases as a
 * paraphrase file (JSON Lines, docs/DATA_FORMAT.md), or every candidate with its
 * verdict, on stdout (driver_paraphrases.c). No MPI. */
int driver_paraphrases(int argc, char **argv);

/* `lafn report RUN_DIR [RUN_DIR ...] [OUT.html]`: replaces the process with python3 running the source
 * tree's analysis/report.py (the notebooks executed on the run folders into one HTML report); returns 1
 * only when that cannot start (driver_report.c). No MPI. */
int driver_report(int argc, char **argv);

/* ---- running programs (driver_spawn.c) ---- */

/* Folder of the running lafn binary (from /proc/self/exe) into a new string. */
char *driver_bin_dir(lafn_err *err);

/* Full path of an executable named `name` on $PATH into a new string, or NULL. */
char *driver_which(const char *name);

/* The argument vector `mpirun -np RANKS --oversubscribe [--allow-run-as-root]
 * [-x VAR ...] PROGRAM ARGS...` (VAR: OPENBLAS_* and OMP_NUM_THREADS when set),
 * NULL-terminated, into *out (free with driver_argv_free). Returns 0 or -1. */
int driver_mpirun_argv(int64_t ranks, const char *program, char *const *args, size_t n_args, char ***out,
                       lafn_err *err);
void driver_argv_free(char **argv);

/* Runs argv (argv[0] found on $PATH) with its stdout and stderr copied both to
 * echo (if not NULL) and appended to the file log_path (if not NULL). *status
 * gets the exit status, or 128 + the signal that ended it. Returns 0 when the
 * program ran (whatever its status), or -1 with err if it could not be started. */
int driver_spawn_logged(char *const *argv, const char *log_path, FILE *echo, int *status, lafn_err *err);

/* Reads a stage's log (lafn run's logs/STAGE.log, whose attempts each start with a "==== " line, or a Slurm job's
 * logs/STAGE-ID.log): the attempts with the stage's own error line "lafn-STAGE: MESSAGE" are counted (the first
 * such line of each), and last gets the MESSAGE of the latest attempt ("" if it has none or the log is missing).
 * Returns the count (0 for a missing log). */
int driver_log_errors(const char *log_path, const char *stage, char *last, size_t cap);

/* Creates dir and its parents (mode 0755) and checks that a file can be
 * created in it. Returns 0, or -1 with err naming `what` (e.g. "run.output_dir"). */
int driver_mkdir_writable(const char *dir, const char *what, lafn_err *err);

#endif
