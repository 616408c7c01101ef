/* paraphrase_join: the kept paraphrases of this run's paraphrase.h5 appended to the facts' prompt sets of probe, edit and eval, after a paraphrase file's, duplicates dropped. */
#include "paraphrase/paraphrase.h"

#include <stdlib.h>
#include <string.h>

#include "h5/h5out.h"

/* The generator digest paraphrase.h5 must be from: the model's when paraphrase.model is "", else the file's record. */
static int generator_digest(const stage_context *ctx, hid_t file, char **out, lafn_err *err) {
    const char *generator = "";
    if (config_get_string(&ctx->cfg, "paraphrase.model", &generator, err) != 0) return -1;
    if (generator[0]) return h5out_attr_string(file, "lafn_model_sha256", out, err);
    return (*out = strdup(ctx->m->sha256)) ? 0 : lafn_err_set(err, "out of memory");
}

/* Opens path and checks that it is this run's complete paraphrase.h5 (templates as they are now). */
static int open_checked(const stage_context *ctx, const char *path, hid_t *file, lafn_err *err) {
    const char *dir = "";
    paraphrase_templates t;
    char id[STAGE_RUN_ID_LEN + 1], *digest = NULL;
    if (config_get_string(&ctx->cfg, "paraphrase.template_dir", &dir, err) ||
        paraphrase_templates_load(&t, dir, (const char *const *)ctx->facts.langs, ctx->facts.n_langs, err))
        return lafn_err_wrap(err, "checking %s", path);
    int rc = h5out_open(path, "paraphrase", NULL, ctx->comm, file, err);
    if (rc == 0) rc = generator_digest(ctx, *file, &digest, err);
    if (rc == 0) rc = paraphrase_run_id(&ctx->cfg, digest, &t, id, err);
    if (rc == 0) rc = h5out_check_identity(*file, path, "paraphrase", id, err);
    paraphrase_templates_free(&t);
    free(digest);
    return rc;
}

/* 1 if text's key equals src's or an existing paraphrase's of side (in the language's script). */
static int already_there(const facts_side *side, const paraphrase_text *key, paraphrase_script script, lafn_err *err) {
    int found = 0;
    for (size_t k = 0; k <= side->n_paraphrases && !found; k++) {
        paraphrase_text other;
        if (paraphrase_text_scan(k == 0 ? side->src : side->paraphrases[k - 1], script, &other, err) != 0) return -1;
        found = !strcmp(other.key, key->key);
        paraphrase_text_free(&other);
    }
    return found;
}

/* Appends candidate c of the table (kept) to its fact's side; *n_added or *n_dropped counts it. */
static int join_one(facts_record *rec, const paraphrase_table *t, size_t c, size_t *n_added, size_t *n_dropped,
                    lafn_err *err) {
    const char *lang = t->langs[t->lang[c]];
    facts_side *side = (facts_side *)facts_record_side(rec, lang);
    paraphrase_script script;
    paraphrase_text key;
    if (!side) return lafn_err_set(err, "fact '%s' has no language %s", rec->id, lang);
    if (paraphrase_lang_script(lang, &script, err) || paraphrase_text_scan(t->text[c], script, &key, err)) return -1;
    int there = already_there(side, &key, script, err), rc = there < 0 ? -1 : 0;
    paraphrase_text_free(&key);
    if (there == 1) (*n_dropped)++;
    if (there == 0 && (rc = facts_side_add_paraphrase(side, t->text[c], err)) == 0) (*n_added)++;
    return rc;
}

static int cmp_index(const void *key, const void *elem) {
    size_t k = *(const size_t *)key, i = ((const facts_record *)elem)->index;
    return k < i ? -1 : k > i;
}

/* Adds the table's kept paraphrases to ctx's facts; every fact of the run must have a row. */
static int join_table(stage_context *ctx, const char *path, const paraphrase_table *t, lafn_err *err) {
    size_t n_added = 0, n_dropped = 0, n_seen = 0;
    if (t->n_langs != ctx->facts.n_langs)
        return lafn_err_set(err, "%s: %zu languages, this run has %zu", path, t->n_langs, ctx->facts.n_langs);
    for (size_t l = 0; l < t->n_langs; l++)
        if (strcmp(t->langs[l], ctx->facts.langs[l]) != 0)
            return lafn_err_set(err, "%s: language %zu is %s, this run's is %s", path, l, t->langs[l], ctx->facts.langs[l]);
    for (size_t r = 0; r < t->n_rows; r++) {
        size_t index = (size_t)t->facts[r];
        facts_record *rec = bsearch(&index, ctx->facts.facts, ctx->facts.n_facts, sizeof *rec, cmp_index);
        if (!rec) return lafn_err_set(err, "%s: fact %zu is not in this run", path, index);
        n_seen++;
        for (int64_t c = t->off[r]; c < t->off[r + 1]; c++)
            if (t->verdict[c] == PARAPHRASE_KEPT && join_one(rec, t, (size_t)c, &n_added, &n_dropped, err) != 0)
                return lafn_err_wrap(err, "%s", path);
    }
    if (n_seen != ctx->facts.n_facts)
        return lafn_err_set(err, "%s: %zu facts, this run has %zu", path, n_seen, ctx->facts.n_facts);
    if (ctx->rank == 0 && ctx->log)
        fprintf(ctx->log, "%s: %zu generated paraphrases from %s join the prompts (%zu already there dropped)\n",
                ctx->stage, n_added, path, n_dropped);
    return 0;
}

int paraphrase_join(stage_context *ctx, lafn_err *err) {
    if (!stage_paraphrases_generated(&ctx->cfg)) return 0;
    char path[4096];
    hid_t file = H5I_INVALID_HID;
    paraphrase_table t = {0};
    snprintf(path, sizeof path, "%s/paraphrase.h5", ctx->out_dir);
    int rc = open_checked(ctx, path, &file, err);
    if (rc == 0) rc = paraphrase_table_read(file, path, &t, err);
    if (file >= 0) H5Fclose(file);
    if (rc == 0) rc = join_table(ctx, path, &t, err);
    paraphrase_table_free(&t);
    if (rc != 0) lafn_err_wrap(err, "paraphrase.method = sample or beam: the paraphrase stage's output");
    return mpi_status_agree(ctx->comm, rc, err);
}
