/* facts_lang: the language table (MzsRE codes, ISO aliases, prompt/answer separators). */
#include "facts/facts.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The 12 MzsRE languages first (their codes as in the data), then others
 * users' files may carry. sep is empty for scripts written without spaces. */
static const facts_lang_info facts_langs[] = {
    {"en", "en", "English", " "},  {"zh", "zh", "Chinese", ""},
    {"cz", "cs", "Czech", " "},    {"de", "de", "German", " "},
    {"du", "nl", "Dutch", " "},    {"es", "es", "Spanish", " "},
    {"fr", "fr", "French", " "},   {"pt", "pt", "Portuguese", " "},
    {"ru", "ru", "Russian", " "},  {"th", "th", "Thai", ""},
    {"tr", "tr", "Turkish", " "},  {"vi", "vi", "Vietnamese", " "},
    {"ja", "ja", "Japanese", ""},  {"ko", "ko", "Korean", " "},
    {"it", "it", "Italian", " "},  {"pl", "pl", "Polish", " "},
    {"uk", "uk", "Ukrainian", " "}, {"ar", "ar", "Arabic", " "},
    {"hi", "hi", "Hindi", " "},    {"id", "id", "Indonesian", " "},
};

const facts_lang_info *facts_lang_find(const char *s) {
    if (!s) return NULL;
    for (size_t i = 0; i < sizeof facts_langs / sizeof facts_langs[0]; i++)
        if (!strcasecmp(s, facts_langs[i].code) || !strcasecmp(s, facts_langs[i].iso))
            return &facts_langs[i];
    return NULL;
}

int facts_lang_parse_list(const char *list, const char **out, size_t max,
                          size_t *n, lafn_err *err) {
    *n = 0;
    if (!list || !*list || !strcasecmp(list, "all")) return 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        char code[16];
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        size_t tl = len;
        while (tl && (p[tl - 1] == ' ' || p[tl - 1] == '\t')) tl--;
        if (tl == 0 || tl >= sizeof code)
            return lafn_err_set(err, "language list '%s': expected comma-separated "
                                "language codes, found an empty or overlong item", list);
        memcpy(code, p, tl);
        code[tl] = '\0';
        const facts_lang_info *li = facts_lang_find(code);
        if (!li)
            return lafn_err_set(err, "language list '%s': unknown language code '%s'",
                                list, code);
        for (size_t k = 0; k < *n; k++)
            if (out[k] == li->code)
                return lafn_err_set(err, "language list '%s': '%s' names %s, which is "
                                    "already listed", list, code, li->code);
        if (*n >= max)
            return lafn_err_set(err, "language list '%s': more than %zu languages", list, max);
        out[(*n)++] = li->code;
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

int facts_opts_langs(const facts_opts *opts, const char **out, size_t max, size_t *n,
                     lafn_err *err) {
    *n = 0;
    if (!opts) return 0;
    if (opts->langs || !opts->lang_codes) return facts_lang_parse_list(opts->langs, out, max, n, err);
    for (size_t i = 0; i < opts->n_lang_codes; i++) {
        const facts_lang_info *li = facts_lang_find(opts->lang_codes[i]);
        if (!li)
            return lafn_err_set(err, "language list: unknown language code '%s'",
                                opts->lang_codes[i] ? opts->lang_codes[i] : "(null)");
        for (size_t k = 0; k < *n; k++)
            if (out[k] == li->code)
                return lafn_err_set(err, "language list: '%s' names %s, which is already "
                                    "listed", opts->lang_codes[i], li->code);
        if (*n >= max)
            return lafn_err_set(err, "language list: more than %zu languages", max);
        out[(*n)++] = li->code;
    }
    return 0;
}
