/*
 * Private to reactor/io_thread.c and reactor/conn.c: the I/O thread and
 * connection structs.  Everything here belongs to one I/O thread.
 *
 * Memory per idle WebSocket connection is the sm_conn_t below (~360 bytes
 * with the embedded uv_tcp_t) plus its slot entry: no read buffer (one per
 * thread), no HTTP parser (freed after the upgrade), no wslay context
 * (ws/ws_conn.h), no write request (taken from a per-thread pool only while a
 * write is pending).
 */
#ifndef SM_REACTOR_IO_INTERNAL_H
#define SM_REACTOR_IO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/list.h"
#include "core/mpsc.h"
#include "core/obuf.h"
#include "core/qfifo.h"
#include "core/taskq.h"
#include "http/request.h"
#include "metrics/counters.h"
#include "reactor/io_thread.h"
#include "reactor/msg.h"
#include "ws/ws_conn.h"

#define SM_IO_READ_BUF (64 * 1024)
#define SM_IO_MAX_IOV 64
#define SM_CLOSE_GRACE_MS 2000 /* wait this long for the peer's close/EOF */

typedef enum {
    CONN_PROXY = 3, /* reading a PROXY protocol header from a trusted proxy */
    CONN_HTTP = 0,  /* reading the HTTP request */
    CONN_WS,       /* upgraded */
    CONN_CLOSING,  /* last bytes queued; waiting for flush, then EOF or grace */
} conn_state_t;

typedef enum { TL_NONE = 0, TL_HANDSHAKE, TL_HEARTBEAT, TL_CLOSING } tlist_t;

enum {
    CF_WS = 0x0001,          /* was upgraded (counted in ws_open) */
    CF_CONNECTED = 0x0002,   /* CONNECT_ACK sent */
    CF_READING = 0x0004,     /* uv_read_start active */
    CF_PAUSED = 0x0008,      /* reading stopped: worker inbox full */
    CF_WRITING = 0x0010,     /* a uv_write is in flight */
    CF_NOTIFIED = 0x0020,    /* SM_IN_CLOSED sent to the worker */
    CF_SHUTDOWN = 0x0040,    /* uv_shutdown issued */
    CF_UV_CLOSING = 0x0080,  /* uv_close issued */
    CF_DIRTY = 0x0100,       /* on the thread's flush list */
    CF_CLOSE_RECV = 0x0200,  /* peer's close frame seen */
    CF_CLOSE_SENT = 0x0400,  /* our close frame queued */
    CF_CLOSE_FLUSH = 0x0800, /* close the socket once output is flushed */
    CF_RATE_LIMITED = 0x1000, /* over limits.connect_rate: upgrades get 429 */
};

typedef struct sm_onode_s {
    struct sm_onode_s *next;
    sm_obuf_t *buf;
} sm_onode_t;

typedef struct sm_conn_s {
    uv_tcp_t tcp; /* tcp.data = this */
    sm_io_thread_t *io;
    sm_list_t tnode; /* timer list membership */
    uint64_t tmark;  /* deadline (handshake/closing) or last activity (heartbeat) */
    uint32_t slot, gen;
    uint16_t flags;
    uint8_t state;
    uint8_t tlist;
    uint8_t close_reason; /* sm_close_reason_t for the worker */
    uint16_t worker;
    sm_http_req_t *http;
    sm_ws_t *ws;
    struct sm_tls_s *tls; /* wss: this connection's TLS session, else NULL */
    uint8_t *pbuf;        /* PROXY header bytes so far (CONN_PROXY only) */
    uint16_t plen;
    uint8_t peer_family;  /* AF_INET / AF_INET6 of the client (after PROXY) */
    uint8_t peer[16];     /* its address, for rate limits and logs */
    sm_onode_t *out_head, *out_tail;
    uint32_t out_off;   /* bytes of out_head already written */
    uint32_t out_bytes; /* queued, unwritten bytes */
    uint32_t inflight;  /* nodes covered by the in-flight uv_write */
} sm_conn_t;

struct sm_io_thread_s {
    sm_server_t *srv;
    const sm_config_t *cfg;
    unsigned index;
    char name[16];
    uv_thread_t thread;
    uv_loop_t loop;
    int listen_fd;
    uv_tcp_t listener;
    bool listening;
    bool draining;
    bool stopping;

    /* Outbox from workers + doorbell (also rung for "worker inbox has room"). */
    sm_ring_t outbox;
    uv_async_t outbox_async;
    _Atomic bool room;
    sm_taskq_t ctl;
    uv_prepare_t prepare; /* sends batched wake-ups before the loop blocks */

    /* Connection slots: conn pointer + generation per slot. */
    sm_conn_t **slots;
    uint32_t *gens;
    uint32_t *free_slots;
    uint32_t nslots, nfree, cap;

    /* Timers. */
    uv_timer_t timer;
    uint64_t timer_due; /* 0 = not armed */
    sm_list_t hs_list, hb_list, closing_list;

    /* Per-worker overflow for full inboxes, and wake-ups to send. */
    sm_qfifo_t *overflow;
    sm_handle_t **paused;
    size_t *npaused, *cap_paused;
    bool *wake_worker;

    /* Conns with queued output to flush at the end of the outbox drain. */
    sm_conn_t **dirty;
    size_t ndirty, cap_dirty;

    /* Pools and shared buffers. */
    sm_onode_t *onode_pool;
    uv_write_t *wreq_pool;
    uint8_t *rbuf;
    sm_ws_thread_t ws;

    sm_counters_t counters;
    struct sm_iplimit_s *connlimit; /* per-IP connection buckets (NULL = off) */
    /* Drain: connections still to close, in random order, in batches. */
    sm_handle_t *drain_list;
    size_t drain_n, drain_next, drain_batch;
    uv_timer_t drain_timer;
    int proxy_mode;                 /* sm_proxy_mode_t */
};

/* conn.c */
void sm__conn_thread_init(sm_io_thread_t *t);
void sm__conn_accept(sm_io_thread_t *t);
void sm__conn_queue(sm_conn_t *c, sm_obuf_t *b); /* takes the reference */
void sm__conn_flush(sm_conn_t *c);
void sm__conn_close_ws(sm_conn_t *c, uint16_t code, const char *notice_reason, bool reconnect,
                       sm_close_reason_t why);
void sm__conn_abort(sm_conn_t *c, sm_close_reason_t why);
void sm__conn_mark_connected(sm_conn_t *c);
void sm__conn_resume(sm_conn_t *c);

/* io_thread.c */
sm_conn_t *sm__io_conn_get(sm_io_thread_t *t, sm_handle_t h);
uint32_t sm__io_slot_alloc(sm_io_thread_t *t, sm_conn_t *c);
void sm__io_slot_free(sm_io_thread_t *t, uint32_t slot);
void sm__io_to_worker(sm_io_thread_t *t, sm_conn_t *c, const sm_qitem_t *it);
void sm__io_timer_add(sm_io_thread_t *t, sm_conn_t *c, tlist_t list, uint64_t mark);
void sm__io_timer_remove(sm_conn_t *c);
void sm__io_touch(sm_conn_t *c);
void sm__io_mark_dirty(sm_io_thread_t *t, sm_conn_t *c);
sm_onode_t *sm__io_onode_get(sm_io_thread_t *t);
void sm__io_onode_put(sm_io_thread_t *t, sm_onode_t *n);
uv_write_t *sm__io_wreq_get(sm_io_thread_t *t);
void sm__io_wreq_put(sm_io_thread_t *t, uv_write_t *w);

#endif
