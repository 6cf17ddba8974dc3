/*
 * Unit tests for src/proto/payload.c: loading JSON payloads and the
 * per-type validators.  The generic field rules (required, string type, id
 * pattern, version, capabilities, metadata, unknown fields) are driven from
 * a table of message specs, each case a valid base payload with one field
 * changed; the type-specific rules have their own tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "proto/payload.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define MSG_ID "must be 1-128 characters of [A-Za-z0-9._:@-]"
#define MSG_VERSION "must be MAJOR.MINOR.PATCH in decimal digits, e.g. 1.0.0"

/* ---- helpers ---- */

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* base with key set to the JSON value `value`, or removed when value is NULL. */
static json_t *mutate(const char *base, const char *key, const char *value)
{
    json_t *root = parse(base);
    if (value == NULL)
        json_object_del(root, key);
    else
        json_object_set_new(root, key, parse(value));
    return root;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
}

/* Validate `root` as `type`; expect success when field is NULL, else a
 * failure on `field` with exactly `message` ("<field>: " is prepended). */
static void check(uint8_t type, json_t *root, const char *field, const char *message)
{
    sm_payload_any_t out;
    sm_payload_err_t err;
    memset(&err, 0, sizeof(err));
    int rc = sm_payload_validate(type, root, &out, &err);
    char *text = dump(root);
    if (field == NULL) {
        if (rc != 0)
            fail_msg("%s %s: expected success, got \"%s\"", sm_msg_type_name(type), text,
                     err.message);
    } else {
        char want[256];
        snprintf(want, sizeof(want), "%s: %s", field, message);
        if (rc != SM_EINVAL || err.code != 400 || strcmp(err.field, field) != 0 ||
            strcmp(err.message, want) != 0)
            fail_msg("%s %s: expected rc %d code 400 \"%s\", got rc %d code %d field \"%s\" "
                     "\"%s\"",
                     sm_msg_type_name(type), text, SM_EINVAL, want, rc, err.code, err.field,
                     err.message);
    }
    free(text);
}

static void check_mut(uint8_t type, const char *base, const char *key, const char *value,
                      const char *field, const char *message)
{
    json_t *root = mutate(base, key, value);
    check(type, root, field, message);
    json_decref(root);
}

/* ---- generic rules, table-driven ---- */

#define MAXF 6

typedef struct {
    uint8_t type;
    const char *base;
    const char *req_strings[MAXF]; /* required string fields (ids included) */
    const char *ids[MAXF];         /* id-pattern fields, required or optional */
    const char *opt_strings[MAXF]; /* optional string fields (ids included) */
    bool version;
    bool capabilities;
    bool metadata;
} spec_t;

static const spec_t specs[] = {
    {SM_MSG_CONNECT,
     "{\"client_id\":\"test_client_1\",\"auth_token\":\"test_token_1\",\"version\":\"1.0.0\"}",
     {"client_id", "auth_token", "version"},
     {"client_id"},
     {"resume_token"},
     true,
     true,
     true},
    {SM_MSG_DISCONNECT, "{}", {NULL}, {NULL}, {"reason"}, false, false, false},
    {SM_MSG_REGISTER,
     "{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"auth_token\":\"t\"}",
     {"version", "client_id", "auth_token"},
     {"client_id", "room_id"},
     {"room_id"},
     true,
     true,
     true},
    {SM_MSG_UNREGISTER,
     "{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"auth_token\":\"t\"}",
     {"version", "client_id", "auth_token"},
     {"client_id"},
     {NULL},
     true,
     false,
     false},
    {SM_MSG_ROOM_CREATE,
     "{\"version\":\"1.0.0\",\"client_id\":\"c1\"}",
     {"version", "client_id"},
     {"client_id", "room_id"},
     {"auth_token", "room_id", "offer_sdp"},
     true,
     true,
     true},
    {SM_MSG_ROOM_JOIN,
     "{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"room_id\":\"r1\"}",
     {"version", "client_id", "room_id"},
     {"client_id", "room_id"},
     {"auth_token", "offer_sdp"},
     true,
     false,
     true},
    {SM_MSG_ROOM_LEAVE,
     "{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"room_id\":\"r1\"}",
     {"version", "client_id", "room_id"},
     {"client_id", "room_id"},
     {"auth_token"},
     true,
     false,
     false},
    {SM_MSG_SIGNAL,
     "{\"target_client_id\":\"bob\",\"type\":\"offer\",\"data\":{\"sdp\":\"v=0\"}}",
     {"target_client_id", "type"},
     {"target_client_id", "room_id"},
     {"room_id"},
     false,
     false,
     false},
    {SM_MSG_SESSION_UPDATE,
     "{\"session_id\":\"abc\",\"action\":\"answer\",\"answer_sdp\":\"v=0\"}",
     {"session_id", "action"},
     {"session_id"},
     {NULL},
     false,
     false,
     false},
};

static void test_base_payloads_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        json_t *root = parse(specs[i].base);
        check(specs[i].type, root, NULL, NULL);
        json_decref(root);
    }
}

static void test_root_not_object(void **state)
{
    (void)state;
    static const char *roots[] = {"[]", "[{}]", "\"x\"", "1", "null", "true"};
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        for (size_t k = 0; k < COUNT_OF(roots); k++) {
            json_t *root = parse(roots[k]);
            check(specs[i].type, root, "payload", "must be a JSON object");
            json_decref(root);
        }
    }
    /* A NULL root is only fine for DISCONNECT (NONE payload). */
    sm_payload_err_t err;
    sm_payload_any_t out;
    assert_int_equal(sm_payload_validate(SM_MSG_PING, NULL, &out, &err), SM_EINVAL);
    assert_string_equal(err.message, "payload: must be a JSON object");
    assert_int_equal(sm_payload_validate(SM_MSG_DISCONNECT, NULL, &out, &err), 0);
    assert_null(out.disconnect.reason.ptr);
}

static void test_required_missing_or_wrong_type(void **state)
{
    (void)state;
    static const char *not_strings[] = {"5", "null", "[]", "{}", "true", "1.5"};
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        const spec_t *s = &specs[i];
        for (size_t f = 0; f < MAXF && s->req_strings[f]; f++) {
            const char *key = s->req_strings[f];
            check_mut(s->type, s->base, key, NULL, key, "required field missing");
            for (size_t k = 0; k < COUNT_OF(not_strings); k++)
                check_mut(s->type, s->base, key, not_strings[k], key, "must be a string");
        }
    }
}

static void test_optional_strings(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        const spec_t *s = &specs[i];
        for (size_t f = 0; f < MAXF && s->opt_strings[f]; f++) {
            const char *key = s->opt_strings[f];
            check_mut(s->type, s->base, key, NULL, NULL, NULL);
            check_mut(s->type, s->base, key, "null", NULL, NULL); /* null = absent */
            check_mut(s->type, s->base, key, "\"x1\"", NULL, NULL);
            check_mut(s->type, s->base, key, "5", key, "must be a string");
            check_mut(s->type, s->base, key, "[\"x\"]", key, "must be a string");
            check_mut(s->type, s->base, key, "false", key, "must be a string");
        }
    }
}

static void test_id_patterns(void **state)
{
    (void)state;
    char long128[132], long129[134];
    snprintf(long128, sizeof(long128), "\"%0128d\"", 0);
    snprintf(long129, sizeof(long129), "\"%0129d\"", 0);
    const char *bad[] = {"\"\"",      long129,     "\"a b\"",   "\"a/b\"", "\"caf\\u00e9\"",
                         "\"a\\nb\"", "\"a\\tb\"", "\"a#b\"",   "\"<x>\"", "\"a,b\"",
                         "\"a+b\"",   "\"a%20b\"", "\"a\\\"b\""};
    const char *good[] = {long128, "\"a\"", "\"A-z.0_9:@x\"", "\"user@example.com\"",
                          "\"550e8400-e29b-41d4-a716-446655440000\""};
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        const spec_t *s = &specs[i];
        for (size_t f = 0; f < MAXF && s->ids[f]; f++) {
            const char *key = s->ids[f];
            for (size_t k = 0; k < COUNT_OF(bad); k++)
                check_mut(s->type, s->base, key, bad[k], key, MSG_ID);
            for (size_t k = 0; k < COUNT_OF(good); k++)
                check_mut(s->type, s->base, key, good[k], NULL, NULL);
        }
    }
}

static void test_version(void **state)
{
    (void)state;
    static const char *malformed[] = {
        "\"\"",
        "\"1\"",
        "\"1.0\"",
        "\"1.0.0.0\"",
        "\"1..0\"",
        "\".1.0\"",
        "\"1.0.\"",
        "\"a.b.c\"",
        "\"1.0.x\"",
        "\"1.0.0-beta\"",
        "\"v1.0.0\"",
        "\" 1.0.0\"",
        "\"1.0.0 \"",
        "\"+1.0.0\"",
        "\"-1.0.0\"",
        "\"1.-0.0\"",
        "\"1.0.0\\n\"",
        "\"1,0,0\"",
        "\"1.0.0+b1\"",
        "\"\\u0661.0.0\"",
        "\"4294967296.0.0\"",
        "\"0.4294967296.0\"",
        "\"0.0.99999999999999999999\"",
    };
    static const struct {
        const char *json, *text;
    } newer[] = {
        {"\"2.0.0\"", "2.0.0"},   {"\"1.0.1\"", "1.0.1"},
        {"\"1.1.0\"", "1.1.0"},   {"\"1.10.0\"", "1.10.0"},
        {"\"10.0.0\"", "10.0.0"}, {"\"4294967295.0.0\"", "4294967295.0.0"},
        {"\"01.0.1\"", "01.0.1"},
    };
    static const char *ok[] = {"\"1.0.0\"",   "\"0.9.9\"",       "\"0.0.0\"",
                               "\"0.99.99\"", "\"001.000.000\"", "\"0.4294967295.4294967295\""};
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        const spec_t *s = &specs[i];
        if (!s->version) {
            /* Types without a version ignore one, even a bad one. */
            check_mut(s->type, s->base, "version", "\"99.0.0\"", NULL, NULL);
            continue;
        }
        for (size_t k = 0; k < COUNT_OF(malformed); k++)
            check_mut(s->type, s->base, "version", malformed[k], "version", MSG_VERSION);
        for (size_t k = 0; k < COUNT_OF(newer); k++) {
            char msg[128];
            snprintf(msg, sizeof(msg), "%s is newer than the server protocol version 1.0.0",
                     newer[k].text);
            check_mut(s->type, s->base, "version", newer[k].json, "version", msg);
        }
        for (size_t k = 0; k < COUNT_OF(ok); k++)
            check_mut(s->type, s->base, "version", ok[k], NULL, NULL);
    }
}

static void test_capabilities_metadata(void **state)
{
    (void)state;
    static const char *bad_caps[] = {"\"webrtc\"", "[1]",       "[\"a\",null]",
                                     "{}",         "[[\"a\"]]", "true"};
    static const char *ok_caps[] = {"[]", "[\"websocket\",\"heartbeat\",\"webrtc\"]", "null"};
    static const char *bad_meta[] = {"[]", "\"x\"", "1", "true", "[{}]"};
    static const char *ok_meta[] = {"{}", "null", "{\"platform\":\"web\",\"n\":[1,{\"a\":null}]}"};
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        const spec_t *s = &specs[i];
        for (size_t k = 0; k < COUNT_OF(bad_caps); k++)
            check_mut(s->type, s->base, "capabilities", bad_caps[k],
                      s->capabilities ? "capabilities" : NULL, "must be an array of strings");
        for (size_t k = 0; k < COUNT_OF(ok_caps); k++)
            check_mut(s->type, s->base, "capabilities", ok_caps[k], NULL, NULL);
        for (size_t k = 0; k < COUNT_OF(bad_meta); k++)
            check_mut(s->type, s->base, "metadata", bad_meta[k], s->metadata ? "metadata" : NULL,
                      "must be an object");
        for (size_t k = 0; k < COUNT_OF(ok_meta); k++)
            check_mut(s->type, s->base, "metadata", ok_meta[k], NULL, NULL);
    }
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    static const char *extra[] = {"{\"nested\":[1,2,{\"x\":null}]}", "null", "\"s\"", "42"};
    for (size_t i = 0; i < COUNT_OF(specs); i++) {
        for (size_t k = 0; k < COUNT_OF(extra); k++) {
            check_mut(specs[i].type, specs[i].base, "zz_unknown", extra[k], NULL, NULL);
            check_mut(specs[i].type, specs[i].base, "Client_ID", extra[k], NULL, NULL);
        }
    }
}

static void test_check_order(void **state)
{
    (void)state;
    /* Several problems: the first in field order is reported. */
    json_t *r = parse("{\"client_id\":\"a b\",\"version\":\"9.0.0\"}");
    check(SM_MSG_CONNECT, r, "client_id", MSG_ID);
    check(SM_MSG_REGISTER, r, "version", "9.0.0 is newer than the server protocol version 1.0.0");
    json_decref(r);
    r = parse("{\"client_id\":\"ok\",\"version\":\"9.0.0\"}");
    check(SM_MSG_CONNECT, r, "auth_token", "required field missing");
    json_decref(r);
    r = parse("{}");
    check(SM_MSG_CONNECT, r, "client_id", "required field missing");
    check(SM_MSG_REGISTER, r, "version", "required field missing");
    check(SM_MSG_SIGNAL, r, "target_client_id", "required field missing");
    check(SM_MSG_SESSION_UPDATE, r, "session_id", "required field missing");
    check(SM_MSG_PING, r, "timestamp", "required field missing");
    json_decref(r);
}

/* ---- type-specific ---- */

static void test_connect_output(void **state)
{
    (void)state;
    json_t *r = parse("{\"client_id\":\"test_client_1\",\"auth_token\":\"tok\",\"version\":"
                      "\"0.9.0\",\"capabilities\":[\"webrtc\"],\"metadata\":{\"a\":1},"
                      "\"resume_token\":\"rt\"}");
    sm_payload_connect_t c;
    sm_payload_err_t err;
    assert_int_equal(sm_payload_validate_connect(r, &c, &err), 0);
    assert_string_equal(c.client_id.ptr, "test_client_1");
    assert_int_equal(c.client_id.len, 13);
    /* Borrowed: the pointer is the tree's own string. */
    assert_ptr_equal(c.client_id.ptr, json_string_value(json_object_get(r, "client_id")));
    assert_string_equal(c.auth_token.ptr, "tok");
    assert_int_equal(c.auth_token.len, 3);
    assert_string_equal(c.version.ptr, "0.9.0");
    assert_ptr_equal(c.capabilities, json_object_get(r, "capabilities"));
    assert_ptr_equal(c.metadata, json_object_get(r, "metadata"));
    assert_string_equal(c.resume_token.ptr, "rt");
    json_decref(r);

    r = parse("{\"client_id\":\"c\",\"auth_token\":\"\",\"version\":\"1.0.0\","
              "\"capabilities\":null,\"metadata\":null,\"resume_token\":null}");
    assert_int_equal(sm_payload_validate_connect(r, &c, &err), 0);
    assert_int_equal(c.auth_token.len, 0); /* empty token: auth answers 401 */
    assert_null(c.capabilities);
    assert_null(c.metadata);
    assert_null(c.resume_token.ptr);
    assert_int_equal(c.resume_token.len, 0);
    json_decref(r);
}

static void test_out_untouched_on_failure(void **state)
{
    (void)state;
    json_t *r = parse("{\"client_id\":\"c\",\"auth_token\":\"t\",\"version\":\"3.0.0\"}");
    sm_payload_connect_t c, ref;
    memset(&c, 0xA5, sizeof(c));
    memcpy(&ref, &c, sizeof(c));
    sm_payload_err_t err;
    assert_int_equal(sm_payload_validate_connect(r, &c, &err), SM_EINVAL);
    assert_memory_equal(&c, &ref, sizeof(c));
    /* err may be NULL. */
    assert_int_equal(sm_payload_validate_connect(r, &c, NULL), SM_EINVAL);
    json_decref(r);
}

static void test_disconnect(void **state)
{
    (void)state;
    json_t *r = parse("{\"reason\":\"bye\"}");
    sm_payload_disconnect_t d;
    sm_payload_err_t err;
    assert_int_equal(sm_payload_validate_disconnect(r, &d, &err), 0);
    assert_string_equal(d.reason.ptr, "bye");
    json_decref(r);
    r = parse("{}");
    assert_int_equal(sm_payload_validate_disconnect(r, &d, &err), 0);
    assert_null(d.reason.ptr);
    json_decref(r);
}

static void test_ping(void **state)
{
    (void)state;
    static const char *ok[] = {"1704110400000", "0", "-1", "1.5", "1e3", "9007199254740993"};
    static const char *bad[] = {"\"1704110400000\"", "null", "true", "[]", "{}"};
    const char *base = "{\"timestamp\":1}";
    for (size_t k = 0; k < COUNT_OF(ok); k++)
        check_mut(SM_MSG_PING, base, "timestamp", ok[k], NULL, NULL);
    for (size_t k = 0; k < COUNT_OF(bad); k++)
        check_mut(SM_MSG_PING, base, "timestamp", bad[k], "timestamp", "must be a number");
    check_mut(SM_MSG_PING, base, "timestamp", NULL, "timestamp", "required field missing");

    json_t *r = parse("{\"timestamp\":1704110400000,\"extra\":1}");
    sm_payload_ping_t p;
    assert_int_equal(sm_payload_validate_ping(r, &p, NULL), 0);
    assert_ptr_equal(p.timestamp, json_object_get(r, "timestamp"));
    assert_int_equal(json_integer_value(p.timestamp), 1704110400000LL);
    json_decref(r);
}

/* The PING fast path accepts only {"timestamp":<integer>} and never a payload
 * the general path would reject; what it accepts, the general path accepts
 * with the same number. */
static void test_ping_fast(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *ts; /* NULL: not taken by the fast path */
    } cases[] = {
        {"{\"timestamp\":1704110400000}", "1704110400000"},
        {" {\r\n\t\"timestamp\" : -42 }\n", "-42"},
        {"{\"timestamp\":0}", "0"},
        {"{\"timestamp\":-0}", "-0"},
        {"{\"timestamp\":999999999999999999}", "999999999999999999"}, /* 18 digits */
        {"{\"timestamp\":1000000000000000000}", NULL},                 /* 19: general path */
        {"{\"timestamp\":1.5}", NULL},
        {"{\"timestamp\":1e3}", NULL},
        {"{\"timestamp\":01}", NULL},
        {"{\"timestamp\":-}", NULL},
        {"{\"timestamp\":}", NULL},
        {"{\"timestamp\":\"1\"}", NULL},
        {"{\"timestamp\":1,\"x\":2}", NULL},
        {"{\"x\":2,\"timestamp\":1}", NULL},
        {"{\"timestamp\":1}{", NULL},
        {"{\"timestamp\":1", NULL},
        {"{\"timestamp\":1}x", NULL},
        {"{\"time\\u0073tamp\":1}", NULL},
        {"{\"timestamp\" 1}", NULL},
        {"{}", NULL},
        {"", NULL},
        {"[1]", NULL},
    };
    for (size_t k = 0; k < COUNT_OF(cases); k++) {
        const char *in = cases[k].in;
        sm_payload_str_t ts = {NULL, 0};
        bool fast = sm_payload_ping_fast(in, strlen(in), &ts);
        if (cases[k].ts == NULL) {
            assert_false(fast);
            continue;
        }
        assert_true(fast);
        assert_int_equal(ts.len, strlen(cases[k].ts));
        assert_memory_equal(ts.ptr, cases[k].ts, ts.len);
        /* the general path agrees */
        json_t *root = NULL;
        assert_int_equal(sm_payload_load(in, strlen(in), &root, NULL), 0);
        sm_payload_ping_t p;
        assert_int_equal(sm_payload_validate_ping(root, &p, NULL), 0);
        assert_true(json_is_integer(p.timestamp));
        assert_int_equal(json_integer_value(p.timestamp), strtoll(cases[k].ts, NULL, 10));
        json_decref(root);
    }
}

static void test_register(void **state)
{
    (void)state;
    json_t *r = parse("{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"auth_token\":\"t\","
                      "\"room_id\":null}");
    sm_payload_register_t g;
    assert_int_equal(sm_payload_validate_register(r, &g, NULL), 0);
    assert_null(g.room_id.ptr);
    assert_string_equal(g.client_id.ptr, "c1");
    json_decref(r);
    r = parse("{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"auth_token\":\"t\","
              "\"room_id\":\"room-1\"}");
    assert_int_equal(sm_payload_validate_register(r, &g, NULL), 0);
    assert_string_equal(g.room_id.ptr, "room-1");
    assert_int_equal(g.room_id.len, 6);
    json_decref(r);
}

static void test_room_create_max_participants(void **state)
{
    (void)state;
    const char *base = "{\"version\":\"1.0.0\",\"client_id\":\"c1\"}";
    static const char *bad[] = {
        "{\"max_participants\":1}",    "{\"max_participants\":0}",
        "{\"max_participants\":-5}",   "{\"max_participants\":2.5}",
        "{\"max_participants\":10.0}", "{\"max_participants\":\"10\"}",
        "{\"max_participants\":true}", "{\"max_participants\":[10]}",
    };
    for (size_t k = 0; k < COUNT_OF(bad); k++)
        check_mut(SM_MSG_ROOM_CREATE, base, "metadata", bad[k], "metadata.max_participants",
                  "must be an integer >= 2");

    sm_payload_room_create_t c;
    json_t *r = mutate(base, "metadata", "{\"max_participants\":2,\"room_name\":\"x\"}");
    assert_int_equal(sm_payload_validate_room_create(r, &c, NULL), 0);
    assert_int_equal(c.max_participants, 2);
    json_decref(r);
    r = mutate(base, "metadata", "{\"max_participants\":10000}");
    assert_int_equal(sm_payload_validate_room_create(r, &c, NULL), 0);
    assert_int_equal(c.max_participants, 10000); /* the cap is the rooms module's */
    json_decref(r);
    r = mutate(base, "metadata", "{\"max_participants\":null}");
    assert_int_equal(sm_payload_validate_room_create(r, &c, NULL), 0);
    assert_int_equal(c.max_participants, 0);
    json_decref(r);
    r = parse("{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"auth_token\":\"t\",\"room_id\":"
              "\"r-1\",\"offer_sdp\":\"v=0\\r\\n\",\"capabilities\":[\"video\"]}");
    assert_int_equal(sm_payload_validate_room_create(r, &c, NULL), 0);
    assert_int_equal(c.max_participants, 0);
    assert_null(c.metadata);
    assert_string_equal(c.room_id.ptr, "r-1");
    assert_string_equal(c.offer_sdp.ptr, "v=0\r\n");
    assert_string_equal(c.auth_token.ptr, "t");
    assert_non_null(c.capabilities);
    json_decref(r);
    /* max_participants outside metadata means nothing. */
    check_mut(SM_MSG_ROOM_CREATE, base, "max_participants", "1", NULL, NULL);
}

static void test_room_join_leave_output(void **state)
{
    (void)state;
    json_t *r = parse("{\"version\":\"1.0.0\",\"client_id\":\"c1\",\"room_id\":\"r1\","
                      "\"offer_sdp\":\"o\",\"metadata\":{}}");
    sm_payload_room_join_t j;
    assert_int_equal(sm_payload_validate_room_join(r, &j, NULL), 0);
    assert_string_equal(j.room_id.ptr, "r1");
    assert_string_equal(j.offer_sdp.ptr, "o");
    assert_non_null(j.metadata);
    assert_null(j.auth_token.ptr);
    sm_payload_room_leave_t l;
    assert_int_equal(sm_payload_validate_room_leave(r, &l, NULL), 0);
    assert_string_equal(l.room_id.ptr, "r1");
    assert_int_equal(l.client_id.len, 2);
    json_decref(r);
}

static void test_signal(void **state)
{
    (void)state;
    const char *base = "{\"target_client_id\":\"bob\",\"type\":\"offer\",\"data\":1}";
    /* data: required, any value, null allowed; absent is an error. */
    static const char *data_ok[] = {"null", "0", "\"s\"", "[]", "{\"sdp\":\"v=0\"}", "false"};
    for (size_t k = 0; k < COUNT_OF(data_ok); k++)
        check_mut(SM_MSG_SIGNAL, base, "data", data_ok[k], NULL, NULL);
    check_mut(SM_MSG_SIGNAL, base, "data", NULL, "data", "required field missing");

    /* type: 1..64 characters, any text. */
    char t64[80], t65[80], u64[300], u65[300];
    snprintf(t64, sizeof(t64), "\"%064d\"", 0);
    snprintf(t65, sizeof(t65), "\"%065d\"", 0);
    /* 64 and 65 two-byte characters (e with acute) */
    strcpy(u64, "\"");
    for (int i = 0; i < 64; i++)
        strcat(u64, "\xc3\xa9");
    strcpy(u65, u64);
    strcat(u64, "\"");
    strcat(u65, "\xc3\xa9\"");
    static const char *msg = "must be a non-empty string of at most 64 characters";
    check_mut(SM_MSG_SIGNAL, base, "type", "\"\"", "type", msg);
    check_mut(SM_MSG_SIGNAL, base, "type", t65, "type", msg);
    check_mut(SM_MSG_SIGNAL, base, "type", u65, "type", msg);
    check_mut(SM_MSG_SIGNAL, base, "type", t64, NULL, NULL);
    check_mut(SM_MSG_SIGNAL, base, "type", u64, NULL, NULL);
    check_mut(SM_MSG_SIGNAL, base, "type", "\"candidate\"", NULL, NULL);
    check_mut(SM_MSG_SIGNAL, base, "type", "\"my-app/cursor move\"", NULL, NULL);

    json_t *r = parse("{\"target_client_id\":\"bob\",\"type\":\"answer\",\"room_id\":\"r\","
                      "\"data\":null}");
    sm_payload_signal_t s;
    assert_int_equal(sm_payload_validate_signal(r, &s, NULL), 0);
    assert_string_equal(s.target_client_id.ptr, "bob");
    assert_int_equal(s.target_client_id.len, 3);
    assert_string_equal(s.type.ptr, "answer");
    assert_string_equal(s.room_id.ptr, "r");
    assert_non_null(s.data);
    assert_true(json_is_null(s.data));
    json_decref(r);
}

static void test_session_update(void **state)
{
    (void)state;
    const char *ans = "{\"session_id\":\"abc\",\"action\":\"answer\",\"answer_sdp\":\"v=0\"}";
    const char *pull = "{\"session_id\":\"abc\",\"action\":\"pull\","
                       "\"tracks\":[{\"session_id\":\"s\",\"track_name\":\"t\"}]}";
    const char *cls = "{\"session_id\":\"abc\",\"action\":\"close\",\"mids\":[\"0\",\"1\"]}";
    check_mut(SM_MSG_SESSION_UPDATE, ans, "action", "\"pull\"", "tracks", "required field missing");
    check_mut(SM_MSG_SESSION_UPDATE, ans, "action", "\"close\"", "mids", "required field missing");
    check_mut(SM_MSG_SESSION_UPDATE, ans, "answer_sdp", NULL, "answer_sdp",
              "required for action \"answer\"");
    check_mut(SM_MSG_SESSION_UPDATE, ans, "answer_sdp", "null", "answer_sdp",
              "required for action \"answer\"");
    check_mut(SM_MSG_SESSION_UPDATE, ans, "answer_sdp", "1", "answer_sdp", "must be a string");
    static const char *bad_action[] = {"\"ANSWER\"", "\"\"", "\"renegotiate\"", "\"answer \""};
    for (size_t k = 0; k < COUNT_OF(bad_action); k++)
        check_mut(SM_MSG_SESSION_UPDATE, ans, "action", bad_action[k], "action",
                  "must be \"answer\", \"pull\" or \"close\"");

    check_mut(SM_MSG_SESSION_UPDATE, pull, "tracks", "[]", "tracks",
              "must be a non-empty array of objects");
    check_mut(SM_MSG_SESSION_UPDATE, pull, "tracks", "{}", "tracks", "must be an array of objects");
    check_mut(SM_MSG_SESSION_UPDATE, pull, "tracks", "[\"t\"]", "tracks",
              "must be an array of objects");
    check_mut(SM_MSG_SESSION_UPDATE, cls, "mids", "[]", "mids",
              "must be a non-empty array of strings");
    check_mut(SM_MSG_SESSION_UPDATE, cls, "mids", "[0]", "mids", "must be an array of strings");
    check_mut(SM_MSG_SESSION_UPDATE, cls, "mids", "\"0\"", "mids", "must be an array of strings");
    /* Optional for the other actions, but typed when present. */
    check_mut(SM_MSG_SESSION_UPDATE, ans, "tracks", "[]", NULL, NULL);
    check_mut(SM_MSG_SESSION_UPDATE, ans, "tracks", "5", "tracks", "must be an array of objects");
    check_mut(SM_MSG_SESSION_UPDATE, ans, "mids", "[1]", "mids", "must be an array of strings");

    sm_payload_session_update_t u;
    json_t *r = parse(ans);
    assert_int_equal(sm_payload_validate_session_update(r, &u, NULL), 0);
    assert_int_equal(u.action, SM_PAYLOAD_ACTION_ANSWER);
    assert_string_equal(u.answer_sdp.ptr, "v=0");
    assert_null(u.tracks);
    assert_null(u.mids);
    json_decref(r);
    r = parse(pull);
    assert_int_equal(sm_payload_validate_session_update(r, &u, NULL), 0);
    assert_int_equal(u.action, SM_PAYLOAD_ACTION_PULL);
    assert_int_equal(json_array_size(u.tracks), 1);
    assert_null(u.answer_sdp.ptr);
    json_decref(r);
    r = parse(cls);
    assert_int_equal(sm_payload_validate_session_update(r, &u, NULL), 0);
    assert_int_equal(u.action, SM_PAYLOAD_ACTION_CLOSE);
    assert_int_equal(json_array_size(u.mids), 2);
    json_decref(r);
}

static void test_dispatch_unsupported(void **state)
{
    (void)state;
    json_t *r = parse("{}");
    static const uint8_t types[] = {SM_MSG_CONNECT_ACK, SM_MSG_ERROR, SM_MSG_ROOM_EVENT, 0x99};
    for (size_t k = 0; k < COUNT_OF(types); k++) {
        sm_payload_any_t out;
        sm_payload_err_t err;
        assert_int_equal(sm_payload_validate(types[k], r, &out, &err), SM_EINVAL);
        assert_int_equal(err.code, 400);
        assert_string_equal(err.field, "type");
    }
    sm_payload_any_t out;
    sm_payload_err_t err;
    sm_payload_validate(0x99, r, &out, &err);
    assert_string_equal(err.message, "type: no JSON payload is accepted for message type UNKNOWN");
    json_decref(r);
}

/* ---- loading ---- */

static void expect_load_fail(const char *data, size_t len, const char *prefix)
{
    json_t *out = (json_t *)1;
    sm_payload_err_t err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(sm_payload_load(data, len, &out, &err), SM_EINVAL);
    assert_null(out);
    assert_int_equal(err.code, 400);
    assert_string_equal(err.field, "payload");
    if (strncmp(err.message, prefix, strlen(prefix)) != 0)
        fail_msg("load: expected \"%s...\", got \"%s\"", prefix, err.message);
    /* Always printable ASCII: safe inside a JSON ERROR reply. */
    for (const char *p = err.message; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            fail_msg("load: non-printable byte 0x%02x in \"%s\"", (unsigned char)*p, err.message);
    }
}

#define LOAD_FAIL(lit, prefix) expect_load_fail((lit), sizeof(lit) - 1, (prefix))

static void test_load_ok(void **state)
{
    (void)state;
    const char *text = "{\"client_id\":\"a\",\"n\":[1,2,{\"x\":null}]}";
    json_t *root = NULL;
    sm_payload_err_t err;
    assert_int_equal(sm_payload_load(text, strlen(text), &root, &err), 0);
    assert_true(json_is_object(root));
    assert_string_equal(json_string_value(json_object_get(root, "client_id")), "a");
    json_decref(root);
    /* Surrounding whitespace is fine; not NUL-terminated input is fine. */
    char buf[16];
    memcpy(buf, " {} \nXXXXXXXXXX", 16);
    assert_int_equal(sm_payload_load(buf, 5, &root, &err), 0);
    json_decref(root);
}

static void test_load_rejects(void **state)
{
    (void)state;
    expect_load_fail(NULL, 0, "payload: empty; must be a JSON object");
    LOAD_FAIL("", "payload: empty; must be a JSON object");
    LOAD_FAIL("   ", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("[]", "payload: must be a JSON object");
    LOAD_FAIL("[{\"a\":1}]", "payload: must be a JSON object");
    LOAD_FAIL("\"str\"", "payload: must be a JSON object");
    LOAD_FAIL("42", "payload: must be a JSON object");
    LOAD_FAIL("null", "payload: must be a JSON object");
    LOAD_FAIL("{", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{\"a\":1,}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{} {}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{}x", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{'a':1}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{\"a\":\n\n  tru}", "payload: invalid JSON at line 3 column ");
    LOAD_FAIL("{\"a\":1,\"a\":2}", "payload: invalid JSON at line 1 column ");
    /* NUL inside a string, raw or escaped. */
    LOAD_FAIL("{\"a\":\"x\\u0000y\"}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{\"a\":\"x\0y\"}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{\"a\":1}\0", "payload: invalid JSON at line 1 column ");
    /* Invalid UTF-8: the message quoting it stays printable ASCII. */
    LOAD_FAIL("{\"a\":\"\xc3\x28\"}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{\"\xff\xfe\":1}", "payload: invalid JSON at line 1 column ");
    LOAD_FAIL("{\"a\":\xe9}", "payload: invalid JSON at line 1 column ");
    /* jansson quotes the bad token: non-ASCII, even a cut UTF-8 sequence. */
    LOAD_FAIL("{\"a\": \xc3\xa9}", "payload: invalid JSON at line 1 column 7: invalid token");
    LOAD_FAIL("{\"a\":\"\\u\xc3\xa9\"}", "payload: invalid JSON at line 1 column ");
}

static void test_load_error_position(void **state)
{
    (void)state;
    json_t *out;
    sm_payload_err_t err;
    const char *text = "{\"a\":1,\n \"b\": x}";
    assert_int_equal(sm_payload_load(text, strlen(text), &out, &err), SM_EINVAL);
    if (strstr(err.message, "line 2 column") == NULL)
        fail_msg("expected the position in \"%s\"", err.message);
}

/* "{"a": [[[...]]] }" with `depth` levels in total, root included. */
static char *nested(int depth, const char *open, const char *close)
{
    size_t cap = (size_t)depth * 8 + 64;
    char *s = malloc(cap);
    assert_non_null(s);
    strcpy(s, "{\"a\":");
    for (int i = 1; i < depth; i++)
        strcat(s, open);
    strcat(s, "1");
    for (int i = 1; i < depth; i++)
        strcat(s, close);
    strcat(s, "}");
    return s;
}

static void test_load_depth(void **state)
{
    (void)state;
    json_t *root;
    sm_payload_err_t err;
    char *ok = nested(SM_PAYLOAD_MAX_DEPTH, "[", "]");
    assert_int_equal(sm_payload_load(ok, strlen(ok), &root, &err), 0);
    json_decref(root);
    free(ok);
    char *deep = nested(SM_PAYLOAD_MAX_DEPTH + 1, "[", "]");
    expect_load_fail(deep, strlen(deep), "payload: JSON nested deeper than 32 levels");
    free(deep);
    deep = nested(SM_PAYLOAD_MAX_DEPTH + 1, "{\"k\":", "}");
    expect_load_fail(deep, strlen(deep), "payload: JSON nested deeper than 32 levels");
    free(deep);
    deep = nested(10000, "[", "]");
    expect_load_fail(deep, strlen(deep), "payload: JSON nested deeper than 32 levels");
    free(deep);
    /* Brackets inside strings (escaped quotes included) do not count. */
    char text[400];
    strcpy(text, "{\"s\":\"\\\"");
    for (int i = 0; i < 100; i++)
        strcat(text, "[{");
    strcat(text, "\\\\\",\"t\":[[1]]}");
    assert_int_equal(sm_payload_load(text, strlen(text), &root, &err), 0);
    assert_int_equal(json_string_length(json_object_get(root, "s")), 202);
    json_decref(root);
    /* Many siblings at a low depth are fine. */
    char wide[4000];
    strcpy(wide, "{\"a\":[");
    for (int i = 0; i < 500; i++)
        strcat(wide, i ? ",[]" : "[]");
    strcat(wide, "]}");
    assert_int_equal(sm_payload_load(wide, strlen(wide), &root, &err), 0);
    json_decref(root);
}

static void test_semver_parse(void **state)
{
    (void)state;
    uint32_t v[3] = {7, 7, 7};
    assert_int_equal(sm_payload_semver_parse("1.2.3", 5, v), 0);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 2);
    assert_int_equal(v[2], 3);
    assert_int_equal(sm_payload_semver_parse("4294967295.0.10", 15, v), 0);
    assert_int_equal(v[0], 4294967295u);
    assert_int_equal(v[2], 10);
    /* Length-bounded: "1.2.34" with len 5 is "1.2.3". */
    assert_int_equal(sm_payload_semver_parse("1.2.34", 5, v), 0);
    assert_int_equal(v[2], 3);
    v[0] = 99;
    assert_int_equal(sm_payload_semver_parse("1.2", 3, v), SM_EINVAL);
    assert_int_equal(sm_payload_semver_parse("", 0, v), SM_EINVAL);
    assert_int_equal(sm_payload_semver_parse("1.2.3", 4, v), SM_EINVAL);
    assert_int_equal(v[0], 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_payloads_valid),
        cmocka_unit_test(test_root_not_object),
        cmocka_unit_test(test_required_missing_or_wrong_type),
        cmocka_unit_test(test_optional_strings),
        cmocka_unit_test(test_id_patterns),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_capabilities_metadata),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_check_order),
        cmocka_unit_test(test_connect_output),
        cmocka_unit_test(test_out_untouched_on_failure),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_ping_fast),
        cmocka_unit_test(test_register),
        cmocka_unit_test(test_room_create_max_participants),
        cmocka_unit_test(test_room_join_leave_output),
        cmocka_unit_test(test_signal),
        cmocka_unit_test(test_session_update),
        cmocka_unit_test(test_dispatch_unsupported),
        cmocka_unit_test(test_load_ok),
        cmocka_unit_test(test_load_rejects),
        cmocka_unit_test(test_load_error_position),
        cmocka_unit_test(test_load_depth),
        cmocka_unit_test(test_semver_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
