/* config_print: the resolved configuration as libconfig text (every key, defaults filled). */
#include "config/config_int.h"

#include <stdlib.h>
#include <string.h>

/* Writes s as a libconfig string literal. */
static void print_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p == '\r') fputs("\\r", out);
        else if (*p < 0x20) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
    fputc('"', out);
}

/* Writes x so that libconfig reads it back as the same double (and as a float). */
static void print_float(FILE *out, double x) {
    char buf[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn")) fputs(".0", out);
}

static void print_value(FILE *out, const config_knob *k, const config_value *v) {
    switch (k->type) {
    case CONFIG_KNOB_INT:
        fprintf(out, "%lld%s", (long long)v->i, v->i > 2147483647LL || v->i < -2147483647LL ? "L" : "");
        break;
    case CONFIG_KNOB_FLOAT: print_float(out, v->f); break;
    case CONFIG_KNOB_BOOL: fputs(v->i ? "true" : "false", out); break;
    case CONFIG_KNOB_STRING: print_string(out, v->s); break;
    case CONFIG_KNOB_STRING_LIST:
    case CONFIG_KNOB_INT_LIST:
        fputc('[', out);
        for (size_t i = 0; i < v->n; i++) {
            if (i) fputs(", ", out);
            if (k->type == CONFIG_KNOB_INT_LIST) fprintf(out, "%lld", (long long)v->il[i]);
            else print_string(out, v->sl[i]);
        }
        fputc(']', out);
        break;
    }
}

/* 1 if name is one of the space-separated names (NULL = every name). */
static int section_selected(const char *names, const char *name) {
    if (!names) return 1;
    size_t n = strlen(name);
    for (const char *p = strstr(names, name); p; p = strstr(p + 1, name))
        if ((p == names || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

/* 1 if "section.key" is one of the space-separated names in skip (NULL = none). */
static int key_skipped(const char *skip, const char *section, const char *key) {
    if (!skip) return 0;
    char full[256];
    snprintf(full, sizeof full, "%s.%s", section, key);
    return section_selected(skip, full);
}

/* Every knob of the selected sections not in skip: as libconfig groups with the help comments, or (identity)
 * as bare "section.key = value;" lines. */
static int print_sections(const lafn_config *cfg, const char *names, const char *skip, int identity, FILE *out) {
    size_t ns, idx = 0;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++) {
        int selected = section_selected(names, sec[i].name);
        if (selected && !identity) fprintf(out, "\n# %s\n%s = {\n", sec[i].help, sec[i].name);
        for (size_t k = 0; k < sec[i].n_knobs && idx < cfg->n_vals; k++, idx++) {
            if (!selected || key_skipped(skip, sec[i].name, sec[i].knobs[k].key)) continue;
            if (identity) fprintf(out, "%s.%s = ", sec[i].name, sec[i].knobs[k].key);
            else fprintf(out, "  %s = ", sec[i].knobs[k].key);
            print_value(out, &sec[i].knobs[k], &cfg->vals[idx]);
            if (identity) fputs(";\n", out);
            else fprintf(out, ";  # %s\n", sec[i].knobs[k].help);
        }
        if (selected && !identity) fputs("};\n", out);
    }
    return ferror(out) ? -1 : 0;
}

int config_print_identity(const lafn_config *cfg, const char *names, const char *skip, FILE *out) {
    return print_sections(cfg, names, skip, 1, out);
}

int config_at_default(const lafn_config *cfg, const char *path) {
    size_t ns, idx = 0;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < sec[i].n_knobs && idx < cfg->n_vals; k++, idx++) {
            size_t n = strlen(sec[i].name);
            if (strncmp(path, sec[i].name, n) != 0 || path[n] != '.' || strcmp(path + n + 1, sec[i].knobs[k].key) != 0)
                continue;
            char *text = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&text, &len);
            if (!f) return 0;
            print_value(f, &sec[i].knobs[k], &cfg->vals[idx]);
            int same = fclose(f) == 0 && strcmp(text, sec[i].knobs[k].def) == 0;
            free(text);
            return same;
        }
    return 0;
}

int config_print(const lafn_config *cfg, FILE *out) {
    fprintf(out, "# lafn pipeline file, resolved from %s (every key; defaults filled)\n",
            cfg->source ? cfg->source : "?");
    return print_sections(cfg, NULL, NULL, 0, out);
}

char *config_print_string(const lafn_config *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    int rc = config_print(cfg, f);
    if (fclose(f) || rc) {
        free(buf);
        return NULL;
    }
    return buf;
}
