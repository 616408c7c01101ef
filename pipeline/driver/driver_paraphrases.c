/* driver_paraphrases: `lafn paraphrases RUN_DIR` — paraphrase.h5's kept paraphrases as a paraphrase file (JSON Lines), or every candidate with its verdict. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "driver.h"
#include "h5/h5out.h"
#include "paraphrase/paraphrase.h"

static const char paraphrases_usage[] =
    "usage: lafn paraphrases RUN_DIR [--candidates]\n"
    "  prints RUN_DIR/paraphrase.h5's kept paraphrases as a paraphrase file (one JSON line per fact and language:\n"
    "  {\"index\": N, \"lang\": \"xx\", \"paraphrases\": [...]}, the format data.paraphrases reads); with --candidates\n"
    "  one line per generated candidate: {\"index\", \"lang\", \"verdict\", \"text\"}\n";

/* Prints obj as one line and frees it; -1 if it could not be printed. */
static int put_line(cJSON *obj) {
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    int rc = text && printf("%s\n", text) >= 0 ? 0 : -1;
    cJSON_free(text);
    cJSON_Delete(obj);
    return rc;
}

/* A row of the table and its fact: rows are kept in shard order, printed by fact index. */
typedef struct {
    int64_t fact;
    size_t row;
} row_ref;

static int cmp_fact(const void *a, const void *b) {
    const row_ref *x = a, *y = b;
    return x->fact < y->fact ? -1 : x->fact > y->fact;
}

/* One line per (fact, language) with kept paraphrases, languages in the file's order. */
static int print_kept(const paraphrase_table *t, size_t r) {
    for (size_t l = 0; l < t->n_langs; l++) {
        cJSON *obj = cJSON_CreateObject(), *list = cJSON_CreateArray();
        for (int64_t c = t->off[r]; c < t->off[r + 1]; c++)
            if ((size_t)t->lang[c] == l && t->verdict[c] == PARAPHRASE_KEPT)
                cJSON_AddItemToArray(list, cJSON_CreateString(t->text[c]));
        if (cJSON_GetArraySize(list) == 0) {
            cJSON_Delete(list);
            cJSON_Delete(obj);
            continue;
        }
        cJSON_AddNumberToObject(obj, "index", (double)t->facts[r]);
        cJSON_AddStringToObject(obj, "lang", t->langs[l]);
        cJSON_AddItemToObject(obj, "paraphrases", list);
        if (put_line(obj) != 0) return -1;
    }
    return 0;
}

/* A copy of text with each byte of an invalid UTF-8 sequence replaced by U+FFFD (rejected candidates may hold any
 * bytes; JSON must not), or NULL when out of memory. */
static char *utf8_repaired(const char *text) {
    size_t n = strlen(text), o = 0;
    char *out = malloc(3 * n + 1);
    uint32_t c;
    for (size_t i = 0, len; out && i < n; i += len) {
        len = utf8_decode(text + i, n - i, &c);
        const char *piece = len ? text + i : "\xef\xbf\xbd";
        size_t piece_len = len ? len : 3;
        memcpy(out + o, piece, piece_len);
        o += piece_len;
        len = len ? len : 1;
    }
    if (out) out[o] = '\0';
    return out;
}

/* One line per candidate of row r, in generation order. */
static int print_candidates(const paraphrase_table *t, size_t r) {
    for (int64_t c = t->off[r]; c < t->off[r + 1]; c++) {
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddNumberToObject(obj, "index", (double)t->facts[r]);
        cJSON_AddStringToObject(obj, "lang", t->langs[t->lang[c]]);
        cJSON_AddStringToObject(obj, "verdict", paraphrase_verdict_names[t->verdict[c]]);
        char *text = utf8_repaired(t->text[c]);
        if (!text) {
            cJSON_Delete(obj);
            return -1;
        }
        cJSON_AddStringToObject(obj, "text", text);
        free(text);
        if (put_line(obj) != 0) return -1;
    }
    return 0;
}

/* Reads RUN_DIR/paraphrase.h5 (serial HDF5, any run id) and prints it, rows by fact index. */
static int export_file(const char *run_dir, int candidates, lafn_err *err) {
    char path[4096];
    hid_t file = H5I_INVALID_HID;
    paraphrase_table t = {0};
    snprintf(path, sizeof path, "%s/paraphrase.h5", run_dir);
    file = h5out_fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT, err);
    int rc = file >= 0 ? h5out_check_identity(file, path, "paraphrase", NULL, err) : -1;
    if (rc == 0) rc = paraphrase_table_read(file, path, &t, err);
    if (file >= 0) H5Fclose(file);
    row_ref *order = rc == 0 ? malloc((t.n_rows + 1) * sizeof *order) : NULL;
    if (rc == 0 && !order) rc = lafn_err_set(err, "out of memory");
    for (size_t r = 0; rc == 0 && r < t.n_rows; r++) order[r] = (row_ref){t.facts[r], r};
    if (rc == 0) qsort(order, t.n_rows, sizeof *order, cmp_fact);
    for (size_t i = 0; rc == 0 && i < t.n_rows; i++)
        if ((candidates ? print_candidates(&t, order[i].row) : print_kept(&t, order[i].row)) != 0)
            rc = lafn_err_set(err, "cannot write to stdout");
    free(order);
    paraphrase_table_free(&t);
    return rc;
}

int driver_paraphrases(int argc, char **argv) {
    const char *run_dir = NULL;
    int candidates = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(paraphrases_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--candidates")) candidates = 1;
        else if (argv[i][0] != '-' && !run_dir) run_dir = argv[i];
        else {
            fprintf(stderr, "lafn paraphrases: unknown argument '%s'\n%s", argv[i], paraphrases_usage);
            return 2;
        }
    }
    if (!run_dir) {
        fputs(paraphrases_usage, stderr);
        return 2;
    }
    lafn_err err = {{0}};
    if (export_file(run_dir, candidates, &err) != 0) {
        fprintf(stderr, "lafn paraphrases: %s\n", err.msg);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
