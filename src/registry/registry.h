/*
 * Registry: which session holds which client_id, process-wide.
 *
 * Owns a sharded hash table client_id -> holder.  Any worker thread may call
 * every function; each shard has its own mutex, held only for the table
 * operation (no I/O, no callbacks, one small allocation at most).  Holders are
 * identified by their session serial; the holder's session state itself lives
 * on its worker and is never touched through the registry.
 *
 * Lifecycle of an entry: sm_registry_claim() creates it PENDING (the store
 * write is in flight; SIGNALs cannot reach it yet), sm_registry_commit() makes
 * it REGISTERED, sm_registry_release() removes it.  Only the holder (same
 * serial) may commit, update or release.  The registry is an interface in
 * spirit: a Redis-backed cluster registry will implement the same calls.
 */
#ifndef SM_REGISTRY_REGISTRY_H
#define SM_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/handle.h"

typedef struct sm_registry_s sm_registry_t;

#define SM_RESUME_TOKEN_LEN 16

typedef struct {
    uint64_t serial;  /* session serial of the holder (never 0) */
    sm_handle_t conn; /* its connection, SM_HANDLE_NONE while detached */
    uint16_t worker;  /* worker that owns the holder session */
    bool registered;  /* false while PENDING */
    bool releasing;   /* an UNREGISTER is in flight: not resumable */
    uint8_t resume_token[SM_RESUME_TOKEN_LEN]; /* the holder's current token */
    char session_id[37];                       /* the registration's session id */
} sm_reg_holder_t;

/* Main thread.  shards is rounded up to a power of two. */
sm_registry_t *sm_registry_new(unsigned shards);
/* Main thread, after all workers stopped. */
void sm_registry_free(sm_registry_t *r);

/* Claim client_id for holder h (h->registered is ignored: the entry starts
 * PENDING).  0 on success; SM_ECONFLICT when another holder has it (copied to
 * *existing when not NULL). */
int sm_registry_claim(sm_registry_t *r, const char *client_id, const sm_reg_holder_t *h,
                      sm_reg_holder_t *existing);
/* PENDING -> REGISTERED.  0, or SM_ENOTFOUND when serial does not hold it. */
int sm_registry_commit(sm_registry_t *r, const char *client_id, uint64_t serial);
/* Mark the entry as being released (or not any more).  0 or SM_ENOTFOUND. */
int sm_registry_set_releasing(sm_registry_t *r, const char *client_id, uint64_t serial,
                              bool releasing);
/* Point the entry at another connection (resume/detach).  0 or SM_ENOTFOUND. */
int sm_registry_set_conn(sm_registry_t *r, const char *client_id, uint64_t serial,
                         sm_handle_t conn);
/* Hand the entry held by expect_serial to h (resume, or REGISTER over a
 * detached holder).  h->registered is kept as given.  0, or SM_ENOTFOUND
 * when expect_serial no longer holds it. */
int sm_registry_takeover(sm_registry_t *r, const char *client_id, uint64_t expect_serial,
                         const sm_reg_holder_t *h);
/* Remove the entry if serial holds it.  0 or SM_ENOTFOUND. */
int sm_registry_release(sm_registry_t *r, const char *client_id, uint64_t serial);
/* Copy the holder of client_id.  0, or SM_ENOTFOUND when nobody holds it.
 * `len` is the id length (ids need not be NUL-terminated). */
int sm_registry_lookup(sm_registry_t *r, const char *client_id, size_t len,
                       sm_reg_holder_t *out);
/* Registered (committed) entries, any thread, approximate under concurrency. */
size_t sm_registry_count(const sm_registry_t *r);

#endif
