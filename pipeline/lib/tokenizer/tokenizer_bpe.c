/* tokenizer_bpe: byte-level BPE (GPT-2 byte<->character map, "left right" merges, word encoding). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_impl.h"
#include "base/utf8.h"

/* GPT-2's map: printable Latin-1 bytes stand for themselves, the other 68
 * bytes take the code points 256, 257, ... in byte order. */
static uint32_t tok_bpe_cp_of_byte(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    uint32_t k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
    return 256 + k;
}

void tok_bpe_init_bytes(tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_bpe_cp_of_byte(b);
        char buf[4];
        size_t n = utf8_encode(cp, buf);
        t->byte_of_cp[cp] = (int16_t)b;
        t->cp_of_byte[b] = (uint16_t)cp;
        t->byte_id[b] = tok_find(t, buf, n);
    }
}

int tok_bpe_encode(const tokenizer *t, const char *s, size_t n, tok_ids *out, lafn_err *err)
{
    if (n == 0) return 0;
    char small[256];
    char *w = 2 * n <= sizeof(small) ? small : malloc(2 * n);
    if (!w) return lafn_err_set(err, "tokenizer: out of memory for a %zu-byte word", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += utf8_encode(t->cp_of_byte[(uint8_t)s[i]], w + m);
    int rc = tok_merge_word(t, w, m, out, err);
    if (w != small) free(w);
    return rc;
}

int tok_bpe_add_merge(tokenizer *t, const char *m, size_t len, int32_t rank, const char *what,
                      lafn_err *err)
{
    const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
    if (!sp) return lafn_err_set(err, "%s: merge %d '%.*s' has no space separating its two pieces",
                                 what, rank, (int)(len < 80 ? len : 80), m);
    size_t nl = (size_t)(sp - m), nr = len - nl - 1;
    int32_t l = tok_find(t, m, nl), r = tok_find(t, sp + 1, nr);
    if (l < 0 || r < 0) return 0; /* a merge of pieces outside the vocabulary can never apply */
    tok_pairs_add(t, l, r, rank);
    return 0;
}
