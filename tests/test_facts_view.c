/* test_facts_view: the edit view holds no evaluation-only text; paraphrase files are clean against the data; text normalisation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facts/facts.h"
#include "testutil.h"

/* Calls fn(s, ctx) on every string reachable from the view. */
static size_t view_strings(const facts_edit_view *v, int (*fn)(const char *, void *), void *ctx) {
    size_t bad = 0;
    bad += fn(v->id, ctx);
    for (size_t l = 0; l < v->n_langs; l++) {
        const facts_prompt_set *p = &v->langs[l];
        bad += fn(p->lang, ctx);
        if (p->subject) bad += fn(p->subject, ctx);
        bad += fn(p->target, ctx);
        for (size_t k = 0; k < p->n_prompts; k++) bad += fn(p->prompts[k], ctx);
    }
    return bad;
}

static int has_marker(const char *s, void *ctx) {
    if (strstr(s, "EVALONLY")) { fprintf(stderr, "eval-only text in the view: %s\n", s); return 1; }
    (void)ctx;
    return 0;
}

/* Eval-only strings are unique markers; none may reach the edit view. */
static void test_view_markers(void) {
    char path[] = "/tmp/lafn_view_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) { CHECK(0, "tmp file"); return; }
    fputs("{\"id\": \"m1\", \"langs\": {"
          "\"en\": {\"subject\": \"Paris\", \"src\": \"Paris is the capital of\", \"alt\": \"Peru\", "
          "\"rephrase\": \"EVALONLY rephrase en\", \"loc\": \"EVALONLY loc en\", \"loc_ans\": \"EVALONLY loc_ans en\", "
          "\"portability\": {\"question\": \"EVALONLY port q en\", \"answer\": \"EVALONLY port a en\"}, "
          "\"paraphrases\": [\"Paris serves as the capital of\"]},"
          "\"zh\": {\"src\": \"巴黎是这个国家的首都：\", \"alt\": \"秘鲁\", \"rephrase\": \"EVALONLY 改写\", "
          "\"loc\": \"EVALONLY 问\", \"loc_ans\": \"EVALONLY 答\", "
          "\"portability\": {\"New Question\": \"EVALONLY 迁移问\", \"New Answer\": \"EVALONLY 迁移答\"}}}}\n", f);
    fclose(f);
    facts_set set;
    lafn_err err = {{0}};
    int rc = facts_load_jsonl(path, NULL, &set, &err);
    unlink(path);
    CHECK(rc == 0, "marker file: %s", err.msg);
    if (rc) return;
    const facts_eval *ev = facts_record_eval(&set.facts[0], "zh");
    CHECK(ev && ev->port_a && !strcmp(ev->port_a, "EVALONLY 迁移答"), "eval accessor reaches the eval fields");
    facts_edit_view v;
    rc = facts_edit_view_build(&set.facts[0], &v, &err);
    CHECK(rc == 0, "view: %s", err.msg);
    facts_set_free(&set); /* the view must not share memory with the set */
    if (rc) return;
    CHECK(view_strings(&v, has_marker, NULL) == 0, "no eval-only marker in the view");
    CHECK(v.n_langs == 2 && v.langs[0].n_prompts == 2 && v.langs[1].n_prompts == 1, "prompt counts %zu",
          v.n_langs);
    CHECK(!strcmp(v.langs[0].prompts[0], "Paris is the capital of") &&
          !strcmp(v.langs[0].prompts[1], "Paris serves as the capital of") &&
          !strcmp(v.langs[0].target, "Peru") && !strcmp(v.langs[1].target, "秘鲁") &&
          !strcmp(v.langs[0].subject, "Paris") && v.langs[1].subject == NULL, "view content");
    facts_edit_view_free(&v);
}

typedef struct { const facts_eval *ev; const char *where; } eval_ctx;

/* 1 if s equals (normalised) an eval-only string of the side. */
static int equals_eval(const char *s, void *vctx) {
    const eval_ctx *c = vctx;
    const char *ev[] = {c->ev->rephrase, c->ev->loc, c->ev->loc_ans, c->ev->port_q, c->ev->port_a};
    char a[2048], b[2048];
    if (facts_text_norm(s, a, sizeof a)) return 0;
    for (size_t i = 0; i < 5; i++)
        if (ev[i] && !facts_text_norm(ev[i], b, sizeof b) && !strcmp(a, b)) {
            fprintf(stderr, "%s: view string \"%s\" equals eval-only \"%s\"\n", c->where, s, ev[i]);
            return 1;
        }
    return 0;
}

/* Every prompt set of a real data set: no prompt besides src (prompts[0], which
 * MzsRE itself often repeats as rephrase) equals an eval-only string of its side. */
static size_t view_leaks(const facts_set *set) {
    size_t bad = 0;
    for (size_t f = 0; f < set->n_facts; f++) {
        facts_edit_view v;
        if (facts_edit_view_build(&set->facts[f], &v, NULL)) return 1;
        for (size_t l = 0; l < v.n_langs; l++) {
            eval_ctx c = {facts_record_eval(&set->facts[f], v.langs[l].lang), set->facts[f].id};
            for (size_t k = 1; k < v.langs[l].n_prompts; k++)
                bad += equals_eval(v.langs[l].prompts[k], &c);
        }
        facts_edit_view_free(&v);
    }
    return bad;
}

static size_t min_paraphrases(const facts_set *set) {
    size_t m = SIZE_MAX;
    for (size_t f = 0; f < set->n_facts; f++)
        for (size_t s = 0; s < set->facts[f].n_sides; s++)
            if (set->facts[f].sides[s].n_paraphrases < m) m = set->facts[f].sides[s].n_paraphrases;
    return m;
}

static void test_demo_dataset(void) {
    facts_set set;
    lafn_err err = {{0}};
    int rc = facts_load_jsonl(testutil_repo_path("conf/data/demo_facts.jsonl"), NULL, &set, &err);
    CHECK(rc == 0, "demo load: %s", err.msg);
    if (rc) return;
    CHECK(set.n_facts >= 36 && set.n_langs == 6, "demo: %zu facts, %zu languages", set.n_facts, set.n_langs);
    const char *want[] = {"en", "zh", "de", "fr", "es", "ru"};
    size_t complete = 0;
    for (size_t f = 0; f < set.n_facts; f++) {
        size_t ok = set.facts[f].n_sides == 6;
        for (size_t l = 0; l < 6 && ok; l++) {
            const facts_side *s = facts_record_side(&set.facts[f], want[l]);
            ok = s && s->subject && s->eval.rephrase && s->eval.loc && s->eval.loc_ans &&
                 s->eval.port_q && s->eval.port_a;
        }
        complete += ok;
    }
    CHECK(complete == set.n_facts, "every demo fact has every field in 6 languages: %zu of %zu", complete,
          set.n_facts);
    CHECK(min_paraphrases(&set) >= 3, "demo: at least 3 paraphrases per side, found %zu", min_paraphrases(&set));
    rc = facts_check_paraphrases(&set, &err);
    CHECK(rc == 0, "demo paraphrase check: %s", err.msg);
    CHECK(view_leaks(&set) == 0, "demo: edit view equals no eval-only string");
    const facts_record *r = facts_set_find(&set, "eiffel-tower-city");
    const facts_side *ru = facts_record_side(r, "ru");
    CHECK(ru && !strcmp(ru->alt, "Рим") && !strcmp(ru->src, "Эйфелева башня находится в городе"), "demo spot value");
    facts_set_free(&set);
}

static void test_mzsre_paraphrases(void) {
    facts_set set;
    lafn_err err = {{0}};
    facts_opts o = {.langs = "en,zh,de,fr,es,ru", .count = 50};
    int rc = facts_load_mzsre(testutil_mzsre_dir(), &o, &set, &err);
    CHECK(rc == 0, "mzsre 0-49: %s", err.msg);
    if (rc) return;
    facts_para_stats st;
    rc = facts_load_paraphrases(testutil_repo_path("conf/data/mzsre_paraphrases.jsonl"), &set, NULL, &st, &err);
    CHECK(rc == 0, "mzsre paraphrases: %s", err.msg);
    CHECK(st.n_applied == 300 && st.n_unmatched == 0 && st.n_other_lang == 0, "applied %zu of 300", st.n_applied);
    CHECK(min_paraphrases(&set) >= 3, "mzsre: at least 3 paraphrases per side, found %zu", min_paraphrases(&set));
    rc = facts_check_paraphrases(&set, &err);
    CHECK(rc == 0, "mzsre paraphrase check: %s", err.msg);
    CHECK(view_leaks(&set) == 0, "mzsre: edit view equals no eval-only string");
    /* the check must catch a paraphrase equal to the rephrase up to case, spaces and final punctuation */
    facts_side *en = &set.facts[0].sides[0];
    char *leak = malloc(128);
    snprintf(leak, 128, "  when WAS the IAAF   Combined Events Challenge launched ");
    free(en->paraphrases[1]);
    en->paraphrases[1] = leak;
    rc = facts_check_paraphrases(&set, &err);
    CHECK(rc == -1 && strstr(err.msg, "mzsre-0") && strstr(err.msg, "rephrase") && strstr(err.msg, "language en"),
          "leak detected: %s", err.msg);
    facts_set_free(&set);

    o.count = 10; /* subset: the other facts' lines are counted as unmatched, not errors */
    if (facts_load_mzsre(testutil_mzsre_dir(), &o, &set, &err) == 0) {
        rc = facts_load_paraphrases(testutil_repo_path("conf/data/mzsre_paraphrases.jsonl"), &set, NULL, &st, &err);
        CHECK(rc == 0 && st.n_applied == 60 && st.n_unmatched == 240, "subset: applied %zu unmatched %zu",
              st.n_applied, st.n_unmatched);
        facts_set_free(&set);
    }
}

static void test_norm(void) {
    const char *in[] = {"  Hello \t  WORLD ?", "Как ДЕЛА?", "ÀÉÎ Ñ", "ČEŠTINA Ł", "IAAF综合项目？", "ΣΟΦΙΑ.", "  ", "Ё"};
    const char *out[] = {"hello world", "как дела", "àéî ñ", "čeština ł", "iaaf综合项目", "σοφια", "", "ё"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char b[64];
        int rc = facts_text_norm(in[i], b, sizeof b);
        CHECK(rc == 0 && !strcmp(b, out[i]), "norm(\"%s\") = \"%s\", expected \"%s\"", in[i], b, out[i]);
    }
    char small[4];
    CHECK(facts_text_norm("too long", small, sizeof small) == -1, "overflow reported");
}

int main(void) {
    test_view_markers();
    test_demo_dataset();
    test_mzsre_paraphrases();
    test_norm();
    return testutil_finish("test_facts_view");
}
