/*
 * Frame codec: the 21-byte header (DECISIONS §1) and the library's error
 * table.  Decode and encode sit on the hot path of every message (PING,
 * SIGNAL relay), so they do no allocation and no copying of the payload: a
 * decode is a handful of compares and a 16-byte copy, an encode writes the
 * header in place and copies the payload only when the caller did not build
 * it where it belongs already.
 */
#include <sm/proto.h>

#include <string.h>

/* Header field offsets. */
enum {
    OFF_START = 0,
    OFF_TYPE = 1,
    OFF_UUID = 2,
    OFF_PAYLOAD_TYPE = 18,
    OFF_LENGTH = 19,
};

_Static_assert(OFF_LENGTH + 2 == SM_PROTO_HEADER_SIZE, "header layout");
_Static_assert(OFF_UUID + SM_PROTO_UUID_SIZE == OFF_PAYLOAD_TYPE, "header layout");

const char *sm_proto_strerror(int err)
{
    switch (err) {
    case SM_PROTO_OK:
        return "ok";
#define SM__PROTO_ERR_MSG(name, value, msg)                                                        \
    case name:                                                                                     \
        return msg;
        SM_PROTO_ERR_MAP(SM__PROTO_ERR_MSG)
#undef SM__PROTO_ERR_MSG
    }
    return "unknown error";
}

const char *sm_proto_errname(int err)
{
    switch (err) {
    case SM_PROTO_OK:
        return "SM_PROTO_OK";
#define SM__PROTO_ERR_NAME(name, value, msg)                                                       \
    case name:                                                                                     \
        return #name;
        SM_PROTO_ERR_MAP(SM__PROTO_ERR_NAME)
#undef SM__PROTO_ERR_NAME
    }
    return "SM_PROTO_E?";
}

const char *sm_payload_type_name(uint8_t payload_type)
{
    switch (payload_type) {
    case SM_PAYLOAD_NONE:
        return "NONE";
    case SM_PAYLOAD_BINARY:
        return "BINARY";
    case SM_PAYLOAD_JSON:
        return "JSON";
    }
    return "UNKNOWN";
}

int sm_frame_decode(const uint8_t *buf, size_t len, sm_frame_t *out)
{
    if (len < SM_PROTO_HEADER_SIZE)
        return SM_PROTO_ESHORT;
    if (buf[OFF_START] != SM_PROTO_START)
        return SM_PROTO_ESTART;

    /* Filled before the remaining checks so an ERROR reply can echo them. */
    out->type = buf[OFF_TYPE];
    memcpy(out->uuid, buf + OFF_UUID, SM_PROTO_UUID_SIZE);

    size_t length = ((size_t)buf[OFF_LENGTH] << 8) | buf[OFF_LENGTH + 1];
    if (length != len - SM_PROTO_HEADER_SIZE)
        return SM_PROTO_ELENGTH;

    uint8_t pt = buf[OFF_PAYLOAD_TYPE];
    if (pt > SM_PAYLOAD_JSON)
        return SM_PROTO_EPAYLOADTYPE;
    if (pt == SM_PAYLOAD_NONE && length != 0)
        return SM_PROTO_ENONELENGTH;

    out->payload_type = pt;
    out->length = (uint16_t)length;
    out->payload = length ? buf + SM_PROTO_HEADER_SIZE : NULL;
    return SM_PROTO_OK;
}

int sm_frame_encode_header(uint8_t *out, uint8_t type, const uint8_t *uuid, uint8_t payload_type,
                           size_t payload_len)
{
    if (payload_len > SM_PROTO_MAX_PAYLOAD)
        return SM_PROTO_ETOOBIG;
    if (payload_type > SM_PAYLOAD_JSON)
        return SM_PROTO_EPAYLOADTYPE;
    if (payload_type == SM_PAYLOAD_NONE && payload_len != 0)
        return SM_PROTO_ENONELENGTH;

    out[OFF_START] = SM_PROTO_START;
    out[OFF_TYPE] = type;
    memcpy(out + OFF_UUID, uuid, SM_PROTO_UUID_SIZE);
    out[OFF_PAYLOAD_TYPE] = payload_type;
    out[OFF_LENGTH] = (uint8_t)(payload_len >> 8);
    out[OFF_LENGTH + 1] = (uint8_t)payload_len;
    return SM_PROTO_OK;
}

int sm_frame_encode(uint8_t *out, size_t cap, uint8_t type, const uint8_t *uuid,
                    uint8_t payload_type, const void *payload, size_t payload_len, size_t *written)
{
    /* The header goes to a stack copy first: `uuid` and `payload` may point
     * into `out` (a reply built in the request's buffer, echoing its uuid), so
     * the payload is moved before the header overwrites anything. */
    uint8_t hdr[SM_PROTO_HEADER_SIZE];
    int rc = sm_frame_encode_header(hdr, type, uuid, payload_type, payload_len);
    if (rc != SM_PROTO_OK)
        return rc;
    if (cap < SM_PROTO_HEADER_SIZE || cap - SM_PROTO_HEADER_SIZE < payload_len)
        return SM_PROTO_ENOSPACE;
    if (payload_len != 0 && payload == NULL)
        return SM_PROTO_EINVAL;

    uint8_t *dst = out + SM_PROTO_HEADER_SIZE;
    if (payload_len != 0 && (const uint8_t *)payload != dst)
        memmove(dst, payload, payload_len);
    memcpy(out, hdr, SM_PROTO_HEADER_SIZE);
    if (written)
        *written = SM_PROTO_HEADER_SIZE + payload_len;
    return SM_PROTO_OK;
}
