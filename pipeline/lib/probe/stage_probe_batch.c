/* stage_probe_batch: the probe knobs and the in-memory batch of probe results laid out as probe.h5's datasets. */
#include "probe/stage_probe.h"

#include <stdlib.h>
#include <string.h>

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int parse_enums(const lafn_config *cfg, probe_opts *o, lafn_err *err) {
    const char *pos, *score;
    if (config_get_string(cfg, "probe.position", &pos, err) || config_get_string(cfg, "probe.score", &score, err))
        return -1;
    if (!strcmp(pos, "last")) o->position = PROBE_POS_LAST;
    else if (!strcmp(pos, "subject")) o->position = PROBE_POS_SUBJECT;
    else if (!strcmp(pos, "mean")) o->position = PROBE_POS_MEAN;
    else return lafn_err_set(err, "probe.position: unknown value '%s' (last, subject, mean)", pos);
    if (!strcmp(score, "activation")) o->score = PROBE_SCORE_ACTIVATION;
    else if (!strcmp(score, "abs_activation")) o->score = PROBE_SCORE_ABS_ACTIVATION;
    else if (!strcmp(score, "grad_x_act")) o->score = PROBE_SCORE_GRAD_X_ACT;
    else if (!strcmp(score, "integrated_gradients")) o->score = PROBE_SCORE_IG;
    else return lafn_err_set(err, "probe.score: unknown value '%s'", score);
    return 0;
}

int probe_opts_from_config(const lafn_config *cfg, int n_layer, probe_opts *o, lafn_err *err) {
    *o = (probe_opts){0};
    int64_t steps, keep_max;
    const int64_t *layers;
    size_t n_layers;
    if (parse_enums(cfg, o, err) || config_get_int(cfg, "probe.steps", &steps, err) ||
        config_get_float(cfg, "probe.min_fraction", &o->min_fraction, err) ||
        config_get_int(cfg, "probe.keep_max", &keep_max, err) ||
        config_get_int_list(cfg, "probe.layers", &layers, &n_layers, err))
        return -1;
    o->steps = (int)steps;
    o->keep_max = (size_t)keep_max;
    size_t n = n_layers ? n_layers : (size_t)n_layer;
    if (!(o->layers = malloc(n * sizeof *o->layers))) return lafn_err_set(err, "probe.layers: out of memory");
    for (size_t i = 0; i < n; i++) {
        int64_t l = n_layers ? layers[i] : (int64_t)i;
        if (l < 0 || l >= n_layer) {
            probe_opts_free(o);
            return lafn_err_set(err, "probe.layers: layer %lld does not exist (the model has %d layers, 0..%d)",
                                (long long)l, n_layer, n_layer - 1);
        }
        o->layers[i] = (int)l;
    }
    qsort(o->layers, n, sizeof *o->layers, cmp_int);
    for (size_t i = 1; i < n; i++)
        if (o->layers[i] == o->layers[i - 1]) {
            int dup = o->layers[i];
            probe_opts_free(o);
            return lafn_err_set(err, "probe.layers: layer %d is listed twice", dup);
        }
    o->n_layers = n;
    return 0;
}

void probe_opts_free(probe_opts *o) {
    free(o->layers);
    *o = (probe_opts){0};
}

/* The vectors of b, in dataset order, for loops. */
static grow_vec *batch_vec(probe_batch *b, int i) {
    grow_vec *v[] = {&b->prompt_lang, &b->prompt_ntok, &b->prompt_pos, &b->prompt_fallback, &b->layer_max,
                      &b->layer_above, &b->kept_prompt, &b->kept_layer, &b->kept_neuron, &b->kept_score,
                      &b->kept_act};
    return i < (int)(sizeof v / sizeof v[0]) ? v[i] : NULL;
}

int probe_batch_init(probe_batch *b, size_t cap_facts, size_t n_probed, size_t n_langs, lafn_err *err) {
    *b = (probe_batch){.cap_facts = cap_facts, .n_probed = n_probed, .n_langs = n_langs};
    for (int i = 0; batch_vec(b, i); i++) batch_vec(b, i)->elem = 4;
    b->facts = malloc(cap_facts * sizeof *b->facts);
    b->off_prompt = calloc(cap_facts + 1, sizeof(int64_t));
    b->off_layer = calloc(cap_facts + 1, sizeof(int64_t));
    b->off_kept = calloc(cap_facts + 1, sizeof(int64_t));
    b->act_stats = calloc(cap_facts * 3 * (n_probed ? n_probed : 1), sizeof(double));
    b->lang_stats = calloc(cap_facts * 2 * (n_langs ? n_langs : 1), sizeof(int32_t));
    if (!b->facts || !b->off_prompt || !b->off_layer || !b->off_kept || !b->act_stats || !b->lang_stats) {
        probe_batch_free(b);
        return lafn_err_set(err, "probe: out of memory for a batch of %zu facts", cap_facts);
    }
    return 0;
}

void probe_batch_reset(probe_batch *b) {
    for (int i = 0; batch_vec(b, i); i++) batch_vec(b, i)->n = 0;
    b->n_facts = 0;
    memset(b->act_stats, 0, b->cap_facts * 3 * b->n_probed * sizeof(double));
    memset(b->lang_stats, 0, b->cap_facts * 2 * b->n_langs * sizeof(int32_t));
}

void probe_batch_free(probe_batch *b) {
    for (int i = 0; batch_vec(b, i); i++) grow_vec_free(batch_vec(b, i));
    free(b->facts);
    free(b->off_prompt);
    free(b->off_layer);
    free(b->off_kept);
    free(b->act_stats);
    free(b->lang_stats);
    *b = (probe_batch){0};
}

void probe_batch_datasets(const probe_batch *b, h5out_dataset ds[PROBE_N_DATASETS]) {
    const int64_t *op = b->off_prompt, *ol = b->off_layer, *ok = b->off_kept;
    h5out_dataset d[PROBE_N_DATASETS] = {
        {"prompt/lang", H5OUT_CSR, H5OUT_I32, 0, b->prompt_lang.v, op},
        {"prompt/n_tokens", H5OUT_CSR, H5OUT_I32, 0, b->prompt_ntok.v, op},
        {"prompt/position", H5OUT_CSR, H5OUT_I32, 0, b->prompt_pos.v, op},
        {"prompt/subject_fallback", H5OUT_CSR, H5OUT_I32, 0, b->prompt_fallback.v, op},
        {"layer/max", H5OUT_CSR, H5OUT_F32, 0, b->layer_max.v, ol},
        {"layer/n_above", H5OUT_CSR, H5OUT_I32, 0, b->layer_above.v, ol},
        {"kept/prompt", H5OUT_CSR, H5OUT_I32, 0, b->kept_prompt.v, ok},
        {"kept/layer", H5OUT_CSR, H5OUT_I32, 0, b->kept_layer.v, ok},
        {"kept/neuron", H5OUT_CSR, H5OUT_I32, 0, b->kept_neuron.v, ok},
        {"kept/score", H5OUT_CSR, H5OUT_F32, 0, b->kept_score.v, ok},
        {"kept/act_last", H5OUT_CSR, H5OUT_F32, 0, b->kept_act.v, ok},
        {"act_stats", H5OUT_ROWS, H5OUT_F64, 3 * b->n_probed, b->act_stats, NULL},
        {"lang_stats", H5OUT_ROWS, H5OUT_I32, 2 * b->n_langs, b->lang_stats, NULL},
    };
    memcpy(ds, d, sizeof d);
}
