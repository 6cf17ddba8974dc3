/*
 * Unit tests for src/reactor/proxy_proto.c: PROXY protocol v1 and v2
 * headers fed whole, truncated at every length (SM_EAGAIN until complete,
 * with a need that is a true lower bound) and wrong in every field
 * (SM_EPROTO, early); AUTO choosing by the first byte; OFF consuming nothing.
 * (The trusted_proxies CIDR lists are tested in tests/unit/core/test_cidr.c.)
 * Every input is copied into a buffer of exactly its length, so an over-read
 * shows under ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "reactor/proxy_proto.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* sm_proxy_parse on an exact-size heap copy of buf[0..len). */
static int parse_n(sm_proxy_mode_t mode, const void *buf, size_t len, sm_proxy_result_t *r)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    int rc = sm_proxy_parse(mode, len ? copy : NULL, len, r);
    free(copy);
    return rc;
}

static int parse_s(sm_proxy_mode_t mode, const char *s, sm_proxy_result_t *r)
{
    return parse_n(mode, s, strlen(s), r);
}

/* "addr:port" of a result address, for comparisons. */
static const char *fmt(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, a, sizeof a);
        port = ntohs(sin->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof a);
        port = ntohs(sin6->sin6_port);
    }
    snprintf(out, cap, "%s:%u", a, port);
    return out;
}

static void assert_addr(const struct sockaddr_storage *ss, int family, const char *want)
{
    char got[80];
    assert_int_equal(ss->ss_family, family);
    assert_string_equal(fmt(ss, got, sizeof got), want);
}

/* Every strict prefix of a complete header of length total is SM_EAGAIN
 * with total >= need > prefix; the whole is 0 and consumes total. */
static void assert_truncations(sm_proxy_mode_t mode, const uint8_t *buf, size_t total)
{
    sm_proxy_result_t r;
    for (size_t k = 0; k < total; k++) {
        int rc = parse_n(mode, buf, k, &r);
        if (rc != SM_EAGAIN)
            fail_msg("prefix %zu of %zu: rc %d (%s)", k, total, rc, r.error ? r.error : "-");
        assert_true(r.need > k);
        assert_true(r.need <= total);
        assert_true(r.need <= SM_PROXY_MAX_HEADER);
        assert_null(r.error);
    }
    assert_int_equal(parse_n(mode, buf, total, &r), 0);
    assert_int_equal(r.consumed, total);
}

/* ---- v1 ---- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *hdr = "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n";
    char in[128];
    snprintf(in, sizeof in, "%sGET / HTTP/1.1\r\n", hdr);
    sm_proxy_result_t r;
    assert_int_equal(parse_s(SM_PROXY_V1, in, &r), 0);
    assert_int_equal(r.consumed, strlen(hdr));
    assert_int_equal(r.version, 1);
    assert_true(r.has_addr);
    assert_false(r.local);
    assert_null(r.error);
    assert_addr(&r.src, AF_INET, "192.168.0.1:56324");
    assert_addr(&r.dst, AF_INET, "10.0.0.2:443");

    /* Ports at the edges. */
    assert_int_equal(parse_s(SM_PROXY_V1, "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", &r), 0);
    assert_addr(&r.src, AF_INET, "0.0.0.0:0");
    assert_addr(&r.dst, AF_INET, "255.255.255.255:65535");
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    const char *hdr = "PROXY TCP6 2001:db8::1 ::1 65535 8080\r\n";
    sm_proxy_result_t r;
    assert_int_equal(parse_s(SM_PROXY_V1, hdr, &r), 0);
    assert_int_equal(r.consumed, strlen(hdr));
    assert_true(r.has_addr);
    assert_addr(&r.src, AF_INET6, "2001:db8::1:65535");
    assert_addr(&r.dst, AF_INET6, "::1:8080");

    /* The longest line the spec allows: 107 bytes. */
    const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(longest), SM_PROXY_V1_MAX - 3); /* 104 */
    assert_int_equal(parse_s(SM_PROXY_V1, longest, &r), 0);
    assert_int_equal(r.consumed, strlen(longest));

    /* IPv4-mapped in TCP6 is a valid IPv6 address. */
    assert_int_equal(parse_s(SM_PROXY_V1, "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n", &r), 0);
    assert_addr(&r.src, AF_INET6, "::ffff:1.2.3.4:1");
}

static void test_v1_unknown(void **state)
{
    (void)state;
    sm_proxy_result_t r;
    assert_int_equal(parse_s(SM_PROXY_V1, "PROXY UNKNOWN\r\nGET", &r), 0);
    assert_int_equal(r.consumed, 15);
    assert_true(r.local);
    assert_false(r.has_addr);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.src.ss_family, 0);

    /* Anything after "UNKNOWN " is ignored up to CRLF. */
    const char *withaddr = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse_s(SM_PROXY_V1, withaddr, &r), 0);
    assert_int_equal(r.consumed, strlen(withaddr));
    assert_true(r.local);
}

static void test_v1_truncated(void **state)
{
    (void)state;
    static const char *const hdrs[] = {
        "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n",
        "PROXY TCP6 2001:db8::1 ::1 65535 8080\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN x y\r\n",
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        assert_truncations(SM_PROXY_V1, (const uint8_t *)hdrs[i], strlen(hdrs[i]));
        assert_truncations(SM_PROXY_AUTO, (const uint8_t *)hdrs[i], strlen(hdrs[i]));
    }
    /* The first need is the shortest possible header. */
    sm_proxy_result_t r;
    assert_int_equal(parse_n(SM_PROXY_V1, "", 0, &r), SM_EAGAIN);
    assert_int_equal(r.need, 15);
}

static void test_v1_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "G",                                          /* fails at its first byte */
        " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",        /* leading space */
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",         /* case */
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",        /* double space */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",        /* double space */
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",        /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",        /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",        /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",       /* extra field */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",           /* missing field */
        "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",             /* missing ports */
        "PROXY TCP4\r\n",                             /* nothing */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",         /* protocol */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",         /* protocol */
        "PROXY UNKNOWNX\r\n",                         /* protocol */
        "PROXY \r\n",                                 /* protocol */
        "PROXY TCP4 ::1 ::1 1 2\r\n",                 /* family mismatch */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",         /* family mismatch */
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",       /* bad address */
        "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",        /* leading zero */
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",           /* short address */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",     /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n",    /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",        /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",        /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",        /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n",       /* hex */
        "PROXY TCP6 2001:db8::1%eth0 ::1 1 2\r\n",    /* zone id */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",           /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",          /* CR without LF */
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",        /* tab */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n",     /* control */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xc3\xa9\r\n", /* non-ASCII */
    };
    sm_proxy_result_t r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_s(SM_PROXY_V1, bad[i], &r);
        if (rc != SM_EPROTO)
            fail_msg("input %zu \"%s\": rc %d", i, bad[i], rc);
        assert_non_null(r.error);
        assert_int_equal(parse_s(SM_PROXY_AUTO, bad[i], &r), SM_EPROTO);
    }
    /* An embedded NUL is not a character of the line. */
    static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    assert_int_equal(parse_n(SM_PROXY_V1, nul, sizeof nul - 1, &r), SM_EPROTO);
    /* A bad byte fails before the line is complete. */
    assert_int_equal(parse_s(SM_PROXY_V1, "PROXY TCP4 1.2\x7f", &r), SM_EPROTO);
    assert_int_equal(parse_s(SM_PROXY_V1, "PROX-", &r), SM_EPROTO);
}

static void test_v1_too_long(void **state)
{
    (void)state;
    char line[256];
    sm_proxy_result_t r;

    /* "PROXY UNKNOWN " + padding + CRLF, exactly 107 bytes: accepted. */
    memset(line, 'a', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 2);
    assert_int_equal(parse_n(SM_PROXY_V1, line, 107, &r), 0);
    assert_int_equal(r.consumed, 107);

    /* 108 bytes: refused, as soon as the CR shows where the line ends. */
    memset(line, 'a', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 2);
    assert_int_equal(parse_n(SM_PROXY_V1, line, 108, &r), SM_EPROTO);
    assert_int_equal(parse_n(SM_PROXY_V1, line, 107, &r), SM_EPROTO);

    /* No CRLF: still waiting at 106 bytes, refused at 107. */
    memset(line, 'a', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse_n(SM_PROXY_V1, line, 106, &r), SM_EAGAIN);
    assert_int_equal(r.need, 107);
    assert_int_equal(parse_n(SM_PROXY_V1, line, 107, &r), SM_EPROTO);
    assert_int_equal(parse_n(SM_PROXY_V1, line, sizeof line, &r), SM_EPROTO);
    assert_non_null(r.error);
}

/* ---- v2 ---- */

/* Builds a v2 header: signature, ver_cmd, fam, length = alen + tlvlen, then
 * addr[0..alen) and tlv[0..tlvlen).  Returns the total length. */
static size_t build_v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *addr, size_t alen,
                       const uint8_t *tlv, size_t tlvlen)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    size_t plen = alen + tlvlen;
    out[14] = (uint8_t)(plen >> 8);
    out[15] = (uint8_t)plen;
    if (alen)
        memcpy(out + 16, addr, alen);
    if (tlvlen)
        memcpy(out + 16 + alen, tlv, tlvlen);
    return 16 + plen;
}

static const uint8_t ADDR4[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0xdb, 0xfc, 0x01, 0xbb};

static void addr6(uint8_t out[36])
{
    struct in6_addr a, b;
    inet_pton(AF_INET6, "2001:db8::42", &a);
    inet_pton(AF_INET6, "2001:db8:1::1", &b);
    memcpy(out, &a, 16);
    memcpy(out + 16, &b, 16);
    out[32] = 0xc3;
    out[33] = 0x50; /* 50000 */
    out[34] = 0x1f;
    out[35] = 0x90; /* 8080 */
}

static void test_v2_ipv4(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = build_v2(buf, 0x21, 0x11, ADDR4, sizeof ADDR4, NULL, 0);
    assert_int_equal(n, 28);
    memcpy(buf + n, "GET /", 5);
    sm_proxy_result_t r;
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n + 5, &r), 0);
    assert_int_equal(r.consumed, 28);
    assert_int_equal(r.version, 2);
    assert_true(r.has_addr);
    assert_false(r.local);
    assert_addr(&r.src, AF_INET, "192.0.2.1:56316");
    assert_addr(&r.dst, AF_INET, "198.51.100.7:443");

    /* UDP over IPv4 (0x12) carries the same addresses. */
    n = build_v2(buf, 0x21, 0x12, ADDR4, sizeof ADDR4, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_addr(&r.src, AF_INET, "192.0.2.1:56316");
}

static void test_v2_ipv6(void **state)
{
    (void)state;
    uint8_t a[36], buf[64];
    addr6(a);
    size_t n = build_v2(buf, 0x21, 0x21, a, sizeof a, NULL, 0);
    assert_int_equal(n, 52);
    sm_proxy_result_t r;
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_int_equal(r.consumed, 52);
    assert_true(r.has_addr);
    assert_addr(&r.src, AF_INET6, "2001:db8::42:50000");
    assert_addr(&r.dst, AF_INET6, "2001:db8:1::1:8080");
}

static void test_v2_local(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_proxy_result_t r;

    /* The proxy's own health check: LOCAL, UNSPEC, no addresses. */
    size_t n = build_v2(buf, 0x20, 0x00, NULL, 0, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_int_equal(r.consumed, 16);
    assert_true(r.local);
    assert_false(r.has_addr);
    assert_int_equal(r.src.ss_family, 0);

    /* LOCAL with addresses: ignored, but consumed. */
    n = build_v2(buf, 0x20, 0x11, ADDR4, sizeof ADDR4, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_int_equal(r.consumed, 28);
    assert_true(r.local);
    assert_false(r.has_addr);

    /* LOCAL ignores the family byte, even one PROXY would refuse. */
    n = build_v2(buf, 0x20, 0xff, NULL, 0, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_true(r.local);
}

static void test_v2_unspec(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_proxy_result_t r;
    size_t n = build_v2(buf, 0x21, 0x00, NULL, 0, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_int_equal(r.consumed, 16);
    assert_true(r.local);
    assert_false(r.has_addr);

    static const uint8_t tlv[] = {0x05, 0x00, 0x03, 'a', 'b', 'c'};
    n = build_v2(buf, 0x21, 0x00, NULL, 0, tlv, sizeof tlv);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
    assert_int_equal(r.consumed, 16 + sizeof tlv);
    assert_true(r.local);
}

static void test_v2_unix(void **state)
{
    (void)state;
    uint8_t a[216], buf[300];
    memset(a, 0, sizeof a);
    memcpy(a, "/run/client.sock", 16);
    memcpy(a + 108, "/run/haproxy.sock", 17);
    sm_proxy_result_t r;
    for (uint8_t fam = 0x31; fam <= 0x32; fam++) {
        size_t n = build_v2(buf, 0x21, fam, a, sizeof a, NULL, 0);
        assert_int_equal(n, 232);
        assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), 0);
        assert_int_equal(r.consumed, 232);
        assert_true(r.local);
        assert_false(r.has_addr);
    }
    /* Shorter than the two paths: refused. */
    size_t n = build_v2(buf, 0x21, 0x31, a, 200, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), SM_EPROTO);
}

static void test_v2_tlvs(void **state)
{
    (void)state;
    /* ALPN "h2", authority "example.com", a CRC32C, then a NOOP; and a
     * malformed TLV, which is skipped unread all the same. */
    static const uint8_t tlv[] = {
        0x01, 0x00, 0x02, 'h',  '2',  0x02, 0x00, 0x0b, 'e',  'x',  'a',
        'm',  'p',  'l',  'e',  '.',  'c',  'o',  'm',  0x03, 0x00, 0x04,
        0xde, 0xad, 0xbe, 0xef, 0x04, 0x00, 0x01, 0x00, 0x20, 0xff, 0xff,
    };
    uint8_t buf[128];
    size_t n = build_v2(buf, 0x21, 0x11, ADDR4, sizeof ADDR4, tlv, sizeof tlv);
    assert_int_equal(n, 16 + 12 + sizeof tlv);
    memcpy(buf + n, "\x16\x03\x01", 3); /* a TLS hello follows */
    sm_proxy_result_t r;
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n + 3, &r), 0);
    assert_int_equal(r.consumed, n);
    assert_addr(&r.src, AF_INET, "192.0.2.1:56316");
    assert_addr(&r.dst, AF_INET, "198.51.100.7:443");
    assert_truncations(SM_PROXY_V2, buf, n);

    /* Length at the limit: accepted (TLVs of 2048 - 12 bytes). */
    static uint8_t big[SM_PROXY_MAX_HEADER + 8];
    static uint8_t pad[SM_PROXY_V2_MAX_LEN];
    memset(pad, 0xaa, sizeof pad);
    n = build_v2(big, 0x21, 0x11, ADDR4, sizeof ADDR4, pad, SM_PROXY_V2_MAX_LEN - 12);
    assert_int_equal(n, SM_PROXY_MAX_HEADER);
    assert_int_equal(parse_n(SM_PROXY_V2, big, n, &r), 0);
    assert_int_equal(r.consumed, SM_PROXY_MAX_HEADER);
}

static void test_v2_truncated(void **state)
{
    (void)state;
    uint8_t a6[36], buf[300];
    addr6(a6);
    size_t n = build_v2(buf, 0x21, 0x11, ADDR4, sizeof ADDR4, NULL, 0);
    assert_truncations(SM_PROXY_V2, buf, n);
    assert_truncations(SM_PROXY_AUTO, buf, n);
    n = build_v2(buf, 0x21, 0x21, a6, sizeof a6, NULL, 0);
    assert_truncations(SM_PROXY_V2, buf, n);
    n = build_v2(buf, 0x20, 0x00, NULL, 0, NULL, 0);
    assert_truncations(SM_PROXY_V2, buf, n);

    /* need: 16 until the length field is in, then exact. */
    sm_proxy_result_t r;
    n = build_v2(buf, 0x21, 0x21, a6, sizeof a6, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 0, &r), SM_EAGAIN);
    assert_int_equal(r.need, 16);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 15, &r), SM_EAGAIN);
    assert_int_equal(r.need, 16);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 16, &r), SM_EAGAIN);
    assert_int_equal(r.need, 52);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 51, &r), SM_EAGAIN);
    assert_int_equal(r.need, 52);
}

static void test_v2_bad_signature(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = build_v2(buf, 0x21, 0x11, ADDR4, sizeof ADDR4, NULL, 0);
    sm_proxy_result_t r;
    for (size_t i = 0; i < 12; i++) {
        uint8_t bad[64];
        memcpy(bad, buf, n);
        bad[i] ^= 0x20;
        /* Refused whole, and refused as soon as the bad byte is in. */
        assert_int_equal(parse_n(SM_PROXY_V2, bad, n, &r), SM_EPROTO);
        assert_string_equal(r.error, "v2: bad signature");
        assert_int_equal(parse_n(SM_PROXY_V2, bad, i + 1, &r), SM_EPROTO);
    }
    /* A v1 header or HTTP in v2 mode. */
    assert_int_equal(parse_s(SM_PROXY_V2, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &r), SM_EPROTO);
    assert_int_equal(parse_s(SM_PROXY_V2, "GET / HTTP/1.1\r\n", &r), SM_EPROTO);
    /* CRLF CRLF then something else (an HTTP request with an empty start?). */
    assert_int_equal(parse_n(SM_PROXY_V2, "\r\n\r\nGET", 7, &r), SM_EPROTO);
}

static void test_v2_bad_version_command_family(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_proxy_result_t r;
    static const uint8_t bad_vc[] = {0x11, 0x01, 0x31, 0xf1, 0x22, 0x2f, 0x00};
    for (size_t i = 0; i < sizeof bad_vc; i++) {
        size_t n = build_v2(buf, bad_vc[i], 0x11, ADDR4, sizeof ADDR4, NULL, 0);
        assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), SM_EPROTO);
        /* Known at byte 13. */
        assert_int_equal(parse_n(SM_PROXY_V2, buf, 13, &r), SM_EPROTO);
    }
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 13, &r), SM_EPROTO);
    buf[12] = 0x11;
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 13, &r), SM_EPROTO);
    assert_string_equal(r.error, "v2: bad version");

    static const uint8_t bad_fam[] = {0x10, 0x13, 0x20, 0x23, 0x30, 0x41, 0x01, 0xff};
    for (size_t i = 0; i < sizeof bad_fam; i++) {
        size_t n = build_v2(buf, 0x21, bad_fam[i], ADDR4, sizeof ADDR4, NULL, 0);
        assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), SM_EPROTO);
        assert_int_equal(parse_n(SM_PROXY_V2, buf, 14, &r), SM_EPROTO);
    }
    /* Length shorter than the family's addresses. */
    size_t n = build_v2(buf, 0x21, 0x11, ADDR4, 11, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), SM_EPROTO);
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 16, &r), SM_EPROTO);
    n = build_v2(buf, 0x21, 0x21, ADDR4, 12, NULL, 0); /* 12 < 36 */
    assert_int_equal(parse_n(SM_PROXY_V2, buf, n, &r), SM_EPROTO);
}

static void test_v2_absurd_length(void **state)
{
    (void)state;
    uint8_t buf[16];
    sm_proxy_result_t r;
    memcpy(buf, SIG, 12);
    buf[12] = 0x21;
    buf[13] = 0x11;
    static const unsigned lens[] = {SM_PROXY_V2_MAX_LEN + 1, 4096, 0xffff};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        buf[14] = (uint8_t)(lens[i] >> 8);
        buf[15] = (uint8_t)lens[i];
        /* Refused from the fixed part alone: nothing more is buffered. */
        assert_int_equal(parse_n(SM_PROXY_V2, buf, 16, &r), SM_EPROTO);
        assert_string_equal(r.error, "v2: length too large");
        buf[12] = 0x20; /* LOCAL too */
        assert_int_equal(parse_n(SM_PROXY_V2, buf, 16, &r), SM_EPROTO);
        buf[12] = 0x21;
    }
    buf[14] = SM_PROXY_V2_MAX_LEN >> 8;
    buf[15] = SM_PROXY_V2_MAX_LEN & 0xff;
    assert_int_equal(parse_n(SM_PROXY_V2, buf, 16, &r), SM_EAGAIN);
    assert_int_equal(r.need, SM_PROXY_MAX_HEADER);
}

/* ---- modes ---- */

static void test_auto(void **state)
{
    (void)state;
    sm_proxy_result_t r;
    assert_int_equal(parse_s(SM_PROXY_AUTO, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &r), 0);
    assert_int_equal(r.version, 1);
    assert_addr(&r.src, AF_INET, "1.2.3.4:1");

    uint8_t buf[64];
    size_t n = build_v2(buf, 0x21, 0x11, ADDR4, sizeof ADDR4, NULL, 0);
    assert_int_equal(parse_n(SM_PROXY_AUTO, buf, n, &r), 0);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.consumed, 28);
    assert_addr(&r.src, AF_INET, "192.0.2.1:56316");

    /* Neither: refused at the first byte.  Nothing yet: wait. */
    assert_int_equal(parse_s(SM_PROXY_AUTO, "GET / HTTP/1.1\r\n", &r), SM_EPROTO);
    assert_int_equal(parse_n(SM_PROXY_AUTO, "\x16", 1, &r), SM_EPROTO); /* TLS hello */
    assert_int_equal(parse_n(SM_PROXY_AUTO, "", 0, &r), SM_EAGAIN);
    assert_true(r.need >= 1);
    assert_int_equal(parse_n(SM_PROXY_AUTO, "P", 1, &r), SM_EAGAIN);
    assert_int_equal(parse_n(SM_PROXY_AUTO, "\r", 1, &r), SM_EAGAIN);
    assert_int_equal(r.need, 16);
}

static void test_off(void **state)
{
    (void)state;
    sm_proxy_result_t r;
    static const char *const ins[] = {"", "GET / HTTP/1.1\r\n",
                                      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "\r\n\r\n\0\r\nQUIT\n"};
    for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
        memset(&r, 0x55, sizeof r);
        assert_int_equal(parse_s(SM_PROXY_OFF, ins[i], &r), 0);
        assert_int_equal(r.consumed, 0);
        assert_true(r.local);
        assert_false(r.has_addr);
        assert_int_equal(r.version, 0);
        assert_null(r.error);
    }
    assert_int_equal(sm_proxy_parse(SM_PROXY_OFF, NULL, 0, &r), 0);
}

static void test_mode_names(void **state)
{
    (void)state;
    sm_proxy_mode_t m;
    static const char *const names[] = {"off", "v1", "v2", "auto"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sm_proxy_mode_parse(names[i], &m), 0);
        assert_int_equal(m, (sm_proxy_mode_t)i);
        assert_string_equal(sm_proxy_mode_name(m), names[i]);
    }
    assert_int_equal(sm_proxy_mode_parse("V1", &m), SM_EINVAL);
    assert_int_equal(sm_proxy_mode_parse("", &m), SM_EINVAL);
    assert_int_equal(sm_proxy_mode_parse(NULL, &m), SM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_truncated),
        cmocka_unit_test(test_v1_garbage),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v2_ipv4),
        cmocka_unit_test(test_v2_ipv6),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_unspec),
        cmocka_unit_test(test_v2_unix),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_truncated),
        cmocka_unit_test(test_v2_bad_signature),
        cmocka_unit_test(test_v2_bad_version_command_family),
        cmocka_unit_test(test_v2_absurd_length),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_mode_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
