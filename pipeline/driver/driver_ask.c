/* driver_ask: `lafn ask` — greedy answers of the model to prompts, with their log-probabilities (RUN_DIR FACT: driver_ask_run.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "driver.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

enum { ASK_MAX_PROMPT_TOKENS = 448, ASK_MAX_NEW_TOKENS = 16 };

/* Answers one prompt and prints "[lang] prompt → answer" with per-token log-probs. */
static int ask_one(engine_run *run, const model *m, const char *lang, const char *prompt, lafn_err *err) {
    int32_t ids[ASK_MAX_PROMPT_TOKENS];
    size_t n = 0;
    if (tokenizer_encode(m->tok, prompt, strlen(prompt), tokenizer_adds_bos(m->tok), ids,
                         ASK_MAX_PROMPT_TOKENS, &n, err) != 0)
        return -1;
    if (n > ASK_MAX_PROMPT_TOKENS)
        return lafn_err_set(err, "prompt '%.60s…' has %zu tokens; at most %d are allowed", prompt, n,
                            ASK_MAX_PROMPT_TOKENS);
    int32_t out[ASK_MAX_NEW_TOKENS];
    float logp[ASK_MAX_NEW_TOKENS];
    size_t n_out = 0;
    generate_opts go = {.max_new_tokens = ASK_MAX_NEW_TOKENS, .stop_at_newline = 1};
    if (generate_greedy(run, m, ids, n, &go, out, logp, &n_out, err) != 0) return -1;
    char *answer = tokenizer_decode(m->tok, out, n_out, err);
    if (!answer) return -1;
    double total = 0.0;
    for (size_t i = 0; i < n_out; i++) total += logp[i];
    printf("[%s] %s →%s\n      log p(answer) = %.3f; per token:", lang, prompt, answer, total);
    for (size_t i = 0; i < n_out; i++) {
        char *piece = tokenizer_decode(m->tok, &out[i], 1, err);
        printf(" '%s' %.3f", piece ? piece : "?", logp[i]);
        free(piece);
    }
    printf("\n");
    free(answer);
    return 0;
}

/* Answers every "lang<TAB>prompt" line of a TSV file (# starts a comment). */
static int ask_file(engine_run *run, const model *m, const char *path, lafn_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return lafn_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    char line[4096];
    int line_no = 0, status = 0;
    while (status == 0 && fgets(line, sizeof line, f)) {
        line_no++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab[1] == '\0') {
            status = lafn_err_set(err, "%s:%d: expected 'language<TAB>prompt', found '%.60s'", path,
                                  line_no, line);
            break;
        }
        *tab = '\0';
        status = ask_one(run, m, line, tab + 1, err);
    }
    fclose(f);
    return status;
}

int driver_ask(int argc, char **argv) {
    struct stat st;
    if (argc >= 3 && argv[1][0] != '-' && stat(argv[1], &st) == 0 && S_ISDIR(st.st_mode))
        return driver_ask_run(argc, argv);
    const char *model_path = DRIVER_DEFAULT_MODEL, *questions = NULL;
    int first_prompt = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--questions") && i + 1 < argc) questions = argv[++i];
        else { first_prompt = i; break; }
    }
    if (!questions && first_prompt == argc) {
        fprintf(stderr, "usage: lafn ask [--model PATH] (--questions FILE.tsv | PROMPT...)\n"
                        "       lafn ask RUN_DIR FACT [section.key=value ...]\n");
        return 2;
    }
    lafn_err err = {{0}};
    model *m = NULL;
    engine_run *run = NULL;
    int status = model_load(&m, model_path, MPI_COMM_NULL, &err);
    if (status == 0) {
        printf("model: %s (%s, %.1f MB, sha256 %.16s…)\n\n", m->path, m->name, m->file_bytes / 1e6, m->sha256);
        status = engine_run_init(&run, m, ASK_MAX_PROMPT_TOKENS + ASK_MAX_NEW_TOKENS, 1, &err);
    }
    if (status == 0 && questions) status = ask_file(run, m, questions, &err);
    for (int i = first_prompt; status == 0 && i < argc; i++) status = ask_one(run, m, "--", argv[i], &err);
    engine_run_free(run);
    model_free(m);
    if (status != 0) {
        fprintf(stderr, "lafn ask: %s\n", err.msg);
        return 1;
    }
    return 0;
}
