/* driver_ask_run: `lafn ask RUN_DIR FACT` — one fact of a finished run, unedited and edited answers side by side in every language: teacher-forced, and generated on the KV cache with the edit behind its gate. */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "edit/edit_cache.h"
#include "engine/decode.h"
#include "engine/engine_kv.h"
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
    hid_t file = h5out_fopen(edit_path, H5F_ACC_RDONLY, H5P_DEFAULT, err);
    if (file < 0) return lafn_err_wrap(err, "has the edit stage of this run finished?");
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
    if (c->trigger.kind == EDIT_TRIGGER_KEY && e->n_keys > 0)
        printf("trigger: %d keys of blk.%d, threshold %.3f\n  neurons:", e->n_keys, e->key_layer,
               (double)e->key_threshold);
    else if (c->trigger.kind == EDIT_TRIGGER_NEAREST_KEY && e->n_keys > 0)
        printf("trigger: %d keys of blk.%d nearer than those of %zu other facts, cosine >= %.3f\n  neurons:",
               e->n_keys, e->key_layer, c->n_rivals ? c->n_rivals - 1 : 0, (double)c->trigger.nearest_floor);
    else
        printf("trigger: %d gate neuron(s), gate %.2f\n  neurons:", e->n_gate, (double)c->trigger.gate);
    for (int k = 0; k < e->n && k < 12; k++) printf(" blk.%d.ffn_down[%d]", e->layer[k], e->neuron[k]);
    printf("%s\n", e->n > 12 ? " …" : "");
}

/* Prints text with control characters escaped (answers may hold any token: "\n", "\t", "\r", else "<0xHH>"), so
 * each answer stays on its line and a newline answer reads as one. */
static void put_text(const char *text) {
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '\n') fputs("\\n", stdout);
        else if (*c == '\t') fputs("\\t", stdout);
        else if (*c == '\r') fputs("\\r", stdout);
        else if (*c < 0x20 || *c == 0x7f) printf("<0x%02X>", *c);
        else putchar(*c);
    }
}

enum { ASK_MAX_QUESTIONS = 4 * 64, ASK_NEW_TOKENS = 16 };

/* One question of the fact. */
typedef struct {
    const char *lang, *what, *prompt, *target;
} ask_q;

/* Every language of the fact: src and rephrase (new answer), loc (its true answer), portability. */
static size_t ask_questions(const facts_set *set, const facts_record *rec, ask_q *q) {
    size_t n = 0;
    for (size_t l = 0; l < set->n_langs; l++) {
        const facts_side *side = facts_record_side(rec, set->langs[l]);
        const facts_eval *ev = facts_record_eval(rec, set->langs[l]); /* display of the test questions */
        if (!side || !ev) continue;
        const ask_q four[4] = {{side->lang, "reliability", side->src, side->alt},
                               {side->lang, "generality", ev->rephrase, side->alt},
                               {side->lang, "locality", ev->loc, ev->loc_ans},
                               {side->lang, "portability", ev->port_q, ev->port_a}};
        for (int k = 0; k < 4 && n < ASK_MAX_QUESTIONS; k++)
            if (four[k].prompt && four[k].target && four[k].prompt[0] && four[k].target[0]) q[n++] = four[k];
    }
    return n;
}

/* Packs the questions' prompts (tokenized as the stages do) into ids; lens, last_pos (n); *longest. */
static int ask_pack(const model *m, const ask_q *q, size_t n, int32_t **ids, int *lens, int *last_pos, int *longest,
                    lafn_err *err) {
    size_t total = 0;
    *ids = NULL;
    *longest = 0;
    for (size_t i = 0; i < n; i++) {
        stage_sequence seq;
        if (stage_sequence_build(m->tok, q[i].lang, q[i].prompt, NULL, &seq, err) != 0) return -1;
        int32_t *grown = realloc(*ids, (total + seq.n_prompt) * sizeof *grown);
        if (!grown) {
            stage_sequence_free(&seq);
            return lafn_err_set(err, "out of memory for %zu prompt tokens", total + seq.n_prompt);
        }
        *ids = grown;
        memcpy(*ids + total, seq.ids, seq.n_prompt * sizeof *grown);
        total += seq.n_prompt;
        lens[i] = (int)seq.n_prompt, last_pos[i] = (int)total - 1;
        *longest = lens[i] > *longest ? lens[i] : *longest;
        stage_sequence_free(&seq);
    }
    return 0;
}

/* Greedy continuations of every question on the KV cache, unedited (pre) and
 * with the cache applied through its gate on each prompt (post), as eval decides it. */
static int ask_generate(const model *m, const ask_q *q, size_t n, const edit_cache *cache, decode_result *pre,
                        decode_result *post, lafn_err *err) {
    int lens[ASK_MAX_QUESTIONS], last_pos[ASK_MAX_QUESTIONS], longest, rc = -1;
    int32_t *ids = NULL;
    engine_run *run = NULL;
    engine_kv *kv = NULL;
    edit_cache_edit ce = {0};
    static const char *const newline[] = {"\n"};
    decode_opts o = decode_defaults();
    o.max_new_tokens = ASK_NEW_TOKENS, o.stop = newline, o.n_stop = 1;
    if (ask_pack(m, q, n, &ids, lens, last_pos, &longest, err) != 0) goto done;
    engine_batch b = {.n_seq = (int)n, .seq_len = lens, .tokens = ids};
    if (engine_run_init(&run, m, (size_t)last_pos[n - 1] + 1, 0, err) ||
        edit_cache_decide(run, m, &b, last_pos, cache, NULL, NULL, &ce, err) ||
        engine_kv_init(&kv, m, n, (size_t)longest + ASK_NEW_TOKENS, err) || decode_generate(kv, m, &b, &o, pre, err))
        goto done;
    o.edit = ce.edit.n > 0 ? &ce.edit : NULL;
    if (decode_generate(kv, m, &b, &o, post, err)) {
        for (size_t i = 0; i < n; i++) decode_result_free(&pre[i]);
        goto done;
    }
    rc = 0;
done:
    edit_cache_edit_free(&ce);
    engine_kv_free(kv);
    engine_run_free(run);
    free(ids);
    return rc;
}

/* One question: the unedited and the edited model's teacher-forced answers
 * beside the expected one, then their greedy continuations. */
static int ask_question(eval_scorer *s, const ask_q *q, const edit_cache *cache, const decode_result *gen_pre,
                        const decode_result *gen_post, lafn_err *err) {
    eval_pred pre = {0}, post = {0};
    if (eval_predict(s, q->lang, q->prompt, q->target, cache, &pre, &post, err) != 0) return -1;
    printf("  [%s] %-11s ", q->lang, q->what);
    put_text(q->prompt);
    printf("\n       expected: ");
    put_text(post.target_text);
    printf(" | unedited: ");
    put_text(pre.answer_text);
    printf(" | edited: ");
    put_text(post.answer_text);
    printf("%s\n       generated, unedited: ", post.fired ? "" : "   (edit did not fire)");
    put_text(gen_pre->text + strspn(gen_pre->text, " "));
    printf(" | edited: ");
    put_text(gen_post->text + strspn(gen_post->text, " "));
    printf("\n");
    eval_pred_free(&pre);
    eval_pred_free(&post);
    return 0;
}

/* Every question of the fact, teacher-forced and generated. */
static int ask_fact(eval_scorer *s, const facts_set *set, const facts_record *rec, const edit_cache *cache,
                    lafn_err *err) {
    ask_q *q = malloc(ASK_MAX_QUESTIONS * sizeof *q);
    decode_result *gen = calloc(2 * ASK_MAX_QUESTIONS, sizeof *gen);
    size_t n = q ? ask_questions(set, rec, q) : 0;
    int rc = q && gen ? 0 : lafn_err_set(err, "out of memory");
    if (rc == 0 && n > 0) rc = ask_generate(s->m, q, n, cache, gen, gen + n, err);
    if (rc == 0)
        printf("\n(answers are the teacher-forced argmax tokens, as the benchmarks score them; 'generated' is the "
               "greedy continuation, up to %d tokens or a newline)\n", ASK_NEW_TOKENS);
    for (size_t i = 0; rc == 0 && i < n; i++) rc = ask_question(s, &q[i], cache, &gen[i], &gen[n + i], err);
    for (size_t i = 0; gen && i < 2 * n; i++) decode_result_free(&gen[i]);
    free(gen);
    free(q);
    return rc;
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
    edit_trigger trigger;
    const char *model_path;
    const facts_record *rec = NULL;
    if (ask_config(edit_path, argv + 3, argc - 3, &cfg, &err) || edit_trigger_from_config(&cfg, &trigger, &err) ||
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
    edit_cache cache = edit_store_cache(&st, &trigger);
    cache.n_entries = 1;
    cache.entries = &st.entries[row];
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
