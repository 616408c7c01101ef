/* driver_cost: the cost estimate of a plan — facts x languages x prompts x tokens, passes and FLOPs per stage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "edit/edit_optimise.h"
#include "facts/facts.h"
#include "formats/gguf.h"
#include "stage/stage.h"
#include "tokenizer/tokenizer.h"

/* Nominal sgemm rate of one rank, a rough guide (docs/DESIGN.md §6 "OpenBLAS kernel": this machine's Zen kernel is faster). */
#define COST_GFLOPS_PER_RANK 40.0

/* What the selected facts weigh, counted with the model's tokenizer. */
typedef struct {
    size_t n_facts, n_sides, n_prompts;
    size_t prompt_tokens;   /* over every locating/editing prompt, BOS included */
    size_t target_tokens;   /* sep + alt, once per prompt */
    size_t src_tokens, alt_tokens; /* src and its target once per (fact, language) */
    double layer_params;    /* weights of the decoder layers (0 if unknown) */
    double d_model, vocab;
} cost_counts;

int driver_load_facts(const lafn_config *cfg, facts_set *set, lafn_err *err) {
    const char *format, *path, *para;
    char *const *codes;
    const int64_t *range, *idx;
    size_t n_codes, n_range, n_idx;
    if (config_get_string(cfg, "data.format", &format, err) || config_get_string(cfg, "data.path", &path, err) ||
        config_get_string(cfg, "data.paraphrases", &para, err) ||
        config_get_string_list(cfg, "languages.codes", &codes, &n_codes, err) ||
        config_get_int_list(cfg, "data.fact_range", &range, &n_range, err) ||
        config_get_int_list(cfg, "data.facts", &idx, &n_idx, err))
        return -1;
    size_t *list = n_idx ? malloc(n_idx * sizeof *list) : NULL;
    if (n_idx && !list) return lafn_err_set(err, "out of memory");
    for (size_t i = 0; i < n_idx; i++) list[i] = (size_t)idx[i];
    facts_opts o = {.lang_codes = (const char *const *)codes, .n_lang_codes = n_codes,
                    .first = n_range == 2 ? (size_t)range[0] : 0,
                    .count = n_range == 2 ? (size_t)(range[1] - range[0]) : 0,
                    .indices = list, .n_indices = n_idx, .on_error = FACTS_ON_ERROR_SKIP};
    FILE *quiet = fopen("/dev/null", "w");
    o.log = quiet;
    int rc = facts_load_data(format, path, para[0] ? para : NULL, &o, set, NULL, err);
    if (quiet) fclose(quiet);
    free(list);
    return rc;
}

/* Opens the model's tokenizer (GGUF or Hugging Face folder) and, for GGUF, counts the layer weights. */
static int cost_tokenizer(const char *path, tokenizer **tok, gguf_file **g, cost_counts *c, lafn_err *err) {
    size_t n = strlen(path);
    if (n < 5 || strcmp(path + n - 5, ".gguf") != 0) return tokenizer_from_hf_folder(tok, path, err);
    if (gguf_open(g, path, err) != 0 || tokenizer_from_gguf(tok, *g, err) != 0) return -1;
    for (size_t i = 0; i < gguf_n_tensors(*g); i++) {
        const gguf_tensor *t = gguf_tensor_at(*g, i);
        if (strncmp(t->name, "blk.", 4) == 0) c->layer_params += (double)t->n_elements;
        if (strcmp(t->name, "token_embd.weight") == 0) {
            c->d_model = (double)t->ne[0];
            c->vocab = (double)t->ne[1];
        }
    }
    return 0;
}

/* Adds one (fact, language)'s prompts to c. */
static int cost_side(const tokenizer *tok, const facts_prompt_set *ps, cost_counts *c, lafn_err *err) {
    for (size_t k = 0; k < ps->n_prompts; k++) {
        stage_sequence s;
        if (stage_sequence_build(tok, ps->lang, ps->prompts[k], ps->target, &s, err) != 0) return -1;
        c->n_prompts++;
        c->prompt_tokens += s.n_prompt;
        c->target_tokens += s.n_target;
        if (k == 0) {
            c->src_tokens += s.n_prompt;
            c->alt_tokens += s.n_target;
        }
        stage_sequence_free(&s);
    }
    c->n_sides++;
    return 0;
}

static int cost_count(const lafn_config *cfg, cost_counts *c, lafn_err *err) {
    const char *model_path;
    facts_set set = {0};
    tokenizer *tok = NULL;
    gguf_file *g = NULL;
    int rc = -1;
    if (config_get_string(cfg, "model.path", &model_path, err) || driver_load_facts(cfg, &set, err) ||
        cost_tokenizer(model_path, &tok, &g, c, err))
        goto fail;
    c->n_facts = set.n_facts;
    for (size_t f = 0; f < set.n_facts; f++) {
        facts_edit_view v;
        if (facts_edit_view_build(&set.facts[f], &v, err) != 0) goto fail;
        int bad = 0;
        for (size_t l = 0; !bad && l < v.n_langs; l++) bad = cost_side(tok, &v.langs[l], c, err);
        facts_edit_view_free(&v);
        if (bad) goto fail;
    }
    rc = 0;
fail:
    tokenizer_free(tok);
    if (g) gguf_close(g);
    facts_set_free(&set);
    return rc;
}

/* GFLOP of `tokens` forward tokens with `logits` scored positions (backward counted by the caller as 2x). */
static double cost_gflop(const cost_counts *c, double tokens, double logits) {
    return (2.0 * c->layer_params * tokens + 2.0 * c->d_model * c->vocab * logits) / 1e9;
}

/* Prints one stage's line and returns its GFLOP; a backward to activations (no weight gradients) costs about one forward. */
static double cost_line(FILE *out, const char *stage, double fwd, double bwd, double tokens, double logits,
                        const cost_counts *c) {
    double gf = cost_gflop(c, tokens, logits) * (1.0 + (fwd > 0 ? bwd / fwd : 0));
    fprintf(out, "  %-7s %10.0f forward, %10.0f backward passes over %12.0f tokens", stage, fwd, bwd, tokens);
    if (c->layer_params > 0) fprintf(out, "  ~%9.1f GFLOP", gf);
    fprintf(out, "\n");
    return gf;
}

/* The paraphrase stage's line: decoding work per (fact, language), on its own generator (no GFLOP estimate). */
static void cost_paraphrase(const driver_plan *p, const cost_counts *c, FILE *out) {
    const char *method = "";
    int64_t cand = 0, beams = 0, max_new = 0, count = 0;
    config_get_string(&p->cfg, "paraphrase.method", &method, NULL);
    config_get_int(&p->cfg, "paraphrase.candidates", &cand, NULL);
    config_get_int(&p->cfg, "paraphrase.n_beams", &beams, NULL);
    config_get_int(&p->cfg, "paraphrase.max_new_tokens", &max_new, NULL);
    config_get_int(&p->cfg, "paraphrase.count", &count, NULL);
    int beam = !strcmp(method, "beam");
    fprintf(out, "  %-7s %zu (fact, language) pairs x %s%lld, up to %lld new tokens each: at most %.0f generated "
                 "tokens, plus the prefill of the few-shot prompts; up to %lld more prompts per pair in probe and edit\n",
            "paraphrase", c->n_sides, beam ? "beams " : "samples ", (long long)(beam ? beams : cand), (long long)max_new,
            (double)c->n_sides * (double)(beam ? beams : cand) * (double)max_new, (long long)count);
}

int driver_cost_print(const driver_plan *p, FILE *out, lafn_err *err) {
    cost_counts c = {0};
    if (cost_count(&p->cfg, &c, err) != 0) return -1;
    const char *score, *edit_sets, *mode;
    int64_t ig_steps, batch, each_max;
    edit_hparams h;
    if (config_get_string(&p->cfg, "probe.score", &score, err) || config_get_int(&p->cfg, "probe.steps", &ig_steps, err) ||
        edit_hparams_from_config(&p->cfg, &h, err) || config_get_string(&p->cfg, "edit.mode", &mode, err) ||
        config_get_int(&p->cfg, "edit.batch_size", &batch, err) ||
        config_get_string(&p->cfg, "eval.edit_sets", &edit_sets, err) ||
        config_get_int(&p->cfg, "eval.each_max_facts", &each_max, err))
        return -1;
    double n_lang = c.n_facts ? (double)c.n_sides / (double)c.n_facts : 0, prompts = (double)c.n_prompts;
    double tok = (double)(c.prompt_tokens + c.target_tokens), tgt = (double)c.target_tokens;
    fprintf(out, "\ncost estimate: %zu facts x %.1f languages = %zu (fact, language) pairs; %zu prompts "
                 "(src + paraphrases), %zu prompt + %zu target tokens\n",
            c.n_facts, n_lang, c.n_sides, c.n_prompts, c.prompt_tokens, c.target_tokens);
    int grad = strcmp(score, "grad_x_act") == 0, ig = strcmp(score, "integrated_gradients") == 0;
    double passes = ig ? (double)ig_steps : 1.0, total = 0;
    if (p->stage_on[DRIVER_PARAPHRASE]) cost_paraphrase(p, &c, out);
    if (p->stage_on[DRIVER_PROBE])
        total += cost_line(out, "probe", prompts * passes, (grad || ig) ? prompts * passes : 0,
                           (grad || ig ? tok : (double)c.prompt_tokens) * passes, grad || ig ? tgt * passes : 0, &c);
    if (p->stage_on[DRIVER_LOCATE]) fprintf(out, "  %-7s reads probe.h5; no model passes\n", "locate");
    if (p->stage_on[DRIVER_EDIT]) {
        const char *baseline = stage_edit_baseline(&p->cfg);
        double rounds = (double)h.steps;
        total += cost_line(out, "edit", prompts * rounds, prompts * rounds, tok * rounds, tgt * rounds, &c);
        fprintf(out, "          (upper bound: %s%s = %d Adam steps per %s over all layers; early stop, the KL prompts and reuse of the layers below the edit not counted)\n",
                baseline ? baseline : "edit", baseline ? ".num_steps" : ".steps", h.steps,
                strcmp(mode, "batch") == 0 ? "batch" : "fact");
    }
    if (p->stage_on[DRIVER_EVAL]) {
        double sets = strcmp(edit_sets, "each") == 0
                          ? 1.0 + n_lang * ((double)each_max < (double)c.n_facts ? (double)each_max / (double)c.n_facts : 1.0)
                          : 2.0;
        double per = 4.0 * ((double)c.alt_tokens + (double)c.n_sides); /* 4 criteria, one prefix per target token + 1 */
        double etok = sets * 4.0 * (double)(c.src_tokens + c.alt_tokens) * ((double)c.alt_tokens / (double)(c.n_sides ? c.n_sides : 1) + 1);
        total += cost_line(out, "eval", sets * per, 0, etok, sets * per, &c);
        fprintf(out, "          (unedited + edited model, 4 criteria, src-sized questions assumed; edit sets '%s')\n",
                edit_sets);
    }
    if (c.layer_params > 0 && p->ranks > 0)
        fprintf(out, "  total   ~%.1f GFLOP: about %.1f min on %lld rank(s) at a nominal %.0f GFLOP/s each "
                     "(a conservative rate; lafn doctor names the kernel in use), plus model loading\n",
                total, total / (COST_GFLOPS_PER_RANK * (double)p->ranks) / 60.0, (long long)p->ranks, COST_GFLOPS_PER_RANK);
    return 0;
}
