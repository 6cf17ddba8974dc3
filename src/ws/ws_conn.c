/*
 * wslay event contexts borrowed per read; see ws_conn.h for the design.
 */
#include "ws/ws_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "core/alloc.h"

struct sm_ws_s {
    wslay_event_context_ptr ctx;
    uint64_t fed;        /* bytes handed to wslay since the context was clean */
    uint64_t consumed;   /* bytes of frames wslay finished */
    uint64_t frame_size; /* size on the wire of the frame being received */
    bool in_fragmented;  /* a data message's continuation frames are pending */
    bool text;           /* current data message is text */
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    (void)flags;
    sm_ws_thread_t *t = user;
    if (t->_in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < t->_in_len ? len : t->_in_len;
    memcpy(buf, t->_in, n);
    t->_in += n;
    t->_in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ctx;
    (void)flags;
    sm_ws_thread_t *t = user;
    t->cb.emit(t->_conn, data, len);
    return (ssize_t)len; /* the connection layer always accepts everything */
}

static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    sm_ws_t *ws = ((sm_ws_thread_t *)user)->_cur;
    uint64_t n = arg->payload_length;
    ws->frame_size = 2 + 4 + n + (n >= 126 ? (n > 0xffff ? 8 : 2) : 0);
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        ws->in_fragmented = !arg->fin;
        ws->text = arg->opcode == WSLAY_TEXT_FRAME;
        if (ws->text) {
            /* DECISIONS §1: text messages close the connection with 1003. */
            static const char why[] = "text frames are not supported";
            wslay_event_queue_close(ctx, 1003, (const uint8_t *)why, sizeof why - 1);
            wslay_event_shutdown_read(ctx);
        }
    } else if (arg->opcode == WSLAY_CONTINUATION_FRAME && arg->fin) {
        ws->in_fragmented = false;
    }
}

static void frame_end_cb(wslay_event_context_ptr ctx, void *user)
{
    (void)ctx;
    sm_ws_t *ws = ((sm_ws_thread_t *)user)->_cur;
    ws->consumed += ws->frame_size;
    ws->frame_size = 0;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    (void)ctx;
    sm_ws_thread_t *t = user;
    if (arg->opcode == WSLAY_BINARY_FRAME && wslay_event_get_read_enabled(ctx))
        t->cb.on_binary(t->_conn, arg->msg, arg->msg_length);
}

static const struct wslay_event_callbacks wslay_cbs = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = frame_start_cb,
    .on_frame_recv_end_callback = frame_end_cb,
    .on_msg_recv_callback = msg_cb,
};

static sm_ws_t *ws_new(sm_ws_thread_t *t)
{
    sm_ws_t *ws = sm_xcalloc(1, sizeof *ws);
    if (wslay_event_context_server_init(&ws->ctx, &wslay_cbs, t) != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, t->max_message);
    return ws;
}

static void ws_free(sm_ws_t *ws)
{
    if (ws) {
        wslay_event_context_free(ws->ctx);
        free(ws);
    }
}

void sm_ws_thread_init(sm_ws_thread_t *t, const sm_ws_callbacks_t *cb, uint64_t max_message)
{
    memset(t, 0, sizeof *t);
    t->cb = *cb;
    t->max_message = max_message;
}

void sm_ws_thread_destroy(sm_ws_thread_t *t)
{
    ws_free(t->_spare);
    t->_spare = NULL;
}

static bool is_clean(sm_ws_t *ws)
{
    return ws->fed == ws->consumed && ws->frame_size == 0 && !ws->in_fragmented &&
           wslay_event_get_read_enabled(ws->ctx) && !wslay_event_get_close_sent(ws->ctx) &&
           !wslay_event_get_close_received(ws->ctx) &&
           wslay_event_get_queued_msg_count(ws->ctx) == 0 && !wslay_event_want_write(ws->ctx);
}

void sm_ws_feed(sm_ws_thread_t *t, sm_ws_t **slot, void *conn, const uint8_t *data, size_t len,
                bool server_closing, sm_ws_result_t *res)
{
    memset(res, 0, sizeof *res);
    sm_ws_t *ws = *slot;
    if (ws == NULL) {
        if (t->_spare) {
            ws = t->_spare;
            t->_spare = NULL;
        } else if ((ws = ws_new(t)) == NULL) {
            res->fatal = true;
            return;
        }
        *slot = ws;
    }
    t->_conn = conn;
    t->_in = data;
    t->_in_len = len;
    t->_cur = ws;
    ws->fed += len;

    if (server_closing) {
        /* Only the peer's close frame matters now; make wslay not answer. */
        wslay_event_shutdown_write(ws->ctx);
    }
    int r = wslay_event_recv(ws->ctx);
    if (r == WSLAY_ERR_NOMEM) {
        res->fatal = true;
    }
    if (!server_closing && wslay_event_send(ws->ctx) != 0)
        res->fatal = true;
    t->_cur = NULL;
    t->_conn = NULL;
    t->_in = NULL;
    t->_in_len = 0;

    res->close_received = wslay_event_get_close_received(ws->ctx) != 0;
    res->close_sent = wslay_event_get_close_sent(ws->ctx) != 0;
    if (res->close_sent)
        res->code_sent = wslay_event_get_status_code_sent(ws->ctx);
    if (res->close_received)
        res->code_recv = wslay_event_get_status_code_received(ws->ctx);
    res->text_rejected = ws->text && res->close_sent && res->code_sent == 1003;

    if (!res->fatal && !server_closing && is_clean(ws)) {
        ws->fed = ws->consumed = 0;
        *slot = NULL;
        if (t->_spare == NULL)
            t->_spare = ws;
        else
            ws_free(ws);
    }
}

void sm_ws_release(sm_ws_thread_t *t, sm_ws_t **slot)
{
    (void)t;
    ws_free(*slot);
    *slot = NULL;
}
