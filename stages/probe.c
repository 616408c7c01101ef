/* lafn-probe: per-prompt FFN neuron scores of every fact (the first half of locating) into probe.h5. */
#include "stage/stage.h"
#include "probe/stage_probe.h"

int main(int argc, char **argv) { return stage_main(argc, argv, "lafn-probe", stage_probe_run); }
