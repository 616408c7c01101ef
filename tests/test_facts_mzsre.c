/* test_facts_mzsre: the MzsRE loader on the real data — merge of 500 facts x 12 languages, spot values, subsets, aliases, file names. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facts/facts.h"
#include "testutil.h"

static const char *const pairs[] = {"zh", "cz", "de", "du", "es", "fr", "pt", "ru", "th", "tr", "vi"};

/* Reads one pair file with cJSON directly (the reference, independent of the merge logic). */
static cJSON *read_pair(const char *dir, const char *lang) {
    char path[4096];
    snprintf(path, sizeof path, "%s/mzsre_dev500_en%s.json", dir, lang);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    return root;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Number of mismatching fields between a loaded side and its JSON object; names the first. */
static size_t side_mismatch(const facts_side *s, const cJSON *o, const char **first) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "portability");
    const char *names[] = {"subject", "src", "alt", "rephrase", "loc", "loc_ans", "port_q", "port_a"};
    const char *got[] = {s->subject, s->src, s->alt, s->eval.rephrase, s->eval.loc,
                         s->eval.loc_ans, s->eval.port_q, s->eval.port_a};
    const char *want[] = {jstr(o, "subject"), jstr(o, "src"), jstr(o, "alt"), jstr(o, "rephrase"),
                          jstr(o, "loc"), jstr(o, "loc_ans"), jstr(p, "New Question"),
                          jstr(p, "New Answer")};
    size_t bad = 0;
    for (size_t i = 0; i < 8; i++)
        if (!got[i] || !want[i] || strcmp(got[i], want[i])) {
            if (!bad) *first = names[i];
            bad++;
        }
    return bad;
}

static void test_full_merge(const char *dir) {
    facts_set set;
    lafn_err err = {{0}};
    int rc = facts_load_mzsre(dir, NULL, &set, &err);
    CHECK(rc == 0, "load all: %s", err.msg);
    if (rc) return;
    CHECK(set.n_facts == 500, "expected 500 facts, found %zu", set.n_facts);
    CHECK(set.n_langs == 12, "expected 12 languages, found %zu", set.n_langs);
    CHECK(set.n_skipped == 0, "skipped %zu", set.n_skipped);
    size_t mism = 0;
    for (size_t p = 0; p < 11; p++) {
        cJSON *root = read_pair(dir, pairs[p]);
        CHECK(root && cJSON_GetArraySize(root) == 500, "reference read of en%s", pairs[p]);
        for (size_t i = 0; root && i < set.n_facts; i++) {
            const facts_record *r = &set.facts[i];
            const cJSON *el = cJSON_GetArrayItem(root, (int)i);
            const facts_side *s = facts_record_side(r, pairs[p]);
            const facts_side *en = facts_record_side(r, "en");
            const char *f1 = "", *f2 = "";
            size_t m = !s || !en ? 1 : side_mismatch(s, cJSON_GetObjectItem(el, pairs[p]), &f1) +
                                        side_mismatch(en, cJSON_GetObjectItem(el, "en"), &f2);
            if (m && !mism)
                fprintf(stderr, "first mismatch: fact %zu lang %s field %s%s\n", i, pairs[p], f1, f2);
            mism += m;
            if (r->index != i || r->n_sides != 12) mism++;
        }
        cJSON_Delete(root);
    }
    CHECK(mism == 0, "%zu fields differ from the reference parse", mism);
    const facts_record *r = facts_set_find(&set, "mzsre-499");
    CHECK(r && r->index == 499, "find mzsre-499");
    const facts_side *vi = facts_record_side(r, "vi"), *ru = facts_record_side(&set.facts[7], "ru");
    CHECK(vi && !strcmp(vi->eval.rephrase, "Vị trí nào được nắm giữ bởi William Henry Phipps?"),
          "vi 499 rephrase: %s", vi ? vi->eval.rephrase : "(none)");
    CHECK(ru && !strcmp(ru->eval.loc_ans, "От 3000 метров (9800 футов) в Писаке до 2050 метров "
                        "(6730 футов) на реке Урубамба"), "ru 7 loc_ans");
    const facts_side *zh = facts_record_side(&set.facts[0], "zh");
    CHECK(zh && !strcmp(zh->src, "IAAF综合项目挑战赛的创立时间是什么时候？"), "zh 0 src");
    const facts_side *pt = facts_record_side(&set.facts[123], "pt");
    CHECK(pt && !strcmp(pt->eval.port_a, "Cerimônia de Abertura das Olimpíadas de Londres"),
          "pt 123 portability answer");
    CHECK(!strcmp(set.facts[499].sides[0].alt, "Governor of New Jersey") &&
          set.facts[499].sides[0].lang == facts_lang_find("en")->code, "en 499 alt, en first");
    facts_set_free(&set);
}

static void test_subsets(const char *dir) {
    facts_set set;
    lafn_err err = {{0}};
    facts_opts o = {.langs = "nl, cs,en", .first = 40, .count = 5};
    int rc = facts_load_mzsre(dir, &o, &set, &err);
    CHECK(rc == 0, "subset load: %s", err.msg);
    if (rc == 0) {
        CHECK(set.n_facts == 5 && set.facts[0].index == 40 && set.facts[4].index == 44,
              "range 40..44: %zu facts", set.n_facts);
        CHECK(set.n_langs == 3 && !strcmp(set.langs[0], "en") && !strcmp(set.langs[1], "du") &&
              !strcmp(set.langs[2], "cz"), "aliases nl->du cs->cz, order en du cz");
        const facts_side *du = facts_record_side(&set.facts[2], "nl");
        CHECK(du && !strcmp(du->alt, "Tylosauridae") && !strcmp(du->lang, "du"), "du 42 alt via alias nl");
        facts_set_free(&set);
    }
    size_t idx[] = {499, 3, 250};
    facts_opts o2 = {.langs = "th", .indices = idx, .n_indices = 3};
    rc = facts_load_mzsre(dir, &o2, &set, &err);
    CHECK(rc == 0, "index subset: %s", err.msg);
    if (rc == 0) {
        CHECK(set.n_facts == 3 && set.facts[0].index == 3 && set.facts[2].index == 499,
              "indices ordered by index");
        CHECK(set.n_langs == 1 && set.facts[1].n_sides == 1 && !facts_record_side(&set.facts[1], "en"),
              "en dropped when not selected");
        const facts_side *th = facts_record_side(&set.facts[1], "th");
        CHECK(th && !strcmp(th->subject, "ลิเซีย อัลบาเนเซ"), "th 250 subject");
        facts_set_free(&set);
    }
    facts_opts o3 = {.langs = "zh"}; /* Bi-ZsRE */
    rc = facts_load_mzsre(dir, &o3, &set, &err);
    CHECK(rc == 0 && set.n_facts == 500 && set.n_langs == 1, "Bi-ZsRE zh only: %s", err.msg);
    if (rc == 0) facts_set_free(&set);
    facts_opts o5 = {.langs = "en", .count = 3};
    rc = facts_load_mzsre(dir, &o5, &set, &err);
    CHECK(rc == 0 && set.n_langs == 1 && set.n_facts == 3 && set.facts[2].n_sides == 1 &&
          !strcmp(set.facts[2].sides[0].lang, "en"), "en only: %s", err.msg);
    if (rc == 0) facts_set_free(&set);
    facts_opts o4 = {.langs = "en,zh"};
    rc = facts_load_mzsre(dir, &o4, &set, &err);
    CHECK(rc == 0 && set.n_langs == 2 && set.facts[10].n_sides == 2, "Bi-ZsRE en+zh: %s", err.msg);
    if (rc == 0) facts_set_free(&set);
}

/* Loads path with langs; returns the number of facts and languages (-1 on failure, err filled). */
static long load_count(const char *path, const char *langs, size_t *n_langs, char *first_src, size_t cap,
                       lafn_err *err) {
    facts_set set;
    facts_opts o = {.langs = langs};
    if (facts_load_mzsre(path, &o, &set, err) != 0) return -1;
    long n = (long)set.n_facts;
    *n_langs = set.n_langs;
    snprintf(first_src, cap, "%s", set.n_facts ? set.facts[0].sides[set.facts[0].n_sides - 1].src : "");
    facts_set_free(&set);
    return n;
}

/* The file names a user has: the published mzsre_test_duplicate_en<XX>.json in a folder, any name through a
 * {xx} path, one pair file (Bi-ZsRE's bizsre_test.json: en-zh), and a folder holding both sets refused. The
 * files are links to the development split's, so every variant must give its 500 records. */
static void test_file_names(const char *dir) {
    char tmp[] = "/tmp/lafn_mzsre_names_XXXXXX", path[4096], target[4096], want[512], got[512];
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    const char *links[][2] = {{"zh", "mzsre_test_duplicate_enzh.json"}, {"de", "mzsre_test_duplicate_ende.json"},
                              {"zh", "custom_enzh.json"}, {"zh", "bizsre_test.json"}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(target, sizeof target, "%s/mzsre_dev500_en%s.json", dir, links[i][0]);
        snprintf(path, sizeof path, "%s/%s", tmp, links[i][1]);
        CHECK(realpath(target, want) && symlink(want, path) == 0, "link %s", path);
    }
    size_t nl = 0;
    lafn_err err = {{0}};
    long n = load_count(dir, "en,zh", &nl, want, sizeof want, &err);
    CHECK(n == 500, "the development folder: %s", err.msg);
    n = load_count(tmp, NULL, &nl, got, sizeof got, &err);
    CHECK(n == 500 && nl == 3, "published names in a folder: %ld facts, %zu languages (expected 500, en zh de): %s", n,
          nl, err.msg);
    snprintf(path, sizeof path, "%s/custom_en{xx}.json", tmp);
    n = load_count(path, NULL, &nl, got, sizeof got, &err);
    CHECK(n == 500 && nl == 2 && !strcmp(got, want), "a {xx} path: %ld facts, %zu languages, zh src '%s': %s", n, nl,
          got, err.msg);
    snprintf(path, sizeof path, "%s/bizsre_test.json", tmp);
    n = load_count(path, NULL, &nl, got, sizeof got, &err);
    CHECK(n == 500 && nl == 2 && !strcmp(got, want), "one pair file: %ld facts, %zu languages, zh src '%s': %s", n, nl,
          got, err.msg);
    CHECK(load_count(path, "en,de", &nl, got, sizeof got, &err) == -1 && strstr(err.msg, "'de'") &&
              strstr(err.msg, "en and zh only"),
          "a language the pair file does not hold is named: %s", err.msg);
    snprintf(path, sizeof path, "%s/nothing_en{xx}.json", tmp);
    CHECK(load_count(path, NULL, &nl, got, sizeof got, &err) == -1 && strstr(err.msg, "nothing_en{xx}.json"),
          "a {xx} path matching no file is named: %s", err.msg);
    snprintf(target, sizeof target, "%s/mzsre_dev500_enzh.json", dir);
    snprintf(path, sizeof path, "%s/mzsre_dev500_enzh.json", tmp);
    CHECK(realpath(target, want) && symlink(want, path) == 0, "link %s", path);
    CHECK(load_count(tmp, NULL, &nl, got, sizeof got, &err) == -1 && strstr(err.msg, "mzsre_dev500_en{xx}.json") &&
              strstr(err.msg, "mzsre_test_duplicate_en{xx}.json"),
          "a folder with both sets asks for one: %s", err.msg);
    const char *names[] = {"mzsre_test_duplicate_enzh.json", "mzsre_test_duplicate_ende.json", "custom_enzh.json",
                           "bizsre_test.json", "mzsre_dev500_enzh.json"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp, names[i]);
        unlink(path);
    }
    rmdir(tmp);
}

static void test_bad_requests(const char *dir) {
    facts_set set;
    lafn_err err = {{0}};
    facts_opts o = {.langs = "en,xx"};
    CHECK(facts_load_mzsre(dir, &o, &set, &err) == -1 && strstr(err.msg, "'xx'"),
          "unknown language: %s", err.msg);
    facts_opts o2 = {.langs = "ja"};
    CHECK(facts_load_mzsre(dir, &o2, &set, &err) == -1 && strstr(err.msg, "mzsre_dev500_enja.json"),
          "language without file: %s", err.msg);
    size_t idx[] = {500};
    facts_opts o3 = {.indices = idx, .n_indices = 1};
    CHECK(facts_load_mzsre(dir, &o3, &set, &err) == -1 && strstr(err.msg, "500"),
          "index out of range: %s", err.msg);
    CHECK(facts_load_mzsre("/nonexistent/mzsre", NULL, &set, &err) == -1 &&
          strstr(err.msg, "/nonexistent/mzsre") && strstr(err.msg, "No such file"),
          "missing dir: %s", err.msg);
    CHECK(set.n_facts == 0 && set.facts == NULL, "set zeroed after failure");
}

/* The pipeline-file entry point: format + path + paraphrases, language list, policy. */
static void test_load_data(const char *dir) {
    facts_set set;
    facts_para_stats st;
    lafn_err err = {{0}};
    const char *codes[] = {"en", "cs", "nl", "ru"};
    facts_opts o = {.lang_codes = codes, .n_lang_codes = 4, .first = 45, .count = 10};
    CHECK(facts_on_error_parse("skip", &o.on_error, &err) == 0 && o.on_error == FACTS_ON_ERROR_SKIP,
          "policy skip");
    CHECK(facts_on_error_parse("ignore", &o.on_error, &err) == -1 && strstr(err.msg, "ignore"),
          "bad policy: %s", err.msg);
    int rc = facts_load_data("mzsre", dir, testutil_repo_path("conf/data/mzsre_paraphrases.jsonl"),
                             &o, &set, &st, &err);
    CHECK(rc == 0, "load_data mzsre: %s", err.msg);
    if (rc == 0) {
        CHECK(set.n_facts == 10 && set.n_langs == 4 && !strcmp(set.langs[1], "cz") &&
              !strcmp(set.langs[2], "du"), "list aliases: %zu facts %zu langs", set.n_facts, set.n_langs);
        /* facts 45-49 x (en, ru) have paraphrases; cz/du lines do not exist; 50-54 none */
        CHECK(st.n_applied == 10 && st.n_other_lang == 20 && st.n_unmatched == 270,
              "stats applied %zu other %zu unmatched %zu", st.n_applied, st.n_other_lang, st.n_unmatched);
        const facts_side *ru = facts_record_side(&set.facts[4], "ru");
        CHECK(ru && ru->n_paraphrases == 3 && set.facts[5].sides[0].n_paraphrases == 0,
              "paraphrases on 49 ru, none on 50");
        facts_set_free(&set);
    }
    const char *dup[] = {"en", "cz", "cs"};
    facts_opts o2 = {.lang_codes = dup, .n_lang_codes = 3};
    CHECK(facts_load_data("mzsre", dir, NULL, &o2, &set, NULL, &err) == -1 && strstr(err.msg, "'cs'") &&
          strstr(err.msg, "already listed"), "alias listed twice: %s", err.msg);
    facts_opts o3 = {.langs = "du,nl"};
    CHECK(facts_load_data("mzsre", dir, NULL, &o3, &set, NULL, &err) == -1 && strstr(err.msg, "'nl'"),
          "alias listed twice in a string: %s", err.msg);
    CHECK(facts_load_data("csv", dir, NULL, NULL, &set, NULL, &err) == -1 && strstr(err.msg, "\"csv\""),
          "unknown format: %s", err.msg);
    rc = facts_load_data("jsonl", testutil_repo_path("conf/data/demo_facts.jsonl"), NULL, NULL, &set,
                         NULL, &err);
    CHECK(rc == 0 && set.n_facts == 40, "load_data jsonl: %s", err.msg);
    if (rc == 0) facts_set_free(&set);
}

int main(void) {
    const char *dir = testutil_mzsre_dir();
    test_full_merge(dir);
    test_subsets(dir);
    test_bad_requests(dir);
    test_file_names(dir);
    test_load_data(dir);
    return testutil_finish("test_facts_mzsre");
}
