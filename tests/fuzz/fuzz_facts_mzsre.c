/* fuzz_facts_mzsre: MzsRE pair files (en-zh and en-de) merged into one fact set, then used as the stages use it. */

#include "facts/facts.h"
#include "fuzz_util.h"

/* Input: mzsre_dev500_enzh.json, then NUL and mzsre_dev500_ende.json (optional). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const files[] = {"mzsre_dev500_enzh.json", "mzsre_dev500_ende.json"};
    fuzz_write_parts(data, size, files, 2);
    facts_opts opts = {.on_error = FACTS_ON_ERROR_SKIP, .log = fuzz_devnull()};
    facts_set set;
    lafn_err err;
    if (facts_load_mzsre(fuzz_dir(), &opts, &set, &err) == 0) {
        fuzz_use_facts(&set);
        facts_set_free(&set);
    }
    return 0;
}
