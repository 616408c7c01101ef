/* driver_ask: `lafn ask` — greedy answers of the model to prompts, all decoded at once on the KV cache, with their log-probabilities (RUN_DIR FACT: driver_ask_run.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "driver.h"
#include "engine/decode.h"
#include "engine/engine_kv.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

enum { ASK_MAX_PROMPT_TOKENS = 448, ASK_MAX_NEW_TOKENS = 16, ASK_MAX_PROMPTS = 256 };

/* The questions: language label and prompt of each (pointers into argv or into owned lines). */
typedef struct {
    int n;
    const char *lang[ASK_MAX_PROMPTS], *prompt[ASK_MAX_PROMPTS];
    char *owned[ASK_MAX_PROMPTS]; /* the file's lines */
} ask_list;

static int ask_add(ask_list *q, const char *lang, const char *prompt, char *owned, lafn_err *err) {
    if (q->n == ASK_MAX_PROMPTS) {
        free(owned);
        return lafn_err_set(err, "more than %d prompts; ask them in several calls", ASK_MAX_PROMPTS);
    }
    q->lang[q->n] = lang, q->prompt[q->n] = prompt, q->owned[q->n++] = owned;
    return 0;
}

/* Reads every "lang<TAB>prompt" line of a TSV file (# starts a comment). */
static int ask_file(ask_list *q, const char *path, lafn_err *err) {
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
        char *copy = strdup(line);
        if (!copy) {
            status = lafn_err_set(err, "%s:%d: out of memory", path, line_no);
            break;
        }
        copy[tab - line] = '\0';
        status = ask_add(q, copy, copy + (tab - line) + 1, copy, err);
    }
    fclose(f);
    return status;
}

/* Prints text with control characters as escapes, so each answer stays on its line. */
static void put_escaped(const char *text) {
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c == '\n') fputs("\\n", stdout);
        else putchar(*c < 0x20 || *c == 0x7f ? '?' : *c);
}

/* Prints "[lang] prompt → answer" with the answer's per-token log-probabilities. */
static void ask_print(const model *m, const char *lang, const char *prompt, const decode_result *r) {
    printf("[%s] %s →", lang, prompt);
    put_escaped(r->text);
    printf("\n      log p(answer) = %.3f; per token:", r->score);
    for (size_t i = 0; i < r->n; i++) {
        char *piece = tokenizer_decode(m->tok, &r->ids[i], 1, NULL);
        printf(" '");
        put_escaped(piece ? piece : "?");
        printf("' %.3f", r->logp[i]);
        free(piece);
    }
    printf("\n");
}

/* Answers every question greedily in one batch (up to a newline or ASK_MAX_NEW_TOKENS tokens). */
static int ask_all(const model *m, const ask_list *q, lafn_err *err) {
    static int32_t ids[ASK_MAX_PROMPTS * ASK_MAX_PROMPT_TOKENS];
    int len[ASK_MAX_PROMPTS], status = 0, longest = 0;
    size_t off = 0;
    for (int i = 0; i < q->n; i++) {
        size_t n = 0;
        if (tokenizer_encode(m->tok, q->prompt[i], strlen(q->prompt[i]), tokenizer_adds_bos(m->tok), ids + off,
                             ASK_MAX_PROMPT_TOKENS, &n, err) != 0)
            return -1;
        if (n > ASK_MAX_PROMPT_TOKENS)
            return lafn_err_set(err, "prompt '%.60s…' has %zu tokens; at most %d are allowed", q->prompt[i], n,
                                ASK_MAX_PROMPT_TOKENS);
        len[i] = (int)n, off += n;
        longest = len[i] > longest ? len[i] : longest;
    }
    static const char *const newline[] = {"\n"};
    decode_opts o = decode_defaults();
    o.max_new_tokens = ASK_MAX_NEW_TOKENS, o.stop = newline, o.n_stop = 1;
    engine_batch b = {.n_seq = q->n, .seq_len = len, .tokens = ids};
    decode_result out[ASK_MAX_PROMPTS];
    engine_kv *kv = NULL;
    if (engine_kv_init(&kv, m, (size_t)q->n, (size_t)longest + ASK_MAX_NEW_TOKENS, err) ||
        decode_generate(kv, m, &b, &o, out, err))
        status = -1;
    for (int i = 0; status == 0 && i < q->n; i++) {
        ask_print(m, q->lang[i], q->prompt[i], &out[i]);
        decode_result_free(&out[i]);
    }
    engine_kv_free(kv);
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
    ask_list *q = calloc(1, sizeof *q);
    int status = q ? 0 : lafn_err_set(&err, "out of memory");
    if (status == 0 && questions) status = ask_file(q, questions, &err);
    for (int i = first_prompt; status == 0 && i < argc; i++) status = ask_add(q, "--", argv[i], NULL, &err);
    if (status == 0) status = model_load(&m, model_path, MPI_COMM_NULL, &err);
    if (status == 0) {
        printf("model: %s (%s, %.1f MB, sha256 %.16s…)\n\n", m->path, m->name, m->file_bytes / 1e6, m->sha256);
        status = ask_all(m, q, &err);
    }
    for (int i = 0; q && i < q->n; i++) free(q->owned[i]);
    free(q);
    model_free(m);
    if (status != 0) {
        fprintf(stderr, "lafn ask: %s\n", err.msg);
        return 1;
    }
    return 0;
}
