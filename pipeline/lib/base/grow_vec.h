/* grow_vec: a growable array of fixed-size elements. */
#ifndef LAFN_GROW_VEC_H
#define LAFN_GROW_VEC_H

#include <stddef.h>

#include "base/lafn_err.h"

/* Set elem (the element size in bytes) and zero the rest before the first push. */
typedef struct {
    void *v;          /* (cap, elem) bytes, the first n elements in use; owned */
    size_t n, cap, elem;
} grow_vec;

/* Appends n elements from src, growing geometrically. Returns 0, or -1 with
 * err when the size would overflow or memory runs out (g unchanged). */
int grow_vec_push(grow_vec *g, const void *src, size_t n, lafn_err *err);

/* Releases the elements; g can be pushed to again. */
void grow_vec_free(grow_vec *g);

#endif
