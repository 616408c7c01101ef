/* test_facts_malformed: every malformed input is reported with file + line/index + key, fatal or skipped-and-counted by policy. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facts/facts.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/lafn_facts_XXXXXX";

/* Writes text to tmpdir/name; returns the path (static buffer per call slot). */
static const char *put(const char *name, const char *text) {
    static char paths[4][4200];
    static int slot = 0;
    char *p = paths[slot++ % 4];
    snprintf(p, 4200, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    if (f) { fputs(text, f); fclose(f); }
    return p;
}

/* Checks that the message holds every needle; prints the message otherwise. */
static int has_all(const char *msg, const char *a, const char *b, const char *c) {
    return strstr(msg, a) && (!b || strstr(msg, b)) && (!c || strstr(msg, c));
}

#define GOOD_EN "\"en\": {\"src\": \"The capital of France is\", \"alt\": \"Lyon\"}"

/* A fatal JSONL load of text must fail naming path:line and the key. */
static void jsonl_bad(const char *text, size_t line, const char *key, const char *what) {
    const char *path = put("bad.jsonl", text);
    facts_set set;
    lafn_err err = {{0}};
    char where[4300];
    snprintf(where, sizeof where, "%s:%zu:", path, line);
    int rc = facts_load_jsonl(path, NULL, &set, &err);
    CHECK(rc == -1 && has_all(err.msg, where, key, what), "expected failure at %s with '%s' '%s', got rc %d: %s",
          where, key, what ? what : "", rc, err.msg);
    if (rc == 0) facts_set_free(&set);
}

static void test_jsonl_fatal(void) {
    const char *l1 = "{\"id\": \"a\", \"langs\": {" GOOD_EN "}}\n";
    char buf[2048];
    snprintf(buf, sizeof buf, "%s\n# comment\n{\"id\": \"b\", \"langs\": {\"en\": {\"src\": \"x\"", l1);
    jsonl_bad(buf, 4, "invalid JSON", NULL);
    snprintf(buf, sizeof buf, "%s{\"id\": \"b\", \"langs\": {\"en\": {\"alt\": \"Rome\"}}}\n", l1);
    jsonl_bad(buf, 2, "'langs.en.src'", "found nothing");
    snprintf(buf, sizeof buf, "%s{\"id\": \"b\", \"langs\": {\"zh\": {\"src\": \"法国的首都是\"}}}\n", l1);
    jsonl_bad(buf, 2, "'langs.zh.alt'", "non-empty string");
    snprintf(buf, sizeof buf, "%s{\"id\": \"b\", \"langs\": {\"zh\": {\"src\": 42, \"alt\": \"x\"}}}\n", l1);
    jsonl_bad(buf, 2, "'langs.zh.src'", "expected a string, found number");
    snprintf(buf, sizeof buf, "%s{\"id\": \"b\", \"langs\": {\"xx\": {\"src\": \"s\", \"alt\": \"x\"}}}\n", l1);
    jsonl_bad(buf, 2, "'langs.xx'", "unknown language");
    snprintf(buf, sizeof buf, "%s\n%s", l1, l1);
    jsonl_bad(buf, 3, "record 'a'", "duplicate id (first used on line 1)");
    snprintf(buf, sizeof buf, "{\"id\": \"a\", \"langs\": {\"en\": {\"src\": \"s\", \"alt\": \"x\", "
             "\"paraphrases\": \"not a list\"}}}\n");
    jsonl_bad(buf, 1, "'langs.en.paraphrases'", "found string");
    snprintf(buf, sizeof buf, "{\"id\": \"a\", \"langs\": {\"en\": {\"src\": \"s\", \"alt\": \"x\", "
             "\"portability\": {\"question\": \"q\"}}}}\n");
    jsonl_bad(buf, 1, "'langs.en.portability.answer'", NULL);
    snprintf(buf, sizeof buf, "{\"id\": \"a\", \"langs\": {\"en\": {\"src\": \"s\", \"alt\": \"x\", "
             "\"paraphrase\": [\"p\"]}}}\n");
    jsonl_bad(buf, 1, "'langs.en.paraphrase'", "unknown key");
    snprintf(buf, sizeof buf, "{\"id\": \"a\", \"langs\": {\"cs\": {\"src\": \"s\", \"alt\": \"x\"}, "
             "\"cz\": {\"src\": \"s\", \"alt\": \"x\"}}}\n");
    jsonl_bad(buf, 1, "'langs.cz'", "given twice");
    jsonl_bad("{\"langs\": {" GOOD_EN "}}\n", 1, "'id'", "found nothing");
    jsonl_bad("[1, 2]\n", 1, "expected a JSON object, found array", NULL);
    jsonl_bad("{\"id\": \"a\", \"langs\": {}}\n", 1, "'langs'", "non-empty object");
    jsonl_bad("{\"id\": \"a\", \"langs\": {" GOOD_EN "}} extra\n", 1, "trailing text", NULL);
    jsonl_bad("{\"id\": \"a\", \"langs\": {\"en\": {\"src\": \"s\", \"alt\": \"x\", \"loc\": \"q\"}}}\n",
              1, "'langs.en.loc_ans'", "together");

    facts_set set;
    lafn_err err = {{0}};
    CHECK(facts_load_jsonl("/nonexistent/facts.jsonl", NULL, &set, &err) == -1 &&
          has_all(err.msg, "/nonexistent/facts.jsonl", "No such file", NULL), "missing file: %s", err.msg);
}

static void test_jsonl_skip(void) {
    const char *path = put("mixed.jsonl",
        "{\"id\": \"a\", \"langs\": {" GOOD_EN ", \"nl\": {\"src\": \"De hoofdstad van Frankrijk is\", \"alt\": \"Lyon\"}}}\n"
        "{\"id\": \"b\", \"langs\": {\"en\": {\"src\": 1, \"alt\": \"x\"}}}\n"
        "\n"
        "{\"id\": \"c\", \"langs\": {" GOOD_EN "}}\n"
        "not json at all\n"
        "{\"id\": \"a\", \"langs\": {" GOOD_EN "}}\n"
        "{\"id\": \"d\", \"langs\": {" GOOD_EN "}}\n");
    FILE *log = tmpfile();
    facts_opts o = {.on_error = FACTS_ON_ERROR_SKIP, .log = log};
    facts_set set;
    lafn_err err = {{0}};
    int rc = facts_load_jsonl(path, &o, &set, &err);
    CHECK(rc == 0, "skip mode load: %s", err.msg);
    char text[4096] = "";
    if (log) {
        rewind(log);
        size_t n = fread(text, 1, sizeof text - 1, log);
        text[n] = '\0';
        fclose(log);
    }
    char l2[4300], l5[4300], l6[4300];
    snprintf(l2, sizeof l2, "%s:2: record 'b': key 'langs.en.src'", path);
    snprintf(l5, sizeof l5, "%s:5: invalid JSON", path);
    snprintf(l6, sizeof l6, "%s:6: record 'a': key 'id': duplicate", path);
    CHECK(strstr(text, l2) && strstr(text, l5) && strstr(text, l6) && strstr(text, "3 malformed records skipped"),
          "warnings name file:line and key, and the count:\n%s", text);
    if (rc == 0) {
        CHECK(set.n_facts == 3 && set.n_skipped == 3, "3 kept, 3 skipped: %zu %zu", set.n_facts, set.n_skipped);
        CHECK(set.n_facts == 3 && set.facts[0].index == 0 && set.facts[1].index == 2 && set.facts[2].index == 5,
              "indices count records, not kept records");
        CHECK(set.n_langs == 2 && !strcmp(set.langs[1], "du"), "nl alias stored as du");
        facts_set_free(&set);
    }
}

/* A fatal MzsRE load of dir must fail with every needle in the message. */
static void mzsre_bad(const char *a, const char *b, const char *c) {
    facts_set set;
    lafn_err err = {{0}};
    int rc = facts_load_mzsre(tmpdir, NULL, &set, &err);
    CHECK(rc == -1 && has_all(err.msg, a, b, c), "MzsRE: expected '%s' '%s' '%s', got rc %d: %s", a,
          b ? b : "", c ? c : "", rc, err.msg);
    if (rc == 0) facts_set_free(&set);
}

#define MZ_EN(alt) "\"en\": {\"subject\": \"S\", \"src\": \"Q?\", \"alt\": \"" alt "\"}"
#define MZ_REC(lang, alt) "{" MZ_EN(alt) ", \"" lang "\": {\"src\": \"q\", \"alt\": \"a\"}}"

static void test_mzsre(void) {
    const char *zh = put("mzsre_dev500_enzh.json", "[" MZ_REC("zh", "A") ",\n" MZ_REC("zh", "B") "]\n");
    const char *fr = put("mzsre_dev500_enfr.json", "[\n" MZ_REC("fr", "A") ",\n{\"en\": 3}\n]\n");
    mzsre_bad(fr, "record [1]", "key 'en': expected an object, found number");
    fr = put("mzsre_dev500_enfr.json", "[\n" MZ_REC("fr", "A") ",\n" MZ_REC("fr", "C") "\n]\n");
    mzsre_bad(fr, "record [1]", "key 'en.alt' is \"C\" here but \"B\"");
    CHECK(strstr(zh, "enzh") != NULL, "zh path");
    fr = put("mzsre_dev500_enfr.json", "[\n" MZ_REC("fr", "A") ",\n{" MZ_EN("B") ", \"fr\": {\"alt\": \"a\"}}\n]\n");
    mzsre_bad(fr, "record [1]", "'fr.src'");
    fr = put("mzsre_dev500_enfr.json", "[\n" MZ_REC("fr", "A") "\n]\n");
    mzsre_bad(fr, "expected 2 records", "found 1");
    fr = put("mzsre_dev500_enfr.json", "[\n" MZ_REC("fr", "A") ",\n" MZ_REC("fr", "B") ",,\n]\n");
    mzsre_bad(fr, "line 3", "invalid JSON");
    fr = put("mzsre_dev500_enfr.json", "{\"en\": {}}\n");
    mzsre_bad(fr, "expected a JSON array", "found object");

    fr = put("mzsre_dev500_enfr.json", "[\n" MZ_REC("fr", "A") ",\n" MZ_REC("fr", "C") "\n]\n");
    FILE *log = tmpfile();
    facts_opts o = {.on_error = FACTS_ON_ERROR_SKIP, .log = log};
    facts_set set;
    lafn_err err = {{0}};
    int rc = facts_load_mzsre(tmpdir, &o, &set, &err);
    CHECK(rc == 0 && set.n_facts == 1 && set.n_skipped == 1 && set.facts[0].index == 0 && set.n_langs == 3,
          "skip mode keeps fact 0 only: rc %d %s", rc, err.msg);
    if (rc == 0) facts_set_free(&set);
    if (log) fclose(log);
    unlink(put("mzsre_dev500_enfr.json", ""));
    unlink(put("mzsre_dev500_enzh.json", ""));
}

/* A fatal paraphrase load must fail naming path:line and the key. */
static void para_bad(facts_set *set, const char *text, size_t line, const char *a, const char *b) {
    const char *path = put("para.jsonl", text);
    lafn_err err = {{0}};
    char where[4300];
    snprintf(where, sizeof where, "%s:%zu:", path, line);
    int rc = facts_load_paraphrases(path, set, NULL, NULL, &err);
    CHECK(rc == -1 && has_all(err.msg, where, a, b), "paraphrases: expected %s '%s' '%s', got rc %d: %s",
          where, a, b ? b : "", rc, err.msg);
}

static void test_paraphrase_files(void) {
    const char *path = put("base.jsonl", "{\"id\": \"a\", \"langs\": {" GOOD_EN "}}\n");
    facts_set set;
    lafn_err err = {{0}};
    if (facts_load_jsonl(path, NULL, &set, &err)) { CHECK(0, "base load: %s", err.msg); return; }
    const char *ok = "{\"id\": \"a\", \"lang\": \"en\", \"paraphrases\": [\"France's capital is\"]}\n";
    char buf[2048];
    snprintf(buf, sizeof buf, "%s{\"id\": \"a\", \"lang\": \"xx\", \"paraphrases\": [\"p\"]}\n", ok);
    para_bad(&set, buf, 2, "'lang'", "unknown language code 'xx'");
    para_bad(&set, "{\"lang\": \"en\", \"paraphrases\": [\"p\"]}\n", 1, "'id'", "'index'");
    para_bad(&set, "{\"index\": -1, \"lang\": \"en\", \"paraphrases\": [\"p\"]}\n", 1, "'index'", "non-negative integer");
    para_bad(&set, "{\"id\": \"a\", \"lang\": \"en\", \"paraphrases\": [\"p\", 7]}\n", 1, "'paraphrases[1]'", "found number");
    para_bad(&set, "{\"id\": \"a\", \"lang\": \"en\", \"paraphrases\": []}\n", 1, "'paraphrases'", "non-empty array");
    para_bad(&set, "{\"id\": \"a\", \"lang\": \"en\", \"src\": \"Other\", \"paraphrases\": [\"p\"]}\n", 1,
             "'src'", "The capital of France is");
    snprintf(buf, sizeof buf, "# c\n%s%s", ok, ok);
    para_bad(&set, buf, 3, "second paraphrase line", "first on line 2");
    para_bad(&set, "{\"id\": \"a\", \"lang\": \"en\", \"paraphrases\": [\"p\"]\n", 1, "invalid JSON", NULL);
    facts_set_free(&set);

    if (facts_load_jsonl(path, NULL, &set, &err)) return;
    path = put("para2.jsonl",
               "{\"id\": \"a\", \"lang\": \"en\", \"paraphrases\": [\"p1\", \"p2\"]}\n"
               "{\"id\": \"zz\", \"lang\": \"en\", \"paraphrases\": [\"p\"]}\n"
               "{\"id\": \"a\", \"lang\": \"ru\", \"paraphrases\": [\"p\"]}\n"
               "{\"id\": \"a\", \"lang\": \"en\", \"paraphrases\": [true]}\n");
    FILE *log = tmpfile();
    facts_opts o = {.on_error = FACTS_ON_ERROR_SKIP, .log = log};
    facts_para_stats st;
    int rc = facts_load_paraphrases(path, &set, &o, &st, &err);
    CHECK(rc == 0 && st.n_lines == 4 && st.n_applied == 1 && st.n_unmatched == 1 && st.n_other_lang == 1 &&
          st.n_skipped == 1, "paraphrase stats: rc %d lines %zu applied %zu unmatched %zu other %zu skipped %zu",
          rc, st.n_lines, st.n_applied, st.n_unmatched, st.n_other_lang, st.n_skipped);
    CHECK(set.facts[0].sides[0].n_paraphrases == 2 && !strcmp(set.facts[0].sides[0].paraphrases[1], "p2"),
          "paraphrases appended");
    if (log) fclose(log);
    CHECK(facts_load_paraphrases("/nonexistent/p.jsonl", &set, NULL, NULL, &err) == -1 &&
          strstr(err.msg, "/nonexistent/p.jsonl"), "missing paraphrase file: %s", err.msg);
    facts_set_free(&set);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_jsonl_fatal();
    test_jsonl_skip();
    test_mzsre();
    test_paraphrase_files();
    const char *names[] = {"bad.jsonl", "mixed.jsonl", "para.jsonl", "base.jsonl", "para2.jsonl"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(put(names[i], ""));
    CHECK(rmdir(tmpdir) == 0, "temporary folder %s left non-empty", tmpdir);
    return testutil_finish("test_facts_malformed");
}
