/* test_stage_prompts: the one rule joining a prompt and its target, per language, on the real Gemma tokenizer. */
#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"
#include "formats/gguf.h"
#include "stage/stage.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

/* The ids of text encoded alone (no BOS), into ids; returns the count. */
static size_t encode_alone(const tokenizer *t, const char *text, int32_t *ids, size_t cap) {
    size_t n = 0;
    lafn_err err = {{0}};
    CHECK(tokenizer_encode(t, text, strlen(text), 0, ids, cap, &n, &err) == 0, "%s", err.msg);
    return n;
}

/* prompt ids = BOS + encode(prompt); target ids = encode(sep + target) with no BOS, and they decode back. */
static void check_join(const tokenizer *t, const char *lang, const char *prompt, const char *target,
                       const char *expected_sep) {
    lafn_err err = {{0}};
    stage_sequence s;
    CHECK(stage_sequence_build(t, lang, prompt, target, &s, &err) == 0, "%s: %s", lang, err.msg);
    CHECK(strcmp(facts_lang_find(lang)->sep, expected_sep) == 0, "%s: separator '%s', expected '%s'", lang,
          facts_lang_find(lang)->sep, expected_sep);
    CHECK(s.n_prompt >= 2 && s.ids[0] == tokenizer_bos(t), "%s: prompt starts with BOS", lang);
    for (size_t k = 0; k < s.n_target; k++)
        CHECK(s.ids[s.n_prompt + k] != tokenizer_bos(t), "%s: BOS inside the target at %zu", lang, k);
    char joined[512];
    snprintf(joined, sizeof joined, "%s%s", expected_sep, target);
    int32_t alone[256];
    size_t n_alone = encode_alone(t, joined, alone, 256);
    CHECK(n_alone == s.n_target && memcmp(alone, s.ids + s.n_prompt, n_alone * sizeof *alone) == 0,
          "%s: target ids are not encode('%s')", lang, joined);
    char *decoded = tokenizer_decode(t, s.ids + s.n_prompt, s.n_target, &err);
    CHECK(decoded && strcmp(decoded, joined) == 0, "%s: target decodes to '%s', expected '%s'", lang,
          decoded ? decoded : "(null)", joined);
    free(decoded);
    stage_sequence_free(&s);
}

int main(void) {
    lafn_err err = {{0}};
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    if (gguf_open(&f, testutil_default_model(), &err) != 0 || tokenizer_from_gguf(&t, f, &err) != 0) {
        fprintf(stderr, "test_stage_prompts: %s\n", err.msg);
        return 1;
    }
    check_join(t, "en", "The capital of France is", "Paris", " ");
    check_join(t, "de", "Die Hauptstadt von Frankreich ist", "Paris", " ");
    check_join(t, "zh", "法国的首都是", "巴黎", "");
    check_join(t, "th", "เมืองหลวงของฝรั่งเศสคือ", "ปารีส", "");
    check_join(t, "du", "De hoofdstad van Frankrijk is", "Parijs", " ");
    check_join(t, "nl", "De hoofdstad van Frankrijk is", "Parijs", " ");
    stage_sequence s;
    CHECK(stage_sequence_build(t, "en", "Who wrote Hamlet?", NULL, &s, &err) == 0 && s.n_target == 0,
          "a prompt without target");
    stage_sequence_free(&s);
    CHECK(stage_sequence_build(t, "xx", "a", "b", &s, &err) != 0 && strstr(err.msg, "xx"),
          "unknown language refused: %s", err.msg);
    tokenizer_free(t);
    gguf_close(f);
    return testutil_finish("test_stage_prompts");
}
