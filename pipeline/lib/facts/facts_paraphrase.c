/* facts_paraphrase: adds paraphrases of src per (fact, language) from a JSON Lines paraphrase file. */
#include "facts/facts_impl.h"
#include "base/file_map.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *path;
    const facts_opts *opts;
    facts_set *set;
    facts_para_stats st;
    size_t (*seen)[3];   /* (n_seen) fact position, language slot, line */
    size_t n_seen, cap_seen;
} pp_load;

/* Looks the line's fact up by "id" or "index"; *rec NULL if not in the set. */
static int find_fact(pp_load *p, const cJSON *root, facts_record **rec, char *why, size_t cap) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(root, "index");
    *rec = NULL;
    if (!id == !ix) {
        snprintf(why, cap, "expected exactly one of the keys 'id' (string) and 'index' "
                 "(integer), found %s", id ? "both" : "neither");
        return -1;
    }
    if (id && (!cJSON_IsString(id) || !id->valuestring[0])) {
        snprintf(why, cap, "key 'id': expected a non-empty string, found %s", facts_json_type(id));
        return -1;
    }
    if (ix && (!cJSON_IsNumber(ix) || ix->valuedouble < 0 || ix->valuedouble > 1e15 ||
               ix->valuedouble != (double)(size_t)ix->valuedouble)) {
        snprintf(why, cap, "key 'index': expected a non-negative integer, found %s",
                 cJSON_IsNumber(ix) ? "a negative or fractional number" : facts_json_type(ix));
        return -1;
    }
    for (size_t i = 0; i < p->set->n_facts; i++) {
        facts_record *r = &p->set->facts[i];
        if (id ? !strcmp(r->id, id->valuestring) : r->index == (size_t)ix->valuedouble) {
            *rec = r;
            break;
        }
    }
    return 0;
}

int facts_side_add_paraphrase(facts_side *side, const char *text, lafn_err *err) {
    char **np = realloc(side->paraphrases, (side->n_paraphrases + 1) * sizeof *np);
    if (!np) return lafn_err_set(err, "out of memory for a paraphrase");
    side->paraphrases = np;
    if (!(np[side->n_paraphrases] = facts_strdup(text))) return lafn_err_set(err, "out of memory for a paraphrase");
    side->n_paraphrases++;
    return 0;
}

/* Appends the strings of array a to side's paraphrases. */
static int append(facts_side *side, const cJSON *a, char *why, size_t cap) {
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
        if (facts_side_add_paraphrase(side, it->valuestring, NULL) != 0) {
            snprintf(why, cap, "out of memory");
            return -1;
        }
    return 0;
}

/* Checks the keys and types of one line; fills *lang and *arr. */
static int check_line(const cJSON *root, const facts_lang_info **lang, const cJSON **arr,
                      char *why, size_t cap) {
    if (!cJSON_IsObject(root)) {
        snprintf(why, cap, "expected a JSON object, found %s", facts_json_type(root));
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
        if (strcmp(it->string, "id") && strcmp(it->string, "index") &&
            strcmp(it->string, "lang") && strcmp(it->string, "src") &&
            strcmp(it->string, "paraphrases")) {
            snprintf(why, cap, "key '%.64s': unknown key (expected id or index, lang, src, "
                     "paraphrases)", it->string);
            return -1;
        }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "lang");
    if (!cJSON_IsString(l)) {
        snprintf(why, cap, "key 'lang': expected a language code string, found %s",
                 facts_json_type(l));
        return -1;
    }
    if (!(*lang = facts_lang_find(l->valuestring))) {
        snprintf(why, cap, "key 'lang': unknown language code '%.32s'", l->valuestring);
        return -1;
    }
    *arr = cJSON_GetObjectItemCaseSensitive(root, "paraphrases");
    if (!cJSON_IsArray(*arr) || !(*arr)->child) {
        snprintf(why, cap, "key 'paraphrases': expected a non-empty array of strings, found %s",
                 cJSON_IsArray(*arr) ? "[]" : facts_json_type(*arr));
        return -1;
    }
    size_t k = 0;
    cJSON_ArrayForEach(it, *arr) {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            snprintf(why, cap, "key 'paraphrases[%zu]': expected a non-empty string, found %s",
                     k, cJSON_IsString(it) ? "\"\"" : facts_json_type(it));
            return -1;
        }
        k++;
    }
    return 0;
}

/* Refuses a second line for the same (fact, language); remembers this one. */
static int note_seen(pp_load *p, size_t fact, size_t side, size_t line, char *why, size_t cap) {
    for (size_t i = 0; i < p->n_seen; i++)
        if (p->seen[i][0] == fact && p->seen[i][1] == side) {
            snprintf(why, cap, "second paraphrase line for this fact and language (first on "
                     "line %zu)", p->seen[i][2]);
            return -1;
        }
    if (p->n_seen == p->cap_seen) {
        size_t cap2 = p->cap_seen ? 2 * p->cap_seen : 256;
        size_t (*ns)[3] = realloc(p->seen, cap2 * sizeof *ns);
        if (!ns) { snprintf(why, cap, "out of memory"); return -1; }
        p->seen = ns;
        p->cap_seen = cap2;
    }
    p->seen[p->n_seen][0] = fact;
    p->seen[p->n_seen][1] = side;
    p->seen[p->n_seen++][2] = line;
    return 0;
}

/* Applies one parsed line; returns 0 (applied or not for this set) or -1 with why. */
static int apply(pp_load *p, const cJSON *root, size_t line, char *why, size_t cap) {
    const facts_lang_info *lang;
    const cJSON *arr;
    facts_record *rec;
    if (check_line(root, &lang, &arr, why, cap) || find_fact(p, root, &rec, why, cap)) return -1;
    if (!rec) { p->st.n_unmatched++; return 0; }
    facts_side *side = (facts_side *)facts_record_side(rec, lang->code);
    if (!side) { p->st.n_other_lang++; return 0; }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "src");
    if (src && (!cJSON_IsString(src) || strcmp(src->valuestring, side->src))) {
        snprintf(why, cap, "key 'src': expected the fact's src \"%.200s\", found %s%.200s%s",
                 side->src, cJSON_IsString(src) ? "\"" : facts_json_type(src),
                 cJSON_IsString(src) ? src->valuestring : "", cJSON_IsString(src) ? "\"" : "");
        return -1;
    }
    if (note_seen(p, (size_t)(rec - p->set->facts), (size_t)(side - rec->sides), line, why, cap) ||
        append(side, arr, why, cap))
        return -1;
    p->st.n_applied++;
    return 0;
}

/* Parses and applies line lineno; malformed lines per the policy. */
static int take_line(pp_load *p, const char *text, size_t len, size_t lineno, lafn_err *err) {
    char why[768];
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    int bad;
    p->st.n_lines++;
    if (!root) {
        size_t off = end && (size_t)(end - text) < len ? (size_t)(end - text) : len;
        int show = (int)(len - off < 24 ? len - off : 24);
        snprintf(why, sizeof why, "invalid JSON at column %zu near \"%.*s\"%s (expected one "
                 "JSON object per line)", off + 1, show, text + off, show ? "" : " (end of line)");
        bad = 1;
    } else {
        bad = apply(p, root, lineno, why, sizeof why) != 0;
        cJSON_Delete(root);
    }
    if (!bad) return 0;
    if (!p->opts || p->opts->on_error == FACTS_ON_ERROR_FATAL)
        return lafn_err_set(err, "%s:%zu: %s", p->path, lineno, why);
    facts_warn(p->opts, "%s:%zu: %s (line skipped)", p->path, lineno, why);
    p->st.n_skipped++;
    return 0;
}

int facts_load_paraphrases(const char *path, facts_set *set, const facts_opts *opts,
                           facts_para_stats *stats, lafn_err *err) {
    pp_load p = {.path = path, .opts = opts, .set = set};
    char *buf = NULL;
    size_t len = 0, lineno = 0;
    int rc = -1;
    if (file_read_all(path, SIZE_MAX, &buf, &len, err)) goto done;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        size_t i = 0;
        lineno++;
        while (i < ll && strchr(" \t\r", buf[pos + i])) i++;
        if (i < ll && buf[pos + i] != '#' && take_line(&p, buf + pos, ll, lineno, err))
            goto done;
        pos += ll + 1;
    }
    if (p.st.n_skipped)
        facts_warn(opts, "%s: %zu malformed paraphrase lines skipped", path, p.st.n_skipped);
    rc = 0;
done:
    if (stats) *stats = p.st;
    free(buf);
    free(p.seen);
    return rc;
}
