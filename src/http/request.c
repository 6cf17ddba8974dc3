/*
 * llhttp callbacks that keep only what the upgrade decision needs.
 *
 * llhttp may deliver a span (URL, header name, header value) in several
 * pieces across feeds, so names and values are accumulated into small fixed
 * buffers; a name longer than any header we care about is simply not matched,
 * and an over-long value of an interesting header is marked as overflowed
 * (and then fails validation) instead of growing a buffer.
 */
#include "http/request.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

enum {
    H_NONE = 0,
    H_UPGRADE,
    H_CONNECTION,
    H_WS_KEY,
    H_WS_VERSION,
};

#define NAME_MAX_BYTES 32
#define VALUE_MAX_BYTES 128

struct sm_http_req_s {
    llhttp_t parser;
    uint32_t header_bytes; /* span bytes (early stop) */
    uint32_t fed;          /* every byte fed so far */
    bool complete;
    bool path_overflow;
    bool in_query;
    bool ws_token, upgrade_token;
    bool key_overflow;
    int ws_version;
    uint8_t cur; /* H_* of the header whose value is being read */
    bool in_value;
    uint16_t name_len, value_len, path_len;
    char name[NAME_MAX_BYTES];
    char value[VALUE_MAX_BYTES];
    bool value_overflow;
    char path[SM_HTTP_PATH_MAX];
    char key[SM_HTTP_KEY_MAX + 1];
};

static sm_http_req_t *req_of(llhttp_t *p)
{
    return (sm_http_req_t *)p; /* parser is the first member */
}

/* Cheap early stop inside one feed: the spans alone already exceed the
 * limit.  The exact check (every byte of the head) is in sm_http_req_feed. */
static int count(sm_http_req_t *r, size_t len)
{
    r->header_bytes += (uint32_t)len;
    return r->header_bytes > SM_HTTP_MAX_HEADER_BYTES ? -1 : 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    sm_http_req_t *r = req_of(p);
    if (count(r, len))
        return -1;
    if (r->in_query || r->path_overflow)
        return 0;
    /* Keep the path up to the first '?' or '#': the query is irrelevant. */
    size_t n = 0;
    while (n < len && at[n] != '?' && at[n] != '#')
        n++;
    if (n < len)
        r->in_query = true;
    if ((size_t)r->path_len + n >= SM_HTTP_PATH_MAX) {
        r->path_overflow = true;
        return 0;
    }
    memcpy(r->path + r->path_len, at, n);
    r->path_len = (uint16_t)(r->path_len + n);
    r->path[r->path_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    sm_http_req_t *r = req_of(p);
    if (count(r, len))
        return -1;
    if (r->in_value) {
        r->in_value = false;
        r->name_len = 0;
    }
    size_t room = NAME_MAX_BYTES - r->name_len;
    if (len > room) {
        r->name_len = NAME_MAX_BYTES; /* too long: matches nothing */
        return 0;
    }
    memcpy(r->name + r->name_len, at, len);
    r->name_len = (uint16_t)(r->name_len + len);
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    sm_http_req_t *r = req_of(p);
    static const struct {
        const char *name;
        uint8_t id;
    } known[] = {
        {"upgrade", H_UPGRADE},
        {"connection", H_CONNECTION},
        {"sec-websocket-key", H_WS_KEY},
        {"sec-websocket-version", H_WS_VERSION},
    };
    r->cur = H_NONE;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i].name) == r->name_len &&
            strncasecmp(known[i].name, r->name, r->name_len) == 0) {
            r->cur = known[i].id;
            break;
        }
    }
    r->value_len = 0;
    r->value_overflow = false;
    r->in_value = true;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    sm_http_req_t *r = req_of(p);
    if (count(r, len))
        return -1;
    if (r->cur == H_NONE)
        return 0;
    if (len > VALUE_MAX_BYTES - 1u - r->value_len) {
        r->value_overflow = true;
        return 0;
    }
    memcpy(r->value + r->value_len, at, len);
    r->value_len = (uint16_t)(r->value_len + len);
    return 0;
}

/* Whether comma-separated list s[0..len) holds token (case-insensitive). */
static bool has_token(const char *s, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp(s + start, token, tlen) == 0)
            return true;
    }
    return false;
}

static int on_header_value_complete(llhttp_t *p)
{
    sm_http_req_t *r = req_of(p);
    /* llhttp drops leading whitespace but keeps trailing (RFC 9110 5.5: the
     * value excludes both). */
    while (r->value_len > 0 &&
           (r->value[r->value_len - 1] == ' ' || r->value[r->value_len - 1] == '\t'))
        r->value_len--;
    switch (r->cur) {
    case H_UPGRADE:
        if (!r->value_overflow && has_token(r->value, r->value_len, "websocket"))
            r->ws_token = true;
        break;
    case H_CONNECTION:
        if (!r->value_overflow && has_token(r->value, r->value_len, "upgrade"))
            r->upgrade_token = true;
        break;
    case H_WS_KEY:
        if (r->value_overflow || r->value_len > SM_HTTP_KEY_MAX) {
            r->key_overflow = true;
        } else {
            memcpy(r->key, r->value, r->value_len);
            r->key[r->value_len] = '\0';
        }
        break;
    case H_WS_VERSION: {
        int v = 0;
        bool ok = !r->value_overflow && r->value_len > 0 && r->value_len <= 4;
        for (uint16_t i = 0; ok && i < r->value_len; i++) {
            if (r->value[i] < '0' || r->value[i] > '9')
                ok = false;
            else
                v = v * 10 + (r->value[i] - '0');
        }
        r->ws_version = ok ? v : -1;
        break;
    }
    default:
        break;
    }
    r->cur = H_NONE;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    req_of(p)->complete = true;
    /* Stop here: one request per connection; what follows is not HTTP. */
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_message_complete = on_message_complete,
};

sm_http_req_t *sm_http_req_new(void)
{
    sm_http_req_t *r = sm_xcalloc(1, sizeof *r);
    llhttp_init(&r->parser, HTTP_REQUEST, &settings);
    r->ws_version = -1;
    return r;
}

void sm_http_req_free(sm_http_req_t *r)
{
    free(r);
}

sm_http_status_t sm_http_req_feed(sm_http_req_t *r, const char *data, size_t len,
                                  size_t *consumed)
{
    uint32_t before = r->fed;
    r->fed = len > SM_HTTP_MAX_HEADER_BYTES ? SM_HTTP_MAX_HEADER_BYTES + 1u
                                            : r->fed + (uint32_t)len;
    llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
    switch (e) {
    case HPE_OK:
        *consumed = len;
        /* Request line, headers and any body we do not serve all count. */
        return r->fed > SM_HTTP_MAX_HEADER_BYTES ? SM_HTTP_TOO_LARGE : SM_HTTP_MORE;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE: {
        const char *pos = llhttp_get_error_pos(&r->parser);
        *consumed = pos ? (size_t)(pos - data) : len;
        r->complete = true;
        if ((size_t)before + *consumed > SM_HTTP_MAX_HEADER_BYTES)
            return SM_HTTP_TOO_LARGE;
        return SM_HTTP_COMPLETE;
    }
    default:
        *consumed = len;
        if (r->header_bytes > SM_HTTP_MAX_HEADER_BYTES)
            return SM_HTTP_TOO_LARGE;
        return SM_HTTP_BAD;
    }
}

const char *sm_http_req_method(const sm_http_req_t *r)
{
    return llhttp_method_name((llhttp_method_t)r->parser.method);
}

bool sm_http_req_is_get(const sm_http_req_t *r)
{
    return r->parser.method == HTTP_GET;
}

bool sm_http_req_is_head(const sm_http_req_t *r)
{
    return r->parser.method == HTTP_HEAD;
}

const char *sm_http_req_path(const sm_http_req_t *r)
{
    return r->path_overflow ? "" : r->path;
}

bool sm_http_req_path_too_long(const sm_http_req_t *r)
{
    return r->path_overflow;
}

unsigned sm_http_req_version(const sm_http_req_t *r)
{
    return (unsigned)r->parser.http_major * 10u + r->parser.http_minor;
}

bool sm_http_req_wants_websocket(const sm_http_req_t *r)
{
    return r->ws_token;
}

bool sm_http_req_connection_upgrade(const sm_http_req_t *r)
{
    return r->upgrade_token;
}

const char *sm_http_req_ws_key(const sm_http_req_t *r)
{
    return r->key_overflow ? "" : r->key;
}

int sm_http_req_ws_version(const sm_http_req_t *r)
{
    return r->ws_version;
}
