/* stage_paraphrase_fact: the paraphrase knobs, and one fact's generation — each language's prompt decoded on the KV cache (seeded streams or beams), its candidates judged. */
#include "paraphrase/paraphrase_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "engine/engine_kv.h"

static const char *const stop_newline[] = {"\n"};

int paraphrase_opts_from_config(const lafn_config *cfg, paraphrase_opts *o, lafn_err *err) {
    const char *method = "";
    int64_t count = 0, cand = 0, max_new = 0, beams = 0, seed = 0;
    double temp = 0, top_p = 0;
    if (config_get_string(cfg, "paraphrase.method", &method, err) || config_get_int(cfg, "paraphrase.count", &count, err) ||
        config_get_int(cfg, "paraphrase.candidates", &cand, err) ||
        config_get_int(cfg, "paraphrase.max_new_tokens", &max_new, err) ||
        config_get_int(cfg, "paraphrase.n_beams", &beams, err) || config_get_int(cfg, "paraphrase.seed", &seed, err) ||
        config_get_float(cfg, "paraphrase.temperature", &temp, err) ||
        config_get_float(cfg, "paraphrase.top_p", &top_p, err) ||
        config_get_float(cfg, "paraphrase.max_similarity", &o->filter.max_similarity, err) ||
        config_get_float(cfg, "paraphrase.script_share", &o->filter.script_share, err) ||
        config_get_float(cfg, "paraphrase.min_length_ratio", &o->filter.min_length_ratio, err) ||
        config_get_float(cfg, "paraphrase.max_length_ratio", &o->filter.max_length_ratio, err) ||
        config_get_string_list(cfg, "paraphrase.languages", &o->languages, &o->n_languages, err))
        return -1;
    int beam = !strcmp(method, "beam");
    if (!beam && strcmp(method, "sample") != 0)
        return lafn_err_set(err, "paraphrase.method is '%s': the paraphrase stage generates only with sample or beam",
                            method);
    o->decode = decode_defaults();
    o->decode.mode = beam ? DECODE_BEAM : DECODE_SAMPLE;
    o->decode.max_new_tokens = (int)max_new;
    o->decode.temperature = (float)temp;
    o->decode.top_p = (float)top_p;
    o->decode.n_beams = beam ? (int)beams : 1;
    o->decode.n_return = (int)cand; /* sample: cand draws of one prefilled prompt; beam: the cand best */
    o->decode.stop = stop_newline;
    o->decode.n_stop = 1;
    o->candidates = (size_t)cand;
    o->seed = (uint64_t)seed;
    o->filter.count = (size_t)count;
    return 0;
}

struct paraphrase_work {
    const model *m;
    const paraphrase_opts *o;
    engine_kv *kv;
    size_t max_prompt;            /* the cache holds prompts of up to max_prompt tokens */
    decode_result *out;           /* (candidates) */
    char **texts;                 /* (candidates) the continuations, trimmed */
    uint8_t *finished;            /* (candidates) 0: cut by max_new_tokens */
    paraphrase_verdict *verdicts; /* (candidates) */
};

int paraphrase_work_init(paraphrase_work **out, const model *m, const paraphrase_opts *o, size_t max_prompt,
                         lafn_err *err) {
    paraphrase_work *w = calloc(1, sizeof *w);
    if (!w) return lafn_err_set(err, "paraphrase: out of memory");
    size_t K = o->candidates, slots = o->decode.mode == DECODE_BEAM ? (size_t)o->decode.n_beams : K;
    *w = (paraphrase_work){.m = m, .o = o, .max_prompt = max_prompt};
    w->out = calloc(K, sizeof *w->out);
    w->texts = calloc(K, sizeof *w->texts);
    w->finished = malloc(K);
    w->verdicts = malloc(K * sizeof *w->verdicts);
    int rc = w->out && w->texts && w->finished && w->verdicts
                 ? engine_kv_init(&w->kv, m, slots, max_prompt + (size_t)o->decode.max_new_tokens, err)
                 : lafn_err_set(err, "paraphrase: out of memory for %zu candidates of %zu tokens", K, max_prompt);
    if (rc != 0) {
        paraphrase_work_free(w);
        return lafn_err_wrap(err, "paraphrase: generation work space");
    }
    *out = w;
    return 0;
}

void paraphrase_work_free(paraphrase_work *w) {
    if (!w) return;
    engine_kv_free(w->kv);
    free(w->out);
    free(w->texts);
    free(w->finished);
    free(w->verdicts);
    free(w);
}

/* The prompt of language lang for src, tokenized as a prompt (BOS as the model wants) into *seq. */
static int prompt_sequence(const model *m, const paraphrase_templates *t, const char *lang, const char *src,
                           stage_sequence *seq, lafn_err *err) {
    char *text = paraphrase_prompt(t, lang, src, err);
    if (!text) return -1;
    int rc = stage_sequence_build(m->tok, lang, text, NULL, seq, err);
    free(text);
    return rc;
}

int paraphrase_prompt_tokens(const model *m, const paraphrase_templates *t, const char *lang, const char *src,
                             size_t *n, lafn_err *err) {
    stage_sequence seq;
    if (prompt_sequence(m, t, lang, src, &seq, err) != 0) return -1;
    *n = seq.n_prompt;
    stage_sequence_free(&seq);
    return 0;
}

/* The seed of (fact index, language) streams: candidate k draws from stream k of it (decode_opts.seed). */
static uint64_t stream_seed(uint64_t seed, size_t index, const char *lang) {
    uint64_t s = seed * 0xD6E8FEB86659FD93ull + (uint64_t)index;
    uint64_t h = rng_next(&s);
    for (const char *c = lang; *c; c++) {
        s ^= (uint64_t)(unsigned char)*c;
        h ^= rng_next(&s);
    }
    return h;
}

/* A copy of s without the white space at both ends. */
static char *trimmed(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1])) n--;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

/* Decodes the candidates of one prompt sequence into w->texts and w->finished. */
static int generate(paraphrase_work *w, const stage_sequence *seq, uint64_t seed, lafn_err *err) {
    size_t K = w->o->candidates;
    if (seq->n_prompt > w->max_prompt)
        return lafn_err_set(err, "prompt of %zu tokens, the work space holds %zu", seq->n_prompt, w->max_prompt);
    int len = (int)seq->n_prompt;
    decode_opts d = w->o->decode;
    d.seed = seed;
    engine_batch b = {.n_seq = 1, .seq_len = &len, .tokens = seq->ids};
    if (decode_generate(w->kv, w->m, &b, &d, w->out, err) != 0) return -1;
    int rc = 0;
    for (size_t k = 0; k < K; k++) {
        w->finished[k] = w->out[k].why != DECODE_STOP_MAX;
        if (rc == 0 && !(w->texts[k] = trimmed(w->out[k].text))) rc = lafn_err_set(err, "out of memory");
        decode_result_free(&w->out[k]);
    }
    return rc;
}

/* Generates, judges and adds language l of view v. */
static int fact_language(paraphrase_work *w, const paraphrase_templates *t, const facts_prompt_set *ps, size_t index,
                         size_t slot, paraphrase_batch *b, lafn_err *err) {
    stage_sequence seq;
    size_t K = w->o->candidates;
    if (prompt_sequence(w->m, t, ps->lang, ps->prompts[0], &seq, err) != 0) return -1;
    int rc = generate(w, &seq, stream_seed(w->o->seed, index, ps->lang), err);
    stage_sequence_free(&seq);
    if (rc == 0 && paraphrase_filter(ps->lang, ps->prompts[0], ps->target, w->texts, w->finished, K, &w->o->filter,
                                     w->verdicts, err) < 0)
        rc = -1;
    if (rc == 0) rc = paraphrase_batch_add(b, slot, w->texts, w->verdicts, K, err);
    for (size_t k = 0; k < K; k++) {
        free(w->texts[k]);
        w->texts[k] = NULL;
    }
    return rc;
}

/* 1 if the knobs ask for paraphrases of language lang, a canonical code (every language when paraphrase.languages
 * is []; its codes may be aliases such as cs for cz). */
static int generates(const paraphrase_opts *o, const char *lang) {
    for (size_t i = 0; i < o->n_languages; i++) {
        const facts_lang_info *info = facts_lang_find(o->languages[i]);
        if (info && !strcmp(info->code, lang)) return 1;
    }
    return o->n_languages == 0;
}

int paraphrase_fact(paraphrase_work *w, const paraphrase_templates *t, const facts_edit_view *v, size_t index,
                    const int *lang_slot, paraphrase_batch *b, lafn_err *err) {
    if (paraphrase_batch_begin(b, (int64_t)index, err) != 0) return -1;
    for (size_t l = 0; l < v->n_langs; l++) {
        int rc = generates(w->o, v->langs[l].lang)
                     ? fact_language(w, t, &v->langs[l], index, (size_t)lang_slot[l], b, err)
                     : paraphrase_batch_add(b, (size_t)lang_slot[l], NULL, NULL, 0, err);
        if (rc != 0) return lafn_err_wrap(err, "fact '%s', language %s", v->id, v->langs[l].lang);
    }
    paraphrase_batch_end(b);
    return 0;
}
