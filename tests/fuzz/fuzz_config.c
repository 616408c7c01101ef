/* fuzz_config: a pipeline file and command-line overrides, checked, resolved, overridden and printed back. */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_util.h"

/* Input: the pipeline file, then NUL-separated overrides ("section.key=value"). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t pos = 0, len = 0, n = 0;
    const uint8_t *part = NULL;
    fuzz_next_part(data, size, &pos, &part, &len);
    const char *path = fuzz_write_file(0, "pipeline.cfg", part, len);
    char *over[8];
    while (n < 8 && fuzz_next_part(data, size, &pos, &part, &len)) {
        if (!(over[n] = strndup((const char *)part, len))) abort();
        n++;
    }
    lafn_config cfg;
    lafn_err err;
    config_check(path, &err);
    if (config_load(&cfg, path, &err) == 0) {
        if (n > 0) config_override(&cfg, over[0], &err);
        config_override_all(&cfg, over, n, &err);
        free(config_print_string(&cfg));
        config_at_default(&cfg, "locate.threshold");
    }
    config_free(&cfg);
    for (size_t i = 0; i < n; i++) free(over[i]);
    return 0;
}
