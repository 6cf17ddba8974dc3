/*
 * Unit tests for lib/proto/msgtype.c: the type table (values, names,
 * directions, allowed payload types) and sm_msg_check().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <sm/proto.h>

#define C2S SM_MSG_C2S
#define S2C SM_MSG_S2C
#define N SM_PL_NONE
#define B SM_PL_BINARY
#define J SM_PL_JSON

/* The expected table, written out independently of SM_MSG_TYPE_MAP. */
static const struct {
    uint8_t value;
    const char *name;
    unsigned dir;
    unsigned payloads;
} expected[] = {
    {0x01, "CONNECT", C2S, J},
    {0x02, "CONNECT_ACK", S2C, J},
    {0x03, "DISCONNECT", C2S | S2C, N | J},
    {0x04, "PING", C2S, J},
    {0x05, "PING_ACK", S2C, J},
    {0x20, "REGISTER", C2S, J},
    {0x21, "REGISTER_ACK", S2C, J},
    {0x22, "UNREGISTER", C2S, J},
    {0x23, "UNREGISTER_ACK", S2C, J},
    {0x30, "ROOM_CREATE", C2S, J},
    {0x31, "ROOM_CREATE_ACK", S2C, J},
    {0x32, "ROOM_JOIN", C2S, J},
    {0x33, "ROOM_JOIN_ACK", S2C, J},
    {0x34, "ROOM_LEAVE", C2S, J},
    {0x35, "ROOM_LEAVE_ACK", S2C, J},
    {0x36, "ROOM_EVENT", S2C, J},
    {0x40, "SIGNAL", C2S | S2C, B | J},
    {0x42, "SESSION_UPDATE", C2S, J},
    {0x43, "SESSION_UPDATE_ACK", S2C, J},
    {0xFF, "ERROR", S2C, J},
};

static void test_enum_values(void **state)
{
    (void)state;
    assert_int_equal(SM_MSG_CONNECT, 0x01);
    assert_int_equal(SM_MSG_PING_ACK, 0x05);
    assert_int_equal(SM_MSG_REGISTER, 0x20);
    assert_int_equal(SM_MSG_ROOM_EVENT, 0x36);
    assert_int_equal(SM_MSG_SIGNAL, 0x40);
    assert_int_equal(SM_MSG_SESSION_UPDATE_ACK, 0x43);
    assert_int_equal(SM_MSG_ERROR, 0xFF);
    assert_int_equal(SM_MSG_TYPE_COUNT, sizeof(expected) / sizeof(expected[0]));
}

static void test_table_matches_spec(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const sm_msg_info_t *mi = sm_msg_info(expected[i].value);
        assert_non_null(mi);
        assert_string_equal(mi->name, expected[i].name);
        assert_int_equal(mi->name_len, strlen(expected[i].name));
        assert_int_equal(mi->value, expected[i].value);
        assert_int_equal(mi->dir, expected[i].dir);
        assert_int_equal(mi->payloads, expected[i].payloads);
        assert_string_equal(sm_msg_type_name(expected[i].value), expected[i].name);
        /* Dense index round trip. */
        assert_true(mi->index < SM_MSG_TYPE_COUNT);
        assert_ptr_equal(sm_msg_info_at(mi->index), mi);
    }
}

static void test_unknown_values(void **state)
{
    (void)state;
    size_t known = 0;
    for (unsigned v = 0; v < 256; v++) {
        const sm_msg_info_t *mi = sm_msg_info((uint8_t)v);
        bool listed = false;
        for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
            listed |= expected[i].value == v;
        assert_int_equal(mi != NULL, listed);
        if (mi == NULL) {
            assert_string_equal(sm_msg_type_name((uint8_t)v), "UNKNOWN");
            assert_int_equal(sm_msg_check((uint8_t)v, SM_PAYLOAD_JSON, C2S), SM_PROTO_ETYPE);
        } else {
            known++;
        }
    }
    assert_int_equal(known, SM_MSG_TYPE_COUNT);
    /* 0x41 (between SIGNAL and SESSION_UPDATE) and 0x00 are not types. */
    assert_null(sm_msg_info(0x41));
    assert_null(sm_msg_info(0x00));
}

static void test_index_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SM_MSG_TYPE_COUNT; i++) {
        const sm_msg_info_t *mi = sm_msg_info_at(i);
        assert_non_null(mi);
        assert_int_equal(mi->index, i);
        assert_ptr_equal(sm_msg_info(mi->value), mi);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(sm_msg_info_at(j)->value, mi->value);
            assert_string_not_equal(sm_msg_info_at(j)->name, mi->name);
        }
    }
    assert_null(sm_msg_info_at(SM_MSG_TYPE_COUNT));
    assert_null(sm_msg_info_at((size_t)-1));
}

static void test_check_client(void **state)
{
    (void)state;
    assert_int_equal(sm_msg_check(SM_MSG_CONNECT, SM_PAYLOAD_JSON, C2S), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_PING, SM_PAYLOAD_JSON, C2S), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_DISCONNECT, SM_PAYLOAD_NONE, C2S), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_DISCONNECT, SM_PAYLOAD_JSON, C2S), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_DISCONNECT, SM_PAYLOAD_BINARY, C2S),
                     SM_PROTO_EPAYLOADNOTALLOWED);
    assert_int_equal(sm_msg_check(SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, C2S), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_SIGNAL, SM_PAYLOAD_JSON, C2S), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_SIGNAL, SM_PAYLOAD_NONE, C2S),
                     SM_PROTO_EPAYLOADNOTALLOWED);
    assert_int_equal(sm_msg_check(SM_MSG_SESSION_UPDATE, SM_PAYLOAD_JSON, C2S), SM_PROTO_OK);
    /* BINARY is only valid on SIGNAL; NONE only on DISCONNECT. */
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        uint8_t v = expected[i].value;
        if (v != SM_MSG_SIGNAL) {
            int rc = sm_msg_check(v, SM_PAYLOAD_BINARY, C2S);
            assert_true(rc == SM_PROTO_EPAYLOADNOTALLOWED || rc == SM_PROTO_EDIRECTION);
            rc = sm_msg_check(v, SM_PAYLOAD_BINARY, S2C);
            assert_true(rc == SM_PROTO_EPAYLOADNOTALLOWED || rc == SM_PROTO_EDIRECTION);
        }
        if (v != SM_MSG_DISCONNECT && (expected[i].dir & C2S))
            assert_int_equal(sm_msg_check(v, SM_PAYLOAD_NONE, C2S), SM_PROTO_EPAYLOADNOTALLOWED);
    }
    /* Out-of-range payload type values. */
    assert_int_equal(sm_msg_check(SM_MSG_PING, 3, C2S), SM_PROTO_EPAYLOADNOTALLOWED);
    assert_int_equal(sm_msg_check(SM_MSG_PING, 0xFF, C2S), SM_PROTO_EPAYLOADNOTALLOWED);
}

static void test_check_direction(void **state)
{
    (void)state;
    /* Server-to-client types sent by a client. */
    static const uint8_t s2c_only[] = {
        SM_MSG_CONNECT_ACK,    SM_MSG_PING_ACK,        SM_MSG_REGISTER_ACK,
        SM_MSG_UNREGISTER_ACK, SM_MSG_ROOM_CREATE_ACK, SM_MSG_ROOM_JOIN_ACK,
        SM_MSG_ROOM_LEAVE_ACK, SM_MSG_ROOM_EVENT,      SM_MSG_SESSION_UPDATE_ACK,
        SM_MSG_ERROR,
    };
    for (size_t i = 0; i < sizeof(s2c_only); i++) {
        assert_int_equal(sm_msg_check(s2c_only[i], SM_PAYLOAD_JSON, C2S), SM_PROTO_EDIRECTION);
        assert_int_equal(sm_msg_check(s2c_only[i], SM_PAYLOAD_JSON, S2C), SM_PROTO_OK);
    }
    /* Client-to-server types received by a client. */
    static const uint8_t c2s_only[] = {
        SM_MSG_CONNECT,     SM_MSG_PING,      SM_MSG_REGISTER,   SM_MSG_UNREGISTER,
        SM_MSG_ROOM_CREATE, SM_MSG_ROOM_JOIN, SM_MSG_ROOM_LEAVE, SM_MSG_SESSION_UPDATE,
    };
    for (size_t i = 0; i < sizeof(c2s_only); i++)
        assert_int_equal(sm_msg_check(c2s_only[i], SM_PAYLOAD_JSON, S2C), SM_PROTO_EDIRECTION);
    /* Both ways. */
    assert_int_equal(sm_msg_check(SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, S2C), SM_PROTO_OK);
    assert_int_equal(sm_msg_check(SM_MSG_DISCONNECT, SM_PAYLOAD_JSON, S2C), SM_PROTO_OK);
    /* Direction is checked before the payload type. */
    assert_int_equal(sm_msg_check(SM_MSG_ERROR, SM_PAYLOAD_BINARY, C2S), SM_PROTO_EDIRECTION);
    /* Bad dir argument. */
    assert_int_equal(sm_msg_check(SM_MSG_PING, SM_PAYLOAD_JSON, 0), SM_PROTO_EINVAL);
    assert_int_equal(sm_msg_check(SM_MSG_PING, SM_PAYLOAD_JSON, C2S | S2C), SM_PROTO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enum_values),    cmocka_unit_test(test_table_matches_spec),
        cmocka_unit_test(test_unknown_values), cmocka_unit_test(test_index_table),
        cmocka_unit_test(test_check_client),   cmocka_unit_test(test_check_direction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
