/* stage_main: the shared body of every stage program's main — MPI start, arguments, MPI_Abort on failure. */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

/* The command line as one string, for the provenance; NULL if out of memory. */
static char *join_args(int argc, char **argv) {
    size_t len = 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *s = calloc(len, 1);
    for (int i = 0; s && i < argc; i++) {
        strcat(s, argv[i]);
        if (i + 1 < argc) strcat(s, " ");
    }
    return s;
}

int stage_main(int argc, char **argv, const char *program, stage_run_fn run) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: %s FILE.cfg [section.key=value ...]\n", program);
        MPI_Finalize();
        return 2;
    }
    char *cmd = join_args(argc, argv);
    lafn_err err = {{0}};
    if (run(argv[1], argv + 2, argc - 2, cmd ? cmd : program, MPI_COMM_WORLD, stdout, &err) != 0) {
        if (rank == 0) fprintf(stderr, "%s: %s\n", program, err.msg);
        free(cmd);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    free(cmd);
    MPI_Finalize();
    return 0;
}
