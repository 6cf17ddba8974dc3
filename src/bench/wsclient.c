/*
 * Minimal WebSocket client for signal-bench (see wsclient.h for what it does
 * and does not do).  One uv_tcp_t per connection, one read buffer and two
 * output buffers per connection (the one being filled and the one a
 * uv_write owns), and a per-context list of connections with output
 * waiting, flushed from a uv_prepare (before the loop blocks, after timers)
 * and a uv_check (after the poll phase, after read callbacks) so that all
 * frames queued during one loop iteration leave with one write.
 */
#include "bench/wsclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/list.h"

/* Largest message we accept from the server.  Server frames are at most
 * 65556 bytes; anything far past that is a framing error, not data. */
#define MAX_MESSAGE (1u << 20)
/* Largest 101 response head we wait for before calling it a bad upgrade. */
#define MAX_RESPONSE_HEAD 8192
/* First output buffer of a connection; doubles as needed.  A CONNECT or a
 * batch of PINGs fits. */
#define OUT_INITIAL 512
/* Read at least this much per read call, growing the buffer if needed. */
#define READ_MIN 512

enum { ST_CONNECTING, ST_UPGRADING, ST_OPEN, ST_CLOSING, ST_DEAD };

struct sm_wsc_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    sm_wsc_ctx_t *ctx;
    void *user;
    sm_list_t dirty; /* in ctx->dirty while output waits for a flush */
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *out; /* being filled */
    size_t olen, ocap;
    uint8_t *wbuf; /* owned by the pending uv_write */
    size_t wlen, wcap;
    uint8_t state;
    bool writing;
    sm_wsc_end_t end;
    int end_err;
    int ws_code;
};

struct sm_wsc_ctx_s {
    uv_loop_t *loop;
    const sm_wsc_ops_t *ops;
    struct sockaddr_storage addr;
    size_t rbuf_size;
    char request[384];
    size_t request_len;
    char accept[40];
    size_t accept_len;
    uint8_t mask[4];
    uv_prepare_t prep;
    uv_check_t check;
    int handles_open;
    sm_list_t dirty;
    sm_wsc_stats_t st;
};

static const char *const end_names[SM_WSC_END_COUNT] = {
    "ok", "abort", "connect", "upgrade", "peer_close", "eof", "io", "proto",
};

const char *sm_wsc_end_name(sm_wsc_end_t why)
{
    return (unsigned)why < SM_WSC_END_COUNT ? end_names[why] : "unknown";
}

/* ---- output ---- */

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : OUT_INITIAL;
    while (n < need)
        n *= 2;
    *buf = sm_xrealloc(*buf, n);
    *cap = n;
}

static void mark_dirty(sm_wsc_t *c)
{
    if (!sm_list_linked(&c->dirty))
        sm_list_insert_tail(&c->ctx->dirty, &c->dirty);
}

/* Append without the closing check (the close frame itself uses it). */
static uint8_t *out_append(sm_wsc_t *c, size_t n)
{
    grow(&c->out, &c->ocap, c->olen + n);
    uint8_t *p = c->out + c->olen;
    c->olen += n;
    mark_dirty(c);
    return p;
}

/* WebSocket header for a masked client frame of n payload bytes. */
static size_t ws_header(uint8_t *h, uint8_t opcode, size_t n, const uint8_t mask[4])
{
    size_t k = 0;
    h[k++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[k++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xffff) {
        h[k++] = 0x80 | 126;
        h[k++] = (uint8_t)(n >> 8);
        h[k++] = (uint8_t)n;
    } else {
        h[k++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[k++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memcpy(h + k, mask, 4);
    return k + 4;
}

static size_t ws_header_size(size_t n)
{
    return (n < 126 ? 2 : n <= 0xffff ? 4 : 10) + 4;
}

static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4])
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ mask[i & 3];
}

static void queue_frame(sm_wsc_t *c, uint8_t opcode, const void *msg, size_t n)
{
    const uint8_t *mask = c->ctx->mask;
    uint8_t *p = out_append(c, ws_header_size(n) + n);
    size_t h = ws_header(p, opcode, n, mask);
    mask_copy(p + h, msg, n, mask);
}

static void finish(sm_wsc_t *c, sm_wsc_end_t why, int err);

static void write_cb(uv_write_t *req, int status)
{
    sm_wsc_t *c = req->data;
    c->writing = false;
    if (c->state == ST_DEAD)
        return;
    if (status < 0) {
        finish(c, SM_WSC_END_IO, status);
        return;
    }
    c->ctx->st.bytes_out += c->wlen;
    c->wlen = 0;
    if (c->olen > 0)
        mark_dirty(c);
}

static void flush(sm_wsc_t *c)
{
    if (c->state == ST_CONNECTING || c->state == ST_DEAD || c->writing || c->olen == 0)
        return;
    sm_wsc_ctx_t *ctx = c->ctx;
    uv_buf_t b = uv_buf_init((char *)c->out, (unsigned)c->olen);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    ctx->st.writes++;
    if (n == (int)c->olen) {
        ctx->st.bytes_out += (uint64_t)n;
        c->olen = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        finish(c, SM_WSC_END_IO, n);
        return;
    }
    if (n < 0)
        n = 0;
    ctx->st.bytes_out += (uint64_t)n;
    /* The socket took part of it: hand the rest to uv_write and keep
     * filling the other buffer meanwhile. */
    uint8_t *tb = c->wbuf;
    size_t tc = c->wcap;
    c->wbuf = c->out;
    c->wcap = c->ocap;
    c->out = tb;
    c->ocap = tc;
    size_t rest = c->olen - (size_t)n;
    memmove(c->wbuf, c->wbuf + n, rest);
    c->wlen = rest;
    c->olen = 0;
    b = uv_buf_init((char *)c->wbuf, (unsigned)rest);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rc < 0) {
        finish(c, SM_WSC_END_IO, rc);
        return;
    }
    c->writing = true;
    ctx->st.queued++;
    ctx->st.writes++;
}

static void flush_all(sm_wsc_ctx_t *ctx)
{
    sm_list_t *n;
    while ((n = sm_list_first(&ctx->dirty)) != NULL) {
        sm_list_remove(n);
        flush(SM_CONTAINER_OF(n, sm_wsc_t, dirty));
    }
}

static void prep_cb(uv_prepare_t *h)
{
    flush_all(h->data);
}

static void check_cb(uv_check_t *h)
{
    flush_all(h->data);
}

/* ---- closing ---- */

static void close_cb(uv_handle_t *h)
{
    sm_wsc_t *c = h->data;
    sm_wsc_ctx_t *ctx = c->ctx;
    if (ctx->ops->on_closed)
        ctx->ops->on_closed(c, c->end, c->end_err, c->ws_code);
    free(c->rbuf);
    free(c->out);
    free(c->wbuf);
    free(c);
    ctx->st.open--;
}

static void finish(sm_wsc_t *c, sm_wsc_end_t why, int err)
{
    if (c->state == ST_DEAD)
        return;
    c->state = ST_DEAD;
    c->end = why;
    c->end_err = err;
    if (sm_list_linked(&c->dirty))
        sm_list_remove(&c->dirty);
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

void sm_wsc_abort(sm_wsc_t *c)
{
    finish(c, SM_WSC_END_ABORT, 0);
}

void sm_wsc_close(sm_wsc_t *c, uint16_t code)
{
    if (c->state != ST_OPEN) {
        if (c->state != ST_CLOSING)
            finish(c, SM_WSC_END_ABORT, 0);
        return;
    }
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    queue_frame(c, 0x8, p, 2);
    c->state = ST_CLOSING;
}

/* ---- input ---- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    sm_wsc_t *c = h->data;
    if (c->rcap - c->rlen < READ_MIN) {
        size_t n = c->rcap ? c->rcap * 2 : c->ctx->rbuf_size;
        while (n - c->rlen < READ_MIN)
            n *= 2;
        c->rbuf = sm_xrealloc(c->rbuf, n);
        c->rcap = n;
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

/* Parse the 101 head; returns bytes consumed, 0 when incomplete, -1 when bad. */
static long parse_upgrade(sm_wsc_t *c)
{
    const uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (end == NULL)
        return c->rlen > MAX_RESPONSE_HEAD ? -1 : 0;
    size_t head = (size_t)(end - c->rbuf) + 4;
    static const char ok[] = "HTTP/1.1 101";
    if (head < sizeof ok - 1 || memcmp(c->rbuf, ok, sizeof ok - 1) != 0)
        return -1;
    if (memmem(c->rbuf, head, c->ctx->accept, c->ctx->accept_len) == NULL)
        return -1;
    return (long)head;
}

static void handle_message(sm_wsc_t *c, uint8_t b0, const uint8_t *p, size_t n)
{
    sm_wsc_ctx_t *ctx = c->ctx;
    uint8_t opcode = b0 & 0x0f;
    bool fin = (b0 & 0x80) != 0;
    switch (opcode) {
    case 0x2: {
        if (!fin) {
            /* The server never fragments its messages. */
            finish(c, SM_WSC_END_PROTO, 0);
            return;
        }
        ctx->st.frames_in++;
        sm_frame_t f;
        int rc = sm_frame_decode(p, n, &f);
        if (rc != SM_PROTO_OK) {
            if (ctx->ops->on_bad_frame)
                ctx->ops->on_bad_frame(c, rc);
            return;
        }
        ctx->ops->on_frame(c, &f);
        return;
    }
    case 0x8:
        c->ws_code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
        finish(c, c->state == ST_CLOSING ? SM_WSC_END_OK : SM_WSC_END_PEER_CLOSE, 0);
        return;
    case 0x9:
        if (c->state == ST_OPEN && n <= 125)
            queue_frame(c, 0xA, p, n);
        return;
    case 0xA:
        return;
    default: /* text, continuation, reserved */
        finish(c, SM_WSC_END_PROTO, 0);
        return;
    }
}

static void process(sm_wsc_t *c)
{
    size_t pos = 0;
    if (c->state == ST_UPGRADING) {
        long head = parse_upgrade(c);
        if (head < 0) {
            finish(c, SM_WSC_END_UPGRADE, 0);
            return;
        }
        if (head == 0)
            return;
        pos = (size_t)head;
        c->state = ST_OPEN;
        if (c->ctx->ops->on_open)
            c->ctx->ops->on_open(c);
    }
    while ((c->state == ST_OPEN || c->state == ST_CLOSING) && c->rlen - pos >= 2) {
        const uint8_t *p = c->rbuf + pos;
        size_t avail = c->rlen - pos;
        uint8_t len7 = p[1] & 0x7f;
        if (p[1] & 0x80) { /* server frames are never masked */
            finish(c, SM_WSC_END_PROTO, 0);
            return;
        }
        size_t hl = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        if (avail < hl)
            break;
        uint64_t plen = len7;
        if (len7 == 126) {
            plen = (uint64_t)p[2] << 8 | p[3];
        } else if (len7 == 127) {
            plen = 0;
            for (int i = 2; i < 10; i++)
                plen = plen << 8 | p[i];
        }
        if (plen > MAX_MESSAGE) {
            finish(c, SM_WSC_END_PROTO, 0);
            return;
        }
        if (avail < hl + plen) {
            /* Incomplete: make sure the whole message will fit once read. */
            size_t need = hl + (size_t)plen;
            if (pos + need > c->rcap) {
                memmove(c->rbuf, c->rbuf + pos, avail);
                c->rlen = avail;
                pos = 0;
                if (need + READ_MIN > c->rcap) {
                    c->rbuf = sm_xrealloc(c->rbuf, need + READ_MIN);
                    c->rcap = need + READ_MIN;
                }
            }
            break;
        }
        handle_message(c, p[0], p + hl, (size_t)plen);
        pos += hl + (size_t)plen;
    }
    if (c->state == ST_DEAD)
        return;
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    sm_wsc_t *c = s->data;
    if (nread < 0) {
        if (nread == UV_EOF)
            finish(c, c->state == ST_CLOSING ? SM_WSC_END_OK : SM_WSC_END_EOF, 0);
        else
            finish(c, SM_WSC_END_IO, (int)nread);
        return;
    }
    if (nread == 0 || c->state == ST_DEAD)
        return;
    c->rlen += (size_t)nread;
    c->ctx->st.bytes_in += (uint64_t)nread;
    process(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
    sm_wsc_t *c = req->data;
    if (c->state == ST_DEAD)
        return;
    if (status < 0) {
        finish(c, SM_WSC_END_CONNECT, status);
        return;
    }
    c->state = ST_UPGRADING;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        finish(c, SM_WSC_END_IO, rc);
        return;
    }
    flush(c);
}

/* ---- public ---- */

sm_wsc_t *sm_wsc_connect(sm_wsc_ctx_t *ctx, const struct sockaddr_in *src, void *user)
{
    sm_wsc_t *c = sm_xcalloc(1, sizeof *c);
    c->ctx = ctx;
    c->user = user;
    c->state = ST_CONNECTING;
    sm_list_init(&c->dirty);
    ctx->st.open++;
    int rc = src ? uv_tcp_init_ex(ctx->loop, &c->tcp, AF_INET) : uv_tcp_init(ctx->loop, &c->tcp);
    if (rc < 0) {
        /* No socket (EMFILE, ...): report through on_closed on a later
         * iteration, via a plain handle (uv_tcp_init opens no socket and
         * cannot fail). */
        int err = rc;
        rc = uv_tcp_init(ctx->loop, &c->tcp);
        SM_ASSERT(rc == 0);
        c->tcp.data = c;
        finish(c, SM_WSC_END_CONNECT, err);
        return c;
    }
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (src) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            int one = 1;
            /* Pick the port at connect time, per destination: with it a
             * source address gives a whole port range to each server. */
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        }
        rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)src, 0);
        if (rc < 0) {
            finish(c, SM_WSC_END_CONNECT, rc);
            return c;
        }
    }
    memcpy(out_append(c, ctx->request_len), ctx->request, ctx->request_len);
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ctx->addr, connect_cb);
    if (rc < 0)
        finish(c, SM_WSC_END_CONNECT, rc);
    return c;
}

void *sm_wsc_user(const sm_wsc_t *c)
{
    return c->user;
}

bool sm_wsc_is_open(const sm_wsc_t *c)
{
    return c->state == ST_OPEN;
}

uint8_t *sm_wsc_reserve(sm_wsc_t *c, size_t n)
{
    if (c->state >= ST_CLOSING)
        return NULL;
    return out_append(c, n);
}

int sm_wsc_send(sm_wsc_t *c, const void *msg, size_t n)
{
    if (c->state >= ST_CLOSING)
        return -1;
    queue_frame(c, 0x2, msg, n);
    return 0;
}

uint8_t *sm_wsc_send_tpl(sm_wsc_t *c, const sm_ws_tpl_t *t)
{
    uint8_t *p = sm_wsc_reserve(c, t->len);
    if (p)
        memcpy(p, t->bytes, t->len);
    return p;
}

void sm_ws_tpl_init(sm_ws_tpl_t *t, const uint8_t mask[4], const void *msg, size_t n)
{
    t->len = ws_header_size(n) + n;
    t->bytes = sm_xmalloc(t->len);
    t->hdr = ws_header(t->bytes, 0x2, n, mask);
    mask_copy(t->bytes + t->hdr, msg, n, mask);
}

void sm_ws_tpl_free(sm_ws_tpl_t *t)
{
    free(t->bytes);
    t->bytes = NULL;
    t->len = t->hdr = 0;
}

const sm_wsc_stats_t *sm_wsc_ctx_stats(const sm_wsc_ctx_t *ctx)
{
    return &ctx->st;
}

const uint8_t *sm_wsc_ctx_mask(const sm_wsc_ctx_t *ctx)
{
    return ctx->mask;
}

static void fill_random(void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* A benchmark can live with a weak key: it only has to be
             * a valid one. */
            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(0x5a + 31 * i);
            return;
        }
        b += r;
        n -= (size_t)r;
    }
}

int sm_wsc_ctx_new(uv_loop_t *loop, const char *host, int port, size_t rbuf_size,
                   const sm_wsc_ops_t *ops, sm_wsc_ctx_t **out)
{
    sm_wsc_ctx_t *ctx = sm_xcalloc(1, sizeof *ctx);
    ctx->loop = loop;
    ctx->ops = ops;
    ctx->rbuf_size = rbuf_size < 2 * READ_MIN ? 2 * READ_MIN : rbuf_size;
    sm_list_init(&ctx->dirty);
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ctx->addr);
    if (rc < 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ctx->addr);
    if (rc < 0) {
        free(ctx);
        return rc;
    }
    /* Sec-WebSocket-Key: 16 random bytes in base64; the expected accept is
     * base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2). */
    uint8_t raw[16];
    fill_random(raw, sizeof raw);
    fill_random(ctx->mask, sizeof ctx->mask);
    char key[32];
    size_t klen = 0;
    mbedtls_base64_encode((unsigned char *)key, sizeof key, &klen, raw, sizeof raw);
    key[klen] = '\0';
    char cat[96];
    int catlen = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t sha[20];
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), (const unsigned char *)cat,
               (size_t)catlen, sha);
    mbedtls_base64_encode((unsigned char *)ctx->accept, sizeof ctx->accept, &ctx->accept_len, sha,
                          sizeof sha);
    bool v6 = strchr(host, ':') != NULL; /* RFC 3986: an IPv6 literal goes in brackets */
    int n = snprintf(ctx->request, sizeof ctx->request,
                     "GET / HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     v6 ? "[" : "", host, v6 ? "]" : "", port, key);
    ctx->request_len = (size_t)n;
    uv_prepare_init(loop, &ctx->prep);
    uv_check_init(loop, &ctx->check);
    ctx->prep.data = ctx;
    ctx->check.data = ctx;
    uv_prepare_start(&ctx->prep, prep_cb);
    uv_check_start(&ctx->check, check_cb);
    ctx->handles_open = 2;
    *out = ctx;
    return 0;
}

static void ctx_handle_closed(uv_handle_t *h)
{
    sm_wsc_ctx_t *ctx = h->data;
    if (--ctx->handles_open == 0)
        free(ctx);
}

void sm_wsc_ctx_close(sm_wsc_ctx_t *ctx)
{
    uv_close((uv_handle_t *)&ctx->prep, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->check, ctx_handle_closed);
}
