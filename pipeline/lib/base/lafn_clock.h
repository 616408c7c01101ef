/* lafn_clock: the monotonic wall clock in seconds, for the per-phase time accounts. */
#ifndef LAFN_CLOCK_H
#define LAFN_CLOCK_H

/* Seconds of CLOCK_MONOTONIC (an arbitrary origin): only differences mean anything. */
double lafn_now_seconds(void);

#endif
