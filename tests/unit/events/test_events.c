/*
 * Unit tests for src/events/events.c: the `log` backend writes one JSON line
 * per event with the right fields (NULL fields left out), close flushes
 * everything, the file is appended to and its directory created; `none`
 * writes nothing; an unusable path is SM_ECONFIG naming events.path; the
 * counters.  A full queue is forced without sleeps by pointing the log at a
 * FIFO whose reader is paused: the writer thread blocks once the pipe is
 * full, the queue fills, and further events must be dropped and counted;
 * every published event must still reach the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/err.h"
#include "events/events.h"

typedef struct {
    char dir[64];
    char path[128];
    sm_config_t cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/sm-test-events-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/sub/dir/events.log", f->dir);
    memset(&f->cfg, 0, sizeof f->cfg);
    f->cfg.events_backend = "log";
    f->cfg.events_path = f->path;
    f->cfg.events_queue_size = 1024;
    f->cfg.instance_id = "inst-1";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Read the whole file; NULL if it does not exist. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
    }
    s[len] = '\0';
    fclose(fp);
    return s;
}

/* Split into lines (each must end with '\n') and parse each as JSON. */
static size_t parse_lines(char *text, json_t **out, size_t max)
{
    size_t n = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl == NULL)
            fail_msg("last line not terminated: %s", p);
        *nl = '\0';
        json_error_t err;
        json_t *j = json_loads(p, 0, &err);
        if (j == NULL)
            fail_msg("line %zu is not JSON (%s): %s", n + 1, err.text, p);
        assert_true(json_is_object(j));
        assert_true(n < max);
        out[n++] = j;
        p = nl + 1;
    }
    return n;
}

static void check_timestamp(json_t *ev, int64_t before_ms, int64_t after_ms)
{
    json_t *ts = json_object_get(ev, "timestamp");
    assert_true(json_is_string(ts));
    char lo[40], hi[40];
    sm_clock_rfc3339(before_ms, lo, sizeof lo);
    sm_clock_rfc3339(after_ms, hi, sizeof hi);
    const char *s = json_string_value(ts);
    assert_int_equal(strlen(s), 24); /* 2024-01-01T12:00:00.000Z */
    assert_true(strcmp(s, lo) >= 0 && strcmp(s, hi) <= 0);
}

static void test_log_backend_lines(void **state)
{
    fixture_t *f = *state;
    sm_events_t *ev = NULL;
    char err[256] = "";
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
    assert_non_null(ev);
    int64_t before = sm_clock_wall_ms();
    sm_events_emit(ev, "client.connected", "alice", NULL, NULL);
    sm_events_emit(ev, "room.joined", "bob", "room-1", "sess-9");
    sm_events_emit(ev, "client.disconnected", NULL, NULL, NULL);
    sm_events_emit(ev, "client.registered", "we\"ird\\id\n", NULL, NULL);
    int64_t after = sm_clock_wall_ms();
    assert_int_equal(sm_events_published(ev), 4);
    assert_int_equal(sm_events_dropped(ev), 0);
    sm_events_close(ev); /* flushes */

    char *text = slurp(f->path);
    assert_non_null(text);
    json_t *lines[8];
    size_t n = parse_lines(text, lines, 8);
    assert_int_equal(n, 4);

    assert_string_equal(json_string_value(json_object_get(lines[0], "event")), "client.connected");
    assert_string_equal(json_string_value(json_object_get(lines[0], "instance_id")), "inst-1");
    assert_string_equal(json_string_value(json_object_get(lines[0], "client_id")), "alice");
    assert_null(json_object_get(lines[0], "room_id"));
    assert_null(json_object_get(lines[0], "session_id"));
    assert_int_equal(json_object_size(lines[0]), 4);

    assert_string_equal(json_string_value(json_object_get(lines[1], "event")), "room.joined");
    assert_string_equal(json_string_value(json_object_get(lines[1], "client_id")), "bob");
    assert_string_equal(json_string_value(json_object_get(lines[1], "room_id")), "room-1");
    assert_string_equal(json_string_value(json_object_get(lines[1], "session_id")), "sess-9");
    assert_int_equal(json_object_size(lines[1]), 6);

    assert_string_equal(json_string_value(json_object_get(lines[2], "event")),
                        "client.disconnected");
    assert_null(json_object_get(lines[2], "client_id"));
    assert_int_equal(json_object_size(lines[2]), 3);

    assert_string_equal(json_string_value(json_object_get(lines[3], "client_id")), "we\"ird\\id\n");

    for (size_t i = 0; i < n; i++) {
        check_timestamp(lines[i], before, after);
        json_decref(lines[i]);
    }
    free(text);
}

static void test_append_and_many(void **state)
{
    fixture_t *f = *state;
    char err[256];
    for (int round = 0; round < 2; round++) {
        sm_events_t *ev = NULL;
        assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
        for (int i = 0; i < 500; i++) {
            char id[32];
            snprintf(id, sizeof id, "c-%d-%d", round, i);
            sm_events_emit(ev, "client.registered", id, NULL, NULL);
        }
        assert_int_equal(sm_events_published(ev), 500);
        assert_int_equal(sm_events_dropped(ev), 0);
        sm_events_close(ev);
    }
    char *text = slurp(f->path);
    assert_non_null(text);
    json_t **lines = calloc(1200, sizeof *lines);
    assert_non_null(lines);
    size_t n = parse_lines(text, lines, 1200);
    assert_int_equal(n, 1000); /* the second open appended */
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "c-%zu-%zu", i / 500, i % 500);
        assert_string_equal(json_string_value(json_object_get(lines[i], "client_id")), id);
        json_decref(lines[i]);
    }
    free(lines);
    free(text);
}

static void test_long_fields_stay_json(void **state)
{
    fixture_t *f = *state;
    /* Realistic maxima (128-character ids, a 255-character instance id). */
    static char inst[256], id[129], longv[701];
    memset(inst, 'n', 255);
    memset(id, 'c', 128);
    f->cfg.instance_id = inst;
    sm_events_t *ev = NULL;
    char err[256];
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
    sm_events_emit(ev, "room.joined", id, id, id);
    sm_events_close(ev);
    char *text = slurp(f->path);
    assert_non_null(text);
    json_t *lines[2];
    assert_int_equal(parse_lines(text, lines, 2), 1);
    assert_string_equal(json_string_value(json_object_get(lines[0], "client_id")), id);
    assert_string_equal(json_string_value(json_object_get(lines[0], "instance_id")), inst);
    json_decref(lines[0]);
    free(text);
    unlink(f->path);

    /* Values long enough that the 2048-byte line buffer overflows: the
     * event may lose fields, but the line must still be one JSON object
     * (events.c truncates with "}\n" in the middle of a string). */
    memset(longv, 'v', 700);
    f->cfg.instance_id = longv;
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
    sm_events_emit(ev, "room.joined", longv, longv, longv);
    sm_events_close(ev);
    text = slurp(f->path);
    assert_non_null(text);
    size_t tlen = strlen(text);
    bool one_line = tlen > 0 && text[tlen - 1] == '\n' && strchr(text, '\n') == text + tlen - 1;
    json_error_t jerr;
    json_t *j = json_loadb(text, tlen, 0, &jerr);
    char head[64];
    snprintf(head, sizeof head, "%.60s", text);
    free(text); /* before any failure, so ASan reports only real leaks */
    if (!one_line)
        fail_msg("expected exactly one newline-terminated line");
    if (j == NULL)
        fail_msg("%zu-byte line is not JSON (%s at %d): %s...", tlen, jerr.text, jerr.position,
                 head);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "room.joined");
    json_decref(j);
}

static void test_none_backend(void **state)
{
    fixture_t *f = *state;
    f->cfg.events_backend = "none";
    sm_events_t *ev = NULL;
    char err[256];
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
    assert_non_null(ev);
    sm_events_emit(ev, "client.connected", "alice", NULL, NULL);
    assert_int_equal(sm_events_dropped(ev), 0);
    sm_events_close(ev);
    struct stat st;
    assert_int_not_equal(stat(f->path, &st), 0); /* no file written */
    char sub[160];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    assert_int_not_equal(stat(sub, &st), 0); /* nor its directory */

    /* NULL handles are tolerated. */
    sm_events_emit(NULL, "client.connected", "x", NULL, NULL);
    assert_int_equal(sm_events_published(NULL), 0);
    assert_int_equal(sm_events_dropped(NULL), 0);
    sm_events_close(NULL);
}

static void test_bad_path(void **state)
{
    fixture_t *f = *state;
    static const char *const bad[] = {
        "/dev/null/events.log",     /* parent is not a directory */
        "/dev/null/sub/events.log", /* cannot create the directory */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->cfg.events_path = (char *)bad[i];
        sm_events_t *ev = (sm_events_t *)0x1;
        char err[256] = "";
        assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), SM_ECONFIG);
        if (strstr(err, "events.path") == NULL)
            fail_msg("error does not name events.path: %s", err);
        if (strstr(err, bad[i]) == NULL)
            fail_msg("error does not name the path: %s", err);
    }
    /* A directory as the path. */
    f->cfg.events_path = f->dir;
    sm_events_t *ev = NULL;
    char err[256] = "";
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), SM_ECONFIG);
    assert_non_null(strstr(err, "events.path"));
}

/* ---- threads ---- */

typedef struct {
    sm_events_t *ev;
    int index;
} emitter_t;

#define EMITTERS 4
#define PER_EMITTER 2000

static void *emitter_main(void *arg)
{
    emitter_t *e = arg;
    char id[32];
    for (int i = 0; i < PER_EMITTER; i++) {
        snprintf(id, sizeof id, "t%d-%d", e->index, i);
        sm_events_emit(e->ev, "room.left", id, "r", NULL);
    }
    return NULL;
}

static void test_emit_from_threads(void **state)
{
    fixture_t *f = *state;
    f->cfg.events_queue_size = 1 << 16;
    sm_events_t *ev = NULL;
    char err[256];
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
    pthread_t th[EMITTERS];
    emitter_t em[EMITTERS];
    for (int i = 0; i < EMITTERS; i++) {
        em[i] = (emitter_t){ev, i};
        assert_int_equal(pthread_create(&th[i], NULL, emitter_main, &em[i]), 0);
    }
    for (int i = 0; i < EMITTERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(sm_events_published(ev), EMITTERS * PER_EMITTER);
    assert_int_equal(sm_events_dropped(ev), 0);
    sm_events_close(ev);

    char *text = slurp(f->path);
    assert_non_null(text);
    json_t **lines = calloc(EMITTERS * PER_EMITTER + 1, sizeof *lines);
    assert_non_null(lines);
    size_t n = parse_lines(text, lines, EMITTERS * PER_EMITTER + 1);
    assert_int_equal(n, EMITTERS * PER_EMITTER);
    /* Per emitter, in order. */
    int next[EMITTERS] = {0};
    for (size_t i = 0; i < n; i++) {
        int t = -1, k = -1;
        const char *id = json_string_value(json_object_get(lines[i], "client_id"));
        assert_int_equal(sscanf(id, "t%d-%d", &t, &k), 2);
        assert_true(t >= 0 && t < EMITTERS);
        assert_int_equal(k, next[t]);
        next[t]++;
        json_decref(lines[i]);
    }
    free(lines);
    free(text);
}

/* ---- full queue, via a FIFO with a paused reader ---- */

typedef struct {
    int fd;
    size_t lines;
    size_t bytes;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    char buf[8192];
    for (;;) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                r->lines++;
        r->bytes += (size_t)n;
    }
    return NULL;
}

static void test_full_queue_drops_and_counts(void **state)
{
    fixture_t *f = *state;
    snprintf(f->path, sizeof f->path, "%s/events.fifo", f->dir);
    assert_int_equal(mkfifo(f->path, 0600), 0);
    /* A reader must exist before the writer opens the FIFO, or open blocks. */
    int rfd = open(f->path, O_RDONLY | O_NONBLOCK);
    assert_true(rfd >= 0);
    f->cfg.events_queue_size = 16;
    sm_events_t *ev = NULL;
    char err[256];
    assert_int_equal(sm_events_open(&f->cfg, &ev, err, sizeof err), 0);
    assert_int_equal(fcntl(rfd, F_SETFL, 0), 0); /* blocking reads from now on */

    /* Nobody reads yet: the pipe (64 KiB) fills, the writer blocks, the
     * 16-slot queue fills, and the rest must be dropped. */
    char id[128];
    memset(id, 'i', 100);
    id[100] = '\0';
    const size_t total = 4000; /* ~ 600 KB of lines, far more than the pipe */
    for (size_t i = 0; i < total; i++)
        sm_events_emit(ev, "client.connected", id, "room", "session");
    uint64_t published = sm_events_published(ev);
    uint64_t dropped = sm_events_dropped(ev);
    assert_int_equal(published + dropped, total);
    assert_true(dropped > 0);
    assert_true(published < total);

    /* Resume reading: close writes everything that was published. */
    reader_t rd = {rfd, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
    sm_events_close(ev);
    assert_int_equal(pthread_join(th, NULL), 0);
    close(rfd);
    assert_int_equal(rd.lines, published);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_backend_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_and_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_fields_stay_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_drops_and_counts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
