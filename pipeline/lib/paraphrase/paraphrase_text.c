/* paraphrase_text: a text's word characters, case-folded key and script counts, as the paraphrase filters compare them. */
#include "paraphrase/paraphrase_filter.h"

#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "facts/facts.h"

/* What one code point is to the filters. */
typedef enum { CP_SEPARATOR, CP_DIGIT, CP_MARK, CP_LETTER } cp_kind;

/* Letter scripts; LETTER_OTHER is a letter of no script the filters know (Greek, ...). */
typedef enum {
    LETTER_LATIN, LETTER_HAN, LETTER_KANA, LETTER_HANGUL, LETTER_THAI, LETTER_CYRILLIC, LETTER_ARABIC,
    LETTER_DEVANAGARI, LETTER_OTHER
} letter_script;

static int in(uint32_t c, uint32_t lo, uint32_t hi) { return c >= lo && c <= hi; }

/* White space, punctuation and symbols outside ASCII. */
static int is_separator(uint32_t c) {
    return (in(c, 0x80, 0xBF) && c != 0xAA && c != 0xB5 && c != 0xBA) || c == 0xD7 || c == 0xF7 ||
           in(c, 0x2000, 0x2BFF) || in(c, 0x2E00, 0x2E7F) || (in(c, 0x3000, 0x303F) && !in(c, 0x3005, 0x3007)) ||
           c == 0x30FB || in(c, 0xFE10, 0xFE1F) || in(c, 0xFE30, 0xFE6F) || in(c, 0xFF00, 0xFF0F) ||
           in(c, 0xFF1A, 0xFF20) || in(c, 0xFF3B, 0xFF40) || in(c, 0xFF5B, 0xFF65) || in(c, 0xFFF0, 0xFFFF) ||
           in(c, 0x1F000, 0x1FAFF) || c == 0x0E2F || c == 0x0E3F || c == 0x0E4F || in(c, 0x0E5A, 0x0E5B) ||
           c == 0x060C || c == 0x061B || c == 0x061F || in(c, 0x066A, 0x066D) || c == 0x06D4 || c == 0x0964 ||
           c == 0x0965 || c == 0x037E || c == 0x0387;
}

static int is_digit(uint32_t c) {
    return in(c, '0', '9') || in(c, 0xFF10, 0xFF19) || in(c, 0x0E50, 0x0E59) || in(c, 0x0660, 0x0669) ||
           in(c, 0x06F0, 0x06F9) || in(c, 0x0966, 0x096F);
}

/* The script of letter c (any code point that is no separator, digit or mark). */
static letter_script letter_of(uint32_t c) {
    if (in(c, 'A', 'Z') || in(c, 'a', 'z') || in(c, 0xC0, 0x24F) || in(c, 0x1E00, 0x1EFF) || in(c, 0xFF21, 0xFF3A) ||
        in(c, 0xFF41, 0xFF5A) || c == 0xAA || c == 0xBA)
        return LETTER_LATIN;
    if (in(c, 0x4E00, 0x9FFF) || in(c, 0x3400, 0x4DBF) || in(c, 0xF900, 0xFAFF) || in(c, 0x20000, 0x2FFFF) ||
        in(c, 0x3005, 0x3007))
        return LETTER_HAN;
    if (in(c, 0x3040, 0x30FF) || in(c, 0x31F0, 0x31FF) || in(c, 0xFF66, 0xFF9F)) return LETTER_KANA;
    if (in(c, 0xAC00, 0xD7AF) || in(c, 0x1100, 0x11FF) || in(c, 0x3130, 0x318F)) return LETTER_HANGUL;
    if (in(c, 0x0E01, 0x0E4E)) return LETTER_THAI;
    if (in(c, 0x0400, 0x052F)) return LETTER_CYRILLIC;
    if (in(c, 0x0600, 0x06FF)) return LETTER_ARABIC;
    if (in(c, 0x0900, 0x097F)) return LETTER_DEVANAGARI;
    return LETTER_OTHER;
}

static cp_kind kind_of(uint32_t c) {
    if (c < 0x80) return (in(c, 'A', 'Z') || in(c, 'a', 'z')) ? CP_LETTER : is_digit(c) ? CP_DIGIT : CP_SEPARATOR;
    if (is_separator(c)) return CP_SEPARATOR;
    if (is_digit(c)) return CP_DIGIT;
    if (in(c, 0x0300, 0x036F)) return CP_MARK;
    return CP_LETTER;
}

/* 1 if letter script s counts for the language script want. */
static int letter_counts(letter_script s, paraphrase_script want) {
    switch (want) {
    case PARAPHRASE_SCRIPT_LATIN: return s == LETTER_LATIN;
    case PARAPHRASE_SCRIPT_HAN: return s == LETTER_HAN;
    case PARAPHRASE_SCRIPT_JAPANESE: return s == LETTER_HAN || s == LETTER_KANA;
    case PARAPHRASE_SCRIPT_HANGUL: return s == LETTER_HANGUL;
    case PARAPHRASE_SCRIPT_THAI: return s == LETTER_THAI;
    case PARAPHRASE_SCRIPT_CYRILLIC: return s == LETTER_CYRILLIC;
    case PARAPHRASE_SCRIPT_ARABIC: return s == LETTER_ARABIC;
    case PARAPHRASE_SCRIPT_DEVANAGARI: return s == LETTER_DEVANAGARI;
    }
    return 0;
}

int paraphrase_lang_script(const char *lang, paraphrase_script *out, lafn_err *err) {
    static const struct { const char *code; paraphrase_script s; } table[] = {
        {"zh", PARAPHRASE_SCRIPT_HAN},      {"ja", PARAPHRASE_SCRIPT_JAPANESE}, {"ko", PARAPHRASE_SCRIPT_HANGUL},
        {"th", PARAPHRASE_SCRIPT_THAI},     {"ru", PARAPHRASE_SCRIPT_CYRILLIC}, {"uk", PARAPHRASE_SCRIPT_CYRILLIC},
        {"ar", PARAPHRASE_SCRIPT_ARABIC},   {"hi", PARAPHRASE_SCRIPT_DEVANAGARI},
    };
    const facts_lang_info *info = facts_lang_find(lang);
    if (!info) return lafn_err_set(err, "unknown language '%s' (no script known for it)", lang ? lang : "(null)");
    *out = PARAPHRASE_SCRIPT_LATIN;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(info->code, table[i].code)) *out = table[i].s;
    return 0;
}

void paraphrase_text_free(paraphrase_text *t) {
    free(t->key);
    free(t->spaced);
    free(t->cps);
    memset(t, 0, sizeof *t);
}

/* The code point before the white space at the end of s[0..n), or 0. */
static uint32_t last_visible(const char *s, size_t n) {
    uint32_t last = 0, c;
    for (size_t i = 0, len; i < n; i += len) {
        len = utf8_decode(s + i, n - i, &c);
        if (len == 0) return 0;
        if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x3000)) last = c;
    }
    return last;
}

/* Appends the word character c (folded) to the key, the spaced key and the code points. */
static void put_word(paraphrase_text *t, uint32_t c, size_t *nk, size_t *ns, int *gap) {
    char enc[4];
    size_t el = utf8_encode(c, enc);
    if (*gap && *ns > 0) t->spaced[(*ns)++] = ' ';
    *gap = 0;
    memcpy(t->key + *nk, enc, el);
    memcpy(t->spaced + *ns, enc, el);
    *nk += el, *ns += el;
    t->cps[t->n_key++] = c;
}

int paraphrase_text_scan(const char *text, paraphrase_script script, paraphrase_text *out, lafn_err *err) {
    memset(out, 0, sizeof *out);
    char *nfc = NULL;
    size_t n = 0;
    if (utf8_nfc(text, strlen(text), &nfc, &n) != 0) return lafn_err_set(err, "paraphrase: out of memory");
    out->key = malloc(4 * n + 1);
    out->spaced = malloc(5 * n + 1);
    out->cps = malloc((n + 1) * sizeof *out->cps);
    if (!out->key || !out->spaced || !out->cps) {
        free(nfc);
        paraphrase_text_free(out);
        return lafn_err_set(err, "paraphrase: out of memory for a text of %zu bytes", n);
    }
    size_t nk = 0, ns = 0;
    int gap = 0;
    out->valid = 1;
    for (size_t i = 0, len; i < n && out->valid; i += len) {
        uint32_t c;
        if ((len = utf8_decode(nfc + i, n - i, &c)) == 0 || c < 0x20 || c == 0x7F || in(c, 0x80, 0x9F)) {
            out->valid = 0;
            break;
        }
        cp_kind k = kind_of(c);
        if (k == CP_SEPARATOR) {
            gap = 1;
            continue;
        }
        if (k == CP_LETTER) {
            out->n_letters++;
            out->n_in_script += (size_t)letter_counts(letter_of(c), script);
        }
        put_word(out, utf8_fold_case(c), &nk, &ns, &gap);
    }
    uint32_t last = out->valid ? last_visible(nfc, n) : 0;
    out->question = last == '?' || last == 0xFF1F || last == 0x061F;
    free(nfc);
    if (!out->valid) nk = ns = out->n_key = out->n_letters = out->n_in_script = 0;
    out->key[nk] = '\0';
    out->spaced[ns] = '\0';
    return 0;
}
