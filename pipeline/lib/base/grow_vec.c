/* grow_vec: a growable array of fixed-size elements. */
#include "base/grow_vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int grow_vec_push(grow_vec *g, const void *src, size_t n, lafn_err *err) {
    if (n == 0) return 0;
    if (g->elem == 0 || n > SIZE_MAX / 2 / g->elem - g->n)
        return lafn_err_set(err, "array of %zu + %zu elements of %zu bytes overflows", g->n, n, g->elem);
    if (g->n + n > g->cap) {
        size_t cap = g->cap ? g->cap : 256;
        while (cap < g->n + n) cap *= 2;
        void *v = realloc(g->v, cap * g->elem);
        if (!v) return lafn_err_set(err, "out of memory growing an array to %zu elements", cap);
        g->v = v;
        g->cap = cap;
    }
    memcpy((char *)g->v + g->n * g->elem, src, n * g->elem);
    g->n += n;
    return 0;
}

void grow_vec_free(grow_vec *g) {
    free(g->v);
    g->v = NULL;
    g->n = g->cap = 0;
}
