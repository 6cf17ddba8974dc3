/*
 * What crosses threads on the rings of core/mpsc.h, and in which direction.
 *
 * Inbox of a worker (producers: I/O threads):
 *   SM_IN_FRAME   ptr = sm_imsg_t * (one WebSocket binary message; the worker
 *                 frees it), handle = the connection it came from.
 *   SM_IN_CLOSED  the connection is gone; arg = sm_close_reason_t.  Always the
 *                 last item a worker sees for that handle.
 * Outbox of an I/O thread (producers: workers):
 *   SM_OUT_SEND   ptr = sm_obuf_t * (one reference moves with the item) or
 *                 NULL; flags: SM_OUTF_CONNECTED (this frame is CONNECT_ACK:
 *                 stop the connection timeout, start the heartbeat),
 *                 SM_OUTF_CLOSE (close with code `arg` after the frame).
 * Items for one connection are handled in the order they were pushed.
 */
#ifndef SM_REACTOR_MSG_H
#define SM_REACTOR_MSG_H

#include <stdint.h>

enum {
    SM_IN_FRAME = 1,
    SM_IN_CLOSED = 2,
    SM_OUT_SEND = 3,
};

enum {
    SM_OUTF_CONNECTED = 0x1,
    SM_OUTF_CLOSE = 0x2,
};

typedef enum {
    SM_CLOSE_CLEAN = 1,     /* close frame or DISCONNECT: release at once */
    SM_CLOSE_ABRUPT = 2,    /* EOF/reset without close frame, write error */
    SM_CLOSE_HEARTBEAT = 3, /* heartbeat timeout */
    SM_CLOSE_SERVER = 4,    /* server closed it (policy, drain, slow consumer) */
} sm_close_reason_t;

/* One received WebSocket message, handed from an I/O thread to a worker. */
typedef struct sm_imsg_s {
    struct sm_imsg_s *next; /* for the worker's per-session pending list */
    uint32_t len;
    uint8_t data[];
} sm_imsg_t;

#endif
