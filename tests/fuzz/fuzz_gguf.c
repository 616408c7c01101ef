/* fuzz_gguf: a GGUF file — header, metadata, tensor table — then the model configuration and the tokenizer read from it. */
#include <stdlib.h>

#include "formats/gguf.h"
#include "fuzz_util.h"
#include "model/model_load_int.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, "model.gguf", data, size);
    gguf_file *f = NULL;
    lafn_err err;
    if (gguf_open(&f, path, &err)) return 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++) gguf_find_tensor(f, gguf_tensor_at(f, i)->name);
    model_config cfg;
    char *name = NULL;
    if (model_gguf_config(f, &cfg, &name, &err) == 0) free(name);
    tokenizer *t = NULL;
    if (tokenizer_from_gguf(&t, f, &err) == 0) {
        fuzz_use_tokenizer(t);
        tokenizer_free(t);
    }
    gguf_close(f);
    return 0;
}
