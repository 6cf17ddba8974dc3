/*
 * WebSocket receive side on wslay, with no wslay state kept between messages.
 *
 * wslay's event context embeds two 4 KiB buffers, far above our budget of
 * ~2 KiB per idle connection.  So a connection holds an sm_ws_t only while a
 * message is partially received (or a close is in progress).  Each I/O thread
 * keeps one spare sm_ws_t; a connection borrows it for a read, and hands it
 * back when the read ended on a message boundary.  wslay tells us frame
 * starts and ends through its callbacks; we count the bytes of complete frames
 * (header size follows from the payload length because wslay rejects
 * non-minimal length encodings and unmasked client frames) and compare with
 * the bytes we fed it, which is how we know its internal buffer is empty.
 *
 * Outgoing data frames do not go through wslay: workers pre-encode them
 * (core/obuf.h).  Only wslay's own control replies (pong, close echo, protocol
 * error closes) come out of sm_ws_feed, through the emit callback.
 *
 * Owner: one I/O thread; none of this is thread-safe.
 */
#ifndef SM_WS_WS_CONN_H
#define SM_WS_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sm_ws_s sm_ws_t;

/* Callbacks into the connection layer; `conn` is the pointer given to feed. */
typedef struct {
    /* A complete binary message (borrowed for the call). */
    void (*on_binary)(void *conn, const uint8_t *data, size_t len);
    /* Bytes wslay wants on the wire (control frames; borrowed for the call). */
    void (*emit)(void *conn, const uint8_t *data, size_t len);
} sm_ws_callbacks_t;

/* Per-I/O-thread state: callbacks, limits and the spare context. */
typedef struct {
    sm_ws_callbacks_t cb;
    uint64_t max_message;
    sm_ws_t *_spare;
    void *_conn;   /* connection being fed */
    sm_ws_t *_cur; /* its context, for wslay's frame callbacks */
    const uint8_t *_in;
    size_t _in_len;
} sm_ws_thread_t;

/* What sm_ws_feed saw. */
typedef struct {
    bool close_received;   /* the peer sent a close frame */
    bool close_sent;       /* a close frame was emitted (echo or error) */
    uint16_t code_sent;    /* code of the emitted close frame */
    uint16_t code_recv;    /* code in the peer's close frame (1005 if none) */
    bool text_rejected;    /* a text message arrived: 1003 was emitted */
    bool fatal;            /* wslay failed (out of memory): drop the connection */
} sm_ws_result_t;

void sm_ws_thread_init(sm_ws_thread_t *t, const sm_ws_callbacks_t *cb, uint64_t max_message);
/* Frees the spare context. */
void sm_ws_thread_destroy(sm_ws_thread_t *t);

/*
 * Feed bytes received on a connection.  *slot is the connection's sm_ws_t
 * pointer: NULL while idle; sm_ws_feed attaches one for the call and leaves it
 * attached only when a message is incomplete or the connection is closing.
 * Callbacks run inside this call.  `server_closing` tells that the server has
 * already sent its own close frame: wslay's close echo is then suppressed.
 */
void sm_ws_feed(sm_ws_thread_t *t, sm_ws_t **slot, void *conn, const uint8_t *data, size_t len,
                bool server_closing, sm_ws_result_t *res);

/* Release a connection's context (at close). */
void sm_ws_release(sm_ws_thread_t *t, sm_ws_t **slot);

#endif
