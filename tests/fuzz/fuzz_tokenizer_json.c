/* fuzz_tokenizer_json: a Hugging Face tokenizer folder — tokenizer.json, tokenizer_config.json, config.json — then encoding and decoding. */
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "config.json"};

/* Input: tokenizer.json, then NUL and tokenizer_config.json, then NUL and config.json (each optional after the first). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_parts(data, size, files, 3);
    tokenizer *t = NULL;
    lafn_err err;
    if (tokenizer_from_hf_folder(&t, fuzz_dir(), &err)) return 0;
    fuzz_use_tokenizer(t);
    tokenizer_free(t);
    return 0;
}
