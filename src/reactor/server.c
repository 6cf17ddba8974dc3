/*
 * Server lifecycle on the main thread.
 *
 * Start order (DESIGN.md): store (and crash cleanup of this instance's
 * records), events, listeners, workers, I/O threads, metrics; then one
 * "listening" log line.  Stop (SIGTERM/SIGINT): mark draining, let every
 * I/O thread send DISCONNECT + close 1001, wait until no WebSocket is open
 * and no store operation is in flight (or server.drain_timeout passes), then
 * stop I/O threads, workers, the store and the events writer, in that order.
 */
#include "reactor/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "auth/auth.h"
#include "cloud/cloudflare.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/cidr.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/hmap.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "reactor/io_thread.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "store/store.h"
#include "tls/tls.h"

#define DRAIN_POLL_MS 10
/* Memory give-back (on_trim_tick): how often the open connections are
 * looked at, and how far they must have fallen from their peak. */
#define TRIM_PERIOD_MS 5000
#define TRIM_MIN_DROP 1000

struct sm_server_priv_s {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    uint64_t drain_deadline;
    uv_timer_t trim_timer;
    int64_t trim_peak; /* most WebSockets open since the last trim */
    bool draining;
    bool started;
    bool stopped;
    bool timed_out;
    sm_metrics_t *metrics;
    int metrics_fd;
    int *listen_fds;
    char *instance_id;
};

unsigned sm_server_worker_for(const sm_server_t *s, sm_handle_t h)
{
    return (unsigned)(sm_hash_u64(h) % s->n_workers);
}

/* ---- sockets ---- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (uv_ip4_addr(host, port, a4) == 0) {
        *len = sizeof *a4;
        return 0;
    }
    if (uv_ip6_addr(host, port, a6) == 0) {
        *len = sizeof *a6;
        return 0;
    }
    return SM_EINVAL;
}

/* A bound, listening, non-blocking socket; *port is updated when it was 0. */
static int open_listener(const char *key_host, const char *host, int *port, bool reuseport,
                         int *fd_out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(host, *port, &ss, &len) != 0) {
        snprintf(err, errlen, "%s: \"%s\" is not an IPv4 or IPv6 address", key_host, host);
        return SM_ECONFIG;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return SM_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return SM_EIO;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "%s: cannot listen on %s:%d: %s", key_host, host, *port,
                 strerror(errno));
        close(fd);
        return SM_EIO;
    }
    if (*port == 0) {
        struct sockaddr_storage got;
        socklen_t glen = sizeof got;
        getsockname(fd, (struct sockaddr *)&got, &glen);
        *port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
    }
    *fd_out = fd;
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- stop ---- */

static void stop_threads(sm_server_t *s)
{
    struct sm_server_priv_s *p = s->_priv;
    if (p->stopped)
        return;
    p->stopped = true;
    for (unsigned i = 0; i < s->n_io; i++)
        sm_io_thread_stop(s->io[i]);
    for (unsigned i = 0; i < s->n_io; i++)
        sm_io_thread_join_free(s->io[i]);
    for (unsigned i = 0; i < s->n_workers; i++)
        sm_worker_stop(s->workers[i]);
    for (unsigned i = 0; i < s->n_workers; i++)
        sm_worker_join_free(s->workers[i]);
    sm_metrics_stop(p->metrics);
    p->metrics = NULL;
    uv_timer_stop(&p->drain_timer);
    uv_close((uv_handle_t *)&p->drain_timer, NULL);
    uv_timer_stop(&p->trim_timer);
    uv_close((uv_handle_t *)&p->trim_timer, NULL);
    uv_close((uv_handle_t *)&p->sigterm, NULL);
    uv_close((uv_handle_t *)&p->sigint, NULL);
    uv_close((uv_handle_t *)&p->sighup, NULL);
    uv_close((uv_handle_t *)&p->stop_async, NULL);
}

static bool drained(sm_server_t *s)
{
    if (atomic_load_explicit(&s->ws_open, memory_order_relaxed) > 0)
        return false;
    for (unsigned i = 0; i < s->n_workers; i++) {
        if (sm_worker_pending_ops(s->workers[i]) > 0 || sm_worker_sessions(s->workers[i]) > 0)
            return false;
    }
    return true;
}

/* glibc keeps what the threads free in its arenas: after a burst of
 * closes (every closing connection is briefly active, about 9 KiB each) the
 * process stayed ~100 MiB above its idle size (docs/performance.md 5).
 * When the open WebSockets fell by TRIM_MIN_DROP and a quarter from their
 * peak, malloc_trim gives the free pages back. */
static void on_trim_tick(uv_timer_t *t)
{
    sm_server_t *s = t->data;
    struct sm_server_priv_s *p = s->_priv;
    int64_t open = atomic_load_explicit(&s->ws_open, memory_order_relaxed);
    if (open > p->trim_peak)
        p->trim_peak = open;
    int64_t drop = p->trim_peak - open;
    if (drop >= TRIM_MIN_DROP && drop >= p->trim_peak / 4) {
        malloc_trim(0);
        SM_LOG(SM_LOG_DEBUG, SM_MSG("memory trimmed"), SM_INT("open", open),
               SM_INT("peak", p->trim_peak));
        p->trim_peak = open;
    }
}

static void on_drain_tick(uv_timer_t *t)
{
    sm_server_t *s = t->data;
    struct sm_server_priv_s *p = s->_priv;
    if (drained(s)) {
        SM_LOG(SM_LOG_INFO, SM_MSG("drain complete"));
        stop_threads(s);
        return;
    }
    if (uv_now(&p->loop) >= p->drain_deadline) {
        p->timed_out = true;
        SM_LOG(SM_LOG_WARN, SM_MSG("drain timeout: closing remaining connections"),
               SM_INT("open", atomic_load_explicit(&s->ws_open, memory_order_relaxed)));
        stop_threads(s);
    }
}

static void begin_drain(sm_server_t *s)
{
    struct sm_server_priv_s *p = s->_priv;
    if (p->draining) {
        /* Second signal: stop now. */
        SM_LOG(SM_LOG_WARN, SM_MSG("second stop signal: stopping without waiting"));
        stop_threads(s);
        return;
    }
    p->draining = true;
    atomic_store_explicit(&s->draining, true, memory_order_relaxed);
    SM_LOG(SM_LOG_INFO, SM_MSG("draining"),
           SM_INT("connections", atomic_load_explicit(&s->ws_open, memory_order_relaxed)),
           SM_UINT("drain_timeout_ms", s->cfg->server_drain_timeout));
    for (unsigned i = 0; i < s->n_io; i++)
        sm_io_thread_drain(s->io[i]);
    for (unsigned i = 0; i < s->n_workers; i++)
        sm_worker_drain(s->workers[i]);
    p->drain_deadline = uv_now(&p->loop) + s->cfg->server_drain_timeout;
    uv_timer_start(&p->drain_timer, on_drain_tick, DRAIN_POLL_MS, DRAIN_POLL_MS);
}

static void on_signal(uv_signal_t *h, int signum)
{
    sm_server_t *s = h->data;
    SM_LOG(SM_LOG_INFO, SM_MSG("signal received"), SM_STR("signal", strsignal(signum)));
    begin_drain(s);
}

/* SIGHUP: load the certificate and key again; new connections use them,
 * open ones keep theirs.  A bad file keeps the old pair (and says why). */
static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    sm_server_t *s = h->data;
    const sm_config_t *cfg = s->cfg;
    if (!cfg->server_tls_enabled) {
        SM_LOG(SM_LOG_INFO, SM_MSG("SIGHUP ignored: TLS is off"));
        return;
    }
    char err[512];
    sm_tls_ctx_t *tls = NULL;
    if (sm_tls_ctx_load(cfg->server_tls_cert_path, cfg->server_tls_key_path,
                        cfg->server_tls_ca_path, &tls, err, sizeof err) != 0) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("TLS reload failed, keeping the current certificate"),
               SM_STR("error", err));
        return;
    }
    sm_tls_ctx_swap(tls);
    SM_LOG(SM_LOG_INFO, SM_MSG("TLS certificate reloaded"),
           SM_STR("cert", cfg->server_tls_cert_path));
}

static void on_stop_async(uv_async_t *a)
{
    begin_drain(a->data);
}

void sm_server_request_stop(sm_server_t *s)
{
    uv_async_send(&s->_priv->stop_async);
}

/* ---- start ---- */

int sm_server_start(const sm_config_t *cfg, sm_server_t **out, char *err, size_t errlen)
{
    sm_server_t *s = sm_xcalloc(1, sizeof *s);
    struct sm_server_priv_s *p = sm_xcalloc(1, sizeof *p);
    s->_priv = p;
    s->cfg = cfg;
    s->metrics_port = -1;
    p->metrics_fd = -1;
    atomic_init(&s->draining, false);
    atomic_init(&s->sockets_open, 0);
    atomic_init(&s->ws_open, 0);
    atomic_init(&s->sfu_sessions, 0);
    SM_ASSERT(uv_loop_init(&p->loop) == 0);
    s->started_at_ms = sm_clock_wall_ms();
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    *out = s;

    if (strcmp(cfg->webrtc_mode, "cloudflare") == 0) {
        if (cfg->cloudflare_app_id[0] == '\0') {
            snprintf(err, errlen, "cloudflare.app_id: required for webrtc.mode=cloudflare");
            return SM_ECONFIG;
        }
        if (cfg->cloudflare_app_token[0] == '\0') {
            snprintf(err, errlen,
                     "cloudflare.app_token: required for webrtc.mode=cloudflare "
                     "(set SIGNAL_MANAGER_CLOUDFLARE_APP_TOKEN)");
            return SM_ECONFIG;
        }
        /* DECISIONS §4: cloudflare_timeout per attempt, 3 attempts 1 s apart. */
        s->cf = sm_cf_new(cfg->cloudflare_base_url, cfg->cloudflare_app_id,
                          cfg->cloudflare_app_token, cfg->webrtc_cloudflare_timeout, 3, 1000);
        if (s->cf == NULL) {
            snprintf(err, errlen,
                     "cloudflare: app_id, app_token or base_url not usable "
                     "(the log line before names which)");
            return SM_ECONFIG;
        }
    }
    if (cfg->server_tls_enabled) {
        sm_tls_ctx_t *tls = NULL;
        int trc = sm_tls_ctx_load(cfg->server_tls_cert_path, cfg->server_tls_key_path,
                                  cfg->server_tls_ca_path, &tls, err, errlen);
        if (trc != 0)
            return trc;
        sm_tls_ctx_swap(tls);
    }
    if (cfg->server_trusted_proxies[0] != '\0') {
        /* sm_config_finish has checked it already; parsed again for the list kept. */
        char why[256];
        int prc =
            sm_cidr_parse_list(cfg->server_trusted_proxies, &s->trusted_proxies, why, sizeof why);
        if (prc != 0) {
            snprintf(err, errlen, "server.trusted_proxies: %s", why);
            return SM_ECONFIG;
        }
    } else if (strcmp(cfg->server_proxy_protocol, "off") != 0) {
        SM_LOG(SM_LOG_WARN, SM_MSG("server.proxy_protocol is on but server.trusted_proxies is "
                                   "empty: no peer may send a PROXY header"));
    }
    int rc = sm_auth_new(cfg, &s->auth, err, errlen);
    if (rc != 0)
        return rc;
    if (sm_strlist_contains(&cfg->auth_auth_method, "token") &&
        sm_strlist_contains(&cfg->auth_api_keys, "test_client_1:test_token_1"))
        SM_LOG(SM_LOG_WARN, SM_MSG("auth.api_keys holds the public test credentials: set your "
                                   "own keys (or auth_method=jwt) before exposing this server"));
    s->n_io = cfg->io_threads;
    s->n_workers = cfg->workers;
    p->listen_fds = sm_xcalloc(s->n_io, sizeof *p->listen_fds);
    for (unsigned i = 0; i < s->n_io; i++)
        p->listen_fds[i] = -1;
    int port = (int)cfg->server_port;
    for (unsigned i = 0; i < s->n_io; i++) {
        rc = open_listener("server.host", cfg->server_host, &port, true, &p->listen_fds[i], err,
                           errlen);
        if (rc != 0)
            return rc;
    }
    s->port = port;
    if (cfg->metrics_enabled) {
        int mport = (int)cfg->metrics_port;
        rc = open_listener("metrics.host", cfg->metrics_host, &mport, false, &p->metrics_fd, err,
                           errlen);
        if (rc != 0)
            return rc;
        s->metrics_port = mport;
    }

    /* With port 0 every instance would be "host:0": name it by the real port. */
    if (cfg->server_instance_id[0] == '\0' && cfg->server_port == 0) {
        char host[200];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        p->instance_id = sm_xmalloc(strlen(host) + 16);
        sprintf(p->instance_id, "%s:%d", host, s->port);
        s->instance_id = p->instance_id;
    } else {
        s->instance_id = cfg->instance_id;
    }
    s->registry = sm_registry_new(64);
    s->rooms = sm_rooms_new((unsigned)cfg->limits_max_rooms);
    rc = sm_store_open(cfg, &s->store, err, errlen);
    if (rc != 0)
        return rc;
    unsigned regs = 0, rooms = 0;
    rc = sm_store_cleanup_instance(s->store, s->instance_id, &regs, &rooms);
    if (rc != 0) {
        snprintf(err, errlen, "store: cleanup of instance %s failed: %s", s->instance_id,
                 sm_strerror(rc));
        return rc;
    }
    if (regs || rooms)
        SM_LOG(SM_LOG_INFO, SM_MSG("removed records left by a previous run"),
               SM_STR("instance_id", s->instance_id), SM_UINT("registrations", regs),
               SM_UINT("rooms", rooms));
    rc = sm_events_open(cfg, &s->events, err, errlen);
    if (rc != 0)
        return rc;
    /* pubsub: a first access token now, so bad credentials fail the start. */
    rc = sm_events_check(s->events, err, errlen);
    if (rc != 0)
        return rc;
    sm_events_set_instance_id(s->events, s->instance_id);

    /* Everything that can fail for a reason an operator can fix is done;
     * from here on a failure is the machine's (threads, event loop). */
    s->workers = sm_xcalloc(s->n_workers, sizeof *s->workers);
    s->io = sm_xcalloc(s->n_io, sizeof *s->io);
    for (unsigned i = 0; i < s->n_workers; i++)
        s->workers[i] = sm_worker_new(s, i);
    for (unsigned i = 0; i < s->n_io; i++) {
        s->io[i] = sm_io_thread_new(s, i, p->listen_fds[i]);
        p->listen_fds[i] = -1; /* owned by the thread now */
    }
    for (unsigned i = 0; i < s->n_workers; i++)
        SM_ASSERT(sm_worker_start(s->workers[i]) == 0);
    for (unsigned i = 0; i < s->n_io; i++)
        SM_ASSERT(sm_io_thread_start(s->io[i]) == 0);
    p->started = true;

    uv_signal_init(&p->loop, &p->sigterm);
    uv_signal_init(&p->loop, &p->sigint);
    p->sigterm.data = p->sigint.data = s;
    uv_signal_start(&p->sigterm, on_signal, SIGTERM);
    uv_signal_start(&p->sigint, on_signal, SIGINT);
    uv_signal_init(&p->loop, &p->sighup);
    p->sighup.data = s;
    uv_signal_start(&p->sighup, on_sighup, SIGHUP);
    uv_async_init(&p->loop, &p->stop_async, on_stop_async);
    p->stop_async.data = s;
    uv_timer_init(&p->loop, &p->drain_timer);
    p->drain_timer.data = s;
    uv_timer_init(&p->loop, &p->trim_timer);
    p->trim_timer.data = s;
    uv_timer_start(&p->trim_timer, on_trim_tick, TRIM_PERIOD_MS, TRIM_PERIOD_MS);
    if (p->metrics_fd >= 0) {
        SM_ASSERT(sm_metrics_start(s, &p->loop, p->metrics_fd, &p->metrics) == 0);
        p->metrics_fd = -1;
    }

    if (s->metrics_port >= 0)
        SM_LOG(SM_LOG_INFO, SM_MSG("listening"), SM_STR("host", cfg->server_host),
               SM_INT("port", s->port), SM_INT("metrics_port", s->metrics_port),
               SM_STR("version", SM_VERSION), SM_STR("instance_id", s->instance_id),
               SM_UINT("io_threads", s->n_io), SM_UINT("workers", s->n_workers),
               SM_STR("store", sm_store_backend_name(s->store)),
               SM_STR("events", cfg->events_backend), SM_STR("webrtc_mode", cfg->webrtc_mode));
    else
        SM_LOG(SM_LOG_INFO, SM_MSG("listening"), SM_STR("host", cfg->server_host),
               SM_INT("port", s->port), SM_STR("version", SM_VERSION),
               SM_STR("instance_id", s->instance_id), SM_UINT("io_threads", s->n_io),
               SM_UINT("workers", s->n_workers), SM_STR("store", sm_store_backend_name(s->store)),
               SM_STR("events", cfg->events_backend), SM_STR("webrtc_mode", cfg->webrtc_mode));
    return 0;
}

int sm_server_run(sm_server_t *s)
{
    struct sm_server_priv_s *p = s->_priv;
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return p->timed_out ? SM_ETIMEDOUT : 0;
}

void sm_server_free(sm_server_t *s)
{
    if (s == NULL)
        return;
    struct sm_server_priv_s *p = s->_priv;
    if (p->started && !p->stopped)
        stop_threads(s);
    /* Let the main loop finish closing its handles. */
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    if (p->listen_fds) {
        for (unsigned i = 0; i < s->n_io; i++)
            if (p->listen_fds[i] >= 0)
                close(p->listen_fds[i]);
        free(p->listen_fds);
    }
    if (p->metrics_fd >= 0)
        close(p->metrics_fd);
    sm_store_close(s->store);
    sm_events_close(s->events);
    sm_registry_free(s->registry);
    sm_rooms_free(s->rooms);
    sm_cf_free(s->cf);
    sm_tls_ctx_swap(NULL);
    sm_cidr_list_free(s->trusted_proxies);
    sm_auth_free(s->auth);
    free(s->io);
    free(s->workers);
    free(p->instance_id);
    free(p);
    free(s);
}
