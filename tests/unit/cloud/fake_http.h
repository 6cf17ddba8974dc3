/*
 * A tiny scripted HTTP/1.1 server for the REST client's tests: a libuv TCP
 * listener on 127.0.0.1 (kernel-chosen port) running on the test's own loop,
 * llhttp for request parsing, keep-alive connections.  Each finished request
 * is recorded (method, path, headers, body, which connection, arrival time)
 * and handed to the test's handler, which scripts the answer: reply with a
 * status and body, stay silent, reply without Content-Length and close
 * (close-delimited body), or drop the connection.
 *
 * Header-only (static inline) because the Makefile links only
 * the support directory's .c files into unit tests.  Single-threaded: everything runs
 * on the loop given to fake_start.
 */
#ifndef SM_TESTS_CLOUD_FAKE_HTTP_H
#define SM_TESTS_CLOUD_FAKE_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/list.h"

#define FAKE_MAX_REQS 64

typedef struct {
    char method[16];
    char path[512];
    char headers[8192]; /* "name: value\n" per header, names lowercased */
    char *body;         /* malloc'd, NUL-terminated (NULL when empty) */
    size_t body_len;
    unsigned conn;  /* 1-based index of the accepted connection it came on */
    uint64_t at_ns; /* uv_hrtime() when it was complete */
} fake_req_t;

enum {
    FAKE_REPLY,           /* status + body with Content-Length, keep-alive */
    FAKE_SILENT,          /* never answer */
    FAKE_CLOSE_DELIMITED, /* status + body, no Content-Length, then close */
    FAKE_DROP,            /* close the connection without answering */
};

typedef struct {
    int mode;
    int status;
    const char *body; /* NULL = empty */
    size_t body_len;  /* 0 = strlen(body) */
} fake_resp_t;

typedef struct fake_s fake_t;
/* Fill *out for request number index (0-based, in arrival order). */
typedef void (*fake_handler_fn)(fake_t *f, const fake_req_t *req, unsigned index, fake_resp_t *out);

struct fake_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    unsigned accepted;   /* TCP connections accepted */
    unsigned open_conns; /* not yet closed */
    unsigned nreq;       /* requests completed (recorded up to FAKE_MAX_REQS) */
    fake_req_t reqs[FAKE_MAX_REQS];
    fake_handler_fn handler;
    void *data; /* for the handler */
    sm_list_t conns;
};

typedef struct {
    sm_list_t node;
    uv_tcp_t tcp;
    fake_t *f;
    llhttp_t parser;
    llhttp_settings_t settings;
    unsigned id;
    fake_req_t cur;
    char field[256];
    size_t field_len;
    char value[4096];
    size_t value_len;
    bool drop;
    bool closing;
} fake_conn_t;

typedef struct {
    uv_write_t w;
    fake_conn_t *conn;
    char *buf;
    bool close_after;
} fake_write_t;

static inline void fake__append(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
    if (*len + n >= cap)
        n = *len + 1 < cap ? cap - 1 - *len : 0;
    memcpy(dst + *len, p, n);
    *len += n;
    dst[*len] = '\0';
}

static inline void fake__on_conn_close(uv_handle_t *h)
{
    fake_conn_t *k = h->data;
    k->f->open_conns--;
    free(k->cur.body);
    free(k);
}

static inline void fake__conn_close(fake_conn_t *k)
{
    if (k->closing)
        return;
    k->closing = true;
    sm_list_remove(&k->node);
    uv_close((uv_handle_t *)&k->tcp, fake__on_conn_close);
}

static inline void fake__on_write(uv_write_t *w, int status)
{
    fake_write_t *fw = (fake_write_t *)w;
    (void)status;
    if (fw->close_after)
        fake__conn_close(fw->conn);
    free(fw->buf);
    free(fw);
}

static inline void fake__reply(fake_conn_t *k, const fake_resp_t *r, bool close_delimited)
{
    const char *body = r->body != NULL ? r->body : "";
    size_t blen = r->body_len != 0 ? r->body_len : strlen(body);
    char head[256];
    int hlen;
    if (close_delimited)
        hlen = snprintf(head, sizeof head, "HTTP/1.1 %d Scripted\r\nConnection: close\r\n\r\n",
                        r->status);
    else
        hlen = snprintf(head, sizeof head, "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\n\r\n",
                        r->status, blen);
    fake_write_t *fw = calloc(1, sizeof *fw);
    fw->conn = k;
    fw->close_after = close_delimited;
    fw->buf = malloc((size_t)hlen + blen);
    memcpy(fw->buf, head, (size_t)hlen);
    memcpy(fw->buf + hlen, body, blen);
    uv_buf_t b = uv_buf_init(fw->buf, (unsigned)((size_t)hlen + blen));
    if (uv_write(&fw->w, (uv_stream_t *)&k->tcp, &b, 1, fake__on_write) != 0) {
        free(fw->buf);
        free(fw);
    }
}

static inline int fake__on_url(llhttp_t *p, const char *at, size_t n)
{
    fake_conn_t *k = p->data;
    size_t len = strlen(k->cur.path);
    fake__append(k->cur.path, sizeof k->cur.path, &len, at, n);
    return 0;
}

static inline int fake__on_field(llhttp_t *p, const char *at, size_t n)
{
    fake_conn_t *k = p->data;
    fake__append(k->field, sizeof k->field, &k->field_len, at, n);
    return 0;
}

static inline int fake__on_value(llhttp_t *p, const char *at, size_t n)
{
    fake_conn_t *k = p->data;
    fake__append(k->value, sizeof k->value, &k->value_len, at, n);
    return 0;
}

static inline int fake__on_value_complete(llhttp_t *p)
{
    fake_conn_t *k = p->data;
    size_t len = strlen(k->cur.headers);
    for (size_t i = 0; i < k->field_len; i++)
        k->field[i] = (char)tolower((unsigned char)k->field[i]);
    fake__append(k->cur.headers, sizeof k->cur.headers, &len, k->field, k->field_len);
    fake__append(k->cur.headers, sizeof k->cur.headers, &len, ": ", 2);
    fake__append(k->cur.headers, sizeof k->cur.headers, &len, k->value, k->value_len);
    fake__append(k->cur.headers, sizeof k->cur.headers, &len, "\n", 1);
    k->field_len = k->value_len = 0;
    return 0;
}

static inline int fake__on_body(llhttp_t *p, const char *at, size_t n)
{
    fake_conn_t *k = p->data;
    k->cur.body = realloc(k->cur.body, k->cur.body_len + n + 1);
    memcpy(k->cur.body + k->cur.body_len, at, n);
    k->cur.body_len += n;
    k->cur.body[k->cur.body_len] = '\0';
    return 0;
}

static inline int fake__on_message_complete(llhttp_t *p)
{
    fake_conn_t *k = p->data;
    fake_t *f = k->f;
    snprintf(k->cur.method, sizeof k->cur.method, "%s",
             llhttp_method_name((llhttp_method_t)llhttp_get_method(p)));
    k->cur.conn = k->id;
    k->cur.at_ns = uv_hrtime();
    unsigned index = f->nreq++;
    const fake_req_t *req = &k->cur;
    if (index < FAKE_MAX_REQS) {
        f->reqs[index] = k->cur; /* takes the body */
        req = &f->reqs[index];
    }
    fake_resp_t out = {.mode = FAKE_REPLY, .status = 200};
    if (f->handler != NULL)
        f->handler(f, req, index, &out);
    if (index >= FAKE_MAX_REQS)
        free(k->cur.body);
    memset(&k->cur, 0, sizeof k->cur);
    switch (out.mode) {
    case FAKE_REPLY:
        fake__reply(k, &out, false);
        break;
    case FAKE_CLOSE_DELIMITED:
        fake__reply(k, &out, true);
        break;
    case FAKE_DROP:
        k->drop = true;
        break;
    default: /* FAKE_SILENT */
        break;
    }
    return 0;
}

static inline void fake__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static inline void fake__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    fake_conn_t *k = s->data;
    if (nread < 0) {
        fake__conn_close(k);
    } else if (nread > 0 && !k->closing) {
        llhttp_errno_t e = llhttp_execute(&k->parser, buf->base, (size_t)nread);
        if (e != HPE_OK || k->drop)
            fake__conn_close(k);
    }
    free(buf->base);
}

static inline void fake__on_connection(uv_stream_t *server, int status)
{
    fake_t *f = server->data;
    if (status < 0)
        return;
    fake_conn_t *k = calloc(1, sizeof *k);
    k->f = f;
    uv_tcp_init(f->loop, &k->tcp);
    k->tcp.data = k;
    f->open_conns++;
    sm_list_insert_tail(&f->conns, &k->node);
    if (uv_accept(server, (uv_stream_t *)&k->tcp) != 0) {
        fake__conn_close(k);
        return;
    }
    k->id = ++f->accepted;
    llhttp_settings_init(&k->settings);
    k->settings.on_url = fake__on_url;
    k->settings.on_header_field = fake__on_field;
    k->settings.on_header_value = fake__on_value;
    k->settings.on_header_value_complete = fake__on_value_complete;
    k->settings.on_body = fake__on_body;
    k->settings.on_message_complete = fake__on_message_complete;
    llhttp_init(&k->parser, HTTP_REQUEST, &k->settings);
    k->parser.data = k;
    uv_read_start((uv_stream_t *)&k->tcp, fake__alloc, fake__on_read);
}

/* Listen on 127.0.0.1:0.  0 or a uv error code. */
static inline int fake_start(fake_t *f, uv_loop_t *loop, fake_handler_fn handler)
{
    memset(f, 0, sizeof *f);
    f->loop = loop;
    f->handler = handler;
    sm_list_init(&f->conns);
    struct sockaddr_in sa;
    int rc = uv_ip4_addr("127.0.0.1", 0, &sa);
    if (rc == 0)
        rc = uv_tcp_init(loop, &f->listener);
    if (rc != 0)
        return rc;
    f->listener.data = f;
    rc = uv_tcp_bind(&f->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&f->listener, 64, fake__on_connection);
    int len = sizeof sa;
    if (rc == 0)
        rc = uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sa, &len);
    if (rc != 0) {
        uv_close((uv_handle_t *)&f->listener, NULL);
        return rc;
    }
    f->port = ntohs(sa.sin_port);
    return 0;
}

/* Close the listener and every connection (the loop finishes the closes). */
static inline void fake_stop(fake_t *f)
{
    if (!uv_is_closing((uv_handle_t *)&f->listener))
        uv_close((uv_handle_t *)&f->listener, NULL);
    while (!sm_list_empty(&f->conns))
        fake__conn_close(SM_CONTAINER_OF(sm_list_first(&f->conns), fake_conn_t, node));
}

/* Free the recorded bodies (after the loop has finished with f). */
static inline void fake_free(fake_t *f)
{
    for (unsigned i = 0; i < f->nreq && i < FAKE_MAX_REQS; i++)
        free(f->reqs[i].body);
}

static inline const char *fake_url(const fake_t *f, const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://127.0.0.1:%d%s", f->port, path);
    return buf;
}

/* Value of header name (lowercase) in req, copied to out; false if absent. */
static inline bool fake_header(const fake_req_t *req, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *line = req->headers; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        if ((size_t)(end - line) >= nlen + 1 && strncmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(end - v), v);
            return true;
        }
        line = *end == '\n' ? end + 1 : end;
    }
    return false;
}

/* The recorded request whose path is path (first match), or NULL. */
static inline const fake_req_t *fake_find(const fake_t *f, const char *path)
{
    for (unsigned i = 0; i < f->nreq && i < FAKE_MAX_REQS; i++)
        if (strcmp(f->reqs[i].path, path) == 0)
            return &f->reqs[i];
    return NULL;
}

/* A loopback port with a bound socket that never listens: connecting to it is
 * refused.  The socket is left open in *fd (so the port is not reused
 * meanwhile); the caller closes it. */
static inline int fake_refused_port(int *fd)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    *fd = s;
    return ntohs(sa.sin_port);
}

#endif
