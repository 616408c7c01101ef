/* rng: a small explicit-state pseudo-random generator (splitmix64), so every draw is reproducible from its seed. */
#ifndef LAFN_RNG_H
#define LAFN_RNG_H

#include <stdint.h>

/* Advances *state and returns 64 random bits. */
static inline uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, n) (n > 0), by rejection so there is no modulo bias. */
static inline uint64_t rng_below(uint64_t *state, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_next(state); while (x >= limit);
    return x % n;
}

/* Uniform double in [0, 1). */
static inline double rng_uniform(uint64_t *state) {
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
