/* stage_main: the shared body of every stage program's main — MPI start, arguments, a clean exit or MPI_Abort on failure. */
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds the ranks wait for each other after a failure before aborting. */
#define STAGE_EXIT_WAIT_SECONDS 10.0

/* 1 once every rank of exit_comm (a communicator of its own, so no
 * collective of the stage can be pending on it) has reached this point; then
 * *any_failed tells whether any rank failed. A rank that succeeded waits as
 * long as it takes; a failed rank gives up after STAGE_EXIT_WAIT_SECONDS and
 * returns 0 (some rank is still busy elsewhere, e.g. blocked in a collective
 * the failed rank never joins). */
static int ranks_meet(MPI_Comm exit_comm, int failed, int *any_failed) {
    MPI_Request req;
    MPI_Iallreduce(&failed, any_failed, 1, MPI_INT, MPI_MAX, exit_comm, &req);
    if (!failed) {
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        return 1;
    }
    double start = MPI_Wtime();
    for (;;) {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) return 1;
        if (MPI_Wtime() - start > STAGE_EXIT_WAIT_SECONDS) return 0;
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
}

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
    MPI_Comm exit_comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &exit_comm);
    char *cmd = join_args(argc, argv);
    lafn_err err = {{0}};
    int failed = run(argv[1], argv + 2, argc - 2, cmd ? cmd : program, MPI_COMM_WORLD, stdout, &err) != 0;
    free(cmd);
    fflush(stdout);
    int any_failed = failed;
    if (!ranks_meet(exit_comm, failed, &any_failed)) {
        /* A rank is stuck where this one failed: only an abort ends the job.
         * The pause lets mpirun forward the message before the kill. */
        if (failed) fprintf(stderr, "%s: %s\n", program, err.msg);
        nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* Every rank is here: rank 0 reports (its message names the failed rank);
     * another rank only when rank 0 itself did not fail. */
    int root_failed = failed;
    MPI_Bcast(&root_failed, 1, MPI_INT, 0, exit_comm);
    if (failed && (rank == 0 || !root_failed)) fprintf(stderr, "%s: %s\n", program, err.msg);
    MPI_Comm_free(&exit_comm);
    MPI_Finalize();
    return any_failed ? 1 : 0;
}
