/* engine_edit: validation and forward/backward of neuron edits (value-vector deltas, activation offsets). */
#include "engine/engine_ops.h"

int edit_check(const engine_edit *ed, const model_config *cfg, int from_layer, int *min_layer,
               lafn_err *err) {
    *min_layer = cfg->n_layer;
    if (!ed) return 0;
    if (ed->kind != ENGINE_EDIT_VALUE_VECTOR && ed->kind != ENGINE_EDIT_ACTIVATION_OFFSET)
        return lafn_err_set(err, "engine edit: unknown kind %d", (int)ed->kind);
    if (ed->n < 0) return lafn_err_set(err, "engine edit: negative entry count %d", ed->n);
    if (ed->n > 0 && (!ed->layer || !ed->neuron || !ed->delta))
        return lafn_err_set(err, "engine edit: %d entries but layer, neuron or delta is NULL", ed->n);
    for (int e = 0; e < ed->n; e++) {
        int l = ed->layer[e], j = ed->neuron[e];
        if (l < 0 || l >= cfg->n_layer)
            return lafn_err_set(err, "engine edit entry %d: layer %d outside [0, %d)", e, l,
                                cfg->n_layer);
        if (j < 0 || j >= cfg->d_ffn)
            return lafn_err_set(err, "engine edit entry %d (blk.%d): neuron %d outside [0, %d)", e, l,
                                j, cfg->d_ffn);
        if (l < from_layer)
            return lafn_err_set(err,
                                "engine edit entry %d: layer %d is below from_layer %d, whose stored "
                                "residual stream cannot carry it",
                                e, l, from_layer);
        if (l < *min_layer) *min_layer = l;
    }
    return 0;
}

int edit_changes_act(const engine_edit *ed, int layer) {
    if (!ed || ed->kind != ENGINE_EDIT_ACTIVATION_OFFSET) return 0;
    for (int e = 0; e < ed->n; e++)
        if (ed->layer[e] == layer) return 1;
    return 0;
}

static int edit_applies(const engine_edit *ed, int e, size_t n, const edit_dims *d) {
    return !ed->seq_mask || ed->seq_mask[(size_t)e * (size_t)d->n_seq + (size_t)d->seq_of[n]];
}

void edit_offsets_forward(float *act, const engine_edit *ed, int layer, const edit_dims *d) {
    for (int e = 0; e < ed->n; e++) {
        if (ed->layer[e] != layer) continue;
        size_t j = (size_t)ed->neuron[e];
        for (size_t n = 0; n < d->N; n++)
            if (edit_applies(ed, e, n, d)) act[n * d->F + j] += ed->delta[e];
    }
}

void edit_offsets_backward(float *d_delta, const float *dact, const engine_edit *ed, int layer,
                           const edit_dims *d) {
    for (int e = 0; e < ed->n; e++) {
        if (ed->layer[e] != layer) continue;
        size_t j = (size_t)ed->neuron[e];
        double g = 0.0;
        for (size_t n = 0; n < d->N; n++)
            if (edit_applies(ed, e, n, d)) g += dact[n * d->F + j];
        d_delta[e] += (float)g;
    }
}

void edit_values_forward(float *y, const float *act, const engine_edit *ed, int layer,
                         const edit_dims *d) {
    for (int e = 0; e < ed->n; e++) {
        if (ed->layer[e] != layer) continue;
        size_t j = (size_t)ed->neuron[e];
        const float *delta = ed->delta + (size_t)e * d->D;
        for (size_t n = 0; n < d->N; n++) {
            if (!edit_applies(ed, e, n, d)) continue;
            float a = act[n * d->F + j];
            for (size_t i = 0; i < d->D; i++) y[n * d->D + i] += a * delta[i];
        }
    }
}

void edit_values_backward(float *d_delta, float *dact, const float *dy, const float *act,
                          const engine_edit *ed, int layer, const edit_dims *d) {
    for (int e = 0; e < ed->n; e++) {
        if (ed->layer[e] != layer) continue;
        size_t j = (size_t)ed->neuron[e];
        const float *delta = ed->delta + (size_t)e * d->D;
        float *dd = d_delta ? d_delta + (size_t)e * d->D : NULL;
        for (size_t n = 0; n < d->N; n++) {
            if (!edit_applies(ed, e, n, d)) continue;
            const float *g = dy + n * d->D;
            float a = act[n * d->F + j], s = 0.0f;
            for (size_t i = 0; i < d->D; i++) s += delta[i] * g[i];
            if (dd)
                for (size_t i = 0; i < d->D; i++) dd[i] += a * g[i];
            dact[n * d->F + j] += s;
        }
    }
}
