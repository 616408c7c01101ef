/* main: the `lafn` command — dispatches to a subcommand inside one MPI process. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "driver.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} driver_command;

static const driver_command commands[] = {
    {"ask", driver_ask, "answer prompts with the model: lafn ask [--model PATH] (--questions FILE.tsv | PROMPT...)"},
    {"doctor", driver_doctor, "check MPI, parallel HDF5, the BLAS kernel and the model: lafn doctor [--model PATH]"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: lafn COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        MPI_Init(&argc, &argv);
        int status = commands[i].run(argc - 1, argv + 1);
        MPI_Finalize();
        return status;
    }
    fprintf(stderr, "lafn: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
