/* facts_json: one language side of a fact from a JSON object (shared by the MzsRE and JSON Lines loaders). */
#include "facts/facts_impl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *facts_json_type(const cJSON *item) {
    if (!item) return "nothing";
    if (cJSON_IsString(item)) return "string";
    if (cJSON_IsNumber(item)) return "number";
    if (cJSON_IsBool(item)) return "boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsArray(item)) return "array";
    if (cJSON_IsObject(item)) return "object";
    return "invalid";
}

static int why_set(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why_set(char *why, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies string member key of obj into *dst. Absent (or null when optional)
 * leaves *dst NULL. Returns 0, or -1 with why filled. */
static int get_str(const cJSON *obj, const char *key, const char *pfx, int required,
                   char **dst, char *why, size_t cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || (cJSON_IsNull(it) && !required)) {
        if (required)
            return why_set(why, cap, "key '%s.%s': expected a non-empty string, found nothing",
                           pfx, key);
        return 0;
    }
    if (!cJSON_IsString(it) || !it->valuestring)
        return why_set(why, cap, "key '%s.%s': expected a string, found %s", pfx, key,
                       facts_json_type(it));
    if (required && !it->valuestring[0])
        return why_set(why, cap, "key '%s.%s': expected a non-empty string, found \"\"",
                       pfx, key);
    if (!(*dst = facts_strdup(it->valuestring)))
        return why_set(why, cap, "key '%s.%s': out of memory", pfx, key);
    return 0;
}

/* Reads the portability object: {question, answer} or MzsRE's
 * {"New Question", "New Answer"}; both or neither. */
static int get_portability(const cJSON *obj, const char *pfx, facts_eval *ev,
                           char *why, size_t cap) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "portability");
    if (!p || cJSON_IsNull(p)) return 0;
    if (!cJSON_IsObject(p))
        return why_set(why, cap, "key '%s.portability': expected an object, found %s",
                       pfx, facts_json_type(p));
    char sub[128];
    snprintf(sub, sizeof sub, "%s.portability", pfx);
    const int mz = cJSON_GetObjectItemCaseSensitive(p, "New Question") != NULL;
    if (get_str(p, mz ? "New Question" : "question", sub, 1, &ev->port_q, why, cap)) return -1;
    if (get_str(p, mz ? "New Answer" : "answer", sub, 1, &ev->port_a, why, cap)) return -1;
    return 0;
}

static int get_paraphrases(const cJSON *obj, const char *pfx, facts_side *side,
                           char *why, size_t cap) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "paraphrases");
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a))
        return why_set(why, cap, "key '%s.paraphrases': expected an array of strings, found %s",
                       pfx, facts_json_type(a));
    size_t n = (size_t)cJSON_GetArraySize(a);
    if (n == 0) return 0;
    if (!(side->paraphrases = calloc(n, sizeof *side->paraphrases)))
        return why_set(why, cap, "key '%s.paraphrases': out of memory", pfx);
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsString(it) || !it->valuestring || !it->valuestring[0])
            return why_set(why, cap, "key '%s.paraphrases[%zu]': expected a non-empty string, "
                           "found %s", pfx, side->n_paraphrases,
                           cJSON_IsString(it) ? "\"\"" : facts_json_type(it));
        if (!(side->paraphrases[side->n_paraphrases] = facts_strdup(it->valuestring)))
            return why_set(why, cap, "key '%s.paraphrases': out of memory", pfx);
        side->n_paraphrases++;
    }
    return 0;
}

static const char *const side_keys[] = {
    "subject", "src", "alt", "rephrase", "loc", "loc_ans", "portability", "paraphrases",
};

int facts_side_from_json(const cJSON *obj, const char *lang, const char *keypfx,
                         facts_side *side, char *why, size_t cap) {
    memset(side, 0, sizeof *side);
    side->lang = lang;
    if (!cJSON_IsObject(obj))
        return why_set(why, cap, "key '%s': expected an object, found %s", keypfx,
                       facts_json_type(obj));
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        size_t k = 0, nk = sizeof side_keys / sizeof side_keys[0];
        while (k < nk && strcmp(it->string, side_keys[k])) k++;
        if (k == nk)
            return why_set(why, cap, "key '%s.%s': unknown key (expected subject, src, alt, "
                           "rephrase, loc, loc_ans, portability, paraphrases)", keypfx, it->string);
    }
    if (get_str(obj, "subject", keypfx, 0, &side->subject, why, cap) ||
        get_str(obj, "src", keypfx, 1, &side->src, why, cap) ||
        get_str(obj, "alt", keypfx, 1, &side->alt, why, cap) ||
        get_str(obj, "rephrase", keypfx, 0, &side->eval.rephrase, why, cap) ||
        get_str(obj, "loc", keypfx, 0, &side->eval.loc, why, cap) ||
        get_str(obj, "loc_ans", keypfx, 0, &side->eval.loc_ans, why, cap) ||
        get_portability(obj, keypfx, &side->eval, why, cap) ||
        get_paraphrases(obj, keypfx, side, why, cap))
        goto fail;
    if (!side->eval.loc != !side->eval.loc_ans) {
        why_set(why, cap, "key '%s.%s': expected loc and loc_ans together, found only %s",
                keypfx, side->eval.loc ? "loc_ans" : "loc", side->eval.loc ? "loc" : "loc_ans");
        goto fail;
    }
    return 0;
fail:
    facts_side_free(side);
    return -1;
}
