/*
 * IPv4/IPv6 CIDR lists: server.trusted_proxies (which peers may send a PROXY
 * header, reactor/proxy_proto.h), parsed by config validation so that
 * --check-config refuses a bad list, and again by the server, which keeps it.
 *
 * Owns: a list owns its items; the functions keep no state and log nothing,
 * so any thread may call them (a list is read-only after parsing).
 */
#ifndef SM_CORE_CIDR_H
#define SM_CORE_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/err.h"

/* Opaque, immutable after parsing: share it read-only between threads. */
typedef struct sm_cidr_list_s sm_cidr_list_t;

/*
 * Parse a comma-separated list of IPv4/IPv6 CIDRs, e.g.
 * "10.0.0.0/8, 127.0.0.1/32, ::1/128".  Spaces and tabs around items are
 * ignored; a bare address means /32 (IPv4) or /128 (IPv6); bits below the
 * prefix are ignored ("10.1.2.3/8" is 10.0.0.0/8, as nginx's
 * set_real_ip_from does).  An IPv6 CIDR inside ::ffff:0:0/96 is stored as the
 * IPv4 CIDR it denotes.  An empty or all-blank string is an empty list
 * (matches nothing); an empty item ("a,,b", "a,") is an error.
 *
 * On 0, *out is a new list the caller owns (free with sm_cidr_list_free).
 * On SM_EINVAL, *out is NULL and err (if errlen > 0) holds a NUL-terminated
 * message naming the offending item and its position, e.g.
 * `item 2 "10.0.0.0/33": IPv4 prefix length must be 0..32`; the caller
 * prefixes the config key.  list is borrowed.  Any thread.
 */
int sm_cidr_parse_list(const char *list, sm_cidr_list_t **out, char *err, size_t errlen);
/* The same for items already split (a config LIST): items[0..n) borrowed,
 * each one CIDR, surrounding blanks ignored, none empty.  Same returns. */
int sm_cidr_parse_items(const char *const *items, size_t n, sm_cidr_list_t **out, char *err,
                        size_t errlen);

/*
 * True when sa is inside one of the list's CIDRs.  sa points to a complete
 * sockaddr_in or sockaddr_in6 (as from getpeername/uv_tcp_getpeername into a
 * sockaddr_storage); other families and NULL never match.  An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4 peer) matches
 * the IPv4 CIDRs that contain a.b.c.d, and also IPv6 CIDRs that contain it
 * literally (so "::/0" means every peer of an IPv6 socket).  l may be NULL
 * (matches nothing).  Read-only: any thread, concurrently.
 */
bool sm_cidr_match(const sm_cidr_list_t *l, const struct sockaddr *sa);
/* Number of CIDRs in l (0 for NULL). */
size_t sm_cidr_list_count(const sm_cidr_list_t *l);
/* Free l (NULL is fine).  No thread may use it afterwards. */
void sm_cidr_list_free(sm_cidr_list_t *l);

#endif
