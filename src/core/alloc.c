/*
 * Allocation wrappers that abort on out-of-memory (see alloc.h for why).
 */
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"size\":%zu}\n", size);
    abort();
}

void *sm_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *sm_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *sm_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

char *sm_xstrdup(const char *s)
{
    return sm_xmemdup(s, strlen(s) + 1);
}

char *sm_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = sm_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *sm_xmemdup(const void *p, size_t len)
{
    void *q = sm_xmalloc(len);
    if (len)
        memcpy(q, p, len);
    return q;
}
