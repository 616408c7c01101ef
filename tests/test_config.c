/* test_config: pipeline-file knob tables, validation messages, overrides and round-trip printing. */
#include "config/config.h"
#include "testutil.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/lafn_test_config_XXXXXX";

/* Writes text to <tmpdir>/name and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) return path;
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text that must be rejected; the message must contain every needle. */
static void expect_reject(const char *name, const char *text, const char *n1, const char *n2,
                          const char *n3) {
    lafn_err err = {{0}};
    const char *path = write_file(name, text);
    int rc = config_check(path, &err);
    CHECK(rc == -1, "%s: accepted a bad file", name);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) CHECK(strstr(err.msg, needles[i]) != NULL,
                              "%s: message lacks '%s': %s", name, needles[i], err.msg);
    printf("  rejected %-16s %s\n", name, err.msg);
}

static void test_defaults_and_roundtrip(void) {
    lafn_config a, b;
    lafn_err err = {{0}};
    CHECK(config_defaults(&a, &err) == 0, "defaults: %s", err.msg);
    char *text = config_print_string(&a);
    CHECK(text != NULL, "config_print_string failed");
    if (!text) return;
    const char *path = write_file("resolved.cfg", text);
    CHECK(config_load(&b, path, &err) == 0, "resolved defaults do not load back: %s", err.msg);
    char *text2 = config_print_string(&b);
    /* the header line names the source; compare from the first section on */
    const char *s1 = text ? strstr(text, "\nmodel") : NULL, *s2 = text2 ? strstr(text2, "\nmodel") : NULL;
    CHECK(s1 && s2 && !strcmp(s1, s2), "print -> load -> print changed the text");
    double thr = -1;
    int resume = -1;
    CHECK(config_get_float(&b, "locate.threshold", &thr, &err) == 0 && thr == 0.2,
          "locate.threshold default: %g (%s)", thr, err.msg);
    CHECK(config_get_bool(&b, "run.resume", &resume, &err) == 0 && resume == 1, "run.resume");
    int64_t i64;
    CHECK(config_get_int(&b, "locate.threshold", &i64, &err) == -1 &&
          strstr(err.msg, "locate.threshold"), "reading a float knob as int must fail");
    CHECK(config_get_int(&b, "locate.nothing", &i64, &err) == -1, "unknown knob read");
    free(text);
    free(text2);
    config_free(&a);
    config_free(&b);
}

/* Every pipeline file the repository ships (conf/ and its folders) passes the checks. */
static void test_shipped_files(void) {
    glob_t g;
    int found = glob("conf/*.cfg", 0, NULL, &g) == 0 && glob("conf/*/*.cfg", GLOB_APPEND, NULL, &g) == 0;
    CHECK(found && g.gl_pathc >= 5, "expected at least 5 pipeline files under conf/, found %zu",
          found ? g.gl_pathc : 0);
    for (size_t i = 0; found && i < g.gl_pathc; i++) {
        lafn_err err = {{0}};
        CHECK(config_check(g.gl_pathv[i], &err) == 0, "%s: %s", g.gl_pathv[i], err.msg);
    }
    globfree(&g);
    lafn_config c;
    lafn_err err = {{0}};
    const char *demo_data = NULL;
    if (config_load(&c, "conf/demo.cfg", &err) == 0) {
        config_get_string(&c, "data.path", &demo_data, &err);
        CHECK(demo_data && access(demo_data, R_OK) == 0, "demo.cfg: data.path '%s' not readable",
              demo_data ? demo_data : "");
        config_free(&c);
    }
    if (config_load(&c, "conf/mzsre.cfg", &err)) return;
    char *const *codes;
    size_t n = 0;
    CHECK(config_get_string_list(&c, "languages.codes", &codes, &n, &err) == 0 && n == 12,
          "mzsre.cfg: expected 12 languages, found %zu", n);
    const char *path = NULL;
    CHECK(config_get_string(&c, "data.path", &path, &err) == 0 && !strcmp(path, "../shared/data/mzsre"),
          "mzsre.cfg data.path");
    CHECK(c.text && strstr(c.text, "MzsRE development split"), "file text kept");
    config_free(&c);
}

static void test_rejections(void) {
    expect_reject("unknown_key", "locate = {\n  threshold = 0.3;\n  treshold = 0.3;\n};\n",
                  ":3:", "locate.treshold", "did you mean 'locate.threshold'");
    expect_reject("other_section", "probe = {\n  threshold = 0.3;\n};\n",
                  ":2:", "probe.threshold", "did you mean 'locate.threshold'");
    expect_reject("unknown_section", "\nlcoate = { threshold = 0.3; };\n",
                  ":2:", "lcoate", "did you mean 'locate'");
    expect_reject("key_at_root", "# c\nthreshold = 0.3;\n", ":2:", "unknown section 'threshold'",
                  "did you mean 'locate.threshold'");
    expect_reject("not_group", "locate = 3;\n", ":1:", "'locate' must be a group", NULL);
    expect_reject("wrong_type", "edit = {\n mode = \"single\";\n lr = \"fast\";\n};\n",
                  ":3:", "edit.lr", "found a string");
    expect_reject("out_of_range", "locate = {\n\n  threshold = 1.5;\n};\n",
                  ":3:", "locate.threshold", "[0, 1]");
    expect_reject("int_range", "run = { ranks = 0; };\n", ":1:", "run.ranks", "out of range");
    expect_reject("bad_choice", "probe = {\n  score = \"attention\";\n};\n",
                  ":2:", "probe.score", "integrated_gradients");
    expect_reject("bad_bool", "run = {\n  resume = 1;\n};\n", ":2:", "run.resume", "true or false");
    expect_reject("list_dup", "probe = {\n  layers = [3, 4, 3];\n};\n",
                  ":2:", "probe.layers", "appears twice");
    expect_reject("list_elem", "probe = {\n  layers = (3, \"x\");\n};\n",
                  ":2:", "probe.layers", "element 1");
    expect_reject("list_len", "data = {\n  fact_range = [1, 2, 3];\n};\n",
                  ":2:", "data.fact_range", "3 elements");
    expect_reject("lang_code", "languages = {\n  codes = [\"en\", \"Chinese\"];\n};\n",
                  ":2:", "languages.codes", "lowercase");
    expect_reject("lang_alias", "languages = {\n  codes = [\"cz\", \"cs\"];\n};\n",
                  ":2", "languages.codes", "same language");
    expect_reject("relation", "probe = {\n  min_fraction = 0.5;\n};\nlocate = {\n  threshold = 0.3;\n};\n",
                  "probe.min_fraction (set at", ":2)", "locate.threshold (set at");
    expect_reject("range_order", "data = {\n  fact_range = [10, 5];\n};\n",
                  ":2", "data.fact_range", "first < end");
    expect_reject("syntax", "locate = {\n  threshold = = 0.3;\n};\n", ":2:", "syntax error", NULL);
    lafn_err err = {{0}};
    CHECK(config_check(tmpdir, &err) == -1 && strstr(err.msg, "not a regular file"),
          "a directory accepted as pipeline file: %s", err.msg);
    CHECK(config_check("conf/no-such-file.cfg", &err) == -1 && strstr(err.msg, "no-such-file"),
          "missing file: %s", err.msg);
    CHECK(config_check(write_file("int_for_float", "edit = { lr = 1; };\n"), &err) == 0,
          "an integer for a float knob must be accepted: %s", err.msg);
}

static void check_bad_overrides(lafn_config *cfg);
static void check_roundtrip(lafn_config *cfg);

/* A set of overrides is checked as a whole: related knobs may come in any order. */
/* config_at_default: true for a knob at its default (also when the file or an override writes the default
 * again), false once it differs, false for an unknown key. */
static void test_at_default(void) {
    lafn_config c;
    lafn_err err = {{0}};
    if (config_defaults(&c, &err)) {
        CHECK(0, "defaults: %s", err.msg);
        return;
    }
    CHECK(config_at_default(&c, "locate.rank_by") && config_at_default(&c, "edit.key_nearest_floor") &&
              config_at_default(&c, "data.fact_range") && config_at_default(&c, "edit.gate"),
          "defaults are at their default");
    CHECK(config_override(&c, "edit.key_nearest_floor=0.50", &err) == 0 && config_at_default(&c, "edit.key_nearest_floor"),
          "0.50 written again is the default 0.5");
    CHECK(config_override(&c, "locate.rank_by=contrast", &err) == 0 && !config_at_default(&c, "locate.rank_by"),
          "rank_by = contrast is not the default");
    CHECK(config_override(&c, "data.fact_range=[0, 5]", &err) == 0 && !config_at_default(&c, "data.fact_range"),
          "a fact range is not the default []");
    CHECK(!config_at_default(&c, "locate.no_such_key") && !config_at_default(&c, "nosection.rank_by") &&
              !config_at_default(&c, "locate"),
          "an unknown key is not at its default");
    config_free(&c);
}

/* The identity text: one "section.key = value;" line per knob of the named sections, no comments (a knob's help
 * is not part of what a stage computes), skipped keys left out. */
static void test_identity_text(void) {
    lafn_config c;
    lafn_err err = {{0}};
    char *text = NULL;
    size_t len = 0;
    if (config_defaults(&c, &err)) {
        CHECK(0, "defaults: %s", err.msg);
        return;
    }
    FILE *f = open_memstream(&text, &len);
    CHECK(f && config_print_identity(&c, "probe locate", "locate.rank_by", f) == 0 && fclose(f) == 0, "print");
    CHECK(text && !strchr(text, '#') && strstr(text, "probe.score = \"abs_activation\";\n") &&
              strstr(text, "locate.threshold = ") && !strstr(text, "rank_by") && !strstr(text, "edit.") &&
              !strstr(text, "model."),
          "identity text of probe + locate without rank_by: %s", text ? text : "(none)");
    for (char *line = text; line && *line; line = strchr(line, '\n') + 1)
        CHECK(!strncmp(line, "probe.", 6) || !strncmp(line, "locate.", 7), "a line outside the sections: %.60s", line);
    free(text);
    config_free(&c);
}

static void test_override_order(void) {
    lafn_config c;
    lafn_err err = {{0}};
    if (config_load(&c, "conf/demo.cfg", &err)) {
        CHECK(0, "demo.cfg: %s", err.msg);
        return;
    }
    char *raise[] = {"locate.min_neurons=1000", "locate.max_neurons=1000"};
    CHECK(config_override_all(&c, raise, 2, &err) == 0, "min before max: %s", err.msg);
    int64_t lo = 0, hi = 0;
    config_get_int(&c, "locate.min_neurons", &lo, &err);
    config_get_int(&c, "locate.max_neurons", &hi, &err);
    CHECK(lo == 1000 && hi == 1000, "both applied: %lld %lld", (long long)lo, (long long)hi);
    char *contradict[] = {"locate.max_neurons=5", "edit.lr=0.5"};
    CHECK(config_override_all(&c, contradict, 2, &err) == -1 && strstr(err.msg, "locate.min_neurons"),
          "max below min is refused after all overrides: %s", err.msg);
    config_free(&c);
}

static void test_overrides(void) {
    lafn_config c;
    lafn_err err = {{0}};
    if (config_load(&c, "conf/demo.cfg", &err)) {
        CHECK(0, "demo.cfg: %s", err.msg);
        return;
    }
    CHECK(config_override(&c, "locate.threshold=0.35", &err) == 0, "threshold: %s", err.msg);
    CHECK(config_override(&c, "edit.mode=batch", &err) == 0, "unquoted string: %s", err.msg);
    CHECK(config_override(&c, "languages.codes=en,zh,th", &err) == 0, "list a,b,c: %s", err.msg);
    CHECK(config_override(&c, "probe.layers=[6, 7, 8]", &err) == 0, "list [..]: %s", err.msg);
    CHECK(config_override(&c, "locate.edit_layers=7,8", &err) == 0, "int list a,b: %s", err.msg);
    CHECK(config_override(&c, "data.paraphrases=", &err) == 0, "empty string: %s", err.msg);
    CHECK(config_override(&c, "run.resume=false", &err) == 0, "bool: %s", err.msg);
    double thr = 0;
    const char *mode = "";
    char *const *codes = NULL;
    const int64_t *layers = NULL;
    size_t nc = 0, nl = 0;
    int resume = 1;
    config_get_float(&c, "locate.threshold", &thr, &err);
    config_get_string(&c, "edit.mode", &mode, &err);
    config_get_string_list(&c, "languages.codes", &codes, &nc, &err);
    config_get_int_list(&c, "probe.layers", &layers, &nl, &err);
    config_get_bool(&c, "run.resume", &resume, &err);
    CHECK(thr == 0.35 && !strcmp(mode, "batch") && resume == 0, "override values: %g %s %d", thr,
          mode, resume);
    CHECK(nc == 3 && !strcmp(codes[2], "th"), "codes after override: %zu", nc);
    CHECK(nl == 3 && layers[0] == 6 && layers[2] == 8, "layers after override: %zu", nl);

    check_bad_overrides(&c);
    check_roundtrip(&c);
    config_free(&c);
    test_override_order();
}

/* Rejected overrides name the key and leave the configuration unchanged. */
static void check_bad_overrides(lafn_config *cfg) {
    lafn_config c = *cfg;
    lafn_err err = {{0}};
    const char *bad[][3] = {
        {"locate.threshold=2", "locate.threshold", "command line"},
        {"locate.treshold=0.3", "did you mean 'locate.threshold'", "command line"},
        {"edit.mode=fast", "edit.mode", "single batch sequential"},
        {"edit.mode=batched", "edit.mode", "did you mean \"batch\"?"},
        {"eval.metrics=token_em,f1_harmonc", "element 1", "did you mean \"f1_harmonic\"?"},
        {"run.ranks=two", "run.ranks", "an integer in [1, 100000]"},
        {"probe.min_fraction=0.9", "probe.min_fraction", "locate.threshold"},
        {"locate.edit_layers=3", "edit layer 3 is not probed", "locate.edit_layers"},
        {"threshold", "section.key=value", "command line"},
        {"threshold=0.3", "did you mean 'locate.threshold'", "command line"},
        {"locate.threshold=0.3; top_k = 5", "expected one value", "locate.threshold"},
        {"paraphrase.method=file", "data.paraphrases", "method = file needs a paraphrase file"},
        {"paraphrase.min_length_ratio=3", "paraphrase.max_length_ratio", "min_length_ratio <= max_length_ratio"},
        {"paraphrase.method=greedy", "paraphrase.method", "none file sample beam"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lafn_err e = {{0}};
        CHECK(config_override(&c, bad[i][0], &e) == -1, "override '%s' accepted", bad[i][0]);
        CHECK(strstr(e.msg, bad[i][1]) && strstr(e.msg, bad[i][2]),
              "override '%s': message lacks '%s'/'%s': %s", bad[i][0], bad[i][1], bad[i][2], e.msg);
        printf("  rejected override %-24s %s\n", bad[i][0], e.msg);
    }
    double mf = 0;
    config_get_float(&c, "probe.min_fraction", &mf, &err);
    CHECK(mf == 0.1, "a rejected override changed probe.min_fraction to %g", mf);
    char *beam[] = {"paraphrase.method=beam", "paraphrase.candidates=9", "paraphrase.n_beams=8"};
    lafn_config d;
    CHECK(config_defaults(&d, &err) == 0, "defaults: %s", err.msg);
    CHECK(config_override_all(&d, beam, 3, &err) == -1 && strstr(err.msg, "paraphrase.n_beams") &&
              strstr(err.msg, "at most n_beams"),
          "9 beam candidates from 8 beams accepted: %s", err.msg);
    printf("  rejected overrides %s ... %s\n", beam[0], err.msg);
    config_free(&d);
    *cfg = c;
}

/* The resolved text of a non-default config (odd characters included) reads back the same. */
static void check_roundtrip(lafn_config *cfg) {
    lafn_config c = *cfg;
    lafn_err err = {{0}};
    /* the resolved text of a non-default config (odd characters included) reads back the same */
    CHECK(config_override(&c, "data.paraphrases=para/\u6570\"x\\y\ttab.jsonl", &err) == 0,
          "odd string: %s", err.msg);
    char *facts[] = {"edit.lr=0.1", "data.fact_range=[]", "data.facts=5,1,9"};
    CHECK(config_override_all(&c, facts, 3, &err) == 0, "lr / facts: %s", err.msg);
    char *t1 = config_print_string(&c), *t2 = NULL;
    lafn_config back;
    if (t1 && config_load(&back, write_file("resolved2.cfg", t1), &err) == 0) {
        t2 = config_print_string(&back);
        const char *p = NULL;
        config_get_string(&back, "data.paraphrases", &p, &err);
        CHECK(p && !strcmp(p, "para/\u6570\"x\\y\ttab.jsonl"), "string round trip: '%s'", p ? p : "");
        config_free(&back);
    } else {
        CHECK(0, "resolved text of an overridden config does not load: %s", err.msg);
    }
    const char *s1 = t1 ? strstr(t1, "\nmodel") : NULL, *s2 = t2 ? strstr(t2, "\nmodel") : NULL;
    CHECK(s1 && s2 && !strcmp(s1, s2), "print -> load -> print changed an overridden config");
    free(t1);
    free(t2);
    *cfg = c;
}

/* Every knob of the tables is documented in docs/PIPELINE_FILE.md as `section.key`. */
static void test_documented(void) {
    FILE *f = fopen("docs/PIPELINE_FILE.md", "r");
    CHECK(f != NULL, "docs/PIPELINE_FILE.md missing");
    if (!f) return;
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    fclose(f);
    size_t ns;
    const config_section *sec = config_sections(&ns);
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < sec[i].n_knobs; k++) {
            char key[128];
            snprintf(key, sizeof key, "`%s.%s`", sec[i].name, sec[i].knobs[k].key);
            CHECK(strstr(doc, key) != NULL, "docs/PIPELINE_FILE.md does not document %s", key);
        }
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults_and_roundtrip();
    test_shipped_files();
    test_rejections();
    test_overrides();
    test_at_default();
    test_identity_text();
    test_documented();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return testutil_finish("test_config");
}
