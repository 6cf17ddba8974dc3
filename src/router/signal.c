/*
 * SIGNAL relay (DECISIONS §6): from the sender's worker straight into the
 * target connection's I/O outbox, no extra hop.
 *
 * Order: a sender's frames are handled one after another on its worker and
 * pushed to the target's outbox, a FIFO, so SIGNALs from one sender to one
 * target arrive in the order they were sent.
 *
 * JSON form: the relayed payload is the sender's JSON object with
 * "from_client_id" added.  The common case splices the field in before the
 * closing brace (no re-serialisation); a payload that already names a
 * from_client_id (a spoof) is rebuilt with jansson so the real sender wins.
 * BINARY form: the leading client id prefix is rewritten to the sender.
 */
#include <stdlib.h>
#include <string.h>

#include <sm/proto.h>
#include <sm/uuid.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "session/session_internal.h"

/* The relayed frame's fresh uuid.  As in sm_reply_begin, a failing CSPRNG
 * gives the nil uuid rather than leaving stack bytes in the frame. */
static void relay_uuid(uint8_t *uuid)
{
    if (sm_uuid_v4(uuid) != 0)
        memset(uuid, 0, SM_PROTO_UUID_SIZE);
}

/* A SIGNAL frame for a JSON payload of len bytes, fresh uuid, header
 * written; the caller writes the payload at *payload, then finishes it with
 * sm_obuf_finish_ws(b, SM_PROTO_HEADER_SIZE + len, 0x2). */
static sm_obuf_t *frame_json_begin(size_t len, char **payload)
{
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    relay_uuid(uuid);
    sm_obuf_t *b = sm_obuf_new(SM_PROTO_HEADER_SIZE + len);
    uint8_t *body = sm_obuf_body(b);
    sm_frame_encode_header(body, SM_MSG_SIGNAL, uuid, SM_PAYLOAD_JSON, len);
    *payload = (char *)body + SM_PROTO_HEADER_SIZE;
    return b;
}

/* Relay payload for the JSON form, or NULL (SM_ETOOBIG) when it would not
 * fit the 16-bit length. */
static sm_obuf_t *relay_json(const sm_frame_t *f, const json_t *root, const char *from)
{
    if (json_object_get(root, "from_client_id") != NULL) {
        json_t *copy = json_deep_copy(root);
        json_object_set_new(copy, "from_client_id", json_string(from));
        char *text = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
        size_t len = strlen(text);
        sm_obuf_t *b = NULL;
        if (len <= SM_PROTO_MAX_PAYLOAD) {
            char *o;
            b = frame_json_begin(len, &o);
            memcpy(o, text, len);
            sm_obuf_finish_ws(b, SM_PROTO_HEADER_SIZE + len, 0x2);
        }
        free(text);
        return b;
    }
    /* The validated payload is one object, maybe followed by whitespace:
     * find its closing brace and whether it has members. */
    const char *p = (const char *)f->payload;
    size_t end = f->length;
    while (end > 0 && p[end - 1] != '}')
        end--;
    size_t first = 1;
    while (first < end - 1 &&
           (p[first] == ' ' || p[first] == '\t' || p[first] == '\n' || p[first] == '\r'))
        first++;
    bool empty = first == end - 1;
    static const char key[] = "\"from_client_id\":\"";
    size_t flen = strlen(from); /* [A-Za-z0-9._:@-]: nothing to escape */
    size_t len = (end - 1) + (empty ? 0 : 1) + sizeof key - 1 + flen + 2;
    if (len > SM_PROTO_MAX_PAYLOAD)
        return NULL;
    char *o;
    sm_obuf_t *b = frame_json_begin(len, &o);
    memcpy(o, p, end - 1);
    o += end - 1;
    if (!empty)
        *o++ = ',';
    memcpy(o, key, sizeof key - 1);
    o += sizeof key - 1;
    memcpy(o, from, flen);
    o += flen;
    *o++ = '"';
    *o++ = '}';
    sm_obuf_finish_ws(b, SM_PROTO_HEADER_SIZE + len, 0x2);
    return b;
}

static sm_obuf_t *relay_binary(const sm_signal_bin_t *bin, const char *from)
{
    size_t flen = strlen(from);
    size_t len = sm_signal_bin_prefix_size(flen) + bin->body_len;
    if (len > SM_PROTO_MAX_PAYLOAD)
        return NULL;
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    relay_uuid(uuid);
    sm_obuf_t *b = sm_obuf_new(SM_PROTO_HEADER_SIZE + len);
    size_t w = 0;
    if (sm_signal_bin_encode_frame(sm_obuf_body(b), b->cap, uuid, from, flen, bin->body,
                                   bin->body_len, &w) != SM_PROTO_OK) {
        sm_obuf_unref(b);
        return NULL;
    }
    sm_obuf_finish_ws(b, w, 0x2);
    return b;
}

void sm__signal_on_frame(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    const char *target;
    size_t tlen;
    sm_payload_signal_t p;
    sm_signal_bin_t bin;
    if (f->payload_type == SM_PAYLOAD_JSON) {
        sm_payload_err_t perr;
        if (sm_payload_validate_signal(root, &p, &perr) != 0) {
            sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
            return;
        }
        target = p.target_client_id.ptr;
        tlen = p.target_client_id.len;
    } else {
        int rc = sm_signal_bin_parse(f->payload, f->length, &bin);
        if (rc != SM_PROTO_OK) {
            sm__sess_bad_frame(s, f->uuid, sm_proto_strerror(rc), "target_client_id");
            return;
        }
        target = bin.client_id;
        tlen = bin.client_id_len;
    }
    if (!sm__sess_require_registered(s, f))
        return;
    sm_reg_holder_t h;
    if (sm_registry_lookup(ss->srv->registry, target, tlen, &h) != 0 || !h.registered ||
        h.conn == SM_HANDLE_NONE) {
        char *t = sm_xstrndup(target, tlen);
        sm__sess_error(s, f->uuid, 404, "target client not found", "target_client_id", t);
        free(t);
        return;
    }
    if (ss->cfg->routing_require_shared_room &&
        !sm_rooms_shared(ss->srv->rooms, s->client_id, strlen(s->client_id), target, tlen)) {
        char *t = sm_xstrndup(target, tlen);
        sm__sess_error(s, f->uuid, 403, "sender and target share no room", "target_client_id", t);
        free(t);
        return;
    }
    sm_obuf_t *b;
    if (f->payload_type == SM_PAYLOAD_JSON) {
        if (p.room_id.ptr)
            sm_rooms_touch(ss->srv->rooms, p.room_id.ptr, p.room_id.len,
                           (int64_t)sm_clock_mono_ms());
        b = relay_json(f, root, s->client_id);
    } else {
        b = relay_binary(&bin, s->client_id);
    }
    if (b == NULL) {
        sm__sess_error(s, f->uuid, 413, "SIGNAL too large once the sender id is added", NULL, NULL);
        return;
    }
    sm_count(&ss->ctr->msgs_out[sm_metric_msg_index(SM_MSG_SIGNAL)], 1);
    sm_worker_send(ss->w, h.conn, b, 0, 0);
}
