/* lafn-paraphrase: paraphrases of src per fact and language generated from few-shot templates and filtered, before probe, into paraphrase.h5. */
#include "paraphrase/paraphrase.h"
#include "stage/stage.h"

int main(int argc, char **argv) { return stage_main(argc, argv, "lafn-paraphrase", stage_paraphrase_run); }
