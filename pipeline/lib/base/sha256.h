/* sha256: SHA-256 (FIPS 180-4) over a byte stream, with hex output for model identities. */
#ifndef LAFN_SHA256_H
#define LAFN_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;   /* total bytes absorbed */
    uint8_t buf[64];    /* pending partial block */
    size_t n_buf;
} sha256_ctx;

/* Resets ctx to the initial hash value. */
void sha256_init(sha256_ctx *ctx);
/* Absorbs len bytes of data (any length, any number of calls). */
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
/* Pads, writes the 32-byte digest into out; ctx must be re-initialised before reuse. */
void sha256_final(sha256_ctx *ctx, uint8_t out[32]);
/* Writes the 64 lowercase hex digits of digest plus NUL into hex (65 bytes). */
void sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
