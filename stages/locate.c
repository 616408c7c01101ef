/* lafn-locate: LAFNs of every fact and the atlas, from probe.h5, into locate.h5. */
#include "stage/stage.h"
#include "locate/stage_locate.h"

int main(int argc, char **argv) { return stage_main(argc, argv, "lafn-locate", stage_locate_run); }
