/*
 * JSON payload checks, one validator per client-to-server message type
 * (DECISIONS §3 field rules, §6 rooms and SIGNAL).
 *
 * Flow for a JSON frame: sm_payload_load() turns the payload bytes into a
 * jansson object (the caller owns it), then sm_payload_validate_<type>() checks
 * the fields and fills a typed struct whose pointers are BORROWED from that
 * object: they stay valid while the caller holds its reference to the root
 * and does not modify the tree.  A caller that keeps a value past that (e.g.
 * metadata handed to the store) takes its own reference (json_incref) or a
 * copy.
 *
 * Rules: the root is a JSON object; required fields are present with the
 * right JSON type; client_id, room_id, target_client_id (and session_id of
 * SESSION_UPDATE) are 1..128 chars of [A-Za-z0-9._:@-]; capabilities is an
 * array of strings; metadata an object; version is MAJOR.MINOR.PATCH in
 * decimal and at most SM_PROTO_VERSION, compared numerically.  Unknown fields
 * are ignored.  An OPTIONAL field whose value is JSON null is treated as
 * absent (REGISTER's `room_id: null` in the source document is one case); a
 * REQUIRED field that is null has the wrong type.  Checks run in the order the
 * fields are listed for each type below; the first failure is reported.
 *
 * Failure: every validator returns SM_EINVAL and fills *err (when err is not
 * NULL) with code 400, the field's name (e.g. "client_id", "payload",
 * "metadata.max_participants") and a message that starts with that name, e.g.
 * "client_id: required field missing".  Messages are printable ASCII and never
 * contain peer bytes other than an already-validated version string, so they
 * can go into an ERROR reply as they are.  On success *err is untouched.
 *
 * Owns nothing; no global state; any thread (each call works on its own tree).
 */
#ifndef SM_PROTO_PAYLOAD_H
#define SM_PROTO_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <sm/proto.h>

/* Deepest JSON nesting accepted (the root object is level 1).  Real payloads
 * use 3 or 4 levels (metadata objects, track lists); 32 leaves room for
 * application data in SIGNAL while bounding jansson's recursive parser. */
#define SM_PAYLOAD_MAX_DEPTH 32
/* SIGNAL `type`: at most this many characters (UTF-8 code points). */
#define SM_PAYLOAD_SIGNAL_TYPE_MAX 64

typedef struct sm_payload_err_s {
    int code;          /* protocol ERROR code: 400 */
    char field[40];    /* offending field, NUL-terminated */
    char message[200]; /* "<field>: <what is wrong>", NUL-terminated */
} sm_payload_err_t;

/* A borrowed JSON string: ptr is NUL-terminated (jansson rejects embedded
 * NULs), len == strlen(ptr).  {NULL, 0} when an optional field is absent. */
typedef struct sm_payload_str_s {
    const char *ptr;
    size_t len;
} sm_payload_str_t;

/* Fields below: required unless marked "opt"; json_t pointers are NULL when
 * absent. */

typedef struct sm_payload_connect_s {
    sm_payload_str_t client_id;    /* id pattern */
    sm_payload_str_t auth_token;   /* any string (auth decides) */
    sm_payload_str_t version;      /* semver <= SM_PROTO_VERSION */
    json_t *capabilities;          /* opt: array of strings */
    json_t *metadata;              /* opt: object */
    sm_payload_str_t resume_token; /* opt: string (DECISIONS §3 resume) */
} sm_payload_connect_t;

typedef struct sm_payload_disconnect_s {
    sm_payload_str_t reason; /* opt: string */
} sm_payload_disconnect_t;

typedef struct sm_payload_ping_s {
    json_t *timestamp; /* a JSON number (integer or real); echo it as is */
} sm_payload_ping_t;

typedef struct sm_payload_register_s {
    sm_payload_str_t version;
    sm_payload_str_t client_id;
    sm_payload_str_t auth_token;
    sm_payload_str_t room_id; /* opt: id pattern; null = absent */
    json_t *capabilities;     /* opt */
    json_t *metadata;         /* opt */
} sm_payload_register_t;

typedef struct sm_payload_unregister_s {
    sm_payload_str_t version;
    sm_payload_str_t client_id;
    sm_payload_str_t auth_token;
} sm_payload_unregister_t;

typedef struct sm_payload_room_create_s {
    sm_payload_str_t version;
    sm_payload_str_t client_id;
    sm_payload_str_t auth_token; /* opt */
    sm_payload_str_t room_id;    /* opt: id pattern (server picks one if absent) */
    sm_payload_str_t offer_sdp;  /* opt: string (required by the SFU mode, not here) */
    json_t *capabilities;        /* opt */
    json_t *metadata;            /* opt */
    /* metadata.max_participants when given: an integer >= 2 (the upper bound,
     * webrtc.max_participants, is the rooms module's check); 0 when absent. */
    int64_t max_participants;
} sm_payload_room_create_t;

typedef struct sm_payload_room_join_s {
    sm_payload_str_t version;
    sm_payload_str_t client_id;
    sm_payload_str_t auth_token; /* opt */
    sm_payload_str_t room_id;
    json_t *metadata;           /* opt */
    sm_payload_str_t offer_sdp; /* opt */
} sm_payload_room_join_t;

typedef struct sm_payload_room_leave_s {
    sm_payload_str_t version;
    sm_payload_str_t client_id;
    sm_payload_str_t auth_token; /* opt */
    sm_payload_str_t room_id;
} sm_payload_room_leave_t;

typedef struct sm_payload_signal_s {
    sm_payload_str_t target_client_id; /* id pattern */
    sm_payload_str_t type;             /* 1..64 characters */
    sm_payload_str_t room_id;          /* opt: id pattern */
    json_t *data;                      /* required, any JSON value, may be JSON null */
} sm_payload_signal_t;

typedef enum sm_payload_action {
    SM_PAYLOAD_ACTION_ANSWER = 1,
    SM_PAYLOAD_ACTION_PULL = 2,
    SM_PAYLOAD_ACTION_CLOSE = 3,
} sm_payload_action_t;

typedef struct sm_payload_session_update_s {
    sm_payload_str_t session_id; /* id pattern */
    sm_payload_action_t action;  /* from "answer" | "pull" | "close" */
    sm_payload_str_t answer_sdp; /* string; required for answer, opt otherwise */
    json_t *tracks;              /* non-empty array of objects; required for pull */
    json_t *mids;                /* non-empty array of strings; required for close */
} sm_payload_session_update_t;

typedef union sm_payload_any_u {
    sm_payload_connect_t connect;
    sm_payload_disconnect_t disconnect;
    sm_payload_ping_t ping;
    sm_payload_register_t reg;
    sm_payload_unregister_t unreg;
    sm_payload_room_create_t room_create;
    sm_payload_room_join_t room_join;
    sm_payload_room_leave_t room_leave;
    sm_payload_signal_t signal;
    sm_payload_session_update_t session_update;
} sm_payload_any_t;

/*
 * Parse `len` bytes of a JSON payload (data may be NULL when len is 0) into a
 * new object.  Rejects: an empty payload, nesting deeper than
 * SM_PAYLOAD_MAX_DEPTH, invalid JSON or UTF-8, duplicate object keys, trailing
 * bytes, and a root that is not an object.  On success returns 0 and stores a
 * new reference in *out, which the caller must json_decref().  On failure
 * returns SM_EINVAL, sets *out to NULL and fills *err with field "payload" and
 * a message such as "payload: invalid JSON at line 1 column 9: ..." or
 * "payload: must be a JSON object".
 */
int sm_payload_load(const void *data, size_t len, json_t **out, sm_payload_err_t *err);

/*
 * Parse decimal "MAJOR.MINOR.PATCH" (exactly three non-empty runs of digits,
 * each <= UINT32_MAX, nothing else) from s[0..len).  Returns 0 and fills
 * out[0..3), or SM_EINVAL (out untouched).
 */
int sm_payload_semver_parse(const char *s, size_t len, uint32_t *out);

/*
 * The validators.  `root` is the object from sm_payload_load() (any JSON
 * value is accepted and a non-object is reported as "payload: must be a JSON
 * object"); `out` is filled on success only.  Return 0 or SM_EINVAL (see the
 * top of this file).  Field order of checks = order of the struct members.
 *
 * DISCONNECT: a NONE payload has no JSON; callers skip validation for it (or
 * pass root == NULL, which this one accepts as "no fields").
 */
int sm_payload_validate_connect(const json_t *root, sm_payload_connect_t *out,
                                sm_payload_err_t *err);
int sm_payload_validate_disconnect(const json_t *root, sm_payload_disconnect_t *out,
                                   sm_payload_err_t *err);
int sm_payload_validate_ping(const json_t *root, sm_payload_ping_t *out, sm_payload_err_t *err);

/*
 * PING fast path (no jansson tree): true when data[0..len) is exactly a JSON
 * object with the one member "timestamp" holding an integer of at most 18
 * digits (always within int64), JSON whitespace allowed between tokens; *ts
 * then points at the integer's bytes inside data.  Anything else (other
 * members, fractions, exponents, duplicates, invalid JSON) returns false and
 * the caller takes the general path (sm_payload_load + validate_ping), which
 * accepts or rejects it with its usual messages: the fast path never decides
 * a rejection.  Any thread.
 */
bool sm_payload_ping_fast(const void *data, size_t len, sm_payload_str_t *ts);
int sm_payload_validate_register(const json_t *root, sm_payload_register_t *out,
                                 sm_payload_err_t *err);
int sm_payload_validate_unregister(const json_t *root, sm_payload_unregister_t *out,
                                   sm_payload_err_t *err);
int sm_payload_validate_room_create(const json_t *root, sm_payload_room_create_t *out,
                                    sm_payload_err_t *err);
int sm_payload_validate_room_join(const json_t *root, sm_payload_room_join_t *out,
                                  sm_payload_err_t *err);
int sm_payload_validate_room_leave(const json_t *root, sm_payload_room_leave_t *out,
                                   sm_payload_err_t *err);
int sm_payload_validate_signal(const json_t *root, sm_payload_signal_t *out, sm_payload_err_t *err);
int sm_payload_validate_session_update(const json_t *root, sm_payload_session_update_t *out,
                                       sm_payload_err_t *err);

/*
 * Dispatch on a wire message type to the validator above (fills the matching
 * union member).  Types without a validator (server-to-client types, unknown
 * values) return SM_EINVAL with field "type"; the router rejects those before
 * this with sm_msg_check(), so that is a fallback for fuzzers and tests.
 */
int sm_payload_validate(uint8_t type, const json_t *root, sm_payload_any_t *out,
                        sm_payload_err_t *err);

#endif
