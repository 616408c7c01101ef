/* stage_locate_batch: the locate knobs, one fact read back from probe.h5, and the batch laid out as locate.h5's datasets. */
#include "locate/stage_locate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int locate_opts_from_config(const lafn_config *cfg, int n_layer, int n_ffn, locate_opts *o, lafn_err *err) {
    *o = (locate_opts){0};
    const char *scope, *set, *rank_by;
    double depth;
    int64_t top_k, max_n, min_n, seed;
    const int64_t *layers;
    size_t n;
    if (config_get_float(cfg, "locate.threshold", &o->threshold, err) ||
        config_get_string(cfg, "locate.threshold_scope", &scope, err) ||
        config_get_int(cfg, "locate.top_k", &top_k, err) ||
        config_get_float(cfg, "locate.prompt_fraction", &o->prompt_fraction, err) ||
        config_get_float(cfg, "locate.language_fraction", &o->language_fraction, err) ||
        config_get_float(cfg, "locate.min_language_fraction", &o->min_language_fraction, err) ||
        config_get_float(cfg, "locate.language_fraction_step", &o->language_fraction_step, err) ||
        config_get_int(cfg, "locate.max_neurons", &max_n, err) ||
        config_get_int(cfg, "locate.min_neurons", &min_n, err) ||
        config_get_int_list(cfg, "locate.edit_layers", &layers, &n, err) ||
        config_get_float(cfg, "locate.edit_from_depth", &depth, err) ||
        config_get_string(cfg, "locate.neuron_set", &set, err) || config_get_int(cfg, "run.seed", &seed, err) ||
        config_get_string(cfg, "locate.rank_by", &rank_by, err))
        return -1;
    o->contrast = strcmp(rank_by, "contrast") == 0;
    o->global_scope = strcmp(scope, "global") == 0;
    o->neuron_set = !strcmp(set, "language_specific") ? LOCATE_SET_LANGUAGE_SPECIFIC
                    : !strcmp(set, "random")          ? LOCATE_SET_RANDOM
                                                      : LOCATE_SET_LAFN;
    o->seed = (uint64_t)seed;
    o->n_ffn = n_ffn;
    o->top_k = (size_t)top_k;
    o->max_neurons = (size_t)max_n;
    o->min_neurons = (size_t)min_n;
    int first = (int)floor(depth * n_layer); /* < n_layer: depth <= 0.99 */
    size_t count = n ? n : first > 0 ? (size_t)(n_layer - first) : 0;
    if (count && !(o->edit_layers = malloc(count * sizeof *o->edit_layers)))
        return lafn_err_set(err, "locate.edit_layers: out of memory");
    for (size_t i = 0; i < count; i++) o->edit_layers[i] = n ? (int)layers[i] : first + (int)i;
    if (n) qsort(o->edit_layers, n, sizeof *o->edit_layers, cmp_int);
    o->n_edit_layers = count;
    return 0;
}

void locate_opts_free(locate_opts *o) {
    free(o->edit_layers);
    *o = (locate_opts){0};
}

void locate_input_free(locate_input *in) {
    free(in->prompt_lang); free(in->layer_max); free(in->n_above);
    free(in->k_prompt); free(in->k_layer); free(in->k_neuron); free(in->k_score); free(in->k_act);
    *in = (locate_input){0};
}

/* Reads one CSR row into *values; *n gets its length. */
static int read_row(hid_t file, const char *path, const char *name, h5out_dtype t, size_t row, void **values,
                    size_t *n, lafn_err *err) {
    int64_t *off = NULL;
    if (h5out_read_csr(file, path, name, t, row, 1, &off, values, err) != 0) return -1;
    *n = (size_t)off[1];
    free(off);
    return 0;
}

/* Checks the counts and indices of a fact read from probe.h5. */
static int check_input(const locate_input *in, const char *path, size_t n_layer_entries, size_t n_langs, int n_ffn,
                       lafn_err *err) {
    if (n_layer_entries != in->n_prompts * in->n_probed)
        return lafn_err_set(err, "%s: fact %lld: layer/max has %zu entries, expected %zu prompts x %zu layers", path,
                            (long long)in->index, n_layer_entries, in->n_prompts, in->n_probed);
    for (size_t q = 0; q < in->n_prompts; q++)
        if (in->prompt_lang[q] < 0 || (size_t)in->prompt_lang[q] >= n_langs)
            return lafn_err_set(err, "%s: fact %lld: prompt/lang[%zu] = %d, expected 0..%zu", path,
                                (long long)in->index, q, in->prompt_lang[q], n_langs - 1);
    for (size_t e = 1; e < in->n_kept; e++) {
        int32_t a[3] = {in->k_prompt[e - 1], in->k_layer[e - 1], in->k_neuron[e - 1]};
        int32_t b[3] = {in->k_prompt[e], in->k_layer[e], in->k_neuron[e]};
        int order = a[0] != b[0] ? a[0] < b[0] : a[1] != b[1] ? a[1] < b[1] : a[2] < b[2];
        if (!order)
            return lafn_err_set(err, "%s: fact %lld: kept entries %zu and %zu are not ordered by prompt, layer, "
                                "neuron", path, (long long)in->index, e - 1, e);
    }
    for (size_t e = 0; e < in->n_kept; e++) {
        int ok_layer = 0;
        for (size_t y = 0; y < in->n_probed; y++) ok_layer |= in->layers[y] == in->k_layer[e];
        if (in->k_prompt[e] < 0 || (size_t)in->k_prompt[e] >= in->n_prompts || !ok_layer || in->k_neuron[e] < 0 ||
            in->k_neuron[e] >= n_ffn)
            return lafn_err_set(err, "%s: fact %lld: kept entry %zu (prompt %d, layer %d, neuron %d) outside the "
                                "fact's %zu prompts, the probed layers or 0..%d", path, (long long)in->index, e,
                                in->k_prompt[e], in->k_layer[e], in->k_neuron[e], in->n_prompts, n_ffn - 1);
    }
    return 0;
}

int locate_input_read(hid_t file, const char *path, size_t row, const int32_t *layers, size_t n_probed,
                      size_t n_langs, int n_ffn, locate_input *in, lafn_err *err) {
    *in = (locate_input){.layers = layers, .n_probed = n_probed};
    size_t n_lay = 0, n_above = 0, n[5] = {0};
    int64_t *idx = NULL;
    if (h5out_read_rows(file, path, "facts", H5OUT_I64, 0, row, 1, (void **)&idx, err) != 0) return -1;
    in->index = idx[0];
    free(idx);
    if (read_row(file, path, "prompt/lang", H5OUT_I32, row, (void **)&in->prompt_lang, &in->n_prompts, err) ||
        read_row(file, path, "layer/max", H5OUT_F32, row, (void **)&in->layer_max, &n_lay, err) ||
        read_row(file, path, "layer/n_above", H5OUT_I32, row, (void **)&in->n_above, &n_above, err) ||
        read_row(file, path, "kept/prompt", H5OUT_I32, row, (void **)&in->k_prompt, &n[0], err) ||
        read_row(file, path, "kept/layer", H5OUT_I32, row, (void **)&in->k_layer, &n[1], err) ||
        read_row(file, path, "kept/neuron", H5OUT_I32, row, (void **)&in->k_neuron, &n[2], err) ||
        read_row(file, path, "kept/score", H5OUT_F32, row, (void **)&in->k_score, &n[3], err) ||
        read_row(file, path, "kept/act_last", H5OUT_F32, row, (void **)&in->k_act, &n[4], err))
        goto fail;
    in->n_kept = n[0];
    if (n_above != n_lay || n[1] != n[0] || n[2] != n[0] || n[3] != n[0] || n[4] != n[0]) {
        lafn_err_set(err, "%s: fact %lld: the kept/... (%zu %zu %zu %zu %zu) or layer/... (%zu %zu) rows differ in "
                     "length", path, (long long)in->index, n[0], n[1], n[2], n[3], n[4], n_lay, n_above);
        goto fail;
    }
    if (check_input(in, path, n_lay, n_langs, n_ffn, err) != 0) goto fail;
    return 0;
fail:
    locate_input_free(in);
    return -1;
}

/* The vectors of b with their element sizes, in dataset order. */
static grow_vec *batch_vec(locate_batch *b, int i) {
    grow_vec *v[] = {&b->lafn_layer, &b->lafn_neuron, &b->lafn_score, &b->lafn_nlangs, &b->lafn_act_mean,
                      &b->lafn_act_min, &b->lafn_gate, &b->dset_lang, &b->dset_layer, &b->dset_neuron,
                      &b->dset_score, &b->spec_lang, &b->spec_layer, &b->spec_neuron, &b->spec_score,
                      &b->spec_act_mean, &b->spec_gate, &b->edit_layer, &b->edit_neuron, &b->edit_act_mean,
                      &b->edit_gate};
    return i < (int)(sizeof v / sizeof v[0]) ? v[i] : NULL;
}

int locate_batch_init(locate_batch *b, size_t cap_facts, size_t n_langs, size_t n_layer, lafn_err *err) {
    *b = (locate_batch){.cap_facts = cap_facts, .n_langs = n_langs, .n_layer = n_layer};
    for (int i = 0; batch_vec(b, i); i++) batch_vec(b, i)->elem = 4;
    b->facts = malloc(cap_facts * sizeof *b->facts);
    b->off_lafn = calloc(cap_facts + 1, sizeof(int64_t));
    b->off_dset = calloc(cap_facts + 1, sizeof(int64_t));
    b->off_spec = calloc(cap_facts + 1, sizeof(int64_t));
    b->off_edit = calloc(cap_facts + 1, sizeof(int64_t));
    b->status = calloc(cap_facts * LOCATE_STATUS_LEN, sizeof *b->status);
    b->lang_fraction = calloc(cap_facts, sizeof *b->lang_fraction);
    b->layer_hist = calloc(cap_facts * n_layer, sizeof *b->layer_hist);
    b->pairs = calloc(cap_facts * 2 * n_langs * n_langs, sizeof *b->pairs);
    if (!b->facts || !b->off_lafn || !b->off_dset || !b->off_spec || !b->off_edit || !b->status ||
        !b->lang_fraction || !b->layer_hist || !b->pairs) {
        locate_batch_free(b);
        return lafn_err_set(err, "locate: out of memory for a batch of %zu facts", cap_facts);
    }
    return 0;
}

void locate_batch_reset(locate_batch *b) {
    for (int i = 0; batch_vec(b, i); i++) batch_vec(b, i)->n = 0;
    b->n_facts = 0;
}

void locate_batch_free(locate_batch *b) {
    for (int i = 0; batch_vec(b, i); i++) grow_vec_free(batch_vec(b, i));
    free(b->facts); free(b->off_lafn); free(b->off_dset); free(b->off_spec); free(b->off_edit);
    free(b->status); free(b->lang_fraction); free(b->layer_hist); free(b->pairs);
    *b = (locate_batch){0};
}

void locate_batch_datasets(const locate_batch *b, h5out_dataset ds[LOCATE_N_DATASETS]) {
    const int64_t *ol = b->off_lafn, *od = b->off_dset, *os = b->off_spec, *oe = b->off_edit;
    h5out_dataset d[LOCATE_N_DATASETS] = {
        {"lafn/layer", H5OUT_CSR, H5OUT_I32, 0, b->lafn_layer.v, ol},
        {"lafn/neuron", H5OUT_CSR, H5OUT_I32, 0, b->lafn_neuron.v, ol},
        {"lafn/score", H5OUT_CSR, H5OUT_F32, 0, b->lafn_score.v, ol},
        {"lafn/n_langs", H5OUT_CSR, H5OUT_I32, 0, b->lafn_nlangs.v, ol},
        {"lafn/act_mean", H5OUT_CSR, H5OUT_F32, 0, b->lafn_act_mean.v, ol},
        {"lafn/act_min_abs", H5OUT_CSR, H5OUT_F32, 0, b->lafn_act_min.v, ol},
        {"lafn/gate_threshold", H5OUT_CSR, H5OUT_F32, 0, b->lafn_gate.v, ol},
        {"dset/lang", H5OUT_CSR, H5OUT_I32, 0, b->dset_lang.v, od},
        {"dset/layer", H5OUT_CSR, H5OUT_I32, 0, b->dset_layer.v, od},
        {"dset/neuron", H5OUT_CSR, H5OUT_I32, 0, b->dset_neuron.v, od},
        {"dset/score", H5OUT_CSR, H5OUT_F32, 0, b->dset_score.v, od},
        {"specific/lang", H5OUT_CSR, H5OUT_I32, 0, b->spec_lang.v, os},
        {"specific/layer", H5OUT_CSR, H5OUT_I32, 0, b->spec_layer.v, os},
        {"specific/neuron", H5OUT_CSR, H5OUT_I32, 0, b->spec_neuron.v, os},
        {"specific/score", H5OUT_CSR, H5OUT_F32, 0, b->spec_score.v, os},
        {"specific/act_mean", H5OUT_CSR, H5OUT_F32, 0, b->spec_act_mean.v, os},
        {"specific/gate_threshold", H5OUT_CSR, H5OUT_F32, 0, b->spec_gate.v, os},
        {"edit/layer", H5OUT_CSR, H5OUT_I32, 0, b->edit_layer.v, oe},
        {"edit/neuron", H5OUT_CSR, H5OUT_I32, 0, b->edit_neuron.v, oe},
        {"edit/act_mean", H5OUT_CSR, H5OUT_F32, 0, b->edit_act_mean.v, oe},
        {"edit/gate_threshold", H5OUT_CSR, H5OUT_F32, 0, b->edit_gate.v, oe},
        {"status", H5OUT_ROWS, H5OUT_I32, LOCATE_STATUS_LEN, b->status, NULL},
        {"language_fraction", H5OUT_ROWS, H5OUT_F64, 1, b->lang_fraction, NULL},
        {"layer_hist", H5OUT_ROWS, H5OUT_I32, b->n_layer, b->layer_hist, NULL},
        {"pairs", H5OUT_ROWS, H5OUT_I32, 2 * b->n_langs * b->n_langs, b->pairs, NULL},
    };
    memcpy(ds, d, sizeof d);
}
