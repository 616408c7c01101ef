/* eval_table: prints the edit-set x test-language tables of every criterion and metric from eval.h5's cell means. */
#include "eval/eval_table.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h5/h5out.h"
#include "eval/stage_eval_int.h"

#define TABLE_MAX_NAMES 64

/* The cells of eval.h5: S sets x L languages x C criteria x M metrics (cells) and S x L x M (same). */
typedef struct {
    size_t S, L;
    char *sets_text, *langs_text, *shown;  /* shown: eval.metrics of the run, the metrics printed */
    char *sets[TABLE_MAX_NAMES], *langs[TABLE_MAX_NAMES];
    double *mean, *lo, *hi, *smean, *slo, *shi;
    int64_t *n, *sn;
} table_data;

static void table_free(table_data *t) {
    free(t->sets_text); free(t->langs_text); free(t->shown);
    free(t->mean); free(t->lo); free(t->hi); free(t->smean); free(t->slo); free(t->shi); free(t->n); free(t->sn);
    *t = (table_data){0};
}

/* Splits a comma list in place into names (at most TABLE_MAX_NAMES). */
static size_t split(char *s, char **names) {
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok && n < TABLE_MAX_NAMES; tok = strtok_r(NULL, ",", &save))
        names[n++] = tok;
    return n;
}

/* Reads dataset name (expected `count` elements) into a new buffer of the native type. */
static int read_cells(hid_t file, const char *path, const char *name, int is_int, size_t count, void **out,
                      lafn_err *err) {
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT), space = ds >= 0 ? H5Dget_space(ds) : H5I_INVALID_HID;
    int rc = -1;
    *out = NULL;
    if (space < 0) { lafn_err_set(err, "%s: no dataset %s (was the eval stage completed?)", path, name); goto done; }
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0 || (size_t)n != count) {
        lafn_err_set(err, "%s: dataset %s has %lld elements, expected %zu", path, name, (long long)n, count);
        goto done;
    }
    *out = malloc(count * 8 + 8);
    if (!*out) { lafn_err_set(err, "out of memory reading %s", name); goto done; }
    if (H5Dread(ds, is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        lafn_err_set(err, "%s: cannot read dataset %s", path, name);
        goto done;
    }
    rc = 0;
done:
    if (rc) { free(*out); *out = NULL; }
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    return rc;
}

static int table_read(const char *path, table_data *t, lafn_err *err) {
    *t = (table_data){0};
    hid_t file = h5out_fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT, err);
    if (file < 0) return -1;
    int rc = -1;
    if (h5out_check_identity(file, path, "eval", NULL, err) || h5out_attr_string(file, "eval_sets", &t->sets_text, err) ||
        h5out_attr_string(file, "eval_langs", &t->langs_text, err) ||
        h5out_attr_string(file, "eval_metrics_shown", &t->shown, err))
        goto done;
    t->S = split(t->sets_text, t->sets);
    t->L = split(t->langs_text, t->langs);
    size_t c4 = t->S * t->L * EVAL_N_VALUES, c3 = t->S * t->L * EVAL_N_METRIC;
    if (read_cells(file, path, "cells/mean", 0, c4, (void **)&t->mean, err) ||
        read_cells(file, path, "cells/lo", 0, c4, (void **)&t->lo, err) ||
        read_cells(file, path, "cells/hi", 0, c4, (void **)&t->hi, err) ||
        read_cells(file, path, "cells/n", 1, c4, (void **)&t->n, err) ||
        read_cells(file, path, "cells_rephrase_eq_src/mean", 0, c3, (void **)&t->smean, err) ||
        read_cells(file, path, "cells_rephrase_eq_src/lo", 0, c3, (void **)&t->slo, err) ||
        read_cells(file, path, "cells_rephrase_eq_src/hi", 0, c3, (void **)&t->shi, err) ||
        read_cells(file, path, "cells_rephrase_eq_src/n", 1, c3, (void **)&t->sn, err))
        goto done;
    rc = 0;
done:
    H5Fclose(file);
    if (rc) table_free(t);
    return rc;
}

/* 1 if the comma list holds name as one of its elements. */
static int list_has(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

static void print_cell(FILE *out, double mean, double lo, double hi, int64_t n) {
    char buf[64];
    if (n == 0 || isnan(mean)) snprintf(buf, sizeof buf, "-");
    else if (isnan(lo)) snprintf(buf, sizeof buf, "%.3f n=%lld", mean, (long long)n);
    else snprintf(buf, sizeof buf, "%.3f [%.2f,%.2f] n=%lld", mean, lo, hi, (long long)n);
    fprintf(out, " %-24s", buf);
}

static const char *set_label(const char *set, char *buf, size_t cap) {
    if (!strcmp(set, "unedited")) return "unedited";
    if (!strcmp(set, "all")) return "edit:all";
    snprintf(buf, cap, "edit:%s", strncmp(set, "each:", 5) ? set : set + 5);
    return buf;
}

/* One block: rows = sets, columns = languages; cell index given by idx(s, l).
 * A block whose every cell is empty (no record of that kind) prints one line. */
static void print_block(FILE *out, const table_data *t, const char *title, const double *mean, const double *lo,
                        const double *hi, const int64_t *n, size_t stride, size_t offset) {
    char label[64];
    int64_t total = 0;
    for (size_t c = 0; c < t->S * t->L; c++) total += n[c * stride + offset];
    if (total == 0) {
        fprintf(out, "\n%s: no records\n", title);
        return;
    }
    fprintf(out, "\n%s\n%-16s", title, "edit \\ test");
    for (size_t l = 0; l < t->L; l++) fprintf(out, " %-24s", t->langs[l]);
    fputc('\n', out);
    for (size_t s = 0; s < t->S; s++) {
        fprintf(out, "%-16s", set_label(t->sets[s], label, sizeof label));
        for (size_t l = 0; l < t->L; l++) {
            size_t i = (s * t->L + l) * stride + offset;
            print_cell(out, mean[i], lo[i], hi[i], n[i]);
        }
        fputc('\n', out);
    }
}

/* Index of set name in t, or -1. */
static int set_index(const table_data *t, const char *name) {
    for (size_t s = 0; s < t->S; s++)
        if (!strcmp(t->sets[s], name)) return (int)s;
    return -1;
}

/* The compact table: token accuracy (or the first metric shown), rows = test
 * languages, columns = criteria, cells "unedited -> edited [lo,hi] n" for the
 * edit made in all languages. */
static void print_compact(FILE *out, const table_data *t) {
    int m = 0; /* token accuracy when shown (EVAL_TOKEN_EM is 0), else the first metric shown */
    while (m < EVAL_N_METRIC - 1 && !list_has(t->shown, eval_metric_names[m])) m++;
    int pre = set_index(t, "unedited"), post = set_index(t, "all");
    if (pre < 0 || post < 0) {
        fprintf(out, "\n(no unedited and all-language rows: see --all-metrics)\n");
        return;
    }
    fprintf(out, "\n%s, unedited -> edited in all languages [interval] n\n%-6s", eval_metric_names[m], "test");
    for (int c = 0; c < EVAL_N_CRIT; c++) fprintf(out, " %-30s", eval_criterion_names[c]);
    fputc('\n', out);
    for (size_t l = 0; l < t->L; l++) {
        fprintf(out, "%-6s", t->langs[l]);
        for (int c = 0; c < EVAL_N_CRIT; c++) {
            size_t a = ((size_t)pre * t->L + l) * EVAL_N_VALUES + (size_t)c * EVAL_N_METRIC + (size_t)m;
            size_t b = ((size_t)post * t->L + l) * EVAL_N_VALUES + (size_t)c * EVAL_N_METRIC + (size_t)m;
            char buf[64];
            if (t->n[b] == 0 || isnan(t->mean[b])) snprintf(buf, sizeof buf, "-");
            else snprintf(buf, sizeof buf, "%.2f -> %.2f [%.2f,%.2f] n=%lld", t->mean[a], t->mean[b], t->lo[b],
                          t->hi[b], (long long)t->n[b]);
            fprintf(out, " %-30s", buf);
        }
        fputc('\n', out);
    }
    fprintf(out, "(every criterion, metric and edit set: lafn run ... --all-metrics)\n");
}

int eval_table_print(const char *path, int all_metrics, FILE *out, lafn_err *err) {
    table_data t;
    if (table_read(path, &t, err) != 0) return -1;
    fprintf(out, "Results from %s: mean [bootstrap interval] n = facts per cell. Locality = share of "
                 "teacher-forced loc_ans predictions unchanged by the edit.\n", path);
    if (!all_metrics) {
        print_compact(out, &t);
        table_free(&t);
        return 0;
    }
    char title[160];
    int show[EVAL_N_METRIC];
    for (int m = 0; m < EVAL_N_METRIC; m++) show[m] = list_has(t.shown, eval_metric_names[m]);
    for (int c = 0; c < EVAL_N_CRIT; c++)
        for (int m = 0; m < EVAL_N_METRIC; m++) {
            if (!show[m]) continue;
            snprintf(title, sizeof title, "%s (%s), %s%s", eval_criterion_names[c], eval_criterion_easyedit[c],
                     eval_metric_names[m], m == EVAL_F1_HARMONIC ? " (harmonic F1, not the benchmarks' F1)" : "");
            print_block(out, &t, title, t.mean, t.lo, t.hi, t.n, EVAL_N_VALUES,
                        (size_t)c * EVAL_N_METRIC + (size_t)m);
        }
    for (int m = 0; m < EVAL_N_METRIC; m++) {
        if (!show[m]) continue;
        snprintf(title, sizeof title, "generality on records whose rephrase == src, %s", eval_metric_names[m]);
        print_block(out, &t, title, t.smean, t.slo, t.shi, t.sn, EVAL_N_METRIC, (size_t)m);
    }
    table_free(&t);
    return 0;
}
