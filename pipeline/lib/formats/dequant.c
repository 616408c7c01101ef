/* dequant: plain reference decoders of ggml block formats (F32 … Q6_K) to fp32, one function per type. */
#include "formats/dequant.h"

#include <string.h>

#define QK 32    /* elements per block of the legacy formats */
#define QK_K 256 /* elements per super-block of the K formats */

typedef struct {
    ggml_type type;
    const char *name;
    size_t elems;
    size_t bytes;
} type_info;

static const type_info TYPES[] = {
    {GGML_TYPE_F32, "F32", 1, 4},
    {GGML_TYPE_F16, "F16", 1, 2},
    {GGML_TYPE_BF16, "BF16", 1, 2},
    {GGML_TYPE_Q4_0, "Q4_0", QK, 2 + QK / 2},
    {GGML_TYPE_Q4_1, "Q4_1", QK, 4 + QK / 2},
    {GGML_TYPE_Q5_0, "Q5_0", QK, 2 + 4 + QK / 2},
    {GGML_TYPE_Q5_1, "Q5_1", QK, 4 + 4 + QK / 2},
    {GGML_TYPE_Q8_0, "Q8_0", QK, 2 + QK},
    {GGML_TYPE_Q4_K, "Q4_K", QK_K, 4 + 12 + QK_K / 2},
    {GGML_TYPE_Q5_K, "Q5_K", QK_K, 4 + 12 + QK_K / 8 + QK_K / 2},
    {GGML_TYPE_Q6_K, "Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
};

static const type_info *info(ggml_type t) {
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (TYPES[i].type == t) return &TYPES[i];
    return NULL;
}

size_t dequant_block_elems(ggml_type t) { const type_info *i = info(t); return i ? i->elems : 0; }
size_t dequant_block_bytes(ggml_type t) { const type_info *i = info(t); return i ? i->bytes : 0; }
const char *dequant_type_name(ggml_type t) { const type_info *i = info(t); return i ? i->name : NULL; }

size_t dequant_row_bytes(ggml_type t, uint64_t n) {
    const type_info *i = info(t);
    if (!i || n % i->elems != 0) return 0;
    return (size_t)(n / i->elems) * i->bytes;
}

float dequant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign; /* signed zero */
    } else {
        int e = -1; /* subnormal: normalise the mantissa */
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float dequant_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return dequant_f16_to_f32(h);
}

/* Q4_0 block: f16 d | u8 qs[16]; x = (q - 8) * d, low nibbles first. */
static void deq_q4_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = ((int)(qs[j] & 0xf) - 8) * d;
        y[j + QK / 2] = ((int)(qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1 block: f16 d | f16 m | u8 qs[16]; x = q * d + m. */
static void deq_q4_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (qs[j] & 0xf) * d + m;
        y[j + QK / 2] = (qs[j] >> 4) * d + m;
    }
}

/* Q5_0 block: f16 d | u32 qh | u8 qs[16]; 5th bit of element j in bit j of qh; x = (q - 16) * d. */
static void deq_q5_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (qh >> j) & 1, h1 = (qh >> (j + QK / 2)) & 1;
        y[j] = ((int)((qs[j] & 0xf) | (h0 << 4)) - 16) * d;
        y[j + QK / 2] = ((int)((qs[j] >> 4) | (h1 << 4)) - 16) * d;
    }
}

/* Q5_1 block: f16 d | f16 m | u32 qh | u8 qs[16]; x = q * d + m. */
static void deq_q5_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (qh >> j) & 1, h1 = (qh >> (j + QK / 2)) & 1;
        y[j] = ((qs[j] & 0xf) | (h0 << 4)) * d + m;
        y[j + QK / 2] = ((qs[j] >> 4) | (h1 << 4)) * d + m;
    }
}

/* Q8_0 block: f16 d | i8 qs[32]; x = q * d. */
static void deq_q8_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    for (int j = 0; j < QK; j++) y[j] = (int8_t)b[2 + j] * d;
}

/* 6-bit scale and min of sub-block j from the 12 packed bytes of Q4_K / Q5_K. */
static void k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K super-block: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]; 8 sub-blocks of 32,
 * x = d*sc*q - dmin*m; each 32 bytes of qs hold two sub-blocks (low nibbles, then high). */
static void deq_q4_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
        int sc, m;
        k_scale_min(is, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        k_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) y[j + l] = d1 * (q[l] & 0xf) - m1;
        for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * (q[l] >> 4) - m2;
    }
}

/* Q5_K super-block: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]; as Q4_K
 * with a 5th bit from qh (bit 2i for the low-nibble sub-block of pair i, 2i+1 for the high). */
static void deq_q5_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        int sc, m;
        k_scale_min(is, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        k_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) y[j + l] = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

/* Q6_K super-block: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d; 16 sub-blocks of 16,
 * x = d * scale * (q - 32) with q = 4 low bits from ql and 2 high bits from qh. */
static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[n + l] = d * sc[is + 0] * q1;
            y[n + l + 32] = d * sc[is + 2] * q2;
            y[n + l + 64] = d * sc[is + 4] * q3;
            y[n + l + 96] = d * sc[is + 6] * q4;
        }
    }
}

int dequant_to_f32(ggml_type t, const void *src, float *dst, uint64_t n) {
    const type_info *ti = info(t);
    if (!ti || n % ti->elems != 0) return -1;
    const uint8_t *b = src;
    uint64_t nb = n / ti->elems;
    void (*block)(const uint8_t *, float *) = NULL;
    switch (t) {
    case GGML_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) dst[i] = rd_f16(b + 2 * i);
        return 0;
    case GGML_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            dst[i] = dequant_bf16_to_f32(h);
        }
        return 0;
    case GGML_TYPE_Q4_0: block = deq_q4_0; break;
    case GGML_TYPE_Q4_1: block = deq_q4_1; break;
    case GGML_TYPE_Q5_0: block = deq_q5_0; break;
    case GGML_TYPE_Q5_1: block = deq_q5_1; break;
    case GGML_TYPE_Q8_0: block = deq_q8_0; break;
    case GGML_TYPE_Q4_K: block = deq_q4_k; break;
    case GGML_TYPE_Q5_K: block = deq_q5_k; break;
    case GGML_TYPE_Q6_K: block = deq_q6_k; break;
    }
    for (uint64_t i = 0; i < nb; i++) block(b + i * ti->bytes, dst + i * ti->elems);
    return 0;
}
