/* facts_check: text normalisation for comparisons and the paraphrase leak check. */
#include "facts/facts_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

static int is_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x3000;
}

static int is_final_punct(uint32_t c) {
    return c == '.' || c == '?' || c == '!' || c == 0x3002 || c == 0xFF1F || c == 0xFF01;
}

int facts_text_norm(const char *s, char *out, size_t cap) {
    size_t n = strlen(s), o = 0, i = 0;
    size_t keep = 0; /* length before trailing spaces/punctuation */
    int pending_space = 0;
    while (i < n) {
        uint32_t c;
        size_t len = utf8_decode(s + i, n - i, &c);
        if (len == 0) { c = (uint8_t)s[i]; len = 1; }
        i += len;
        if (is_space(c)) { pending_space = o > 0; continue; }
        char enc[4];
        size_t el = len == 1 && c >= 0x80 ? (enc[0] = (char)c, 1) : utf8_encode(utf8_fold_case(c), enc);
        if (o + pending_space + el + 1 > cap) return -1;
        if (pending_space) out[o++] = ' ';
        pending_space = 0;
        memcpy(out + o, enc, el);
        o += el;
        if (!is_final_punct(c)) keep = o;
    }
    out[keep] = '\0';
    while (keep && out[keep - 1] == ' ') out[--keep] = '\0';
    return 0;
}

/* Whether a and b are equal after normalisation (b may be NULL = no). */
static int same_text(const char *a, const char *b, char *na, char *nb, size_t cap) {
    if (!b) return 0;
    if (facts_text_norm(a, na, cap) || facts_text_norm(b, nb, cap)) return !strcmp(a, b);
    return !strcmp(na, nb);
}

/* Returns the name of the field paraphrase k of side collides with, or NULL. */
static const char *collision(const facts_side *side, size_t k, char *na, char *nb, size_t cap) {
    const char *p = side->paraphrases[k];
    if (same_text(p, side->src, na, nb, cap)) return "src";
    if (same_text(p, side->eval.rephrase, na, nb, cap)) return "rephrase";
    if (same_text(p, side->eval.loc, na, nb, cap)) return "loc";
    if (same_text(p, side->eval.port_q, na, nb, cap)) return "portability question";
    for (size_t j = 0; j < k; j++)
        if (same_text(p, side->paraphrases[j], na, nb, cap)) return "an earlier paraphrase";
    return NULL;
}

int facts_check_paraphrases(const facts_set *set, lafn_err *err) {
    const size_t cap = 4096;
    char *na = malloc(cap), *nb = malloc(cap);
    int rc = 0;
    if (!na || !nb) { rc = lafn_err_set(err, "facts_check_paraphrases: out of memory"); goto done; }
    for (size_t f = 0; f < set->n_facts && !rc; f++) {
        const facts_record *r = &set->facts[f];
        for (size_t s = 0; s < r->n_sides && !rc; s++)
            for (size_t k = 0; k < r->sides[s].n_paraphrases && !rc; k++) {
                const char *what = collision(&r->sides[s], k, na, nb, cap);
                if (what)
                    rc = lafn_err_set(err, "fact '%s' language %s: paraphrase %zu \"%s\" "
                                      "equals its %s", r->id, r->sides[s].lang, k,
                                      r->sides[s].paraphrases[k], what);
            }
    }
done:
    free(na);
    free(nb);
    return rc;
}
