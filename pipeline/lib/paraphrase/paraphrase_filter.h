/* paraphrase_filter: what makes a generated candidate a paraphrase of src — normalised text, scripts, and the filters in the order they apply. */
#ifndef LAFN_PARAPHRASE_FILTER_H
#define LAFN_PARAPHRASE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"

/* The writing system a language's letters belong to. */
typedef enum {
    PARAPHRASE_SCRIPT_LATIN,
    PARAPHRASE_SCRIPT_HAN,        /* zh */
    PARAPHRASE_SCRIPT_JAPANESE,   /* ja: Han, Hiragana, Katakana */
    PARAPHRASE_SCRIPT_HANGUL,     /* ko */
    PARAPHRASE_SCRIPT_THAI,       /* th */
    PARAPHRASE_SCRIPT_CYRILLIC,   /* ru, uk */
    PARAPHRASE_SCRIPT_ARABIC,     /* ar */
    PARAPHRASE_SCRIPT_DEVANAGARI, /* hi */
} paraphrase_script;

/* The script of language code lang (a code or alias of facts_lang_find).
 * Returns 0 and *out, or -1 with err naming an unknown language. */
int paraphrase_lang_script(const char *lang, paraphrase_script *out, lafn_err *err);

/* A text as the filters see it, after NFC: its word characters (letters,
 * digits and combining marks) case-folded, everything else (white space,
 * punctuation, symbols) a separator. */
typedef struct {
    char *key;          /* the word characters only: two texts are "the same" iff their keys are */
    char *spaced;       /* the word characters with one space for each run of separators, trimmed */
    uint32_t *cps;      /* (n_key) the key's code points */
    size_t n_key;       /* word characters: a text's length */
    size_t n_letters;   /* letters of any script */
    size_t n_in_script; /* letters of the script asked for */
    int question;       /* the text ends (white space aside) with ? ？ or ؟ */
    int valid;          /* valid UTF-8 without control characters (tab and newline included) */
} paraphrase_text;

/* Analyses text, counting letters of script. Returns 0 and *out (free with
 * paraphrase_text_free; out->valid 0 for invalid UTF-8 or a control
 * character, the other fields then empty), or -1 with err when out of memory. */
int paraphrase_text_scan(const char *text, paraphrase_script script, paraphrase_text *out, lafn_err *err);
void paraphrase_text_free(paraphrase_text *t);

/* What the filters made of one candidate; the first filter that fails names it. */
typedef enum {
    PARAPHRASE_KEPT,           /* passed every filter and fewer than count were kept before it */
    PARAPHRASE_UNFINISHED,     /* no newline or EOS within max_new_tokens */
    PARAPHRASE_MALFORMED,      /* no word character, not valid UTF-8, or a control character */
    PARAPHRASE_SAME_AS_SRC,    /* the same key as src (differs only in case, spacing, punctuation) */
    PARAPHRASE_ENDING,         /* ends with a question mark where src does not, or the other way round */
    PARAPHRASE_SCRIPT,         /* a share of its letters in the language's script below script_share × src's */
    PARAPHRASE_LENGTH,         /* length outside [min_length_ratio, max_length_ratio] × src's */
    PARAPHRASE_LEAK,           /* contains the new answer alt (and src does not) */
    PARAPHRASE_NEAR_DUPLICATE, /* at least max_similarity like src or a paraphrase kept before it */
    PARAPHRASE_SURPLUS,        /* passed, but count paraphrases were kept already */
    PARAPHRASE_N_VERDICTS
} paraphrase_verdict;

/* "kept", "unfinished", "malformed", "same_as_src", "ending", "script",
 * "length", "leak", "near_duplicate", "surplus" (names in paraphrase.h5). */
extern const char *const paraphrase_verdict_names[PARAPHRASE_N_VERDICTS];

/* The filter knobs (paraphrase.count and the thresholds). */
typedef struct {
    size_t count;            /* kept at most */
    double max_similarity;   /* near-duplicate at or above this */
    double script_share;     /* share of the letters in the script at least this times src's share */
    double min_length_ratio, max_length_ratio;
} paraphrase_filter_opts;

/* Judges the n candidates of fact (src, alt) in language lang in order:
 * verdicts[i] gets candidate i's verdict; finished[i] is 0 if the candidate
 * was cut by max_new_tokens. A candidate is compared for near-duplicates with
 * src and the candidates kept before it. The similarity of two keys is 1 - (edit
 * distance over code points) / (the longer one's length). alt leaks when its
 * spaced key appears in the candidate's as whole words (for languages written
 * without spaces — zh, ja, th — anywhere in the key). Returns the number
 * kept, or -1 with err (an unknown language, out of memory). */
int paraphrase_filter(const char *lang, const char *src, const char *alt, char *const *candidates,
                      const uint8_t *finished, size_t n, const paraphrase_filter_opts *o,
                      paraphrase_verdict *verdicts, lafn_err *err);

#endif
