/* mpi_test_eval: the eval stage with hand-built edits on a tiny model — every fact once, metrics in [0,1], same results on 1 and 2 ranks, resume, summaries and table. */
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval_table.h"
#include "eval/stage_eval.h"
#include "eval/stage_eval_int.h"
#include "testutil.h"

#define N_FACTS 5

/* The first N_FACTS demo facts, fact 1's de rephrase set equal to its src (the rephrase == src subset). */
static void write_facts(const char *path) {
    FILE *in = fopen(testutil_repo_path("conf/data/demo_facts.jsonl"), "r"), *out = fopen(path, "w");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (in && out && n < N_FACTS && getline(&line, &cap, in) > 0) {
        if (line[0] != '{') continue;
        cJSON *rec = cJSON_Parse(line), *de = cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "langs"), "de");
        if (n == 1)
            cJSON_ReplaceItemInObject(de, "rephrase", cJSON_CreateString(cJSON_GetObjectItem(de, "src")->valuestring));
        char *text = cJSON_PrintUnformatted(rec);
        fprintf(out, "%s\n", text);
        cJSON_free(text);
        cJSON_Delete(rec);
        n++;
    }
    CHECK(n == N_FACTS, "wrote %d facts", n);
    free(line);
    if (in) fclose(in);
    if (out) fclose(out);
}

/* A pipeline file for the tiny model, the N_FACTS facts in en and de. */
static void write_config(const char *path, const char *facts, const char *out_dir) {
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0, "cannot write %s", path);
        return;
    }
    fprintf(f, "model = { path = \"%s\"; };\n", testutil_repo_path("tests/fixtures/models/tiny-gemma3.gguf"));
    fprintf(f, "data = { format = \"jsonl\"; path = \"%s\"; };\n", facts);
    fprintf(f, "languages = { codes = [\"en\", \"de\"]; };\n");
    fprintf(f, "run = { output_dir = \"%s\"; shard_facts = 2; resume = false; };\n", out_dir);
    fprintf(f, "eval = { bootstrap_samples = 200; };\n");
    fclose(f);
}

/* Hand-built edits: a one-entry cache per fact over layers 1.. of the tiny
 * model, gate 0; odd facts get a destructive delta, even ones a zero delta. */
typedef struct {
    eval_edit e[N_FACTS];
    edit_cache caches[N_FACTS];
    int64_t facts[N_FACTS];
} hand_edits;

static void hand_edits_build(hand_edits *h, const model *m, const facts_set *fs) {
    int L = m->cfg.n_layer, F = m->cfg.d_ffn, D = m->cfg.d_model, n = (L - 1) * F;
    for (size_t i = 0; i < N_FACTS; i++) {
        eval_edit *e = &h->e[i];
        float scale = (i % 2) ? 50.0f : 0.0f;
        *e = (eval_edit){0};
        e->layer = malloc(n * sizeof(int));
        e->neuron = malloc(n * sizeof(int));
        e->delta = malloc((size_t)n * D * sizeof(float));
        for (int k = 0; k < n; k++) {
            e->layer[k] = 1 + k / F;
            e->neuron[k] = k % F;
            for (int d = 0; d < D; d++) e->delta[(size_t)k * D + d] = scale * (float)(((k * 7 + d * 3) % 11) - 5);
        }
        e->entry = (edit_cache_entry){.group = (long long)i,
                                      .n = n,
                                      .layer = e->layer,
                                      .neuron = e->neuron,
                                      .delta = e->delta};
        h->caches[i] =
            (edit_cache){.kind = ENGINE_EDIT_VALUE_VECTOR, .trigger = {.gate = 0.0f}, .n_entries = 1, .entries = &e->entry};
        h->facts[i] = (int64_t)fs->facts[i].index;
    }
}

static void hand_edits_free(hand_edits *h) {
    for (size_t i = 0; i < N_FACTS; i++) eval_edit_free(&h->e[i]);
}

/* Runs the stage on comm with the hand-built edits into out_dir. */
static int run_eval(const char *cfg, const char *out_dir, int resume, MPI_Comm comm) {
    char o1[256], o2[256];
    snprintf(o1, sizeof o1, "run.output_dir=%s", out_dir);
    snprintf(o2, sizeof o2, "run.resume=%s", resume ? "true" : "false");
    char *ov[] = {o1, o2};
    stage_context ctx;
    lafn_err err = {{0}};
    if (stage_context_init(&ctx, "eval", cfg, ov, 2, "mpi_test_eval", comm, NULL, &err) != 0) {
        CHECK(0, "context: %s", err.msg);
        return -1;
    }
    hand_edits h;
    hand_edits_build(&h, ctx.m, &ctx.facts);
    double wall[N_FACTS] = {1, 2, 3, 4, 5};
    eval_edit_table t = {.n_facts = N_FACTS, .facts = h.facts, .caches = h.caches, .wall_seconds = wall};
    int rc = stage_eval_execute(&ctx, &t, &err);
    CHECK(rc == 0, "stage_eval_execute: %s", err.msg);
    hand_edits_free(&h);
    stage_context_free(&ctx);
    return rc;
}

static int read_data(const char *dir, eval_data *d) {
    char path[512];
    lafn_err err = {{0}};
    snprintf(path, sizeof path, "%s/eval.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        CHECK(0, "cannot open %s", path);
        return -1;
    }
    int rc = eval_data_read(f, path, 2, d, &err);
    CHECK(rc == 0, "%s", err.msg);
    H5Fclose(f);
    return rc;
}

/* Every fact once, values in [0,1], locality 1 for the zero edits and low for the destructive ones. */
static void check_one(const eval_data *d) {
    CHECK(d->n_facts == N_FACTS, "eval.h5 holds %zu facts, expected %d", d->n_facts, N_FACTS);
    for (size_t i = 0; i < d->n_facts; i++)
        CHECK(d->facts[i] == (int64_t)i, "row %zu is fact %lld", i, (long long)d->facts[i]);
    size_t bad = 0;
    double loc_bad = 0.0;
    for (size_t i = 0; i < d->n_facts; i++)
        for (size_t l = 0; l < 2; l++)
            for (size_t s = 0; s < 2; s++)
                for (int c = 0; c < EVAL_N_CRIT; c++)
                    for (int m = 0; m < EVAL_N_METRIC; m++) {
                        double v = eval_data_value(d, s, i, l, c, m);
                        if (!(v >= 0.0 && v <= 1.0)) {
                            bad++;
                            fprintf(stderr, "fact %zu lang %zu set %zu %s/%s = %g\n", i, l, s, eval_criterion_names[c],
                                    eval_metric_names[m], v);
                        }
                    }
    CHECK(bad == 0, "%zu values outside [0,1] (or NaN; every demo fact has every question)", bad);
    for (size_t i = 0; i < d->n_facts; i++)
        for (size_t l = 0; l < 2; l++) {
            double loc = eval_data_value(d, 1, i, l, EVAL_LOCALITY, EVAL_TOKEN_EM);
            if (i % 2 == 0) CHECK(loc == 1.0, "fact %zu (zero delta) lang %zu: locality %g, expected 1", i, l, loc);
            else loc_bad += loc / (double)(2 * (N_FACTS / 2));
        }
    CHECK(loc_bad < 0.6, "destructive edits: mean locality %g, expected well below 1", loc_bad);
    CHECK(d->wall[0] == 1.0 && d->wall[4] == 5.0, "wall seconds not carried: %g %g", d->wall[0], d->wall[4]);
}

/* Generality on rephrase == src: only fact 1 in de; its cell equals that fact's values. */
static void check_subset(hid_t f, const eval_data *d) {
    int64_t n[2 * 2 * EVAL_N_METRIC];
    double mean[2 * 2 * EVAL_N_METRIC];
    hid_t dn = H5Dopen2(f, "cells_rephrase_eq_src/n", H5P_DEFAULT),
          dm = H5Dopen2(f, "cells_rephrase_eq_src/mean", H5P_DEFAULT);
    int ok = dn >= 0 && dm >= 0 && H5Dread(dn, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, n) >= 0 &&
             H5Dread(dm, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, mean) >= 0;
    /* index (set, lang, metric): set 1 = all, lang 1 = de, metric token_em */
    size_t de = (1 * 2 + 1) * EVAL_N_METRIC, en = (1 * 2 + 0) * EVAL_N_METRIC;
    CHECK(ok && n[de] == 1 && n[en] == 0, "rephrase == src cells: n(de) %lld, n(en) %lld; expected 1 and 0",
          ok ? (long long)n[de] : -1LL, ok ? (long long)n[en] : -1LL);
    double v = eval_data_value(d, 1, 1, 1, EVAL_GENERALITY, EVAL_TOKEN_EM);
    CHECK(ok && mean[de] == v, "rephrase == src cell mean %g, fact 1's generality in de %g", ok ? mean[de] : NAN, v);
    CHECK(d->same[1 * 2 + 1] == 1 && d->same[0] == 0, "rephrase_is_src flags wrong");
    if (dn >= 0) H5Dclose(dn);
    if (dm >= 0) H5Dclose(dm);
}

/* Compares every per-fact value and every cell of two runs exactly. */
static void check_same(const char *dir_a, const char *dir_b, const eval_data *a, const eval_data *b) {
    size_t diff = 0;
    for (size_t k = 0; k < a->n_facts * 2 * EVAL_N_VALUES && a->n_facts == b->n_facts; k++) {
        if (memcmp(&a->pre[k], &b->pre[k], 8) || memcmp(&a->post[k], &b->post[k], 8)) {
            if (!diff)
                fprintf(stderr, "first difference at value %zu: %g/%g vs %g/%g\n", k, a->pre[k], a->post[k], b->pre[k],
                        b->post[k]);
            diff++;
        }
    }
    CHECK(a->n_facts == b->n_facts && diff == 0, "1 rank and 2 ranks differ in %zu per-fact values", diff);
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/eval.h5", dir_a);
    snprintf(pb, sizeof pb, "%s/eval.h5", dir_b);
    hid_t fa = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
    const char *names[] = {"cells/mean", "cells/lo", "cells/hi", "cells/n", "cells_rephrase_eq_src/mean"};
    for (size_t i = 0; i < 5 && fa >= 0 && fb >= 0; i++) {
        hid_t da = H5Dopen2(fa, names[i], H5P_DEFAULT), db = H5Dopen2(fb, names[i], H5P_DEFAULT);
        size_t n = 2 * 2 * EVAL_N_VALUES;
        double va[2 * 2 * EVAL_N_VALUES] = {0}, vb[2 * 2 * EVAL_N_VALUES] = {0};
        int ok = da >= 0 && db >= 0 && H5Dread(da, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, va) >= 0 &&
                 H5Dread(db, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vb) >= 0;
        CHECK(ok && !memcmp(va, vb, sizeof va), "%s differs between 1 and 2 ranks", names[i]);
        if (i == 0) {
            size_t nan = 0;
            for (size_t k = 0; k < n; k++) nan += isnan(va[k]);
            CHECK(nan == 0, "%zu cell means are NaN", nan);
        }
        if (da >= 0) H5Dclose(da);
        if (db >= 0) H5Dclose(db);
    }
    check_subset(fa, a);
    if (fa >= 0) H5Fclose(fa);
    if (fb >= 0) H5Fclose(fb);
}

/* summary.json: one EasyEdit-style record per fact; summary.csv: header + one row per (fact, language). */
static void check_summaries(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    FILE *f = fopen(path, "r");
    char *text = calloc(1 << 20, 1);
    size_t n = f ? fread(text, 1, (1 << 20) - 1, f) : 0;
    if (f) fclose(f);
    cJSON *arr = cJSON_Parse(text);
    CHECK(arr && cJSON_GetArraySize(arr) == N_FACTS, "%s: %zu bytes, not an array of %d records", path, n, N_FACTS);
    cJSON *r0 = arr ? cJSON_GetArrayItem(arr, 0) : NULL;
    cJSON *rw = cJSON_GetObjectItem(r0, "requested_rewrite");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(r0, "case_id")) && cJSON_IsString(cJSON_GetObjectItem(rw, "prompt")) &&
              cJSON_IsString(cJSON_GetObjectItem(rw, "target_new")) &&
              cJSON_IsString(cJSON_GetObjectItem(rw, "subject")),
          "record 0 lacks case_id / requested_rewrite {prompt, target_new, subject}");
    cJSON *post_en = cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "post"), "en");
    const char *keys[] = {"rewrite_acc", "rephrase_acc", "locality", "portability"};
    for (int k = 0; k < 4; k++)
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(post_en, keys[k])), "record 0 post.en.%s missing", keys[k]);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(post_en, "f1"), "rewrite_acc")), "post.en.f1 missing");
    cJSON_Delete(arr);
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    f = fopen(path, "r");
    size_t lines = 0, quotes = 0;
    for (int c; f && (c = fgetc(f)) != EOF;) {
        lines += c == '\n';
        quotes += c == '"';
    }
    if (f) fclose(f);
    CHECK(lines == 1 + 2 * N_FACTS, "%s has %zu lines, expected %d", path, lines, 1 + 2 * N_FACTS);
    CHECK(quotes % 2 == 0, "%s: unbalanced quotes", path);
    free(text);
}

static void check_table(const char *dir) {
    char path[512], *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/eval.h5", dir);
    FILE *f = open_memstream(&buf, &len);
    lafn_err err = {{0}};
    int rc = eval_table_print(path, 1, f, &err);
    fclose(f);
    CHECK(rc == 0, "eval_table_print: %s", err.msg);
    if (buf) fputs(buf, stdout);
    CHECK(buf && strstr(buf, "reliability (rewrite_acc), token_em") && strstr(buf, "unedited") &&
              strstr(buf, "edit:all") && strstr(buf, "n=5"),
          "table lacks its rows:\n%s", buf ? buf : "");
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    rc = eval_table_print(path, 0, f, &err);
    fclose(f);
    CHECK(rc == 0, "eval_table_print (compact): %s", err.msg);
    if (buf) fputs(buf, stdout);
    size_t lines = 0;
    for (const char *c = buf; c && *c; c++) lines += *c == '\n';
    CHECK(buf && strstr(buf, "token_em, unedited -> edited in all languages") && strstr(buf, "\nen ") &&
              strstr(buf, "\nde ") && strstr(buf, "n=5") && !strstr(buf, "rewrite_acc") && lines <= 8,
          "the compact table: token accuracy, a row per language, n per cell, %zu lines (at most 8):\n%s", lines,
          buf ? buf : "");
    free(buf);
}

static size_t count_shards(const char *dir) {
    h5out_shard *sh = NULL;
    size_t n = 0;
    lafn_err err = {{0}};
    CHECK(h5out_shard_list(dir, "eval", &sh, &n, &err) == 0, "%s", err.msg);
    h5out_shards_free(sh, n);
    return n;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size == 2, "run with 2 ranks, got %d", size);
    char base[256], cfg[300], two[300], one[300], facts[300];
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "eval", base, sizeof base);
    snprintf(cfg, sizeof cfg, "%s/eval.cfg", base);
    snprintf(two, sizeof two, "%s/two", base);
    snprintf(one, sizeof one, "%s/one", base);
    snprintf(facts, sizeof facts, "%s/facts.jsonl", base);
    if (rank == 0) {
        write_facts(facts);
        write_config(cfg, facts, two);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    run_eval(cfg, two, 0, MPI_COMM_WORLD);
    MPI_Comm self;
    MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &self);
    if (rank == 0) run_eval(cfg, one, 0, self);
    MPI_Barrier(MPI_COMM_WORLD);
    size_t n_before = count_shards(two);
    if (rank == 0) { /* a run killed after some shards: drop one committed shard, resume redoes only its facts */
        char shard[400];
        snprintf(shard, sizeof shard, "%s/eval.shard-1-0.h5", two);
        CHECK(unlink(shard) == 0, "no shard %s to remove", shard);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    run_eval(cfg, two, 1, MPI_COMM_WORLD);
    size_t n_after = count_shards(two);
    if (rank == 0)
        CHECK(n_before >= 2 && n_after == n_before, "shards before %zu, after resume %zu", n_before, n_after);
    if (rank == 0) {
        eval_data a = {0}, b = {0};
        if (read_data(two, &a) == 0 && read_data(one, &b) == 0) {
            check_one(&a);
            check_same(two, one, &a, &b);
        }
        eval_data_free(&a);
        eval_data_free(&b);
        check_summaries(two);
        check_table(two);
    }
    MPI_Comm_free(&self);
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, base);
    int status = rank == 0 ? testutil_finish("mpi_test_eval") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
