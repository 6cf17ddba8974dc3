/*
 * Lookup functions over the SM_ERR_MAP table.
 */
#include "core/err.h"

const char *sm_strerror(int err)
{
    switch (err) {
    case SM_OK:
        return "ok";
#define SM__ERR_MSG(name, value, code, msg)                                                        \
    case name:                                                                                     \
        return msg;
        SM_ERR_MAP(SM__ERR_MSG)
#undef SM__ERR_MSG
    }
    return "unknown error";
}

const char *sm_errname(int err)
{
    switch (err) {
    case SM_OK:
        return "SM_OK";
#define SM__ERR_NAME(name, value, code, msg)                                                       \
    case name:                                                                                     \
        return #name;
        SM_ERR_MAP(SM__ERR_NAME)
#undef SM__ERR_NAME
    }
    return "SM_E?";
}

int sm_err_protocol_code(int err)
{
    switch (err) {
    case SM_OK:
        return 200;
#define SM__ERR_CODE(name, value, code, msg)                                                       \
    case name:                                                                                     \
        return code;
        SM_ERR_MAP(SM__ERR_CODE)
#undef SM__ERR_CODE
    }
    return 500;
}
