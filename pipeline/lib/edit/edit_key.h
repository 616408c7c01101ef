/* edit_key: the key trigger of a cached edit — the fact's prompts as unit vectors of a middle layer's state, compared by cosine. */
#ifndef LAFN_EDIT_KEY_H
#define LAFN_EDIT_KEY_H

#include <stddef.h>

/* A key is the residual stream entering layer key_layer at a prompt's last
 * token, minus a centre (the mean of that state over the run's questions, so
 * that what all questions share does not dominate the cosine), scaled to unit
 * length. An edit fires on an input whose own key has cosine >= its threshold
 * with the nearest of the fact's keys. */

/* Writes the unit key of state h (D) with centre c (D) into out (D); a zero
 * vector (h == c) stays zero and then matches nothing. */
void edit_key_of(const float *h, const float *c, int D, float *out);

/* Largest dot product of unit vector q (D) with the n unit keys (n, D); -1 when n = 0. */
float edit_key_nearest(const float *q, const float *keys, int n, int D);

/* The fact's threshold from the unit keys of its own prompts own (n_own, D)
 * and of other facts' questions neg (n_neg, D): just above the nearest
 * negative (the largest edit_key_nearest of a negative against own, plus
 * margin), at least floor, at most EDIT_KEY_MAX_THRESHOLD so that the own
 * prompts (cosine 1 with their own key) always fire. */
#define EDIT_KEY_MAX_THRESHOLD 0.999f
float edit_key_threshold(const float *own, int n_own, const float *neg, int n_neg, int D, float floor, float margin);

#endif
