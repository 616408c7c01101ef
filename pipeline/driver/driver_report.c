/* driver_report: `lafn report` — runs analysis/report.py, which executes the analysis notebooks on run folders into one HTML report. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

int driver_report(int argc, char **argv) {
    static const char script[] = LAFN_SOURCE_DIR "/analysis/report.py";
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "lafn report: %s: %s (the analysis notebooks live in the source tree this lafn was built from)\n",
                script, strerror(errno));
        return 1;
    }
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) {
        fprintf(stderr, "lafn report: out of memory\n");
        return 1;
    }
    args[0] = "python3";
    args[1] = (char *)script;
    for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
    execvp(args[0], args);
    fprintf(stderr, "lafn report: cannot run python3: %s (install python3; scripts/setup.sh --tests installs the "
                    "modules the report needs)\n", strerror(errno));
    free(args);
    return 1;
}
