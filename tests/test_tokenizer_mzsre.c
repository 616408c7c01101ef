/* test_tokenizer_mzsre: our GGUF tokenizers against llama.cpp's ids (and HF's) on every MzsRE string, plus decode round trips. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/gguf.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    size_t compared, identical;     /* against llama.cpp */
    size_t hf_listed, hf_identical; /* strings where HF differs from llama.cpp: do we equal HF? */
    size_t roundtrip, roundtrip_ok;
    double seconds;
} tally;

static cJSON *read_json(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    cJSON *j = NULL;
    if (buf && fread(buf, 1, (size_t)size, fp) == (size_t)size) j = cJSON_ParseWithLength(buf, (size_t)size);
    if (!j) fprintf(stderr, "%s: cannot read or parse\n", path);
    free(buf);
    fclose(fp);
    return j;
}

static uint64_t fnv1a_ids(const int32_t *ids, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xFF;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

/* The string of one record side for a field name like "portability.New Question". */
static const char *field_string(const cJSON *side, const char *field)
{
    const char *dot = strchr(field, '.');
    if (dot) {
        char head[64];
        snprintf(head, sizeof(head), "%.*s", (int)(dot - field), field);
        side = cJSON_GetObjectItemCaseSensitive(side, head);
        field = dot + 1;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(side, field);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* The reference's full ids for this string, if the fixture kept them. */
static const cJSON *full_ids(const cJSON *fx, const char *file, const char *lang, const char *field, int index)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(fx, "full")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring, file) == 0 &&
            strcmp(cJSON_GetObjectItemCaseSensitive(e, "lang")->valuestring, lang) == 0 &&
            strcmp(cJSON_GetObjectItemCaseSensitive(e, "field")->valuestring, field) == 0 &&
            cJSON_GetObjectItemCaseSensitive(e, "index")->valueint == index)
            return cJSON_GetObjectItemCaseSensitive(e, "ids");
    }
    return NULL;
}

/* Encodes s into *ids (grown as needed); returns the count, or -1 on error. */
static long encode(const tokenizer *t, const char *s, int32_t **ids, size_t *cap)
{
    lafn_err err;
    size_t n;
    if (tokenizer_encode(t, s, strlen(s), tokenizer_adds_bos(t), *ids, *cap, &n, &err) != 0) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        return -1;
    }
    if (n > *cap) {
        *cap = 2 * n;
        *ids = realloc(*ids, *cap * sizeof(**ids));
        if (tokenizer_encode(t, s, strlen(s), tokenizer_adds_bos(t), *ids, *cap, &n, &err) != 0) return -1;
    }
    return (long)n;
}

static void check_roundtrip(const tokenizer *t, const char *s, const int32_t *ids, size_t n, tally *ty)
{
    lafn_err err;
    char *back = tokenizer_decode(t, ids, n, &err);
    ty->roundtrip++;
    if (back && strcmp(back, s) == 0) {
        ty->roundtrip_ok++;
    } else if (ty->roundtrip - ty->roundtrip_ok <= 5) {
        fprintf(stderr, "round trip differs: '%s' -> '%s'\n", s, back ? back : err.msg);
    }
    free(back);
}

/* One fixture set: the strings of (file, lang, field) for every record. */
static void check_set(const tokenizer *t, const cJSON *fx, const cJSON *set, const cJSON *records, tally *ty)
{
    const char *file = cJSON_GetObjectItemCaseSensitive(set, "file")->valuestring;
    const char *lang = cJSON_GetObjectItemCaseSensitive(set, "lang")->valuestring;
    const char *field = cJSON_GetObjectItemCaseSensitive(set, "field")->valuestring;
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(set, "n");
    const char *hashes = cJSON_GetObjectItemCaseSensitive(set, "h")->valuestring;
    size_t cap = 256;
    int32_t *ids = malloc(cap * sizeof(*ids));
    int n_rec = cJSON_GetArraySize(counts);
    CHECK(n_rec == cJSON_GetArraySize(records), "%s: fixture has %d records, data has %d", file, n_rec,
          cJSON_GetArraySize(records));
    for (int i = 0; i < n_rec && i < cJSON_GetArraySize(records); i++) {
        const char *s = field_string(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(records, i), lang), field);
        CHECK(s != NULL, "%s record %d: no string %s.%s", file, i, lang, field);
        if (!s) continue;
        clock_t c0 = clock();
        long n = encode(t, s, &ids, &cap);
        ty->seconds += (double)(clock() - c0) / CLOCKS_PER_SEC;
        if (n < 0) continue;
        char want[17];
        snprintf(want, sizeof(want), "%.16s", hashes + 16 * (size_t)i);
        char got[17];
        snprintf(got, sizeof(got), "%016llx", (unsigned long long)fnv1a_ids(ids, (size_t)n));
        int ref_n = cJSON_GetArrayItem(counts, i)->valueint;
        ty->compared++;
        if (n == ref_n && strcmp(got, want) == 0) {
            ty->identical++;
        } else if (ty->compared - ty->identical <= 10) {
            fprintf(stderr, "MISMATCH %s record %d %s.%s: '%s'\n", file, i, lang, field, s);
            print_ids("ours", ids, (size_t)n);
            const cJSON *ref = full_ids(fx, file, lang, field, i);
            if (ref) {
                fprintf(stderr, "  llama.cpp (%d):", cJSON_GetArraySize(ref));
                const cJSON *e;
                cJSON_ArrayForEach(e, ref) fprintf(stderr, " %d", e->valueint);
                fputc('\n', stderr);
            } else {
                fprintf(stderr, "  llama.cpp: %d ids, hash %s (full ids not kept)\n", ref_n, want);
            }
        }
        check_roundtrip(t, s, ids, (size_t)n, ty);
    }
    free(ids);
}

/* Strings where HF's ids differ from llama.cpp's: report whether ours equal HF's. */
static void check_hf_diff(const tokenizer *t, const cJSON *fx, const char *dir, tally *ty)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(fx, "hf_diff")) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring);
        cJSON *records = read_json(path);
        if (!records) continue;
        const cJSON *rec = cJSON_GetArrayItem(records, cJSON_GetObjectItemCaseSensitive(e, "index")->valueint);
        const char *s = field_string(cJSON_GetObjectItemCaseSensitive(rec, cJSON_GetObjectItemCaseSensitive(e, "lang")->valuestring),
                                     cJSON_GetObjectItemCaseSensitive(e, "field")->valuestring);
        size_t cap = 256;
        int32_t *ids = malloc(cap * sizeof(*ids));
        long n = s ? encode(t, s, &ids, &cap) : -1;
        char got[17];
        snprintf(got, sizeof(got), "%016llx", n >= 0 ? (unsigned long long)fnv1a_ids(ids, (size_t)n) : 0ULL);
        ty->hf_listed++;
        ty->hf_identical += n >= 0 && strcmp(got, cJSON_GetObjectItemCaseSensitive(e, "h")->valuestring) == 0;
        free(ids);
        cJSON_Delete(records);
    }
}

static void run_fixture(const char *fixture_rel)
{
    cJSON *fx = read_json(testutil_repo_path(fixture_rel));
    CHECK(fx != NULL, "fixture %s unreadable", fixture_rel);
    if (!fx) return;
    const char *model = cJSON_GetObjectItemCaseSensitive(fx, "model")->valuestring;
    char rel[512];
    snprintf(rel, sizeof(rel), "models/%s", model);
    lafn_err err;
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    int ok = gguf_open(&f, testutil_repo_path(rel), &err) == 0 && tokenizer_from_gguf(&t, f, &err) == 0;
    CHECK(ok, "loading %s: %s", rel, err.msg);
    tally ty = { 0 };
    const char *dir = testutil_mzsre_dir();
    const char *loaded_name = "";
    cJSON *records = NULL;
    const cJSON *sets = ok ? cJSON_GetObjectItemCaseSensitive(fx, "sets") : NULL, *set;
    cJSON_ArrayForEach(set, sets) {
        const char *file = cJSON_GetObjectItemCaseSensitive(set, "file")->valuestring;
        if (strcmp(file, loaded_name) != 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, file);
            cJSON_Delete(records);
            records = read_json(path);
            loaded_name = file;
            CHECK(records != NULL, "MzsRE file %s unreadable", path);
        }
        if (records) check_set(t, fx, set, records, &ty);
    }
    cJSON_Delete(records);
    if (ok) check_hf_diff(t, fx, dir, &ty);
    int n_fx = cJSON_GetObjectItemCaseSensitive(fx, "n_strings")->valueint;
    int n_hf = cJSON_GetObjectItemCaseSensitive(fx, "n_hf_identical")->valueint;
    printf("%s: compared %zu, identical %zu (llama.cpp); encode time %.2f s\n", model, ty.compared, ty.identical,
           ty.seconds);
    printf("%s: HF equals llama.cpp on %d of %d; on the %zu where they differ we equal HF on %zu\n", model, n_hf,
           n_fx, ty.hf_listed, ty.hf_identical);
    printf("%s: decode(encode(s)) == s for %zu of %zu\n", model, ty.roundtrip_ok, ty.roundtrip);
    CHECK(ty.compared == (size_t)n_fx, "%s: compared %zu strings, fixture has %d", model, ty.compared, n_fx);
    CHECK(ty.identical == ty.compared, "%s: %zu strings differ from llama.cpp", model, ty.compared - ty.identical);
    CHECK(ty.roundtrip_ok == ty.roundtrip, "%s: %zu strings do not round-trip", model, ty.roundtrip - ty.roundtrip_ok);
    tokenizer_free(t);
    gguf_close(f);
    cJSON_Delete(fx);
}

int main(void)
{
    run_fixture("tests/fixtures/tokenizer/mzsre_gemma3.json");
    run_fixture("tests/fixtures/tokenizer/mzsre_smollm2.json");
    return testutil_finish("test_tokenizer_mzsre");
}
