/* eval_table: the final results table (edit set x test language, per criterion and metric) printed from eval.h5. */
#ifndef LAFN_EVAL_TABLE_H
#define LAFN_EVAL_TABLE_H

#include <stdio.h>

#include "base/lafn_err.h"

/* Prints, from the cell means of the eval.h5 at path (serial read; MPI need
 * not be initialised), the results table. Compact (all_metrics 0): token
 * accuracy, rows = test languages, columns = the four criteria, cells
 * "unedited -> edited (all languages) [lo,hi] n". With all_metrics: one block
 * per criterion and metric (the run's eval.metrics): rows = the unedited
 * model (baseline), the edit made in all languages, and the edit made
 * in one language ("each", if evaluated); columns = test languages; each
 * cell "mean [lo,hi] n"; then generality on the records whose rephrase
 * equals src. Returns 0, or -1 with err naming the file and dataset. */
int eval_table_print(const char *path, int all_metrics, FILE *out, lafn_err *err);

#endif
