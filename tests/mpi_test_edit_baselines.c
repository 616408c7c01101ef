/* mpi_test_edit_baselines: the edit stage with edit.method ft_l and ft_m on the tiny Gemma 3 — whole-layer records without locate.h5, 2 ranks = 1 rank, resume after a simulated kill, batch mode, and sequential edits applied to every input. */
#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edit_testlib.h"
#include "testutil.h"

enum { N_FACTS = 3, D = 64, F = 128, LAYER = 1 /* floor(21/32 x 3 layers) */ };
static int my_rank = 0;
static char root[128];

/* The pipeline file of the tests (written by rank 0): both baselines made to move the tiny model in 8 steps. */
static void write_cfg(const char *path) {
    FILE *f = fopen(path, "w");
    fprintf(f,
            "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
            "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; facts = [0, 1, 2]; };\n"
            "languages = { codes = [\"en\", \"de\"]; };\n"
            "run = { output_dir = \"%s/unused\"; shard_facts = 1; };\n"
            "ft_l = { num_steps = 8; lr = 0.01; norm_constraint = 0.02; };\n"
            "ft_m = { num_steps = 8; lr = 0.01; };\n",
            root);
    fclose(f);
}

/* The edit stage on dir with edit.method = method and up to two more overrides. */
static int run_edit(const char *cfg, const char *dir, const char *method, const char *x1, const char *x2,
                    MPI_Comm comm, lafn_err *err) {
    char m[64];
    snprintf(m, sizeof m, "edit.method=%s", method);
    const char *extra[3] = {m, x1, x2};
    return etl_run_edit(cfg, dir, extra, 3, comm, err);
}

typedef etl_stored stored;

/* Every fact edited on every neuron j of blk.LAYER.ffn_down (one value vector per column: the dense update),
 * no gate neurons and no keys, every language's loss lower. */
static void check_outputs(const stored *s, const char *what) {
    CHECK(s->s.n_facts == N_FACTS, "%s: %zu rows, expected %d", what, s->s.n_facts, N_FACTS);
    for (int64_t f = 0; f < N_FACTS; f++) {
        long r = etl_row_of(s, f);
        CHECK(r >= 0, "%s: fact %lld missing", what, (long long)f);
        if (r < 0) continue;
        int64_t lo = s->s.delta_off[r], n_delta = s->s.delta_off[r + 1] - lo;
        int whole = n_delta == F;
        for (int64_t k = 0; whole && k < n_delta; k++)
            whole = s->s.delta_layer[lo + k] == LAYER && s->s.delta_neuron[lo + k] == (int32_t)k;
        CHECK(whole && s->s.status[r] != EDIT_STATUS_NO_LAFN, "%s: fact %lld: status %d, %lld entries, expected "
              "every neuron of blk.%d.ffn_down", what, (long long)f, s->s.status[r], (long long)n_delta, LAYER);
        CHECK(s->s.gate_off[r + 1] == s->s.gate_off[r] && s->s.key_info[r * 2] == 0, "%s: fact %lld has a gate or keys",
              what, (long long)f);
        for (int l = 0; l < 2; l++)
            CHECK(s->nll_after[r * 2 + l] < s->nll_before[r * 2 + l], "%s: fact %lld language %d: loss %g -> %g", what,
                  (long long)f, l, s->nll_before[r * 2 + l], s->nll_after[r * 2 + l]);
    }
}

static void check_same(const stored *a, const stored *b, double tol, const char *what) {
    etl_check_same(a, b, tol, what, my_rank == 0);
}

/* A fresh dir with the named shards of `from` and the leftovers of a killed run. */
static void prepare_dir(const char *from, const char *to, const char *shard) {
    char src[512], dst[512];
    mkdir(to, 0755);
    if (!shard) return;
    snprintf(src, sizeof src, "%s/%s", from, shard);
    snprintf(dst, sizeof dst, "%s/%s", to, shard);
    testutil_copy_file(src, dst);
    snprintf(dst, sizeof dst, "%s/edit.shard-1-0.h5.tmp", to);
    FILE *f = fopen(dst, "w");
    fputs("\x89HDF half written", f);
    fclose(f);
    snprintf(dst, sizeof dst, "%s/edit.h5.tmp", to);
    f = fopen(dst, "w");
    fputs("garbage", f);
    fclose(f);
}

/* The edit stage on 1 rank (rank 0 alone) into dir; the status on every rank. */
static int run_one_rank(const char *cfg, const char *dir, const char *method, const char *x1, const char *x2,
                        lafn_err *err) {
    MPI_Comm one;
    int rc = 0;
    MPI_Comm_split(MPI_COMM_WORLD, my_rank == 0 ? 0 : MPI_UNDEFINED, 0, &one);
    if (my_rank == 0) {
        rc = run_edit(cfg, dir, method, x1, x2, one, err);
        MPI_Comm_free(&one);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc;
}

/* One method through single mode (2 ranks, 1 rank, resume), batch mode (2 ranks = 1 rank) and sequential mode. */
static void test_method(const char *cfg, const char *method) {
    char a[256], b[256], c[256], d[256], e[256], q[256], what[128];
    snprintf(a, sizeof a, "%s/%s-a", root, method), snprintf(b, sizeof b, "%s/%s-b", root, method);
    snprintf(c, sizeof c, "%s/%s-c", root, method), snprintf(d, sizeof d, "%s/%s-d", root, method);
    snprintf(e, sizeof e, "%s/%s-e", root, method), snprintf(q, sizeof q, "%s/%s-q", root, method);
    lafn_err err = {{0}};
    stored sa = {0}, sb = {0}, sc = {0}, sd = {0}, se = {0}, sq = {0};
    if (my_rank == 0) prepare_dir(NULL, a, NULL), prepare_dir(NULL, b, NULL), prepare_dir(NULL, d, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    int rc = run_edit(cfg, a, method, NULL, NULL, MPI_COMM_WORLD, &err);
    CHECK(rc == 0, "%s, single, 2 ranks (no locate.h5): %s", method, err.msg);
    snprintf(what, sizeof what, "%s single", method);
    if (rc == 0 && etl_read_stored(a, D, MPI_COMM_WORLD, &sa, &err) == 0) check_outputs(&sa, what);
    int rb = run_one_rank(cfg, b, method, NULL, NULL, &err);
    CHECK(rb == 0, "%s, single, 1 rank: %s", method, err.msg);
    snprintf(what, sizeof what, "%s single, 2 ranks vs 1 rank", method);
    if (rc == 0 && rb == 0 && etl_read_stored(b, D, MPI_COMM_WORLD, &sb, &err) == 0) check_same(&sa, &sb, 0.0, what);
    if (my_rank == 0) prepare_dir(a, c, "edit.shard-0-0.h5");
    MPI_Barrier(MPI_COMM_WORLD);
    int rcc = run_edit(cfg, c, method, NULL, NULL, MPI_COMM_WORLD, &err);
    CHECK(rcc == 0, "%s, resume: %s", method, err.msg);
    snprintf(what, sizeof what, "%s resume after a kill vs uninterrupted", method);
    if (rc == 0 && rcc == 0 && etl_read_stored(c, D, MPI_COMM_WORLD, &sc, &err) == 0) check_same(&sa, &sc, 0.0, what);
    int rcd = run_edit(cfg, d, method, "edit.mode=batch", "edit.batch_size=2", MPI_COMM_WORLD, &err);
    if (my_rank == 0) prepare_dir(NULL, e, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    int rce = run_one_rank(cfg, e, method, "edit.mode=batch", "edit.batch_size=2", &err);
    CHECK(rcd == 0 && rce == 0, "%s, batch: %s", method, err.msg);
    snprintf(what, sizeof what, "%s batch, 2 ranks vs 1 rank", method);
    if (rcd == 0 && rce == 0 && etl_read_stored(d, D, MPI_COMM_WORLD, &sd, &err) == 0 &&
        etl_read_stored(e, D, MPI_COMM_WORLD, &se, &err) == 0)
        check_same(&sd, &se, 1e-4, what);
    /* sequential: fact 1 is optimised with fact 0's change applied to its prompts (no trigger decides), so its
     * loss before differs from the single edit's */
    if (my_rank == 0) prepare_dir(NULL, q, NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    int rq = run_edit(cfg, q, method, "edit.mode=sequential", NULL, MPI_COMM_WORLD, &err);
    CHECK(rq == 0, "%s, sequential: %s", method, err.msg);
    if (rc == 0 && rq == 0 && etl_read_stored(q, D, MPI_COMM_WORLD, &sq, &err) == 0) {
        long r1 = etl_row_of(&sq, 1), s1 = etl_row_of(&sa, 1);
        CHECK(r1 >= 0 && s1 >= 0 && fabs(sq.nll_before[r1 * 2] - sa.nll_before[s1 * 2]) > 1e-3,
              "%s sequential: fact 1's loss before %g equals the single edit's %g: fact 0's change was not applied",
              method, r1 >= 0 ? sq.nll_before[r1 * 2] : NAN, s1 >= 0 ? sa.nll_before[s1 * 2] : NAN);
    }
    etl_stored_free(&sa), etl_stored_free(&sb), etl_stored_free(&sc), etl_stored_free(&sd), etl_stored_free(&se), etl_stored_free(&sq);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "edit_baselines", root, sizeof root);
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/edit.cfg", root);
    if (my_rank == 0) write_cfg(cfg);
    MPI_Barrier(MPI_COMM_WORLD);
    test_method(cfg, "ft_l");
    test_method(cfg, "ft_m");
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, root);
    int status = my_rank == 0 ? testutil_finish("mpi_test_edit_baselines") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
