/* model_load: loads a GGUF file or HF folder into one fp32 block, private or in node-shared MPI memory. */
#include "model/model_load_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mpi_status.h"
#include "base/sha256.h"
#include "tokenizer/tokenizer.h"

/* The open model source: exactly one of gguf / hf is set. */
typedef struct {
    gguf_file *gguf;
    hf_model *hf;
} model_source;

static void source_close(model_source *src) {
    gguf_close(src->gguf);
    model_hf_close(src->hf);
    memset(src, 0, sizeof *src);
}

/* Opens the source and derives m->cfg, m->name, the plan and the tokenizer; every rank does this. */
static int open_and_plan(model *m, model_source *src, model_plan *plan, lafn_err *err) {
    struct stat st;
    if (stat(m->path, &st) != 0) return lafn_err_set(err, "%s: no such file or folder", m->path);
    if (S_ISDIR(st.st_mode)) {
        if (model_hf_open(&src->hf, m->path, &m->cfg, &m->name, err)) return -1;
    } else {
        if (gguf_open(&src->gguf, m->path, err)) return -1;
        if (model_gguf_config(src->gguf, &m->cfg, &m->name, err)) return -1;
    }
    m->w.layers = calloc((size_t)m->cfg.n_layer, sizeof *m->w.layers);
    if (!m->w.layers) return lafn_err_set(err, "%s: out of memory", m->path);
    if (model_plan_build(plan, m, err)) return -1;
    if (src->gguf ? model_gguf_check(src->gguf, plan, err) : model_hf_check(src->hf, plan, err)) return -1;
    m->block_floats = plan->n_floats;
    int rc = src->gguf ? tokenizer_from_gguf(&m->tok, src->gguf, err) : tokenizer_from_hf_folder(&m->tok, m->path, err);
    if (rc) return lafn_err_wrap(err, "%s: tokenizer", m->path);
    if (tokenizer_vocab_size(m->tok) > m->cfg.vocab)
        return lafn_err_set(err, "%s: tokenizer has %d pieces but the embedding only %d rows", m->path,
                            tokenizer_vocab_size(m->tok), m->cfg.vocab);
    return 0;
}

/* Fills the block and the identity (sha256, file_bytes); the owner rank only. */
static int fill_block(model *m, model_source *src, const model_plan *plan, lafn_err *err) {
    char hex[65];
    if (src->gguf) {
        if (model_gguf_fill(src->gguf, plan, m->block, err)) return -1;
        sha256_ctx ctx;
        uint8_t dig[32];
        sha256_init(&ctx);
        sha256_update(&ctx, gguf_file_bytes(src->gguf), (size_t)gguf_file_size(src->gguf));
        sha256_final(&ctx, dig);
        sha256_hex(dig, hex);
        m->file_bytes = gguf_file_size(src->gguf);
    } else {
        if (model_hf_fill(src->hf, plan, m->block, err)) return -1;
        if (model_hf_hash(src->hf, hex, &m->file_bytes, err)) return -1;
    }
    m->sha256 = strdup(hex);
    if (!m->sha256) return lafn_err_set(err, "%s: out of memory", m->path);
    return 0;
}

/* Allocates the block: private, or a shared window owned by node rank 0. */
static int alloc_block(model *m, MPI_Comm comm, int rank, lafn_err *err) {
    size_t bytes = m->block_floats * sizeof(float);
    if (comm == MPI_COMM_NULL) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
            return lafn_err_set(err, "%s: cannot allocate %zu bytes for the weights", m->path, bytes);
        m->block = p;
        return 0;
    }
    void *base = NULL;
    MPI_Aint size = rank == 0 ? (MPI_Aint)bytes : 0, qsize;
    int disp;
    MPI_Win_allocate_shared(size, sizeof(float), MPI_INFO_NULL, comm, &base, &m->win);
    MPI_Win_shared_query(m->win, 0, &qsize, &disp, &base);
    if ((size_t)qsize < bytes)
        return lafn_err_set(err, "%s: MPI_Win_shared_query gave %zu bytes; expected %zu", m->path, (size_t)qsize, bytes);
    m->block = base;
    return 0;
}

/* Shared load: allocate collectively, rank 0 fills, everyone syncs and sees the same status. */
static int load_shared(model *m, model_source *src, const model_plan *plan, MPI_Comm comm, lafn_err *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (mpi_status_agree(comm, alloc_block(m, comm, rank, err), err)) return -1;
    MPI_Win_lock_all(MPI_MODE_NOCHECK, m->win);
    int rc = rank == 0 ? fill_block(m, src, plan, err) : 0;
    MPI_Win_sync(m->win);
    MPI_Barrier(comm);
    MPI_Win_sync(m->win);
    MPI_Win_unlock_all(m->win);
    if (mpi_status_agree(comm, rc, err)) return -1;
    char hex[65] = {0};
    uint64_t bytes = m->file_bytes;
    if (rank == 0) memcpy(hex, m->sha256, 65);
    MPI_Bcast(hex, 65, MPI_CHAR, 0, comm);
    MPI_Bcast(&bytes, 1, MPI_UINT64_T, 0, comm);
    if (rank != 0) {
        m->file_bytes = bytes;
        m->sha256 = strdup(hex);
    }
    return mpi_status_agree(comm, m->sha256 ? 0 : lafn_err_set(err, "%s: out of memory", m->path), err);
}

int model_load(model **out, const char *path, MPI_Comm node_comm, lafn_err *err) {
    *out = NULL;
    model_source src = {0};
    model_plan plan = {0};
    model *m = calloc(1, sizeof *m);
    if (!m) return lafn_err_set(err, "%s: out of memory", path);
    m->win = MPI_WIN_NULL;
    m->path = strdup(path);
    int rc = m->path ? open_and_plan(m, &src, &plan, err) : lafn_err_set(err, "%s: out of memory", path);
    if (node_comm == MPI_COMM_NULL) {
        if (rc == 0) rc = alloc_block(m, node_comm, 0, err);
        if (rc == 0) rc = fill_block(m, &src, &plan, err);
    } else {
        if (mpi_status_agree(node_comm, rc, err) == 0) rc = load_shared(m, &src, &plan, node_comm, err);
        else rc = -1;
    }
    if (rc) goto fail;
    model_plan_bind(&plan, m, m->block);
    model_plan_free(&plan);
    source_close(&src);
    *out = m;
    return 0;
fail:
    model_plan_free(&plan);
    source_close(&src);
    model_free(m);
    return -1;
}

void model_free(model *m) {
    if (!m) return;
    if (m->win != MPI_WIN_NULL) MPI_Win_free(&m->win);
    else free(m->block);
    if (m->tok) tokenizer_free(m->tok);
    free(m->w.layers);
    free(m->path);
    free(m->sha256);
    free(m->name);
    free(m);
}

int model_layer_is_local(const model_config *cfg, int i) {
    if (cfg->sliding_window <= 0 || cfg->sliding_pattern <= 0) return 0;
    return (i + 1) % cfg->sliding_pattern != 0;
}
