/*
 * signal-bench scenarios (issue 6): rtt, churn, idle, route, fanout.
 *
 * Each is a small vtable over the runner (runner.c): the runner connects,
 * authenticates, registers and joins rooms; a scenario builds its frame
 * templates in prepare(), starts the traffic in start() and keeps it going
 * from on_frame().  Latency is carried inside the frames themselves (the
 * PING uuid, a SIGNAL's data field or binary body), so no per-request state
 * is kept and nothing is allocated per message.
 *
 *   rtt     C clients, each keeping P PINGs in flight; one operation = one
 *           PING -> PING_ACK round trip.  The PING uuid carries the send time.
 *   churn   C slots; each loops: TCP connect + upgrade + CONNECT (pipelined)
 *           -> CONNECT_ACK (latency recorded, operation counted) -> close
 *           frame -> server's close -> next connection.
 *   idle    C clients CONNECTed and REGISTERed, then held; figures: set-up
 *           rate, set-up latency, server CPU per set-up, server RSS per
 *           connection.
 *   route   C/2 pairs; A sends P SIGNALs to B, each one received is sent
 *           back (closed loop), or with --rate R SIGNALs are offered at R/s
 *           in total (open loop).  One operation = one SIGNAL delivered;
 *           latency is one way (same clock at both ends).
 *   fanout  rooms of k members; a member sends one SIGNAL to each other
 *           member; when all k-1 arrived the next member does the same (P
 *           such rounds in flight per room).  One operation = one delivery.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sm/proto.h>

#include "bench/bench.h"
#include "core/alloc.h"

/* Marks a PING uuid as ours: bytes 12..15. */
static const uint8_t ping_magic[4] = {'s', 'b', 'p', 'g'};
/* JSON SIGNAL payloads start with this, then 16 hex digits of send time
 * (fanout: then 4 hex digits of round slot). */
static const char data_head[] = "{\"data\":\"";
#define DATA_OFF (sizeof data_head - 1)
/* Slow handshakes are abandoned (and counted) after this long. */
#define CHURN_STUCK_NS (10ull * 1000000000ull)

/* ------------------------------------------------------------------ rtt */

typedef struct {
    sm_ws_tpl_t ping;
} rtt_t;

static void rtt_defaults(sm_bench_opts_t *o)
{
    if (o->conns <= 0)
        o->conns = 100;
}

static int rtt_prepare(sm_bench_t *b)
{
    rtt_t *r = sm_xcalloc(1, sizeof *r);
    static const char json[] = "{\"timestamp\":1704110400000}";
    sm_bench_tpl_frame(b, &r->ping, SM_MSG_PING, SM_PAYLOAD_JSON, json, sizeof json - 1);
    b->priv = r;
    return 0;
}

static void rtt_cleanup(sm_bench_t *b)
{
    rtt_t *r = b->priv;
    sm_ws_tpl_free(&r->ping);
    free(r);
}

static void rtt_send(sm_bench_t *b, sm_bench_client_t *cl)
{
    rtt_t *r = b->priv;
    if (cl->c == NULL)
        return;
    uint8_t *p = sm_wsc_send_tpl(cl->c, &r->ping);
    if (p == NULL)
        return;
    uint8_t u[SM_PROTO_UUID_SIZE];
    uint64_t t = sm_bench_now_ns();
    memcpy(u, &t, 8);
    memcpy(u + 8, &cl->idx, 4);
    memcpy(u + 12, ping_magic, 4);
    sm_ws_tpl_patch(p, &r->ping, b->mask, 2, u, sizeof u);
}

static void rtt_start(sm_bench_t *b)
{
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        if (cl->state != SM_CL_READY)
            continue;
        for (int k = 0; k < b->o->inflight; k++)
            rtt_send(b, cl);
    }
}

static void rtt_on_frame(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    if (f->type != SM_MSG_PING_ACK || memcmp(f->uuid + 12, ping_magic, 4) != 0) {
        sm_bench_error(b, "unexpected frame", sm_msg_type_name(f->type));
        return;
    }
    uint64_t t;
    memcpy(&t, f->uuid, 8);
    sm_bench_record(b, sm_bench_now_ns() - t);
    if (sm_bench_running(b))
        rtt_send(b, cl);
}

static void rtt_on_error(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    /* Keep P in flight: the failed PING is replaced. */
    if (memcmp(f->uuid + 12, ping_magic, 4) == 0 && sm_bench_running(b))
        rtt_send(b, cl);
}

/* ---------------------------------------------------------------- churn */

typedef struct {
    unsigned ticks;
} churn_t;

static void churn_defaults(sm_bench_opts_t *o)
{
    if (o->conns <= 0)
        o->conns = 32;
    if (o->src_addrs <= 0)
        o->src_addrs = 4; /* spread TIME_WAIT over more 4-tuples */
}

static int churn_prepare(sm_bench_t *b)
{
    b->priv = sm_xcalloc(1, sizeof(churn_t));
    return 0;
}

static void churn_start(sm_bench_t *b)
{
    for (uint32_t i = 0; i < b->nclients; i++)
        sm_bench_client_connect(b, &b->clients[i]);
}

static void churn_on_frame(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    if (f->type == SM_MSG_CONNECT_ACK && cl->state == SM_CL_CONNECTING) {
        sm_bench_record(b, sm_bench_now_ns() - cl->t0);
        cl->state = SM_CL_READY; /* now closing */
        sm_wsc_close(cl->c, 1000);
        return;
    }
    sm_bench_error(b, "unexpected frame", sm_msg_type_name(f->type));
}

static void churn_on_error(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    (void)b;
    (void)f;
    /* Already counted; give up this connection (on_closed starts the next). */
    cl->state = SM_CL_FAILED;
    if (cl->c)
        sm_wsc_abort(cl->c);
}

static void churn_on_closed(sm_bench_t *b, sm_bench_client_t *cl, sm_wsc_end_t why, int uv_err,
                            int ws_code)
{
    if (b->phase == SM_BENCH_STOP)
        return;
    bool expected = (cl->state == SM_CL_READY && why == SM_WSC_END_OK) || cl->state == SM_CL_FAILED;
    if (!expected) {
        char name[48];
        if (why == SM_WSC_END_PEER_CLOSE)
            snprintf(name, sizeof name, "closed: %s %d", sm_wsc_end_name(why), ws_code);
        else
            snprintf(name, sizeof name, "closed: %s%s", sm_wsc_end_name(why),
                     cl->state == SM_CL_CONNECTING ? " before CONNECT_ACK" : "");
        sm_bench_error(b, name, uv_err ? uv_strerror(uv_err) : NULL);
    }
    cl->state = SM_CL_IDLE;
    if (sm_bench_running(b))
        sm_bench_client_connect(b, cl);
}

static void churn_tick(sm_bench_t *b)
{
    churn_t *ch = b->priv;
    if (++ch->ticks % 1000 != 0)
        return;
    uint64_t now = sm_bench_now_ns();
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        if (cl->c && cl->state != SM_CL_FAILED && now - cl->t0 > CHURN_STUCK_NS) {
            sm_bench_error(b, "timeout",
                           cl->state == SM_CL_CONNECTING ? "no CONNECT_ACK within 10 s"
                                                         : "close not answered within 10 s");
            cl->state = SM_CL_FAILED;
            sm_wsc_abort(cl->c);
        }
    }
}

/* ----------------------------------------------------------------- idle */

static void idle_defaults(sm_bench_opts_t *o)
{
    if (o->conns <= 0)
        o->conns = 10000;
    if (o->src_addrs <= 0)
        /* ~28k ephemeral ports per source address; leave room for
         * TIME_WAIT left by earlier runs. */
        o->src_addrs = (o->conns + 15999) / 16000;
}

/* ---------------------------------------------------------------- route */

typedef struct {
    unsigned rr;      /* open loop: next sender */
    uint64_t t_start; /* open loop: when the offered load started */
    uint64_t offered; /* open loop: SIGNALs sent */
} route_t;

static void route_defaults(sm_bench_opts_t *o)
{
    if (o->conns <= 0)
        o->conns = 200;
    if (o->conns % 2)
        o->conns++;
}

/* Template of a SIGNAL from cl to target, with room for a timestamp (and,
 * when slot is true, a 16-bit slot) at a known offset. */
static void signal_tpl(sm_bench_t *b, sm_ws_tpl_t *t, const sm_bench_client_t *target,
                       const char *room, bool slot)
{
    if (b->o->binary) {
        uint8_t p[1 + SM_BENCH_ID_MAX + 10];
        size_t n = 0;
        sm_signal_bin_write_prefix(p, sizeof p, target->id, target->id_len, &n);
        memset(p + n, 0, slot ? 10 : 8);
        n += slot ? 10 : 8;
        sm_bench_tpl_frame(b, t, SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, p, n);
        return;
    }
    char json[512];
    int n = snprintf(json, sizeof json,
                     "%s0000000000000000%s\"%s%s%s,\"target_client_id\":\"%s\","
                     "\"type\":\"bench\"}",
                     data_head, slot ? "0000" : "", room ? ",\"room_id\":\"" : "", room ? room : "",
                     room ? "\"" : "", target->id);
    sm_bench_tpl_frame(b, t, SM_MSG_SIGNAL, SM_PAYLOAD_JSON, json, (size_t)n);
}

/* Message offset of the timestamp in a template built by signal_tpl. */
static size_t signal_ts_off(const sm_bench_t *b, const sm_bench_client_t *target)
{
    return SM_PROTO_HEADER_SIZE +
           (b->o->binary ? sm_signal_bin_prefix_size(target->id_len) : DATA_OFF);
}

/* Send a copy of t with timestamp now (and slot). */
static void signal_send(sm_bench_t *b, sm_bench_client_t *from, const sm_ws_tpl_t *t,
                        const sm_bench_client_t *target, bool with_slot, uint16_t slot)
{
    if (from->c == NULL)
        return;
    uint8_t *p = sm_wsc_send_tpl(from->c, t);
    if (p == NULL)
        return;
    size_t off = signal_ts_off(b, target);
    uint64_t now = sm_bench_now_ns();
    if (b->o->binary) {
        uint8_t v[10];
        memcpy(v, &now, 8);
        memcpy(v + 8, &slot, 2);
        sm_ws_tpl_patch(p, t, b->mask, off, v, with_slot ? 10 : 8);
    } else {
        char v[20];
        sm_bench_hex(v, now, 16);
        if (with_slot)
            sm_bench_hex(v + 16, slot, 4);
        sm_ws_tpl_patch(p, t, b->mask, off, v, with_slot ? 20 : 16);
    }
}

/* Timestamp (and slot) of a relayed SIGNAL; false if it is not ours. */
static bool signal_parse(const sm_frame_t *f, bool binary, bool with_slot, uint64_t *ts,
                         uint16_t *slot)
{
    *slot = 0;
    if (f->type != SM_MSG_SIGNAL)
        return false;
    if (binary) {
        sm_signal_bin_t bin;
        if (f->payload_type != SM_PAYLOAD_BINARY ||
            sm_signal_bin_parse(f->payload, f->length, &bin) != SM_PROTO_OK ||
            bin.body_len < (with_slot ? 10u : 8u))
            return false;
        memcpy(ts, bin.body, 8);
        if (with_slot)
            memcpy(slot, bin.body + 8, 2);
        return true;
    }
    if (f->payload_type != SM_PAYLOAD_JSON || f->length < DATA_OFF + 20 ||
        memcmp(f->payload, data_head, DATA_OFF) != 0)
        return false;
    const char *d = (const char *)f->payload + DATA_OFF;
    if (!sm_bench_unhex(d, 16, ts))
        return false;
    if (with_slot) {
        uint64_t s;
        if (!sm_bench_unhex(d + 16, 4, &s))
            return false;
        *slot = (uint16_t)s;
    }
    return true;
}

static sm_bench_client_t *route_partner(sm_bench_t *b, sm_bench_client_t *cl)
{
    return &b->clients[cl->peer];
}

static int route_prepare(sm_bench_t *b)
{
    if (b->nclients < 2) {
        fprintf(stderr, "signal-bench: route needs at least 2 clients (-c)\n");
        return -1;
    }
    b->priv = sm_xcalloc(1, sizeof(route_t));
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        cl->peer = i ^ 1u;
        cl->tpl = sm_xcalloc(1, sizeof *cl->tpl);
        cl->ntpl = 1;
        signal_tpl(b, &cl->tpl[0], &b->clients[cl->peer], NULL, false);
    }
    return 0;
}

static void route_send(sm_bench_t *b, sm_bench_client_t *cl)
{
    sm_bench_client_t *to = route_partner(b, cl);
    if (to->state != SM_CL_READY)
        return;
    signal_send(b, cl, &cl->tpl[0], to, false, 0);
}

static void route_start(sm_bench_t *b)
{
    route_t *r = b->priv;
    r->t_start = sm_bench_now_ns();
    if (b->o->rate > 0)
        return; /* the tick offers the load */
    for (uint32_t i = 0; i < b->nclients; i += 2) {
        sm_bench_client_t *cl = &b->clients[i];
        if (cl->state != SM_CL_READY)
            continue;
        for (int k = 0; k < b->o->inflight; k++)
            route_send(b, cl);
    }
}

static void route_tick(sm_bench_t *b)
{
    route_t *r = b->priv;
    uint64_t elapsed = sm_bench_now_ns() - r->t_start;
    uint64_t due = (uint64_t)(b->o->rate * (double)elapsed / 1e9);
    /* Bound one tick's burst (after a stall) to 100 ms of load. */
    uint64_t cap = (uint64_t)(b->o->rate / 10) + 1;
    uint64_t n = due > r->offered ? due - r->offered : 0;
    if (n > cap)
        n = cap;
    for (uint64_t i = 0; i < n; i++) {
        for (uint32_t tries = 0; tries < b->nclients; tries++) {
            sm_bench_client_t *cl = &b->clients[r->rr++ % b->nclients];
            if (cl->state == SM_CL_READY && cl->c) {
                route_send(b, cl);
                break;
            }
        }
    }
    r->offered += n;
}

static void route_on_frame(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    uint64_t ts;
    uint16_t slot;
    if (!signal_parse(f, b->o->binary, false, &ts, &slot)) {
        sm_bench_error(b, "unexpected frame", sm_msg_type_name(f->type));
        return;
    }
    sm_bench_record(b, sm_bench_now_ns() - ts);
    if (b->o->rate <= 0 && sm_bench_running(b))
        route_send(b, cl); /* back to the sender */
}

static void route_on_error(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    (void)f;
    if (b->o->rate <= 0 && sm_bench_running(b))
        route_send(b, cl); /* keep P in flight */
}

/* --------------------------------------------------------------- fanout */

typedef struct {
    uint32_t first;       /* index of member 0 */
    uint32_t next_sender; /* member offset of the next round's sender */
    bool ok;
    uint16_t *remaining; /* per slot: deliveries still expected */
} room_t;

typedef struct {
    room_t *rooms;
    uint32_t nrooms;
} fanout_t;

static void fanout_cleanup(sm_bench_t *b)
{
    fanout_t *fo = b->priv;
    for (uint32_t r = 0; r < fo->nrooms; r++)
        free(fo->rooms[r].remaining);
    free(fo->rooms);
    free(fo);
}

static void fanout_defaults(sm_bench_opts_t *o)
{
    if (o->room_size <= 0)
        o->room_size = 8;
    if (o->room_size < 2)
        o->room_size = 2;
    if (o->conns <= 0)
        o->conns = 20 * o->room_size;
    if (o->conns < o->room_size)
        o->conns = o->room_size;
    o->conns -= o->conns % o->room_size;
}

static int fanout_prepare(sm_bench_t *b)
{
    uint32_t k = (uint32_t)b->o->room_size;
    if (b->o->inflight > 65535) {
        fprintf(stderr, "signal-bench: fanout: -P at most 65535\n");
        return -1;
    }
    fanout_t *fo = sm_xcalloc(1, sizeof *fo);
    fo->nrooms = b->nclients / k;
    fo->rooms = sm_xcalloc(fo->nrooms, sizeof *fo->rooms);
    for (uint32_t r = 0; r < fo->nrooms; r++) {
        fo->rooms[r].first = r * k;
        fo->rooms[r].remaining = sm_xcalloc((size_t)b->o->inflight, sizeof(uint16_t));
    }
    b->priv = fo;
    for (uint32_t i = 0; i < b->nclients; i++) {
        sm_bench_client_t *cl = &b->clients[i];
        cl->peer = i / k;
        char room[SM_BENCH_ID_MAX + 16];
        snprintf(room, sizeof room, "%s-room-%u", b->o->id_prefix, cl->peer);
        cl->tpl = sm_xcalloc(k, sizeof *cl->tpl);
        cl->ntpl = k;
        for (uint32_t m = 0; m < k; m++) {
            uint32_t j = cl->peer * k + m;
            if (j != i)
                signal_tpl(b, &cl->tpl[m], &b->clients[j], room, true);
        }
    }
    return 0;
}

static void fanout_round(sm_bench_t *b, room_t *room, uint16_t slot)
{
    uint32_t k = (uint32_t)b->o->room_size;
    uint32_t s = room->next_sender++ % k;
    sm_bench_client_t *from = &b->clients[room->first + s];
    room->remaining[slot] = (uint16_t)(k - 1);
    for (uint32_t m = 0; m < k; m++)
        if (m != s)
            signal_send(b, from, &from->tpl[m], &b->clients[room->first + m], true, slot);
}

static void fanout_start(sm_bench_t *b)
{
    fanout_t *fo = b->priv;
    uint32_t k = (uint32_t)b->o->room_size;
    uint32_t usable = 0;
    for (uint32_t r = 0; r < fo->nrooms; r++) {
        room_t *room = &fo->rooms[r];
        room->ok = true;
        for (uint32_t m = 0; m < k; m++)
            if (b->clients[room->first + m].state != SM_CL_READY)
                room->ok = false;
        if (!room->ok) {
            sm_bench_error(b, "room left out", "a member failed its set-up");
            continue;
        }
        usable++;
        for (int s = 0; s < b->o->inflight; s++)
            fanout_round(b, room, (uint16_t)s);
    }
    if (usable == 0)
        fprintf(stderr, "signal-bench: fanout: no complete room\n");
}

static void fanout_on_frame(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    fanout_t *fo = b->priv;
    uint64_t ts;
    uint16_t slot;
    if (!signal_parse(f, b->o->binary, true, &ts, &slot) || slot >= b->o->inflight) {
        sm_bench_error(b, "unexpected frame", sm_msg_type_name(f->type));
        return;
    }
    sm_bench_record(b, sm_bench_now_ns() - ts);
    room_t *room = &fo->rooms[cl->peer];
    if (room->remaining[slot] == 0 || --room->remaining[slot] != 0)
        return;
    b->ops2++;
    if (room->ok && sm_bench_running(b))
        fanout_round(b, room, slot);
}

static void fanout_on_error(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f)
{
    (void)f;
    /* A lost delivery would stall its round forever: take the room out. */
    fanout_t *fo = b->priv;
    fo->rooms[cl->peer].ok = false;
}

static void free_priv(sm_bench_t *b)
{
    free(b->priv);
}

/* ---------------------------------------------------------------- table */

/* route, closed loop (tick NULL) or paced by --rate (route_tick). */
#define ROUTE_SCENARIO(tick_fn)                                                                    \
    {                                                                                              \
        .name = "route", .unit = "msgs/s", .op_name = "SIGNAL", .registers = true,                 \
        .defaults = route_defaults, .prepare = route_prepare, .start = route_start,                \
        .on_frame = route_on_frame, .on_error = route_on_error, .tick = (tick_fn),                 \
        .cleanup = free_priv,                                                                      \
    }

static const sm_bench_scenario_t scenarios[] = {
    {
        .name = "rtt",
        .unit = "rt/s",
        .op_name = "round trip",
        .defaults = rtt_defaults,
        .prepare = rtt_prepare,
        .start = rtt_start,
        .on_frame = rtt_on_frame,
        .on_error = rtt_on_error,
        .cleanup = rtt_cleanup,
    },
    {
        .name = "churn",
        .unit = "handshakes/s",
        .op_name = "handshake",
        .no_setup = true,
        .defaults = churn_defaults,
        .prepare = churn_prepare,
        .start = churn_start,
        .on_frame = churn_on_frame,
        .on_error = churn_on_error,
        .on_closed = churn_on_closed,
        .tick = churn_tick,
        .cleanup = free_priv,
    },
    {
        .name = "idle",
        .unit = "conns/s",
        .op_name = "connection set-up",
        .registers = true,
        .idle = true,
        .defaults = idle_defaults,
    },
    ROUTE_SCENARIO(NULL),
    {
        .name = "fanout",
        .unit = "msgs/s",
        .op_name = "SIGNAL delivery",
        .registers = true,
        .rooms = true,
        .defaults = fanout_defaults,
        .prepare = fanout_prepare,
        .start = fanout_start,
        .on_frame = fanout_on_frame,
        .on_error = fanout_on_error,
        .cleanup = fanout_cleanup,
    },
};

/* route with an offered rate: the same scenario plus a tick. */
static const sm_bench_scenario_t route_rate = ROUTE_SCENARIO(route_tick);

const sm_bench_scenario_t *sm_bench_scenario_find(const char *name)
{
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return &scenarios[i];
    return NULL;
}

const sm_bench_scenario_t *sm_bench_scenario_rated(const sm_bench_scenario_t *sc)
{
    return strcmp(sc->name, "route") == 0 ? &route_rate : sc;
}

const char *sm_bench_scenario_names(void)
{
    return "rtt|churn|idle|route|fanout";
}
