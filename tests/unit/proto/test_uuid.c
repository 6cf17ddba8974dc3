/*
 * Unit tests for lib/proto/uuid.c: v4 bits, uniqueness, the one-syscall-per-
 * 256-uuids buffering, getrandom(2) failures (wrapped), fork safety, and the
 * text form.
 *
 * WRAP: getrandom
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <sm/uuid.h>

/* ---- getrandom wrapper ---- */

enum mode { PASS, FAIL_ENOSYS, EINTR_ONCE, PARTIAL, ZERO };

static enum mode mode = PASS;
static int calls;

ssize_t __real_getrandom(void *buf, size_t len, unsigned int flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags);

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags)
{
    calls++;
    switch (mode) {
    case FAIL_ENOSYS:
        errno = ENOSYS;
        return -1;
    case EINTR_ONCE:
        mode = PASS;
        errno = EINTR;
        return -1;
    case PARTIAL:
        /* At most 100 bytes per call: the caller must loop. */
        return __real_getrandom(buf, len < 100 ? len : 100, flags);
    case ZERO:
        return 0;
    case PASS:
        break;
    }
    return __real_getrandom(buf, len, flags);
}

/* Generate until the pool is refilled, so the next 256 uuids come from one
 * fresh pool.  Returns the number of getrandom calls the refill took. */
static int align_to_refill(void)
{
    uint8_t u[16];
    int before = calls;
    for (int i = 0; i < 257 && calls == before; i++)
        assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
    assert_int_not_equal(calls, before);
    return calls - before;
}

/* Consume the rest of an aligned pool (255 uuids after the first). */
static void drain_aligned_pool(void)
{
    uint8_t u[16];
    int before = calls;
    for (int i = 0; i < 255; i++)
        assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
    assert_int_equal(calls, before);
}

static int setup(void **state)
{
    (void)state;
    mode = PASS;
    return 0;
}

static void test_v4_bits(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        uint8_t u[16];
        assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
        assert_int_equal(u[6] >> 4, 4);
        assert_int_equal(u[8] >> 6, 2);
        char s[SM_UUID_STR_SIZE];
        sm_uuid_format(u, s);
        assert_int_equal(s[14], '4');
        assert_non_null(strchr("89ab", s[19]));
    }
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_unique(void **state)
{
    (void)state;
    enum { COUNT = 2000 }; /* crosses several pool refills */
    uint8_t(*u)[16] = malloc(COUNT * 16);
    assert_non_null(u);
    for (int i = 0; i < COUNT; i++)
        assert_int_equal(sm_uuid_v4(u[i]), SM_PROTO_OK);
    qsort(u, COUNT, 16, cmp16);
    for (int i = 1; i < COUNT; i++)
        assert_int_not_equal(memcmp(u[i - 1], u[i], 16), 0);
    /* Not all-zero (the pool zeroes bytes it hands out: none may come back). */
    static const uint8_t zero[16];
    for (int i = 0; i < COUNT; i++)
        assert_int_not_equal(memcmp(u[i], zero, 16), 0);
    free(u);
}

static void test_one_syscall_per_256(void **state)
{
    (void)state;
    assert_int_equal(align_to_refill(), 1);
    drain_aligned_pool(); /* 255 more: no call */
    uint8_t u[16];
    int before = calls;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK); /* 257th: one call */
    assert_int_equal(calls, before + 1);
}

static void test_eintr_retried(void **state)
{
    (void)state;
    align_to_refill();
    drain_aligned_pool();
    mode = EINTR_ONCE;
    uint8_t u[16];
    int before = calls;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
    assert_int_equal(calls, before + 2);
    assert_int_equal(u[6] >> 4, 4);
}

static void test_partial_reads(void **state)
{
    (void)state;
    align_to_refill();
    drain_aligned_pool();
    mode = PARTIAL;
    uint8_t u[16];
    int before = calls;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
    assert_int_equal(calls - before, (4096 + 99) / 100);
    mode = PASS;
}

static void test_failure_then_recovery(void **state)
{
    (void)state;
    align_to_refill();
    drain_aligned_pool();
    uint8_t u[16], ref[16];
    memset(u, 0x77, sizeof(u));
    memcpy(ref, u, sizeof(u));

    mode = FAIL_ENOSYS;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_ERANDOM);
    assert_memory_equal(u, ref, 16);
    /* Still failing: tries the OS again each time, never hands out stale bytes. */
    int before = calls;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_ERANDOM);
    assert_int_equal(calls, before + 1);

    mode = ZERO;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_ERANDOM);
    assert_memory_equal(u, ref, 16);

    mode = PASS;
    assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
    assert_int_equal(u[6] >> 4, 4);
}

static void test_fork_does_not_repeat(void **state)
{
    (void)state;
    /* Leave unread bytes in the parent's pool, then fork: the child must not
     * hand out what the parent hands out next. */
    align_to_refill();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t c[16];
        int ok = sm_uuid_v4(c) == SM_PROTO_OK && write(fds[1], c, 16) == 16;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    uint8_t parent[16], child[16];
    assert_int_equal(sm_uuid_v4(parent), SM_PROTO_OK);
    assert_int_equal(read(fds[0], child, 16), 16);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_not_equal(memcmp(parent, child, 16), 0);
}

static void test_format_known(void **state)
{
    (void)state;
    static const uint8_t u[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    char s[SM_UUID_STR_SIZE];
    memset(s, 'X', sizeof(s));
    assert_ptr_equal(sm_uuid_format(u, s), s);
    assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");
    static const uint8_t z[16];
    assert_string_equal(sm_uuid_format(z, s), "00000000-0000-0000-0000-000000000000");
}

static void test_parse_ok(void **state)
{
    (void)state;
    static const uint8_t want[16] = {0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4,
                                     0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00};
    uint8_t u[16];
    assert_int_equal(sm_uuid_parse("550e8400-e29b-41d4-a716-446655440000", u), SM_PROTO_OK);
    assert_memory_equal(u, want, 16);
    memset(u, 0, 16);
    assert_int_equal(sm_uuid_parse("550E8400-E29B-41D4-A716-446655440000", u), SM_PROTO_OK);
    assert_memory_equal(u, want, 16);
    memset(u, 0, 16);
    assert_int_equal(sm_uuid_parse("550e8400-E29b-41D4-a716-446655440000", u), SM_PROTO_OK);
    assert_memory_equal(u, want, 16);
    /* Not NUL-terminated, exact length. */
    const char *longer = "550e8400-e29b-41d4-a716-446655440000TRAILING";
    memset(u, 0, 16);
    assert_int_equal(sm_uuid_parse_n(longer, 36, u), SM_PROTO_OK);
    assert_memory_equal(u, want, 16);
    /* Every hex digit, both cases. */
    static const uint8_t digits[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                       0xAB, 0xCD, 0xEF, 0xab, 0xcd, 0xef, 0x0f, 0xf0};
    assert_int_equal(sm_uuid_parse("01234567-89ab-cdef-ABCD-EFabcdef0fF0", u), SM_PROTO_OK);
    assert_memory_equal(u, digits, 16);
    /* Nil and max values. */
    assert_int_equal(sm_uuid_parse("00000000-0000-0000-0000-000000000000", u), SM_PROTO_OK);
    assert_int_equal(sm_uuid_parse("ffffffff-ffff-ffff-ffff-ffffffffffff", u), SM_PROTO_OK);
    for (int i = 0; i < 16; i++)
        assert_int_equal(u[i], 0xff);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < 300; i++) {
        uint8_t u[16], back[16];
        char s[SM_UUID_STR_SIZE];
        assert_int_equal(sm_uuid_v4(u), SM_PROTO_OK);
        sm_uuid_format(u, s);
        assert_int_equal(strlen(s), 36);
        assert_int_equal(sm_uuid_parse(s, back), SM_PROTO_OK);
        assert_memory_equal(u, back, 16);
    }
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "550e8400-e29b-41d4-a716-44665544000",   /* 35 chars */
        "550e8400-e29b-41d4-a716-4466554400000", /* 37 chars */
        "550e8400-e29b-41d4-a716-446655440000 ", /* trailing space */
        " 50e8400-e29b-41d4-a716-446655440000",  /* leading space */
        "550e8400e29b-41d4-a716-4466554400000",  /* missing first hyphen */
        "550e8400-e29b-41d4-a7164-46655440000",  /* hyphen moved */
        "550e840-0e29b-41d4-a716-446655440000",  /* hyphen moved */
        "550e8400-e29b-41d4-a716-44665544-000",  /* extra hyphen */
        "550e8400-e29b-41d4-a716-44665544000g",  /* non-hex */
        "550e8400-e29b-41d4-a716-44665544000G",
        "550e8400-e29b-41d4-a716-4466554400:0",
        "550e8400-e29b-41d4-a716-4466554400 0",
        "550e8400-e29b-41d4-a716-44665544000\xc3",
        "550e8400_e29b_41d4_a716_446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "550e8400e29b41d4a716446655440000", /* no hyphens */
        "------------------------------------",
    };
    uint8_t u[16], ref[16];
    memset(u, 0x42, sizeof(u));
    memcpy(ref, u, sizeof(u));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sm_uuid_parse(bad[i], u), SM_PROTO_EUUID);
        assert_memory_equal(u, ref, 16);
    }
    assert_int_equal(sm_uuid_parse(NULL, u), SM_PROTO_EUUID);
    assert_int_equal(sm_uuid_parse_n(NULL, 36, u), SM_PROTO_EUUID);
    assert_int_equal(sm_uuid_parse_n("550e8400-e29b-41d4-a716-446655440000", 35, u),
                     SM_PROTO_EUUID);
    /* A NUL inside the 36 characters. */
    assert_int_equal(sm_uuid_parse_n("550e8400-e29b-41d4-a716-4466554400\0000", 36, u),
                     SM_PROTO_EUUID);
    assert_memory_equal(u, ref, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_v4_bits, setup),
        cmocka_unit_test_setup(test_unique, setup),
        cmocka_unit_test_setup(test_one_syscall_per_256, setup),
        cmocka_unit_test_setup(test_eintr_retried, setup),
        cmocka_unit_test_setup(test_partial_reads, setup),
        cmocka_unit_test_setup(test_failure_then_recovery, setup),
        cmocka_unit_test_setup(test_fork_does_not_repeat, setup),
        cmocka_unit_test_setup(test_format_known, setup),
        cmocka_unit_test_setup(test_parse_ok, setup),
        cmocka_unit_test_setup(test_round_trip, setup),
        cmocka_unit_test_setup(test_parse_rejects, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
