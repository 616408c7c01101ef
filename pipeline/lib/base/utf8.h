/* utf8: the few UTF-8 helpers the tokenizers and text comparisons need (sequence length, encode, decode, case folding). */
#ifndef LAFN_UTF8_H
#define LAFN_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length in bytes of the UTF-8 sequence announced by lead byte c (1 for a
 * continuation or invalid byte, so that malformed text still advances). */
size_t utf8_seq_len(uint8_t c);

/* Writes code point cp (< 0x200000, surrogates included) as UTF-8 into out (>= 4 bytes); returns the byte count. */
size_t utf8_encode(uint32_t cp, char *out);

/* Decodes one code point from s (n > 0 bytes available) into *cp; returns
 * the bytes consumed, or 0 if the sequence is malformed or truncated. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Decodes one code point the lenient way llama.cpp does before byte-level BPE:
 * the lead byte's pattern and the continuation bytes are checked, but not
 * overlong forms, surrogates or the upper bound; an invalid or truncated
 * sequence yields U+FFFD and consumes one byte. Returns the bytes consumed. */
size_t utf8_decode_lenient(const char *s, size_t n, uint32_t *cp);

/* Lower case of code point c in the scripts of the languages lafn knows
 * (ASCII, Latin-1, Latin Extended-A, Latin Extended Additional, Greek,
 * Cyrillic); other code points are returned unchanged. */
uint32_t utf8_fold_case(uint32_t c);

/* Normalisation form C of s[0..n) (invalid bytes are carried through and block
 * composition). Returns 0 and a malloc'ed *out of *out_len bytes (NUL-terminated),
 * or -1 when out of memory. Implemented in utf8_nfc.c with generated tables. */
int utf8_nfc(const char *s, size_t n, char **out, size_t *out_len);

#endif
