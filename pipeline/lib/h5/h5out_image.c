/* h5out_image: the superblock checksum that HDF5 1.10's H5Fget_file_image leaves stale, recomputed (Jenkins lookup3). */
#include "h5/h5out_int.h"

#include <string.h>

#define ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

/* Bob Jenkins' lookup3 hashlittle, byte by byte, as the HDF5 file format checksums its metadata (initval 0). */
static uint32_t lookup3(const uint8_t *k, size_t length) {
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)length;
    for (; length > 12; length -= 12, k += 12) {
        a += (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
        b += (uint32_t)k[4] | (uint32_t)k[5] << 8 | (uint32_t)k[6] << 16 | (uint32_t)k[7] << 24;
        c += (uint32_t)k[8] | (uint32_t)k[9] << 8 | (uint32_t)k[10] << 16 | (uint32_t)k[11] << 24;
        a -= c; a ^= ROT(c, 4);  c += b;
        b -= a; b ^= ROT(a, 6);  a += c;
        c -= b; c ^= ROT(b, 8);  b += a;
        a -= c; a ^= ROT(c, 16); c += b;
        b -= a; b ^= ROT(a, 19); a += c;
        c -= b; c ^= ROT(b, 4);  b += a;
    }
    if (length == 0) return c;
    uint8_t tail[12] = {0};
    memcpy(tail, k, length);
    a += (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    b += (uint32_t)tail[4] | (uint32_t)tail[5] << 8 | (uint32_t)tail[6] << 16 | (uint32_t)tail[7] << 24;
    c += (uint32_t)tail[8] | (uint32_t)tail[9] << 8 | (uint32_t)tail[10] << 16 | (uint32_t)tail[11] << 24;
    c ^= b; c -= ROT(b, 14);
    a ^= c; a -= ROT(c, 11);
    b ^= a; b -= ROT(a, 25);
    c ^= b; c -= ROT(b, 16);
    a ^= c; a -= ROT(c, 4);
    b ^= a; b -= ROT(a, 14);
    c ^= b; c -= ROT(b, 24);
    return c;
}

int h5out_image_fix_superblock(uint8_t *image, size_t size) {
    static const uint8_t signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (size < 12 || memcmp(image, signature, 8) != 0) return -1;
    if (image[8] < 2) return 0; /* versions 0 and 1 carry no checksum */
    size_t covered = 12 + 4 * (size_t)image[9]; /* signature, 4 bytes, base/extension/EOF/root addresses */
    if (image[9] != 4 && image[9] != 8) return -1;
    if (size < covered + 4) return -1;
    uint32_t sum = lookup3(image, covered);
    for (int i = 0; i < 4; i++) image[covered + (size_t)i] = (uint8_t)(sum >> (8 * i));
    return 0;
}
