/*
 * Firestore REST helpers: the Value union of §2.2 with its quirks
 * (integerValue strings, `{}` for empty arrays and maps, doubles without a
 * decimal point), RFC 3339 times, reversible document-id escaping and the
 * classification of responses by google.rpc `error.status`.  Pure functions;
 * the backend that uses them is store/store_firestore.c.
 */
#include "cloud/firestore.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/err.h"

/* Seconds from 1970-01-01 to 0001-01-01 and to 10000-01-01 (proleptic
 * Gregorian): the range of a Firestore Timestamp. */
#define MIN_EPOCH_S (-62135596800LL)
#define MAX_EPOCH_S (253402300800LL) /* exclusive */

/* ---- Builders ------------------------------------------------------------ */

static json_t *one(const char *key, json_t *val)
{
    json_t *v = json_object();
    json_object_set_new(v, key, val);
    return v;
}

json_t *sm_fs_value_null(void)
{
    return one("nullValue", json_null());
}

json_t *sm_fs_value_bool(bool b)
{
    return one("booleanValue", json_boolean(b));
}

json_t *sm_fs_value_int(int64_t n)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, n);
    return one("integerValue", json_string(buf));
}

json_t *sm_fs_value_double(double d)
{
    if (isnan(d))
        return one("doubleValue", json_string("NaN"));
    if (isinf(d))
        return one("doubleValue", json_string(d > 0 ? "Infinity" : "-Infinity"));
    return one("doubleValue", json_real(d));
}

json_t *sm_fs_value_string(const char *s)
{
    json_t *str = json_string(s);
    return one("stringValue", str ? str : json_string(""));
}

json_t *sm_fs_value_time_ms(int64_t ms)
{
    char buf[32];
    if (sm_fs_format_time_ms(ms, buf, sizeof buf) != 0)
        return sm_fs_value_int(ms);
    return one("timestampValue", json_string(buf));
}

json_t *sm_fs_value_array_new(json_t *values)
{
    json_t *inner = json_object();
    if (values != NULL && json_array_size(values) > 0)
        json_object_set(inner, "values", values);
    json_decref(values);
    return one("arrayValue", inner);
}

json_t *sm_fs_value_map_new(json_t *fields)
{
    json_t *inner = json_object();
    if (fields != NULL && json_object_size(fields) > 0)
        json_object_set(inner, "fields", fields);
    json_decref(fields);
    return one("mapValue", inner);
}

/* ---- Readers ------------------------------------------------------------- */

/* The single key of a Value and its payload; SM_ENOTFOUND for NULL or a
 * nullValue, SM_EPROTO for something that is not a one-key object. */
static int value_kind(const json_t *v, const char **key, const json_t **val)
{
    if (v == NULL)
        return SM_ENOTFOUND;
    if (!json_is_object(v) || json_object_size(v) != 1)
        return SM_EPROTO;
    void *it = json_object_iter((json_t *)v);
    *key = json_object_iter_key(it);
    *val = json_object_iter_value(it);
    if (strcmp(*key, "nullValue") == 0)
        return SM_ENOTFOUND;
    return 0;
}

int sm_fs_read_string(const json_t *v, const char **out)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "stringValue") != 0 || !json_is_string(x))
        return SM_EPROTO;
    *out = json_string_value(x);
    return 0;
}

/* Decimal int64 with optional sign, nothing else. */
static int parse_int64(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return SM_EPROTO;
    const char *p = s + (*s == '-' || *s == '+');
    if (*p == '\0')
        return SM_EPROTO;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return SM_EPROTO;
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return SM_EPROTO;
    *out = (int64_t)n;
    return 0;
}

int sm_fs_read_int(const json_t *v, int64_t *out)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "integerValue") == 0) {
        if (json_is_string(x))
            return parse_int64(json_string_value(x), out);
        if (json_is_integer(x)) {
            *out = (int64_t)json_integer_value(x);
            return 0;
        }
        return SM_EPROTO;
    }
    if (strcmp(k, "doubleValue") == 0 && json_is_number(x)) {
        double d = json_number_value(x);
        /* 2^63 is exactly representable; anything at or past it is not an int64. */
        if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return SM_EPROTO;
        *out = (int64_t)d;
        return 0;
    }
    return SM_EPROTO;
}

int sm_fs_read_double(const json_t *v, double *out)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "doubleValue") == 0) {
        if (json_is_number(x)) { /* `2` arrives as a JSON integer */
            *out = json_number_value(x);
            return 0;
        }
        const char *s = json_string_value(x);
        if (s == NULL)
            return SM_EPROTO;
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            *out = -INFINITY;
        else
            return SM_EPROTO;
        return 0;
    }
    if (strcmp(k, "integerValue") == 0) {
        int64_t n;
        if ((rc = sm_fs_read_int(v, &n)) != 0)
            return rc;
        *out = (double)n;
        return 0;
    }
    return SM_EPROTO;
}

int sm_fs_read_bool(const json_t *v, bool *out)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "booleanValue") != 0 || !json_is_boolean(x))
        return SM_EPROTO;
    *out = json_is_true(x);
    return 0;
}

/* Floor division for the µs -> ms conversion of times before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int sm_fs_read_time_ms(const json_t *v, int64_t *out)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "timestampValue") == 0) {
        int64_t us;
        if (!json_is_string(x) || sm_fs_parse_time_us(json_string_value(x), &us) != 0)
            return SM_EPROTO;
        *out = floor_div(us, 1000);
        return 0;
    }
    if (strcmp(k, "integerValue") == 0)
        return sm_fs_read_int(v, out);
    return SM_EPROTO;
}

int sm_fs_read_array(const json_t *v, const json_t **values)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "arrayValue") != 0 || !json_is_object(x))
        return SM_EPROTO;
    const json_t *a = json_object_get(x, "values");
    if (a != NULL && !json_is_array(a))
        return SM_EPROTO;
    *values = json_array_size(a) > 0 ? a : NULL;
    return 0;
}

int sm_fs_read_map(const json_t *v, const json_t **fields)
{
    const char *k;
    const json_t *x;
    int rc = value_kind(v, &k, &x);
    if (rc != 0)
        return rc;
    if (strcmp(k, "mapValue") != 0 || !json_is_object(x))
        return SM_EPROTO;
    const json_t *f = json_object_get(x, "fields");
    if (f != NULL && !json_is_object(f))
        return SM_EPROTO;
    *fields = json_object_size(f) > 0 ? f : NULL;
    return 0;
}

static const json_t *field(const json_t *fields, const char *name)
{
    return json_is_object(fields) ? json_object_get(fields, name) : NULL;
}

int sm_fs_get_string(const json_t *fields, const char *name, const char **out)
{
    return sm_fs_read_string(field(fields, name), out);
}

int sm_fs_get_int(const json_t *fields, const char *name, int64_t *out)
{
    return sm_fs_read_int(field(fields, name), out);
}

int sm_fs_get_time_ms(const json_t *fields, const char *name, int64_t *out)
{
    return sm_fs_read_time_ms(field(fields, name), out);
}

/* ---- Times --------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), exact for the whole 0001..9999 range. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int sm_fs_format_time_ms(int64_t ms, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    int64_t s = floor_div(ms, 1000);
    if (s < MIN_EPOCH_S || s >= MAX_EPOCH_S || cap < 25)
        return SM_EINVAL;
    int64_t frac = ms - s * 1000;
    int64_t days = floor_div(s, 86400);
    int64_t sod = s - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, cap, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", (int)y, m, d, (int)(sod / 3600),
             (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
    return 0;
}

/* n decimal digits at p into *v; false if any is not a digit. */
static bool digits(const char *p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return false;
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return true;
}

int sm_fs_parse_time_us(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return SM_EINVAL;
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || (unsigned)d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 59)
        return SM_EINVAL;
    const char *p = s + 19;
    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)p[n]))
            n++;
        if (n == 0 || n > 9)
            return SM_EINVAL;
        for (int i = 0; i < 6; i++) /* digits past microseconds are dropped */
            frac_us = frac_us * 10 + (i < n ? p[i] - '0' : 0);
        p += n;
    }
    int64_t offset_s = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        offset_s = 0;
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return SM_EINVAL;
        offset_s = (int64_t)(oh * 3600 + om * 60) * (p[0] == '-' ? -1 : 1);
    } else {
        return SM_EINVAL;
    }
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    *us = secs * 1000000 + frac_us;
    return 0;
}

/* ---- Names --------------------------------------------------------------- */

static const char hexdig[] = "0123456789ABCDEF";

static bool id_safe(unsigned char c)
{
    return (isalnum(c) && c < 0x80) || c == '.' || c == '-' || c == '@' || c == '_';
}

char *sm_fs_id_escape(const char *id)
{
    size_t n = strlen(id);
    if ((n == 1 && id[0] == '.') || (n == 2 && id[0] == '.' && id[1] == '.'))
        return sm_xstrdup(n == 1 ? "%2E" : "%2E%2E");
    /* __.*__ is reserved: its first '_' is escaped, which is enough. */
    bool reserved = n >= 4 && strncmp(id, "__", 2) == 0 && strcmp(id + n - 2, "__") == 0;
    char *out = sm_xmalloc(3 * n + 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if (id_safe(*p) && !(reserved && p == (const unsigned char *)id)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hexdig[*p >> 4];
            *o++ = hexdig[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *sm_fs_id_unescape(const char *doc_id)
{
    char *out = sm_xmalloc(strlen(doc_id) + 1);
    char *o = out;
    for (const char *p = doc_id; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        p += 2;
    }
    *o = '\0';
    return out;
}

char *sm_fs_url_encode(const char *s)
{
    char *out = sm_xmalloc(3 * strlen(s) + 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((isalnum(*p) && *p < 0x80) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hexdig[*p >> 4];
            *o++ = hexdig[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- Responses ----------------------------------------------------------- */

static const struct {
    const char *status;
    sm_fs_class_t cls;
} status_map[] = {
    {"NOT_FOUND", SM_FS_NOT_FOUND},
    {"ALREADY_EXISTS", SM_FS_ALREADY_EXISTS},
    {"FAILED_PRECONDITION", SM_FS_FAILED_PRECONDITION},
    {"UNAUTHENTICATED", SM_FS_UNAUTHENTICATED},
    {"ABORTED", SM_FS_RETRY},
    {"UNAVAILABLE", SM_FS_RETRY},
    {"DEADLINE_EXCEEDED", SM_FS_RETRY},
    {"INTERNAL", SM_FS_RETRY},
    {"UNKNOWN", SM_FS_RETRY},
    {"RESOURCE_EXHAUSTED", SM_FS_RETRY},
    {"CANCELLED", SM_FS_RETRY},
    {"PERMISSION_DENIED", SM_FS_FATAL},
    {"INVALID_ARGUMENT", SM_FS_FATAL},
    {"OUT_OF_RANGE", SM_FS_FATAL},
    {"UNIMPLEMENTED", SM_FS_FATAL},
    {"DATA_LOSS", SM_FS_FATAL},
};

/* The google.rpc `error` object of a response body, or NULL.  The caller
 * json_decref()s *root (NULL when the body is not JSON). */
static const json_t *rpc_error(const char *body, size_t len, json_t **root)
{
    *root = body != NULL && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    return json_object_get(*root, "error");
}

/* Copy the string member key of e into out ("" if none). */
static void copy_member(const json_t *e, const char *key, char *out, size_t cap)
{
    if (cap == 0)
        return;
    const char *s = json_string_value(json_object_get(e, key));
    snprintf(out, cap, "%s", s != NULL ? s : "");
}

sm_fs_class_t sm_fs_classify(int http, int err, const char *body, size_t len)
{
    if (err == SM_ECANCELED)
        return SM_FS_FATAL;
    if (err != 0)
        return SM_FS_RETRY; /* network error or timeout */
    if (http >= 200 && http < 300)
        return SM_FS_OK;
    char status[40];
    json_t *root;
    copy_member(rpc_error(body, len, &root), "status", status, sizeof status);
    json_decref(root);
    if (status[0] != '\0') {
        for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
            if (strcmp(status, status_map[i].status) == 0)
                return status_map[i].cls;
        return SM_FS_FATAL;
    }
    /* No google.rpc body (a proxy, a load balancer): the §5 mapping. */
    switch (http) {
    case 401:
        return SM_FS_UNAUTHENTICATED;
    case 404:
        return SM_FS_NOT_FOUND;
    case 408:
    case 429:
    case 499:
        return SM_FS_RETRY;
    default:
        return http >= 500 ? SM_FS_RETRY : SM_FS_FATAL;
    }
}

bool sm_fs_retryable(int http, int err, const char *body, size_t len)
{
    return sm_fs_classify(http, err, body, len) == SM_FS_RETRY;
}

void sm_fs_error_text(const char *body, size_t len, char *status, size_t scap, char *msg,
                      size_t mcap)
{
    json_t *root;
    const json_t *e = rpc_error(body, len, &root);
    copy_member(e, "status", status, scap);
    copy_member(e, "message", msg, mcap);
    json_decref(root);
}

const char *sm_fs_class_name(sm_fs_class_t c)
{
    switch (c) {
    case SM_FS_OK:
        return "OK";
    case SM_FS_NOT_FOUND:
        return "NOT_FOUND";
    case SM_FS_ALREADY_EXISTS:
        return "ALREADY_EXISTS";
    case SM_FS_FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
    case SM_FS_UNAUTHENTICATED:
        return "UNAUTHENTICATED";
    case SM_FS_RETRY:
        return "RETRYABLE";
    case SM_FS_FATAL:
        return "FATAL";
    }
    return "?";
}
