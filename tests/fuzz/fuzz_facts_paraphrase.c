/* fuzz_facts_paraphrase: a paraphrase file applied to a fixed two-fact set (matched by id and by index), then the set used. */
#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"
#include "fuzz_util.h"

/* The set the paraphrases go to: facts "f0" and "f1" in en and zh. */
static const char base[] =
    "{\"id\": \"f0\", \"langs\": {\"en\": {\"subject\": \"Eiffel Tower\", \"src\": \"The Eiffel Tower is in\", "
    "\"alt\": \"Rome\", \"rephrase\": \"Where is the Eiffel Tower?\", \"loc\": \"The capital of Japan is\", "
    "\"loc_ans\": \"Tokyo\"}, \"zh\": {\"src\": \"埃菲尔铁塔位于\", \"alt\": \"罗马\"}}}\n"
    "{\"id\": \"f1\", \"langs\": {\"en\": {\"src\": \"Mount Fuji is in\", \"alt\": \"Chile\"}}}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *facts = fuzz_write_file(0, "facts.jsonl", (const uint8_t *)base, strlen(base));
    const char *para = fuzz_write_file(1, "paraphrases.jsonl", data, size);
    facts_opts opts = {.on_error = FACTS_ON_ERROR_SKIP, .log = fuzz_devnull()};
    facts_set set;
    facts_para_stats stats;
    lafn_err err;
    if (facts_load_jsonl(facts, NULL, &set, &err)) abort(); /* the fixed set must load */
    facts_load_paraphrases(para, &set, &opts, &stats, &err);
    fuzz_use_facts(&set);
    facts_set_free(&set);
    return 0;
}
