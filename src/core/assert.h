/*
 * SM_ASSERT: invariants that cannot fail unless the server has a bug.
 * Always on (the cost is a predictable branch); prints file:line and aborts.
 * Anything a peer or a config can cause is an error, never an assertion.
 */
#ifndef SM_CORE_ASSERT_H
#define SM_CORE_ASSERT_H

_Noreturn void sm__assert_fail(const char *expr, const char *file, int line);

#define SM_ASSERT(expr) ((expr) ? (void)0 : sm__assert_fail(#expr, __FILE__, __LINE__))

#define SM_LIKELY(x) __builtin_expect(!!(x), 1)
#define SM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
