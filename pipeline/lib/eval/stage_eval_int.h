/* stage_eval_int: what the evaluation's files share — predictions of one (prompt, target) pair, per-fact criteria, cached edits. */
#ifndef LAFN_STAGE_EVAL_INT_H
#define LAFN_STAGE_EVAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "edit/edit_cache.h"
#include "edit/edit_optimise.h"
#include "engine/engine.h"
#include "facts/facts.h"
#include "base/lafn_err.h"
#include "model/model.h"
#include "stage/stage.h"
#include "edit/stage_edit.h"
#include "eval/stage_eval.h"
#include "tokenizer/tokenizer.h"

/* Criteria (EasyEdit key in brackets): reliability on src (rewrite_acc),
 * generality on rephrase (rephrase_acc), locality on loc/loc_ans (locality),
 * portability on the portability pair (portability). */
enum { EVAL_RELIABILITY, EVAL_GENERALITY, EVAL_LOCALITY, EVAL_PORTABILITY, EVAL_N_CRIT };
/* Metrics: teacher-forced token accuracy (EasyEdit token_em), benchmark F1
 * (precision x recall), exact match, harmonic F1. */
enum { EVAL_TOKEN_EM, EVAL_F1, EVAL_EM, EVAL_F1_HARMONIC, EVAL_N_METRIC };
/* Values of one fact in one test language: [criterion][metric]. */
#define EVAL_N_VALUES (EVAL_N_CRIT * EVAL_N_METRIC)

extern const char *const eval_criterion_names[EVAL_N_CRIT];    /* "reliability", ... */
extern const char *const eval_criterion_easyedit[EVAL_N_CRIT]; /* "rewrite_acc", ... */
extern const char *const eval_metric_names[EVAL_N_METRIC];     /* "token_em", ... */
extern const char *const eval_metric_methods[EVAL_N_METRIC];   /* how each is computed, for attributes */

/* One fact's cached edit as the evaluation applies it: a one-entry
 * edit_cache (edit_cache.h: the gate and the deltas) with its arrays owned
 * here. cache.n_entries is 0 for a fact without an edit. */
typedef struct {
    edit_cache cache;
    edit_cache_entry entry;
    int *gate_layer, *gate_neuron; /* (n_gate) */
    float *gate_sign;              /* (n_gate) */
    float *gate_threshold;         /* (n_gate) */
    int *layer, *neuron;           /* (n) */
    float *delta;                  /* (n, D) value_vector or (n) activation_offset */
} eval_edit;

void eval_edit_free(eval_edit *e);

/* The model, a reusable engine run (grown on demand) and the criteria scored. */
typedef struct {
    const model *m;
    engine_run *run;
    size_t max_tokens, max_pos;
    int criteria[EVAL_N_CRIT]; /* 1 = scored (eval.criteria); eval_scorer_init sets all */
} eval_scorer;

int eval_scorer_init(eval_scorer *s, const model *m, lafn_err *err);
void eval_scorer_free(eval_scorer *s);

/* What the model predicts for one (prompt, target) pair. */
typedef struct {
    size_t n_target;
    int32_t *target;    /* (n_target) ids of sep + target (stage_sequence_build) */
    int32_t *tf;        /* (n_target) teacher-forced argmax at each target position */
    int32_t *answer;    /* (n_target) argmax after prompt, prompt + sep + decode(target[:1]), ... */
    char *answer_text;  /* decode(answer), leading spaces removed */
    char *target_text;  /* decode(target), leading spaces removed */
    int fired;          /* 1 if the edit applied to this prompt */
} eval_pred;

void eval_pred_free(eval_pred *p);

/* Encodes text (with BOS if add_bos and the model has one) into new *ids (*n
 * of them, the caller frees). Returns 0, or -1 with err. */
int eval_encode(const tokenizer *t, const char *text, int add_bos, int32_t **ids, size_t *n, lafn_err *err);

/* Predicts n pairs (prompts[i] -> targets[i]) of language lang in one batch:
 * with the unedited model (pre[i]) and with the cache applied through its
 * gates (post[i]; cache NULL, empty or not firing: a copy of pre[i]). The
 * gates are read at each pair's last prompt token and decide for all the
 * pair's prefix sequences. Returns 0, or -1 with err naming the language and
 * prompt (nothing left allocated). An empty target (no tokens) is an error. */
int eval_predict_batch(eval_scorer *s, const char *lang, size_t n, const char *const *prompts,
                       const char *const *targets, const edit_cache *cache, eval_pred *pre, eval_pred *post,
                       lafn_err *err);
/* One pair: eval_predict_batch with n = 1. */
int eval_predict(eval_scorer *s, const char *lang, const char *prompt, const char *target, const edit_cache *cache,
                 eval_pred *pre, eval_pred *post, lafn_err *err);

/* The four metrics of p against its own target: out[EVAL_N_METRIC]. */
int eval_pred_scores(const tokenizer *t, const eval_pred *p, double *out, lafn_err *err);

/* Locality metrics of post against pre: token_em = share of target positions
 * whose teacher-forced argmax is unchanged; F1/EM/harmonic F1 of post's
 * answer against pre's answer (as evaluate.py). out[EVAL_N_METRIC]. */
int eval_pred_unchanged(const tokenizer *t, const eval_pred *pre, const eval_pred *post, double *out,
                        lafn_err *err);

/* Scores one fact in test language lang, pre and post: pre/post[EVAL_N_VALUES]
 * ([criterion][metric], NaN where the record has no such question or the
 * criterion is not in s->criteria), fired[EVAL_N_CRIT]
 * (-1 where absent), *rephrase_is_src (1 if rephrase equals src). Only here
 * are the evaluation-only fields read (facts_record_eval). */
int eval_fact_lang(eval_scorer *s, const facts_record *rec, const char *lang, const edit_cache *cache, double *pre,
                   double *post, int32_t *fired, int32_t *rephrase_is_src, lafn_err *err);

/* ---- the edit set "each" (eval_each.c) ---- */

/* How a fact's edit in one language is made: the fact's located neurons
 * (edit.h5's delta entries) re-optimised from zero with edit_optimise on the
 * prompts of that language only (src + paraphrases from the edit view; the
 * neutral KL prompts as the edit stage builds them), the edit knobs of the
 * pipeline file, on this rank alone. */
struct eval_each {
    size_t n_facts;          /* the first n_facts facts of the set (eval.each_max_facts) */
    const edit_store *store;
    const facts_set *facts;
    const model *m;
    edit_hparams h;
    edit_trigger trigger;
    facts_edit_view *views;  /* (n_views) every fact's edit view (owned) */
    size_t n_views;
};

int eval_each_init(const stage_context *ctx, const edit_store *st, const edit_trigger *t, eval_each *e,
                   lafn_err *err);
void eval_each_free(eval_each *e);
/* Makes fact f's edit in language slot lang only (ctx->facts.langs[lang]) into
 * *out (free with eval_edit_free; cache.n_entries 0 when the fact has no
 * neurons or no such language). Returns 0, or -1 with err. */
int eval_each_make(const eval_each *e, size_t f, size_t lang, eval_edit *out, lafn_err *err);

/* ---- eval.h5 after the merge (eval_cells.c) ---- */

/* The per-fact results of eval.h5, rows sorted by fact index. */
typedef struct {
    size_t n_facts, n_langs, n_sets; /* sets: unedited, all, then each:<lang> per edit language */
    int64_t *facts;      /* (n_facts) */
    double *pre;         /* (n_facts, n_langs, C, M) */
    double *post;        /* (n_facts, n_langs, C, M) edit set all */
    double *post_each;   /* (n_facts, n_langs edit, n_langs test, C, M) or NULL */
    int32_t *same;       /* (n_facts, n_langs) rephrase == src */
    int32_t *status;     /* (n_facts) */
    double *wall;        /* (n_facts) */
    int64_t *mem;        /* (n_facts, 2) */
} eval_data;

/* Reads eval.h5's per-fact datasets (open file) for n_langs languages. Returns 0, or -1 with err. */
int eval_data_read(hid_t file, const char *path, size_t n_langs, eval_data *out, lafn_err *err);
void eval_data_free(eval_data *d);
/* Value of set s (0 unedited, 1 all, 2 + e each), fact row i, test language l, criterion c, metric m. */
double eval_data_value(const eval_data *d, size_t s, size_t i, size_t l, int c, int m);

/* Rank 0 after the merge: adds the cell means (bootstrap intervals, n) to ctx's eval.h5
 * through a copy renamed over it (h5global_amend). */
int eval_cells_write(const stage_context *ctx, lafn_err *err);

/* Rank 0: writes summary.json and summary.csv beside eval.h5 (summary_json.c). */
int eval_summary_write(const stage_context *ctx, lafn_err *err);

#endif
