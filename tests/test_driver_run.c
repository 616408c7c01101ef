/* test_driver_run: `lafn run` as a user runs it — bad pipeline files, unwritable output, --dry-run's counts, a failing stage, resume after SIGKILL. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edit/stage_edit.h"
#include "h5/h5out.h"
#include "testutil.h"
#include "testutil_lafn.h"

static char lafn[PATH_MAX + 16], tmp[PATH_MAX];

/* The lafn binary of this build, into lafn. */
static int find_lafn(void) {
    const char *path = testutil_lafn_binary();
    if (!path) return -1;
    snprintf(lafn, sizeof lafn, "%s", path);
    return 0;
}

/* Runs lafn to the end; returns its exit status and leaves its output in *out (caller frees). */
static int run_lafn(char **argv, char **out) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/out.txt", tmp);
    return testutil_lafn_run(argv, path, out);
}

static int exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

/* An unknown key and a bad override are refused before anything runs, naming the key. */
static void test_bad_config(void) {
    char cfg[PATH_MAX + 16], out_dir[PATH_MAX + 16], text[2 * PATH_MAX], *out = NULL;
    snprintf(cfg, sizeof cfg, "%s/bad.cfg", tmp);
    snprintf(out_dir, sizeof out_dir, "%s/bad-run", tmp);
    snprintf(text, sizeof text, "run = { output_dir = \"%s\"; };\nlocate = {\n  treshold = 0.3;\n};\n", out_dir);
    testutil_write_text(cfg, text);
    char *argv[] = {NULL, "run", cfg, NULL};
    int st = run_lafn(argv, &out);
    CHECK(st != 0, "a misspelt key must fail; exit status %d", st);
    CHECK(strstr(out, "locate.treshold") && strstr(out, "bad.cfg:3"), "message names file:line and key: %s", out);
    CHECK(strstr(out, "nothing was run"), "says nothing ran: %s", out);
    CHECK(!exists(out_dir), "the output folder %s must not be created", out_dir);
    free(out);
    char good[PATH_MAX + 16];
    snprintf(good, sizeof good, "%s/good.cfg", tmp);
    testutil_write_tiny_cfg(good, out_dir, "conf/data/demo_facts.jsonl");
    char *argv2[] = {NULL, "run", good, "locate.threshold=1.5", NULL};
    st = run_lafn(argv2, &out);
    CHECK(st != 0 && strstr(out, "locate.threshold") && strstr(out, "out of range"), "bad override: %d %s", st, out);
    CHECK(!exists(out_dir), "the output folder must not be created after a bad override");
    free(out);
}

/* An output folder below a regular file cannot be created: the message names run.output_dir. */
static void test_unwritable(void) {
    char cfg[PATH_MAX + 16], file[PATH_MAX + 16], out_dir[PATH_MAX + 32], *out = NULL;
    snprintf(file, sizeof file, "%s/a-file", tmp);
    testutil_write_text(file, "x\n");
    snprintf(out_dir, sizeof out_dir, "%s/sub/run", file);
    snprintf(cfg, sizeof cfg, "%s/unwritable.cfg", tmp);
    testutil_write_tiny_cfg(cfg, out_dir, "conf/data/demo_facts.jsonl");
    char *argv[] = {NULL, "run", cfg, NULL};
    int st = run_lafn(argv, &out);
    CHECK(st != 0, "unwritable output folder must fail; status %d", st);
    CHECK(strstr(out, "run.output_dir") && strstr(out, "a-file"), "message names the key and the path: %s", out);
    CHECK(!strstr(out, "== stage"), "no stage may start: %s", out);
    free(out);
}

/* Prompts (src + paraphrases) of facts [0, n) in the languages, counted with cJSON — the independent reference. */
static size_t count_prompts(const char *path, size_t n_facts, const char *const *langs, size_t n_langs) {
    FILE *f = fopen(path, "r");
    char *line = malloc(1 << 16);
    size_t fact = 0, prompts = 0;
    while (f && line && fact < n_facts && fgets(line, 1 << 16, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        cJSON *j = cJSON_Parse(line), *ls = cJSON_GetObjectItem(j, "langs");
        for (size_t l = 0; l < n_langs; l++) {
            cJSON *side = cJSON_GetObjectItem(ls, langs[l]);
            if (!side) continue;
            prompts += 1 + (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(side, "paraphrases"));
        }
        cJSON_Delete(j);
        fact++;
    }
    if (f) fclose(f);
    free(line);
    return prompts;
}

/* --dry-run prints the plan and the counts of the selected facts, and runs nothing. */
static void test_dry_run(void) {
    char cfg[PATH_MAX + 16], out_dir[PATH_MAX + 16], *out = NULL, expect[128];
    snprintf(cfg, sizeof cfg, "%s/dry.cfg", tmp);
    snprintf(out_dir, sizeof out_dir, "%s/dry-run", tmp);
    testutil_write_tiny_cfg(cfg, out_dir, "conf/data/demo_facts.jsonl");
    char *argv[] = {NULL, "run", cfg, "--dry-run", "--facts", "1-3", "--languages", "de,ru", NULL};
    int st = run_lafn(argv, &out);
    CHECK(st == 0, "dry run exits 0; got %d: %s", st, out);
    CHECK(strstr(out, "probe locate edit eval") && strstr(out, "de ru"), "plan lists stages and languages: %s", out);
    const char *langs[] = {"de", "ru"};
    size_t with_0 = count_prompts("conf/data/demo_facts.jsonl", 4, langs, 2);
    size_t only_0 = count_prompts("conf/data/demo_facts.jsonl", 1, langs, 2);
    snprintf(expect, sizeof expect, "3 facts x 2.0 languages = 6 (fact, language) pairs; %zu prompts", with_0 - only_0);
    CHECK(strstr(out, expect) != NULL, "expected '%s' in: %s", expect, out);
    CHECK(strstr(out, "dry run: nothing was run") && !exists(out_dir), "nothing runs, no folder: %s", out);
    free(out);
    char *argv2[] = {NULL, "run", cfg, "--dry-run", "--stages", "locate", NULL};
    st = run_lafn(argv2, &out);
    CHECK(st != 0 && strstr(out, "probe.h5") && strstr(out, "--stages probe"), "locate alone needs probe.h5: %s", out);
    free(out);
    char *argv3[] = {NULL, "run", cfg, "--dry-run", "--stages", "paraphrase,probe", NULL};
    st = run_lafn(argv3, &out);
    CHECK(st != 0 && strstr(out, "paraphrase.method is 'none'"), "the paraphrase stage with method none: %s", out);
    free(out);
    char *argv4[] = {NULL, "run", cfg, "--dry-run", "paraphrase.method=sample", NULL};
    st = run_lafn(argv4, &out);
    CHECK(st == 0 && strstr(out, "paraphrase probe locate edit eval") && strstr(out, "pairs x samples 8, up to 48 new tokens"),
          "method sample: the plan starts with the paraphrase stage and its cost: %s", out);
    free(out);
    char *argv5[] = {NULL, "run", cfg, "--dry-run", "--stages", "probe", "paraphrase.method=beam", NULL};
    st = run_lafn(argv5, &out);
    CHECK(st != 0 && strstr(out, "paraphrase.h5") && strstr(out, "--stages paraphrase"),
          "probe with method beam needs paraphrase.h5: %s", out);
    free(out);
}

/* A malformed record makes probe fail: the run stops there, naming the stage and its log; later stages never start. */
static void test_stage_failure(void) {
    char cfg[PATH_MAX + 16], data[PATH_MAX + 16], out_dir[PATH_MAX + 16], log[PATH_MAX + 64], *out = NULL;
    snprintf(data, sizeof data, "%s/broken.jsonl", tmp);
    FILE *src = fopen("conf/data/demo_facts.jsonl", "r"), *dst = fopen(data, "w");
    char *line = malloc(1 << 16);
    for (int kept = 0; src && dst && line && kept < 2 && fgets(line, 1 << 16, src);)
        if (line[0] == '{') { fputs(line, dst); kept++; }
    if (dst) { fputs("{\"id\": \"broken\", \"langs\": {\"en\": {\"alt\": \"x\"}}}\n", dst); fclose(dst); }
    if (src) fclose(src);
    free(line);
    snprintf(cfg, sizeof cfg, "%s/fail.cfg", tmp);
    snprintf(out_dir, sizeof out_dir, "%s/fail-run", tmp);
    testutil_write_tiny_cfg(cfg, out_dir, data);
    char *argv[] = {NULL, "run", cfg, NULL};
    int st = run_lafn(argv, &out);
    CHECK(st != 0, "a failing stage fails the run; status %d", st);
    snprintf(log, sizeof log, "%s/logs/probe.log", out_dir);
    CHECK(strstr(out, "stage probe failed") && strstr(out, log), "names the stage and its log: %s", out);
    const char *last = strstr(out, "lafn run: stage probe failed");
    CHECK(last && strstr(last, "broken.jsonl:3") && strstr(last, "langs.en.src"),
          "the final message repeats the stage's error (file:line, key): %s", last ? last : out);
    CHECK(exists(log), "the stage log %s exists", log);
    snprintf(log, sizeof log, "%s/logs/locate.log", out_dir);
    CHECK(!exists(log) && !strstr(out, "== stage locate"), "locate must not start after probe failed: %s", out);
    free(out);
    char *argv_status[] = {NULL, "status", out_dir, NULL};
    st = run_lafn(argv_status, &out);
    testutil_stage_status probe, locate;
    CHECK(st == 0 && testutil_status_parse(out, "probe", &probe) == 0 && testutil_status_parse(out, "locate", &locate) == 0,
          "lafn status %s: status %d: %s", out_dir, st, out);
    CHECK(probe.failed == 1 && probe.facts == 0 && probe.merged_facts < 0 && !strcmp(probe.jobs, "-") &&
              locate.failed == 0 && strstr(out, "probe: latest error: ") && strstr(out, "broken.jsonl:3"),
          "lafn status after the failed probe: one failure, its error, no facts, no jobs: %s", out);
    free(out);
}

/* Number of files in dir whose name ends with suffix. */
static int count_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    int n = 0;
    size_t ls = strlen(suffix);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        n += l >= ls && strcmp(e->d_name + l - ls, suffix) == 0;
    }
    if (d) closedir(d);
    return n;
}

/* Number of files in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

/* Processes whose command line contains needle (Open MPI ranks outlive a killed mpirun for a moment). */
static int count_processes(const char *needle) {
    DIR *d = opendir("/proc");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == getpid()) continue;
        char path[300], buf[8192];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            if (buf[i] == '\0') buf[i] = ' ';
        buf[len] = '\0';
        n += strstr(buf, needle) != NULL;
    }
    if (d) closedir(d);
    return n;
}

/* SIGKILL of lafn's process group during edit, then --resume: same results as an uninterrupted run, no .tmp left. */
static void test_resume(void) {
    char cfg[PATH_MAX + 16], ref[PATH_MAX + 16], cut[PATH_MAX + 16], out_path[PATH_MAX + 16], *out = NULL;
    snprintf(cfg, sizeof cfg, "%s/resume.cfg", tmp);
    snprintf(ref, sizeof ref, "%s/ref-run", tmp);
    snprintf(cut, sizeof cut, "%s/cut-run", tmp);
    testutil_write_tiny_cfg(cfg, "unused", "conf/data/demo_facts.jsonl");
    char o_ref[PATH_MAX + 32], o_cut[PATH_MAX + 32];
    snprintf(o_ref, sizeof o_ref, "run.output_dir=%s", ref);
    snprintf(o_cut, sizeof o_cut, "run.output_dir=%s", cut);
    /* 16 facts of ~1.5 s of editing each leave seconds between the first edit
     * shard and the merge, so the kill below lands inside the edit stage. */
    char *longer[] = {"data.fact_range=[0,16]", "edit.steps=200"};
    char *argv_ref[] = {NULL, "run", cfg, o_ref, longer[0], longer[1], NULL};
    int st = run_lafn(argv_ref, &out);
    CHECK(st == 0, "uninterrupted run: status %d: %s", st, out);
    free(out);
    snprintf(out_path, sizeof out_path, "%s/cut-out.txt", tmp);
    char *argv_cut[] = {NULL, "run", cfg, o_cut, longer[0], longer[1], NULL};
    pid_t pid = testutil_lafn_start(argv_cut, out_path);
    int killed = 0;
    for (int i = 0; pid > 0 && i < 60000 && !killed; i++) { /* up to 10 min, polling every 10 ms */
        if (count_prefix(cut, "edit.shard-") > 0 && count_suffix(cut, "edit.h5") == 0) {
            kill(-pid, SIGKILL);
            killed = 1;
            break;
        }
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) break;
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
    if (killed) testutil_wait_status(pid);
    for (int i = 0; i < 600 && count_processes(o_cut) > 0; i++) /* orphaned ranks exit within seconds */
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    CHECK(count_processes(o_cut) == 0, "stage processes of the killed run are still alive after 60 s");
    CHECK(killed, "the run was not caught during edit (no edit shard seen before it ended)");
    char edit_h5[PATH_MAX + 32];
    snprintf(edit_h5, sizeof edit_h5, "%s/edit.h5", cut);
    CHECK(!exists(edit_h5), "edit.h5 must not exist after the kill");
    char *argv_res[] = {NULL, "run", cfg, o_cut, longer[0], longer[1], "--resume", NULL};
    st = run_lafn(argv_res, &out);
    CHECK(st == 0, "resumed run: status %d: %s", st, out);
    const char *edit_line = strstr(out, "edit.h5: ");
    size_t n_all = 0, n_resumed = 0;
    CHECK(edit_line && sscanf(edit_line, "edit.h5: %zu facts (%zu resumed)", &n_all, &n_resumed) == 2 &&
              n_resumed > 0 && n_resumed < n_all,
          "edit must resume some but not all of its facts (%zu of %zu): %s", n_resumed, n_all, out);
    free(out);
    CHECK(count_suffix(cut, ".tmp") == 0, "no .tmp files may remain in %s", cut);
    testutil_check_same_results(ref, cut, "the resumed run");
}

/* lafn doctor starts 2 ranks through mpirun, finds the four stage programs and checks a faster BLAS kernel than a pinned one. */
static void test_doctor(void) {
    char *out = NULL;
    char *argv[] = {NULL, "doctor", "--model", "tests/fixtures/models/tiny-gemma3.gguf", NULL};
    int st = run_lafn(argv, &out);
    CHECK(st == 0 && strstr(out, "doctor: all checks passed"), "doctor passes: status %d: %s", st, out);
    CHECK(strstr(out, "-np 2: 2 ranks started and talked") != NULL, "mpirun check: %s", out);
    CHECK(strstr(out, "lafn-probe ok, lafn-locate ok, lafn-edit ok, lafn-eval ok") != NULL, "stage check: %s", out);
    free(out);
    /* A pinned kernel slower than the CPU allows: doctor checks the faster one on the spot and says so. */
    if (system("grep -qw avx2 /proc/cpuinfo") != 0) {
        printf("doctor: this CPU has no AVX2, the pinned-kernel check is skipped\n");
        return;
    }
    const char *old = getenv("OPENBLAS_CORETYPE");
    char *saved = old ? strdup(old) : NULL;
    setenv("OPENBLAS_CORETYPE", "Sandybridge", 1);
    st = run_lafn(argv, &out);
    if (saved) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    free(saved);
    CHECK(st == 0 && strstr(out, "kernel Sandybridge") && strstr(out, "checked here: GEMM error") &&
              strstr(out, "export OPENBLAS_CORETYPE=") && strstr(out, "instead of the pinned Sandybridge"),
          "doctor under a pinned Sandybridge kernel checks and names the faster one: status %d: %s", st, out);
    free(out);
}

/* Reads rows of an int32 or float dataset of DIR/eval.h5 (as doubles) in file order, with /facts. */
static double *read_eval_rows(const char *dir, const char *name, size_t row_len, int64_t **facts, size_t *n_facts) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/eval.h5", dir);
    lafn_err err = {{0}};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    double *v = NULL;
    size_t n = 0;
    int ok = f >= 0 && h5out_read_all(f, path, "facts", H5OUT_I64, 0, (void **)facts, n_facts, &err) == 0;
    if (ok && strcmp(name, "fired/all") == 0) {
        int32_t *iv = NULL;
        ok = h5out_read_all(f, path, name, H5OUT_I32, row_len, (void **)&iv, &n, &err) == 0 &&
             (v = malloc(n * row_len * sizeof *v));
        for (size_t i = 0; ok && i < n * row_len; i++) v[i] = iv[i];
        free(iv);
    } else if (ok) ok = h5out_read_all(f, path, name, H5OUT_F64, row_len, (void **)&v, &n, &err) == 0;
    if (!ok) fprintf(stderr, "%s: %s\n", path, err.msg);
    if (f >= 0) H5Fclose(f);
    return v;
}

/* One question of `lafn ask` output: language, criterion, whether it fired, whether edited == expected. */
typedef struct { char lang[8], crit[16]; int fired, edited_em, unedited_em; } ask_line;

/* Parses the "[xx] criterion prompt" / "expected: A | unedited: B | edited: C[   (edit did not fire)]" pairs. */
static size_t parse_ask(char *out, ask_line *q, size_t cap) {
    size_t n = 0;
    for (char *line = strtok(out, "\n"); line && n < cap; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  [", 3) == 0) {
            if (sscanf(line, "  [%7[^]]] %15s", q[n].lang, q[n].crit) != 2) continue;
            char *next = strtok(NULL, "\n");
            char *e = next ? strstr(next, "expected: ") : NULL, *u = e ? strstr(e, " | unedited: ") : NULL;
            char *d = u ? strstr(u, " | edited: ") : NULL;
            if (!d) continue;
            char *tail = strstr(d, "   (edit did not fire)");
            q[n].fired = tail == NULL;
            if (tail) *tail = '\0';
            *u = *d = '\0';
            e += 10; u += 13; d += 11;
            q[n].edited_em = strcmp(d, e) == 0;
            q[n].unedited_em = strcmp(u, e) == 0;
            n++;
        }
    }
    return n;
}

/* A run of the tiny pipeline in tmp/NAME: its folder, its pipeline file (written) and the output-folder override. */
typedef struct {
    char dir[PATH_MAX + 16], cfg[PATH_MAX + 16], out_override[PATH_MAX + 32];
} tiny_run;

static void tiny_run_prepare(tiny_run *t, const char *name) {
    snprintf(t->dir, sizeof t->dir, "%s/%s", tmp, name);
    snprintf(t->cfg, sizeof t->cfg, "%s/%s.cfg", tmp, name);
    snprintf(t->out_override, sizeof t->out_override, "run.output_dir=%s", t->dir);
    testutil_write_tiny_cfg(t->cfg, "unused", "conf/data/demo_facts.jsonl");
}

/* lafn ask RUN_DIR FACT applies the fact's cached edit as eval did (edit.trigger = trigger): same gates fired, same exact matches. */
static void check_ask(const char *name, const char *trigger) {
    tiny_run t;
    char eval_h5[PATH_MAX + 32], trig[64], *out = NULL;
    tiny_run_prepare(&t, name);
    char *run_dir = t.dir;
    snprintf(eval_h5, sizeof eval_h5, "%s/eval.h5", run_dir);
    snprintf(trig, sizeof trig, "edit.trigger=%s", trigger);
    char *argv_run[] = {NULL, "run", t.cfg, t.out_override, trig, "--facts", "0-2", NULL};
    int st = run_lafn(argv_run, &out);
    free(out);
    CHECK(st == 0 && exists(eval_h5), "run for ask: status %d", st);
    int64_t *facts = NULL, *f2 = NULL;
    size_t n_facts = 0, n2 = 0, compared = 0; /* 2 languages x 4 criteria (x 4 metrics) per row */
    double *fired = read_eval_rows(run_dir, "fired/all", 8, &facts, &n_facts);
    double *post = read_eval_rows(run_dir, "post/all", 32, &f2, &n2), *pre = NULL;
    int64_t *f3 = NULL;
    size_t n3 = 0;
    pre = read_eval_rows(run_dir, "pre", 32, &f3, &n3);
    static const char *const crits[] = {"reliability", "generality", "locality", "portability"}, *langs[] = {"en", "zh"};
    for (size_t r = 0; fired && post && pre && r < n_facts; r++) {
        char index[24];
        snprintf(index, sizeof index, "%lld", (long long)facts[r]);
        char *argv_ask[] = {NULL, "ask", run_dir, index, NULL};
        st = run_lafn(argv_ask, &out);
        CHECK(st == 0, "lafn ask %s %s: status %d: %s", run_dir, index, st, out);
        ask_line q[16];
        size_t nq = parse_ask(out, q, 16);
        CHECK(nq == 8, "fact %s: expected 8 questions (2 languages x 4 criteria), parsed %zu", index, nq);
        for (size_t k = 0; k < nq; k++) {
            int l = strcmp(q[k].lang, "zh") == 0, c = 0;
            while (c < 4 && strcmp(crits[c], q[k].crit) != 0) c++;
            if (c == 4) { CHECK(0, "unknown criterion '%s'", q[k].crit); continue; }
            int want_fired = (int)fired[r * 8 + (size_t)l * 4 + (size_t)c];
            CHECK(q[k].fired == want_fired, "fact %s [%s] %s: ask says fired=%d, eval.h5 fired/all=%d", index, langs[l],
                  crits[c], q[k].fired, want_fired);
            if (c == 2) continue; /* locality's EM in eval.h5 compares post with pre, not with loc_ans */
            double em_post = post[r * 32 + (size_t)l * 16 + (size_t)c * 4 + 2], em_pre = pre[r * 32 + (size_t)l * 16 + (size_t)c * 4 + 2];
            CHECK(q[k].edited_em == (em_post == 1.0) && q[k].unedited_em == (em_pre == 1.0),
                  "fact %s [%s] %s: ask exact match edited %d unedited %d; eval.h5 em post %g pre %g", index, langs[l],
                  crits[c], q[k].edited_em, q[k].unedited_em, em_post, em_pre);
            compared++;
        }
        free(out);
    }
    CHECK(n_facts == 3 && compared == 18, "compared %zu questions of %zu facts (expected 18 of 3)", compared, n_facts);
    /* The tiny random model's en questions have nearly parallel keys, so whether a fact's own en src beats its
     * rivals under nearest_key turns on rounding; every fact must fire on its own src in some language. */
    size_t own_fired = 0;
    for (size_t r = 0; fired && r < n_facts; r++) own_fired += fired[r * 8] == 1.0 || fired[r * 8 + 4] == 1.0;
    CHECK(own_fired == n_facts, "trigger %s: %zu of %zu facts' edits fired on their own src in no language", trigger,
          n_facts - own_fired, n_facts);
    char *argv_bad[] = {NULL, "ask", run_dir, "no-such-fact", NULL};
    st = run_lafn(argv_bad, &out);
    CHECK(st != 0 && strstr(out, "no-such-fact"), "an unknown fact is named: %s", out);
    free(out);
    free(facts); free(f2); free(f3); free(fired); free(post); free(pre);
}

/* lafn ask answers as eval scored, for the gate neurons and for both key triggers. */
static void test_ask(void) {
    check_ask("ask-run", "neurons");
    check_ask("ask-key", "key");
    check_ask("ask-nearest", "nearest_key");
}

/* lafn submit: one script per stage with the run's ranks and overrides, submitted as an afterok chain.
 * sbatch is replaced, for this test only, by a script in the temporary folder that records its arguments. */
static void test_submit(void) {
    char bin[PATH_MAX + 16], sb[PATH_MAX + 32], calls[PATH_MAX + 32], cfg[PATH_MAX + 16], o_dir[PATH_MAX + 32];
    char script[2 * PATH_MAX + 256], path_env[8192], *out = NULL;
    snprintf(bin, sizeof bin, "%s/bin", tmp);
    snprintf(sb, sizeof sb, "%s/sbatch", bin);
    snprintf(calls, sizeof calls, "%s/sbatch-calls", tmp);
    mkdir(bin, 0755);
    snprintf(script, sizeof script,
             "#!/bin/sh\necho \"$*\" >> '%s'\nn=$(wc -l < '%s')\necho \"$((1000 + n));cluster\"\n", calls, calls);
    testutil_write_text(sb, script);
    chmod(sb, 0755);
    snprintf(cfg, sizeof cfg, "%s/submit.cfg", tmp);
    testutil_write_tiny_cfg(cfg, "unused", "conf/data/demo_facts.jsonl");
    snprintf(o_dir, sizeof o_dir, "run.output_dir=%s/submit-run", tmp);
    const char *old_path = getenv("PATH");
    snprintf(path_env, sizeof path_env, "%s:%s", bin, old_path ? old_path : "/usr/bin:/bin");
    char *saved = old_path ? strdup(old_path) : NULL;
    setenv("PATH", path_env, 1);
    char *argv[] = {NULL, "submit", cfg, o_dir, "--sbatch=--time=0:30:00", "edit.lr=0.1", NULL};
    int st = run_lafn(argv, &out);
    if (saved) { setenv("PATH", saved, 1); free(saved); }
    CHECK(st == 0 && strstr(out, "as job 1004 after 1003"), "submit: status %d: %s", st, out);
    free(out);
    FILE *f = fopen(calls, "r");
    char line[4 * PATH_MAX];
    const char *stages[] = {"probe", "locate", "edit", "eval"};
    for (int i = 0; i < 4; i++) {
        char want[PATH_MAX + 128];
        if (i == 0) snprintf(want, sizeof want, "--parsable %s/submit-run/slurm/probe.sbatch", tmp);
        else snprintf(want, sizeof want, "--parsable --dependency=afterok:%d %s/submit-run/slurm/%s.sbatch", 1000 + i, tmp,
                      stages[i]);
        int got = f && fgets(line, sizeof line, f);
        if (got) line[strcspn(line, "\n")] = '\0';
        CHECK(got && strcmp(line, want) == 0, "sbatch call %d: expected '%s', got '%s'", i + 1, want, got ? line : "");
    }
    if (f) fclose(f);
    char path[PATH_MAX + 64], *text = calloc(1, 1 << 16);
    snprintf(path, sizeof path, "%s/submit-run/slurm/edit.sbatch", tmp);
    f = fopen(path, "r");
    if (f && text) text[fread(text, 1, (1 << 16) - 1, f)] = '\0';
    if (f) fclose(f);
    CHECK(text && strstr(text, "#SBATCH --ntasks=2\n") && strstr(text, "#SBATCH --time=0:30:00\n") &&
              strstr(text, "lafn-edit' ") && strstr(text, "'edit.lr=0.1'") && strstr(text, "exec mpirun -np \"$SLURM_NTASKS\""),
          "edit.sbatch: %s", text ? text : "(unreadable)");
    free(text);
    snprintf(path, sizeof path, "%s/submit-run/slurm/jobs.tsv", tmp);
    text = testutil_read_text(path);
    CHECK(text && strstr(text, "\tprobe\t1001\t\n") && strstr(text, "\tedit\t1003\t1002\n") &&
              strstr(text, "\teval\t1004\t1003\n"),
          "submit records each job with the one it waits for in %s: %s", path, text ? text : "(unreadable)");
    free(text);
}

/* Runs every test, or only the one named by argv[1] (bad_config, unwritable, dry_run, stage_failure, doctor, submit, ask, resume). */
/* locate.neuron_set = random through edit: every fact with LAFNs is edited on random neurons, whose gate signs
 * (unknown to locate) the edit stage calibrated to +1 or -1 on the fact's prompts. */
static void test_random_control(void) {
    tiny_run t;
    char edit_h5[PATH_MAX + 32], *out = NULL;
    tiny_run_prepare(&t, "random-run");
    snprintf(edit_h5, sizeof edit_h5, "%s/edit.h5", t.dir);
    char *argv_run[] = {NULL, "run", t.cfg, t.out_override, "locate.neuron_set=random", "edit.steps=5", "--facts", "0-2",
                        "--stages", "probe,locate,edit", NULL};
    int st = run_lafn(argv_run, &out);
    CHECK(st == 0 && exists(edit_h5), "run with locate.neuron_set = random: status %d: %s", st, out ? out : "");
    free(out);
    lafn_err err = {{0}};
    hid_t f = H5Fopen(edit_h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    float *sign = NULL;
    int32_t *status = NULL;
    int64_t *off = NULL;
    size_t n_status = 0, bad = 0, edited = 0;
    h5out_dataset ds = {.name = "gate/sign", .layout = H5OUT_CSR, .dtype = H5OUT_F32};
    CHECK(f >= 0 && h5out_read_all(f, edit_h5, "status", H5OUT_I32, 1, (void **)&status, &n_status, &err) == 0 &&
          h5out_read_dataset(f, edit_h5, &ds, n_status, (void **)&sign, &off, &err) == 0, "%s: %s", edit_h5, err.msg);
    for (size_t r = 0; sign && off && r < n_status; r++) {
        edited += status[r] != EDIT_STATUS_NO_LAFN;
        for (int64_t k = off[r]; k < off[r + 1]; k++) bad += sign[k] != 1.0f && sign[k] != -1.0f;
    }
    CHECK(n_status == 3 && edited > 0 && off && off[n_status] > 0 && bad == 0,
          "random control: %zu facts, %zu edited, %lld gate neurons, %zu signs not +-1", n_status, edited,
          off ? (long long)off[n_status] : -1LL, bad);
    if (f >= 0) H5Fclose(f);
    free(sign);
    free(status);
    free(off);
}

/* A stage file in an old HDF5 format (superblock 0: metadata without checksums) is refused before HDF5 parses
 * it by the driver's readers: lafn paraphrases and lafn ask name the fault, lafn status counts it unreadable. */
static void test_old_format(void) {
    char dir[PATH_MAX + 16], cmd[8 * PATH_MAX], *out = NULL;
    snprintf(dir, sizeof dir, "%s/old_format", tmp);
    const char *seed = testutil_repo_path("tests/fuzz/corpus/fuzz_edit_h5/regress-hdf5-superblock0-8EB-allocation.h5");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/paraphrase.h5' && cp '%s' '%s/edit.h5' && cp '%s' "
             "'%s/probe.h5'", dir, seed, dir, seed, dir, seed, dir);
    CHECK(system(cmd) == 0, "cannot prepare %s", dir);
    char *paraphrases[] = {NULL, "paraphrases", dir, NULL}, *ask[] = {NULL, "ask", dir, "0", NULL};
    char *const *argvs[] = {paraphrases, ask};
    for (size_t k = 0; k < 2; k++) {
        int st = run_lafn((char **)argvs[k], &out);
        CHECK(st != 0 && strstr(out, "superblock version 0"), "lafn %s on a superblock-0 file: status %d: %s",
              argvs[k][1], st, out);
        free(out);
    }
    char *status[] = {NULL, "status", dir, NULL};
    int st = run_lafn(status, &out);
    CHECK(st == 0 && strstr(out, "probe: 1 file(s) unreadable"), "lafn status on a superblock-0 probe.h5 (status %d): %s",
          st, out);
    free(out);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    snprintf(tmp, sizeof tmp, "/tmp/lafn-test-driver-XXXXXX");
    if (!mkdtemp(tmp) || find_lafn() != 0) {
        fprintf(stderr, "test_driver_run: no temporary folder or no lafn binary beside tests/ (%s)\n", lafn);
        return 1;
    }
    const struct { const char *name; void (*run)(void); } tests[] = {
        {"bad_config", test_bad_config}, {"unwritable", test_unwritable}, {"dry_run", test_dry_run},
        {"stage_failure", test_stage_failure}, {"doctor", test_doctor}, {"submit", test_submit}, {"ask", test_ask}, {"resume", test_resume},
        {"random_control", test_random_control}, {"old_format", test_old_format}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!only || !strcmp(only, tests[i].name)) tests[i].run();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (testutil_failures == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return testutil_finish("test_driver_run");
}
