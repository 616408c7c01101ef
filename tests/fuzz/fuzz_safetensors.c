/* fuzz_safetensors: a .safetensors file — length, JSON header, tensor table — and every tensor's first elements converted to f32. */
#include "formats/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, "model.safetensors", data, size);
    safetensors_file *f = NULL;
    lafn_err err;
    if (safetensors_open(&f, path, &err)) return 0;
    float buf[16];
    for (size_t i = 0; i < safetensors_n_tensors(f); i++) {
        const safetensors_tensor *t = safetensors_tensor_at(f, i);
        safetensors_find(f, t->name);
        safetensors_to_f32(t, 0, t->n_elements < 16 ? t->n_elements : 16, buf);
        if (t->n_elements > 0) safetensors_to_f32(t, t->n_elements - 1, 1, buf);
        safetensors_to_f32(t, t->n_elements, 1, buf); /* past the end: must be refused */
    }
    safetensors_close(f);
    return 0;
}
