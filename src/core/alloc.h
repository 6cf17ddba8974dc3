/*
 * sm_xmalloc family: allocation that cannot fail.
 *
 * Owns nothing.  Any thread may call these.  On out-of-memory they log one
 * line to stderr and abort(): an OOM inside the server is not a condition we
 * can answer sensibly, and checking every internal allocation would hide the
 * checks that matter (sizes a peer controls, which callers bound against
 * [limits] before allocating).
 */
#ifndef SM_CORE_ALLOC_H
#define SM_CORE_ALLOC_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup, but never return NULL. */
void *sm_xmalloc(size_t size);
void *sm_xcalloc(size_t nmemb, size_t size);
void *sm_xrealloc(void *ptr, size_t size);
char *sm_xstrdup(const char *s);
char *sm_xstrndup(const char *s, size_t n);
/* Copy of len bytes at p (len may be 0: returns a valid 1-byte block). */
void *sm_xmemdup(const void *p, size_t len);

#define SM_NEW(type) ((type *)sm_xcalloc(1, sizeof(type)))

#endif
