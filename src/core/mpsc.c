/*
 * Vyukov bounded queue, specialised to one consumer (no CAS on dequeue).
 *
 * Each cell carries a sequence number.  A producer may write cell i when
 * seq == pos (free for this lap), claims it by advancing _head with a CAS,
 * writes the item and publishes it by storing seq = pos + 1 (release).  The
 * consumer reads cell i when seq == pos + 1 (acquire), copies the item and
 * frees the cell for the next lap by storing seq = pos + capacity (release).
 */
#include "core/mpsc.h"

#include "core/alloc.h"

#include <stdlib.h>

void sm_ring_init(sm_ring_t *r, size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    r->_cells = sm_xcalloc(cap, sizeof *r->_cells);
    r->_mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&r->_cells[i].seq, i);
    atomic_init(&r->_head, 0);
    r->_tail = 0;
    atomic_init(&r->_starved, false);
}

void sm_ring_destroy(sm_ring_t *r)
{
    free(r->_cells);
    r->_cells = NULL;
}

bool sm_ring_push(sm_ring_t *r, const sm_qitem_t *it)
{
    size_t pos = atomic_load_explicit(&r->_head, memory_order_relaxed);
    for (;;) {
        sm__ring_cell_t *c = &r->_cells[pos & r->_mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->_head, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                c->item = *it;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
            /* CAS failure reloaded pos; retry. */
        } else if (diff < 0) {
            atomic_store_explicit(&r->_starved, true, memory_order_relaxed);
            return false; /* full: the cell still holds last lap's item */
        } else {
            pos = atomic_load_explicit(&r->_head, memory_order_relaxed);
        }
    }
}

bool sm_ring_pop(sm_ring_t *r, sm_qitem_t *out)
{
    size_t pos = r->_tail;
    sm__ring_cell_t *c = &r->_cells[pos & r->_mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if (seq != pos + 1)
        return false;
    *out = c->item;
    atomic_store_explicit(&c->seq, pos + r->_mask + 1, memory_order_release);
    r->_tail = pos + 1;
    return true;
}

bool sm_ring_take_starved(sm_ring_t *r)
{
    if (!atomic_load_explicit(&r->_starved, memory_order_relaxed))
        return false;
    return atomic_exchange_explicit(&r->_starved, false, memory_order_relaxed);
}

size_t sm_ring_depth(sm_ring_t *r)
{
    /* _tail is consumer-private; estimate from the cell sequence instead so
     * that other threads can call this without a data race. */
    size_t head = atomic_load_explicit(&r->_head, memory_order_relaxed);
    size_t n = 0;
    /* Count published-but-unconsumed cells backwards from head, bounded. */
    for (size_t i = 1; i <= r->_mask + 1; i++) {
        size_t pos = head - i;
        size_t seq = atomic_load_explicit(&r->_cells[pos & r->_mask].seq, memory_order_relaxed);
        if (seq != pos + 1)
            break;
        n++;
    }
    return n;
}

size_t sm_ring_capacity(const sm_ring_t *r)
{
    return r->_mask + 1;
}
