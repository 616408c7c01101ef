/* tokenizer: the model's own tokenizer (SentencePiece-style or byte-level BPE), read from the model file. */
#ifndef LAFN_TOKENIZER_H
#define LAFN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "base/lafn_err.h"

typedef enum {
    TOKENIZER_KIND_SPM, /* SentencePiece-style: pieces with scores (or BPE merges) and byte fallback, "▁" for spaces */
    TOKENIZER_KIND_BPE, /* byte-level BPE (GPT-2 byte map, merges, pre-tokenizer regex) */
} tokenizer_kind;

typedef struct tokenizer tokenizer;

/* Builds the tokenizer from GGUF metadata (tokenizer.ggml.*). For BPE the
 * pre-tokenizer regex is chosen from tokenizer.ggml.pre (lafn carries the
 * regexes of the families it supports; an unknown name is an error naming it).
 * Returns 0 and *out (release with tokenizer_free), or -1 with err. */
int tokenizer_from_gguf(tokenizer **out, const gguf_file *f, lafn_err *err);

/* Builds the tokenizer from a Hugging Face tokenizer.json (model.type BPE with
 * byte_fallback = SentencePiece-style; ByteLevel pre-tokenizer = byte-level
 * BPE) and the folder's tokenizer_config.json / config.json for BOS handling. */
int tokenizer_from_hf_folder(tokenizer **out, const char *folder, lafn_err *err);

void tokenizer_free(tokenizer *t);

tokenizer_kind tokenizer_get_kind(const tokenizer *t);
int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_bos(const tokenizer *t);      /* -1 if none */
int tokenizer_eos(const tokenizer *t);      /* -1 if none */
int tokenizer_adds_bos(const tokenizer *t); /* the model's convention for prompts */

/* Encodes len bytes of UTF-8 text (no special tokens are parsed from the text).
 * If add_bos and the tokenizer has a BOS, it is prepended. Writes up to cap ids
 * into ids and the total count into *n_out (which may exceed cap: call again
 * with a larger buffer). Returns 0, or -1 with err (invalid UTF-8 is encoded
 * through byte fallback / byte map, not rejected). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos,
                     int32_t *ids, size_t cap, size_t *n_out, lafn_err *err);

/* Decodes ids to UTF-8 (special tokens such as BOS/EOS are dropped). Returns a
 * malloc'ed NUL-terminated string owned by the caller, or NULL with err. */
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, lafn_err *err);

/* The piece text of one id as stored in the vocabulary (not decoded); NULL if out of range. */
const char *tokenizer_piece(const tokenizer *t, int32_t id);

#endif
