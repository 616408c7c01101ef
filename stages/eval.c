/* lafn-eval: score every fact pre and post edit in every (edit set, test language) pair into eval.h5, summary.json and summary.csv. */
#include "stage/stage.h"
#include "eval/stage_eval.h"

int main(int argc, char **argv) { return stage_main(argc, argv, "lafn-eval", stage_eval_run); }
