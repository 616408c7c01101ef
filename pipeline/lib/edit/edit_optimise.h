/* edit_optimise: the update of docs/DESIGN.md §1.4 "The update" — token sequences of an edit, its loss (NLL + KL + L2) and the Adam loop over the deltas. */
#ifndef LAFN_EDIT_OPTIMISE_H
#define LAFN_EDIT_OPTIMISE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "edit/edit_cache.h"
#include "engine/engine.h"
#include "config/config.h"
#include "facts/facts.h"
#include "base/lafn_err.h"
#include "model/model.h"

/* One token sequence of an edit problem. A target sequence (n_target > 0)
 * contributes its teacher-forced NLL of the target; a neutral prompt
 * (n_target = 0) contributes the KL between the unedited and the edited
 * next-token distribution after its last token. */
typedef struct {
    int32_t *ids;      /* (n_prompt + n_target), owned */
    size_t n_prompt, n_target;
    int fact;          /* fact slot of the unit, 0 .. n_facts */
    int lang;          /* language slot, 0 .. n_langs */
    double weight;     /* target: 1 / (languages of the fact · prompts of the slot);
                          neutral: 1 / (languages of the fact · neutral prompts of the slot) */
    double slot_weight;/* target: 1 / prompts of the slot (the slot's NLL is their mean); neutral: 0 */
} edit_seq;

/* The part of a unit's sequences one rank holds. n_facts × n_langs slots are
 * the same on every rank of the unit's communicator. */
typedef struct {
    size_t n_seqs;
    edit_seq *seqs;    /* (n_seqs), owned */
    int n_facts, n_langs;
    uint8_t *present;  /* (n_facts, n_langs): the slot has target sequences (on any rank) */
    int kl_other_facts;/* 1: another fact's src is a neutral prompt too; 0: the subject only */
} edit_problem;

/* Neutral prompts per language of a fact (edit_problem.c): the src of the next
 * OTHER fact of the set in that language (unless p->kl_other_facts is 0)
 * and the fact's subject alone. */
#define EDIT_NEUTRAL_PER_LANG 2

/* Adds fact `fact_slot`'s sequences for the languages in lang_slot (slot of
 * each of view->langs; -1 = leave that language out): every prompt of the
 * view (src + paraphrases) with the target, via stage_sequence_build, and its
 * neutral prompts taken from `others` (the fact set's other facts: their
 * edit views' src — never evaluation fields) and the subject. keep(i) decides
 * which of the fact's sequences (numbered in the order added) this rank keeps;
 * NULL keeps all. Returns 0, or -1 with err naming the fact and language. */
int edit_problem_add_fact(edit_problem *p, const tokenizer *tok, const facts_edit_view *view, int fact_slot,
                          const int *lang_slot, const facts_edit_view *others, size_t n_others,
                          size_t self_index, int (*keep)(size_t i, void *arg), void *keep_arg, lafn_err *err);

/* Allocates the slot table of a problem of n_facts × n_langs (no sequences);
 * kl_other_facts as edit_hparams.kl_other_facts (edit.kl_other_facts). */
int edit_problem_init(edit_problem *p, int n_facts, int n_langs, int kl_other_facts, lafn_err *err);
void edit_problem_free(edit_problem *p);

/* edit.method: the located neurons (lafn) or a fine-tuning baseline (docs/baselines.md). */
typedef enum { EDIT_METHOD_LAFN, EDIT_METHOD_FT_L, EDIT_METHOD_FT_M } edit_method_kind;

/* Knobs of the optimisation (edit section of the pipeline file, and a baseline's section). */
typedef struct {
    edit_method_kind method;
    engine_edit_kind kind;
    double lr;
    int steps;
    double stop_nll;
    double kl_weight;
    double l2;
    double norm_clamp;  /* 0 = none */
    int reuse_lower;    /* 1: each step runs from the lowest edited layer on stored states; 0: full forward */
    int fused_head;     /* 1: the loss computed inside the LM head in one pass over the vocabulary
                           (engine_xent); 0: from stored logits, the reference of tests and benchmarks */
    int kl_other_facts; /* edit.kl_other_facts: KL also on another fact's src (edit_problem.kl_other_facts) */
    int keep_best;      /* edit.keep_best: hand back the lowest-loss delta seen, not the last */
    int prompt_last;    /* 1 (ft_l): every answer token scored from the logits at the last prompt token
                           (EasyEdit's objective_optimization = prompt_last); 0: teacher forced */
    double linf;        /* ft_*.norm_constraint: after each step every delta element is clamped to [-linf, linf];
                           0 = none */
    double weight_decay;/* ft_*.weight_decay: weight_decay · (original value + delta) added to the gradient, as
                           torch.optim.Adam's weight_decay on the edited matrix */
} edit_hparams;

/* Where an edit's wall time goes, in seconds summed over its steps
 * (docs/PERFORMANCE.md "Edit: where the time goes"). */
typedef enum {
    EDIT_PHASE_LOWER,      /* layers below the lowest edited one: the first, unedited forward only */
    EDIT_PHASE_LAYERS_FWD, /* the edited layers (from the lowest up), every forward */
    EDIT_PHASE_HEAD_FWD,   /* final norm and output matrix at the scored positions */
    EDIT_PHASE_LOSS,       /* log-softmax, NLL, KL and their logit gradients */
    EDIT_PHASE_HEAD_BWD,   /* back through the output matrix and the final norm */
    EDIT_PHASE_LAYERS_BWD, /* back through the edited layers */
    EDIT_PHASE_ADAM,       /* gradient reduction, Adam update, clamp */
    EDIT_PHASE_GATE,       /* gate calibration and keys (the stage's unit, after optimising) */
    EDIT_PHASES
} edit_phase;

/* Outcome of one optimisation. Tables are (n_facts, n_langs), NaN where a
 * slot has no sequences; the same on every rank. */
typedef struct {
    int steps;            /* Adam updates made */
    int early_stopped;    /* every present slot's NLL fell below stop_nll */
    double *nll_before;   /* with delta = 0 (and any fixed edits) */
    double *nll_after;    /* with the delta handed back */
    double loss_first, loss_last;   /* total loss at the first forward and of the delta handed back */
    double kl_last, l2_last;        /* KL term (weighted) and L2 term of the delta handed back */
    double seconds[EDIT_PHASES];    /* this rank's time per phase (EDIT_PHASE_GATE stays 0 here) */
    double *curve_nll;    /* (h->steps + 1, n_facts, n_langs) slot NLLs at each loss evaluation (row 0 = nll_before),
                             NaN after the last evaluation and where a slot has no sequences */
    double *curve_loss;   /* (h->steps + 1) total loss at each evaluation, NaN after the last */
} edit_result;

void edit_result_free(edit_result *r);

/* Optimises delta (n entries (layer, neuron); (n, D) or (n) floats, zeroed by
 * the caller or a warm start) for the problem, collectively over comm (every
 * rank holds its part of the unit's sequences and the same neurons and
 * delta; gradients and losses are summed with MPI_Allreduce, so the result
 * does not depend on how the sequences are split). fixed, if not NULL, holds
 * earlier edits kept active on the sequences whose gate fires (sequential
 * mode); they are not optimised. Returns 0 on every rank, or -1 on every rank
 * with err (delta then holds an intermediate value). */
int edit_optimise(const model *m, const edit_problem *p, int n, const int *layer, const int *neuron, float *delta,
                  const edit_cache *fixed, const edit_hparams *h, MPI_Comm comm, edit_result *res, lafn_err *err);

/* Reads edit.param, lr, steps, stop_nll, kl_weight, kl_other_facts, keep_best, l2 and norm_clamp of cfg
 * into *h (reuse_lower = 1, fused_head = 1), then edit.method with a baseline's knobs over them
 * (edit_method_hparams). Returns 0, or -1 with err naming the key. */
int edit_hparams_from_config(const lafn_config *cfg, edit_hparams *h, lafn_err *err);

/* Edits one fact alone on this rank (MPI_COMM_SELF), as the stage's single
 * mode does, restricted to the language `only` (NULL = every language of the
 * fact) — for eval's edit_sets = each. views (n_views, in set order) are
 * the set's edit views (neutral prompts come from the other facts); the
 * fact is views[self]. delta (n, D) or (n) is zeroed here and receives the
 * result; res as edit_optimise (slots: 1 fact × the view's languages, in the
 * view's order). Returns 0, or -1 with err. */
int edit_optimise_fact(const model *m, const facts_edit_view *views, size_t n_views, size_t self, const char *only,
                       int n, const int *layer, const int *neuron, const edit_hparams *h, float *delta,
                       edit_result *res, lafn_err *err);

/* ---- edit_problem.c ---- */

/* KL(p0 ‖ p) of one row: logp0 (V) the unedited log-probabilities, logits
 * (V) the edited ones. If dlogits is not NULL it receives weight · (p − p0),
 * the gradient of weight · KL. Returns the KL. */
double edit_kl_row(const float *logp0, const float *logits, int vocab, double weight, float *dlogits);

/* log_softmax of one row of V logits into out (V). */
void edit_log_softmax(const float *logits, int vocab, float *out);

#endif
