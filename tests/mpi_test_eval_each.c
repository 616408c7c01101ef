/* mpi_test_eval_each: the edit set "each" (one edit language, every test language) through the real probe/locate/edit stages on a tiny model. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "edit/stage_edit.h"
#include "eval/stage_eval.h"
#include "eval/stage_eval_int.h"
#include "locate/stage_locate.h"
#include "probe/stage_probe.h"
#include "testutil.h"

#define N_FACTS 3
#define N_EACH 2
#define L 2

static void write_config(const char *path, const char *out_dir) {
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0, "cannot write %s", path);
        return;
    }
    fprintf(f, "model = { path = \"%s\"; };\n", testutil_repo_path("tests/fixtures/models/tiny-gemma3.gguf"));
    fprintf(f, "data = { format = \"jsonl\"; path = \"%s\"; fact_range = [0, %d]; };\n",
            testutil_repo_path("conf/data/demo_facts.jsonl"), N_FACTS);
    fprintf(f, "languages = { codes = [\"en\", \"zh\"]; };\n");
    fprintf(f, "run = { output_dir = \"%s\"; shard_facts = 2; resume = false; };\n", out_dir);
    fprintf(f, "edit = { steps = 10; gate = 0.0; };\n");
    fprintf(f, "eval = { edit_sets = \"each\"; each_max_facts = %d; bootstrap_samples = 100; };\n", N_EACH);
    fclose(f);
}

static int run_all(const char *cfg) {
    lafn_err err = {{0}};
    int rc = stage_probe_run(cfg, NULL, 0, "each", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_locate_run(cfg, NULL, 0, "each", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_edit_run(cfg, NULL, 0, "each", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_eval_run(cfg, NULL, 0, "each", MPI_COMM_WORLD, NULL, &err);
    CHECK(rc == 0, "stages: %s", err.msg);
    return rc;
}

static void check(const char *dir) {
    char path[400];
    snprintf(path, sizeof path, "%s/eval.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    eval_data d = {0};
    lafn_err err = {{0}};
    if (f < 0 || eval_data_read(f, path, L, &d, &err) != 0) {
        CHECK(0, "%s: %s", path, err.msg);
        return;
    }
    char *sets = NULL;
    CHECK(h5out_attr_string(f, "eval_sets", &sets, &err) == 0 && !strcmp(sets, "unedited,all,each:en,each:zh"),
          "eval_sets = '%s'", sets ? sets : err.msg);
    CHECK(d.n_sets == 2 + L && d.post_each != NULL, "%zu sets, post/each %s", d.n_sets,
          d.post_each ? "present" : "missing");
    size_t in_range = 0, nan_beyond = 0, differ = 0;
    for (size_t i = 0; i < d.n_facts && d.post_each; i++)
        for (size_t e = 0; e < L; e++)
            for (size_t l = 0; l < L; l++)
                for (int c = 0; c < EVAL_N_CRIT; c++)
                    for (int m = 0; m < EVAL_N_METRIC; m++) {
                        double v = eval_data_value(&d, 2 + e, i, l, c, m);
                        if (i < N_EACH) in_range += v >= 0.0 && v <= 1.0;
                        else nan_beyond += isnan(v) != 0;
                        if (i < N_EACH && e == 0 && v != eval_data_value(&d, 3, i, l, c, m)) differ++;
                    }
    size_t per_fact = L * L * EVAL_N_VALUES;
    CHECK(in_range == N_EACH * per_fact, "%zu of %zu each-values of the first %d facts in [0,1]", in_range,
          (size_t)N_EACH * per_fact, N_EACH);
    CHECK(nan_beyond == (N_FACTS - N_EACH) * per_fact, "facts beyond each_max_facts: %zu of %zu values NaN", nan_beyond,
          (size_t)(N_FACTS - N_EACH) * per_fact);
    printf("each:en and each:zh differ in %zu of %zu values\n", differ, (size_t)N_EACH * L * EVAL_N_VALUES);
    CHECK(differ > 0, "the en-only and zh-only edits give identical scores everywhere: not two different edits");
    hid_t ds = H5Dopen2(f, "cells/n", H5P_DEFAULT);
    int64_t n[(2 + L) * L * EVAL_N_VALUES];
    CHECK(ds >= 0 && H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, n) >= 0 && n[0] == N_FACTS &&
              n[2 * L * EVAL_N_VALUES] == N_EACH,
          "cells/n: unedited %lld (expected %d), each:en %lld (expected %d)", (long long)n[0], N_FACTS,
          (long long)n[2 * L * EVAL_N_VALUES], N_EACH);
    if (ds >= 0) H5Dclose(ds);
    free(sets);
    eval_data_free(&d);
    H5Fclose(f);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char base[256], cfg[300], out[300];
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "eval_each", base, sizeof base);
    snprintf(cfg, sizeof cfg, "%s/each.cfg", base);
    snprintf(out, sizeof out, "%s/out", base);
    if (rank == 0) write_config(cfg, out);
    MPI_Barrier(MPI_COMM_WORLD);
    if (run_all(cfg) == 0 && rank == 0) check(out);
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, base);
    int status = rank == 0 ? testutil_finish("mpi_test_eval_each") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
