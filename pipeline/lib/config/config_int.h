/* config_int: functions shared by the config_*.c files, not part of the public interface. */
#ifndef LAFN_CONFIG_INT_H
#define LAFN_CONFIG_INT_H

#include <libconfig.h>

#include "config/config.h"

/* Index into lafn_config.vals of the knob "section.key"; (size_t)-1 if unknown. */
size_t config_knob_index(const char *path);

/* The knob at a vals index (index < total number of knobs), with its section. */
const config_knob *config_knob_at(size_t index, const config_section **section);

/* Checks the relations between knobs of a fully resolved cfg (fact_range vs facts,
 * min_fraction <= threshold, ...). Returns 0, or -1 with err naming both keys. */
int config_check_relations(const lafn_config *cfg, lafn_err *err);

/* Checks setting s (type, range, choices, list length, duplicates) as knob k of
 * section sec and fills out; `where` ("FILE:LINE", "command line") is a new
 * string that out owns on success (the caller frees it on failure). Returns 0,
 * or -1 with err naming where, the key path, what was found and what is allowed. */
int config_value_take(const config_section *sec, const config_knob *k, const config_setting_t *s,
                      char *where, config_value *out, lafn_err *err);

/* What knob k accepts, in words ("a number in [0, 1]"), into buf. */
void config_knob_allowed(const config_knob *k, char *buf, size_t cap);

/* Levenshtein distance of two short strings (longer than 63 bytes: 1000). */
size_t config_edit_distance(const char *a, const char *b);

/* Frees what one value owns and zeroes it. */
void config_value_clear(config_value *v);

#endif
