/* fuzz_locate_h5: a locate.h5 as the edit stage reads it — identity attributes, facts, status and the neurons handed to edit. */
#include "edit/stage_edit.h"
#include "fuzz_util.h"

/* Gemma 3 270M, the model of the seed's run: 18 layers of 2048 FFN neurons. */
enum { N_LAYER = 18, D_FFN = 2048 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hid_t file = fuzz_h5_open("locate.h5", data, size);
    if (file < 0) return 0;
    edit_neurons n;
    lafn_err err;
    h5out_check_identity(file, "locate.h5", "locate", "71f93764ea95ae62", &err); /* the seed's run id */
    if (edit_neurons_read_file(file, "locate.h5", N_LAYER, D_FFN, &n, &err) == 0) {
        for (size_t i = 0; i < n.n_facts; i++) edit_neurons_find(&n, n.facts[i]);
        edit_neurons_free(&n);
    }
    H5Fclose(file);
    return 0;
}
