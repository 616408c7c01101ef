/* main: the `lafn` command — dispatches to a subcommand; ask runs inside one MPI process, run and submit start mpirun/sbatch, report python3. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "driver.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    int mpi_init;     /* 1: main brackets the command with MPI_Init/MPI_Finalize */
    const char *help;
} driver_command;

/* run and submit must not be MPI processes themselves: they start mpirun / sbatch. doctor inits MPI itself. */
static const driver_command commands[] = {
    {"run", driver_run, 0, "run the stages under mpirun: lafn run FILE.cfg [--resume] [--dry-run] [--stages ...] "
                           "[--facts A-B] [--languages en,zh] [section.key=value ...]"},
    {"submit", driver_submit, 0, "submit the stages to Slurm as a dependency chain: lafn submit FILE.cfg [...]"},
    {"status", driver_status, 0, "what a run folder holds per stage — facts, shards, failures, Slurm jobs and "
                                 "their states: lafn status RUN_DIR"},
    {"ask", driver_ask, 1, "answer prompts: lafn ask [--model PATH] (--questions FILE.tsv | PROMPT...), or the "
                           "unedited and edited model side by side: lafn ask RUN_DIR FACT"},
    {"paraphrases", driver_paraphrases, 0, "the paraphrase stage's kept paraphrases as a paraphrase file (JSON "
                                           "Lines): lafn paraphrases RUN_DIR [--candidates]"},
    {"report", driver_report, 0, "the analysis notebooks executed on run folders as one HTML report: lafn report "
                                 "RUN_DIR [RUN_DIR ...] [OUT.html]"},
    {"doctor", driver_doctor, 0, "check MPI, mpirun, the stage programs, parallel HDF5, the BLAS kernel and the "
                                 "model: lafn doctor [--model PATH]"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: lafn COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!commands[i].mpi_init) return commands[i].run(argc - 1, argv + 1);
        MPI_Init(&argc, &argv);
        int status = commands[i].run(argc - 1, argv + 1);
        MPI_Finalize();
        return status;
    }
    fprintf(stderr, "lafn: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
