/* fuzz_edit_h5: an edit.h5 as eval reads it — identity, file kind and the stored edits. */
#include <stdlib.h>

#include "edit/stage_edit.h"
#include "fuzz_util.h"

/* Gemma 3 270M, the model of the seed's run: model width 640. */
enum { D_MODEL = 640 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hid_t file = fuzz_h5_open("edit.h5", data, size);
    if (file < 0) return 0;
    edit_store s;
    lafn_err err;
    char *kind = NULL;
    h5out_check_identity(file, "edit.h5", "edit", "9a9805d351f03ccd", &err); /* the seed's run id */
    if (h5out_attr_string(file, "lafn_file_kind", &kind, &err) == 0) free(kind);
    if (edit_store_read_file(file, "edit.h5", D_MODEL, &s, &err) == 0) edit_store_free(&s);
    H5Fclose(file);
    return 0;
}
