/* config_value: checking one libconfig setting against its knob (type, range, choices) and keeping its value. */
#include "config/config_int.h"

#include <stdlib.h>
#include <string.h>

static const char *type_name(int t) {
    switch (t) {
    case CONFIG_TYPE_GROUP: return "a group";
    case CONFIG_TYPE_INT: case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a number";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    case CONFIG_TYPE_ARRAY: case CONFIG_TYPE_LIST: return "a list";
    default: return "nothing";
    }
}

void config_knob_allowed(const config_knob *k, char *buf, size_t cap) {
    const char *what = k->choices ? k->choices : k->valid_help ? k->valid_help : "any string";
    const char *lead = k->choices ? "one of: " : "";
    switch (k->type) {
    case CONFIG_KNOB_INT: snprintf(buf, cap, "an integer in [%.15g, %.15g]", k->min, k->max); break;
    case CONFIG_KNOB_FLOAT: snprintf(buf, cap, "a number in [%.15g, %.15g]", k->min, k->max); break;
    case CONFIG_KNOB_BOOL: snprintf(buf, cap, "true or false"); break;
    case CONFIG_KNOB_STRING: snprintf(buf, cap, "%s%s", lead, what); break;
    case CONFIG_KNOB_STRING_LIST:
        snprintf(buf, cap, "a list of %zu to %zu distinct strings, each %s%s", k->min_len,
                 k->max_len, lead, what);
        break;
    case CONFIG_KNOB_INT_LIST:
        snprintf(buf, cap, "a list of %zu to %zu distinct integers in [%.15g, %.15g]", k->min_len,
                 k->max_len, k->min, k->max);
        break;
    }
}

/* 1 if word is one of the space-separated words of list. */
static int in_choices(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, word, n)) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* The error for setting s of knob k: "<where>: <sec>.<key>: <problem>; allowed: ... (help)". */
static int bad(const config_section *sec, const config_knob *k, const char *where, lafn_err *err,
               const char *problem) {
    char allowed[512];
    config_knob_allowed(k, allowed, sizeof allowed);
    return lafn_err_set(err, "%s: %s.%s: %s; allowed: %s (%s)", where, sec->name, k->key, problem,
                        allowed, k->help);
}

/* Appends " (did you mean \"X\"?)" to problem when a choice is within 2 edits of s. */
static void suggest_choice(const config_knob *k, const char *s, char *problem, size_t cap) {
    char best[64] = "";
    size_t best_d = 3;
    for (const char *p = k->choices; p && *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)len, p);
        size_t d = config_edit_distance(s, word);
        if (d < best_d) best_d = d, snprintf(best, sizeof best, "%s", word);
        if (!end) break;
        p = end + 1;
    }
    size_t used = strlen(problem);
    if (best[0] && used < cap) snprintf(problem + used, cap - used, " (did you mean \"%s\"?)", best);
}

/* Checks a string (scalar or list element) against choices / valid. */
static int string_ok(const config_knob *k, const char *s) {
    if (k->choices && !in_choices(k->choices, s)) return 0;
    if (k->valid && !k->valid(s)) return 0;
    return 1;
}

static int number_ok(const config_knob *k, double x) { return x >= k->min && x <= k->max; }

static int is_int(const config_setting_t *s) {
    return config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64;
}

static int take_scalar(const config_section *sec, const config_knob *k, const config_setting_t *s,
                       const char *where, config_value *out, lafn_err *err) {
    char problem[512];
    int t = config_setting_type(s);
    if (k->type == CONFIG_KNOB_INT && is_int(s)) {
        out->i = config_setting_get_int64(s);
        snprintf(problem, sizeof problem, "%lld is out of range", (long long)out->i);
        return number_ok(k, (double)out->i) ? 0 : bad(sec, k, where, err, problem);
    }
    if (k->type == CONFIG_KNOB_FLOAT && (is_int(s) || t == CONFIG_TYPE_FLOAT)) {
        out->f = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                        : (double)config_setting_get_int64(s);
        snprintf(problem, sizeof problem, "%.17g is out of range", out->f);
        return number_ok(k, out->f) ? 0 : bad(sec, k, where, err, problem);
    }
    if (k->type == CONFIG_KNOB_BOOL && t == CONFIG_TYPE_BOOL) {
        out->i = config_setting_get_bool(s) ? 1 : 0;
        return 0;
    }
    if (k->type == CONFIG_KNOB_STRING && t == CONFIG_TYPE_STRING) {
        const char *v = config_setting_get_string(s);
        snprintf(problem, sizeof problem, "\"%.400s\" is not allowed", v);
        if (!string_ok(k, v)) {
            suggest_choice(k, v, problem, sizeof problem);
            return bad(sec, k, where, err, problem);
        }
        out->s = strdup(v);
        return out->s ? 0 : lafn_err_set(err, "config: out of memory");
    }
    snprintf(problem, sizeof problem, "found %s", type_name(t));
    return bad(sec, k, where, err, problem);
}

/* Fills list element i of out from element e. */
static int take_elem(const config_section *sec, const config_knob *k, const config_setting_t *e,
                     size_t i, const char *where, config_value *out, lafn_err *err) {
    char problem[512];
    if (k->type == CONFIG_KNOB_INT_LIST) {
        snprintf(problem, sizeof problem, "element %zu: found %s", i, type_name(config_setting_type(e)));
        if (!is_int(e)) return bad(sec, k, where, err, problem);
        out->il[i] = config_setting_get_int64(e);
        snprintf(problem, sizeof problem, "element %zu: %lld is out of range", i, (long long)out->il[i]);
        if (!number_ok(k, (double)out->il[i])) return bad(sec, k, where, err, problem);
        for (size_t j = 0; j < i; j++)
            if (out->il[j] == out->il[i]) {
                snprintf(problem, sizeof problem, "%lld appears twice", (long long)out->il[i]);
                return bad(sec, k, where, err, problem);
            }
        return 0;
    }
    snprintf(problem, sizeof problem, "element %zu: found %s", i, type_name(config_setting_type(e)));
    if (config_setting_type(e) != CONFIG_TYPE_STRING) return bad(sec, k, where, err, problem);
    const char *v = config_setting_get_string(e);
    snprintf(problem, sizeof problem, "element %zu: \"%.400s\" is not allowed", i, v);
    if (!string_ok(k, v)) {
        suggest_choice(k, v, problem, sizeof problem);
        return bad(sec, k, where, err, problem);
    }
    for (size_t j = 0; j < i; j++)
        if (!strcmp(out->sl[j], v)) {
            snprintf(problem, sizeof problem, "\"%.400s\" appears twice", v);
            return bad(sec, k, where, err, problem);
        }
    out->sl[i] = strdup(v);
    out->n = i + 1;
    return out->sl[i] ? 0 : lafn_err_set(err, "config: out of memory");
}

static int take_list(const config_section *sec, const config_knob *k, const config_setting_t *s,
                     const char *where, config_value *out, lafn_err *err) {
    char problem[512];
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        snprintf(problem, sizeof problem, "found %s", type_name(t));
        return bad(sec, k, where, err, problem);
    }
    size_t n = (size_t)config_setting_length(s);
    if (n < k->min_len || n > k->max_len) {
        snprintf(problem, sizeof problem, "found a list of %zu elements", n);
        return bad(sec, k, where, err, problem);
    }
    if (k->type == CONFIG_KNOB_INT_LIST) out->il = calloc(n ? n : 1, sizeof *out->il);
    else out->sl = calloc(n ? n : 1, sizeof *out->sl);
    if (!out->il && !out->sl) return lafn_err_set(err, "config: out of memory");
    for (size_t i = 0; i < n; i++)
        if (take_elem(sec, k, config_setting_get_elem(s, (unsigned)i), i, where, out, err))
            return -1;
    out->n = n;
    return 0;
}

int config_value_take(const config_section *sec, const config_knob *k, const config_setting_t *s,
                      char *where, config_value *out, lafn_err *err) {
    config_value v = {0};
    int list = k->type == CONFIG_KNOB_STRING_LIST || k->type == CONFIG_KNOB_INT_LIST;
    int rc = list ? take_list(sec, k, s, where, &v, err) : take_scalar(sec, k, s, where, &v, err);
    if (rc) {
        config_value_clear(&v);
        return -1;
    }
    v.where = where;
    *out = v;
    return 0;
}
