/*
 * Prometheus text exposition (version 0.0.4) and its listener.
 *
 * Every sample is summed at scrape time over the per-thread blocks
 * (metrics/counters.h) of the I/O threads and workers, plus a few shared
 * gauges (atomics in sm_server_t, registry and room counts).  Histograms
 * (metrics/histogram.h) are stored non-cumulatively per thread and made
 * cumulative here.
 *
 * Labels are bounded: message type names, error codes, close codes, store
 * operation names, REST API names and status classes come from fixed
 * tables; the store backend is the one configured; thread names come from
 * the configured thread counts.  No client ids, room ids or session ids ever
 * become labels.  Counter series of a fixed label set are always printed
 * (zero included), so rate() works from the first event.  The store's
 * cleanup_instance runs once at start-up on the main thread, which has no
 * counters block: it is never counted nor printed.  Histogram series
 * of the store and REST families are printed only for label sets that have
 * observations (most combinations never occur: a 1xx from Firestore...).
 */
#include "metrics/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "events/events.h"
#include "http/request.h"
#include "http/upgrade.h"
#include "log/log.h"
#include "metrics/counters.h"
#include "metrics/histogram.h"
#include "metrics/observe.h"
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

/* A family of one unlabelled sample. */
static void counter(out_t *o, const char *name, const char *help, uint64_t v)
{
    head(o, name, "counter", help);
    add(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(out_t *o, const char *name, const char *help, int64_t v)
{
    head(o, name, "gauge", help);
    add(o, "%s %lld\n", name, (long long)v);
}

/* A label value as the text format wants it: \ " and newline escaped.
 * Writes into buf (truncating at len-1 bytes); returns buf. */
static const char *esc(const char *v, char *buf, size_t len)
{
    size_t j = 0;
    for (; *v && j + 2 < len; v++) {
        if (*v == '\\' || *v == '"') {
            buf[j++] = '\\';
            buf[j++] = *v;
        } else if (*v == '\n') {
            buf[j++] = '\\';
            buf[j++] = 'n';
        } else {
            buf[j++] = *v;
        }
    }
    buf[j] = '\0';
    return buf;
}

/* ---- summing the per-thread blocks ---- */

static unsigned n_blocks(const sm_server_t *s)
{
    return s->n_io + s->n_workers;
}

/* Block k: the I/O threads first, then the workers. */
static sm_counters_t *block(sm_server_t *s, unsigned k)
{
    return k < s->n_io ? sm_io_counters(s->io[k]) : sm_worker_counters(s->workers[k - s->n_io]);
}

/* Offsets of counters and histograms inside sm_counters_t, indexes
 * included (offsetof() wants constant indexes; this does not). */
static const sm_counters_t layout;
#define OFF(field) ((size_t)((uintptr_t)&layout.field - (uintptr_t)&layout))

static uint64_t sum_at(sm_server_t *s, size_t offset)
{
    uint64_t total = 0;
    for (unsigned k = 0; k < n_blocks(s); k++)
        total += sm_count_read((_Atomic uint64_t *)((char *)block(s, k) + offset));
    return total;
}

/* Sum of counter `field` (a path inside sm_counters_t, e.g. msgs_in[i] or
 * store_ops[op][r]) over every block. */
#define SUM(s, field) sum_at((s), OFF(field))

/* Snapshot of the histogram at byte offset `offset` in every block. */
static sm_hist_snap_t snap_at(sm_server_t *s, size_t offset, const sm_hist_spec_t *spec)
{
    sm_hist_snap_t acc;
    memset(&acc, 0, sizeof acc);
    for (unsigned k = 0; k < n_blocks(s); k++)
        sm_hist_snap_add(&acc, (const sm_hist_t *)((const char *)block(s, k) + offset), spec);
    return acc;
}

#define SNAP(s, field, spec) snap_at((s), OFF(field), (spec))

/* Decimal places that show one unit of a spec exactly (scale 1e-3 -> 3). */
static int decimals(double scale)
{
    int d = 0;
    for (double x = scale; x < 0.999999 && d < 9; x *= 10)
        d++;
    return d;
}

/* The _bucket, _sum and _count lines of one histogram series.  labels is
 * "" or `a="x",b="y"` (no braces). */
static void hist_series(out_t *o, const char *name, const char *labels, const sm_hist_spec_t *spec,
                        const sm_hist_snap_t *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (unsigned i = 0; i < spec->n_bounds; i++) {
        cum += h->buckets[i];
        add(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
            (double)spec->bounds[i] * spec->scale, (unsigned long long)cum);
    }
    cum += h->buckets[spec->n_bounds];
    add(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    const char *lb = labels[0] ? "{" : "", *rb = labels[0] ? "}" : "";
    add(o, "%s_sum%s%s%s %.*f\n", name, lb, labels, rb, decimals(spec->scale),
        (double)h->sum * spec->scale);
    add(o, "%s_count%s%s%s %llu\n", name, lb, labels, rb, (unsigned long long)cum);
}

/* ---- process metrics (the names Prometheus client libraries use) ---- */

/* Process start, Unix seconds: /proc/self/stat field 22 (clock ticks after
 * boot) + btime from /proc/stat.  -1 when either is unreadable. */
static double process_start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm (field 2) may hold spaces and parentheses: start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long start_ticks = 0;
    /* After ')': field 3 (state) is the 1st token, so field 22 is the 20th. */
    char *save = NULL;
    char *tok = strtok_r(p + 1, " ", &save);
    for (int field = 3; tok != NULL && field < 22; field++)
        tok = strtok_r(NULL, " ", &save);
    if (tok == NULL || sscanf(tok, "%llu", &start_ticks) != 1)
        return -1;
    f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long btime = 0;
    bool found = false;
    char line[256];
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "btime %llu", &btime) == 1;
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (!found || hz <= 0)
        return -1;
    return (double)btime + (double)start_ticks / (double)hz;
}

static void process_metrics(out_t *o, const sm_server_t *s)
{
    long vsize_pages = 0, rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &vsize_pages, &rss_pages) != 2)
            vsize_pages = rss_pages = 0;
        fclose(f);
    }
    long long page = (long long)sysconf(_SC_PAGESIZE);
    gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.", rss_pages * page);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize_pages * page);
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
        head(o, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent "
             "in seconds.");
        add(o, "process_cpu_seconds_total %.6f\n", cpu);
    }
    double start = process_start_time();
    if (start < 0)
        start = (double)s->started_at_ms / 1000.0;
    head(o, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
    add(o, "process_start_time_seconds %.2f\n", start);
}

/* ---- families ---- */

static void store_metrics(out_t *o, sm_server_t *s)
{
    char bbuf[64];
    const char *backend =
        esc(s->store ? sm_store_backend_name(s->store) : "none", bbuf, sizeof bbuf);
    head(o, "signal_manager_store_operations_total", "counter",
         "Completed store operations, by backend, operation and outcome.");
    for (unsigned op = 0; op < SM_METRIC_STORE_OPS; op++) {
        if (op == SM_STORE_OP_CLEANUP_INSTANCE)
            continue;
        for (unsigned r = 0; r < SM_STORE_OUTCOME_COUNT; r++)
            add(o,
                "signal_manager_store_operations_total{backend=\"%s\",op=\"%s\",outcome=\"%s\"} "
                "%llu\n",
                backend, sm_store_op_name((sm_store_op_t)op), sm_metrics_store_outcome_name(r),
                (unsigned long long)SUM(s, store_ops[op][r]));
    }
    const char *name = "signal_manager_store_operation_duration_seconds";
    head(o, name, "histogram",
         "Store operation latency from submission to backend completion, retries included.");
    for (unsigned op = 0; op < SM_METRIC_STORE_OPS; op++) {
        sm_hist_snap_t h = SNAP(s, store_latency[op], &sm_metrics_store_spec);
        if (sm_hist_snap_count(&h, &sm_metrics_store_spec) == 0)
            continue;
        char labels[128];
        snprintf(labels, sizeof labels, "backend=\"%s\",op=\"%s\"", backend,
                 sm_store_op_name((sm_store_op_t)op));
        hist_series(o, name, labels, &sm_metrics_store_spec, &h);
    }
    int64_t pending = 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        pending += sm_worker_pending_ops(s->workers[i]);
    gauge(o, "signal_manager_store_operations_pending", "Store operations in flight.", pending);
    gauge(o, "signal_manager_store_healthy", "1 when the store answers.",
          s->store && sm_store_healthy(s->store) ? 1 : 0);
}

static void rest_metrics(out_t *o, sm_server_t *s)
{
    head(o, "signal_manager_rest_requests_total", "counter",
         "REST calls to cloud APIs, by API and outcome of the last attempt.");
    for (unsigned a = 0; a < SM_REST_API_COUNT; a++)
        for (unsigned r = 0; r < SM_REST_OUTCOME_COUNT; r++)
            add(o, "signal_manager_rest_requests_total{api=\"%s\",outcome=\"%s\"} %llu\n",
                sm_metrics_rest_api_name(a), sm_metrics_rest_outcome_name(r),
                (unsigned long long)SUM(s, rest_calls[a][r]));
    head(o, "signal_manager_rest_retries_total", "counter",
         "REST attempts that failed and were retried, by API.");
    for (unsigned a = 0; a < SM_REST_API_COUNT; a++)
        add(o, "signal_manager_rest_retries_total{api=\"%s\"} %llu\n", sm_metrics_rest_api_name(a),
            (unsigned long long)SUM(s, rest_retries[a]));
    const char *name = "signal_manager_rest_request_duration_seconds";
    head(o, name, "histogram",
         "Duration of each HTTP attempt to a cloud API, by API and status class.");
    for (unsigned a = 0; a < SM_REST_API_COUNT; a++) {
        for (unsigned c = 0; c < SM_REST_CLASS_COUNT; c++) {
            sm_hist_snap_t h = SNAP(s, rest_latency[a][c], &sm_metrics_rest_spec);
            if (sm_hist_snap_count(&h, &sm_metrics_rest_spec) == 0)
                continue;
            char labels[96];
            snprintf(labels, sizeof labels, "api=\"%s\",status_class=\"%s\"",
                     sm_metrics_rest_api_name(a), sm_metrics_rest_class_name(c));
            hist_series(o, name, labels, &sm_metrics_rest_spec, &h);
        }
    }
}

char *sm_metrics_render(sm_server_t *s, size_t *len)
{
    out_t o = {.p = sm_xmalloc(32768), .len = 0, .cap = 32768};
    o.p[0] = '\0';

    gauge(&o, "signal_manager_connections_active", "Open WebSocket connections.",
          atomic_load_explicit(&s->ws_open, memory_order_relaxed));
    gauge(&o, "signal_manager_sockets_open", "Open TCP connections (any phase).",
          atomic_load_explicit(&s->sockets_open, memory_order_relaxed));
    counter(&o, "signal_manager_connections_total", "Accepted TCP connections.",
            SUM(s, connections_total));
    counter(&o, "signal_manager_websocket_upgrades_total", "Successful WebSocket upgrades.",
            SUM(s, upgrades_total));
    counter(&o, "signal_manager_upgrades_rejected_total",
            "Upgrades refused with 503 (max_connections or draining).", SUM(s, rejected_total));
    counter(&o, "signal_manager_connect_rejected_total",
            "Connection attempts or upgrades refused with 429 by the per-IP rate limit.",
            SUM(s, connect_rejected_total));
    counter(&o, "signal_manager_http_requests_total",
            "HTTP requests on the WebSocket port (upgrades, health, others).",
            SUM(s, http_requests_total));

    int64_t sessions = 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        sessions += sm_worker_sessions(s->workers[i]);
    gauge(&o, "signal_manager_sessions_active",
          "Protocol sessions held by the workers, detached ones waiting for a resume included.",
          sessions);
    gauge(&o, "signal_manager_registered_clients", "Registered clients.",
          (int64_t)sm_registry_count(s->registry));
    gauge(&o, "signal_manager_rooms_active", "Open rooms (WebRTC sessions).",
          (int64_t)sm_rooms_count(s->rooms));
    gauge(&o, "signal_manager_sfu_sessions",
          "Cloudflare SFU sessions held or being created by room members (0 in p2p mode).",
          atomic_load_explicit(&s->sfu_sessions, memory_order_relaxed));
    head(&o, "signal_manager_session_duration_seconds", "histogram",
         "Session length from CONNECT_ACK to the end of the session.");
    sm_hist_snap_t sd = SNAP(s, session_duration, &sm_metrics_session_spec);
    hist_series(&o, "signal_manager_session_duration_seconds", "", &sm_metrics_session_spec, &sd);

    head(&o, "signal_manager_messages_received_total", "counter",
         "Protocol frames received, by message type.");
    for (unsigned i = 0; i <= SM_MSG_TYPE_COUNT; i++) {
        const sm_msg_info_t *mi = sm_msg_info_at(i);
        add(&o, "signal_manager_messages_received_total{type=\"%s\"} %llu\n",
            mi ? mi->name : "UNKNOWN", (unsigned long long)SUM(s, msgs_in[i]));
    }
    head(&o, "signal_manager_messages_sent_total", "counter",
         "Protocol frames sent, by message type.");
    for (unsigned i = 0; i < SM_MSG_TYPE_COUNT; i++) {
        const sm_msg_info_t *mi = sm_msg_info_at(i);
        add(&o, "signal_manager_messages_sent_total{type=\"%s\"} %llu\n", mi->name,
            (unsigned long long)SUM(s, msgs_out[i]));
    }
    counter(&o, "signal_manager_messages_rate_limited_total",
            "Frames answered ERROR 429 by the per-session message rate limit.",
            SUM(s, messages_rate_limited_total));
    head(&o, "signal_manager_errors_total", "counter", "ERROR frames sent, by error code.");
    static const int codes[] = {
#define SM__CODE(c) c,
        SM_METRIC_ERROR_CODES(SM__CODE)
#undef SM__CODE
    };
    for (unsigned i = 0; i < SM_ERRIDX_COUNT; i++)
        add(&o, "signal_manager_errors_total{code=\"%d\"} %llu\n", codes[i],
            (unsigned long long)SUM(s, errors[i]));
    head(&o, "signal_manager_websocket_closes_total", "counter",
         "WebSocket close frames sent by the server, by close code.");
    static const int ccodes[] = {
#define SM__CCODE(c) c,
        SM_METRIC_CLOSE_CODES(SM__CCODE)
#undef SM__CCODE
    };
    for (unsigned i = 0; i < SM_CLOSEIDX_OTHER; i++)
        add(&o, "signal_manager_websocket_closes_total{code=\"%d\"} %llu\n", ccodes[i],
            (unsigned long long)SUM(s, closes[i]));
    add(&o, "signal_manager_websocket_closes_total{code=\"other\"} %llu\n",
        (unsigned long long)SUM(s, closes[SM_CLOSEIDX_OTHER]));

    counter(&o, "signal_manager_bytes_received_total", "Bytes read from clients.",
            SUM(s, bytes_in));
    counter(&o, "signal_manager_bytes_sent_total", "Bytes written to clients.", SUM(s, bytes_out));
    counter(&o, "signal_manager_slow_consumers_total",
            "Connections closed for exceeding limits.max_pending_output.",
            SUM(s, slow_consumers_total));
    counter(&o, "signal_manager_backpressure_pauses_total",
            "Times a connection stopped reading because its worker inbox was full.",
            SUM(s, backpressure_pauses_total));

    head(&o, "signal_manager_queue_depth", "gauge", "Items waiting in inter-thread queues.");
    for (unsigned i = 0; i < s->n_workers; i++)
        add(&o, "signal_manager_queue_depth{queue=\"worker_inbox\",thread=\"worker-%u\"} %zu\n", i,
            sm_worker_inbox_depth(s->workers[i]));
    for (unsigned i = 0; i < s->n_io; i++)
        add(&o, "signal_manager_queue_depth{queue=\"io_outbox\",thread=\"io-%u\"} %zu\n", i,
            sm_io_outbox_depth(s->io[i]));

    store_metrics(&o, s);
    rest_metrics(&o, s);

    counter(&o, "signal_manager_events_published_total", "Lifecycle events queued.",
            sm_events_published(s->events));
    counter(&o, "signal_manager_events_dropped_total",
            "Lifecycle events dropped because the queue was full.", sm_events_dropped(s->events));
    gauge(&o, "signal_manager_draining", "1 while the server drains.",
          atomic_load_explicit(&s->draining, memory_order_relaxed) ? 1 : 0);
    gauge(&o, "signal_manager_start_time_seconds", "Start time, Unix seconds.",
          (s->started_at_ms / 1000));
    head(&o, "signal_manager_build_info", "gauge", "Build information.");
    add(&o, "signal_manager_build_info{version=\"%s\",protocol=\"%s\"} 1\n", SM_VERSION,
        SM_PROTO_VERSION);
    process_metrics(&o, s);
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
