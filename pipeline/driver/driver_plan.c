/* driver_plan: the command line of `lafn run` / `lafn submit` turned into overrides, and every check made before any work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "stage/stage.h"

enum { PLAN_MAX_LIST_FACTS = 100000 };

/* Appends a copy of s to the plan's overrides. */
static int add_override(driver_plan *p, const char *s, lafn_err *err) {
    char **o = realloc(p->overrides, (p->n_overrides + 1) * sizeof *o);
    if (!o) return lafn_err_set(err, "out of memory");
    p->overrides = o;
    if (!(o[p->n_overrides] = strdup(s))) return lafn_err_set(err, "out of memory");
    p->n_overrides++;
    return 0;
}

/* --stages a,b: marks the named stages (pipeline order is kept whatever the order given). */
static int parse_stages(driver_plan *p, const char *list, lafn_err *err) {
    memset(p->stage_on, 0, sizeof p->stage_on);
    const char *s = list;
    while (*s) {
        size_t n = strcspn(s, ",");
        int found = 0;
        for (int i = 0; i < DRIVER_N_STAGES; i++)
            if (strlen(driver_stage_names[i]) == n && strncmp(s, driver_stage_names[i], n) == 0)
                found = p->stage_on[i] = 1;
        if (!found)
            return lafn_err_set(err, "--stages: unknown stage '%.*s'; allowed: paraphrase, probe, locate, edit, eval",
                                (int)n, s);
        s += n + (s[n] == ',');
    }
    for (int i = 0; i < DRIVER_N_STAGES; i++)
        if (p->stage_on[i]) return 0;
    return lafn_err_set(err, "--stages: no stage named in '%s'", list);
}

/* Reads an unsigned decimal number at *s, advancing it. Returns 0 or -1. */
static int read_index(const char **s, long long *out) {
    char *end;
    if (**s < '0' || **s > '9') return -1;
    errno = 0;
    *out = strtoll(*s, &end, 10);
    if (errno || *out > 1000000000LL) return -1;
    *s = end;
    return 0;
}

/* Appends "a,b,...,z" of [first, last] to a growing string. */
static int append_range(char **buf, size_t *len, size_t *count, long long first, long long last, lafn_err *err) {
    for (long long i = first; i <= last; i++) {
        if (++*count > PLAN_MAX_LIST_FACTS)
            return lafn_err_set(err, "--facts: more than %d facts in a list; use one range A-B", PLAN_MAX_LIST_FACTS);
        char num[24];
        int n = snprintf(num, sizeof num, "%s%lld", *len ? "," : "", i);
        char *b = realloc(*buf, *len + (size_t)n + 1);
        if (!b) return lafn_err_set(err, "out of memory");
        memcpy(b + *len, num, (size_t)n + 1);
        *buf = b;
        *len += (size_t)n;
    }
    return 0;
}

/* --facts A-B (inclusive) → data.fact_range=[A, B+1); --facts 1,4,7-9 → data.facts=[...]. */
static int parse_facts(driver_plan *p, const char *spec, lafn_err *err) {
    long long a, b = 0;
    const char *s = spec;
    if (read_index(&s, &a) == 0 && (*s == '\0' || (*s == '-' && (s++, read_index(&s, &b) == 0) && *s == '\0'))) {
        if (!strchr(spec, '-')) b = a;
        if (b < a) return lafn_err_set(err, "--facts %s: the range ends before it starts", spec);
        char o[96];
        snprintf(o, sizeof o, "data.fact_range=%lld,%lld", a, b + 1);
        return add_override(p, "data.facts=[]", err) || add_override(p, o, err) ? -1 : 0;
    }
    char *list = NULL;
    size_t len = 0, count = 0;
    int rc = 0;
    for (s = spec; rc == 0 && *s;) {
        if (read_index(&s, &a) != 0) { rc = lafn_err_set(err, "--facts %s: expected A-B or a list like 1,4,7-9", spec); break; }
        b = a;
        if (*s == '-' && (s++, read_index(&s, &b) != 0 || b < a)) { rc = lafn_err_set(err, "--facts %s: bad range", spec); break; }
        if (*s && *s != ',') { rc = lafn_err_set(err, "--facts %s: unexpected '%c'", spec, *s); break; }
        s += *s == ',';
        rc = append_range(&list, &len, &count, a, b, err);
    }
    if (rc == 0 && !list) rc = lafn_err_set(err, "--facts: empty");
    if (rc == 0) {
        char *o = malloc(len + 16);
        if (!o) rc = lafn_err_set(err, "out of memory");
        else {
            snprintf(o, len + 16, "data.facts=%s", list);
            rc = add_override(p, "data.fact_range=[]", err) || add_override(p, o, err) ? -1 : 0;
            free(o);
        }
    }
    free(list);
    return rc;
}

/* Value of option argv[*i] ("--name VALUE" or "--name=VALUE"), or NULL if argv[*i] is not --name. */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    if (*i + 1 >= argc) { *missing = 1; return NULL; }
    return argv[++*i];
}

/* Parses the command line into p (no checks of the pipeline file yet). */
static int parse_args(driver_plan *p, int argc, char **argv, int allow_dry_run, lafn_err *err) {
    char **user = calloc((size_t)argc + 1, sizeof *user);
    size_t n_user = 0;
    int rc = 0, missing = 0;
    if (!user) return lafn_err_set(err, "out of memory");
    for (int i = 0; i < DRIVER_N_STAGES; i++) p->stage_on[i] = 1;
    for (int i = 1; rc == 0 && i < argc; i++) {
        const char *a = argv[i], *v;
        if (a[0] != '-' && strchr(a, '=')) user[n_user++] = argv[i];
        else if (a[0] != '-' && !p->cfg_path) p->cfg_path = a;
        else if (!strcmp(a, "--resume")) rc = add_override(p, "run.resume=true", err);
        else if (!strcmp(a, "--no-resume")) rc = add_override(p, "run.resume=false", err);
        else if (!strcmp(a, "--dry-run") && allow_dry_run) p->dry_run = 1;
        else if (!strcmp(a, "--all-metrics")) p->all_metrics = 1;
        else if ((v = option_value(argc, argv, &i, "--stages", &missing))) {
            rc = parse_stages(p, v, err);
            p->stages_named = 1;
        }
        else if ((v = option_value(argc, argv, &i, "--facts", &missing))) rc = parse_facts(p, v, err);
        else if ((v = option_value(argc, argv, &i, "--languages", &missing)) ||
                 (v = option_value(argc, argv, &i, "--ranks", &missing))) {
            char o[1024];
            snprintf(o, sizeof o, "%s=%s", strstr(a, "--ranks") == a ? "run.ranks" : "languages.codes", v);
            rc = add_override(p, o, err);
        } else rc = lafn_err_set(err, missing ? "option %s needs a value" : "unknown argument '%s'", a);
    }
    if (rc == 0 && !p->cfg_path) rc = lafn_err_set(err, "no pipeline file given");
    for (size_t i = 0; rc == 0 && i < n_user; i++) rc = add_override(p, user[i], err);
    free(user);
    return rc;
}

/* A path the pipeline names must exist (file or folder). */
static int check_exists(const lafn_config *cfg, const char *key, lafn_err *err) {
    const char *path;
    if (config_get_string(cfg, key, &path, err) != 0) return -1;
    if (path[0] == '\0') return 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return lafn_err_set(err, "%s: '%s' does not exist (paths are relative to the folder lafn runs in)", key, path);
    return 0;
}

/* The stage before stage i whose file stage i reads: the paraphrase stage only when it generates; -1 for none.
 * A baseline edit.method reads no locate.h5. */
static int input_stage(const driver_plan *p, int i) {
    if (i == DRIVER_PROBE || (i == DRIVER_EDIT && stage_edit_baseline(&p->cfg)))
        return stage_paraphrases_generated(&p->cfg) ? DRIVER_PARAPHRASE : -1;
    return i > DRIVER_PROBE ? i - 1 : -1;
}

/* The stage programs must sit next to lafn; a stage whose predecessor is skipped needs its file; the paraphrase
 * stage runs only when paraphrase.method generates. */
static int check_stages(driver_plan *p, lafn_err *err) {
    if (!stage_paraphrases_generated(&p->cfg)) {
        const char *method = "";
        config_get_string(&p->cfg, "paraphrase.method", &method, NULL);
        if (p->stage_on[DRIVER_PARAPHRASE] && p->stages_named)
            return lafn_err_set(err, "--stages paraphrase: paraphrase.method is '%s'; the stage runs with sample or beam",
                                method);
        p->stage_on[DRIVER_PARAPHRASE] = 0;
    }
    const char *baseline = stage_edit_baseline(&p->cfg);
    if (baseline && p->stages_named && (p->stage_on[DRIVER_PROBE] || p->stage_on[DRIVER_LOCATE]))
        return lafn_err_set(err, "--stages probe/locate: edit.method is '%s', which edits whole layers without them",
                            baseline);
    if (baseline) p->stage_on[DRIVER_PROBE] = p->stage_on[DRIVER_LOCATE] = 0;
    if (!(p->bin_dir = driver_bin_dir(err))) return -1;
    for (int i = 0; i < DRIVER_N_STAGES; i++) {
        size_t n = strlen(p->bin_dir) + strlen(driver_stage_names[i]) + 8;
        if (!(p->stage_path[i] = malloc(n))) return lafn_err_set(err, "out of memory");
        snprintf(p->stage_path[i], n, "%s/lafn-%s", p->bin_dir, driver_stage_names[i]);
        if (p->stage_on[i] && access(p->stage_path[i], X_OK) != 0)
            return lafn_err_set(err, "stage program %s is missing (%s); build it (cmake --build) first",
                                p->stage_path[i], strerror(errno));
    }
    for (int i = 0; i < DRIVER_N_STAGES; i++) {
        int before = input_stage(p, i);
        if (!p->stage_on[i] || before < 0 || p->stage_on[before]) continue;
        char in[4096];
        snprintf(in, sizeof in, "%s/%s.h5", p->out_dir, driver_stage_names[before]);
        if (access(in, R_OK) != 0)
            return lafn_err_set(err, "stage %s needs %s, which does not exist; run --stages %s first", driver_stage_names[i],
                                in, driver_stage_names[before]);
    }
    char *mpirun = driver_which("mpirun");
    if (!mpirun) return lafn_err_set(err, "mpirun is not on PATH (install openmpi-bin)");
    free(mpirun);
    return 0;
}

int driver_plan_init(driver_plan *p, int argc, char **argv, int allow_dry_run, int *usage_error, lafn_err *err) {
    *p = (driver_plan){0};
    *usage_error = 0;
    if (parse_args(p, argc, argv, allow_dry_run, err) != 0) {
        *usage_error = 1;
        goto fail;
    }
    if (config_load(&p->cfg, p->cfg_path, err) != 0) goto fail;
    if (config_override_all(&p->cfg, p->overrides, p->n_overrides, err) != 0) goto fail; /* as the stages do */
    if (config_get_string(&p->cfg, "run.output_dir", &p->out_dir, err) != 0 ||
        config_get_int(&p->cfg, "run.ranks", &p->ranks, err) != 0)
        goto fail;
    if (check_exists(&p->cfg, "model.path", err) || check_exists(&p->cfg, "data.path", err) ||
        check_exists(&p->cfg, "data.paraphrases", err) ||
        (stage_paraphrases_generated(&p->cfg) && (check_exists(&p->cfg, "paraphrase.model", err) ||
                                                  check_exists(&p->cfg, "paraphrase.template_dir", err))) ||
        check_stages(p, err))
        goto fail;
    if (!p->dry_run && driver_mkdir_writable(p->out_dir, "run.output_dir", err) != 0) goto fail;
    return 0;
fail:
    driver_plan_free(p);
    return -1;
}

void driver_plan_free(driver_plan *p) {
    for (size_t i = 0; i < p->n_overrides; i++) free(p->overrides[i]);
    free(p->overrides);
    for (int i = 0; i < DRIVER_N_STAGES; i++) free(p->stage_path[i]);
    free(p->bin_dir);
    config_free(&p->cfg);
    *p = (driver_plan){0};
}

/* Prints one string knob as "label  value". */
static void print_knob(const driver_plan *p, FILE *out, const char *label, const char *key) {
    const char *s = "?";
    config_get_string(&p->cfg, key, &s, NULL);
    fprintf(out, "  %-10s %s\n", label, s);
}

void driver_plan_print(const driver_plan *p, FILE *out) {
    char *const *codes = NULL;
    size_t n_codes = 0;
    int resume = 0;
    config_get_string_list(&p->cfg, "languages.codes", &codes, &n_codes, NULL);
    config_get_bool(&p->cfg, "run.resume", &resume, NULL);
    fprintf(out, "plan of %s:\n  %-10s", p->cfg_path, "stages");
    for (int i = 0; i < DRIVER_N_STAGES; i++)
        if (p->stage_on[i]) fprintf(out, " %s", driver_stage_names[i]);
    fprintf(out, "\n");
    print_knob(p, out, "model", "model.path");
    print_knob(p, out, "data", "data.path");
    fprintf(out, "  %-10s", "languages");
    for (size_t i = 0; i < n_codes; i++) fprintf(out, " %s", codes[i]);
    fprintf(out, "\n  %-10s %lld under mpirun (%s)\n", "ranks", (long long)p->ranks, p->bin_dir);
    fprintf(out, "  %-10s %s (resume %s)\n", "output", p->out_dir, resume ? "on: finished facts are kept" : "off");
    for (size_t i = 0; i < p->n_overrides; i++) fprintf(out, "  %-10s %s\n", i ? "" : "overrides", p->overrides[i]);
}
