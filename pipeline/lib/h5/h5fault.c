/* h5fault: test-only fault injection — a rank kills itself with SIGKILL at a named point of the shard/merge protocol. */
#include "h5/h5fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h5fault_point(const char *stage, const char *point, int rank) {
    static long calls;
    static int warned;
    const char *spec = getenv(H5FAULT_ENV);
    if (!spec || !spec[0]) return;
    char want_stage[64], want_point[16];
    int want_rank = -1;
    long n = 1;
    int got = sscanf(spec, "%63[a-z0-9_]:%15[a-z]:%d:%ld", want_stage, want_point, &want_rank, &n);
    if (got < 3 || n < 1) {
        if (!warned++) fprintf(stderr, "%s='%s' is not STAGE:POINT:RANK[:N]; ignored\n", H5FAULT_ENV, spec);
        return;
    }
    if (strcmp(want_stage, stage) != 0 || strcmp(want_point, point) != 0 || want_rank != rank) return;
    if (++calls < n) return;
    fprintf(stderr, "%s: rank %d of stage %s kills itself at '%s' (call %ld)\n", H5FAULT_ENV, rank, stage, point, calls);
    fflush(stderr);
    raise(SIGKILL);
}
