/* stage_sync: makes a local success or failure collective, so one failing rank never leaves the others hanging. */
#include "stage/stage.h"

#include <string.h>

int stage_sync_status(MPI_Comm comm, int status, lafn_err *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    int candidate = status != 0 ? rank : INT_MAX, first_failed = INT_MAX;
    if (MPI_Allreduce(&candidate, &first_failed, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return lafn_err_set(err, "stage_sync_status: MPI_Allreduce failed");
    if (first_failed == INT_MAX) return 0;
    char msg[sizeof err->msg];
    if (rank == first_failed) memcpy(msg, err->msg, sizeof msg);
    if (MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first_failed, comm) != MPI_SUCCESS)
        return lafn_err_set(err, "stage_sync_status: MPI_Bcast failed");
    msg[sizeof msg - 1] = '\0';
    if (rank != first_failed) lafn_err_set(err, "rank %d failed: %s", first_failed, msg);
    return -1;
}
