/* edit_problem: the sequences of an edit problem — target prompts and neutral prompts — and the KL term on the neutral ones. */
#include "edit/edit_optimise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stage/stage.h"

int edit_problem_init(edit_problem *p, int n_facts, int n_langs, int kl_other_facts, lafn_err *err) {
    memset(p, 0, sizeof *p);
    if (n_facts <= 0 || n_langs <= 0)
        return lafn_err_set(err, "edit problem: %d facts x %d languages, expected both > 0", n_facts, n_langs);
    p->n_facts = n_facts;
    p->n_langs = n_langs;
    p->kl_other_facts = kl_other_facts;
    p->present = calloc((size_t)n_facts * (size_t)n_langs, 1);
    if (!p->present) return lafn_err_set(err, "edit problem: out of memory for %d x %d slots", n_facts, n_langs);
    return 0;
}

void edit_problem_free(edit_problem *p) {
    for (size_t i = 0; i < p->n_seqs; i++) free(p->seqs[i].ids);
    free(p->seqs);
    free(p->present);
    memset(p, 0, sizeof *p);
}

/* Appends one sequence (tokenised prompt, target NULL for a neutral prompt). */
static int add_seq(edit_problem *p, const tokenizer *tok, const char *lang, const char *prompt, const char *target,
                   int fact, int slot, double weight, double slot_weight, lafn_err *err) {
    stage_sequence s = {0};
    if (stage_sequence_build(tok, lang, prompt, target, &s, err)) return -1;
    if (s.n_prompt == 0 || (target && s.n_target == 0)) {
        stage_sequence_free(&s);
        return lafn_err_set(err, "edit: language %s: prompt '%.60s' gives %zu prompt and %zu target tokens", lang,
                            prompt, s.n_prompt, s.n_target);
    }
    edit_seq *grown = realloc(p->seqs, (p->n_seqs + 1) * sizeof *grown);
    if (!grown) {
        stage_sequence_free(&s);
        return lafn_err_set(err, "edit: out of memory for %zu sequences", p->n_seqs + 1);
    }
    p->seqs = grown;
    p->seqs[p->n_seqs++] = (edit_seq){.ids = s.ids, .n_prompt = s.n_prompt, .n_target = s.n_target, .fact = fact,
                                      .lang = slot, .weight = weight,
                                      .slot_weight = slot_weight};
    return 0;
}

/* The src of the first fact after self (cyclically) that has language lang, or NULL. */
static const char *other_src(const facts_edit_view *others, size_t n_others, size_t self, const char *lang) {
    for (size_t k = 1; k < n_others; k++) {
        const facts_edit_view *o = &others[(self + k) % n_others];
        for (size_t l = 0; l < o->n_langs; l++)
            if (!strcmp(o->langs[l].lang, lang) && o->langs[l].n_prompts > 0) return o->langs[l].prompts[0];
    }
    return NULL;
}

int edit_problem_add_fact(edit_problem *p, const tokenizer *tok, const facts_edit_view *view, int fact_slot,
                          const int *lang_slot, const facts_edit_view *others, size_t n_others,
                          size_t self_index, int (*keep)(size_t i, void *arg), void *keep_arg, lafn_err *err) {
    if (fact_slot < 0 || fact_slot >= p->n_facts)
        return lafn_err_set(err, "edit: fact %s: slot %d outside [0, %d)", view->id, fact_slot, p->n_facts);
    size_t n_used = 0, counter = 0;
    for (size_t l = 0; l < view->n_langs; l++) n_used += lang_slot[l] >= 0;
    if (n_used == 0) return lafn_err_set(err, "edit: fact %s has none of the selected languages", view->id);
    for (size_t l = 0; l < view->n_langs; l++) {
        const facts_prompt_set *ps = &view->langs[l];
        int slot = lang_slot[l];
        if (slot < 0 || ps->n_prompts == 0) continue;
        if (slot >= p->n_langs) return lafn_err_set(err, "edit: fact %s: language slot %d outside [0, %d)", view->id, slot, p->n_langs);
        p->present[(size_t)fact_slot * (size_t)p->n_langs + (size_t)slot] = 1;
        double w = 1.0 / ((double)n_used * (double)ps->n_prompts);
        for (size_t k = 0; k < ps->n_prompts; k++, counter++)
            if ((!keep || keep(counter, keep_arg)) &&
                add_seq(p, tok, ps->lang, ps->prompts[k], ps->target, fact_slot, slot, w,
                        1.0 / (double)ps->n_prompts, err))
                goto fail;
        const char *neutral[EDIT_NEUTRAL_PER_LANG];
        size_t n_neutral = 0;
        const char *src = p->kl_other_facts ? other_src(others, n_others, self_index, ps->lang) : NULL;
        if (src) neutral[n_neutral++] = src;
        if (ps->subject && ps->subject[0]) neutral[n_neutral++] = ps->subject;
        for (size_t k = 0; k < n_neutral; k++, counter++)
            if ((!keep || keep(counter, keep_arg)) &&
                add_seq(p, tok, ps->lang, neutral[k], NULL, fact_slot, slot,
                        1.0 / ((double)n_used * (double)n_neutral), 0.0, err))
                goto fail;
    }
    return 0;
fail:
    return lafn_err_wrap(err, "edit: fact %s", view->id);
}

void edit_log_softmax(const float *logits, int vocab, float *out) {
    float mx = logits[0];
    for (int v = 1; v < vocab; v++) mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < vocab; v++) sum += exp((double)(logits[v] - mx));
    float lse = mx + (float)log(sum);
    for (int v = 0; v < vocab; v++) out[v] = logits[v] - lse;
}

double edit_kl_row(const float *logp0, const float *logits, int vocab, double weight, float *dlogits) {
    float mx = logits[0];
    for (int v = 1; v < vocab; v++) mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < vocab; v++) sum += exp((double)(logits[v] - mx));
    double lse = (double)mx + log(sum), kl = 0.0;
    for (int v = 0; v < vocab; v++) {
        double p0 = exp((double)logp0[v]), logp = (double)logits[v] - lse;
        kl += p0 * ((double)logp0[v] - logp);
        if (dlogits) dlogits[v] = (float)(weight * (exp(logp) - p0));
    }
    return kl;
}
