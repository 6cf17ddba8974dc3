/*
 * Structured logging: one JSON object per line (or a readable text line).
 *
 * Owns the process-wide log settings (level, format, output fd), set once by
 * sm_log_configure() on the main thread before other threads start and read
 * only afterwards, and a thread-local thread name set by each thread with
 * sm_log_set_thread().  Any thread may log; each line is written with a single
 * write(2), so lines from different threads never interleave.
 *
 * Usage:
 *     SM_LOG(SM_LOG_INFO, SM_MSG("listening"), SM_STR("host", host), SM_INT("port", port));
 * The level is checked before any argument is formatted.  Secrets are logged
 * with SM_SECRET(key), which prints "***" and never the value.
 */
#ifndef SM_LOG_LOG_H
#define SM_LOG_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SM_LOG_DEBUG = 0,
    SM_LOG_INFO = 1,
    SM_LOG_WARN = 2,
    SM_LOG_ERROR = 3,
    SM_LOG_FATAL = 4,
} sm_log_level_t;

typedef enum {
    SM_LF_MSG,
    SM_LF_STR,
    SM_LF_INT,
    SM_LF_UINT,
    SM_LF_BOOL,
    SM_LF_DBL,
    SM_LF_SECRET,
    SM_LF_JSON, /* value is already JSON text (e.g. from json_dumps) */
} sm_log_field_type_t;

typedef struct {
    sm_log_field_type_t type;
    const char *key;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } v;
} sm_log_field_t;

#define SM_MSG(text) ((sm_log_field_t){.type = SM_LF_MSG, .key = "msg", .v.s = (text)})
#define SM_STR(k, val) ((sm_log_field_t){.type = SM_LF_STR, .key = (k), .v.s = (val)})
#define SM_INT(k, val) ((sm_log_field_t){.type = SM_LF_INT, .key = (k), .v.i = (int64_t)(val)})
#define SM_UINT(k, val) ((sm_log_field_t){.type = SM_LF_UINT, .key = (k), .v.u = (uint64_t)(val)})
#define SM_BOOL(k, val) ((sm_log_field_t){.type = SM_LF_BOOL, .key = (k), .v.b = (val)})
#define SM_DBL(k, val) ((sm_log_field_t){.type = SM_LF_DBL, .key = (k), .v.d = (val)})
#define SM_SECRET(k) ((sm_log_field_t){.type = SM_LF_SECRET, .key = (k)})
#define SM_JSON(k, val) ((sm_log_field_t){.type = SM_LF_JSON, .key = (k), .v.s = (val)})

#define SM_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if (sm_log_enabled(level)) {                                                               \
            const sm_log_field_t sm__lf[] = {__VA_ARGS__};                                         \
            sm_log_emit((level), sm__lf, sizeof sm__lf / sizeof sm__lf[0]);                       \
        }                                                                                          \
    } while (0)

typedef enum { SM_LOG_FORMAT_JSON, SM_LOG_FORMAT_TEXT } sm_log_format_t;

/* Main thread, before other threads start.  fd is where lines go (2 for
 * stderr; -1 to discard everything).  The caller keeps fd open. */
void sm_log_configure(sm_log_level_t level, sm_log_format_t format, int fd);
/* Parse "debug|info|warn|error|fatal"; returns 0 or SM_EINVAL. */
int sm_log_level_parse(const char *s, sm_log_level_t *out);
/* Name of the calling thread as it appears in the "thread" field (borrowed,
 * must outlive the thread's logging; usually a string literal or a buffer in
 * the thread's own struct). */
void sm_log_set_thread(const char *name);

bool sm_log_enabled(sm_log_level_t level);
/* Format and write one line.  Fields are borrowed for the call. */
void sm_log_emit(sm_log_level_t level, const sm_log_field_t *fields, unsigned n);

/* Append s to out as JSON string content (no quotes), escaping as needed.
 * Writes at most cap-1 bytes plus NUL; returns the number of bytes written.
 * Shared with other JSON-by-hand writers (metrics, replies). */
unsigned sm_json_escape(char *out, unsigned cap, const char *s);

#endif
