/* stage_progress: facts done, rate and ETA of a stage across all ranks, through one shared MPI counter. */
#include "stage/stage.h"

#include <stdio.h>

void stage_progress_init(stage_progress *p, MPI_Comm comm, const char *stage, size_t total, size_t already_done,
                         FILE *log) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    *p = (stage_progress){.win = MPI_WIN_NULL, .stage = stage, .total = total, .resumed = already_done, .log = log};
    MPI_Aint bytes = rank == 0 ? (MPI_Aint)sizeof(long long) : 0;
    MPI_Win_allocate(bytes, (int)sizeof(long long), MPI_INFO_NULL, comm, &p->counter, &p->win);
    if (rank == 0) {
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, p->win);
        *p->counter = (long long)already_done;
        MPI_Win_unlock(0, p->win);
    }
    MPI_Barrier(comm);
    p->start = MPI_Wtime();
    p->last_print = p->start;
}

/* Writes "STAGE: done/total facts, rate, ETA" for the count seen after this rank's increment. */
static void progress_print(const stage_progress *p, long long done, double now) {
    double elapsed = now - p->start;
    double new_done = (double)done - (double)p->resumed;
    double rate = elapsed > 0 ? new_done / elapsed : 0.0;
    double left = (double)p->total - (double)done;
    fprintf(p->log, "%s: %lld/%zu facts, %.2f facts/s", p->stage, done, p->total, rate);
    if (rate > 0 && left > 0) fprintf(p->log, ", ETA %.0f s", left / rate);
    fprintf(p->log, "\n");
    fflush(p->log);
}

void stage_progress_step(stage_progress *p, size_t n_facts) {
    long long add = (long long)n_facts, before = 0;
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, p->win);
    MPI_Fetch_and_op(&add, &before, MPI_LONG_LONG, 0, 0, MPI_SUM, p->win);
    MPI_Win_unlock(0, p->win);
    long long done = before + add;
    double now = MPI_Wtime();
    if (p->log && (now - p->last_print >= STAGE_PROGRESS_SECONDS || done >= (long long)p->total)) {
        progress_print(p, done, now);
        p->last_print = now;
    }
}

void stage_progress_free(stage_progress *p) {
    if (p->win != MPI_WIN_NULL) MPI_Win_free(&p->win);
}
