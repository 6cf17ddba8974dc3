/*
 * Metrics (src/metrics/): histogram buckets and snapshots, label
 * classification, the observation hooks, and the Prometheus text rendered
 * from a fake server whose per-thread blocks the test fills (the thread
 * accessors, registry, rooms, store and events readers are wrapped).  The
 * rendered text is checked line by line (cumulative buckets, sums over
 * threads, bounded labels, one TYPE line per family) and, when promtool is
 * installed (Debian package `prometheus`), piped through
 * `promtool check metrics`; without promtool that test is skipped with a
 * message.
 */
/* WRAP: sm_io_counters sm_worker_counters sm_worker_inbox_depth sm_io_outbox_depth */
/* WRAP: sm_worker_pending_ops sm_worker_sessions sm_registry_count sm_rooms_count */
/* WRAP: sm_store_healthy sm_store_backend_name sm_events_published sm_events_dropped */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "metrics/counters.h"
#include "metrics/histogram.h"
#include "metrics/metrics.h"
#include "metrics/observe.h"
#include "reactor/io_thread.h"
#include "reactor/server.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "store/store.h"
#include "events/events.h"

/* ---- Fake server: 1 I/O thread, 2 workers, each with its own block ------- */

#define N_IO 1
#define N_WORKERS 2

static sm_counters_t g_blocks[N_IO + N_WORKERS];
/* The fake thread handles are the addresses of these bytes. */
static char g_io_ids[N_IO], g_worker_ids[N_WORKERS];

static unsigned worker_no(sm_worker_t *w)
{
    ptrdiff_t i = (char *)w - g_worker_ids;
    assert_true(i >= 0 && i < N_WORKERS);
    return (unsigned)i;
}

sm_counters_t *__wrap_sm_io_counters(sm_io_thread_t *t);
sm_counters_t *__wrap_sm_io_counters(sm_io_thread_t *t)
{
    ptrdiff_t i = (char *)t - g_io_ids;
    assert_true(i >= 0 && i < N_IO);
    return &g_blocks[i];
}

sm_counters_t *__wrap_sm_worker_counters(sm_worker_t *w);
sm_counters_t *__wrap_sm_worker_counters(sm_worker_t *w)
{
    return &g_blocks[N_IO + worker_no(w)];
}

size_t __wrap_sm_worker_inbox_depth(sm_worker_t *w);
size_t __wrap_sm_worker_inbox_depth(sm_worker_t *w)
{
    return 10 + worker_no(w);
}

size_t __wrap_sm_io_outbox_depth(sm_io_thread_t *t);
size_t __wrap_sm_io_outbox_depth(sm_io_thread_t *t)
{
    (void)t;
    return 7;
}

int64_t __wrap_sm_worker_pending_ops(sm_worker_t *w);
int64_t __wrap_sm_worker_pending_ops(sm_worker_t *w)
{
    return 1 + (int64_t)worker_no(w); /* 1 + 2 = 3 */
}

int64_t __wrap_sm_worker_sessions(sm_worker_t *w);
int64_t __wrap_sm_worker_sessions(sm_worker_t *w)
{
    return 20 + (int64_t)worker_no(w); /* 20 + 21 = 41 */
}

size_t __wrap_sm_registry_count(const sm_registry_t *r);
size_t __wrap_sm_registry_count(const sm_registry_t *r)
{
    (void)r;
    return 5;
}

size_t __wrap_sm_rooms_count(sm_rooms_t *r);
size_t __wrap_sm_rooms_count(sm_rooms_t *r)
{
    (void)r;
    return 2;
}

bool __wrap_sm_store_healthy(const sm_store_t *s);
bool __wrap_sm_store_healthy(const sm_store_t *s)
{
    (void)s;
    return true;
}

/* A hostile backend name shows that label values are escaped. */
static const char *g_backend = "sqlite";

const char *__wrap_sm_store_backend_name(const sm_store_t *s);
const char *__wrap_sm_store_backend_name(const sm_store_t *s)
{
    (void)s;
    return g_backend;
}

uint64_t __wrap_sm_events_published(const sm_events_t *ev);
uint64_t __wrap_sm_events_published(const sm_events_t *ev)
{
    (void)ev;
    return 9;
}

uint64_t __wrap_sm_events_dropped(const sm_events_t *ev);
uint64_t __wrap_sm_events_dropped(const sm_events_t *ev)
{
    (void)ev;
    return 1;
}

static sm_server_t g_srv;
static sm_io_thread_t *g_io[N_IO];
static sm_worker_t *g_workers[N_WORKERS];

static int setup(void **state)
{
    (void)state;
    memset(g_blocks, 0, sizeof g_blocks);
    memset(&g_srv, 0, sizeof g_srv);
    for (unsigned i = 0; i < N_IO; i++)
        g_io[i] = (sm_io_thread_t *)&g_io_ids[i];
    for (unsigned i = 0; i < N_WORKERS; i++)
        g_workers[i] = (sm_worker_t *)&g_worker_ids[i];
    g_srv.io = g_io;
    g_srv.n_io = N_IO;
    g_srv.workers = g_workers;
    g_srv.n_workers = N_WORKERS;
    /* Opaque, never dereferenced: every reader is wrapped. */
    g_srv.registry = (sm_registry_t *)&g_srv;
    g_srv.rooms = (sm_rooms_t *)&g_srv;
    g_srv.store = (sm_store_t *)&g_srv;
    g_srv.events = (sm_events_t *)&g_srv;
    g_srv.started_at_ms = 1700000000000;
    atomic_init(&g_srv.draining, false);
    atomic_init(&g_srv.sockets_open, 4);
    atomic_init(&g_srv.ws_open, 3);
    atomic_init(&g_srv.sfu_sessions, 6);
    g_backend = "sqlite";
    sm_metrics_thread_set(NULL);
    return 0;
}

/* ---- Text helpers -------------------------------------------------------- */

/* The value of the sample whose text before the value is exactly `series`
 * (name plus labels as rendered); fails the test when absent or repeated. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *found = NULL;
    for (const char *l = text; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (strncmp(l, series, n) == 0 && l[n] == ' ') {
            if (found != NULL)
                fail_msg("series %s rendered twice", series);
            found = l + n + 1;
        }
    }
    if (found == NULL)
        fail_msg("series %s not rendered", series);
    return strtod(found, NULL);
}

static bool has_line_prefix(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; *l;) {
        if (strncmp(l, prefix, n) == 0)
            return true;
        const char *nl = strchr(l, '\n');
        if (nl == NULL)
            break;
        l = nl + 1;
    }
    return false;
}

static char *render(void)
{
    size_t len = 0;
    char *text = sm_metrics_render(&g_srv, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    return text;
}

/* ---- Histograms ---------------------------------------------------------- */

static const sm_hist_spec_t spec3 = {.bounds = {10, 20, 30}, .n_bounds = 3, .scale = 1e-3};

static void test_hist_bucket_edges(void **state)
{
    (void)state;
    /* le semantics: a value equal to a bound belongs to that bound's bucket */
    assert_int_equal(sm_hist_bucket(&spec3, 0), 0);
    assert_int_equal(sm_hist_bucket(&spec3, 10), 0);
    assert_int_equal(sm_hist_bucket(&spec3, 11), 1);
    assert_int_equal(sm_hist_bucket(&spec3, 20), 1);
    assert_int_equal(sm_hist_bucket(&spec3, 30), 2);
    assert_int_equal(sm_hist_bucket(&spec3, 31), 3); /* +Inf */
    assert_int_equal(sm_hist_bucket(&spec3, UINT64_MAX), 3);

    sm_hist_t h;
    memset(&h, 0, sizeof h);
    static const uint64_t vals[] = {1, 10, 15, 30, 31, 1000};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        sm_hist_observe(&h, &spec3, vals[i]);
    sm_hist_snap_t s;
    memset(&s, 0, sizeof s);
    sm_hist_snap_add(&s, &h, &spec3);
    assert_int_equal(s.buckets[0], 2);
    assert_int_equal(s.buckets[1], 1);
    assert_int_equal(s.buckets[2], 1);
    assert_int_equal(s.buckets[3], 2);
    assert_int_equal(s.sum, 1 + 10 + 15 + 30 + 31 + 1000);
    assert_int_equal(sm_hist_snap_count(&s, &spec3), 6);
    /* a second block adds up */
    sm_hist_snap_add(&s, &h, &spec3);
    assert_int_equal(sm_hist_snap_count(&s, &spec3), 12);
    assert_int_equal(s.sum, 2 * (1 + 10 + 15 + 30 + 31 + 1000));
}

static void test_hist_specs_valid(void **state)
{
    (void)state;
    assert_true(sm_hist_spec_valid(&spec3));
    assert_true(sm_hist_spec_valid(&sm_metrics_session_spec));
    assert_true(sm_hist_spec_valid(&sm_metrics_store_spec));
    assert_true(sm_hist_spec_valid(&sm_metrics_rest_spec));
    /* the documented ranges */
    assert_int_equal(sm_metrics_session_spec.bounds[0], 1000); /* 1 s in ms */
    assert_int_equal(sm_metrics_session_spec.bounds[sm_metrics_session_spec.n_bounds - 1],
                     86400000); /* 24 h */
    static const sm_hist_spec_t unsorted = {.bounds = {10, 10}, .n_bounds = 2, .scale = 1};
    static const sm_hist_spec_t none = {.bounds = {1}, .n_bounds = 0, .scale = 1};
    static const sm_hist_spec_t noscale = {.bounds = {1}, .n_bounds = 1, .scale = 0};
    assert_false(sm_hist_spec_valid(&unsorted));
    assert_false(sm_hist_spec_valid(&none));
    assert_false(sm_hist_spec_valid(&noscale));
}

/* ---- Labels -------------------------------------------------------------- */

static void test_rest_labels(void **state)
{
    (void)state;
    assert_int_equal(sm_metrics_rest_api("firestore.get"), SM_REST_API_FIRESTORE);
    assert_int_equal(sm_metrics_rest_api("firestore.runQuery"), SM_REST_API_FIRESTORE);
    assert_int_equal(sm_metrics_rest_api("cloudflare.session_new"), SM_REST_API_CLOUDFLARE);
    assert_int_equal(sm_metrics_rest_api("pubsub.publish"), SM_REST_API_PUBSUB);
    assert_int_equal(sm_metrics_rest_api("gcreds.token"), SM_REST_API_TOKEN);
    assert_int_equal(sm_metrics_rest_api("gcreds.metadata"), SM_REST_API_TOKEN);
    assert_int_equal(sm_metrics_rest_api("firestorex.get"), SM_REST_API_OTHER);
    assert_int_equal(sm_metrics_rest_api("fire"), SM_REST_API_OTHER);
    assert_int_equal(sm_metrics_rest_api("-"), SM_REST_API_OTHER);
    assert_int_equal(sm_metrics_rest_api(""), SM_REST_API_OTHER);
    assert_int_equal(sm_metrics_rest_api(NULL), SM_REST_API_OTHER);
    assert_string_equal(sm_metrics_rest_api_name(SM_REST_API_TOKEN), "token");
    assert_string_equal(sm_metrics_rest_api_name(999), "other");

    assert_int_equal(sm_metrics_rest_class(200, 0), SM_REST_CLASS_2XX);
    assert_int_equal(sm_metrics_rest_class(204, 0), SM_REST_CLASS_2XX);
    assert_int_equal(sm_metrics_rest_class(304, 0), SM_REST_CLASS_3XX);
    assert_int_equal(sm_metrics_rest_class(409, 0), SM_REST_CLASS_4XX);
    assert_int_equal(sm_metrics_rest_class(503, 0), SM_REST_CLASS_5XX);
    assert_int_equal(sm_metrics_rest_class(0, SM_ETIMEDOUT), SM_REST_CLASS_TIMEOUT);
    assert_int_equal(sm_metrics_rest_class(0, SM_EIO), SM_REST_CLASS_ERROR);
    assert_int_equal(sm_metrics_rest_class(200, SM_EIO), SM_REST_CLASS_ERROR); /* too large */
    assert_int_equal(sm_metrics_rest_class(0, 0), SM_REST_CLASS_ERROR);
    assert_int_equal(sm_metrics_rest_class(700, 0), SM_REST_CLASS_ERROR);
    assert_string_equal(sm_metrics_rest_class_name(SM_REST_CLASS_5XX), "5xx");
    assert_string_equal(sm_metrics_rest_class_name(SM_REST_CLASS_TIMEOUT), "timeout");

    assert_int_equal(sm_metrics_rest_outcome(200, 0), SM_REST_OUTCOME_OK);
    assert_int_equal(sm_metrics_rest_outcome(404, 0), SM_REST_OUTCOME_CLIENT_ERROR);
    assert_int_equal(sm_metrics_rest_outcome(500, 0), SM_REST_OUTCOME_SERVER_ERROR);
    assert_int_equal(sm_metrics_rest_outcome(0, SM_ETIMEDOUT), SM_REST_OUTCOME_TIMEOUT);
    assert_int_equal(sm_metrics_rest_outcome(0, SM_EIO), SM_REST_OUTCOME_ERROR);
    assert_string_equal(sm_metrics_rest_outcome_name(SM_REST_OUTCOME_CLIENT_ERROR), "client_error");

    assert_int_equal(sm_metrics_store_outcome(0), SM_STORE_OUTCOME_OK);
    assert_int_equal(sm_metrics_store_outcome(SM_ENOTFOUND), SM_STORE_OUTCOME_NOT_FOUND);
    assert_int_equal(sm_metrics_store_outcome(SM_ECONFLICT), SM_STORE_OUTCOME_CONFLICT);
    assert_int_equal(sm_metrics_store_outcome(SM_EUNAVAIL), SM_STORE_OUTCOME_ERROR);
    assert_int_equal(sm_metrics_store_outcome(SM_ECLOSED), SM_STORE_OUTCOME_ERROR);
    assert_string_equal(sm_metrics_store_outcome_name(SM_STORE_OUTCOME_NOT_FOUND), "not_found");
}

/* ---- Observation hooks --------------------------------------------------- */

static void test_rest_hook(void **state)
{
    (void)state;
    sm_counters_t *c = &g_blocks[N_IO];
    /* a Firestore call: 503 (retried), then 200 */
    sm_rest_attempt_t a = {.what = "firestore.commit",
                           .method = "POST",
                           .status = 503,
                           .attempt = 1,
                           .ms = 40,
                           .retry = true,
                           .backoff_ms = 50};
    sm_metrics_rest_attempt(&a, c);
    a.status = 200;
    a.attempt = 2;
    a.ms = 7;
    a.retry = false;
    sm_metrics_rest_attempt(&a, c);
    /* a token fetch that timed out for good */
    sm_rest_attempt_t b = {
        .what = "gcreds.token", .method = "POST", .err = SM_ETIMEDOUT, .attempt = 1, .ms = 31000};
    sm_metrics_rest_attempt(&b, c);
    /* NULL block: ignored */
    sm_metrics_rest_attempt(&b, NULL);

    const unsigned F = SM_REST_API_FIRESTORE, T = SM_REST_API_TOKEN;
    assert_int_equal(sm_count_read(&c->rest_retries[F]), 1);
    assert_int_equal(sm_count_read(&c->rest_calls[F][SM_REST_OUTCOME_OK]), 1);
    assert_int_equal(sm_count_read(&c->rest_calls[F][SM_REST_OUTCOME_SERVER_ERROR]), 0);
    assert_int_equal(sm_count_read(&c->rest_calls[T][SM_REST_OUTCOME_TIMEOUT]), 1);
    assert_int_equal(sm_count_read(&c->rest_retries[T]), 0);
    sm_hist_snap_t s5, s2, st;
    memset(&s5, 0, sizeof s5);
    memset(&s2, 0, sizeof s2);
    memset(&st, 0, sizeof st);
    sm_hist_snap_add(&s5, &c->rest_latency[F][SM_REST_CLASS_5XX], &sm_metrics_rest_spec);
    sm_hist_snap_add(&s2, &c->rest_latency[F][SM_REST_CLASS_2XX], &sm_metrics_rest_spec);
    sm_hist_snap_add(&st, &c->rest_latency[T][SM_REST_CLASS_TIMEOUT], &sm_metrics_rest_spec);
    assert_int_equal(sm_hist_snap_count(&s5, &sm_metrics_rest_spec), 1);
    assert_int_equal(s5.sum, 40);
    assert_int_equal(s2.buckets[sm_hist_bucket(&sm_metrics_rest_spec, 7)], 1);
    assert_int_equal(st.buckets[sm_metrics_rest_spec.n_bounds], 1); /* 31 s: +Inf */
}

static void test_store_done(void **state)
{
    (void)state;
    sm_counters_t *c = &g_blocks[N_IO + 1];
    /* no block on this thread: nothing is counted anywhere */
    sm_metrics_store_done(SM_STORE_OP_PUT_REGISTRATION, 0, 100);
    for (unsigned i = 0; i < N_IO + N_WORKERS; i++)
        assert_int_equal(sm_count_read(&g_blocks[i].store_ops[SM_STORE_OP_PUT_REGISTRATION][0]), 0);

    sm_metrics_thread_set(c);
    assert_ptr_equal(sm_metrics_thread(), c);
    sm_metrics_store_done(SM_STORE_OP_PUT_REGISTRATION, 0, 100);
    sm_metrics_store_done(SM_STORE_OP_PUT_REGISTRATION, SM_ECONFLICT, 300);
    sm_metrics_store_done(SM_STORE_OP_GET_ROOM, SM_ENOTFOUND, 20000000); /* 20 s: +Inf */
    sm_metrics_store_done(SM_STORE_OP_DELETE_ROOM, SM_EUNAVAIL, 5000);
    sm_metrics_store_done(-1, 0, 1);                  /* out of range: ignored */
    sm_metrics_store_done(SM_METRIC_STORE_OPS, 0, 1); /* likewise */
    sm_metrics_thread_set(NULL);

    const unsigned PUT = SM_STORE_OP_PUT_REGISTRATION;
    assert_int_equal(sm_count_read(&c->store_ops[PUT][SM_STORE_OUTCOME_OK]), 1);
    assert_int_equal(sm_count_read(&c->store_ops[PUT][SM_STORE_OUTCOME_CONFLICT]), 1);
    assert_int_equal(sm_count_read(&c->store_ops[SM_STORE_OP_GET_ROOM][SM_STORE_OUTCOME_NOT_FOUND]),
                     1);
    assert_int_equal(sm_count_read(&c->store_ops[SM_STORE_OP_DELETE_ROOM][SM_STORE_OUTCOME_ERROR]),
                     1);
    sm_hist_snap_t s;
    memset(&s, 0, sizeof s);
    sm_hist_snap_add(&s, &c->store_latency[PUT], &sm_metrics_store_spec);
    assert_int_equal(s.buckets[0], 1); /* 100 us: le 0.0001 */
    assert_int_equal(s.buckets[1], 0);
    assert_int_equal(s.buckets[2], 1); /* 300 us: le 0.0005 */
    assert_int_equal(s.sum, 400);
}

static void test_session_ended(void **state)
{
    (void)state;
    sm_counters_t *c = &g_blocks[N_IO];
    sm_metrics_session_ended_at(c, 1000, 1000 + 500);      /* 0.5 s */
    sm_metrics_session_ended_at(c, 1000, 1000 + 90000);    /* 90 s */
    sm_metrics_session_ended_at(c, 1000, 1000 + 90000000); /* 25 h: +Inf */
    sm_metrics_session_ended_at(c, 5000, 1000);            /* clock went back: 0 s */
    sm_metrics_session_ended_at(NULL, 0, 1);               /* ignored */
    sm_metrics_session_ended(c, 0);                        /* "now" minus the epoch: +Inf */
    sm_hist_snap_t s;
    memset(&s, 0, sizeof s);
    sm_hist_snap_add(&s, &c->session_duration, &sm_metrics_session_spec);
    assert_int_equal(sm_hist_snap_count(&s, &sm_metrics_session_spec), 5);
    assert_int_equal(s.buckets[0], 2); /* 0.5 s and 0 s: le 1 */
    assert_int_equal(s.buckets[sm_hist_bucket(&sm_metrics_session_spec, 90000)], 1);
    assert_int_equal(s.buckets[sm_metrics_session_spec.n_bounds], 2);
}

/* ---- Rendering ----------------------------------------------------------- */

/* Traffic on every thread of the fake server. */
static void fill(void)
{
    sm_counters_t *io = &g_blocks[0], *w0 = &g_blocks[N_IO], *w1 = &g_blocks[N_IO + 1];
    sm_count(&io->connections_total, 4);
    sm_count(&io->bytes_in, 1000);
    sm_count(&w0->msgs_in[sm_metric_msg_index(SM_MSG_PING)], 2);
    sm_count(&w1->msgs_in[sm_metric_msg_index(SM_MSG_PING)], 3);
    sm_count(&w1->msgs_in[SM_MSG_TYPE_COUNT], 1); /* unknown type */
    sm_count(&w0->errors[sm_metric_error_index(401)], 1);
    sm_count(&w1->errors[sm_metric_error_index(401)], 2);
    sm_count(&io->closes[sm_metric_close_index(4999)], 1); /* -> other */
    sm_count(&w0->messages_rate_limited_total, 2);
    sm_count(&io->connect_rejected_total, 1);
    sm_metrics_session_ended_at(w0, 0, 2000);   /* 2 s */
    sm_metrics_session_ended_at(w1, 0, 400000); /* 400 s */
    sm_metrics_session_ended_at(w1, 0, 500);    /* 0.5 s */
    sm_metrics_store_done_in(w0, SM_STORE_OP_PUT_REGISTRATION, 0, 150);
    sm_metrics_store_done_in(w1, SM_STORE_OP_PUT_REGISTRATION, 0, 2000);
    sm_metrics_store_done_in(w1, SM_STORE_OP_PUT_REGISTRATION, SM_ECONFLICT, 50);
    sm_rest_attempt_t a = {.what = "cloudflare.push", .status = 201, .attempt = 1, .ms = 120};
    sm_metrics_rest_attempt(&a, w0);
}

static void test_render_sums_threads(void **state)
{
    (void)state;
    fill();
    char *t = render();

    assert_true(sample(t, "signal_manager_connections_active") == 3);
    assert_true(sample(t, "signal_manager_sockets_open") == 4);
    assert_true(sample(t, "signal_manager_connections_total") == 4);
    assert_true(sample(t, "signal_manager_registered_clients") == 5);
    assert_true(sample(t, "signal_manager_rooms_active") == 2);
    assert_true(sample(t, "signal_manager_sfu_sessions") == 6);
    assert_true(sample(t, "signal_manager_sessions_active") == 41);
    assert_true(sample(t, "signal_manager_messages_received_total{type=\"PING\"}") == 5);
    assert_true(sample(t, "signal_manager_messages_received_total{type=\"UNKNOWN\"}") == 1);
    assert_true(sample(t, "signal_manager_errors_total{code=\"401\"}") == 3);
    assert_true(sample(t, "signal_manager_errors_total{code=\"429\"}") == 0);
    assert_true(sample(t, "signal_manager_websocket_closes_total{code=\"other\"}") == 1);
    assert_true(sample(t, "signal_manager_messages_rate_limited_total") == 2);
    assert_true(sample(t, "signal_manager_connect_rejected_total") == 1);
    assert_true(sample(t, "signal_manager_store_operations_pending") == 3);
    assert_true(sample(t, "signal_manager_store_healthy") == 1);
    assert_true(
        sample(t, "signal_manager_queue_depth{queue=\"worker_inbox\",thread=\"worker-1\"}") == 11);
    assert_true(sample(t, "signal_manager_queue_depth{queue=\"io_outbox\",thread=\"io-0\"}") == 7);
    assert_true(sample(t, "signal_manager_events_dropped_total") == 1);

    /* session duration: 0.5 s, 2 s, 400 s over two workers, cumulative */
    const char *sd = "signal_manager_session_duration_seconds";
    char k[256];
    snprintf(k, sizeof k, "%s_bucket{le=\"1\"}", sd);
    assert_true(sample(t, k) == 1);
    snprintf(k, sizeof k, "%s_bucket{le=\"5\"}", sd);
    assert_true(sample(t, k) == 2);
    snprintf(k, sizeof k, "%s_bucket{le=\"300\"}", sd);
    assert_true(sample(t, k) == 2);
    snprintf(k, sizeof k, "%s_bucket{le=\"900\"}", sd);
    assert_true(sample(t, k) == 3);
    snprintf(k, sizeof k, "%s_bucket{le=\"86400\"}", sd);
    assert_true(sample(t, k) == 3);
    snprintf(k, sizeof k, "%s_bucket{le=\"+Inf\"}", sd);
    assert_true(sample(t, k) == 3);
    snprintf(k, sizeof k, "%s_count", sd);
    assert_true(sample(t, k) == 3);
    snprintf(k, sizeof k, "%s_sum", sd);
    assert_true(sample(t, k) == 402.5);

    /* store: totals by op and outcome, latency only for ops that ran */
    const char *so =
        "signal_manager_store_operations_total{backend=\"sqlite\",op=\"put_registration\"";
    snprintf(k, sizeof k, "%s,outcome=\"ok\"}", so);
    assert_true(sample(t, k) == 2);
    snprintf(k, sizeof k, "%s,outcome=\"conflict\"}", so);
    assert_true(sample(t, k) == 1);
    assert_true(sample(t,
                       "signal_manager_store_operations_total{backend=\"sqlite\",op=\"get_room\","
                       "outcome=\"error\"}") == 0);
    assert_false(strstr(t, "op=\"cleanup_instance\""));
    const char *sl = "signal_manager_store_operation_duration_seconds";
    snprintf(k, sizeof k, "%s_count{backend=\"sqlite\",op=\"put_registration\"}", sl);
    assert_true(sample(t, k) == 3);
    snprintf(k, sizeof k, "%s_bucket{backend=\"sqlite\",op=\"put_registration\",le=\"0.0001\"}",
             sl);
    assert_true(sample(t, k) == 1); /* 50 us */
    snprintf(k, sizeof k, "%s_bucket{backend=\"sqlite\",op=\"put_registration\",le=\"0.00025\"}",
             sl);
    assert_true(sample(t, k) == 2); /* + 150 us */
    snprintf(k, sizeof k, "%s_bucket{backend=\"sqlite\",op=\"put_registration\",le=\"0.0025\"}",
             sl);
    assert_true(sample(t, k) == 3); /* + 2 ms */
    snprintf(k, sizeof k, "%s_sum{backend=\"sqlite\",op=\"put_registration\"}", sl);
    assert_true(sample(t, k) > 0.0021999 && sample(t, k) < 0.0022001);
    snprintf(k, sizeof k, "%s_count{backend=\"sqlite\",op=\"get_room\"}", sl);
    assert_false(has_line_prefix(t, k));

    /* REST */
    assert_true(
        sample(t, "signal_manager_rest_requests_total{api=\"cloudflare\",outcome=\"ok\"}") == 1);
    assert_true(sample(t, "signal_manager_rest_requests_total{api=\"pubsub\",outcome=\"ok\"}") ==
                0);
    assert_true(sample(t, "signal_manager_rest_retries_total{api=\"cloudflare\"}") == 0);
    assert_true(sample(t, "signal_manager_rest_request_duration_seconds_count{api=\"cloudflare\","
                          "status_class=\"2xx\"}") == 1);
    assert_true(sample(t, "signal_manager_rest_request_duration_seconds_bucket{api=\"cloudflare\","
                          "status_class=\"2xx\",le=\"0.1\"}") == 0);
    assert_true(sample(t, "signal_manager_rest_request_duration_seconds_bucket{api=\"cloudflare\","
                          "status_class=\"2xx\",le=\"0.25\"}") == 1);
    assert_false(
        has_line_prefix(t, "signal_manager_rest_request_duration_seconds_count{api=\"fire"));

    /* process metrics of this very process */
    assert_true(sample(t, "process_resident_memory_bytes") > 0);
    assert_true(sample(t, "process_virtual_memory_bytes") >=
                sample(t, "process_resident_memory_bytes"));
    assert_true(sample(t, "process_open_fds") >= 3); /* stdin, stdout, stderr at least */
    assert_true(sample(t, "process_cpu_seconds_total") >= 0);
    double start = sample(t, "process_start_time_seconds");
    assert_true(start > 1600000000 && start <= (double)time(NULL) + 1);
    free(t);
}

/* Every sample belongs to a family declared once by a # TYPE line before it,
 * and every label value comes from a bounded set we know. */
static void test_render_well_formed(void **state)
{
    (void)state;
    fill();
    char *t = render();
    char families[256][96];
    unsigned nf = 0;
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            for (unsigned i = 0; i < nf; i++)
                if (strcmp(families[i], name) == 0)
                    fail_msg("family %s declared twice", name);
            assert_true(nf < 256);
            strcpy(families[nf++], name);
        } else if (line[0] != '#') {
            size_t n = strcspn(line, "{ ");
            bool known = false;
            for (unsigned i = 0; i < nf && !known; i++) {
                size_t fl = strlen(families[i]);
                if (n >= fl && strncmp(line, families[i], fl) == 0) {
                    const char *suffix = line + fl;
                    size_t sl = n - fl;
                    known = sl == 0 || (sl == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                            (sl == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                            (sl == 6 && strncmp(suffix, "_count", 6) == 0);
                }
            }
            if (!known)
                fail_msg("sample without a # TYPE line before it: %s", line);
            /* no id-like label values: UUIDs or client ids never show up */
            assert_null(strstr(line, "client_id"));
            assert_null(strstr(line, "room_id"));
            assert_null(strstr(line, "session_id"));
        }
        line = nl + 1;
    }
    free(t);
}

static void test_render_escapes_labels(void **state)
{
    (void)state;
    g_backend = "we\"ird\\name\n";
    sm_metrics_store_done_in(&g_blocks[N_IO], SM_STORE_OP_GET_CLIENT, 0, 10);
    char *t = render();
    assert_non_null(strstr(t, "backend=\"we\\\"ird\\\\name\\n\",op=\"get_client\""));
    free(t);
}

/* ---- promtool ------------------------------------------------------------ */

static bool have_promtool(void)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return false;
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/promtool", dir);
        found = access(p, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* promtool exit status for text (its findings go to this test's output). */
static int promtool_check(const char *text)
{
    FILE *p = popen("promtool check metrics", "w");
    assert_non_null(p);
    assert_int_equal(fwrite(text, 1, strlen(text), p), strlen(text));
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_promtool_accepts(void **state)
{
    (void)state;
    if (!have_promtool()) {
        print_message("SKIP: promtool not found on PATH (install the Debian package "
                      "`prometheus`, e.g. scripts/deps.sh test); rendered text not linted\n");
        skip();
    }
    /* empty server, then one with traffic everywhere */
    char *t = render();
    assert_int_equal(promtool_check(t), 0);
    free(t);
    fill();
    sm_metrics_rest_attempt(&(sm_rest_attempt_t){.what = "gcreds.token", .err = SM_EIO, .ms = 3},
                            &g_blocks[N_IO + 1]);
    t = render();
    assert_int_equal(promtool_check(t), 0);
    /* and promtool does fail on a flawed exposition (a counter without the
     * _total suffix), so the check means something */
    static const char bad[] = "# HELP foo x\n# TYPE foo counter\nfoo 1\n";
    assert_int_not_equal(promtool_check(bad), 0);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hist_bucket_edges, setup),
        cmocka_unit_test_setup(test_hist_specs_valid, setup),
        cmocka_unit_test_setup(test_rest_labels, setup),
        cmocka_unit_test_setup(test_rest_hook, setup),
        cmocka_unit_test_setup(test_store_done, setup),
        cmocka_unit_test_setup(test_session_ended, setup),
        cmocka_unit_test_setup(test_render_sums_threads, setup),
        cmocka_unit_test_setup(test_render_well_formed, setup),
        cmocka_unit_test_setup(test_render_escapes_labels, setup),
        cmocka_unit_test_setup(test_promtool_accepts, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
