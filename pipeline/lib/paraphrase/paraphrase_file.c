/* paraphrase_file: paraphrase.h5's rows — the batch a rank writes into shards, and the whole file read back and checked. */
#include "paraphrase/paraphrase_int.h"

#include <stdlib.h>
#include <string.h>

#include "h5/h5global.h"

/* ---- writing ---- */

int paraphrase_batch_init(paraphrase_batch *b, size_t cap_facts, size_t n_langs, lafn_err *err) {
    *b = (paraphrase_batch){.cap_facts = cap_facts, .n_langs = n_langs};
    b->cand_lang.elem = b->cand_verdict.elem = sizeof(int32_t);
    b->text.elem = 1;
    b->facts = malloc((cap_facts + 1) * sizeof *b->facts);
    b->counts = malloc((cap_facts + 1) * (n_langs + 1) * PARAPHRASE_N_COUNTS * sizeof *b->counts);
    b->off_cand = calloc(cap_facts + 1, sizeof *b->off_cand);
    b->off_text = calloc(cap_facts + 1, sizeof *b->off_text);
    if (b->facts && b->counts && b->off_cand && b->off_text) return 0;
    paraphrase_batch_free(b);
    return lafn_err_set(err, "paraphrase: out of memory for a batch of %zu facts", cap_facts);
}

void paraphrase_batch_reset(paraphrase_batch *b) {
    b->n_facts = 0;
    b->cand_lang.n = b->cand_verdict.n = b->text.n = 0;
}

void paraphrase_batch_free(paraphrase_batch *b) {
    free(b->facts);
    free(b->counts);
    free(b->off_cand);
    free(b->off_text);
    grow_vec_free(&b->cand_lang);
    grow_vec_free(&b->cand_verdict);
    grow_vec_free(&b->text);
    memset(b, 0, sizeof *b);
}

int paraphrase_batch_begin(paraphrase_batch *b, int64_t index, lafn_err *err) {
    if (b->n_facts == b->cap_facts)
        return lafn_err_set(err, "paraphrase: batch of %zu facts is full (fact %lld)", b->cap_facts, (long long)index);
    size_t row = b->n_langs * PARAPHRASE_N_COUNTS;
    b->facts[b->n_facts] = index;
    for (size_t k = 0; k < row; k++) b->counts[b->n_facts * row + k] = -1;
    return 0;
}

int paraphrase_batch_add(paraphrase_batch *b, size_t l, char *const *texts, const paraphrase_verdict *verdicts,
                         size_t n, lafn_err *err) {
    int32_t *c = b->counts + (b->n_facts * b->n_langs + l) * PARAPHRASE_N_COUNTS;
    for (size_t k = 0; k < PARAPHRASE_N_COUNTS; k++) c[k] = 0;
    c[0] = (int32_t)n;
    for (size_t i = 0; i < n; i++) {
        int32_t slot = (int32_t)l, v = (int32_t)verdicts[i];
        c[1 + verdicts[i]]++;
        if (grow_vec_push(&b->cand_lang, &slot, 1, err) || grow_vec_push(&b->cand_verdict, &v, 1, err) ||
            grow_vec_push(&b->text, texts[i], strlen(texts[i]) + 1, err))
            return lafn_err_wrap(err, "paraphrase: candidates");
    }
    return 0;
}

void paraphrase_batch_end(paraphrase_batch *b) {
    b->n_facts++;
    b->off_cand[b->n_facts] = (int64_t)b->cand_lang.n;
    b->off_text[b->n_facts] = (int64_t)b->text.n;
}

void paraphrase_batch_datasets(const paraphrase_batch *b, h5out_dataset ds[PARAPHRASE_N_DATASETS]) {
    h5out_dataset d[PARAPHRASE_N_DATASETS] = {
        {"counts", H5OUT_ROWS, H5OUT_I32, b->n_langs * PARAPHRASE_N_COUNTS, b->counts, NULL},
        {"candidates/lang", H5OUT_CSR, H5OUT_I32, 0, b->cand_lang.v, b->off_cand},
        {"candidates/verdict", H5OUT_CSR, H5OUT_I32, 0, b->cand_verdict.v, b->off_cand},
        {"candidates/text", H5OUT_CSR, H5OUT_U8, 0, b->text.v, b->off_text},
    };
    memcpy(ds, d, sizeof d);
}

/* ---- reading ---- */

void paraphrase_table_free(paraphrase_table *t) {
    free(t->facts);
    free(t->off);
    free(t->lang);
    free(t->verdict);
    free(t->text);
    free(t->counts);
    free(t->text_block);
    memset(t, 0, sizeof *t);
}

/* The file's languages from its attribute lafn_langs ("en,zh,..."). */
static int read_langs(hid_t file, const char *path, paraphrase_table *t, lafn_err *err) {
    char *langs = NULL;
    if (h5out_attr_string(file, "lafn_langs", &langs, err) != 0) return -1;
    int rc = facts_lang_parse_list(langs, t->langs, FACTS_MAX_LANGS, &t->n_langs, err);
    if (rc == 0 && t->n_langs == 0) rc = lafn_err_set(err, "no languages");
    free(langs);
    return rc ? lafn_err_wrap(err, "%s: attribute lafn_langs", path) : 0;
}

/* Points text[i] at each candidate's string, checking that each row's block holds exactly its candidates. */
static int split_texts(const char *path, paraphrase_table *t, const int64_t *off_text, lafn_err *err) {
    if (!(t->text = malloc((t->n_cands + 1) * sizeof *t->text))) return lafn_err_set(err, "%s: out of memory", path);
    for (size_t r = 0; r < t->n_rows; r++) {
        int64_t at = off_text[r], end = off_text[r + 1];
        for (int64_t c = t->off[r]; c < t->off[r + 1]; c++) {
            const uint8_t *nul = at < end ? memchr(t->text_block + at, 0, (size_t)(end - at)) : NULL;
            if (!nul) return lafn_err_set(err, "%s: row %zu (fact %lld): candidates/text holds fewer texts than "
                                          "its %lld candidates", path, r, (long long)t->facts[r],
                                          (long long)(t->off[r + 1] - t->off[r]));
            t->text[c] = (char *)t->text_block + at;
            at = (int64_t)(nul - t->text_block) + 1;
        }
        if (at != end)
            return lafn_err_set(err, "%s: row %zu (fact %lld): candidates/text holds bytes past its candidates", path, r,
                                (long long)t->facts[r]);
    }
    return 0;
}

/* Checks the language slots and verdicts of every candidate. */
static int check_values(const char *path, const paraphrase_table *t, lafn_err *err) {
    for (size_t c = 0; c < t->n_cands; c++)
        if (t->lang[c] < 0 || (size_t)t->lang[c] >= t->n_langs || t->verdict[c] < 0 ||
            t->verdict[c] >= PARAPHRASE_N_VERDICTS)
            return lafn_err_set(err, "%s: candidate %zu has language slot %d (of %zu) and verdict %d (of %d)", path, c,
                                t->lang[c], t->n_langs, t->verdict[c], PARAPHRASE_N_VERDICTS);
    return 0;
}

int paraphrase_table_read(hid_t file, const char *path, paraphrase_table *t, lafn_err *err) {
    memset(t, 0, sizeof *t);
    h5out_dataset ds[PARAPHRASE_N_DATASETS];
    paraphrase_batch empty = {0};
    int64_t *off_verdict = NULL, *off_text = NULL, *no_offsets = NULL; /* counts are rows */
    if (h5global_check(file, path, err) || read_langs(file, path, t, err) ||
        h5out_read_all(file, path, "facts", H5OUT_I64, 0, (void **)&t->facts, &t->n_rows, err))
        goto fail;
    empty.n_langs = t->n_langs;
    paraphrase_batch_datasets(&empty, ds);
    if (h5out_read_dataset(file, path, &ds[0], t->n_rows, (void **)&t->counts, &no_offsets, err) ||
        h5out_read_dataset(file, path, &ds[1], t->n_rows, (void **)&t->lang, &t->off, err) ||
        h5out_read_dataset(file, path, &ds[2], t->n_rows, (void **)&t->verdict, &off_verdict, err) ||
        h5out_read_dataset(file, path, &ds[3], t->n_rows, (void **)&t->text_block, &off_text, err))
        goto fail;
    t->n_cands = (size_t)t->off[t->n_rows];
    if (memcmp(t->off, off_verdict, (t->n_rows + 1) * sizeof *t->off) != 0) {
        lafn_err_set(err, "%s: candidates/lang and candidates/verdict have different offsets", path);
        goto fail;
    }
    if (split_texts(path, t, off_text, err) || check_values(path, t, err)) goto fail;
    free(off_verdict);
    free(off_text);
    return 0;
fail:
    free(off_verdict);
    free(off_text);
    paraphrase_table_free(t);
    return -1;
}
