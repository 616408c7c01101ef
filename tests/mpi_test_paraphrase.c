/* mpi_test_paraphrase: the paraphrase stage in-process with the tiny Gemma 3 model — 2 ranks = 1 rank (sampling and beam search), resume after a kill, bad input refused with nothing written, probe taking up paraphrase.h5 (and refusing another run's), the export read back by the paraphrase-file loader. */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facts/facts.h"
#include "h5/h5out.h"
#include "paraphrase/paraphrase.h"
#include "probe/stage_probe.h"
#include "testutil.h"

#define N_FACTS 4
#define N_LANGS 3

static int rank = 0;
static char root[256], cfg[300];

/* The test's pipeline: 4 demo facts in 3 languages; filters loose enough for the random model to pass some. */
static void write_cfg(void) {
    FILE *f = fopen(cfg, "w");
    fprintf(f, "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
               "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; facts = [0, 1, 2, 3]; };\n"
               "languages = { codes = [\"en\", \"zh\", \"de\"]; };\n"
               "run = { shard_facts = 1; };\n"
               "paraphrase = { method = \"sample\"; candidates = 10; max_new_tokens = 300; temperature = 1.0;\n"
               "  script_share = 0.0; min_length_ratio = 0.0; max_length_ratio = 100.0; };\n");
    fclose(f);
}

static void dir_of(char *out, const char *name) { snprintf(out, 300, "%s/%s", root, name); }

/* Runs the paraphrase stage (or probe) into dir with up to 3 more overrides (NULL-terminated); its status. */
static int run_stage(int probe, const char *dir, MPI_Comm comm, const char *const *extra, lafn_err *err) {
    char out[400];
    char *ov[8] = {out};
    int n = 1;
    snprintf(out, sizeof out, "run.output_dir=%s", dir);
    for (size_t i = 0; extra && extra[i] && n < 8; i++) ov[n++] = (char *)extra[i];
    return probe ? stage_probe_run(cfg, ov, n, "mpi_test_paraphrase", comm, NULL, err)
                 : stage_paraphrase_run(cfg, ov, n, "mpi_test_paraphrase", comm, NULL, err);
}

/* Reads DIR/paraphrase.h5 whole (serial HDF5, the calling rank); 0 or -1 after a failed check. */
static int read_table(const char *dir, paraphrase_table *t) {
    char path[400];
    lafn_err err = {{0}};
    snprintf(path, sizeof path, "%s/paraphrase.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int rc = f >= 0 ? paraphrase_table_read(f, path, t, &err) : -1;
    if (f >= 0) H5Fclose(f);
    CHECK(rc == 0, "cannot read %s: %s", path, err.msg);
    return rc;
}

static size_t row_of(const paraphrase_table *t, int64_t fact) {
    for (size_t r = 0; r < t->n_rows; r++)
        if (t->facts[r] == fact) return r;
    return (size_t)-1;
}

/* Two paraphrase.h5 hold the same facts, counts and candidates (texts, languages, verdicts), whatever the row order. */
static void check_same(const char *a_dir, const char *b_dir, const char *what) {
    paraphrase_table a, b;
    if (read_table(a_dir, &a) != 0) return;
    if (read_table(b_dir, &b) != 0) {
        paraphrase_table_free(&a);
        return;
    }
    size_t row = a.n_langs * PARAPHRASE_N_COUNTS, differ = 0;
    CHECK(a.n_rows == N_FACTS && b.n_rows == N_FACTS && a.n_cands == b.n_cands, "%s: %zu/%zu rows, %zu/%zu candidates",
          what, a.n_rows, b.n_rows, a.n_cands, b.n_cands);
    for (size_t r = 0; r < a.n_rows; r++) {
        size_t s = row_of(&b, a.facts[r]);
        if (s == (size_t)-1 || a.off[r + 1] - a.off[r] != b.off[s + 1] - b.off[s] ||
            memcmp(a.counts + r * row, b.counts + s * row, row * sizeof *a.counts)) {
            differ++;
            continue;
        }
        for (int64_t k = 0; k < a.off[r + 1] - a.off[r]; k++) {
            int64_t i = a.off[r] + k, j = b.off[s] + k;
            differ += a.lang[i] != b.lang[j] || a.verdict[i] != b.verdict[j] || strcmp(a.text[i], b.text[j]) != 0;
        }
    }
    CHECK(differ == 0, "%s: %zu facts or candidates differ", what, differ);
    printf("%s: %zu facts, %zu candidates, the same\n", what, a.n_rows, a.n_cands);
    paraphrase_table_free(&a);
    paraphrase_table_free(&b);
}

/* Every fact once, every counter row adding up, candidates per (fact, language) as many as asked. */
static size_t check_layout(const char *dir, size_t cand) {
    paraphrase_table t;
    size_t kept = 0;
    if (read_table(dir, &t) != 0) return 0;
    CHECK(t.n_rows == N_FACTS && t.n_langs == N_LANGS && t.n_cands == N_FACTS * N_LANGS * cand,
          "%zu rows, %zu languages, %zu candidates", t.n_rows, t.n_langs, t.n_cands);
    for (size_t r = 0; r < t.n_rows; r++)
        for (size_t l = 0; l < t.n_langs; l++) {
            const int32_t *c = t.counts + (r * t.n_langs + l) * PARAPHRASE_N_COUNTS;
            int32_t sum = 0;
            for (int v = 0; v < PARAPHRASE_N_VERDICTS; v++) sum += c[1 + v];
            CHECK(c[0] == (int32_t)cand && sum == c[0], "fact %lld %s: %d generated, verdicts add to %d",
                  (long long)t.facts[r], t.langs[l], c[0], sum);
            kept += (size_t)c[1 + PARAPHRASE_KEPT];
        }
    paraphrase_table_free(&t);
    return kept;
}

/* The stage on 2 ranks and on 1 gives the same paraphrase.h5 (sampling, then beam search). */
static void test_ranks(const char *a, MPI_Comm one) {
    static const char *const beam[] = {"paraphrase.method=beam", "paraphrase.n_beams=4", "paraphrase.candidates=3", NULL};
    char b[300], c[300], d[300];
    lafn_err err = {{0}};
    dir_of(b, "one_rank"), dir_of(c, "beam"), dir_of(d, "beam_one_rank");
    CHECK(run_stage(0, a, MPI_COMM_WORLD, NULL, &err) == 0, "2 ranks: %s", err.msg);
    CHECK(run_stage(0, c, MPI_COMM_WORLD, beam, &err) == 0, "beam, 2 ranks: %s", err.msg);
    if (rank == 0) {
        CHECK(run_stage(0, b, one, NULL, &err) == 0, "1 rank: %s", err.msg);
        CHECK(run_stage(0, d, one, beam, &err) == 0, "beam, 1 rank: %s", err.msg);
        size_t kept = check_layout(a, 10);
        printf("sampling: %zu paraphrases kept of %d candidates\n", kept, N_FACTS * N_LANGS * 10);
        CHECK(kept > 0, "the loose filters kept nothing: the join below would test nothing");
        check_layout(c, 3);
        check_same(a, b, "sampling, 2 ranks vs 1");
        check_same(c, d, "beam search, 2 ranks vs 1");
    }
}

/* paraphrase.languages = [zh]: zh's candidates exactly those of the run over every language (each (fact, language)
 * draws from its own streams), en and de none at all (generated 0). a_dir holds that run. */
static void test_languages(const char *a_dir) {
    static const char *const zh_only[] = {"paraphrase.languages=[\"zh\"]", NULL};
    char dir[300];
    lafn_err err = {{0}};
    dir_of(dir, "zh_only");
    CHECK(run_stage(0, dir, MPI_COMM_WORLD, zh_only, &err) == 0, "paraphrase.languages = [zh]: %s", err.msg);
    paraphrase_table a, z;
    if (rank != 0 || read_table(a_dir, &a) != 0) return;
    if (read_table(dir, &z) != 0) {
        paraphrase_table_free(&a);
        return;
    }
    size_t zh_a = 0, zh_z = 0, differ = 0, other = 0;
    for (size_t r = 0; r < z.n_rows; r++) {
        size_t s = row_of(&a, z.facts[r]);
        for (size_t l = 0; l < z.n_langs; l++) {
            int32_t generated = z.counts[(r * z.n_langs + l) * PARAPHRASE_N_COUNTS];
            other += strcmp(z.langs[l], "zh") != 0 && generated != 0;
        }
        for (int64_t i = z.off[r]; i < z.off[r + 1]; i++) other += strcmp(z.langs[z.lang[i]], "zh") != 0;
        if (s == (size_t)-1) continue;
        int64_t j = a.off[s];
        for (int64_t i = z.off[r]; i < z.off[r + 1]; i++, zh_z++) {
            while (j < a.off[s + 1] && strcmp(a.langs[a.lang[j]], "zh") != 0) j++;
            differ += j == a.off[s + 1] || strcmp(a.text[j], z.text[i]) != 0 || a.verdict[j] != z.verdict[i];
            j++;
        }
        for (int64_t k = a.off[s]; k < a.off[s + 1]; k++) zh_a += strcmp(a.langs[a.lang[k]], "zh") == 0;
    }
    CHECK(other == 0 && zh_z == zh_a && zh_z > 0 && differ == 0,
          "zh only: %zu candidates of other languages or counted, %zu vs %zu zh candidates, %zu differ", other, zh_z,
          zh_a, differ);
    printf("paraphrase.languages = [zh]: %zu zh candidates as in the full run, none in en and de\n", zh_z);
    paraphrase_table_free(&a);
    paraphrase_table_free(&z);
}

/* A run killed after one shard (plus a half-written shard and merge) resumes to the uninterrupted result. */
static void test_resume(const char *a) {
    char b[300], src[400], dst[400];
    lafn_err err = {{0}};
    dir_of(b, "resumed");
    if (rank == 0) {
        mkdir(b, 0755);
        snprintf(src, sizeof src, "%s/paraphrase.shard-0-0.h5", a);
        snprintf(dst, sizeof dst, "%s/paraphrase.shard-0-0.h5", b);
        testutil_copy_file(src, dst);
        const char *junk[] = {"paraphrase.shard-1-0.h5.tmp", "paraphrase.h5.tmp"};
        for (int i = 0; i < 2; i++) {
            snprintf(dst, sizeof dst, "%s/%s", b, junk[i]);
            FILE *f = fopen(dst, "w");
            fputs("\x89HDF half written", f);
            fclose(f);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(run_stage(0, b, MPI_COMM_WORLD, NULL, &err) == 0, "resume: %s", err.msg);
    if (rank != 0) return;
    check_same(a, b, "resumed vs uninterrupted");
    snprintf(src, sizeof src, "%s/paraphrase.shard-0-0.h5", a);
    snprintf(dst, sizeof dst, "%s/paraphrase.shard-0-0.h5", b);
    char *x = testutil_read_text(src), *y = testutil_read_text(dst);
    struct stat sx, sy;
    CHECK(x && y && stat(src, &sx) == 0 && stat(dst, &sy) == 0 && sx.st_size == sy.st_size &&
              !memcmp(x, y, (size_t)sx.st_size),
          "the committed shard was written again instead of resumed");
    free(x);
    free(y);
}

/* Bad input stops the stage with a message naming the file or key, and leaves no paraphrase.h5. */
static void test_bad_input(void) {
    char dir[300], tpl[300], path[400], bad_tpl[400], model[400];
    dir_of(dir, "bad"), dir_of(tpl, "templates");
    if (rank == 0) {
        mkdir(tpl, 0755);
        snprintf(path, sizeof path, "%s/en.txt", tpl);
        testutil_copy_file("conf/paraphrase/en.txt", path);
        snprintf(path, sizeof path, "%s/de.txt", tpl);
        FILE *f = fopen(path, "w");
        fputs("Original: a question\nRewritten:", f); /* no {src} */
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    snprintf(bad_tpl, sizeof bad_tpl, "paraphrase.template_dir=%s", tpl);
    snprintf(model, sizeof model, "paraphrase.model=%s/missing.gguf", root);
    const char *missing_zh[] = {bad_tpl, NULL}, *no_src[] = {bad_tpl, "languages.codes=en,de", NULL};
    const char *no_model[] = {model, NULL}, *none[] = {"paraphrase.method=none", NULL};
    const char *not_run[] = {"paraphrase.languages=[\"en\", \"fr\"]", NULL};
    struct {
        const char *const *ov;
        const char *a, *b;
    } cases[] = {
        {missing_zh, "paraphrase.template_dir", "/zh.txt"},
        {no_src, "de.txt", "{src}"},
        {no_model, "missing.gguf", "paraphrase"},
        {none, "paraphrase.method", "'none'"},
        {not_run, "paraphrase.languages", "a language of the run"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lafn_err err = {{0}};
        int rc = run_stage(0, dir, MPI_COMM_WORLD, cases[i].ov, &err);
        CHECK(rc == -1 && strstr(err.msg, cases[i].a) && strstr(err.msg, cases[i].b), "case %zu: status %d, '%s'", i,
              rc, err.msg);
        if (rank == 0) printf("refused: %s\n", err.msg);
    }
    snprintf(path, sizeof path, "%s/paraphrase.h5", dir);
    CHECK(access(path, F_OK) != 0, "a failed stage left %s", path);
}

/* Prompts per fact in DIR/probe.h5, by fact index (N_FACTS entries). */
static void probe_prompts(const char *dir, int64_t *n) {
    char path[400];
    lafn_err err = {{0}};
    snprintf(path, sizeof path, "%s/probe.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t *facts = NULL, *off = NULL;
    void *lang = NULL;
    size_t rows = 0;
    h5out_dataset d = {"prompt/lang", H5OUT_CSR, H5OUT_I32, 0, NULL, NULL};
    int ok = f >= 0 && h5out_read_all(f, path, "facts", H5OUT_I64, 0, (void **)&facts, &rows, &err) == 0 &&
             h5out_read_dataset(f, path, &d, rows, &lang, &off, &err) == 0;
    CHECK(ok && rows == N_FACTS, "%s: %s", path, err.msg);
    for (size_t r = 0; ok && r < rows; r++)
        if (facts[r] >= 0 && facts[r] < N_FACTS) n[facts[r]] = off[r + 1] - off[r];
    if (f >= 0) H5Fclose(f);
    free(facts), free(off), free(lang);
}

/* Probe with method sample scores src, the file's paraphrases and the kept generated ones; refuses another run's file. */
static void test_probe(const char *a) {
    static const char *const none[] = {"paraphrase.method=none", NULL}, *count2[] = {"paraphrase.count=2", NULL};
    char plain[300], missing[300];
    lafn_err err = {{0}};
    dir_of(plain, "probe_plain"), dir_of(missing, "probe_missing");
    CHECK(run_stage(1, a, MPI_COMM_WORLD, NULL, &err) == 0, "probe with paraphrase.h5: %s", err.msg);
    CHECK(run_stage(1, plain, MPI_COMM_WORLD, none, &err) == 0, "probe without: %s", err.msg);
    int rc = run_stage(1, a, MPI_COMM_WORLD, count2, &err);
    CHECK(rc == -1 && strstr(err.msg, "paraphrase.h5") && strstr(err.msg, "belongs to run"),
          "probe accepted another run's paraphrase.h5: %s", err.msg);
    rc = run_stage(1, missing, MPI_COMM_WORLD, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, "paraphrase.h5"), "probe ran without paraphrase.h5: %s", err.msg);
    if (rank != 0) return;
    int64_t with[N_FACTS] = {0}, without[N_FACTS] = {0}, kept[N_FACTS] = {0};
    probe_prompts(a, with);
    probe_prompts(plain, without);
    paraphrase_table t;
    if (read_table(a, &t) != 0) return;
    for (size_t r = 0; r < t.n_rows; r++)
        for (int64_t c = t.off[r]; c < t.off[r + 1]; c++) kept[t.facts[r]] += t.verdict[c] == PARAPHRASE_KEPT;
    paraphrase_table_free(&t);
    for (int f = 0; f < N_FACTS; f++) {
        printf("fact %d: probe scores %lld prompts with paraphrase.h5, %lld without, %lld kept\n", f, (long long)with[f],
               (long long)without[f], (long long)kept[f]);
        CHECK(with[f] == without[f] + kept[f], "fact %d: %lld prompts, expected %lld + %lld kept", f, (long long)with[f],
              (long long)without[f], (long long)kept[f]);
    }
}

/* `lafn paraphrases` writes a file the paraphrase loader appends, in order, to the facts it names. */
static void test_export(const char *a) {
    if (rank != 0) return;
    const char *lafn = testutil_lafn_binary();
    char cmd[1200], out[400];
    snprintf(out, sizeof out, "%s/export.jsonl", a);
    snprintf(cmd, sizeof cmd, "%s paraphrases %s > %s", lafn ? lafn : "lafn", a, out);
    CHECK(lafn && system(cmd) == 0, "%s failed", cmd);
    facts_opts o = {.langs = "en,zh,de", .count = N_FACTS};
    facts_set set = {0};
    facts_para_stats st = {0};
    paraphrase_table t;
    lafn_err err = {{0}};
    if (read_table(a, &t) != 0) return;
    CHECK(facts_load_jsonl("conf/data/demo_facts.jsonl", &o, &set, &err) == 0, "%s", err.msg);
    size_t before[N_FACTS][N_LANGS] = {{0}}, lines = 0, mismatches = 0;
    for (size_t f = 0; f < set.n_facts && f < N_FACTS; f++)
        for (size_t l = 0; l < N_LANGS; l++) before[f][l] = facts_record_side(&set.facts[f], t.langs[l])->n_paraphrases;
    CHECK(facts_load_paraphrases(out, &set, NULL, &st, &err) == 0, "the export does not load: %s", err.msg);
    for (size_t r = 0; r < t.n_rows; r++)
        for (size_t l = 0; l < t.n_langs; l++) {
            const facts_side *side = facts_record_side(&set.facts[t.facts[r]], t.langs[l]);
            size_t k = before[t.facts[r]][l], n = 0;
            for (int64_t c = t.off[r]; c < t.off[r + 1]; c++) {
                if (t.lang[c] != (int32_t)l || t.verdict[c] != PARAPHRASE_KEPT) continue;
                mismatches += k + n >= side->n_paraphrases || strcmp(side->paraphrases[k + n], t.text[c]) != 0;
                n++;
            }
            mismatches += side->n_paraphrases != k + n;
            lines += n > 0;
        }
    CHECK(st.n_lines == lines && st.n_applied == lines && mismatches == 0,
          "export: %zu lines read, %zu applied, %zu (fact, language) pairs with kept paraphrases, %zu mismatches",
          st.n_lines, st.n_applied, lines, mismatches);
    printf("export: %zu lines, loaded back into the facts they name\n", st.n_lines);
    facts_set_free(&set);
    paraphrase_table_free(&t);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "paraphrase", root, sizeof root);
    snprintf(cfg, sizeof cfg, "%s/p.cfg", root);
    if (rank == 0) write_cfg();
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Comm one;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &one);
    char a[300];
    dir_of(a, "a");
    test_ranks(a, one);
    test_resume(a);
    test_languages(a);
    test_bad_input();
    test_probe(a);
    test_export(a);
    if (one != MPI_COMM_NULL) MPI_Comm_free(&one);
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, root);
    int status = rank == 0 ? testutil_finish("mpi_test_paraphrase") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
