/* tokenizer_pretok: pre-tokenizer regexes of the byte-level BPE families (as llama.cpp's llama-vocab.cpp), run with PCRE2. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"
#include "base/utf8.h"

#define TOK_RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define TOK_RE_LLAMA3                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TOK_RE_QWEN2                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *names;            /* '|'-separated tokenizer.ggml.pre values */
    const char *re[TOK_MAX_REGEX];
    int ignore_merges, add_bos;
} tok_pretok_family;

static const tok_pretok_family tok_families[] = {
    { "default", { "[\\p{P}\\$\\+<=>\\^~\\|]+", TOK_RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" }, 0, 0 },
    { "gpt2|gpt-2|phi-2|mpt|olmo|jais|exaone4", { TOK_RE_GPT2 }, 0, 0 },
    { "smollm|starcoder|refact|command-r|codeshell|exaone|minerva-7b", { "\\p{N}", TOK_RE_GPT2 }, 0, 0 },
    { "llama3|llama-v3|llama-bpe|falcon3|pixtral", { TOK_RE_LLAMA3 }, 1, 1 },
    { "dbrx|smaug-bpe", { TOK_RE_LLAMA3 }, 0, 0 },
    { "qwen2|deepseek-r1-qwen|stablelm2|megrez", { TOK_RE_QWEN2 }, 0, 0 },
};

static int tok_name_in(const char *names, const char *name, size_t len)
{
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && memcmp(p, name, len) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

int tok_pretok_add(tok_pretok *p, const char *pattern, size_t len, lafn_err *err)
{
    if (p->n == TOK_MAX_REGEX) return lafn_err_set(err, "pre-tokenizer: more than %d regexes", TOK_MAX_REGEX);
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return lafn_err_set(err, "pre-tokenizer regex '%.*s': PCRE2 error at offset %zu: %s",
                            (int)(len < 200 ? len : 200), pattern, (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is the fallback */
    p->code[p->n++] = re;
    return 0;
}

int tok_pretok_by_name(tok_pretok *p, const char *name, size_t name_len, int *ignore_merges,
                       int *add_bos, lafn_err *err)
{
    size_t n_fam = sizeof(tok_families) / sizeof(tok_families[0]);
    for (size_t f = 0; f < n_fam; f++) {
        if (!tok_name_in(tok_families[f].names, name, name_len)) continue;
        for (size_t k = 0; k < TOK_MAX_REGEX && tok_families[f].re[k]; k++) {
            const char *re = tok_families[f].re[k];
            if (tok_pretok_add(p, re, strlen(re), err) != 0) return -1;
        }
        *ignore_merges = tok_families[f].ignore_merges;
        *add_bos = tok_families[f].add_bos;
        return 0;
    }
    return lafn_err_set(err, "tokenizer.ggml.pre '%.*s' is not a pre-tokenizer lafn knows (supported: "
                        "default, gpt2, smollm, llama-bpe/llama3, qwen2 and their aliases in tokenizer_pretok.c)",
                        (int)(name_len < 100 ? name_len : 100), name);
}

void tok_pretok_free(tok_pretok *p)
{
    for (size_t k = 0; k < p->n; k++) pcre2_code_free(p->code[k]);
    p->n = 0;
}

/* Applies regex k to s[0..n): matches and the gaps between them go to stage k + 1. */
static int tok_pretok_stage(const tok_pretok *p, size_t k, const char *s, size_t n, tok_emit_fn emit,
                            void *ctx, pcre2_match_data *md, lafn_err *err)
{
    if (k == p->n) return emit(ctx, s, n);
    size_t pos = 0, from = 0;
    while (from < n) {
        int rc = pcre2_match(p->code[k], (PCRE2_SPTR)s, n, from, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return lafn_err_set(err, "pre-tokenizer regex %zu: PCRE2 match error: %s", k, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (b == a) { /* an empty match splits nothing: look again one character on */
            from = a + utf8_seq_len((uint8_t)s[a]);
            continue;
        }
        if (a > pos && tok_pretok_stage(p, k + 1, s + pos, a - pos, emit, ctx, md, err) != 0) return -1;
        if (tok_pretok_stage(p, k + 1, s + a, b - a, emit, ctx, md, err) != 0) return -1;
        pos = from = b;
    }
    if (pos < n) return tok_pretok_stage(p, k + 1, s + pos, n - pos, emit, ctx, md, err);
    return 0;
}

int tok_pretok_split(const tok_pretok *p, const char *s, size_t n, tok_emit_fn emit, void *ctx,
                     lafn_err *err)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return lafn_err_set(err, "pre-tokenizer: out of memory for PCRE2 match data");
    int rc = tok_pretok_stage(p, 0, s, n, emit, ctx, md, err);
    pcre2_match_data_free(md);
    return rc;
}
