/* lafn_err: formatting of error messages into the caller's record. */
#include "base/lafn_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

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

int lafn_err_disk_full(lafn_err *err, const char *dir, int saved_errno, const char *hint) {
    if (!err || (saved_errno != ENOSPC && saved_errno != EDQUOT)) return 0;
    struct statvfs st;
    char free_kb[64] = "";
    if (statvfs(dir, &st) == 0)
        snprintf(free_kb, sizeof free_kb, ", %.0f kB free", (double)st.f_bavail * (double)st.f_frsize / 1e3);
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof err->msg - len, ": %s — the disk holding %s is %s%s%s%s", strerror(saved_errno),
             dir, saved_errno == ENOSPC ? "full" : "over its quota", free_kb, hint ? "; " : "", hint ? hint : "");
    return 1;
}
