/* mpi_test_shared_weights: two ranks load the real model into one node-shared block; Pss and Private_* prove one copy. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"

/* Reads Pss and Private_Clean + Private_Dirty (bytes) of this process; -1 on failure. */
static int read_smaps(double *pss, double *priv) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    double kb;
    *pss = *priv = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Pss: %lf kB", &kb) == 1) *pss = kb * 1024;
        if (sscanf(line, "Private_Clean: %lf kB", &kb) == 1) *priv += kb * 1024;
        if (sscanf(line, "Private_Dirty: %lf kB", &kb) == 1) *priv += kb * 1024;
    }
    fclose(f);
    return 0;
}

/* Order-dependent checksum of n floats (exact bit patterns). */
static uint64_t checksum(const float *x, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], 4);
        h = (h ^ b) * 1099511628211ull;
    }
    return h;
}

/* Sums every weight so every page of the block is touched by this rank. */
static double touch_all(const model *m) {
    double s = 0;
    for (size_t i = 0; i < m->block_floats; i += 1024) s += m->block[i];
    return s;
}

static int test_shared(MPI_Comm node, int rank, int size) {
    lafn_err err;
    model *m = NULL;
    double pss0, priv0, pss1, priv1;
    read_smaps(&pss0, &priv0);
    int rc = model_load(&m, testutil_default_model(), node, &err);
    CHECK(rc == 0, "rank %d: shared load failed: %s", rank, err.msg);
    if (rc) return -1;
    volatile double sink = touch_all(m);
    (void)sink;
    MPI_Barrier(node); /* both ranks have mapped every page before either measures */
    read_smaps(&pss1, &priv1);
    MPI_Barrier(node);
    double block = (double)m->block_floats * sizeof(float);
    double dpss = pss1 - pss0, dpriv = priv1 - priv0, sum_dpss, max_priv_other = 0;
    MPI_Allreduce(&dpss, &sum_dpss, 1, MPI_DOUBLE, MPI_SUM, node);
    double my_other = rank != 0 ? dpriv : 0;
    MPI_Allreduce(&my_other, &max_priv_other, 1, MPI_DOUBLE, MPI_MAX, node);
    printf("rank %d/%d: block %.1f MiB, Pss +%.1f MiB, Private +%.1f MiB (sum Pss +%.1f MiB)\n", rank, size,
           block / 1048576, dpss / 1048576, dpriv / 1048576, sum_dpss / 1048576);
    CHECK(max_priv_other < 0.25 * block, "non-owner private memory %.1f MiB is not far below the block %.1f MiB",
          max_priv_other / 1048576, block / 1048576);
    CHECK(sum_dpss < 1.25 * block && sum_dpss > 0.75 * block,
          "sum of Pss growth %.1f MiB is not about one copy of the block %.1f MiB", sum_dpss / 1048576, block / 1048576);
    /* every rank sees identical weights */
    size_t nq = (size_t)m->cfg.n_head * m->cfg.head_dim * m->cfg.d_model;
    uint64_t h[2] = {checksum(m->w.layers[m->cfg.n_layer - 1].wq, nq),
                     checksum(m->w.token_embd, (size_t)m->cfg.vocab * m->cfg.d_model)};
    uint64_t h0[2] = {h[0], h[1]};
    MPI_Bcast(h0, 2, MPI_UINT64_T, 0, node);
    CHECK(h[0] == h0[0] && h[1] == h0[1], "rank %d: checksums %016llx %016llx differ from rank 0's %016llx %016llx",
          rank, (unsigned long long)h[0], (unsigned long long)h[1], (unsigned long long)h0[0], (unsigned long long)h0[1]);
    char sha0[65];
    memcpy(sha0, m->sha256, 65);
    MPI_Bcast(sha0, 65, MPI_CHAR, 0, node);
    CHECK(strcmp(sha0, m->sha256) == 0, "rank %d: sha256 %s differs from rank 0's %s", rank, m->sha256, sha0);
    /* compare with a private load on rank 0 */
    if (rank == 0) {
        model *p = NULL;
        rc = model_load(&p, testutil_default_model(), MPI_COMM_NULL, &err);
        CHECK(rc == 0, "private load failed: %s", err.msg);
        if (rc == 0) {
            CHECK(p->win == MPI_WIN_NULL, "private load made a window");
            CHECK(p->block_floats == m->block_floats, "private block %zu floats, shared %zu", p->block_floats,
                  m->block_floats);
            size_t bad = 0;
            for (size_t i = 0; i < m->block_floats && i < p->block_floats; i++) bad += m->block[i] != p->block[i];
            CHECK(bad == 0, "%zu floats differ between the private and the shared block", bad);
            model_free(p);
        }
    }
    model_free(m);
    return 0;
}

/* A failure on node rank 0 (missing file) must be reported on every rank without a hang. */
static void test_failure(MPI_Comm node, int rank) {
    lafn_err err = {{0}};
    model *m = NULL;
    int rc = model_load(&m, "models/does-not-exist.gguf", node, &err);
    CHECK(rc == -1 && m == NULL, "rank %d: loading a missing file succeeded", rank);
    CHECK(strstr(err.msg, "does-not-exist.gguf") != NULL, "rank %d: message '%s' does not name the file", rank, err.msg);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm node;
    int rank, size;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &rank);
    MPI_Comm_size(node, &size);
    CHECK(size >= 2, "needs at least 2 ranks on the node, got %d", size);
    test_failure(node, rank);
    test_shared(node, rank, size);
    int fails = testutil_failures, any;
    MPI_Allreduce(&fails, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    char name[64];
    snprintf(name, sizeof name, "mpi_test_shared_weights[rank %d]", rank);
    int status = testutil_finish(name);
    MPI_Comm_free(&node);
    MPI_Finalize();
    return any ? 1 : status;
}
