/* mpi_test_stage: work assignment, collective failure and the shared progress counter, on 2 real MPI ranks. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "stage.h"
#include "testutil.h"

/* Every fact gets one owner, the loads differ by at most the largest cost, and the result is reproducible. */
static void test_assign(void) {
    enum { N = 37, RANKS = 3 };
    size_t cost[N];
    for (size_t i = 0; i < N; i++) cost[i] = 5 + (i * 7919) % 23;
    int owner[N], again[N];
    lafn_err err = {{0}};
    CHECK(stage_assign(cost, N, RANKS, owner, &err) == 0, "%s", err.msg);
    CHECK(stage_assign(cost, N, RANKS, again, &err) == 0, "%s", err.msg);
    CHECK(memcmp(owner, again, sizeof owner) == 0, "assignment is not deterministic");
    size_t load[RANKS] = {0}, total = 0, max_cost = 0;
    for (size_t i = 0; i < N; i++) {
        CHECK(owner[i] >= 0 && owner[i] < RANKS, "fact %zu has owner %d", i, owner[i]);
        load[owner[i]] += cost[i];
        total += cost[i];
        if (cost[i] > max_cost) max_cost = cost[i];
    }
    size_t lo = load[0], hi = load[0];
    for (int r = 1; r < RANKS; r++) {
        if (load[r] < lo) lo = load[r];
        if (load[r] > hi) hi = load[r];
    }
    CHECK(hi - lo <= max_cost, "loads %zu..%zu differ by more than the largest cost %zu (total %zu)", lo, hi,
          max_cost, total);
    int single[1];
    size_t one = 4;
    CHECK(stage_assign(&one, 1, 2, single, &err) == 0 && single[0] == 0, "one fact goes to rank 0");
    CHECK(stage_assign(cost, N, 0, owner, &err) != 0, "0 ranks is refused");
}

/* A failure on rank 1 reaches rank 0 with rank 1's message; success stays success. */
static void test_sync(int rank) {
    lafn_err err = {{0}};
    CHECK(stage_sync_status(MPI_COMM_WORLD, 0, &err) == 0, "all succeeded but got: %s", err.msg);
    int local = 0;
    if (rank == 1) local = lafn_err_set(&err, "data/x.jsonl:3: missing 'src'");
    int rc = stage_sync_status(MPI_COMM_WORLD, local, &err);
    CHECK(rc == -1, "rank %d: a failure on rank 1 must fail every rank", rank);
    CHECK(strstr(err.msg, "data/x.jsonl:3: missing 'src'") != NULL, "rank %d got message '%s'", rank, err.msg);
    if (rank == 0) CHECK(strstr(err.msg, "rank 1 failed") != NULL, "rank 0 is told which rank failed: %s", err.msg);
}

/* Each rank adds 3 facts in steps; the counter ends at resumed + 6. */
static void test_progress(int rank) {
    stage_progress p;
    lafn_err err = {{0}};
    CHECK(stage_progress_init(&p, MPI_COMM_WORLD, "test", 10, 4, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) stage_progress_step(&p, 1);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, p.win);
        long long done = *p.counter;
        MPI_Win_unlock(0, p.win);
        CHECK(done == 10, "counter is %lld, expected 4 resumed + 2 ranks x 3", done);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    stage_progress_free(&p);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size == 2, "run with 2 ranks, got %d", size);
    test_assign();
    test_sync(rank);
    test_progress(rank);
    int failures = testutil_failures, total_failures = 0;
    MPI_Allreduce(&failures, &total_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int status = rank == 0 ? testutil_finish("mpi_test_stage") : 0;
    MPI_Finalize();
    return total_failures ? 1 : status;
}
