/*
 * Growable circular array of queue items.
 */
#include "core/qfifo.h"

#include <stdlib.h>

#include "core/alloc.h"

void sm_qfifo_push(sm_qfifo_t *q, const sm_qitem_t *it)
{
    if (q->count == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        sm_qitem_t *n = sm_xmalloc(ncap * sizeof *n);
        for (size_t i = 0; i < q->count; i++)
            n[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = n;
        q->head = 0;
        q->cap = ncap;
    }
    q->items[(q->head + q->count) % q->cap] = *it;
    q->count++;
}

sm_qitem_t *sm_qfifo_peek(sm_qfifo_t *q)
{
    return q->count ? &q->items[q->head] : NULL;
}

void sm_qfifo_pop(sm_qfifo_t *q)
{
    if (q->count) {
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
}

size_t sm_qfifo_drain_to(sm_qfifo_t *q, sm_ring_t *r)
{
    size_t n = 0;
    while (q->count > 0 && sm_ring_push(r, &q->items[q->head])) {
        q->head = (q->head + 1) % q->cap;
        q->count--;
        n++;
    }
    return n;
}

void sm_qfifo_destroy(sm_qfifo_t *q)
{
    free(q->items);
    q->items = NULL;
    q->head = q->count = q->cap = 0;
}
