/*
 * Lower-case hexadecimal text of bytes and back (tokens, digests, random
 * ids).  Pure functions; owns nothing; any thread.
 */
#ifndef SM_CORE_HEX_H
#define SM_CORE_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write the 2*n hex digits of in[0..n) and a NUL to out (2*n + 1 bytes). */
void sm_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly 2*n hex digits (either case) from in[0..len) into out[0..n).
 * False (out partly written) when len != 2*n or a character is not a hex
 * digit. */
bool sm_hex_decode(const char *in, size_t len, uint8_t *out, size_t n);

#endif
