/* eval_each: the edit set "each" — a fact's located neurons re-optimised with one edit language only (edit_optimise), for the ReMaKE matrix. */
#include "eval/stage_eval_int.h"

#include <stdlib.h>
#include <string.h>

#include "edit/stage_edit.h"

void eval_each_free(eval_each *e) {
    for (size_t i = 0; e->views && i < e->n_views; i++) facts_edit_view_free(&e->views[i]);
    free(e->views);
    *e = (eval_each){0};
}

int eval_each_init(const stage_context *ctx, const edit_store *st, const edit_trigger *t, eval_each *e,
                   lafn_err *err) {
    int64_t max_facts;
    *e = (eval_each){.store = st, .facts = &ctx->facts, .m = ctx->m, .trigger = *t};
    if (edit_hparams_from_config(&ctx->cfg, &e->h, err) ||
        config_get_int(&ctx->cfg, "eval.each_max_facts", &max_facts, err))
        return -1;
    if (e->h.kind != st->kind) return lafn_err_set(err, "eval: edit.param differs from the kind of edit.h5's deltas");
    e->n_facts = (size_t)max_facts < ctx->facts.n_facts ? (size_t)max_facts : ctx->facts.n_facts;
    e->n_views = ctx->facts.n_facts;
    e->views = calloc(e->n_views, sizeof *e->views);
    if (!e->views) return lafn_err_set(err, "eval: out of memory for %zu edit views", e->n_views);
    for (size_t i = 0; i < e->n_views; i++)
        if (facts_edit_view_build(&ctx->facts.facts[i], &e->views[i], err) != 0) {
            eval_each_free(e);
            return -1;
        }
    return 0;
}

static long store_find(const edit_store *s, int64_t fact) {
    for (size_t i = 0; i < s->n_facts; i++)
        if (s->facts[i] == fact) return (long)i;
    return -1;
}

/* The problem of fact f edited in language slot `lang` only (every other language of the view left out). */
static int each_problem(const eval_each *e, size_t f, size_t lang, edit_problem *p, lafn_err *err) {
    const facts_edit_view *v = &e->views[f];
    int ls[FACTS_MAX_LANGS];
    for (size_t l = 0; l < v->n_langs; l++) ls[l] = strcmp(v->langs[l].lang, e->facts->langs[lang]) ? -1 : 0;
    if (edit_problem_init(p, 1, 1, e->h.kl_other_facts, err) != 0) return -1;
    return edit_problem_add_fact(p, e->m->tok, v, 0, ls, e->views, e->n_views, f, NULL, NULL, err);
}

int eval_each_make(const eval_each *e, size_t f, size_t lang, eval_edit *out, lafn_err *err) {
    const facts_record *rec = &e->facts->facts[f];
    long row = store_find(e->store, (int64_t)rec->index);
    *out = (eval_edit){.cache = {.kind = e->store->kind, .trigger = e->trigger, .n_rivals = e->store->n_facts,
                                 .rivals = e->store->entries}};
    if (row < 0) return lafn_err_set(err, "fact %s (index %zu) has no row in edit.h5", rec->id, rec->index);
    int64_t lo = e->store->delta_off[row], hi = e->store->delta_off[row + 1];
    int n = (int)(hi - lo);
    if (n <= 0 || !facts_record_side(rec, e->facts->langs[lang])) return 0; /* no LAFN, or no such side: no edit */
    size_t width = e->store->kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)e->m->cfg.d_model : 1;
    edit_problem p = {0};
    edit_result res = {0};
    out->layer = malloc((size_t)n * sizeof *out->layer);
    out->neuron = malloc((size_t)n * sizeof *out->neuron);
    out->delta = calloc((size_t)n * width, sizeof *out->delta);
    if (!out->layer || !out->neuron || !out->delta) {
        eval_edit_free(out);
        return lafn_err_set(err, "out of memory for %d edited neurons", n);
    }
    for (int i = 0; i < n; i++) {
        out->layer[i] = e->store->delta_layer[lo + i];
        out->neuron[i] = e->store->delta_neuron[lo + i];
    }
    int rc = each_problem(e, f, lang, &p, err);
    if (!rc) rc = edit_optimise(e->m, &p, n, out->layer, out->neuron, out->delta, NULL, &e->h, MPI_COMM_SELF, &res, err);
    edit_result_free(&res);
    edit_problem_free(&p);
    if (rc) {
        eval_edit_free(out);
        return lafn_err_wrap(err, "fact %s edited in %s only", rec->id, e->facts->langs[lang]);
    }
    out->entry = e->store->entries[row]; /* its gate neurons and thresholds, as edit.h5 stores them */
    out->entry.n = n;
    out->entry.layer = out->layer;
    out->entry.neuron = out->neuron;
    out->entry.delta = out->delta;
    out->cache.n_entries = 1;
    out->cache.entries = &out->entry;
    return 0;
}
