/*
 * CIDR lists (core/cidr.h).
 *
 * CIDRs are stored as (family, prefix, 16 address bytes), in a flat array
 * scanned linearly: trusted_proxies lists hold a handful of entries and are
 * checked once per accepted connection.
 */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

typedef struct {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t prefix; /* 0..32 or 0..128 */
    uint8_t addr[16];
} cidr_t;

struct sm_cidr_list_s {
    size_t n;
    cidr_t items[];
};

/* Longest item quoted in an error message. */
#define ERR_ITEM_MAX 64

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void set_err(char *err, size_t errlen, size_t index, const char *item, size_t len,
                    const char *why)
{
    if (err == NULL || errlen == 0)
        return;
    int shown = (int)(len > ERR_ITEM_MAX ? ERR_ITEM_MAX : len);
    snprintf(err, errlen, "item %zu \"%.*s%s\": %s", index, shown, item,
             len > ERR_ITEM_MAX ? "..." : "", why);
}

static bool is_v4_mapped(const uint8_t a[16])
{
    static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pfx, sizeof pfx) == 0;
}

/* Parse item[0..len) (already trimmed, index is 1-based for messages). */
static int parse_cidr(const char *item, size_t len, size_t index, cidr_t *c, char *err,
                      size_t errlen)
{
    if (len == 0) {
        set_err(err, errlen, index, item, len, "empty item");
        return SM_EINVAL;
    }
    const char *slash = memchr(item, '/', len);
    size_t alen = slash ? (size_t)(slash - item) : len;
    char abuf[INET6_ADDRSTRLEN];
    memset(c, 0, sizeof *c);
    if (alen == 0 || alen >= sizeof abuf) {
        set_err(err, errlen, index, item, len, "not an IPv4 or IPv6 address");
        return SM_EINVAL;
    }
    memcpy(abuf, item, alen);
    abuf[alen] = '\0';
    unsigned max;
    if (inet_pton(AF_INET, abuf, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, abuf, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        set_err(err, errlen, index, item, len, "not an IPv4 or IPv6 address");
        return SM_EINVAL;
    }

    unsigned prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        bool ok = plen >= 1 && plen <= 3;
        prefix = 0;
        for (size_t i = 0; ok && i < plen; i++) {
            if (p[i] < '0' || p[i] > '9')
                ok = false;
            else
                prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (!ok || prefix > max) {
            set_err(err, errlen, index, item, len,
                    max == 32 ? "IPv4 prefix length must be 0..32"
                              : "IPv6 prefix length must be 0..128");
            return SM_EINVAL;
        }
    }
    c->prefix = (uint8_t)prefix;
    if (c->family == AF_INET6 && prefix >= 96 && is_v4_mapped(c->addr)) {
        /* ::ffff:10.0.0.0/104 is 10.0.0.0/8: one form to match against. */
        memmove(c->addr, c->addr + 12, 4);
        memset(c->addr + 4, 0, 12);
        c->family = AF_INET;
        c->prefix = (uint8_t)(prefix - 96);
    }
    return 0;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_blank((*s)[*len - 1]))
        (*len)--;
}

int sm_cidr_parse_items(const char *const *items, size_t n, sm_cidr_list_t **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    sm_cidr_list_t *l = sm_xcalloc(1, sizeof *l + n * sizeof l->items[0]);
    for (size_t i = 0; i < n; i++) {
        const char *item = items[i] ? items[i] : "";
        size_t len = strlen(item);
        trim(&item, &len);
        int rc = parse_cidr(item, len, i + 1, &l->items[l->n], err, errlen);
        if (rc != 0) {
            sm_cidr_list_free(l);
            return rc;
        }
        l->n++;
    }
    *out = l;
    return 0;
}

/* Split at every comma into a copy and parse the items: an all-blank list has
 * no items, otherwise every comma separates two (possibly empty) items. */
int sm_cidr_parse_list(const char *list, sm_cidr_list_t **out, char *err, size_t errlen)
{
    const char *s = list ? list : "";
    size_t total = strlen(s);
    trim(&s, &total);
    if (total == 0)
        return sm_cidr_parse_items(NULL, 0, out, err, errlen);
    char *copy = sm_xstrndup(s, total);
    size_t n = 1;
    for (size_t i = 0; i < total; i++)
        n += copy[i] == ',';
    const char **items = sm_xcalloc(n, sizeof *items);
    items[0] = copy;
    for (size_t i = 0, k = 1; i < total; i++) {
        if (copy[i] == ',') {
            copy[i] = '\0';
            items[k++] = copy + i + 1;
        }
    }
    int rc = sm_cidr_parse_items(items, n, out, err, errlen);
    free(items);
    free(copy);
    return rc;
}

/* The first `bits` bits of a and b agree (bits below are ignored, so the
 * stored address keeps whatever host bits the config had). */
static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rem = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rem));
    return ((a[whole] ^ b[whole]) & mask) == 0;
}

static bool match_family(const sm_cidr_list_t *l, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < l->n; i++) {
        const cidr_t *c = &l->items[i];
        if (c->family == family && prefix_match(addr, c->addr, c->prefix))
            return true;
    }
    return false;
}

bool sm_cidr_match(const sm_cidr_list_t *l, const struct sockaddr *sa)
{
    if (l == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof sin);
        uint8_t a[4];
        memcpy(a, &sin.sin_addr, 4);
        return match_family(l, AF_INET, a);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof sin6);
        uint8_t a[16];
        memcpy(a, &sin6.sin6_addr, 16);
        if (is_v4_mapped(a) && match_family(l, AF_INET, a + 12))
            return true;
        return match_family(l, AF_INET6, a);
    }
    return false;
}

size_t sm_cidr_list_count(const sm_cidr_list_t *l)
{
    return l ? l->n : 0;
}

void sm_cidr_list_free(sm_cidr_list_t *l)
{
    free(l);
}
