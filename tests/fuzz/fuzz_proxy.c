/*
 * Fuzz target: the PROXY protocol header parser and the trusted_proxies CIDR
 * lists (src/reactor/proxy_proto.c, src/core/cidr.c).  The header is the first
 * thing a connection from a trusted load balancer sends; the parser runs on it
 * before anything else.
 *
 * Byte 0 picks what the rest is:
 *   bit 7 clear  a connection's first bytes, parsed in mode (byte 0 & 3:
 *                off, v1, v2, auto).  Checked: the result is 0, SM_EAGAIN
 *                or SM_EPROTO with its fields consistent; a complete header
 *                is reported again, identically, for exactly its own bytes,
 *                and every shorter prefix is SM_EAGAIN with a need that is a
 *                true lower bound (> prefix, <= header); a refused input
 *                stays refused with a byte more; AUTO agrees with the mode
 *                its first byte selects; a v1 TCP4 header is the canonical
 *                text of what was parsed (single spaces, no leading zeros).
 *   bit 7 set    a trusted_proxies string for sm_cidr_parse_list.  Checked:
 *                errors name an item, successes hold at most commas + 1
 *                CIDRs, and the list's own address text matches itself
 *                when it is a bare address.
 */
#include <stdbool.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/cidr.h"
#include "fuzz.h"
#include "reactor/proxy_proto.h"

FUZZ_INITIALIZE_QUIET()

/* Parse an exact-size heap copy of p[0..n) (ASan sees any over-read). */
static int parse_copy(sm_proxy_mode_t mode, const uint8_t *p, size_t n, sm_proxy_result_t *r)
{
    uint8_t *c = malloc(n ? n : 1);
    FUZZ_CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    int rc = sm_proxy_parse(mode, n ? c : NULL, n, r);
    free(c);
    return rc;
}

static void check_result(sm_proxy_mode_t mode, int rc, size_t n, const sm_proxy_result_t *r)
{
    FUZZ_CHECK(rc == 0 || rc == SM_EAGAIN || rc == SM_EPROTO);
    if (rc == SM_EPROTO) {
        FUZZ_CHECK(r->error != NULL && r->error[0] != '\0' && fuzz_printable(r->error));
        FUZZ_CHECK(mode != SM_PROXY_OFF);
        return;
    }
    FUZZ_CHECK(r->error == NULL);
    if (rc == SM_EAGAIN) {
        FUZZ_CHECK(r->need > n && r->need <= SM_PROXY_MAX_HEADER);
        FUZZ_CHECK(mode != SM_PROXY_OFF);
        return;
    }
    FUZZ_CHECK(r->consumed <= n);
    FUZZ_CHECK(r->has_addr != r->local);
    if (mode == SM_PROXY_OFF) {
        FUZZ_CHECK(r->consumed == 0 && r->version == 0 && r->local);
        return;
    }
    FUZZ_CHECK(r->version == 1 || r->version == 2);
    if (r->version == 1)
        FUZZ_CHECK(r->consumed >= 15 && r->consumed <= SM_PROXY_V1_MAX);
    else
        FUZZ_CHECK(r->consumed >= SM_PROXY_V2_HEADER && r->consumed <= SM_PROXY_MAX_HEADER);
    if (r->has_addr) {
        FUZZ_CHECK(r->src.ss_family == AF_INET || r->src.ss_family == AF_INET6);
        FUZZ_CHECK(r->dst.ss_family == r->src.ss_family);
    } else {
        FUZZ_CHECK(r->src.ss_family == 0 && r->dst.ss_family == 0);
    }
}

/* A v1 TCP4 header is canonical: rebuild it from the result. */
static void check_v1_text(const uint8_t *p, const sm_proxy_result_t *r)
{
    if (r->version != 1 || !r->has_addr || r->src.ss_family != AF_INET)
        return;
    struct sockaddr_in s, d;
    memcpy(&s, &r->src, sizeof s);
    memcpy(&d, &r->dst, sizeof d);
    char sa[INET_ADDRSTRLEN], da[INET_ADDRSTRLEN], line[128];
    FUZZ_CHECK(inet_ntop(AF_INET, &s.sin_addr, sa, sizeof sa) != NULL);
    FUZZ_CHECK(inet_ntop(AF_INET, &d.sin_addr, da, sizeof da) != NULL);
    int n = snprintf(line, sizeof line, "PROXY TCP4 %s %s %u %u\r\n", sa, da, ntohs(s.sin_port),
                     ntohs(d.sin_port));
    FUZZ_CHECK(n > 0 && (size_t)n == r->consumed);
    FUZZ_CHECK(memcmp(line, p, r->consumed) == 0);
}

static void fuzz_header(sm_proxy_mode_t mode, const uint8_t *p, size_t n)
{
    sm_proxy_result_t r;
    int rc = parse_copy(mode, p, n, &r);
    check_result(mode, rc, n, &r);

    if (mode == SM_PROXY_AUTO && n > 0) {
        sm_proxy_mode_t m = p[0] == 'P' ? SM_PROXY_V1 : p[0] == '\r' ? SM_PROXY_V2 : SM_PROXY_OFF;
        if (m == SM_PROXY_OFF) {
            FUZZ_CHECK(rc == SM_EPROTO);
        } else {
            sm_proxy_result_t r2;
            int rc2 = parse_copy(m, p, n, &r2);
            FUZZ_CHECK(rc2 == rc);
            FUZZ_CHECK(rc != 0 || (r2.consumed == r.consumed && r2.has_addr == r.has_addr));
        }
    }

    if (rc == SM_EPROTO) {
        /* Refused stays refused as more bytes come. */
        uint8_t *more = malloc(n + 1);
        FUZZ_CHECK(more != NULL);
        if (n)
            memcpy(more, p, n);
        more[n] = '\n';
        sm_proxy_result_t r2;
        FUZZ_CHECK(sm_proxy_parse(mode, more, n + 1, &r2) == SM_EPROTO);
        free(more);
        return;
    }
    if (rc != 0 || mode == SM_PROXY_OFF)
        return;

    check_v1_text(p, &r);
    /* The header alone gives the same result: bytes after it are not read. */
    sm_proxy_result_t r2;
    FUZZ_CHECK(parse_copy(mode, p, r.consumed, &r2) == 0);
    FUZZ_CHECK(r2.consumed == r.consumed && r2.version == r.version);
    FUZZ_CHECK(r2.has_addr == r.has_addr && r2.local == r.local);
    FUZZ_CHECK(memcmp(&r2.src, &r.src, sizeof r.src) == 0);
    FUZZ_CHECK(memcmp(&r2.dst, &r.dst, sizeof r.dst) == 0);
    /* Every strict prefix is "need more", with an honest need. */
    for (size_t k = 0; k < r.consumed; k++) {
        FUZZ_CHECK(parse_copy(mode, p, k, &r2) == SM_EAGAIN);
        FUZZ_CHECK(r2.need > k && r2.need <= r.consumed);
    }
}

static void fuzz_cidr(const uint8_t *p, size_t n)
{
    char *s = fuzz_strndup(p, n);
    static char sentinel;
    sm_cidr_list_t *l = (sm_cidr_list_t *)(void *)&sentinel; /* must become NULL on error */
    char err[128];
    int rc = sm_cidr_parse_list(s, &l, err, sizeof err);
    size_t commas = 0;
    for (size_t i = 0; s[i]; i++)
        commas += s[i] == ',';
    if (rc != 0) {
        FUZZ_CHECK(rc == SM_EINVAL);
        FUZZ_CHECK(l == NULL);
        FUZZ_CHECK(strncmp(err, "item ", 5) == 0);
        free(s);
        return;
    }
    FUZZ_CHECK(l != NULL);
    FUZZ_CHECK(sm_cidr_list_count(l) <= commas + 1);

    /* A single bare address (no prefix) matches itself. */
    if (commas == 0 && strchr(s, '/') == NULL && sm_cidr_list_count(l) == 1) {
        char a[INET6_ADDRSTRLEN + 1];
        const char *b = s;
        while (*b == ' ' || *b == '\t')
            b++;
        size_t len = strcspn(b, " \t");
        if (len < sizeof a) {
            memcpy(a, b, len);
            a[len] = '\0';
            struct sockaddr_in sin;
            struct sockaddr_in6 sin6;
            memset(&sin, 0, sizeof sin);
            memset(&sin6, 0, sizeof sin6);
            if (inet_pton(AF_INET, a, &sin.sin_addr) == 1) {
                sin.sin_family = AF_INET;
                FUZZ_CHECK(sm_cidr_match(l, (struct sockaddr *)&sin));
            } else if (inet_pton(AF_INET6, a, &sin6.sin6_addr) == 1) {
                sin6.sin6_family = AF_INET6;
                FUZZ_CHECK(sm_cidr_match(l, (struct sockaddr *)&sin6));
            }
        }
    }
    /* Matching arbitrary addresses must be safe. */
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    memcpy(&sin6.sin6_addr, p, n < 16 ? n : 16);
    (void)sm_cidr_match(l, (struct sockaddr *)&sin6);
    sm_cidr_list_free(l);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t ctl = data[0];
    if (ctl & 0x80)
        fuzz_cidr(data + 1, size - 1);
    else
        fuzz_header((sm_proxy_mode_t)(ctl & 3), data + 1, size - 1);
    return 0;
}
