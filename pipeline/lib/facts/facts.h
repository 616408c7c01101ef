/* facts: multilingual fact records, their loaders (MzsRE, JSON Lines, paraphrase files) and the edit view. */
#ifndef LAFN_FACTS_H
#define LAFN_FACTS_H

#include <stddef.h>
#include <stdio.h>

#include "base/lafn_err.h"

/* Most languages one fact set can hold (the language table has 20). */
#define FACTS_MAX_LANGS 24

/* ---- languages (facts_lang.c) ----
 * Codes are those of the MzsRE data ("cz" Czech, "du" Dutch); ISO 639-1
 * aliases are accepted on input ("cs" -> "cz", "nl" -> "du"). */

typedef struct {
    const char *code;  /* canonical code as in the data, e.g. "du" */
    const char *iso;   /* ISO 639-1 code, e.g. "nl" */
    const char *name;  /* English name, e.g. "Dutch" */
    const char *sep;   /* joins a prompt and its answer: " ", or "" for zh, ja, th */
} facts_lang_info;

/* Returns the table entry for code or alias s (case-insensitive), or NULL if
 * the language is unknown. The entry is static; never free it. */
const facts_lang_info *facts_lang_find(const char *s);

/* Parses a comma-separated list of codes/aliases ("en,zh,nl") into canonical
 * codes out[0..*n) (pointers into the static table). NULL or "" or "all"
 * gives *n = 0 (meaning: every language). Returns 0, or -1 naming an unknown
 * code, a language listed twice (also as "cz" and "cs"), or more than max. */
int facts_lang_parse_list(const char *list, const char **out, size_t max,
                          size_t *n, lafn_err *err);

/* ---- records ---- */

/* The evaluation-only fields of one fact in one language. Locating and
 * editing never see these (see facts_edit_view); any may be NULL. */
typedef struct {
    char *rephrase;  /* paraphrase used for generality */
    char *loc;       /* unrelated question for locality */
    char *loc_ans;   /* its true answer */
    char *port_q;    /* portability question */
    char *port_a;    /* its answer, following from the edit */
} facts_eval;

/* One fact in one language: what locating and editing may use. */
typedef struct {
    const char *lang;     /* canonical code (static table) */
    char *subject;        /* may be NULL */
    char *src;            /* edit prompt; never NULL */
    char *alt;            /* new target answer; never NULL */
    char **paraphrases;   /* (n_paraphrases) paraphrases of src, owned */
    size_t n_paraphrases;
    facts_eval eval;      /* evaluation only: read it through facts_record_eval */
} facts_side;

/* One multilingual fact. */
typedef struct {
    char *id;             /* "mzsre-<index>" for MzsRE, the file's "id" for JSONL */
    size_t index;         /* position in the source (array index / record number) */
    size_t n_sides;
    facts_side *sides;    /* (n_sides), in the order of facts_set.langs */
} facts_record;

typedef struct {
    size_t n_facts;
    facts_record *facts;  /* (n_facts), ordered by index */
    size_t n_langs;
    const char *langs[FACTS_MAX_LANGS]; /* languages present, first-seen order */
    size_t n_skipped;     /* malformed records skipped under FACTS_ON_ERROR_SKIP */
} facts_set;

typedef enum {
    FACTS_ON_ERROR_FATAL = 0, /* first malformed record fails the load */
    FACTS_ON_ERROR_SKIP,      /* malformed records are skipped, one warning each, counted */
} facts_on_error;

/* What to load. Zero-initialised = every language, every fact, fatal. */
typedef struct {
    const char *langs;       /* comma-separated codes/aliases; NULL = all ... */
    const char *const *lang_codes; /* ... or, if langs is NULL, this list */
    size_t n_lang_codes;     /* (0 with langs NULL = all) */
    size_t first;            /* fact range [first, first + count) by index ... */
    size_t count;            /* ... count 0 = to the end */
    const size_t *indices;   /* explicit index subset (overrides the range) */
    size_t n_indices;
    facts_on_error on_error;
    FILE *log;               /* warnings go here; NULL = stderr */
} facts_opts;

/* Fills out[0..*n) with the canonical codes opts selects (opts->langs, else
 * opts->lang_codes); *n = 0 means every language. Returns 0 or -1 naming the
 * unknown code, a language given twice under two codes, or the overflow. */
int facts_opts_langs(const facts_opts *opts, const char **out, size_t max, size_t *n,
                     lafn_err *err);

/* Frees everything set owns and zeroes it; safe on a zeroed set. */
void facts_set_free(facts_set *set);

/* Returns the side of rec in language code/alias lang, or NULL. */
const facts_side *facts_record_side(const facts_record *rec, const char *lang);

/* Returns the evaluation-only fields of rec in language lang, or NULL if rec
 * has no such side. Only the evaluation stage calls this. */
const facts_eval *facts_record_eval(const facts_record *rec, const char *lang);

/* Returns the record with the given id, or NULL. */
const facts_record *facts_set_find(const facts_set *set, const char *id);

/* ---- loaders ---- */

/* Reads MzsRE / Bi-ZsRE pair files (a JSON array of {"en": side, "<xx>":
 * side} per file) from dir: a folder holding mzsre_dev500_en<XX>.json or the
 * published mzsre_test_duplicate_en<XX>.json (not both), a path with {xx}
 * where the language goes (any file name), or one pair file (Bi-ZsRE's
 * bizsre_test.json; its language from its first record) — every pair file
 * present, or only those of opts->langs; en always comes from the first file —
 * and merges them into one record per fact (index = array position, id
 * "mzsre-<index>"). The en side must be identical across files; the first
 * disagreement is reported with both files, index and field. A missing dir or
 * a requested language without its file fails. Returns 0 and fills *out (free
 * with facts_set_free), or -1 with err filled and *out zeroed. */
int facts_load_mzsre(const char *dir, const facts_opts *opts, facts_set *out,
                     lafn_err *err);

/* Reads a JSON Lines fact file (format in docs/DATA_FORMAT.md): one object
 * per line, blank lines and lines starting with '#' ignored; index = record
 * number (0-based, counting every non-blank, non-comment line). Malformed
 * records are reported as "file:line: ..." and handled by opts->on_error.
 * Returns 0 and fills *out, or -1 with err filled and *out zeroed. */
int facts_load_jsonl(const char *path, const facts_opts *opts, facts_set *out,
                     lafn_err *err);

/* Counts of what a paraphrase file did to a set. */
typedef struct {
    size_t n_lines;      /* paraphrase records read */
    size_t n_applied;    /* records whose paraphrases were added */
    size_t n_unmatched;  /* records naming a fact not in the set (e.g. subset) */
    size_t n_other_lang; /* records in a language the set does not hold */
    size_t n_skipped;    /* malformed records skipped under FACTS_ON_ERROR_SKIP */
} facts_para_stats;

/* Adds the paraphrases of a JSON Lines paraphrase file to set: each line
 * {"id": "...", "lang": "xx", "paraphrases": [...]} (or "index": N instead
 * of "id", matching the record index, as for MzsRE). Paraphrases are appended
 * after any already present. Malformed lines (bad JSON, unknown language,
 * missing/ill-typed keys, empty strings, a second line for the same fact and
 * language) are reported as "file:line: ..." per opts->on_error (opts may be
 * NULL = fatal). stats may be NULL. Returns 0, or -1 with err filled; on
 * failure the lines before the failing one stay applied. */
int facts_load_paraphrases(const char *path, facts_set *set,
                           const facts_opts *opts, facts_para_stats *stats,
                           lafn_err *err);

/* Appends a copy of text (non-empty) to side's paraphrases. Returns 0, or -1
 * with err when out of memory (side unchanged). */
int facts_side_add_paraphrase(facts_side *side, const char *text, lafn_err *err);

/* Parses a policy name: "fatal" or "skip" (the pipeline file's
 * data.on_bad_record). Returns 0, or -1 naming the value. */
int facts_on_error_parse(const char *s, facts_on_error *out, lafn_err *err);

/* Loads what a pipeline file's data section names: format "mzsre" (path = the
 * folder) or "jsonl" (path = the file), then, if paraphrases is non-NULL and
 * non-empty, that paraphrase file into the same set (para may be NULL).
 * Returns 0 and fills *out, or -1 with err filled and *out zeroed. */
int facts_load_data(const char *format, const char *path, const char *paraphrases,
                    const facts_opts *opts, facts_set *out, facts_para_stats *para,
                    lafn_err *err);

/* ---- the edit view: what probe / locate / edit receive ---- */

/* One language of one fact as the locating and editing stages see it:
 * prompts[0] is src, then the paraphrases; the target is alt. No field of
 * facts_eval is reachable from here. */
typedef struct {
    const char *lang;    /* canonical code (static table) */
    char *subject;       /* may be NULL */
    char *target;        /* alt */
    char **prompts;      /* (n_prompts) src + paraphrases, owned */
    size_t n_prompts;
} facts_prompt_set;

typedef struct {
    char *id;
    size_t index;
    size_t n_langs;
    facts_prompt_set *langs; /* (n_langs) */
} facts_edit_view;

/* Deep-copies the locating/editing part of rec into *out (free with
 * facts_edit_view_free); the copy shares no memory with rec. Returns 0, or -1
 * on allocation failure with *out zeroed. */
int facts_edit_view_build(const facts_record *rec, facts_edit_view *out,
                          lafn_err *err);

/* Frees what facts_edit_view_build allocated and zeroes *v. */
void facts_edit_view_free(facts_edit_view *v);

/* ---- checks ---- */

/* Normalises s for comparison into out (cap bytes incl. NUL): trims, collapses
 * white space, folds case (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic)
 * and drops trailing sentence punctuation (. ? ! 。 ？ ！). Returns 0, or -1
 * if out is too small. */
int facts_text_norm(const char *s, char *out, size_t cap);

/* Checks that no paraphrase of any side equals (after facts_text_norm) its
 * src, rephrase, loc or portability question, nor another paraphrase of the
 * same side. Returns 0, or -1 naming fact id, language, the paraphrase and the
 * field it collides with. */
int facts_check_paraphrases(const facts_set *set, lafn_err *err);

#endif
