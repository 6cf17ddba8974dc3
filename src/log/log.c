/*
 * JSON-lines logger.  A line is formatted into a stack buffer and written
 * with one write(2); lines longer than the buffer are truncated (and say so)
 * rather than split, so concurrent writers never interleave.
 */
#include "log/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"

#define LINE_MAX_BYTES 4096 /* a log line is a record, not a payload dump */

static sm_log_level_t g_level = SM_LOG_INFO;
static sm_log_format_t g_format = SM_LOG_FORMAT_JSON;
static int g_fd = 2;
static _Thread_local const char *t_thread = "main";

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void sm_log_configure(sm_log_level_t level, sm_log_format_t format, int fd)
{
    g_level = level;
    g_format = format;
    g_fd = fd;
}

int sm_log_level_parse(const char *s, sm_log_level_t *out)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (sm_log_level_t)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = SM_LOG_WARN;
        return 0;
    }
    return SM_EINVAL;
}

void sm_log_set_thread(const char *name)
{
    t_thread = name;
}

bool sm_log_enabled(sm_log_level_t level)
{
    return g_fd >= 0 && level >= g_level;
}

unsigned sm_json_escape(char *out, unsigned cap, const char *s)
{
    unsigned n = 0;
    if (cap == 0)
        return 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        const char *piece = esc;
        unsigned plen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            plen = 2;
        } else if (c == '\n') {
            piece = "\\n";
            plen = 2;
        } else if (c == '\r') {
            piece = "\\r";
            plen = 2;
        } else if (c == '\t') {
            piece = "\\t";
            plen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            plen = (unsigned)snprintf(esc, sizeof esc, "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            plen = 1;
        }
        if (n + plen >= cap)
            break;
        memcpy(out + n, piece, plen);
        n += plen;
    }
    out[n] = '\0';
    return n;
}

typedef struct {
    char buf[LINE_MAX_BYTES];
    unsigned len;
    bool truncated;
} line_t;

static void put(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(line_t *l, const char *fmt, ...)
{
    if (l->truncated)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (unsigned)n >= sizeof l->buf - l->len - 32) {
        l->truncated = true;
        return;
    }
    l->len += (unsigned)n;
}

static void put_str(line_t *l, const char *s)
{
    if (l->truncated)
        return;
    unsigned room = (unsigned)sizeof l->buf - l->len - 32;
    unsigned before = (unsigned)strlen(s);
    unsigned n = sm_json_escape(l->buf + l->len, room, s ? s : "");
    l->len += n;
    if (n < before && n + 8 >= room)
        l->truncated = true;
}

static void put_value(line_t *l, const sm_log_field_t *f, bool quote_strings)
{
    switch (f->type) {
    case SM_LF_MSG:
    case SM_LF_STR:
        if (f->v.s == NULL) {
            put(l, "null");
        } else {
            if (quote_strings)
                put(l, "\"");
            put_str(l, f->v.s);
            if (quote_strings)
                put(l, "\"");
        }
        break;
    case SM_LF_INT:
        put(l, "%lld", (long long)f->v.i);
        break;
    case SM_LF_UINT:
        put(l, "%llu", (unsigned long long)f->v.u);
        break;
    case SM_LF_BOOL:
        put(l, "%s", f->v.b ? "true" : "false");
        break;
    case SM_LF_DBL:
        put(l, "%.6g", f->v.d);
        break;
    case SM_LF_SECRET:
        put(l, quote_strings ? "\"***\"" : "***");
        break;
    case SM_LF_JSON:
        put(l, "%s", f->v.s ? f->v.s : "null");
        break;
    }
}

void sm_log_emit(sm_log_level_t level, const sm_log_field_t *fields, unsigned n)
{
    line_t l;
    char ts[32];
    l.len = 0;
    l.truncated = false;
    sm_clock_rfc3339(sm_clock_wall_ms(), ts, sizeof ts);
    if (g_format == SM_LOG_FORMAT_JSON) {
        put(&l, "{\"ts\":\"%s\",\"level\":\"%s\",\"thread\":\"", ts, level_names[level]);
        put_str(&l, t_thread);
        put(&l, "\"");
        for (unsigned i = 0; i < n; i++) {
            put(&l, ",\"");
            put_str(&l, fields[i].key);
            put(&l, "\":");
            put_value(&l, &fields[i], true);
        }
        if (l.truncated)
            put(&l, ",\"truncated\":true");
        l.len += (unsigned)snprintf(l.buf + l.len, sizeof l.buf - l.len, "}\n");
    } else {
        put(&l, "%s %-5s [%s]", ts, level_names[level], t_thread);
        for (unsigned i = 0; i < n; i++) {
            if (fields[i].type == SM_LF_MSG) {
                put(&l, " ");
                put_value(&l, &fields[i], false);
            } else {
                put(&l, " %s=", fields[i].key);
                put_value(&l, &fields[i], false);
            }
        }
        if (l.truncated)
            put(&l, " (truncated)");
        l.len += (unsigned)snprintf(l.buf + l.len, sizeof l.buf - l.len, "\n");
    }
    const char *p = l.buf;
    size_t left = l.len;
    while (left > 0) {
        ssize_t w = write(g_fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        left -= (size_t)w;
    }
}
