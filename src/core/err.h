/*
 * Error codes of the whole server: one X-macro table.
 *
 * Convention (STYLE.md §8): functions return int, 0 on success and a negative
 * SM_E* code on failure.  SM_EAGAIN ("would block", "try later") is not a
 * failure.  Library codes (uv, wslay, sqlite, mbedTLS, curl) are translated
 * where they occur.  The table also maps each code to the protocol's ERROR
 * code (DECISIONS §3), so a failure deep in the store surfaces to the client
 * as the right number without a second switch somewhere else.
 *
 * Owns nothing; pure functions; any thread.
 */
#ifndef SM_CORE_ERR_H
#define SM_CORE_ERR_H

/*      name            value  protocol code  message */
#define SM_ERR_MAP(X)                                                             \
    X(SM_EINVAL,         -1,   400, "invalid argument")                           \
    X(SM_EPROTO,         -2,   400, "malformed message")                          \
    X(SM_EAUTH,          -3,   401, "unauthorized")                               \
    X(SM_EFORBIDDEN,     -4,   403, "forbidden")                                  \
    X(SM_ENOTFOUND,      -5,   404, "not found")                                  \
    X(SM_ETIMEDOUT,      -6,   408, "timed out")                                  \
    X(SM_ECONFLICT,      -7,   409, "conflict")                                   \
    X(SM_ETOOBIG,        -8,   413, "too large")                                  \
    X(SM_ERATELIMIT,     -9,   429, "rate limited")                               \
    X(SM_EUNAVAIL,       -10,  503, "service unavailable")                        \
    X(SM_EAGAIN,         -11,  503, "would block")                                \
    X(SM_ENOMEM,         -12,  500, "out of memory")                              \
    X(SM_EIO,            -13,  503, "i/o error")                                  \
    X(SM_ECLOSED,        -14,  500, "closed")                                     \
    X(SM_ECANCELED,      -15,  503, "canceled")                                   \
    X(SM_ECONFIG,        -16,  500, "configuration error")                        \
    X(SM_EFULL,          -17,  503, "queue full")                                 \
    X(SM_EINTERNAL,      -18,  500, "internal error")

enum sm_err {
    SM_OK = 0,
#define SM__ERR_ENUM(name, value, code, msg) name = value,
    SM_ERR_MAP(SM__ERR_ENUM)
#undef SM__ERR_ENUM
};

/* Human-readable message for an SM_E* code (or "ok" for 0). Never NULL. */
const char *sm_strerror(int err);
/* Short symbolic name, e.g. "SM_ENOTFOUND". Never NULL. */
const char *sm_errname(int err);
/* The protocol ERROR code (400..503) for an SM_E* code; 500 for unknown codes. */
int sm_err_protocol_code(int err);

#endif
