/*
 * Signal Manager wire protocol: frame codec, message-type table, binary SIGNAL
 * prefix and identifier checks.  The public contract of libsmproto (lib/proto/),
 * shared by the server, the unit tests, the fuzzers and signal-bench.  Nothing
 * here includes or depends on the server (src/).
 *
 * Frame (DECISIONS §1), one WebSocket binary message = exactly one frame:
 *
 *     offset  size  field
 *          0     1  start byte, always 0xAA
 *          1     1  message type (sm_msg_type_t)
 *          2    16  uuid (raw bytes)
 *         18     1  payload type (sm_payload_type_t)
 *         19     2  payload length, big-endian, == bytes after the header
 *         21     n  payload
 *
 * Ownership: nothing in this library allocates.  Decoders return pointers into
 * the caller's buffer (borrowed: valid while the caller keeps that buffer);
 * encoders write into caller buffers.  No global mutable state: every function
 * is pure and may be called from any thread.
 *
 * Errors: functions return int, SM_PROTO_OK (0) on success or a negative
 * SM_PROTO_E* code (table below).  Every frame-level error maps to protocol
 * ERROR 400 in the server; sm_proto_strerror() gives a message fit to send to
 * the peer (printable ASCII, no peer data).
 */
#ifndef SM_SM_PROTO_H
#define SM_SM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol version spoken by this library.  The numeric parts and the text
 * must agree (a unit test checks it). */
#define SM_PROTO_VERSION "1.0.0"
#define SM_PROTO_VERSION_MAJOR 1u
#define SM_PROTO_VERSION_MINOR 0u
#define SM_PROTO_VERSION_PATCH 0u

#define SM_PROTO_START 0xAA
#define SM_PROTO_HEADER_SIZE 21
#define SM_PROTO_UUID_SIZE 16
/* Largest payload the u16 length field can carry. */
#define SM_PROTO_MAX_PAYLOAD 65535u
/* Largest whole frame: header + largest payload. */
#define SM_PROTO_MAX_FRAME (SM_PROTO_HEADER_SIZE + SM_PROTO_MAX_PAYLOAD)
/* client_id, room_id, target_client_id: 1..128 chars of [A-Za-z0-9._:@-]. */
#define SM_PROTO_ID_MAX 128

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/*      name                       value  message (sent to peers as-is) */
#define SM_PROTO_ERR_MAP(X)                                                                        \
    X(SM_PROTO_ESHORT, -1, "frame shorter than the 21-byte header")                                \
    X(SM_PROTO_ESTART, -2, "bad start byte (expected 0xAA)")                                       \
    X(SM_PROTO_ELENGTH, -3, "payload length does not match the bytes after the header")            \
    X(SM_PROTO_EPAYLOADTYPE, -4, "unknown payload type")                                           \
    X(SM_PROTO_ENONELENGTH, -5, "payload type NONE with a non-zero length")                        \
    X(SM_PROTO_ETYPE, -6, "unknown message type")                                                  \
    X(SM_PROTO_EDIRECTION, -7, "message type not allowed in this direction")                       \
    X(SM_PROTO_EPAYLOADNOTALLOWED, -8, "payload type not allowed for this message type")           \
    X(SM_PROTO_ETOOBIG, -9, "payload longer than 65535 bytes")                                     \
    X(SM_PROTO_ENOSPACE, -10, "output buffer too small")                                           \
    X(SM_PROTO_ESIGNALPREFIX, -11, "binary SIGNAL payload: missing or truncated client id prefix") \
    X(SM_PROTO_EID, -12, "client id must be 1-128 characters of [A-Za-z0-9._:@-]")                 \
    X(SM_PROTO_EUUID, -13, "malformed uuid text (expected 8-4-4-4-12 hex digits)")                 \
    X(SM_PROTO_ERANDOM, -14, "the OS random number generator failed")                              \
    X(SM_PROTO_EINVAL, -15, "invalid argument")

enum sm_proto_err {
    SM_PROTO_OK = 0,
#define SM__PROTO_ERR_ENUM(name, value, msg) name = value,
    SM_PROTO_ERR_MAP(SM__PROTO_ERR_ENUM)
#undef SM__PROTO_ERR_ENUM
};

/* Message for an SM_PROTO_E* code ("ok" for 0, "unknown error" otherwise).
 * Never NULL; static storage. */
const char *sm_proto_strerror(int err);
/* Symbolic name, e.g. "SM_PROTO_ESHORT".  Never NULL; static storage. */
const char *sm_proto_errname(int err);

/* ------------------------------------------------------------------------ */
/* Payload types                                                             */

typedef enum sm_payload_type {
    SM_PAYLOAD_NONE = 0x00,   /* no payload: length must be 0 */
    SM_PAYLOAD_BINARY = 0x01, /* opaque bytes; only valid on SIGNAL */
    SM_PAYLOAD_JSON = 0x02,   /* one UTF-8 JSON object */
} sm_payload_type_t;

/* Bit for a payload type in a message type's allowed-payload mask. */
#define SM_PAYLOAD_BIT(t) (1u << (t))
#define SM_PL_NONE SM_PAYLOAD_BIT(SM_PAYLOAD_NONE)
#define SM_PL_BINARY SM_PAYLOAD_BIT(SM_PAYLOAD_BINARY)
#define SM_PL_JSON SM_PAYLOAD_BIT(SM_PAYLOAD_JSON)

/* "NONE", "BINARY", "JSON", or "UNKNOWN".  Never NULL; static storage. */
const char *sm_payload_type_name(uint8_t payload_type);

/* ------------------------------------------------------------------------ */
/* Message types (DECISIONS §2)                                              */

/* Direction flags. */
#define SM_MSG_C2S 0x01u /* a client may send it */
#define SM_MSG_S2C 0x02u /* the server may send it */
#define SM_MSG_BOTH (SM_MSG_C2S | SM_MSG_S2C)

/*      name                value  direction    allowed payload types */
#define SM_MSG_TYPE_MAP(X)                                                                         \
    X(CONNECT, 0x01, SM_MSG_C2S, SM_PL_JSON)                                                       \
    X(CONNECT_ACK, 0x02, SM_MSG_S2C, SM_PL_JSON)                                                   \
    X(DISCONNECT, 0x03, SM_MSG_BOTH, SM_PL_NONE | SM_PL_JSON)                                      \
    X(PING, 0x04, SM_MSG_C2S, SM_PL_JSON)                                                          \
    X(PING_ACK, 0x05, SM_MSG_S2C, SM_PL_JSON)                                                      \
    X(REGISTER, 0x20, SM_MSG_C2S, SM_PL_JSON)                                                      \
    X(REGISTER_ACK, 0x21, SM_MSG_S2C, SM_PL_JSON)                                                  \
    X(UNREGISTER, 0x22, SM_MSG_C2S, SM_PL_JSON)                                                    \
    X(UNREGISTER_ACK, 0x23, SM_MSG_S2C, SM_PL_JSON)                                                \
    X(ROOM_CREATE, 0x30, SM_MSG_C2S, SM_PL_JSON)                                                   \
    X(ROOM_CREATE_ACK, 0x31, SM_MSG_S2C, SM_PL_JSON)                                               \
    X(ROOM_JOIN, 0x32, SM_MSG_C2S, SM_PL_JSON)                                                     \
    X(ROOM_JOIN_ACK, 0x33, SM_MSG_S2C, SM_PL_JSON)                                                 \
    X(ROOM_LEAVE, 0x34, SM_MSG_C2S, SM_PL_JSON)                                                    \
    X(ROOM_LEAVE_ACK, 0x35, SM_MSG_S2C, SM_PL_JSON)                                                \
    X(ROOM_EVENT, 0x36, SM_MSG_S2C, SM_PL_JSON)                                                    \
    X(SIGNAL, 0x40, SM_MSG_BOTH, SM_PL_JSON | SM_PL_BINARY)                                        \
    X(SESSION_UPDATE, 0x42, SM_MSG_C2S, SM_PL_JSON)                                                \
    X(SESSION_UPDATE_ACK, 0x43, SM_MSG_S2C, SM_PL_JSON)                                            \
    X(ERROR, 0xFF, SM_MSG_S2C, SM_PL_JSON)

typedef enum sm_msg_type {
#define SM__MSG_ENUM(name, value, dir, payloads) SM_MSG_##name = value,
    SM_MSG_TYPE_MAP(SM__MSG_ENUM)
#undef SM__MSG_ENUM
} sm_msg_type_t;

/* Dense indexes 0..SM_MSG_TYPE_COUNT-1 in table order, for per-type arrays
 * (metrics counters). */
enum {
#define SM__MSG_IDX(name, value, dir, payloads) SM_MSG_IDX_##name,
    SM_MSG_TYPE_MAP(SM__MSG_IDX)
#undef SM__MSG_IDX
        SM_MSG_TYPE_COUNT
};

typedef struct sm_msg_info_s {
    const char *name; /* "PING_ACK" */
    uint8_t name_len; /* strlen(name), so callers never strlen */
    uint8_t value;    /* wire value */
    uint8_t index;    /* dense index, < SM_MSG_TYPE_COUNT */
    uint8_t dir;      /* SM_MSG_C2S | SM_MSG_S2C */
    uint8_t payloads; /* SM_PL_* mask of allowed payload types */
} sm_msg_info_t;

/* Table entry for a wire type value: O(1) (256-entry table).  NULL for values
 * that are not message types.  The result is static and immutable. */
const sm_msg_info_t *sm_msg_info(uint8_t type);
/* Entry by dense index (0..SM_MSG_TYPE_COUNT-1); NULL when out of range. */
const sm_msg_info_t *sm_msg_info_at(size_t index);
/* Name of a wire type ("PING"), or "UNKNOWN".  Never NULL; static storage. */
const char *sm_msg_type_name(uint8_t type);

/*
 * Check that `type` is a known message type, that it may travel in direction
 * `dir` (SM_MSG_C2S for frames received by the server, SM_MSG_S2C for frames
 * received by a client), and that `payload_type` is allowed for it.
 * Returns SM_PROTO_OK, SM_PROTO_ETYPE (unknown value), SM_PROTO_EDIRECTION
 * (e.g. a client sending CONNECT_ACK), SM_PROTO_EPAYLOADNOTALLOWED (e.g. BINARY
 * on PING), or SM_PROTO_EINVAL when dir is neither flag.  The checks run in that
 * order.  Payload-type values outside 0..2 give SM_PROTO_EPAYLOADNOTALLOWED;
 * sm_frame_decode() already rejects those with SM_PROTO_EPAYLOADTYPE.
 */
int sm_msg_check(uint8_t type, uint8_t payload_type, unsigned dir);

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */

/* A decoded frame.  The header fields are copied (uuid included: 16 bytes);
 * `payload` points into the decoded buffer (borrowed) and is NULL when
 * `length` is 0. */
typedef struct sm_frame_s {
    uint8_t type;         /* wire value; may be unknown: see sm_msg_check() */
    uint8_t payload_type; /* always 0, 1 or 2 after a successful decode */
    uint16_t length;      /* payload bytes */
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    const uint8_t *payload;
} sm_frame_t;

/* Bytes a frame with a payload of payload_len bytes takes on the wire. */
static inline size_t sm_frame_size(size_t payload_len)
{
    return SM_PROTO_HEADER_SIZE + payload_len;
}

/*
 * Decode one complete message (one WebSocket binary message) of `len` bytes.
 * Does not copy the payload and does not allocate.  Checks, in order:
 *   len < 21                              SM_PROTO_ESHORT
 *   buf[0] != 0xAA                        SM_PROTO_ESTART
 *   length field != len - 21              SM_PROTO_ELENGTH
 *   payload type not NONE/BINARY/JSON     SM_PROTO_EPAYLOADTYPE
 *   NONE with a non-zero length           SM_PROTO_ENONELENGTH
 * It does not check the message type: call sm_msg_check() next.  On error
 * `*out` is unspecified except that, once the header is long enough and the
 * start byte is right (any error after SM_PROTO_ESTART), out->type and out->uuid
 * are filled so the server can echo the uuid in its ERROR reply.
 * buf may be NULL only when len is 0 (then SM_PROTO_ESHORT); out must not be NULL.
 */
int sm_frame_decode(const uint8_t *buf, size_t len, sm_frame_t *out);

/*
 * Write a 21-byte header into `out` (which must hold SM_PROTO_HEADER_SIZE
 * bytes).  `uuid` must point to 16 bytes.  Returns SM_PROTO_OK,
 * SM_PROTO_ETOOBIG (payload_len > 65535), SM_PROTO_EPAYLOADTYPE (not 0..2) or
 * SM_PROTO_ENONELENGTH (NONE with payload_len > 0); `out` is untouched on error.
 * The message type is not checked (encoders may send anything, e.g. in tests).
 */
int sm_frame_encode_header(uint8_t *out, uint8_t type, const uint8_t *uuid, uint8_t payload_type,
                           size_t payload_len);

/*
 * Encode a whole frame, header then payload, into `out` of `cap` bytes.
 * `payload` may be NULL when payload_len is 0, and may overlap `out`: the
 * usual zero-copy pattern is to build the payload at out + SM_PROTO_HEADER_SIZE
 * first and pass that pointer (then nothing is copied).  `uuid` may also point
 * into `out` (e.g. a reply written over the request it echoes).  On success
 * stores the frame size in *written (if not NULL) and returns SM_PROTO_OK.
 * Errors, checked in this order: those of sm_frame_encode_header(),
 * SM_PROTO_ENOSPACE when cap < 21 + payload_len, SM_PROTO_EINVAL when payload
 * is NULL with payload_len > 0.  Nothing is written on error.
 */
int sm_frame_encode(uint8_t *out, size_t cap, uint8_t type, const uint8_t *uuid,
                    uint8_t payload_type, const void *payload, size_t payload_len, size_t *written);

/* ------------------------------------------------------------------------ */
/* Identifiers                                                               */

/* True when s[0..len) is a valid client_id / room_id / target_client_id:
 * 1..128 bytes, each in [A-Za-z0-9._:@-].  s may be NULL only when len is 0.
 * Table-driven, no strlen. */
bool sm_proto_id_valid(const char *s, size_t len);

/* ------------------------------------------------------------------------ */
/* BINARY SIGNAL payload (DECISIONS §6)                                      */

/*
 * A SIGNAL with a BINARY payload starts with `uint8 n` and n bytes of client
 * id: the target when a client sends it, the sender after the server rewrites
 * it.  The rest is the opaque body.
 */
typedef struct sm_signal_bin_s {
    const char *client_id; /* borrowed, NOT NUL-terminated */
    size_t client_id_len;  /* 1..128 */
    const uint8_t *body;   /* borrowed; points just past the id (valid even if body_len is 0) */
    size_t body_len;
} sm_signal_bin_t;

/*
 * Split a BINARY SIGNAL payload of `len` bytes.  Does not copy.
 * Returns SM_PROTO_OK; SM_PROTO_ESIGNALPREFIX when the payload is empty, the
 * id length byte is 0 or fewer than n id bytes follow; SM_PROTO_EID when the
 * id is longer than 128 or has a character outside [A-Za-z0-9._:@-].
 */
int sm_signal_bin_parse(const uint8_t *payload, size_t len, sm_signal_bin_t *out);

/* Bytes taken by the id prefix: 1 + id_len. */
static inline size_t sm_signal_bin_prefix_size(size_t id_len)
{
    return 1 + id_len;
}

/*
 * Write the prefix (`uint8 id_len` + id) into `out` of `cap` bytes and store
 * its size in *written (if not NULL).  Returns SM_PROTO_OK, SM_PROTO_EID (id
 * invalid, see sm_proto_id_valid()) or SM_PROTO_ENOSPACE.
 */
int sm_signal_bin_write_prefix(uint8_t *out, size_t cap, const char *id, size_t id_len,
                               size_t *written);

/*
 * Build the whole frame the server relays for a BINARY SIGNAL: header (type
 * SIGNAL, payload BINARY, `uuid`), then the prefix rewritten to `from_id`,
 * then `body`.  Neither `body` nor `uuid` may overlap `out`.  Stores the frame size in
 * *written (if not NULL).  Returns SM_PROTO_OK, SM_PROTO_EID, SM_PROTO_ETOOBIG
 * (the rewritten payload exceeds 65535 bytes: possible when the sender id is
 * longer than the target id it replaces), SM_PROTO_ENOSPACE, or SM_PROTO_EINVAL
 * (body NULL with body_len > 0), in that order.  Nothing is written on error.
 */
int sm_signal_bin_encode_frame(uint8_t *out, size_t cap, const uint8_t *uuid, const char *from_id,
                               size_t from_len, const uint8_t *body, size_t body_len,
                               size_t *written);

#endif
