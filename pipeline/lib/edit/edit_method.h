/* edit_method: the edit methods of edit.method — lafn and the fine-tuning baselines ft_l, ft_m (docs/baselines.md). */
#ifndef LAFN_EDIT_METHOD_H
#define LAFN_EDIT_METHOD_H

#include "config/config.h"
#include "edit/edit_optimise.h"
#include "edit/stage_edit.h"

/* EasyEdit's FT layer for Llama models (layers [21] of 32), as a depth:
 * edit.method ft_l / ft_m with METHOD.layers = [] fine-tune layer
 * floor(EDIT_FT_DEPTH × n_layer) (11 of Gemma 3 270M's 18). */
#define EDIT_FT_DEPTH (21.0 / 32.0)

/* EasyEdit's stopping rule for FT: the loop ends once the loss is below 0.01
 * (here: every language's loss, the rule edit.stop_nll applies). */
#define EDIT_FT_STOP_LOSS 0.01

/* Reads edit.method into h->method and, for a baseline, its section's knobs
 * over the lafn knobs already in *h: lr, steps (num_steps), weight_decay,
 * norm_constraint (h->linf), the objective (ft_l: prompt_last), stop_nll
 * EDIT_FT_STOP_LOSS, and no KL, L2, norm clamp or keep_best. Returns 0, or
 * -1 with err naming the key. */
int edit_method_hparams(const lafn_config *cfg, edit_hparams *h, lafn_err *err);

/* The layers a baseline fine-tunes into layers (capacity cap), their count
 * into *n: METHOD.layers, or floor(EDIT_FT_DEPTH × n_layer) when it is [].
 * Returns 0, or -1 with err naming the key when a layer is outside the
 * model's n_layer or the list has duplicates or more than cap entries. */
int edit_method_layers(const lafn_config *cfg, const char *method, int n_layer, int *layers, int cap, int *n,
                       lafn_err *err);

/* The neurons a baseline edits, in the form locate hands them over: for each
 * of the n_facts facts (indices facts[]) every neuron j < d_ffn of every one
 * of the n_layers layers, found, with sign and threshold 0 (baselines have no
 * gate). out is initialised here; free with edit_neurons_free. Returns 0, or
 * -1 with err (out of memory). */
int edit_neurons_whole_layers(const int64_t *facts, size_t n_facts, const int *layers, int n_layers, int d_ffn,
                              edit_neurons *out, lafn_err *err);

#endif
