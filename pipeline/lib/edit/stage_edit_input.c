/* stage_edit_input: reads the neurons locate.h5 hands to the edit stage, trusting nothing. */
#include "edit/stage_edit.h"
#include "locate/stage_locate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void edit_neurons_free(edit_neurons *n) {
    free(n->facts);
    free(n->found);
    free(n->offsets);
    free(n->layer);
    free(n->neuron);
    free(n->sign);
    free(n->threshold);
    memset(n, 0, sizeof *n);
}

long edit_neurons_find(const edit_neurons *n, int64_t fact) {
    for (size_t i = 0; i < n->n_facts; i++)
        if (n->facts[i] == fact) return (long)i;
    return -1;
}

/* Checks the lists read: every neuron inside the model, thresholds finite and >= 0. */
static int check_neurons(const edit_neurons *n, const char *path, int n_layer, int d_ffn, lafn_err *err) {
    for (size_t i = 0; i < n->n_facts; i++)
        for (int64_t k = n->offsets[i]; k < n->offsets[i + 1]; k++) {
            if (n->layer[k] < 0 || n->layer[k] >= n_layer || n->neuron[k] < 0 || n->neuron[k] >= d_ffn)
                return lafn_err_set(err, "%s: edit/layer, edit/neuron of fact %lld: blk.%d.ffn_down neuron %d outside "
                                    "%d layers x %d neurons", path, (long long)n->facts[i], (int)n->layer[k],
                                    (int)n->neuron[k], n_layer, d_ffn);
            if (!isfinite(n->threshold[k]) || n->threshold[k] < 0.0f || !isfinite(n->sign[k]))
                return lafn_err_set(err, "%s: edit/gate_threshold or edit/act_mean of fact %lld, blk.%d neuron %d: "
                                    "%g, %g, expected finite values, the threshold >= 0",
                                    path, (long long)n->facts[i], (int)n->layer[k], (int)n->neuron[k],
                                    (double)n->threshold[k], (double)n->sign[k]);
        }
    return 0;
}

/* Reads CSR dataset NAME of n_facts rows. */
static int read_field(hid_t file, const char *path, const char *name, h5out_dtype dtype, size_t n_facts,
                      int64_t **offsets, void **values, lafn_err *err) {
    h5out_dataset ds = {.name = name, .layout = H5OUT_CSR, .dtype = dtype};
    return h5out_read_dataset(file, path, &ds, n_facts, values, offsets, err);
}

/* Column 0 of locate's status rows (found). */
static int read_found(hid_t file, const char *path, edit_neurons *out, lafn_err *err) {
    int32_t *st = NULL;
    size_t n_rows = 0;
    if (h5out_read_all(file, path, "status", H5OUT_I32, LOCATE_STATUS_LEN, (void **)&st, &n_rows, err)) return -1;
    if (n_rows != out->n_facts) {
        free(st);
        return lafn_err_set(err, "%s: dataset status has %zu rows, /facts has %zu", path, n_rows, out->n_facts);
    }
    if (!(out->found = malloc((n_rows + 1) * sizeof *out->found))) {
        free(st);
        return lafn_err_set(err, "%s: out of memory for %zu rows", path, n_rows);
    }
    for (size_t i = 0; i < n_rows; i++) out->found[i] = st[i * LOCATE_STATUS_LEN];
    free(st);
    return 0;
}

int edit_neurons_read_file(hid_t file, const char *path, int n_layer, int d_ffn, edit_neurons *out, lafn_err *err) {
    int64_t *o[3] = {0};
    memset(out, 0, sizeof *out);
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&out->facts, &out->n_facts, err) ||
        read_found(file, path, out, err))
        goto fail;
    size_t n = out->n_facts;
    if (read_field(file, path, "edit/layer", H5OUT_I32, n, &out->offsets, (void **)&out->layer, err) ||
        read_field(file, path, "edit/neuron", H5OUT_I32, n, &o[0], (void **)&out->neuron, err) ||
        read_field(file, path, "edit/act_mean", H5OUT_F32, n, &o[1], (void **)&out->sign, err) ||
        read_field(file, path, "edit/gate_threshold", H5OUT_F32, n, &o[2], (void **)&out->threshold, err))
        goto fail;
    for (int k = 0; k < 3; k++)
        if (memcmp(out->offsets, o[k], (n + 1) * sizeof *o[k])) {
            lafn_err_set(err, "%s: edit/layer, edit/neuron, edit/act_mean and edit/gate_threshold have different offsets",
                         path);
            goto fail;
        }
    for (int64_t k = 0; k < out->offsets[n]; k++)
        out->sign[k] = out->sign[k] < 0.0f ? -1.0f : out->sign[k] > 0.0f ? 1.0f : 0.0f;
    if (check_neurons(out, path, n_layer, d_ffn, err)) goto fail;
    for (int k = 0; k < 3; k++) free(o[k]);
    return 0;
fail:
    for (int k = 0; k < 3; k++) free(o[k]);
    edit_neurons_free(out);
    return -1;
}

int edit_neurons_read(const char *path, const char *run_id, int n_layer, int d_ffn, MPI_Comm comm,
                      edit_neurons *out, lafn_err *err) {
    hid_t file = H5I_INVALID_HID;
    memset(out, 0, sizeof *out);
    if (h5out_open(path, "locate", run_id, comm, &file, err)) return -1;
    int rc = edit_neurons_read_file(file, path, n_layer, d_ffn, out, err);
    H5Fclose(file);
    return rc;
}
