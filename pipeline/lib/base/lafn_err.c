/* lafn_err: formatting of error messages into the caller's record. */
#include "base/lafn_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lafn_err_set(lafn_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int lafn_err_wrap(lafn_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.500s: %.520s", prefix, old); /* both parts fit */
    return -1;
}
