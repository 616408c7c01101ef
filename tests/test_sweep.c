/* test_sweep: scripts/sweep.sh on the tiny model — variants run, seeded gate variants rerun eval only, a rerun resumes everything, bad sweep files are refused; report_table.py reads a variant. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static char tmp[PATH_MAX], build_dir[PATH_MAX];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

/* Runs scripts/sweep.sh PIPELINE SWEEP OUT with its output in tmp/NAME.txt; returns the exit status. */
static int run_sweep(const char *sweep_file, const char *name) {
    char cmd[6 * PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "LAFN_BUILD_DIR='%s' scripts/sweep.sh '%s/tiny.cfg' '%s' '%s/out' > '%s/%s.txt' 2>&1",
             build_dir, tmp, sweep_file, tmp, tmp, name);
    int ws = system(cmd);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* The text of tmp/REL (caller frees), or an empty string. */
static char *read_rel(const char *rel) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    char *text = testutil_read_text(path);
    return text ? text : calloc(1, 1);
}

/* 1 if the last "edit: ... facts (N resumed)" line of variant's edit log reports all 4 facts resumed. */
static int edit_all_resumed(const char *variant) {
    char rel[128];
    snprintf(rel, sizeof rel, "out/%s/logs/edit.log", variant);
    char *log = read_rel(rel);
    const char *last = NULL;
    for (const char *p = strstr(log, "edit.h5: "); p; p = strstr(p + 1, "edit.h5: ")) last = p;
    int all = last && strstr(last, "4 facts (4 resumed)") != NULL;
    free(log);
    return all;
}

/* tmp/tiny.cfg: 4 embedded facts in en and zh on the tiny random-weight Gemma 3, 4 Adam steps. */
static void write_tiny_cfg(void) {
    char path[PATH_MAX + 32], cfg[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/tiny.cfg", tmp);
    snprintf(cfg, sizeof cfg,
             "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
             "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; fact_range = [0, 4]; };\n"
             "languages = { codes = [\"en\", \"zh\"]; };\n"
             "run = { output_dir = \"%s/unused\"; ranks = 2; seed = 7; };\n"
             "edit = { steps = 4; };\n"
             "eval = { bootstrap_samples = 20; };\n", tmp);
    write_text(path, cfg);
}

/* scripts/report_table.py on the base variant: a row per language (en, zh) and the language means. */
static void check_report_table(void) {
    char cmd[3 * PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "python3 scripts/report_table.py '%s/out/base' > '%s/report.txt' 2>&1", tmp, tmp);
    int ws = system(cmd);
    char *report = read_rel("report.txt");
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && strstr(report, "\n| en | ") && strstr(report, "\n| zh | ") &&
              strstr(report, "\n| mean of languages | "),
          "report_table.py: expected rows en, zh and the means: %s", report);
    free(report);
}

/* scripts/control_stats.py on two variants: one column each, the neuron, edit and firing rows. */
static void check_control_stats(void) {
    char cmd[3 * PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "python3 scripts/control_stats.py '%s/out/base' '%s/out/gate_half' > '%s/stats.txt' 2>&1",
             tmp, tmp, tmp);
    int ws = system(cmd);
    char *stats = read_rel("stats.txt");
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && strstr(stats, "| | base | gate_half |") &&
              strstr(stats, "\n| distinct neurons | ") && strstr(stats, "\n| steps (mean) | ") &&
              strstr(stats, "\n| fired on generality questions | "),
          "control_stats.py: expected columns base, gate_half and the neuron, edit and firing rows: %s", stats);
    free(stats);
}

static void test_sweep_runs_and_resumes(void) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/tiny.sweep", tmp);
    write_text(path, "# a comment line\n"
                     "base        edit.lr=0.05\n"
                     "gate_half   from=base edit.lr=0.05 edit.gate=0.5   # eval only\n"
                     "lr_small    edit.lr=0.01\n");
    int st = run_sweep(path, "first");
    char *out = read_rel("first.txt");
    CHECK(st == 0, "sweep failed (status %d): %s", st, out);
    free(out);
    char *table = read_rel("out/sweep.tsv");
    int rows = 0;
    for (const char *p = table; (p = strchr(p, '\n')); p++) rows++;
    CHECK(rows == 4 && !strncmp(table, "variant\tscore", 13) && strstr(table, "\nbase\t") &&
          strstr(table, "\ngate_half\t") && strstr(table, "\nlr_small\t"),
          "sweep.tsv: expected a header and the rows base, gate_half, lr_small: %s", table);
    const char *base_row = strstr(table, "\nbase\t");
    const char *diff = base_row ? strchr(base_row + 6, '\t') : NULL;
    const char *zero = "\t+0.000 [+0.000, +0.000]\t";
    CHECK(diff && !strncmp(diff, zero, strlen(zero)),
          "sweep.tsv: the reference (first) variant must differ from itself by exactly 0: %s", table);
    free(table);
    CHECK(edit_all_resumed("gate_half"), "gate_half recomputed its edits instead of taking base's");
    CHECK(!edit_all_resumed("lr_small"), "lr_small must optimise its own edits");
    char *eval_log = read_rel("out/gate_half/logs/eval.log");
    CHECK(strstr(eval_log, "(0 resumed)") != NULL, "gate_half must run its own eval: %s", eval_log);
    free(eval_log);
    check_report_table();
    check_control_stats();
    /* the same command again: every variant is recognised as done */
    st = run_sweep(path, "second");
    CHECK(st == 0, "rerun failed (status %d)", st);
    CHECK(edit_all_resumed("base") && edit_all_resumed("gate_half") && edit_all_resumed("lr_small"),
          "the rerun recomputed edits");
}

/* Sweep file NAME.sweep with text must be refused: non-zero exit, the message
 * naming NAME.sweep:LINE and containing needle. */
static void expect_refused(const char *name, const char *text, int line, const char *needle, const char *why) {
    char path[PATH_MAX + 64], where[96], out_name[80];
    snprintf(path, sizeof path, "%s/%s.sweep", tmp, name);
    snprintf(where, sizeof where, "%s.sweep:%d", name, line);
    snprintf(out_name, sizeof out_name, "%s.txt", name);
    write_text(path, text);
    int st = run_sweep(path, name);
    char *out = read_rel(out_name);
    CHECK(st != 0 && strstr(out, where) && strstr(out, needle), "%s (status %d): %s", why, st, out);
    free(out);
}

static void test_bad_sweep_file(void) {
    expect_refused("bad", "fine edit.lr=0.05\nbad/name edit.lr=0.1\n", 2, "bad/name",
                   "a bad variant name must stop the sweep naming file:line and the name");
    expect_refused("missing_seed", "orphan from=nowhere edit.gate=0.5\n", 1, "nowhere",
                   "from= of a variant not run must stop the sweep naming it");
    expect_refused("seed_differs", "a edit.lr=0.05\nb from=a edit.lr=0.01 edit.gate=0.5\n", 2,
                   "differs from a in more than eval.*", "a from= variant with other edit knobs must be refused");
    expect_refused("typo", "a edit.lr=0.05\nb edit.lrr=0.01\n", 2, "edit.lrr",
                   "an unknown key must stop the sweep before any run, naming line and key");
    char *variants = read_rel("out/a/logs/probe.log");
    CHECK(variants[0] == '\0', "a refused sweep file must not run any variant");
    free(variants);
}

int main(void) {
    const char *lafn = testutil_lafn_binary();
    CHECK(lafn != NULL, "the lafn driver is not built next to this test");
    snprintf(tmp, sizeof tmp, "/tmp/lafn_test_sweep_XXXXXX");
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp failed");
    if (!lafn) return testutil_finish("test_sweep");
    snprintf(build_dir, sizeof build_dir, "%s", lafn);
    dirname(build_dir);
    write_tiny_cfg();
    test_bad_sweep_file();
    test_sweep_runs_and_resumes();
    int status = testutil_finish("test_sweep");
    if (status == 0) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    }
    return status;
}
