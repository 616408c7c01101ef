/* facts_jsonl: the JSON Lines fact loader (one multilingual fact per line; format in docs/DATA_FORMAT.md). */
#include "facts/facts_impl.h"
#include "base/file_map.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *path;
    const facts_opts *opts;
    facts_set *set;
    const char *sel[FACTS_MAX_LANGS]; /* selected languages; n_sel 0 = all */
    size_t n_sel;
    size_t *lines;                    /* (set->n_facts) line of each record */
    size_t cap_lines;
} jl_load;

static int selected(const jl_load *j, const char *code) {
    if (j->n_sel == 0) return 1;
    for (size_t i = 0; i < j->n_sel; i++)
        if (j->sel[i] == code) return 1;
    return 0;
}

/* Fills rec's sides from the "langs" object; returns 0 or -1 with why. */
static int read_langs(jl_load *j, const cJSON *langs, facts_record *rec, char *why,
                      size_t cap) {
    if (!cJSON_IsObject(langs) || !langs->child) {
        snprintf(why, cap, "key 'langs': expected a non-empty object {\"<lang>\": {...}}, "
                 "found %s", langs && cJSON_IsObject(langs) ? "{}" : facts_json_type(langs));
        return -1;
    }
    size_t n = (size_t)cJSON_GetArraySize(langs);
    if (!(rec->sides = calloc(n, sizeof *rec->sides))) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, langs) {
        const facts_lang_info *li = facts_lang_find(it->string);
        char pfx[64];
        if (!li) {
            snprintf(why, cap, "key 'langs.%.32s': unknown language code (expected e.g. en, "
                     "zh, de, fr, es, ru, cz/cs, du/nl)", it->string);
            return -1;
        }
        if (facts_record_side(rec, li->code)) {
            snprintf(why, cap, "key 'langs.%.32s': language %s given twice", it->string,
                     li->code);
            return -1;
        }
        if (!selected(j, li->code)) continue;
        snprintf(pfx, sizeof pfx, "langs.%.32s", it->string);
        if (facts_side_from_json(it, li->code, pfx, &rec->sides[rec->n_sides], why, cap))
            return -1;
        rec->n_sides++;
    }
    if (rec->n_sides == 0) {
        snprintf(why, cap, "key 'langs': none of the %zu selected languages present", j->n_sel);
        return -1;
    }
    return 0;
}

/* Parses one line into rec; returns 0 or -1 with why. */
static int read_record(jl_load *j, const char *line, size_t len, facts_record *rec,
                       char *why, size_t cap) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    int rc = -1;
    if (!root) {
        size_t off = end && (size_t)(end - line) < len ? (size_t)(end - line) : len;
        int show = (int)(len - off < 24 ? len - off : 24);
        snprintf(why, cap, "invalid JSON at column %zu near \"%.*s\"%s (expected one JSON "
                 "object per line)", off + 1, show, line + off, show ? "" : " (end of line)");
        return -1;
    }
    while (end && (size_t)(end - line) < len && strchr(" \t\r", *end)) end++;
    if (end && (size_t)(end - line) < len) {
        snprintf(why, cap, "trailing text after the JSON object at column %zu",
                 (size_t)(end - line) + 1);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(why, cap, "expected a JSON object, found %s", facts_json_type(root));
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
        if (strcmp(it->string, "id") && strcmp(it->string, "langs")) {
            snprintf(why, cap, "key '%.64s': unknown key (expected id, langs)", it->string);
            goto done;
        }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsString(id) || !id->valuestring[0]) {
        snprintf(why, cap, "key 'id': expected a non-empty string, found %s",
                 cJSON_IsString(id) ? "\"\"" : facts_json_type(id));
        goto done;
    }
    if (!(rec->id = facts_strdup(id->valuestring))) { snprintf(why, cap, "out of memory"); goto done; }
    rc = read_langs(j, cJSON_GetObjectItemCaseSensitive(root, "langs"), rec, why, cap);
done:
    cJSON_Delete(root);
    return rc;
}

/* Handles one malformed record: fatal, or skipped with a warning. */
static int record_error(jl_load *j, size_t line, const char *id, const char *why,
                        lafn_err *err) {
    char where[160] = "";
    if (id) snprintf(where, sizeof where, " record '%.120s':", id);
    if (!j->opts || j->opts->on_error == FACTS_ON_ERROR_FATAL)
        return lafn_err_set(err, "%s:%zu:%s %s", j->path, line, where, why);
    facts_warn(j->opts, "%s:%zu:%s %s (record skipped)", j->path, line, where, why);
    j->set->n_skipped++;
    return 0;
}

/* Parses the record on line lineno (record number index) and keeps it if valid. */
static int take_line(jl_load *j, const char *line, size_t len, size_t lineno,
                     size_t index, lafn_err *err) {
    char why[768];
    facts_record rec = {.index = index};
    if (read_record(j, line, len, &rec, why, sizeof why)) {
        int rc = record_error(j, lineno, rec.id, why, err);
        facts_record_free(&rec);
        return rc;
    }
    for (size_t i = 0; i < j->set->n_facts; i++)
        if (!strcmp(j->set->facts[i].id, rec.id)) {
            snprintf(why, sizeof why, "key 'id': duplicate id (first used on line %zu)",
                     j->lines[i]);
            int rc = record_error(j, lineno, rec.id, why, err);
            facts_record_free(&rec);
            return rc;
        }
    if (j->set->n_facts == j->cap_lines) {
        size_t cap = j->cap_lines ? 2 * j->cap_lines : 64;
        size_t *nl = realloc(j->lines, cap * sizeof *nl);
        if (!nl) { facts_record_free(&rec); return lafn_err_set(err, "%s: out of memory", j->path); }
        j->lines = nl;
        j->cap_lines = cap;
    }
    facts_record *r = facts_set_push(j->set);
    if (!r) { facts_record_free(&rec); return lafn_err_set(err, "%s: out of memory", j->path); }
    *r = rec;
    j->lines[j->set->n_facts - 1] = lineno;
    for (size_t s = 0; s < r->n_sides; s++)
        if (facts_set_add_lang(j->set, r->sides[s].lang))
            return lafn_err_set(err, "%s:%zu: more than %d languages", j->path, lineno,
                                FACTS_MAX_LANGS);
    return 0;
}

/* Whether line[0..len) is blank or a '#' comment. */
static int ignorable(const char *line, size_t len) {
    size_t i = 0;
    while (i < len && strchr(" \t\r", line[i])) i++;
    return i == len || line[i] == '#';
}

int facts_load_jsonl(const char *path, const facts_opts *opts, facts_set *out,
                     lafn_err *err) {
    jl_load j = {.path = path, .opts = opts, .set = out};
    char *buf = NULL;
    size_t len = 0, lineno = 0, index = 0;
    memset(out, 0, sizeof *out);
    if (facts_opts_langs(opts, j.sel, FACTS_MAX_LANGS, &j.n_sel, err)) {
        lafn_err_wrap(err, "%s", path);
        goto fail;
    }
    if (file_read_all(path, SIZE_MAX, &buf, &len, err)) goto fail;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        lineno++;
        if (!ignorable(buf + pos, ll)) {
            if (facts_opts_wants(opts, index) &&
                take_line(&j, buf + pos, ll, lineno, index, err))
                goto fail;
            index++;
        }
        pos += ll + 1;
    }
    facts_set_order_sides(out);
    if (out->n_skipped)
        facts_warn(opts, "%s: %zu malformed records skipped", path, out->n_skipped);
    free(buf);
    free(j.lines);
    return 0;
fail:
    free(buf);
    free(j.lines);
    facts_set_free(out);
    return -1;
}
