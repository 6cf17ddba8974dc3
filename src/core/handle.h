/*
 * Connection handles: how threads other than a connection's I/O thread refer
 * to it.  {io_index, slot, generation} packed in 64 bits; the I/O thread
 * bumps a slot's generation when the connection in it is freed, so work
 * addressed to a handle whose generation no longer matches is dropped: a
 * stale handle can never reach a newer connection in the same slot.
 * Plain values; any thread.
 */
#ifndef SM_CORE_HANDLE_H
#define SM_CORE_HANDLE_H

#include <stdint.h>

typedef uint64_t sm_handle_t;

#define SM_HANDLE_NONE ((sm_handle_t)0)

/* io_index: 8 bits, slot: 24 bits, generation: 32 bits (never 0 for a live
 * connection, so SM_HANDLE_NONE is never a valid handle). */
static inline sm_handle_t sm_handle_make(unsigned io_index, uint32_t slot, uint32_t gen)
{
    return ((uint64_t)(io_index & 0xffu) << 56) | ((uint64_t)(slot & 0xffffffu) << 32) | gen;
}

static inline unsigned sm_handle_io(sm_handle_t h)
{
    return (unsigned)(h >> 56);
}

static inline uint32_t sm_handle_slot(sm_handle_t h)
{
    return (uint32_t)(h >> 32) & 0xffffffu;
}

static inline uint32_t sm_handle_gen(sm_handle_t h)
{
    return (uint32_t)h;
}

#define SM_HANDLE_MAX_SLOTS 0xffffffu
#define SM_HANDLE_MAX_IO 256u

#endif
