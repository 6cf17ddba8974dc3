/*
 * SQLite store backend: one database file in WAL mode, owned by a dedicated
 * store thread.  Requests reach it through a mutex+condvar FIFO; the thread
 * runs each one (with retries) and completes it, which posts the callback to
 * the caller's loop.  Workers never touch the connection and never block on
 * it.
 *
 * DESIGN
 * - One thread, one connection, statements prepared once at open
 *   (SQLITE_PREPARE_PERSISTENT).  The store is low-rate (register, rooms),
 *   so a single writer is plenty and avoids all in-process lock contention;
 *   the connection is opened NOMUTEX for the same reason.
 * - Every operation is one transaction (a single autocommit statement or
 *   BEGIN IMMEDIATE ... COMMIT), so a failed attempt leaves nothing behind
 *   and may simply be run again.
 * - A retryable failure is SQLITE_BUSY/LOCKED/PROTOCOL (another connection
 *   holds the lock), SQLITE_IOERR, or SQLITE_INTERRUPT, which is how the
 *   per-attempt deadline surfaces: the busy handler waits at most
 *   database.operation_timeout for a lock, and a progress handler aborts a
 *   statement running past the same deadline.  Up to
 *   database.retry_attempts attempts, database.retry_interval ms apart (the
 *   pause is on the store thread, which has nothing else to do meanwhile).
 * - Schema version in PRAGMA user_version: 0 = empty file (create),
 *   SCHEMA_VERSION = current, anything newer = refuse to open.
 */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/err.h"
#include "log/log.h"

#define SCHEMA_VERSION 1

/* VM instructions between deadline checks: cheap enough (one clock read per
 * 1000 steps) and fine-grained enough for a millisecond deadline. */
#define PROGRESS_STEPS 1000

static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS registrations ("
    " client_id TEXT PRIMARY KEY NOT NULL,"
    " session_id TEXT NOT NULL,"
    " capabilities TEXT,"
    " metadata TEXT,"
    " instance_id TEXT,"
    " connected_at_ms INTEGER NOT NULL,"
    " registered_at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS registrations_instance ON registrations(instance_id);"
    "CREATE TABLE IF NOT EXISTS rooms ("
    " room_id TEXT PRIMARY KEY NOT NULL,"
    " creator_id TEXT,"
    " instance_id TEXT,"
    " metadata TEXT,"
    " created_at_ms INTEGER NOT NULL,"
    " max_participants INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS rooms_instance ON rooms(instance_id);"
    /* A rowid table on purpose: ORDER BY rowid lists members in join order. */
    "CREATE TABLE IF NOT EXISTS room_members ("
    " room_id TEXT NOT NULL,"
    " client_id TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " joined_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (room_id, client_id));"
    "CREATE INDEX IF NOT EXISTS room_members_client ON room_members(client_id);";

/* Client credentials (auth_method=store), provisioned by the operator, e.g.
 * INSERT INTO clients VALUES ('alice', lower(hex(<sha256 of the token>))).
 * An additive table: created at every open, so files of schema version 1
 * written before it existed gain it without a version change. */
static const char schema_clients[] = "CREATE TABLE IF NOT EXISTS clients ("
                                     " client_id TEXT PRIMARY KEY NOT NULL,"
                                     " token_sha256 TEXT NOT NULL);";

#define STMT_MAP(X)                                                                                \
    X(ST_BEGIN, "BEGIN IMMEDIATE")                                                                 \
    X(ST_BEGIN_READ, "BEGIN DEFERRED")                                                             \
    X(ST_COMMIT, "COMMIT")                                                                         \
    X(ST_ROLLBACK, "ROLLBACK")                                                                     \
    X(ST_REG_INSERT,                                                                               \
      "INSERT INTO registrations (client_id, session_id, capabilities, metadata, instance_id,"     \
      " connected_at_ms, registered_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")                   \
    X(ST_REG_DELETE, "DELETE FROM registrations WHERE client_id = ?1 AND session_id = ?2")         \
    X(ST_REG_GET,                                                                                  \
      "SELECT client_id, session_id, capabilities, metadata, instance_id, connected_at_ms,"        \
      " registered_at_ms FROM registrations WHERE client_id = ?1")                                 \
    X(ST_REG_COUNT, "SELECT count(*) FROM registrations")                                          \
    X(ST_ROOM_INSERT,                                                                              \
      "INSERT INTO rooms (room_id, creator_id, instance_id, metadata, created_at_ms,"              \
      " max_participants) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                                        \
    X(ST_ROOM_DELETE, "DELETE FROM rooms WHERE room_id = ?1")                                      \
    X(ST_ROOM_GET,                                                                                 \
      "SELECT room_id, creator_id, instance_id, metadata, created_at_ms, max_participants"         \
      " FROM rooms WHERE room_id = ?1")                                                            \
    X(ST_MEMBERS_DELETE_ROOM, "DELETE FROM room_members WHERE room_id = ?1")                       \
    X(ST_MEMBERS_GET,                                                                              \
      "SELECT room_id, client_id, role, joined_at_ms FROM room_members WHERE room_id = ?1"         \
      " ORDER BY rowid")                                                                           \
    X(ST_MEMBER_INSERT,                                                                            \
      "INSERT INTO room_members (room_id, client_id, role, joined_at_ms) VALUES (?1, ?2, ?3, ?4)") \
    X(ST_MEMBER_DELETE, "DELETE FROM room_members WHERE room_id = ?1 AND client_id = ?2")          \
    X(ST_REG_OURS, "SELECT 1 FROM registrations WHERE client_id = ?1 AND session_id = ?2"          \
                   " AND registered_at_ms = ?3")                                                   \
    X(ST_ROOM_OURS,                                                                                \
      "SELECT 1 FROM rooms WHERE room_id = ?1 AND creator_id IS ?2 AND instance_id IS ?3"          \
      " AND created_at_ms = ?4")                                                                   \
    X(ST_MEMBER_OURS,                                                                              \
      "SELECT 1 FROM room_members WHERE room_id = ?1 AND client_id = ?2 AND role = ?3"             \
      " AND joined_at_ms = ?4")                                                                    \
    X(ST_CLEAN_MEMBERS,                                                                            \
      "DELETE FROM room_members WHERE"                                                             \
      " room_id IN (SELECT room_id FROM rooms WHERE instance_id = ?1)"                             \
      " OR client_id IN (SELECT client_id FROM registrations WHERE instance_id = ?1)")             \
    X(ST_CLEAN_REGS, "DELETE FROM registrations WHERE instance_id = ?1")                           \
    X(ST_CLEAN_ROOMS, "DELETE FROM rooms WHERE instance_id = ?1")                                  \
    X(ST_CLIENT_GET, "SELECT client_id, token_sha256 FROM clients WHERE client_id = ?1")

#define X(id, sql) id,
enum { STMT_MAP(X) ST__COUNT };
#undef X

static const char *const stmt_sql[] = {
#define X(id, sql) sql,
    STMT_MAP(X)
#undef X
};

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST__COUNT];
    uint64_t timeout_ms;  /* per attempt */
    unsigned attempts;    /* >= 1 */
    uint64_t interval_ms; /* between attempts */
    uint64_t deadline_ms; /* store thread: end of the current attempt, 0 = none */
    unsigned attempt;     /* store thread: 1 for the first attempt of a request */

    pthread_t thread;
    pthread_mutex_t lock; /* guards queue and stop */
    pthread_cond_t cond;
    sm_list_t queue; /* of sm_store_req_t.link */
    bool stop;
} sq_store_t;

/* ---- Helpers ------------------------------------------------------------ */

static bool retryable(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
    case SQLITE_IOERR:
    case SQLITE_INTERRUPT:
        return true;
    default:
        return false;
    }
}

static int on_progress(void *arg)
{
    const sq_store_t *st = arg;
    return st->deadline_ms != 0 && sm_clock_mono_ms() >= st->deadline_ms;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *col_text(sqlite3_stmt *s, int i)
{
    return (char *)sqlite3_column_text(s, i); /* NULL for SQL NULL; valid until the next step */
}

/* Bind and run a statement that returns no rows; leaves it reset. */
static int exec_stmt(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void done_stmt(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC); /* NULL binds SQL NULL */
}

/* ---- Operations ----------------------------------------------------------
 * Each returns SQLITE_OK when the operation reached an answer (*status then
 * holds 0, SM_ENOTFOUND or SM_ECONFLICT and the transaction is committed or
 * rolled back), or the sqlite code of the failure (the caller rolls back).
 *
 * Inserts are retried, so a constraint hit on a later attempt may be our own
 * earlier attempt: an error can be reported after the commit is durable (the
 * WAL auto-checkpoint runs after the commit and its I/O error is returned by
 * the same step).  Then the existing row is compared with the request; if it
 * is ours, the insert succeeded. */

/* Run a "SELECT 1 ..." statement: *found tells whether it returned a row. */
static int row_exists(sqlite3_stmt *s, bool *found)
{
    int rc = sqlite3_step(s);
    done_stmt(s);
    *found = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* After a constraint hit: *status = 0 if the row is this request's own
 * (written by an earlier attempt), else SM_ECONFLICT. */
static int conflict_or_ours(sq_store_t *st, sqlite3_stmt *ours, int *status)
{
    bool found = false;
    int rc = SQLITE_OK;
    if (st->attempt > 1)
        rc = row_exists(ours, &found);
    else
        done_stmt(ours);
    *status = found ? 0 : SM_ECONFLICT;
    return rc;
}

static int op_put_registration(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_REG_INSERT];
    const sm_registration_t *g = &req->reg;
    bind_text(s, 1, g->client_id);
    bind_text(s, 2, g->session_id);
    bind_text(s, 3, g->capabilities_json);
    bind_text(s, 4, g->metadata_json);
    bind_text(s, 5, g->instance_id);
    sqlite3_bind_int64(s, 6, g->connected_at_ms);
    sqlite3_bind_int64(s, 7, g->registered_at_ms);
    int rc = exec_stmt(s);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s = st->stmt[ST_REG_OURS];
        bind_text(s, 1, g->client_id);
        bind_text(s, 2, g->session_id);
        sqlite3_bind_int64(s, 3, g->registered_at_ms);
        return conflict_or_ours(st, s, status);
    }
    *status = 0;
    return rc;
}

static int op_delete_registration(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_REG_DELETE];
    bind_text(s, 1, req->client_id);
    bind_text(s, 2, req->session_id);
    int rc = exec_stmt(s);
    *status = sqlite3_changes(st->db) > 0 ? 0 : SM_ENOTFOUND;
    return rc;
}

static int op_get_registration(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_REG_GET];
    bind_text(s, 1, req->client_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sm_registration_t g = {
            .client_id = col_text(s, 0),
            .session_id = col_text(s, 1),
            .capabilities_json = col_text(s, 2),
            .metadata_json = col_text(s, 3),
            .instance_id = col_text(s, 4),
            .connected_at_ms = sqlite3_column_int64(s, 5),
            .registered_at_ms = sqlite3_column_int64(s, 6),
        };
        sm_store_req_set_registration(req, &g);
        *status = 0;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *status = SM_ENOTFOUND;
        rc = SQLITE_OK;
    }
    done_stmt(s);
    return rc;
}

static int op_count_registrations(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_REG_COUNT];
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sm_store_req_set_count(req, (uint64_t)sqlite3_column_int64(s, 0));
        *status = 0;
        rc = SQLITE_OK;
    }
    done_stmt(s);
    return rc;
}

static int op_put_room(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_ROOM_INSERT];
    const sm_room_rec_t *r = &req->room;
    bind_text(s, 1, r->room_id);
    bind_text(s, 2, r->creator_id);
    bind_text(s, 3, r->instance_id);
    bind_text(s, 4, r->metadata_json);
    sqlite3_bind_int64(s, 5, r->created_at_ms);
    sqlite3_bind_int(s, 6, r->max_participants);
    int rc = exec_stmt(s);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s = st->stmt[ST_ROOM_OURS];
        bind_text(s, 1, r->room_id);
        bind_text(s, 2, r->creator_id);
        bind_text(s, 3, r->instance_id);
        sqlite3_bind_int64(s, 4, r->created_at_ms);
        return conflict_or_ours(st, s, status);
    }
    *status = 0;
    return rc;
}

static int op_delete_room(sq_store_t *st, sm_store_req_t *req, int *status)
{
    int rc = exec_stmt(st->stmt[ST_BEGIN]);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *s = st->stmt[ST_MEMBERS_DELETE_ROOM];
    bind_text(s, 1, req->room_id);
    if ((rc = exec_stmt(s)) != SQLITE_OK)
        return rc;
    s = st->stmt[ST_ROOM_DELETE];
    bind_text(s, 1, req->room_id);
    if ((rc = exec_stmt(s)) != SQLITE_OK)
        return rc;
    *status = sqlite3_changes(st->db) > 0 ? 0 : SM_ENOTFOUND;
    return exec_stmt(st->stmt[ST_COMMIT]);
}

static int op_get_room(sq_store_t *st, sm_store_req_t *req, int *status)
{
    /* One read transaction so the room and its members are one snapshot. */
    int rc = exec_stmt(st->stmt[ST_BEGIN_READ]);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *s = st->stmt[ST_ROOM_GET];
    bind_text(s, 1, req->room_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sm_room_rec_t r = {
            .room_id = col_text(s, 0),
            .creator_id = col_text(s, 1),
            .instance_id = col_text(s, 2),
            .metadata_json = col_text(s, 3),
            .created_at_ms = sqlite3_column_int64(s, 4),
            .max_participants = sqlite3_column_int(s, 5),
        };
        sm_store_req_set_room(req, &r);
    }
    done_stmt(s);
    if (rc == SQLITE_DONE) {
        *status = SM_ENOTFOUND;
        return exec_stmt(st->stmt[ST_COMMIT]);
    }
    if (rc != SQLITE_ROW)
        return rc;
    s = st->stmt[ST_MEMBERS_GET];
    bind_text(s, 1, req->room_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sm_room_member_t m = {
            .room_id = col_text(s, 0),
            .client_id = col_text(s, 1),
            .role = col_text(s, 2),
            .joined_at_ms = sqlite3_column_int64(s, 3),
        };
        sm_store_req_add_member(req, &m);
    }
    done_stmt(s);
    if (rc != SQLITE_DONE)
        return rc;
    *status = 0;
    return exec_stmt(st->stmt[ST_COMMIT]);
}

static int op_add_member(sq_store_t *st, sm_store_req_t *req, int *status)
{
    int rc = exec_stmt(st->stmt[ST_BEGIN]);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *s = st->stmt[ST_ROOM_GET];
    bind_text(s, 1, req->room_id);
    rc = sqlite3_step(s);
    done_stmt(s);
    if (rc == SQLITE_DONE) {
        *status = SM_ENOTFOUND;
        return exec_stmt(st->stmt[ST_ROLLBACK]);
    }
    if (rc != SQLITE_ROW)
        return rc;
    s = st->stmt[ST_MEMBER_INSERT];
    bind_text(s, 1, req->room_id);
    bind_text(s, 2, req->client_id);
    bind_text(s, 3, req->role);
    sqlite3_bind_int64(s, 4, req->joined_at_ms);
    rc = exec_stmt(s);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        s = st->stmt[ST_MEMBER_OURS];
        bind_text(s, 1, req->room_id);
        bind_text(s, 2, req->client_id);
        bind_text(s, 3, req->role);
        sqlite3_bind_int64(s, 4, req->joined_at_ms);
        if ((rc = conflict_or_ours(st, s, status)) != SQLITE_OK)
            return rc;
        return exec_stmt(st->stmt[ST_ROLLBACK]);
    }
    if (rc != SQLITE_OK)
        return rc;
    *status = 0;
    return exec_stmt(st->stmt[ST_COMMIT]);
}

static int op_remove_member(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_MEMBER_DELETE];
    bind_text(s, 1, req->room_id);
    bind_text(s, 2, req->client_id);
    int rc = exec_stmt(s);
    *status = sqlite3_changes(st->db) > 0 ? 0 : SM_ENOTFOUND;
    return rc;
}

static int op_cleanup_instance(sq_store_t *st, sm_store_req_t *req, int *status)
{
    int rc = exec_stmt(st->stmt[ST_BEGIN]);
    if (rc != SQLITE_OK)
        return rc;
    /* Memberships first: the subqueries need the rows deleted below. */
    sqlite3_stmt *s = st->stmt[ST_CLEAN_MEMBERS];
    bind_text(s, 1, req->instance_id);
    if ((rc = exec_stmt(s)) != SQLITE_OK)
        return rc;
    s = st->stmt[ST_CLEAN_REGS];
    bind_text(s, 1, req->instance_id);
    if ((rc = exec_stmt(s)) != SQLITE_OK)
        return rc;
    unsigned regs = (unsigned)sqlite3_changes(st->db);
    s = st->stmt[ST_CLEAN_ROOMS];
    bind_text(s, 1, req->instance_id);
    if ((rc = exec_stmt(s)) != SQLITE_OK)
        return rc;
    unsigned rooms = (unsigned)sqlite3_changes(st->db);
    if ((rc = exec_stmt(st->stmt[ST_COMMIT])) != SQLITE_OK)
        return rc;
    sm_store_req_set_removed(req, regs, rooms);
    *status = 0;
    return SQLITE_OK;
}

static int op_get_client(sq_store_t *st, sm_store_req_t *req, int *status)
{
    sqlite3_stmt *s = st->stmt[ST_CLIENT_GET];
    bind_text(s, 1, req->client_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sm_client_rec_t c = {.client_id = col_text(s, 0), .token_sha256 = col_text(s, 1)};
        sm_store_req_set_client(req, &c);
        *status = 0;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *status = SM_ENOTFOUND;
        rc = SQLITE_OK;
    }
    done_stmt(s);
    return rc;
}

static int dispatch(sq_store_t *st, sm_store_req_t *req, int *status)
{
    switch (req->op) {
    case SM_STORE_OP_PUT_REGISTRATION:
        return op_put_registration(st, req, status);
    case SM_STORE_OP_DELETE_REGISTRATION:
        return op_delete_registration(st, req, status);
    case SM_STORE_OP_GET_REGISTRATION:
        return op_get_registration(st, req, status);
    case SM_STORE_OP_COUNT_REGISTRATIONS:
        return op_count_registrations(st, req, status);
    case SM_STORE_OP_PUT_ROOM:
        return op_put_room(st, req, status);
    case SM_STORE_OP_DELETE_ROOM:
        return op_delete_room(st, req, status);
    case SM_STORE_OP_GET_ROOM:
        return op_get_room(st, req, status);
    case SM_STORE_OP_ADD_MEMBER:
        return op_add_member(st, req, status);
    case SM_STORE_OP_REMOVE_MEMBER:
        return op_remove_member(st, req, status);
    case SM_STORE_OP_CLEANUP_INSTANCE:
        return op_cleanup_instance(st, req, status);
    case SM_STORE_OP_GET_CLIENT:
        return op_get_client(st, req, status);
    }
    SM_ASSERT(!"unknown store op");
    return SQLITE_MISUSE;
}

/* Store thread: run req with retries, then complete it. */
static void execute(sq_store_t *st, sm_store_req_t *req)
{
    int status = SM_EUNAVAIL;
    for (unsigned attempt = 1;; attempt++) {
        st->attempt = attempt;
        sm_store_req_reset_result(req);
        st->deadline_ms = sm_clock_mono_ms() + st->timeout_ms;
        int rc = dispatch(st, req, &status);
        st->deadline_ms = 0;
        if (!sqlite3_get_autocommit(st->db) && exec_stmt(st->stmt[ST_ROLLBACK]) != SQLITE_OK)
            SM_LOG(SM_LOG_ERROR, SM_MSG("store rollback failed"),
                   SM_STR("error", sqlite3_errmsg(st->db)));
        if (rc == SQLITE_OK)
            break;
        bool again = retryable(rc) && attempt < st->attempts;
        /* test_store_sqlite.c watches for "retrying" in this line. */
        SM_LOG(again ? SM_LOG_DEBUG : SM_LOG_WARN,
               SM_MSG(again ? "store attempt failed, retrying" : "store operation failed"),
               SM_STR("op", sm_store_op_name(req->op)), SM_UINT("attempt", attempt),
               SM_UINT("attempts", st->attempts), SM_INT("sqlite_code", rc),
               SM_STR("error", sqlite3_errstr(rc)));
        if (!again) {
            sm_store_req_reset_result(req);
            status = SM_EUNAVAIL;
            break;
        }
        sleep_ms(st->interval_ms);
    }
    sm_store_req_complete(req, status);
}

static void *store_thread(void *arg)
{
    sq_store_t *st = arg;
    sm_log_set_thread("store");
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (sm_list_empty(&st->queue) && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock);
        sm_list_t *n = sm_list_first(&st->queue);
        if (n == NULL)
            break; /* stop requested and everything queued is done */
        sm_list_remove(n);
        pthread_mutex_unlock(&st->lock);
        execute(st, SM_CONTAINER_OF(n, sm_store_req_t, link));
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- Open and close ----------------------------------------------------- */

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char *dir = sm_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash == NULL || slash == dir)
        goto out; /* current directory or the root */
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        bool last = *p == '\0';
        if (*p != '/' && !last)
            continue;
        *p = '\0';
        struct stat sb;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "store.path: cannot create directory %s: %s", dir,
                     strerror(errno));
            rc = SM_ECONFIG;
            goto out;
        }
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            snprintf(err, errlen, "store.path: cannot create directory %s: %s", dir,
                     strerror(ENOTDIR));
            rc = SM_ECONFIG;
            goto out;
        }
        if (last)
            break;
        *p = '/';
    }
out:
    free(dir);
    return rc;
}

/* Run sql (no rows expected except from PRAGMAs); returns the sqlite code. */
static int exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int schema_setup(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int version = 0;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        version = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
        goto fail;
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "store.path: %s has schema version %d, newer than this build's %d",
                 path, version, SCHEMA_VERSION);
        return SM_ECONFIG;
    }
    if (version == SCHEMA_VERSION)
        return 0;
    /* version 0: a new (or pre-versioning) file.  Later migrations go here:
     * if (version < 2) { ALTER ...; } each step inside this transaction. */
    char sql[sizeof schema_v1 + 64];
    snprintf(sql, sizeof sql, "BEGIN IMMEDIATE;%sPRAGMA user_version = %d;COMMIT;", schema_v1,
             SCHEMA_VERSION);
    rc = exec_sql(db, sql);
    if (rc != SQLITE_OK) {
        if (!sqlite3_get_autocommit(db))
            exec_sql(db, "ROLLBACK");
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "store.path: cannot open %s: %s", path, sqlite3_errmsg(db));
    return SM_ECONFIG;
}

static int sq_open(const sm_config_t *cfg, void **impl, char *err, size_t errlen)
{
    const char *path = cfg->store_path;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "store.path: must not be empty for store.backend=sqlite");
        return SM_ECONFIG;
    }
    int rc = make_parent_dirs(path, err, errlen);
    if (rc != 0)
        return rc;

    sq_store_t *st = SM_NEW(sq_store_t);
    sm__store_retry_settings(cfg, &st->timeout_ms, &st->attempts, &st->interval_ms);
    sm_list_init(&st->queue);

    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        goto fail_sqlite;
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, st->timeout_ms > INT_MAX ? INT_MAX : (int)st->timeout_ms);

    /* WAL: readers never block the writer; NORMAL sync is durable across
     * process crashes in WAL mode (only an OS crash can lose the last
     * commits), which is the right trade for presence data. */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
        goto fail_sqlite;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") != 0)
        SM_LOG(SM_LOG_WARN, SM_MSG("store: WAL mode not available"), SM_STR("path", path),
               SM_STR("journal_mode", (const char *)sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto fail_sqlite;
    if (exec_sql(st->db, "PRAGMA synchronous=NORMAL") != SQLITE_OK)
        goto fail_sqlite;
    if ((rc = schema_setup(st->db, path, err, errlen)) != 0)
        goto fail_close;
    if (exec_sql(st->db, schema_clients) != SQLITE_OK)
        goto fail_sqlite;
    for (int i = 0; i < ST__COUNT; i++)
        if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                               NULL) != SQLITE_OK)
            goto fail_sqlite;
    sqlite3_progress_handler(st->db, PROGRESS_STEPS, on_progress, st);

    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    if ((rc = pthread_create(&st->thread, NULL, store_thread, st)) != 0) {
        snprintf(err, errlen, "store: cannot start the store thread: %s", strerror(rc));
        pthread_cond_destroy(&st->cond);
        pthread_mutex_destroy(&st->lock);
        rc = SM_ECONFIG;
        goto fail_close;
    }
    SM_LOG(SM_LOG_INFO, SM_MSG("store opened"), SM_STR("backend", "sqlite"), SM_STR("path", path),
           SM_UINT("schema_version", SCHEMA_VERSION));
    *impl = st;
    return 0;

fail_sqlite:
    snprintf(err, errlen, "store.path: cannot open %s: %s", path,
             st->db ? sqlite3_errmsg(st->db) : "out of memory");
    rc = SM_ECONFIG;
fail_close:
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
    free(st);
    return rc;
}

static void sq_close(void *impl)
{
    sq_store_t *st = impl;
    pthread_mutex_lock(&st->lock);
    st->stop = true;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);
    SM_ASSERT(sm_list_empty(&st->queue));
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (sqlite3_close(st->db) != SQLITE_OK)
        SM_LOG(SM_LOG_ERROR, SM_MSG("store close failed"), SM_STR("error", sqlite3_errmsg(st->db)));
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* Every operation: queue for the store thread. */
static void sq_submit(void *impl, sm_store_req_t *req)
{
    sq_store_t *st = impl;
    pthread_mutex_lock(&st->lock);
    if (st->stop) {
        pthread_mutex_unlock(&st->lock);
        sm_store_req_complete(req, SM_ECLOSED);
        return;
    }
    sm_list_insert_tail(&st->queue, &req->link);
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

const sm_store_vtable_t sm_store_backend_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .cleanup_instance = sq_submit,
    .put_registration = sq_submit,
    .delete_registration = sq_submit,
    .get_registration = sq_submit,
    .count_registrations = sq_submit,
    .put_room = sq_submit,
    .delete_room = sq_submit,
    .get_room = sq_submit,
    .add_member = sq_submit,
    .remove_member = sq_submit,
    .get_client = sq_submit,
};
