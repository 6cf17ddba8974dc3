/*
 * The ini file: sm_config_load_file() reads it with inih and hands every
 * "key = value" line to the same setter as the environment and the flags,
 * adding the file:line prefix, the "key[] = item" list lines, quote removal
 * and the per-file checks (unknown section or key, a key set twice).
 *
 * DESIGN: inih (Debian's libinih, built with INI_HANDLER_LINENO=0) gives the
 * handler no line number and treats any indented line after a key as a
 * continuation of that key.  We therefore feed it through ini_parse_stream()
 * with our own reader, which counts lines (the handler reads the count), strips
 * leading whitespace (so indented files mean what they say and continuation
 * never triggers), and turns a line longer than inih's buffer into an error
 * instead of letting inih split it into two lines.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "config/config_table.h"
#include "core/alloc.h"
#include "core/err.h"

typedef struct {
    sm_config_t *c;
    const char *path;
    FILE *f;
    char *line; /* getline buffer */
    size_t cap;
    int lineno;   /* line most recently handed to inih */
    int err_line; /* line of our first error, 0 = none */
    char *err;
    size_t errlen;
    int *plain_line; /* per directive: line of its "key = v", 0 = none yet */
    int *list_line;  /* per directive: line of its first "key[] = v", 0 = none yet */
} file_ctx_t;

/* inih's ini_reader: one whole line per call, leading blanks removed. */
static char *file_reader(char *str, int num, void *stream)
{
    file_ctx_t *fc = stream;
    ssize_t n;
    const char *s;
    size_t len;

    if (fc->err_line != 0)
        return NULL; /* stop at our first error */
    n = getline(&fc->line, &fc->cap, fc->f);
    if (n < 0)
        return NULL;
    fc->lineno++;
    s = fc->line + strspn(fc->line, " \t");
    len = strlen(s);
    if (len + 1 > (size_t)num) {
        if (*s == '#' || *s == ';') {
            len = (size_t)num - 2; /* a comment: its tail does not matter */
        } else {
            sm__conf_errf(fc->err, fc->errlen,
                          "%s:%d: line is longer than %d characters; split a list into repeated "
                          "\"key[] = item\" lines",
                          fc->path, fc->lineno, num - 2);
            fc->err_line = fc->lineno;
            return NULL;
        }
    }
    memcpy(str, s, len);
    str[len] = '\0';
    return str;
}

static int file_fail(file_ctx_t *fc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int file_fail(file_ctx_t *fc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sm__conf_errf(fc->err, fc->errlen, "%s:%d: %s", fc->path, fc->lineno, msg);
    fc->err_line = fc->lineno;
    return 0;
}

/* inih's handler: one "name = value" line of section. Nonzero = ok. */
static int file_handler(void *user, const char *section, const char *name, const char *value)
{
    file_ctx_t *fc = user;
    sm__conf_origin_t o = {.src = SM_CONF_SRC_FILE, .file = fc->path, .line = fc->lineno};
    const sm__conf_directive_t *d;
    char key[128];
    size_t klen = strlen(name);
    bool is_list_line = false;
    size_t idx;

    if (fc->err_line != 0)
        return 0;
    if (value == NULL)
        return file_fail(fc, "%s: expected \"key = value\"", name);
    if (section[0] == '\0')
        return file_fail(fc, "%s: key outside any [section]", name);
    if (klen >= 2 && strcmp(name + klen - 2, "[]") == 0) {
        is_list_line = true;
        klen -= 2;
        while (klen > 0 && isspace((unsigned char)name[klen - 1]))
            klen--;
    }
    if (klen >= sizeof key)
        klen = sizeof key - 1;
    memcpy(key, name, klen);
    key[klen] = '\0';

    d = sm__conf_find(section, key);
    if (d == NULL) {
        if (!sm__conf_section_exists(section))
            return file_fail(fc, "%s.%s: unknown section [%s]", section, key, section);
        return file_fail(fc, "%s.%s: unknown key", section, key);
    }
    idx = (size_t)(d - sm__conf_table);
    if (is_list_line) {
        if (d->type != SM__CT_LIST)
            return file_fail(fc, "%s.%s: not a list; \"%s[]\" is only for list keys", d->section,
                             d->key, d->key);
        if (fc->plain_line[idx] != 0)
            return file_fail(fc,
                             "%s.%s: mixes \"%s[] = ...\" with \"%s = ...\" (line %d); use "
                             "one form",
                             d->section, d->key, d->key, d->key, fc->plain_line[idx]);
    } else {
        if (fc->plain_line[idx] != 0)
            return file_fail(fc, "%s.%s: set twice in this file (first on line %d)", d->section,
                             d->key, fc->plain_line[idx]);
        if (fc->list_line[idx] != 0)
            return file_fail(fc,
                             "%s.%s: mixes \"%s = ...\" with \"%s[] = ...\" (line %d); use "
                             "one form",
                             d->section, d->key, d->key, d->key, fc->list_line[idx]);
    }

    if (is_list_line) {
        /* The first key[] line of a file replaces the list (usually the
         * default), later ones append. */
        sm__conf_mode_t mode = fc->list_line[idx] == 0 ? SM__CONF_REPLACE : SM__CONF_APPEND;
        if (value[0] == '\0')
            return file_fail(fc, "%s.%s: empty item", d->section, d->key);
        if (sm__conf_set(fc->c, d, value, mode, true, &o, fc->err, fc->errlen) != 0) {
            fc->err_line = fc->lineno;
            return 0;
        }
        if (fc->list_line[idx] == 0)
            fc->list_line[idx] = fc->lineno;
    } else {
        if (sm__conf_set(fc->c, d, value, SM__CONF_REPLACE, true, &o, fc->err, fc->errlen) != 0) {
            fc->err_line = fc->lineno;
            return 0;
        }
        fc->plain_line[idx] = fc->lineno;
    }
    return 1;
}

int sm_config_load_file(sm_config_t *c, const char *path, char *err, size_t errlen)
{
    file_ctx_t fc = {.c = c, .path = path, .err = err, .errlen = errlen};
    int rc = 0, r;

    fc.f = fopen(path, "r");
    if (fc.f == NULL) {
        sm__conf_errf(err, errlen, "%s: cannot open the config file: %s", path, strerror(errno));
        return SM_ECONFIG;
    }
    fc.plain_line = sm_xcalloc(sm__conf_count, sizeof fc.plain_line[0]);
    fc.list_line = sm_xcalloc(sm__conf_count, sizeof fc.list_line[0]);

    r = ini_parse_stream(file_reader, &fc, file_handler, &fc);
    if (r > 0 && (fc.err_line == 0 || r < fc.err_line)) {
        /* inih found a line that is neither a section nor key = value (and
         * called no handler for it), before any error of ours. */
        sm__conf_errf(err, errlen, "%s:%d: syntax error: expected \"[section]\" or \"key = value\"",
                      path, r);
        rc = SM_ECONFIG;
    } else if (fc.err_line != 0) {
        rc = SM_ECONFIG; /* message already written */
    } else if (r < 0) {
        sm__conf_errf(err, errlen, "%s: cannot parse the config file (inih error %d)", path, r);
        rc = SM_ECONFIG;
    } else if (ferror(fc.f)) {
        sm__conf_errf(err, errlen, "%s: cannot read the config file: %s", path, strerror(errno));
        rc = SM_ECONFIG;
    }
    if (rc == 0) {
        free(c->config_path);
        c->config_path = sm_xstrdup(path);
    }
    free(fc.plain_line);
    free(fc.list_line);
    free(fc.line);
    fclose(fc.f);
    return rc;
}
