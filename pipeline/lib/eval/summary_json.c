/* summary_json: summary.json (cJSON, EasyEdit-style records, one per edit) and summary.csv (RFC 4180 quoting) beside eval.h5. */
#include "eval/stage_eval_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number, or JSON null for NaN (a question the record does not have). */
static cJSON *num(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

/* {"rewrite_acc": token_em, ..., "f1": {...}, "em": {...}, "f1_harmonic": {...}} of one (set, fact, language). */
static cJSON *scores_json(const eval_data *d, size_t s, size_t i, size_t l) {
    cJSON *o = cJSON_CreateObject();
    for (int c = 0; c < EVAL_N_CRIT; c++)
        cJSON_AddItemToObject(o, eval_criterion_easyedit[c], num(eval_data_value(d, s, i, l, c, EVAL_TOKEN_EM)));
    for (int m = EVAL_F1; m < EVAL_N_METRIC; m++) {
        cJSON *sub = cJSON_AddObjectToObject(o, eval_metric_names[m]);
        for (int c = 0; c < EVAL_N_CRIT; c++)
            cJSON_AddItemToObject(sub, eval_criterion_easyedit[c], num(eval_data_value(d, s, i, l, c, m)));
    }
    return o;
}

static cJSON *rewrite_json(const facts_side *side, const char *lang) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", side->src);
    cJSON_AddStringToObject(o, "target_new", side->alt);
    if (side->subject) cJSON_AddStringToObject(o, "subject", side->subject);
    else cJSON_AddNullToObject(o, "subject");
    cJSON_AddStringToObject(o, "lang", lang);
    return o;
}

static const facts_record *find_record(const facts_set *fs, int64_t index) {
    for (size_t f = 0; f < fs->n_facts; f++)
        if ((int64_t)fs->facts[f].index == index) return &fs->facts[f];
    return NULL;
}

/* One EasyEdit-style record: case_id, requested_rewrite, edit cost, pre/post per language. */
static cJSON *record_json(const facts_set *fs, const eval_data *d, size_t i, const facts_record *rec) {
    cJSON *o = cJSON_CreateObject(), *by_lang = cJSON_CreateObject(), *pre = cJSON_CreateObject(),
          *same = cJSON_CreateObject(),
          *post = cJSON_CreateObject(), *each = d->post_each ? cJSON_CreateObject() : NULL;
    cJSON_AddStringToObject(o, "case_id", rec->id);
    cJSON_AddNumberToObject(o, "index", (double)rec->index);
    const facts_side *first = NULL;
    for (size_t l = 0; l < d->n_langs; l++) {
        const facts_side *side = facts_record_side(rec, fs->langs[l]);
        if (!side) continue;
        if (!first) first = side;
        cJSON_AddItemToObject(by_lang, fs->langs[l], rewrite_json(side, fs->langs[l]));
        cJSON_AddBoolToObject(same, fs->langs[l], d->same[i * d->n_langs + l]);
        cJSON_AddItemToObject(pre, fs->langs[l], scores_json(d, 0, i, l));
        cJSON_AddItemToObject(post, fs->langs[l], scores_json(d, 1, i, l));
    }
    for (size_t e = 0; each && e < d->n_langs; e++) {
        cJSON *row = cJSON_AddObjectToObject(each, fs->langs[e]);
        for (size_t l = 0; l < d->n_langs; l++) cJSON_AddItemToObject(row, fs->langs[l], scores_json(d, 2 + e, i, l));
    }
    if (first) cJSON_AddItemToObject(o, "requested_rewrite", rewrite_json(first, first->lang));
    cJSON_AddItemToObject(o, "requested_rewrite_by_lang", by_lang);
    cJSON_AddItemToObject(o, "rephrase_is_src", same);
    cJSON *edit = cJSON_AddObjectToObject(o, "edit");
    cJSON_AddNumberToObject(edit, "status", d->status[i]);
    cJSON_AddItemToObject(edit, "wall_seconds", num(d->wall[i]));
    cJSON_AddNumberToObject(edit, "peak_rss_kb", (double)d->mem[2 * i]);
    cJSON_AddNumberToObject(edit, "pss_kb", (double)d->mem[2 * i + 1]);
    cJSON_AddItemToObject(o, "pre", pre);
    cJSON_AddItemToObject(o, "post", post);
    if (each) cJSON_AddItemToObject(o, "post_each", each);
    return o;
}

/* Writes text to path (in folder dir) via path.tmp and rename. */
static int write_file(const char *dir, const char *path, const char *text, lafn_err *err) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return lafn_err_set(err, "cannot create %s: %s", tmp, strerror(errno));
    int bad = fputs(text, f) < 0, saved_errno = errno;
    if (fclose(f) != 0 && !bad) bad = 1, saved_errno = errno;
    if (!bad && rename(tmp, path) != 0) bad = 1, saved_errno = errno;
    if (bad) {
        remove(tmp);
        lafn_err_set(err, "cannot write %s", path);
        if (!lafn_err_disk_full(err, dir, saved_errno, "free space and run eval again (its shards are kept)"))
            lafn_err_set(err, "cannot write %s: %s", path, strerror(saved_errno));
        return -1;
    }
    return 0;
}

static int json_write(const stage_context *ctx, const eval_data *d, const char *path, lafn_err *err) {
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return lafn_err_set(err, "%s: out of memory", path);
    for (size_t i = 0; i < d->n_facts; i++) {
        const facts_record *rec = find_record(&ctx->facts, d->facts[i]);
        if (!rec) {
            cJSON_Delete(arr);
            return lafn_err_set(err, "%s: fact index %lld of eval.h5 is not in the data", path, (long long)d->facts[i]);
        }
        cJSON_AddItemToArray(arr, record_json(&ctx->facts, d, i, rec));
    }
    char *text = cJSON_Print(arr);
    cJSON_Delete(arr);
    if (!text) return lafn_err_set(err, "%s: out of memory printing JSON", path);
    int rc = write_file(ctx->out_dir, path, text, err);
    cJSON_free(text);
    return rc;
}

/* One CSV field: quoted (and inner quotes doubled) when it holds , " CR or LF. */
static void csv_field(FILE *f, const char *s, int first) {
    if (!first) fputc(',', f);
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) {
    if (isnan(v)) fputc(',', f);
    else fprintf(f, ",%.10g", v);
}

static void csv_header(FILE *f) {
    fputs("case_id,index,lang,prompt,target_new,subject,edit_status,edit_wall_seconds,edit_peak_rss_kb,"
          "edit_pss_kb", f);
    const char *when[] = {"pre", "post"};
    for (int w = 0; w < 2; w++)
        for (int c = 0; c < EVAL_N_CRIT; c++)
            for (int m = 0; m < EVAL_N_METRIC; m++)
                fprintf(f, ",%s_%s%s%s", when[w], eval_criterion_easyedit[c], m ? "_" : "", m ? eval_metric_names[m] : "");
    fputs("\r\n", f);
}

/* summary.csv: one row per (edit, language) with the edit set "all". */
static int csv_write(const stage_context *ctx, const eval_data *d, const char *path, lafn_err *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return lafn_err_set(err, "%s: out of memory", path);
    csv_header(f);
    for (size_t i = 0; i < d->n_facts; i++) {
        const facts_record *rec = find_record(&ctx->facts, d->facts[i]);
        for (size_t l = 0; rec && l < d->n_langs; l++) {
            const facts_side *side = facts_record_side(rec, ctx->facts.langs[l]);
            if (!side) continue;
            char idx[32];
            snprintf(idx, sizeof idx, "%zu", rec->index);
            csv_field(f, rec->id, 1);
            csv_field(f, idx, 0);
            csv_field(f, ctx->facts.langs[l], 0);
            csv_field(f, side->src, 0);
            csv_field(f, side->alt, 0);
            csv_field(f, side->subject, 0);
            fprintf(f, ",%d", d->status[i]);
            csv_num(f, d->wall[i]);
            fprintf(f, ",%lld,%lld", (long long)d->mem[2 * i], (long long)d->mem[2 * i + 1]);
            for (size_t s = 0; s < 2; s++)
                for (int c = 0; c < EVAL_N_CRIT; c++)
                    for (int m = 0; m < EVAL_N_METRIC; m++) csv_num(f, eval_data_value(d, s, i, l, c, m));
            fputs("\r\n", f);
        }
    }
    if (fclose(f) != 0) { free(text); return lafn_err_set(err, "%s: out of memory", path); }
    int rc = write_file(ctx->out_dir, path, text, err);
    free(text);
    return rc;
}

int eval_summary_write(const stage_context *ctx, lafn_err *err) {
    char h5[4096], js[4096], csv[4096];
    snprintf(h5, sizeof h5, "%s/eval.h5", ctx->out_dir);
    snprintf(js, sizeof js, "%s/summary.json", ctx->out_dir);
    snprintf(csv, sizeof csv, "%s/summary.csv", ctx->out_dir);
    eval_data d = {0};
    hid_t file = h5out_fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT, err);
    if (file < 0) return lafn_err_wrap(err, "the summaries");
    int rc = eval_data_read(file, h5, ctx->facts.n_langs, &d, err);
    H5Fclose(file);
    if (!rc) rc = json_write(ctx, &d, js, err);
    if (!rc) rc = csv_write(ctx, &d, csv, err);
    eval_data_free(&d);
    return rc;
}
