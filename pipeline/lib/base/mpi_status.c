/* mpi_status: the lowest failing rank's error, handed to every rank. */
#include "base/mpi_status.h"

#include <limits.h>
#include <string.h>

int mpi_status_agree(MPI_Comm comm, int status, lafn_err *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    int candidate = status != 0 ? rank : INT_MAX, first_failed = INT_MAX;
    MPI_Allreduce(&candidate, &first_failed, 1, MPI_INT, MPI_MIN, comm);
    if (first_failed == INT_MAX) return 0;
    char msg[sizeof err->msg] = {0};
    if (rank == first_failed && err) memcpy(msg, err->msg, sizeof msg);
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first_failed, comm);
    msg[sizeof msg - 1] = '\0';
    if (rank != first_failed) lafn_err_set(err, "rank %d failed: %s", first_failed, msg);
    return -1;
}
