/* fuzz_util: what the fuzz harnesses share — inputs written to files, split into parts. */
#ifndef LAFN_FUZZ_UTIL_H
#define LAFN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include <hdf5.h>

#include "facts/facts.h"
#include "tokenizer/tokenizer.h"

/* The libFuzzer entry every harness defines: parses one input; returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes size bytes of data to the file `name` inside a private folder made on
 * the first call (under /dev/shm if present, else /tmp; removed at exit) and
 * returns its path (a static buffer per name slot 0..3, overwritten by the next
 * call with the same slot); data NULL removes the file instead. Aborts if the folder or file cannot be written: a
 * harness that cannot place its input has nothing to test. */
const char *fuzz_write_file(int slot, const char *name, const uint8_t *data, size_t size);

/* Writes the NUL-separated parts of data (fuzz_next_part) to the files
 * names[0..n) of the private folder, slots 0..n-1 (n <= 4); a file without
 * its part is removed, so no earlier input's file stays behind. */
void fuzz_write_parts(const uint8_t *data, size_t size, const char *const *names, int n);

/* /dev/null opened for writing once (where the loaders' warnings go); aborts if it cannot be opened. */
FILE *fuzz_devnull(void);

/* The private folder of fuzz_write_file (made on first use). */
const char *fuzz_dir(void);

/* Splits data at its NUL bytes: *part (length *len) is the piece from *pos
 * (start at 0) to the next NUL or the end, and *pos moves past it. Returns 1
 * while a piece is left (n NULs give n + 1 pieces), 0 at the end. Harnesses with several inputs (two pair files, a pipeline file and
 * its overrides) take them from one fuzz input this way. */
int fuzz_next_part(const uint8_t *data, size_t size, size_t *pos, const uint8_t **part, size_t *len);

/* Encodes (with BOS) and decodes a fixed mixed-script text, invalid UTF-8
 * included, and looks up a few pieces, with a tokenizer an input produced. */
void fuzz_use_tokenizer(const tokenizer *t);

/* Uses every record of a set an input produced as the stages do: the edit
 * view of each, the evaluation fields of each side, the paraphrase check. */
void fuzz_use_facts(const facts_set *set);

/* Writes data to `name` (slot 0) and, if h5out_check_format accepts it (as
 * h5out_open does), opens it read-only as HDF5 with the default driver,
 * HDF5's error printing off. Returns the file id (the caller closes it) or
 * a negative id if the check or HDF5 refuses the file. */
hid_t fuzz_h5_open(const char *name, const uint8_t *data, size_t size);

#endif
