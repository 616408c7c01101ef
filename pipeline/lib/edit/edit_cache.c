/* edit_cache: the gated cache — per sequence, does a cached edit fire — and the composition of the firing edits. */
#include "edit/edit_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_key.h"

/* Cosine of the input's key (at global position pos, into q) with the nearest of entry e's keys. */
static float key_cosine(const edit_cache_entry *e, const engine_run *r, int D, int pos, float *q) {
    edit_key_of(engine_residual(r, e->key_layer) + (size_t)pos * (size_t)D, e->key_center, D, q);
    return edit_key_nearest(q, e->keys, e->n_keys, D);
}

/* 1 if entry e's key is at least the floor and nearer than every rival fact's; rival_cos (n_rivals) holds each
 * rival's nearest-key cosine on this sequence; q is (D) scratch. */
static int nearest_key_passes(const edit_cache *c, const edit_cache_entry *e, const float *rival_cos,
                              const engine_run *r, int D, int pos, float *q) {
    float own = key_cosine(e, r, D, pos, q);
    if (own < c->trigger.nearest_floor) return 0;
    for (size_t i = 0; i < c->n_rivals; i++)
        if (c->rivals[i].group != e->group && rival_cos[i] >= own) return 0;
    return 1;
}

/* 1 if entry e's trigger passes on the token at global position pos; rival_cos as for nearest_key_passes (NULL
 * unless the trigger is the nearest key); q is (D) scratch. */
static int gate_passes(const edit_cache *c, const edit_cache_entry *e, const float *rival_cos, const engine_run *r,
                       const model_config *cfg, int pos, float *q) {
    if (c->trigger.gate <= 0.0f) return 1;
    if (c->trigger.kind == EDIT_TRIGGER_KEY && e->n_keys > 0)
        return key_cosine(e, r, cfg->d_model, pos, q) >= e->key_threshold;
    if (c->trigger.kind == EDIT_TRIGGER_NEAREST_KEY && e->n_keys > 0)
        return nearest_key_passes(c, e, rival_cos, r, cfg->d_model, pos, q);
    if (e->n_gate == 0) return 0;
    int F = cfg->d_ffn;
    int pass = 0;
    for (int g = 0; g < e->n_gate; g++) {
        float a = engine_ffn_act(r, e->gate_layer[g])[(size_t)pos * (size_t)F + (size_t)e->gate_neuron[g]];
        if (a * e->gate_sign[g] >= e->gate_threshold[g]) pass++;
    }
    return (double)pass >= (double)c->trigger.gate * (double)e->n_gate - 1e-9;
}

/* The nearest-key cosine of every rival on every sequence, (B, n_rivals), computed once per batch rather than once
 * per entry; rivals without keys get -inf (never nearer). NULL when the trigger does not compare rivals (and then
 * *oom stays 0) or when out of memory (*oom = 1). */
static float *rival_cosines(const edit_cache *c, const engine_run *r, int D, const int *last_pos, int n_seq,
                            float *q, int *oom) {
    *oom = 0;
    if (c->trigger.gate <= 0.0f || c->trigger.kind != EDIT_TRIGGER_NEAREST_KEY || c->n_rivals == 0) return NULL;
    float *cos = malloc((size_t)n_seq * c->n_rivals * sizeof *cos);
    if (!cos) {
        *oom = 1;
        return NULL;
    }
    for (int b = 0; b < n_seq; b++)
        for (size_t i = 0; i < c->n_rivals; i++)
            cos[(size_t)b * c->n_rivals + i] =
                c->rivals[i].n_keys > 0 ? key_cosine(&c->rivals[i], r, D, last_pos[b], q) : -INFINITY;
    return cos;
}

static int check_entry(const edit_cache_entry *e, size_t i, const model_config *cfg, lafn_err *err) {
    for (int g = 0; g < e->n_gate; g++)
        if (e->gate_layer[g] < 0 || e->gate_layer[g] >= cfg->n_layer || e->gate_neuron[g] < 0 ||
            e->gate_neuron[g] >= cfg->d_ffn)
            return lafn_err_set(err, "edit cache entry %zu: gate neuron %d is blk.%d neuron %d, outside %d layers x %d",
                                i, g, e->gate_layer[g], e->gate_neuron[g], cfg->n_layer, cfg->d_ffn);
    if (e->n_keys > 0 && (e->key_layer < 0 || e->key_layer > cfg->n_layer))
        return lafn_err_set(err, "edit cache entry %zu: key layer %d outside 0..%d", i, e->key_layer, cfg->n_layer);
    return 0;
}

int edit_cache_fires(const edit_cache *c, const engine_run *r, const model_config *cfg, const int *last_pos,
                     int n_seq, size_t n_tokens, uint8_t *fires, lafn_err *err) {
    size_t B = (size_t)n_seq;
    memset(fires, 0, c->n_entries * B);
    for (int b = 0; b < n_seq; b++)
        if (last_pos[b] < 0 || (size_t)last_pos[b] >= n_tokens)
            return lafn_err_set(err, "edit cache: last prompt position %d of sequence %d outside the batch's %zu tokens",
                                last_pos[b], b, n_tokens);
    for (size_t i = 0; i < c->n_rivals; i++)
        if (check_entry(&c->rivals[i], i, cfg, err)) return lafn_err_wrap(err, "the rival facts of the nearest-key trigger");
    float *q = malloc((size_t)cfg->d_model * sizeof *q);
    int oom = !q;
    float *rival_cos = q ? rival_cosines(c, r, cfg->d_model, last_pos, n_seq, q, &oom) : NULL;
    if (oom) {
        free(q);
        return lafn_err_set(err, "edit cache: out of memory for %zu rival facts x %d sequences", c->n_rivals, n_seq);
    }
    int rc = 0;
    for (size_t i = 0; i < c->n_entries && rc == 0; i++) {
        const edit_cache_entry *e = &c->entries[i];
        if ((rc = check_entry(e, i, cfg, err)) != 0) break;
        size_t first = i; /* the group's first entry carries the flag */
        for (size_t k = 0; k < i; k++)
            if (c->entries[k].group == e->group) { first = k; break; }
        for (int b = 0; b < n_seq; b++) {
            const float *cos_b = rival_cos ? rival_cos + (size_t)b * c->n_rivals : NULL;
            if (gate_passes(c, e, cos_b, r, cfg, last_pos[b], q)) fires[first * B + (size_t)b] = 1;
        }
    }
    free(rival_cos);
    free(q);
    return rc;
}

void edit_cache_edit_free(edit_cache_edit *e) {
    free(e->layer);
    free(e->neuron);
    free(e->delta);
    free(e->seq_mask);
    memset(e, 0, sizeof *e);
}

int edit_cache_compose(const edit_cache *c, const uint8_t *fires, int n_seq, int n_layer, int D,
                       edit_cache_edit *out, lafn_err *err) {
    size_t B = (size_t)n_seq, width = c->kind == ENGINE_EDIT_VALUE_VECTOR ? (size_t)D : 1, n = 0;
    memset(out, 0, sizeof *out);
    out->min_layer = n_layer;
    for (size_t i = 0; i < c->n_entries; i++)
        for (size_t b = 0; b < B; b++)
            if (fires[i * B + b]) { n += (size_t)c->entries[i].n; break; }
    if (n > (size_t)INT32_MAX) return lafn_err_set(err, "edit cache: %zu edited entries exceed the engine's int count", n);
    if (n > 0) {
        out->layer = malloc(n * sizeof *out->layer);
        out->neuron = malloc(n * sizeof *out->neuron);
        out->delta = malloc(n * width * sizeof *out->delta);
        out->seq_mask = malloc(n * B);
        if (!out->layer || !out->neuron || !out->delta || !out->seq_mask) {
            edit_cache_edit_free(out);
            return lafn_err_set(err, "edit cache: out of memory composing %zu entries over %zu sequences", n, B);
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n_entries; i++) {
        const uint8_t *f = fires + i * B;
        if (!memchr(f, 1, B)) continue;
        const edit_cache_entry *e = &c->entries[i];
        for (int j = 0; j < e->n; j++, k++) {
            out->layer[k] = e->layer[j];
            out->neuron[k] = e->neuron[j];
            memcpy(out->delta + k * width, e->delta + (size_t)j * width, width * sizeof(float));
            memcpy(out->seq_mask + k * B, f, B);
            if (e->layer[j] < out->min_layer) out->min_layer = e->layer[j];
        }
    }
    out->edit = (engine_edit){.kind = c->kind, .n = (int)n, .layer = out->layer, .neuron = out->neuron,
                              .delta = out->delta, .seq_mask = out->seq_mask};
    return 0;
}

int edit_cache_decide(engine_run *r, const model *m, const engine_batch *b, const int *last_pos, const edit_cache *c,
                      const engine_forward_opts *opts, uint8_t *fires, edit_cache_edit *out, lafn_err *err) {
    size_t n_tokens = 0, B = (size_t)b->n_seq;
    memset(out, 0, sizeof *out);
    for (int s = 0; s < b->n_seq; s++) n_tokens += (size_t)b->seq_len[s];
    uint8_t *f = fires ? fires : malloc(c->n_entries * B + 1);
    if (!f) return lafn_err_set(err, "edit cache: out of memory for %zu x %zu gate flags", c->n_entries, B);
    engine_forward_opts plain = opts ? *opts : engine_forward_defaults();
    plain.edit = NULL;
    plain.from_layer = 0;
    int rc = -1;
    if (engine_forward(r, b, &plain, err)) goto fail;
    if (edit_cache_fires(c, r, &m->cfg, last_pos, b->n_seq, n_tokens, f, err)) goto fail;
    if (edit_cache_compose(c, f, b->n_seq, m->cfg.n_layer, m->cfg.d_model, out, err)) goto fail;
    rc = 0;
fail:
    if (f != fires) free(f);
    return rc;
}

int edit_cache_forward(engine_run *r, const model *m, const engine_batch *b, const int *last_pos,
                       const edit_cache *c, const engine_forward_opts *opts, uint8_t *fires, lafn_err *err) {
    edit_cache_edit ce;
    int rc = edit_cache_decide(r, m, b, last_pos, c, opts, fires, &ce, err);
    engine_forward_opts edited = *opts;
    edited.edit = &ce.edit;
    edited.from_layer = ce.min_layer;
    if (rc == 0 && ce.edit.n > 0) rc = engine_forward(r, b, &edited, err);
    edit_cache_edit_free(&ce);
    return rc;
}

int edit_gate_calibrate(int n, const float *own_min, const float *ref_max, const float *threshold, uint8_t *keep,
                        float *thr_out) {
    int kept = 0;
    for (int k = 0; k < n; k++) {
        keep[k] = own_min[k] > ref_max[k] && own_min[k] >= threshold[k];
        float mid = 0.5f * (own_min[k] + ref_max[k]);
        float floor = own_min[k] - EDIT_GATE_SLACK * fabsf(own_min[k]);
        thr_out[k] = keep[k] ? (mid > threshold[k] ? mid : threshold[k]) : floor;
        kept += keep[k];
    }
    if (kept == 0) memset(keep, 1, (size_t)n);
    return kept;
}
