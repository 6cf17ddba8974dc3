/*
 * 16-byte identifiers: random (version 4) generation and the lowercase
 * 8-4-4-4-12 text form used in JSON payloads (DECISIONS §1).
 *
 * Generation draws from the OS CSPRNG (getrandom(2)) through a per-thread
 * 4 KiB buffer, so one system call serves 256 uuids.  State: that
 * thread-local buffer only (no shared mutable state, no locks); a
 * pthread_atfork() child handler empties the forking thread's buffer so a
 * child never repeats its parent's ids.  Any thread may call every function.
 *
 * Errors are SM_PROTO_E* codes from <sm/proto.h>.
 */
#ifndef SM_SM_UUID_H
#define SM_SM_UUID_H

#include <stddef.h>
#include <stdint.h>

#include <sm/proto.h>

#define SM_UUID_SIZE SM_PROTO_UUID_SIZE
/* Text length without the NUL, and the buffer size for sm_uuid_format(). */
#define SM_UUID_STR_LEN 36
#define SM_UUID_STR_SIZE 37

/*
 * Fill out[0..16) with a random version 4, variant 1 (RFC 4122/9562) uuid.
 * Returns SM_PROTO_OK, or SM_PROTO_ERANDOM when getrandom(2) fails for a
 * reason other than EINTR (no entropy source: practically never after boot);
 * `out` is untouched then and a later call tries the OS again.
 */
int sm_uuid_v4(uint8_t *out);

/* Write the lowercase text form of in[0..16) and a NUL into out (at least
 * SM_UUID_STR_SIZE bytes).  Returns out.  Cannot fail. */
char *sm_uuid_format(const uint8_t *in, char *out);

/*
 * Parse exactly 36 characters of 8-4-4-4-12 hex text (upper or lower case,
 * hyphens at offsets 8, 13, 18, 23) followed by the NUL.  Any version/variant
 * is accepted.  Returns SM_PROTO_OK and fills out[0..16), or SM_PROTO_EUUID
 * (out untouched).  s == NULL gives SM_PROTO_EUUID.
 */
int sm_uuid_parse(const char *s, uint8_t *out);

/* As sm_uuid_parse() on s[0..len), which need not be NUL-terminated: len must
 * be exactly 36. */
int sm_uuid_parse_n(const char *s, size_t len, uint8_t *out);

#endif
