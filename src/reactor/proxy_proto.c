/*
 * PROXY protocol v1/v2 parser.
 *
 * The parser is stateless and re-reads the connection's first bytes on every
 * call: the header is small (at most SM_PROXY_MAX_HEADER bytes, usually under
 * 60), so keeping a resumable state machine would cost more code than the
 * re-scan costs time, and a stateless function is trivially fuzzable.  Each
 * step checks what has arrived so far, so a wrong header fails at its first
 * wrong byte instead of after we have buffered a full header's worth.
 */
#include "reactor/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* "PROXY UNKNOWN\r\n": the shortest v1 header. */
#define V1_MIN 15
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN (sizeof v1_prefix - 1)

static int fail(sm_proxy_result_t *out, const char *why)
{
    out->error = why;
    return SM_EPROTO;
}

static int again(sm_proxy_result_t *out, size_t need)
{
    out->need = need;
    return SM_EAGAIN;
}

static void set_local(sm_proxy_result_t *out, int version, size_t consumed)
{
    out->version = version;
    out->consumed = consumed;
    out->local = true;
    out->has_addr = false;
}

static void set_in4(struct sockaddr_storage *ss, const uint8_t addr[4], uint16_t port_host)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port_host);
    memcpy(&sin.sin_addr, addr, 4);
    memcpy(ss, &sin, sizeof sin);
}

static void set_in6(struct sockaddr_storage *ss, const uint8_t addr[16], uint16_t port_host)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port_host);
    memcpy(&sin6.sin6_addr, addr, 16);
    memcpy(ss, &sin6, sizeof sin6);
}

/* ---- v1 ---- */

/* Decimal port, 0..65535, no sign, no leading zero (except "0" itself). */
static bool parse_port(const char *s, uint16_t *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* line: the header without CRLF, NUL-terminated, modified in place. */
static int parse_v1_line(char *line, size_t consumed, sm_proxy_result_t *out)
{
    char *p = line + V1_PREFIX_LEN;
    if (strncmp(p, "UNKNOWN", 7) == 0) {
        /* The spec: ignore whatever follows UNKNOWN up to CRLF. */
        if (p[7] != '\0' && p[7] != ' ')
            return fail(out, "v1: unknown protocol");
        set_local(out, 1, consumed);
        return 0;
    }
    int family;
    if (strncmp(p, "TCP4 ", 5) == 0)
        family = AF_INET;
    else if (strncmp(p, "TCP6 ", 5) == 0)
        family = AF_INET6;
    else
        return fail(out, "v1: unknown protocol");
    p += 5;

    /* Exactly four fields separated by single spaces. */
    char *field[4];
    for (int i = 0; i < 4; i++) {
        field[i] = p;
        char *sp = strchr(p, ' ');
        if (i < 3) {
            if (sp == NULL)
                return fail(out, "v1: missing field");
            *sp = '\0';
            p = sp + 1;
        } else if (sp != NULL) {
            return fail(out, "v1: extra field or trailing space");
        }
        if (field[i][0] == '\0')
            return fail(out, "v1: empty field (double space)");
    }

    uint8_t src[16], dst[16];
    if (inet_pton(family, field[0], src) != 1)
        return fail(out, "v1: bad source address");
    if (inet_pton(family, field[1], dst) != 1)
        return fail(out, "v1: bad destination address");
    uint16_t sport, dport;
    if (!parse_port(field[2], &sport))
        return fail(out, "v1: bad source port");
    if (!parse_port(field[3], &dport))
        return fail(out, "v1: bad destination port");

    if (family == AF_INET) {
        set_in4(&out->src, src, sport);
        set_in4(&out->dst, dst, dport);
    } else {
        set_in6(&out->src, src, sport);
        set_in6(&out->dst, dst, dport);
    }
    out->version = 1;
    out->consumed = consumed;
    out->has_addr = true;
    out->local = false;
    return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, sm_proxy_result_t *out)
{
    size_t n = len < V1_PREFIX_LEN ? len : V1_PREFIX_LEN;
    if (memcmp(buf, v1_prefix, n) != 0)
        return fail(out, "v1: does not start with \"PROXY \"");

    size_t lim = len < SM_PROXY_V1_MAX ? len : SM_PROXY_V1_MAX;
    for (size_t i = n; i < lim; i++) {
        uint8_t c = buf[i];
        if (c == '\r') {
            if (i + 2 > SM_PROXY_V1_MAX)
                return fail(out, "v1: line longer than 107 bytes");
            if (i + 1 == len)
                return again(out, i + 2 < V1_MIN ? V1_MIN : i + 2);
            if (buf[i + 1] != '\n')
                return fail(out, "v1: CR not followed by LF");
            char line[SM_PROXY_V1_MAX];
            memcpy(line, buf, i);
            line[i] = '\0';
            return parse_v1_line(line, i + 2, out);
        }
        if (c < 0x20 || c > 0x7e)
            return fail(out, "v1: invalid character");
    }
    if (lim == SM_PROXY_V1_MAX)
        return fail(out, "v1: no CRLF within 107 bytes");
    return again(out, len + 1 < V1_MIN ? V1_MIN : len + 1);
}

/* ---- v2 ---- */

/* Address block length for a PROXY command's family/transport byte; -1 for
 * values the spec says receivers must reject. */
static int v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case 0x00: /* UNSPEC */
        return 0;
    case 0x11: /* TCP over IPv4 */
    case 0x12: /* UDP over IPv4 */
        return 12;
    case 0x21: /* TCP over IPv6 */
    case 0x22: /* UDP over IPv6 */
        return 36;
    case 0x31: /* UNIX stream */
    case 0x32: /* UNIX datagram */
        return 216;
    default:
        return -1;
    }
}

static int parse_v2(const uint8_t *buf, size_t len, sm_proxy_result_t *out)
{
    size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(buf, v2_sig, n) != 0)
        return fail(out, "v2: bad signature");
    if (len <= 12)
        return again(out, SM_PROXY_V2_HEADER);

    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
    if (ver != 2)
        return fail(out, "v2: bad version");
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return fail(out, "v2: bad command");
    if (len <= 13)
        return again(out, SM_PROXY_V2_HEADER);

    /* LOCAL: "discard the protocol block including the family". */
    int alen = 0;
    if (cmd == V2_CMD_PROXY) {
        alen = v2_addr_len(buf[13]);
        if (alen < 0)
            return fail(out, "v2: bad address family or transport");
    }
    if (len < SM_PROXY_V2_HEADER)
        return again(out, SM_PROXY_V2_HEADER);

    size_t plen = (size_t)buf[14] << 8 | buf[15];
    if (plen > SM_PROXY_V2_MAX_LEN)
        return fail(out, "v2: length too large");
    if (plen < (size_t)alen)
        return fail(out, "v2: length shorter than the addresses");
    size_t total = SM_PROXY_V2_HEADER + plen;
    if (len < total)
        return again(out, total);

    /* Complete.  TLVs (plen - alen bytes) are skipped unread. */
    const uint8_t *a = buf + SM_PROXY_V2_HEADER;
    uint8_t fam = buf[13] >> 4;
    if (cmd == V2_CMD_LOCAL || fam == 0x0 || fam == 0x3) {
        set_local(out, 2, total);
        return 0;
    }
    if (fam == 0x1) {
        set_in4(&out->src, a, (uint16_t)(a[8] << 8 | a[9]));
        set_in4(&out->dst, a + 4, (uint16_t)(a[10] << 8 | a[11]));
    } else {
        set_in6(&out->src, a, (uint16_t)(a[32] << 8 | a[33]));
        set_in6(&out->dst, a + 16, (uint16_t)(a[34] << 8 | a[35]));
    }
    out->version = 2;
    out->consumed = total;
    out->has_addr = true;
    out->local = false;
    return 0;
}

int sm_proxy_parse(sm_proxy_mode_t mode, const uint8_t *buf, size_t len, sm_proxy_result_t *out)
{
    memset(out, 0, sizeof *out);
    switch (mode) {
    case SM_PROXY_OFF:
        set_local(out, 0, 0);
        return 0;
    case SM_PROXY_V1:
        if (len == 0)
            return again(out, V1_MIN);
        return parse_v1(buf, len, out);
    case SM_PROXY_V2:
        if (len == 0)
            return again(out, SM_PROXY_V2_HEADER);
        return parse_v2(buf, len, out);
    case SM_PROXY_AUTO:
        if (len == 0)
            return again(out, V1_MIN);
        if (buf[0] == (uint8_t)v1_prefix[0])
            return parse_v1(buf, len, out);
        if (buf[0] == v2_sig[0])
            return parse_v2(buf, len, out);
        return fail(out, "not a PROXY protocol header");
    }
    return fail(out, "unknown PROXY protocol mode");
}

const char *sm_proxy_mode_name(sm_proxy_mode_t mode)
{
    switch (mode) {
    case SM_PROXY_OFF:
        return "off";
    case SM_PROXY_V1:
        return "v1";
    case SM_PROXY_V2:
        return "v2";
    case SM_PROXY_AUTO:
        return "auto";
    }
    return "unknown";
}

int sm_proxy_mode_parse(const char *name, sm_proxy_mode_t *out)
{
    static const sm_proxy_mode_t modes[] = {SM_PROXY_OFF, SM_PROXY_V1, SM_PROXY_V2, SM_PROXY_AUTO};
    for (size_t i = 0; name != NULL && i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(name, sm_proxy_mode_name(modes[i])) == 0) {
            *out = modes[i];
            return 0;
        }
    }
    return SM_EINVAL;
}
