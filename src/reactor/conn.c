/*
 * Connection lifecycle on its I/O thread: accept, the HTTP request and
 * upgrade, WebSocket input, batched output, and the two ways out: a graceful
 * close (our close frame, then wait briefly for the peer's) and an abort.
 *
 * Close is a request; the free happens in one place, on_close(), after libuv
 * has cancelled any pending write.  Every upgraded connection tells its
 * worker SM_IN_CLOSED exactly once, at the first of: graceful close started,
 * abort.  The reason given decides what the worker does with the session
 * (clean end or abrupt drop).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sm/proto.h>
#include <sm/uuid.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/err.h"
#include "http/health.h"
#include "http/static.h"
#include "http/upgrade.h"
#include "log/log.h"
#include "reactor/io_internal.h"
#include "reactor/msg.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "store/store.h"
#include "tls/tls.h"
#include "core/ratelimit.h"
#include "reactor/proxy_proto.h"

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void slow_consumer(sm_conn_t *c);
static void on_plain(void *conn, const uint8_t *data, size_t len);
static void tls_emit(void *conn, const uint8_t *data, size_t len);
static void wire_input(sm_conn_t *c, const uint8_t *data, size_t len);
static void proxy_input(sm_conn_t *c, const uint8_t *data, size_t len);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sm_conn_t *c = h->data;
    buf->base = (char *)c->io->rbuf;
    buf->len = SM_IO_READ_BUF;
}

static sm_handle_t handle_of(const sm_conn_t *c)
{
    return sm_handle_make(c->io->index, c->slot, c->gen);
}

static void start_reading(sm_conn_t *c)
{
    if (!(c->flags & (CF_READING | CF_PAUSED | CF_UV_CLOSING))) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->flags |= CF_READING;
    }
}

void sm__conn_resume(sm_conn_t *c)
{
    c->flags &= (uint16_t)~CF_PAUSED;
    start_reading(c);
}

/* ---- client address ---- */

static void set_peer(sm_conn_t *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        c->peer_family = AF_INET;
        memcpy(c->peer, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        c->peer_family = AF_INET6;
        memcpy(c->peer, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static void peer_sockaddr(const sm_conn_t *c, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (c->peer_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, c->peer, 4);
    } else if (c->peer_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, c->peer, 16);
    }
}

/* limits.connect_rate per client address (the real one, after PROXY). */
static void check_connect_rate(sm_conn_t *c)
{
    sm_io_thread_t *t = c->io;
    if (t->connlimit == NULL)
        return;
    struct sockaddr_storage ss;
    peer_sockaddr(c, &ss);
    if (!sm_iplimit_allow(t->connlimit, (struct sockaddr *)&ss, uv_now(&t->loop))) {
        c->flags |= CF_RATE_LIMITED;
        sm_count(&t->counters.connect_rejected_total, 1);
    }
}

/* ---- accept ---- */

void sm__conn_accept(sm_io_thread_t *t)
{
    sm_server_t *srv = t->srv;
    sm_conn_t *c = sm_xcalloc(1, sizeof *c);
    c->io = t;
    uv_tcp_init(&t->loop, &c->tcp);
    c->tcp.data = c;
    sm_list_init(&c->tnode);
    if (uv_accept((uv_stream_t *)&t->listener, (uv_stream_t *)&c->tcp) != 0) {
        /* Nothing accepted: the handle still has to be closed, then freed. */
        c->flags |= CF_UV_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    sm_count(&t->counters.connections_total, 1);
    int64_t open = atomic_fetch_add_explicit(&srv->sockets_open, 1, memory_order_relaxed) + 1;
    c->slot = sm__io_slot_alloc(t, c);
    c->gen = t->gens[c->slot];
    c->worker = (uint16_t)sm_server_worker_for(srv, handle_of(c));
    /* Shed load far above the limit without even reading a request: each
     * of these still costs a descriptor and a struct. */
    if (open > t->cfg->server_max_connections * 2 + 64) {
        sm__conn_abort(c, SM_CLOSE_SERVER);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    bool trusted = false;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
        set_peer(c, (struct sockaddr *)&peer);
        trusted = t->proxy_mode != SM_PROXY_OFF && srv->trusted_proxies &&
                  sm_cidr_match(srv->trusted_proxies, (struct sockaddr *)&peer);
    }
    c->http = sm_http_req_new();
    if (trusted) {
        c->state = CONN_PROXY; /* the client's address comes in the header */
    } else {
        c->state = CONN_HTTP;
        check_connect_rate(c);
    }
    if (t->cfg->server_tls_enabled) {
        static const sm_tls_io_t tls_io = {.emit = tls_emit, .on_plain = on_plain};
        sm_tls_ctx_t *ctx = sm_tls_ctx_get();
        c->tls = ctx ? sm_tls_new(ctx, &tls_io, c) : NULL;
        sm_tls_ctx_unref(ctx);
        if (c->tls == NULL) {
            sm__conn_abort(c, SM_CLOSE_SERVER);
            return;
        }
    }
    sm__io_timer_add(t, c, TL_HANDSHAKE, uv_now(&t->loop) + t->cfg->server_connection_timeout);
    start_reading(c);
}

/* ---- output ---- */

static sm_obuf_t *raw_obuf(const void *data, size_t len)
{
    sm_obuf_t *b = sm_obuf_new(len);
    memcpy(sm_obuf_body(b), data, len);
    b->off = SM_OBUF_HEADROOM;
    b->len = (uint32_t)len;
    return b;
}

static void queue_wire(sm_conn_t *c, sm_obuf_t *b);

/* Plaintext for the peer: encrypted first on a TLS connection.  The output
 * limit is checked here, after mbedTLS has returned: slow_consumer queues
 * more output, which must not re-enter mbedtls_ssl_write from its send
 * callback (tls_emit). */
void sm__conn_queue(sm_conn_t *c, sm_obuf_t *b)
{
    if (c->tls == NULL) {
        queue_wire(c, b);
    } else {
        if (!(c->flags & CF_UV_CLOSING) &&
            sm_tls_write(c->tls, sm_obuf_bytes(b), b->len) == SM_EPROTO)
            sm__conn_abort(c, SM_CLOSE_ABRUPT);
        sm_obuf_unref(b);
    }
    if (c->out_bytes > (uint64_t)c->io->cfg->limits_max_pending_output && c->state == CONN_WS &&
        !(c->flags & CF_UV_CLOSING))
        slow_consumer(c);
}

/* TLS records for the wire (sm_tls_io_t.emit). */
static void tls_emit(void *conn, const uint8_t *data, size_t len)
{
    sm_conn_t *c = conn;
    sm_obuf_t *b = sm_obuf_new(len);
    memcpy(sm_obuf_body(b), data, len);
    b->off = SM_OBUF_HEADROOM;
    b->len = (uint32_t)len;
    queue_wire(c, b);
}

/* Bytes as they go on the wire. */
static void queue_wire(sm_conn_t *c, sm_obuf_t *b)
{
    sm_io_thread_t *t = c->io;
    if (c->flags & CF_UV_CLOSING) {
        sm_obuf_unref(b);
        return;
    }
    sm_onode_t *n = sm__io_onode_get(t);
    n->buf = b;
    n->next = NULL;
    if (c->out_tail)
        c->out_tail->next = n;
    else
        c->out_head = n;
    c->out_tail = n;
    c->out_bytes += b->len;
    sm__io_mark_dirty(t, c);
}

/* The peer does not read what we send: drop what is not yet being written,
 * tell it why (DISCONNECT notice + close 1008) and give it the closing grace
 * period to take that; then the socket is closed regardless. */
static void slow_consumer(sm_conn_t *c)
{
    sm_io_thread_t *t = c->io;
    sm_count(&t->counters.slow_consumers_total, 1);
    SM_LOG(SM_LOG_WARN, SM_MSG("slow consumer closed"), SM_UINT("slot", c->slot),
           SM_UINT("pending_bytes", c->out_bytes));
    /* Keep the nodes an in-flight write refers to (all of them when writing:
     * gather() stopped at SM_IO_MAX_IOV, so only the first `inflight`).  On
     * TLS keep every record: dropping one breaks the record sequence, and the
     * peer could decrypt nothing after it, the notice included. */
    size_t keep = c->tls ? SIZE_MAX : (c->flags & CF_WRITING) ? c->inflight : 0;
    sm_onode_t **pp = &c->out_head;
    for (size_t i = 0; i < keep && *pp; i++)
        pp = &(*pp)->next;
    sm_onode_t *n = *pp;
    *pp = NULL;
    c->out_tail = NULL;
    for (sm_onode_t *o = c->out_head; o; o = o->next)
        c->out_tail = o;
    while (n) {
        sm_onode_t *next = n->next;
        c->out_bytes -= n->buf->len - (n == c->out_head ? c->out_off : 0);
        sm_obuf_unref(n->buf);
        sm__io_onode_put(t, n);
        n = next;
    }
    if (keep == 0)
        c->out_off = 0;
    sm__conn_close_ws(c, 1008, "slow consumer", true, SM_CLOSE_SERVER);
}

static void pop_written(sm_conn_t *c, size_t nodes)
{
    sm_io_thread_t *t = c->io;
    while (nodes-- > 0 && c->out_head) {
        sm_onode_t *n = c->out_head;
        c->out_head = n->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        sm_obuf_unref(n->buf);
        sm__io_onode_put(t, n);
    }
}

/* Gather iovecs from the queue head; returns the count. */
static unsigned gather(sm_conn_t *c, uv_buf_t *iov, size_t *total)
{
    unsigned n = 0;
    size_t sum = 0;
    for (sm_onode_t *o = c->out_head; o && n < SM_IO_MAX_IOV; o = o->next) {
        size_t skip = (o == c->out_head) ? c->out_off : 0;
        iov[n].base = (char *)sm_obuf_bytes(o->buf) + skip;
        iov[n].len = o->buf->len - skip;
        sum += iov[n].len;
        n++;
    }
    *total = sum;
    return n;
}

static void after_flush(sm_conn_t *c)
{
    if (c->out_head == NULL && (c->flags & CF_CLOSE_FLUSH))
        sm__conn_abort(c, (sm_close_reason_t)c->close_reason);
}

static void on_write(uv_write_t *req, int status)
{
    sm_conn_t *c = req->handle->data;
    sm_io_thread_t *t = c->io;
    sm__io_wreq_put(t, req);
    c->flags &= (uint16_t)~CF_WRITING;
    pop_written(c, c->inflight);
    c->inflight = 0;
    c->out_off = 0;
    if (c->flags & CF_UV_CLOSING)
        return;
    if (status < 0) {
        sm__conn_abort(c, SM_CLOSE_ABRUPT);
        return;
    }
    sm__conn_flush(c);
}

void sm__conn_flush(sm_conn_t *c)
{
    sm_io_thread_t *t = c->io;
    uv_buf_t iov[SM_IO_MAX_IOV];
    if (c->flags & (CF_WRITING | CF_UV_CLOSING))
        return;
    while (c->out_head) {
        size_t total;
        unsigned n = gather(c, iov, &total);
        int r = uv_try_write((uv_stream_t *)&c->tcp, iov, n);
        if (r == UV_EAGAIN || r == UV_ENOSYS)
            r = 0;
        if (r < 0) {
            sm__conn_abort(c, SM_CLOSE_ABRUPT);
            return;
        }
        sm_count(&t->counters.bytes_out, (uint64_t)r);
        c->out_bytes -= (uint32_t)r;
        /* Drop fully written nodes; remember the offset into a partial one. */
        size_t left = (size_t)r;
        while (c->out_head && left > 0) {
            size_t avail = c->out_head->buf->len - c->out_off;
            if (left < avail) {
                c->out_off += (uint32_t)left;
                left = 0;
                break;
            }
            left -= avail;
            c->out_off = 0;
            pop_written(c, 1);
        }
        if ((size_t)r < total) {
            /* The socket is full: let libuv finish this batch when writable. */
            n = gather(c, iov, &total);
            uv_write_t *w = sm__io_wreq_get(t);
            c->inflight = n;
            c->flags |= CF_WRITING;
            sm_count(&t->counters.bytes_out, total);
            c->out_bytes -= (uint32_t)total;
            if (uv_write(w, (uv_stream_t *)&c->tcp, iov, n, on_write) != 0) {
                sm__io_wreq_put(t, w);
                c->flags &= (uint16_t)~CF_WRITING;
                c->inflight = 0;
                sm__conn_abort(c, SM_CLOSE_ABRUPT);
            }
            return;
        }
    }
    after_flush(c);
}

/* ---- close ---- */

static void on_close(uv_handle_t *h)
{
    sm_conn_t *c = h->data;
    sm_io_thread_t *t = c->io;
    sm_server_t *srv = t->srv;
    /* Pending writes were cancelled (their callbacks ran); drop the rest. */
    pop_written(c, (size_t)-1);
    if (c->flags & CF_DIRTY) {
        for (size_t i = 0; i < t->ndirty; i++) {
            if (t->dirty[i] == c)
                t->dirty[i] = t->dirty[--t->ndirty];
        }
    }
    atomic_fetch_sub_explicit(&srv->sockets_open, 1, memory_order_relaxed);
    if (c->flags & CF_WS)
        atomic_fetch_sub_explicit(&srv->ws_open, 1, memory_order_relaxed);
    sm_http_req_free(c->http);
    sm_ws_release(&t->ws, &c->ws);
    sm_tls_free(c->tls);
    free(c->pbuf);
    sm__io_slot_free(t, c->slot);
    free(c);
}

static void notify_worker(sm_conn_t *c, sm_close_reason_t why)
{
    if (!(c->flags & CF_WS) || (c->flags & CF_NOTIFIED))
        return;
    c->flags |= CF_NOTIFIED;
    sm_qitem_t it = {.handle = handle_of(c), .kind = SM_IN_CLOSED, .arg = (uint32_t)why};
    sm__io_to_worker(c->io, c, &it);
}

void sm__conn_abort(sm_conn_t *c, sm_close_reason_t why)
{
    if (c->flags & CF_UV_CLOSING)
        return;
    notify_worker(c, why);
    c->flags |= CF_UV_CLOSING;
    sm__io_timer_remove(c);
    if (c->flags & CF_READING)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->flags &= (uint16_t)~CF_READING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static sm_obuf_t *notice_frame(const char *reason, uint16_t code, bool reconnect)
{
    char json[256], esc[160];
    sm_json_escape(esc, sizeof esc, reason);
    int n = snprintf(json, sizeof json, "{\"reason\":\"%s\",\"code\":%u,\"reconnect\":%s}", esc,
                     code, reconnect ? "true" : "false");
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    if (sm_uuid_v4(uuid) != 0)
        memset(uuid, 0, sizeof uuid);
    sm_obuf_t *b = sm_obuf_new(SM_PROTO_HEADER_SIZE + (size_t)n);
    size_t w = 0;
    sm_frame_encode(sm_obuf_body(b), b->cap, SM_MSG_DISCONNECT, uuid, SM_PAYLOAD_JSON, json,
                    (size_t)n, &w);
    sm_obuf_finish_ws(b, w, 0x2);
    return b;
}

void sm__conn_close_ws(sm_conn_t *c, uint16_t code, const char *notice_reason, bool reconnect,
                       sm_close_reason_t why)
{
    sm_io_thread_t *t = c->io;
    if (c->state == CONN_CLOSING || (c->flags & CF_UV_CLOSING))
        return;
    if (c->state != CONN_WS) {
        sm__conn_abort(c, why);
        return;
    }
    notify_worker(c, why);
    c->close_reason = (uint8_t)why;
    /* CLOSING before queueing: the notice and close frame must not trip the
     * output limit again (slow_consumer -> here -> slow_consumer ...). */
    c->flags |= CF_CLOSE_SENT;
    c->state = CONN_CLOSING;
    if (notice_reason) {
        sm_count(&t->counters.msgs_out[sm_metric_msg_index(SM_MSG_DISCONNECT)], 1);
        sm__conn_queue(c, notice_frame(notice_reason, code, reconnect));
    }
    sm__conn_queue(c, sm_obuf_new_close(code, notice_reason));
    if (c->tls)
        sm_tls_close_notify(c->tls);
    sm_count(&t->counters.closes[sm_metric_close_index(code)], 1);
    sm__io_timer_add(t, c, TL_CLOSING, uv_now(&t->loop) + SM_CLOSE_GRACE_MS);
}

/* ---- HTTP ---- */

static void http_respond_close(sm_conn_t *c, int status, const char *ctype, const char *extra,
                               const char *body, size_t body_len)
{
    sm_io_thread_t *t = c->io;
    char buf[2048];
    size_t n = sm_http_format(buf, sizeof buf, status, ctype, extra, body, body_len);
    if (n == 0) {
        sm__conn_abort(c, SM_CLOSE_SERVER);
        return;
    }
    sm__conn_queue(c, raw_obuf(buf, n));
    c->state = CONN_CLOSING;
    c->flags |= CF_CLOSE_FLUSH;
    c->close_reason = SM_CLOSE_SERVER;
    sm__io_timer_add(t, c, TL_CLOSING, uv_now(&t->loop) + SM_CLOSE_GRACE_MS);
}

/* A response whose body may be large (static files): header and body in
 * one buffer, then close. */
static void respond_body(sm_conn_t *c, int status, const char *ctype, const char *extra,
                         const char *body, size_t len, bool head)
{
    sm_io_thread_t *t = c->io;
    char hdr[512];
    int h = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                     "Connection: close\r\n%s\r\n",
                     status, sm_http_reason(status), ctype, len, extra ? extra : "");
    SM_ASSERT(h > 0 && (size_t)h < sizeof hdr); /* ctype and extra are ours, and short */
    /* HEAD: the same Content-Length as GET (RFC 9110 8.6), no body. */
    size_t blen = head ? 0 : len;
    sm_obuf_t *b = sm_obuf_new((size_t)h + blen);
    memcpy(sm_obuf_body(b), hdr, (size_t)h);
    if (blen)
        memcpy(sm_obuf_body(b) + h, body, blen);
    b->off = SM_OBUF_HEADROOM;
    b->len = (uint32_t)((size_t)h + blen);
    sm__conn_queue(c, b);
    c->state = CONN_CLOSING;
    c->flags |= CF_CLOSE_FLUSH;
    c->close_reason = SM_CLOSE_SERVER;
    sm__io_timer_add(t, c, TL_CLOSING, uv_now(&t->loop) + SM_CLOSE_GRACE_MS);
}

static void respond_static(sm_conn_t *c, bool head)
{
    const sm_config_t *cfg = c->io->cfg;
    sm_static_result_t r;
    sm_static_serve(cfg->server_demo_dir, cfg->server_sdk_dir, sm_http_req_path(c->http), &r);
    if (r.status == 200) {
        respond_body(c, 200, r.ctype, NULL, r.body, r.len, head);
    } else if (r.status == 301) {
        char loc[128];
        snprintf(loc, sizeof loc, "Location: %s\r\n", r.location);
        respond_body(c, 301, "text/plain; charset=utf-8", loc, "", 0, head);
    } else {
        const char *msg = r.status == 403 ? "forbidden\n" : "not found\n";
        respond_body(c, r.status, "text/plain; charset=utf-8", NULL, msg, strlen(msg), head);
    }
    free(r.body);
}

static void respond_text(sm_conn_t *c, int status, const char *text)
{
    http_respond_close(c, status, "text/plain; charset=utf-8", NULL, text, strlen(text));
}

static void respond_health(sm_conn_t *c, bool head)
{
    sm_io_thread_t *t = c->io;
    sm_server_t *srv = t->srv;
    sm_health_t h = {
        .draining = atomic_load_explicit(&srv->draining, memory_order_relaxed),
        .store_healthy = srv->store ? sm_store_healthy(srv->store) : true,
        .active_connections = atomic_load_explicit(&srv->ws_open, memory_order_relaxed),
        .registered_clients = srv->registry ? sm_registry_count(srv->registry) : 0,
        .webrtc_sessions = srv->rooms ? sm_rooms_count(srv->rooms) : 0,
        .version = SM_VERSION,
        .instance_id = srv->instance_id,
        .store_backend = srv->store ? sm_store_backend_name(srv->store) : "none",
        .now_ms = sm_clock_wall_ms(),
        .started_at_ms = srv->started_at_ms,
    };
    char body[1024];
    size_t len;
    int status = sm_health_render(&h, body, sizeof body, &len);
    respond_body(c, status, "application/json", NULL, body, len, head);
}

/* Readiness: serving, not draining, and the store answering. */
static void respond_ready(sm_conn_t *c, bool head)
{
    sm_server_t *srv = c->io->srv;
    bool draining = c->io->draining || atomic_load_explicit(&srv->draining, memory_order_relaxed);
    bool store_ok = srv->store ? sm_store_healthy(srv->store) : true;
    const char *body = draining    ? "{\"status\":\"draining\"}"
                       : !store_ok ? "{\"status\":\"not ready\",\"reason\":\"store unavailable\"}"
                                   : "{\"status\":\"ready\"}";
    respond_body(c, draining || !store_ok ? 503 : 200, "application/json", NULL, body, strlen(body),
                 head);
}

static void ws_input(sm_conn_t *c, const uint8_t *data, size_t len);

static void do_upgrade(sm_conn_t *c, const uint8_t *rest, size_t rest_len)
{
    sm_io_thread_t *t = c->io;
    sm_server_t *srv = t->srv;
    if (c->flags & CF_RATE_LIMITED) {
        static const char msg[] = "too many connections from this address; slow down\n";
        http_respond_close(c, 429, "text/plain; charset=utf-8", "Retry-After: 1\r\n", msg,
                           sizeof msg - 1);
        return;
    }
    if (t->draining || atomic_load_explicit(&srv->draining, memory_order_relaxed)) {
        sm_count(&t->counters.rejected_total, 1);
        respond_text(c, 503, "server is shutting down; reconnect to another instance\n");
        return;
    }
    int64_t n = atomic_fetch_add_explicit(&srv->ws_open, 1, memory_order_relaxed);
    if (n >= t->cfg->server_max_connections) {
        atomic_fetch_sub_explicit(&srv->ws_open, 1, memory_order_relaxed);
        sm_count(&t->counters.rejected_total, 1);
        respond_text(c, 503, "server is at max_connections; try again later\n");
        return;
    }
    c->flags |= CF_WS;
    char accept[SM_WS_ACCEPT_LEN + 1];
    sm_ws_accept_key(sm_http_req_ws_key(c->http), accept); /* validated by the router */
    char resp[256];
    size_t rlen = sm_http_format_upgrade(resp, sizeof resp, accept);
    sm__conn_queue(c, raw_obuf(resp, rlen));
    sm_count(&t->counters.upgrades_total, 1);
    if (sm_log_enabled(SM_LOG_DEBUG)) {
        char ip[64] = "?";
        inet_ntop(c->peer_family == AF_INET6 ? AF_INET6 : AF_INET, c->peer, ip, sizeof ip);
        SM_LOG(SM_LOG_DEBUG, SM_MSG("websocket upgrade"), SM_STR("peer", ip),
               SM_UINT("slot", c->slot));
    }
    sm_http_req_free(c->http);
    c->http = NULL;
    c->state = CONN_WS;
    if (rest_len > 0)
        ws_input(c, rest, rest_len);
}

static void http_input(sm_conn_t *c, const uint8_t *data, size_t len)
{
    size_t used = 0;
    sm_http_status_t st = sm_http_req_feed(c->http, (const char *)data, len, &used);
    switch (st) {
    case SM_HTTP_MORE:
        return;
    case SM_HTTP_BAD:
        sm_count(&c->io->counters.http_requests_total, 1);
        respond_text(c, 400, "malformed HTTP request\n");
        return;
    case SM_HTTP_TOO_LARGE:
        sm_count(&c->io->counters.http_requests_total, 1);
        respond_text(c, 431, "request headers too large\n");
        return;
    case SM_HTTP_COMPLETE:
        break;
    }
    sm_count(&c->io->counters.http_requests_total, 1);
    const char *why = NULL;
    switch (sm_http_route(c->http, &why)) {
    case SM_ROUTE_UPGRADE:
        do_upgrade(c, data + used, len - used);
        return;
    case SM_ROUTE_HEALTH:
        respond_health(c, sm_http_req_is_head(c->http));
        return;
    case SM_ROUTE_READY:
        respond_ready(c, sm_http_req_is_head(c->http));
        return;
    case SM_ROUTE_STATIC:
        respond_static(c, sm_http_req_is_head(c->http));
        return;
    case SM_ROUTE_UPGRADE_REQUIRED:
        http_respond_close(c, 426, "text/plain; charset=utf-8",
                           "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                           "this endpoint speaks WebSocket: connect with ws:// (binary frames)\n",
                           67);
        return;
    case SM_ROUTE_NOT_FOUND:
        respond_text(c, 404, "not found\n");
        return;
    case SM_ROUTE_BAD_UPGRADE: {
        char body[128];
        snprintf(body, sizeof body, "bad WebSocket upgrade: %s\n", why ? why : "invalid");
        http_respond_close(c, 400, "text/plain; charset=utf-8", "Sec-WebSocket-Version: 13\r\n",
                           body, strlen(body));
        return;
    }
    }
}

/* ---- WebSocket ---- */

static void ws_on_binary(void *conn, const uint8_t *data, size_t len)
{
    sm_conn_t *c = conn;
    if (c->state != CONN_WS)
        return;
    sm_imsg_t *m = sm_xmalloc(sizeof *m + len);
    m->next = NULL;
    m->len = (uint32_t)len;
    if (len > 0) /* an empty message has data == NULL */
        memcpy(m->data, data, len);
    sm_qitem_t it = {.handle = handle_of(c), .ptr = m, .kind = SM_IN_FRAME};
    sm__io_to_worker(c->io, c, &it);
}

static void ws_emit(void *conn, const uint8_t *data, size_t len)
{
    sm_conn_t *c = conn;
    sm__conn_queue(c, raw_obuf(data, len));
}

static void ws_input(sm_conn_t *c, const uint8_t *data, size_t len)
{
    sm_io_thread_t *t = c->io;
    bool closing = c->state == CONN_CLOSING;
    sm_ws_result_t res;
    sm__io_touch(c);
    sm_ws_feed(&t->ws, &c->ws, c, data, len, closing, &res);
    if (res.fatal) {
        sm__conn_abort(c, SM_CLOSE_ABRUPT);
        return;
    }
    if (closing) {
        if (res.close_received)
            sm__conn_abort(c, (sm_close_reason_t)c->close_reason);
        return;
    }
    if (res.close_received || res.close_sent) {
        /* wslay answered the peer's close (echo) or closed on a protocol
         * error (1002), a text message (1003) or a too-big message (1009). */
        sm_close_reason_t why = res.close_received ? SM_CLOSE_CLEAN : SM_CLOSE_SERVER;
        if (res.close_sent)
            sm_count(&t->counters.closes[sm_metric_close_index(res.code_sent)], 1);
        notify_worker(c, why);
        c->close_reason = (uint8_t)why;
        c->flags |= CF_CLOSE_SENT;
        c->state = CONN_CLOSING;
        if (res.close_received) {
            c->flags |= CF_CLOSE_RECV | CF_CLOSE_FLUSH;
            sm__io_timer_remove(c);
            sm__io_timer_add(t, c, TL_CLOSING, uv_now(&t->loop) + SM_CLOSE_GRACE_MS);
        } else {
            sm__io_timer_add(t, c, TL_CLOSING, uv_now(&t->loop) + SM_CLOSE_GRACE_MS);
        }
    }
}

void sm__conn_mark_connected(sm_conn_t *c)
{
    if (c->flags & CF_CONNECTED)
        return;
    c->flags |= CF_CONNECTED;
    if (c->state == CONN_WS)
        sm__io_timer_add(c->io, c, TL_HEARTBEAT, uv_now(&c->io->loop));
}

/* ---- read ---- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sm_conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error.  Without a close frame this is an abrupt end. */
        sm_close_reason_t why = (c->flags & CF_CLOSE_RECV) ? SM_CLOSE_CLEAN : SM_CLOSE_ABRUPT;
        if (c->state == CONN_CLOSING)
            why = (sm_close_reason_t)c->close_reason;
        sm__conn_abort(c, why);
        return;
    }
    sm_count(&c->io->counters.bytes_in, (uint64_t)nread);
    const uint8_t *data = (const uint8_t *)buf->base;
    if (c->state == CONN_PROXY)
        proxy_input(c, data, (size_t)nread);
    else
        wire_input(c, data, (size_t)nread);
}

/* Bytes from the socket after any PROXY header: TLS, or the plain protocol. */
static void wire_input(sm_conn_t *c, const uint8_t *data, size_t len)
{
    if (len == 0 || (c->flags & CF_UV_CLOSING))
        return;
    if (c->tls == NULL) {
        on_plain(c, data, len);
        return;
    }
    int rc = sm_tls_feed(c->tls, data, len);
    if (rc == SM_ECLOSED && !(c->flags & CF_UV_CLOSING)) {
        /* close_notify without a WebSocket close frame: like EOF. */
        sm__conn_abort(c, c->state == CONN_CLOSING ? (sm_close_reason_t)c->close_reason
                                                   : SM_CLOSE_ABRUPT);
    } else if (rc == SM_EPROTO && !(c->flags & CF_UV_CLOSING)) {
        /* A failed handshake (e.g. plain HTTP on the TLS port) or a bad
         * record: the alert, if any, is queued; send it, then close. */
        sm__conn_flush(c);
        sm__conn_abort(c, SM_CLOSE_ABRUPT);
    }
}

/* A trusted proxy's connection starts with a PROXY header naming the real
 * client.  It normally arrives whole in the first read and is parsed where it
 * lies; only a header split over reads is buffered (it is small) until it is
 * complete.  Then go on with the bytes after it. */
static void proxy_input(sm_conn_t *c, const uint8_t *data, size_t len)
{
    const uint8_t *hdr = data;
    size_t have = len, take = len;
    if (c->pbuf != NULL) {
        size_t room = SM_PROXY_MAX_HEADER - c->plen;
        take = room < len ? room : len;
        memcpy(c->pbuf + c->plen, data, take);
        c->plen = (uint16_t)(c->plen + take);
        hdr = c->pbuf;
        have = c->plen;
    }
    sm_proxy_result_t r;
    int rc = sm_proxy_parse((sm_proxy_mode_t)c->io->proxy_mode, hdr, have, &r);
    if (rc == SM_EAGAIN && have < SM_PROXY_MAX_HEADER) {
        if (c->pbuf == NULL) { /* the first part of a split header */
            c->pbuf = sm_xmalloc(SM_PROXY_MAX_HEADER);
            memcpy(c->pbuf, data, len);
            c->plen = (uint16_t)len;
        }
        return;
    }
    if (rc != 0) {
        SM_LOG(SM_LOG_WARN, SM_MSG("bad PROXY header from a trusted proxy"),
               SM_STR("error", r.error ? r.error : "header too long"));
        sm__conn_abort(c, SM_CLOSE_SERVER);
        return;
    }
    if (r.has_addr && !r.local)
        set_peer(c, (struct sockaddr *)&r.src);
    c->state = CONN_HTTP;
    check_connect_rate(c);
    if (hdr == data) {
        wire_input(c, data + r.consumed, len - r.consumed);
        return;
    }
    uint8_t *pbuf = c->pbuf;
    size_t plen = c->plen;
    c->pbuf = NULL;
    c->plen = 0;
    wire_input(c, pbuf + r.consumed, plen - r.consumed);
    free(pbuf);
    wire_input(c, data + take, len - take);
}

/* Bytes of the application protocol (after TLS, when there is TLS). */
static void on_plain(void *conn, const uint8_t *data, size_t len)
{
    sm_conn_t *c = conn;
    if (c->flags & CF_UV_CLOSING)
        return;
    switch (c->state) {
    case CONN_PROXY:
        break; /* not reached: proxy_input runs first */
    case CONN_HTTP:
        http_input(c, data, len);
        break;
    case CONN_WS:
    case CONN_CLOSING:
        if (c->flags & CF_WS)
            ws_input(c, data, len);
        /* HTTP responses being flushed: the peer's extra bytes are dropped. */
        break;
    }
}

void sm__conn_thread_init(sm_io_thread_t *t)
{
    static const sm_ws_callbacks_t cbs = {.on_binary = ws_on_binary, .emit = ws_emit};
    sm_ws_thread_init(&t->ws, &cbs, (uint64_t)t->cfg->limits_max_message_size);
}
