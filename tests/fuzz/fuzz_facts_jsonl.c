/* fuzz_facts_jsonl: a JSON Lines fact file, loaded with malformed records skipped, then used as the stages use it. */

#include "facts/facts.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, "facts.jsonl", data, size);
    facts_opts opts = {.on_error = FACTS_ON_ERROR_SKIP, .log = fuzz_devnull()};
    facts_set set;
    lafn_err err;
    if (facts_load_jsonl(path, &opts, &set, &err) == 0) {
        fuzz_use_facts(&set);
        facts_set_free(&set);
    }
    return 0;
}
