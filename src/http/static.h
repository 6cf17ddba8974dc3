/*
 * Static files for the demo page: GET /demo/... served from a directory
 * (server.demo_dir, default "demo") and GET /demo/sdk/... from the SDK's
 * directory (server.sdk_dir, default "lib/js"), so that the page can import
 * the SDK it demonstrates.
 *
 * Path handling refuses anything that could leave those directories: "..",
 * "." and empty segments, backslashes, NUL, percent-escapes, dot-files and
 * symlinks out of the tree (realpath must stay under the directory).  Only
 * regular files up to SM_STATIC_MAX_FILE bytes are served.  Pure functions
 * plus one blocking read of a small file (the I/O thread calls it; demo
 * files are a few KiB and sit in the page cache).  Any thread.
 */
#ifndef SM_HTTP_STATIC_H
#define SM_HTTP_STATIC_H

#include <stddef.h>

#define SM_STATIC_PREFIX "/demo"
#define SM_STATIC_MAX_FILE (2u * 1024u * 1024u)

typedef struct {
    int status;        /* 200, 301, 403, 404 */
    const char *ctype; /* content type for 200 */
    char *body;        /* malloc'd file contents for 200 (caller frees) */
    size_t len;
    const char *location; /* for 301 */
} sm_static_result_t;

/* True when path is /demo or below it. */
int sm_static_matches(const char *path);

/* Resolve and read url_path.  demo_dir / sdk_dir may be "" (disabled: 404). */
void sm_static_serve(const char *demo_dir, const char *sdk_dir, const char *url_path,
                     sm_static_result_t *out);

/* Content type for a file name by extension. Never NULL. */
const char *sm_static_content_type(const char *name);

#endif
