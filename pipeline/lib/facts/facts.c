/* facts: fact records — ownership, look-ups, the edit view and shared loader helpers. */
#include "facts/facts_impl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

char *facts_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void facts_side_free(facts_side *side) {
    free(side->subject);
    free(side->src);
    free(side->alt);
    for (size_t i = 0; i < side->n_paraphrases; i++) free(side->paraphrases[i]);
    free(side->paraphrases);
    free(side->eval.rephrase);
    free(side->eval.loc);
    free(side->eval.loc_ans);
    free(side->eval.port_q);
    free(side->eval.port_a);
    memset(side, 0, sizeof *side);
}

void facts_record_free(facts_record *rec) {
    for (size_t i = 0; i < rec->n_sides; i++) facts_side_free(&rec->sides[i]);
    free(rec->sides);
    free(rec->id);
    memset(rec, 0, sizeof *rec);
}

void facts_set_free(facts_set *set) {
    if (!set) return;
    for (size_t i = 0; i < set->n_facts; i++) facts_record_free(&set->facts[i]);
    free(set->facts);
    memset(set, 0, sizeof *set);
}

const facts_side *facts_record_side(const facts_record *rec, const char *lang) {
    const facts_lang_info *li = facts_lang_find(lang);
    if (!rec || !li) return NULL;
    for (size_t i = 0; i < rec->n_sides; i++)
        if (rec->sides[i].lang == li->code) return &rec->sides[i];
    return NULL;
}

const facts_eval *facts_record_eval(const facts_record *rec, const char *lang) {
    const facts_side *s = facts_record_side(rec, lang);
    return s ? &s->eval : NULL;
}

const facts_record *facts_set_find(const facts_set *set, const char *id) {
    for (size_t i = 0; id && i < set->n_facts; i++)
        if (!strcmp(set->facts[i].id, id)) return &set->facts[i];
    return NULL;
}

facts_record *facts_set_push(facts_set *set) {
    size_t n = set->n_facts;
    if ((n & (n - 1)) == 0) { /* grow at powers of two */
        size_t cap = n ? 2 * n : 1;
        facts_record *f = realloc(set->facts, cap * sizeof *f);
        if (!f) return NULL;
        set->facts = f;
    }
    memset(&set->facts[n], 0, sizeof set->facts[n]);
    set->n_facts = n + 1;
    return &set->facts[n];
}

int facts_set_add_lang(facts_set *set, const char *lang) {
    for (size_t i = 0; i < set->n_langs; i++)
        if (set->langs[i] == lang) return 0;
    if (set->n_langs >= FACTS_MAX_LANGS) return -1;
    set->langs[set->n_langs++] = lang;
    return 0;
}

void facts_set_order_sides(facts_set *set) {
    for (size_t f = 0; f < set->n_facts; f++) {
        facts_record *r = &set->facts[f];
        size_t pos = 0;
        for (size_t l = 0; l < set->n_langs; l++)
            for (size_t s = pos; s < r->n_sides; s++)
                if (r->sides[s].lang == set->langs[l]) {
                    facts_side t = r->sides[pos];
                    r->sides[pos++] = r->sides[s];
                    r->sides[s] = t;
                    break;
                }
    }
}

int facts_opts_wants(const facts_opts *opts, size_t index) {
    if (!opts) return 1;
    if (opts->indices) {
        for (size_t i = 0; i < opts->n_indices; i++)
            if (opts->indices[i] == index) return 1;
        return 0;
    }
    if (index < opts->first) return 0;
    return opts->count == 0 || index - opts->first < opts->count;
}

size_t facts_line_of(const char *buf, size_t off) {
    size_t line = 1;
    for (size_t i = 0; i < off && buf[i]; i++)
        if (buf[i] == '\n') line++;
    return line;
}

void facts_warn(const facts_opts *opts, const char *fmt, ...) {
    FILE *log = opts && opts->log ? opts->log : stderr;
    va_list ap;
    va_start(ap, fmt);
    fputs("warning: ", log);
    vfprintf(log, fmt, ap);
    fputc('\n', log);
    va_end(ap);
}

/* Copies the prompt set of side into *p; returns 0 or -1 (p partly filled). */
static int view_side(const facts_side *side, facts_prompt_set *p) {
    p->lang = side->lang;
    if (side->subject && !(p->subject = facts_strdup(side->subject))) return -1;
    if (!(p->target = facts_strdup(side->alt))) return -1;
    p->prompts = calloc(1 + side->n_paraphrases, sizeof *p->prompts);
    if (!p->prompts) return -1;
    if (!(p->prompts[p->n_prompts++] = facts_strdup(side->src))) return -1;
    for (size_t i = 0; i < side->n_paraphrases; i++)
        if (!(p->prompts[p->n_prompts++] = facts_strdup(side->paraphrases[i]))) return -1;
    return 0;
}

int facts_edit_view_build(const facts_record *rec, facts_edit_view *out,
                          lafn_err *err) {
    memset(out, 0, sizeof *out);
    out->index = rec->index;
    if (!(out->id = facts_strdup(rec->id))) goto fail;
    if (rec->n_sides && !(out->langs = calloc(rec->n_sides, sizeof *out->langs))) goto fail;
    for (size_t i = 0; i < rec->n_sides; i++) {
        out->n_langs++;
        if (view_side(&rec->sides[i], &out->langs[i])) goto fail;
    }
    return 0;
fail:
    facts_edit_view_free(out);
    return lafn_err_set(err, "fact '%s': out of memory building the edit view",
                        rec->id ? rec->id : "?");
}

void facts_edit_view_free(facts_edit_view *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n_langs; i++) {
        facts_prompt_set *p = &v->langs[i];
        free(p->subject);
        free(p->target);
        for (size_t k = 0; p->prompts && k < p->n_prompts; k++) free(p->prompts[k]);
        free(p->prompts);
    }
    free(v->langs);
    free(v->id);
    memset(v, 0, sizeof *v);
}

int facts_on_error_parse(const char *s, facts_on_error *out, lafn_err *err) {
    if (s && !strcmp(s, "fatal")) { *out = FACTS_ON_ERROR_FATAL; return 0; }
    if (s && !strcmp(s, "skip")) { *out = FACTS_ON_ERROR_SKIP; return 0; }
    return lafn_err_set(err, "bad-record policy: expected \"fatal\" or \"skip\", found \"%s\"",
                        s ? s : "(null)");
}

int facts_load_data(const char *format, const char *path, const char *paraphrases,
                    const facts_opts *opts, facts_set *out, facts_para_stats *para,
                    lafn_err *err) {
    int rc;
    memset(out, 0, sizeof *out);
    if (para) memset(para, 0, sizeof *para);
    if (format && !strcmp(format, "mzsre"))
        rc = facts_load_mzsre(path, opts, out, err);
    else if (format && !strcmp(format, "jsonl"))
        rc = facts_load_jsonl(path, opts, out, err);
    else
        return lafn_err_set(err, "data format: expected \"mzsre\" or \"jsonl\", found \"%s\"",
                            format ? format : "(null)");
    if (rc || !paraphrases || !*paraphrases) return rc;
    if (facts_load_paraphrases(paraphrases, out, opts, para, err)) {
        facts_set_free(out);
        return -1;
    }
    return 0;
}
