/* driver_ask_run: `lafn ask RUN_DIR FACT` — one fact of a finished run, unedited and edited answers side by side in every language. */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "edit/edit_cache.h"
#include "h5/h5out.h"
#include "model/model.h"
#include "stage/stage.h"
#include "edit/stage_edit.h"
#include "eval/stage_eval_int.h"

static const char ask_run_usage[] =
    "usage: lafn ask RUN_DIR FACT [section.key=value ...]\n"
    "  FACT is a fact id (e.g. eiffel-tower-city, mzsre-17) or its index in the data set;\n"
    "  the run's resolved pipeline file is read from RUN_DIR/edit.h5.\n";

/* Loads the resolved configuration stored in RUN_DIR/edit.h5 (lafn_config_resolved), then the overrides. */
static int ask_config(const char *edit_path, char **overrides, int n_overrides, lafn_config *cfg, lafn_err *err) {
    char *text = NULL, tmp[] = "/tmp/lafn-ask-XXXXXX";
    int rc = -1, fd = -1;
    hid_t file = H5Fopen(edit_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return lafn_err_set(err, "%s: cannot open (has the edit stage of this run finished?)", edit_path);
    if (h5out_check_identity(file, edit_path, "edit", NULL, err) != 0 ||
        h5out_attr_string(file, "lafn_config_resolved", &text, err) != 0)
        goto fail;
    if ((fd = mkstemp(tmp)) < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        lafn_err_set(err, "cannot write a temporary copy of %s's pipeline file", edit_path);
        goto fail;
    }
    if (config_load(cfg, tmp, err) != 0) goto fail;
    if (config_override_all(cfg, overrides, (size_t)n_overrides, err) != 0) goto fail;
    rc = 0;
fail:
    if (fd >= 0) { close(fd); unlink(tmp); }
    free(text);
    H5Fclose(file);
    return rc;
}

/* The record named by id or by index. */
static const facts_record *ask_find(const facts_set *set, const char *fact) {
    const facts_record *rec = facts_set_find(set, fact);
    if (rec || !fact[0] || strspn(fact, "0123456789") != strlen(fact)) return rec;
    size_t index = strtoull(fact, NULL, 10);
    for (size_t i = 0; i < set->n_facts; i++)
        if (set->facts[i].index == index) return &set->facts[i];
    return NULL;
}

/* Prints the edit of store row `row`: status and where its neurons are. */
static void ask_print_edit(const edit_store *st, long row, const facts_record *rec, const edit_cache *c) {
    static const char *const status_names[] = {"edited", "no LAFN found: not edited",
                                               "edited (some language stayed above edit.stop_nll)"};
    const edit_cache_entry *e = &st->entries[row];
    int32_t s = st->status[row];
    printf("fact %s (index %zu): %s; %d edited neuron(s), ", rec->id, rec->index,
           s >= 0 && s <= 2 ? status_names[s] : "unknown status", e->n);
    if (c->by_key && e->n_keys > 0)
        printf("trigger: %d keys of blk.%d, threshold %.3f\n  neurons:", e->n_keys, e->key_layer,
               (double)e->key_threshold);
    else
        printf("trigger: %d gate neuron(s), gate %.2f\n  neurons:", e->n_gate, (double)c->gate);
    for (int k = 0; k < e->n && k < 12; k++) printf(" blk.%d.ffn_down[%d]", e->layer[k], e->neuron[k]);
    printf("%s\n", e->n > 12 ? " …" : "");
}

/* Prints text with control characters (answers may hold any token) shown as '?', so each answer stays on its line. */
static void put_text(const char *text) {
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) putchar(*c < 0x20 || *c == 0x7f ? '?' : *c);
}

/* One question: the unedited and the edited model's teacher-forced answers beside the expected one. */
static int ask_question(eval_scorer *s, const char *lang, const char *what, const char *prompt, const char *target,
                        const edit_cache *cache, lafn_err *err) {
    if (!prompt || !target || !prompt[0] || !target[0]) return 0;
    eval_pred pre = {0}, post = {0};
    if (eval_predict(s, lang, prompt, target, cache, &pre, &post, err) != 0) return -1;
    printf("  [%s] %-11s ", lang, what);
    put_text(prompt);
    printf("\n       expected: ");
    put_text(post.target_text);
    printf(" | unedited: ");
    put_text(pre.answer_text);
    printf(" | edited: ");
    put_text(post.answer_text);
    printf("%s\n", post.fired ? "" : "   (edit did not fire)");
    eval_pred_free(&pre);
    eval_pred_free(&post);
    return 0;
}

/* Every language of the fact: src and rephrase (new answer), loc (its true answer), portability. */
static int ask_fact(eval_scorer *s, const facts_set *set, const facts_record *rec, const edit_cache *cache,
                    lafn_err *err) {
    printf("\n(answers are the teacher-forced argmax tokens, as the benchmarks score them)\n");
    for (size_t l = 0; l < set->n_langs; l++) {
        const facts_side *side = facts_record_side(rec, set->langs[l]);
        const facts_eval *ev = facts_record_eval(rec, set->langs[l]); /* display of the test questions */
        if (!side || !ev) continue;
        if (ask_question(s, side->lang, "reliability", side->src, side->alt, cache, err) ||
            ask_question(s, side->lang, "generality", ev->rephrase, side->alt, cache, err) ||
            ask_question(s, side->lang, "locality", ev->loc, ev->loc_ans, cache, err) ||
            ask_question(s, side->lang, "portability", ev->port_q, ev->port_a, cache, err))
            return -1;
    }
    return 0;
}

int driver_ask_run(int argc, char **argv) {
    if (argc < 3) { fputs(ask_run_usage, stderr); return 2; }
    const char *dir = argv[1], *fact = argv[2];
    char edit_path[4096], run_id[STAGE_RUN_ID_LEN + 1];
    snprintf(edit_path, sizeof edit_path, "%s/edit.h5", dir);
    lafn_err err = {{0}};
    lafn_config cfg = {0};
    facts_set set = {0};
    model *m = NULL;
    edit_store st = {0};
    eval_scorer s = {0};
    int status = 1, have_scorer = 0;
    float gate = 0;
    int by_key = 0;
    const char *model_path;
    const facts_record *rec = NULL;
    if (ask_config(edit_path, argv + 3, argc - 3, &cfg, &err) || edit_trigger_from_config(&cfg, &gate, &by_key, &err) ||
        driver_load_facts(&cfg, &set, &err) || config_get_string(&cfg, "model.path", &model_path, &err))
        goto fail;
    if (!(rec = ask_find(&set, fact))) {
        lafn_err_set(&err, "fact '%s' is not among the run's %zu facts (give its id or index)", fact, set.n_facts);
        goto fail;
    }
    if (model_load(&m, model_path, MPI_COMM_NULL, &err) || stage_run_id(&cfg, m->sha256, "edit", run_id, &err) ||
        edit_store_read(edit_path, run_id, m->cfg.d_model, MPI_COMM_SELF, &st, &err))
        goto fail;
    long row = -1;
    for (size_t i = 0; i < st.n_facts && row < 0; i++)
        if (st.facts[i] == (int64_t)rec->index) row = (long)i;
    if (row < 0) {
        lafn_err_set(&err, "%s has no edit of fact %s (index %zu)", edit_path, rec->id, rec->index);
        goto fail;
    }
    edit_cache cache = {.kind = st.kind, .gate = gate, .by_key = by_key, .n_entries = 1, .entries = &st.entries[row]};
    printf("run %s, model %s (sha256 %.16s…)\n", dir, m->path, m->sha256);
    ask_print_edit(&st, row, rec, &cache);
    if (eval_scorer_init(&s, m, &err) != 0) goto fail;
    have_scorer = 1;
    if (ask_fact(&s, &set, rec, &cache, &err) != 0) goto fail;
    status = 0;
fail:
    if (status != 0) fprintf(stderr, "lafn ask: %s\n", err.msg);
    if (have_scorer) eval_scorer_free(&s);
    edit_store_free(&st);
    model_free(m);
    facts_set_free(&set);
    config_free(&cfg);
    return status;
}
