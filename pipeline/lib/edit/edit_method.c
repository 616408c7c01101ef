/* edit_method: edit.method — the knobs of the fine-tuning baselines and the whole-layer neuron sets they edit. */
#include "edit/edit_method.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int edit_method_hparams(const lafn_config *cfg, edit_hparams *h, lafn_err *err) {
    const char *method;
    if (config_get_string(cfg, "edit.method", &method, err)) return -1;
    h->method = !strcmp(method, "ft_l") ? EDIT_METHOD_FT_L : !strcmp(method, "ft_m") ? EDIT_METHOD_FT_M
                                                                                     : EDIT_METHOD_LAFN;
    h->prompt_last = h->method == EDIT_METHOD_FT_L;
    h->linf = 0.0;
    h->weight_decay = 0.0;
    if (h->method == EDIT_METHOD_LAFN) return 0;
    char key[64];
    int64_t steps;
    snprintf(key, sizeof key, "%s.num_steps", method);
    if (config_get_int(cfg, key, &steps, err)) return -1;
    snprintf(key, sizeof key, "%s.lr", method);
    if (config_get_float(cfg, key, &h->lr, err)) return -1;
    snprintf(key, sizeof key, "%s.weight_decay", method);
    if (config_get_float(cfg, key, &h->weight_decay, err)) return -1;
    snprintf(key, sizeof key, "%s.norm_constraint", method);
    if (config_get_float(cfg, key, &h->linf, err)) return -1;
    h->kind = ENGINE_EDIT_VALUE_VECTOR;
    h->steps = (int)steps;
    h->stop_nll = EDIT_FT_STOP_LOSS;
    h->kl_weight = 0.0;
    h->l2 = 0.0;
    h->norm_clamp = 0.0;
    h->keep_best = 0;
    return 0;
}

int edit_method_layers(const lafn_config *cfg, const char *method, int n_layer, int *layers, int cap, int *n,
                       lafn_err *err) {
    char key[64];
    const int64_t *list;
    size_t len;
    snprintf(key, sizeof key, "%s.layers", method);
    if (config_get_int_list(cfg, key, &list, &len, err)) return -1;
    if (len == 0) {
        layers[0] = (int)floor(EDIT_FT_DEPTH * n_layer);
        *n = 1;
        return 0;
    }
    if (len > (size_t)cap) return lafn_err_set(err, "%s: %zu layers, at most %d", key, len, cap);
    for (size_t i = 0; i < len; i++) {
        if (list[i] >= n_layer)
            return lafn_err_set(err, "%s: layer %lld, but the model has %d layers (0..%d)", key, (long long)list[i],
                                n_layer, n_layer - 1);
        for (size_t k = 0; k < i; k++)
            if (list[k] == list[i]) return lafn_err_set(err, "%s: layer %lld is listed twice", key, (long long)list[i]);
        layers[i] = (int)list[i];
    }
    *n = (int)len;
    return 0;
}

int edit_neurons_whole_layers(const int64_t *facts, size_t n_facts, const int *layers, int n_layers, int d_ffn,
                              edit_neurons *out, lafn_err *err) {
    size_t per = (size_t)n_layers * (size_t)d_ffn, total = n_facts * per;
    memset(out, 0, sizeof *out);
    out->n_facts = n_facts;
    out->facts = malloc((n_facts + 1) * sizeof *out->facts);
    out->found = malloc((n_facts + 1) * sizeof *out->found);
    out->offsets = malloc((n_facts + 1) * sizeof *out->offsets);
    out->layer = malloc((total + 1) * sizeof *out->layer);
    out->neuron = malloc((total + 1) * sizeof *out->neuron);
    out->sign = calloc(total + 1, sizeof *out->sign);
    out->threshold = calloc(total + 1, sizeof *out->threshold);
    if (!out->facts || !out->found || !out->offsets || !out->layer || !out->neuron || !out->sign || !out->threshold) {
        edit_neurons_free(out);
        return lafn_err_set(err, "edit: out of memory for %zu facts x %zu neurons", n_facts, per);
    }
    out->offsets[0] = 0;
    for (size_t i = 0; i < n_facts; i++) {
        out->facts[i] = facts[i];
        out->found[i] = 1;
        out->offsets[i + 1] = (int64_t)((i + 1) * per);
        for (size_t k = 0; k < per; k++) {
            out->layer[i * per + k] = layers[k / (size_t)d_ffn];
            out->neuron[i * per + k] = (int32_t)(k % (size_t)d_ffn);
        }
    }
    return 0;
}
