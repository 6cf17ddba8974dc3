/*
 * signal-bench WebSocket client: the minimum of RFC 6455 a load generator
 * needs, on a libuv loop, carrying Signal Manager frames (<sm/proto.h>).
 *
 * What it does: TCP connect (optionally from a chosen source address, so
 * more than one ephemeral port range is available), the HTTP/1.1 upgrade
 * (the 101 and its Sec-WebSocket-Accept are checked), masked binary client
 * frames, unmasked server frames decoded with sm_frame_decode(), the close
 * handshake.  What it does not: fragmentation of outgoing messages,
 * extensions, TLS, text messages (counted as protocol errors).
 *
 * Lean by design:
 *   - frames a scenario sends often are pre-encoded once as templates
 *     (sm_ws_tpl_t) and copied into the output buffer, with the few bytes
 *     that change (uuid, timestamps) patched in place through the mask;
 *   - all output of a connection goes to one buffer; buffers are written
 *     once per loop iteration (uv_prepare + uv_check), with uv_try_write
 *     first and one uv_write for what the socket did not take, so many
 *     frames leave in one system call;
 *   - one read buffer per connection (grown only for an oversized message).
 * Requests may be queued before the connection is up: the upgrade request
 * goes first and the frames follow it (the server accepts frames right
 * behind the upgrade request).
 *
 * The mask key is one random value per context (per run) so templates can be
 * shared by all connections; the server unmasks every byte either way.
 *
 * Threads: everything runs on the loop thread that owns the context.
 * Ownership: the context owns its connections; a connection is freed by the
 * library right after ops->on_closed() returns.  Frames passed to on_frame
 * are borrowed for the call (they point into the read buffer).
 */
#ifndef SM_BENCH_WSCLIENT_H
#define SM_BENCH_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <uv.h>

#include <sm/proto.h>

typedef struct sm_wsc_ctx_s sm_wsc_ctx_t;
typedef struct sm_wsc_s sm_wsc_t;

/* Why a connection ended (argument of on_closed). */
typedef enum {
    SM_WSC_END_OK = 0,     /* our close frame was answered (or EOF after it) */
    SM_WSC_END_ABORT,      /* sm_wsc_abort() */
    SM_WSC_END_CONNECT,    /* TCP connect failed */
    SM_WSC_END_UPGRADE,    /* not a 101, or a bad Sec-WebSocket-Accept */
    SM_WSC_END_PEER_CLOSE, /* the server sent a close frame first */
    SM_WSC_END_EOF,        /* the server closed TCP without a close frame */
    SM_WSC_END_IO,         /* read or write error (reset, ...) */
    SM_WSC_END_PROTO,      /* malformed WebSocket framing, text message, bad frame */
    SM_WSC_END_COUNT
} sm_wsc_end_t;

/* Short name of an end reason ("peer_close"); never NULL. */
const char *sm_wsc_end_name(sm_wsc_end_t why);

typedef struct sm_wsc_ops_s {
    /* The 101 arrived; the connection is open.  May be NULL. */
    void (*on_open)(sm_wsc_t *c);
    /* One decoded protocol frame from the server (sm_frame_decode() passed;
     * the message type is not checked).  The frame is borrowed. */
    void (*on_frame)(sm_wsc_t *c, const sm_frame_t *f);
    /* A binary message that is not a valid frame: err is the SM_PROTO_E*
     * code.  The connection stays open.  May be NULL. */
    void (*on_bad_frame)(sm_wsc_t *c, int err);
    /* The handle is closed; c is freed when this returns.  ws_code is the
     * close code the server sent (0 if none). */
    void (*on_closed)(sm_wsc_t *c, sm_wsc_end_t why, int uv_err, int ws_code);
} sm_wsc_ops_t;

/* Counters summed over every connection of a context. */
typedef struct sm_wsc_stats_s {
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t frames_in;
    uint64_t writes; /* write system calls issued (try_write + uv_write) */
    uint64_t queued; /* times a uv_write had to carry what try_write left */
    uint64_t open;   /* connections currently allocated */
} sm_wsc_stats_t;

/*
 * Create a context for ws://host:port/ on `loop`.  host must be an IPv4 or
 * IPv6 literal.  rbuf_size is the initial read buffer per connection
 * (messages larger than it grow it).  ops is borrowed and must outlive the
 * context.  Returns 0 and *out, or a negative libuv error (bad address).
 */
int sm_wsc_ctx_new(uv_loop_t *loop, const char *host, int port, size_t rbuf_size,
                   const sm_wsc_ops_t *ops, sm_wsc_ctx_t **out);

/* Close the context's own handles; every connection must be gone (stats
 * open == 0).  The loop must run once more to finish the close, after
 * which the context is freed. */
void sm_wsc_ctx_close(sm_wsc_ctx_t *ctx);

/* Live counters (read-only view). */
const sm_wsc_stats_t *sm_wsc_ctx_stats(const sm_wsc_ctx_t *ctx);

/* Mask key used for every frame of this context. */
const uint8_t *sm_wsc_ctx_mask(const sm_wsc_ctx_t *ctx);

/*
 * Start a connection: TCP connect from `src` (NULL = the kernel's choice;
 * its port should be 0) and queue the upgrade request.  The caller may queue
 * frames at once.  Returns the connection (never NULL: a failure to even
 * start is reported through on_closed with SM_WSC_END_CONNECT on a later
 * loop iteration).
 */
sm_wsc_t *sm_wsc_connect(sm_wsc_ctx_t *ctx, const struct sockaddr_in *src, void *user);

void *sm_wsc_user(const sm_wsc_t *c);
/* True between the 101 and the start of closing. */
bool sm_wsc_is_open(const sm_wsc_t *c);

/*
 * Append n bytes of already encoded (masked) WebSocket data to the output
 * and return where they go, for the caller to fill.  The pointer is valid
 * until the next call on this connection.  Output is written at the end of
 * the current loop iteration.  Returns NULL once the connection is closing.
 */
uint8_t *sm_wsc_reserve(sm_wsc_t *c, size_t n);

/* Encode msg[0..n) as one masked binary message and queue it.  Returns 0, or
 * -1 once the connection is closing (nothing queued). */
int sm_wsc_send(sm_wsc_t *c, const void *msg, size_t n);

/* Start the close handshake: queue a close frame with `code`; the handle is
 * closed when the server's close frame or EOF arrives.  No-op if closing. */
void sm_wsc_close(sm_wsc_t *c, uint16_t code);

/* Close the TCP connection now (no close frame); on_closed follows with
 * SM_WSC_END_ABORT.  No-op if the handle is already closing. */
void sm_wsc_abort(sm_wsc_t *c);

/* ---- pre-encoded frames ---- */

/* One masked binary WebSocket message, ready to copy.  `bytes` is owned by
 * the template (sm_ws_tpl_free). */
typedef struct sm_ws_tpl_s {
    uint8_t *bytes;
    size_t len; /* whole WebSocket frame */
    size_t hdr; /* WebSocket header bytes before the (masked) message */
} sm_ws_tpl_t;

/* Encode msg[0..n) masked with `mask` into a new template.  Never fails
 * (allocation aborts). */
void sm_ws_tpl_init(sm_ws_tpl_t *t, const uint8_t mask[4], const void *msg, size_t n);
void sm_ws_tpl_free(sm_ws_tpl_t *t);

/* Copy the template into c's output; returns the copy (for patching) or
 * NULL once the connection is closing. */
uint8_t *sm_wsc_send_tpl(sm_wsc_t *c, const sm_ws_tpl_t *t);

/* Overwrite message bytes [off, off + n) of a copy of template t with
 * src, masking them as they go.  off + n must not pass the message end. */
static inline void sm_ws_tpl_patch(uint8_t *frame, const sm_ws_tpl_t *t, const uint8_t mask[4],
                                   size_t off, const void *src, size_t n)
{
    const uint8_t *s = src;
    uint8_t *d = frame + t->hdr + off;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i] ^ mask[(off + i) & 3];
}

#endif
