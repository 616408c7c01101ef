/* tokenizer: placeholder until the real implementation lands (replaced shortly). */
#include "tokenizer.h"

int tokenizer_from_gguf(tokenizer **out, const gguf_file *f, lafn_err *err)
{
    (void)f; *out = NULL;
    return lafn_err_set(err, "tokenizer_from_gguf: not implemented yet");
}
int tokenizer_from_hf_folder(tokenizer **out, const char *folder, lafn_err *err)
{
    (void)folder; *out = NULL;
    return lafn_err_set(err, "tokenizer_from_hf_folder: not implemented yet");
}
void tokenizer_free(tokenizer *t) { (void)t; }
tokenizer_kind tokenizer_get_kind(const tokenizer *t) { (void)t; return TOKENIZER_KIND_SPM; }
int tokenizer_vocab_size(const tokenizer *t) { (void)t; return 0; }
int tokenizer_bos(const tokenizer *t) { (void)t; return -1; }
int tokenizer_eos(const tokenizer *t) { (void)t; return -1; }
int tokenizer_adds_bos(const tokenizer *t) { (void)t; return 0; }
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos,
                     int32_t *ids, size_t cap, size_t *n_out, lafn_err *err)
{
    (void)t; (void)text; (void)len; (void)add_bos; (void)ids; (void)cap; *n_out = 0;
    return lafn_err_set(err, "tokenizer_encode: not implemented yet");
}
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, lafn_err *err)
{
    (void)t; (void)ids; (void)n;
    lafn_err_set(err, "tokenizer_decode: not implemented yet");
    return NULL;
}
const char *tokenizer_piece(const tokenizer *t, int32_t id) { (void)t; (void)id; return NULL; }
