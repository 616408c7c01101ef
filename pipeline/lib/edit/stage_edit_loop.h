/* stage_edit_loop: the edit stage's state shared by its loop (stage_edit.c) and its units (stage_edit_unit.c). */
#ifndef LAFN_STAGE_EDIT_LOOP_H
#define LAFN_STAGE_EDIT_LOOP_H

#include "edit/stage_edit_int.h"
#include "stage/fact_loop.h"
#include "stage/stage.h"

/* The gates' reference questions (stage_edit_refs.c): fact i is told apart from the src of up to
 * EDIT_GATE_REFS other facts per language of it — the next facts in set order, cyclically, that have a
 * question in that language. Every fact's src questions are forwarded once, as one batch, and what the gates
 * read of them is held by every rank. */
typedef struct {
    int64_t *row_off; /* (n_facts + 1) fact j's src questions are rows row_off[j] .., one per language with one */
    float *state;     /* (rows, D) the state entering the key layer at each row's last token */
    int64_t *ref_off; /* (n_facts + 1) fact i's references are entries ref_off[i] .. ref_off[i + 1] */
    int64_t *ref_row; /* (references) the row each one is */
    int64_t *act_off; /* (n_facts + 1) fact i's block of act: (its references) × (its candidate neurons) */
    float *act;       /* the candidates' activations (unsigned) at the references' last tokens */
} edit_gate_refs;

typedef struct {
    stage_context ctx;
    edit_hparams h;
    const char *mode;         /* edit.mode */
    size_t batch_size, shard_facts;
    edit_trigger trigger;     /* edit.gate, edit.trigger: apply while optimising in sequential mode only */
    int key_layer;            /* floor(edit.key_depth · n_layer) */
    float key_floor, key_margin;
    float *key_center;        /* (D) mean state entering key_layer over the set's src questions */
    edit_gate_refs refs;      /* the method lafn only */
    edit_neurons nr;          /* locate.h5's edit/ set */
    int language_specific;    /* locate.neuron_set = language_specific: edit/ holds those, found or not */
    facts_edit_view *views;   /* (ctx.facts.n_facts) */
    long *row;                /* (ctx.facts.n_facts) row of each fact in nr */
    stage_resume res;         /* facts already in committed shards; batch and sequential modes */
    stage_progress prog;      /* batch and sequential modes (single runs stage_loop_run) */
    edit_record *pending;     /* finished, not yet written */
    size_t n_pending, cap_pending;
    long long counts[3];      /* records written by this rank, per EDIT_STATUS_* */
    double wall_sum, steps_sum; /* over the optimised ones */
} edit_stage;

/* Everything the stage's modes start from (collective over comm): the
 * stage context of the pipeline file with its overrides, the edit knobs,
 * locate.h5 of the same run, the facts' edit views and the key centre. The
 * stage and benchmarks (tests/bench/bench_edit.c) start here. Returns 0, or
 * -1 on every rank with err and *S freed; on success free with edit_stage_free. */
int edit_stage_init(edit_stage *S, const char *cfg_path, char *const *overrides, int n_overrides,
                    const char *command_line, MPI_Comm comm, FILE *log, lafn_err *err);
void edit_stage_free(edit_stage *S);

/* 1 if fact i of the set has neurons to edit: a non-empty edit/ list, and
 * locate found LAFNs (unless the language-specific sets are edited). */
int edit_fact_has_neurons(const edit_stage *S, size_t i);

/* Fills rec's triggers. The gate (arrays allocated for every locate neuron
 * of fact i): the neurons edit_gate_calibrate keeps, with their calibrated
 * thresholds, on the fact's prompts against its references (S->refs); if
 * none separates them, every locate neuron with the own-prompt floor as
 * threshold (gate_specific 0). The keys: one per own prompt around
 * S->key_center, the threshold from edit_key_threshold against the same
 * references (allocated here). Local to the rank. Returns 0 or -1 with err. */
#define EDIT_GATE_REFS 8
int edit_gate_for_fact(const edit_stage *S, size_t i, edit_record *rec, lafn_err *err);

/* S->refs, and S->key_center as the mean of its states: each rank forwards the src questions of its share
 * of the facts (index mod ranks), one batch per fact, and the tables are summed over the ranks, so that
 * every rank holds the same numbers whatever their count. Collective over S->ctx.comm. Returns 0 on every
 * rank, or -1 on every rank with err. */
int edit_gate_refs_compute(edit_stage *S, lafn_err *err);
void edit_gate_refs_free(edit_gate_refs *g);

/* Packed prompts without targets, each's last token noted: what the gate forwards. */
typedef struct {
    int32_t *tokens;
    int *seq_len, *last;
    size_t N, B, cap_tokens, cap_seqs;
} edit_prompt_batch;

/* Appends prompt (language lang) to g, tokenized as a question. Returns 0 or -1 with err. */
int edit_prompt_batch_add(edit_prompt_batch *g, const tokenizer *tok, const char *lang, const char *prompt,
                          lafn_err *err);
/* Forwards g's prompts, unedited, into a new run *out (free with engine_run_free). Returns 0 or -1 with err. */
int edit_prompt_batch_forward(const model *m, const edit_prompt_batch *g, engine_run **out, lafn_err *err);
void edit_prompt_batch_free(edit_prompt_batch *g);

/* The problem of a unit (facts[0..n), indices into the set): the sequences
 * of its facts that have neurons, dealt round-robin over comm's ranks (this
 * rank's share into p, initialised here; free with edit_problem_free also on
 * failure); slot[k] receives the problem slot of facts[k] (-1: no neurons).
 * Returns 0 or -1 with err. */
int edit_unit_problem(const edit_stage *S, const size_t *facts, size_t n, MPI_Comm comm, edit_problem *p, int *slot,
                      lafn_err *err);

/* Optimises one unit — facts[0..n) (indices into the set) sharing one delta
 * set — collectively over comm, with the earlier edits `fixed` (may be NULL)
 * active where their gates fire. out[0..n) (zeroed by the caller; free with
 * edit_record_free also on failure) receives the facts' records; facts
 * without neurons get status EDIT_STATUS_NO_LAFN. Returns 0 or -1 with err
 * (the same on every rank of comm). */
int edit_unit_run(edit_stage *S, const size_t *facts, size_t n, long long group, MPI_Comm comm,
                  const edit_cache *fixed, edit_record *out, lafn_err *err);

#endif
