/* test_sha256: sha256.c against the FIPS 180-2 / NIST example vectors, one-shot and in odd-sized pieces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"
#include "testutil.h"

static void digest_hex(const void *data, size_t len, size_t piece, char hex[65]) {
    sha256_ctx c;
    uint8_t d[32];
    const uint8_t *p = data;
    sha256_init(&c);
    if (piece == 0) piece = len ? len : 1;
    for (size_t off = 0; off < len; off += piece) sha256_update(&c, p + off, len - off < piece ? len - off : piece);
    sha256_final(&c, d);
    sha256_hex(d, hex);
}

int main(void) {
    static const struct { const char *msg; const char *hex; } V[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    static const size_t pieces[] = {0, 1, 3, 63, 64, 65};
    char hex[65];
    for (size_t i = 0; i < sizeof V / sizeof *V; i++)
        for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++) {
            digest_hex(V[i].msg, strlen(V[i].msg), pieces[k], hex);
            CHECK(strcmp(hex, V[i].hex) == 0, "vector %zu in pieces of %zu: got %s, expected %s", i, pieces[k], hex, V[i].hex);
        }
    /* one million 'a' (FIPS 180-2 appendix B.3), fed in pieces of 1000 and of 4097 */
    size_t n = 1000000;
    char *a = malloc(n);
    CHECK(a != NULL, "out of memory");
    if (a) {
        memset(a, 'a', n);
        const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        digest_hex(a, n, 1000, hex);
        CHECK(strcmp(hex, want) == 0, "million a (pieces of 1000): got %s, expected %s", hex, want);
        digest_hex(a, n, 4097, hex);
        CHECK(strcmp(hex, want) == 0, "million a (pieces of 4097): got %s, expected %s", hex, want);
        free(a);
    }
    /* lengths around the padding boundary (55, 56, 63, 64 bytes) must differ from each other */
    char prev[65] = "";
    for (size_t len = 55; len <= 64; len++) {
        char buf[64];
        memset(buf, 'x', sizeof buf);
        digest_hex(buf, len, 0, hex);
        char hex2[65];
        digest_hex(buf, len, 7, hex2);
        CHECK(strcmp(hex, hex2) == 0 && strcmp(hex, prev) != 0, "length %zu: one-shot %s, pieces %s", len, hex, hex2);
        memcpy(prev, hex, sizeof prev);
    }
    return testutil_finish("test_sha256");
}
