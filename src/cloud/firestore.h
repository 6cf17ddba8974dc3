/*
 * Firestore REST v1 helpers (reference/cloud-apis.md §2): Value encoding and
 * decoding, RFC 3339 times, document-id escaping, URL percent-encoding and
 * the classification of responses by `error.status`.  Used by the firestore
 * store backend (store/store_firestore.c); the network calls themselves go
 * through cloud/http_client.h.
 *
 * Everything here is pure: no I/O, no global state, any thread.  JSON values
 * are jansson objects; builders return a new reference the caller owns
 * (json_decref, or hand it to a *_new jansson call); readers borrow the
 * document and return pointers into it that live as long as the document.
 *
 * Encoding rules (§2.2 and trip-up §6.1):
 * - integerValue is written as a decimal STRING ("42"); read from a string or
 *   a JSON integer.
 * - doubleValue is a JSON number (read also without a decimal point: `2`);
 *   NaN and +-Infinity as the strings "NaN", "Infinity", "-Infinity".
 * - timestampValue is RFC 3339: written in Z form with 3 fractional digits
 *   (our times are milliseconds); read with 0-9 fractional digits (digits
 *   past microseconds are dropped, as Firestore does) and a Z or +-hh:mm
 *   offset.
 * - An empty arrayValue / mapValue is `{}` (no `values` / `fields` key), on
 *   output and on input.
 */
#ifndef SM_CLOUD_FIRESTORE_H
#define SM_CLOUD_FIRESTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Value builders (new references; never NULL) ------------------------ */

json_t *sm_fs_value_null(void);
json_t *sm_fs_value_bool(bool v);
/* {"integerValue": "<v>"} */
json_t *sm_fs_value_int(int64_t v);
/* {"doubleValue": v}; NaN/Infinity/-Infinity as strings. */
json_t *sm_fs_value_double(double v);
/* {"stringValue": s}; s must be valid UTF-8 (jansson checks; invalid UTF-8
 * yields an empty string rather than failing). */
json_t *sm_fs_value_string(const char *s);
/* {"timestampValue": "YYYY-MM-DDTHH:MM:SS.mmmZ"} for ms since the epoch.
 * Firestore timestamps cover years 0001..9999; a value outside that range
 * is written as {"integerValue": "<ms>"}, which sm_fs_get_time_ms reads
 * back, so no value is ever lost. */
json_t *sm_fs_value_time_ms(int64_t ms);
/* {"arrayValue": {"values": values}}, or {"arrayValue": {}} when values is
 * NULL or empty.  Steals values (a JSON array of Values). */
json_t *sm_fs_value_array_new(json_t *values);
/* {"mapValue": {"fields": fields}}, or {"mapValue": {}} when fields is NULL
 * or empty.  Steals fields (a JSON object name -> Value). */
json_t *sm_fs_value_map_new(json_t *fields);

/* ---- Value readers -------------------------------------------------------
 * Each reads one Value (v) or the field `name` of a document's `fields`
 * object (fields may be NULL: a document without fields).  Return 0 with
 * *out set, SM_ENOTFOUND when the field is absent or a nullValue, or
 * SM_EPROTO when it holds another type or a malformed value (out of range
 * integer, unparsable timestamp). */

int sm_fs_read_string(const json_t *v, const char **out);
/* integerValue as a string ("-12") or a JSON integer; a doubleValue holding
 * an integral number in int64 range is accepted too. */
int sm_fs_read_int(const json_t *v, int64_t *out);
/* doubleValue (number, or "NaN"/"Infinity"/"-Infinity"), or integerValue. */
int sm_fs_read_double(const json_t *v, double *out);
int sm_fs_read_bool(const json_t *v, bool *out);
/* timestampValue -> ms since the epoch (rounded down), or integerValue (ms,
 * as written by sm_fs_value_time_ms for out-of-range times). */
int sm_fs_read_time_ms(const json_t *v, int64_t *out);
/* The `values` array of an arrayValue (NULL for an empty one: `{}`). */
int sm_fs_read_array(const json_t *v, const json_t **values);
/* The `fields` object of a mapValue (NULL for an empty one: `{}`). */
int sm_fs_read_map(const json_t *v, const json_t **fields);

int sm_fs_get_string(const json_t *fields, const char *name, const char **out);
int sm_fs_get_int(const json_t *fields, const char *name, int64_t *out);
int sm_fs_get_time_ms(const json_t *fields, const char *name, int64_t *out);

/* ---- Times --------------------------------------------------------------- */

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (cap >= 25).  0, or SM_EINVAL when
 * the year is outside 0001..9999 (out is then ""). */
int sm_fs_format_time_ms(int64_t ms, char *out, size_t cap);
/* RFC 3339 (as above: 0-9 fractional digits, Z/z or +-hh:mm, 'T' or 't') ->
 * microseconds since the epoch.  0, or SM_EINVAL for anything else
 * (including impossible dates such as 02-30). */
int sm_fs_parse_time_us(const char *s, int64_t *us);

/* ---- Names --------------------------------------------------------------- */

/*
 * Document ids must not contain "/", be "." or "..", or match __.*__ (§2.1).
 * Our ids (client_id, room_id: 1-128 chars of [A-Za-z0-9._:@-]) may be
 * ".", ".." or "__x__".  The escaping is reversible and total:
 *   - every byte outside [A-Za-z0-9._@-] becomes %XX (upper-case hex), so
 *     ':' -> "%3A", '%' -> "%25", '/' -> "%2F";
 *   - an id that is exactly "." or ".." has its dots written as "%2E";
 *   - an id matching __.*__ has its first '_' written as "%5F"
 *     ("__x__" -> "%5F_x__").
 * ':' is escaped so that "<room>:<client>" (room_members ids) is
 * unambiguous.  Plain ids stay readable ("test_client_1" is unchanged).
 * Returns a malloc'd string (never NULL); the empty string maps to "" (not
 * a valid id; callers never pass it).
 */
char *sm_fs_id_escape(const char *id);
/* Inverse of sm_fs_id_escape: malloc'd id, or NULL when doc_id is not a
 * well-formed escape (a '%' not followed by two hex digits, or a decoded
 * NUL byte). */
char *sm_fs_id_unescape(const char *doc_id);
/* Percent-encode s for one URL path segment or query value: everything but
 * RFC 3986 unreserved characters [A-Za-z0-9-._~] becomes %XX.  Malloc'd. */
char *sm_fs_url_encode(const char *s);

/* ---- Responses -----------------------------------------------------------
 * What a finished call means (§2.10; decided by `error.status`, never by the
 * HTTP code alone: 409 is ALREADY_EXISTS or ABORTED). */
typedef enum {
    SM_FS_OK,                  /* 2xx */
    SM_FS_NOT_FOUND,           /* NOT_FOUND */
    SM_FS_ALREADY_EXISTS,      /* ALREADY_EXISTS (final) */
    SM_FS_FAILED_PRECONDITION, /* FAILED_PRECONDITION (stale updateTime, or a missing index) */
    SM_FS_UNAUTHENTICATED,     /* UNAUTHENTICATED / 401: refresh the token, retry once */
    SM_FS_RETRY,               /* ABORTED, UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN,
                                * RESOURCE_EXHAUSTED, CANCELLED, 429/5xx without a status,
                                * network errors and timeouts */
    SM_FS_FATAL,               /* PERMISSION_DENIED, INVALID_ARGUMENT, OUT_OF_RANGE, anything
                                * else: not retried, an operator must look */
} sm_fs_class_t;

/* Classify a finished attempt: http is the HTTP status (0 on transport
 * errors), err the REST client's error (0, SM_EIO, SM_ETIMEDOUT,
 * SM_ECANCELED: canceled is FATAL, nothing will retry it), body/len the
 * response body (may be NULL/0).  A non-2xx status whose body has no
 * google.rpc `error.status` is classified by the HTTP code (the
 * google.rpc.Code mapping of §5). */
sm_fs_class_t sm_fs_classify(int http, int err, const char *body, size_t len);
/* sm_rest_retryable_fn for Firestore calls: sm_fs_classify(...) == SM_FS_RETRY. */
bool sm_fs_retryable(int http, int err, const char *body, size_t len);
/* Copy `error.status` and `error.message` of a google.rpc error body into
 * the buffers ("" when absent; truncated to fit).  For logs.  Any Google
 * API's error body has this shape: the Pub/Sub events backend uses it too. */
void sm_fs_error_text(const char *body, size_t len, char *status, size_t scap, char *msg,
                      size_t mcap);
/* Name of a class ("ALREADY_EXISTS"-style, for logs). */
const char *sm_fs_class_name(sm_fs_class_t c);

#endif
