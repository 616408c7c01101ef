/* output_compare: a resumed run's outputs against an uninterrupted run's — stage files fact by fact, summaries. */
#ifndef LAFN_OUTPUT_COMPARE_H
#define LAFN_OUTPUT_COMPARE_H

#include <stddef.h>

/* Compares the stage file at b_path with the reference at a_path: the same objects; every dataset's type,
 * shape and bytes — per-fact rows (attribute lafn_layout "rows") and CSR lists (groups with lafn_layout
 * "csr") matched through /facts, so the row order may differ; every other dataset (global/, cells/) as a
 * whole; every attribute's type and bytes. Datasets named in skip_ds and root attributes named in
 * skip_attrs (NULL-terminated lists; NULL for none) are left out. Each difference is one failed CHECK
 * naming the file, the object and the fact. Returns the number of differences. */
int output_compare_stage(const char *a_path, const char *b_path, const char *const *skip_ds,
                         const char *const *skip_attrs);

/* Compares two runs' summary.json or summary.csv (chosen by the name's ending): the same records in the same
 * order, ignoring only the edit's timing and memory (JSON keys wall_seconds, peak_rss_kb, pss_kb; CSV columns
 * edit_wall_seconds, edit_peak_rss_kb, edit_pss_kb). Each difference is one failed CHECK. Returns their number. */
int output_compare_summary(const char *a_path, const char *b_path);

/* Compares run b_dir with the uninterrupted run a_dir of the same pipeline and output folder name: each
 * STAGE.h5 of stages[0..n_stages) with output_compare_stage, leaving out only what legitimately differs
 * between two runs — the root attribute lafn_time_utc and the edit's time and memory (edit.h5 wall_seconds,
 * memory_kb; eval.h5 edit_wall_seconds, edit_memory_kb) — and summary.json and summary.csv with
 * output_compare_summary. when says which comparison failed. Returns the number of differences. */
int output_compare_run(const char *a_dir, const char *b_dir, const char *const *stages, size_t n_stages,
                       const char *when);

#endif
