/* test_tokenizer: edge cases (empty, spaces, newlines, emoji, invalid UTF-8, Thai/Chinese) against llama.cpp and HF tokenizers ids, HF folders, API contracts. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "base/utf8.h"

#define MAX_IDS 1024

static cJSON *read_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    cJSON *j = NULL;
    if (buf && fread(buf, 1, (size_t)size, fp) == (size_t)size) j = cJSON_ParseWithLength(buf, (size_t)size);
    free(buf);
    fclose(fp);
    return j;
}

/* Hex string -> bytes (NUL-terminated; *n = byte count). */
static char *unhex(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        s[i] = (char)v;
    }
    s[len] = '\0';
    *n = len;
    return s;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Encodes text and compares with the reference id array; returns 1 if identical. */
static int compare_ids(const tokenizer *t, const char *name, const char *text, size_t len, const cJSON *ref)
{
    int32_t ids[MAX_IDS];
    size_t n = 0;
    lafn_err err;
    int rc = tokenizer_encode(t, text, len, tokenizer_adds_bos(t), ids, MAX_IDS, &n, &err);
    CHECK(rc == 0, "%s: encode failed: %s", name, err.msg);
    int same = rc == 0 && n == (size_t)cJSON_GetArraySize(ref);
    for (size_t i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(ref, (int)i)->valueint;
    CHECK(same, "%s: ids differ from the reference for '%s'", name, text);
    if (!same) {
        print_ids("ours", ids, n);
        int32_t want[MAX_IDS];
        size_t m = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ref) if (m < MAX_IDS) want[m++] = e->valueint;
        print_ids("reference", want, m);
    }
    return same;
}

/* decode(encode(text)); returns 1 if it gives text back. */
static int roundtrip(const tokenizer *t, const char *text, size_t len, const char *want, size_t want_len)
{
    int32_t ids[MAX_IDS];
    size_t n = 0;
    lafn_err err;
    if (tokenizer_encode(t, text, len, 1, ids, MAX_IDS, &n, &err) != 0) return 0;
    char *back = tokenizer_decode(t, ids, n, &err);
    int ok = back && strlen(back) == want_len && memcmp(back, want, want_len) == 0;
    free(back);
    return ok;
}

/* The GGUF models on the edge cases, against llama.cpp. */
static void test_gguf_edges(const cJSON *fx)
{
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fx, "cases");
    const cJSON *model;
    cJSON_ArrayForEach(model, cJSON_GetObjectItemCaseSensitive(fx, "gguf")) {
        char rel[512];
        snprintf(rel, sizeof(rel), "models/%s", model->string);
        lafn_err err;
        gguf_file *f = NULL;
        tokenizer *t = NULL;
        int ok = gguf_open(&f, testutil_repo_path(rel), &err) == 0 && tokenizer_from_gguf(&t, f, &err) == 0;
        CHECK(ok, "%s: %s", rel, err.msg);
        size_t same = 0, total = 0, rt_ok = 0, rt_total = 0;
        for (int i = 0; ok && i < cJSON_GetArraySize(cases); i++) {
            const cJSON *c = cJSON_GetArrayItem(cases, i), *ref = cJSON_GetArrayItem(model, i);
            size_t len;
            char *text = unhex(cJSON_GetObjectItemCaseSensitive(c, "hex")->valuestring, &len);
            const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
            if (cJSON_IsArray(ref)) {
                total++;
                same += compare_ids(t, name, text, len, ref);
            }
            rt_total++;
            int rt = roundtrip(t, text, len, text, len);
            rt_ok += rt;
            /* expected exceptions: invalid UTF-8 in byte-level BPE (llama.cpp turns it into U+FFFD)
             * and a literal "▁" in SentencePiece text (it decodes as a space) */
            int literal_block = strstr(text, "\xE2\x96\x81") != NULL;
            if (!rt) printf("%s: '%s' does not round-trip\n", model->string, name);
            if (tokenizer_get_kind(t) == TOKENIZER_KIND_SPM && !literal_block)
                CHECK(rt, "%s: SentencePiece byte fallback must round-trip '%s'", model->string, name);
            free(text);
        }
        printf("%s: edge cases identical to llama.cpp %zu of %zu, round trips %zu of %zu\n", model->string, same,
               total, rt_ok, rt_total);
        tokenizer_free(t);
        gguf_close(f);
    }
}

/* The text of reference entry i: an edge case, then the corpus. */
static char *text_at(const cJSON *fx, int i, size_t *len)
{
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fx, "cases");
    int n_cases = cJSON_GetArraySize(cases);
    const cJSON *c = i < n_cases ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cases, i), "hex")
                                 : cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(fx, "corpus_hex"), i - n_cases);
    return unhex(c->valuestring, len);
}

/* Tiny GGUF vocabularies (one per supported tokenizer.ggml.pre, and SentencePiece
 * with add_space_prefix) against llama.cpp. */
static void test_tiny_ggufs(const cJSON *fx)
{
    const cJSON *file;
    cJSON_ArrayForEach(file, cJSON_GetObjectItemCaseSensitive(fx, "gguf_tiny")) {
        char rel[512];
        snprintf(rel, sizeof(rel), "tests/fixtures/tokenizer/%s", file->string);
        lafn_err err;
        gguf_file *f = NULL;
        tokenizer *t = NULL;
        int ok = gguf_open(&f, testutil_repo_path(rel), &err) == 0 && tokenizer_from_gguf(&t, f, &err) == 0;
        CHECK(ok, "%s: %s", rel, err.msg);
        size_t same = 0, total = 0;
        for (int i = 0; ok && i < cJSON_GetArraySize(file); i++) {
            const cJSON *ref = cJSON_GetArrayItem(file, i);
            if (!cJSON_IsArray(ref)) continue;
            size_t len;
            char *text = text_at(fx, i, &len);
            total++;
            same += compare_ids(t, file->string, text, len, ref);
            free(text);
        }
        printf("%s: identical to llama.cpp on %zu of %zu texts\n", file->string, same, total);
        tokenizer_free(t);
        gguf_close(f);
    }
}

/* One tiny HF folder: ids and decoded text against HF tokenizers. */
static void test_hf_folder(const cJSON *fx, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/fixtures/tokenizer/%s", name);
    lafn_err err;
    tokenizer *t = NULL;
    int ok = tokenizer_from_hf_folder(&t, testutil_repo_path(rel), &err) == 0;
    CHECK(ok, "%s: %s", rel, err.msg);
    if (!ok) return;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(fx, "hf"), name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ref, "ids");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(ref, "decoded_hex");
    size_t same = 0, total = 0;
    for (int i = 0; i < cJSON_GetArraySize(ids); i++) {
        const cJSON *r = cJSON_GetArrayItem(ids, i);
        if (!cJSON_IsArray(r)) continue;
        size_t len, want_len;
        char *text = text_at(fx, i, &len);
        char *want = unhex(cJSON_GetArrayItem(dec, i)->valuestring, &want_len);
        total++;
        same += compare_ids(t, name, text, len, r);
        int32_t v[MAX_IDS];
        size_t n = 0;
        if (tokenizer_encode(t, text, len, tokenizer_adds_bos(t), v, MAX_IDS, &n, &err) == 0) {
            char *back = tokenizer_decode(t, v, n, &err);
            CHECK(back && strcmp(back, want) == 0, "%s: decode gives '%s', HF gives '%s'", name,
                  back ? back : err.msg, want);
            free(back);
        }
        free(text);
        free(want);
    }
    printf("%s: identical to HF tokenizers on %zu of %zu texts\n", name, same, total);
    tokenizer_free(t);
}

/* utf8_nfc against Python's unicodedata.normalize("NFC"). */
static void test_nfc(const cJSON *fx)
{
    const cJSON *c;
    size_t same = 0, total = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(fx, "nfc")) {
        size_t n, want_n, got_n = 0;
        char *in = unhex(cJSON_GetArrayItem(c, 0)->valuestring, &n);
        char *want = unhex(cJSON_GetArrayItem(c, 1)->valuestring, &want_n);
        char *got = NULL;
        int ok = utf8_nfc(in, n, &got, &got_n) == 0 && got_n == want_n && memcmp(got, want, want_n) == 0;
        CHECK(ok, "NFC of '%s' is '%s', Python gives '%s'", in, got ? got : "(error)", want);
        same += ok;
        total++;
        free(in);
        free(want);
        free(got);
    }
    printf("utf8_nfc: identical to Python's NFC on %zu of %zu strings\n", same, total);
}

/* Contracts: short buffers, bad ids, unknown pre-tokenizer, missing folder. */
static void test_contracts(void)
{
    lafn_err err;
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    int ok = gguf_open(&f, testutil_default_model(), &err) == 0 && tokenizer_from_gguf(&t, f, &err) == 0;
    CHECK(ok, "default model: %s", err.msg);
    if (ok) {
        int32_t ids[3], all[64];
        size_t n = 0, n_all = 0;
        const char *s = "The capital of France is Paris.";
        CHECK(tokenizer_encode(t, s, strlen(s), 1, all, 64, &n_all, &err) == 0, "%s", err.msg);
        CHECK(tokenizer_encode(t, s, strlen(s), 1, ids, 3, &n, &err) == 0 && n == n_all && n > 3,
              "a short buffer must report the full count %zu, got %zu", n_all, n);
        CHECK(memcmp(ids, all, sizeof(ids)) == 0, "a short buffer must receive the first ids");
        CHECK(all[0] == tokenizer_bos(t) && tokenizer_adds_bos(t), "Gemma adds BOS %d", tokenizer_bos(t));
        int32_t bad = tokenizer_vocab_size(t);
        CHECK(tokenizer_decode(t, &bad, 1, &err) == NULL && strstr(err.msg, "outside the vocabulary"),
              "an out-of-range id must fail: %s", err.msg);
        CHECK(tokenizer_piece(t, bad) == NULL && tokenizer_piece(t, -1) == NULL, "piece of a bad id must be NULL");
        CHECK(tokenizer_piece(t, 2) && strcmp(tokenizer_piece(t, 2), "<bos>") == 0, "piece 2 is '%s'",
              tokenizer_piece(t, 2));
    }
    tokenizer_free(t);
    gguf_close(f);
    tok_pretok p = { 0 };
    int ign, bos;
    CHECK(tok_pretok_by_name(&p, "no-such-pre", 11, &ign, &bos, &err) == -1 && strstr(err.msg, "no-such-pre"),
          "an unknown pre-tokenizer must be named in the error: %s", err.msg);
    tok_pretok_free(&p);
    CHECK(tokenizer_from_hf_folder(&t, "/nonexistent-folder", &err) == -1 && strstr(err.msg, "/nonexistent-folder"),
          "a missing folder must be named: %s", err.msg);
}

/* Loads the tokenizer of one folder and round-trips a sentence; returns 1 if it has a tokenizer.json. */
static int check_model_folder(const char *path)
{
    char json[4096 + 640];
    snprintf(json, sizeof(json), "%s/tokenizer.json", path);
    struct stat st;
    if (stat(json, &st) != 0) return 0;
    lafn_err err;
    tokenizer *t = NULL;
    CHECK(tokenizer_from_hf_folder(&t, path, &err) == 0, "%s: %s", path, err.msg);
    const char *s = "Paris is the capital of France.";
    if (t) CHECK(roundtrip(t, s, strlen(s), s, strlen(s)), "%s: round trip of '%s'", path, s);
    tokenizer_free(t);
    return 1;
}

/* Every model folder among the other fixtures (tests/fixtures/<x>/<folder>/tokenizer.json)
 * must load its tokenizer and round-trip text. */
static void test_fixture_models(void)
{
    char base[4096];
    snprintf(base, sizeof(base), "%s", testutil_repo_path("tests/fixtures"));
    DIR *top = opendir(base);
    int n = 0;
    struct dirent *e, *g;
    while (top && (e = readdir(top)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "tokenizer") == 0) continue;
        char sub[4096 + 256];
        snprintf(sub, sizeof(sub), "%s/%s", base, e->d_name);
        DIR *d = opendir(sub);
        while (d && (g = readdir(d)) != NULL) {
            char path[4096 + 512];
            snprintf(path, sizeof(path), "%s/%s", sub, g->d_name);
            if (g->d_name[0] != '.') n += check_model_folder(path);
        }
        if (d) closedir(d);
    }
    if (top) closedir(top);
    printf("fixture model folders with a tokenizer.json: %d loaded\n", n);
}

int main(void)
{
    cJSON *fx = read_json(testutil_repo_path("tests/fixtures/tokenizer/edge_cases.json"));
    CHECK(fx != NULL, "tests/fixtures/tokenizer/edge_cases.json unreadable");
    if (fx) {
        test_gguf_edges(fx);
        test_hf_folder(fx, "hf_spm");
        test_hf_folder(fx, "hf_bytelevel");
        test_hf_folder(fx, "hf_split");
        test_tiny_ggufs(fx);
        test_nfc(fx);
    }
    test_contracts();
    test_fixture_models();
    cJSON_Delete(fx);
    return testutil_finish("test_tokenizer");
}
