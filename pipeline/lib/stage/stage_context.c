/* stage_context: what a stage starts from — the checked pipeline file, the node-shared model, the selected facts, the output folder. */
#include "stage/stage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sha256.h"

void openblas_set_num_threads(int n);

/* Sections each stage's output depends on, in pipeline order, into buf (cap);
 * -1 for an unknown stage. The paraphrase stage reads only src, subject and
 * alt of the data; the later stages depend on its knobs only when it
 * generates, so with paraphrase.method none or file their identities are
 * what they were before the stage existed. Likewise the section of a
 * baseline edit method (ft_l, ft_m) joins edit's and eval's identity only
 * when edit.method names it. */
static int stage_sections(const lafn_config *cfg, const char *stage, char *buf, size_t cap) {
    static const char *const order[] = {"probe", "locate", "edit", "eval"};
    const char *method = stage_edit_baseline(cfg);
    if (!strcmp(stage, "paraphrase")) return snprintf(buf, cap, "data languages paraphrase") < 0 ? -1 : 0;
    size_t len = (size_t)snprintf(buf, cap, "model data languages%s", stage_paraphrases_generated(cfg) ? " paraphrase" : "");
    for (size_t i = 0; i < sizeof order / sizeof order[0] && len < cap; i++) {
        len += (size_t)snprintf(buf + len, cap - len, " %s", order[i]);
        if (!strcmp(order[i], "edit") && method && len < cap)
            len += (size_t)snprintf(buf + len, cap - len, " %s", method);
        if (!strcmp(stage, order[i])) return 0;
    }
    return -1;
}

int stage_paraphrases_generated(const lafn_config *cfg) {
    const char *method = "";
    lafn_err ignored;
    config_get_string(cfg, "paraphrase.method", &method, &ignored);
    return !strcmp(method, "sample") || !strcmp(method, "beam");
}

const char *stage_edit_baseline(const lafn_config *cfg) {
    const char *method = "lafn";
    lafn_err ignored;
    config_get_string(cfg, "edit.method", &method, &ignored);
    return strcmp(method, "lafn") != 0 ? method : NULL;
}

/* Knobs added after run identities were first written to disk: while one
 * holds its default, the stage computes what it computed before the knob
 * existed, so the knob is left out of the identity and such runs stay
 * resumable. Changing the default of one of them means taking it off this
 * list (the identity then changes, as it must). */
static const char *const late_knobs[] = {"locate.rank_by", "edit.key_nearest_floor", "paraphrase.languages", "edit.method"};

/* Writes into buf (cap) the knobs of those sections the stage's output does
 * not depend on, space-separated: the late knobs at their default; for the
 * paraphrase stage the paraphrase file (it reads only src, subject and alt);
 * and for edit the gate and the trigger, which only decide where a stored edit
 * applies (eval, lafn ask) — except in sequential mode, where earlier edits
 * are applied through them while optimising. */
static void stage_skipped_keys(const lafn_config *cfg, const char *stage, char *buf, size_t cap) {
    const char *mode = "";
    lafn_err ignored;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof late_knobs / sizeof late_knobs[0]; i++)
        if (config_at_default(cfg, late_knobs[i]) && len < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s ", late_knobs[i]);
    if (!strcmp(stage, "paraphrase") && len < cap) snprintf(buf + len, cap - len, "data.paraphrases");
    if (strcmp(stage, "edit") != 0) return;
    config_get_string(cfg, "edit.mode", &mode, &ignored);
    if (strcmp(mode, "sequential") != 0 && len < cap)
        snprintf(buf + len, cap - len, "edit.gate edit.trigger edit.key_nearest_floor");
}

/* run.seed is part of the identity of locate and later stages when it decides
 * which neurons are edited (locate.neuron_set = random); otherwise the run
 * section is not (it says where and how the stages run, not what they compute). */
static void print_seed_identity(const lafn_config *cfg, const char *stage, FILE *f) {
    const char *set = "";
    int64_t seed = 0;
    lafn_err ignored;
    if (!strcmp(stage, "probe") || !strcmp(stage, "paraphrase") ||
        config_get_string(cfg, "locate.neuron_set", &set, &ignored) ||
        strcmp(set, "random") != 0 || config_get_int(cfg, "run.seed", &seed, &ignored))
        return;
    fprintf(f, "run_seed = %lld;\n", (long long)seed);
}

int stage_run_id(const lafn_config *cfg, const char *model_sha256, const char *stage, char out[STAGE_RUN_ID_LEN + 1],
                 lafn_err *err) {
    char sections[128];
    if (stage_sections(cfg, stage, sections, sizeof sections) != 0) return lafn_err_set(err, "unknown stage '%s'", stage);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return lafn_err_set(err, "%s: out of memory for the run identity", stage);
    fprintf(f, "model_sha256 = \"%s\";\n", model_sha256);
    print_seed_identity(cfg, stage, f);
    char skipped[512];
    stage_skipped_keys(cfg, stage, skipped, sizeof skipped);
    int rc = config_print_identity(cfg, sections, skipped, f);
    if (fclose(f) != 0 || rc != 0) { free(text); return lafn_err_set(err, "%s: cannot print the run identity", stage); }
    sha256_ctx h;
    uint8_t digest[32];
    char hex[65];
    sha256_init(&h);
    sha256_update(&h, text, len);
    sha256_final(&h, digest);
    sha256_hex(digest, hex);
    free(text);
    memcpy(out, hex, STAGE_RUN_ID_LEN);
    out[STAGE_RUN_ID_LEN] = '\0';
    return 0;
}

int stage_view_langs(const stage_context *ctx, const facts_edit_view *v, int *idx, lafn_err *err) {
    for (size_t l = 0; l < v->n_langs; l++) {
        idx[l] = -1;
        for (size_t k = 0; k < ctx->facts.n_langs; k++)
            if (!strcmp(v->langs[l].lang, ctx->facts.langs[k])) idx[l] = (int)k;
        if (idx[l] < 0) return lafn_err_set(err, "fact '%s': language %s is not in the run", v->id, v->langs[l].lang);
    }
    return 0;
}

/* Creates dir and its parents (mode 0755); existing folders are fine. */
static int make_dirs(const char *dir, lafn_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return lafn_err_set(err, "run.output_dir: path too long: %.80s…", dir);
    for (char *p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return lafn_err_set(err, "run.output_dir: cannot create '%s': %s", path, strerror(errno));
        *p = c;
        if (c == '\0') break;
    }
    if (access(dir, W_OK) != 0)
        return lafn_err_set(err, "run.output_dir: '%s' is not writable: %s", dir, strerror(errno));
    return 0;
}

int stage_model_path(const lafn_config *cfg, const char *stage, const char **path, lafn_err *err) {
    const char *generator = "";
    if (!strcmp(stage, "paraphrase") && config_get_string(cfg, "paraphrase.model", &generator, err) != 0) return -1;
    if (generator[0]) {
        *path = generator;
        return 0;
    }
    return config_get_string(cfg, "model.path", path, err);
}

static int load_config(stage_context *ctx, const char *cfg_path, char *const *overrides, int n_overrides,
                       lafn_err *err) {
    if (config_load(&ctx->cfg, cfg_path, err) != 0) return -1;
    return config_override_all(&ctx->cfg, overrides, (size_t)n_overrides, err);
}

/* Loads the configured facts (data.*, languages.codes) and their paraphrases. */
static int load_facts(stage_context *ctx, lafn_err *err) {
    const char *format, *path, *paraphrases, *on_bad;
    char *const *codes;
    const int64_t *range, *indices;
    size_t n_codes, n_range, n_indices;
    if (config_get_string(&ctx->cfg, "data.format", &format, err) ||
        config_get_string(&ctx->cfg, "data.path", &path, err) ||
        config_get_string(&ctx->cfg, "data.paraphrases", &paraphrases, err) ||
        config_get_string(&ctx->cfg, "data.on_bad_record", &on_bad, err) ||
        config_get_string_list(&ctx->cfg, "languages.codes", &codes, &n_codes, err) ||
        config_get_int_list(&ctx->cfg, "data.fact_range", &range, &n_range, err) ||
        config_get_int_list(&ctx->cfg, "data.facts", &indices, &n_indices, err))
        return -1;
    size_t *index_list = NULL;
    if (n_indices && !(index_list = malloc(n_indices * sizeof *index_list)))
        return lafn_err_set(err, "out of memory for %zu fact indices", n_indices);
    for (size_t i = 0; i < n_indices; i++) index_list[i] = (size_t)indices[i];
    facts_opts opts = {
        .lang_codes = (const char *const *)codes, .n_lang_codes = n_codes,
        .first = n_range == 2 ? (size_t)range[0] : 0,
        .count = n_range == 2 ? (size_t)(range[1] - range[0]) : 0,
        .indices = index_list, .n_indices = n_indices,
        .on_error = strcmp(on_bad, "skip") == 0 ? FACTS_ON_ERROR_SKIP : FACTS_ON_ERROR_FATAL,
        .log = ctx->rank == 0 ? ctx->log : NULL,
    };
    int rc = strcmp(format, "mzsre") == 0 ? facts_load_mzsre(path, &opts, &ctx->facts, err)
                                          : facts_load_jsonl(path, &opts, &ctx->facts, err);
    if (rc == 0 && paraphrases[0])
        rc = facts_load_paraphrases(paraphrases, &ctx->facts, &opts, NULL, err);
    if (rc == 0 && ctx->facts.n_facts == 0)
        rc = lafn_err_set(err, "data.path: '%s' gives no facts for the selected languages and range", path);
    free(index_list);
    return rc;
}

static int fill_provenance(stage_context *ctx, const char *command_line, lafn_err *err) {
    char size_text[32];
    snprintf(size_text, sizeof size_text, "%llu", (unsigned long long)ctx->m->file_bytes);
    ctx->model_size = strdup(size_text);
    ctx->command_line = strdup(command_line ? command_line : "");
    ctx->config_text = config_print_string(&ctx->cfg);
    if (!ctx->model_size || !ctx->command_line || !ctx->config_text)
        return lafn_err_set(err, "%s: out of memory for the provenance", ctx->stage);
    if (stage_run_id(&ctx->cfg, ctx->m->sha256, ctx->stage, ctx->run_id, err) != 0) return -1;
    ctx->prov = (h5out_provenance){
        .stage = ctx->stage, .run_id = ctx->run_id, .pipeline_text = ctx->cfg.text,
        .config_resolved = ctx->config_text, .model_path = ctx->m->path, .model_size = ctx->model_size,
        .model_sha256 = ctx->m->sha256, .command_line = ctx->command_line,
    };
    return 0;
}

int stage_context_init(stage_context *ctx, const char *stage, const char *cfg_path, char *const *overrides,
                       int n_overrides, const char *command_line, MPI_Comm comm, FILE *log, lafn_err *err) {
    *ctx = (stage_context){.stage = stage, .comm = comm, .node_comm = MPI_COMM_NULL, .log = log};
    MPI_Comm_rank(comm, &ctx->rank);
    MPI_Comm_size(comm, &ctx->size);
    if (mpi_status_agree(comm, load_config(ctx, cfg_path, overrides, n_overrides, err), err) != 0) goto fail;
    int64_t threads = 1;
    config_get_int(&ctx->cfg, "run.threads_per_rank", &threads, err);
    openblas_set_num_threads((int)threads);
    if (config_get_string(&ctx->cfg, "run.output_dir", &ctx->out_dir, err) != 0) goto fail;
    int status = ctx->rank == 0 ? make_dirs(ctx->out_dir, err) : 0;
    if (mpi_status_agree(comm, status, err) != 0) goto fail;
    if (mpi_status_agree(comm, load_facts(ctx, err), err) != 0) goto fail;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, ctx->rank, MPI_INFO_NULL, &ctx->node_comm);
    const char *model_path;
    if (stage_model_path(&ctx->cfg, stage, &model_path, err) != 0) goto fail;
    if (mpi_status_agree(comm, model_load(&ctx->m, model_path, ctx->node_comm, err), err) != 0) goto fail;
    if (mpi_status_agree(comm, fill_provenance(ctx, command_line, err), err) != 0) goto fail;
    return 0;
fail:
    lafn_err_wrap(err, "%s", stage);
    stage_context_free(ctx);
    return -1;
}

void stage_context_free(stage_context *ctx) {
    if (ctx->m) model_free(ctx->m);
    if (ctx->node_comm != MPI_COMM_NULL) MPI_Comm_free(&ctx->node_comm);
    facts_set_free(&ctx->facts);
    config_free(&ctx->cfg);
    free(ctx->model_size);
    free(ctx->command_line);
    free(ctx->config_text);
    *ctx = (stage_context){.node_comm = MPI_COMM_NULL};
}
