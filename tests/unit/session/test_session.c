/*
 * Unit tests for src/session/session.c: the protocol state machine of
 * DECISIONS §3 (and the check order written at the top of session.c),
 * driven one frame at a time with the worker faked at its edge.
 *
 * The worker functions session.c calls are wrapped: every reply is recorded
 * and decoded (WebSocket header, 21-byte protocol header, JSON payload); the
 * loop and the reply taskq are the test's own; the server holds a real
 * config, registry and auth (default api_keys), events NULL, and either the
 * memory store or a fake backend wrapped around the memory store that fails,
 * conflicts or holds requests on demand (held requests are later forwarded to
 * the memory store, so a "late success" really inserts the row).
 *
 * uv_now is wrapped too: the test adds an offset to the loop's clock, so the
 * 60 s bad-frame window can be crossed without waiting.  (libuv timers keep
 * the real clock; the registration timeout is tested with a 20 ms timeout
 * and the loop running until the timer fires, bounded by a watchdog timer.)
 *
 * Resume (DECISIONS §3) posts work to the worker owning the old session;
 * sm_worker_post, sm_worker_self and sm_worker_session_table are wrapped so
 * that this work runs on the test's taskq against the test's session table
 * (every session lives on the one fake worker, index WORKER_INDEX).
 *
 * WRAP: sm_worker_send sm_worker_loop sm_worker_taskq sm_worker_server
 * WRAP: sm_worker_counters sm_worker_index sm_worker_op_begin sm_worker_op_end uv_now
 * WRAP: sm_worker_post sm_worker_self sm_worker_session_table
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include <sm/proto.h>
#include <sm/uuid.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/handle.h"
#include "core/list.h"
#include "core/obuf.h"
#include "core/taskq.h"
#include "log/log.h"
#include "metrics/counters.h"
#include "reactor/msg.h"
#include "reactor/server.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "session/session.h"
#include "session/session_internal.h"
#include "store/store.h"

/* From session/session_internal.h: frames that may wait behind one store
 * operation (the next one closes the connection), and the bad-frame window. */
#define MAX_PENDING MAX_PENDING_FRAMES
#define BAD_WINDOW_MS ((uint64_t)BAD_FRAME_WINDOW_MS)
#define WORKER_INDEX 3u
#define WATCHDOG_MS 10000 /* only reached when a test is about to fail */
#define SHORT_REG_TIMEOUT_MS 20

#define CID1 "test_client_1"
#define TOK1 "test_token_1"
#define CID2 "test_client_2"
#define TOK2 "test_token_2"

static const sm_handle_t H1 = ((uint64_t)0 << 56) | ((uint64_t)1 << 32) | 1u;
static const sm_handle_t H2 = ((uint64_t)1 << 56) | ((uint64_t)2 << 32) | 7u;
static const sm_handle_t H3 = ((uint64_t)2 << 56) | ((uint64_t)9 << 32) | 3u;

/* ---- Fake store backend: the memory backend plus failures on demand ---- */

typedef enum { FK_PASS = 0, FK_FAIL, FK_CONFLICT, FK_HOLD } fk_mode_t;

typedef struct {
    const sm_store_vtable_t *inner;
    void *inner_impl;
    fk_mode_t put_mode, del_mode;
    sm_list_t held; /* requests held by FK_HOLD, oldest first */
    unsigned nheld;
    unsigned puts, dels; /* put/delete_registration requests seen */
} fake_t;

static void fake_apply(fake_t *f, fk_mode_t mode, sm_store_req_t *req,
                       void (*fwd)(void *, sm_store_req_t *))
{
    switch (mode) {
    case FK_PASS:
        fwd(f->inner_impl, req);
        break;
    case FK_FAIL:
        sm_store_req_complete(req, SM_EUNAVAIL);
        break;
    case FK_CONFLICT:
        sm_store_req_complete(req, SM_ECONFLICT);
        break;
    case FK_HOLD:
        sm_list_insert_tail(&f->held, &req->link);
        f->nheld++;
        break;
    }
}

static void fake_put_registration(void *impl, sm_store_req_t *req)
{
    fake_t *f = impl;
    f->puts++;
    fake_apply(f, f->put_mode, req, f->inner->put_registration);
}

static void fake_delete_registration(void *impl, sm_store_req_t *req)
{
    fake_t *f = impl;
    f->dels++;
    fake_apply(f, f->del_mode, req, f->inner->delete_registration);
}

#define FAKE_FWD(op)                                                                               \
    static void fake_##op(void *impl, sm_store_req_t *req)                                         \
    {                                                                                              \
        fake_t *f = impl;                                                                          \
        f->inner->op(f->inner_impl, req);                                                          \
    }
FAKE_FWD(cleanup_instance)
FAKE_FWD(get_registration)
FAKE_FWD(count_registrations)
FAKE_FWD(put_room)
FAKE_FWD(delete_room)
FAKE_FWD(get_room)
FAKE_FWD(add_member)
FAKE_FWD(remove_member)

/* Hand back the oldest held request: forwarded to the memory store (it then
 * really happens) when forward is true, else completed with status. */
static void fake_release_one(fake_t *f, bool forward, int status)
{
    sm_list_t *n = sm_list_first(&f->held);
    assert_non_null(n);
    sm_list_remove(n);
    f->nheld--;
    sm_store_req_t *req = SM_CONTAINER_OF(n, sm_store_req_t, link);
    if (!forward) {
        sm_store_req_complete(req, status);
        return;
    }
    if (req->op == SM_STORE_OP_PUT_REGISTRATION)
        f->inner->put_registration(f->inner_impl, req);
    else if (req->op == SM_STORE_OP_DELETE_REGISTRATION)
        f->inner->delete_registration(f->inner_impl, req);
    else
        fail_msg("unexpected held op %s", sm_store_op_name(req->op));
}

static void fake_close(void *impl)
{
    fake_t *f = impl;
    while (!sm_list_empty(&f->held))
        fake_release_one(f, false, SM_ECANCELED);
    f->inner->close(f->inner_impl);
    free(f);
}

static const sm_store_vtable_t fake_vt = {
    .name = "fake-memory",
    .close = fake_close,
    .cleanup_instance = fake_cleanup_instance,
    .put_registration = fake_put_registration,
    .delete_registration = fake_delete_registration,
    .get_registration = fake_get_registration,
    .count_registrations = fake_count_registrations,
    .put_room = fake_put_room,
    .delete_room = fake_delete_room,
    .get_room = fake_get_room,
    .add_member = fake_add_member,
    .remove_member = fake_remove_member,
};

/* ---- Fixture ---- */

/* One sm_worker_send call, decoded. */
typedef struct {
    sm_handle_t conn;
    uint16_t flags;
    uint32_t arg;
    bool has_frame; /* false: a close request without a frame */
    uint8_t type;
    uint8_t payload_type;
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    json_t *json; /* owned; NULL unless the payload is JSON */
} sent_t;

typedef struct {
    uv_loop_t loop;
    sm_taskq_t q;
    uv_timer_t watchdog;
    bool watchdog_fired;
    sm_config_t *cfg;
    sm_server_t srv;
    sm_counters_t ctr;
    int worker_tag;                         /* &worker_tag is the opaque worker pointer */
    sm_worker_t *workers[WORKER_INDEX + 1]; /* srv.workers: all the fake worker */
    sm_sessions_t *ss;
    fake_t *fake; /* NULL with the plain memory store */
    sent_t *sent;
    size_t nsent, capsent;
    int64_t ops; /* op_begin minus op_end */
    uint64_t now_offset;
    unsigned next_uuid;
} fx_t;

static fx_t *g_fx; /* the wraps find the fixture here */

static sm_worker_t *worker_of(fx_t *fx)
{
    return (sm_worker_t *)(void *)&fx->worker_tag;
}

/* ---- Wrapped worker functions ---- */

void __wrap_sm_worker_send(sm_worker_t *w, sm_handle_t conn, sm_obuf_t *b, uint16_t flags,
                           uint32_t arg);
uv_loop_t *__wrap_sm_worker_loop(sm_worker_t *w);
sm_taskq_t *__wrap_sm_worker_taskq(sm_worker_t *w);
sm_server_t *__wrap_sm_worker_server(sm_worker_t *w);
sm_counters_t *__wrap_sm_worker_counters(sm_worker_t *w);
unsigned __wrap_sm_worker_index(sm_worker_t *w);
void __wrap_sm_worker_op_begin(sm_worker_t *w);
void __wrap_sm_worker_op_end(sm_worker_t *w);
uint64_t __real_uv_now(const uv_loop_t *loop);
uint64_t __wrap_uv_now(const uv_loop_t *loop);
int __wrap_sm_worker_post(sm_worker_t *w, sm_task_t *task);
sm_worker_t *__wrap_sm_worker_self(void);
struct sm_sessions_s *__wrap_sm_worker_session_table(sm_worker_t *w);

static void check_worker(sm_worker_t *w)
{
    assert_non_null(g_fx);
    assert_ptr_equal(w, worker_of(g_fx));
}

void __wrap_sm_worker_send(sm_worker_t *w, sm_handle_t conn, sm_obuf_t *b, uint16_t flags,
                           uint32_t arg)
{
    check_worker(w);
    fx_t *fx = g_fx;
    /* A session never addresses a connection it no longer has. */
    assert_true(conn != SM_HANDLE_NONE);
    if (fx->nsent == fx->capsent) {
        fx->capsent = fx->capsent ? fx->capsent * 2 : 64;
        fx->sent = sm_xrealloc(fx->sent, fx->capsent * sizeof *fx->sent);
    }
    sent_t *s = &fx->sent[fx->nsent++];
    memset(s, 0, sizeof *s);
    s->conn = conn;
    s->flags = flags;
    s->arg = arg;
    if (b == NULL) {
        /* Only a close request may come without a frame. */
        assert_true(flags & SM_OUTF_CLOSE);
        return;
    }
    s->has_frame = true;
    const uint8_t *p = sm_obuf_bytes(b);
    size_t n = b->len;
    /* RFC 6455 server frame: FIN + binary opcode, unmasked, then the length. */
    assert_true(n >= 2);
    assert_int_equal(p[0], 0x82);
    assert_int_equal(p[1] & 0x80, 0);
    size_t plen = p[1] & 0x7f, hdr = 2;
    if (plen == 126) {
        assert_true(n >= 4);
        plen = ((size_t)p[2] << 8) | p[3];
        hdr = 4;
        assert_true(plen >= 126);
    } else {
        assert_true(plen < 126);
    }
    assert_int_equal(hdr + plen, n);
    sm_frame_t f;
    assert_int_equal(sm_frame_decode(p + hdr, plen, &f), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(f.type, f.payload_type, SM_MSG_S2C), SM_PROTO_OK);
    s->type = f.type;
    s->payload_type = f.payload_type;
    memcpy(s->uuid, f.uuid, sizeof s->uuid);
    if (f.payload_type == SM_PAYLOAD_JSON) {
        json_error_t jerr;
        s->json = json_loadb((const char *)f.payload, f.length, 0, &jerr);
        if (s->json == NULL)
            fail_msg("reply payload is not JSON: %s", jerr.text);
        assert_true(json_is_object(s->json));
    }
    sm_obuf_unref(b);
}

uv_loop_t *__wrap_sm_worker_loop(sm_worker_t *w)
{
    check_worker(w);
    return &g_fx->loop;
}

sm_taskq_t *__wrap_sm_worker_taskq(sm_worker_t *w)
{
    check_worker(w);
    return &g_fx->q;
}

sm_server_t *__wrap_sm_worker_server(sm_worker_t *w)
{
    check_worker(w);
    return &g_fx->srv;
}

sm_counters_t *__wrap_sm_worker_counters(sm_worker_t *w)
{
    check_worker(w);
    return &g_fx->ctr;
}

unsigned __wrap_sm_worker_index(sm_worker_t *w)
{
    check_worker(w);
    return WORKER_INDEX;
}

void __wrap_sm_worker_op_begin(sm_worker_t *w)
{
    check_worker(w);
    g_fx->ops++;
}

void __wrap_sm_worker_op_end(sm_worker_t *w)
{
    check_worker(w);
    g_fx->ops--;
    assert_true(g_fx->ops >= 0);
}

uint64_t __wrap_uv_now(const uv_loop_t *loop)
{
    return __real_uv_now(loop) + (g_fx ? g_fx->now_offset : 0);
}

int __wrap_sm_worker_post(sm_worker_t *w, sm_task_t *task)
{
    check_worker(w);
    return sm_taskq_post(&g_fx->q, task);
}

sm_worker_t *__wrap_sm_worker_self(void)
{
    return g_fx ? worker_of(g_fx) : NULL;
}

struct sm_sessions_s *__wrap_sm_worker_session_table(sm_worker_t *w)
{
    check_worker(w);
    return g_fx->ss;
}

/* ---- Setup / teardown ---- */

static void on_watchdog(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->watchdog_fired = true;
}

static fx_t *fx_new(bool fake)
{
    sm_log_configure(SM_LOG_FATAL, SM_LOG_FORMAT_TEXT, -1);
    fx_t *fx = sm_xcalloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(sm_taskq_init(&fx->q, &fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);
    fx->watchdog.data = fx;

    char err[256];
    fx->cfg = sm_config_new_defaults();
    assert_int_equal(
        sm_config_set(fx->cfg, "store", "backend", "memory", SM_CONF_SRC_DEFAULT, err, sizeof err),
        0);
    free(fx->cfg->instance_id);
    fx->cfg->instance_id = sm_xstrdup("test-instance");
    /* Most tests send far more than a client should; the rate limit has its
     * own test (test_message_rate_limit). */
    fx->cfg->limits_message_rate = 0;

    fx->srv.cfg = fx->cfg;
    fx->srv.instance_id = fx->cfg->instance_id;
    fx->srv.registry = sm_registry_new(4);
    assert_int_equal(sm_auth_new(fx->cfg, &fx->srv.auth, err, sizeof err), 0);
    fx->srv.events = NULL;
    fx->srv.rooms = sm_rooms_new((unsigned)fx->cfg->limits_max_rooms);
    for (unsigned i = 0; i <= WORKER_INDEX; i++)
        fx->workers[i] = worker_of(fx);
    fx->srv.workers = fx->workers;
    fx->srv.n_workers = WORKER_INDEX + 1;
    if (fake) {
        fake_t *f = sm_xcalloc(1, sizeof *f);
        sm_list_init(&f->held);
        f->inner = sm_store_backend_find("memory");
        assert_non_null(f->inner);
        assert_int_equal(f->inner->open(fx->cfg, &f->inner_impl, err, sizeof err), 0);
        fx->srv.store = sm_store_open_with(&fake_vt, f);
        fx->fake = f;
    } else {
        assert_int_equal(sm_store_open(fx->cfg, &fx->srv.store, err, sizeof err), 0);
        assert_string_equal(sm_store_backend_name(fx->srv.store), "memory");
    }
    g_fx = fx;
    fx->ss = sm_sessions_new(worker_of(fx));
    assert_non_null(fx->ss);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    return fx;
}

static int setup_memory(void **state)
{
    *state = fx_new(false);
    return 0;
}

static int setup_fake(void **state)
{
    *state = fx_new(true);
    return 0;
}

/* Run the loop without blocking until every queued completion (and what it
 * started in turn) has been delivered. */
static void drain(fx_t *fx)
{
    for (int i = 0; i < 16; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    /* Give back what a (possibly failed) test left held, so that every
     * operation completes before the sessions go, as the worker ensures. */
    if (fx->fake) {
        while (fx->fake->nheld)
            fake_release_one(fx->fake, false, SM_ECANCELED);
    }
    drain(fx);
    int64_t ops_left = fx->ops;
    if (fx->ss)
        sm_sessions_free(fx->ss);
    sm_store_close(fx->srv.store);
    sm_taskq_close(&fx->q);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int loop_rc = uv_loop_close(&fx->loop);
    sm_registry_free(fx->srv.registry);
    sm_rooms_free(fx->srv.rooms);
    sm_auth_free(fx->srv.auth);
    sm_config_free(fx->cfg);
    for (size_t i = 0; i < fx->nsent; i++)
        json_decref(fx->sent[i].json);
    free(fx->sent);
    free(fx);
    g_fx = NULL;
    /* Every store operation a session started was also ended. */
    assert_int_equal(ops_left, 0);
    assert_int_equal(loop_rc, 0);
    return 0;
}

typedef bool (*pred_fn)(fx_t *fx, const void *arg);

/* Run the loop until p holds; false if the watchdog expired first. */
static bool wait_until(fx_t *fx, pred_fn p, const void *arg)
{
    fx->watchdog_fired = false;
    uv_timer_start(&fx->watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (!p(fx, arg) && !fx->watchdog_fired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->watchdog);
    return p(fx, arg);
}

static bool pred_nsent_at_least(fx_t *fx, const void *arg)
{
    return fx->nsent >= *(const size_t *)arg;
}

static bool pred_error_408(fx_t *fx, const void *arg);

/* ---- Frames in ---- */

static void mkuuid(fx_t *fx, uint8_t u[SM_PROTO_UUID_SIZE])
{
    unsigned n = ++fx->next_uuid;
    for (unsigned i = 0; i < SM_PROTO_UUID_SIZE; i++)
        u[i] = (uint8_t)(0x11 * (i + 1) + n * 7);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

static void feed_raw(fx_t *fx, sm_handle_t h, const void *data, size_t len)
{
    /* session.c frees frames with free(), as the I/O thread allocates them. */
    sm_imsg_t *m = malloc(sizeof *m + len);
    assert_non_null(m);
    m->next = NULL;
    m->len = (uint32_t)len;
    if (len)
        memcpy(m->data, data, len);
    sm_sessions_on_frame(fx->ss, h, m);
}

/* A well-formed frame; payload NULL means payload type pt with no bytes. */
static void feed(fx_t *fx, sm_handle_t h, uint8_t type, const uint8_t *uuid, uint8_t pt,
                 const void *payload, size_t plen)
{
    size_t cap = SM_PROTO_HEADER_SIZE + plen;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = 0;
    assert_int_equal(sm_frame_encode(buf, cap, type, uuid, pt, payload, plen, &n), SM_PROTO_OK);
    feed_raw(fx, h, buf, n);
    free(buf);
}

__attribute__((format(printf, 5, 6))) static void feedj(fx_t *fx, sm_handle_t h, uint8_t type,
                                                        const uint8_t *uuid, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    feed(fx, h, type, uuid, SM_PAYLOAD_JSON, buf, (size_t)n);
}

static void feed_connect(fx_t *fx, sm_handle_t h, const uint8_t *uuid, const char *cid,
                         const char *tok)
{
    feedj(fx, h, SM_MSG_CONNECT, uuid,
          "{\"client_id\":\"%s\",\"auth_token\":\"%s\",\"version\":\"1.0.0\"}", cid, tok);
}

static void feed_register(fx_t *fx, sm_handle_t h, const uint8_t *uuid, const char *cid,
                          const char *tok)
{
    feedj(fx, h, SM_MSG_REGISTER, uuid,
          "{\"version\":\"1.0.0\",\"client_id\":\"%s\",\"auth_token\":\"%s\"}", cid, tok);
}

static void feed_unregister(fx_t *fx, sm_handle_t h, const uint8_t *uuid, const char *cid,
                            const char *tok)
{
    feedj(fx, h, SM_MSG_UNREGISTER, uuid,
          "{\"version\":\"1.0.0\",\"client_id\":\"%s\",\"auth_token\":\"%s\"}", cid, tok);
}

static void feed_ping(fx_t *fx, sm_handle_t h, const uint8_t *uuid)
{
    feedj(fx, h, SM_MSG_PING, uuid, "{\"timestamp\":%d}", 1234);
}

/* A frame whose length field is wrong (frame-level error, uuid readable). */
static void feed_bad(fx_t *fx, sm_handle_t h, const uint8_t *uuid)
{
    uint8_t buf[SM_PROTO_HEADER_SIZE + 2];
    size_t n = 0;
    assert_int_equal(
        sm_frame_encode(buf, sizeof buf, SM_MSG_PING, uuid, SM_PAYLOAD_JSON, "{}", 2, &n),
        SM_PROTO_OK);
    feed_raw(fx, h, buf, n - 1);
}

/* ---- Frames out ---- */

static sent_t *sent_at(fx_t *fx, size_t i)
{
    assert_true(i < fx->nsent);
    return &fx->sent[i];
}

static const char *jstr(const sent_t *s, const char *key)
{
    assert_non_null(s->json);
    json_t *v = json_object_get(s->json, key);
    if (!json_is_string(v))
        fail_msg("reply field %s is not a string", key);
    return json_string_value(v);
}

static json_int_t jint(const sent_t *s, const char *key)
{
    assert_non_null(s->json);
    json_t *v = json_object_get(s->json, key);
    if (!json_is_integer(v))
        fail_msg("reply field %s is not an integer", key);
    return json_integer_value(v);
}

static void assert_uuid_eq(const uint8_t *a, const uint8_t *b)
{
    assert_memory_equal(a, b, SM_PROTO_UUID_SIZE);
}

/* sent[i] is ERROR `code` to h echoing uuid (NULL: all-zero), flags 0;
 * returns its error_message. */
static const char *expect_error(fx_t *fx, size_t i, sm_handle_t h, int code, const uint8_t *uuid)
{
    static const uint8_t nil[SM_PROTO_UUID_SIZE];
    sent_t *s = sent_at(fx, i);
    assert_true(s->has_frame);
    if (s->type != SM_MSG_ERROR)
        fail_msg("sent[%zu]: expected ERROR %d, got %s", i, code, sm_msg_type_name(s->type));
    assert_true(s->conn == h);
    assert_int_equal(s->flags, 0);
    assert_int_equal(s->payload_type, SM_PAYLOAD_JSON);
    assert_uuid_eq(s->uuid, uuid ? uuid : nil);
    json_int_t got = jint(s, "error_code");
    if (got != code)
        fail_msg("sent[%zu]: expected ERROR %d, got %lld (%s)", i, code, (long long)got,
                 jstr(s, "error_message"));
    json_t *d = json_object_get(s->json, "details");
    assert_true(json_is_object(d));
    assert_true(json_is_integer(json_object_get(d, "timestamp")));
    return jstr(s, "error_message");
}

/* The last reply is ERROR code echoing uuid, and it is the only new one. */
static const char *expect_only_error(fx_t *fx, size_t before, sm_handle_t h, int code,
                                     const uint8_t *uuid)
{
    assert_int_equal(fx->nsent, before + 1);
    return expect_error(fx, before, h, code, uuid);
}

static void expect_msg(fx_t *fx, size_t i, sm_handle_t h, uint8_t type, const uint8_t *uuid)
{
    sent_t *s = sent_at(fx, i);
    assert_true(s->has_frame);
    if (s->type != type)
        fail_msg("sent[%zu]: expected %s, got %s", i, sm_msg_type_name(type),
                 sm_msg_type_name(s->type));
    assert_true(s->conn == h);
    assert_int_equal(s->payload_type, SM_PAYLOAD_JSON);
    if (uuid)
        assert_uuid_eq(s->uuid, uuid);
}

/* A 400 whose details name `field` and whose message starts with it. */
static void expect_400_field(fx_t *fx, size_t i, sm_handle_t h, const uint8_t *uuid,
                             const char *field)
{
    const char *msg = expect_error(fx, i, h, 400, uuid);
    if (strstr(msg, field) == NULL)
        fail_msg("error_message \"%s\" does not name %s", msg, field);
    json_t *d = json_object_get(sent_at(fx, i)->json, "details");
    assert_string_equal(json_string_value(json_object_get(d, "field")), field);
}

/* sent[i] is a server DISCONNECT notice with close `code` (SM_OUTF_CLOSE). */
static void expect_notice(fx_t *fx, size_t i, sm_handle_t h, int code, const uint8_t *req_uuid)
{
    static const uint8_t nil[SM_PROTO_UUID_SIZE];
    sent_t *s = sent_at(fx, i);
    expect_msg(fx, i, h, SM_MSG_DISCONNECT, NULL);
    assert_int_equal(s->flags, SM_OUTF_CLOSE);
    assert_int_equal(s->arg, (uint32_t)code);
    assert_int_equal(jint(s, "code"), code);
    assert_true(strlen(jstr(s, "reason")) > 0);
    assert_true(json_is_boolean(json_object_get(s->json, "reconnect")));
    /* Server-originated: a fresh uuid, not the request's. */
    assert_memory_not_equal(s->uuid, nil, SM_PROTO_UUID_SIZE);
    if (req_uuid)
        assert_memory_not_equal(s->uuid, req_uuid, SM_PROTO_UUID_SIZE);
}

/* sent[i] is a bare close request with code (no frame). */
static void expect_close(fx_t *fx, size_t i, sm_handle_t h, uint32_t code)
{
    sent_t *s = sent_at(fx, i);
    assert_false(s->has_frame);
    assert_true(s->conn == h);
    assert_int_equal(s->flags, SM_OUTF_CLOSE);
    assert_int_equal(s->arg, code);
}

/* No reply in sent[from..] closes the connection. */
static void expect_no_close(fx_t *fx, size_t from)
{
    for (size_t i = from; i < fx->nsent; i++)
        if (fx->sent[i].flags & SM_OUTF_CLOSE)
            fail_msg("sent[%zu] closes the connection", i);
}

/* ---- Protocol helpers ---- */

/* Fill u with a fresh request uuid; returns fx->nsent, the index its first
 * reply will take. */
static size_t new_request(fx_t *fx, uint8_t u[SM_PROTO_UUID_SIZE])
{
    mkuuid(fx, u);
    return fx->nsent;
}

/* The last reply is a 400 naming field (expect_400_field), and the only new one. */
static void expect_only_400_field(fx_t *fx, size_t before, sm_handle_t h, const uint8_t *uuid,
                                  const char *field)
{
    assert_int_equal(fx->nsent, before + 1);
    expect_400_field(fx, before, h, uuid, field);
}

/* One request with a fresh uuid (left in u) on h, whose only reply is ERROR
 * code echoing it; they return its error_message. */
static const char *connect_error(fx_t *fx, uint8_t *u, sm_handle_t h, const char *cid,
                                 const char *tok, int code)
{
    size_t before = new_request(fx, u);
    feed_connect(fx, h, u, cid, tok);
    return expect_only_error(fx, before, h, code, u);
}

static const char *register_error(fx_t *fx, uint8_t *u, sm_handle_t h, const char *cid,
                                  const char *tok, int code)
{
    size_t before = new_request(fx, u);
    feed_register(fx, h, u, cid, tok);
    return expect_only_error(fx, before, h, code, u);
}

static const char *unregister_error(fx_t *fx, uint8_t *u, sm_handle_t h, const char *cid,
                                    const char *tok, int code)
{
    size_t before = new_request(fx, u);
    feed_unregister(fx, h, u, cid, tok);
    return expect_only_error(fx, before, h, code, u);
}

static const char *ping_error(fx_t *fx, uint8_t *u, sm_handle_t h, int code)
{
    size_t before = new_request(fx, u);
    feed_ping(fx, h, u);
    return expect_only_error(fx, before, h, code, u);
}

static const char *bad_error(fx_t *fx, uint8_t *u, sm_handle_t h, int code)
{
    size_t before = new_request(fx, u);
    feed_bad(fx, h, u);
    return expect_only_error(fx, before, h, code, u);
}

/* CONNECT on h; returns the CONNECT_ACK's session_id (valid until teardown). */
static const char *do_connect(fx_t *fx, sm_handle_t h, const char *cid, const char *tok)
{
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_connect(fx, h, u, cid, tok);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, h, SM_MSG_CONNECT_ACK, u);
    assert_int_equal(jint(sent_at(fx, before), "status"), 200);
    return jstr(sent_at(fx, before), "session_id");
}

/* REGISTER on h and let the store answer: REGISTER_ACK 200. */
static void do_register(fx_t *fx, sm_handle_t h, const char *cid, const char *tok)
{
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, h, u, cid, tok);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, h, SM_MSG_REGISTER_ACK, u);
    assert_int_equal(jint(sent_at(fx, before), "status"), 200);
}

/* Registry state of cid: -1 free, 0 PENDING, 1 REGISTERED. */
static int reg_state(fx_t *fx, const char *cid, sm_reg_holder_t *out)
{
    sm_reg_holder_t h;
    if (sm_registry_lookup(fx->srv.registry, cid, strlen(cid), &h) != 0)
        return -1;
    if (out)
        *out = h;
    return h.registered ? 1 : 0;
}

typedef struct {
    bool done;
    int status;
    char session_id[64];
    char instance_id[64];
} row_t;

static void on_row(int status, const sm_store_result_t *res, void *arg)
{
    row_t *r = arg;
    r->done = true;
    r->status = status;
    if (status == 0) {
        snprintf(r->session_id, sizeof r->session_id, "%s", res->registration->session_id);
        snprintf(r->instance_id, sizeof r->instance_id, "%s",
                 res->registration->instance_id ? res->registration->instance_id : "");
    }
}

static bool pred_row_done(fx_t *fx, const void *arg)
{
    (void)fx;
    return ((const row_t *)arg)->done;
}

/* The store row of cid: 0 with r filled, or SM_ENOTFOUND. */
static int store_row(fx_t *fx, const char *cid, row_t *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(sm_store_get_registration(fx->srv.store, cid, &fx->q, on_row, r), 0);
    assert_true(wait_until(fx, pred_row_done, r));
    return r->status;
}

static bool store_has(fx_t *fx, const char *cid)
{
    row_t r;
    int rc = store_row(fx, cid, &r);
    assert_true(rc == 0 || rc == SM_ENOTFOUND);
    return rc == 0;
}

/* ======================================================================== */
/* CONNECT                                                                   */

static void test_connect_ok(void **state)
{
    fx_t *fx = *state;
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed_connect(fx, H1, u, CID1, TOK1);
    assert_int_equal(fx->nsent, 1);
    sent_t *s = sent_at(fx, 0);
    expect_msg(fx, 0, H1, SM_MSG_CONNECT_ACK, u);
    /* This frame is the CONNECT_ACK: the I/O thread stops the connection
     * timeout and starts the heartbeat on it. */
    assert_int_equal(s->flags, SM_OUTF_CONNECTED);
    assert_int_equal(s->arg, 0);
    assert_int_equal(jint(s, "status"), 200);
    assert_string_equal(jstr(s, "message"), "Connection established");
    assert_string_equal(jstr(s, "server_version"), SM_PROTO_VERSION);
    assert_int_equal(jint(s, "heartbeat_interval"), (fx->cfg->heartbeat_interval + 999) / 1000);
    assert_int_equal(jint(s, "heartbeat_interval"), 30);
    const char *sid = jstr(s, "session_id");
    uint8_t raw[SM_PROTO_UUID_SIZE];
    assert_int_equal(strlen(sid), 36);
    assert_int_equal(sm_uuid_parse(sid, raw), 0);
    char lower[37];
    sm_uuid_format(raw, lower);
    assert_string_equal(sid, lower);  /* lowercase 8-4-4-4-12 */
    assert_int_equal(raw[6] >> 4, 4); /* v4 */
    json_t *caps = json_object_get(s->json, "capabilities");
    assert_true(json_is_array(caps));
    assert_int_equal(json_array_size(caps), 3);
    assert_string_equal(json_string_value(json_array_get(caps, 0)), "websocket");
    assert_string_equal(json_string_value(json_array_get(caps, 1)), "heartbeat");
    assert_string_equal(json_string_value(json_array_get(caps, 2)), "webrtc");
    /* Resume (DECISIONS §3): an opaque token, and this is a fresh session. */
    const char *tok = jstr(s, "resume_token");
    assert_int_equal(strlen(tok), 32);
    assert_int_equal(strspn(tok, "0123456789abcdef"), 32);
    assert_true(json_is_false(json_object_get(s->json, "resumed")));
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    assert_int_equal(sm_count_read(&fx->ctr.msgs_in[SM_MSG_IDX_CONNECT]), 1);
    assert_int_equal(sm_count_read(&fx->ctr.msgs_out[SM_MSG_IDX_CONNECT_ACK]), 1);
    /* CONNECT alone does not register anything. */
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->ops, 0);
}

static void test_connect_sessions_distinct(void **state)
{
    fx_t *fx = *state;
    const char *a = do_connect(fx, H1, CID1, TOK1);
    const char *b = do_connect(fx, H2, CID1, TOK1); /* same client, two connections */
    const char *c = do_connect(fx, H3, CID2, TOK2);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(b, c);
    assert_int_equal(sm_sessions_count(fx->ss), 3);
}

static void test_connect_bad_credentials_401(void **state)
{
    fx_t *fx = *state;
    static const struct {
        const char *cid, *tok;
    } bad[] = {
        {CID1, "wrong"},         /* bad token */
        {CID1, TOK2},            /* another client's token */
        {"test_client_3", TOK1}, /* unknown client */
        {CID1, ""},              /* empty token */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        connect_error(fx, u, H1, bad[i].cid, bad[i].tok, 401);
    }
    assert_int_equal(sm_count_read(&fx->ctr.errors[SM_ERRIDX_401]), 4);
    /* Still not authenticated... */
    uint8_t u[SM_PROTO_UUID_SIZE];
    ping_error(fx, u, H1, 401);
    /* ...and a good CONNECT still works. */
    do_connect(fx, H1, CID1, TOK1);
    expect_no_close(fx, 0);
}

static void test_connect_missing_field_400(void **state)
{
    fx_t *fx = *state;
    static const struct {
        const char *json, *field;
    } cases[] = {
        {"{\"auth_token\":\"" TOK1 "\",\"version\":\"1.0.0\"}", "client_id"},
        {"{\"client_id\":\"" CID1 "\",\"version\":\"1.0.0\"}", "auth_token"},
        {"{\"client_id\":\"" CID1 "\",\"auth_token\":\"" TOK1 "\"}", "version"},
        {"{\"client_id\":42,\"auth_token\":\"" TOK1 "\",\"version\":\"1.0.0\"}", "client_id"},
        {"{\"client_id\":\"bad id!\",\"auth_token\":\"" TOK1 "\",\"version\":\"1.0.0\"}",
         "client_id"},
        {"{\"client_id\":\"" CID1 "\",\"auth_token\":null,\"version\":\"1.0.0\"}", "auth_token"},
        {"{\"client_id\":\"" CID1 "\",\"auth_token\":\"" TOK1 "\",\"version\":100}", "version"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feedj(fx, H1, SM_MSG_CONNECT, u, "%s", cases[i].json);
        expect_only_400_field(fx, before, H1, u, cases[i].field);
    }
    expect_no_close(fx, 0);
    do_connect(fx, H1, CID1, TOK1);
}

static void test_connect_version(void **state)
{
    fx_t *fx = *state;
    static const char *const bad[] = {"1.0.1", "1.1.0",     "2.0.0",  "10.0.0",
                                      "1.0",   "1.0.0-rc1", "v1.0.0", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feedj(fx, H1, SM_MSG_CONNECT, u,
              "{\"client_id\":\"" CID1 "\",\"auth_token\":\"" TOK1 "\",\"version\":\"%s\"}",
              bad[i]);
        expect_only_400_field(fx, before, H1, u, "version");
    }
    /* Older and equal versions are accepted (compared numerically). */
    static const char *const good[] = {"0.9.12", "0.10.0", "1.0.0"};
    sm_handle_t hs[] = {H1, H2, H3};
    for (size_t i = 0; i < 3; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feedj(fx, hs[i], SM_MSG_CONNECT, u,
              "{\"client_id\":\"" CID1 "\",\"auth_token\":\"" TOK1 "\",\"version\":\"%s\"}",
              good[i]);
        assert_int_equal(fx->nsent, before + 1);
        expect_msg(fx, before, hs[i], SM_MSG_CONNECT_ACK, u);
    }
}

/* AWAITING_CONNECT: anything but CONNECT/DISCONNECT -> 401, and 401s are not
 * malformed frames (they do not count towards max_bad_frames). */
static void test_before_connect_401(void **state)
{
    fx_t *fx = *state;
    static const struct {
        uint8_t type, pt;
        const char *payload;
    } cases[] = {
        {SM_MSG_PING, SM_PAYLOAD_JSON, "{\"timestamp\":1}"},
        {SM_MSG_REGISTER, SM_PAYLOAD_JSON,
         "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"auth_token\":\"" TOK1 "\"}"},
        {SM_MSG_UNREGISTER, SM_PAYLOAD_JSON,
         "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"auth_token\":\"" TOK1 "\"}"},
        {SM_MSG_ROOM_CREATE, SM_PAYLOAD_JSON,
         "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}"},
        {SM_MSG_ROOM_JOIN, SM_PAYLOAD_JSON,
         "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}"},
        {SM_MSG_ROOM_LEAVE, SM_PAYLOAD_JSON,
         "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}"},
        {SM_MSG_SIGNAL, SM_PAYLOAD_JSON,
         "{\"target_client_id\":\"" CID2 "\",\"type\":\"offer\",\"data\":{}}"},
        {SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, "\x0dtest_client_2xyz"},
        {SM_MSG_SESSION_UPDATE, SM_PAYLOAD_JSON,
         "{\"session_id\":\"s1\",\"action\":\"answer\",\"answer_sdp\":\"v=0\"}"},
        /* Step 2 comes before step 3: an invalid payload is still 401. */
        {SM_MSG_PING, SM_PAYLOAD_JSON, "{not json"},
        {SM_MSG_REGISTER, SM_PAYLOAD_JSON, "{}"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    unsigned rounds = (unsigned)fx->cfg->limits_max_bad_frames / (unsigned)n + 2;
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            uint8_t u[SM_PROTO_UUID_SIZE];
            size_t before = new_request(fx, u);
            feed(fx, H1, cases[i].type, u, cases[i].pt, cases[i].payload, strlen(cases[i].payload));
            const char *msg = expect_only_error(fx, before, H1, 401, u);
            assert_non_null(strstr(msg, "not authenticated"));
        }
    }
    /* More 401s than max_bad_frames, and the connection stays open. */
    assert_true(fx->nsent > (size_t)fx->cfg->limits_max_bad_frames);
    expect_no_close(fx, 0);
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->ops, 0);
    do_connect(fx, H1, CID1, TOK1);
}

static void test_connect_again(void **state)
{
    fx_t *fx = *state;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];

    /* Same credentials: 409. */
    const char *msg = connect_error(fx, u, H1, CID1, TOK1, 409);
    assert_non_null(strstr(msg, "already connected"));

    /* Another client's valid credentials: still "CONNECT again" -> 409. */
    connect_error(fx, u, H1, CID2, TOK2, 409);

    /* Check order: auth (5) before state (6) -> 401; payload (3) -> 400. */
    connect_error(fx, u, H1, CID1, "wrong", 401);
    size_t before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_CONNECT, u, "{\"client_id\":\"%s\",\"version\":\"1.0.0\"}", CID1);
    expect_only_400_field(fx, before, H1, u, "auth_token");

    /* The session is unchanged: it registers with its first session_id. */
    do_register(fx, H1, CID1, TOK1);
    assert_string_equal(jstr(sent_at(fx, fx->nsent - 1), "session_id"), sid);
    assert_string_equal(jstr(sent_at(fx, fx->nsent - 1), "client_id"), CID1);

    /* Also once registered. */
    connect_error(fx, u, H1, CID1, TOK1, 409);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    expect_no_close(fx, 0);
}

/* ======================================================================== */
/* PING                                                                      */

static void test_ping(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];

    size_t before = new_request(fx, u);
    int64_t t0 = sm_clock_wall_ms();
    feedj(fx, H1, SM_MSG_PING, u, "{\"timestamp\":%lld}", 1700000000123LL);
    int64_t t1 = sm_clock_wall_ms();
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, H1, SM_MSG_PING_ACK, u);
    sent_t *s = sent_at(fx, before);
    assert_int_equal(s->flags, 0);
    assert_int_equal(jint(s, "timestamp"), 1700000000123LL);
    assert_true(jint(s, "server_time") >= t0 && jint(s, "server_time") <= t1);

    /* A real timestamp is echoed as a real. */
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_PING, u, "{\"timestamp\":12.5,\"extra\":true}");
    expect_msg(fx, before, H1, SM_MSG_PING_ACK, u);
    json_t *ts = json_object_get(sent_at(fx, before)->json, "timestamp");
    assert_true(json_is_real(ts));
    assert_true(json_real_value(ts) == 12.5);

    /* Missing or mistyped timestamp: 400 naming it. */
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_PING, u, "{}");
    expect_only_400_field(fx, before, H1, u, "timestamp");
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_PING, u, "{\"timestamp\":\"now\"}");
    expect_only_400_field(fx, before, H1, u, "timestamp");
    expect_no_close(fx, 0);
}

/* ======================================================================== */
/* REGISTER / UNREGISTER                                                     */

static void test_register_ok(void **state)
{
    fx_t *fx = *state;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_REGISTER, u,
          "{\"version\":\"1.0.0\",\"client_id\":\"%s\",\"auth_token\":\"%s\",\"room_id\":null,"
          "\"capabilities\":[\"video\"],\"metadata\":{\"k\":1}}",
          CID1, TOK1);
    /* Nothing before the store answered; the claim is PENDING meanwhile. */
    assert_int_equal(fx->nsent, before);
    assert_int_equal(fx->ops, 1);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 0);
    assert_int_equal(sm_registry_count(fx->srv.registry), 0);

    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, H1, SM_MSG_REGISTER_ACK, u);
    sent_t *s = sent_at(fx, before);
    assert_int_equal(s->flags, 0);
    assert_string_equal(jstr(s, "version"), SM_PROTO_VERSION);
    assert_int_equal(jint(s, "status"), 200);
    assert_string_equal(jstr(s, "message"), "Registration successful");
    assert_string_equal(jstr(s, "client_id"), CID1);
    assert_string_equal(jstr(s, "session_id"), sid);
    assert_int_equal(fx->ops, 0);

    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H1);
    assert_int_equal(h.worker, WORKER_INDEX);
    assert_true(h.serial != 0);
    assert_int_equal(sm_registry_count(fx->srv.registry), 1);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid);
    assert_string_equal(r.instance_id, fx->srv.instance_id);
    assert_int_equal(sm_count_read(&fx->ctr.msgs_out[SM_MSG_IDX_REGISTER_ACK]), 1);
}

/* Frames sent while the store works are answered after it, in order. */
static void test_register_frames_wait_in_order(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[6][SM_PROTO_UUID_SIZE];
    for (int i = 0; i < 6; i++)
        mkuuid(fx, u[i]);
    size_t before = fx->nsent;
    feed_register(fx, H1, u[0], CID1, TOK1);
    feed_ping(fx, H1, u[1]);
    feed_bad(fx, H1, u[2]);
    feed_register(fx, H1, u[3], CID1, TOK1); /* already registered by then: 409 */
    feed_unregister(fx, H1, u[4], CID1, TOK1);
    feed_ping(fx, H1, u[5]);
    assert_int_equal(fx->nsent, before);
    /* Another session is not held up meanwhile. */
    do_connect(fx, H2, CID2, TOK2);
    before = fx->nsent;

    drain(fx);
    assert_int_equal(fx->nsent, before + 6);
    expect_msg(fx, before + 0, H1, SM_MSG_REGISTER_ACK, u[0]);
    expect_msg(fx, before + 1, H1, SM_MSG_PING_ACK, u[1]);
    expect_error(fx, before + 2, H1, 400, u[2]);
    expect_error(fx, before + 3, H1, 409, u[3]);
    expect_msg(fx, before + 4, H1, SM_MSG_UNREGISTER_ACK, u[4]);
    expect_msg(fx, before + 5, H1, SM_MSG_PING_ACK, u[5]);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

static void test_register_twice_409(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    expect_only_error(fx, before, H1, 409, u);
    assert_int_equal(fx->ops, 0); /* no store call */
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    assert_true(store_has(fx, CID1));
}

/* client_id held by another live session: 409 while it is PENDING and once
 * it is REGISTERED; free again after that session disconnects. */
static void test_register_held_by_other_session_409(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID1, TOK1);
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed_register(fx, H2, u2, CID1, TOK1); /* H1's claim is PENDING */
    expect_only_error(fx, before, H2, 409, u2);
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_msg(fx, before + 1, H1, SM_MSG_REGISTER_ACK, u1);

    register_error(fx, u2, H2, CID1, TOK1, 409);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H1);

    /* H1 leaves cleanly: the id is released and H2 can take it. */
    mkuuid(fx, u1);
    feed(fx, H1, SM_MSG_DISCONNECT, u1, SM_PAYLOAD_NONE, NULL, 0);
    drain(fx);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    do_register(fx, H2, CID1, TOK1);
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H2);
}

/* A holder on another worker (only visible through the registry). */
static void test_register_held_elsewhere_409(void **state)
{
    fx_t *fx = *state;
    sm_reg_holder_t other = {.serial = 0xabcdef, .conn = H3, .worker = 7};
    assert_int_equal(sm_registry_claim(fx->srv.registry, CID1, &other, NULL), 0);
    assert_int_equal(sm_registry_commit(fx->srv.registry, CID1, other.serial), 0);
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    expect_only_error(fx, before, H1, 409, u);
    assert_int_equal(fx->ops, 0);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    assert_false(store_has(fx, CID1));
    /* The other holder is untouched, also when this session ends. */
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_int_equal(h.serial, other.serial);
    assert_int_equal(sm_registry_release(fx->srv.registry, CID1, other.serial), 0);
}

/* Steps 3, 4, 5 in that order for REGISTER. */
static void test_register_identity_checks(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before;

    /* 4: another client's id (with that client's valid token): 403. */
    register_error(fx, u, H1, CID2, TOK2, 403);
    /* 4 before 5: another id and a bad token: 403. */
    register_error(fx, u, H1, CID2, "wrong", 403);
    /* 3 before 4: a missing field with another id: 400. */
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_REGISTER, u, "{\"client_id\":\"%s\",\"auth_token\":\"%s\"}", CID2, TOK2);
    expect_only_400_field(fx, before, H1, u, "version");
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_REGISTER, u,
          "{\"version\":\"2.0.0\",\"client_id\":\"%s\",\"auth_token\":\"x\"}", CID2);
    expect_only_400_field(fx, before, H1, u, "version");
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_REGISTER, u, "{\"version\":\"1.0.0\",\"client_id\":\"%s\"}", CID1);
    expect_only_400_field(fx, before, H1, u, "auth_token");
    /* 5: own id, bad token: 401. */
    const char *msg = register_error(fx, u, H1, CID1, "wrong", 401);
    assert_non_null(strstr(msg, "auth_token"));
    register_error(fx, u, H1, CID1, TOK2, 401);

    assert_int_equal(fx->ops, 0);
    drain(fx);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(reg_state(fx, CID2, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_false(store_has(fx, CID2));

    /* 5 before 6: registered, REGISTER with a bad token -> 401, not 409. */
    do_register(fx, H1, CID1, TOK1);
    register_error(fx, u, H1, CID1, "wrong", 401);
    /* 4 before 6: registered, another id -> 403, not 409. */
    register_error(fx, u, H1, CID2, TOK2, 403);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    expect_no_close(fx, 0);
}

static void test_unregister_not_registered_404(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    const char *msg = unregister_error(fx, u, H1, CID1, TOK1, 404);
    assert_non_null(strstr(msg, "not registered"));
    assert_int_equal(fx->ops, 0);
    /* Checks 4 and 5 come before the state rule. */
    unregister_error(fx, u, H1, CID2, TOK2, 403);
    unregister_error(fx, u, H1, CID1, "wrong", 401);
    size_t before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_UNREGISTER, u, "{\"version\":\"1.0.0\",\"auth_token\":\"%s\"}", TOK1);
    expect_only_400_field(fx, before, H1, u, "client_id");
}

static void test_unregister_ok(void **state)
{
    fx_t *fx = *state;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    assert_true(store_has(fx, CID1));
    uint8_t u[SM_PROTO_UUID_SIZE];

    /* Registered: 403/401 checks still apply to UNREGISTER. */
    unregister_error(fx, u, H1, CID2, TOK2, 403);
    unregister_error(fx, u, H1, CID1, "wrong", 401);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);

    size_t before = new_request(fx, u);
    feed_unregister(fx, H1, u, CID1, TOK1);
    assert_int_equal(fx->nsent, before); /* after the store only */
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, H1, SM_MSG_UNREGISTER_ACK, u);
    sent_t *s = sent_at(fx, before);
    assert_int_equal(s->flags, 0);
    assert_string_equal(jstr(s, "version"), SM_PROTO_VERSION);
    assert_int_equal(jint(s, "status"), 200);
    assert_string_equal(jstr(s, "message"), "Unregistration successful");
    assert_string_equal(jstr(s, "client_id"), CID1);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(sm_registry_count(fx->srv.registry), 0);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);

    /* Back to CONNECTED: UNREGISTER 404, ROOM_* 401, REGISTER works again. */
    unregister_error(fx, u, H1, CID1, TOK1, 404);
    before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_ROOM_JOIN, u,
          "{\"version\":\"1.0.0\",\"client_id\":\"%s\",\"room_id\":\"r1\"}", CID1);
    expect_only_error(fx, before, H1, 401, u);
    do_register(fx, H1, CID1, TOK1);
    assert_string_equal(jstr(sent_at(fx, fx->nsent - 1), "session_id"), sid);
    assert_true(store_has(fx, CID1));
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    expect_no_close(fx, 0);
}

/* ======================================================================== */
/* ROOM_* / SIGNAL before REGISTER                                           */

static const struct {
    uint8_t type, pt;
    const char *payload;
} room_msgs[] = {
    {SM_MSG_ROOM_CREATE, SM_PAYLOAD_JSON,
     "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}"},
    {SM_MSG_ROOM_JOIN, SM_PAYLOAD_JSON,
     "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}"},
    {SM_MSG_ROOM_LEAVE, SM_PAYLOAD_JSON,
     "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}"},
    {SM_MSG_SIGNAL, SM_PAYLOAD_JSON,
     "{\"target_client_id\":\"" CID2 "\",\"type\":\"offer\",\"data\":{\"sdp\":\"v=0\"}}"},
    {SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, "\x0dtest_client_2\x01\x02"},
};

static void test_rooms_signal_when_connected_401(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    for (size_t i = 0; i < sizeof room_msgs / sizeof room_msgs[0]; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feed(fx, H1, room_msgs[i].type, u, room_msgs[i].pt, room_msgs[i].payload,
             strlen(room_msgs[i].payload));
        const char *msg = expect_only_error(fx, before, H1, 401, u);
        if (strstr(msg, "not registered") == NULL)
            fail_msg("%s: \"%s\" should say \"client not registered\"",
                     sm_msg_type_name(room_msgs[i].type), msg);
    }
    assert_int_equal(fx->ops, 0);
    expect_no_close(fx, 0);
}

/* Check order (session.c, top): payload checks (3) come before the state
 * rule (6), so an invalid ROOM_* or SIGNAL payload is 400 in any state. */
static void test_rooms_signal_invalid_payload_400_before_401(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    static const struct {
        uint8_t type;
        const char *payload, *field;
    } cases[] = {
        {SM_MSG_ROOM_JOIN, "{\"version\":\"1.0.0\",\"client_id\":\"" CID1 "\"}", "room_id"},
        {SM_MSG_ROOM_LEAVE, "{\"client_id\":\"" CID1 "\",\"room_id\":\"r1\"}", "version"},
        {SM_MSG_ROOM_CREATE, "{\"version\":\"9.0.0\",\"client_id\":\"" CID1 "\"}", "version"},
        {SM_MSG_SIGNAL, "{\"type\":\"offer\",\"data\":{}}", "target_client_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feed(fx, H1, cases[i].type, u, SM_PAYLOAD_JSON, cases[i].payload, strlen(cases[i].payload));
        expect_only_400_field(fx, before, H1, u, cases[i].field);
    }
}

/* DECISIONS §3: ROOM_* whose client_id differs from the CONNECT's -> 403 in
 * any state; check order: 4 (403) before 6 (401 "client not registered"). */
static void test_rooms_client_mismatch_403_before_401(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    static const uint8_t types[] = {SM_MSG_ROOM_CREATE, SM_MSG_ROOM_JOIN, SM_MSG_ROOM_LEAVE};
    for (size_t i = 0; i < sizeof types; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feedj(fx, H1, types[i], u,
              "{\"version\":\"1.0.0\",\"client_id\":\"%s\",\"room_id\":\"r1\"}", CID2);
        expect_only_error(fx, before, H1, 403, u);
    }
}

/* ======================================================================== */
/* DISCONNECT and connection loss                                            */

static void test_disconnect_before_connect(void **state)
{
    fx_t *fx = *state;
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed(fx, H1, SM_MSG_DISCONNECT, u, SM_PAYLOAD_NONE, NULL, 0);
    /* No ACK: only the close request, code 1000. */
    assert_int_equal(fx->nsent, 1);
    expect_close(fx, 0, H1, 1000);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->ops, 0);
    /* The connection's end, reported afterwards, is harmless. */
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(fx->nsent, 1);
}

static void test_disconnect_connected(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID2, TOK2);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_DISCONNECT, u, "{\"reason\":\"bye\"}");
    assert_int_equal(fx->nsent, before + 1);
    expect_close(fx, before, H1, 1000);
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    /* A DISCONNECT whose payload is invalid is a malformed frame (step 3). */
    before = new_request(fx, u);
    feedj(fx, H2, SM_MSG_DISCONNECT, u, "{\"reason\":5}");
    expect_only_400_field(fx, before, H2, u, "reason");
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    before = new_request(fx, u);
    feed(fx, H2, SM_MSG_DISCONNECT, u, SM_PAYLOAD_NONE, NULL, 0);
    assert_int_equal(fx->nsent, before + 1);
    expect_close(fx, before, H2, 1000);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
}

static void test_disconnect_registered_releases(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed(fx, H1, SM_MSG_DISCONNECT, u, SM_PAYLOAD_NONE, NULL, 0);
    assert_int_equal(fx->nsent, before + 1);
    expect_close(fx, before, H1, 1000);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1); /* nothing after the close */
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(sm_registry_count(fx->srv.registry), 0);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
}

/* DISCONNECT queued behind a REGISTER: ACK first, then the close, then the
 * registration is released. */
static void test_disconnect_while_register_in_flight(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE], u3[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    mkuuid(fx, u2);
    size_t before = new_request(fx, u3);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed(fx, H1, SM_MSG_DISCONNECT, u2, SM_PAYLOAD_NONE, NULL, 0);
    feed_ping(fx, H1, u3); /* after DISCONNECT: never answered */
    assert_int_equal(fx->nsent, before);
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_msg(fx, before, H1, SM_MSG_REGISTER_ACK, u1);
    expect_close(fx, before + 1, H1, 1000);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->ops, 0);
}

static void test_closed_while_registered_releases(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID2, TOK2);
    do_register(fx, H2, CID2, TOK2);
    size_t before = fx->nsent;
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    drain(fx);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    /* The other session is untouched. */
    assert_int_equal(reg_state(fx, CID2, NULL), 1);
    assert_true(store_has(fx, CID2));
    assert_int_equal(fx->ops, 0);
    /* The id is free for a new connection. */
    do_connect(fx, H3, CID1, TOK1);
    do_register(fx, H3, CID1, TOK1);
    /* An unknown handle is ignored. */
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(sm_sessions_count(fx->ss), 2);
}

static void test_closed_unregistered_sessions(void **state)
{
    fx_t *fx = *state;
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed_ping(fx, H1, u); /* AWAITING session */
    do_connect(fx, H2, CID1, TOK1);
    assert_int_equal(sm_sessions_count(fx->ss), 2);
    size_t before = fx->nsent;
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    sm_sessions_on_closed(fx->ss, H2, SM_CLOSE_CLEAN);
    sm_sessions_on_closed(fx->ss, H3, SM_CLOSE_CLEAN); /* never seen */
    drain(fx);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(fx->ops, 0);
}

/* The connection goes while REGISTER waits for the store: after the store
 * answers, the row is deleted again and nothing stays registered. */
static void test_closed_while_register_in_flight(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    feed_ping(fx, H1, u);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    drain(fx);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(sm_registry_count(fx->srv.registry), 0);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

static void test_closed_while_unregister_in_flight(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_unregister(fx, H1, u, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

/* Worker stop: sm_sessions_free releases what is still registered. */
static void test_sessions_free_releases(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID2, TOK2);
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed_ping(fx, H3, u);
    sm_sessions_free(fx->ss);
    fx->ss = NULL;
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->ops, 0);
}

/* ======================================================================== */
/* Store failures (fake backend)                                             */

static void test_register_store_unavailable_503(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_FAIL;
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed_ping(fx, H1, u2);
    assert_int_equal(fx->nsent, before);
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_error(fx, before, H1, 503, u1);
    expect_msg(fx, before + 1, H1, SM_MSG_PING_ACK, u2);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
    /* Not registered: UNREGISTER is 404, ROOM_* 401. */
    unregister_error(fx, u1, H1, CID1, TOK1, 404);
    /* A retry succeeds once the store is back. */
    fx->fake->put_mode = FK_PASS;
    do_register(fx, H1, CID1, TOK1);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    assert_true(store_has(fx, CID1));
    expect_no_close(fx, 0);
}

static void test_register_store_conflict_409(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_CONFLICT;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    drain(fx);
    expect_only_error(fx, before, H1, 409, u);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->ops, 0);
    fx->fake->put_mode = FK_PASS;
    do_register(fx, H1, CID1, TOK1);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
}

static void test_unregister_store_unavailable_503(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    fx->fake->del_mode = FK_FAIL;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_unregister(fx, H1, u, CID1, TOK1);
    drain(fx);
    expect_only_error(fx, before, H1, 503, u);
    /* Nothing half-done: still registered, row still there. */
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    assert_true(store_has(fx, CID1));
    fx->fake->del_mode = FK_PASS;
    before = new_request(fx, u);
    feed_unregister(fx, H1, u, CID1, TOK1);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, H1, SM_MSG_UNREGISTER_ACK, u);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

/* The release delete fails: the registry entry goes anyway (the session is
 * gone; the row is the store's to clean up). */
static void test_release_store_failure(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    fx->fake->del_mode = FK_FAIL;
    unsigned dels = fx->fake->dels;
    size_t before = fx->nsent;
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(fx->fake->dels, dels + 1);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->ops, 0);
    /* The row stayed behind; a new connection can still register the id
     * (the stale row of this instance is replaced). */
    assert_true(store_has(fx, CID1));
    fx->fake->del_mode = FK_PASS;
    const char *sid = do_connect(fx, H2, CID1, TOK1);
    do_register(fx, H2, CID1, TOK1);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    assert_int_equal(fx->ops, 0);
}

/* ---- Rows already in the store ---- */

static bool put_done;

static void on_put(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    *(int *)arg = status;
    put_done = true;
}

static bool pred_put_done(fx_t *fx, const void *arg)
{
    (void)fx;
    (void)arg;
    return put_done;
}

/* Insert a row directly (as another session or instance would have). */
static void store_put(fx_t *fx, const char *cid, const char *sid, const char *instance)
{
    sm_registration_t reg = {
        .client_id = (char *)cid, .session_id = (char *)sid, .instance_id = (char *)instance};
    int status = -1;
    put_done = false;
    assert_int_equal(sm_store_put_registration(fx->srv.store, &reg, &fx->q, on_put, &status), 0);
    assert_true(wait_until(fx, pred_put_done, NULL));
    assert_int_equal(status, 0);
}

/* A row this instance left behind (failed delete, late insert) while no
 * session holds the id: REGISTER replaces it. */
static void test_register_replaces_stale_row(void **state)
{
    fx_t *fx = *state;
    store_put(fx, CID1, "0bad0bad-0000-4000-8000-000000000000", fx->srv.instance_id);
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    assert_int_equal(fx->ops, 0);
}

/* A row of another instance (or of none): the id is taken -> 409, the row
 * is left alone. */
static void test_register_row_of_other_instance_409(void **state)
{
    fx_t *fx = *state;
    store_put(fx, CID1, "other-session-1", "other-instance:8080");
    store_put(fx, CID2, "other-session-2", NULL);
    do_connect(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID2, TOK2);
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed_register(fx, H2, u2, CID2, TOK2);
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_error(fx, before, H1, 409, u1);
    expect_error(fx, before + 1, H2, 409, u2);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, "other-session-1");
    assert_int_equal(store_row(fx, CID2, &r), 0);
    assert_string_equal(r.session_id, "other-session-2");
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(reg_state(fx, CID2, NULL), -1);
    assert_int_equal(fx->ops, 0);
}

/* Removing the stale row fails: 503, nothing registered, row kept. */
static void test_register_stale_row_delete_fails_503(void **state)
{
    fx_t *fx = *state;
    store_put(fx, CID1, "stale-session", fx->srv.instance_id);
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->del_mode = FK_FAIL;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    drain(fx);
    expect_only_error(fx, before, H1, 503, u);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, "stale-session");
    assert_int_equal(fx->ops, 0);
}

/* The registration timeout fires while the stale row is being removed: 408,
 * and the operation stops there (no insert after the delete). */
static void test_register_timeout_during_stale_recovery(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    store_put(fx, CID1, "stale-session", fx->srv.instance_id);
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->del_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    unsigned puts = fx->fake->puts;
    feed_register(fx, H1, u, CID1, TOK1);
    assert_true(wait_until(fx, pred_error_408, NULL));
    expect_only_error(fx, before, H1, 408, u);
    assert_int_equal(fx->fake->nheld, 1); /* the stale row's delete */
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_int_equal(fx->fake->puts, puts + 1); /* no second insert */
    assert_false(store_has(fx, CID1));
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->nsent, before + 1);
    assert_int_equal(fx->ops, 0);
}

/* A store that applies operations in order: the REGISTER retried after 408
 * is queued behind the first insert, which then succeeds late.  The retry
 * must still succeed (the late row is this instance's), not answer 409. */
static void test_register_retry_queued_behind_late_insert(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    assert_true(wait_until(fx, pred_error_408, NULL));
    expect_only_error(fx, before, H1, 408, u1);
    fx->cfg->server_registration_timeout = 10000;
    feed_register(fx, H1, u2, CID1, TOK1);
    assert_int_equal(fx->fake->nheld, 2);
    fx->fake->put_mode = FK_PASS;
    /* Both inserts reach the store in order before any completion runs. */
    fake_release_one(fx->fake, true, 0); /* inserted (late) */
    fake_release_one(fx->fake, true, 0); /* ECONFLICT */
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_msg(fx, before + 1, H1, SM_MSG_REGISTER_ACK, u2);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid);
    assert_int_equal(fx->ops, 0);
}

/* REGISTER_ACK only after the store completes, however long it takes
 * (within the registration timeout). */
static void test_register_ack_waits_for_store(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed_ping(fx, H1, u2);
    drain(fx);
    assert_int_equal(fx->fake->nheld, 1);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(reg_state(fx, CID1, NULL), 0);
    /* Other sessions go on meanwhile. */
    do_connect(fx, H2, CID2, TOK2);
    uint8_t u3[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u3);
    feed_ping(fx, H2, u3);
    expect_msg(fx, fx->nsent - 1, H2, SM_MSG_PING_ACK, u3);
    before = fx->nsent;
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_msg(fx, before, H1, SM_MSG_REGISTER_ACK, u1);
    expect_msg(fx, before + 1, H1, SM_MSG_PING_ACK, u2);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    assert_true(store_has(fx, CID1));
}

/* ======================================================================== */
/* Registration timeout                                                      */

static bool pred_error_408(fx_t *fx, const void *arg)
{
    (void)arg;
    for (size_t i = 0; i < fx->nsent; i++)
        if (fx->sent[i].type == SM_MSG_ERROR && fx->sent[i].json &&
            json_integer_value(json_object_get(fx->sent[i].json, "error_code")) == 408)
            return true;
    return false;
}

static bool pred_reg_free(fx_t *fx, const void *arg)
{
    return reg_state(fx, arg, NULL) == -1;
}

/* 408, the frames that waited are answered next, the client is not
 * registered; the store's late success is undone. */
static void test_register_timeout_then_late_success_undone(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed_ping(fx, H1, u2);
    assert_true(wait_until(fx, pred_error_408, NULL));
    assert_int_equal(fx->nsent, before + 2);
    const char *msg = expect_error(fx, before, H1, 408, u1);
    assert_non_null(strstr(msg, "timed out"));
    expect_msg(fx, before + 1, H1, SM_MSG_PING_ACK, u2);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->ops, 1); /* the store operation is still out */
    assert_int_equal(fx->fake->nheld, 1);
    /* Not registered: UNREGISTER is 404. */
    uint8_t u3[SM_PROTO_UUID_SIZE];
    unregister_error(fx, u3, H1, CID1, TOK1, 404);

    /* The insert succeeds late: the row must be deleted again. */
    fx->fake->put_mode = FK_PASS;
    unsigned dels = fx->fake->dels;
    before = fx->nsent;
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_int_equal(fx->fake->dels, dels + 1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->nsent, before); /* no late REGISTER_ACK */
    assert_int_equal(fx->ops, 0);
    /* A new REGISTER works. */
    do_register(fx, H1, CID1, TOK1);
    assert_true(store_has(fx, CID1));
    expect_no_close(fx, 0);
}

static void test_register_timeout_then_late_failure(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    assert_true(wait_until(fx, pred_error_408, NULL));
    expect_only_error(fx, before, H1, 408, u);
    before = fx->nsent;
    unsigned dels = fx->fake->dels;
    fake_release_one(fx->fake, false, SM_EUNAVAIL);
    drain(fx);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(fx->fake->dels, dels); /* nothing to undo */
    assert_false(store_has(fx, CID1));
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->ops, 0);
}

/* A retry after 408 succeeds while the first insert is still out; when that
 * one completes (conflict with the retry's row) the retry's registration is
 * left alone. */
static void test_register_retry_after_timeout(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    assert_true(wait_until(fx, pred_error_408, NULL));
    expect_only_error(fx, before, H1, 408, u);
    fx->fake->put_mode = FK_PASS;
    fx->cfg->server_registration_timeout = 10000;
    do_register(fx, H1, CID1, TOK1);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    before = fx->nsent;
    fake_release_one(fx->fake, true, 0); /* memory store: ECONFLICT */
    drain(fx);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(reg_state(fx, CID1, NULL), 1);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid);
    assert_int_equal(fx->ops, 0);
}

/* The connection goes while the REGISTER is held; the timeout fires (no
 * frame: nobody to tell), then the store succeeds late: undone. */
static void test_closed_then_timeout_then_late_success(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    assert_int_equal(reg_state(fx, CID1, NULL), 0);
    assert_true(wait_until(fx, pred_reg_free, CID1));
    assert_int_equal(fx->nsent, before);
    fx->fake->put_mode = FK_PASS;
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_false(store_has(fx, CID1));
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(fx->ops, 0);
}

/* The connection goes while the REGISTER is held; the store succeeds before
 * the timeout: the session registers and releases at once. */
static void test_closed_then_late_success_before_timeout(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_false(store_has(fx, CID1));
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(fx->ops, 0);
}

/* Two sessions time out independently, each with its own uuid. */
static void test_register_timeout_two_sessions(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_registration_timeout = SHORT_REG_TIMEOUT_MS;
    do_connect(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID2, TOK2);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u1[SM_PROTO_UUID_SIZE], u2[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u1);
    size_t before = new_request(fx, u2);
    feed_register(fx, H1, u1, CID1, TOK1);
    feed_register(fx, H2, u2, CID2, TOK2);
    size_t want = before + 2;
    assert_true(wait_until(fx, pred_nsent_at_least, &want));
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    expect_error(fx, before, H1, 408, u1);
    expect_error(fx, before + 1, H2, 408, u2);
    assert_int_equal(fx->fake->nheld, 2);
    fx->fake->put_mode = FK_PASS;
    fake_release_one(fx->fake, true, 0);
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_false(store_has(fx, CID1));
    assert_false(store_has(fx, CID2));
    assert_int_equal(fx->ops, 0);
}

/* ======================================================================== */
/* Resume after a dropped connection (DECISIONS §3)                          */

#define SHORT_RESUME_WINDOW_MS 20

/* CONNECT as cid presenting a resume token; returns the CONNECT_ACK's index. */
static size_t connect_with_token(fx_t *fx, sm_handle_t h, const char *cid, const char *tok,
                                 const char *resume_token)
{
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feedj(fx, h, SM_MSG_CONNECT, u,
          "{\"client_id\":\"%s\",\"auth_token\":\"%s\",\"version\":\"1.0.0\","
          "\"resume_token\":\"%s\"}",
          cid, tok, resume_token);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, h, SM_MSG_CONNECT_ACK, u);
    assert_int_equal(sent_at(fx, before)->flags, SM_OUTF_CONNECTED);
    assert_int_equal(jint(sent_at(fx, before), "status"), 200);
    return before;
}

static bool ack_resumed(fx_t *fx, size_t i)
{
    json_t *v = json_object_get(sent_at(fx, i)->json, "resumed");
    assert_true(json_is_boolean(v));
    return json_is_true(v);
}

/* The resume token of the last CONNECT_ACK sent to h. */
static const char *token_of(fx_t *fx, sm_handle_t h)
{
    for (size_t i = fx->nsent; i-- > 0;)
        if (fx->sent[i].conn == h && fx->sent[i].type == SM_MSG_CONNECT_ACK)
            return jstr(&fx->sent[i], "resume_token");
    fail_msg("no CONNECT_ACK sent to that connection");
    return NULL;
}

/* Registry and store agree: a registered client_id has its row. */
static void expect_consistent(fx_t *fx, const char *cid)
{
    sm_reg_holder_t h;
    int st = reg_state(fx, cid, &h);
    row_t r;
    int rc = store_row(fx, cid, &r);
    if (st == 1 && rc != 0)
        fail_msg("%s is registered in the registry (session %s) but its store row is gone", cid,
                 h.session_id);
    if (st == 1)
        assert_string_equal(r.session_id, h.session_id);
}

/* An abrupt end (EOF, heartbeat timeout) of a registered session detaches
 * it: registration and row kept, nothing sent; when server.resume_window
 * ends, the registration is released. */
static void test_abrupt_close_detaches_then_window_ends(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_resume_window = SHORT_RESUME_WINDOW_MS;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    do_connect(fx, H2, CID2, TOK2);
    do_register(fx, H2, CID2, TOK2);
    size_t before = fx->nsent;
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    sm_sessions_on_closed(fx->ss, H2, SM_CLOSE_HEARTBEAT);
    drain(fx);
    assert_int_equal(fx->nsent, before);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == SM_HANDLE_NONE);
    assert_int_equal(reg_state(fx, CID2, &h), 1);
    assert_true(h.conn == SM_HANDLE_NONE);
    assert_true(store_has(fx, CID1));
    assert_true(store_has(fx, CID2));
    assert_int_equal(sm_sessions_count(fx->ss), 2); /* detached ones count */
    assert_int_equal(fx->ops, 0);
    assert_true(wait_until(fx, pred_reg_free, CID1));
    assert_true(wait_until(fx, pred_reg_free, CID2));
    drain(fx);
    assert_false(store_has(fx, CID1));
    assert_false(store_has(fx, CID2));
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->nsent, before);
    assert_int_equal(fx->ops, 0);
}

static void test_abrupt_close_without_resume_window_releases(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_resume_window = 0;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    drain(fx);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->ops, 0);
}

/* Only registered sessions are kept; others end at once. */
static void test_abrupt_close_unregistered_ends(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed_ping(fx, H2, u);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    sm_sessions_on_closed(fx->ss, H2, SM_CLOSE_HEARTBEAT);
    drain(fx);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    assert_int_equal(fx->ops, 0);
}

/* CONNECT with the token while the old session is detached: the new
 * connection takes registration and session_id over, "resumed": true. */
static void test_resume_detached_session(void **state)
{
    fx_t *fx = *state;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", token_of(fx, H1));
    do_register(fx, H1, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    drain(fx);
    size_t i = connect_with_token(fx, H2, CID1, TOK1, tok);
    assert_true(ack_resumed(fx, i));
    assert_string_equal(jstr(sent_at(fx, i), "session_id"), sid);
    assert_string_not_equal(jstr(sent_at(fx, i), "resume_token"), tok);
    size_t before = fx->nsent;
    drain(fx);
    assert_int_equal(fx->nsent, before); /* the old connection is gone: no notice */
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H2);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid);
    assert_int_equal(fx->ops, 0);
    /* The new connection is REGISTERED. */
    uint8_t u[SM_PROTO_UUID_SIZE];
    register_error(fx, u, H2, CID1, TOK1, 409);
    before = new_request(fx, u);
    feed_unregister(fx, H2, u, CID1, TOK1);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    expect_msg(fx, before, H2, SM_MSG_UNREGISTER_ACK, u);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    /* The old token is spent. */
    i = connect_with_token(fx, H3, CID1, TOK1, tok);
    assert_false(ack_resumed(fx, i));
    assert_int_equal(fx->ops, 0);
}

/* CONNECT with the token while the old connection still looks alive: the
 * old one gets DISCONNECT {"reason":"replaced"} and close 4409. */
static void test_resume_live_session_replaces_it(void **state)
{
    fx_t *fx = *state;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", token_of(fx, H1));
    do_register(fx, H1, CID1, TOK1);
    size_t i = connect_with_token(fx, H2, CID1, TOK1, tok);
    assert_true(ack_resumed(fx, i));
    assert_string_equal(jstr(sent_at(fx, i), "session_id"), sid);
    size_t before = fx->nsent;
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    expect_notice(fx, before, H1, 4409, NULL);
    sent_t *n = sent_at(fx, before);
    assert_string_equal(jstr(n, "reason"), "replaced");
    assert_false(json_boolean_value(json_object_get(n->json, "reconnect")));
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    /* The old connection's end does not release the moved registration. */
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H2);
    assert_true(store_has(fx, CID1));
    /* The new one releases it when it goes. */
    sm_sessions_on_closed(fx->ss, H2, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

/* A wrong, malformed or other client's token is not an error: a fresh
 * session with "resumed": false; the detached holder stays. */
static void test_resume_bad_token_fresh_session(void **state)
{
    fx_t *fx = *state;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", token_of(fx, H1));
    do_register(fx, H1, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    drain(fx);
    size_t i = connect_with_token(fx, H2, CID1, TOK1, "00000000000000000000000000000000");
    assert_false(ack_resumed(fx, i));
    assert_string_not_equal(jstr(sent_at(fx, i), "session_id"), sid);
    i = connect_with_token(fx, H3, CID1, TOK1, "not-a-token");
    assert_false(ack_resumed(fx, i));
    i = connect_with_token(fx, sm_handle_make(3, 4, 5), CID2, TOK2, tok);
    assert_false(ack_resumed(fx, i));
    drain(fx);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == SM_HANDLE_NONE);
    assert_int_equal(reg_state(fx, CID2, NULL), -1);
    assert_int_equal(sm_sessions_count(fx->ss), 4);
    /* The fresh sessions are CONNECTED, not REGISTERED. */
    uint8_t u[SM_PROTO_UUID_SIZE];
    unregister_error(fx, u, H3, CID1, TOK1, 404);
}

/* A plain REGISTER for a client_id whose holder is detached takes the
 * registration over (only a live holder makes it 409). */
static void test_register_takes_over_detached_holder(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    drain(fx);
    const char *sid2 = do_connect(fx, H2, CID1, TOK1);
    do_register(fx, H2, CID1, TOK1);
    drain(fx);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H2);
    row_t r;
    assert_int_equal(store_row(fx, CID1, &r), 0);
    assert_string_equal(r.session_id, sid2);
    assert_int_equal(sm_sessions_count(fx->ss), 1); /* the detached one is gone */
    assert_int_equal(fx->ops, 0);
    /* Its end does not disturb the new holder later either. */
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_CLEAN);
    drain(fx);
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(store_has(fx, CID1));
}

/* A clean end (DISCONNECT) releases the registration at once (DECISIONS
 * §3); a CONNECT that presents the old token while the store delete of that
 * release is still running must not leave a registered client without its
 * store row. */
static void test_resume_while_release_in_flight(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", token_of(fx, H1));
    do_register(fx, H1, CID1, TOK1);
    fx->fake->del_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed(fx, H1, SM_MSG_DISCONNECT, u, SM_PAYLOAD_NONE, NULL, 0);
    expect_close(fx, fx->nsent - 1, H1, 1000);
    assert_int_equal(fx->fake->nheld, 1);
    size_t i = connect_with_token(fx, H2, CID1, TOK1, tok);
    bool resumed = ack_resumed(fx, i);
    drain(fx);
    fx->fake->del_mode = FK_PASS;
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_int_equal(fx->ops, 0);
    expect_consistent(fx, CID1);
    /* The registration was released by DISCONNECT: nothing to resume. */
    assert_false(resumed);
}

/* Same with UNREGISTER in flight on the old (live) connection. */
static void test_resume_while_unregister_in_flight(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", token_of(fx, H1));
    do_register(fx, H1, CID1, TOK1);
    fx->fake->del_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed_unregister(fx, H1, u, CID1, TOK1);
    assert_int_equal(fx->fake->nheld, 1);
    connect_with_token(fx, H2, CID1, TOK1, tok);
    drain(fx);
    fx->fake->del_mode = FK_PASS;
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_int_equal(fx->ops, 0);
    expect_consistent(fx, CID1);
}

/* The CONNECT with the token is handled just as the resume window ends:
 * both in the same loop iteration, the CONNECT first (a timer due at the
 * same time as the window's, started earlier, feeds it).  The resumed
 * session must keep its registration and store row. */
typedef struct {
    fx_t *fx;
    const char *tok;
    size_t ack;
    bool fed;
} resume_at_t;

static void on_resume_at(uv_timer_t *t)
{
    resume_at_t *ra = t->data;
    ra->ack = connect_with_token(ra->fx, H2, CID1, TOK1, ra->tok);
    ra->fed = true;
}

static bool pred_fed(fx_t *fx, const void *arg)
{
    (void)fx;
    return ((const resume_at_t *)arg)->fed;
}

static void test_resume_at_window_end(void **state)
{
    fx_t *fx = *state;
    fx->cfg->server_resume_window = SHORT_RESUME_WINDOW_MS;
    const char *sid = do_connect(fx, H1, CID1, TOK1);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", token_of(fx, H1));
    do_register(fx, H1, CID1, TOK1);
    resume_at_t ra = {.fx = fx, .tok = tok};
    uv_timer_t t;
    assert_int_equal(uv_timer_init(&fx->loop, &t), 0);
    t.data = &ra;
    /* Same loop time for both timers (no uv_run in between): same due time,
     * ours first. */
    assert_int_equal(uv_timer_start(&t, on_resume_at, SHORT_RESUME_WINDOW_MS, 0), 0);
    sm_sessions_on_closed(fx->ss, H1, SM_CLOSE_ABRUPT);
    bool fed = wait_until(fx, pred_fed, &ra);
    uv_close((uv_handle_t *)&t, NULL);
    drain(fx); /* t is closed before this frame goes, whatever happens next */
    assert_true(fed);
    assert_true(ack_resumed(fx, ra.ack));
    assert_string_equal(jstr(sent_at(fx, ra.ack), "session_id"), sid);
    assert_int_equal(fx->ops, 0);
    sm_reg_holder_t h;
    assert_int_equal(reg_state(fx, CID1, &h), 1);
    assert_true(h.conn == H2);
    expect_consistent(fx, CID1);
}

/* ======================================================================== */
/* Malformed frames                                                          */

/* Every frame-level problem is 400, also before CONNECT (step 1 before 2);
 * the uuid is echoed when the header could be read. */
static void test_frame_errors_400(void **state)
{
    fx_t *fx = *state;
    for (int connected = 0; connected < 2; connected++) {
        sm_handle_t h = connected ? H2 : H1;
        if (connected)
            do_connect(fx, h, CID1, TOK1);
        uint8_t u[SM_PROTO_UUID_SIZE], buf[64];
        size_t before, n;

        /* Shorter than the header: no uuid to echo. */
        before = new_request(fx, u);
        feed_raw(fx, h, "\xaa\x04\x00", 3);
        expect_only_error(fx, before, h, 400, NULL);
        before = fx->nsent;
        feed_raw(fx, h, "", 0);
        expect_only_error(fx, before, h, 400, NULL);

        /* Wrong start byte: no uuid either. */
        mkuuid(fx, u);
        assert_int_equal(sm_frame_encode(buf, sizeof buf, SM_MSG_PING, u, SM_PAYLOAD_JSON,
                                         "{\"timestamp\":1}", 15, &n),
                         SM_PROTO_OK);
        buf[0] = 0xAB;
        before = fx->nsent;
        feed_raw(fx, h, buf, n);
        expect_only_error(fx, before, h, 400, NULL);

        /* Length field != bytes that follow (both ways). */
        bad_error(fx, u, h, 400);
        assert_int_equal(sm_frame_encode(buf, sizeof buf, SM_MSG_PING, u, SM_PAYLOAD_JSON,
                                         "{\"timestamp\":1}", 15, &n),
                         SM_PROTO_OK);
        buf[n] = ' ';
        before = fx->nsent;
        feed_raw(fx, h, buf, n + 1);
        expect_only_error(fx, before, h, 400, u);

        /* Unknown payload type. */
        mkuuid(fx, u);
        assert_int_equal(sm_frame_encode(buf, sizeof buf, SM_MSG_PING, u, SM_PAYLOAD_JSON,
                                         "{\"timestamp\":1}", 15, &n),
                         SM_PROTO_OK);
        buf[18] = 0x03;
        before = fx->nsent;
        feed_raw(fx, h, buf, n);
        expect_only_error(fx, before, h, 400, u);

        /* NONE with a non-zero length. */
        buf[18] = SM_PAYLOAD_NONE;
        before = fx->nsent;
        feed_raw(fx, h, buf, n);
        expect_only_error(fx, before, h, 400, u);

        /* Unknown message type; server-to-client types. */
        static const uint8_t bad_types[] = {0x00, 0x99, SM_MSG_CONNECT_ACK, SM_MSG_ROOM_EVENT,
                                            SM_MSG_ERROR};
        for (size_t i = 0; i < sizeof bad_types; i++) {
            before = new_request(fx, u);
            feed(fx, h, bad_types[i], u, SM_PAYLOAD_JSON, "{}", 2);
            expect_only_400_field(fx, before, h, u, "type");
        }

        /* Payload type not allowed for the message type. */
        before = new_request(fx, u);
        feed(fx, h, SM_MSG_PING, u, SM_PAYLOAD_BINARY, "\x01\x02", 2);
        expect_only_error(fx, before, h, 400, u);
        before = new_request(fx, u);
        feed(fx, h, SM_MSG_CONNECT, u, SM_PAYLOAD_NONE, NULL, 0);
        expect_only_error(fx, before, h, 400, u);

        /* A CONNECT whose JSON is broken (step 3; CONNECT passes step 2). */
        static const char *const bad_json[] = {"{\"client_id\":", "[1,2]", "{} x", "\"s\"",
                                               "{\"a\":1,\"a\":2}"};
        for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
            before = new_request(fx, u);
            feed(fx, h, SM_MSG_CONNECT, u, SM_PAYLOAD_JSON, bad_json[i], strlen(bad_json[i]));
            expect_only_400_field(fx, before, h, u, "payload");
        }
        /* 19 malformed frames, under the default limit of 20: still open. */
        assert_int_equal(fx->cfg->limits_max_bad_frames, 20);
        expect_no_close(fx, 0);
    }
    assert_int_equal(sm_sessions_count(fx->ss), 2);
    /* The unauthenticated one can still CONNECT. */
    do_connect(fx, H1, CID2, TOK2);
}

/* Payload errors after CONNECT are 400 and count as malformed frames. */
static void test_payload_errors_400(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    static const struct {
        uint8_t type;
        const char *payload, *field;
    } cases[] = {
        {SM_MSG_PING, "{\"timestamp\":", "payload"},
        {SM_MSG_PING, "[]", "payload"},
        {SM_MSG_REGISTER, "{\"version\":\"1.0.0\",\"auth_token\":\"x\"}", "client_id"},
        {SM_MSG_REGISTER, "{\"version\":\"1.0.0\",\"client_id\":\"a b\",\"auth_token\":\"x\"}",
         "client_id"},
        {SM_MSG_UNREGISTER, "{\"version\":\"1.0\",\"client_id\":\"" CID1 "\",\"auth_token\":\"x\"}",
         "version"},
        {SM_MSG_DISCONNECT, "{\"reason\":[]}", "reason"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        size_t before = new_request(fx, u);
        feed(fx, H1, cases[i].type, u, SM_PAYLOAD_JSON, cases[i].payload, strlen(cases[i].payload));
        expect_only_400_field(fx, before, H1, u, cases[i].field);
    }
    assert_int_equal(sm_count_read(&fx->ctr.errors[SM_ERRIDX_400]), 6);
    /* They count: 14 more malformed frames reach the limit (20), one more closes. */
    unsigned limit = (unsigned)fx->cfg->limits_max_bad_frames;
    for (unsigned i = 6; i < limit; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        mkuuid(fx, u);
        feed_bad(fx, H1, u);
    }
    expect_no_close(fx, 0);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feedj(fx, H1, SM_MSG_PING, u, "{}");
    assert_int_equal(fx->nsent, before + 2);
    expect_400_field(fx, before, H1, u, "timestamp");
    expect_notice(fx, before + 1, H1, 1008, u);
}

/* More than max_bad_frames malformed frames within 60 s: 400, then the
 * DISCONNECT notice (code 1008, reconnect false) with SM_OUTF_CLOSE/1008;
 * a registered client is released. */
static void test_bad_frames_limit_disconnects(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    do_register(fx, H1, CID1, TOK1);
    unsigned limit = (unsigned)fx->cfg->limits_max_bad_frames;
    size_t start = fx->nsent;
    for (unsigned i = 0; i < limit; i++) {
        uint8_t u[SM_PROTO_UUID_SIZE];
        bad_error(fx, u, H1, 400);
    }
    expect_no_close(fx, start);
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_bad(fx, H1, u);
    assert_int_equal(fx->nsent, before + 2);
    expect_error(fx, before, H1, 400, u);
    expect_notice(fx, before + 1, H1, 1008, u);
    sent_t *s = sent_at(fx, before + 1);
    assert_false(json_boolean_value(json_object_get(s->json, "reconnect")));
    assert_non_null(strstr(jstr(s, "reason"), "malformed"));
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    /* The session ended: the registration is released. */
    drain(fx);
    assert_int_equal(fx->nsent, before + 2);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

static void test_bad_frames_limit_one(void **state)
{
    fx_t *fx = *state;
    fx->cfg->limits_max_bad_frames = 1;
    uint8_t u[SM_PROTO_UUID_SIZE];
    mkuuid(fx, u);
    feed_raw(fx, H1, "x", 1);
    expect_only_error(fx, 0, H1, 400, NULL);
    mkuuid(fx, u);
    feed_bad(fx, H1, u);
    assert_int_equal(fx->nsent, 3);
    expect_error(fx, 1, H1, 400, u);
    expect_notice(fx, 2, H1, 1008, u);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
}

/* The window slides: a burst of max_bad_frames, then one more just over
 * 60 s later does not disconnect; max_bad_frames+1 inside the new window do.
 * Time is moved with the uv_now offset. */
static void test_bad_frames_window_slides(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    unsigned limit = (unsigned)fx->cfg->limits_max_bad_frames;
    uint8_t u[SM_PROTO_UUID_SIZE];
    for (unsigned i = 0; i < limit; i++) {
        mkuuid(fx, u);
        feed_bad(fx, H1, u);
    }
    fx->now_offset += BAD_WINDOW_MS + 1;
    for (unsigned i = 0; i < limit; i++) {
        bad_error(fx, u, H1, 400);
    }
    expect_no_close(fx, 0);
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    size_t before = new_request(fx, u);
    feed_bad(fx, H1, u);
    assert_int_equal(fx->nsent, before + 2);
    expect_notice(fx, before + 1, H1, 1008, u);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
}

/* The limit+1-th bad frame just inside 60 s of the first still disconnects. */
static void test_bad_frames_just_inside_window(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    unsigned limit = (unsigned)fx->cfg->limits_max_bad_frames;
    uint8_t u[SM_PROTO_UUID_SIZE];
    for (unsigned i = 0; i < limit; i++) {
        mkuuid(fx, u);
        feed_bad(fx, H1, u);
    }
    fx->now_offset += BAD_WINDOW_MS - 1;
    size_t before = new_request(fx, u);
    feed_bad(fx, H1, u);
    assert_int_equal(fx->nsent, before + 2);
    expect_notice(fx, before + 1, H1, 1008, u);
}

/* Evenly spaced bad frames: 60000/limit + 1 ms apart never reach
 * limit+1 within 60 s; 60000/limit - 1 ms apart do, at the limit+1-th. */
static void test_bad_frames_spaced(void **state)
{
    fx_t *fx = *state;
    unsigned limit = (unsigned)fx->cfg->limits_max_bad_frames;
    uint64_t step = BAD_WINDOW_MS / limit;
    do_connect(fx, H1, CID1, TOK1);
    uint8_t u[SM_PROTO_UUID_SIZE];
    for (unsigned i = 0; i < 3 * limit; i++) {
        bad_error(fx, u, H1, 400);
        fx->now_offset += step + 1;
    }
    expect_no_close(fx, 0);
    assert_int_equal(sm_sessions_count(fx->ss), 1);

    do_connect(fx, H2, CID2, TOK2);
    size_t start = fx->nsent;
    for (unsigned i = 0; i < limit; i++) {
        mkuuid(fx, u);
        feed_bad(fx, H2, u);
        fx->now_offset += step - 1;
    }
    expect_no_close(fx, start);
    size_t before = new_request(fx, u);
    feed_bad(fx, H2, u);
    assert_int_equal(fx->nsent, before + 2);
    expect_notice(fx, before + 1, H2, 1008, u);
    /* H1 is not affected by H2's frames. */
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    before = new_request(fx, u);
    feed_ping(fx, H1, u);
    expect_msg(fx, before, H1, SM_MSG_PING_ACK, u);
}

/* ======================================================================== */
/* Too many frames behind one store operation                                */

static void test_too_many_pending_frames(void **state)
{
    fx_t *fx = *state;
    do_connect(fx, H1, CID1, TOK1);
    fx->fake->put_mode = FK_HOLD;
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = new_request(fx, u);
    feed_register(fx, H1, u, CID1, TOK1);
    for (unsigned i = 0; i < MAX_PENDING; i++) {
        mkuuid(fx, u);
        feed_ping(fx, H1, u);
    }
    /* MAX_PENDING frames may wait. */
    assert_int_equal(fx->nsent, before);
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    mkuuid(fx, u);
    feed_ping(fx, H1, u);
    assert_int_equal(fx->nsent, before + 1);
    expect_notice(fx, before, H1, 1008, u);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
    /* The held REGISTER still completes (successfully): released again. */
    fx->fake->put_mode = FK_PASS;
    fake_release_one(fx->fake, true, 0);
    drain(fx);
    assert_int_equal(fx->nsent, before + 1);
    assert_int_equal(reg_state(fx, CID1, NULL), -1);
    assert_false(store_has(fx, CID1));
    assert_int_equal(fx->ops, 0);
}

/* limits.message_rate: past the burst a frame gets ERROR 429 (uuid echoed)
 * and is not handled; another burst refused in a row closes with 1008; a
 * client that waits gets its tokens back. */
static void test_message_rate_limit(void **state)
{
    fx_t *fx = *state;
    fx->cfg->limits_message_rate = 10;
    fx->cfg->limits_message_burst = 5;
    do_connect(fx, H1, CID1, TOK1); /* the CONNECT took one token */
    uint8_t u[SM_PROTO_UUID_SIZE];
    size_t before = fx->nsent;
    for (int i = 0; i < 4; i++) {
        mkuuid(fx, u);
        feed_ping(fx, H1, u);
    }
    assert_int_equal(fx->nsent, before + 4); /* four PING_ACKs */
    for (int i = 0; i < 4; i++)
        assert_int_equal(sent_at(fx, before + (size_t)i)->type, SM_MSG_PING_ACK);
    mkuuid(fx, u);
    feed_ping(fx, H1, u);
    expect_error(fx, before + 4, H1, 429, u);
    /* Time refills the bucket: 300 ms at 10/s is 3 tokens. */
    fx->now_offset += 300;
    for (int i = 0; i < 3; i++) {
        mkuuid(fx, u);
        feed_ping(fx, H1, u);
        assert_int_equal(sent_at(fx, fx->nsent - 1)->type, SM_MSG_PING_ACK);
    }
    /* Keep hammering: refusals 1..5 answer 429, the 6th closes with 1008. */
    size_t mark = fx->nsent;
    for (int i = 0; i < 5; i++) {
        mkuuid(fx, u);
        feed_ping(fx, H1, u);
        expect_error(fx, mark + (size_t)i, H1, 429, u);
    }
    assert_int_equal(sm_sessions_count(fx->ss), 1);
    mkuuid(fx, u);
    feed_ping(fx, H1, u);
    expect_notice(fx, mark + 5, H1, 1008, NULL);
    assert_int_equal(sm_sessions_count(fx->ss), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define M(t) cmocka_unit_test_setup_teardown(t, setup_memory, teardown)
#define F(t) cmocka_unit_test_setup_teardown(t, setup_fake, teardown)
        M(test_connect_ok),
        M(test_message_rate_limit),
        M(test_connect_sessions_distinct),
        M(test_connect_bad_credentials_401),
        M(test_connect_missing_field_400),
        M(test_connect_version),
        M(test_before_connect_401),
        M(test_connect_again),
        M(test_ping),
        M(test_register_ok),
        M(test_register_frames_wait_in_order),
        M(test_register_twice_409),
        M(test_register_held_by_other_session_409),
        M(test_register_held_elsewhere_409),
        M(test_register_identity_checks),
        M(test_unregister_not_registered_404),
        M(test_unregister_ok),
        M(test_rooms_signal_when_connected_401),
        M(test_rooms_signal_invalid_payload_400_before_401),
        M(test_rooms_client_mismatch_403_before_401),
        M(test_disconnect_before_connect),
        M(test_disconnect_connected),
        M(test_disconnect_registered_releases),
        M(test_disconnect_while_register_in_flight),
        M(test_closed_while_registered_releases),
        M(test_closed_unregistered_sessions),
        M(test_closed_while_register_in_flight),
        M(test_closed_while_unregister_in_flight),
        M(test_sessions_free_releases),
        F(test_register_store_unavailable_503),
        F(test_register_store_conflict_409),
        F(test_unregister_store_unavailable_503),
        F(test_release_store_failure),
        F(test_register_ack_waits_for_store),
        F(test_register_replaces_stale_row),
        F(test_register_row_of_other_instance_409),
        F(test_register_stale_row_delete_fails_503),
        F(test_register_timeout_during_stale_recovery),
        F(test_register_retry_queued_behind_late_insert),
        F(test_register_timeout_then_late_success_undone),
        F(test_register_timeout_then_late_failure),
        F(test_register_retry_after_timeout),
        F(test_closed_then_timeout_then_late_success),
        F(test_closed_then_late_success_before_timeout),
        F(test_register_timeout_two_sessions),
        M(test_abrupt_close_detaches_then_window_ends),
        M(test_abrupt_close_without_resume_window_releases),
        M(test_abrupt_close_unregistered_ends),
        M(test_resume_detached_session),
        M(test_resume_live_session_replaces_it),
        M(test_resume_bad_token_fresh_session),
        M(test_register_takes_over_detached_holder),
        F(test_resume_while_release_in_flight),
        F(test_resume_while_unregister_in_flight),
        M(test_resume_at_window_end),
        M(test_frame_errors_400),
        M(test_payload_errors_400),
        M(test_bad_frames_limit_disconnects),
        M(test_bad_frames_limit_one),
        M(test_bad_frames_window_slides),
        M(test_bad_frames_just_inside_window),
        M(test_bad_frames_spaced),
        F(test_too_many_pending_frames),
#undef M
#undef F
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
