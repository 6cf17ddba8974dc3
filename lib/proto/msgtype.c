/*
 * Message-type table: for each wire value its name, the directions it may
 * travel and the payload types it may carry.  Every received frame is looked
 * up here, so the table is indexed by the wire byte itself (256 entries, one
 * load) rather than searched; unknown values are entries with a NULL name.
 * Both tables are generated from SM_MSG_TYPE_MAP in <sm/proto.h>, the single
 * place a type is declared.
 */
#include <sm/proto.h>

#include <stddef.h>

#define ENTRY(n, v, d, p)                                                                          \
    {                                                                                              \
        .name = #n, .name_len = (uint8_t)(sizeof(#n) - 1), .value = (v),                           \
        .index = (uint8_t)SM_MSG_IDX_##n, .dir = (uint8_t)(d), .payloads = (uint8_t)(p),           \
    }

/* Dense table, in map order. */
static const sm_msg_info_t by_index[SM_MSG_TYPE_COUNT] = {
#define SM__MSG_DENSE(n, v, d, p) [SM_MSG_IDX_##n] = ENTRY(n, v, d, p),
    SM_MSG_TYPE_MAP(SM__MSG_DENSE)
#undef SM__MSG_DENSE
};

/* Wire value -> entry.  A duplicate value in the map is a compile error with
 * our flags (-Wextra enables -Woverride-init); a unit test checks it too. */
static const sm_msg_info_t *const by_value[256] = {
#define SM__MSG_SPARSE(n, v, d, p) [v] = &by_index[SM_MSG_IDX_##n],
    SM_MSG_TYPE_MAP(SM__MSG_SPARSE)
#undef SM__MSG_SPARSE
};

const sm_msg_info_t *sm_msg_info(uint8_t type)
{
    return by_value[type];
}

const sm_msg_info_t *sm_msg_info_at(size_t index)
{
    return index < SM_MSG_TYPE_COUNT ? &by_index[index] : NULL;
}

const char *sm_msg_type_name(uint8_t type)
{
    const sm_msg_info_t *mi = by_value[type];
    return mi ? mi->name : "UNKNOWN";
}

int sm_msg_check(uint8_t type, uint8_t payload_type, unsigned dir)
{
    if (dir != SM_MSG_C2S && dir != SM_MSG_S2C)
        return SM_PROTO_EINVAL;
    const sm_msg_info_t *mi = by_value[type];
    if (mi == NULL)
        return SM_PROTO_ETYPE;
    if (!(mi->dir & dir))
        return SM_PROTO_EDIRECTION;
    if (payload_type > SM_PAYLOAD_JSON || !(mi->payloads & SM_PAYLOAD_BIT(payload_type)))
        return SM_PROTO_EPAYLOADNOTALLOWED;
    return SM_PROTO_OK;
}
