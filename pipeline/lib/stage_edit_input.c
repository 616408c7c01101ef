/* stage_edit_input: reads the neurons locate.h5 hands to the edit stage, trusting nothing. */
#include "stage_edit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void edit_neurons_free(edit_neurons *n) {
    free(n->facts);
    free(n->status);
    free(n->offsets);
    free(n->layer);
    free(n->neuron);
    free(n->threshold);
    memset(n, 0, sizeof *n);
}

long edit_neurons_find(const edit_neurons *n, int64_t fact) {
    for (size_t i = 0; i < n->n_facts; i++)
        if (n->facts[i] == fact) return (long)i;
    return -1;
}

/* Checks the lists read: every neuron inside the model, thresholds finite and >= 0. */
static int check_neurons(const edit_neurons *n, const char *path, const char *set, int n_layer, int d_ffn,
                         lafn_err *err) {
    for (size_t i = 0; i < n->n_facts; i++)
        for (int64_t k = n->offsets[i]; k < n->offsets[i + 1]; k++) {
            if (n->layer[k] < 0 || n->layer[k] >= n_layer || n->neuron[k] < 0 || n->neuron[k] >= d_ffn)
                return lafn_err_set(err, "%s: %s of fact %lld: neuron blk.%d.ffn_down[%d] outside %d layers x %d neurons",
                                    path, set, (long long)n->facts[i], (int)n->layer[k], (int)n->neuron[k], n_layer, d_ffn);
            if (!isfinite(n->threshold[k]) || n->threshold[k] < 0.0f)
                return lafn_err_set(err, "%s: %s/threshold of fact %lld, blk.%d neuron %d: %g, expected a finite value >= 0",
                                    path, set, (long long)n->facts[i], (int)n->layer[k], (int)n->neuron[k],
                                    (double)n->threshold[k]);
        }
    return 0;
}

/* Reads CSR dataset SET/FIELD and checks its offsets equal the first field's. */
static int read_field(hid_t file, const char *path, const char *set, const char *field, h5out_dtype dtype,
                      size_t n_facts, int64_t **offsets, void **values, lafn_err *err) {
    char name[128];
    snprintf(name, sizeof name, "%s/%s", set, field);
    h5out_dataset ds = {.name = name, .layout = H5OUT_CSR, .dtype = dtype};
    return h5out_read_dataset(file, path, &ds, n_facts, values, offsets, err);
}

int edit_neurons_read(const char *path, const char *run_id, const char *set, int n_layer, int d_ffn, MPI_Comm comm,
                      edit_neurons *out, lafn_err *err) {
    hid_t file = H5I_INVALID_HID;
    int64_t *off2 = NULL, *off3 = NULL;
    size_t n_rows = 0;
    memset(out, 0, sizeof *out);
    if (h5out_open(path, "locate", run_id, comm, &file, err)) return -1;
    if (h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&out->facts, &out->n_facts, err)) goto fail;
    h5out_dataset st = {.name = "status", .layout = H5OUT_ROWS, .dtype = H5OUT_I32, .row_len = 1};
    if (h5out_read_all(file, path, st.name, H5OUT_I32, 1, (void **)&out->status, &n_rows, err)) goto fail;
    if (n_rows != out->n_facts) {
        lafn_err_set(err, "%s: dataset status has %zu rows, /facts has %zu", path, n_rows, out->n_facts);
        goto fail;
    }
    if (read_field(file, path, set, "layer", H5OUT_I32, out->n_facts, &out->offsets, (void **)&out->layer, err) ||
        read_field(file, path, set, "neuron", H5OUT_I32, out->n_facts, &off2, (void **)&out->neuron, err) ||
        read_field(file, path, set, "threshold", H5OUT_F32, out->n_facts, &off3, (void **)&out->threshold, err))
        goto fail;
    if (memcmp(out->offsets, off2, (out->n_facts + 1) * sizeof *off2) ||
        memcmp(out->offsets, off3, (out->n_facts + 1) * sizeof *off3)) {
        lafn_err_set(err, "%s: %s/layer, %s/neuron and %s/threshold have different offsets", path, set, set, set);
        goto fail;
    }
    if (check_neurons(out, path, set, n_layer, d_ffn, err)) goto fail;
    free(off2);
    free(off3);
    H5Fclose(file);
    return 0;
fail:
    free(off2);
    free(off3);
    H5Fclose(file);
    edit_neurons_free(out);
    return -1;
}
