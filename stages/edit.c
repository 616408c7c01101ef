/* lafn-edit: optimise the update values of every fact's located neurons (locate.h5) into edit.h5. */
#include "stage/stage.h"
#include "edit/stage_edit.h"

int main(int argc, char **argv) { return stage_main(argc, argv, "lafn-edit", stage_edit_run); }
