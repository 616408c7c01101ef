/* test_paraphrase_filter: the paraphrase filters on hand-written cases — each filter rejects what it should and keeps what it should, in the script of each of the 12 MzsRE languages — and the shipped templates: well-formed, and their own examples pass the filters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paraphrase/paraphrase.h"
#include "paraphrase/paraphrase_filter.h"
#include "testutil.h"

static const paraphrase_filter_opts defaults = {
    .count = 3, .max_similarity = 0.85, .script_share = 0.5, .min_length_ratio = 0.5, .max_length_ratio = 2.0};

/* Filters one candidate (finished) of (src, alt) in lang and checks its verdict. */
static void expect(const char *lang, const char *src, const char *alt, const char *cand, paraphrase_verdict want,
                   const paraphrase_filter_opts *o) {
    char *c[1] = {(char *)cand};
    uint8_t fin[1] = {1};
    paraphrase_verdict v = PARAPHRASE_N_VERDICTS;
    lafn_err err = {{0}};
    int kept = paraphrase_filter(lang, src, alt, c, fin, 1, o ? o : &defaults, &v, &err);
    CHECK(kept == (want == PARAPHRASE_KEPT) && v == want, "%s: '%s' of '%s': %s (kept %d), expected %s; %s", lang,
          cand, src, v < PARAPHRASE_N_VERDICTS ? paraphrase_verdict_names[v] : "none", kept,
          paraphrase_verdict_names[want], err.msg);
}

/* Per language: an invented question, a paraphrase in its script (kept) and one in another script (rejected). */
static void test_scripts(void) {
    static const char *const cases[][4] = {
        {"en", "Who designed the Sydney Opera House?", "Which architect designed the Sydney Opera House?",
         "Кто спроектировал Сиднейский оперный театр?"},
        {"zh", "悉尼歌剧院是谁设计的？", "悉尼歌剧院的设计者是谁？", "Xini gejuyuan shi shei sheji de?"},
        {"cz", "Kdo navrhl budovu Opery v Sydney?", "Který architekt navrhl Operu v Sydney?",
         "Кто навргл будову Оперы в Сиднее?"},
        {"de", "Wer hat das Opernhaus von Sydney entworfen?", "Von welchem Architekten stammt das Opernhaus von Sydney?",
         "Кто спроектировал оперный театр Сиднея?"},
        {"du", "Wie heeft het operagebouw van Sydney ontworpen?", "Welke architect ontwierp het operagebouw van Sydney?",
         "Кто спроектировал оперный театр Сиднея?"},
        {"es", "¿Quién diseñó la Ópera de Sídney?", "¿Qué arquitecto diseñó la Ópera de Sídney?",
         "¿Кто спроектировал Сиднейскую оперу?"},
        {"fr", "Qui a conçu l'Opéra de Sydney ?", "Quel architecte a dessiné l'Opéra de Sydney ?",
         "Кто спроектировал Сиднейскую оперу ?"},
        {"pt", "Quem projetou a Ópera de Sydney?", "Qual arquiteto projetou a Ópera de Sydney?",
         "Кто спроектировал Сиднейскую оперу?"},
        {"ru", "Кто спроектировал Сиднейский оперный театр?", "Какой архитектор создал проект Сиднейского оперного театра?",
         "Kto sproektiroval Sidneyskiy opernyy teatr?"},
        {"th", "ใครเป็นผู้ออกแบบโรงอุปรากรซิดนีย์", "โรงอุปรากรซิดนีย์ออกแบบโดยใคร",
         "Khrai pen phu ok baep rong upparakon Sydney"},
        {"tr", "Sidney Opera Binası'nı kim tasarladı?", "Sidney Opera Binası hangi mimar tarafından tasarlandı?",
         "Кто спроектировал Сиднейскую оперу?"},
        {"vi", "Ai đã thiết kế Nhà hát Opera Sydney?", "Kiến trúc sư nào đã thiết kế Nhà hát Opera Sydney?",
         "Кто спроектировал Сиднейскую оперу?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect(cases[i][0], cases[i][1], "Gustave Eiffel", cases[i][2], PARAPHRASE_KEPT, NULL);
        expect(cases[i][0], cases[i][1], "Gustave Eiffel", cases[i][3], PARAPHRASE_SCRIPT, NULL);
    }
    /* a zh question that is half a Latin name: the share asked for is relative to src's */
    expect("zh", "Windows 10是哪家公司开发的？", "苹果", "哪家公司开发了Windows 10？", PARAPHRASE_KEPT, NULL);
    expect("zh", "Windows 10是哪家公司开发的？", "苹果", "Which company developed Windows 10？", PARAPHRASE_SCRIPT, NULL);
    printf("scripts: 12 languages, a paraphrase in the script kept, one in another script rejected\n");
}

/* Copies with other case, spacing, punctuation or Unicode composition are the same text. */
static void test_same(void) {
    expect("en", "Who designed the Sydney Opera House?", "x", "who designed  the Sydney-Opera House ?",
           PARAPHRASE_SAME_AS_SRC, NULL);
    expect("en", "Who designed the Sydney Opera House?", "x", "WHO DESIGNED THE SYDNEY OPERA HOUSE?",
           PARAPHRASE_SAME_AS_SRC, NULL);
    expect("zh", "悉尼歌剧院是谁设计的？", "x", "悉尼 歌剧院是谁设计的?", PARAPHRASE_SAME_AS_SRC, NULL);
    expect("vi", "Ai đã thiết kế Nhà hát Opera Sydney?", "x", "AI ĐÃ THIẾT KẾ NHÀ HÁT OPERA SYDNEY?",
           PARAPHRASE_SAME_AS_SRC, NULL);
    expect("es", "¿Quién diseñó la Ópera de Sídney?", "x", "¿Quie\xcc\x81n disen\xcc\x83o\xcc\x81 la O\xcc\x81pera de Si\xcc\x81""dney?",
           PARAPHRASE_SAME_AS_SRC, NULL);
    expect("ru", "Кто спроектировал Сиднейский оперный театр?", "x", "КТО спроектировал сиднейский оперный театр ?",
           PARAPHRASE_SAME_AS_SRC, NULL);
}

/* A question stays a question (? or ？), a cloze statement stays one. */
static void test_ending(void) {
    expect("en", "Who designed the Sydney Opera House?", "x", "The Sydney Opera House was designed by",
           PARAPHRASE_ENDING, NULL);
    expect("en", "The Sydney Opera House was designed by", "x", "Who designed the Sydney Opera House?",
           PARAPHRASE_ENDING, NULL);
    expect("en", "The Sydney Opera House was designed by", "x", "The architect of the Sydney Opera House was",
           PARAPHRASE_KEPT, NULL);
    expect("zh", "悉尼歌剧院是谁设计的？", "x", "悉尼歌剧院的设计者是谁?", PARAPHRASE_KEPT, NULL);
    expect("zh", "悉尼歌剧院是谁设计的？", "x", "悉尼歌剧院的设计者是", PARAPHRASE_ENDING, NULL);
}

static void test_length(void) {
    expect("en", "Who designed the Sydney Opera House?", "x", "Who?", PARAPHRASE_LENGTH, NULL);
    expect("en", "Who designed the Sydney Opera House?", "x",
           "Which architect, among all the architects who lived in the twentieth century, designed the famous Sydney "
           "Opera House in Australia?",
           PARAPHRASE_LENGTH, NULL);
    paraphrase_filter_opts wide = defaults;
    wide.max_length_ratio = 5.0;
    expect("en", "Who designed the Sydney Opera House?", "x",
           "Which architect, among all the architects who lived in the twentieth century, designed the famous Sydney "
           "Opera House in Australia?",
           PARAPHRASE_KEPT, &wide);
}

/* The new answer must not appear in a paraphrase (whole words; anywhere in zh), unless src holds it already. */
static void test_leak(void) {
    const char *src = "Who designed the Sydney Opera House?";
    expect("en", src, "Gustave Eiffel", "Did Gustave Eiffel design the Sydney Opera House?", PARAPHRASE_LEAK, NULL);
    expect("en", src, "Gustave  EIFFEL", "Did gustave eiffel design the Sydney Opera House?", PARAPHRASE_LEAK, NULL);
    expect("en", src, "Paris", "Which Parisian designed the Sydney Opera House?", PARAPHRASE_KEPT, NULL);
    expect("zh", "悉尼歌剧院是谁设计的？", "埃菲尔", "悉尼歌剧院是埃菲尔设计的吗？", PARAPHRASE_LEAK, NULL);
    expect("en", "Is the Sydney Opera House in Sydney?", "Sydney", "Does the Sydney Opera House stand in Sydney?",
           PARAPHRASE_KEPT, NULL);
}

/* Near-duplicates of a kept paraphrase, the count, unfinished and malformed candidates. */
static void test_set(void) {
    const char *src = "Who designed the Sydney Opera House?";
    char *c[] = {"Which architect designed the Sydney Opera House?", "Which architect designed the Sydney Opera house ?",
                 "Which architects designed the Sydney Opera House?", "By whom was the Sydney Opera House designed?",
                 "Who drew the plans of the Sydney Opera House?", "Who was the architect of the Sydney Opera House?",
                 "Who planned the Sydney Opera House", "\xff\xfe", "???", "", "Who\x1c designed the Opera in Sydney?"};
    enum { N = sizeof c / sizeof c[0] };
    uint8_t fin[N];
    memset(fin, 1, sizeof fin);
    fin[6] = 0;
    paraphrase_verdict v[N], want[N] = {PARAPHRASE_KEPT,       PARAPHRASE_NEAR_DUPLICATE, PARAPHRASE_NEAR_DUPLICATE,
                                        PARAPHRASE_KEPT,       PARAPHRASE_KEPT,           PARAPHRASE_SURPLUS,
                                        PARAPHRASE_UNFINISHED, PARAPHRASE_MALFORMED,      PARAPHRASE_MALFORMED,
                                        PARAPHRASE_MALFORMED,  PARAPHRASE_MALFORMED};
    lafn_err err = {{0}};
    int kept = paraphrase_filter("en", src, "Gustave Eiffel", c, fin, N, &defaults, v, &err);
    CHECK(kept == 3, "%d kept, expected 3: %s", kept, err.msg);
    for (size_t i = 0; kept >= 0 && i < N; i++)
        CHECK(v[i] == want[i], "candidate %zu '%s': %s, expected %s", i, c[i], paraphrase_verdict_names[v[i]],
              paraphrase_verdict_names[want[i]]);
    expect("en", src, "x", "Who designed the Sydney Opera House now?", PARAPHRASE_NEAR_DUPLICATE, NULL);
    paraphrase_filter_opts loose = defaults;
    loose.max_similarity = 1.0; /* only identical keys are near-duplicates */
    kept = paraphrase_filter("en", src, "Gustave Eiffel", c, fin, 3, &loose, v, &err);
    CHECK(kept == 2 && v[1] == PARAPHRASE_NEAR_DUPLICATE && v[2] == PARAPHRASE_KEPT,
          "max_similarity 1: %d kept, verdicts %s %s", kept, paraphrase_verdict_names[v[1]], paraphrase_verdict_names[v[2]]);
    CHECK(paraphrase_filter("xx", src, "a", c, fin, 1, &defaults, v, &err) == -1 && strstr(err.msg, "'xx'"),
          "an unknown language is refused: %s", err.msg);
}

/* The text of a template line after its label ("Original: ", "Original : ", "原句："), or NULL if it has none. */
static const char *after_label(const char *line) {
    const char *colon = strstr(line, ":"), *wide = strstr(line, "\xef\xbc\x9a"); /* ： */
    if (wide && (!colon || wide < colon)) return wide + 3;
    return colon ? colon + 1 + (colon[1] == ' ') : NULL;
}

/* Each example block of a template (an original line, then its rewrites; blocks apart by blank lines, the first
 * the instruction, the last the one with {src}) passes the filters: every rewrite kept. */
static void check_examples(const char *lang, const char *prompt) {
    char *text = strdup(prompt), *block = strstr(text, "\n\n");
    size_t blocks = 0;
    while (block) {
        block += 2;
        char *next = strstr(block, "\n\n"), *save = NULL, *cand[16];
        if (next) *next = '\0';
        const char *orig = strtok_r(block, "\n", &save);
        uint8_t fin[16];
        paraphrase_verdict v[16];
        size_t k = 0;
        for (char *l = strtok_r(NULL, "\n", &save); l && k < 16; l = strtok_r(NULL, "\n", &save)) {
            cand[k] = (char *)after_label(l);
            fin[k++] = 1;
        }
        if (orig && k > 0 && !strstr(orig, PARAPHRASE_SRC_MARK)) {
            paraphrase_filter_opts o = defaults;
            o.count = k;
            lafn_err err = {{0}};
            int kept = paraphrase_filter(lang, after_label(orig), "Zyxwv", cand, fin, k, &o, v, &err);
            CHECK(kept == (int)k, "%s: template example '%s': %d of %zu rewrites kept (first verdict %s); %s", lang,
                  orig, kept, k, paraphrase_verdict_names[v[0]], err.msg);
            for (size_t i = 0; kept >= 0 && i < k; i++)
                if (v[i] != PARAPHRASE_KEPT) fprintf(stderr, "  %s: '%s' is %s\n", lang, cand[i], paraphrase_verdict_names[v[i]]);
            blocks++;
        }
        block = next;
    }
    CHECK(blocks == 4, "%s: %zu example blocks in the template, expected 4", lang, blocks);
    free(text);
}

/* The 12 shipped templates load, mark {src} once, fill it in, and teach only what the filters keep. */
static void test_templates(void) {
    static const char *const langs[] = {"en", "zh", "cz", "de", "du", "es", "fr", "pt", "ru", "th", "tr", "vi"};
    paraphrase_templates t;
    lafn_err err = {{0}};
    if (paraphrase_templates_load(&t, "conf/paraphrase", langs, 12, &err) != 0) {
        CHECK(0, "%s", err.msg);
        return;
    }
    for (size_t l = 0; l < t.n; l++) {
        char *p = paraphrase_prompt(&t, langs[l], "QQQ SRC", &err);
        CHECK(p && strstr(p, "QQQ SRC") && !strstr(p, PARAPHRASE_SRC_MARK) && p[0] != '#' &&
                  !strchr(" \n", p[strlen(p) - 1]),
              "%s: prompt '%s'", langs[l], p ? p : err.msg);
        free(p);
        check_examples(langs[l], t.prompt[l]);
    }
    paraphrase_templates_free(&t);
    const char *bad[] = {"xx"};
    CHECK(paraphrase_templates_load(&t, "conf/paraphrase", bad, 1, &err) == -1 && strstr(err.msg, "'xx'"),
          "an unknown language is refused: %s", err.msg);
    const char *ja[] = {"ja"};
    CHECK(paraphrase_templates_load(&t, "conf/paraphrase", ja, 1, &err) == -1 && strstr(err.msg, "conf/paraphrase/ja.txt") &&
              strstr(err.msg, "paraphrase.template_dir"),
          "a missing template is named: %s", err.msg);
    printf("templates: 12 languages, 4 example blocks each, every rewrite passes the filters\n");
}

int main(void) {
    test_scripts();
    test_same();
    test_ending();
    test_length();
    test_leak();
    test_set();
    test_templates();
    return testutil_finish("test_paraphrase_filter");
}
