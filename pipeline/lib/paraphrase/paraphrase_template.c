/* paraphrase_template: the per-language few-shot templates — loading and checking them, the prompt of a src, and the identity they give paraphrase.h5. */
#include "paraphrase/paraphrase.h"

#include <stdlib.h>
#include <string.h>

#include "base/file_map.h"
#include "base/sha256.h"
#include "base/utf8.h"

#define TEMPLATE_MAX_BYTES (1u << 20)

void paraphrase_templates_free(paraphrase_templates *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->path[i]);
        free(t->file[i]);
    }
    memset(t, 0, sizeof *t);
}

/* 1 if s[0..n) is valid UTF-8. */
static int valid_utf8(const char *s, size_t n) {
    uint32_t c;
    for (size_t i = 0, len; i < n; i += len)
        if ((len = utf8_decode(s + i, n - i, &c)) == 0) return 0;
    return 1;
}

/* Checks template i and points its prompt past the comment lines, cutting the trailing white space. */
static int template_take(paraphrase_templates *t, size_t i, size_t len, lafn_err *err) {
    char *text = t->file[i];
    if (!valid_utf8(text, len) || strlen(text) != len)
        return lafn_err_set(err, "paraphrase.template_dir: %s is not UTF-8 text", t->path[i]);
    while (*text == '#') {
        char *nl = strchr(text, '\n');
        text = nl ? nl + 1 : text + strlen(text);
    }
    size_t n = strlen(text);
    while (n && strchr(" \t\r\n", text[n - 1])) text[--n] = '\0';
    const char *mark = strstr(text, PARAPHRASE_SRC_MARK);
    if (!mark || strstr(mark + 1, PARAPHRASE_SRC_MARK))
        return lafn_err_set(err, "paraphrase.template_dir: %s holds %s %s; a template marks where the question goes "
                            "exactly once", t->path[i], PARAPHRASE_SRC_MARK, mark ? "more than once" : "nowhere");
    t->prompt[i] = text;
    return 0;
}

int paraphrase_templates_load(paraphrase_templates *t, const char *dir, const char *const *langs, size_t n,
                              lafn_err *err) {
    memset(t, 0, sizeof *t);
    if (n > FACTS_MAX_LANGS) return lafn_err_set(err, "paraphrase: %zu languages, at most %d", n, FACTS_MAX_LANGS);
    for (size_t i = 0; i < n; i++, t->n++) {
        const facts_lang_info *info = facts_lang_find(langs[i]);
        if (!info) {
            lafn_err_set(err, "paraphrase: unknown language '%s' (no template name for it)", langs[i]);
            goto fail;
        }
        size_t cap = strlen(dir) + strlen(info->code) + 8, len = 0;
        t->lang[i] = info->code;
        if (!(t->path[i] = malloc(cap))) {
            lafn_err_set(err, "paraphrase: out of memory");
            goto fail;
        }
        snprintf(t->path[i], cap, "%s/%s.txt", dir, info->code);
        if (file_read_all(t->path[i], TEMPLATE_MAX_BYTES, &t->file[i], &len, err) != 0) {
            lafn_err_wrap(err, "paraphrase.template_dir: the template of language %s", info->code);
            t->n++;
            goto fail;
        }
        uint8_t dig[32];
        sha256_ctx h;
        sha256_init(&h);
        sha256_update(&h, t->file[i], len);
        sha256_final(&h, dig);
        sha256_hex(dig, t->sha256[i]);
        if (template_take(t, i, len, err) != 0) {
            t->n++;
            goto fail;
        }
    }
    return 0;
fail:
    paraphrase_templates_free(t);
    return -1;
}

char *paraphrase_prompt(const paraphrase_templates *t, const char *lang, const char *src, lafn_err *err) {
    const facts_lang_info *info = facts_lang_find(lang);
    for (size_t i = 0; info && i < t->n; i++) {
        if (t->lang[i] != info->code) continue;
        const char *mark = strstr(t->prompt[i], PARAPHRASE_SRC_MARK);
        size_t head = (size_t)(mark - t->prompt[i]), cap = strlen(t->prompt[i]) + strlen(src) + 1;
        char *out = malloc(cap);
        if (!out) {
            lafn_err_set(err, "paraphrase: out of memory for a prompt");
            return NULL;
        }
        snprintf(out, cap, "%.*s%s%s", (int)head, t->prompt[i], src, mark + strlen(PARAPHRASE_SRC_MARK));
        return out;
    }
    lafn_err_set(err, "paraphrase: no template loaded for language '%s'", lang);
    return NULL;
}

int paraphrase_run_id(const lafn_config *cfg, const char *generator_sha256, const paraphrase_templates *t,
                      char out[STAGE_RUN_ID_LEN + 1], lafn_err *err) {
    sha256_ctx h;
    uint8_t dig[32];
    char hex[65];
    sha256_init(&h);
    sha256_update(&h, "generator ", 10);
    sha256_update(&h, generator_sha256, strlen(generator_sha256));
    for (size_t i = 0; i < t->n; i++) {
        sha256_update(&h, "\ntemplate ", 10);
        sha256_update(&h, t->lang[i], strlen(t->lang[i]));
        sha256_update(&h, " ", 1);
        sha256_update(&h, t->sha256[i], 64);
    }
    sha256_final(&h, dig);
    sha256_hex(dig, hex);
    return stage_run_id(cfg, hex, "paraphrase", out, err);
}
