/* eval_cells: reads eval.h5's per-fact results and adds the (edit set, test language, criterion, metric) means with bootstrap intervals (copy, add, rename). */
#define _GNU_SOURCE /* qsort_r */
#include "eval/stage_eval_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5/h5global.h"
#include "h5/h5out_int.h"
#include "eval/metrics.h"

/* Dimension names: S edit sets (unedited, all, each:<lang>...), L languages, C criteria, M metrics, n facts. */

void eval_data_free(eval_data *d) {
    free(d->facts); free(d->pre); free(d->post); free(d->post_each); free(d->same); free(d->status);
    free(d->wall); free(d->mem);
    *d = (eval_data){0};
}

double eval_data_value(const eval_data *d, size_t s, size_t i, size_t l, int c, int m) {
    size_t L = d->n_langs, cm = (size_t)c * EVAL_N_METRIC + (size_t)m;
    if (s == 0) return d->pre[(i * L + l) * EVAL_N_VALUES + cm];
    if (s == 1) return d->post[(i * L + l) * EVAL_N_VALUES + cm];
    return d->post_each[((i * L + (s - 2)) * L + l) * EVAL_N_VALUES + cm];
}

/* Reorders n rows of `width` bytes of buf by perm (new row r = old row perm[r]). */
static int permute(void *buf, size_t n, size_t width, const size_t *perm, lafn_err *err) {
    if (!buf || n == 0) return 0;
    char *tmp = malloc(n * width);
    if (!tmp) return lafn_err_set(err, "out of memory sorting %zu rows", n);
    for (size_t r = 0; r < n; r++) memcpy(tmp + r * width, (char *)buf + perm[r] * width, width);
    memcpy(buf, tmp, n * width);
    free(tmp);
    return 0;
}

/* qsort_r order of row numbers by their fact index (arg: the facts array). */
static int by_fact(const void *a, const void *b, void *arg) {
    const int64_t *key = arg;
    int64_t x = key[*(const size_t *)a], y = key[*(const size_t *)b];
    return (x > y) - (x < y);
}

/* Reads one rows dataset of n rows and row_len elements; checks the row count. */
static int read_rows(hid_t file, const char *path, const char *name, h5out_dtype t, size_t row_len, size_t n,
                     void **out, lafn_err *err) {
    size_t got = 0;
    if (h5out_read_all(file, path, name, t, row_len, out, &got, err) != 0) return -1;
    if (got != n) return lafn_err_set(err, "%s: dataset %s has %zu rows, /facts has %zu", path, name, got, n);
    return 0;
}

int eval_data_read(hid_t file, const char *path, size_t n_langs, eval_data *d, lafn_err *err) {
    size_t L = n_langs, n = 0, *perm = NULL;
    *d = (eval_data){.n_langs = L};
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&d->facts, &n, err) != 0) goto fail;
    d->n_facts = n;
    if (read_rows(file, path, "pre", H5OUT_F64, L * EVAL_N_VALUES, n, (void **)&d->pre, err) ||
        read_rows(file, path, "post/all", H5OUT_F64, L * EVAL_N_VALUES, n, (void **)&d->post, err) ||
        read_rows(file, path, "rephrase_is_src", H5OUT_I32, L, n, (void **)&d->same, err) ||
        read_rows(file, path, "edit_status", H5OUT_I32, 1, n, (void **)&d->status, err) ||
        read_rows(file, path, "edit_wall_seconds", H5OUT_F64, 1, n, (void **)&d->wall, err) ||
        read_rows(file, path, "edit_memory_kb", H5OUT_I64, 2, n, (void **)&d->mem, err))
        goto fail;
    d->n_sets = 2;
    if (H5Lexists(file, "post/each", H5P_DEFAULT) > 0) {
        if (read_rows(file, path, "post/each", H5OUT_F64, L * L * EVAL_N_VALUES, n, (void **)&d->post_each, err))
            goto fail;
        d->n_sets += L;
    }
    perm = malloc((n ? n : 1) * sizeof *perm);
    if (!perm) { lafn_err_set(err, "out of memory"); goto fail; }
    for (size_t i = 0; i < n; i++) perm[i] = i;
    qsort_r(perm, n, sizeof *perm, by_fact, d->facts);
    if (permute(d->facts, n, sizeof *d->facts, perm, err) || permute(d->pre, n, L * EVAL_N_VALUES * 8, perm, err) ||
        permute(d->post, n, L * EVAL_N_VALUES * 8, perm, err) || permute(d->same, n, L * 4, perm, err) ||
        permute(d->status, n, 4, perm, err) || permute(d->wall, n, 8, perm, err) ||
        permute(d->mem, n, 16, perm, err) || permute(d->post_each, n, L * L * EVAL_N_VALUES * 8, perm, err))
        goto fail;
    free(perm);
    return 0;
fail:
    free(perm);
    eval_data_free(d);
    return -1;
}

/* The means of one statistic over cells: (S, L, C, M) or, for the rephrase == src subset, (S, L, M). */
typedef struct {
    double *mean, *lo, *hi; /* (cells) */
    int64_t *n;             /* (cells) */
} cell_table;

static void cell_table_free(cell_table *t) {
    free(t->mean); free(t->lo); free(t->hi); free(t->n);
    *t = (cell_table){0};
}

static int cell_table_init(cell_table *t, size_t cells, lafn_err *err) {
    t->mean = malloc(cells * sizeof *t->mean);
    t->lo = malloc(cells * sizeof *t->lo);
    t->hi = malloc(cells * sizeof *t->hi);
    t->n = malloc(cells * sizeof *t->n);
    if (t->mean && t->lo && t->hi && t->n) return 0;
    cell_table_free(t);
    return lafn_err_set(err, "out of memory for %zu cells", cells);
}

typedef struct {
    int samples;
    double confidence;
    uint64_t rng;
} boot_opts;

/* Mean and interval of one cell over the facts (NaN values skipped; only rows with same == 1 when subset). */
static int cell_stat(const eval_data *d, size_t s, size_t l, int c, int m, int subset, double *buf, boot_opts *b,
                     double *mean, double *lo, double *hi, int64_t *n_out, lafn_err *err) {
    size_t k = 0;
    for (size_t i = 0; i < d->n_facts; i++) {
        if (subset && !d->same[i * d->n_langs + l]) continue;
        double v = eval_data_value(d, s, i, l, c, m);
        if (!isnan(v)) buf[k++] = v;
    }
    *n_out = (int64_t)k;
    *mean = *lo = *hi = NAN;
    if (k == 0) return 0;
    if (b->samples == 0) {
        double sum = 0.0;
        for (size_t i = 0; i < k; i++) sum += buf[i];
        *mean = sum / (double)k;
        return 0;
    }
    return metrics_bootstrap_mean(buf, k, b->samples, b->confidence, &b->rng, mean, lo, hi, err);
}

/* Writes a float64 or int64 dataset of the given dims (rank <= 4) into file. */
static int write_nd(hid_t file, const char *name, int rank, const hsize_t *dims, int is_int, const void *data,
                    lafn_err *err) {
    hid_t space = H5Screate_simple(rank, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE), ds = H5I_INVALID_HID;
    int rc = -1;
    if (space < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) goto done;
    ds = H5Dcreate2(file, name, is_int ? H5T_STD_I64LE : H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        goto done;
    rc = 0;
done:
    if (ds >= 0) H5Dclose(ds);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    return rc ? lafn_err_set(err, "cannot write dataset %s", name) : 0;
}

static int write_table(hid_t file, const char *group, const cell_table *t, int rank, const hsize_t *dims,
                       lafn_err *err) {
    char name[128];
    const char *part[] = {"mean", "lo", "hi", "n"};
    const void *data[] = {t->mean, t->lo, t->hi, t->n};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s/%s", group, part[i]);
        if (write_nd(file, name, rank, dims, i == 3, data[i], err) != 0) return -1;
    }
    return 0;
}

/* "a,b,c" of n names into buf. */
static void join(char *buf, size_t cap, const char *const *names, size_t n, const char *prefix) {
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s%s", i ? "," : "", prefix, names[i]);
}

/* Attributes that say what every axis and number means. */
static int write_axes(hid_t file, const stage_context *ctx, const eval_data *d, const boot_opts *b, lafn_err *err) {
    char sets[2048], buf[1024];
    join(buf, sizeof buf, ctx->facts.langs, ctx->facts.n_langs, "each:");
    snprintf(sets, sizeof sets, "unedited,all%s%s", d->post_each ? "," : "", d->post_each ? buf : "");
    if (h5out_attr_put_string(file, "eval_sets", sets, err)) return -1;
    join(buf, sizeof buf, ctx->facts.langs, ctx->facts.n_langs, "");
    if (h5out_attr_put_string(file, "eval_langs", buf, err)) return -1;
    join(buf, sizeof buf, eval_criterion_names, EVAL_N_CRIT, "");
    if (h5out_attr_put_string(file, "eval_criteria", buf, err)) return -1;
    join(buf, sizeof buf, eval_criterion_easyedit, EVAL_N_CRIT, "");
    if (h5out_attr_put_string(file, "eval_criteria_easyedit", buf, err)) return -1;
    join(buf, sizeof buf, eval_metric_names, EVAL_N_METRIC, "");
    if (h5out_attr_put_string(file, "eval_metrics", buf, err)) return -1;
    char *const *shown;
    size_t n_shown;
    if (config_get_string_list(&ctx->cfg, "eval.metrics", &shown, &n_shown, err)) return -1;
    join(buf, sizeof buf, (const char *const *)shown, n_shown, "");
    if (h5out_attr_put_string(file, "eval_metrics_shown", buf, err)) return -1;
    for (int m = 0; m < EVAL_N_METRIC; m++) {
        snprintf(buf, sizeof buf, "eval_method_%s", eval_metric_names[m]);
        if (h5out_attr_put_string(file, buf, eval_metric_methods[m], err)) return -1;
    }
    snprintf(buf, sizeof buf, "percentile bootstrap of the mean over facts (NaN = question absent, skipped): "
             "%d resamples, confidence %g, seed eval.seed; rows in fact-index order", b->samples, b->confidence);
    return h5out_attr_put_string(file, "eval_bootstrap", buf, err);
}

static int fill_cells(const eval_data *d, boot_opts *b, cell_table *all, cell_table *same, lafn_err *err) {
    size_t L = d->n_langs, n = d->n_facts ? d->n_facts : 1;
    double *buf = malloc(n * sizeof *buf);
    if (!buf) return lafn_err_set(err, "out of memory");
    int rc = 0;
    for (size_t s = 0; s < d->n_sets && !rc; s++)
        for (size_t l = 0; l < L && !rc; l++)
            for (int c = 0; c < EVAL_N_CRIT && !rc; c++)
                for (int m = 0; m < EVAL_N_METRIC && !rc; m++) {
                    size_t i = ((s * L + l) * EVAL_N_CRIT + (size_t)c) * EVAL_N_METRIC + (size_t)m;
                    rc = cell_stat(d, s, l, c, m, 0, buf, b, &all->mean[i], &all->lo[i], &all->hi[i], &all->n[i], err);
                    if (!rc && c == EVAL_GENERALITY) {
                        size_t j = (s * L + l) * EVAL_N_METRIC + (size_t)m;
                        rc = cell_stat(d, s, l, c, m, 1, buf, b, &same->mean[j], &same->lo[j], &same->hi[j],
                                       &same->n[j], err);
                    }
                }
    free(buf);
    return rc;
}

/* h5global_writer: the cell tables of the open copy of eval.h5 (arg: the stage context). */
static int write_cells(hid_t file, const char *path, void *arg, lafn_err *err) {
    const stage_context *ctx = arg;
    eval_data d = {0};
    cell_table all = {0}, same = {0};
    boot_opts b = {0};
    int64_t samples = 0, seed = 0;
    int rc = -1;
    if (config_get_int(&ctx->cfg, "eval.bootstrap_samples", &samples, err) ||
        config_get_float(&ctx->cfg, "eval.confidence", &b.confidence, err) ||
        config_get_int(&ctx->cfg, "eval.seed", &seed, err))
        goto done;
    b.samples = (int)samples;
    b.rng = (uint64_t)seed;
    if (eval_data_read(file, path, ctx->facts.n_langs, &d, err) != 0) goto done;
    size_t S = d.n_sets, L = d.n_langs;
    if (cell_table_init(&all, S * L * EVAL_N_VALUES, err) || cell_table_init(&same, S * L * EVAL_N_METRIC, err) ||
        fill_cells(&d, &b, &all, &same, err))
        goto done;
    hsize_t dims4[4] = {S, L, EVAL_N_CRIT, EVAL_N_METRIC}, dims3[3] = {S, L, EVAL_N_METRIC};
    if (write_table(file, "cells", &all, 4, dims4, err) ||
        write_table(file, "cells_rephrase_eq_src", &same, 3, dims3, err) || write_axes(file, ctx, &d, &b, err))
        goto done;
    rc = 0;
done:
    if (rc) lafn_err_wrap(err, "%s", path);
    cell_table_free(&all);
    cell_table_free(&same);
    eval_data_free(&d);
    return rc;
}

int eval_cells_write(const stage_context *ctx, lafn_err *err) {
    return h5global_amend(ctx->out_dir, "eval", write_cells, (void *)ctx, err);
}
