/* mpi_test_edit: the edit stage in-process on 2 ranks with the tiny Gemma 3 model — outputs, loss curves, no-LAFN facts, resume after a simulated kill (also over a shard without curves), batch mode on 1 and 2 ranks, sequential mode and its resume. */
#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edit_testlib.h"
#include "edit/stage_edit.h"
#include "edit/stage_edit_loop.h"
#include "testutil.h"

enum { N_FACTS = 4, STEPS = 8, N_EVALS = STEPS + 1 };
static int my_rank = 0;
static char root[128];

static void path_join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

/* The pipeline file of the tests (written by rank 0). */
static void write_cfg(const char *path) {
    FILE *f = fopen(path, "w");
    fprintf(f,
            "model = { path = \"tests/fixtures/models/tiny-gemma3.gguf\"; };\n"
            "data = { format = \"jsonl\"; path = \"conf/data/demo_facts.jsonl\"; facts = [0, 1, 2, 3]; };\n"
            "languages = { codes = [\"en\", \"de\"]; };\n"
            "run = { output_dir = \"%s/a\"; shard_facts = 1; };\n"
            "edit = { steps = %d; lr = 0.1; };\n",
            root, STEPS);
    fclose(f);
}

/* Writes DIR/locate.h5 for the run of cfg: the test's own neuron choice (3 per fact, layers 1-2); fact 3 gets none. */
static int make_locate(const char *cfg, const char *dir, MPI_Comm comm, lafn_err *err) {
    stage_context ctx;
    char ov[300];
    snprintf(ov, sizeof ov, "run.output_dir=%s", dir);
    char *ovs[1] = {ov};
    if (stage_context_init(&ctx, "locate", cfg, ovs, 1, "test", comm, NULL, err)) return -1;
    etl_neurons nr[N_FACTS] = {0};
    facts_edit_view views[N_FACTS] = {0};
    int rc = etl_views(&ctx.facts, views, err);
    for (size_t i = 0; rc == 0 && i + 1 < ctx.facts.n_facts; i++)
        rc = etl_top_neurons(ctx.m, &views[i], 1, 2, 3, &nr[i], err);
    if (rc == 0) rc = etl_write_locate(dir, &ctx.prov, &ctx.facts, nr, comm, err);
    for (size_t i = 0; i < ctx.facts.n_facts; i++) facts_edit_view_free(&views[i]);
    stage_context_free(&ctx);
    return rc;
}

static int run_edit(const char *cfg, const char *dir, const char *extra1, const char *extra2, MPI_Comm comm,
                    lafn_err *err) {
    const char *extra[2] = {extra1, extra2};
    return etl_run_edit(cfg, dir, extra, 2, comm, err);
}

typedef etl_stored stored;

/* Every fact once; fact 3 has no LAFN and no delta; the others edited with every language's NLL lower. */
static void check_outputs(const stored *s, const char *what) {
    CHECK(s->s.n_facts == N_FACTS, "%s: %zu rows, expected %d", what, s->s.n_facts, N_FACTS);
    for (int64_t f = 0; f < N_FACTS; f++) {
        long r = etl_row_of(s, f);
        CHECK(r >= 0, "%s: fact %lld missing", what, (long long)f);
        if (r < 0) continue;
        int n_delta = (int)(s->s.delta_off[r + 1] - s->s.delta_off[r]);
        if (f == 3) {
            CHECK(s->s.status[r] == EDIT_STATUS_NO_LAFN && n_delta == 0,
                  "%s: fact 3 has status %d and %d deltas, "
                  "expected no LAFN and none",
                  what, s->s.status[r], n_delta);
            continue;
        }
        int n_gate = (int)(s->s.gate_off[r + 1] - s->s.gate_off[r]);
        /* a batch's delta set is the union of its facts' neurons */
        CHECK(s->s.status[r] != EDIT_STATUS_NO_LAFN && n_gate == 3 && n_delta >= 3,
              "%s: fact %lld status %d, %d gate "
              "neurons, %d deltas",
              what, (long long)f, s->s.status[r], n_gate, n_delta);
        for (int l = 0; l < 2; l++)
            CHECK(s->nll_after[r * 2 + l] < s->nll_before[r * 2 + l], "%s: fact %lld language %d: NLL %g -> %g", what,
                  (long long)f, l, s->nll_before[r * 2 + l], s->nll_after[r * 2 + l]);
    }
}

/* The loss curves: evaluation 0 is nll_before and the first loss, the last evaluation (step `steps`) the
 * NLL after and the last loss (no keep_best), NaN after it and everywhere for fact 3 (no LAFN); every fact
 * written by a rank in [0, 2) for a unit of unit_ranks ranks. */
static void check_curves(const stored *s, int unit_ranks, const char *what) {
    CHECK(s->curve_nll && s->curve_loss && s->rank, "%s: edit.h5 has no curve/nll, curve/loss or rank", what);
    if (!s->curve_nll || !s->curve_loss || !s->rank) return;
    for (size_t r = 0; r < s->s.n_facts; r++) {
        const double *c = s->curve_nll + r * N_EVALS * 2, *cl = s->curve_loss + r * N_EVALS;
        long long f = (long long)s->s.facts[r];
        int last = s->s.status[r] == EDIT_STATUS_NO_LAFN ? -1 : s->steps[r];
        CHECK(s->rank[2 * r] >= 0 && s->rank[2 * r] < 2 && s->rank[2 * r + 1] == unit_ranks,
              "%s: fact %lld: rank %d of a unit of %d ranks, expected %d", what, f, s->rank[2 * r], s->rank[2 * r + 1],
              unit_ranks);
        for (int t = 0; t < N_EVALS; t++) {
            CHECK((t <= last) == !isnan(cl[t]), "%s: fact %lld: loss at evaluation %d is %g (last %d)", what, f, t,
                  cl[t], last);
            for (int l = 0; l < 2; l++)
                CHECK((t <= last) == (c[2 * t + l] > 0.0), "%s: fact %lld language %d: NLL at evaluation %d is %g",
                      what, f, l, t, c[2 * t + l]);
        }
        if (last < 0) continue;
        CHECK(cl[0] == s->loss[4 * r] && cl[last] == s->loss[4 * r + 1], "%s: fact %lld: curve %g .. %g, loss %g .. %g",
              what, f, cl[0], cl[last], s->loss[4 * r], s->loss[4 * r + 1]);
        for (int l = 0; l < 2; l++)
            CHECK(c[l] == s->nll_before[2 * r + l] && c[2 * last + l] == s->nll_after[2 * r + l],
                  "%s: fact %lld language %d: curve %g .. %g, NLL before %g after %g", what, f, l, c[l],
                  c[2 * last + l], s->nll_before[2 * r + l], s->nll_after[2 * r + l]);
    }
}

/* Makes a shard look written before the curves: its rank and curve/ removed. */
static void strip_curves(const char *shard) {
    hid_t f = H5Fopen(shard, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0 && H5Ldelete(f, "curve", H5P_DEFAULT) >= 0 && H5Ldelete(f, "rank", H5P_DEFAULT) >= 0,
          "%s: cannot remove curve/ and rank", shard);
    if (f >= 0) H5Fclose(f);
}

/* Same facts, statuses and deltas (max abs difference <= tol). */
static void check_same(const stored *a, const stored *b, double tol, const char *what) {
    etl_check_same(a, b, tol, what, my_rank == 0);
}

/* 1 if dir holds a file whose name ends in ".tmp". */
static int has_tmp(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) found = 1;
    }
    if (d) closedir(d);
    return found;
}

/* Copies locate.h5 (and the named edit shards) of dir a into a fresh dir, plus the leftovers of a killed run. */
static void prepare_dir(const char *from, const char *to, const char *const *shards, size_t n_shards) {
    char src[512], dst[512];
    mkdir(to, 0755);
    path_join(src, sizeof src, from, "locate.h5");
    path_join(dst, sizeof dst, to, "locate.h5");
    testutil_copy_file(src, dst);
    for (size_t i = 0; i < n_shards; i++) {
        path_join(src, sizeof src, from, shards[i]);
        path_join(dst, sizeof dst, to, shards[i]);
        testutil_copy_file(src, dst);
    }
    if (n_shards) { /* a shard and a merge cut off mid-write */
        path_join(dst, sizeof dst, to, "edit.shard-1-0.h5.tmp");
        FILE *f = fopen(dst, "w");
        fputs("\x89HDF half written", f);
        fclose(f);
        path_join(dst, sizeof dst, to, "edit.h5.tmp");
        f = fopen(dst, "w");
        fputs("garbage", f);
        fclose(f);
    }
}

static void dir_of(char *out, const char *name) { snprintf(out, 256, "%s/%s", root, name); }

/* 1 if the n values of a and b are the same bits. */
static int same_bits(const void *a, const void *b, size_t bytes) { return bytes == 0 || !memcmp(a, b, bytes); }

/* The largest |a - b| over n floats, relative to the largest |a|. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, m = 1e-30;
    for (size_t k = 0; k < n; k++) {
        d = fmax(d, fabs((double)a[k] - b[k]));
        m = fmax(m, fabs((double)a[k]));
    }
    return d / m;
}

/* Fact 0's references against their questions forwarded alone: the states and its candidates' activations. */
static void check_refs_direct(const edit_stage *S) {
    const edit_gate_refs *R = &S->refs;
    size_t D = (size_t)S->ctx.m->cfg.d_model, F = (size_t)S->ctx.m->cfg.d_ffn;
    int64_t off = S->nr.offsets[S->row[0]], nc = S->nr.offsets[S->row[0] + 1] - off, n_ref = R->ref_off[1];
    double worst_state = 0.0, worst_act = 0.0;
    CHECK(n_ref == 2 * 3, "fact 0 has %lld references, expected 3 other facts x 2 languages", (long long)n_ref);
    for (int64_t e = 0; e < n_ref; e++) {
        int64_t row = R->ref_row[e];
        size_t j = 0;
        while (R->row_off[j + 1] <= row) j++;
        const facts_prompt_set *ps = &S->views[j].langs[row - R->row_off[j]];
        CHECK(j != 0, "fact 0 refers to its own question");
        edit_prompt_batch g = {0};
        engine_run *run = NULL;
        lafn_err err = {{0}};
        if (edit_prompt_batch_add(&g, S->ctx.m->tok, ps->lang, ps->prompts[0], &err) ||
            edit_prompt_batch_forward(S->ctx.m, &g, &run, &err)) {
            CHECK(0, "forward of reference %lld: %s", (long long)e, err.msg);
        } else {
            worst_state = fmax(worst_state, rel_diff(R->state + (size_t)row * D,
                                                     engine_residual(run, S->key_layer) + (size_t)g.last[0] * D, D));
            for (int64_t k = 0; k < nc; k++) {
                float direct = engine_ffn_act(run, S->nr.layer[off + k])[(size_t)g.last[0] * F + (size_t)S->nr.neuron[off + k]];
                worst_act = fmax(worst_act, rel_diff(R->act + R->act_off[0] + e * nc + k, &direct, 1));
            }
        }
        engine_run_free(run);
        edit_prompt_batch_free(&g);
    }
    printf("gate references of fact 0 (%lld) against their questions forwarded alone: states %.2g, activations "
           "%.2g (relative)\n", (long long)n_ref, worst_state, worst_act);
    CHECK(worst_state < 1e-5 && worst_act < 1e-5, "reference tables differ from a direct forward: %g, %g", worst_state,
          worst_act);
}

/* The gates' reference tables and key centre of dir's run: the same bits on 2 ranks as on 1, and what a
 * direct forward of each reference gives. */
static void check_refs(const char *cfg, const char *dir) {
    char ov[300];
    snprintf(ov, sizeof ov, "run.output_dir=%s", dir);
    char *ovs[1] = {ov};
    edit_stage two, one;
    lafn_err err = {{0}};
    int rc2 = edit_stage_init(&two, cfg, ovs, 1, "test", MPI_COMM_WORLD, NULL, &err);
    CHECK(rc2 == 0, "edit stage on 2 ranks: %s", err.msg);
    MPI_Comm one_rank;
    MPI_Comm_split(MPI_COMM_WORLD, my_rank == 0 ? 0 : MPI_UNDEFINED, 0, &one_rank);
    if (my_rank == 0) {
        int rc1 = edit_stage_init(&one, cfg, ovs, 1, "test", one_rank, NULL, &err);
        CHECK(rc1 == 0, "edit stage on 1 rank: %s", err.msg);
        if (rc1 == 0 && rc2 == 0) {
            const edit_gate_refs *a = &two.refs, *b = &one.refs;
            size_t n = two.ctx.facts.n_facts, D = (size_t)two.ctx.m->cfg.d_model;
            int same = same_bits(a->row_off, b->row_off, (n + 1) * sizeof *a->row_off) &&
                       same_bits(a->ref_off, b->ref_off, (n + 1) * sizeof *a->ref_off) &&
                       same_bits(a->act_off, b->act_off, (n + 1) * sizeof *a->act_off);
            same = same && same_bits(a->ref_row, b->ref_row, (size_t)a->ref_off[n] * sizeof *a->ref_row) &&
                   same_bits(a->state, b->state, (size_t)a->row_off[n] * D * sizeof *a->state) &&
                   same_bits(a->act, b->act, (size_t)a->act_off[n] * sizeof *a->act) &&
                   same_bits(two.key_center, one.key_center, D * sizeof *one.key_center);
            CHECK(same, "the gate references or the key centre differ between 2 ranks and 1");
            check_refs_direct(&one);
        }
        if (rc1 == 0) edit_stage_free(&one);
        MPI_Comm_free(&one_rank);
    }
    if (rc2 == 0) edit_stage_free(&two);
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    my_rank = rank;
    testutil_mpi_tmpdir(MPI_COMM_WORLD, "edit", root, sizeof root);
    char cfg[300], a[256], b[256], c[256], d[256], e[256], f[256];
    snprintf(cfg, sizeof cfg, "%s/edit.cfg", root);
    dir_of(a, "a"), dir_of(b, "b"), dir_of(c, "c"), dir_of(d, "d"), dir_of(e, "e"), dir_of(f, "f");
    if (rank == 0) write_cfg(cfg);
    MPI_Barrier(MPI_COMM_WORLD);
    lafn_err err = {{0}};
    int rc = make_locate(cfg, a, MPI_COMM_WORLD, &err);
    CHECK(rc == 0, "locate.h5: %s", err.msg);
    stored sa = {0}, sb = {0}, sc = {0}, sd = {0}, se = {0}, sf = {0};
    if (rc == 0) check_refs(cfg, a);
    /* single mode */
    rc = rc ? rc : run_edit(cfg, a, NULL, NULL, MPI_COMM_WORLD, &err);
    CHECK(rc == 0, "single: %s", err.msg);
    if (rc == 0 && etl_read_stored(a, 64, MPI_COMM_WORLD, &sa, &err) == 0) {
        check_outputs(&sa, "single");
        check_curves(&sa, 1, "single");
    }
    /* resume after a kill: one committed shard, a half-written shard and merge */
    static const char *const one[] = {"edit.shard-0-0.h5"};
    if (rank == 0) prepare_dir(a, b, one, 1);
    MPI_Barrier(MPI_COMM_WORLD);
    int rb = run_edit(cfg, b, NULL, NULL, MPI_COMM_WORLD, &err);
    CHECK(rb == 0, "resume: %s", err.msg);
    if (rb == 0 && etl_read_stored(b, 64, MPI_COMM_WORLD, &sb, &err) == 0) {
        check_same(&sa, &sb, 0.0, "resume vs uninterrupted");
        CHECK(!has_tmp(b), "a .tmp file is left in %s", b);
    }
    /* batch mode on 2 ranks and on 1 */
    if (rank == 0) {
        prepare_dir(a, c, NULL, 0);
        prepare_dir(a, d, NULL, 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    int rcb = run_edit(cfg, c, "edit.mode=batch", "edit.batch_size=3", MPI_COMM_WORLD, &err);
    CHECK(rcb == 0, "batch, 2 ranks: %s", err.msg);
    MPI_Comm one_rank;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &one_rank);
    int rcd = 0;
    if (rank == 0) {
        rcd = run_edit(cfg, d, "edit.mode=batch", "edit.batch_size=3", one_rank, &err);
        CHECK(rcd == 0, "batch, 1 rank: %s", err.msg);
        MPI_Comm_free(&one_rank);
    }
    MPI_Bcast(&rcd, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rcb == 0 && rcd == 0 && etl_read_stored(c, 64, MPI_COMM_WORLD, &sc, &err) == 0 &&
        etl_read_stored(d, 64, MPI_COMM_WORLD, &sd, &err) == 0) {
        check_outputs(&sc, "batch");
        check_curves(&sc, 2, "batch, 2 ranks");
        check_curves(&sd, 1, "batch, 1 rank");
        check_same(&sc, &sd, 1e-4, "batch on 2 ranks vs 1 rank");
        long r0 = etl_row_of(&sc, 0), r2 = etl_row_of(&sc, 2);
        CHECK(r0 >= 0 && r2 >= 0 && sc.s.group[r0] == sc.s.group[r2],
              "facts 0 and 2 of one batch have different groups");
    }
    /* sequential mode, then its resume from the first two shards */
    if (rank == 0) prepare_dir(a, e, NULL, 0);
    MPI_Barrier(MPI_COMM_WORLD);
    int rce = run_edit(cfg, e, "edit.mode=sequential", NULL, MPI_COMM_WORLD, &err);
    CHECK(rce == 0, "sequential: %s", err.msg);
    static const char *const two[] = {"edit.shard-0-0.h5", "edit.shard-0-1.h5"};
    if (rank == 0) prepare_dir(e, f, two, 2);
    MPI_Barrier(MPI_COMM_WORLD);
    int rcf = run_edit(cfg, f, "edit.mode=sequential", NULL, MPI_COMM_WORLD, &err);
    CHECK(rcf == 0, "sequential resume: %s", err.msg);
    if (rce == 0 && rcf == 0 && etl_read_stored(e, 64, MPI_COMM_WORLD, &se, &err) == 0 &&
        etl_read_stored(f, 64, MPI_COMM_WORLD, &sf, &err) == 0) {
        check_outputs(&se, "sequential");
        check_curves(&se, 2, "sequential");
        check_same(&se, &sf, 1e-6, "sequential resume vs uninterrupted");
    }
    /* a sequential resume with a gap (fact 1's shard set aside as damaged): the later edit was made after a lost one */
    char h[256];
    dir_of(h, "h");
    static const char *const gap[] = {"edit.shard-0-0.h5", "edit.shard-0-2.h5"};
    if (rank == 0) prepare_dir(e, h, gap, 2);
    MPI_Barrier(MPI_COMM_WORLD);
    int rch = run_edit(cfg, h, "edit.mode=sequential", NULL, MPI_COMM_WORLD, &err);
    CHECK(rch != 0 && strstr(err.msg, "sequential mode") && strstr(err.msg, "run.resume = false"),
          "a sequential resume over a gap must be refused: %s", rch ? err.msg : "it ran");
    /* run.resume = false over the complete shards of run a: they are removed and redone, not merged twice */
    stored sr = {0};
    int rr = run_edit(cfg, a, "run.resume=false", NULL, MPI_COMM_WORLD, &err);
    CHECK(rr == 0, "resume=false over old shards: %s", err.msg);
    if (rr == 0 && etl_read_stored(a, 64, MPI_COMM_WORLD, &sr, &err) == 0 && sa.s.n_facts)
        check_same(&sa, &sr, 0.0, "resume=false rerun vs first run");
    etl_stored_free(&sr);
    /* activation offsets through the whole stage: one float per entry */
    char g[256];
    dir_of(g, "g");
    stored sg = {0};
    if (rank == 0) prepare_dir(a, g, NULL, 0);
    MPI_Barrier(MPI_COMM_WORLD);
    int rcg = run_edit(cfg, g, "edit.param=activation_offset", "edit.lr=1.0", MPI_COMM_WORLD, &err);
    CHECK(rcg == 0, "activation_offset: %s", err.msg);
    if (rcg == 0 && etl_read_stored(g, 64, MPI_COMM_WORLD, &sg, &err) == 0) {
        check_outputs(&sg, "activation_offset");
        CHECK(sg.s.kind == ENGINE_EDIT_ACTIVATION_OFFSET && sg.s.width == 1, "stored kind %d, width %zu",
              (int)sg.s.kind, sg.s.width);
    }
    etl_stored_free(&sg);
    /* a run resumed over a shard written before the curves: edit.h5 is merged without them */
    char old_dir[256], old_shard[512];
    dir_of(old_dir, "old_shard");
    path_join(old_shard, sizeof old_shard, old_dir, "edit.shard-0-0.h5");
    stored sh = {0};
    if (rank == 0) {
        prepare_dir(a, old_dir, one, 1);
        strip_curves(old_shard);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    int rco = run_edit(cfg, old_dir, NULL, NULL, MPI_COMM_WORLD, &err);
    CHECK(rco == 0, "resume over a shard without curves: %s", err.msg);
    if (rco == 0 && etl_read_stored(old_dir, 64, MPI_COMM_WORLD, &sh, &err) == 0) {
        check_same(&sa, &sh, 0.0, "resume over a shard without curves vs uninterrupted");
        CHECK(!sh.curve_nll && !sh.rank, "edit.h5 over a shard without curves must have none");
    }
    etl_stored_free(&sh);
    etl_stored_free(&sa), etl_stored_free(&sb), etl_stored_free(&sc), etl_stored_free(&sd), etl_stored_free(&se), etl_stored_free(&sf);
    int total = testutil_mpi_tmpdir_end(MPI_COMM_WORLD, root);
    int status = rank == 0 ? testutil_finish("mpi_test_edit") : 0;
    MPI_Finalize();
    return total ? 1 : status;
}
