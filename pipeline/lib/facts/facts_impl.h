/* facts_impl: helpers shared by the fact loaders (not part of the public API). */
#ifndef LAFN_FACTS_IMPL_H
#define LAFN_FACTS_IMPL_H

#include <cjson/cJSON.h>

#include "facts/facts.h"

/* strdup that returns NULL for NULL input (and on allocation failure). */
char *facts_strdup(const char *s);

/* Frees what side owns and zeroes it. */
void facts_side_free(facts_side *side);

/* Frees what rec owns and zeroes it. */
void facts_record_free(facts_record *rec);

/* Fills side (language lang) from a JSON object with keys subject, src, alt,
 * rephrase, loc, loc_ans, portability {question, answer} or {"New Question",
 * "New Answer"}, paraphrases [...]; src and alt required, the rest optional.
 * keypfx names the object in messages ("langs.zh"). Returns 0, or -1 with
 * why (cap bytes) saying which key was wrong, what was expected and found;
 * side is then freed. */
int facts_side_from_json(const cJSON *obj, const char *lang, const char *keypfx,
                         facts_side *side, char *why, size_t cap);

/* Name of the JSON type of item ("string", "number", "null", ...). */
const char *facts_json_type(const cJSON *item);

/* Whether opts selects the fact with this index. */
int facts_opts_wants(const facts_opts *opts, size_t index);

/* 1-based line number of byte offset off in buf. */
size_t facts_line_of(const char *buf, size_t off);

/* Writes one warning line to opts->log (stderr if unset). */
void facts_warn(const facts_opts *opts, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends a new empty record to set (growing its array); returns it or NULL. */
facts_record *facts_set_push(facts_set *set);

/* Adds lang to set->langs if absent; returns 0 or -1 when full. */
int facts_set_add_lang(facts_set *set, const char *lang);

/* Orders every record's sides as set->langs. */
void facts_set_order_sides(facts_set *set);

#endif
