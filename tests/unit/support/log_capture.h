/*
 * Capture the process log in a test: route it (JSON) to a temporary file,
 * then read back what was logged to check its contents.  The caller points
 * the log elsewhere again before reading.
 * Header-only (static inline) so each test binary stays one .c file.
 */
#ifndef SM_TESTS_SUPPORT_LOG_CAPTURE_H
#define SM_TESTS_SUPPORT_LOG_CAPTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "log/log.h"

/* Send the log at level, as JSON, to a new temporary file. */
static inline FILE *logcap_start(sm_log_level_t level)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    sm_log_configure(level, SM_LOG_FORMAT_JSON, fileno(f));
    return f;
}

/* What was logged to f, into buf (NUL-terminated, at most cap - 1 bytes);
 * closes f. */
static inline void logcap_read(FILE *f, char *buf, size_t cap)
{
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

#endif
