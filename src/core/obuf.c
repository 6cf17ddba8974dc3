/*
 * Reference-counted output buffers with WebSocket framing headroom.
 */
#include "core/obuf.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"

sm_obuf_t *sm_obuf_new(size_t body_cap)
{
    sm_obuf_t *b = sm_xmalloc(sizeof *b + SM_OBUF_HEADROOM + body_cap);
    atomic_init(&b->_refs, 1);
    b->off = SM_OBUF_HEADROOM;
    b->len = 0;
    b->cap = (uint32_t)body_cap;
    return b;
}

void sm_obuf_finish_ws(sm_obuf_t *b, size_t body_len, uint8_t opcode)
{
    SM_ASSERT(body_len <= b->cap);
    uint8_t hdr[SM_OBUF_HEADROOM];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80u | (opcode & 0x0fu)); /* FIN + opcode; server frames unmasked */
    if (body_len < 126) {
        hdr[h++] = (uint8_t)body_len;
    } else if (body_len <= 0xffff) {
        hdr[h++] = 126;
        hdr[h++] = (uint8_t)(body_len >> 8);
        hdr[h++] = (uint8_t)body_len;
    } else {
        hdr[h++] = 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)body_len >> (i * 8));
    }
    b->off = (uint32_t)(SM_OBUF_HEADROOM - h);
    memcpy(b->data + b->off, hdr, h);
    b->len = (uint32_t)(h + body_len);
}

sm_obuf_t *sm_obuf_ref(sm_obuf_t *b)
{
    atomic_fetch_add_explicit(&b->_refs, 1, memory_order_relaxed);
    return b;
}

void sm_obuf_unref(sm_obuf_t *b)
{
    if (b != NULL && atomic_fetch_sub_explicit(&b->_refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

sm_obuf_t *sm_obuf_new_close(uint16_t code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123)
        rlen = 123; /* control frame payload limit is 125 */
    sm_obuf_t *b = sm_obuf_new(2 + rlen);
    uint8_t *p = sm_obuf_body(b);
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rlen)
        memcpy(p + 2, reason, rlen);
    sm_obuf_finish_ws(b, 2 + rlen, 0x8);
    return b;
}
