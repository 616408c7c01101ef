/* mpi_test_eval_leak: by behaviour, no evaluation-only field (rephrase, loc, loc_ans, portability) reaches paraphrase, probe, locate or edit. */
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "edit/stage_edit.h"
#include "eval/stage_eval.h"
#include "locate/stage_locate.h"
#include "paraphrase/paraphrase.h"
#include "probe/stage_probe.h"
#include "testutil.h"

#define N_LEAK_FACTS 4

/* The first N_LEAK_FACTS demo facts with every evaluation-only string
 * (rephrase, loc, loc_ans, portability question and answer) replaced by
 * "<mk> <field> <fact> <lang>" (mk differs in content and length per set). */
static void write_facts(const char *path, const char *mk) {
    FILE *in = fopen(testutil_repo_path("conf/data/demo_facts.jsonl"), "r"), *out = fopen(path, "w");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (in && out && n < N_LEAK_FACTS && getline(&line, &cap, in) > 0) {
        if (line[0] != '{') continue;
        cJSON *rec = cJSON_Parse(line), *langs = cJSON_GetObjectItem(rec, "langs"), *side;
        cJSON_ArrayForEach(side, langs) {
            char buf[256];
            const char *fields[] = {"rephrase", "loc", "loc_ans"};
            for (int k = 0; k < 3; k++) {
                snprintf(buf, sizeof buf, "%s %s %d %s", mk, fields[k], n, side->string);
                cJSON_ReplaceItemInObject(side, fields[k], cJSON_CreateString(buf));
            }
            cJSON *port = cJSON_GetObjectItem(side, "portability");
            snprintf(buf, sizeof buf, "%s portability question %d %s", mk, n, side->string);
            cJSON_ReplaceItemInObject(port, "question", cJSON_CreateString(buf));
            snprintf(buf, sizeof buf, "%s portability answer %d %s", mk, n, side->string);
            cJSON_ReplaceItemInObject(port, "answer", cJSON_CreateString(buf));
        }
        char *text = cJSON_PrintUnformatted(rec);
        fprintf(out, "%s\n", text);
        cJSON_free(text);
        cJSON_Delete(rec);
        n++;
    }
    CHECK(n == N_LEAK_FACTS, "wrote %d facts to %s", n, path);
    free(line);
    if (in) fclose(in);
    if (out) fclose(out);
}

static void write_config(const char *path, const char *facts) {
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0, "cannot write %s", path);
        return;
    }
    fprintf(f, "model = { path = \"%s\"; };\n", testutil_repo_path("tests/fixtures/models/tiny-gemma3.gguf"));
    fprintf(f, "data = { format = \"jsonl\"; path = \"%s\"; };\n", facts);
    fprintf(f, "languages = { codes = [\"en\", \"de\", \"zh\"]; };\n");
    fprintf(f, "run = { shard_facts = 1; resume = false; };\n");
    fprintf(f, "edit = { steps = 5; };\n");
    fclose(f);
}

/* Runs paraphrase (generating, into out_dir/paraphrase), probe, locate, edit and (the control) eval in-process into out_dir. */
static int run_stages(const char *cfg, const char *out_dir) {
    char o[300], po[300];
    snprintf(o, sizeof o, "run.output_dir=%s", out_dir);
    snprintf(po, sizeof po, "run.output_dir=%s/paraphrase", out_dir);
    char *ov[] = {o}, *pov[] = {po, "paraphrase.method=sample", "paraphrase.candidates=3", "paraphrase.max_new_tokens=24"};
    lafn_err err = {{0}};
    int rc = stage_paraphrase_run(cfg, pov, 4, "leak", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_probe_run(cfg, ov, 1, "leak", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_locate_run(cfg, ov, 1, "leak", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_edit_run(cfg, ov, 1, "leak", MPI_COMM_WORLD, NULL, &err);
    if (!rc) rc = stage_eval_run(cfg, ov, 1, "leak", MPI_COMM_WORLD, NULL, &err);
    CHECK(rc == 0, "stages: %s", err.msg);
    return rc;
}

/* Datasets whose values measure the machine, not the data. */
static int is_timing(const char *name) { return strstr(name, "wall_seconds") || strstr(name, "memory_kb"); }

typedef struct {
    hid_t other;
    size_t compared, differ;
    const char *file;
} visit_ctx;

/* Compares dataset `name` of both files byte for byte. */
static herr_t compare_one(hid_t loc, const char *name, const H5O_info_t *info, void *arg) {
    visit_ctx *v = arg;
    if (info->type != H5O_TYPE_DATASET || is_timing(name)) return 0;
    hid_t a = H5Dopen2(loc, name, H5P_DEFAULT), b = H5Dopen2(v->other, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Dget_type(a) : H5I_INVALID_HID;
    hsize_t sa = a >= 0 ? H5Dget_storage_size(a) : 0, sb = b >= 0 ? H5Dget_storage_size(b) : 0;
    size_t n = a >= 0 ? (size_t)H5Sget_simple_extent_npoints(H5Dget_space(a)) * H5Tget_size(t) : 0;
    char *ba = malloc(n + 1), *bb = malloc(n + 1);
    int same = b >= 0 && sa == sb && ba && bb &&
               (n == 0 || (H5Dread(a, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) >= 0 &&
                           H5Dread(b, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) >= 0 && !memcmp(ba, bb, n)));
    if (!same) {
        fprintf(stderr, "%s: dataset %s differs when only evaluation fields change\n", v->file, name);
        v->differ++;
    }
    v->compared++;
    free(ba);
    free(bb);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Dclose(a);
    if (b >= 0) H5Dclose(b);
    return 0;
}

/* Every dataset of STAGE.h5 in dir_a equals the one in dir_b (expect_same), or some differ (the control). */
static void compare_stage(const char *dir_a, const char *dir_b, const char *stage, int expect_same) {
    char pa[400], pb[400];
    snprintf(pa, sizeof pa, "%s/%s.h5", dir_a, stage);
    snprintf(pb, sizeof pb, "%s/%s.h5", dir_b, stage);
    hid_t fa = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
    visit_ctx v = {.other = fb, .file = pa};
    if (fa >= 0 && fb >= 0) H5Ovisit2(fa, H5_INDEX_NAME, H5_ITER_NATIVE, compare_one, &v, H5O_INFO_BASIC);
    if (expect_same)
        CHECK(fa >= 0 && fb >= 0 && v.compared > 0 && v.differ == 0, "%s: %zu of %zu datasets differ", stage, v.differ,
              v.compared);
    else CHECK(fa >= 0 && fb >= 0 && v.differ > 0, "control: %s must change with the evaluation strings", stage);
    printf("%s: %zu of %zu datasets differ with other evaluation-only strings\n", stage, v.differ, v.compared);
    if (fa >= 0) H5Fclose(fa);
    if (fb >= 0) H5Fclose(fb);
}

/* No marker byte string in any file the stages wrote (eval writes numbers and the edit prompts only). */
static void grep_markers(const char *dir, const char *mk) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -r -l -a -F '%s' %s", mk, dir);
    int rc = system(cmd);
    CHECK(rc != 0, "a stage output in %s contains the evaluation-only marker '%s'", dir, mk);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char base[256], facts[300], cfg[300], a[300], b[300];
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "eval_leak", base, sizeof base);
    snprintf(facts, sizeof facts, "%s/facts.jsonl", base);
    snprintf(cfg, sizeof cfg, "%s/leak.cfg", base);
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(b, sizeof b, "%s/b", base);
    if (rank == 0) {
        write_facts(facts, "QZXEVALONLYA");
        write_config(cfg, facts);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    run_stages(cfg, a);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) write_facts(facts, "WQVEVALONLYBBBBBB but longer");
    MPI_Barrier(MPI_COMM_WORLD);
    run_stages(cfg, b);
    if (rank == 0) {
        char pa[320], pb[320];
        snprintf(pa, sizeof pa, "%s/paraphrase", a);
        snprintf(pb, sizeof pb, "%s/paraphrase", b);
        compare_stage(pa, pb, "paraphrase", 1);
        compare_stage(a, b, "probe", 1);
        compare_stage(a, b, "locate", 1);
        compare_stage(a, b, "edit", 1);
        compare_stage(a, b, "eval", 0);
        grep_markers(a, "QZXEVALONLYA");
        grep_markers(b, "WQVEVALONLYB");
    }
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, base);
    int status = rank == 0 ? testutil_finish("mpi_test_eval_leak") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
