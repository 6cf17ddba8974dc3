/*
 * I/O thread: loop, connection slots, outbox drain, inbox overflow, timers,
 * start/drain/stop.  Per-connection work is in reactor/conn.c.
 *
 * DESIGN: wake-ups are batched.  Pushing to a worker only marks it in
 * wake_worker[]; a uv_prepare handle, which runs right before the loop would
 * block, rings each marked worker once.  So a read burst over many
 * connections costs one eventfd write per worker, not one per frame.  The
 * outbox is drained completely per wake-up (uv_async sends coalesce), and the
 * frames it carries are written per connection with one writev.
 *
 * Timeouts use three lists instead of a timer per connection (152 bytes
 * each): every entry in a list has the same timeout, so a list ordered by
 * insertion (handshake, closing) or by last activity (heartbeat: touching a
 * connection moves it to the tail) is ordered by deadline, and one uv_timer
 * armed for the earliest head serves them all.
 */
#include "reactor/io_thread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "core/hmap.h"
#include "log/log.h"
#include "reactor/io_internal.h"
#include "reactor/msg.h"
#include "reactor/worker.h"
#include "core/ratelimit.h"
#include "reactor/proxy_proto.h"

/* ---- slots ---- */

static void slots_grow(sm_io_thread_t *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 1024;
    if (ncap > SM_HANDLE_MAX_SLOTS)
        ncap = SM_HANDLE_MAX_SLOTS;
    t->slots = sm_xrealloc(t->slots, ncap * sizeof *t->slots);
    t->gens = sm_xrealloc(t->gens, ncap * sizeof *t->gens);
    t->free_slots = sm_xrealloc(t->free_slots, ncap * sizeof *t->free_slots);
    for (uint32_t i = t->cap; i < ncap; i++) {
        t->slots[i] = NULL;
        t->gens[i] = 1;
    }
    t->cap = ncap;
}

uint32_t sm__io_slot_alloc(sm_io_thread_t *t, sm_conn_t *c)
{
    uint32_t slot;
    if (t->nfree > 0) {
        slot = t->free_slots[--t->nfree];
    } else {
        if (t->nslots == t->cap)
            slots_grow(t);
        slot = t->nslots++;
    }
    t->slots[slot] = c;
    return slot;
}

void sm__io_slot_free(sm_io_thread_t *t, uint32_t slot)
{
    t->slots[slot] = NULL;
    /* A new generation makes every outstanding handle to this slot stale;
     * skip 0 so that a live handle is never SM_HANDLE_NONE. */
    if (++t->gens[slot] == 0)
        t->gens[slot] = 1;
    t->free_slots[t->nfree++] = slot;
}

sm_conn_t *sm__io_conn_get(sm_io_thread_t *t, sm_handle_t h)
{
    uint32_t slot = sm_handle_slot(h);
    if (slot >= t->nslots || t->gens[slot] != sm_handle_gen(h))
        return NULL;
    return t->slots[slot];
}

/* ---- pools ---- */

sm_onode_t *sm__io_onode_get(sm_io_thread_t *t)
{
    sm_onode_t *n = t->onode_pool;
    if (n) {
        t->onode_pool = n->next;
        return n;
    }
    return sm_xmalloc(sizeof *n);
}

void sm__io_onode_put(sm_io_thread_t *t, sm_onode_t *n)
{
    n->next = t->onode_pool;
    t->onode_pool = n;
}

uv_write_t *sm__io_wreq_get(sm_io_thread_t *t)
{
    uv_write_t *w = t->wreq_pool;
    if (w) {
        t->wreq_pool = w->data;
        return w;
    }
    return sm_xmalloc(sizeof *w);
}

void sm__io_wreq_put(sm_io_thread_t *t, uv_write_t *w)
{
    w->data = t->wreq_pool;
    t->wreq_pool = w;
}

/* ---- worker inbox with overflow ---- */

static void pause_conn(sm_io_thread_t *t, unsigned w, sm_conn_t *c)
{
    if (c == NULL || (c->flags & CF_PAUSED))
        return;
    c->flags |= CF_PAUSED;
    if (c->flags & CF_READING) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->flags &= (uint16_t)~CF_READING;
    }
    if (t->npaused[w] == t->cap_paused[w]) {
        t->cap_paused[w] = t->cap_paused[w] ? t->cap_paused[w] * 2 : 16;
        t->paused[w] = sm_xrealloc(t->paused[w], t->cap_paused[w] * sizeof *t->paused[w]);
    }
    t->paused[w][t->npaused[w]++] = sm_handle_make(t->index, c->slot, c->gen);
    sm_count(&t->counters.backpressure_pauses_total, 1);
}

void sm__io_to_worker(sm_io_thread_t *t, sm_conn_t *c, const sm_qitem_t *it)
{
    unsigned w = c->worker;
    sm_qfifo_t *q = &t->overflow[w];
    t->wake_worker[w] = true;
    if (q->count == 0 && sm_worker_push_in(t->srv->workers[w], it))
        return;
    /* Full: keep order by queueing behind what is already waiting, and stop
     * reading this connection until the worker catches up. */
    sm_qfifo_push(q, it);
    if (it->kind == SM_IN_FRAME)
        pause_conn(t, w, c);
}

static void retry_overflow(sm_io_thread_t *t)
{
    for (unsigned w = 0; w < t->srv->n_workers; w++) {
        sm_qfifo_t *q = &t->overflow[w];
        while (q->count > 0) {
            if (!sm_worker_push_in(t->srv->workers[w], sm_qfifo_peek(q)))
                break;
            sm_qfifo_pop(q);
            t->wake_worker[w] = true;
        }
        if (q->count == 0 && t->npaused[w] > 0) {
            for (size_t i = 0; i < t->npaused[w]; i++) {
                sm_conn_t *c = sm__io_conn_get(t, t->paused[w][i]);
                if (c)
                    sm__conn_resume(c);
            }
            t->npaused[w] = 0;
        }
    }
}

static void flush_dirty(sm_io_thread_t *t);

static void on_prepare(uv_prepare_t *p)
{
    sm_io_thread_t *t = p->data;
    /* Output queued by this iteration's reads (HTTP responses, pongs). */
    flush_dirty(t);
    for (unsigned w = 0; w < t->srv->n_workers; w++) {
        if (t->wake_worker[w]) {
            t->wake_worker[w] = false;
            sm_worker_wake(t->srv->workers[w]);
        }
    }
}

/* ---- outbox ---- */

void sm__io_mark_dirty(sm_io_thread_t *t, sm_conn_t *c)
{
    if (c->flags & CF_DIRTY)
        return;
    c->flags |= CF_DIRTY;
    if (t->ndirty == t->cap_dirty) {
        t->cap_dirty = t->cap_dirty ? t->cap_dirty * 2 : 256;
        t->dirty = sm_xrealloc(t->dirty, t->cap_dirty * sizeof *t->dirty);
    }
    t->dirty[t->ndirty++] = c;
}

static void flush_dirty(sm_io_thread_t *t)
{
    /* Flushing may close a connection, but frees happen in uv_close
     * callbacks, i.e. after this function: the pointers stay valid. */
    for (size_t i = 0; i < t->ndirty; i++) {
        sm_conn_t *c = t->dirty[i];
        c->flags &= (uint16_t)~CF_DIRTY;
        sm__conn_flush(c);
    }
    t->ndirty = 0;
}

static void handle_out(sm_io_thread_t *t, const sm_qitem_t *it)
{
    sm_conn_t *c = sm__io_conn_get(t, it->handle);
    sm_obuf_t *b = it->ptr;
    if (c == NULL || c->state == CONN_CLOSING || (c->flags & CF_UV_CLOSING)) {
        sm_obuf_unref(b);
        return;
    }
    if (b)
        sm__conn_queue(c, b);
    if (it->flags & SM_OUTF_CONNECTED)
        sm__conn_mark_connected(c);
    if (it->flags & SM_OUTF_CLOSE)
        sm__conn_close_ws(c, (uint16_t)it->arg, NULL, false, SM_CLOSE_SERVER);
}

static void on_outbox(uv_async_t *a)
{
    sm_io_thread_t *t = a->data;
    sm_qitem_t it;
    while (sm_ring_pop(&t->outbox, &it))
        handle_out(t, &it);
    flush_dirty(t);
    if (sm_ring_take_starved(&t->outbox)) {
        for (unsigned w = 0; w < t->srv->n_workers; w++)
            sm_worker_notify_room(t->srv->workers[w]);
    }
    if (atomic_exchange_explicit(&t->room, false, memory_order_acq_rel))
        retry_overflow(t);
}

bool sm_io_push_out(sm_io_thread_t *t, const sm_qitem_t *it)
{
    return sm_ring_push(&t->outbox, it);
}

void sm_io_wake(sm_io_thread_t *t)
{
    uv_async_send(&t->outbox_async);
}

void sm_io_notify_room(sm_io_thread_t *t)
{
    atomic_store_explicit(&t->room, true, memory_order_release);
    uv_async_send(&t->outbox_async);
}

sm_counters_t *sm_io_counters(sm_io_thread_t *t)
{
    return &t->counters;
}

size_t sm_io_outbox_depth(sm_io_thread_t *t)
{
    return sm_ring_depth(&t->outbox);
}

/* ---- timers ---- */

static sm_list_t *list_of(sm_io_thread_t *t, tlist_t l)
{
    switch (l) {
    case TL_HANDSHAKE:
        return &t->hs_list;
    case TL_HEARTBEAT:
        return &t->hb_list;
    case TL_CLOSING:
        return &t->closing_list;
    default:
        return NULL;
    }
}

static uint64_t deadline_of(sm_io_thread_t *t, sm_conn_t *c)
{
    if (c->tlist == TL_HEARTBEAT)
        return c->tmark + t->cfg->heartbeat_timeout;
    return c->tmark;
}

static void arm_timer(sm_io_thread_t *t);
static void on_timer(uv_timer_t *tm);

void sm__io_timer_add(sm_io_thread_t *t, sm_conn_t *c, tlist_t list, uint64_t mark)
{
    sm__io_timer_remove(c);
    c->tlist = (uint8_t)list;
    c->tmark = mark;
    sm_list_insert_tail(list_of(t, list), &c->tnode);
    uint64_t due = deadline_of(t, c);
    if (t->timer_due == 0 || due < t->timer_due)
        arm_timer(t);
}

void sm__io_timer_remove(sm_conn_t *c)
{
    if (c->tlist != TL_NONE) {
        sm_list_remove(&c->tnode);
        c->tlist = TL_NONE;
    }
}

void sm__io_touch(sm_conn_t *c)
{
    if (c->tlist == TL_HEARTBEAT) {
        c->tmark = uv_now(&c->io->loop);
        sm_list_remove(&c->tnode);
        sm_list_insert_tail(&c->io->hb_list, &c->tnode);
    }
}

static void arm_timer(sm_io_thread_t *t)
{
    uint64_t due = 0;
    sm_list_t *lists[] = {&t->hs_list, &t->hb_list, &t->closing_list};
    for (size_t i = 0; i < SM_ARRAY_LEN(lists); i++) {
        sm_list_t *n = sm_list_first(lists[i]);
        if (n) {
            uint64_t d = deadline_of(t, SM_CONTAINER_OF(n, sm_conn_t, tnode));
            if (due == 0 || d < due)
                due = d;
        }
    }
    t->timer_due = due;
    if (due == 0) {
        uv_timer_stop(&t->timer);
        return;
    }
    uint64_t now = uv_now(&t->loop);
    uv_timer_start(&t->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *tm)
{
    sm_io_thread_t *t = tm->data;
    uint64_t now = uv_now(&t->loop);
    t->timer_due = 0;
    sm_list_t *n;
    while ((n = sm_list_first(&t->hs_list)) != NULL) {
        sm_conn_t *c = SM_CONTAINER_OF(n, sm_conn_t, tnode);
        if (c->tmark > now)
            break;
        sm__io_timer_remove(c);
        if (c->state == CONN_WS) {
            SM_LOG(SM_LOG_DEBUG, SM_MSG("connection timeout"), SM_UINT("slot", c->slot));
            sm__conn_close_ws(c, 1008, "connection timeout", true, SM_CLOSE_SERVER);
        } else {
            sm__conn_abort(c, SM_CLOSE_SERVER);
        }
    }
    while ((n = sm_list_first(&t->hb_list)) != NULL) {
        sm_conn_t *c = SM_CONTAINER_OF(n, sm_conn_t, tnode);
        if (c->tmark + t->cfg->heartbeat_timeout > now)
            break;
        sm__io_timer_remove(c);
        SM_LOG(SM_LOG_DEBUG, SM_MSG("heartbeat timeout"), SM_UINT("slot", c->slot));
        sm__conn_close_ws(c, 4408, "heartbeat timeout", true, SM_CLOSE_HEARTBEAT);
    }
    while ((n = sm_list_first(&t->closing_list)) != NULL) {
        sm_conn_t *c = SM_CONTAINER_OF(n, sm_conn_t, tnode);
        if (c->tmark > now)
            break;
        sm__io_timer_remove(c);
        sm__conn_abort(c, SM_CLOSE_SERVER);
    }
    flush_dirty(t);
    arm_timer(t);
}

/* ---- control: drain and stop ---- */

typedef struct {
    sm_task_t task;
    sm_io_thread_t *t;
} ctl_task_t;

static void close_cb_free_nothing(uv_handle_t *h)
{
    (void)h;
}

#define DRAIN_TICK_MS 50

/* Close the next batch of the drain list (handles of connections gone in the
 * meantime are skipped). */
static void on_drain_tick(uv_timer_t *tm)
{
    sm_io_thread_t *t = tm->data;
    size_t end = t->drain_next + t->drain_batch;
    for (; t->drain_next < t->drain_n && t->drain_next < end; t->drain_next++) {
        sm_conn_t *c = sm__io_conn_get(t, t->drain_list[t->drain_next]);
        if (c && c->state == CONN_WS)
            sm__conn_close_ws(c, 1001, "server shutting down", true, SM_CLOSE_SERVER);
    }
    flush_dirty(t);
    if (t->drain_next >= t->drain_n)
        uv_timer_stop(&t->drain_timer);
}

/* DESIGN: a draining instance must not send thousands of clients to the
 * other instances in the same second.  The open connections are closed in a
 * random order, in equal batches every DRAIN_TICK_MS, spread over
 * server.drain_spread (bounded by half of server.drain_timeout so that the
 * clients still have time to answer the close). */
static void do_drain(sm_task_t *task)
{
    ctl_task_t *ct = (ctl_task_t *)task;
    sm_io_thread_t *t = ct->t;
    free(ct);
    if (t->draining)
        return;
    t->draining = true;
    t->drain_list = sm_xcalloc(t->nslots ? t->nslots : 1, sizeof *t->drain_list);
    for (uint32_t i = 0; i < t->nslots; i++) {
        sm_conn_t *c = t->slots[i];
        if (c && c->state == CONN_WS)
            t->drain_list[t->drain_n++] = sm_handle_make(t->index, c->slot, c->gen);
    }
    /* Fisher-Yates with the hash seeded per thread: order need not be secret. */
    uint64_t x = sm_hash_u64(uv_hrtime() ^ t->index);
    for (size_t i = t->drain_n; i > 1; i--) {
        x = sm_hash_u64(x + i);
        size_t j = (size_t)(x % i);
        sm_handle_t tmp = t->drain_list[i - 1];
        t->drain_list[i - 1] = t->drain_list[j];
        t->drain_list[j] = tmp;
    }
    uint64_t spread = t->cfg->server_drain_spread;
    if (spread > t->cfg->server_drain_timeout / 2)
        spread = t->cfg->server_drain_timeout / 2;
    size_t ticks = spread / DRAIN_TICK_MS;
    t->drain_batch = ticks > 1 ? (t->drain_n + ticks - 1) / ticks : t->drain_n;
    if (t->drain_batch == 0)
        t->drain_batch = 1;
    on_drain_tick(&t->drain_timer);
    if (t->drain_next < t->drain_n)
        uv_timer_start(&t->drain_timer, on_drain_tick, DRAIN_TICK_MS, DRAIN_TICK_MS);
}

static void do_stop(sm_task_t *task)
{
    ctl_task_t *ct = (ctl_task_t *)task;
    sm_io_thread_t *t = ct->t;
    free(ct);
    t->stopping = true;
    if (t->listening) {
        uv_close((uv_handle_t *)&t->listener, close_cb_free_nothing);
        t->listening = false;
    }
    for (uint32_t i = 0; i < t->nslots; i++) {
        sm_conn_t *c = t->slots[i];
        if (c)
            sm__conn_abort(c, SM_CLOSE_SERVER);
    }
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->timer, close_cb_free_nothing);
    uv_timer_stop(&t->drain_timer);
    uv_close((uv_handle_t *)&t->drain_timer, close_cb_free_nothing);
    uv_close((uv_handle_t *)&t->prepare, close_cb_free_nothing);
    uv_close((uv_handle_t *)&t->outbox_async, close_cb_free_nothing);
    sm_taskq_close(&t->ctl);
    /* Items for workers still waiting here cannot be delivered any more,
     * but the workers still run: push them (wait-free) as a last attempt. */
    retry_overflow(t);
    on_prepare(&t->prepare);
}

static void post_ctl(sm_io_thread_t *t, sm_task_fn fn)
{
    ctl_task_t *ct = sm_xmalloc(sizeof *ct);
    ct->task.run = fn;
    ct->t = t;
    if (sm_taskq_post(&t->ctl, &ct->task) != 0)
        free(ct);
}

void sm_io_thread_drain(sm_io_thread_t *t)
{
    post_ctl(t, do_drain);
}

void sm_io_thread_stop(sm_io_thread_t *t)
{
    post_ctl(t, do_stop);
}

/* ---- thread ---- */

static void on_connection(uv_stream_t *server, int status)
{
    sm_io_thread_t *t = server->data;
    if (status < 0) {
        SM_LOG(SM_LOG_WARN, SM_MSG("accept failed"), SM_STR("error", uv_strerror(status)));
        return;
    }
    sm__conn_accept(t);
}

static void thread_main(void *arg)
{
    sm_io_thread_t *t = arg;
    sm_log_set_thread(t->name);
    int rc = uv_run(&t->loop, UV_RUN_DEFAULT);
    (void)rc;
}

sm_io_thread_t *sm_io_thread_new(sm_server_t *srv, unsigned index, int listen_fd)
{
    sm_io_thread_t *t = sm_xcalloc(1, sizeof *t);
    t->srv = srv;
    t->cfg = srv->cfg;
    t->index = index;
    snprintf(t->name, sizeof t->name, "io-%u", index);
    t->listen_fd = listen_fd;
    SM_ASSERT(uv_loop_init(&t->loop) == 0);
    sm_ring_init(&t->outbox, (size_t)srv->cfg->limits_queue_size);
    atomic_init(&t->room, false);
    uv_async_init(&t->loop, &t->outbox_async, on_outbox);
    t->outbox_async.data = t;
    SM_ASSERT(sm_taskq_init(&t->ctl, &t->loop) == 0);
    uv_prepare_init(&t->loop, &t->prepare);
    t->prepare.data = t;
    uv_prepare_start(&t->prepare, on_prepare);
    uv_timer_init(&t->loop, &t->timer);
    t->timer.data = t;
    uv_timer_init(&t->loop, &t->drain_timer);
    t->drain_timer.data = t;
    sm_list_init(&t->hs_list);
    sm_list_init(&t->hb_list);
    sm_list_init(&t->closing_list);
    unsigned nw = srv->n_workers;
    t->overflow = sm_xcalloc(nw, sizeof *t->overflow);
    t->paused = sm_xcalloc(nw, sizeof *t->paused);
    t->npaused = sm_xcalloc(nw, sizeof *t->npaused);
    t->cap_paused = sm_xcalloc(nw, sizeof *t->cap_paused);
    t->wake_worker = sm_xcalloc(nw, sizeof *t->wake_worker);
    t->rbuf = sm_xmalloc(SM_IO_READ_BUF);
    sm__conn_thread_init(t);
    /* Per thread: with SO_REUSEPORT one client's connections spread over
     * the I/O threads, so the effective limit is up to io_threads times the
     * configured one (docs/configuration.md says so). */
    if (srv->cfg->limits_connect_rate > 0)
        t->connlimit = sm_iplimit_new((double)srv->cfg->limits_connect_rate,
                                      (double)srv->cfg->limits_connect_burst, 65536);
    sm_proxy_mode_t pm = SM_PROXY_OFF;
    sm_proxy_mode_parse(srv->cfg->server_proxy_protocol, &pm);
    t->proxy_mode = (int)pm;
    return t;
}

int sm_io_thread_start(sm_io_thread_t *t)
{
    uv_tcp_init(&t->loop, &t->listener);
    t->listener.data = t;
    int rc = uv_tcp_open(&t->listener, t->listen_fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&t->listener, 1024, on_connection);
    if (rc != 0) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("listen failed"), SM_STR("error", uv_strerror(rc)));
        return SM_EIO;
    }
    t->listening = true;
    if (uv_thread_create(&t->thread, thread_main, t) != 0)
        return SM_EIO;
    return 0;
}

void sm_io_thread_join_free(sm_io_thread_t *t)
{
    if (t == NULL)
        return;
    uv_thread_join(&t->thread);
    /* Everything is closed; release what the loop left. */
    sm_qitem_t it;
    while (sm_ring_pop(&t->outbox, &it))
        sm_obuf_unref(it.ptr);
    sm_ring_destroy(&t->outbox);
    uv_loop_close(&t->loop);
    for (unsigned w = 0; w < t->srv->n_workers; w++) {
        sm_qfifo_t *q = &t->overflow[w];
        for (sm_qitem_t *x; (x = sm_qfifo_peek(q)) != NULL; sm_qfifo_pop(q)) {
            if (x->kind == SM_IN_FRAME)
                free(x->ptr);
        }
        sm_qfifo_destroy(q);
        free(t->paused[w]);
    }
    free(t->overflow);
    free(t->paused);
    free(t->npaused);
    free(t->cap_paused);
    free(t->wake_worker);
    while (t->onode_pool) {
        sm_onode_t *n = t->onode_pool;
        t->onode_pool = n->next;
        free(n);
    }
    while (t->wreq_pool) {
        uv_write_t *w = t->wreq_pool;
        t->wreq_pool = w->data;
        free(w);
    }
    sm_ws_thread_destroy(&t->ws);
    sm_iplimit_free(t->connlimit);
    free(t->drain_list);
    free(t->dirty);
    free(t->slots);
    free(t->gens);
    free(t->free_slots);
    free(t->rbuf);
    free(t);
}
