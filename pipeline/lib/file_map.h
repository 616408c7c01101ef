/* file_map: a whole regular file mapped read-only, for the model-file readers. */
#ifndef LAFN_FILE_MAP_H
#define LAFN_FILE_MAP_H

#include <stdint.h>

#include "lafn_err.h"

/* Maps the regular file path read-only (private). Files shorter than
 * min_bytes are refused with a message saying they are too short for `what`
 * ("a GGUF header (24 bytes)"). Returns 0 with *map and *size (release with
 * munmap(*map, *size)), or -1 with err naming the file. */
int file_map_readonly(const char *path, uint64_t min_bytes, const char *what, const uint8_t **map,
                      uint64_t *size, lafn_err *err);

#endif
