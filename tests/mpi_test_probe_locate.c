/* mpi_test_probe_locate: the probe and locate stages in-process on 2 ranks and on 1 — scores against single-prompt engine runs, CSR layout, LAFNs against D_l recomputed from probe.h5, relaxation, resume. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "h5/h5out.h"
#include "model/model.h"
#include "stage/stage.h"
#include "locate/stage_locate.h"
#include "probe/stage_probe.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define N_FACTS 5
#define MIN_FRACTION 0.1
#define THRESHOLD 0.2
#define PROMPT_FRACTION 0.5 /* with 1.0 the tiny random model has no neuron in both languages' D_l */
#define MODEL "tests/fixtures/models/tiny-gemma3.gguf"
#define DEMO "conf/data/demo_facts.jsonl"

static int rank = 0;
static char tmp[256], cfg_path[300];

/* ---- reading the stage files (serial HDF5, rank 0) ---- */

typedef struct {
    size_t n;
    int64_t *facts;
    hid_t file;
    char path[400];
} h5f;

static int h5f_open(h5f *f, const char *dir, const char *stage) {
    snprintf(f->path, sizeof f->path, "%s/%s.h5", dir, stage);
    f->file = H5Fopen(f->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    lafn_err err = {{0}};
    if (f->file < 0 || h5out_read_all(f->file, f->path, "facts", H5OUT_I64, 0, (void **)&f->facts, &f->n, &err)) {
        CHECK(0, "cannot read %s: %s", f->path, err.msg);
        return -1;
    }
    return 0;
}

static void h5f_close(h5f *f) {
    if (f->file >= 0) H5Fclose(f->file);
    free(f->facts);
}

/* A whole CSR dataset; *off gets n + 1 checked offsets. */
static void *csr(const h5f *f, const char *name, h5out_dtype t, int64_t **off) {
    h5out_dataset d = {name, H5OUT_CSR, t, 0, NULL, NULL};
    void *v = NULL;
    lafn_err err = {{0}};
    CHECK(h5out_read_dataset(f->file, f->path, &d, f->n, &v, off, &err) == 0, "%s", err.msg);
    return v;
}

static size_t row_of(const h5f *f, int64_t fact) {
    for (size_t r = 0; r < f->n; r++)
        if (f->facts[r] == fact) return r;
    return (size_t)-1;
}

/* ---- running the stages ---- */

/* Runs probe or locate into dir with the extra overrides; returns its status, err its message. */
static int call_stage(const char *stage, const char *dir, MPI_Comm comm, FILE *log, const char *extra[], int n_extra,
                      lafn_err *err) {
    char out[400];
    snprintf(out, sizeof out, "run.output_dir=%s", dir);
    char *ov[16];
    int n = 0;
    ov[n++] = out;
    for (int i = 0; i < n_extra && n < 16; i++) ov[n++] = (char *)extra[i];
    return !strcmp(stage, "probe") ? stage_probe_run(cfg_path, ov, n, "mpi_test_probe_locate", comm, log, err)
                                   : stage_locate_run(cfg_path, ov, n, "mpi_test_probe_locate", comm, log, err);
}

/* call_stage, checked to succeed. */
static int run_stage(const char *stage, const char *dir, MPI_Comm comm, FILE *log, const char *extra[], int n_extra) {
    lafn_err err = {{0}};
    int rc = call_stage(stage, dir, comm, log, extra, n_extra, &err);
    CHECK(rc == 0, "%s in %s failed: %s", stage, dir, err.msg);
    return rc;
}

static void write_config(void) {
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "probe_locate", tmp, sizeof tmp);
    snprintf(cfg_path, sizeof cfg_path, "%s/t.cfg", tmp);
    if (rank == 0) {
        FILE *f = fopen(cfg_path, "w");
        fprintf(f, "model = { path = \"%s\"; };\n", MODEL);
        fprintf(f, "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; facts = [0, 1, 2, 3, 4]; };\n");
        fprintf(f, "languages = { codes = [\"en\", \"zh\"]; };\n");
        fprintf(f, "run = { shard_facts = 2; };\n");
        fprintf(f, "probe = { min_fraction = %g; keep_max = 64; };\n", MIN_FRACTION);
        /* every layer (edit_from_depth = 0): the reference sets below are recomputed over all of them; the LAFNs
         * (neuron_set = lafn, not the default random control) are what edit/ must hold unless a test overrides it */
        fprintf(
            f,
            "locate = { threshold = %g; prompt_fraction = %g; language_fraction = 1.0; min_language_fraction = 0.5; "
            "edit_from_depth = 0.0; neuron_set = \"lafn\"; };\n",
            THRESHOLD, PROMPT_FRACTION);
        fclose(f);
    }
}

/* tmp/name into buf (400 bytes). */
static const char *dir_of(char *buf, const char *name) {
    snprintf(buf, 400, "%s/%s", tmp, name);
    return buf;
}

/* ---- probe.h5 ---- */

/* Everything of probe.h5 the checks use. */
typedef struct {
    h5f f;
    int64_t *op, *ol, *ok, *o2;
    int32_t *plang, *ntok, *above, *kprompt, *klayer, *kneuron;
    float *lmax, *kscore, *kact;
    int32_t *layers;
    size_t n_layers;
} probe_file;

static int probe_read(probe_file *p, const char *dir) {
    memset(p, 0, sizeof *p);
    if (h5f_open(&p->f, dir, "probe") != 0) return -1;
    int64_t *o[8] = {0};
    p->plang = csr(&p->f, "prompt/lang", H5OUT_I32, &p->op);
    p->ntok = csr(&p->f, "prompt/n_tokens", H5OUT_I32, &o[0]);
    p->lmax = csr(&p->f, "layer/max", H5OUT_F32, &p->ol);
    p->above = csr(&p->f, "layer/n_above", H5OUT_I32, &o[1]);
    p->kprompt = csr(&p->f, "kept/prompt", H5OUT_I32, &p->ok);
    p->klayer = csr(&p->f, "kept/layer", H5OUT_I32, &o[2]);
    p->kneuron = csr(&p->f, "kept/neuron", H5OUT_I32, &o[3]);
    p->kscore = csr(&p->f, "kept/score", H5OUT_F32, &o[4]);
    p->kact = csr(&p->f, "kept/act_last", H5OUT_F32, &o[5]);
    lafn_err err = {{0}};
    CHECK(h5out_read_all(p->f.file, p->f.path, "global/layers", H5OUT_I32, 0, (void **)&p->layers, &p->n_layers,
                         &err) == 0,
          "%s", err.msg);
    int64_t *fam[6] = {p->op, p->ol, p->ok, p->ok, p->ok, p->ok};
    for (int k = 0; k < 6; k++)
        for (size_t r = 0; o[k] && fam[k] && r <= p->f.n; r++)
            CHECK(o[k][r] == fam[k][r], "CSR family member %d: offsets[%zu] = %lld, expected %lld", k, r,
                  (long long)o[k][r], (long long)fam[k][r]);
    for (int k = 0; k < 6; k++) free(o[k]);
    return p->plang && p->lmax && p->kscore && p->layers ? 0 : -1;
}

static void probe_free(probe_file *p) {
    h5f_close(&p->f);
    void *v[] = {p->op,     p->ol,      p->ok,   p->plang,  p->ntok, p->above, p->kprompt,
                 p->klayer, p->kneuron, p->lmax, p->kscore, p->kact, p->layers};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) free(v[i]);
}

/* Every fact once; kept >= min_fraction * layer max; the max kept; cap respected; order. */
static void check_probe_layout(const probe_file *p, int keep_max) {
    CHECK(p->f.n == N_FACTS, "probe.h5 has %zu facts, expected %d", p->f.n, N_FACTS);
    for (int64_t x = 0; x < N_FACTS; x++) {
        size_t hits = 0;
        for (size_t r = 0; r < p->f.n; r++) hits += p->f.facts[r] == x;
        CHECK(hits == 1, "fact %lld appears %zu times in probe.h5", (long long)x, hits);
    }
    size_t Y = p->n_layers, bad = 0;
    for (size_t r = 0; r < p->f.n; r++) {
        size_t nq = (size_t)(p->op[r + 1] - p->op[r]);
        CHECK((size_t)(p->ol[r + 1] - p->ol[r]) == nq * Y, "fact row %zu: %lld layer entries for %zu prompts x %zu", r,
              (long long)(p->ol[r + 1] - p->ol[r]), nq, Y);
        for (size_t q = 0; q < nq; q++)
            for (size_t y = 0; y < Y; y++) {
                float mx = p->lmax[p->ol[r] + q * Y + y];
                size_t n = 0, has_max = 0;
                for (int64_t e = p->ok[r]; e < p->ok[r + 1]; e++) {
                    if ((size_t)p->kprompt[e] != q || p->klayer[e] != p->layers[y]) continue;
                    n++;
                    has_max += p->kscore[e] == mx;
                    if (!(p->kscore[e] >= (float)MIN_FRACTION * mx && p->kscore[e] > 0) && bad++ < 5)
                        CHECK(0, "row %zu prompt %zu blk.%d.ffn_down neuron %d: kept score %g < %g x max %g", r, q,
                              p->layers[y], p->kneuron[e], p->kscore[e], MIN_FRACTION, mx);
                }
                int32_t above = p->above[p->ol[r] + q * Y + y];
                CHECK(mx <= 0 || has_max >= 1, "row %zu prompt %zu layer %zu: the layer max %g is not kept", r, q, y,
                      mx);
                CHECK(n == (size_t)(above < keep_max ? above : keep_max),
                      "row %zu prompt %zu layer %zu: %zu kept, "
                      "%d above the cut, keep_max %d",
                      r, q, y, n, above, keep_max);
            }
        for (int64_t e = p->ok[r] + 1; e < p->ok[r + 1]; e++) {
            long long a = (long long)p->kprompt[e - 1] << 40 | (long long)p->klayer[e - 1] << 20 | p->kneuron[e - 1];
            long long b = (long long)p->kprompt[e] << 40 | (long long)p->klayer[e] << 20 | p->kneuron[e];
            if (a >= b && bad++ < 5)
                CHECK(0, "row %zu: kept entries not ordered by prompt, layer, neuron at %lld", r, (long long)e);
        }
    }
    CHECK(bad == 0, "%zu kept-neuron violations", bad);
}

enum { SCORE_ABS, SCORE_GRAD, SCORE_IG };

/* Reference of one prompt from single-sequence engine runs (full forwards,
 * no reuse of lower layers): act (Y, F) = a at token `pos`, ref (Y, F) = its
 * score — |a|, a * dlogp/da, or integrated gradients with `steps` steps. */
static int ref_prompt(engine_run *run, const model *m, const stage_sequence *s, const probe_file *p, size_t pos,
                      int kind, int steps, float *ref, float *act) {
    size_t F = (size_t)m->cfg.d_ffn, V = (size_t)m->cfg.vocab, Y = p->n_layers, P = kind == SCORE_ABS ? 0 : s->n_target;
    int len = (int)(s->n_prompt + (kind == SCORE_ABS ? 0 : s->n_target)), lp[64];
    if (P > 64) {
        CHECK(0, "target of %zu tokens: the reference handles at most 64", P);
        return -1;
    }
    float *dl = calloc(P * V + 1, sizeof *dl), *gs = calloc(F, sizeof *gs);
    engine_batch b = {1, &len, s->ids};
    engine_forward_opts o = engine_forward_defaults();
    lafn_err err = {{0}};
    for (size_t k = 0; k < P && k < 64; k++) lp[k] = (int)(s->n_prompt - 1 + k);
    o.logit_pos = lp;
    o.n_logit_pos = (int)P;
    int rc = engine_forward(run, &b, &o, &err);
    for (size_t y = 0; rc == 0 && y < Y; y++)
        memcpy(act + y * F, engine_ffn_act(run, p->layers[y]) + pos * F, F * sizeof *act);
    if (rc == 0 && kind == SCORE_GRAD) {
        engine_nll(engine_logits(run), (int)P, (int)V, s->ids + s->n_prompt, NULL, NULL, dl);
        rc = engine_backward(run, dl, p->layers[0], NULL, &err);
        for (size_t y = 0; rc == 0 && y < Y; y++)
            for (size_t j = 0; j < F; j++)
                ref[y * F + j] = act[y * F + j] * -engine_ffn_act_grad(run, p->layers[y])[pos * F + j];
    }
    for (size_t y = 0; rc == 0 && kind == SCORE_IG && y < Y; y++) {
        memset(gs, 0, F * sizeof *gs);
        for (int k = 1; rc == 0 && k <= steps; k++) {
            o.scale_layer = p->layers[y];
            o.scale_alpha = (float)k / (float)steps;
            rc = engine_forward(run, &b, &o, &err);
            engine_nll(engine_logits(run), (int)P, (int)V, s->ids + s->n_prompt, NULL, NULL, dl);
            if (rc == 0) rc = engine_backward(run, dl, p->layers[y], NULL, &err);
            for (size_t j = 0; rc == 0 && j < F; j++) gs[j] += engine_ffn_act_grad(run, p->layers[y])[pos * F + j];
        }
        for (size_t j = 0; j < F; j++) ref[y * F + j] = act[y * F + j] * -gs[j] / (float)steps;
    }
    for (size_t i = 0; kind == SCORE_ABS && i < Y * F; i++) ref[i] = fabsf(act[i]);
    CHECK(rc == 0, "reference engine run: %s", err.msg);
    free(dl);
    free(gs);
    return rc;
}

/* The subject's last token, found independently: the shortest decoded prefix (after BOS) containing the subject. */
static int ref_subject_pos(const model *m, const stage_sequence *s, const char *prompt, const char *subject,
                           size_t *pos) {
    if (!subject || !strstr(prompt, subject)) return 1;
    int bos = tokenizer_adds_bos(m->tok) && s->ids[0] == tokenizer_bos(m->tok);
    lafn_err err = {{0}};
    for (size_t k = (size_t)bos + 1; k <= s->n_prompt; k++) {
        char *t = tokenizer_decode(m->tok, s->ids + bos, k - (size_t)bos, &err);
        int has = t && strstr(t, subject) != NULL;
        free(t);
        if (has) {
            *pos = k - 1;
            return 0;
        }
    }
    return 1;
}

/* Compares the kept scores and layer maxima of prompt q (fact row r) with ref/act; tracks the worst error. */
static void compare_prompt(const probe_file *p, size_t r, size_t q, size_t F, const float *ref, const float *act,
                           double *worst, char *at, size_t cap) {
    size_t Y = p->n_layers;
    for (size_t y = 0; y < Y; y++) {
        float mx = 0, scale = 1e-6f;
        for (size_t j = 0; j < F; j++) mx = fmaxf(mx, ref[y * F + j]), scale = fmaxf(scale, fabsf(ref[y * F + j]));
        double d = fabs(mx - p->lmax[p->ol[r] + q * Y + y]) / scale;
        if (d > *worst) *worst = d, snprintf(at, cap, "prompt %zu blk.%d.ffn_down max", q, p->layers[y]);
        for (int64_t e = p->ok[r]; e < p->ok[r + 1]; e++) {
            if ((size_t)p->kprompt[e] != q || p->klayer[e] != p->layers[y]) continue;
            d = fabs(ref[y * F + p->kneuron[e]] - p->kscore[e]) / scale;
            if (d > *worst)
                *worst = d,
                snprintf(at, cap, "prompt %zu blk.%d.ffn_down neuron %d score", q, p->layers[y], p->kneuron[e]);
        }
    }
}

/* Fact 0 of probe.h5 in dir against single-prompt engine runs. */
static void check_probe_scores(const char *dir, const char *data, int kind, int steps, int subject, double tol) {
    probe_file p = {.f.file = H5I_INVALID_HID};
    model *m = NULL;
    engine_run *run = NULL;
    facts_set set = {0};
    lafn_err err = {{0}};
    size_t idx[1] = {0}, q = 0;
    facts_opts fo = {.langs = "en,zh", .indices = idx, .n_indices = 1};
    int32_t *fb = NULL, *pos = NULL;
    int64_t *o1 = NULL, *o2 = NULL;
    if (probe_read(&p, dir) != 0) {
        probe_free(&p);
        return;
    }
    fb = csr(&p.f, "prompt/subject_fallback", H5OUT_I32, &o1);
    pos = csr(&p.f, "prompt/position", H5OUT_I32, &o2);
    CHECK(model_load(&m, MODEL, MPI_COMM_NULL, &err) == 0, "%s", err.msg);
    CHECK(facts_load_jsonl(data, &fo, &set, &err) == 0, "%s", err.msg);
    if (!m || set.n_facts != 1 || !fb || !pos) goto done;
    CHECK(engine_run_init(&run, m, 256, 64, &err) == 0, "%s", err.msg);
    size_t r = row_of(&p.f, 0), F = (size_t)m->cfg.d_ffn, Y = p.n_layers;
    float *ref = malloc(Y * F * sizeof *ref), *act = malloc(Y * F * sizeof *act);
    double worst = 0;
    char at[160] = "";
    for (size_t l = 0; run && l < set.facts[0].n_sides; l++) {
        const facts_side *sd = &set.facts[0].sides[l];
        for (size_t k = 0; k <= sd->n_paraphrases; k++, q++) {
            stage_sequence s;
            const char *prompt = k ? sd->paraphrases[k - 1] : sd->src;
            CHECK(stage_sequence_build(m->tok, sd->lang, prompt, kind == SCORE_ABS ? NULL : sd->alt, &s, &err) == 0,
                  "%s", err.msg);
            size_t at_pos = s.n_prompt - 1, sp;
            int fell = subject ? ref_subject_pos(m, &s, prompt, sd->subject, &sp) : 0;
            if (subject && !fell) at_pos = sp;
            CHECK(fb[p.op[r] + q] == fell && (size_t)pos[p.op[r] + q] == at_pos,
                  "prompt %zu '%s': position %d fallback "
                  "%d in probe.h5, expected %zu, %d",
                  q, prompt, pos[p.op[r] + q], fb[p.op[r] + q], at_pos, fell);
            if (ref_prompt(run, m, &s, &p, at_pos, kind, steps, ref, act) == 0)
                compare_prompt(&p, r, q, F, ref, act, &worst, at, sizeof at);
            stage_sequence_free(&s);
        }
    }
    CHECK(q == (size_t)(p.op[r + 1] - p.op[r]), "fact 0: %zu prompts here, %lld in probe.h5", q,
          (long long)(p.op[r + 1] - p.op[r]));
    CHECK(worst < tol,
          "%s: probe scores differ from single-prompt runs: worst error %.3g (of the layer's largest |score|) at %s",
          dir, worst, at);
    printf("%s: scores vs single-prompt engine runs: worst error %.3g of the layer scale (%s)\n", dir, worst, at);
    free(ref);
    free(act);
done:
    free(fb);
    free(pos);
    free(o1);
    free(o2);
    engine_run_free(run);
    facts_set_free(&set);
    model_free(m);
    probe_free(&p);
}

/* probe with other score / position knobs: grad_x_act, integrated gradients, subject position. */
static void test_score_variants(void) {
    const char *grad[] = {"probe.score=grad_x_act"};
    const char *ig[] = {"probe.score=integrated_gradients", "probe.steps=3"};
    char d[400];
    if (run_stage("probe", dir_of(d, "grad"), MPI_COMM_WORLD, NULL, grad, 1) == 0 && rank == 0)
        check_probe_scores(d, DEMO, SCORE_GRAD, 0, 0, 1e-3);
    if (run_stage("probe", dir_of(d, "ig"), MPI_COMM_WORLD, NULL, ig, 2) == 0 && rank == 0)
        check_probe_scores(d, DEMO, SCORE_IG, 3, 0, 1e-3);
    char data[400], path[430];
    snprintf(data, sizeof data, "%s/subject.jsonl", tmp);
    snprintf(path, sizeof path, "data.path=%s", data);
    if (rank == 0) { /* en: the subject is in src and in one paraphrase; zh: in no prompt (fallback) */
        FILE *f = fopen(data, "w");
        fprintf(
            f,
            "{\"id\": \"s0\", \"langs\": {\"en\": {\"subject\": \"Eiffel Tower\", \"src\": \"The Eiffel Tower "
            "is located in the city of\", \"alt\": \"Rome\", \"paraphrases\": [\"That tower stands in\", \"The Eiffel "
            "Tower stands in\"]}, \"zh\": {\"subject\": \"铁塔\", \"src\": \"埃菲尔塔位于\", \"alt\": \"罗马\"}}}\n");
        for (int i = 1; i < N_FACTS; i++)
            fprintf(f,
                    "{\"id\": \"s%d\", \"langs\": {\"en\": {\"subject\": \"Paris\", \"src\": \"Paris is the "
                    "capital of\", \"alt\": \"Spain\"}, \"zh\": {\"subject\": \"巴黎\", \"src\": \"巴黎是\", "
                    "\"alt\": \"西班牙\"}}}\n",
                    i);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const char *subj[] = {"probe.position=subject", path};
    if (run_stage("probe", dir_of(d, "subject"), MPI_COMM_WORLD, NULL, subj, 2) == 0 && rank == 0) {
        check_probe_scores(d, data, SCORE_ABS, 0, 1, 1e-4);
        probe_file p = {.f.file = H5I_INVALID_HID};
        int64_t *fl = NULL;
        size_t n = 0;
        lafn_err err = {{0}};
        if (probe_read(&p, d) == 0)
            CHECK(h5out_read_all(p.f.file, p.f.path, "global/lang_subject_fallbacks", H5OUT_I64, 0, (void **)&fl, &n,
                                 &err) == 0 &&
                      n == 2 && fl[0] == 1 && fl[1] == 1,
                  "subject fallbacks per language: expected en 1 (paraphrase), zh 1 (src); got %lld %lld (%s)",
                  fl && n > 0 ? (long long)fl[0] : -1LL, fl && n > 1 ? (long long)fl[1] : -1LL, err.msg);
        free(fl);
        probe_free(&p);
    }
}

/* ---- locate.h5 against D_l recomputed from probe.h5 ---- */

#define NL 2

/* The reference sets of one fact: in_d[l][layer * F + neuron], mean score per neuron. */
typedef struct {
    int F, L, n_q[NL], n_prompts;
    uint8_t *in_d[NL];
    double *sum; /* Σ kept score over all prompts */
} ref_sets;

/* Active-set variants: threshold of the layer max (default), of the prompt's max over layers, or top_k per layer. */
typedef struct {
    int global;
    int top_k;
} ref_mode;

/* 1 if kept entry e of probe file p is active under the mode. */
static int ref_active(const probe_file *p, size_t r, int64_t e, double thr, ref_mode mode) {
    size_t Y = p->n_layers, q = (size_t)p->kprompt[e], y = 0;
    while (y < Y && p->layers[y] != p->klayer[e]) y++;
    if (!(p->kscore[e] > 0)) return 0;
    if (mode.top_k) { /* rank among the same prompt and layer: higher score, or equal score and lower neuron */
        int better = 0;
        for (int64_t k = p->ok[r]; k < p->ok[r + 1]; k++)
            better += p->kprompt[k] == p->kprompt[e] && p->klayer[k] == p->klayer[e] && p->kscore[k] > 0 &&
                      (p->kscore[k] > p->kscore[e] || (p->kscore[k] == p->kscore[e] && p->kneuron[k] < p->kneuron[e]));
        return better < mode.top_k;
    }
    float mx = p->lmax[p->ol[r] + q * Y + y];
    for (size_t z = 0; mode.global && z < Y; z++) mx = fmaxf(mx, p->lmax[p->ol[r] + q * Y + z]);
    return p->kscore[e] >= (float)thr * mx;
}

static void ref_build(ref_sets *s, const probe_file *p, size_t r, int L, int F, double thr, double pf, ref_mode mode) {
    memset(s, 0, sizeof *s);
    s->F = F;
    s->L = L;
    size_t LF = (size_t)L * F;
    int *cnt[NL];
    s->sum = calloc(LF, sizeof *s->sum);
    for (int l = 0; l < NL; l++) s->in_d[l] = calloc(LF, 1), cnt[l] = calloc(LF, sizeof(int));
    s->n_prompts = (int)(p->op[r + 1] - p->op[r]);
    for (int q = 0; q < s->n_prompts; q++) s->n_q[p->plang[p->op[r] + q]]++;
    for (int64_t e = p->ok[r]; e < p->ok[r + 1]; e++) {
        size_t key = (size_t)p->klayer[e] * F + p->kneuron[e];
        int lang = p->plang[p->op[r] + p->kprompt[e]];
        s->sum[key] += p->kscore[e];
        if (ref_active(p, r, e, thr, mode)) cnt[lang][key]++;
    }
    for (int l = 0; l < NL; l++) {
        int need = (int)ceil(pf * s->n_q[l] - 1e-9);
        for (size_t k = 0; k < LF; k++) s->in_d[l][k] = s->n_q[l] && cnt[l][k] >= (need < 1 ? 1 : need);
        free(cnt[l]);
    }
}

static void ref_free(ref_sets *s) {
    for (int l = 0; l < NL; l++) free(s->in_d[l]);
    free(s->sum);
}

static int ref_nd(const ref_sets *s, size_t key) { return s->in_d[0][key] + s->in_d[1][key]; }

/* Everything of locate.h5 the checks use. */
typedef struct {
    h5f f;
    int64_t *ol, *od, *os, *oe;
    int32_t *layer, *neuron, *nlangs, *dlang, *dlayer, *dneuron, *slayer, *sneuron, *slang, *elayer, *eneuron;
    float *score;
    int32_t *status;
    double *frac;
} locate_file;

static int locate_read(locate_file *x, const char *dir) {
    memset(x, 0, sizeof *x);
    if (h5f_open(&x->f, dir, "locate") != 0) return -1;
    int64_t *o[8] = {0};
    lafn_err err = {{0}};
    size_t n1 = 0, n2 = 0;
    x->layer = csr(&x->f, "lafn/layer", H5OUT_I32, &x->ol);
    x->neuron = csr(&x->f, "lafn/neuron", H5OUT_I32, &o[0]);
    x->score = csr(&x->f, "lafn/score", H5OUT_F32, &o[1]);
    x->nlangs = csr(&x->f, "lafn/n_langs", H5OUT_I32, &o[2]);
    x->dlang = csr(&x->f, "dset/lang", H5OUT_I32, &x->od);
    x->dlayer = csr(&x->f, "dset/layer", H5OUT_I32, &o[3]);
    x->dneuron = csr(&x->f, "dset/neuron", H5OUT_I32, &o[4]);
    x->slang = csr(&x->f, "specific/lang", H5OUT_I32, &x->os);
    x->slayer = csr(&x->f, "specific/layer", H5OUT_I32, &o[5]);
    x->sneuron = csr(&x->f, "specific/neuron", H5OUT_I32, &o[6]);
    x->elayer = csr(&x->f, "edit/layer", H5OUT_I32, &x->oe);
    x->eneuron = csr(&x->f, "edit/neuron", H5OUT_I32, &o[7]);
    CHECK(h5out_read_all(x->f.file, x->f.path, "status", H5OUT_I32, LOCATE_STATUS_LEN, (void **)&x->status, &n1,
                         &err) == 0,
          "%s", err.msg);
    CHECK(h5out_read_all(x->f.file, x->f.path, "language_fraction", H5OUT_F64, 1, (void **)&x->frac, &n2, &err) == 0,
          "%s", err.msg);
    int64_t *fam[8] = {x->ol, x->ol, x->ol, x->od, x->od, x->os, x->os, x->oe};
    for (int k = 0; k < 8; k++)
        for (size_t r = 0; o[k] && fam[k] && r <= x->f.n; r++)
            CHECK(o[k][r] == fam[k][r], "locate CSR family member %d: offsets[%zu] differ", k, r);
    for (int k = 0; k < 8; k++) free(o[k]);
    CHECK(n1 == x->f.n && n2 == x->f.n, "status/language_fraction rows %zu %zu, facts %zu", n1, n2, x->f.n);
    return x->layer && x->status && x->frac && x->dlang ? 0 : -1;
}

static void locate_free(locate_file *x) {
    h5f_close(&x->f);
    void *v[] = {x->ol,      x->od,     x->os,      x->oe,    x->layer,  x->neuron,  x->nlangs, x->dlang,  x->dlayer,
                 x->dneuron, x->slayer, x->sneuron, x->slang, x->elayer, x->eneuron, x->score,  x->status, x->frac};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) free(v[i]);
}

/* D_l of locate.h5 equal the reference; every LAFN is in D_l of enough languages;
 * the LAFNs are the best-ranked eligible neurons; specific sets hold one language. */
static void check_fact_sets(const locate_file *x, size_t r, const ref_sets *s, size_t max_neurons) {
    size_t nd_file = (size_t)(x->od[r + 1] - x->od[r]), nd_ref = 0, LF = (size_t)s->L * s->F;
    for (int l = 0; l < NL; l++)
        for (size_t k = 0; k < LF; k++) nd_ref += s->in_d[l][k];
    CHECK(nd_file == nd_ref, "fact %lld: %zu D_l entries in locate.h5, %zu recomputed", (long long)x->f.facts[r],
          nd_file, nd_ref);
    for (int64_t e = x->od[r]; e < x->od[r + 1]; e++)
        CHECK(s->in_d[x->dlang[e]][(size_t)x->dlayer[e] * s->F + x->dneuron[e]],
              "fact %lld: blk.%d.ffn_down neuron %d "
              "is in D_%d of locate.h5 but not recomputed",
              (long long)x->f.facts[r], x->dlayer[e], x->dneuron[e], x->dlang[e]);
    const int32_t *st = x->status + r * LOCATE_STATUS_LEN;
    int need = (int)ceil(x->frac[r] * NL - 1e-9);
    need = need < 1 ? 1 : need;
    size_t n = (size_t)(x->ol[r + 1] - x->ol[r]);
    CHECK(n == (size_t)st[1] && n <= max_neurons, "fact %lld: %zu LAFNs, status says %d, cap %zu",
          (long long)x->f.facts[r], n, st[1], max_neurons);
    float last = INFINITY;
    for (int64_t e = x->ol[r]; e < x->ol[r + 1]; e++) {
        size_t key = (size_t)x->layer[e] * s->F + x->neuron[e];
        CHECK(ref_nd(s, key) >= need && ref_nd(s, key) == x->nlangs[e],
              "fact %lld: LAFN blk.%d.ffn_down neuron %d "
              "is in %d recomputed D_l (file says %d), needs %d",
              (long long)x->f.facts[r], x->layer[e], x->neuron[e], ref_nd(s, key), x->nlangs[e], need);
        CHECK(fabs(x->score[e] - s->sum[key] / s->n_prompts) <= 1e-5 * (1 + fabs(x->score[e])),
              "fact %lld: LAFN "
              "score %g, recomputed mean %g",
              (long long)x->f.facts[r], x->score[e], s->sum[key] / s->n_prompts);
        CHECK(x->score[e] <= last, "fact %lld: LAFNs not ranked by score", (long long)x->f.facts[r]);
        last = x->score[e];
    }
    if (n == max_neurons) /* cut by the cap: nothing eligible left out ranks above the last one */
        for (size_t k = 0; k < LF; k++)
            if (ref_nd(s, k) >= need && s->sum[k] / s->n_prompts > last * (1 + 1e-5) + 1e-9) {
                int listed = 0;
                for (int64_t e = x->ol[r]; e < x->ol[r + 1]; e++)
                    listed |= (size_t)x->layer[e] * s->F + x->neuron[e] == k;
                CHECK(listed, "fact %lld: eligible neuron %zu with score %g left out", (long long)x->f.facts[r], k,
                      s->sum[k] / s->n_prompts);
            }
    for (int64_t e = x->os[r]; e < x->os[r + 1]; e++) {
        size_t key = (size_t)x->slayer[e] * s->F + x->sneuron[e];
        CHECK(ref_nd(s, key) == 1 && s->in_d[x->slang[e]][key], "fact %lld: language-specific neuron %zu is in %d D_l",
              (long long)x->f.facts[r], key, ref_nd(s, key));
    }
}

static void check_locate_sets(const probe_file *p, const locate_file *x, int L, int F, double pf, size_t max_neurons,
                              ref_mode mode) {
    CHECK(x->f.n == N_FACTS, "locate.h5 has %zu facts", x->f.n);
    for (size_t r = 0; r < x->f.n; r++) {
        size_t pr = row_of(&p->f, x->f.facts[r]);
        CHECK(pr != (size_t)-1 && row_of(&x->f, x->f.facts[r]) == r, "fact %lld missing or twice",
              (long long)x->f.facts[r]);
        if (pr == (size_t)-1) continue;
        ref_sets s;
        ref_build(&s, p, pr, L, F, THRESHOLD, pf, mode);
        check_fact_sets(x, r, &s, max_neurons);
        ref_free(&s);
    }
}

/* ---- the scenarios ---- */

static void check_globals(const probe_file *p, const locate_file *x, int F) {
    lafn_err err = {{0}};
    int64_t *cnt = NULL, *lp = NULL, *lc = NULL, *hist = NULL;
    size_t n = 0, nl = 0, nc = 0, nh = 0;
    CHECK(h5out_read_all(p->f.file, p->f.path, "global/act_count", H5OUT_I64, 0, (void **)&cnt, &n, &err) == 0 &&
              h5out_read_all(p->f.file, p->f.path, "global/lang_prompts", H5OUT_I64, 0, (void **)&lp, &nl, &err) == 0 &&
              h5out_read_all(x->f.file, x->f.path, "global/counts", H5OUT_I64, 0, (void **)&lc, &nc, &err) == 0 &&
              h5out_read_all(x->f.file, x->f.path, "global/lafn_per_layer", H5OUT_I64, 0, (void **)&hist, &nh, &err) ==
                  0,
          "%s", err.msg);
    if (cnt && lp && lc && hist) {
        size_t total = (size_t)p->op[p->f.n], per_lang[NL] = {0}, n_lafn = 0, in_hist = 0;
        for (size_t q = 0; q < total; q++) per_lang[p->plang[q]]++;
        for (size_t y = 0; y < n; y++)
            CHECK(cnt[y] == (int64_t)(total * F), "global/act_count[%zu] = %lld, expected %zu prompts x %d", y,
                  (long long)cnt[y], total, F);
        for (size_t l = 0; l < nl && l < NL; l++)
            CHECK(lp[l] == (int64_t)per_lang[l], "global/lang_prompts[%zu] = %lld, expected %zu", l, (long long)lp[l],
                  per_lang[l]);
        for (size_t r = 0; r < x->f.n; r++) n_lafn += (size_t)x->status[r * LOCATE_STATUS_LEN + 1];
        for (size_t l = 0; l < nh; l++) in_hist += (size_t)hist[l];
        CHECK(lc[0] == N_FACTS && (size_t)lc[4] == n_lafn && in_hist == n_lafn,
              "locate globals: %lld facts, %lld "
              "LAFNs, %zu in the layer histogram; rows hold %zu",
              (long long)lc[0], (long long)lc[4], in_hist, n_lafn);
    }
    free(cnt);
    free(lp);
    free(lc);
    free(hist);
}

/* The LAFN lists (layer, neuron, score) of two locate.h5 files are the same per fact. */
static void compare_lafns(const char *da, const char *db) {
    locate_file a = {.f.file = H5I_INVALID_HID}, b = {.f.file = H5I_INVALID_HID};
    if (locate_read(&a, da) == 0 && locate_read(&b, db) == 0) {
        CHECK(a.f.n == b.f.n, "%zu vs %zu facts", a.f.n, b.f.n);
        size_t diff = 0;
        for (size_t r = 0; r < a.f.n; r++) {
            size_t s = row_of(&b.f, a.f.facts[r]);
            if (s == (size_t)-1) {
                CHECK(0, "fact %lld missing from %s", (long long)a.f.facts[r], db);
                continue;
            }
            size_t na = (size_t)(a.ol[r + 1] - a.ol[r]), nb = (size_t)(b.ol[s + 1] - b.ol[s]);
            CHECK(na == nb, "fact %lld: %zu LAFNs in %s, %zu in %s", (long long)a.f.facts[r], na, da, nb, db);
            for (size_t k = 0; k < na && k < nb; k++)
                diff += a.layer[a.ol[r] + k] != b.layer[b.ol[s] + k] ||
                        a.neuron[a.ol[r] + k] != b.neuron[b.ol[s] + k] || a.score[a.ol[r] + k] != b.score[b.ol[s] + k];
        }
        CHECK(diff == 0, "%zu LAFNs differ between %s and %s", diff, da, db);
    }
    locate_free(&a);
    locate_free(&b);
}

/* threshold_scope = global and top_k against the recomputed sets. */
static void test_active_variants(const char *dir, int L, int F) {
    const char *global[] = {"run.resume=false", "locate.threshold_scope=global"};
    const char *topk[] = {"run.resume=false", "locate.top_k=6"};
    for (int v = 0; v < 2; v++) {
        if (run_stage("locate", dir, MPI_COMM_WORLD, NULL, v ? topk : global, 2) != 0 || rank != 0) continue;
        probe_file p = {.f.file = H5I_INVALID_HID};
        locate_file x = {.f.file = H5I_INVALID_HID};
        if (probe_read(&p, dir) == 0 && locate_read(&x, dir) == 0)
            check_locate_sets(&p, &x, L, F, PROMPT_FRACTION, 32, v ? (ref_mode){0, 6} : (ref_mode){1, 0});
        locate_free(&x);
        probe_free(&p);
    }
    /* edit/ holds the LAFNs by default (checked in main) and the language-specific sets on request */
    const char *spec[] = {"run.resume=false", "locate.neuron_set=language_specific"};
    locate_file x = {.f.file = H5I_INVALID_HID};
    if (run_stage("locate", dir, MPI_COMM_WORLD, NULL, spec, 2) == 0 && rank == 0 && locate_read(&x, dir) == 0) {
        size_t diff = 0;
        for (size_t r = 0; r < x.f.n; r++) {
            diff += x.oe[r + 1] - x.oe[r] != x.os[r + 1] - x.os[r];
            for (int64_t k = 0; k < x.oe[r + 1] - x.oe[r] && k < x.os[r + 1] - x.os[r]; k++)
                diff += x.elayer[x.oe[r] + k] != x.slayer[x.os[r] + k] ||
                        x.eneuron[x.oe[r] + k] != x.sneuron[x.os[r] + k];
        }
        CHECK(diff == 0 && x.oe[x.f.n] > 0,
              "neuron_set = language_specific: edit/ differs from specific/ in %zu places", diff);
    }
    if (rank == 0) locate_free(&x);
}

/* |D_en ∩ D_zh| and |D_en ∪ D_zh| of every fact, recomputed from probe.h5 on rank 0 and broadcast. */
static void count_both_any(const char *dir, int L, int F, size_t *both, size_t *any) {
    memset(both, 0, N_FACTS * sizeof *both);
    memset(any, 0, N_FACTS * sizeof *any);
    probe_file p = {.f.file = H5I_INVALID_HID};
    if (rank == 0 && probe_read(&p, dir) == 0)
        for (size_t r = 0; r < p.f.n && p.f.facts[r] < N_FACTS; r++) {
            ref_sets s;
            ref_build(&s, &p, r, L, F, THRESHOLD, PROMPT_FRACTION, (ref_mode){0, 0});
            for (size_t k = 0; k < (size_t)L * F; k++) {
                both[p.f.facts[r]] += ref_nd(&s, k) == 2;
                any[p.f.facts[r]] += ref_nd(&s, k) >= 1;
            }
            ref_free(&s);
        }
    if (rank == 0) probe_free(&p);
    MPI_Bcast(both, N_FACTS * sizeof *both, MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(any, N_FACTS * sizeof *any, MPI_BYTE, 0, MPI_COMM_WORLD);
}

/* Runs locate with min_neurons = m, language_fraction = start (step 0.1) and the
 * given min_language_fraction; checks, per fact, found / relaxation steps /
 * count against the recomputed sets (2 languages: relaxing means reaching 0.5,
 * the last step even when the 0.1 grid from start passes over it). */
static void check_min_neurons(const char *dir, size_t m, double start, const char *min_lf, const size_t *both,
                              const size_t *any, int *n_relaxed, int *n_missing) {
    char min_n[64], lf[64];
    snprintf(min_n, sizeof min_n, "locate.min_neurons=%zu", m);
    snprintf(lf, sizeof lf, "locate.language_fraction=%g", start);
    const char *ov[] = {"run.resume=false", "locate.max_neurons=100000", min_n, min_lf, lf};
    *n_relaxed = *n_missing = 0;
    if (run_stage("locate", dir, MPI_COMM_WORLD, NULL, ov, 5) != 0 || rank != 0) return;
    int can_relax = strstr(min_lf, "=0.5") != NULL, relax_steps = (int)ceil((start - 0.5) / 0.1 - 1e-9);
    locate_file x = {.f.file = H5I_INVALID_HID};
    int64_t *counts = NULL;
    size_t nc = 0;
    lafn_err err = {{0}};
    if (locate_read(&x, dir) == 0) {
        for (size_t r = 0; r < x.f.n; r++) {
            int64_t f = x.f.facts[r];
            const int32_t *st = x.status + r * LOCATE_STATUS_LEN;
            int at_full = both[f] >= m, want_found = at_full || (can_relax && any[f] >= m),
                want_steps = at_full ? 0 : relax_steps;
            CHECK(st[0] == want_found, "fact %lld: found = %d, expected %d (both %zu, any %zu, min_neurons %zu, %s)",
                  (long long)f, st[0], want_found, both[f], any[f], m, min_lf);
            if (want_found)
                CHECK(st[3] == want_steps && fabs(x.frac[r] - (want_steps ? 0.5 : start)) < 1e-9 &&
                          (size_t)st[1] == (at_full ? both[f] : any[f]),
                      "fact %lld: relaxed %d steps to %g with %d LAFNs; expected %d steps, %zu LAFNs", (long long)f,
                      st[3], x.frac[r], st[1], want_steps, at_full ? both[f] : any[f]);
            else
                CHECK(x.ol[r + 1] == x.ol[r] && x.oe[r + 1] == x.oe[r], "fact %lld: 'no LAFN found' but neurons listed",
                      (long long)f);
            *n_relaxed += want_found && want_steps;
            *n_missing += !want_found;
        }
        CHECK(h5out_read_all(x.f.file, x.f.path, "global/counts", H5OUT_I64, 0, (void **)&counts, &nc, &err) == 0 &&
                  nc == 6 && counts[2] == *n_missing && counts[3] == *n_relaxed,
              "global/counts: no_lafn %lld relaxed %lld, expected %d and %d", counts ? (long long)counts[2] : -1LL,
              counts && nc > 3 ? (long long)counts[3] : -1LL, *n_missing, *n_relaxed);
    }
    free(counts);
    locate_free(&x);
}

/* Strict fractions leave facts with 'no LAFN found' (counted); a min_neurons
 * between |both| and |any| makes locate relax the language fraction. */
static void test_relaxation(const char *dir, int L, int F) {
    size_t both[N_FACTS], any[N_FACTS], hi = 0, m = 0;
    count_both_any(dir, L, F, both, any);
    for (int f = 0; f < N_FACTS; f++) {
        if (both[f] > hi) hi = both[f];
        if (!m && any[f] > both[f]) m = both[f] + 1;
    }
    int relaxed = 0, missing = 0;
    check_min_neurons(dir, hi, 1.0, "locate.min_language_fraction=1.0", both, any, &relaxed, &missing);
    if (rank == 0) CHECK(relaxed == 0, "strict fractions cannot relax");
    int missing_strict = missing;
    CHECK(m > 0, "no fact with more neurons in one D_l than in both: the relaxation cannot be exercised");
    int relaxed_off_grid = 0;
    if (m) check_min_neurons(dir, m, 0.75, "locate.min_language_fraction=0.5", both, any, &relaxed_off_grid, &missing);
    if (m) check_min_neurons(dir, m, 1.0, "locate.min_language_fraction=0.5", both, any, &relaxed, &missing);
    if (rank == 0) {
        CHECK(relaxed_off_grid == relaxed, "from language_fraction 0.75, %d facts relaxed to 0.5; from 1.0, %d",
              relaxed_off_grid, relaxed);
        CHECK(missing_strict > 0, "strict fractions (min_neurons %zu) left no fact without LAFNs", hi);
        CHECK(relaxed > 0, "no fact was found only after relaxing");
        printf("relaxation: strict min_neurons %zu -> %d facts without LAFN; min_neurons %zu -> %d found after "
               "relaxing\n",
               hi, missing_strict, m, relaxed);
    }
}

/* A run whose shards already hold some facts only redoes the rest. */
static void test_resume(const char *ref_dir, const char *dir) {
    const char *one[] = {"run.shard_facts=1"};
    if (run_stage("probe", dir, MPI_COMM_WORLD, NULL, one, 1) != 0) return;
    enum { MAXS = 16 };
    struct stat kept[MAXS];
    char removed[512] = "";
    h5out_shard *s = NULL;
    size_t n = 0;
    lafn_err err = {{0}};
    if (rank == 0) {
        CHECK(h5out_shard_list(dir, "probe", &s, &n, &err) == 0 && n == N_FACTS && n < MAXS,
              "%zu shards with shard_facts = 1 (%s)", n, err.msg);
        for (size_t i = 0; i < n && i < MAXS; i++) stat(s[i].path, &kept[i]);
        if (n) {
            snprintf(removed, sizeof removed, "%s", s[n - 1].path);
            CHECK(unlink(removed) == 0, "cannot remove %s", removed);
        }
        char merged[450];
        snprintf(merged, sizeof merged, "%s/probe.h5", dir);
        unlink(merged);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    char *text = NULL;
    size_t len = 0;
    FILE *log = rank == 0 ? open_memstream(&text, &len) : NULL;
    run_stage("probe", dir, MPI_COMM_WORLD, log, one, 1);
    if (log) fclose(log);
    if (rank == 0) {
        char want[64];
        snprintf(want, sizeof want, "(%d resumed)", N_FACTS - 1);
        CHECK(text && strstr(text, want), "the resumed run should report '%s'; log:\n%s", want, text ? text : "");
        h5out_shard *s2 = NULL;
        size_t n2 = 0;
        CHECK(h5out_shard_list(dir, "probe", &s2, &n2, &err) == 0 && n2 == n, "%zu shards after resume, %zu before", n2,
              n);
        for (size_t i = 0; i + 1 < n && i < n2 && i < MAXS; i++) {
            struct stat now;
            stat(s2[i].path, &now);
            CHECK(now.st_ino == kept[i].st_ino && now.st_mtim.tv_nsec == kept[i].st_mtim.tv_nsec &&
                      now.st_mtim.tv_sec == kept[i].st_mtim.tv_sec,
                  "shard %s was rewritten by the resumed run", s2[i].path);
        }
        CHECK(n2 && access(removed, F_OK) == 0, "the removed shard %s was not redone", removed);
        h5out_shards_free(s2, n2);
        probe_file a = {.f.file = H5I_INVALID_HID}, b = {.f.file = H5I_INVALID_HID};
        if (probe_read(&a, ref_dir) == 0 && probe_read(&b, dir) == 0) {
            size_t diff = 0;
            for (size_t r = 0; r < a.f.n; r++) {
                size_t t = row_of(&b.f, a.f.facts[r]);
                if (t == (size_t)-1 || a.ok[r + 1] - a.ok[r] != b.ok[t + 1] - b.ok[t]) {
                    diff++;
                    continue;
                }
                for (int64_t k = 0; k < a.ok[r + 1] - a.ok[r]; k++)
                    diff += a.kneuron[a.ok[r] + k] != b.kneuron[b.ok[t] + k] ||
                            a.kscore[a.ok[r] + k] != b.kscore[b.ok[t] + k];
            }
            CHECK(diff == 0 && a.f.n == b.f.n, "resumed probe.h5 differs from a fresh run in %zu places", diff);
        }
        probe_free(&a);
        probe_free(&b);
    }
    h5out_shards_free(s, n);
    free(text);
}

/* edit_from_depth = 0.5 keeps LAFNs to the upper half of the layers and equals
 * the explicit list of those layers (run in dir and in a copy of its probe.h5). */
static void test_edit_from_depth(const char *dir, int L) {
    char dd[400], list[400], cmd[1400];
    const char *depth_dir = dir_of(dd, "depth");
    int first = L / 2, n = snprintf(list, sizeof list, "locate.edit_layers=[");
    for (int l = first; l < L; l++) n += snprintf(list + n, sizeof list - (size_t)n, l > first ? ",%d" : "%d", l);
    snprintf(list + n, sizeof list - (size_t)n, "]");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/probe.h5' '%s/'", depth_dir, dir, depth_dir);
    int copied = rank == 0 ? system(cmd) : 0;
    MPI_Bcast(&copied, 1, MPI_INT, 0, MPI_COMM_WORLD);
    CHECK(copied == 0, "cannot copy probe.h5: %s", cmd);
    const char *by_depth[] = {"run.resume=false", "locate.edit_from_depth=0.5"};
    const char *by_list[] = {"run.resume=false", list};
    if (copied || run_stage("locate", depth_dir, MPI_COMM_WORLD, NULL, by_depth, 2) != 0 ||
        run_stage("locate", dir, MPI_COMM_WORLD, NULL, by_list, 2) != 0 || rank != 0)
        return;
    compare_lafns(dir, depth_dir);
    locate_file x = {.f.file = H5I_INVALID_HID};
    if (locate_read(&x, depth_dir) == 0) {
        size_t below = 0;
        for (int64_t e = 0; e < x.ol[x.f.n]; e++) below += x.layer[e] < first;
        CHECK(x.ol[x.f.n] > 0 && below == 0, "edit_from_depth = 0.5: %zu of %lld LAFNs below layer %d", below,
              (long long)x.ol[x.f.n], first);
    }
    locate_free(&x);
}

/* edit/ of two locate.h5 files: 1 if every fact's list is the same. */
static int same_edit_lists(const locate_file *x, const locate_file *y) {
    if (x->f.n != y->f.n) return 0;
    for (size_t r = 0; r < x->f.n; r++) {
        size_t s = row_of(&y->f, x->f.facts[r]);
        if (s == (size_t)-1 || x->oe[r + 1] - x->oe[r] != y->oe[s + 1] - y->oe[s]) return 0;
        for (int64_t k = 0; k < x->oe[r + 1] - x->oe[r]; k++)
            if (x->elayer[x->oe[r] + k] != y->elayer[y->oe[s] + k] || x->eneuron[x->oe[r] + k] != y->eneuron[y->oe[s] + k])
                return 0;
    }
    return 1;
}

/* neuron_set = random: per fact as many distinct neurons per layer as LAFNs, inside the layer, not the LAFNs. */
static void check_random_sets(const locate_file *x, int L, int F) {
    size_t bad = 0, same_as_lafn = 0, n_edit = 0;
    for (size_t r = 0; r < x->f.n; r++) {
        int lafn_hist[64] = {0}, edit_hist[64] = {0};
        for (int64_t k = x->ol[r]; k < x->ol[r + 1]; k++) lafn_hist[x->layer[k] % 64]++;
        int identical = x->oe[r + 1] - x->oe[r] == x->ol[r + 1] - x->ol[r];
        for (int64_t k = x->oe[r]; k < x->oe[r + 1]; k++, n_edit++) {
            int32_t l = x->elayer[k], j = x->eneuron[k];
            bad += l < 0 || l >= L || l >= 64 || j < 0 || j >= F;
            edit_hist[l % 64]++;
            for (int64_t q = x->oe[r]; q < k; q++) bad += x->elayer[q] == l && x->eneuron[q] == j;
            identical = identical && x->ol[r] + (k - x->oe[r]) < x->ol[r + 1] &&
                        x->neuron[x->ol[r] + (k - x->oe[r])] == j;
        }
        bad += memcmp(lafn_hist, edit_hist, sizeof lafn_hist) != 0;
        same_as_lafn += identical && x->ol[r + 1] > x->ol[r];
    }
    CHECK(bad == 0 && n_edit > 0, "neuron_set = random: %zu problems (layer counts differ from the LAFNs', a neuron "
          "outside %d x %d or drawn twice) in %zu neurons", bad, L, F, n_edit);
    CHECK(same_as_lafn == 0, "neuron_set = random: %zu facts got exactly their LAFNs", same_as_lafn);
}

/* The random control: its sets, reproducible from run.seed on 1 or 2 ranks, another seed draws
 * others and is not resumed from the first seed's shards (run.seed is in its identity). */
static void test_random_control(const char *two, const char *one, int L, int F) {
    const char *seed_a[] = {"run.resume=false", "locate.neuron_set=random"};
    const char *seed_b_resume[] = {"run.resume=true", "locate.neuron_set=random", "run.seed=99"};
    const char *seed_b[] = {"run.resume=false", "locate.neuron_set=random", "run.seed=99"};
    locate_file x = {.f.file = H5I_INVALID_HID}, y = {.f.file = H5I_INVALID_HID}, z = {.f.file = H5I_INVALID_HID};
    MPI_Comm solo;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &solo);
    int ok = run_stage("locate", two, MPI_COMM_WORLD, NULL, seed_a, 2) == 0;
    if (rank == 0) ok = ok && run_stage("locate", one, solo, NULL, seed_a, 2) == 0;
    if (solo != MPI_COMM_NULL) MPI_Comm_free(&solo);
    if (rank == 0 && ok && locate_read(&x, two) == 0 && locate_read(&y, one) == 0) {
        check_random_sets(&x, L, F);
        CHECK(same_edit_lists(&x, &y), "neuron_set = random: 2 ranks and 1 rank drew different neurons");
    }
    locate_free(&y);
    lafn_err err = {{0}};
    int resumed = call_stage("locate", two, MPI_COMM_WORLD, NULL, seed_b_resume, 3, &err);
    CHECK(resumed != 0 && strstr(err.msg, "belongs to run"), "run.seed = 99 must not resume the shards of "
          "run.seed = 1234 (status %d): %s", resumed, err.msg);
    ok = run_stage("locate", two, MPI_COMM_WORLD, NULL, seed_b, 3) == 0;
    if (rank == 0 && ok && locate_read(&z, two) == 0) {
        check_random_sets(&z, L, F);
        CHECK(!same_edit_lists(&x, &z), "run.seed = 99 drew the same neurons as run.seed = 1234");
    }
    if (rank == 0) {
        locate_free(&x);
        locate_free(&z);
    }
}

/* locate.rank_by = contrast against a recomputation from probe.h5: every LAFN's stored score is its mean kept
 * score over the fact's prompts minus its mean over the run's other prompts, above 0, in descending order; and
 * 1 rank gives what 2 give. */
static void test_contrast(const char *two, const char *one, int L, int F) {
    const char *contrast[] = {"run.resume=false", "locate.rank_by=contrast"};
    MPI_Comm solo;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &solo);
    int ok = run_stage("locate", two, MPI_COMM_WORLD, NULL, contrast, 2) == 0;
    if (rank == 0) ok = ok && run_stage("locate", one, solo, NULL, contrast, 2) == 0;
    if (solo != MPI_COMM_NULL) MPI_Comm_free(&solo);
    if (rank != 0 || !ok) return;
    compare_lafns(two, one);
    probe_file p = {.f.file = H5I_INVALID_HID};
    locate_file x = {.f.file = H5I_INVALID_HID};
    double *sum = calloc((size_t)L * (size_t)F, sizeof *sum);
    if (sum && probe_read(&p, two) == 0 && locate_read(&x, two) == 0) {
        for (int64_t e = 0; e < p.ok[p.f.n]; e++) sum[(size_t)p.klayer[e] * (size_t)F + (size_t)p.kneuron[e]] += p.kscore[e];
        double all_prompts = (double)p.op[p.f.n], worst = 0.0;
        size_t bad_order = 0, n_lafn = 0;
        for (size_t r = 0; r < x.f.n; r++) {
            size_t pr = row_of(&p.f, x.f.facts[r]);
            if (pr == (size_t)-1) continue;
            double own_prompts = (double)(p.op[pr + 1] - p.op[pr]);
            for (int64_t k = x.ol[r]; k < x.ol[r + 1]; k++, n_lafn++) {
                size_t cell = (size_t)x.layer[k] * (size_t)F + (size_t)x.neuron[k];
                double own = 0.0;
                for (int64_t e = p.ok[pr]; e < p.ok[pr + 1]; e++)
                    if ((size_t)p.klayer[e] * (size_t)F + (size_t)p.kneuron[e] == cell) own += p.kscore[e];
                double want = own / own_prompts - (sum[cell] - own) / (all_prompts - own_prompts);
                if (fabs(want - x.score[k]) > worst) worst = fabs(want - x.score[k]);
                bad_order += x.score[k] <= 0 || (k > x.ol[r] && x.score[k] > x.score[k - 1]);
            }
        }
        CHECK(n_lafn > 0 && worst < 1e-4 && bad_order == 0, "rank_by = contrast: %zu LAFNs, worst score difference "
              "from the recomputation %g, %zu not above 0 or out of order", n_lafn, worst, bad_order);
    }
    free(sum);
    locate_free(&x);
    probe_free(&p);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size == 2, "run with 2 ranks, got %d", size);
    write_config();
    char da[400], db[400], dc[400];
    const char *a = dir_of(da, "two"), *b = dir_of(db, "one"), *c = dir_of(dc, "resume");
    int L = 0, F = 0;
    if (run_stage("probe", a, MPI_COMM_WORLD, NULL, NULL, 0) == 0 &&
        run_stage("locate", a, MPI_COMM_WORLD, NULL, NULL, 0) == 0 && rank == 0) {
        probe_file p = {.f.file = H5I_INVALID_HID};
        locate_file x = {.f.file = H5I_INVALID_HID};
        if (probe_read(&p, a) == 0 && locate_read(&x, a) == 0) {
            check_probe_layout(&p, 64);
            check_probe_scores(a, DEMO, SCORE_ABS, 0, 0, 1e-4);
            L = (int)p.n_layers; /* every layer is probed */
            F = 0;
            for (int64_t e = 0; e < p.ok[p.f.n]; e++) F = p.kneuron[e] >= F ? p.kneuron[e] + 1 : F;
            model *m = NULL;
            lafn_err err = {{0}};
            if (model_load(&m, MODEL, MPI_COMM_NULL, &err) == 0) F = m->cfg.d_ffn, L = m->cfg.n_layer;
            model_free(m);
            check_locate_sets(&p, &x, L, F, PROMPT_FRACTION, 32, (ref_mode){0, 0});
            check_globals(&p, &x, F);
            size_t diff = 0;
            for (size_t r = 0; r < x.f.n; r++) {
                diff += x.oe[r + 1] - x.oe[r] != x.ol[r + 1] - x.ol[r];
                for (int64_t k = 0; k < x.oe[r + 1] - x.oe[r] && k < x.ol[r + 1] - x.ol[r]; k++)
                    diff += x.elayer[x.oe[r] + k] != x.layer[x.ol[r] + k] ||
                            x.eneuron[x.oe[r] + k] != x.neuron[x.ol[r] + k];
            }
            CHECK(diff == 0, "neuron_set = lafn: edit/ differs from lafn/ in %zu places", diff);
        }
        locate_free(&x);
        probe_free(&p);
    }
    MPI_Bcast(&L, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(&F, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Comm solo;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &solo);
    if (rank == 0 && run_stage("probe", b, solo, NULL, NULL, 0) == 0 &&
        run_stage("locate", b, solo, NULL, NULL, 0) == 0)
        compare_lafns(a, b);
    if (solo != MPI_COMM_NULL) MPI_Comm_free(&solo);
    MPI_Barrier(MPI_COMM_WORLD);
    test_resume(a, c);
    test_score_variants();
    test_active_variants(a, L, F);
    test_relaxation(a, L, F);
    test_edit_from_depth(a, L);
    test_random_control(a, b, L, F);
    test_contrast(a, b, L, F);
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, tmp);
    int status = rank == 0 ? testutil_finish("mpi_test_probe_locate") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
