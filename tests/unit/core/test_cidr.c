/*
 * Unit tests for src/core/cidr.c, the trusted_proxies CIDR lists: parse
 * errors naming the item, matching on and off byte boundaries, IPv4-mapped
 * IPv6 and /0, lists given as one string or as items.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "core/cidr.h"
#include "support/sockaddr.h"

static bool match(const sm_cidr_list_t *l, const char *addr)
{
    struct sockaddr_storage ss = t_sockaddr(addr, 1234);
    return sm_cidr_match(l, (const struct sockaddr *)&ss);
}

static sm_cidr_list_t *parse_ok(const char *s)
{
    sm_cidr_list_t *l = (sm_cidr_list_t *)0x1;
    char err[160] = "x";
    int rc = sm_cidr_parse_list(s, &l, err, sizeof err);
    if (rc != 0)
        fail_msg("\"%s\": rc %d: %s", s, rc, err);
    assert_string_equal(err, "");
    assert_non_null(l);
    return l;
}

static void test_cidr_parse_and_match(void **state)
{
    (void)state;
    sm_cidr_list_t *l = parse_ok("10.0.0.0/8, 127.0.0.1/32, ::1/128");
    assert_int_equal(sm_cidr_list_count(l), 3);
    assert_true(match(l, "10.0.0.0"));
    assert_true(match(l, "10.255.255.255"));
    assert_false(match(l, "11.0.0.0"));
    assert_false(match(l, "9.255.255.255"));
    assert_true(match(l, "127.0.0.1"));
    assert_false(match(l, "127.0.0.2"));
    assert_true(match(l, "::1"));
    assert_false(match(l, "::2"));
    assert_false(match(l, "::"));
    sm_cidr_list_free(l);

    /* Bare addresses; blanks and tabs; host bits below the prefix ignored. */
    l = parse_ok("\t192.0.2.7 ,2001:db8::1,  10.1.2.3/8 , 2001:db8:aaaa::/33");
    assert_int_equal(sm_cidr_list_count(l), 4);
    assert_true(match(l, "192.0.2.7"));
    assert_false(match(l, "192.0.2.8"));
    assert_true(match(l, "2001:db8::1"));
    assert_false(match(l, "2001:db8::2"));
    assert_true(match(l, "10.200.0.1"));
    assert_true(match(l, "2001:db8:8000::1")); /* bit 33 set: inside /33 of aaaa */
    assert_true(match(l, "2001:db8:ffff::1"));
    assert_false(match(l, "2001:db8:7fff::1")); /* bit 33 clear */
    assert_false(match(l, "2001:db9::1"));
    sm_cidr_list_free(l);

    /* Off byte boundaries. */
    l = parse_ok("192.168.0.0/23,172.16.0.0/12");
    assert_true(match(l, "192.168.1.255"));
    assert_false(match(l, "192.168.2.0"));
    assert_true(match(l, "172.31.255.255"));
    assert_false(match(l, "172.32.0.0"));
    assert_false(match(l, "172.15.255.255"));
    sm_cidr_list_free(l);

    /* Empty and blank lists match nothing; NULL list too. */
    static const char *const empties[] = {"", "   ", "\t"};
    for (size_t i = 0; i < 3; i++) {
        l = parse_ok(empties[i]);
        assert_int_equal(sm_cidr_list_count(l), 0);
        assert_false(match(l, "127.0.0.1"));
        assert_false(match(l, "::1"));
        sm_cidr_list_free(l);
    }
    assert_false(match(NULL, "127.0.0.1"));
    assert_int_equal(sm_cidr_list_count(NULL), 0);
    sm_cidr_list_free(NULL);
}

static void test_cidr_mapped_and_zero(void **state)
{
    (void)state;
    sm_cidr_list_t *l = parse_ok("10.0.0.0/8");
    assert_true(match(l, "::ffff:10.1.2.3"));
    assert_false(match(l, "::ffff:11.1.2.3"));
    assert_false(match(l, "::10.1.2.3")); /* IPv4-compatible is not mapped */
    assert_false(match(l, "::ffff:0:10.1.2.3"));
    sm_cidr_list_free(l);

    /* A mapped CIDR is the IPv4 CIDR it denotes, both ways. */
    l = parse_ok("::ffff:10.0.0.0/104");
    assert_true(match(l, "10.9.9.9"));
    assert_true(match(l, "::ffff:10.9.9.9"));
    assert_false(match(l, "11.0.0.0"));
    sm_cidr_list_free(l);

    l = parse_ok("0.0.0.0/0");
    assert_true(match(l, "1.2.3.4"));
    assert_true(match(l, "255.255.255.255"));
    assert_true(match(l, "::ffff:1.2.3.4"));
    assert_false(match(l, "::1"));
    assert_false(match(l, "2001:db8::1"));
    sm_cidr_list_free(l);

    l = parse_ok("::/0");
    assert_true(match(l, "::1"));
    assert_true(match(l, "ffff::1"));
    assert_true(match(l, "::ffff:1.2.3.4"));
    assert_false(match(l, "1.2.3.4"));
    sm_cidr_list_free(l);

    /* Other families never match. */
    l = parse_ok("0.0.0.0/0, ::/0");
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    assert_false(sm_cidr_match(l, (const struct sockaddr *)&sun));
    assert_false(sm_cidr_match(l, NULL));
    sm_cidr_list_free(l);
}

static void expect_cidr_error(const char *list, const char *want)
{
    sm_cidr_list_t *l = (sm_cidr_list_t *)0x1;
    char err[200];
    int rc = sm_cidr_parse_list(list, &l, err, sizeof err);
    if (rc != SM_EINVAL)
        fail_msg("\"%s\": rc %d, expected SM_EINVAL", list, rc);
    assert_null(l);
    if (strstr(err, want) == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", list, err, want);
}

static void test_cidr_errors(void **state)
{
    (void)state;
    expect_cidr_error("10.0.0.0/33", "item 1 \"10.0.0.0/33\": IPv4 prefix length must be 0..32");
    expect_cidr_error("::1/128, ::/129", "item 2 \"::/129\": IPv6 prefix length must be 0..128");
    expect_cidr_error("10.0.0.0/", "item 1 \"10.0.0.0/\": IPv4 prefix");
    expect_cidr_error("10.0.0.0/a", "item 1 \"10.0.0.0/a\": IPv4 prefix");
    expect_cidr_error("10.0.0.0/-1", "IPv4 prefix");
    expect_cidr_error("10.0.0.0/+8", "IPv4 prefix");
}

static void test_cidr_errors2(void **state)
{
    (void)state;
    expect_cidr_error("10.0.0.0/1000", "IPv4 prefix");
    expect_cidr_error("10.0.0.0/8/8", "item 1 \"10.0.0.0/8/8\": IPv4 prefix");
    expect_cidr_error("10.0.0.0 /8", "item 1 \"10.0.0.0 /8\": not an IPv4 or IPv6 address");
    expect_cidr_error("127.0.0.1, 10.0.0.256/8",
                      "item 2 \"10.0.0.256/8\": not an IPv4 or IPv6 address");
    expect_cidr_error("localhost", "item 1 \"localhost\": not an IPv4 or IPv6 address");
    expect_cidr_error("/8", "item 1 \"/8\": not an IPv4 or IPv6 address");
    expect_cidr_error("fe80::1%eth0/64", "not an IPv4 or IPv6 address");
    expect_cidr_error("10.0.0.0/8,,::1", "item 2 \"\": empty item");
    expect_cidr_error("10.0.0.0/8, ", "item 2 \"\": empty item");
    expect_cidr_error(",10.0.0.0/8", "item 1 \"\": empty item");
    expect_cidr_error("10.0.0.0/8, ,::1", "item 2 \"\": empty item");
    /* A long item is cut in the message. */
    char longitem[300];
    memset(longitem, 'x', sizeof longitem - 1);
    longitem[sizeof longitem - 1] = '\0';
    expect_cidr_error(longitem, "...\": not an IPv4 or IPv6 address");

    /* A small or absent err buffer is fine. */
    sm_cidr_list_t *l;
    char tiny[8];
    assert_int_equal(sm_cidr_parse_list("bogus", &l, tiny, sizeof tiny), SM_EINVAL);
    assert_int_equal(strlen(tiny), 7);
    assert_int_equal(sm_cidr_parse_list("bogus", &l, NULL, 0), SM_EINVAL);
    assert_null(l);
}

static void test_cidr_items(void **state)
{
    (void)state;
    sm_cidr_list_t *l;
    char err[160];
    static const char *const good[] = {"10.0.0.0/8", " ::1 ", "192.0.2.0/24"};
    assert_int_equal(sm_cidr_parse_items(good, 3, &l, err, sizeof err), 0);
    assert_int_equal(sm_cidr_list_count(l), 3);
    assert_true(match(l, "10.3.3.3"));
    assert_true(match(l, "::1"));
    assert_true(match(l, "192.0.2.200"));
    assert_false(match(l, "192.0.3.1"));
    sm_cidr_list_free(l);

    static const char *const bad[] = {"10.0.0.0/8", "  "};
    assert_int_equal(sm_cidr_parse_items(bad, 2, &l, err, sizeof err), SM_EINVAL);
    assert_null(l);
    assert_string_equal(err, "item 2 \"\": empty item");

    /* Items are not split again. */
    static const char *const bad2[] = {"10.0.0.1, 10.0.0.2"};
    assert_int_equal(sm_cidr_parse_items(bad2, 1, &l, err, sizeof err), SM_EINVAL);
    assert_string_equal(err, "item 1 \"10.0.0.1, 10.0.0.2\": not an IPv4 or IPv6 address");

    assert_int_equal(sm_cidr_parse_items(NULL, 0, &l, err, sizeof err), 0);
    assert_int_equal(sm_cidr_list_count(l), 0);
    sm_cidr_list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse_and_match), cmocka_unit_test(test_cidr_mapped_and_zero),
        cmocka_unit_test(test_cidr_errors),          cmocka_unit_test(test_cidr_errors2),
        cmocka_unit_test(test_cidr_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
