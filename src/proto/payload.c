/*
 * JSON payload validation per message type.  Each validator is a short list
 * of field checks built from a few helpers (required/optional string, id,
 * version, array of strings, object), so the rules of DECISIONS §3 live in
 * one place and every failure message is built the same way: "<field>: ...".
 * Messages are formatted only on failure; the success path is jansson hash
 * lookups and, for ids, one table load per byte.
 */
#include "proto/payload.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define FIELD_PAYLOAD "payload"

__attribute__((format(printf, 3, 4))) static int fail(sm_payload_err_t *err, const char *field,
                                                      const char *fmt, ...)
{
    if (err == NULL)
        return SM_EINVAL;
    err->code = 400;
    snprintf(err->field, sizeof(err->field), "%s", field);
    int n = snprintf(err->message, sizeof(err->message), "%s: ", field);
    if (n < 0 || (size_t)n >= sizeof(err->message))
        return SM_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof(err->message) - (size_t)n, fmt, ap);
    va_end(ap);
    return SM_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

/* True when the bracket nesting of s[0..len) stays within max levels.
 * Brackets inside strings do not count.  On malformed input the answer may be
 * wrong either way; jansson rejects such input right after. */
static bool depth_ok(const unsigned char *s, size_t len, int max)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '{':
        case '[':
            if (++depth > max)
                return false;
            break;
        case '}':
        case ']':
            depth--;
            break;
        default:
            break;
        }
    }
    return true;
}

/* Copy jansson's error text keeping it printable ASCII: it may quote bytes of
 * the input ("near '...'"), which could be invalid UTF-8 and would then break
 * the JSON ERROR reply the message goes into. */
static void sanitize(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
}

int sm_payload_load(const void *data, size_t len, json_t **out, sm_payload_err_t *err)
{
    *out = NULL;
    if (len == 0)
        return fail(err, FIELD_PAYLOAD, "empty; must be a JSON object");
    if (!depth_ok(data, len, SM_PAYLOAD_MAX_DEPTH))
        return fail(err, FIELD_PAYLOAD, "JSON nested deeper than %d levels", SM_PAYLOAD_MAX_DEPTH);

    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        char text[JSON_ERROR_TEXT_LENGTH];
        sanitize(text, sizeof(text), jerr.text);
        return fail(err, FIELD_PAYLOAD, "invalid JSON at line %d column %d: %s", jerr.line,
                    jerr.column, text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, FIELD_PAYLOAD, "must be a JSON object");
    }
    *out = root;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Field helpers.  Each returns 0 or SM_EINVAL with *err filled.             */

#define MSG_MISSING "required field missing"
#define MSG_ID "must be 1-128 characters of [A-Za-z0-9._:@-]"

/* Member `key`, or NULL when absent.  With null_absent, JSON null counts as
 * absent too (optional fields). */
static json_t *member(const json_t *root, const char *key, bool null_absent)
{
    json_t *v = json_object_get(root, key);
    if (null_absent && json_is_null(v))
        return NULL;
    return v;
}

static int check_root(const json_t *root, sm_payload_err_t *err)
{
    if (!json_is_object(root))
        return fail(err, FIELD_PAYLOAD, "must be a JSON object");
    return 0;
}

static void set_str(sm_payload_str_t *out, const json_t *v)
{
    out->ptr = json_string_value(v);
    out->len = json_string_length(v);
}

static int string_field(const json_t *root, const char *key, bool required, sm_payload_str_t *out,
                        sm_payload_err_t *err)
{
    json_t *v = member(root, key, !required);
    if (v == NULL) {
        if (required)
            return fail(err, key, MSG_MISSING);
        out->ptr = NULL;
        out->len = 0;
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, key, "must be a string");
    set_str(out, v);
    return 0;
}

static int id_field(const json_t *root, const char *key, bool required, sm_payload_str_t *out,
                    sm_payload_err_t *err)
{
    int rc = string_field(root, key, required, out, err);
    if (rc != 0 || out->ptr == NULL)
        return rc;
    if (!sm_proto_id_valid(out->ptr, out->len))
        return fail(err, key, MSG_ID);
    return 0;
}

int sm_payload_semver_parse(const char *s, size_t len, uint32_t *out)
{
    uint32_t part[3] = {0, 0, 0};
    size_t i = 0;
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            if (i >= len || s[i] != '.')
                return SM_EINVAL;
            i++;
        }
        size_t start = i;
        uint64_t v = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            v = v * 10 + (uint64_t)(s[i] - '0');
            if (v > UINT32_MAX)
                return SM_EINVAL;
        }
        if (i == start)
            return SM_EINVAL;
        part[k] = (uint32_t)v;
    }
    if (i != len)
        return SM_EINVAL;
    out[0] = part[0];
    out[1] = part[1];
    out[2] = part[2];
    return 0;
}

static int version_field(const json_t *root, sm_payload_str_t *out, sm_payload_err_t *err)
{
    int rc = string_field(root, "version", true, out, err);
    if (rc != 0)
        return rc;
    uint32_t v[3];
    if (sm_payload_semver_parse(out->ptr, out->len, v) != 0)
        return fail(err, "version", "must be MAJOR.MINOR.PATCH in decimal digits, e.g. %s",
                    SM_PROTO_VERSION);
    static const uint32_t server[3] = {SM_PROTO_VERSION_MAJOR, SM_PROTO_VERSION_MINOR,
                                       SM_PROTO_VERSION_PATCH};
    for (int k = 0; k < 3; k++) {
        if (v[k] < server[k])
            return 0;
        if (v[k] > server[k])
            /* Only digits and dots: safe to quote. */
            return fail(err, "version", "%s is newer than the server protocol version %s", out->ptr,
                        SM_PROTO_VERSION);
    }
    return 0;
}

/* Optional array whose elements all have the JSON type `type`.  With
 * required, the array must be present and non-empty. */
static int array_field(const json_t *root, const char *key, bool required, json_type type,
                       const char *what, json_t **out, sm_payload_err_t *err)
{
    json_t *v = member(root, key, true);
    if (v == NULL) {
        if (required)
            return fail(err, key, MSG_MISSING);
        *out = NULL;
        return 0;
    }
    if (!json_is_array(v))
        return fail(err, key, "must be an array of %s", what);
    size_t n = json_array_size(v);
    if (required && n == 0)
        return fail(err, key, "must be a non-empty array of %s", what);
    for (size_t i = 0; i < n; i++) {
        if (json_typeof(json_array_get(v, i)) != type)
            return fail(err, key, "must be an array of %s", what);
    }
    *out = v;
    return 0;
}

static int capabilities_field(const json_t *root, json_t **out, sm_payload_err_t *err)
{
    return array_field(root, "capabilities", false, JSON_STRING, "strings", out, err);
}

static int object_field(const json_t *root, const char *key, json_t **out, sm_payload_err_t *err)
{
    json_t *v = member(root, key, true);
    if (v != NULL && !json_is_object(v))
        return fail(err, key, "must be an object");
    *out = v;
    return 0;
}

/* Number of UTF-8 code points (jansson has validated the encoding). */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Validators                                                                */

/* Each validator fills a local copy and stores it on success only. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

int sm_payload_validate_connect(const json_t *root, sm_payload_connect_t *out,
                                sm_payload_err_t *err)
{
    sm_payload_connect_t p;
    TRY(check_root(root, err));
    TRY(id_field(root, "client_id", true, &p.client_id, err));
    TRY(string_field(root, "auth_token", true, &p.auth_token, err));
    TRY(version_field(root, &p.version, err));
    TRY(capabilities_field(root, &p.capabilities, err));
    TRY(object_field(root, "metadata", &p.metadata, err));
    TRY(string_field(root, "resume_token", false, &p.resume_token, err));
    *out = p;
    return 0;
}

int sm_payload_validate_disconnect(const json_t *root, sm_payload_disconnect_t *out,
                                   sm_payload_err_t *err)
{
    sm_payload_disconnect_t p = {{NULL, 0}};
    if (root != NULL) {
        TRY(check_root(root, err));
        TRY(string_field(root, "reason", false, &p.reason, err));
    }
    *out = p;
    return 0;
}

int sm_payload_validate_ping(const json_t *root, sm_payload_ping_t *out, sm_payload_err_t *err)
{
    TRY(check_root(root, err));
    json_t *ts = json_object_get(root, "timestamp");
    if (ts == NULL)
        return fail(err, "timestamp", MSG_MISSING);
    if (!json_is_number(ts))
        return fail(err, "timestamp", "must be a number");
    out->timestamp = ts;
    return 0;
}

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

bool sm_payload_ping_fast(const void *data, size_t len, sm_payload_str_t *ts)
{
    static const char key[] = "\"timestamp\"";
    const char *s = data;
    size_t i = skip_ws(s, 0, len);
    if (i >= len || s[i] != '{')
        return false;
    i = skip_ws(s, i + 1, len);
    if (len - i < sizeof key - 1 || memcmp(s + i, key, sizeof key - 1) != 0)
        return false;
    i = skip_ws(s, i + sizeof key - 1, len);
    if (i >= len || s[i] != ':')
        return false;
    i = skip_ws(s, i + 1, len);
    size_t start = i;
    if (i < len && s[i] == '-')
        i++;
    size_t digits = i;
    if (i < len && s[i] == '0') {
        i++;
    } else {
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i == digits || i - digits > 18)
        return false;
    size_t end = i;
    i = skip_ws(s, i, len);
    if (i >= len || s[i] != '}')
        return false;
    if (skip_ws(s, i + 1, len) != len)
        return false;
    ts->ptr = s + start;
    ts->len = end - start;
    return true;
}

int sm_payload_validate_register(const json_t *root, sm_payload_register_t *out,
                                 sm_payload_err_t *err)
{
    sm_payload_register_t p;
    TRY(check_root(root, err));
    TRY(version_field(root, &p.version, err));
    TRY(id_field(root, "client_id", true, &p.client_id, err));
    TRY(string_field(root, "auth_token", true, &p.auth_token, err));
    TRY(id_field(root, "room_id", false, &p.room_id, err));
    TRY(capabilities_field(root, &p.capabilities, err));
    TRY(object_field(root, "metadata", &p.metadata, err));
    *out = p;
    return 0;
}

int sm_payload_validate_unregister(const json_t *root, sm_payload_unregister_t *out,
                                   sm_payload_err_t *err)
{
    sm_payload_unregister_t p;
    TRY(check_root(root, err));
    TRY(version_field(root, &p.version, err));
    TRY(id_field(root, "client_id", true, &p.client_id, err));
    TRY(string_field(root, "auth_token", true, &p.auth_token, err));
    *out = p;
    return 0;
}

int sm_payload_validate_room_create(const json_t *root, sm_payload_room_create_t *out,
                                    sm_payload_err_t *err)
{
    sm_payload_room_create_t p;
    TRY(check_root(root, err));
    TRY(version_field(root, &p.version, err));
    TRY(id_field(root, "client_id", true, &p.client_id, err));
    TRY(string_field(root, "auth_token", false, &p.auth_token, err));
    TRY(id_field(root, "room_id", false, &p.room_id, err));
    TRY(string_field(root, "offer_sdp", false, &p.offer_sdp, err));
    TRY(capabilities_field(root, &p.capabilities, err));
    TRY(object_field(root, "metadata", &p.metadata, err));
    p.max_participants = 0;
    json_t *mp = p.metadata ? member(p.metadata, "max_participants", true) : NULL;
    if (mp != NULL) {
        if (!json_is_integer(mp) || json_integer_value(mp) < 2)
            return fail(err, "metadata.max_participants", "must be an integer >= 2");
        p.max_participants = json_integer_value(mp);
    }
    *out = p;
    return 0;
}

int sm_payload_validate_room_join(const json_t *root, sm_payload_room_join_t *out,
                                  sm_payload_err_t *err)
{
    sm_payload_room_join_t p;
    TRY(check_root(root, err));
    TRY(version_field(root, &p.version, err));
    TRY(id_field(root, "client_id", true, &p.client_id, err));
    TRY(string_field(root, "auth_token", false, &p.auth_token, err));
    TRY(id_field(root, "room_id", true, &p.room_id, err));
    TRY(object_field(root, "metadata", &p.metadata, err));
    TRY(string_field(root, "offer_sdp", false, &p.offer_sdp, err));
    *out = p;
    return 0;
}

int sm_payload_validate_room_leave(const json_t *root, sm_payload_room_leave_t *out,
                                   sm_payload_err_t *err)
{
    sm_payload_room_leave_t p;
    TRY(check_root(root, err));
    TRY(version_field(root, &p.version, err));
    TRY(id_field(root, "client_id", true, &p.client_id, err));
    TRY(string_field(root, "auth_token", false, &p.auth_token, err));
    TRY(id_field(root, "room_id", true, &p.room_id, err));
    *out = p;
    return 0;
}

int sm_payload_validate_signal(const json_t *root, sm_payload_signal_t *out, sm_payload_err_t *err)
{
    sm_payload_signal_t p;
    TRY(check_root(root, err));
    TRY(id_field(root, "target_client_id", true, &p.target_client_id, err));
    TRY(string_field(root, "type", true, &p.type, err));
    if (p.type.len == 0 || (p.type.len > SM_PAYLOAD_SIGNAL_TYPE_MAX &&
                            utf8_chars(p.type.ptr, p.type.len) > SM_PAYLOAD_SIGNAL_TYPE_MAX))
        return fail(err, "type", "must be a non-empty string of at most %d characters",
                    SM_PAYLOAD_SIGNAL_TYPE_MAX);
    TRY(id_field(root, "room_id", false, &p.room_id, err));
    /* Required but may be null: absent and null are different here. */
    p.data = json_object_get(root, "data");
    if (p.data == NULL)
        return fail(err, "data", MSG_MISSING);
    *out = p;
    return 0;
}

int sm_payload_validate_session_update(const json_t *root, sm_payload_session_update_t *out,
                                       sm_payload_err_t *err)
{
    sm_payload_session_update_t p;
    sm_payload_str_t action;
    TRY(check_root(root, err));
    TRY(id_field(root, "session_id", true, &p.session_id, err));
    TRY(string_field(root, "action", true, &action, err));
    if (strcmp(action.ptr, "answer") == 0)
        p.action = SM_PAYLOAD_ACTION_ANSWER;
    else if (strcmp(action.ptr, "pull") == 0)
        p.action = SM_PAYLOAD_ACTION_PULL;
    else if (strcmp(action.ptr, "close") == 0)
        p.action = SM_PAYLOAD_ACTION_CLOSE;
    else
        return fail(err, "action", "must be \"answer\", \"pull\" or \"close\"");
    TRY(string_field(root, "answer_sdp", false, &p.answer_sdp, err));
    if (p.action == SM_PAYLOAD_ACTION_ANSWER && p.answer_sdp.ptr == NULL)
        return fail(err, "answer_sdp", "required for action \"answer\"");
    TRY(array_field(root, "tracks", p.action == SM_PAYLOAD_ACTION_PULL, JSON_OBJECT, "objects",
                    &p.tracks, err));
    TRY(array_field(root, "mids", p.action == SM_PAYLOAD_ACTION_CLOSE, JSON_STRING, "strings",
                    &p.mids, err));
    *out = p;
    return 0;
}

int sm_payload_validate(uint8_t type, const json_t *root, sm_payload_any_t *out,
                        sm_payload_err_t *err)
{
    switch (type) {
    case SM_MSG_CONNECT:
        return sm_payload_validate_connect(root, &out->connect, err);
    case SM_MSG_DISCONNECT:
        return sm_payload_validate_disconnect(root, &out->disconnect, err);
    case SM_MSG_PING:
        return sm_payload_validate_ping(root, &out->ping, err);
    case SM_MSG_REGISTER:
        return sm_payload_validate_register(root, &out->reg, err);
    case SM_MSG_UNREGISTER:
        return sm_payload_validate_unregister(root, &out->unreg, err);
    case SM_MSG_ROOM_CREATE:
        return sm_payload_validate_room_create(root, &out->room_create, err);
    case SM_MSG_ROOM_JOIN:
        return sm_payload_validate_room_join(root, &out->room_join, err);
    case SM_MSG_ROOM_LEAVE:
        return sm_payload_validate_room_leave(root, &out->room_leave, err);
    case SM_MSG_SIGNAL:
        return sm_payload_validate_signal(root, &out->signal, err);
    case SM_MSG_SESSION_UPDATE:
        return sm_payload_validate_session_update(root, &out->session_update, err);
    default:
        return fail(err, "type", "no JSON payload is accepted for message type %s",
                    sm_msg_type_name(type));
    }
}
