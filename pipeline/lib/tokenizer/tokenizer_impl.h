/* tokenizer_impl: the tokenizer's internal state and the pieces shared by its source files. */
#ifndef LAFN_TOKENIZER_IMPL_H
#define LAFN_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"
#include "tokenizer/tokenizer.h"

/* Token types as numbered in GGUF (tokenizer.ggml.token_type). */
enum {
    TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6,
};

/* How a SentencePiece-style tokenizer joins symbols. */
typedef enum {
    TOK_SPM_MERGE_SCORES, /* highest piece score first (GGUF "llama" model) */
    TOK_SPM_MERGE_RANKS,  /* lowest merge rank first (HF tokenizer.json BPE with byte_fallback) */
} tok_spm_merge;

/* When a space is prepended to a fragment of text (fragments are the pieces
 * between user-defined/added tokens). */
typedef enum {
    TOK_PREFIX_NONE,
    TOK_PREFIX_AFTER_SPECIAL, /* llama.cpp add_space_prefix: at the start and after any special piece */
    TOK_PREFIX_FIRST,         /* HF prepend_scheme "first": only the fragment at the start of the text */
    TOK_PREFIX_ALWAYS,        /* HF Prepend normalizer / prepend_scheme "always": every fragment */
} tok_prefix;

/* Where a fragment sits (flags). */
enum { TOK_AT_START = 1, TOK_AFTER_SPECIAL = 2 };

#define TOK_MAX_REGEX 8

/* The pre-tokenizer: regexes applied in turn, each splitting every piece of
 * the previous split into its matches and the gaps between them. */
typedef struct {
    size_t n;
    void *code[TOK_MAX_REGEX]; /* pcre2_code_8 * */
} tok_pretok;

/* A growable list of ids. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} tok_ids;

struct tokenizer {
    tokenizer_kind kind;
    size_t n_vocab;
    char *text;             /* every piece, NUL-terminated, back to back */
    size_t *off;            /* (V) offset of piece i in text */
    uint32_t *len;          /* (V) byte length of piece i */
    float *score;           /* (V) SPM piece scores; NULL when merging by rank */
    uint8_t *type;          /* (V) TOK_TYPE_* */
    int32_t *slot;          /* piece hash table (open addressing, -1 = empty) */
    size_t slot_mask;
    uint64_t *pair_key;     /* merge table: (left id << 32 | right id), UINT64_MAX = empty */
    int32_t *pair_rank;
    size_t pair_mask;
    int32_t *special;       /* ids matched verbatim in the text before splitting, longest first */
    size_t n_special;
    int32_t byte_id[256];   /* SPM: id of <0xXX>; BPE: id of the byte's mapped character; -1 if none */
    uint16_t cp_of_byte[256]; /* BPE: the code point standing for each byte */
    int16_t byte_of_cp[512]; /* BPE: the byte a mapped code point stands for, -1 if none */
    int32_t bos, eos, unk;
    int add_bos;
    tok_prefix prefix;      /* when a space is put before a fragment of text */
    int prefix_if_absent;   /* ... only if the fragment does not already start with one (HF) */
    int spm_split;          /* SPM: words start at every "▁" (HF Metaspace split) */
    int ignore_merges;      /* a word that is a whole piece is emitted without merging */
    int nfc;                /* HF normalizer NFC: fragments are put in normalisation form C first */
    tok_spm_merge spm_merge;
    tok_pretok pre;         /* BPE only */
};

/* Allocates a tokenizer with room for n pieces of text_bytes bytes in total
 * (pieces are then appended with tok_vocab_set). */
int tok_alloc(tokenizer **out, tokenizer_kind kind, size_t n, size_t text_bytes, int with_scores,
              lafn_err *err);
/* Stores piece i (ids set in increasing order; *pos is the running text offset). */
void tok_vocab_set(tokenizer *t, size_t i, const char *s, size_t len, size_t *pos);
/* Builds the piece hash table (a later duplicate piece wins, as in llama.cpp). */
int tok_build_index(tokenizer *t, lafn_err *err);
/* Id of the piece with exactly these bytes, or -1. */
int32_t tok_find(const tokenizer *t, const char *s, size_t len);
/* Merge table: allocates room for n merges, then adds (left, right) -> rank. */
int tok_pairs_alloc(tokenizer *t, size_t n, lafn_err *err);
void tok_pairs_add(tokenizer *t, int32_t left, int32_t right, int32_t rank);
int32_t tok_pair_rank(const tokenizer *t, int32_t left, int32_t right); /* -1 if no merge */
/* Collects the ids of the given type into t->special, longest piece first. */
int tok_collect_special(tokenizer *t, int type, lafn_err *err);
/* Fills t->byte_id from the <0xXX> pieces (SPM), typing them as bytes. */
void tok_spm_byte_ids(tokenizer *t);

int tok_ids_push(tok_ids *v, int32_t id);

/* Splits one word into characters and joins them (SPM: by scores or ranks,
 * spaces already "▁"; BPE: by ranks, bytes already mapped), appending ids. */
int tok_merge_word(const tokenizer *t, const char *w, size_t n, tok_ids *out, lafn_err *err);
/* Byte-level BPE: fills byte_id / byte_of_cp from the GPT-2 byte map, and
 * encodes one pre-tokenized word of raw bytes. */
void tok_bpe_init_bytes(tokenizer *t);
int tok_bpe_encode(const tokenizer *t, const char *s, size_t n, tok_ids *out, lafn_err *err);
/* Parses "left right" merges into the merge table; what names the source for errors. */
int tok_bpe_add_merge(tokenizer *t, const char *m, size_t len, int32_t rank, const char *what,
                      lafn_err *err);

/* Pre-tokenizer: compile the patterns of a named family (GGUF tokenizer.ggml.pre;
 * *ignore_merges and *add_bos receive the family's defaults), or one explicit
 * pattern (tokenizer.json Split); split text, calling emit per piece. */
int tok_pretok_by_name(tok_pretok *p, const char *name, size_t name_len, int *ignore_merges,
                       int *add_bos, lafn_err *err);
int tok_pretok_add(tok_pretok *p, const char *pattern, size_t len, lafn_err *err);
void tok_pretok_free(tok_pretok *p);
typedef int (*tok_emit_fn)(void *ctx, const char *s, size_t n);
int tok_pretok_split(const tok_pretok *p, const char *s, size_t n, tok_emit_fn emit, void *ctx,
                     lafn_err *err);

#endif
