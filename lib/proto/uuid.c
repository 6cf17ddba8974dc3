/*
 * Version 4 uuids from the OS CSPRNG, and their 8-4-4-4-12 text form.
 *
 * DESIGN: every message the server originates (relayed SIGNAL, ROOM_EVENT,
 * DISCONNECT notice) carries a fresh uuid, so generation is on the hot path.
 * One getrandom(2) per uuid would be a system call per relayed message;
 * instead each thread keeps a 4 KiB buffer of CSPRNG output and hands out 16
 * bytes at a time: one system call per 256 uuids.  4 KiB is large enough that
 * the syscall cost vanishes (under 1 ns per uuid amortised) and small enough
 * to stay in L1/L2 next to the thread's other state.  Bytes are zeroed as
 * they are handed out, so the buffer never holds a copy of an issued id (some
 * ids, like session ids, are worth not leaving lying around).
 *
 * The buffer is thread-local, so there is no lock.  After fork() the child
 * would otherwise replay its parent's buffer: a pthread_atfork() child handler
 * empties the forking thread's buffer (the only thread the child has).
 */
#include <sm/uuid.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

/* 4 KiB = 256 uuids per getrandom(2); see DESIGN above. */
#define POOL_SIZE 4096

_Static_assert(POOL_SIZE % SM_UUID_SIZE == 0, "pool holds whole uuids");

static _Thread_local struct {
    size_t pos; /* next unread byte; POOL_SIZE = empty */
    uint8_t bytes[POOL_SIZE];
} pool = {.pos = POOL_SIZE};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    pool.pos = POOL_SIZE;
}

static void atfork_register(void)
{
    /* Failure (ENOMEM) only loses the fork protection; nothing to report to. */
    (void)pthread_atfork(NULL, NULL, pool_forget);
}

static int pool_refill(void)
{
    (void)pthread_once(&atfork_once, atfork_register);
    size_t got = 0;
    while (got < POOL_SIZE) {
        ssize_t n = getrandom(pool.bytes + got, POOL_SIZE - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            pool.pos = POOL_SIZE;
            return SM_PROTO_ERANDOM;
        }
        if (n == 0) {
            /* Not a documented outcome; do not spin on it. */
            pool.pos = POOL_SIZE;
            return SM_PROTO_ERANDOM;
        }
        got += (size_t)n;
    }
    pool.pos = 0;
    return SM_PROTO_OK;
}

int sm_uuid_v4(uint8_t *out)
{
    if (pool.pos == POOL_SIZE) {
        int rc = pool_refill();
        if (rc != SM_PROTO_OK)
            return rc;
    }
    uint8_t *src = pool.bytes + pool.pos;
    memcpy(out, src, SM_UUID_SIZE);
    memset(src, 0, SM_UUID_SIZE);
    pool.pos += SM_UUID_SIZE;
    out[6] = (uint8_t)((out[6] & 0x0F) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3F) | 0x80); /* variant 10xx */
    return SM_PROTO_OK;
}

char *sm_uuid_format(const uint8_t *in, char *out)
{
    static const char hex[16] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < SM_UUID_SIZE; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[in[i] >> 4];
        *p++ = hex[in[i] & 0x0F];
    }
    *p = '\0';
    return out;
}

/* Hex digit value + 1, so the zero-initialised rest of the table means "not
 * hex" (one load per character). */
static const int8_t hexval[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int sm_uuid_parse_n(const char *s, size_t len, uint8_t *out)
{
    if (s == NULL || len != SM_UUID_STR_LEN)
        return SM_PROTO_EUUID;
    if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return SM_PROTO_EUUID;
    uint8_t tmp[SM_UUID_SIZE];
    const unsigned char *p = (const unsigned char *)s;
    for (int i = 0; i < SM_UUID_SIZE; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            p++; /* the hyphen checked above */
        int hi = hexval[p[0]], lo = hexval[p[1]];
        if (hi == 0 || lo == 0)
            return SM_PROTO_EUUID;
        tmp[i] = (uint8_t)(((hi - 1) << 4) | (lo - 1));
        p += 2;
    }
    memcpy(out, tmp, SM_UUID_SIZE);
    return SM_PROTO_OK;
}

int sm_uuid_parse(const char *s, uint8_t *out)
{
    if (s == NULL)
        return SM_PROTO_EUUID;
    /* Bounded: never reads past the 37th byte. */
    size_t len = strnlen(s, SM_UUID_STR_LEN + 1);
    return sm_uuid_parse_n(s, len, out);
}
