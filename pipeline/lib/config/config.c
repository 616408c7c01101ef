/* config: reading, checking and resolving pipeline files against the knob tables, and overrides. */
#include "config/config.h"
#include "config/config_int.h"
#include "base/file_map.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES ((size_t)16 << 20)

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static size_t n_knobs_total(void) {
    size_t ns, n = 0;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++) n += sec[i].n_knobs;
    return n;
}

const config_knob *config_knob_at(size_t index, const config_section **section) {
    size_t ns;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++) {
        if (index < sec[i].n_knobs) {
            if (section) *section = &sec[i];
            return &sec[i].knobs[index];
        }
        index -= sec[i].n_knobs;
    }
    return NULL;
}

/* Index of knob `key` of section `section` (name given by length), or (size_t)-1. */
static size_t knob_index(const char *section, size_t section_len, const char *key) {
    size_t ns, base = 0;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++) {
        if (strlen(sec[i].name) == section_len && !strncmp(sec[i].name, section, section_len))
            for (size_t k = 0; k < sec[i].n_knobs; k++)
                if (!strcmp(sec[i].knobs[k].key, key)) return base + k;
        base += sec[i].n_knobs;
    }
    return (size_t)-1;
}

size_t config_knob_index(const char *path) {
    const char *dot = strchr(path, '.');
    if (!dot) return (size_t)-1;
    return knob_index(path, (size_t)(dot - path), dot + 1);
}

void config_value_clear(config_value *v) {
    free(v->s);
    for (size_t i = 0; v->sl && i < v->n; i++) free(v->sl[i]);
    free(v->sl);
    free(v->il);
    free(v->where);
    memset(v, 0, sizeof *v);
}

void config_free(lafn_config *cfg) {
    for (size_t i = 0; cfg->vals && i < cfg->n_vals; i++) config_value_clear(&cfg->vals[i]);
    free(cfg->vals);
    free(cfg->source);
    free(cfg->text);
    memset(cfg, 0, sizeof *cfg);
}

size_t config_edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b), row[64], prev;
    if (na > 63 || nb > 63) return 1000;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t cur = row[j], sub = prev + (a[i - 1] != b[j - 1]);
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return row[nb];
}

/* Writes "; did you mean 'X'?" (closest section or section.key) or a list of the
 * valid names into out. key == NULL: suggest a section for `section`. */
static void suggest(const char *section, const char *key, char *out, size_t cap) {
    size_t ns, best = 1000, len = 0;
    const config_section *sec = config_sections(&ns);
    char given[256], cand[256], pick[256] = "";
    snprintf(given, sizeof given, "%s%s%s", section, key ? "." : "", key ? key : "");
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < (key ? sec[i].n_knobs : 1); k++) {
            snprintf(cand, sizeof cand, "%s%s%s", sec[i].name, key ? "." : "",
                     key ? sec[i].knobs[k].key : "");
            size_t d = config_edit_distance(given, cand);
            if (key && !strcmp(sec[i].knobs[k].key, key)) d = 1; /* right key, other section */
            if (d < best) best = d, snprintf(pick, sizeof pick, "%s", cand);
        }
    size_t limit = strlen(given) / 4 > 2 ? strlen(given) / 4 : 2;
    if (best <= limit) {
        snprintf(out, cap, "; did you mean '%s'?", pick);
        return;
    }
    len = (size_t)snprintf(out, cap, "; valid %s:", key ? "keys of this section" : "sections");
    for (size_t i = 0; i < ns && len < cap; i++) {
        if (key && strcmp(sec[i].name, section)) continue;
        for (size_t k = 0; k < (key ? sec[i].n_knobs : 1) && len < cap; k++)
            len += (size_t)snprintf(out + len, cap - len, " %s", key ? sec[i].knobs[k].key : sec[i].name);
    }
}

/* "FILE:LINE" of a setting read from `file`, in a new string. */
static char *where_of(const config_setting_t *s, const char *file) {
    const char *f = config_setting_source_file(s);
    char buf[1200];
    snprintf(buf, sizeof buf, "%s:%u", f ? f : file, (unsigned)config_setting_source_line(s));
    return dup_str(buf);
}

/* Takes the setting s as the value of knob idx (where: a new string, owned on success). */
static int take(size_t idx, const config_setting_t *s, char *where, config_value *out,
                lafn_err *err) {
    const config_section *sec = NULL;
    const config_knob *k = config_knob_at(idx, &sec);
    if (!where) return lafn_err_set(err, "config: out of memory");
    if (config_value_take(sec, k, s, where, out, err)) {
        free(where);
        return -1;
    }
    return 0;
}

/* Replaces value idx of cfg with setting s. */
static int apply_setting(lafn_config *cfg, size_t idx, const config_setting_t *s, char *where,
                         lafn_err *err) {
    config_value v = {0};
    if (take(idx, s, where, &v, err)) return -1;
    config_value_clear(&cfg->vals[idx]);
    cfg->vals[idx] = v;
    return 0;
}

static int section_known(const char *name) {
    size_t ns;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++)
        if (!strcmp(sec[i].name, name)) return 1;
    return 0;
}

/* Applies every setting of the file's root group; unknown names are errors. */
static int apply_root(lafn_config *cfg, const config_setting_t *root, const char *file,
                      lafn_err *err) {
    char hint[512];
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(g);
        size_t len = strlen(name);
        if (!section_known(name)) {
            if (config_setting_is_group(g)) suggest(name, NULL, hint, sizeof hint);
            else suggest("", name, hint, sizeof hint); /* a key outside its section */
            if (!strstr(hint, "did you mean")) suggest(name, NULL, hint, sizeof hint);
            return lafn_err_set(err, "%s:%u: unknown section '%s'%s", file,
                                (unsigned)config_setting_source_line(g), name, hint);
        }
        if (!config_setting_is_group(g))
            return lafn_err_set(err, "%s:%u: '%s' must be a group: %s = { key = value; ... };",
                                file, (unsigned)config_setting_source_line(g), name, name);
        for (int e = 0; e < config_setting_length(g); e++) {
            const config_setting_t *s = config_setting_get_elem(g, (unsigned)e);
            size_t idx = knob_index(name, len, config_setting_name(s));
            if (idx == (size_t)-1) {
                suggest(name, config_setting_name(s), hint, sizeof hint);
                return lafn_err_set(err, "%s:%u: unknown key '%s.%s'%s", file,
                                    (unsigned)config_setting_source_line(s), name,
                                    config_setting_name(s), hint);
            }
            if (apply_setting(cfg, idx, s, where_of(s, file), err)) return -1;
        }
    }
    return 0;
}

/* Parses "v = <text>;" into lc and returns the setting v, or NULL with err set. */
static config_setting_t *parse_value(config_t *lc, const char *text, const char *what,
                                     lafn_err *err) {
    size_t n = strlen(text) + 8;
    char *buf = malloc(n);
    if (!buf) return lafn_err_set(err, "config: out of memory"), NULL;
    snprintf(buf, n, "v = %s;", text);
    int ok = config_read_string(lc, buf);
    free(buf);
    if (!ok || config_setting_length(config_root_setting(lc)) != 1) {
        lafn_err_set(err, "%s: cannot parse value '%s': %s", what, text,
                     ok ? "expected one value" : config_error_text(lc));
        return NULL;
    }
    return config_lookup(lc, "v");
}

int config_defaults(lafn_config *cfg, lafn_err *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_vals = n_knobs_total();
    cfg->vals = calloc(cfg->n_vals, sizeof *cfg->vals);
    cfg->source = dup_str("<defaults>");
    if (!cfg->vals || !cfg->source) {
        config_free(cfg);
        return lafn_err_set(err, "config: out of memory");
    }
    for (size_t i = 0; i < cfg->n_vals; i++) {
        const config_section *sec = NULL;
        const config_knob *k = config_knob_at(i, &sec);
        config_t lc;
        config_init(&lc);
        char what[256];
        snprintf(what, sizeof what, "default of %s.%s", sec->name, k->key);
        config_setting_t *s = parse_value(&lc, k->def, what, err);
        int rc = s ? take(i, s, dup_str("default"), &cfg->vals[i], err) : -1;
        config_destroy(&lc);
        if (rc) {
            config_free(cfg);
            return -1;
        }
    }
    return 0;
}

/* Reads a whole text file (at most MAX_FILE_BYTES) into a new string, or NULL with err set. */
static char *slurp(const char *path, lafn_err *err) {
    char *buf = NULL;
    size_t n = 0;
    if (file_read_all(path, MAX_FILE_BYTES, &buf, &n, err) != 0) {
        lafn_err_wrap(err, "pipeline file");
        return NULL;
    }
    return buf;
}

/* Directory part of path ("." if none) into buf, for @include. */
static void dir_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (!slash) snprintf(buf, cap, ".");
    else snprintf(buf, cap, "%.*s", (int)(n ? n : 1), path);
}

int config_load(lafn_config *cfg, const char *path, lafn_err *err) {
    config_t lc;
    char dir[4096];
    config_init(&lc);
    if (config_defaults(cfg, err)) goto fail;
    free(cfg->source);
    cfg->source = dup_str(path);
    cfg->text = slurp(path, err);
    if (!cfg->source || !cfg->text) goto fail;
    dir_of(path, dir, sizeof dir);
    config_set_include_dir(&lc, dir);
    if (!config_read_string(&lc, cfg->text)) { /* the text stored is exactly the text parsed */
        lafn_err_set(err, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        goto fail;
    }
    if (apply_root(cfg, config_root_setting(&lc), path, err)) goto fail;
    if (config_check_relations(cfg, err)) goto fail;
    config_destroy(&lc);
    return 0;
fail:
    config_destroy(&lc);
    config_free(cfg);
    return -1;
}

int config_check(const char *path, lafn_err *err) {
    lafn_config cfg;
    if (config_load(&cfg, path, err)) return -1;
    config_free(&cfg);
    return 0;
}

/* Appends s to buf as a quoted libconfig string. */
static size_t quote_into(char *buf, size_t len, const char *s, size_t n) {
    buf[len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') buf[len++] = '\\';
        buf[len++] = s[i];
    }
    buf[len++] = '"';
    return len;
}

/* The libconfig text of an override value: strings may come unquoted and
 * lists as a,b,c. Returns a new string. */
static char *override_text(config_knob_type t, const char *v) {
    char *buf = malloc(strlen(v) * 3 + 8);
    size_t len = 0;
    if (!buf) return NULL;
    int list = t == CONFIG_KNOB_STRING_LIST || t == CONFIG_KNOB_INT_LIST;
    if ((t == CONFIG_KNOB_STRING && v[0] != '"') || (list && v[0] != '[' && v[0] != '(')) {
        if (list) buf[len++] = '[';
        for (const char *p = v; list || p == v;) {
            const char *end = list ? strchr(p, ',') : NULL;
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (t == CONFIG_KNOB_INT_LIST) memcpy(buf + len, p, n), len += n;
            else if (n || !list) len = quote_into(buf, len, p, n);
            if (!end) break;
            buf[len++] = ',';
            p = end + 1;
        }
        if (list) buf[len++] = ']';
        buf[len] = '\0';
        return buf;
    }
    strcpy(buf, v);
    return buf;
}

/* Applies one override; checks the relations between knobs only if check_relations. */
static int override_one(lafn_config *cfg, const char *assignment, int check_relations, lafn_err *err) {
    const char *eq = strchr(assignment, '=');
    char path[256], what[512], hint[512], *text = NULL;
    int rc = -1;
    config_t lc;
    config_init(&lc);
    snprintf(what, sizeof what, "command line override '%s'", assignment);
    if (!eq || eq == assignment || (size_t)(eq - assignment) >= sizeof path) {
        lafn_err_set(err, "%s: expected section.key=value", what);
        goto done;
    }
    memcpy(path, assignment, (size_t)(eq - assignment));
    path[eq - assignment] = '\0';
    size_t idx = config_knob_index(path);
    if (idx == (size_t)-1) {
        char *dot = strchr(path, '.');
        if (dot) *dot = '\0';
        suggest(dot ? path : "", dot ? dot + 1 : path, hint, sizeof hint);
        if (dot) *dot = '.';
        lafn_err_set(err, "%s: unknown key '%s'%s", what, path, hint);
        goto done;
    }
    text = override_text(config_knob_at(idx, NULL)->type, eq + 1);
    if (!text) {
        lafn_err_set(err, "config: out of memory");
        goto done;
    }
    config_setting_t *s = parse_value(&lc, text, what, err);
    if (!s) {
        char allowed[512];
        config_knob_allowed(config_knob_at(idx, NULL), allowed, sizeof allowed);
        char first[sizeof err->msg];
        snprintf(first, sizeof first, "%s", err ? err->msg : "");
        lafn_err_set(err, "%.600s; %s: allowed: %s", first, path, allowed);
        goto done;
    }
    config_value old = cfg->vals[idx], v = {0};
    if (take(idx, s, dup_str(what), &v, err)) goto done;
    cfg->vals[idx] = v;
    if (check_relations && config_check_relations(cfg, err)) {
        cfg->vals[idx] = old;
        config_value_clear(&v);
        lafn_err_wrap(err, "%s", what);
        goto done;
    }
    config_value_clear(&old);
    rc = 0;
done:
    free(text);
    config_destroy(&lc);
    return rc;
}

int config_override(lafn_config *cfg, const char *assignment, lafn_err *err) {
    return override_one(cfg, assignment, 1, err);
}

int config_override_all(lafn_config *cfg, char *const *assignments, size_t n, lafn_err *err) {
    for (size_t i = 0; i < n; i++)
        if (override_one(cfg, assignments[i], 0, err)) return -1;
    if (config_check_relations(cfg, err)) return lafn_err_wrap(err, "command line overrides");
    return 0;
}

/* The value of knob `path` if it has type t, else NULL with err set. */
static const config_value *get(const lafn_config *cfg, const char *path, config_knob_type t,
                               lafn_err *err) {
    size_t idx = config_knob_index(path);
    if (idx == (size_t)-1 || idx >= cfg->n_vals)
        return lafn_err_set(err, "config: no knob '%s'", path), NULL;
    if (config_knob_at(idx, NULL)->type != t)
        return lafn_err_set(err, "config: knob '%s' read with the wrong type", path), NULL;
    return &cfg->vals[idx];
}

int config_get_int(const lafn_config *cfg, const char *path, int64_t *out, lafn_err *err) {
    const config_value *v = get(cfg, path, CONFIG_KNOB_INT, err);
    return v ? (*out = v->i, 0) : -1;
}

int config_get_float(const lafn_config *cfg, const char *path, double *out, lafn_err *err) {
    const config_value *v = get(cfg, path, CONFIG_KNOB_FLOAT, err);
    return v ? (*out = v->f, 0) : -1;
}

int config_get_bool(const lafn_config *cfg, const char *path, int *out, lafn_err *err) {
    const config_value *v = get(cfg, path, CONFIG_KNOB_BOOL, err);
    return v ? (*out = (int)v->i, 0) : -1;
}

int config_get_string(const lafn_config *cfg, const char *path, const char **out, lafn_err *err) {
    const config_value *v = get(cfg, path, CONFIG_KNOB_STRING, err);
    return v ? (*out = v->s, 0) : -1;
}

int config_get_string_list(const lafn_config *cfg, const char *path, char *const **out,
                           size_t *n, lafn_err *err) {
    const config_value *v = get(cfg, path, CONFIG_KNOB_STRING_LIST, err);
    return v ? (*out = v->sl, *n = v->n, 0) : -1;
}

int config_get_int_list(const lafn_config *cfg, const char *path, const int64_t **out,
                        size_t *n, lafn_err *err) {
    const config_value *v = get(cfg, path, CONFIG_KNOB_INT_LIST, err);
    return v ? (*out = v->il, *n = v->n, 0) : -1;
}
