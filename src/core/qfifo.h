/*
 * Unbounded FIFO of ring items (core/mpsc.h), for what a full ring could not
 * take yet.  A growable circular array; single-threaded (owned by the
 * producer that overflowed).
 */
#ifndef SM_CORE_QFIFO_H
#define SM_CORE_QFIFO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/mpsc.h"

typedef struct {
    sm_qitem_t *items;
    size_t head, count, cap;
} sm_qfifo_t;

void sm_qfifo_push(sm_qfifo_t *q, const sm_qitem_t *it);
/* Oldest item, or NULL when empty (valid until the next push/pop). */
sm_qitem_t *sm_qfifo_peek(sm_qfifo_t *q);
void sm_qfifo_pop(sm_qfifo_t *q);
/* Move items into ring r in order until it is full; returns how many moved. */
size_t sm_qfifo_drain_to(sm_qfifo_t *q, sm_ring_t *r);
/* Frees the array (items must have been released by the caller). */
void sm_qfifo_destroy(sm_qfifo_t *q);

#endif
