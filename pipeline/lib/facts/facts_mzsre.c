/* facts_mzsre: the MzsRE / Bi-ZsRE loader — merges the per-pair files (en + one language each) into multilingual records. */
#include "facts/facts_impl.h"
#include "base/file_map.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The second languages of the MzsRE pair files, in table order. */
static const char *const mzsre_pairs[] = {
    "zh", "cz", "de", "du", "es", "fr", "pt", "ru", "th", "tr", "vi",
};
#define N_PAIRS (sizeof mzsre_pairs / sizeof mzsre_pairs[0])

/* The pair-file names a data folder is searched for: the development split as
 * the project keeps it, and the published test files. */
static const char *const mzsre_names[] = {"mzsre_dev500_en{xx}.json", "mzsre_test_duplicate_en{xx}.json"};
#define N_NAMES (sizeof mzsre_names / sizeof mzsre_names[0])
#define LANG_SLOT "{xx}"

typedef struct {
    const char *dir;       /* data.path as given */
    char pattern[4096];    /* a pair file's path with {xx} for its language, or the one pair file */
    char single_lang[8];   /* one pair file: its second language, from its first record */
    const facts_opts *opts;
    facts_set *set;
    size_t n_src;          /* records in the first file */
    size_t *slot;          /* (n_src) index -> position in set->facts, or SIZE_MAX */
    unsigned char *bad;    /* (n_src) malformed somewhere: skipped at the end */
    char first_file[4096]; /* the file the en sides came from */
    int keep_en;           /* en was selected */
    int en_only;           /* only en selected: the pair side is read, then dropped */
} mz_load;

static void pair_path(const mz_load *m, const char *lang, char *buf, size_t cap) {
    const char *slot = strstr(m->pattern, LANG_SLOT);
    if (!slot) snprintf(buf, cap, "%s", m->pattern);
    else snprintf(buf, cap, "%.*s%s%s", (int)(slot - m->pattern), m->pattern, lang, slot + strlen(LANG_SLOT));
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int parse_array(const char *path, cJSON **out, lafn_err *err);

/* The second language of a single pair file: the key other than "en" of its first record. */
static int single_file_lang(mz_load *m, lafn_err *err) {
    cJSON *root = NULL;
    if (parse_array(m->pattern, &root, err)) return -1;
    const cJSON *first = cJSON_GetArrayItem(root, 0), *it;
    cJSON_ArrayForEach(it, first) {
        if (!it->string || !strcmp(it->string, "en")) continue;
        const facts_lang_info *li = facts_lang_find(it->string);
        if (li) snprintf(m->single_lang, sizeof m->single_lang, "%s", li->code);
        break;
    }
    cJSON_Delete(root);
    if (!m->single_lang[0])
        return lafn_err_set(err, "%s: record [0]: expected an object with \"en\" and one other known language code "
                            "as keys (a MzsRE / Bi-ZsRE pair file)", m->pattern);
    return 0;
}

/* How many pair files of the pattern exist. */
static size_t pairs_present(mz_load *m) {
    char path[4096];
    size_t n = 0;
    for (size_t i = 0; i < N_PAIRS; i++) {
        pair_path(m, mzsre_pairs[i], path, sizeof path);
        n += file_exists(path);
    }
    return n;
}

/* Resolves data.path into m->pattern: a folder holding one of the known sets
 * of pair files, a path with {xx} for the language, or one pair file (whose
 * second language is read from it). */
static int resolve_pattern(mz_load *m, lafn_err *err) {
    struct stat st;
    if (strstr(m->dir, LANG_SLOT)) {
        snprintf(m->pattern, sizeof m->pattern, "%s", m->dir);
        if (pairs_present(m) == 0)
            return lafn_err_set(err, "MzsRE loader: no file matches '%s' for any of zh cz de du es fr pt ru th tr vi",
                                m->dir);
        return 0;
    }
    errno = 0;
    if (stat(m->dir, &st) != 0)
        return lafn_err_set(err, "MzsRE loader: data path '%s': %s (expected a folder of pair files, a path with "
                            "{xx} for the language, or one pair file)", m->dir, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        snprintf(m->pattern, sizeof m->pattern, "%s", m->dir);
        return single_file_lang(m, err);
    }
    if (!S_ISDIR(st.st_mode))
        return lafn_err_set(err, "MzsRE loader: data path '%s' is neither a folder nor a file", m->dir);
    const char *found = NULL;
    for (size_t i = 0; i < N_NAMES; i++) {
        snprintf(m->pattern, sizeof m->pattern, "%s/%s", m->dir, mzsre_names[i]);
        if (pairs_present(m) == 0) continue;
        if (found)
            return lafn_err_set(err, "MzsRE loader: '%s' holds both %s and %s files; name one set in data.path "
                                "(e.g. \"%s/%s\")", m->dir, found, mzsre_names[i], m->dir, mzsre_names[i]);
        found = mzsre_names[i];
    }
    if (!found)
        return lafn_err_set(err, "MzsRE loader: no file %s or %s in '%s'", mzsre_names[0], mzsre_names[1], m->dir);
    snprintf(m->pattern, sizeof m->pattern, "%s/%s", m->dir, found);
    return 0;
}

/* Chooses the pair files: the selected languages, or every pair present. */
static int choose_pairs(mz_load *m, const char **pairs, size_t *n_pairs, lafn_err *err) {
    const char *sel[FACTS_MAX_LANGS];
    size_t n_sel = 0;
    char path[4096];
    if (facts_opts_langs(m->opts, sel, FACTS_MAX_LANGS, &n_sel, err))
        return lafn_err_wrap(err, "MzsRE loader");
    *n_pairs = 0;
    m->keep_en = n_sel == 0;
    for (size_t i = 0; i < n_sel; i++) {
        if (!strcmp(sel[i], "en")) { m->keep_en = 1; continue; }
        if (m->single_lang[0] && strcmp(sel[i], m->single_lang) != 0)
            return lafn_err_set(err, "MzsRE loader: language '%s' selected but %s holds en and %s only", sel[i],
                                m->pattern, m->single_lang);
        pair_path(m, sel[i], path, sizeof path);
        if (!file_exists(path))
            return lafn_err_set(err, "MzsRE loader: language '%s' selected but %s does "
                                "not exist (MzsRE has en paired with zh cz de du es fr pt "
                                "ru th tr vi)", sel[i], path);
        pairs[(*n_pairs)++] = sel[i];
    }
    m->en_only = n_sel > 0 && *n_pairs == 0;
    if (m->single_lang[0] && (n_sel == 0 || *n_pairs == 0)) {
        pairs[(*n_pairs)++] = m->single_lang;
        return 0;
    }
    for (size_t i = 0; i < N_PAIRS && (n_sel == 0 || *n_pairs == 0); i++) {
        pair_path(m, mzsre_pairs[i], path, sizeof path);
        if (file_exists(path)) pairs[(*n_pairs)++] = mzsre_pairs[i];
        if (n_sel && *n_pairs) break; /* en only: one file supplies it */
    }
    if (*n_pairs == 0) return lafn_err_set(err, "MzsRE loader: no file matches '%s'", m->pattern);
    return 0;
}

/* Parses path into a JSON array; reports the line of a syntax error. */
static int parse_array(const char *path, cJSON **out, lafn_err *err) {
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    if (file_read_all(path, SIZE_MAX, &buf, &len, err)) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t off = end && (size_t)(end - buf) < len ? (size_t)(end - buf) : len;
        size_t show = strcspn(buf + off, "\r\n");
        lafn_err_set(err, "%s: line %zu: invalid JSON near \"%.*s\" (expected a JSON array "
                     "of {\"en\": ..., \"<xx>\": ...} records)", path, facts_line_of(buf, off),
                     (int)(show < 24 ? show : 24), buf + off);
        free(buf);
        return -1;
    }
    free(buf);
    if (!cJSON_IsArray(root)) {
        lafn_err_set(err, "%s: expected a JSON array at the top, found %s", path,
                     facts_json_type(root));
        cJSON_Delete(root);
        return -1;
    }
    *out = root;
    return 0;
}

/* A malformed element: fatal, or skip the fact with a warning. */
static int element_error(mz_load *m, size_t idx, const char *msg, lafn_err *err) {
    if (!m->opts || m->opts->on_error == FACTS_ON_ERROR_FATAL)
        return lafn_err_set(err, "%s", msg);
    facts_warn(m->opts, "%s (fact skipped)", msg);
    m->bad[idx] = 1;
    return 0;
}

/* Compares the en side in el with the stored one; fills why on the first difference. */
static int en_differs(const facts_side *a, const facts_side *b, char *why, size_t cap) {
    const char *names[] = {"subject", "src", "alt", "rephrase", "loc", "loc_ans",
                           "portability.New Question", "portability.New Answer"};
    const char *va[] = {a->subject, a->src, a->alt, a->eval.rephrase, a->eval.loc,
                        a->eval.loc_ans, a->eval.port_q, a->eval.port_a};
    const char *vb[] = {b->subject, b->src, b->alt, b->eval.rephrase, b->eval.loc,
                        b->eval.loc_ans, b->eval.port_q, b->eval.port_a};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!va[i] && !vb[i]) continue;
        if (va[i] && vb[i] && !strcmp(va[i], vb[i])) continue;
        snprintf(why, cap, "key 'en.%s' is \"%.200s\" here but \"%.200s\"", names[i],
                 vb[i] ? vb[i] : "(absent)", va[i] ? va[i] : "(absent)");
        return 1;
    }
    return 0;
}

/* Adds element idx of one pair file: the en side (stored from the first file,
 * compared against it afterwards) and the lang side. */
static int add_element(mz_load *m, const char *path, const char *lang, int first,
                       size_t idx, const cJSON *el, lafn_err *err) {
    char why[768], msg[9216];
    facts_record *r = &m->set->facts[m->slot[idx]];
    facts_side en, xx;
    if (!cJSON_IsObject(el)) {
        snprintf(msg, sizeof msg, "%s: record [%zu]: expected an object {\"en\": ..., "
                 "\"%s\": ...}, found %s", path, idx, lang, facts_json_type(el));
        return element_error(m, idx, msg, err);
    }
    const facts_lang_info *en_li = facts_lang_find("en");
    if (facts_side_from_json(cJSON_GetObjectItemCaseSensitive(el, "en"), en_li->code, "en",
                             &en, why, sizeof why)) {
        snprintf(msg, sizeof msg, "%s: record [%zu]: %s", path, idx, why);
        return element_error(m, idx, msg, err);
    }
    if (first) {
        r->sides[r->n_sides++] = en;
    } else {
        int differs = en_differs(&r->sides[0], &en, why, sizeof why);
        facts_side_free(&en);
        if (differs) {
            snprintf(msg, sizeof msg, "%s: record [%zu]: en side disagrees with %s: %s",
                     path, idx, m->first_file, why);
            return element_error(m, idx, msg, err);
        }
    }
    if (facts_side_from_json(cJSON_GetObjectItemCaseSensitive(el, lang),
                             facts_lang_find(lang)->code, lang, &xx, why, sizeof why)) {
        snprintf(msg, sizeof msg, "%s: record [%zu]: %s", path, idx, why);
        return element_error(m, idx, msg, err);
    }
    r->sides[r->n_sides++] = xx;
    return 0;
}

/* Creates one empty record per selected index of the first file. */
static int make_records(mz_load *m, size_t n_pairs, lafn_err *err) {
    const facts_opts *o = m->opts;
    if (o && o->indices) {
        for (size_t i = 0; i < o->n_indices; i++)
            if (o->indices[i] >= m->n_src)
                return lafn_err_set(err, "MzsRE loader: fact index %zu selected, but %s has "
                                    "%zu records", o->indices[i], m->first_file, m->n_src);
    } else if (o && o->first >= m->n_src) {
        return lafn_err_set(err, "MzsRE loader: fact range starts at %zu, but %s has %zu "
                            "records", o->first, m->first_file, m->n_src);
    }
    m->slot = malloc(m->n_src * sizeof *m->slot);
    m->bad = calloc(m->n_src, 1);
    if (!m->slot || !m->bad) return lafn_err_set(err, "MzsRE loader: out of memory");
    for (size_t i = 0; i < m->n_src; i++) {
        m->slot[i] = SIZE_MAX;
        if (!facts_opts_wants(o, i)) continue;
        facts_record *r = facts_set_push(m->set);
        char id[32];
        snprintf(id, sizeof id, "mzsre-%zu", i);
        if (!r || !(r->id = facts_strdup(id)) ||
            !(r->sides = calloc(1 + n_pairs, sizeof *r->sides)))
            return lafn_err_set(err, "MzsRE loader: out of memory");
        r->index = i;
        m->slot[i] = m->set->n_facts - 1;
    }
    return 0;
}

/* Reads one pair file into the records. */
static int load_pair(mz_load *m, const char *lang, int first, size_t n_pairs, lafn_err *err) {
    char path[4096];
    cJSON *root = NULL;
    pair_path(m, lang, path, sizeof path);
    if (parse_array(path, &root, err)) return -1;
    size_t n = (size_t)cJSON_GetArraySize(root);
    int rc = -1;
    if (first) {
        m->n_src = n;
        snprintf(m->first_file, sizeof m->first_file, "%s", path);
        if (make_records(m, n_pairs, err)) goto done;
    } else if (n != m->n_src) {
        lafn_err_set(err, "%s: expected %zu records (as %s), found %zu", path, m->n_src,
                     m->first_file, n);
        goto done;
    }
    size_t idx = 0;
    const cJSON *el;
    cJSON_ArrayForEach(el, root) {
        if (m->slot[idx] != SIZE_MAX && !m->bad[idx] &&
            add_element(m, path, lang, first, idx, el, err))
            goto done;
        idx++;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* Drops skipped records and the sides of languages not selected. */
static void finish(mz_load *m) {
    facts_set *s = m->set;
    size_t w = 0;
    for (size_t i = 0; i < s->n_facts; i++) {
        facts_record *r = &s->facts[i];
        if (m->bad[r->index]) { facts_record_free(r); s->n_skipped++; continue; }
        if (m->en_only) {
            facts_side_free(&r->sides[1]);
            r->n_sides = 1;
        } else if (!m->keep_en) {
            facts_side_free(&r->sides[0]);
            memmove(&r->sides[0], &r->sides[1], (r->n_sides - 1) * sizeof r->sides[0]);
            r->n_sides--;
        }
        s->facts[w++] = *r;
    }
    s->n_facts = w;
}

int facts_load_mzsre(const char *dir, const facts_opts *opts, facts_set *out,
                     lafn_err *err) {
    mz_load m = {.dir = dir, .opts = opts, .set = out};
    const char *pairs[N_PAIRS + FACTS_MAX_LANGS];
    size_t n_pairs = 0;
    memset(out, 0, sizeof *out);
    if (!dir) {
        lafn_err_set(err, "MzsRE loader: no data path given");
        goto fail;
    }
    if (resolve_pattern(&m, err) || choose_pairs(&m, pairs, &n_pairs, err)) goto fail;
    for (size_t p = 0; p < n_pairs; p++)
        if (load_pair(&m, pairs[p], p == 0, n_pairs, err)) goto fail;
    if (m.keep_en) facts_set_add_lang(out, facts_lang_find("en")->code);
    for (size_t p = 0; p < n_pairs && !m.en_only; p++)
        facts_set_add_lang(out, facts_lang_find(pairs[p])->code);
    finish(&m);
    if (out->n_skipped)
        facts_warn(opts, "%s: %zu malformed MzsRE records skipped", dir, out->n_skipped);
    free(m.slot);
    free(m.bad);
    return 0;
fail:
    free(m.slot);
    free(m.bad);
    facts_set_free(out);
    return -1;
}
