/*
 * PROXY protocol v1/v2 header parser (the trusted-proxy CIDR list it is used
 * with is core/cidr.h).
 *
 * Behind a TCP load balancer (HAProxy `send-proxy` / `send-proxy-v2`, AWS NLB,
 * ...) every connection starts with a PROXY header that names the real
 * client.  This module reads that header out of the first bytes of a
 * connection and says whether the connection's peer is one we trust to send
 * it.  It is sans-I/O and pure: it never reads a socket, never allocates
 * while parsing, keeps no state between calls and logs nothing, so any
 * thread may call every function here (a list is read-only after parsing).
 * Spec: HAProxy's doc/proxy-protocol.txt.
 *
 * How the I/O thread uses it (the connection accept path):
 *
 *   1. On accept, if server.proxy_protocol != off AND
 *      sm_cidr_match(trusted, peer) is true, the connection is in the
 *      "PROXY header" state; otherwise it goes straight to TLS/HTTP (an
 *      untrusted peer is never parsed: a client cannot spoof its address).
 *   2. Each time bytes arrive, call sm_proxy_parse(mode, all_bytes_so_far,
 *      len, &r) on the whole buffer from the first byte of the connection
 *      (the parser is stateless: it re-reads from the start, which is cheap
 *      because the header is at most SM_PROXY_MAX_HEADER bytes):
 *        SM_EAGAIN  keep reading; r.need is a lower bound on the total
 *                   length, never more than SM_PROXY_MAX_HEADER;
 *        SM_EPROTO  close the connection (log r.error);
 *        0          drop the first r.consumed bytes; the rest belongs to
 *                   TLS/HTTP.  If r.has_addr, use r.src as the client
 *                   address (logs, rate limits, metrics); if r.local, keep
 *                   the socket's own peer address.
 *   3. Bound the wait by the connection timeout, as for any slow client.
 */
#ifndef SM_REACTOR_PROXY_PROTO_H
#define SM_REACTOR_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/cidr.h"
#include "core/err.h"

/* ---- PROXY header ---- */

typedef enum {
    SM_PROXY_OFF,  /* no header expected: sm_proxy_parse consumes nothing */
    SM_PROXY_V1,   /* text header only */
    SM_PROXY_V2,   /* binary header only */
    SM_PROXY_AUTO, /* either, told apart by the first byte ('P' or '\r') */
} sm_proxy_mode_t;

/* v1: the spec's maximum line, "PROXY TCP6 <39> <39> 65535 65535\r\n". */
#define SM_PROXY_V1_MAX 107
/* v2: the fixed part (signature, ver/cmd, fam/proto, u16 length). */
#define SM_PROXY_V2_HEADER 16
/* v2: largest length field accepted.  The spec allows 65535, but the
 * addresses take at most 216 bytes (UNIX) and real senders add a few TLVs
 * (ALPN, authority, unique id, SSL info: well under 1 KiB); twice that is
 * room to spare, and it bounds what a connection may make us buffer before
 * it has said anything. */
#define SM_PROXY_V2_MAX_LEN 2048
#define SM_PROXY_MAX_HEADER (SM_PROXY_V2_HEADER + SM_PROXY_V2_MAX_LEN)

typedef struct {
    /* On 0: length of the header (bytes to drop); 0 for SM_PROXY_OFF. */
    size_t consumed;
    /* On SM_EAGAIN: the total length needed before the next call can finish
     * (a lower bound, > len, <= SM_PROXY_MAX_HEADER).  Exact once a v2 fixed
     * part has arrived; for v1 it is only "more than len". */
    size_t need;
    /* On 0: 1 or 2, the version found (0 for SM_PROXY_OFF). */
    int version;
    /* On 0: exactly one of has_addr and local is true.
     *   has_addr  src/dst hold the client (src) and the address it connected
     *             to (dst), AF_INET or AF_INET6 with the port set (network
     *             order, as in any sockaddr_in/_in6): v1 TCP4/TCP6, v2 PROXY
     *             over INET/INET6 (STREAM or DGRAM);
     *   local     no usable address: v2 LOCAL (the proxy's own health
     *             check), v1 UNKNOWN, v2 PROXY with family UNSPEC or UNIX.
     *             Use the socket's own peer; src/dst are zeroed. */
    bool has_addr;
    bool local;
    struct sockaddr_storage src;
    struct sockaddr_storage dst;
    /* On SM_EPROTO: a static, printable reason for the log ("v2: bad
     * version"); NULL otherwise. */
    const char *error;
} sm_proxy_result_t;

/*
 * Parse the PROXY header at the start of buf[0..len).
 *
 * mode     which versions are accepted (see sm_proxy_mode_t).
 * buf,len  every byte received on the connection so far, from the first;
 *          borrowed for the call, never read past len (buf may be NULL
 *          when len is 0).  Bytes after the header are not looked at.
 * out      filled on every return (see the fields); owned by the caller.
 *
 * Returns 0 (complete), SM_EAGAIN (a valid prefix: read more), or SM_EPROTO
 * (not a valid header for mode: close the connection).  A prefix is judged
 * as early as possible: "GET " fails at its first byte, a v1 line fails at
 * its first byte outside printable ASCII or at byte SM_PROXY_V1_MAX without
 * CRLF, a v2 header as soon as its fixed part is wrong.
 *
 * v1 is parsed strictly: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport
 * SP dport CRLF, single spaces, addresses of the named family in inet_pton
 * form, ports 0..65535 in decimal without leading zeros; or "PROXY UNKNOWN"
 * followed by CRLF or by SP and anything printable up to CRLF.
 * v2: signature, version 2, command LOCAL (family ignored) or PROXY with
 * family/transport one of UNSPEC, INET, INET6, UNIX x STREAM, DGRAM; the
 * length must cover the family's addresses and be <= SM_PROXY_V2_MAX_LEN;
 * TLVs after the addresses are skipped without being looked at.
 */
int sm_proxy_parse(sm_proxy_mode_t mode, const uint8_t *buf, size_t len, sm_proxy_result_t *out);

/* "off", "v1", "v2", "auto" (for logs and --print-config). Never NULL. */
const char *sm_proxy_mode_name(sm_proxy_mode_t mode);
/* The mode for one of those names (the config value); SM_EINVAL otherwise. */
int sm_proxy_mode_parse(const char *name, sm_proxy_mode_t *out);

#endif
