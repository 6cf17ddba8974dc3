/*
 * Assertion failure reporting.
 */
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>

void sm__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"assertion failed\",\"expr\":\"%s\",\"at\":\"%s:%d\"}\n",
            expr, file, line);
    abort();
}
