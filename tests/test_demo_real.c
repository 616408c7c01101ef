/* test_demo_real: the demo pipeline on the real model edits facts with lafn and with the baselines ft_l and ft_m — reliability rises well above the unedited model in every language. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { DEMO_LANGS = 6, CRITERIA = 4, METRICS = 4 }; /* cells/mean is (sets, langs, criteria, metrics) */

/* Reads cells/mean of eval.h5 into cells (sets × DEMO_LANGS × CRITERIA × METRICS, at most 8 sets). */
static int read_cells(const char *path, double *cells, hsize_t *n_sets) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return -1;
    hid_t dset = H5Dopen2(file, "cells/mean", H5P_DEFAULT), space = H5Dget_space(dset);
    hsize_t dims[4] = {0};
    int ok = dset >= 0 && H5Sget_simple_extent_ndims(space) == 4 && H5Sget_simple_extent_dims(space, dims, NULL) == 4 &&
             dims[0] <= 8 && dims[1] == DEMO_LANGS && dims[2] == CRITERIA && dims[3] == METRICS &&
             H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, cells) >= 0;
    *n_sets = dims[0];
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    return ok ? 0 : -1;
}

/* One `lafn run` of the demo on facts 0-1 with edit.method = method: reliability (token accuracy) of the edit
 * in every language is well above the unedited model's. */
static void check_method(const char *lafn, const char *method) {
    char dir[] = "/tmp/lafn-test-demo-XXXXXX", cmd[8192], eval_path[256];
    if (!mkdtemp(dir)) {
        CHECK(0, "%s: no temporary folder", method);
        return;
    }
    /* Facts 0-1 of the demo set, all 6 languages, the real model, 2 ranks, the demo's knobs. */
    snprintf(cmd, sizeof cmd, "%s run conf/demo.cfg --facts 0-1 --no-resume run.output_dir=%s edit.method=%s > %s/out.txt 2>&1",
             lafn, dir, method, dir);
    int status = system(cmd);
    snprintf(eval_path, sizeof eval_path, "%s/eval.h5", dir);
    double cells[8 * DEMO_LANGS * CRITERIA * METRICS];
    hsize_t n_sets = 0;
    CHECK(status == 0, "%s: lafn run failed (status %d); see %s/out.txt", method, status, dir);
    if (status != 0 || read_cells(eval_path, cells, &n_sets) != 0 || n_sets < 2) {
        CHECK(0, "%s: cannot read cells/mean of %s", method, eval_path);
        return;
    }
    int failures = testutil_failures;
    for (int l = 0; l < DEMO_LANGS; l++) {
        /* set 0 = unedited, set 1 = all languages edited; criterion 0 = reliability, metric 0 = token accuracy */
        double pre = cells[((0 * DEMO_LANGS + l) * CRITERIA + 0) * METRICS + 0];
        double post = cells[((1 * DEMO_LANGS + l) * CRITERIA + 0) * METRICS + 0];
        double loc = cells[((1 * DEMO_LANGS + l) * CRITERIA + 2) * METRICS + 0];
        printf("%s: language %d: reliability token accuracy %.3f -> %.3f, locality %.3f\n", method, l, pre, post, loc);
        CHECK(post >= pre + 0.25 && post >= 0.4, "%s: language %d: reliability %.3f -> %.3f is not well above the "
              "unedited model", method, l, pre, post);
    }
    if (testutil_failures == failures) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
}

int main(void) {
    const char *lafn = testutil_lafn_binary();
    if (!lafn) {
        fprintf(stderr, "test_demo_real: no lafn binary next to the tests\n");
        return 1;
    }
    static const char *const methods[] = {"lafn", "ft_l", "ft_m"}; /* docs/baselines.md */
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) check_method(lafn, methods[i]);
    return testutil_finish("test_demo_real");
}
