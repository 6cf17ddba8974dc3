/*
 * A test address: "192.0.2.1" or "2001:db8::1" as a sockaddr_storage.
 * Header-only (static inline) so each test binary stays one .c file.
 */
#ifndef SM_TESTS_SUPPORT_SOCKADDR_H
#define SM_TESTS_SUPPORT_SOCKADDR_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* addr parsed as IPv4 (with port v4_port) or else IPv6 (port 0); a test
 * failure if it is neither. */
static inline struct sockaddr_storage t_sockaddr(const char *addr, uint16_t v4_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(v4_port);
        memcpy(&ss, &sin, sizeof sin);
    } else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        memcpy(&ss, &sin6, sizeof sin6);
    } else {
        fail_msg("bad test address %s", addr);
    }
    return ss;
}

#endif
