/* test_dequant: every ggml type decoded by dequant.c against gguf-py's dequantisation of the same blocks (tests/fixtures/dequant). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dequant.h"
#include "testutil.h"

static const struct { const char *name; ggml_type type; size_t elems, bytes; } TYPES[] = {
    {"F32", GGML_TYPE_F32, 1, 4},       {"F16", GGML_TYPE_F16, 1, 2},       {"BF16", GGML_TYPE_BF16, 1, 2},
    {"Q4_0", GGML_TYPE_Q4_0, 32, 18},   {"Q4_1", GGML_TYPE_Q4_1, 32, 20},   {"Q5_0", GGML_TYPE_Q5_0, 32, 22},
    {"Q5_1", GGML_TYPE_Q5_1, 32, 24},   {"Q8_0", GGML_TYPE_Q8_0, 32, 34},   {"Q4_K", GGML_TYPE_Q4_K, 256, 144},
    {"Q5_K", GGML_TYPE_Q5_K, 256, 176}, {"Q6_K", GGML_TYPE_Q6_K, 256, 210},
};
#define N_TYPES (sizeof TYPES / sizeof *TYPES)

/* Reads a whole file; returns a malloc'ed buffer and its size, or NULL. */
static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(sz > 0 ? (size_t)sz : 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

/* Decodes one fixture case and compares with gguf-py's floats. */
static void check_case(const char *dir, const char *name, const char *tname, size_t n) {
    char path[4400];
    size_t nq, nf, i;
    ggml_type t = GGML_TYPE_F32;
    for (i = 0; i < N_TYPES; i++)
        if (strcmp(TYPES[i].name, tname) == 0) t = TYPES[i].type;
    snprintf(path, sizeof path, "%s/%s.q", dir, name);
    uint8_t *q = slurp(path, &nq);
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    float *want = slurp(path, &nf);
    float *got = malloc(n * sizeof *got);
    CHECK(q && want && got, "%s: cannot read fixture files", name);
    if (!q || !want || !got) goto done;
    CHECK(nq == dequant_row_bytes(t, n), "%s: %zu raw bytes; dequant_row_bytes says %zu", name, nq, dequant_row_bytes(t, n));
    CHECK(nf == n * sizeof(float), "%s: %zu expected bytes for %zu floats", name, nf, n);
    if (nq != dequant_row_bytes(t, n) || nf != n * sizeof(float)) goto done;
    CHECK(dequant_to_f32(t, q, got, n) == 0, "%s: dequant_to_f32 failed", name);
    double worst = 0, scale = 0;
    size_t at = 0;
    for (i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        scale = fmax(scale, fabs(want[i]));
        if (e > worst || isnan(got[i])) worst = isnan(got[i]) ? INFINITY : e, at = i;
    }
    double tol = 1e-6 * fmax(scale, 1e-30);
    printf("%-14s %-5s n=%zu max|err| %.3g (tol %.3g) at %zu: got %.9g want %.9g\n", name, tname, n, worst, tol, at,
           got[at], want[at]);
    CHECK(worst <= tol, "%s (%s): element %zu got %.9g, gguf-py %.9g", name, tname, at, got[at], want[at]);
done:
    free(q);
    free(want);
    free(got);
}

/* Every binary16 value against the compiler's own _Float16 conversion. */
static void check_f16_exhaustive(void) {
    size_t bad = 0, first = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 x;
        uint16_t hh = (uint16_t)h;
        memcpy(&x, &hh, 2);
        float want = (float)x, got = dequant_f16_to_f32(hh);
        int same = memcmp(&want, &got, 4) == 0 || (isnan(want) && isnan(got));
        if (!same && bad++ == 0) first = h;
    }
    CHECK(bad == 0, "%zu of 65536 f16 values differ from _Float16, first 0x%04zx", bad, first);
}

static void check_sizes_and_rejects(void) {
    for (size_t i = 0; i < N_TYPES; i++) {
        int good = dequant_block_elems(TYPES[i].type) == TYPES[i].elems &&
                   dequant_block_bytes(TYPES[i].type) == TYPES[i].bytes &&
                   strcmp(dequant_type_name(TYPES[i].type), TYPES[i].name) == 0;
        CHECK(good, "%s: block %zu elems / %zu bytes; ggml has %zu / %zu", TYPES[i].name,
              dequant_block_elems(TYPES[i].type), dequant_block_bytes(TYPES[i].type), TYPES[i].elems, TYPES[i].bytes);
    }
    float dst[64];
    uint8_t src[64] = {0};
    CHECK(dequant_to_f32((ggml_type)99, src, dst, 32) == -1, "unknown type 99 accepted");
    CHECK(dequant_to_f32(GGML_TYPE_Q4_0, src, dst, 33) == -1, "Q4_0 with n=33 accepted");
    CHECK(dequant_row_bytes(GGML_TYPE_Q4_K, 300) == 0, "Q4_K row of 300 elements has a size");
    CHECK(dequant_type_name((ggml_type)99) == NULL, "unknown type has a name");
    CHECK(dequant_bf16_to_f32(0x3f80) == 1.0f && dequant_bf16_to_f32(0xc000) == -2.0f, "bf16 1.0 / -2.0 wrong");
}

int main(void) {
    int n_cases = 0;
    char dir[4096], line[256];
    snprintf(dir, sizeof dir, "%s", testutil_repo_path("tests/fixtures/dequant"));
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "r");
    CHECK(f != NULL, "cannot open %s (run tests/reference/make_dequant_fixtures.py)", manifest);
    int seen[N_TYPES] = {0};
    while (f && fgets(line, sizeof line, f)) {
        char name[64], tname[16];
        size_t n;
        if (sscanf(line, "%63s %15s %zu", name, tname, &n) != 3) continue;
        n_cases++;
        check_case(dir, name, tname, n);
        for (size_t i = 0; i < N_TYPES; i++) seen[i] |= strcmp(TYPES[i].name, tname) == 0;
    }
    if (f) fclose(f);
    for (size_t i = 0; i < N_TYPES; i++) CHECK(seen[i], "no fixture case for %s", TYPES[i].name);
    CHECK(n_cases >= (int)N_TYPES, "only %d fixture cases", n_cases);
    check_f16_exhaustive();
    check_sizes_and_rejects();
    return testutil_finish("test_dequant");
}
