/* Unit tests for src/core/hex.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/hex.h"

static void test_encode(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof in + 1];
    memset(out, 'x', sizeof out);
    sm_hex_encode(in, sizeof in, out);
    assert_string_equal(out, "00017f80abff");
    sm_hex_encode(in, 0, out);
    assert_string_equal(out, "");
}

static void test_decode(void **state)
{
    (void)state;
    uint8_t out[3];
    assert_true(sm_hex_decode("00aBfF", 6, out, 3));
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0xab);
    assert_int_equal(out[2], 0xff);
    /* wrong length, or a character that is not a hex digit */
    assert_false(sm_hex_decode("00ab", 4, out, 3));
    assert_false(sm_hex_decode("00abff00", 8, out, 3));
    assert_false(sm_hex_decode("00abfg", 6, out, 3));
    assert_false(sm_hex_decode("0 abff", 6, out, 3));
    assert_false(sm_hex_decode("00ab\0f", 6, out, 3));
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t in[256], back[256];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)i;
    char text[2 * sizeof in + 1];
    sm_hex_encode(in, sizeof in, text);
    assert_true(sm_hex_decode(text, strlen(text), back, sizeof back));
    assert_memory_equal(in, back, sizeof in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
