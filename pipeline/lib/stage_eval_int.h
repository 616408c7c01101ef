/* stage_eval_int: what the evaluation's files share — predictions of one (prompt, target) pair, per-fact criteria, cached edits. */
#ifndef LAFN_STAGE_EVAL_INT_H
#define LAFN_STAGE_EVAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "facts.h"
#include "lafn_err.h"
#include "model.h"
#include "tokenizer.h"

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

/* One fact's cached edit as the evaluation applies it (arrays owned). The
 * edit fires for an input when at least gate * n of its neurons have an
 * unedited activation at the input's last prompt token above threshold[e]
 * (gate <= 0: always); then delta applies to that whole sequence. */
typedef struct {
    engine_edit_kind kind;
    int n;
    int *layer;        /* (n) */
    int *neuron;       /* (n) */
    float *delta;      /* (n, D) value_vector or (n) activation_offset */
    float *threshold;  /* (n) gate threshold of each neuron's activation */
    double gate;
} eval_edit;

void eval_edit_free(eval_edit *e);

/* The model and a reusable engine run (grown on demand). */
typedef struct {
    const model *m;
    engine_run *run;
    size_t max_tokens, max_pos;
} eval_scorer;

int eval_scorer_init(eval_scorer *s, const model *m, lafn_err *err);
void eval_scorer_free(eval_scorer *s);

/* What the model predicts for one (prompt, target) pair. */
typedef struct {
    size_t n_target;
    int32_t *target;    /* (n_target) ids of sep + target (stage_sequence_build) */
    int32_t *tf;        /* (n_target) teacher-forced argmax at each target position */
    int32_t *answer;    /* (n_target) argmax after prompt, prompt + sep + decode(target[:1]), ... */
    char *answer_text;  /* decode(answer), leading white space removed */
    char *target_text;  /* decode(target), leading white space removed */
    int fired;          /* 1 if the edit applied to this prompt */
} eval_pred;

void eval_pred_free(eval_pred *p);

/* Predicts the pair with the unedited model (*pre) and with edit applied
 * through its gate (*post; edit NULL or not firing: a copy of *pre). Returns
 * 0, or -1 with err naming the language and prompt. An empty target (no
 * tokens) is an error: it has no score. */
int eval_predict(eval_scorer *s, const char *lang, const char *prompt, const char *target, const eval_edit *edit,
                 eval_pred *pre, eval_pred *post, lafn_err *err);

/* The four metrics of p against its own target: out[EVAL_N_METRIC]. */
int eval_pred_scores(const tokenizer *t, const eval_pred *p, double *out, lafn_err *err);

/* Locality metrics of post against pre: token_em = share of target positions
 * whose teacher-forced argmax is unchanged; F1/EM/harmonic F1 of post's
 * answer against pre's answer (as evaluate.py). out[EVAL_N_METRIC]. */
int eval_pred_unchanged(const tokenizer *t, const eval_pred *pre, const eval_pred *post, double *out,
                        lafn_err *err);

/* Scores one fact in test language lang, pre and post: pre/post[EVAL_N_VALUES]
 * ([criterion][metric], NaN where the record has no such question), fired[EVAL_N_CRIT]
 * (-1 where absent), *rephrase_is_src (1 if rephrase equals src). Only here
 * are the evaluation-only fields read (facts_record_eval). */
int eval_fact_lang(eval_scorer *s, const facts_record *rec, const char *lang, const eval_edit *edit, double *pre,
                   double *post, int32_t *fired, int32_t *rephrase_is_src, lafn_err *err);

#endif
