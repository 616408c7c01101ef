/* file_map: a whole regular file in memory — mapped read-only (model files) or read into a buffer (text and JSON). */
#ifndef LAFN_FILE_MAP_H
#define LAFN_FILE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/lafn_err.h"

/* Maps the regular file path read-only (private). Files shorter than
 * min_bytes are refused with a message saying they are too short for `what`
 * ("a GGUF header (24 bytes)"). Returns 0 with *map and *size (release with
 * munmap(*map, *size)), or -1 with err naming the file. */
int file_map_readonly(const char *path, uint64_t min_bytes, const char *what, const uint8_t **map,
                      uint64_t *size, lafn_err *err);

/* Reads the regular file path (at most max_bytes) into a new NUL-terminated
 * buffer *buf (the caller frees) of *len bytes. Returns 0, or -1 with err
 * naming the file: cannot open (with the reason), not a regular file, larger
 * than max_bytes, out of memory, read error. */
int file_read_all(const char *path, size_t max_bytes, char **buf, size_t *len, lafn_err *err);

#endif
