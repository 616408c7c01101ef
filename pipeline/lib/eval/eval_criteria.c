/* eval_criteria: the four criteria (reliability, generality, locality, portability) of one fact in one test language. */
#include "eval/stage_eval_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/metrics.h"

const char *const eval_criterion_names[EVAL_N_CRIT] = {"reliability", "generality", "locality", "portability"};
const char *const eval_criterion_easyedit[EVAL_N_CRIT] = {"rewrite_acc", "rephrase_acc", "locality", "portability"};
const char *const eval_metric_names[EVAL_N_METRIC] = {"token_em", "f1", "em", "f1_harmonic"};
const char *const eval_metric_methods[EVAL_N_METRIC] = {
    "share of target tokens whose teacher-forced argmax (prompt + sep + target) equals the target token "
    "(EasyEdit token_em); locality: share of loc_ans positions whose argmax is unchanged by the edit",
    "Bi-ZsRE/MzsRE evaluate.py F1 = |common|^2 / (|answer| |target|) (precision x recall) over the model "
    "tokenizer's ids (multisets) of the decoded answer and target texts re-encoded without BOS; the answer is "
    "the argmax after each prefix prompt, prompt + sep + decode(target[:1]), ...; locality compares the edited "
    "answer with the unedited one",
    "1 iff the decoded answer text equals the decoded target text (leading white space removed); locality: "
    "edited answer text equals the unedited one",
    "harmonic F1 2PR/(P+R) over the same token-id multisets (not the benchmarks' F1; reported beside it)",
};

/* F1/EM/harmonic F1 of answer text a against reference text b, as evaluate.py: both re-encoded. */
static int f1_em_texts(const tokenizer *t, const char *a, const char *b, double *out, lafn_err *err) {
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    if (eval_encode(t, a, 0, &ia, &na, err) != 0) return -1;
    if (eval_encode(t, b, 0, &ib, &nb, err) != 0) { free(ia); return -1; }
    metrics_f1_em r = metrics_bizsre_f1_em(ia, na, ib, nb, a, b);
    free(ia);
    free(ib);
    if (isnan(r.f1)) return lafn_err_set(err, "out of memory scoring '%.40s'", a);
    out[EVAL_F1] = r.f1;
    out[EVAL_EM] = r.em;
    out[EVAL_F1_HARMONIC] = r.f1_harmonic;
    return 0;
}

int eval_pred_scores(const tokenizer *t, const eval_pred *p, double *out, lafn_err *err) {
    out[EVAL_TOKEN_EM] = metrics_token_accuracy(p->tf, p->target, p->n_target);
    return f1_em_texts(t, p->answer_text, p->target_text, out, err);
}

int eval_pred_unchanged(const tokenizer *t, const eval_pred *pre, const eval_pred *post, double *out,
                        lafn_err *err) {
    if (pre->n_target != post->n_target)
        return lafn_err_set(err, "locality: %zu target tokens before the edit, %zu after", pre->n_target,
                            post->n_target);
    out[EVAL_TOKEN_EM] = metrics_token_accuracy(post->tf, pre->tf, pre->n_target);
    return f1_em_texts(t, post->answer_text, pre->answer_text, out, err);
}

/* Fills the pre/post rows of criterion c from its predictions. */
static int score_rows(const tokenizer *t, int c, const eval_pred *a, const eval_pred *b, double *pre, double *post,
                      lafn_err *err) {
    double *row_pre = pre + c * EVAL_N_METRIC, *row_post = post + c * EVAL_N_METRIC;
    int rc;
    if (c == EVAL_LOCALITY)
        rc = eval_pred_unchanged(t, a, a, row_pre, err) || eval_pred_unchanged(t, a, b, row_post, err);
    else
        rc = eval_pred_scores(t, a, row_pre, err) || eval_pred_scores(t, b, row_post, err);
    return rc ? lafn_err_wrap(err, "%s", eval_criterion_names[c]) : 0;
}

int eval_fact_lang(eval_scorer *s, const facts_record *rec, const char *lang, const edit_cache *cache, double *pre,
                   double *post, int32_t *fired, int32_t *rephrase_is_src, lafn_err *err) {
    for (int i = 0; i < EVAL_N_VALUES; i++) pre[i] = post[i] = NAN;
    for (int c = 0; c < EVAL_N_CRIT; c++) fired[c] = -1;
    *rephrase_is_src = 0;
    const facts_side *side = facts_record_side(rec, lang);
    const facts_eval *ev = facts_record_eval(rec, lang);
    if (!side || !ev) return 0;
    *rephrase_is_src = ev->rephrase && !strcmp(ev->rephrase, side->src);
    const char *prompt[EVAL_N_CRIT] = {side->src, ev->rephrase, ev->loc, ev->port_q};
    const char *target[EVAL_N_CRIT] = {side->alt, side->alt, ev->loc_ans, ev->port_a};
    const char *p[EVAL_N_CRIT], *t[EVAL_N_CRIT];
    int crit[EVAL_N_CRIT];
    size_t n = 0;
    for (int c = 0; c < EVAL_N_CRIT; c++)
        if (s->criteria[c] && prompt[c] && target[c] && prompt[c][0] && target[c][0]) {
            p[n] = prompt[c];
            t[n] = target[c];
            crit[n++] = c;
        }
    if (n == 0) return 0;
    eval_pred a[EVAL_N_CRIT], b[EVAL_N_CRIT];
    if (eval_predict_batch(s, lang, n, p, t, cache, a, b, err) != 0) return lafn_err_wrap(err, "fact %s", rec->id);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = score_rows(s->m->tok, crit[i], &a[i], &b[i], pre, post, err);
        fired[crit[i]] = b[i].fired;
        eval_pred_free(&a[i]);
        eval_pred_free(&b[i]);
    }
    return rc ? lafn_err_wrap(err, "fact %s", rec->id) : 0;
}
