/*
 * Clocks.  Monotonic milliseconds for deadlines, wall-clock milliseconds for
 * what goes on the wire and in logs.  Owns nothing; any thread.
 *
 * Event-loop code should prefer uv_now(loop) (cached per iteration) for
 * deadlines; these functions read the clock each call.
 */
#ifndef SM_CORE_CLOCK_H
#define SM_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t sm_clock_mono_ms(void);
/* CLOCK_REALTIME in milliseconds since the Unix epoch. */
int64_t sm_clock_wall_ms(void);
/* RFC 3339 UTC text of a wall-clock time in ms, "2024-01-01T12:00:00.000Z".
 * Writes at most len bytes including the NUL; returns out. */
char *sm_clock_rfc3339(int64_t wall_ms, char *out, size_t len);

#endif
