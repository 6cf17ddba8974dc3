/*
 * Identifier checks and the BINARY SIGNAL prefix (DECISIONS §6).
 *
 * A binary SIGNAL payload is `uint8 n`, n bytes of client id, then the opaque
 * body.  The server reads the target from it and relays the frame with the
 * prefix rewritten to the sender: header, new prefix, body, written once into
 * the outgoing buffer.  Ids are checked against a 256-entry table of allowed
 * bytes, one load per byte.
 */
#include <sm/proto.h>

#include <string.h>

#define R2(c) [c] = 1, [c + 1] = 1
#define R5(c) R2(c), R2(c + 2), [c + 4] = 1
#define R10(c) R5(c), R5(c + 5)
#define R26(c) R10(c), R10(c + 10), R5(c + 20), [c + 25] = 1

/* [A-Za-z0-9._:@-] */
static const uint8_t id_char[256] = {
    R10('0'), R26('A'), R26('a'), ['.'] = 1, ['_'] = 1, [':'] = 1, ['@'] = 1, ['-'] = 1,
};

#undef R2
#undef R5
#undef R10
#undef R26

bool sm_proto_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > SM_PROTO_ID_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    unsigned bad = 0;
    /* No early exit: ids are short, and a branch-free loop is faster. */
    for (size_t i = 0; i < len; i++)
        bad |= id_char[p[i]] ^ 1u;
    return bad == 0;
}

int sm_signal_bin_parse(const uint8_t *payload, size_t len, sm_signal_bin_t *out)
{
    if (len == 0 || payload[0] == 0 || (size_t)payload[0] > len - 1)
        return SM_PROTO_ESIGNALPREFIX;
    size_t n = payload[0];
    if (!sm_proto_id_valid((const char *)payload + 1, n))
        return SM_PROTO_EID;
    out->client_id = (const char *)payload + 1;
    out->client_id_len = n;
    out->body = payload + 1 + n;
    out->body_len = len - 1 - n;
    return SM_PROTO_OK;
}

int sm_signal_bin_write_prefix(uint8_t *out, size_t cap, const char *id, size_t id_len,
                               size_t *written)
{
    if (!sm_proto_id_valid(id, id_len))
        return SM_PROTO_EID;
    if (cap < 1 + id_len)
        return SM_PROTO_ENOSPACE;
    out[0] = (uint8_t)id_len;
    memcpy(out + 1, id, id_len);
    if (written)
        *written = 1 + id_len;
    return SM_PROTO_OK;
}

int sm_signal_bin_encode_frame(uint8_t *out, size_t cap, const uint8_t *uuid, const char *from_id,
                               size_t from_len, const uint8_t *body, size_t body_len,
                               size_t *written)
{
    if (!sm_proto_id_valid(from_id, from_len))
        return SM_PROTO_EID;
    if (body_len > SM_PROTO_MAX_PAYLOAD - 1 - from_len)
        return SM_PROTO_ETOOBIG;
    size_t payload_len = 1 + from_len + body_len;
    if (cap < SM_PROTO_HEADER_SIZE + payload_len)
        return SM_PROTO_ENOSPACE;
    if (body_len != 0 && body == NULL)
        return SM_PROTO_EINVAL;

    int rc = sm_frame_encode_header(out, SM_MSG_SIGNAL, uuid, SM_PAYLOAD_BINARY, payload_len);
    if (rc != SM_PROTO_OK)
        return rc; /* cannot happen: length and type checked above */
    uint8_t *p = out + SM_PROTO_HEADER_SIZE;
    p[0] = (uint8_t)from_len;
    memcpy(p + 1, from_id, from_len);
    if (body_len)
        memcpy(p + 1 + from_len, body, body_len);
    if (written)
        *written = SM_PROTO_HEADER_SIZE + payload_len;
    return SM_PROTO_OK;
}
