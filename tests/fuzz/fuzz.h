/*
 * Shared by the fuzz targets (tests/fuzz/fuzz_<target>.c) and the replay
 * driver (standalone.c).
 *
 * Each target defines LLVMFuzzerInitialize (once per process: silence the
 * log, build fixtures) and LLVMFuzzerTestOneInput (one input; must not keep
 * state between calls other than what Initialize built, must not leak).
 * Built with clang and -fsanitize=fuzzer they are libFuzzer binaries; built
 * with gcc and standalone.c they replay corpus files (make test-fuzz-replay).
 *
 * FUZZ_CHECK states a property of the code under test; a violation prints
 * the location and aborts, which both libFuzzer and the replay driver report
 * as a crash.  Helpers here are static inline: a target includes this header
 * once and runs in one thread.
 */
#ifndef SM_FUZZ_FUZZ_H
#define SM_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Once per process: only fatal log lines (the code under test logs what it
 * rejects, and the fuzzer feeds it nothing else). */
static inline void fuzz_quiet_log(void)
{
    sm_log_configure(SM_LOG_FATAL, SM_LOG_FORMAT_JSON, -1);
}

/* LLVMFuzzerInitialize for a target without fixtures. */
#define FUZZ_INITIALIZE_QUIET()                                                                    \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                              \
    {                                                                                              \
        (void)argc;                                                                                \
        (void)argv;                                                                                \
        fuzz_quiet_log();                                                                          \
        return 0;                                                                                  \
    }

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A cursor over the input: targets take a few control bytes off the front
 * and treat the rest as data.  Reading past the end yields zeros. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_in_t;

static inline uint8_t fuzz_u8(fuzz_in_t *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(fuzz_in_t *in)
{
    uint16_t hi = fuzz_u8(in);
    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

/* Exactly-sized heap copy of n bytes plus a NUL, so ASan sees any read past
 * the end of what the code under test was given.  Never NULL. */
/* Whether s is printable ASCII only (messages that go into logs and replies). */
static inline int fuzz_printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return 0;
    return 1;
}

static inline char *fuzz_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        s[i] = (char)p[i];
    s[n] = '\0';
    return s;
}

#endif
