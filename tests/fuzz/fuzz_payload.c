/*
 * Fuzz target: JSON payload loading and the per-type validators
 * (src/proto/payload.c), which see every JSON payload a peer sends.
 *
 * The input is one payload.  sm_payload_load parses it; every validator (and
 * the sm_payload_validate dispatcher, also for types without a validator)
 * then runs on the result, with and without an error struct.  Checked:
 *   - load succeeds only for an object nested at most SM_PAYLOAD_MAX_DEPTH
 *     levels deep;
 *   - a failure fills the error as documented: code 400, a field name, a
 *     message "<field>: ..." of printable ASCII;
 *   - a success fills the typed struct with what the rules promise: valid
 *     ids, strings whose len is their strlen, a version <= SM_PROTO_VERSION,
 *     arrays of the right element type, objects.
 * The first 32 bytes also go to sm_payload_semver_parse, checked against a
 * plain reimplementation; the PING fast path (sm_payload_ping_fast) must only
 * take payloads the general path accepts as a PING, with the same number.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "fuzz.h"
#include "proto/payload.h"

FUZZ_INITIALIZE_QUIET()

static size_t depth_of(const json_t *v)
{
    size_t d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            size_t x = depth_of(m);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t x = depth_of(json_array_get(v, i));
            d = x > d ? x : d;
        }
        return d + 1;
    }
    return 0;
}

static void check_err(const sm_payload_err_t *e)
{
    FUZZ_CHECK(e->code == 400);
    size_t fl = strnlen(e->field, sizeof e->field);
    FUZZ_CHECK(fl > 0 && fl < sizeof e->field);
    size_t ml = strnlen(e->message, sizeof e->message);
    FUZZ_CHECK(ml < sizeof e->message);
    FUZZ_CHECK(ml > fl + 2 && strncmp(e->message, e->field, fl) == 0);
    FUZZ_CHECK(e->message[fl] == ':' && e->message[fl + 1] == ' ');
    for (size_t i = 0; i < ml; i++)
        FUZZ_CHECK(e->message[i] >= 0x20 && e->message[i] < 0x7f);
}

/* A borrowed string: NULL (absent, when allowed) or NUL-terminated at len. */
static void check_str(sm_payload_str_t s, bool required)
{
    if (s.ptr == NULL) {
        FUZZ_CHECK(!required && s.len == 0);
        return;
    }
    FUZZ_CHECK(strlen(s.ptr) == s.len);
}

static void check_id(sm_payload_str_t s, bool required)
{
    check_str(s, required);
    if (s.ptr)
        FUZZ_CHECK(sm_proto_id_valid(s.ptr, s.len));
}

static void check_version(sm_payload_str_t s)
{
    uint32_t v[3];
    check_str(s, true);
    FUZZ_CHECK(sm_payload_semver_parse(s.ptr, s.len, v) == 0);
    static const uint32_t server[3] = {SM_PROTO_VERSION_MAJOR, SM_PROTO_VERSION_MINOR,
                                       SM_PROTO_VERSION_PATCH};
    bool older = true; /* or equal */
    for (int k = 0; k < 3; k++) {
        if (v[k] != server[k]) {
            older = v[k] < server[k];
            break;
        }
    }
    FUZZ_CHECK(older);
}

static void check_array(const json_t *a, json_type t, bool non_empty)
{
    if (a == NULL) {
        FUZZ_CHECK(!non_empty);
        return;
    }
    FUZZ_CHECK(json_is_array(a));
    FUZZ_CHECK(!non_empty || json_array_size(a) > 0);
    for (size_t i = 0; i < json_array_size(a); i++)
        FUZZ_CHECK(json_typeof(json_array_get(a, i)) == t);
}

static void check_obj(const json_t *o)
{
    FUZZ_CHECK(o == NULL || json_is_object(o));
}

static void check_ok(uint8_t type, const sm_payload_any_t *u)
{
    switch (type) {
    case SM_MSG_CONNECT:
        check_id(u->connect.client_id, true);
        check_str(u->connect.auth_token, true);
        check_version(u->connect.version);
        check_array(u->connect.capabilities, JSON_STRING, false);
        check_obj(u->connect.metadata);
        check_str(u->connect.resume_token, false);
        break;
    case SM_MSG_DISCONNECT:
        check_str(u->disconnect.reason, false);
        break;
    case SM_MSG_PING:
        FUZZ_CHECK(json_is_number(u->ping.timestamp));
        break;
    case SM_MSG_REGISTER:
        check_version(u->reg.version);
        check_id(u->reg.client_id, true);
        check_str(u->reg.auth_token, true);
        check_id(u->reg.room_id, false);
        check_array(u->reg.capabilities, JSON_STRING, false);
        check_obj(u->reg.metadata);
        break;
    case SM_MSG_UNREGISTER:
        check_version(u->unreg.version);
        check_id(u->unreg.client_id, true);
        check_str(u->unreg.auth_token, true);
        break;
    case SM_MSG_ROOM_CREATE:
        check_version(u->room_create.version);
        check_id(u->room_create.client_id, true);
        check_str(u->room_create.auth_token, false);
        check_id(u->room_create.room_id, false);
        check_str(u->room_create.offer_sdp, false);
        check_array(u->room_create.capabilities, JSON_STRING, false);
        check_obj(u->room_create.metadata);
        FUZZ_CHECK(u->room_create.max_participants == 0 || u->room_create.max_participants >= 2);
        break;
    case SM_MSG_ROOM_JOIN:
        check_version(u->room_join.version);
        check_id(u->room_join.client_id, true);
        check_str(u->room_join.auth_token, false);
        check_id(u->room_join.room_id, true);
        check_obj(u->room_join.metadata);
        check_str(u->room_join.offer_sdp, false);
        break;
    case SM_MSG_ROOM_LEAVE:
        check_version(u->room_leave.version);
        check_id(u->room_leave.client_id, true);
        check_str(u->room_leave.auth_token, false);
        check_id(u->room_leave.room_id, true);
        break;
    case SM_MSG_SIGNAL: {
        const sm_payload_signal_t *s = &u->signal;
        check_id(s->target_client_id, true);
        check_str(s->type, true);
        size_t chars = 0;
        for (size_t i = 0; i < s->type.len; i++)
            chars += ((unsigned char)s->type.ptr[i] & 0xC0) != 0x80;
        FUZZ_CHECK(chars >= 1 && chars <= SM_PAYLOAD_SIGNAL_TYPE_MAX);
        check_id(s->room_id, false);
        FUZZ_CHECK(s->data != NULL);
        break;
    }
    case SM_MSG_SESSION_UPDATE: {
        const sm_payload_session_update_t *s = &u->session_update;
        check_id(s->session_id, true);
        FUZZ_CHECK(s->action >= SM_PAYLOAD_ACTION_ANSWER && s->action <= SM_PAYLOAD_ACTION_CLOSE);
        check_str(s->answer_sdp, s->action == SM_PAYLOAD_ACTION_ANSWER);
        check_array(s->tracks, JSON_OBJECT, s->action == SM_PAYLOAD_ACTION_PULL);
        check_array(s->mids, JSON_STRING, s->action == SM_PAYLOAD_ACTION_CLOSE);
        break;
    }
    default:
        FUZZ_CHECK(!"a type without a validator was accepted");
    }
}

static const uint8_t types[] = {
    SM_MSG_CONNECT,
    SM_MSG_DISCONNECT,
    SM_MSG_PING,
    SM_MSG_REGISTER,
    SM_MSG_UNREGISTER,
    SM_MSG_ROOM_CREATE,
    SM_MSG_ROOM_JOIN,
    SM_MSG_ROOM_LEAVE,
    SM_MSG_SIGNAL,
    SM_MSG_SESSION_UPDATE,
    SM_MSG_CONNECT_ACK,
    SM_MSG_ERROR,
    0x00,
    0x41,
};

static void check_semver(const uint8_t *data, size_t size)
{
    size_t n = size < 32 ? size : 32;
    uint32_t got[3] = {7, 7, 7};
    int rc = sm_payload_semver_parse((const char *)data, n, got);
    /* Reference: three dot-separated runs of 1+ digits, each <= UINT32_MAX. */
    uint64_t want[3] = {0, 0, 0};
    size_t i = 0;
    bool ok = true;
    for (int k = 0; k < 3 && ok; k++) {
        if (k > 0) {
            ok = i < n && data[i] == '.';
            i++;
        }
        size_t start = i;
        while (ok && i < n && data[i] >= '0' && data[i] <= '9') {
            want[k] = want[k] * 10 + (data[i] - '0');
            if (want[k] > UINT32_MAX)
                ok = false;
            i++;
        }
        if (i == start)
            ok = false;
    }
    ok = ok && i == n;
    FUZZ_CHECK((rc == 0) == ok);
    if (ok) {
        for (int k = 0; k < 3; k++)
            FUZZ_CHECK(got[k] == want[k]);
    } else {
        FUZZ_CHECK(rc == SM_EINVAL && got[0] == 7 && got[1] == 7 && got[2] == 7);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_semver(data, size);

    /* The PING fast path only takes what the general path accepts as a PING,
     * with the same integer timestamp. */
    sm_payload_str_t ts = {NULL, 0};
    bool fast = sm_payload_ping_fast(data, size, &ts);

    json_t *root = (json_t *)1;
    sm_payload_err_t err;
    memset(&err, 0, sizeof err);
    int rc = sm_payload_load(size ? data : NULL, size, &root, &err);
    if (fast) {
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(ts.ptr >= (const char *)data && ts.ptr + ts.len <= (const char *)data + size);
        sm_payload_ping_t p;
        FUZZ_CHECK(sm_payload_validate_ping(root, &p, NULL) == 0);
        FUZZ_CHECK(json_is_integer(p.timestamp));
        char num[24];
        FUZZ_CHECK(ts.len < sizeof num);
        memcpy(num, ts.ptr, ts.len);
        num[ts.len] = '\0';
        FUZZ_CHECK(json_integer_value(p.timestamp) == strtoll(num, NULL, 10));
    }
    if (rc != 0) {
        FUZZ_CHECK(rc == SM_EINVAL && root == NULL);
        check_err(&err);
        FUZZ_CHECK(strcmp(err.field, "payload") == 0);
        json_t *again = (json_t *)1;
        FUZZ_CHECK(sm_payload_load(size ? data : NULL, size, &again, NULL) == SM_EINVAL);
        FUZZ_CHECK(again == NULL);
        return 0;
    }
    FUZZ_CHECK(json_is_object(root));
    FUZZ_CHECK(depth_of(root) <= SM_PAYLOAD_MAX_DEPTH);

    for (size_t i = 0; i < sizeof types; i++) {
        sm_payload_any_t u;
        memset(&u, 0, sizeof u);
        memset(&err, 0, sizeof err);
        rc = sm_payload_validate(types[i], root, &u, &err);
        if (rc == 0)
            check_ok(types[i], &u);
        else
            check_err(&err);
        FUZZ_CHECK(rc == 0 || rc == SM_EINVAL);
        sm_payload_any_t u2;
        FUZZ_CHECK(sm_payload_validate(types[i], root, &u2, NULL) == rc);
    }
    /* A non-object root is refused by every validator with field "payload". */
    json_t *arr = json_array();
    sm_payload_any_t u;
    memset(&err, 0, sizeof err);
    FUZZ_CHECK(sm_payload_validate(SM_MSG_CONNECT, arr, &u, &err) == SM_EINVAL);
    FUZZ_CHECK(strcmp(err.field, "payload") == 0);
    json_decref(arr);
    json_decref(root);
    return 0;
}
