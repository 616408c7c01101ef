/* lafn-eval: score every fact pre and post edit in every (edit set, test language) pair into eval.h5, summary.json and summary.csv. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_eval.h"

/* The command line as one string, for the provenance. */
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

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: lafn-eval FILE.cfg [section.key=value ...]\n");
        MPI_Finalize();
        return 2;
    }
    char *cmd = join_args(argc, argv);
    lafn_err err = {{0}};
    if (stage_eval_run(argv[1], argv + 2, argc - 2, cmd, MPI_COMM_WORLD, stdout, &err) != 0) {
        if (rank == 0) fprintf(stderr, "lafn-eval: %s\n", err.msg);
        free(cmd);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    free(cmd);
    MPI_Finalize();
    return 0;
}
