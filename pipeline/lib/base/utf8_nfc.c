/* utf8_nfc: Unicode normalisation form C of UTF-8 text (for tokenizer.json "NFC" normalizers). */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/utf8_nfc_tables.h"

#define NFC_RAW_BYTE 0x80000000u /* marks an invalid byte carried through unchanged */
#define HANGUL_S0 0xAC00u
#define HANGUL_L0 0x1100u
#define HANGUL_V0 0x1161u
#define HANGUL_T0 0x11A7u
#define HANGUL_NV 21u
#define HANGUL_NT 28u
#define HANGUL_NS 11172u

static int nfc_cmp_cp(const void *key, const void *row)
{
    uint32_t k = *(const uint32_t *)key, r = *(const uint32_t *)row;
    return k < r ? -1 : k > r;
}

static int nfc_cmp_pair(const void *key, const void *row)
{
    const uint32_t *k = key, *r = row;
    if (k[0] != r[0]) return k[0] < r[0] ? -1 : 1;
    return k[1] < r[1] ? -1 : k[1] > r[1];
}

static unsigned nfc_class(uint32_t cp)
{
    const uint32_t *row = bsearch(&cp, nfc_ccc, sizeof(nfc_ccc) / sizeof(nfc_ccc[0]), sizeof(nfc_ccc[0]), nfc_cmp_cp);
    return row ? row[1] : 0;
}

/* Appends the full canonical decomposition of cp to out; returns the count written. */
static size_t nfc_decompose(uint32_t cp, uint32_t *out)
{
    if (cp >= HANGUL_S0 && cp < HANGUL_S0 + HANGUL_NS) {
        uint32_t s = cp - HANGUL_S0, t = s % HANGUL_NT;
        out[0] = HANGUL_L0 + s / (HANGUL_NV * HANGUL_NT);
        out[1] = HANGUL_V0 + (s % (HANGUL_NV * HANGUL_NT)) / HANGUL_NT;
        if (t == 0) return 2;
        out[2] = HANGUL_T0 + t;
        return 3;
    }
    const uint32_t *row = (cp & NFC_RAW_BYTE) ? NULL
                        : bsearch(&cp, nfc_decomp, sizeof(nfc_decomp) / sizeof(nfc_decomp[0]),
                                  sizeof(nfc_decomp[0]), nfc_cmp_cp);
    if (!row) {
        out[0] = cp;
        return 1;
    }
    size_t n = nfc_decompose(row[1], out);
    if (row[2]) n += nfc_decompose(row[2], out + n);
    return n;
}

/* The primary composite of (a, b), or 0. */
static uint32_t nfc_compose_pair(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L0 && a < HANGUL_L0 + 19 && b >= HANGUL_V0 && b < HANGUL_V0 + HANGUL_NV)
        return HANGUL_S0 + ((a - HANGUL_L0) * HANGUL_NV + (b - HANGUL_V0)) * HANGUL_NT;
    if (a >= HANGUL_S0 && a < HANGUL_S0 + HANGUL_NS && (a - HANGUL_S0) % HANGUL_NT == 0 && b > HANGUL_T0 &&
        b < HANGUL_T0 + HANGUL_NT)
        return a + (b - HANGUL_T0);
    uint32_t key[2] = { a, b };
    const uint32_t *row = bsearch(key, nfc_comp, sizeof(nfc_comp) / sizeof(nfc_comp[0]), sizeof(nfc_comp[0]),
                                  nfc_cmp_pair);
    return row ? row[2] : 0;
}

/* Canonical ordering: each run of non-starters stably sorted by combining class. */
static void nfc_reorder(uint32_t *cp, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned c = nfc_class(cp[i]);
        if (c == 0) continue;
        size_t j = i;
        uint32_t v = cp[i];
        while (j > 0 && nfc_class(cp[j - 1]) > c) {
            cp[j] = cp[j - 1];
            j--;
        }
        cp[j] = v;
    }
}

/* Canonical composition (UAX #15): returns the new length. */
static size_t nfc_compose(uint32_t *cp, size_t n)
{
    if (n == 0) return 0;
    size_t starter = 0, w = 1;
    unsigned last = nfc_class(cp[0]) ? 256 : 0;
    for (size_t r = 1; r < n; r++) {
        unsigned c = nfc_class(cp[r]);
        uint32_t comp = nfc_compose_pair(cp[starter], cp[r]);
        if (comp && (last < c || last == 0)) {
            cp[starter] = comp;
            continue;
        }
        if (c == 0) starter = w;
        last = c;
        cp[w++] = cp[r];
    }
    return w;
}

int utf8_nfc(const char *s, size_t n, char **out, size_t *out_len)
{
    *out = NULL;
    size_t i = 0;
    while (i < n && (uint8_t)s[i] < 0xCC) i++; /* nothing below U+0300 changes under NFC */
    uint32_t *cp = i == n ? NULL : malloc((4 * n + 4) * sizeof(*cp));
    char *buf = malloc(i == n ? n + 1 : 4 * (4 * n + 4) + 1);
    if (!buf || (i < n && !cp)) {
        free(cp);
        free(buf);
        return -1;
    }
    if (i == n) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        *out = buf;
        *out_len = n;
        return 0;
    }
    size_t m = 0;
    for (size_t k = 0; k < n;) {
        uint32_t c;
        size_t len = utf8_decode(s + k, n - k, &c);
        if (len == 0) {
            c = NFC_RAW_BYTE | (uint8_t)s[k];
            len = 1;
        }
        m += nfc_decompose(c, cp + m);
        k += len;
    }
    nfc_reorder(cp, m);
    m = nfc_compose(cp, m);
    size_t w = 0;
    for (size_t k = 0; k < m; k++) {
        if (cp[k] & NFC_RAW_BYTE) buf[w++] = (char)(cp[k] & 0xFF);
        else w += utf8_encode(cp[k], buf + w);
    }
    free(cp);
    buf[w] = '\0';
    *out = buf;
    *out_len = w;
    return 0;
}
