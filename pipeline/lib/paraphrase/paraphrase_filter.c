/* paraphrase_filter: judges the generated candidates of one fact and language — the filters in order, near-duplicates among the kept, the count. */
#include "paraphrase/paraphrase_filter.h"

#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"

const char *const paraphrase_verdict_names[PARAPHRASE_N_VERDICTS] = {
    "kept", "unfinished", "malformed", "same_as_src", "ending", "script", "length", "leak", "near_duplicate", "surplus",
};

/* 1 - edit distance / longer length of two keys' code points (1 for two empty keys); row (b->n_key + 1) scratch. */
static double similarity(const paraphrase_text *a, const paraphrase_text *b, size_t *row) {
    size_t n = a->n_key, m = b->n_key;
    if (n == 0 && m == 0) return 1.0;
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j], best = diag + (a->cps[i - 1] != b->cps[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return 1.0 - (double)row[m] / (double)(n > m ? n : m);
}

/* 1 if the answer's words appear in t: as whole words, or anywhere for a language written without spaces. */
static int contains_answer(const paraphrase_text *t, const paraphrase_text *answer, int no_spaces) {
    if (answer->n_key == 0) return 0;
    if (no_spaces) return strstr(t->key, answer->key) != NULL;
    size_t nt = strlen(t->spaced), na = strlen(answer->spaced);
    for (const char *hit = strstr(t->spaced, answer->spaced); hit; hit = strstr(hit + 1, answer->spaced)) {
        size_t at = (size_t)(hit - t->spaced);
        if ((at == 0 || hit[-1] == ' ') && (at + na == nt || hit[na] == ' ')) return 1;
    }
    return 0;
}

static double share(const paraphrase_text *t) {
    return t->n_letters ? (double)t->n_in_script / (double)t->n_letters : 0.0;
}

/* What a fact contributes to every candidate's judgement. */
typedef struct {
    const paraphrase_filter_opts *o;
    paraphrase_text src, alt;
    paraphrase_script script;
    int no_spaces, src_has_alt;
    double min_share;
} fact_ref;

/* The first individual filter candidate c fails, or PARAPHRASE_KEPT. */
static paraphrase_verdict judge_alone(const fact_ref *f, const paraphrase_text *c) {
    double len = (double)c->n_key, src_len = (double)f->src.n_key;
    if (!c->valid || c->n_key == 0) return PARAPHRASE_MALFORMED;
    if (!strcmp(c->key, f->src.key)) return PARAPHRASE_SAME_AS_SRC;
    if (c->question != f->src.question) return PARAPHRASE_ENDING;
    if (share(c) < f->min_share) return PARAPHRASE_SCRIPT;
    if (len < f->o->min_length_ratio * src_len || len > f->o->max_length_ratio * src_len) return PARAPHRASE_LENGTH;
    if (!f->src_has_alt && contains_answer(c, &f->alt, f->no_spaces)) return PARAPHRASE_LEAK;
    return PARAPHRASE_KEPT;
}

/* Judges the candidates against the fact (texts scanned into texts[]); returns the number kept or -1. */
static int judge_all(const fact_ref *f, char *const *cands, const uint8_t *finished, size_t n,
                     paraphrase_text *texts, paraphrase_verdict *verdicts, lafn_err *err) {
    size_t n_kept = 0, *row = NULL, *kept = malloc((n + 1) * sizeof *kept);
    int rc = kept ? 0 : lafn_err_set(err, "paraphrase: out of memory for %zu candidates", n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!finished[i]) {
            verdicts[i] = PARAPHRASE_UNFINISHED;
            continue;
        }
        if ((rc = paraphrase_text_scan(cands[i], f->script, &texts[i], err)) != 0) break;
        paraphrase_verdict v = judge_alone(f, &texts[i]);
        if (v == PARAPHRASE_KEPT) {
            size_t *grown = realloc(row, (texts[i].n_key + 1) * sizeof *row);
            if (!grown) {
                rc = lafn_err_set(err, "paraphrase: out of memory comparing candidates");
                break;
            }
            row = grown;
            if (similarity(&f->src, &texts[i], row) >= f->o->max_similarity) v = PARAPHRASE_NEAR_DUPLICATE;
            for (size_t k = 0; k < n_kept; k++)
                if (similarity(&texts[kept[k]], &texts[i], row) >= f->o->max_similarity) v = PARAPHRASE_NEAR_DUPLICATE;
        }
        if (v == PARAPHRASE_KEPT && n_kept == f->o->count) v = PARAPHRASE_SURPLUS;
        if (v == PARAPHRASE_KEPT) kept[n_kept++] = i;
        verdicts[i] = v;
    }
    free(row);
    free(kept);
    return rc == 0 ? (int)n_kept : -1;
}

int paraphrase_filter(const char *lang, const char *src, const char *alt, char *const *candidates,
                      const uint8_t *finished, size_t n, const paraphrase_filter_opts *o,
                      paraphrase_verdict *verdicts, lafn_err *err) {
    fact_ref f = {.o = o};
    if (paraphrase_lang_script(lang, &f.script, err) != 0) return -1;
    paraphrase_text *texts = calloc(n + 1, sizeof *texts);
    if (!texts) return lafn_err_set(err, "paraphrase: out of memory for %zu candidates", n);
    int rc = -1;
    if (paraphrase_text_scan(src, f.script, &f.src, err) == 0 && paraphrase_text_scan(alt, f.script, &f.alt, err) == 0) {
        f.no_spaces = facts_lang_find(lang)->sep[0] == '\0';
        f.src_has_alt = contains_answer(&f.src, &f.alt, f.no_spaces);
        f.min_share = o->script_share * share(&f.src);
        rc = judge_all(&f, candidates, finished, n, texts, verdicts, err);
    }
    for (size_t i = 0; i < n; i++) paraphrase_text_free(&texts[i]);
    free(texts);
    paraphrase_text_free(&f.src);
    paraphrase_text_free(&f.alt);
    return rc;
}
