/*
 * Bounded lock-free multi-producer single-consumer ring of fixed-size items.
 *
 * The hot path between threads: I/O threads push decoded frames into a
 * worker's inbox; workers push encoded replies into an I/O thread's outbox.
 * Algorithm: Dmitry Vyukov's bounded queue (a sequence number per cell), with
 * C11 atomics only, so ThreadSanitizer sees every synchronisation.  We do not
 * use Concurrency Kit's ck_ring (DESIGN.md suggests it) because ck's atomics
 * are inline assembly that TSan cannot see, which would make the TSan run
 * either noisy or suppressed wholesale.
 *
 * Ownership: the ring is owned by its consumer thread, which created it and
 * alone may pop.  Any thread may push.  Items are copied in and out by value
 * (24 bytes), so a push allocates nothing.
 *
 * Full ring: sm_ring_push returns false and sets the "starved" flag; the
 * consumer, after draining, calls sm_ring_take_starved() and, when it was
 * set, tells the producers there is room again (how is up to the owner: the
 * reactor wakes the I/O threads to retry their stalled connections).
 */
#ifndef SM_CORE_MPSC_H
#define SM_CORE_MPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One queued item.  Meaning of the fields is up to the queue's users
 * (see reactor/msg.h). */
typedef struct {
    uint64_t handle; /* connection handle (core/handle.h) */
    void *ptr;       /* payload; ownership moves with the item */
    uint32_t arg;
    uint16_t kind;
    uint16_t flags;
} sm_qitem_t;

typedef struct {
    _Atomic size_t seq;
    sm_qitem_t item;
} sm__ring_cell_t;

typedef struct {
    sm__ring_cell_t *_cells;
    size_t _mask;
    alignas(64) _Atomic size_t _head; /* next position producers claim */
    alignas(64) size_t _tail;         /* next position the consumer reads */
    alignas(64) _Atomic bool _starved;
} sm_ring_t;

/* Consumer thread: capacity is rounded up to a power of two (>= 2). */
void sm_ring_init(sm_ring_t *r, size_t capacity);
/* Consumer thread, after every producer has stopped. Items still queued are
 * not inspected: the caller drains first if they own resources. */
void sm_ring_destroy(sm_ring_t *r);
/* Any thread.  Copies *it in.  false when full (and marks the ring starved). */
bool sm_ring_push(sm_ring_t *r, const sm_qitem_t *it);
/* Consumer thread.  Copies the oldest item out; false when empty. */
bool sm_ring_pop(sm_ring_t *r, sm_qitem_t *out);
/* Consumer thread: whether a push failed since the last call (and clear it). */
bool sm_ring_take_starved(sm_ring_t *r);
/* Any thread: approximate number of queued items (for metrics). */
size_t sm_ring_depth(sm_ring_t *r);
size_t sm_ring_capacity(const sm_ring_t *r);

#endif
