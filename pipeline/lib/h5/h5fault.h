/* h5fault: test-only fault injection — a rank kills itself with SIGKILL at a named point of the shard/merge protocol. */
#ifndef LAFN_H5FAULT_H
#define LAFN_H5FAULT_H

/* The environment variable that asks for a kill: "STAGE:POINT:RANK" or
 * "STAGE:POINT:RANK:N". Unset in every normal run; set only by the fault
 * injection tests (tests/test_fault_kill.c). */
#define H5FAULT_ENV "LAFN_TEST_KILL"

/* If LAFN_TEST_KILL names this stage, point and rank, the N-th call (N
 * defaults to 1) with them in this process sends SIGKILL to the calling
 * process, as a crash at that point would; every other call returns at once.
 * The points (docs/HDF5_LAYOUT.md "Files of a stage"): "shard" — just after
 * a shard was committed by its rename; "merge" — the stage file's .tmp is
 * created and partly written, collectively; "global" — the copy with the
 * run-wide datasets is written but not yet renamed over STAGE.h5. rank is
 * the shard's rank, or the rank in the merging communicator. A value that
 * does not parse is reported once on stderr and ignored. */
void h5fault_point(const char *stage, const char *point, int rank);

#endif
