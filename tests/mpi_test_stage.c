/* mpi_test_stage: work assignment, collective failure, the shared progress counter and run ids (also with and without generated paraphrases), on 2 real MPI ranks. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "stage/stage.h"
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
    CHECK(mpi_status_agree(MPI_COMM_WORLD, 0, &err) == 0, "all succeeded but got: %s", err.msg);
    int local = 0;
    if (rank == 1) local = lafn_err_set(&err, "data/x.jsonl:3: missing 'src'");
    int rc = mpi_status_agree(MPI_COMM_WORLD, local, &err);
    CHECK(rc == -1, "rank %d: a failure on rank 1 must fail every rank", rank);
    CHECK(strstr(err.msg, "data/x.jsonl:3: missing 'src'") != NULL, "rank %d got message '%s'", rank, err.msg);
    if (rank == 0) CHECK(strstr(err.msg, "rank 1 failed") != NULL, "rank 0 is told which rank failed: %s", err.msg);
}

/* Each rank adds 3 facts in steps; the counter ends at resumed + 6. */
static void test_progress(int rank) {
    stage_progress p;
    stage_progress_init(&p, MPI_COMM_WORLD, "test", 10, 4, NULL);
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

/* Run id of stage under the default pipeline with the given overrides (NULL-terminated). */
static void run_id_of(const char *stage, const char *const *overrides, char id[STAGE_RUN_ID_LEN + 1]) {
    lafn_config c;
    lafn_err err = {{0}};
    id[0] = '\0';
    CHECK(config_defaults(&c, &err) == 0, "defaults: %s", err.msg);
    for (size_t i = 0; overrides[i]; i++) CHECK(config_override(&c, overrides[i], &err) == 0, "%s", err.msg);
    CHECK(stage_run_id(&c, "0123abcd", stage, id, &err) == 0, "%s: %s", stage, err.msg);
    config_free(&c);
}

/* edit.gate, edit.trigger and edit.key_nearest_floor only decide where a stored edit applies: they are part of eval's
 * run id, not edit's — except in sequential mode, where they shape the edits. */
static void test_run_ids(void) {
    char a[STAGE_RUN_ID_LEN + 1], b[STAGE_RUN_ID_LEN + 1];
    const char *gate_1[] = {"edit.gate=1.0", NULL}, *gate_05[] = {"edit.gate=0.5", NULL};
    const char *lr[] = {"edit.lr=0.01", NULL};
    const char *seq_1[] = {"edit.mode=\"sequential\"", "edit.gate=1.0", NULL};
    const char *seq_05[] = {"edit.mode=\"sequential\"", "edit.gate=0.5", NULL};
    run_id_of("edit", gate_1, a);
    run_id_of("edit", gate_05, b);
    CHECK(a[0] && strcmp(a, b) == 0, "single mode: the gate changed edit's run id (%s vs %s)", a, b);
    run_id_of("edit", lr, b);
    CHECK(strcmp(a, b) != 0, "edit.lr did not change edit's run id");
    run_id_of("eval", gate_1, a);
    run_id_of("eval", gate_05, b);
    CHECK(a[0] && strcmp(a, b) != 0, "the gate did not change eval's run id");
    run_id_of("edit", seq_1, a);
    run_id_of("edit", seq_05, b);
    CHECK(a[0] && strcmp(a, b) != 0, "sequential mode: the gate did not change edit's run id");
    const char *neurons[] = {"edit.trigger=neurons", NULL}, *key[] = {"edit.trigger=key", NULL};
    const char *seq_key[] = {"edit.mode=\"sequential\"", "edit.trigger=key", NULL};
    run_id_of("edit", neurons, a);
    run_id_of("edit", key, b);
    CHECK(a[0] && strcmp(a, b) == 0, "single mode: the trigger changed edit's run id (%s vs %s)", a, b);
    run_id_of("eval", neurons, a);
    run_id_of("eval", key, b);
    CHECK(a[0] && strcmp(a, b) != 0, "the trigger did not change eval's run id");
    run_id_of("edit", seq_1, a);
    run_id_of("edit", seq_key, b);
    CHECK(a[0] && strcmp(a, b) != 0, "sequential mode: the trigger did not change edit's run id");
    const char *floor_0[] = {"edit.trigger=nearest_key", "edit.key_nearest_floor=0.0", NULL};
    const char *floor_1[] = {"edit.trigger=nearest_key", "edit.key_nearest_floor=0.9", NULL};
    run_id_of("edit", floor_0, a);
    run_id_of("edit", floor_1, b);
    CHECK(a[0] && strcmp(a, b) == 0, "single mode: edit.key_nearest_floor changed edit's run id (%s vs %s)", a, b);
    run_id_of("eval", floor_0, a);
    run_id_of("eval", floor_1, b);
    CHECK(a[0] && strcmp(a, b) != 0, "edit.key_nearest_floor did not change eval's run id");
    const char *rank_default[] = {"locate.rank_by=mean_score", NULL}, *rank_contrast[] = {"locate.rank_by=contrast", NULL};
    run_id_of("locate", rank_default, a);
    run_id_of("locate", rank_contrast, b);
    CHECK(a[0] && strcmp(a, b) != 0, "locate.rank_by (a late knob) set away from its default did not change locate's run id");
}

/* With paraphrase.method none or file the run ids of probe .. eval do not depend on the paraphrase section (the
 * other paraphrase knobs changed leave them as they are, and file = none for the same data.paraphrases), so runs
 * made before the section existed stay resumable; with sample or beam the paraphrase section joins them. */
static void test_paraphrase_run_ids(void) {
    static const char *const stages[] = {"probe", "locate", "edit", "eval"};
    const char *none[] = {"paraphrase.method=none", "paraphrase.count=7", "paraphrase.model=other.gguf", NULL};
    const char *file_none[] = {"data.paraphrases=conf/data/mzsre_paraphrases.jsonl", "locate.threshold=0.3", NULL};
    const char *file[] = {"data.paraphrases=conf/data/mzsre_paraphrases.jsonl", "locate.threshold=0.3",
                          "paraphrase.method=file", "paraphrase.template_dir=elsewhere", NULL};
    const char *sample[] = {"paraphrase.method=sample", NULL}, *beam[] = {"paraphrase.method=beam", NULL};
    const char *unset[] = {NULL};
    char a[STAGE_RUN_ID_LEN + 1], b[STAGE_RUN_ID_LEN + 1];
    for (size_t i = 0; i < 4; i++) {
        run_id_of(stages[i], none, b);
        run_id_of(stages[i], unset, a);
        CHECK(a[0] && !strcmp(a, b), "%s: method = none with other paraphrase knobs changed the run id (%s vs %s)",
              stages[i], b, a);
        run_id_of(stages[i], file, b);
        run_id_of(stages[i], file_none, a);
        CHECK(a[0] && !strcmp(a, b), "%s: method = file gives run id %s, the same run without the section %s",
              stages[i], b, a);
        run_id_of(stages[i], unset, a);
        run_id_of(stages[i], sample, b);
        CHECK(strcmp(a, b) != 0, "%s: method = sample did not change the run id", stages[i]);
        run_id_of(stages[i], beam, a);
        CHECK(strcmp(a, b) != 0, "%s: method = beam gives the run id of sample", stages[i]);
    }
    const char *sample_count[] = {"paraphrase.method=sample", "paraphrase.count=5", NULL};
    const char *sample_para[] = {"paraphrase.method=sample", "data.paraphrases=conf/data/mzsre_paraphrases.jsonl", NULL};
    run_id_of("probe", sample, a);
    run_id_of("probe", sample_count, b);
    CHECK(strcmp(a, b) != 0, "paraphrase.count did not change probe's run id under method = sample");
    run_id_of("paraphrase", sample, a);
    run_id_of("paraphrase", sample_count, b);
    CHECK(a[0] && strcmp(a, b) != 0, "paraphrase.count did not change the paraphrase stage's run id");
    run_id_of("paraphrase", sample_para, b);
    CHECK(!strcmp(a, b), "data.paraphrases changed the paraphrase stage's run id (it reads only src, subject, alt)");
    const char *locate_only[] = {"paraphrase.method=sample", "locate.threshold=0.3", NULL};
    run_id_of("paraphrase", locate_only, b);
    CHECK(!strcmp(a, b), "a locate knob changed the paraphrase stage's run id");
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
    test_run_ids();
    test_paraphrase_run_ids();
    int failures = testutil_failures, total_failures = 0;
    MPI_Allreduce(&failures, &total_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int status = rank == 0 ? testutil_finish("mpi_test_stage") : 0;
    MPI_Finalize();
    return total_failures ? 1 : status;
}
