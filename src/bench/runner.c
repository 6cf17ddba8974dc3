/*
 * The signal-bench run: one libuv loop driving every simulated client
 * through SETUP -> WARMUP -> MEASURE -> STOP (see bench.h).
 *
 * SETUP opens clients `concurrency` at a time.  Each sends CONNECT right
 * behind its upgrade request, then REGISTER when the scenario needs it;
 * rooms (fanout) are created and joined once every client is registered,
 * so joiners never race their room's creator.  A client whose set-up fails
 * is counted and left out; the run goes on with the others.
 *
 * The runner owns the frames every scenario shares: ERROR (counted by code,
 * the first few described on stderr), the DISCONNECT notice, ROOM_EVENT
 * (ignored) and unexpected closes (counted).  Everything else goes to the
 * scenario's on_frame.
 */
#include "bench/bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/timerfd.h>

#include <sm/uuid.h>

#include "auth/jwt.h"
#include "bench/procstat.h"
#include "core/alloc.h"
#include "core/assert.h"

/* Read buffer per connection: a few replies; larger messages grow it. */
#define RBUF_SIZE 4096
/* Errors of one kind described on stderr before going quiet. */
#define ERR_VERBOSE 3
/* Time STOP allows for the close handshakes before cutting connections. */
#define STOP_GRACE_MS 3000

/* ---- small helpers ---- */

uint64_t sm_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sm_bench_hex(char *out, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
}

bool sm_bench_unhex(const char *in, int digits, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < digits; i++) {
        char ch = in[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            return false;
        r = r << 4 | d;
    }
    *v = r;
    return true;
}

void sm_bench_error(sm_bench_t *b, const char *name, const char *detail)
{
    sm_bench_result_t *r = &b->res;
    r->errors++;
    sm_bench_errkind_t *k = NULL;
    for (unsigned i = 0; i < r->nerrkinds; i++) {
        if (strcmp(r->errkinds[i].name, name) == 0) {
            k = &r->errkinds[i];
            break;
        }
    }
    if (k == NULL) {
        /* The last slot collects whatever does not fit. */
        k = &r->errkinds[r->nerrkinds < SM_BENCH_MAX_ERRKINDS ? r->nerrkinds++
                                                              : SM_BENCH_MAX_ERRKINDS - 1];
        if (k->count == 0)
            snprintf(k->name, sizeof k->name, "%s",
                     r->nerrkinds < SM_BENCH_MAX_ERRKINDS ? name : "other");
    }
    k->count++;
    if (k->count <= ERR_VERBOSE)
        fprintf(stderr, "signal-bench: error %s%s%s\n", name, detail ? ": " : "",
                detail ? detail : "");
}

void sm_bench_tpl_frame(sm_bench_t *b, sm_ws_tpl_t *t, uint8_t type, uint8_t payload_type,
                        const void *payload, size_t len)
{
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    sm_uuid_v4(uuid);
    size_t cap = sm_frame_size(len);
    uint8_t *buf = sm_xmalloc(cap);
    size_t n = 0;
    int rc = sm_frame_encode(buf, cap, type, uuid, payload_type, payload, len, &n);
    SM_ASSERT(rc == SM_PROTO_OK);
    sm_ws_tpl_init(t, b->mask, buf, n);
    free(buf);
}

/* Send one JSON request with a fresh uuid. */
static void send_json(sm_bench_client_t *cl, uint8_t type, const char *json)
{
    uint8_t buf[2048];
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    sm_uuid_v4(uuid);
    size_t n = 0;
    size_t len = strlen(json);
    if (sm_frame_encode(buf, sizeof buf, type, uuid, SM_PAYLOAD_JSON, json, len, &n) !=
        SM_PROTO_OK) {
        sm_bench_error(cl->b, "request too large", sm_msg_type_name(type));
        return;
    }
    sm_wsc_send(cl->c, buf, n);
}

static const char *client_token(const sm_bench_client_t *cl)
{
    if (cl->token)
        return cl->token;
    return cl->idx % 2 == 0 ? "test_token_1" : "test_token_2";
}

/* ---- finishing ---- */

static void handle_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void tick_closed(uv_handle_t *h)
{
    sm_bench_t *b = h->data;
    close(b->tick_fd);
    b->tick_fd = -1;
}

/* Arm (period_us > 0) or disarm (0) the pacing tick. */
static void tick_arm(sm_bench_t *b, int period_us)
{
    if (b->tick_fd < 0)
        return;
    struct itimerspec its = {0};
    its.it_interval.tv_sec = period_us / 1000000;
    its.it_interval.tv_nsec = (long)(period_us % 1000000) * 1000;
    its.it_value = its.it_interval;
    (void)timerfd_settime(b->tick_fd, 0, &its, NULL);
    if (period_us == 0)
        uv_poll_stop(&b->tick_poll);
}

static void finish_loop(sm_bench_t *b)
{
    if (b->stopping_done)
        return;
    b->stopping_done = true;
    b->res.io = *sm_wsc_ctx_stats(b->ctx);
    uv_close((uv_handle_t *)&b->phase_timer, handle_closed_noop);
    if (b->tick_fd >= 0)
        uv_close((uv_handle_t *)&b->tick_poll, tick_closed);
    uv_close((uv_handle_t *)&b->watch_timer, handle_closed_noop);
    sm_wsc_ctx_close(b->ctx);
}

static void stop_grace_cb(uv_timer_t *t)
{
    sm_bench_t *b = t->data;
    for (uint32_t i = 0; i < b->nclients; i++)
        if (b->clients[i].c)
            sm_wsc_abort(b->clients[i].c);
}

/* Enter STOP: close every connection with a close frame, bounded. */
static void enter_stop(sm_bench_t *b)
{
    b->phase = SM_BENCH_STOP;
    tick_arm(b, 0);
    uv_timer_stop(&b->phase_timer);
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        if (cl->c == NULL)
            continue;
        if (sm_wsc_is_open(cl->c))
            sm_wsc_close(cl->c, 1000);
        else
            sm_wsc_abort(cl->c);
    }
    uv_timer_start(&b->watch_timer, stop_grace_cb, STOP_GRACE_MS, 0);
    if (sm_wsc_ctx_stats(b->ctx)->open == 0)
        finish_loop(b);
}

static void fatal(sm_bench_t *b, const char *msg)
{
    fprintf(stderr, "signal-bench: %s\n", msg);
    b->exit_code = -1;
    enter_stop(b);
}

/* ---- phases ---- */

static void phase_cb(uv_timer_t *t);

static void snapshot_start(sm_bench_t *b)
{
    b->self_cpu0 = sm_self_cpu_us();
    b->sys_busy_ok = sm_sys_busy_us(&b->sys_busy0) == 0;
    b->srv_cpu_ok = b->o->server_pid > 0 && sm_proc_cpu_us(b->o->server_pid, &b->srv_cpu0) == 0;
}

static void snapshot_end(sm_bench_t *b, uint64_t t0, uint64_t t1, uint64_t ops)
{
    sm_bench_result_t *r = &b->res;
    r->client_cpu_us = (double)(sm_self_cpu_us() - b->self_cpu0);
    uint64_t cpu1, busy1;
    if (b->sys_busy_ok && sm_sys_busy_us(&busy1) == 0) {
        r->have_sys_busy = true;
        r->sys_busy_us = (double)(busy1 - b->sys_busy0);
    }
    if (b->srv_cpu_ok && sm_proc_cpu_us(b->o->server_pid, &cpu1) == 0) {
        r->have_server_cpu = true;
        r->server_cpu_us = (double)(cpu1 - b->srv_cpu0);
    }
    r->ops = ops;
    r->seconds = (double)(t1 - t0) / 1e9;
    r->throughput = r->seconds > 0 ? (double)ops / r->seconds : 0;
}

static void begin_measure(sm_bench_t *b)
{
    b->phase = SM_BENCH_MEASURE;
    b->ops = 0;
    b->ops2 = 0;
    sm_bench_hist_reset(&b->hist);
    snapshot_start(b);
    b->t_meas0 = sm_bench_now_ns();
    uv_timer_start(&b->phase_timer, phase_cb, (uint64_t)(b->o->duration * 1000), 0);
}

static void end_measure(sm_bench_t *b)
{
    b->t_meas1 = sm_bench_now_ns();
    if (b->sc->idle) {
        /* The figures were taken at the end of SETUP; now the held
         * connections' memory. */
        uint64_t rss;
        if (b->o->server_pid > 0 && sm_proc_rss_kib(b->o->server_pid, &rss) == 0) {
            b->res.rss_after_kib = rss;
        } else {
            b->res.have_rss = false;
        }
    } else {
        snapshot_end(b, b->t_meas0, b->t_meas1, b->ops);
        b->res.extra_ops = b->ops2;
    }
    enter_stop(b);
}

static void tick_cb(uv_poll_t *p, int status, int events)
{
    sm_bench_t *b = p->data;
    uint64_t expirations;
    (void)events;
    /* The count is not needed: the scenario sends what is due by the clock. */
    if (status < 0 || read(b->tick_fd, &expirations, sizeof expirations) < 0)
        return;
    if (sm_bench_running(b) && b->sc->tick)
        b->sc->tick(b);
}

static void start_run(sm_bench_t *b)
{
    b->phase = SM_BENCH_WARMUP;
    if (b->sc->idle) {
        /* Idle: hold the connections for `duration`, then read RSS. */
        b->phase = SM_BENCH_MEASURE;
        b->t_meas0 = sm_bench_now_ns();
        uv_timer_start(&b->phase_timer, phase_cb, (uint64_t)(b->o->duration * 1000), 0);
        return;
    }
    if (b->tick_fd >= 0) {
        /* --rate paces at --tick-us; other ticks (churn's watchdog) are 1 ms. */
        tick_arm(b, b->o->rate > 0 ? b->o->tick_us : 1000);
        uv_poll_start(&b->tick_poll, UV_READABLE, tick_cb);
    }
    if (b->sc->start)
        b->sc->start(b);
    if (b->o->warmup > 0)
        uv_timer_start(&b->phase_timer, phase_cb, (uint64_t)(b->o->warmup * 1000), 0);
    else
        begin_measure(b);
}

static void phase_cb(uv_timer_t *t)
{
    sm_bench_t *b = t->data;
    switch (b->phase) {
    case SM_BENCH_SETUP: {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "set-up timed out after %.0f s: %u ready, %u failed, %u still in progress",
                 b->o->setup_timeout, b->ready, b->failed, b->in_setup);
        fatal(b, msg);
        return;
    }
    case SM_BENCH_WARMUP:
        begin_measure(b);
        return;
    case SM_BENCH_MEASURE:
        end_measure(b);
        return;
    case SM_BENCH_STOP:
        return;
    }
}

/* ---- set-up ---- */

static void start_rooms(sm_bench_t *b);

static void setup_done(sm_bench_t *b)
{
    uv_timer_stop(&b->phase_timer);
    if (b->ready == 0) {
        fatal(b, "no client completed its set-up (is the server running? jwt secret right?)");
        return;
    }
    if (b->sc->idle) {
        b->t_setup1 = sm_bench_now_ns();
        snapshot_end(b, b->t_setup0, b->t_setup1, b->ready);
    }
    if (b->sc->rooms) {
        start_rooms(b);
        return;
    }
    start_run(b);
}

static void setup_progress(sm_bench_t *b)
{
    if (b->phase != SM_BENCH_SETUP)
        return;
    while (b->in_setup < (uint32_t)b->o->concurrency && b->next_launch < b->nclients) {
        sm_bench_client_t *cl = &b->clients[b->next_launch++];
        b->in_setup++;
        sm_bench_client_connect(b, cl);
    }
    if (b->ready + b->failed == b->nclients)
        setup_done(b);
}

static void client_ready(sm_bench_t *b, sm_bench_client_t *cl)
{
    cl->state = SM_CL_READY;
    b->ready++;
    b->in_setup--;
    if (b->sc->idle)
        sm_bench_hist_add(&b->hist, sm_bench_now_ns() - cl->t0);
    setup_progress(b);
}

static void rooms_progress(sm_bench_t *b)
{
    if (b->rooms_pending == 0 && !b->rooms_done && b->phase == SM_BENCH_SETUP) {
        b->rooms_done = true;
        start_run(b);
    }
}

static void client_failed(sm_bench_t *b, sm_bench_client_t *cl)
{
    bool in_setup = cl->state == SM_CL_CONNECTING || cl->state == SM_CL_REGISTERING;
    bool in_rooms = cl->state == SM_CL_ROOM;
    cl->state = SM_CL_FAILED;
    if (cl->c)
        sm_wsc_abort(cl->c);
    if (in_setup) {
        b->failed++;
        b->in_setup--;
        setup_progress(b);
    } else if (in_rooms) {
        b->rooms_pending--;
        rooms_progress(b);
    }
}

void sm_bench_client_connect(sm_bench_t *b, sm_bench_client_t *cl)
{
    const struct sockaddr_in *src = NULL;
    if (b->nsrcs > 0)
        src = &b->srcs[b->src_rr++ % (unsigned)b->nsrcs];
    cl->t0 = sm_bench_now_ns();
    cl->state = SM_CL_CONNECTING;
    cl->c = sm_wsc_connect(b->ctx, src, cl);
    /* CONNECT is pre-encoded per client (churn reconnects many times). */
    if (cl->connect_tpl.bytes == NULL) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"client_id\":\"%s\",\"auth_token\":\"%s\",\"version\":\"%s\"}", cl->id,
                 client_token(cl), SM_PROTO_VERSION);
        sm_bench_tpl_frame(b, &cl->connect_tpl, SM_MSG_CONNECT, SM_PAYLOAD_JSON, json,
                           strlen(json));
    }
    sm_wsc_send_tpl(cl->c, &cl->connect_tpl);
}

/* Rooms (fanout): member 0 of each room creates it; when the ACK arrives
 * the others join.  cl->peer is the room number (set by the scenario). */
static void room_request(sm_bench_t *b, sm_bench_client_t *cl, uint8_t type)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"version\":\"%s\",\"client_id\":\"%s\",\"room_id\":\"%s-room-%u\"}",
             SM_PROTO_VERSION, cl->id, b->o->id_prefix, cl->peer);
    cl->state = SM_CL_ROOM;
    b->rooms_pending++;
    send_json(cl, type, json);
}

static void start_rooms(sm_bench_t *b)
{
    uint32_t k = (uint32_t)b->o->room_size;
    for (uint32_t i = 0; i < b->nclients; i += k)
        if (b->clients[i].state == SM_CL_READY)
            room_request(b, &b->clients[i], SM_MSG_ROOM_CREATE);
    if (b->rooms_pending == 0)
        fatal(b, "no room creator is ready");
}

static void room_answered(sm_bench_t *b, sm_bench_client_t *cl, uint8_t type)
{
    cl->state = SM_CL_READY;
    b->rooms_pending--;
    if (type == SM_MSG_ROOM_CREATE_ACK) {
        uint32_t k = (uint32_t)b->o->room_size;
        for (uint32_t i = cl->idx + 1; i < cl->idx + k && i < b->nclients; i++)
            if (b->clients[i].state == SM_CL_READY)
                room_request(b, &b->clients[i], SM_MSG_ROOM_JOIN);
    }
    rooms_progress(b);
}

/* ---- wsclient callbacks ---- */

static void describe_error(const sm_frame_t *f, int *code, char *msg, size_t cap)
{
    *code = 0;
    msg[0] = '\0';
    if (f->payload_type != SM_PAYLOAD_JSON || f->length == 0)
        return;
    const char *p = (const char *)f->payload;
    size_t n = f->length;
    const char *c = memmem(p, n, "\"error_code\":", 13);
    if (c) /* digits, within the payload (it is not NUL-terminated) */
        for (c += 13; c < p + n && *c >= '0' && *c <= '9' && *code < 100000; c++)
            *code = *code * 10 + (*c - '0');
    const char *m = memmem(p, n, "\"error_message\":\"", 17);
    if (m) {
        m += 17;
        size_t i = 0;
        while (m < p + n && *m != '"' && i + 1 < cap)
            msg[i++] = *m++;
        msg[i] = '\0';
    }
}

static void on_frame(sm_wsc_t *c, const sm_frame_t *f)
{
    sm_bench_client_t *cl = sm_wsc_user(c);
    sm_bench_t *b = cl->b;
    char name[48], msg[160];
    switch (f->type) {
    case SM_MSG_ERROR: {
        int code;
        describe_error(f, &code, msg, sizeof msg);
        if (code == 404 && b->phase == SM_BENCH_STOP && cl->state == SM_CL_READY) {
            /* The stop race: every client closes at once, so a SIGNAL still
             * in flight to one that has already gone is answered 404.  Not a
             * server error; counted apart (stop_404). */
            b->res.stop_404++;
            return;
        }
        snprintf(name, sizeof name, "ERROR %d", code);
        sm_bench_error(b, name, msg);
        if (!b->sc->no_setup && (cl->state == SM_CL_CONNECTING || cl->state == SM_CL_REGISTERING ||
                                 cl->state == SM_CL_ROOM))
            client_failed(b, cl);
        else if (b->sc->on_error)
            b->sc->on_error(b, cl, f);
        return;
    }
    case SM_MSG_DISCONNECT:
        snprintf(msg, sizeof msg, "%.*s", (int)f->length,
                 f->payload ? (const char *)f->payload : "");
        sm_bench_error(b, "DISCONNECT notice", msg);
        return;
    case SM_MSG_ROOM_EVENT:
        return;
    default:
        break;
    }
    if (b->sc->no_setup) {
        b->sc->on_frame(b, cl, f);
        return;
    }
    switch (cl->state) {
    case SM_CL_CONNECTING:
        if (f->type == SM_MSG_CONNECT_ACK) {
            if (b->sc->registers) {
                char json[1024];
                snprintf(json, sizeof json,
                         "{\"version\":\"%s\",\"client_id\":\"%s\",\"auth_token\":\"%s\"}",
                         SM_PROTO_VERSION, cl->id, client_token(cl));
                cl->state = SM_CL_REGISTERING;
                send_json(cl, SM_MSG_REGISTER, json);
            } else {
                client_ready(b, cl);
            }
            return;
        }
        break;
    case SM_CL_REGISTERING:
        if (f->type == SM_MSG_REGISTER_ACK) {
            client_ready(b, cl);
            return;
        }
        break;
    case SM_CL_ROOM:
        if (f->type == SM_MSG_ROOM_CREATE_ACK || f->type == SM_MSG_ROOM_JOIN_ACK) {
            room_answered(b, cl, f->type);
            return;
        }
        break;
    case SM_CL_READY:
        if (b->sc->on_frame) {
            b->sc->on_frame(b, cl, f);
            return;
        }
        break;
    default:
        break;
    }
    snprintf(name, sizeof name, "unexpected %s", sm_msg_type_name(f->type));
    sm_bench_error(b, name, NULL);
}

static void on_bad_frame(sm_wsc_t *c, int err)
{
    sm_bench_client_t *cl = sm_wsc_user(c);
    sm_bench_error(cl->b, "bad frame from server", sm_proto_strerror(err));
}

static void on_closed(sm_wsc_t *c, sm_wsc_end_t why, int uv_err, int ws_code)
{
    sm_bench_client_t *cl = sm_wsc_user(c);
    sm_bench_t *b = cl->b;
    if (cl->c == c)
        cl->c = NULL;
    if (b->sc->no_setup && b->sc->on_closed) {
        b->sc->on_closed(b, cl, why, uv_err, ws_code);
    } else if (b->phase != SM_BENCH_STOP && cl->state != SM_CL_FAILED) {
        /* (A FAILED client was given up on purpose; its cause is counted.) */
        char name[48], detail[96];
        if (why == SM_WSC_END_PEER_CLOSE)
            snprintf(name, sizeof name, "closed: %s %d", sm_wsc_end_name(why), ws_code);
        else
            snprintf(name, sizeof name, "closed: %s", sm_wsc_end_name(why));
        snprintf(detail, sizeof detail, "client %s: %s", cl->id, uv_err ? uv_strerror(uv_err) : "");
        sm_bench_error(b, name, detail);
        client_failed(b, cl);
    }
    if (b->phase == SM_BENCH_STOP && sm_wsc_ctx_stats(b->ctx)->open <= 1)
        finish_loop(b); /* open still counts c until this callback returns */
}

static const sm_wsc_ops_t wsc_ops = {
    .on_open = NULL,
    .on_frame = on_frame,
    .on_bad_frame = on_bad_frame,
    .on_closed = on_closed,
};

/* ---- run ---- */

static int make_clients(sm_bench_t *b)
{
    const sm_bench_opts_t *o = b->o;
    b->nclients = (uint32_t)o->conns;
    b->clients = sm_xcalloc(b->nclients, sizeof *b->clients);
    if (o->jwt_secret == NULL && b->sc->registers && b->nclients > 2) {
        fprintf(stderr,
                "signal-bench: %s registers %u distinct clients: token auth has only the two "
                "test credentials; use --jwt-secret (server: auth.auth_method=jwt)\n",
                b->sc->name, b->nclients);
        return -1;
    }
    int64_t now = (int64_t)time(NULL);
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        cl->b = b;
        cl->idx = i;
        if (o->jwt_secret) {
            int n = snprintf(cl->id, sizeof cl->id, "%s-%u", o->id_prefix, i);
            cl->id_len = (uint8_t)n;
            char payload[256], tok[1024];
            snprintf(payload, sizeof payload,
                     "{\"sub\":\"%s\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}", cl->id, now,
                     now + o->jwt_lifetime);
            if (sm_jwt_sign_hs256(payload, (const uint8_t *)o->jwt_secret, strlen(o->jwt_secret),
                                  tok, sizeof tok) != 0) {
                fprintf(stderr, "signal-bench: could not sign a JWT\n");
                return -1;
            }
            cl->token = sm_xstrdup(tok);
        } else {
            const char *id = i % 2 == 0 ? "test_client_1" : "test_client_2";
            snprintf(cl->id, sizeof cl->id, "%s", id);
            cl->id_len = (uint8_t)strlen(id);
        }
    }
    return 0;
}

static void make_sources(sm_bench_t *b)
{
    int n = b->o->src_addrs;
    if (n <= 1) {
        b->nsrcs = 0;
        return;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, b->o->host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "signal-bench: several source addresses need a 127.x.x.x server "
                        "address; using the kernel's choice\n");
        b->nsrcs = 0;
        return;
    }
    if (n > SM_BENCH_MAX_SRC)
        n = SM_BENCH_MAX_SRC;
    for (int i = 0; i < n; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.0.%d", i + 1);
        uv_ip4_addr(ip, 0, &b->srcs[i]);
    }
    b->nsrcs = n;
}

int sm_bench_run(sm_bench_t *b, const sm_bench_opts_t *o, const sm_bench_scenario_t *sc)
{
    memset(b, 0, sizeof *b);
    b->o = o;
    b->sc = sc;
    b->loop = sm_xmalloc(sizeof *b->loop);
    uv_loop_init(b->loop);
    int rc = sm_wsc_ctx_new(b->loop, o->host, o->port, RBUF_SIZE, &wsc_ops, &b->ctx);
    if (rc < 0) {
        fprintf(stderr, "signal-bench: bad server address %s:%d: %s\n", o->host, o->port,
                uv_strerror(rc));
        return -1;
    }
    b->mask = sm_wsc_ctx_mask(b->ctx);
    uv_timer_init(b->loop, &b->phase_timer);
    uv_timer_init(b->loop, &b->watch_timer);
    b->phase_timer.data = b->tick_poll.data = b->watch_timer.data = b;
    b->tick_fd = -1;
    if (sc->tick) {
        b->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (b->tick_fd < 0 || uv_poll_init(b->loop, &b->tick_poll, b->tick_fd) < 0) {
            perror("signal-bench: timerfd");
            if (b->tick_fd >= 0)
                close(b->tick_fd);
            b->tick_fd = -1;
            finish_loop(b);
            uv_run(b->loop, UV_RUN_DEFAULT);
            return -1;
        }
        b->tick_poll.data = b;
    }
    make_sources(b);
    if (make_clients(b) < 0 || (sc->prepare && sc->prepare(b) < 0)) {
        finish_loop(b);
        uv_run(b->loop, UV_RUN_DEFAULT);
        return -1;
    }
    if (sc->idle && o->server_pid > 0) {
        b->res.have_rss = sm_proc_rss_kib(o->server_pid, &b->res.rss_before_kib) == 0;
        if (!b->res.have_rss)
            fprintf(stderr, "signal-bench: cannot read /proc/%d/status: no RSS figures\n",
                    (int)o->server_pid);
    }
    b->phase = SM_BENCH_SETUP;
    b->t_setup0 = sm_bench_now_ns();
    if (sc->idle)
        snapshot_start(b);
    if (sc->no_setup) {
        start_run(b);
    } else {
        uv_timer_start(&b->phase_timer, phase_cb, (uint64_t)(o->setup_timeout * 1000), 0);
        setup_progress(b);
    }
    uv_run(b->loop, UV_RUN_DEFAULT);
    /* ctx is freed by the last close callback; do not touch it after. */
    b->ctx = NULL;
    b->res.clients_ready = sc->no_setup ? b->nclients : b->ready;
    return b->exit_code;
}

void sm_bench_free(sm_bench_t *b)
{
    if (b->sc && b->sc->cleanup && b->priv)
        b->sc->cleanup(b);
    b->priv = NULL;
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        for (uint32_t k = 0; k < cl->ntpl; k++)
            sm_ws_tpl_free(&cl->tpl[k]);
        free(cl->tpl);
        sm_ws_tpl_free(&cl->connect_tpl);
        free(cl->token);
    }
    free(b->clients);
    b->clients = NULL;
    if (b->loop) {
        uv_loop_close(b->loop);
        free(b->loop);
        b->loop = NULL;
    }
}
