/* config: pipeline files (libconfig 1.5) — declarative knob tables, validation, overrides, printing.
 *
 * A pipeline file has one group per section (model, data, languages, run,
 * paraphrase, probe, locate, edit, eval); every setting in it must be a knob of that section's table,
 * of the knob's type and inside its range or choices. Knobs not in the file take
 * the table's default. libconfig names cannot contain '.', so tensor and neuron
 * names (blk.12.ffn_down) are string values; a knob is addressed as
 * "section.key" (locate.threshold) in messages, accessors and overrides. */
#ifndef LAFN_CONFIG_H
#define LAFN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/lafn_err.h"

typedef enum {
    CONFIG_KNOB_INT, CONFIG_KNOB_FLOAT, CONFIG_KNOB_BOOL,
    CONFIG_KNOB_STRING, CONFIG_KNOB_STRING_LIST, CONFIG_KNOB_INT_LIST,
} config_knob_type;

/* One row of a section's table. */
typedef struct {
    const char *key;          /* name inside the section */
    config_knob_type type;
    const char *def;          /* default, in libconfig syntax ("0.2", "\"last\"", "[]") */
    double min, max;          /* INT, FLOAT and INT_LIST elements: min <= value <= max */
    size_t min_len, max_len;  /* lists: allowed number of elements */
    const char *choices;      /* STRING / STRING_LIST: space-separated allowed values; NULL = any */
    int (*valid)(const char *s); /* optional extra test of a string (list element); 1 = ok */
    const char *valid_help;   /* what `valid` accepts, for messages */
    const char *help;         /* one line for people */
} config_knob;

typedef struct {
    const char *name;
    const config_knob *knobs;
    size_t n_knobs;
    const char *help;
} config_section;

/* The resolved value of one knob. */
typedef struct {
    int64_t i;          /* INT, BOOL (0/1) */
    double f;           /* FLOAT */
    char *s;            /* STRING */
    char **sl;          /* STRING_LIST, n elements */
    int64_t *il;        /* INT_LIST, n elements */
    size_t n;
    char *where;        /* "FILE:LINE", "command line", or "default" */
} config_value;

/* A resolved configuration: every knob of every section has a value. */
typedef struct {
    config_value *vals; /* one per knob, in table order (sections, then knobs) */
    size_t n_vals;
    char *source;       /* path of the pipeline file, or "<defaults>" */
    char *text;         /* the pipeline file's text as read (NULL for defaults) */
} lafn_config;

/* The knob tables. Returns the sections array (static) and its length in *n. */
const config_section *config_sections(size_t *n);

/* Fills cfg with every default. Returns 0, or -1 with err set (a broken table).
 * On success the caller owns cfg and frees it with config_free. */
int config_defaults(lafn_config *cfg, lafn_err *err);

/* Reads a pipeline file, checks it (config_check) and resolves it over the
 * defaults into cfg. Returns 0, or -1 with err naming file:line, the key path
 * and what is allowed; on failure cfg is left empty (config_free is safe). */
int config_load(lafn_config *cfg, const char *path, lafn_err *err);

/* Checks a pipeline file without keeping it: unknown sections/keys (with a
 * "did you mean"), wrong types, values outside range/choices, and relations
 * between knobs. Returns 0 if the file is valid, else -1 with err set. */
int config_check(const char *path, lafn_err *err);

/* Applies one command-line override "section.key=value" to cfg through the same
 * checks as the file (strings may be unquoted; lists may be written a,b,c).
 * Then re-checks the relations between knobs. Returns 0, or -1 with err set and
 * cfg unchanged. */
int config_override(lafn_config *cfg, const char *assignment, lafn_err *err);

/* Applies n overrides in order, each checked as config_override, then the
 * relations between knobs once, so their order does not matter
 * ("locate.min_neurons=40 locate.max_neurons=40"). Returns 0, or -1 with err
 * set; on failure cfg may hold some of the overrides — discard it. */
int config_override_all(lafn_config *cfg, char *const *assignments, size_t n, lafn_err *err);

/* Writes the resolved configuration (every key, defaults filled) as libconfig
 * text that config_load reads back to the same values. Returns 0 or -1 on a
 * write error. */
int config_print(const lafn_config *cfg, FILE *out);

/* Writes the knobs of the sections listed in `names` (space-separated, e.g.
 * "model data languages probe"; NULL = all), leaving out the keys listed in
 * `skip` (space-separated "section.key"; NULL = none), one "section.key =
 * value;" line each, in table order — values only, so that rewording a knob's
 * help does not change it: the text that identifies what a stage's output
 * depends on. Returns 0 or -1 on a write error. */
int config_print_identity(const lafn_config *cfg, const char *names, const char *skip, FILE *out);

/* 1 if knob "section.key" holds its default (its value prints as the table's
 * default text), 0 if not or if there is no such knob. */
int config_at_default(const lafn_config *cfg, const char *path);

/* config_print into a new NUL-terminated string the caller frees; NULL on failure. */
char *config_print_string(const lafn_config *cfg);

/* Typed accessors by key path ("locate.threshold"). Return 0, or -1 with err
 * set if the key is unknown or of another type. Strings and lists stay owned
 * by cfg. */
int config_get_int(const lafn_config *cfg, const char *path, int64_t *out, lafn_err *err);
int config_get_float(const lafn_config *cfg, const char *path, double *out, lafn_err *err);
int config_get_bool(const lafn_config *cfg, const char *path, int *out, lafn_err *err);
int config_get_string(const lafn_config *cfg, const char *path, const char **out, lafn_err *err);
int config_get_string_list(const lafn_config *cfg, const char *path, char *const **out,
                           size_t *n, lafn_err *err);
int config_get_int_list(const lafn_config *cfg, const char *path, const int64_t **out,
                        size_t *n, lafn_err *err);

/* Frees everything cfg owns and leaves it empty. */
void config_free(lafn_config *cfg);

#endif
