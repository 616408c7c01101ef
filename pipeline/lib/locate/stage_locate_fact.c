/* stage_locate_fact: one fact's active sets, per-language sets D_l, LAFNs (with the language-fraction relaxation) and language-specific sets. */
#define _GNU_SOURCE /* qsort_r */
#include "locate/stage_locate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

/* One neuron active in at least one prompt of the fact. */
typedef struct {
    int layer, neuron;
    int32_t cnt[FACTS_MAX_LANGS];     /* prompts of each language in which it is active */
    double lang_sum[FACTS_MAX_LANGS]; /* Σ kept score over each language's prompts */
    double sum;                       /* Σ kept score over all prompts (0 where not kept) */
    double act_sum;                   /* Σ a at the last prompt token over the active prompts */
    float act_min;                    /* min |a| at the last prompt token over the active prompts */
    int n_active;
    uint32_t dmask;                   /* bit l: in D_l */
    int nd;                           /* languages whose D_l holds it */
    double key;                       /* ranking score */
    int lang;                         /* language-specific: its one language */
} lnode;

typedef struct {
    const locate_input *in;
    const locate_opts *o;
    size_t n_langs;
    int n_q[FACTS_MAX_LANGS];  /* prompts per language */
    int n_fact_langs, n_total;
    uint8_t *active;           /* (n_kept) */
    lnode *nodes;
    size_t n_nodes;
    int capped;                /* prompt-layers whose active set keep_max may have cut */
} lctx;

static int probed_index(const locate_input *in, int layer) {
    size_t lo = 0, hi = in->n_probed;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (in->layers[mid] == layer) return (int)mid;
        if (in->layers[mid] < layer) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static int by_score_desc(const void *a, const void *b, void *arg) {
    const locate_input *in = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (in->k_score[x] != in->k_score[y]) return in->k_score[x] < in->k_score[y] ? 1 : -1;
    return (in->k_neuron[x] > in->k_neuron[y]) - (in->k_neuron[x] < in->k_neuron[y]);
}

/* Marks the active entries of the group [g0, g1) (one prompt, one layer). */
static void mark_group(lctx *c, size_t g0, size_t g1, const float *gmax, size_t *idx) {
    const locate_input *in = c->in;
    const locate_opts *o = c->o;
    size_t p = (size_t)in->k_prompt[g0], y = (size_t)probed_index(in, in->k_layer[g0]), n = g1 - g0;
    int cap_hit = in->n_above[p * in->n_probed + y] > (int32_t)n;
    if (o->top_k) {
        for (size_t k = 0; k < n; k++) idx[k] = g0 + k;
        qsort_r(idx, n, sizeof *idx, by_score_desc, (void *)in);
        for (size_t k = 0; k < n && k < o->top_k; k++) c->active[idx[k]] = in->k_score[idx[k]] > 0;
        if (cap_hit && n < o->top_k) c->capped++;
        return;
    }
    float cut = (float)o->threshold * (o->global_scope ? gmax[p] : in->layer_max[p * in->n_probed + y]);
    float low = in->k_score[g0];
    for (size_t e = g0; e < g1; e++) {
        c->active[e] = in->k_score[e] > 0 && in->k_score[e] >= cut;
        if (in->k_score[e] < low) low = in->k_score[e];
    }
    if (cap_hit && low >= cut) c->capped++;
}

/* Active flags of every kept entry (entries are ordered by prompt, layer, neuron). */
static int mark_active(lctx *c, lafn_err *err) {
    const locate_input *in = c->in;
    float *gmax = calloc(in->n_prompts + 1, sizeof *gmax);
    size_t *idx = malloc((in->n_kept + 1) * sizeof *idx);
    if (!gmax || !idx) { free(gmax); free(idx); return lafn_err_set(err, "locate: out of memory"); }
    for (size_t p = 0; p < in->n_prompts; p++)
        for (size_t y = 0; y < in->n_probed; y++)
            if (in->layer_max[p * in->n_probed + y] > gmax[p]) gmax[p] = in->layer_max[p * in->n_probed + y];
    for (size_t g0 = 0, g1; g0 < in->n_kept; g0 = g1) {
        for (g1 = g0 + 1; g1 < in->n_kept && in->k_prompt[g1] == in->k_prompt[g0] && in->k_layer[g1] == in->k_layer[g0];)
            g1++;
        mark_group(c, g0, g1, gmax, idx);
    }
    free(gmax);
    free(idx);
    return 0;
}

static int by_neuron(const void *a, const void *b, void *arg) {
    const locate_input *in = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (in->k_layer[x] != in->k_layer[y]) return in->k_layer[x] < in->k_layer[y] ? -1 : 1;
    if (in->k_neuron[x] != in->k_neuron[y]) return in->k_neuron[x] < in->k_neuron[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Adds the entries [g0, g1) of one neuron (in idx order) as a node if any is active. */
static void add_node(lctx *c, const size_t *idx, size_t g0, size_t g1) {
    const locate_input *in = c->in;
    lnode *nd = &c->nodes[c->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->layer = in->k_layer[idx[g0]];
    nd->neuron = in->k_neuron[idx[g0]];
    nd->act_min = INFINITY;
    for (size_t k = g0; k < g1; k++) {
        size_t e = idx[k];
        int l = in->prompt_lang[in->k_prompt[e]];
        nd->sum += in->k_score[e];
        nd->lang_sum[l] += in->k_score[e];
        if (!c->active[e]) continue;
        nd->cnt[l]++;
        nd->n_active++;
        nd->act_sum += in->k_act[e];
        if (fabsf(in->k_act[e]) < nd->act_min) nd->act_min = fabsf(in->k_act[e]);
    }
    if (nd->n_active) c->n_nodes++;
}

/* Groups the kept entries by neuron into c->nodes and decides D_l membership. */
static int build_nodes(lctx *c, lafn_err *err) {
    const locate_input *in = c->in;
    size_t *idx = malloc((in->n_kept + 1) * sizeof *idx);
    c->nodes = malloc((in->n_kept + 1) * sizeof *c->nodes);
    if (!idx || !c->nodes) { free(idx); return lafn_err_set(err, "locate: out of memory for %zu entries", in->n_kept); }
    for (size_t e = 0; e < in->n_kept; e++) idx[e] = e;
    qsort_r(idx, in->n_kept, sizeof *idx, by_neuron, (void *)in);
    for (size_t g0 = 0, g1; g0 < in->n_kept; g0 = g1) {
        for (g1 = g0 + 1; g1 < in->n_kept && in->k_layer[idx[g1]] == in->k_layer[idx[g0]] &&
                          in->k_neuron[idx[g1]] == in->k_neuron[idx[g0]];)
            g1++;
        add_node(c, idx, g0, g1);
    }
    free(idx);
    for (size_t u = 0; u < c->n_nodes; u++) {
        lnode *nd = &c->nodes[u];
        for (size_t l = 0; l < c->n_langs; l++) {
            if (!c->n_q[l]) continue;
            double need = ceil(c->o->prompt_fraction * c->n_q[l] - 1e-9);
            if (nd->cnt[l] >= (need < 1 ? 1 : need)) {
                nd->dmask |= 1u << l;
                nd->nd++;
                nd->lang = (int)l;
            }
        }
    }
    return 0;
}

static int in_edit_layers(const locate_opts *o, int layer) {
    if (!o->n_edit_layers) return 1;
    for (size_t i = 0; i < o->n_edit_layers; i++)
        if (o->edit_layers[i] == layer) return 1;
    return 0;
}

/* Ranking: key descending, then layer, neuron ascending. */
static int by_key(const void *a, const void *b) {
    const lnode *x = *(lnode *const *)a, *y = *(lnode *const *)b;
    if (x->lang != y->lang) return x->lang < y->lang ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return (x->neuron > y->neuron) - (x->neuron < y->neuron);
}

/* Pushes one int32 and one float, the common shape of the CSR columns. */
static int push_i(grow_vec *v, int x, lafn_err *err) {
    int32_t y = x;
    return grow_vec_push(v, &y, 1, err);
}
static int push_f(grow_vec *v, double x, lafn_err *err) {
    float y = (float)x;
    return grow_vec_push(v, &y, 1, err);
}

static float gate_of(const lnode *n) { return LOCATE_GATE_FACTOR * n->act_min; }
static double act_mean_of(const lnode *n) { return n->act_sum / n->n_active; }

/* Languages needed at fraction lf: ceil(lf * n), at least 1. */
static int langs_needed(double lf, int n) {
    double need = ceil(lf * n - 1e-9);
    return need < 1 ? 1 : (int)need;
}

/* The ranking score of a candidate: its mean score over the fact's prompts,
 * minus with rank_by = contrast its mean over the run's other prompts. */
static double rank_key(const lctx *c, const lnode *nd) {
    double own = nd->sum / c->n_total;
    if (!c->o->contrast) return own;
    double others = c->o->run_prompts - c->n_total;
    double rest = c->o->run_sum[(size_t)nd->layer * (size_t)c->o->n_ffn + (size_t)nd->neuron] - nd->sum;
    return own - (others > 0 ? rest / others : 0.0);
}

/* Ranks the candidates (nodes of the edit layers in at least one D_l; with
 * contrast, only those whose key is above 0) by rank_key and relaxes the language fraction in steps until min_neurons are
 * found; the last step is min_language_fraction itself. Fills
 * *sel (pointers into c->nodes, at most max_neurons), *n_sel, *lf, *steps;
 * returns 1 if found, 0 if not, -1 on error. */
static int select_lafn(lctx *c, lnode ***sel, size_t *n_sel, double *lf, int *steps, lafn_err *err) {
    const locate_opts *o = c->o;
    lnode **cand = malloc((c->n_nodes + 1) * sizeof *cand);
    size_t n = 0;
    if (!cand) return lafn_err_set(err, "locate: out of memory");
    for (size_t u = 0; u < c->n_nodes; u++) {
        lnode *nd = &c->nodes[u];
        if (!nd->nd || !in_edit_layers(o, nd->layer)) continue;
        nd->key = rank_key(c, nd);
        nd->lang = 0;
        if (!o->contrast || nd->key > 0) cand[n++] = nd;
    }
    qsort(cand, n, sizeof *cand, by_key);
    size_t want = o->min_neurons > 1 ? o->min_neurons : 1;
    int found = 0;
    for (*steps = 0;; (*steps)++) {
        *lf = o->language_fraction - *steps * o->language_fraction_step;
        if (*lf < o->min_language_fraction) *lf = o->min_language_fraction; /* the grid passed over it */
        int need = langs_needed(*lf, c->n_fact_langs);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += cand[i]->nd >= need;
        if (k >= want) {
            k = 0;
            for (size_t i = 0; i < n; i++)
                if (cand[i]->nd >= need) cand[k++] = cand[i];
            n = k;
            found = 1;
            break;
        }
        if (*lf <= o->min_language_fraction + 1e-9) break;
    }
    *n_sel = found ? (n < o->max_neurons ? n : o->max_neurons) : 0;
    *sel = cand;
    return found;
}

/* The language-specific nodes (in exactly one D_l, edit layers), ranked per
 * language by that language's mean score, at most max_neurons per language. */
static int select_specific(lctx *c, lnode ***sel, size_t *n_sel, lafn_err *err) {
    lnode **cand = malloc((c->n_nodes + 1) * sizeof *cand);
    size_t n = 0, k = 0;
    if (!cand) return lafn_err_set(err, "locate: out of memory");
    for (size_t u = 0; u < c->n_nodes; u++) {
        lnode *nd = &c->nodes[u];
        if (nd->nd != 1 || !in_edit_layers(c->o, nd->layer)) continue;
        for (nd->lang = 0; !(nd->dmask & (1u << nd->lang));) nd->lang++;
        nd->key = nd->lang_sum[nd->lang] / c->n_q[nd->lang];
        cand[n++] = nd;
    }
    qsort(cand, n, sizeof *cand, by_key);
    for (size_t i = 0, run = 0; i < n; i++) {
        run = i && cand[i]->lang == cand[i - 1]->lang ? run + 1 : 0;
        if (run < c->o->max_neurons) cand[k++] = cand[i];
    }
    *sel = cand;
    *n_sel = k;
    return 0;
}

/* Appends the D_l sets (every probed layer) and the pair counts of the fact. */
static int write_dsets(const lctx *c, locate_batch *b, lafn_err *err) {
    size_t L = c->n_langs, f = b->n_facts;
    int32_t *pairs = b->pairs + f * 2 * L * L;
    memset(pairs, 0, 2 * L * L * sizeof *pairs);
    for (size_t l = 0; l < L; l++)
        for (size_t u = 0; u < c->n_nodes; u++) {
            const lnode *nd = &c->nodes[u];
            if (!(nd->dmask & (1u << l))) continue;
            if (push_i(&b->dset_lang, (int)l, err) || push_i(&b->dset_layer, nd->layer, err) ||
                push_i(&b->dset_neuron, nd->neuron, err) || push_f(&b->dset_score, nd->lang_sum[l] / c->n_q[l], err))
                return -1;
        }
    for (size_t u = 0; u < c->n_nodes; u++) {
        uint32_t m = c->nodes[u].dmask;
        for (size_t a = 0; a < L; a++)
            for (size_t z = 0; z < L; z++) {
                if (!c->n_q[a] || !c->n_q[z]) continue;
                int ia = (m >> a) & 1, iz = (m >> z) & 1;
                pairs[2 * (a * L + z)] += ia && iz;
                pairs[2 * (a * L + z) + 1] += ia || iz;
            }
    }
    return 0;
}

static int write_lafn(lnode *const *sel, size_t n, locate_batch *b, lafn_err *err) {
    int32_t *hist = b->layer_hist + b->n_facts * b->n_layer;
    memset(hist, 0, b->n_layer * sizeof *hist);
    for (size_t i = 0; i < n; i++) {
        const lnode *nd = sel[i];
        if (push_i(&b->lafn_layer, nd->layer, err) || push_i(&b->lafn_neuron, nd->neuron, err) ||
            push_f(&b->lafn_score, nd->key, err) || push_i(&b->lafn_nlangs, nd->nd, err) ||
            push_f(&b->lafn_act_mean, act_mean_of(nd), err) || push_f(&b->lafn_act_min, nd->act_min, err) ||
            push_f(&b->lafn_gate, gate_of(nd), err))
            return -1;
        if ((size_t)nd->layer < b->n_layer) hist[nd->layer]++;
    }
    return 0;
}

static int write_specific(lnode *const *sel, size_t n, locate_batch *b, lafn_err *err) {
    for (size_t i = 0; i < n; i++) {
        const lnode *nd = sel[i];
        if (push_i(&b->spec_lang, nd->lang, err) || push_i(&b->spec_layer, nd->layer, err) ||
            push_i(&b->spec_neuron, nd->neuron, err) || push_f(&b->spec_score, nd->key, err) ||
            push_f(&b->spec_act_mean, act_mean_of(nd), err) || push_f(&b->spec_gate, gate_of(nd), err))
            return -1;
    }
    return 0;
}

/* edit/...: the neurons handed to the edit stage (LAFNs, or the language-specific sets). */
static int write_edit(const locate_batch *b, locate_batch *w, int specific, size_t f, lafn_err *err) {
    const grow_vec *ly = specific ? &b->spec_layer : &b->lafn_layer, *ne = specific ? &b->spec_neuron : &b->lafn_neuron;
    const grow_vec *am = specific ? &b->spec_act_mean : &b->lafn_act_mean, *gt = specific ? &b->spec_gate : &b->lafn_gate;
    size_t from = (size_t)(specific ? b->off_spec[f] : b->off_lafn[f]), to = ly->n;
    return grow_vec_push(&w->edit_layer, (const int32_t *)ly->v + from, to - from, err) ||
                   grow_vec_push(&w->edit_neuron, (const int32_t *)ne->v + from, to - from, err) ||
                   grow_vec_push(&w->edit_act_mean, (const float *)am->v + from, to - from, err) ||
                   grow_vec_push(&w->edit_gate, (const float *)gt->v + from, to - from, err)
               ? -1 : 0;
}

/* 1 if x is among v[0..n). */
static int among(const int32_t *v, size_t n, int32_t x) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == x) return 1;
    return 0;
}

/* edit/... of the random control: in every layer, as many distinct neurons
 * drawn uniformly from the layer as the fact has LAFNs there, from a stream
 * seeded by run.seed and the fact index (so any rank draws the same). The
 * sign and threshold are left 0: the edit stage calibrates the gate of these
 * neurons on the fact's prompts. */
static int write_edit_random(locate_batch *b, const locate_opts *o, int64_t index, size_t f, lafn_err *err) {
    const int32_t *hist = b->layer_hist + f * b->n_layer;
    uint64_t state = o->seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)index + 1));
    for (size_t l = 0; l < b->n_layer; l++) {
        if (hist[l] > o->n_ffn) return lafn_err_set(err, "locate: %d LAFNs in layer %zu of %d neurons", hist[l], l, o->n_ffn);
        size_t first = b->edit_neuron.n;
        for (int k = 0; k < hist[l]; k++) {
            int32_t j;
            do j = (int32_t)rng_below(&state, (uint64_t)o->n_ffn);
            while (among((const int32_t *)b->edit_neuron.v + first, b->edit_neuron.n - first, j));
            if (push_i(&b->edit_layer, (int)l, err) || push_i(&b->edit_neuron, j, err) ||
                push_f(&b->edit_act_mean, 0.0f, err) || push_f(&b->edit_gate, 0.0f, err))
                return -1;
        }
    }
    return 0;
}

/* Counts prompts per language; the fact's languages are those with prompts. */
static int count_prompts(lctx *c, lafn_err *err) {
    for (size_t q = 0; q < c->in->n_prompts; q++) c->n_q[c->in->prompt_lang[q]]++;
    for (size_t l = 0; l < c->n_langs; l++) c->n_fact_langs += c->n_q[l] > 0;
    c->n_total = (int)c->in->n_prompts;
    if (!c->n_total) return lafn_err_set(err, "locate: fact %lld has no prompts", (long long)c->in->index);
    if (c->n_langs > 32) return lafn_err_set(err, "locate: %zu languages, at most 32", c->n_langs);
    return 0;
}

int locate_fact(const locate_input *in, const locate_opts *o, locate_batch *b, lafn_err *err) {
    if (b->n_facts >= b->cap_facts) return lafn_err_set(err, "locate: batch of %zu facts is full", b->cap_facts);
    lctx c = {.in = in, .o = o, .n_langs = b->n_langs};
    lnode **lafn = NULL, **spec = NULL;
    size_t n_lafn = 0, n_spec = 0, f = b->n_facts;
    double lf = 0;
    int steps = 0, found = -1, rc = -1;
    if (count_prompts(&c, err) != 0) return -1;
    if (!(c.active = calloc(in->n_kept + 1, 1))) return lafn_err_set(err, "locate: out of memory");
    if (mark_active(&c, err) || build_nodes(&c, err)) goto fail;
    if ((found = select_lafn(&c, &lafn, &n_lafn, &lf, &steps, err)) < 0) goto fail;
    if (write_lafn(lafn, n_lafn, b, err) || select_specific(&c, &spec, &n_spec, err) ||
        write_specific(spec, n_spec, b, err) || write_dsets(&c, b, err) ||
        (o->neuron_set == LOCATE_SET_RANDOM ? write_edit_random(b, o, in->index, f, err)
                                            : write_edit(b, b, o->neuron_set == LOCATE_SET_LANGUAGE_SPECIFIC, f, err)))
        goto fail;
    int32_t st[LOCATE_STATUS_LEN] = {found, (int32_t)n_lafn, c.n_fact_langs, steps, c.capped, (int32_t)n_spec,
                                     (int32_t)(b->edit_layer.n - (size_t)b->off_edit[f])};
    memcpy(b->status + f * LOCATE_STATUS_LEN, st, sizeof st);
    b->lang_fraction[f] = lf;
    b->facts[f] = in->index;
    b->off_lafn[f + 1] = (int64_t)b->lafn_layer.n;
    b->off_dset[f + 1] = (int64_t)b->dset_lang.n;
    b->off_spec[f + 1] = (int64_t)b->spec_lang.n;
    b->off_edit[f + 1] = (int64_t)b->edit_layer.n;
    b->n_facts++;
    rc = 0;
fail:
    free(lafn);
    free(spec);
    free(c.nodes);
    free(c.active);
    return rc;
}
