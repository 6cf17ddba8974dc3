/*
 * Store: registrations, rooms and room memberships behind an asynchronous
 * interface with pluggable backends (STYLE.md §5).
 *
 * Backends are const vtables picked by name (config store.backend):
 *   "sqlite"    (default) a file in WAL mode, driven by one dedicated store
 *               thread that owns the connection; see store_sqlite.c.
 *   "memory"    hash tables under a mutex, lost at exit; see store_memory.c.
 *   "firestore" Firestore REST documents, called on the submitting thread's
 *               REST client (sm_rest_client_current); see store_firestore.c
 *               and the "Firestore" notes below.
 *
 * Threads.  sm_store_open, sm_store_cleanup_instance and sm_store_close are
 * for the main thread.  The asynchronous operations may be called from any
 * thread that runs a libuv loop with an sm_taskq_t attached (the workers).
 * Each operation takes that taskq as `reply`: the completion callback is
 * always posted there and so runs later on the caller's loop thread, never
 * inside the call (for every backend, also memory).  sm_store_healthy may be
 * called from any thread.
 *
 * Ordering.  sqlite and memory apply operations in the order they were
 * submitted (one FIFO for all callers), and the callbacks of one reply taskq
 * run in that order too.  firestore orders per calling thread and per
 * record: operations submitted from one thread that touch the same record
 * (the same client_id for registration operations, the same room_id for
 * room and membership operations; count_registrations after every earlier
 * registration operation of that thread) are applied and completed in
 * submission order; other operations run concurrently and may complete in
 * any order.  Nothing orders operations submitted from different threads.
 *
 * Failures (DECISIONS §3, §4).  Each operation is atomic: it is applied
 * completely or not at all.  A retryable failure (sqlite: busy, locked, I/O
 * error, or the per-attempt database.operation_timeout expiring) is retried
 * up to database.retry_attempts attempts with database.retry_interval ms
 * between; after the last attempt, or on any other backend failure, the
 * status is SM_EUNAVAIL (protocol 503) and nothing was changed.  Constraint
 * outcomes are not failures and are never retried: SM_ECONFLICT (the key
 * exists) and SM_ENOTFOUND (no such row).  An error can be reported after a
 * commit was in fact durable (sqlite: an I/O error in the checkpoint that
 * follows it); so a retried insert that finds its own row (same session_id
 * and registered_at_ms; same creator, instance and created_at_ms; same role
 * and joined_at_ms) reports success, and a retried delete may answer
 * SM_ENOTFOUND for a row its earlier attempt removed.
 *
 * Firestore.  Operations run on the submitting thread's REST client
 * (sm_rest_client_current(); each worker has one): an operation submitted
 * from a thread without one completes with SM_EUNAVAIL (logged).
 * database.operation_timeout bounds each HTTP attempt and
 * database.retry_attempts bounds the failed attempts of a whole operation
 * (all its calls together), with a backoff starting at
 * database.retry_interval; so an operation that keeps failing ends within
 * about operation_timeout x retry_attempts plus the backoffs.
 * sm_store_cleanup_instance runs on a temporary loop and REST client of the
 * calling thread.  sm_store_close waits for operations still running on
 * other threads; it must not be called from a thread that still has
 * firestore operations in flight (their completion needs that thread's
 * loop, which close would block).  cleanup_instance deletes in commits of
 * at most 500 writes: on a failure after the first commit some stale
 * records may already be gone (the next start-up removes the rest).
 * Memberships record the instance id last given to
 * sm_store_cleanup_instance (the server passes its own at start-up), else
 * cfg->instance_id, so that a later clean-up finds them.
 *
 * Health.  After 3 consecutive failed operations (any status other than 0,
 * SM_ENOTFOUND and SM_ECONFLICT) sm_store_healthy() is false; the next
 * successful operation makes it true again.  /health reports it.
 */
#ifndef SM_STORE_STORE_H
#define SM_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/list.h"
#include "core/taskq.h"

/* Consecutive failed operations after which sm_store_healthy() is false. */
#define SM_STORE_UNHEALTHY_AFTER 3

typedef struct sm_store_s sm_store_t;
typedef struct sm_store_req_s sm_store_req_t;

/* ---- Records ------------------------------------------------------------
 * Strings are NUL-terminated and owned by whoever owns the struct.  The JSON
 * fields are stored and returned as text, unparsed; they may be NULL. */

/* A registered client.  Key: client_id. */
typedef struct {
    char *client_id;         /* required, non-empty */
    char *session_id;        /* required, non-empty; delete must name it */
    char *capabilities_json; /* may be NULL */
    char *metadata_json;     /* may be NULL */
    char *instance_id;       /* server instance holding it (for crash cleanup); may be NULL */
    int64_t connected_at_ms; /* wall clock, ms since the epoch */
    int64_t registered_at_ms;
} sm_registration_t;

/* A room.  Key: room_id. */
typedef struct {
    char *room_id;       /* required, non-empty */
    char *creator_id;    /* may be NULL */
    char *instance_id;   /* may be NULL */
    char *metadata_json; /* may be NULL */
    int64_t created_at_ms;
    int max_participants; /* stored as given; the store does not enforce it */
} sm_room_rec_t;

/* One membership row.  Key: (room_id, client_id). */
typedef struct {
    char *room_id;
    char *client_id;
    char *role;           /* "sender" or "receiver" */
    int64_t joined_at_ms; /* stamped by the store (wall clock) when add_member is called */
} sm_room_member_t;

/* Client credentials for auth_method=store (DECISIONS §8).  Key: client_id.
 * token_sha256 is the SHA-256 of the client's token as 64 lower-case hex
 * digits. */
typedef struct {
    char *client_id;
    char *token_sha256;
} sm_client_rec_t;

/* Deep copies and field release (any thread).  *_copy writes owned copies of
 * every string of src into dst (dst's previous content is not freed);
 * *_clear frees the strings and zeroes the struct (the struct itself is the
 * caller's). */
void sm_store_reg_copy(sm_registration_t *dst, const sm_registration_t *src);
void sm_store_reg_clear(sm_registration_t *r);
void sm_store_room_copy(sm_room_rec_t *dst, const sm_room_rec_t *src);
void sm_store_room_clear(sm_room_rec_t *r);

/* ---- Completion --------------------------------------------------------- */

/* What an operation produced.  Borrowed by the callback for the duration of
 * the call only (copy what you keep, e.g. with sm_store_reg_copy).  Always
 * non-NULL; when status != 0 every field is NULL/0. */
typedef struct {
    const sm_registration_t *registration; /* get_registration */
    const sm_room_rec_t *room;             /* get_room */
    const sm_room_member_t *members;       /* get_room: in the order they were added */
    size_t n_members;
    uint64_t count;                /* count_registrations */
    const sm_client_rec_t *client; /* get_client */
} sm_store_result_t;

/*
 * Completion callback: runs on the reply taskq's thread, exactly once per
 * accepted operation, after the call that submitted it returned.  status is
 * 0, SM_ENOTFOUND, SM_ECONFLICT, SM_EUNAVAIL (store failure after retries),
 * SM_ECLOSED (the store was closing) or, from a test backend, anything else.
 * arg is the caller's and must stay valid until the callback ran.
 *
 * Exception: if the reply taskq was closed when the operation completed
 * (the caller's loop is shutting down), the completion is dropped and the
 * callback never runs.
 */
typedef void (*sm_store_done_cb)(int status, const sm_store_result_t *res, void *arg);

/* ---- Lifecycle (main thread) -------------------------------------------- */

/*
 * Open the backend named by cfg->store_backend ("sqlite", "memory" or
 * "firestore").  The sqlite backend creates the parent directory of
 * cfg->store_path if missing, opens the file in WAL mode, creates or checks
 * the schema and starts the store thread.  The firestore backend checks its
 * [firestore] keys, reads FIRESTORE_EMULATOR_HOST from the environment and
 * opens its Google credentials; outside emulator mode it fetches a first
 * token (sm_gcreds_check, bounded by database.operation_timeout) so bad
 * credentials fail the start.  cfg is read during the call only; the fields
 * used are store_backend, store_path, database_operation_timeout,
 * database_retry_attempts, database_retry_interval, firestore_*, and
 * instance_id.
 * Returns 0 with *out owning the store, or SM_ECONFIG with a one-line
 * message naming the key in err (e.g. "store.path: cannot open data/x.db:
 * unable to open database file") and *out NULL.
 */
int sm_store_open(const sm_config_t *cfg, sm_store_t **out, char *err, size_t errlen);

/*
 * Blocking, main thread, at start-up before any asynchronous operation:
 * delete the registrations and rooms whose instance_id equals instance_id
 * (records this instance left behind after a crash), the memberships of
 * those rooms, and the memberships of those registrations' clients.
 * Writes the numbers of deleted registrations and rooms (either pointer may
 * be NULL).  Returns 0, SM_EUNAVAIL (store failure after retries),
 * SM_EINVAL (instance_id NULL or empty) or SM_ECLOSED (after close began).
 * On error nothing was deleted and both counts are 0.
 */
int sm_store_cleanup_instance(sm_store_t *s, const char *instance_id, unsigned *removed_regs,
                              unsigned *removed_rooms);

/*
 * Main thread, after every caller stopped submitting.  Completes everything
 * still queued (callbacks are still posted; completions whose reply taskq is
 * already closed are dropped), stops and joins the store thread, closes the
 * database and frees s.  Callbacks posted before close may run after it
 * returned: they do not touch the store.  s may be NULL.
 */
void sm_store_close(sm_store_t *s);

/* Any thread. */
bool sm_store_healthy(const sm_store_t *s);
/* Name of the backend ("sqlite", "memory", ...), for the start-up log line. */
const char *sm_store_backend_name(const sm_store_t *s);

/* ---- Asynchronous operations (any thread with a reply taskq) -------------
 * All return 0 when the operation was accepted: cb(status, res, arg) will
 * be posted to reply exactly once (see sm_store_done_cb).  On a non-zero
 * return cb is never called:
 *   SM_EINVAL   a required argument is NULL or empty (named in each entry);
 *   SM_ECLOSED  sm_store_close has begun.
 * Arguments are copied before the call returns; the caller keeps ownership.
 * s, reply and cb must not be NULL. */

/* Insert reg (client_id, session_id required).  A registration for that
 * client_id exists -> SM_ECONFLICT, nothing changed. */
int sm_store_put_registration(sm_store_t *s, const sm_registration_t *reg, sm_taskq_t *reply,
                              sm_store_done_cb cb, void *arg);
/* Delete the registration of client_id only if its session_id matches.
 * No such row (or another session's) -> SM_ENOTFOUND.  Memberships are not
 * touched (leave the rooms first). */
int sm_store_delete_registration(sm_store_t *s, const char *client_id, const char *session_id,
                                 sm_taskq_t *reply, sm_store_done_cb cb, void *arg);
/* res->registration, or SM_ENOTFOUND. */
int sm_store_get_registration(sm_store_t *s, const char *client_id, sm_taskq_t *reply,
                              sm_store_done_cb cb, void *arg);
/* res->count = number of registrations (all instances). */
int sm_store_count_registrations(sm_store_t *s, sm_taskq_t *reply, sm_store_done_cb cb, void *arg);
/* Insert room (room_id required).  Exists -> SM_ECONFLICT.  The creator is
 * not made a member: call add_member. */
int sm_store_put_room(sm_store_t *s, const sm_room_rec_t *room, sm_taskq_t *reply,
                      sm_store_done_cb cb, void *arg);
/* Delete a room and all its memberships.  No room -> SM_ENOTFOUND. */
int sm_store_delete_room(sm_store_t *s, const char *room_id, sm_taskq_t *reply, sm_store_done_cb cb,
                         void *arg);
/* res->room and res->members, or SM_ENOTFOUND. */
int sm_store_get_room(sm_store_t *s, const char *room_id, sm_taskq_t *reply, sm_store_done_cb cb,
                      void *arg);
/* Add a membership; role must be "sender" or "receiver" (else SM_EINVAL).
 * No room -> SM_ENOTFOUND; already a member -> SM_ECONFLICT.  The store does
 * not check max_participants (the rooms module does). */
int sm_store_add_member(sm_store_t *s, const char *room_id, const char *client_id, const char *role,
                        sm_taskq_t *reply, sm_store_done_cb cb, void *arg);
/* Remove a membership.  Not a member (or no room) -> SM_ENOTFOUND.  The room
 * is kept even when it becomes empty (delete_room closes it). */
int sm_store_remove_member(sm_store_t *s, const char *room_id, const char *client_id,
                           sm_taskq_t *reply, sm_store_done_cb cb, void *arg);

/* res->client (client_id and token_sha256), or SM_ENOTFOUND: no such
 * client, or its stored token_sha256 is not 64 hex digits (logged as a
 * warning; the digits are returned in lower case).  Where the credentials
 * live: sqlite table `clients` (client_id TEXT PRIMARY KEY, token_sha256
 * TEXT), firestore documents <collection_prefix>clients/<escaped id> with a
 * stringValue field token_sha256, memory: sm_store_memory_set_client.  A
 * backend without a get_client entry (a test fake) answers SM_ENOTFOUND. */
int sm_store_get_client(sm_store_t *s, const char *client_id, sm_taskq_t *reply,
                        sm_store_done_cb cb, void *arg);

/*
 * Memory backend only, any thread (tests, and single-process set-ups that
 * provision clients in code): insert or replace the credentials of
 * client_id.  token_sha256_hex must be 64 hex digits.  Returns 0, SM_EINVAL
 * (empty client_id, malformed hash, or s is not a memory store).
 */
int sm_store_memory_set_client(sm_store_t *s, const char *client_id, const char *token_sha256_hex);

/* ---- Backend interface ---------------------------------------------------
 * For backend files and for tests that fake or wrap a backend.
 *
 * Every operation reaches the backend as a request it owns from the moment
 * its vtable function is called until it passes the request to
 * sm_store_req_complete(), which it must do exactly once, from any thread,
 * inline or later.  Before vtable->close returns, every request it received
 * must have been completed (a fake that never answers completes its held
 * requests in close, e.g. with SM_ECANCELED).  The core posts the completion
 * to the caller's taskq and keeps the health counter, so a backend never
 * sees taskqs or callbacks. */

typedef enum {
    SM_STORE_OP_PUT_REGISTRATION,
    SM_STORE_OP_DELETE_REGISTRATION,
    SM_STORE_OP_GET_REGISTRATION,
    SM_STORE_OP_COUNT_REGISTRATIONS,
    SM_STORE_OP_PUT_ROOM,
    SM_STORE_OP_DELETE_ROOM,
    SM_STORE_OP_GET_ROOM,
    SM_STORE_OP_ADD_MEMBER,
    SM_STORE_OP_REMOVE_MEMBER,
    SM_STORE_OP_CLEANUP_INSTANCE,
    SM_STORE_OP_GET_CLIENT,
} sm_store_op_t;

/* Name of an op ("put_registration", ...) for logs.  Never NULL. */
const char *sm_store_op_name(sm_store_op_t op);

/* A request.  Public fields are inputs (owned by the request, read-only for
 * the backend except `link`); fields starting with `_` are the core's. */
struct sm_store_req_s {
    sm_store_op_t op;
    sm_registration_t reg; /* PUT_REGISTRATION (a backend may move its strings out) */
    sm_room_rec_t room;    /* PUT_ROOM (likewise) */
    char *client_id;       /* DELETE/GET_REGISTRATION, ADD/REMOVE_MEMBER, GET_CLIENT */
    char *session_id;      /* DELETE_REGISTRATION */
    char *room_id;         /* DELETE/GET_ROOM, ADD/REMOVE_MEMBER */
    char *role;            /* ADD_MEMBER */
    char *instance_id;     /* CLEANUP_INSTANCE */
    int64_t joined_at_ms;  /* ADD_MEMBER */
    sm_list_t link;        /* free for the backend's own queue */

    /* Private to store.c: */
    sm_store_t *_store;
    sm_taskq_t *_reply;
    sm_store_done_cb _cb;
    void *_arg;
    sm_task_t _task;
    struct sm__store_sync_s *_sync; /* cleanup_instance waits on it */
    int _status;
    bool _has_reg, _has_room, _has_client;
    sm_registration_t _out_reg;
    sm_room_rec_t _out_room;
    sm_client_rec_t _out_client;
    sm_room_member_t *_members;
    size_t _n_members, _cap_members;
    uint64_t _count;
    unsigned _removed_regs, _removed_rooms;
    uint64_t _started_us, _elapsed_us; /* metrics: submitted at, submit -> complete */
};

/* Results a backend attaches before completing (deep copies; any thread,
 * by the request's current owner).  reset drops everything attached so far
 * (a backend retrying an attempt calls it first). */
void sm_store_req_set_registration(sm_store_req_t *req, const sm_registration_t *reg);
void sm_store_req_set_room(sm_store_req_t *req, const sm_room_rec_t *room);
void sm_store_req_add_member(sm_store_req_t *req, const sm_room_member_t *m);
void sm_store_req_set_count(sm_store_req_t *req, uint64_t count);
void sm_store_req_set_removed(sm_store_req_t *req, unsigned regs, unsigned rooms);
void sm_store_req_set_client(sm_store_req_t *req, const sm_client_rec_t *c);
void sm_store_req_reset_result(sm_store_req_t *req);

/* Hand req back with its status (0 or an SM_E* code).  Any thread; req must
 * not be touched afterwards. */
void sm_store_req_complete(sm_store_req_t *req, int status);

typedef struct sm_store_vtable_s {
    const char *name;
    /* Create the backend from cfg: 0 with *impl set, or SM_ECONFIG with a
     * message naming the key in err.  NULL for backends that are only
     * installed with sm_store_open_with (test fakes). */
    int (*open)(const sm_config_t *cfg, void **impl, char *err, size_t errlen);
    /* Finish or complete every request received, then free impl. */
    void (*close)(void *impl);
    /* One entry per operation; each receives ownership of req (above). */
    void (*cleanup_instance)(void *impl, sm_store_req_t *req);
    void (*put_registration)(void *impl, sm_store_req_t *req);
    void (*delete_registration)(void *impl, sm_store_req_t *req);
    void (*get_registration)(void *impl, sm_store_req_t *req);
    void (*count_registrations)(void *impl, sm_store_req_t *req);
    void (*put_room)(void *impl, sm_store_req_t *req);
    void (*delete_room)(void *impl, sm_store_req_t *req);
    void (*get_room)(void *impl, sm_store_req_t *req);
    void (*add_member)(void *impl, sm_store_req_t *req);
    void (*remove_member)(void *impl, sm_store_req_t *req);
    /* May be NULL: get_client then answers SM_ENOTFOUND. */
    void (*get_client)(void *impl, sm_store_req_t *req);
} sm_store_vtable_t;

/* The built-in backends (store_sqlite.c, store_memory.c, store_firestore.c). */
extern const sm_store_vtable_t sm_store_backend_sqlite;
extern const sm_store_vtable_t sm_store_backend_memory;
extern const sm_store_vtable_t sm_store_backend_firestore;

/* store.c: the database.* settings every backend applies: per-attempt
 * timeout in ms (operation_timeout, at least 1), attempts per operation
 * (retry_attempts bounded to 1..100, so a zeroed test config gives 1) and
 * the base interval between attempts (retry_interval). */
void sm__store_retry_settings(const sm_config_t *cfg, uint64_t *timeout_ms, unsigned *attempts,
                              uint64_t *interval_ms);

/* store.c: is h exactly 64 hex digits (either case), a SHA-256 in hex?
 * false for NULL. */
bool sm__store_sha256_hex_ok(const char *h);

/* store_memory.c, for sm_store_memory_set_client: impl is a memory store's. */
int sm__store_memory_set_client(void *impl, const char *client_id, const char *token_sha256_hex);

/* The built-in vtable called name, or NULL. */
const sm_store_vtable_t *sm_store_backend_find(const char *name);

/*
 * Main thread: a store running vt on an already-created impl (a test fake,
 * or a wrapper around a backend opened with sm_store_backend_find(name)->open).
 * The store takes ownership of impl (vt->close(impl) in sm_store_close).
 * Never NULL.
 */
sm_store_t *sm_store_open_with(const sm_store_vtable_t *vt, void *impl);

#endif
