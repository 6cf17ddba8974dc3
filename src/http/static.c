/*
 * Demo page files; see static.h for the rules.
 */
#include "http/static.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

int sm_static_matches(const char *path)
{
    size_t n = strlen(SM_STATIC_PREFIX);
    return strncmp(path, SM_STATIC_PREFIX, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

const char *sm_static_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
        {".ts", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

/* Each segment of rel must be a plain name: no "", ".", "..", no leading
 * dot, no backslash, no '%' (we do not decode escapes), printable ASCII. */
static int safe_relative(const char *rel)
{
    if (*rel == '\0')
        return 1;
    const char *p = rel;
    while (*p) {
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 0 || seg[0] == '.')
            return 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)seg[i];
            if (c < 0x21 || c > 0x7e || c == '\\' || c == '%')
                return 0;
        }
        if (*p == '/')
            p++;
    }
    return 1;
}

/* realpath of path into real, which must stay under rootreal (rl bytes):
 * 0, or the status to answer (404 missing, 403 a symlink out of the tree). */
static int resolve_under(const char *rootreal, size_t rl, const char *path, char *real)
{
    if (realpath(path, real) == NULL)
        return 404;
    if (strncmp(real, rootreal, rl) != 0 || real[rl] != '/')
        return 403;
    return 0;
}

static void read_file(const char *root, const char *rel, sm_static_result_t *out)
{
    char rootreal[PATH_MAX], full[PATH_MAX], real[PATH_MAX];
    if (root[0] == '\0' || realpath(root, rootreal) == NULL) {
        out->status = 404;
        return;
    }
    size_t rl = strlen(rootreal);
    size_t n = (size_t)snprintf(full, sizeof full, "%s/%s", rootreal, *rel ? rel : "index.html");
    if (n >= sizeof full) {
        out->status = 404;
        return;
    }
    int st_rc = resolve_under(rootreal, rl, full, real);
    if (st_rc != 0) {
        out->status = st_rc;
        return;
    }
    struct stat st;
    if (stat(real, &st) != 0) {
        out->status = 404;
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        /* /demo/dir -> dir/index.html, resolved again: it may be a symlink
         * out of the tree too. */
        n = (size_t)snprintf(full, sizeof full, "%s/index.html", real);
        if (n >= sizeof full) {
            out->status = 404;
            return;
        }
        st_rc = resolve_under(rootreal, rl, full, real);
        if (st_rc != 0) {
            out->status = st_rc;
            return;
        }
        if (stat(real, &st) != 0) {
            out->status = 404;
            return;
        }
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > SM_STATIC_MAX_FILE) {
        out->status = 404;
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        out->status = 404;
        return;
    }
    char *buf = sm_xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    out->status = 200;
    out->body = buf;
    out->len = got;
    out->ctype = sm_static_content_type(real);
}

void sm_static_serve(const char *demo_dir, const char *sdk_dir, const char *url_path,
                     sm_static_result_t *out)
{
    memset(out, 0, sizeof *out);
    size_t plen = strlen(SM_STATIC_PREFIX);
    if (!sm_static_matches(url_path)) {
        out->status = 404;
        return;
    }
    if (url_path[plen] == '\0') {
        out->status = 301; /* relative links in the page need the slash */
        out->location = SM_STATIC_PREFIX "/";
        return;
    }
    const char *rel = url_path + plen + 1;
    if (!safe_relative(rel)) {
        out->status = 403;
        return;
    }
    if (strncmp(rel, "sdk/", 4) == 0)
        read_file(sdk_dir, rel + 4, out);
    else
        read_file(demo_dir, rel, out);
}
