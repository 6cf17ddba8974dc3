/*
 * Output buffers: an encoded WebSocket frame, immutable once published and
 * shared by reference count when one frame goes to many connections.
 *
 * A worker allocates one with room for the WebSocket header in front
 * (SM_OBUF_HEADROOM), writes the protocol frame at sm_obuf_body(), then
 * sm_obuf_finish_ws() prepends the WebSocket binary-frame header.  From then
 * on nobody writes it; any thread may ref/unref; the last unref frees.
 */
#ifndef SM_CORE_OBUF_H
#define SM_CORE_OBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SM_OBUF_HEADROOM 10 /* largest server->client WebSocket header */

typedef struct {
    _Atomic uint32_t _refs;
    uint32_t off; /* first byte of the frame (WebSocket header) */
    uint32_t len; /* bytes from off */
    uint32_t cap; /* bytes of body room after the headroom */
    uint8_t data[];
} sm_obuf_t;

/* New buffer (refcount 1) with body_cap bytes of room after the headroom. */
sm_obuf_t *sm_obuf_new(size_t body_cap);
static inline uint8_t *sm_obuf_body(sm_obuf_t *b)
{
    return b->data + SM_OBUF_HEADROOM;
}
/* Close the frame: body_len bytes were written at sm_obuf_body(); prepend a
 * WebSocket header with the given opcode (0x2 binary, 0x8 close, ...). */
void sm_obuf_finish_ws(sm_obuf_t *b, size_t body_len, uint8_t opcode);
static inline const uint8_t *sm_obuf_bytes(const sm_obuf_t *b)
{
    return b->data + b->off;
}
sm_obuf_t *sm_obuf_ref(sm_obuf_t *b);
void sm_obuf_unref(sm_obuf_t *b);

/* A complete close frame (opcode 0x8) with code and short reason. */
sm_obuf_t *sm_obuf_new_close(uint16_t code, const char *reason);

#endif
