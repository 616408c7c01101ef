/* test_engine_grad: engine forward vs a double-precision reference, and every backward vs finite differences, on small random models. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/engine_ops.h"
#include "testutil.h"

/* Dimensions of the random models: L 3, D 32, F 48, H 4, K 2, E 8, V 50. */
enum { RL = 3, RD = 32, RF = 48, RH = 4, RK = 2, RE = 8, RV = 50 };
enum { NSEQ = 2, NTOK = 12, NPOS = 5 };
static const int seq_len[NSEQ] = {5, 7};
static const int logit_pos[NPOS] = {1, 4, 6, 9, 11};

/* ---- seeded random numbers (xorshift64*, Box-Muller) ---- */

static uint64_t rng_state = 88172645463325252ull;

static double rng_uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static float rng_normal(void) {
    double u = rng_uniform() + 1e-12, v = rng_uniform();
    return (float)(sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v));
}

static void fill_normal(float *x, size_t n, float scale, float mean) {
    for (size_t i = 0; i < n; i++) x[i] = mean + scale * rng_normal();
}

/* ---- random in-memory models ---- */

typedef struct {
    model m;
    model_layer layers[RL];
} random_model;

static float *slice(float **p, size_t n) {
    float *s = *p;
    *p += n;
    return s;
}

/* Builds a seeded random model of the given architecture (tok NULL). */
static int random_model_init(random_model *rm, model_arch arch) {
    memset(rm, 0, sizeof *rm);
    model_config *c = &rm->m.cfg;
    c->arch = arch;
    c->act = arch == MODEL_ARCH_GEMMA3 ? MODEL_ACT_GELU_TANH : MODEL_ACT_SILU;
    c->n_layer = RL, c->d_model = RD, c->d_ffn = RF, c->n_head = RH, c->n_head_kv = RK;
    c->head_dim = RE, c->vocab = RV, c->norm_eps = 1e-6f;
    c->rope_base = arch == MODEL_ARCH_GEMMA3 ? 1000000.0f : 10000.0f;
    c->rope_base_local = 10000.0f;
    c->attn_scale = arch == MODEL_ARCH_GEMMA3 ? 0.3f : 1.0f / sqrtf((float)RE);
    c->embed_scale = arch == MODEL_ARCH_GEMMA3 ? sqrtf((float)RD) : 1.0f;
    int gemma = arch == MODEL_ARCH_GEMMA3;
    c->sliding_window = gemma ? 3 : 0;
    c->sliding_pattern = gemma ? 2 : 0;
    c->has_qkv_bias = arch == MODEL_ARCH_QWEN2;
    c->has_qk_norm = gemma, c->has_post_norms = gemma, c->tied_output = gemma;
    c->has_rope_factors = arch == MODEL_ARCH_LLAMA;
    size_t QE = RH * RE, KE = RK * RE;
    size_t per_layer = 4 * RD + QE * RD + 2 * KE * RD + QE + 2 * KE + 2 * RE + RD * QE + 3 * RF * RD;
    size_t total = 2 * RV * RD + RD + RE / 2 + RL * per_layer;
    rm->m.block = malloc(total * sizeof(float));
    if (!rm->m.block) return -1;
    rm->m.block_floats = total;
    float *p = rm->m.block;
    model_weights *w = &rm->m.w;
    w->token_embd = slice(&p, RV * RD);
    fill_normal(w->token_embd, RV * RD, gemma ? 0.3f : 1.0f, 0.0f);
    w->output_norm = slice(&p, RD);
    fill_normal(w->output_norm, RD, 0.1f, 1.0f);
    float *out = slice(&p, RV * RD);
    fill_normal(out, RV * RD, 1.0f, 0.0f);
    w->output = gemma ? w->token_embd : out;
    float *factors = slice(&p, RE / 2);
    for (int i = 0; i < RE / 2; i++) factors[i] = 1.0f + 3.0f * (float)rng_uniform();
    w->rope_freq_factors = c->has_rope_factors ? factors : NULL;
    w->layers = rm->layers;
    for (int l = 0; l < RL; l++) {
        model_layer *y = &rm->layers[l];
        float ws = 1.3f / sqrtf((float)RD);
        y->attn_norm = slice(&p, RD), fill_normal(y->attn_norm, RD, 0.1f, 1.0f);
        y->wq = slice(&p, QE * RD), fill_normal(y->wq, QE * RD, ws * 2.0f, 0.0f);
        y->wk = slice(&p, KE * RD), fill_normal(y->wk, KE * RD, ws * 2.0f, 0.0f);
        y->wv = slice(&p, KE * RD), fill_normal(y->wv, KE * RD, ws, 0.0f);
        float *bq = slice(&p, QE), *bk = slice(&p, KE), *bv = slice(&p, KE);
        fill_normal(bq, QE, 0.3f, 0.0f), fill_normal(bk, KE, 0.3f, 0.0f), fill_normal(bv, KE, 0.3f, 0.0f);
        y->bq = c->has_qkv_bias ? bq : NULL, y->bk = c->has_qkv_bias ? bk : NULL;
        y->bv = c->has_qkv_bias ? bv : NULL;
        float *qn = slice(&p, RE), *kn = slice(&p, RE);
        fill_normal(qn, RE, 0.2f, 1.0f), fill_normal(kn, RE, 0.2f, 1.0f);
        y->q_norm = gemma ? qn : NULL, y->k_norm = gemma ? kn : NULL;
        y->wo = slice(&p, RD * QE), fill_normal(y->wo, RD * QE, ws, 0.0f);
        float *pa = slice(&p, RD), *pf = slice(&p, RD);
        fill_normal(pa, RD, 0.1f, 1.0f), fill_normal(pf, RD, 0.1f, 1.0f);
        y->post_attn_norm = gemma ? pa : NULL, y->post_ffn_norm = gemma ? pf : NULL;
        y->ffn_norm = slice(&p, RD), fill_normal(y->ffn_norm, RD, 0.1f, 1.0f);
        y->w_gate = slice(&p, RF * RD), fill_normal(y->w_gate, RF * RD, ws * 1.5f, 0.0f);
        y->w_up = slice(&p, RF * RD), fill_normal(y->w_up, RF * RD, ws, 0.0f);
        y->w_down = slice(&p, RD * RF), fill_normal(y->w_down, RD * RF, 1.0f / sqrtf((float)RF), 0.0f);
    }
    rm->m.win = MPI_WIN_NULL;
    return 0;
}

/* ---- double-precision reference forward (written from the architecture description) ---- */

typedef struct {
    const engine_edit *edit;
    int scale_layer;
    double scale_alpha;
    int pert_layer;        /* -1 none: else act[pert_n, pert_j] += pert */
    size_t pert_n, pert_j;
    double pert;
    int pert_delta;        /* -1 none: else edit->delta[pert_delta] += pert_delta_h */
    double pert_delta_h;
} ref_opts;

static void ref_rms(double *y, const double *x, const float *w, size_t d, double eps) {
    double ss = 0.0;
    for (size_t i = 0; i < d; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / (double)d + eps);
    for (size_t i = 0; i < d; i++) y[i] = x[i] * r * w[i];
}

static void ref_lin(double *y, const double *x, const float *w, const float *b, size_t in, size_t out) {
    for (size_t o = 0; o < out; o++) {
        double s = b ? b[o] : 0.0;
        for (size_t i = 0; i < in; i++) s += (double)w[o * in + i] * x[i];
        y[o] = s;
    }
}

static void ref_rope(double *v, int pos, double base, const float *factors) {
    for (int i = 0; i < RE / 2; i++) {
        double th = pos * pow(base, -2.0 * i / RE) / (factors ? factors[i] : 1.0);
        double a = v[i], b = v[i + RE / 2];
        v[i] = a * cos(th) - b * sin(th);
        v[i + RE / 2] = b * cos(th) + a * sin(th);
    }
}

static double ref_delta(const ref_opts *o, size_t idx) {
    double d = o->edit->delta[idx];
    return (int)idx == o->pert_delta ? d + o->pert_delta_h : d;
}

static int ref_applies(const engine_edit *ed, int e, int seq) {
    return !ed->seq_mask || ed->seq_mask[e * NSEQ + seq];
}

/* Attention of one layer for all tokens: att (N, H*E) from q (N, H*E), k, v (N, K*E). */
static void ref_attention(double *att, const double *q, const double *k, const double *v,
                          const model_config *c, int local) {
    int tok = 0;
    for (int s = 0; s < NSEQ; s++) {
        for (int t = 0; t < seq_len[s]; t++) {
            for (int h = 0; h < RH; h++) {
                int kh = h / (RH / RK), j0 = local && t >= c->sliding_window ? t - c->sliding_window + 1 : 0;
                double sc[NTOK], mx = -1e300, sum = 0.0;
                for (int j = j0; j <= t; j++) {
                    double d = 0.0;
                    for (int e = 0; e < RE; e++)
                        d += q[(tok + t) * RH * RE + h * RE + e] * k[(tok + j) * RK * RE + kh * RE + e];
                    sc[j] = d * c->attn_scale;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = j0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int e = 0; e < RE; e++) {
                    double o = 0.0;
                    for (int j = j0; j <= t; j++) o += sc[j] / sum * v[(tok + j) * RK * RE + kh * RE + e];
                    att[(tok + t) * RH * RE + h * RE + e] = o;
                }
            }
        }
        tok += seq_len[s];
    }
}

static double ref_act(double g, model_act kind) {
    if (kind == MODEL_ACT_SILU) return g / (1.0 + exp(-g));
    return 0.5 * g * (1.0 + tanh(sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
}

/* FFN of layer l for token n (sequence s): y (D) from hn (D); a (F) exposed. */
static void ref_ffn(double *y, double *a, const double *hn, const model *m, int l, int n, int s,
                    const ref_opts *o) {
    const model_layer *w = &m->w.layers[l];
    double g[RF], u[RF];
    ref_lin(g, hn, w->w_gate, NULL, RD, RF);
    ref_lin(u, hn, w->w_up, NULL, RD, RF);
    for (int j = 0; j < RF; j++) {
        a[j] = ref_act(g[j], m->cfg.act) * u[j];
        if (l == o->scale_layer) a[j] *= o->scale_alpha;
    }
    if (l == o->pert_layer && (size_t)n == o->pert_n) a[o->pert_j] += o->pert;
    const engine_edit *ed = o->edit;
    for (int e = 0; ed && ed->kind == ENGINE_EDIT_ACTIVATION_OFFSET && e < ed->n; e++)
        if (ed->layer[e] == l && ref_applies(ed, e, s)) a[ed->neuron[e]] += ref_delta(o, (size_t)e);
    ref_lin(y, a, w->w_down, NULL, RF, RD);
    for (int e = 0; ed && ed->kind == ENGINE_EDIT_VALUE_VECTOR && e < ed->n; e++)
        if (ed->layer[e] == l && ref_applies(ed, e, s))
            for (int i = 0; i < RD; i++) y[i] += a[ed->neuron[e]] * ref_delta(o, (size_t)e * RD + i);
}

/* One decoder layer over the whole batch, x (N, D) in place. */
static void ref_layer(double *x, const model *m, int l, const ref_opts *o, const int *seq_of,
                      const int *pos) {
    const model_config *c = &m->cfg;
    const model_layer *w = &m->w.layers[l];
    int local = model_layer_is_local(c, l);
    static double xn[NTOK][RD], q[NTOK][RH * RE], k[NTOK][RK * RE], v[NTOK][RK * RE], att[NTOK][RH * RE];
    for (int n = 0; n < NTOK; n++) {
        ref_rms(xn[n], x + n * RD, w->attn_norm, RD, c->norm_eps);
        ref_lin(q[n], xn[n], w->wq, w->bq, RD, RH * RE);
        ref_lin(k[n], xn[n], w->wk, w->bk, RD, RK * RE);
        ref_lin(v[n], xn[n], w->wv, w->bv, RD, RK * RE);
        double base = local ? c->rope_base_local : c->rope_base;
        for (int h = 0; h < RH; h++) {
            if (c->has_qk_norm) ref_rms(q[n] + h * RE, q[n] + h * RE, w->q_norm, RE, c->norm_eps);
            ref_rope(q[n] + h * RE, pos[n], base, m->w.rope_freq_factors);
        }
        for (int h = 0; h < RK; h++) {
            if (c->has_qk_norm) ref_rms(k[n] + h * RE, k[n] + h * RE, w->k_norm, RE, c->norm_eps);
            ref_rope(k[n] + h * RE, pos[n], base, m->w.rope_freq_factors);
        }
    }
    ref_attention(&att[0][0], &q[0][0], &k[0][0], &v[0][0], c, local);
    for (int n = 0; n < NTOK; n++) {
        double ao[RD], hn[RD], y[RD], a[RF], *xr = x + n * RD;
        ref_lin(ao, att[n], w->wo, NULL, RH * RE, RD);
        if (c->has_post_norms) ref_rms(ao, ao, w->post_attn_norm, RD, c->norm_eps);
        for (int i = 0; i < RD; i++) xr[i] += ao[i];
        ref_rms(hn, xr, w->ffn_norm, RD, c->norm_eps);
        ref_ffn(y, a, hn, m, l, n, seq_of[n], o);
        if (c->has_post_norms) ref_rms(y, y, w->post_ffn_norm, RD, c->norm_eps);
        for (int i = 0; i < RD; i++) xr[i] += y[i];
    }
}

/* NLL of targets at logit_pos under the model with o's edits; logits (NPOS, V) out if not NULL. */
static double ref_nll(const model *m, const int32_t *tokens, const int32_t *targets, const ref_opts *o,
                      double *logits) {
    int seq_of[NTOK], pos[NTOK], n = 0;
    for (int s = 0; s < NSEQ; s++)
        for (int t = 0; t < seq_len[s]; t++, n++) seq_of[n] = s, pos[n] = t;
    static double x[NTOK * RD];
    for (int i = 0; i < NTOK; i++)
        for (int d = 0; d < RD; d++)
            x[i * RD + d] = (double)m->w.token_embd[tokens[i] * RD + d] * m->cfg.embed_scale;
    for (int l = 0; l < RL; l++) ref_layer(x, m, l, o, seq_of, pos);
    double nll = 0.0;
    for (int p = 0; p < NPOS; p++) {
        double xf[RD], z[RV], mx = -1e300, sum = 0.0;
        ref_rms(xf, x + logit_pos[p] * RD, m->w.output_norm, RD, m->cfg.norm_eps);
        ref_lin(z, xf, m->w.output, NULL, RD, RV);
        for (int v = 0; v < RV; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < RV; v++) sum += exp(z[v] - mx);
        nll -= z[targets[p]] - mx - log(sum);
        if (logits) memcpy(logits + p * RV, z, sizeof z);
    }
    return nll;
}

/* ---- comparison helpers ---- */

/* ‖g − ref‖ / max(‖g‖, ‖ref‖); *worst = index of the largest |g − ref|. */
static double norm_err(const float *g, const double *ref, size_t n, size_t *worst) {
    double d2 = 0.0, g2 = 0.0, r2 = 0.0, wmax = -1.0;
    for (size_t i = 0; i < n; i++) {
        double d = g[i] - ref[i];
        d2 += d * d, g2 += (double)g[i] * g[i], r2 += ref[i] * ref[i];
        if (fabs(d) > wmax) wmax = fabs(d), *worst = i;
    }
    double den = sqrt(fmax(g2, r2));
    return den > 0.0 ? sqrt(d2) / den : 0.0;
}

static void expect_close(const char *what, const float *g, const double *ref, size_t n, double bound) {
    size_t w = 0;
    double e = norm_err(g, ref, n, &w);
    printf("  %-48s normalised error %.2e (bound %.0e), worst [%zu]: %.6g vs %.6g\n", what, e, bound, w,
           g[w], ref[w]);
    CHECK(e <= bound, "%s: normalised error %.3e > %.1e; worst element %zu: got %.7g, reference %.7g",
          what, e, bound, w, g[w], ref[w]);
}

/* ---- kernel finite differences (fp32 kernels, loss summed in double) ---- */

typedef double (*loss_fn)(void *ctx);

/* Central differences of f over x (n) against the analytic gradient g. */
static void fd_check(const char *name, loss_fn f, void *ctx, float *x, size_t n, const float *g,
                     float eps, double bound) {
    double *fd = malloc(n * sizeof *fd);
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i], xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = x0;
        fd[i] = (lp - lm) / ((double)xp - (double)xm);
    }
    expect_close(name, g, fd, n, bound);
    free(fd);
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef struct {
    float inp[3 * 16], w[16], out[3 * 16], rstd[3], c[3 * 16];
} norm_ctx;

static double norm_loss(void *p) {
    norm_ctx *k = p;
    rmsnorm_forward(k->out, k->rstd, k->inp, k->w, 3, 16, 1e-6f);
    return dot_d(k->c, k->out, 3 * 16);
}

static void test_kernel_norm(void) {
    norm_ctx k;
    fill_normal(k.inp, 48, 1.0f, 0.2f), fill_normal(k.w, 16, 0.3f, 1.0f), fill_normal(k.c, 48, 1.0f, 0.0f);
    float g[48] = {0};
    norm_loss(&k);
    rmsnorm_backward(g, k.c, k.inp, k.w, k.rstd, 3, 16);
    fd_check("rmsnorm_backward d inp", norm_loss, &k, k.inp, 48, g, 1e-2f, 2e-3);
}

enum { KN = 5, KH = 4, KK = 2, KE = 4 };

typedef struct {
    float q[KN * KH * KE], k[KN * KK * KE], v[KN * KK * KE], out[KN * KH * KE], lse[KN * KH];
    float c[KN * KH * KE], scratch[2 * 64 * KN];
    float x[KN * KH * KE], xr[KN * KH * KE], cos_t[KN * KE / 2], sin_t[KN * KE / 2];
    int pos[KN];
    size_t start[3];
    engine_seqs s;
    attn_dims a;
} attn_ctx;

static double attn_loss(void *p) {
    attn_ctx *t = p;
    attention_forward(t->out, t->lse, t->q, t->k, t->v, &t->s, &t->a, t->scratch);
    return dot_d(t->c, t->out, KN * KH * KE);
}

static double rope_loss(void *p) {
    attn_ctx *t = p;
    memcpy(t->xr, t->x, sizeof t->x);
    rope_forward(t->xr, t->pos, KN, KH, KE, t->cos_t, t->sin_t);
    return dot_d(t->c, t->xr, KN * KH * KE);
}

static void test_kernel_attention_rope(void) {
    static attn_ctx t;
    size_t nq = KN * KH * KE, nk = KN * KK * KE;
    fill_normal(t.q, nq, 1.0f, 0.0f), fill_normal(t.k, nk, 1.0f, 0.0f), fill_normal(t.v, nk, 1.0f, 0.0f);
    fill_normal(t.c, nq, 1.0f, 0.0f), fill_normal(t.x, nq, 1.0f, 0.0f);
    t.start[0] = 0, t.start[1] = 2, t.start[2] = KN; /* sequences of 2 and 3 tokens */
    int pos[KN] = {0, 1, 0, 1, 2};
    memcpy(t.pos, pos, sizeof pos);
    t.s = (engine_seqs){.n_seq = 2, .seq_start = t.start};
    for (int window = 0; window <= 2; window += 2) {
        t.a = (attn_dims){.H = KH, .K = KK, .E = KE, .scale = 0.7f, .window = window};
        float dq[KN * KH * KE] = {0}, dk[KN * KK * KE] = {0}, dv[KN * KK * KE] = {0};
        attn_loss(&t);
        attention_backward(dq, dk, dv, t.c, t.out, t.lse, t.q, t.k, t.v, &t.s, &t.a, t.scratch);
        const char *w = window ? "window 2" : "causal";
        char name[96];
        snprintf(name, sizeof name, "attention_backward dq (%s)", w);
        fd_check(name, attn_loss, &t, t.q, nq, dq, 1e-2f, 2e-3);
        snprintf(name, sizeof name, "attention_backward dk (%s)", w);
        fd_check(name, attn_loss, &t, t.k, nk, dk, 1e-2f, 2e-3);
        snprintf(name, sizeof name, "attention_backward dv (%s)", w);
        fd_check(name, attn_loss, &t, t.v, nk, dv, 1e-2f, 2e-3);
    }
    float factors[KE / 2] = {1.0f, 2.0f};
    rope_table(t.cos_t, t.sin_t, KN, KE, 10000.0, factors);
    float g[KN * KH * KE];
    memcpy(g, t.c, sizeof g);
    rope_backward(g, t.pos, KN, KH, KE, t.cos_t, t.sin_t);
    fd_check("rope_backward", rope_loss, &t, t.x, nq, g, 1e-2f, 2e-3);
}

/* The blocked (sgemm) attention against the per-row reference, on sequences
 * longer than one block of query rows, with and without a window. */
static void test_kernel_attention_blocked(void) {
    enum { N = 75, QE = 4 * 8, KE2 = 2 * 8 };
    static float q[N * QE], k[N * KE2], v[N * KE2], c[N * QE], out[N * QE], out_r[N * QE];
    static float lse[N * 4], lse_r[N * 4], g[3][N * QE], gr[3][N * QE];
    float *scratch = malloc(attention_scratch_floats(N) * sizeof(float));
    fill_normal(q, N * QE, 1.0f, 0.0f), fill_normal(k, N * KE2, 1.0f, 0.0f);
    fill_normal(v, N * KE2, 1.0f, 0.0f), fill_normal(c, N * QE, 1.0f, 0.0f);
    size_t start[3] = {0, 70, N};
    engine_seqs s = {.n_seq = 2, .seq_start = start};
    for (int window = 0; window <= 20; window += 20) {
        attn_dims a = {.H = 4, .K = 2, .E = 8, .scale = 0.5f, .window = window};
        attention_forward(out, lse, q, k, v, &s, &a, scratch);
        attention_forward_ref(out_r, lse_r, q, k, v, &s, &a, scratch);
        memset(g, 0, sizeof g), memset(gr, 0, sizeof gr);
        attention_backward(g[0], g[1], g[2], c, out, lse, q, k, v, &s, &a, scratch);
        attention_backward_ref(gr[0], gr[1], gr[2], c, out_r, lse_r, q, k, v, &s, &a);
        const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
        const float *got[5] = {out, lse, g[0], g[1], g[2]}, *want[5] = {out_r, lse_r, gr[0], gr[1], gr[2]};
        size_t n[5] = {N * QE, N * 4, N * QE, N * KE2, N * KE2};
        for (int i = 0; i < 5; i++) {
            double *ref = malloc(n[i] * sizeof *ref);
            for (size_t j = 0; j < n[i]; j++) ref[j] = want[i][j];
            char name[96];
            snprintf(name, sizeof name, "blocked attention %s vs per-row (window %d)", names[i], window);
            expect_close(name, got[i], ref, n[i], 1e-5);
            free(ref);
        }
    }
    free(scratch);
}

typedef struct {
    float gate[12], up[12], act[12], c[12];
    model_act kind;
} glu_ctx;

static double glu_loss(void *p) {
    glu_ctx *k = p;
    glu_forward(k->act, k->gate, k->up, 2, 6, k->kind);
    return dot_d(k->c, k->act, 12);
}

static void test_kernel_glu(void) {
    glu_ctx k;
    for (int kind = 0; kind < 2; kind++) {
        k.kind = kind ? MODEL_ACT_GELU_TANH : MODEL_ACT_SILU;
        fill_normal(k.gate, 12, 1.5f, 0.0f), fill_normal(k.up, 12, 1.0f, 0.0f), fill_normal(k.c, 12, 1.0f, 0.0f);
        float dg[12] = {0}, du[12] = {0};
        glu_backward(dg, du, k.c, k.gate, k.up, 2, 6, k.kind);
        fd_check(kind ? "glu_backward d gate (gelu_tanh)" : "glu_backward d gate (silu)", glu_loss, &k,
                 k.gate, 12, dg, 1e-2f, 2e-3);
        fd_check(kind ? "glu_backward d up (gelu_tanh)" : "glu_backward d up (silu)", glu_loss, &k, k.up,
                 12, du, 1e-2f, 2e-3);
    }
}

typedef struct {
    float resid[4 * 8], norm_w[8], w_out[7 * 8], xf[3 * 8], rstd[3], logits[3 * 7];
    int pos[3];
    int32_t target[3];
} logit_ctx;

static double logit_loss(void *p) {
    logit_ctx *k = p;
    logits_forward(k->logits, k->xf, k->rstd, k->resid, k->pos, 3, k->norm_w, k->w_out, 7, 8, 1e-6f);
    return engine_nll(k->logits, 3, 7, k->target, NULL, NULL, NULL);
}

static void test_kernel_logits(void) {
    logit_ctx k = {.pos = {1, 3, 3}, .target = {2, 6, 0}};
    fill_normal(k.resid, 32, 1.0f, 0.0f), fill_normal(k.norm_w, 8, 0.2f, 1.0f);
    fill_normal(k.w_out, 56, 1.0f, 0.0f);
    float dlogits[3 * 7], dres[32] = {0}, dxf[3 * 8];
    logit_loss(&k);
    engine_nll(k.logits, 3, 7, k.target, NULL, NULL, dlogits);
    logits_backward(dres, dxf, dlogits, k.rstd, k.resid, k.pos, 3, k.norm_w, k.w_out, 7, 8);
    fd_check("logits_backward + engine_nll d resid", logit_loss, &k, k.resid, 32, dres, 1e-2f, 2e-3);
}

/* ---- whole model ---- */

typedef struct {
    random_model rm;
    engine_run *r;
    int32_t tokens[NTOK], targets[NPOS];
    engine_batch b;
    float dlogits[NPOS * RV];
    const char *name;
} case_ctx;

static const int edit_layer[4] = {1, 2, 1, 2};
static const int edit_neuron[4] = {5, 7, 5, 11};
static const uint8_t edit_mask[4 * NSEQ] = {1, 1, 1, 0, 0, 1, 1, 1};

/* Forward with opts, NLL and dlogits; returns the NLL (NAN on failure). */
static double case_forward(case_ctx *t, engine_run *r, engine_forward_opts *o) {
    lafn_err err;
    o->logit_pos = logit_pos, o->n_logit_pos = NPOS;
    if (engine_forward(r, &t->b, o, &err)) {
        CHECK(0, "%s: engine_forward: %s", t->name, err.msg);
        return NAN;
    }
    return engine_nll(engine_logits(r), NPOS, RV, t->targets, NULL, NULL, t->dlogits);
}

static void test_model_forward(case_ctx *t) {
    engine_forward_opts o = engine_forward_defaults();
    case_forward(t, t->r, &o);
    static double ref[NPOS * RV];
    ref_opts ro = {.scale_layer = -1, .pert_layer = -1, .pert_delta = -1};
    ref_nll(&t->rm.m, t->tokens, t->targets, &ro, ref);
    char name[96];
    snprintf(name, sizeof name, "%s: logits vs double reference", t->name);
    expect_close(name, engine_logits(t->r), ref, NPOS * RV, 1e-4);
}

/* dNLL/d act of layers lowest and L-1 (and of the scaled layer) vs central differences. */
static void test_model_act_grad(case_ctx *t, int lowest, int scale_layer, float alpha) {
    engine_forward_opts o = engine_forward_defaults();
    o.scale_layer = scale_layer, o.scale_alpha = alpha;
    case_forward(t, t->r, &o);
    lafn_err err;
    if (engine_backward(t->r, t->dlogits, lowest, NULL, &err)) {
        CHECK(0, "%s: engine_backward: %s", t->name, err.msg);
        return;
    }
    int layers[2] = {lowest, scale_layer >= 0 ? scale_layer : RL - 1};
    static double fd[NTOK * RF];
    for (int li = 0; li < 2; li++) {
        ref_opts ro = {.scale_layer = scale_layer, .scale_alpha = alpha, .pert_layer = layers[li],
                       .pert_delta = -1};
        for (size_t i = 0; i < NTOK * RF; i++) {
            ro.pert_n = i / RF, ro.pert_j = i % RF, ro.pert = 1e-4;
            double lp = ref_nll(&t->rm.m, t->tokens, t->targets, &ro, NULL);
            ro.pert = -1e-4;
            double lm = ref_nll(&t->rm.m, t->tokens, t->targets, &ro, NULL);
            fd[i] = (lp - lm) / 2e-4;
        }
        char name[128];
        snprintf(name, sizeof name, "%s: d act blk.%d (lowest %d%s)", t->name, layers[li], lowest,
                 scale_layer >= 0 ? ", scaled" : "");
        expect_close(name, engine_ffn_act_grad(t->r, layers[li]), fd, NTOK * RF, 1e-3);
    }
    CHECK(lowest == 0 || engine_ffn_act_grad(t->r, lowest - 1) == NULL,
          "%s: a gradient below lowest_layer %d is exposed", t->name, lowest);
}

/* dNLL/d delta of an edit (4 entries in layers 1 and 2, masked) vs central differences. */
static void test_model_edit_grad(case_ctx *t, engine_edit_kind kind, int from_layer) {
    size_t nd = kind == ENGINE_EDIT_VALUE_VECTOR ? 4 * RD : 4;
    float delta[4 * RD], d_delta[4 * RD];
    fill_normal(delta, nd, kind == ENGINE_EDIT_VALUE_VECTOR ? 0.1f : 0.5f, 0.0f);
    engine_edit ed = {.kind = kind, .n = 4, .layer = edit_layer, .neuron = edit_neuron,
                      .delta = delta, .seq_mask = edit_mask};
    engine_forward_opts o = engine_forward_defaults();
    if (from_layer > 0) case_forward(t, t->r, &o); /* the unedited pass whose stream is reused */
    o.edit = &ed, o.from_layer = from_layer;
    case_forward(t, t->r, &o);
    lafn_err err;
    if (engine_backward(t->r, t->dlogits, 1, d_delta, &err)) {
        CHECK(0, "%s: engine_backward: %s", t->name, err.msg);
        return;
    }
    static double fd[4 * RD];
    ref_opts ro = {.edit = &ed, .scale_layer = -1, .pert_layer = -1};
    for (size_t i = 0; i < nd; i++) {
        ro.pert_delta = (int)i, ro.pert_delta_h = 1e-4;
        double lp = ref_nll(&t->rm.m, t->tokens, t->targets, &ro, NULL);
        ro.pert_delta_h = -1e-4;
        double lm = ref_nll(&t->rm.m, t->tokens, t->targets, &ro, NULL);
        fd[i] = (lp - lm) / 2e-4;
    }
    char name[128];
    snprintf(name, sizeof name, "%s: d %s (from_layer %d)", t->name,
             kind == ENGINE_EDIT_VALUE_VECTOR ? "value vector" : "activation offset", from_layer);
    expect_close(name, d_delta, fd, nd, 1e-3);
}

static float max_abs_diff(const float *a, const float *b, size_t n, size_t *worst) {
    float m = -1.0f;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > m) m = fabsf(a[i] - b[i]), *worst = i;
    return m;
}

static void expect_equal(const char *what, const float *a, const float *b, size_t n) {
    size_t w = 0;
    float d = max_abs_diff(a, b, n, &w);
    printf("  %-48s max |diff| %.3g\n", what, d);
    CHECK(d == 0.0f, "%s: not identical; worst element %zu: %.9g vs %.9g", what, w, a[w], b[w]);
}

/* from_layer > 0 must reproduce the full forward and its gradients exactly;
 * a zero delta must reproduce the unedited model exactly. */
static void test_model_reuse(case_ctx *t) {
    lafn_err err;
    engine_run *r2 = NULL;
    if (engine_run_init(&r2, &t->rm.m, NTOK, NPOS, &err)) {
        CHECK(0, "%s: engine_run_init: %s", t->name, err.msg);
        return;
    }
    static float l_full[NPOS * RV], l_from[NPOS * RV], l_plain[NPOS * RV];
    float delta[4 * RD], g_full[4 * RD], g_from[4 * RD];
    fill_normal(delta, 4 * RD, 0.1f, 0.0f);
    engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = 4, .layer = edit_layer,
                      .neuron = edit_neuron, .delta = delta, .seq_mask = edit_mask};
    engine_forward_opts o = engine_forward_defaults();
    case_forward(t, t->r, &o);
    memcpy(l_plain, engine_logits(t->r), sizeof l_plain);
    o.edit = &ed, o.from_layer = 1;
    case_forward(t, t->r, &o);
    memcpy(l_from, engine_logits(t->r), sizeof l_from);
    CHECK(!engine_backward(t->r, t->dlogits, 1, g_from, &err), "%s: %s", t->name, err.msg);
    o.from_layer = 0;
    case_forward(t, r2, &o);
    memcpy(l_full, engine_logits(r2), sizeof l_full);
    CHECK(!engine_backward(r2, t->dlogits, 1, g_full, &err), "%s: %s", t->name, err.msg);
    char name[128];
    snprintf(name, sizeof name, "%s: logits from_layer 1 vs 0", t->name);
    expect_equal(name, l_from, l_full, NPOS * RV);
    snprintf(name, sizeof name, "%s: d delta from_layer 1 vs 0", t->name);
    expect_equal(name, g_from, g_full, 4 * RD);
    o.from_layer = 2; /* the stream entering layer 2 now carries the layer-1 edit */
    o.edit = NULL;
    CHECK(engine_forward(t->r, &t->b, &o, &err) != 0, "%s: from_layer 2 over an edited stream accepted",
          t->name);
    memset(delta, 0, sizeof delta);
    for (int k = 0; k < 2; k++) {
        ed.kind = k ? ENGINE_EDIT_ACTIVATION_OFFSET : ENGINE_EDIT_VALUE_VECTOR;
        o.edit = &ed, o.from_layer = 0;
        case_forward(t, r2, &o);
        snprintf(name, sizeof name, "%s: zero %s vs unedited", t->name, k ? "offset" : "value delta");
        expect_equal(name, engine_logits(r2), l_plain, NPOS * RV);
    }
    engine_run_free(r2);
}

/* A sequence scored alone gives the logits it gets inside the batch. */
static void test_model_batch_independence(case_ctx *t) {
    lafn_err err;
    engine_forward_opts o = engine_forward_defaults();
    case_forward(t, t->r, &o);
    static float batched[NPOS * RV];
    memcpy(batched, engine_logits(t->r), sizeof batched);
    engine_batch one = {.n_seq = 1, .seq_len = &seq_len[1], .tokens = t->tokens + seq_len[0]};
    int pos[2] = {logit_pos[3] - seq_len[0], logit_pos[4] - seq_len[0]};
    o.logit_pos = pos, o.n_logit_pos = 2;
    if (engine_forward(t->r, &one, &o, &err)) {
        CHECK(0, "%s: %s", t->name, err.msg);
        return;
    }
    double ref[2 * RV];
    for (int i = 0; i < 2 * RV; i++) ref[i] = batched[3 * RV + i];
    char name[128];
    snprintf(name, sizeof name, "%s: sequence alone vs in the batch", t->name);
    expect_close(name, engine_logits(t->r), ref, 2 * RV, 1e-5); /* sgemm sums in another order */
}

/* Bad inputs are rejected with a message, and leave the run usable. */
static void test_model_errors(case_ctx *t) {
    lafn_err err;
    engine_forward_opts o = engine_forward_defaults();
    int32_t bad_tok[NTOK];
    memcpy(bad_tok, t->tokens, sizeof bad_tok);
    bad_tok[3] = RV;
    engine_batch bad = t->b;
    bad.tokens = bad_tok;
    int fails = 0, n_cases = 0;
#define EXPECT_FAIL(call, what)                                                    \
    do {                                                                           \
        err.msg[0] = 0;                                                            \
        int rc_ = (call);                                                          \
        n_cases++;                                                                 \
        CHECK(rc_ != 0 && err.msg[0], "%s: %s accepted", t->name, what);           \
        fails += rc_ != 0 && err.msg[0];                                           \
    } while (0)
    EXPECT_FAIL(engine_forward(t->r, &bad, &o, &err), "token id = V");
    int long_len[NSEQ] = {5, 8};
    bad = t->b, bad.seq_len = long_len;
    EXPECT_FAIL(engine_forward(t->r, &bad, &o, &err), "batch longer than max_tokens");
    int pos_bad[1] = {NTOK};
    o.logit_pos = pos_bad, o.n_logit_pos = 1;
    EXPECT_FAIL(engine_forward(t->r, &t->b, &o, &err), "logit position = N");
    o = engine_forward_defaults();
    int lay[1] = {1}, neu[1] = {RF};
    float delta[RD] = {0};
    engine_edit ed = {.kind = ENGINE_EDIT_VALUE_VECTOR, .n = 1, .layer = lay, .neuron = neu, .delta = delta};
    o.edit = &ed;
    EXPECT_FAIL(engine_forward(t->r, &t->b, &o, &err), "edit neuron = F");
    engine_run *fresh = NULL;
    if (engine_run_init(&fresh, &t->rm.m, NTOK, NPOS, &err) == 0) {
        o = engine_forward_defaults();
        o.from_layer = 1;
        EXPECT_FAIL(engine_forward(fresh, &t->b, &o, &err), "from_layer without a previous forward");
        EXPECT_FAIL(engine_backward(fresh, t->dlogits, 0, NULL, &err), "backward without forward");
        engine_run_free(fresh);
    }
    neu[0] = 3;
    o = engine_forward_defaults();
    o.edit = &ed, o.logit_pos = logit_pos, o.n_logit_pos = NPOS;
    CHECK(engine_forward(t->r, &t->b, &o, &err) == 0, "%s: valid forward after errors: %s", t->name, err.msg);
    float d_delta[RD];
    EXPECT_FAIL(engine_backward(t->r, t->dlogits, 2, d_delta, &err), "edit below lowest_layer with d_delta");
#undef EXPECT_FAIL
    printf("  %-48s %d/%d rejected\n", "bad inputs", fails, n_cases);
}

static void run_case(model_arch arch, const char *name) {
    static case_ctx t;
    lafn_err err;
    t.name = name;
    rng_state = 88172645463325252ull + (uint64_t)arch; /* each model independent of the tests before it */
    if (random_model_init(&t.rm, arch)) {
        CHECK(0, "%s: out of memory", name);
        return;
    }
    for (int i = 0; i < NTOK; i++) t.tokens[i] = (int32_t)(rng_uniform() * RV);
    for (int p = 0; p < NPOS; p++) t.targets[p] = (int32_t)(rng_uniform() * RV);
    t.b = (engine_batch){.n_seq = NSEQ, .seq_len = seq_len, .tokens = t.tokens};
    if (engine_run_init(&t.r, &t.rm.m, NTOK, NPOS, &err)) {
        CHECK(0, "%s: engine_run_init: %s", name, err.msg);
        free(t.rm.m.block);
        return;
    }
    printf("%s\n", name);
    test_model_forward(&t);
    test_model_act_grad(&t, 0, -1, 1.0f);
    test_model_act_grad(&t, 1, -1, 1.0f);
    test_model_act_grad(&t, 0, 1, 0.4f);
    test_model_edit_grad(&t, ENGINE_EDIT_VALUE_VECTOR, 0);
    test_model_edit_grad(&t, ENGINE_EDIT_VALUE_VECTOR, 1);
    test_model_edit_grad(&t, ENGINE_EDIT_ACTIVATION_OFFSET, 0);
    test_model_edit_grad(&t, ENGINE_EDIT_ACTIVATION_OFFSET, 1);
    test_model_reuse(&t);
    test_model_errors(&t);
    test_model_batch_independence(&t);
    engine_run_free(t.r);
    free(t.rm.m.block);
}

int main(void) {
    printf("kernels\n");
    test_kernel_norm();
    test_kernel_attention_rope();
    test_kernel_attention_blocked();
    test_kernel_glu();
    test_kernel_logits();
    run_case(MODEL_ARCH_GEMMA3, "gemma3-like (local+global, QK-norm, post norms, GeGLU)");
    run_case(MODEL_ARCH_LLAMA, "llama-like (rope factors)");
    run_case(MODEL_ARCH_QWEN2, "qwen2-like (QKV bias)");
    return testutil_finish("test_engine_grad");
}
