/*
 * Prometheus text exposition (version 0.0.4) and its listener.
 *
 * Labels are bounded: message type names, error codes and close codes come
 * from fixed tables, thread names from the configured thread counts.  No
 * client ids or room ids ever become labels.
 */
#include "metrics/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#include <dirent.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "events/events.h"
#include "http/request.h"
#include "http/upgrade.h"
#include "log/log.h"
#include "metrics/counters.h"
#include "reactor/io_thread.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "store/store.h"

typedef struct {
    char *p;
    size_t len, cap;
} out_t;

static void add(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(out_t *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap *= 2;
        o->p = sm_xrealloc(o->p, o->cap);
    }
}

static void head(out_t *o, const char *name, const char *type, const char *help)
{
    add(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef uint64_t (*sum_fn)(sm_counters_t *c, unsigned idx);

static uint64_t sum(sm_server_t *s, size_t offset, unsigned idx)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < s->n_io; i++) {
        _Atomic uint64_t *base = (_Atomic uint64_t *)((char *)sm_io_counters(s->io[i]) + offset);
        total += sm_count_read(base + idx);
    }
    for (unsigned i = 0; i < s->n_workers; i++) {
        _Atomic uint64_t *base =
            (_Atomic uint64_t *)((char *)sm_worker_counters(s->workers[i]) + offset);
        total += sm_count_read(base + idx);
    }
    return total;
}

#define SUM(s, field, idx) sum((s), offsetof(sm_counters_t, field), (idx))

static void process_metrics(out_t *o)
{
    long rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss_pages) != 2)
            rss_pages = 0;
        fclose(f);
    }
    head(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    add(o, "process_resident_memory_bytes %lld\n",
        (long long)rss_pages * (long long)sysconf(_SC_PAGESIZE));
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            fds++;
        closedir(d);
        fds -= 3; /* ".", ".." and the directory's own descriptor */
    }
    head(o, "process_open_fds", "gauge", "Number of open file descriptors.");
    add(o, "process_open_fds %ld\n", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        head(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        add(o, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        head(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time.");
        add(o, "process_cpu_seconds_total %.6f\n", cpu);
    }
}

char *sm_metrics_render(sm_server_t *s, size_t *len)
{
    out_t o = {.p = sm_xmalloc(16384), .len = 0, .cap = 16384};
    o.p[0] = '\0';

    head(&o, "signal_manager_connections_active", "gauge", "Open WebSocket connections.");
    add(&o, "signal_manager_connections_active %lld\n",
        (long long)atomic_load_explicit(&s->ws_open, memory_order_relaxed));
    head(&o, "signal_manager_sockets_open", "gauge", "Open TCP connections (any phase).");
    add(&o, "signal_manager_sockets_open %lld\n",
        (long long)atomic_load_explicit(&s->sockets_open, memory_order_relaxed));
    head(&o, "signal_manager_connections_total", "counter", "Accepted TCP connections.");
    add(&o, "signal_manager_connections_total %llu\n",
        (unsigned long long)SUM(s, connections_total, 0));
    head(&o, "signal_manager_websocket_upgrades_total", "counter",
         "Successful WebSocket upgrades.");
    add(&o, "signal_manager_websocket_upgrades_total %llu\n",
        (unsigned long long)SUM(s, upgrades_total, 0));
    head(&o, "signal_manager_upgrades_rejected_total", "counter",
         "Upgrades refused with 503 (max_connections or draining).");
    add(&o, "signal_manager_upgrades_rejected_total %llu\n",
        (unsigned long long)SUM(s, rejected_total, 0));
    head(&o, "signal_manager_http_requests_total", "counter",
         "HTTP requests on the WebSocket port (upgrades, health, others).");
    add(&o, "signal_manager_http_requests_total %llu\n",
        (unsigned long long)SUM(s, http_requests_total, 0));
    head(&o, "signal_manager_registered_clients", "gauge", "Registered clients.");
    add(&o, "signal_manager_registered_clients %zu\n", sm_registry_count(s->registry));

    head(&o, "signal_manager_rooms_active", "gauge", "Open rooms (p2p WebRTC sessions).");
    add(&o, "signal_manager_rooms_active %zu\n", sm_rooms_count(s->rooms));

    head(&o, "signal_manager_messages_received_total", "counter",
         "Protocol frames received, by message type.");
    for (unsigned i = 0; i <= SM_MSG_TYPE_COUNT; i++) {
        const sm_msg_info_t *mi = sm_msg_info_at(i);
        add(&o, "signal_manager_messages_received_total{type=\"%s\"} %llu\n",
            mi ? mi->name : "UNKNOWN", (unsigned long long)SUM(s, msgs_in, i));
    }
    head(&o, "signal_manager_messages_sent_total", "counter",
         "Protocol frames sent, by message type.");
    for (unsigned i = 0; i < SM_MSG_TYPE_COUNT; i++) {
        const sm_msg_info_t *mi = sm_msg_info_at(i);
        add(&o, "signal_manager_messages_sent_total{type=\"%s\"} %llu\n", mi->name,
            (unsigned long long)SUM(s, msgs_out, i));
    }
    head(&o, "signal_manager_errors_total", "counter", "ERROR frames sent, by error code.");
    static const int codes[] = {
#define SM__CODE(c) c,
        SM_METRIC_ERROR_CODES(SM__CODE)
#undef SM__CODE
    };
    for (unsigned i = 0; i < SM_ERRIDX_COUNT; i++)
        add(&o, "signal_manager_errors_total{code=\"%d\"} %llu\n", codes[i],
            (unsigned long long)SUM(s, errors, i));
    head(&o, "signal_manager_websocket_closes_total", "counter",
         "WebSocket close frames sent by the server, by close code.");
    static const int ccodes[] = {
#define SM__CCODE(c) c,
        SM_METRIC_CLOSE_CODES(SM__CCODE)
#undef SM__CCODE
    };
    for (unsigned i = 0; i < SM_CLOSEIDX_OTHER; i++)
        add(&o, "signal_manager_websocket_closes_total{code=\"%d\"} %llu\n", ccodes[i],
            (unsigned long long)SUM(s, closes, i));
    add(&o, "signal_manager_websocket_closes_total{code=\"other\"} %llu\n",
        (unsigned long long)SUM(s, closes, SM_CLOSEIDX_OTHER));

    head(&o, "signal_manager_bytes_received_total", "counter", "Bytes read from clients.");
    add(&o, "signal_manager_bytes_received_total %llu\n",
        (unsigned long long)SUM(s, bytes_in, 0));
    head(&o, "signal_manager_bytes_sent_total", "counter", "Bytes written to clients.");
    add(&o, "signal_manager_bytes_sent_total %llu\n", (unsigned long long)SUM(s, bytes_out, 0));
    head(&o, "signal_manager_slow_consumers_total", "counter",
         "Connections closed for exceeding limits.max_pending_output.");
    add(&o, "signal_manager_slow_consumers_total %llu\n",
        (unsigned long long)SUM(s, slow_consumers_total, 0));
    head(&o, "signal_manager_backpressure_pauses_total", "counter",
         "Times a connection stopped reading because its worker inbox was full.");
    add(&o, "signal_manager_backpressure_pauses_total %llu\n",
        (unsigned long long)SUM(s, backpressure_pauses_total, 0));

    head(&o, "signal_manager_queue_depth", "gauge", "Items waiting in inter-thread queues.");
    for (unsigned i = 0; i < s->n_workers; i++)
        add(&o, "signal_manager_queue_depth{queue=\"worker_inbox\",thread=\"worker-%u\"} %zu\n",
            i, sm_worker_inbox_depth(s->workers[i]));
    for (unsigned i = 0; i < s->n_io; i++)
        add(&o, "signal_manager_queue_depth{queue=\"io_outbox\",thread=\"io-%u\"} %zu\n", i,
            sm_io_outbox_depth(s->io[i]));
    head(&o, "signal_manager_store_operations_pending", "gauge",
         "Store operations in flight.");
    int64_t pending = 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        pending += sm_worker_pending_ops(s->workers[i]);
    add(&o, "signal_manager_store_operations_pending %lld\n", (long long)pending);
    head(&o, "signal_manager_store_healthy", "gauge", "1 when the store answers.");
    add(&o, "signal_manager_store_healthy %d\n", s->store && sm_store_healthy(s->store) ? 1 : 0);
    head(&o, "signal_manager_events_published_total", "counter", "Lifecycle events queued.");
    add(&o, "signal_manager_events_published_total %llu\n",
        (unsigned long long)sm_events_published(s->events));
    head(&o, "signal_manager_events_dropped_total", "counter",
         "Lifecycle events dropped because the queue was full.");
    add(&o, "signal_manager_events_dropped_total %llu\n",
        (unsigned long long)sm_events_dropped(s->events));
    head(&o, "signal_manager_draining", "gauge", "1 while the server drains.");
    add(&o, "signal_manager_draining %d\n",
        atomic_load_explicit(&s->draining, memory_order_relaxed) ? 1 : 0);
    head(&o, "signal_manager_start_time_seconds", "gauge", "Start time, Unix seconds.");
    add(&o, "signal_manager_start_time_seconds %lld\n", (long long)(s->started_at_ms / 1000));
    head(&o, "signal_manager_build_info", "gauge", "Build information.");
    add(&o, "signal_manager_build_info{version=\"%s\",protocol=\"%s\"} 1\n", SM_VERSION,
        SM_PROTO_VERSION);
    process_metrics(&o);
    *len = o.len;
    return o.p;
}

/* ---- listener ---- */

struct sm_metrics_s {
    sm_server_t *srv;
    uv_tcp_t listener;
    int open; /* listener + scrapes in progress */
    bool stopping;
};

typedef struct {
    uv_tcp_t tcp;
    uv_write_t wr;
    sm_metrics_t *m;
    sm_http_req_t *req;
    char *resp;
    bool responded;
} scrape_t;

static void unref_metrics(sm_metrics_t *m)
{
    if (--m->open == 0 && m->stopping)
        free(m);
}

static void scrape_closed(uv_handle_t *h)
{
    scrape_t *sc = h->data;
    sm_metrics_t *m = sc->m;
    sm_http_req_free(sc->req);
    free(sc->resp);
    free(sc);
    unref_metrics(m);
}

static void scrape_close(scrape_t *sc)
{
    if (!uv_is_closing((uv_handle_t *)&sc->tcp))
        uv_close((uv_handle_t *)&sc->tcp, scrape_closed);
}

static void scrape_written(uv_write_t *w, int status)
{
    (void)status;
    scrape_close(w->data);
}

static void scrape_respond(scrape_t *sc, int status, const char *ctype, const char *body,
                           size_t len)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, sm_http_reason(status), ctype, len);
    sc->resp = sm_xmalloc((size_t)n + len);
    memcpy(sc->resp, hdr, (size_t)n);
    memcpy(sc->resp + n, body, len);
    uv_buf_t b = uv_buf_init(sc->resp, (unsigned)((size_t)n + len));
    sc->responded = true;
    uv_read_stop((uv_stream_t *)&sc->tcp);
    sc->wr.data = sc;
    if (uv_write(&sc->wr, (uv_stream_t *)&sc->tcp, &b, 1, scrape_written) != 0)
        scrape_close(sc);
}

static void scrape_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    (void)sz;
    static _Thread_local char buf[4096];
    *b = uv_buf_init(buf, sizeof buf);
}

static void scrape_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    scrape_t *sc = st->data;
    if (n < 0) {
        scrape_close(sc);
        return;
    }
    if (n == 0 || sc->responded)
        return;
    size_t used;
    sm_http_status_t r = sm_http_req_feed(sc->req, b->base, (size_t)n, &used);
    if (r == SM_HTTP_MORE)
        return;
    if (r != SM_HTTP_COMPLETE) {
        static const char bad[] = "bad request\n";
        scrape_respond(sc, 400, "text/plain", bad, sizeof bad - 1);
        return;
    }
    const char *path = sm_http_req_path(sc->req);
    if (strcmp(path, "/metrics") == 0 && sm_http_req_is_get(sc->req)) {
        size_t len;
        char *text = sm_metrics_render(sc->m->srv, &len);
        scrape_respond(sc, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
    } else {
        static const char nf[] = "not found: try /metrics\n";
        scrape_respond(sc, 404, "text/plain", nf, sizeof nf - 1);
    }
}

static void on_scrape(uv_stream_t *server, int status)
{
    sm_metrics_t *m = server->data;
    if (status < 0 || m->stopping)
        return;
    scrape_t *sc = sm_xcalloc(1, sizeof *sc);
    sc->m = m;
    uv_tcp_init(server->loop, &sc->tcp);
    sc->tcp.data = sc;
    m->open++;
    if (uv_accept(server, (uv_stream_t *)&sc->tcp) != 0) {
        scrape_close(sc);
        return;
    }
    sc->req = sm_http_req_new();
    uv_read_start((uv_stream_t *)&sc->tcp, scrape_alloc, scrape_read);
}

static void listener_closed(uv_handle_t *h)
{
    unref_metrics(h->data);
}

int sm_metrics_start(sm_server_t *srv, uv_loop_t *loop, int fd, sm_metrics_t **out)
{
    sm_metrics_t *m = sm_xcalloc(1, sizeof *m);
    m->srv = srv;
    uv_tcp_init(loop, &m->listener);
    m->listener.data = m;
    m->open = 1;
    int rc = uv_tcp_open(&m->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 128, on_scrape);
    if (rc != 0) {
        m->stopping = true;
        uv_close((uv_handle_t *)&m->listener, listener_closed);
        return SM_EIO;
    }
    *out = m;
    return 0;
}

void sm_metrics_stop(sm_metrics_t *m)
{
    if (m == NULL || m->stopping)
        return;
    m->stopping = true;
    uv_close((uv_handle_t *)&m->listener, listener_closed);
}
