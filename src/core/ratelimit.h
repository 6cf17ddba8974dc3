/*
 * Token buckets, and a bounded per-source-IP table of them.
 *
 * sm_bucket_t is a plain struct the caller embeds (one per session for
 * limits.message_rate/_burst): `burst` tokens at most, refilled at
 * `rate_per_s`, one taken per event.  rate and burst are passed on each call
 * rather than stored, so 16 bytes per session and a config reload applies to
 * existing buckets.  Time is explicit (monotonic milliseconds: uv_now() or
 * sm_clock_mono_ms()), so tests pass it by hand and nothing here sleeps or
 * reads a clock.
 *
 * sm_iplimit_t limits connection attempts per source (limits.connect_rate /
 * _burst): one bucket per IPv4 address or per IPv6 /64 prefix, at most
 * max_entries of them.  One table per I/O thread, used only by that thread
 * (no locking; not thread-safe).  Note that with SO_REUSEPORT a client's
 * connections are spread over the I/O threads, so the effective per-source
 * limit is up to (number of I/O threads) x the configured one.
 *
 * Owns: the table owns its buckets; buckets embedded by callers are theirs.
 * No global state.
 */
#ifndef SM_CORE_RATELIMIT_H
#define SM_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- one bucket ---- */

typedef struct {
    double tokens;    /* available now-ish: as of last_ms */
    uint64_t last_ms; /* time of the last refill */
} sm_bucket_t;

/* Start b full (burst tokens) at now_ms.  A zeroed bucket is an empty one
 * at time 0, which against a monotonic clock (hours since boot) is as good as
 * full on first use; call this when the clock may start near 0 (tests). */
void sm_bucket_init(sm_bucket_t *b, double burst, uint64_t now_ms);

/*
 * Refill b by (now_ms - last_ms) * rate_per_s / 1000 tokens, cap at burst,
 * then take one token if one is available.  Returns true when the event is
 * allowed (a token was taken), false when it is over the limit (nothing
 * taken, so a client that keeps trying does not dig itself deeper).
 * rate_per_s may be fractional (0.5 = one event per 2 s) or 0 (no refill);
 * burst < 1 allows nothing.  A clock that goes backwards refills nothing.
 * The caller owns b; whoever owns b may call it (no locking).
 */
bool sm_bucket_take(sm_bucket_t *b, double rate_per_s, double burst, uint64_t now_ms);

/* ---- per-source-IP table ---- */

typedef struct sm_iplimit_s sm_iplimit_t;

/*
 * A table allowing each source `burst` attempts at once and `rate` per second
 * after that, tracking at most max_entries sources.  Returns NULL when the
 * parameters cannot describe a limit (rate <= 0 or not finite, burst < 1 or
 * not finite, max_entries 0): the caller treats that as "limiting disabled"
 * (config rate 0), and every function here accepts a NULL table as such.
 * The caller owns the table (sm_iplimit_free) and must use it from one
 * thread only.
 */
sm_iplimit_t *sm_iplimit_new(double rate, double burst, size_t max_entries);

/*
 * One connection attempt from sa at now_ms (monotonic ms).  True: allowed;
 * false: over the limit (answer HTTP 429 / close).  Always true for a NULL
 * table.  sa is borrowed and points to a complete sockaddr_in or
 * sockaddr_in6 (the PROXY source when there is one, else the peer).
 *
 * Key: the IPv4 address; an IPv4-mapped IPv6 address counts as its IPv4
 * address; any other IPv6 address counts as its /64 prefix, because one IPv6
 * client (a home router, a phone, a VM) is normally handed a whole /64 and
 * can pick a fresh address from it for every connection (privacy addresses):
 * keying on /128 would give one client 2^64 buckets and let it flush the
 * table.  The cost is that hosts sharing a /64 share a limit, as hosts behind
 * one IPv4 NAT do.  Other families (or NULL) all share one bucket.
 *
 * Memory: at most max_entries buckets.  A bucket that has refilled to burst
 * carries no information (a new one starts full), so such buckets are dropped
 * first: a few at the LRU head on every call (so the table shrinks when
 * traffic stops) and, when a new source needs room, the first full one among
 * the few least recently used.  Only when those are all still refilling is
 * the least recently used bucket dropped anyway, which can hand that source
 * a fresh burst early; sm_iplimit_forced_evictions counts these.
 */
bool sm_iplimit_allow(sm_iplimit_t *l, const struct sockaddr *sa, uint64_t now_ms);

/* Buckets currently held (<= max_entries; 0 for NULL), for metrics. */
size_t sm_iplimit_size(const sm_iplimit_t *l);
/* Buckets dropped while still refilling because the table was full (0 for
 * NULL): non-zero under a flood from many sources; a metric and a hint to
 * raise max_entries. */
uint64_t sm_iplimit_forced_evictions(const sm_iplimit_t *l);
/* Free l and its buckets (NULL is fine). */
void sm_iplimit_free(sm_iplimit_t *l);

#endif
