/* stage_assign: deals facts to ranks, balanced by token count (a pure function of the costs and the rank count). */
#include "stage/stage.h"

#include <stdlib.h>

typedef struct {
    size_t cost;
    size_t index;
} assign_item;

/* Larger cost first; equal costs by index, so the result never depends on qsort's order. */
static int compare_cost_desc(const void *a, const void *b) {
    const assign_item *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

int stage_assign(const size_t *cost, size_t n, int n_ranks, int *owner, lafn_err *err) {
    if (n_ranks < 1) return lafn_err_set(err, "stage_assign: %d ranks", n_ranks);
    assign_item *items = malloc((n ? n : 1) * sizeof *items);
    size_t *load = calloc((size_t)n_ranks, sizeof *load);
    if (!items || !load) {
        free(items);
        free(load);
        return lafn_err_set(err, "stage_assign: out of memory for %zu facts", n);
    }
    for (size_t i = 0; i < n; i++) items[i] = (assign_item){cost[i], i};
    qsort(items, n, sizeof *items, compare_cost_desc);
    for (size_t i = 0; i < n; i++) {
        int best = 0; /* the least-loaded rank, lowest rank on ties */
        for (int r = 1; r < n_ranks; r++)
            if (load[r] < load[best]) best = r;
        owner[items[i].index] = best;
        load[best] += items[i].cost;
    }
    free(items);
    free(load);
    return 0;
}
