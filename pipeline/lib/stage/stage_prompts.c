/* stage_prompts: tokenizes a prompt and its target the one way every stage and the evaluation share. */
#include "stage/stage.h"

#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"

/* Encodes text into a new array (*ids, *n); add_bos as the tokenizer's convention allows. */
static int encode_new(const tokenizer *t, const char *text, int add_bos, int32_t **ids, size_t *n, lafn_err *err) {
    size_t cap = strlen(text) + 8, got = 0;
    int32_t *buf = malloc(cap * sizeof *buf);
    if (!buf) return lafn_err_set(err, "out of memory tokenizing '%.40s'", text);
    if (tokenizer_encode(t, text, strlen(text), add_bos, buf, cap, &got, err) != 0) {
        free(buf);
        return -1;
    }
    if (got > cap) { /* cannot happen for byte-based tokenizers, but never trust it */
        free(buf);
        return lafn_err_set(err, "tokenizer returned %zu ids for %zu bytes of '%.40s'", got, cap - 8, text);
    }
    *ids = buf;
    *n = got;
    return 0;
}

int stage_sequence_build(const tokenizer *t, const char *lang, const char *prompt, const char *target,
                         stage_sequence *out, lafn_err *err) {
    *out = (stage_sequence){0};
    const facts_lang_info *info = facts_lang_find(lang);
    if (!info) return lafn_err_set(err, "unknown language '%s'", lang);
    int32_t *p_ids = NULL, *t_ids = NULL;
    size_t n_p = 0, n_t = 0;
    if (encode_new(t, prompt, tokenizer_adds_bos(t), &p_ids, &n_p, err) != 0) return -1;
    if (target) {
        size_t len = strlen(info->sep) + strlen(target) + 1;
        char *joined = malloc(len);
        if (!joined) { free(p_ids); return lafn_err_set(err, "out of memory"); }
        snprintf(joined, len, "%s%s", info->sep, target);
        int rc = encode_new(t, joined, 0, &t_ids, &n_t, err);
        free(joined);
        if (rc != 0) { free(p_ids); return -1; }
    }
    out->ids = realloc(p_ids, (n_p + n_t + 1) * sizeof *p_ids);
    if (!out->ids) { free(p_ids); free(t_ids); return lafn_err_set(err, "out of memory"); }
    if (n_t) memcpy(out->ids + n_p, t_ids, n_t * sizeof *t_ids);
    free(t_ids);
    out->n_prompt = n_p;
    out->n_target = n_t;
    return 0;
}

void stage_sequence_free(stage_sequence *s) {
    free(s->ids);
    *s = (stage_sequence){0};
}
