/* lafn_err: the error record every library function fills on failure. */
#ifndef LAFN_ERR_H
#define LAFN_ERR_H

#include <stddef.h>

/* Library functions return 0 on success and -1 on failure; on failure they
 * have written one human-readable message into the caller's lafn_err, naming
 * the file, key, tensor or record involved, what was expected and what was
 * found. Only a stage's main (stage/stage_main.c) turns a failure into the
 * program's exit status (docs/DESIGN.md §4 "MPI and errors"). */
typedef struct {
    char msg[1024];
} lafn_err;

/* Formats a message into err (truncating safely); returns -1 so callers can
 * write `return lafn_err_set(err, ...);`. err may be NULL. */
int lafn_err_set(lafn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the message already in err; returns -1. */
int lafn_err_wrap(lafn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* After a write into folder dir failed with errno saved_errno (taken right
 * after the failing call): if it is ENOSPC or EDQUOT, appends to err's message
 * that the disk holding dir is full (or the quota used up), how much is free
 * there and then "; HINT" (hint may be NULL), so the message names the file
 * (already in it), the cause and what to do. Any other errno leaves err as it
 * is. Returns 1 if it added the note, else 0. */
int lafn_err_disk_full(lafn_err *err, const char *dir, int saved_errno, const char *hint);

#endif
