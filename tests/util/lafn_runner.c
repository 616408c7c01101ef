/* lafn_runner: the fault tests' quick pipeline file and the resume counts read from lafn's output. */
#include "lafn_runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

void lafn_runner_tiny_cfg(const char *path, int n_facts, const char *extra) {
    FILE *f = fopen(path, "w");
    int ok = f && fprintf(f,
                          "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
                          "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; fact_range = [0, %d]; };\n"
                          "languages = { codes = [\"en\", \"zh\"]; };\n"
                          "run = { ranks = 2; shard_facts = 1; seed = 7; };\n"
                          "edit = { steps = 10; stop_nll = 0.0; };\n"
                          "eval = { bootstrap_samples = 20; };\n%s",
                          n_facts, extra) > 0;
    if (f && fclose(f) != 0) ok = 0;
    CHECK(ok, "cannot write the pipeline file %s", path);
}

long lafn_runner_resumed(const char *out, const char *stage) {
    char key[64];
    snprintf(key, sizeof key, "\n%s: ", stage);
    for (const char *at = strstr(out, key); at; at = strstr(at + 1, key)) {
        const char *line = at + strlen(key), *facts = strstr(line, " facts on "), *open = strstr(line, " ranks (");
        const char *end = strchr(line, '\n');
        if (facts && open && facts < open && (!end || open < end)) return strtol(open + 8, NULL, 10);
    }
    return -1;
}
