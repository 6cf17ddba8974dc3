/*
 * Fuzz target: the frame codec of libsmproto (lib/proto/), the first thing
 * the server runs on every WebSocket message a peer sends.
 *
 * The input is one message.  Checked: sm_frame_decode never reads outside
 * the buffer and on success describes it exactly; a decoded frame encodes
 * back to the same bytes, both copying and in place over its own buffer
 * (the zero-copy reply pattern); sm_msg_check in both directions agrees with
 * the type table; a BINARY payload goes through sm_signal_bin_parse, and a
 * SIGNAL re-encoded with sm_signal_bin_encode_frame under its own id gives
 * the input back, under another id the same body.
 */
#include <stdbool.h>
#include <string.h>

#include <sm/proto.h>

#include "fuzz.h"

FUZZ_INITIALIZE_QUIET()

static void check_msg(const sm_frame_t *f)
{
    static const unsigned dirs[] = {SM_MSG_C2S, SM_MSG_S2C};
    const sm_msg_info_t *info = sm_msg_info(f->type);
    for (size_t i = 0; i < 2; i++) {
        int rc = sm_msg_check(f->type, f->payload_type, dirs[i]);
        if (info == NULL) {
            FUZZ_CHECK(rc == SM_PROTO_ETYPE);
            FUZZ_CHECK(strcmp(sm_msg_type_name(f->type), "UNKNOWN") == 0);
            continue;
        }
        FUZZ_CHECK(info->value == f->type);
        FUZZ_CHECK(sm_msg_info_at(info->index) == info);
        FUZZ_CHECK(strlen(info->name) == info->name_len);
        bool dir_ok = (info->dir & dirs[i]) != 0;
        bool pl_ok = (info->payloads & SM_PAYLOAD_BIT(f->payload_type)) != 0;
        if (!dir_ok)
            FUZZ_CHECK(rc == SM_PROTO_EDIRECTION);
        else if (!pl_ok)
            FUZZ_CHECK(rc == SM_PROTO_EPAYLOADNOTALLOWED);
        else
            FUZZ_CHECK(rc == SM_PROTO_OK);
    }
}

static void check_signal_bin(const uint8_t *data, size_t size, const sm_frame_t *f)
{
    sm_signal_bin_t sb;
    int rc = sm_signal_bin_parse(f->payload, f->length, &sb);
    if (rc != SM_PROTO_OK) {
        FUZZ_CHECK(rc == SM_PROTO_ESIGNALPREFIX || rc == SM_PROTO_EID);
        return;
    }
    const uint8_t *end = f->payload + f->length;
    FUZZ_CHECK(sb.client_id == (const char *)f->payload + 1);
    FUZZ_CHECK(sb.client_id_len >= 1 && sb.client_id_len <= SM_PROTO_ID_MAX);
    FUZZ_CHECK(sm_proto_id_valid(sb.client_id, sb.client_id_len));
    FUZZ_CHECK(sb.body == (const uint8_t *)sb.client_id + sb.client_id_len);
    FUZZ_CHECK(sb.body + sb.body_len == end);
    if (f->type != SM_MSG_SIGNAL)
        return;

    /* Relay under the same id: the input again. */
    size_t cap = size + SM_PROTO_ID_MAX;
    uint8_t *out = malloc(cap);
    FUZZ_CHECK(out != NULL);
    size_t w = 0;
    rc = sm_signal_bin_encode_frame(out, cap, f->uuid, sb.client_id, sb.client_id_len, sb.body,
                                    sb.body_len, &w);
    FUZZ_CHECK(rc == SM_PROTO_OK);
    FUZZ_CHECK(w == size && memcmp(out, data, size) == 0);

    /* Relay under a sender id of another length: same uuid and body. */
    static const char from[] = "sender.x@example:1";
    rc = sm_signal_bin_encode_frame(out, cap, f->uuid, from, sizeof from - 1, sb.body, sb.body_len,
                                    &w);
    if (sb.body_len > SM_PROTO_MAX_PAYLOAD - sizeof from) {
        FUZZ_CHECK(rc == SM_PROTO_ETOOBIG);
    } else {
        FUZZ_CHECK(rc == SM_PROTO_OK);
        sm_frame_t g;
        sm_signal_bin_t sb2;
        FUZZ_CHECK(sm_frame_decode(out, w, &g) == SM_PROTO_OK);
        FUZZ_CHECK(g.type == SM_MSG_SIGNAL && g.payload_type == SM_PAYLOAD_BINARY);
        FUZZ_CHECK(memcmp(g.uuid, f->uuid, SM_PROTO_UUID_SIZE) == 0);
        FUZZ_CHECK(sm_signal_bin_parse(g.payload, g.length, &sb2) == SM_PROTO_OK);
        FUZZ_CHECK(sb2.client_id_len == sizeof from - 1);
        FUZZ_CHECK(memcmp(sb2.client_id, from, sizeof from - 1) == 0);
        FUZZ_CHECK(sb2.body_len == sb.body_len);
        FUZZ_CHECK(sb.body_len == 0 || memcmp(sb2.body, sb.body, sb.body_len) == 0);
    }
    /* Too small a buffer: an error, nothing written past cap. */
    if (size > SM_PROTO_HEADER_SIZE) {
        rc = sm_signal_bin_encode_frame(out, size - 1, f->uuid, sb.client_id, sb.client_id_len,
                                        sb.body, sb.body_len, &w);
        FUZZ_CHECK(rc == SM_PROTO_ENOSPACE);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sm_frame_t f;
    memset(&f, 0, sizeof f);
    int rc = sm_frame_decode(size ? data : NULL, size, &f);
    FUZZ_CHECK(fuzz_printable(sm_proto_strerror(rc)));
    FUZZ_CHECK(strcmp(sm_proto_strerror(rc), "unknown error") != 0);
    if (rc != SM_PROTO_OK) {
        FUZZ_CHECK(rc == SM_PROTO_ESHORT || rc == SM_PROTO_ESTART || rc == SM_PROTO_ELENGTH ||
                   rc == SM_PROTO_EPAYLOADTYPE || rc == SM_PROTO_ENONELENGTH);
        if (rc != SM_PROTO_ESHORT && rc != SM_PROTO_ESTART) {
            /* The uuid and type are there to echo in the ERROR reply. */
            FUZZ_CHECK(f.type == data[1]);
            FUZZ_CHECK(memcmp(f.uuid, data + 2, SM_PROTO_UUID_SIZE) == 0);
        }
        return 0;
    }

    /* The decoded frame describes the buffer exactly. */
    FUZZ_CHECK(size >= SM_PROTO_HEADER_SIZE && data[0] == SM_PROTO_START);
    FUZZ_CHECK(f.payload_type <= SM_PAYLOAD_JSON);
    FUZZ_CHECK(strcmp(sm_payload_type_name(f.payload_type), "UNKNOWN") != 0);
    FUZZ_CHECK((size_t)f.length + SM_PROTO_HEADER_SIZE == size);
    FUZZ_CHECK(f.length ? f.payload == data + SM_PROTO_HEADER_SIZE : f.payload == NULL);
    FUZZ_CHECK(f.payload_type != SM_PAYLOAD_NONE || f.length == 0);
    FUZZ_CHECK(f.type == data[1] && memcmp(f.uuid, data + 2, SM_PROTO_UUID_SIZE) == 0);
    check_msg(&f);

    /* Round trip into a fresh buffer. */
    uint8_t *out = malloc(size);
    FUZZ_CHECK(out != NULL);
    size_t w = 0;
    rc = sm_frame_encode(out, size, f.type, f.uuid, f.payload_type, f.payload, f.length, &w);
    FUZZ_CHECK(rc == SM_PROTO_OK);
    FUZZ_CHECK(w == size && memcmp(out, data, size) == 0);
    if (size > SM_PROTO_HEADER_SIZE) {
        /* One byte short: refused, nothing written. */
        memset(out, 0x5a, size);
        rc =
            sm_frame_encode(out, size - 1, f.type, f.uuid, f.payload_type, f.payload, f.length, &w);
        FUZZ_CHECK(rc == SM_PROTO_ENOSPACE);
        for (size_t i = 0; i < size; i++)
            FUZZ_CHECK(out[i] == 0x5a);
    }

    /* Round trip in place: payload already in position, uuid read from the
     * buffer being overwritten. */
    memcpy(out, data, size);
    memset(out, 0, 2);
    rc = sm_frame_encode(out, size, f.type, out + 2, f.payload_type,
                         f.length ? out + SM_PROTO_HEADER_SIZE : NULL, f.length, &w);
    FUZZ_CHECK(rc == SM_PROTO_OK);
    FUZZ_CHECK(w == size && memcmp(out, data, size) == 0);
    free(out);

    if (f.payload_type == SM_PAYLOAD_BINARY)
        check_signal_bin(data, size, &f);
    else if (f.length > 0)
        (void)sm_proto_id_valid((const char *)f.payload, f.length);
    return 0;
}
