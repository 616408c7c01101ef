/* mpi_status: makes one rank's success or failure collective, so one failing rank never leaves the others hanging. */
#ifndef LAFN_MPI_STATUS_H
#define LAFN_MPI_STATUS_H

#include <mpi.h>

#include "base/lafn_err.h"

/* Collective over comm. Returns 0 on every rank when every rank passed
 * status == 0. Otherwise returns -1 on every rank: the lowest failing rank
 * keeps its own message in err and every other rank's err becomes
 * "rank R failed: MESSAGE" with that rank's message. err may be NULL on ranks that
 * did not fail. Call it after each local step that may fail and before the
 * next collective one. MPI errors abort the job (docs/DESIGN.md §4 "MPI and errors"). */
int mpi_status_agree(MPI_Comm comm, int status, lafn_err *err);

#endif
