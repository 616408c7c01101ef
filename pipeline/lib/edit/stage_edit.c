/* stage_edit: the edit stage's run — inputs, resume, the three modes (single, batch, sequential), shards and merge. */
#include "edit/stage_edit_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_method.h"
#include "paraphrase/paraphrase.h"

static void count_records(edit_stage *S, const edit_record *r, size_t n);

/* Reads the edit knobs. */
static int read_knobs(edit_stage *S, lafn_err *err) {
    const lafn_config *c = &S->ctx.cfg;
    int64_t bs, sf;
    double key_depth, key_floor, key_margin;
    const char *set;
    if (edit_hparams_from_config(c, &S->h, err) || edit_trigger_from_config(c, &S->trigger, err) ||
        config_get_string(c, "edit.mode", &S->mode, err) || config_get_int(c, "edit.batch_size", &bs, err) ||
        config_get_int(c, "run.shard_facts", &sf, err) ||
        config_get_string(c, "locate.neuron_set", &set, err) || config_get_float(c, "edit.key_depth", &key_depth, err) || config_get_float(c, "edit.key_floor", &key_floor, err) ||
        config_get_float(c, "edit.key_margin", &key_margin, err))
        return -1;
    S->key_layer = (int)floor(key_depth * S->ctx.m->cfg.n_layer);
    S->key_floor = (float)key_floor;
    S->key_margin = (float)key_margin;
    S->language_specific = strcmp(set, "language_specific") == 0;
    S->batch_size = strcmp(S->mode, "batch") == 0 ? (size_t)bs : 1;
    S->shard_facts = (size_t)sf;
    return 0;
}

/* A baseline's neurons: every neuron of its layers for every fact of the set (locate.h5 is not read). */
static int baseline_neurons(edit_stage *S, lafn_err *err) {
    const char *method = stage_edit_baseline(&S->ctx.cfg);
    int layers[64], n_layers;
    size_t n = S->ctx.facts.n_facts;
    int64_t *idx = malloc((n + 1) * sizeof *idx);
    if (!idx) return lafn_err_set(err, "edit: out of memory for %zu facts", n);
    for (size_t i = 0; i < n; i++) idx[i] = (int64_t)S->ctx.facts.facts[i].index;
    int rc = edit_method_layers(&S->ctx.cfg, method, S->ctx.m->cfg.n_layer, layers, 64, &n_layers, err);
    if (rc == 0) rc = edit_neurons_whole_layers(idx, n, layers, n_layers, S->ctx.m->cfg.d_ffn, &S->nr, err);
    free(idx);
    return rc;
}

/* The neurons to edit (locate.h5 of this run, or a baseline's whole layers), the edit views and the row of
 * every fact. */
static int read_inputs(edit_stage *S, lafn_err *err) {
    char path[4096] = "edit.method", locate_id[STAGE_RUN_ID_LEN + 1];
    if (S->h.method != EDIT_METHOD_LAFN) {
        if (baseline_neurons(S, err)) return -1;
    } else {
        if (stage_run_id(&S->ctx.cfg, S->ctx.m->sha256, "locate", locate_id, err)) return -1;
        if (snprintf(path, sizeof path, "%s/locate.h5", S->ctx.out_dir) >= (int)sizeof path)
            return lafn_err_set(err, "run.output_dir too long: %.80s", S->ctx.out_dir);
        if (edit_neurons_read(path, locate_id, S->ctx.m->cfg.n_layer, S->ctx.m->cfg.d_ffn, S->ctx.comm, &S->nr, err))
            return -1;
    }
    size_t n = S->ctx.facts.n_facts;
    S->views = calloc(n, sizeof *S->views);
    S->row = malloc(n * sizeof *S->row);
    if (!S->views || !S->row) return lafn_err_set(err, "edit: out of memory for %zu facts", n);
    for (size_t i = 0; i < n; i++) {
        const facts_record *f = &S->ctx.facts.facts[i];
        if ((S->row[i] = edit_neurons_find(&S->nr, (int64_t)f->index)) < 0)
            return lafn_err_set(err, "%s: fact %s (index %zu) is missing; run locate on the same facts", path, f->id,
                                f->index);
        if (facts_edit_view_build(f, &S->views[i], err)) return -1;
    }
    return 0;
}

/* One line per finished fact: status, steps, mean and worst NLL over its languages before and after. */
static void log_record(const edit_stage *S, const edit_record *r) {
    if (!S->ctx.log) return;
    static const char *const names[] = {"edited", "no LAFN found", "stop_nll not reached"};
    double b = 0.0, a = 0.0, worst = 0.0;
    int n = 0;
    for (size_t l = 0; l < S->ctx.facts.n_langs; l++)
        if (r->nll_after[l] == r->nll_after[l]) { /* not NaN */
            b += r->nll_before[l], a += r->nll_after[l], n++;
            if (r->nll_after[l] > worst) worst = r->nll_after[l];
        }
    const double *t = r->seconds;
    fprintf(S->ctx.log, "edit: rank %d: fact %lld: %s, %d steps, NLL %.3f -> %.3f (worst language %.3f), %d gate "
            "neurons, %.1f s (layers below the edit %.1f, edited layers %.1f + %.1f back, LM head %.1f + %.1f back, "
            "loss %.1f, Adam %.2f; gate calibration %.1f)\n", S->ctx.rank, (long long)r->fact, names[r->status],
            r->steps, n ? b / n : 0.0, n ? a / n : 0.0, worst, r->n_gate, r->wall_seconds, t[EDIT_PHASE_LOWER],
            t[EDIT_PHASE_LAYERS_FWD], t[EDIT_PHASE_LAYERS_BWD], t[EDIT_PHASE_HEAD_FWD], t[EDIT_PHASE_HEAD_BWD],
            t[EDIT_PHASE_LOSS], t[EDIT_PHASE_ADAM], t[EDIT_PHASE_GATE]);
    fflush(S->ctx.log);
}

/* Writes the pending records as this rank's shard number seq. */
static int flush(edit_stage *S, size_t seq, lafn_err *err) {
    if (!S->n_pending) return 0;
    count_records(S, S->pending, S->n_pending);
    int rc = edit_records_write(S->ctx.out_dir, &S->ctx.prov, S->ctx.rank, seq, S->pending, S->n_pending,
                                S->ctx.facts.n_langs, (size_t)S->ctx.m->cfg.d_model, err);
    for (size_t i = 0; i < S->n_pending; i++) edit_record_free(&S->pending[i]);
    S->n_pending = 0;
    return rc;
}

/* Room for n more pending records, zeroed. */
static edit_record *pending_grow(edit_stage *S, size_t n, lafn_err *err) {
    if (S->n_pending + n > S->cap_pending) {
        size_t cap = (S->n_pending + n) * 2;
        edit_record *p = realloc(S->pending, cap * sizeof *p);
        if (!p) { lafn_err_set(err, "edit: out of memory for %zu pending records", cap); return NULL; }
        S->pending = p;
        S->cap_pending = cap;
    }
    memset(S->pending + S->n_pending, 0, n * sizeof *S->pending);
    return S->pending + S->n_pending;
}

/* Tokens of a fact's edit prompts with their targets: its cost for stage_assign. */
static size_t fact_cost(const edit_stage *S, size_t i) {
    const facts_edit_view *v = &S->views[i];
    size_t cost = 1;
    for (size_t l = 0; l < v->n_langs; l++)
        for (size_t k = 0; k < v->langs[l].n_prompts; k++) {
            stage_sequence s = {0};
            lafn_err e;
            if (stage_sequence_build(S->ctx.m->tok, v->langs[l].lang, v->langs[l].prompts[k], v->langs[l].target, &s,
                                     &e) == 0)
                cost += s.n_prompt + s.n_target;
            stage_sequence_free(&s);
        }
    return cost;
}

/* single mode, one fact: optimised alone on this rank. */
static int single_process(void *user, size_t i, lafn_err *err) {
    edit_stage *S = user;
    edit_record *rec = pending_grow(S, 1, err);
    if (!rec) return -1;
    S->n_pending++;
    if (edit_unit_run(S, &i, 1, (long long)i, MPI_COMM_SELF, NULL, rec, err)) return -1;
    log_record(S, rec);
    return 0;
}

static int single_commit(void *user, size_t seq, lafn_err *err) {
    return flush(user, seq, err);
}

/* single: the fact loop — facts dealt to ranks by token count, each optimised alone on its rank. */
static int run_single(edit_stage *S, lafn_err *err) {
    size_t n = S->ctx.facts.n_facts, n_mine = 0;
    size_t *cost = malloc((n + 1) * sizeof *cost);
    int rc = cost ? 0 : lafn_err_set(err, "edit: out of memory for %zu facts", n);
    for (size_t i = 0; rc == 0 && i < n; i++) cost[i] = edit_fact_has_neurons(S, i) ? fact_cost(S, i) : 1;
    if (mpi_status_agree(S->ctx.comm, rc, err) == 0) {
        stage_loop_fns fns = {single_process, single_commit, S};
        rc = stage_loop_run(&S->ctx, cost, &fns, &n_mine, err);
    } else {
        rc = -1;
    }
    free(cost);
    return rc;
}

/* batch: consecutive batches of batch_size facts, each optimised by a group of
 * min(ranks, batch_size) ranks (its sequences dealt round-robin, gradients
 * reduced on the group's communicator); groups take batches in turn. */
static int run_batch(edit_stage *S, lafn_err *err) {
    size_t n = S->ctx.facts.n_facts, bs = S->batch_size;
    int g = (int)(bs < (size_t)S->ctx.size ? bs : (size_t)S->ctx.size), n_groups = S->ctx.size / g;
    int color = S->ctx.rank / g < n_groups ? S->ctx.rank / g : MPI_UNDEFINED, grank = -1, rc = 0;
    MPI_Comm gcomm = MPI_COMM_NULL;
    MPI_Comm_split(S->ctx.comm, color, S->ctx.rank, &gcomm);
    if (gcomm != MPI_COMM_NULL) MPI_Comm_rank(gcomm, &grank);
    size_t *members = malloc((bs + 1) * sizeof *members);
    if (!members) rc = lafn_err_set(err, "edit: out of memory for a batch of %zu", bs);
    for (size_t k = 0; rc == 0 && gcomm != MPI_COMM_NULL && k * bs < n; k++) {
        if ((int)(k % (size_t)n_groups) != color) continue;
        size_t m = 0, n_done = 0;
        for (size_t i = k * bs; i < n && i < (k + 1) * bs; i++) { members[m++] = i; n_done += S->res.done[i]; }
        if (n_done == m) continue;
        if (n_done) { rc = lafn_err_set(err, "edit: batch %zu is only partly in the committed shards", k); break; }
        edit_record *rec = pending_grow(S, m, err);
        if (!rec) { rc = -1; break; }
        S->n_pending += m;
        rc = edit_unit_run(S, members, m, (long long)k, gcomm, NULL, rec, err);
        if (grank != 0) {
            for (size_t i = 0; i < m; i++) edit_record_free(&rec[i]);
            S->n_pending -= m;
        } else if (rc == 0) {
            for (size_t i = 0; i < m; i++) log_record(S, &rec[i]);
            stage_progress_step(&S->prog, m);
            if (S->n_pending >= S->shard_facts) rc = flush(S, S->res.next_seq++, err);
        }
    }
    if (rc == 0) rc = flush(S, S->res.next_seq++, err);
    free(members);
    if (gcomm != MPI_COMM_NULL) MPI_Comm_free(&gcomm);
    return rc;
}

/* The edits of the committed shards (sequential resume), read by every rank. */
static int read_shard_stores(edit_stage *S, edit_store **out, size_t *n_out, lafn_err *err) {
    h5out_shard *sh = NULL;
    size_t n_sh = 0;
    *out = NULL;
    *n_out = 0;
    if (!S->res.n_done) return 0;
    if (h5out_shard_list(S->ctx.out_dir, "edit", &sh, &n_sh, err)) return -1;
    int rc = 0;
    if (!(*out = calloc(n_sh + 1, sizeof **out))) rc = lafn_err_set(err, "edit: out of memory for %zu shards", n_sh);
    for (size_t i = 0; rc == 0 && i < n_sh; i++) {
        hid_t f = h5out_fopen(sh[i].path, H5F_ACC_RDONLY, H5P_DEFAULT, err);
        if (f < 0) { rc = lafn_err_wrap(err, "a committed shard"); break; }
        rc = h5out_check_identity(f, sh[i].path, "edit", S->ctx.run_id, err);
        if (rc == 0) rc = edit_store_read_file(f, sh[i].path, S->ctx.m->cfg.d_model, &(*out)[i], err);
        H5Fclose(f);
        if (rc == 0) *n_out = i + 1;
    }
    h5out_shards_free(sh, n_sh);
    return rc;
}

/* Cache entries over the resumed stores and the records made so far. */
static int history_cache(edit_cache_entry **e, const edit_store *st, size_t n_st, const edit_record *rec, size_t n_rec,
                         lafn_err *err) {
    size_t n = n_rec, k = 0;
    for (size_t i = 0; i < n_st; i++) n += st[i].n_facts;
    edit_cache_entry *grown = realloc(*e, (n + 1) * sizeof *grown);
    if (!grown) return lafn_err_set(err, "edit: out of memory for %zu cached edits", n);
    *e = grown;
    for (size_t i = 0; i < n_st; i++)
        for (size_t j = 0; j < st[i].n_facts; j++) grown[k++] = st[i].entries[j];
    for (size_t i = 0; i < n_rec; i++, k++)
        grown[k] = (edit_cache_entry){.group = rec[i].group, .n_gate = rec[i].n_gate, .gate_layer = rec[i].gate_layer,
                                      .gate_neuron = rec[i].gate_neuron,
                                      .gate_sign = rec[i].gate_sign, .gate_threshold = rec[i].gate_threshold,
                                      .n_keys = rec[i].n_keys, .key_layer = rec[i].key_layer, .keys = rec[i].keys,
                                      .key_center = rec[i].key_center, .key_threshold = rec[i].key_threshold,
                                      .n = rec[i].n_delta, .layer = rec[i].delta_layer,
                                      .neuron = rec[i].delta_neuron, .delta = rec[i].delta};
    return 0;
}

/* sequential: facts in set order, each optimised with every earlier edit
 * active where its gate fires — inherently serial, so every rank works on
 * every fact (its sequences dealt round-robin, gradients reduced); rank 0
 * writes the shards. */
static int run_sequential(edit_stage *S, lafn_err *err) {
    size_t n = S->ctx.facts.n_facts, n_st = 0, written = 0, n_hist = 0;
    edit_store *st = NULL;
    edit_cache_entry *entries = NULL;
    edit_record *hist = calloc(n + 1, sizeof *hist);
    int rc = hist ? 0 : lafn_err_set(err, "edit: out of memory for %zu records", n);
    for (size_t i = 1; rc == 0 && i < n; i++) /* a damaged shard set aside leaves a gap */
        if (S->res.done[i] && !S->res.done[i - 1])
            rc = lafn_err_set(err, "edit: sequential mode: fact %zu is in the committed shards but the earlier fact "
                              "%zu is not (a damaged shard was set aside?), so its edit was made after an edit that "
                              "is gone; run again with run.resume = false", S->ctx.facts.facts[i].index,
                              S->ctx.facts.facts[i - 1].index);
    if (mpi_status_agree(S->ctx.comm, rc ? rc : read_shard_stores(S, &st, &n_st, err), err)) rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (S->res.done[i]) continue;
        if ((rc = history_cache(&entries, st, n_st, hist, n_hist, err)) != 0) break;
        size_t n_entries = n_hist;
        for (size_t s = 0; s < n_st; s++) n_entries += st[s].n_facts;
        edit_cache fixed = {.kind = S->h.kind, .trigger = S->trigger, .n_entries = n_entries, .entries = entries,
                            .n_rivals = n_entries, .rivals = entries}; /* the edits made so far */
        if ((rc = edit_unit_run(S, &i, 1, (long long)i, S->ctx.comm, n_entries ? &fixed : NULL, &hist[n_hist], err)))
            break;
        n_hist++;
        if (S->ctx.rank == 0) {
            log_record(S, &hist[n_hist - 1]);
            stage_progress_step(&S->prog, 1);
        }
        if (S->ctx.rank == 0 && n_hist - written >= S->shard_facts) {
            count_records(S, hist + written, n_hist - written);
            rc = edit_records_write(S->ctx.out_dir, &S->ctx.prov, 0, S->res.next_seq++, hist + written, n_hist - written,
                                    S->ctx.facts.n_langs, (size_t)S->ctx.m->cfg.d_model, err);
            written = n_hist;
        }
        rc = mpi_status_agree(S->ctx.comm, rc, err);
    }
    if (rc == 0 && S->ctx.rank == 0 && n_hist > written) {
        count_records(S, hist + written, n_hist - written);
        rc = edit_records_write(S->ctx.out_dir, &S->ctx.prov, 0, S->res.next_seq++, hist + written, n_hist - written,
                                S->ctx.facts.n_langs, (size_t)S->ctx.m->cfg.d_model, err);
    }
    for (size_t i = 0; hist && i <= n_hist && i < n; i++) edit_record_free(&hist[i]);
    for (size_t i = 0; i < n_st; i++) edit_store_free(&st[i]);
    free(st);
    free(hist);
    free(entries);
    return rc;
}

/* batch and sequential modes: resume, progress and the mode's own order over the facts. */
static int run_grouped(edit_stage *S, lafn_err *err) {
    if (stage_resume_init(&S->res, &S->ctx, err)) return -1;
    stage_progress_init(&S->prog, S->ctx.comm, "edit", S->ctx.facts.n_facts, S->res.n_done,
                        S->ctx.rank == 0 ? S->ctx.log : NULL);
    int rc = !strcmp(S->mode, "batch") ? run_batch(S, err) : run_sequential(S, err);
    rc = mpi_status_agree(S->ctx.comm, rc, err);
    stage_progress_free(&S->prog);
    return rc;
}

/* Rank 0 prints the counts of the facts this run edited (the writing ranks counted them). */
static void log_summary(edit_stage *S) {
    long long c[4] = {S->counts[0], S->counts[1], S->counts[2], 0};
    double w[2] = {S->wall_sum, S->steps_sum};
    MPI_Allreduce(MPI_IN_PLACE, c, 3, MPI_LONG_LONG, MPI_SUM, S->ctx.comm);
    MPI_Allreduce(MPI_IN_PLACE, w, 2, MPI_DOUBLE, MPI_SUM, S->ctx.comm);
    long long run = c[0] + c[1] + c[2], opt = c[0] + c[2];
    if (S->ctx.rank == 0 && S->ctx.log)
        fprintf(S->ctx.log,
                "edit: %s/edit.h5: %zu facts (%zu resumed); this run: %lld edited, %lld no LAFN found, %lld did not "
                "reach stop_nll %g; mean %.1f steps, %.2f s per optimised fact (mode %s, param %s)\n",
                S->ctx.out_dir, S->ctx.facts.n_facts, S->ctx.facts.n_facts - (size_t)run, c[0], c[1], c[2],
                S->h.stop_nll, opt ? w[1] / (double)opt : 0.0, opt ? w[0] / (double)opt : 0.0, S->mode,
                S->h.kind == ENGINE_EDIT_VALUE_VECTOR ? "value_vector" : "activation_offset");
}

/* Adds written records to the counts of the summary. */
static void count_records(edit_stage *S, const edit_record *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        S->counts[r[i].status]++;
        if (r[i].status != EDIT_STATUS_NO_LAFN) {
            S->wall_sum += r[i].wall_seconds;
            S->steps_sum += r[i].steps;
        }
    }
}

void edit_stage_free(edit_stage *S) {
    for (size_t i = 0; S->views && i < S->ctx.facts.n_facts; i++) facts_edit_view_free(&S->views[i]);
    for (size_t i = 0; i < S->n_pending; i++) edit_record_free(&S->pending[i]);
    free(S->pending);
    free(S->views);
    free(S->row);
    free(S->key_center);
    edit_gate_refs_free(&S->refs);
    stage_resume_free(&S->res);
    edit_neurons_free(&S->nr);
    stage_context_free(&S->ctx);
}

int edit_stage_init(edit_stage *S, const char *cfg_path, char *const *overrides, int n_overrides,
                    const char *command_line, MPI_Comm comm, FILE *log, lafn_err *err) {
    memset(S, 0, sizeof *S);
    if (stage_context_init(&S->ctx, "edit", cfg_path, overrides, n_overrides, command_line, comm, log, err)) return -1;
    int rc = paraphrase_join(&S->ctx, err);
    if (rc == 0) rc = read_knobs(S, err);
    if (rc == 0) rc = read_inputs(S, err);
    if (mpi_status_agree(comm, rc, err) == 0 &&
        (S->h.method != EDIT_METHOD_LAFN || edit_gate_refs_compute(S, err) == 0)) /* baselines have no trigger */
        return 0;
    edit_stage_free(S);
    return lafn_err_wrap(err, "edit");
}

int stage_edit_run(const char *cfg_path, char *const *overrides, int n_overrides, const char *command_line,
                   MPI_Comm comm, FILE *log, lafn_err *err) {
    edit_stage S;
    if (edit_stage_init(&S, cfg_path, overrides, n_overrides, command_line, comm, log, err)) return -1;
    int rc;
    if (!strcmp(S.mode, "single")) rc = run_single(&S, err);
    else rc = run_grouped(&S, err);
    if (mpi_status_agree(comm, rc, err)) goto fail;
    h5out_dataset schema[EDIT_SCHEMA_MAX];
    size_t n_schema;
    edit_schema(schema, S.ctx.facts.n_langs, (size_t)S.h.steps + 1);
    if (edit_schema_for_shards(S.ctx.out_dir, comm, &n_schema, err)) goto fail;
    if (n_schema < EDIT_SCHEMA_MAX && S.ctx.rank == 0 && S.ctx.log)
        fprintf(S.ctx.log, "edit: some committed shards predate the loss curves: edit.h5 is merged without rank and "
                           "curve/ (run.resume=false redoes the edits with them)\n");
    if (h5out_merge(S.ctx.out_dir, &S.ctx.prov, schema, n_schema, comm, err)) goto fail;
    log_summary(&S);
    edit_stage_free(&S);
    return 0;
fail:
    lafn_err_wrap(err, "edit");
    edit_stage_free(&S);
    return -1;
}
