/*
 * SQLite backend specifics: persistence across close/reopen, WAL and schema
 * version, open errors that name the key, and failure handling when another
 * connection holds the write lock (retries, SM_EUNAVAIL, nothing half-done,
 * health flipping).  The contract shared with the memory backend is in
 * test_store.c.
 */
#include "harness.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

static int setup(void **state)
{
    *state = h_fixture_new("sqlite");
    return 0;
}

static int teardown(void **state)
{
    h_fixture_free(*state);
    return 0;
}

/* A second connection to the test's database, as another process would have. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static void test_persistence(void **state)
{
    h_fixture_t *fx = *state;
    h_open(fx);
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0); /* data/ was created */
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    assert_int_equal(h_put_reg3(fx, "bob", "s-2", "inst-a"), 0);
    assert_int_equal(h_del_reg(fx, "bob", "s-2"), 0);
    assert_int_equal(h_put_room(fx, "room-1", "alice", "inst-a"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "alice", "sender"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "carol", "receiver"), 0);
    h_close_store(fx);

    sqlite3 *db = raw_open(fx->path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);

    h_open(fx);
    assert_int_equal(h_count(fx), 1);
    h_cap_t c;
    assert_int_equal(h_get_reg(fx, "alice", &c), 0);
    assert_string_equal(c.reg.session_id, "s-1");
    assert_string_equal(c.reg.capabilities_json, "[\"audio\"]");
    assert_string_equal(c.reg.metadata_json, "{\"k\":1}");
    assert_int_equal(c.reg.connected_at_ms, 1000);
    assert_int_equal(c.reg.registered_at_ms, 2000);
    h_cap_clear(&c);
    assert_false(h_reg_exists(fx, "bob"));
    assert_int_equal(h_get_room(fx, "room-1", &c), 0);
    assert_int_equal(c.room.max_participants, 4);
    assert_int_equal(c.n_members, 2);
    assert_string_equal(c.members[0].client_id, "alice");
    assert_string_equal(c.members[1].client_id, "carol");
    assert_string_equal(c.members[1].role, "receiver");
    h_cap_clear(&c);
    /* Constraints survive too. */
    assert_int_equal(h_put_reg3(fx, "alice", "s-9", "inst-b"), SM_ECONFLICT);
}

/* Start-up after a crash: the previous run's records are removed. */
static void test_cleanup_after_restart(void **state)
{
    h_fixture_t *fx = *state;
    h_open(fx);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "host:8080"), 0);
    assert_int_equal(h_put_reg3(fx, "bob", "s-2", "other:8080"), 0);
    assert_int_equal(h_put_room(fx, "room-1", "alice", "host:8080"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "alice", "sender"), 0);
    h_close_store(fx);

    h_open(fx);
    unsigned regs = 0, rooms = 0;
    assert_int_equal(sm_store_cleanup_instance(fx->store, "host:8080", &regs, &rooms), 0);
    assert_int_equal(regs, 1);
    assert_int_equal(rooms, 1);
    assert_int_equal(h_count(fx), 1);
    assert_true(h_reg_exists(fx, "bob"));
    h_close_store(fx);
    sqlite3 *db = raw_open(fx->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM room_members"), 0);
    sqlite3_close(db);
}

/* Queued work is finished by close and is on disk afterwards. */
static void test_close_flushes(void **state)
{
    h_fixture_t *fx = *state;
    h_open(fx);
    enum { N = 30 };
    h_cap_t c[N];
    memset(c, 0, sizeof c);
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "c%d", i);
        sm_registration_t g = {.client_id = id, .session_id = "s"};
        assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c[i]), 0);
        c[i].issued = true;
    }
    h_close_store(fx);
    h_wait(fx, &c[N - 1].done);
    for (int i = 0; i < N; i++)
        assert_int_equal(c[i].status, 0);
    h_open(fx);
    assert_int_equal(h_count(fx), N);
}

/* Writes while another connection holds the write lock: every attempt times
 * out, the last one gives SM_EUNAVAIL, nothing is written, and health
 * flips after three failures and back after one success. */
static void test_busy(void **state)
{
    h_fixture_t *fx = *state;
    h_open(fx);
    assert_int_equal(h_put_reg3(fx, "existing", "s", "i"), 0);

    sqlite3 *db = raw_open(fx->path);
    raw_exec(db, "BEGIN EXCLUSIVE");
    const uint64_t attempts = (uint64_t)fx->cfg.database_retry_attempts;
    const uint64_t min_ms = attempts * fx->cfg.database_operation_timeout +
                            (attempts - 1) * fx->cfg.database_retry_interval;
    static const char *const ids[] = {"f1", "f2", "f3"};
    for (int i = 0; i < 3; i++) {
        assert_true(sm_store_healthy(fx->store));
        uint64_t t0 = sm_clock_mono_ms();
        assert_int_equal(h_put_reg3(fx, ids[i], "s", "i"), SM_EUNAVAIL);
        /* A lower bound only: it proves every attempt was made. */
        assert_true(sm_clock_mono_ms() - t0 >= min_ms);
    }
    assert_false(sm_store_healthy(fx->store));
    assert_int_equal(raw_int(db, "SELECT count(*) FROM registrations"), 1);

    /* WAL: reads still work while the writer is locked out, and count as success. */
    assert_true(h_reg_exists(fx, "existing"));
    assert_true(sm_store_healthy(fx->store));

    raw_exec(db, "ROLLBACK");
    assert_int_equal(h_put_reg3(fx, "f1", "s", "i"), 0);
    assert_true(sm_store_healthy(fx->store));
    assert_false(h_reg_exists(fx, "f2"));
    assert_int_equal(h_count(fx), 2);
    sqlite3_close(db);
}

/* Multi-statement operations under the lock: all or nothing. */
static void test_busy_nothing_half_done(void **state)
{
    h_fixture_t *fx = *state;
    fx->cfg.database_retry_attempts = 2;
    h_open(fx);
    assert_int_equal(h_put_room(fx, "room-1", "alice", "i"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "alice", "sender"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "bob", "receiver"), 0);
    assert_int_equal(h_put_reg3(fx, "alice", "s", "i"), 0);

    sqlite3 *db = raw_open(fx->path);
    raw_exec(db, "BEGIN EXCLUSIVE");
    assert_int_equal(h_del_room(fx, "room-1"), SM_EUNAVAIL);
    assert_int_equal(h_add_member(fx, "room-1", "carol", "receiver"), SM_EUNAVAIL);
    assert_int_equal(h_remove_member(fx, "room-1", "bob"), SM_EUNAVAIL);
    assert_int_equal(h_del_reg(fx, "alice", "s"), SM_EUNAVAIL);
    assert_int_equal(sm_store_cleanup_instance(fx->store, "i", NULL, NULL), SM_EUNAVAIL);
    assert_false(sm_store_healthy(fx->store));
    raw_exec(db, "ROLLBACK");
    sqlite3_close(db);

    char list[64];
    h_members(fx, "room-1", list, sizeof list);
    assert_string_equal(list, "alice,bob");
    assert_true(h_reg_exists(fx, "alice"));
    assert_true(sm_store_healthy(fx->store));
    assert_int_equal(h_del_room(fx, "room-1"), 0);
}

/* ---- Lock released while the store retries -------------------------------
 * A second connection takes the write lock, optionally writes rows inside
 * its transaction, and commits as soon as the store has logged a failed
 * attempt ("retrying"): the store's log goes to a pipe the test loop polls,
 * so the operation can only get through on a later attempt, with no timing
 * assumption. */

typedef struct {
    int rfd, wfd; /* the store's log lines */
    uv_poll_t poll;
    sqlite3 *db; /* armed: commit it at the next "retrying" line */
    bool committed;
} retry_ctx_t;

static retry_ctx_t g_retry; /* file global: must outlive a failed test's frame */

/* Read what the pipe holds; true if a retry was logged. */
static bool drain_log(void)
{
    static char buf[65536]; /* a log line is one write(2) of at most 4 KiB */
    bool retry = false;
    ssize_t n;
    while ((n = read(g_retry.rfd, buf, sizeof buf - 1)) > 0) {
        buf[n] = '\0';
        retry |= strstr(buf, "retrying") != NULL;
    }
    return retry;
}

static void on_log_readable(uv_poll_t *p, int status, int events)
{
    (void)p;
    (void)status;
    (void)events;
    if (drain_log() && g_retry.db && !g_retry.committed) {
        raw_exec(g_retry.db, "COMMIT");
        g_retry.committed = true;
    }
}

static int setup_retry(void **state)
{
    h_fixture_t *fx = h_fixture_new("sqlite");
    int fds[2];
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    g_retry = (retry_ctx_t){.rfd = fds[0], .wfd = fds[1]};
    /* Before the store thread starts; reset in teardown after it stopped. */
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_TEXT, g_retry.wfd);
    assert_int_equal(uv_poll_init(&fx->loop, &g_retry.poll, g_retry.rfd), 0);
    assert_int_equal(uv_poll_start(&g_retry.poll, UV_READABLE, on_log_readable), 0);
    /* Attempts of 50 ms, 5 ms apart: up to ~1 s, far more than needed. */
    fx->cfg.database_operation_timeout = 50;
    fx->cfg.database_retry_attempts = 20;
    fx->cfg.database_retry_interval = 5;
    h_open(fx);
    *state = fx;
    return 0;
}

static int teardown_retry(void **state)
{
    h_fixture_t *fx = *state;
    h_close_store(fx);
    sm_log_configure(SM_LOG_ERROR, SM_LOG_FORMAT_TEXT, -1);
    uv_close((uv_handle_t *)&g_retry.poll, NULL);
    if (g_retry.db)
        sqlite3_close(g_retry.db);
    h_fixture_free(fx);
    close(g_retry.rfd);
    close(g_retry.wfd);
    return 0;
}

/* Take the write lock on a second connection and write sql inside it. */
static void lock_with(h_fixture_t *fx, const char *sql)
{
    g_retry.db = raw_open(fx->path);
    raw_exec(g_retry.db, "BEGIN EXCLUSIVE");
    raw_exec(g_retry.db, sql);
    g_retry.committed = false;
}

static void lock_done(void)
{
    assert_true(g_retry.committed); /* the lock went only after a failed attempt */
    sqlite3_close(g_retry.db);
    g_retry.db = NULL;
    drain_log(); /* the store is idle: nothing more for this operation */
}

static void test_busy_then_retry_succeeds(void **state)
{
    h_fixture_t *fx = *state;
    lock_with(fx, "SELECT 1");
    assert_int_equal(h_put_reg3(fx, "alice", "s", "i"), 0);
    lock_done();
    assert_true(h_reg_exists(fx, "alice"));
    assert_true(sm_store_healthy(fx->store));
}

/* A retried insert that meets its own row (an earlier attempt whose error
 * was reported after the commit) has succeeded; anyone else's row is a
 * conflict.  The second connection plays the earlier attempt, with the
 * values h_put_reg3 and h_put_room write. */
static void test_retry_meets_own_row(void **state)
{
    h_fixture_t *fx = *state;
    lock_with(fx, "INSERT INTO registrations VALUES ('alice', 's', NULL, NULL, 'i', 1000, 2000)");
    assert_int_equal(h_put_reg3(fx, "alice", "s", "i"), 0);
    lock_done();

    lock_with(fx, "INSERT INTO registrations VALUES ('bob', 'other', NULL, NULL, 'i', 1000, 2000)");
    assert_int_equal(h_put_reg3(fx, "bob", "s", "i"), SM_ECONFLICT);
    lock_done();

    lock_with(fx, "INSERT INTO rooms VALUES ('room-1', 'alice', 'i', NULL, 3000, 4)");
    assert_int_equal(h_put_room(fx, "room-1", "alice", "i"), 0);
    lock_done();

    lock_with(fx, "INSERT INTO rooms VALUES ('room-2', 'carol', 'i', NULL, 3000, 4)");
    assert_int_equal(h_put_room(fx, "room-2", "alice", "i"), SM_ECONFLICT);
    lock_done();

    h_cap_t c;
    assert_int_equal(h_get_reg(fx, "bob", &c), 0);
    assert_string_equal(c.reg.session_id, "other");
    h_cap_clear(&c);
    /* On a first attempt an identical row is still a conflict. */
    assert_int_equal(h_put_reg3(fx, "alice", "s", "i"), SM_ECONFLICT);
    assert_int_equal(h_put_room(fx, "room-1", "alice", "i"), SM_ECONFLICT);
}

/* ---- Open errors name the key ------------------------------------------- */

static void expect_open_error(h_fixture_t *fx, const char *want1, const char *want2)
{
    char err[512] = "";
    sm_store_t *s = NULL;
    assert_int_equal(sm_store_open(&fx->cfg, &s, err, sizeof err), SM_ECONFIG);
    assert_null(s);
    if (strstr(err, want1) == NULL || strstr(err, want2) == NULL)
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2);
}

static void test_open_errors(void **state)
{
    h_fixture_t *fx = *state;
    char path[400];

    /* A parent that is a file. */
    snprintf(path, sizeof path, "%s/plain", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a directory\n", f);
    fclose(f);
    snprintf(fx->path, sizeof fx->path, "%s/plain/sub/x.db", fx->dir);
    expect_open_error(fx, "store.path: cannot create directory", "plain");

    /* The path is a directory. */
    snprintf(fx->path, sizeof fx->path, "%s", fx->dir);
    expect_open_error(fx, "store.path: cannot open", "unable to open database file");

    /* Not a database. */
    snprintf(fx->path, sizeof fx->path, "%s/plain", fx->dir);
    expect_open_error(fx, "store.path: cannot open", "not a database");

    /* Written by a newer build. */
    snprintf(fx->path, sizeof fx->path, "%s/new.db", fx->dir);
    sqlite3 *db = raw_open(fx->path);
    raw_exec(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    expect_open_error(fx, "store.path", "schema version 99");

    fx->cfg.store_path = "";
    expect_open_error(fx, "store.path", "empty");
    fx->cfg.store_path = fx->path;

    /* Nested parents are created. */
    snprintf(fx->path, sizeof fx->path, "%s/a/b/c/x.db", fx->dir);
    h_open(fx);
    assert_int_equal(h_count(fx), 0);
}

/* An existing version-0 file with our tables (e.g. created by hand) is adopted. */
static void test_schema_adopts_unversioned(void **state)
{
    h_fixture_t *fx = *state;
    h_open(fx);
    assert_int_equal(h_put_reg3(fx, "alice", "s", "i"), 0);
    h_close_store(fx);
    sqlite3 *db = raw_open(fx->path);
    raw_exec(db, "PRAGMA user_version = 0");
    sqlite3_close(db);
    h_open(fx);
    assert_true(h_reg_exists(fx, "alice"));
    h_close_store(fx);
    db = raw_open(fx->path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_nothing_half_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_then_retry_succeeds, setup_retry, teardown_retry),
        cmocka_unit_test_setup_teardown(test_retry_meets_own_row, setup_retry, teardown_retry),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_adopts_unversioned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
