/*
 * Configuration loading: the rows of directives.def become a const table that
 * drives every source of values.  Defaults are parsed from their text like any
 * other value, then the ini file (inih), then SIGNAL_MANAGER_* variables from
 * envp, then --<section>.<key>=VALUE flags; sm_config_finish() runs the checks
 * that involve more than one key and fills the derived fields.  Each setter
 * parses into a temporary first, so a rejected value never leaves a field half
 * written.  The ini reader is config_file.c; dump and reference output live
 * in config_print.c.
 */
#include "config/config.h"

#include <ctype.h>
#include <sched.h>
#include <stdio.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_table.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/cidr.h"
#include "core/err.h"

#define ENV_PREFIX "SIGNAL_MANAGER_"
#define DEFAULT_CONFIG_PATH "conf/signal-manager.ini"
#define SHOWN_VALUE_MAX 64 /* longer values are cut in messages; the key is what matters */
#define CLIENT_ID_MAX 128  /* DECISIONS §3 */
#define API_TOKEN_MAX 8192 /* SM_AUTH_MAX_TOKEN_LEN of auth/auth.h */

#define SM__CONF_TYPE_STRING SM__CT_STRING
#define SM__CONF_TYPE_INT SM__CT_INT
#define SM__CONF_TYPE_BOOL SM__CT_BOOL
#define SM__CONF_TYPE_SECS SM__CT_SECS
#define SM__CONF_TYPE_MSECS SM__CT_MSECS
#define SM__CONF_TYPE_ENUM SM__CT_ENUM
#define SM__CONF_TYPE_LIST SM__CT_LIST

/* clang-format off */
const sm__conf_directive_t sm__conf_table[] = {
#define SM_CONF(section, key, type, def, min, max, choices, flags, help)                           \
    {#section, #key, SM__CONF_TYPE_##type, def, (int64_t)(min), (int64_t)(max), choices, flags,    \
     help, offsetof(sm_config_t, section##_##key)},
#include "config/directives.def"
#undef SM_CONF
};
/* clang-format on */
const size_t sm__conf_count = SM_ARRAY_LEN(sm__conf_table);

/* Where a value came from, rendered into error messages. */
/* ---- small helpers ---------------------------------------------------- */

void sm__conf_env_name(const sm__conf_directive_t *d, char *buf)
{
    int n = snprintf(buf, SM__CONF_ENV_MAX, ENV_PREFIX "%s_%s", d->section, d->key);
    SM_ASSERT(n > 0 && n < SM__CONF_ENV_MAX);
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

void sm__conf_format_ms(uint64_t ms, char *buf, size_t len)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}};

    if (ms == 0) {
        snprintf(buf, len, "0");
        return;
    }
    for (size_t i = 0; i < SM_ARRAY_LEN(units); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void *sm__conf_field(sm_config_t *c, const sm__conf_directive_t *d)
{
    return (char *)c + d->offset;
}

const void *sm__conf_cfield(const sm_config_t *c, const sm__conf_directive_t *d)
{
    return (const char *)c + d->offset;
}

const sm__conf_directive_t *sm__conf_find(const char *section, const char *key)
{
    for (size_t i = 0; i < sm__conf_count; i++) {
        if (strcasecmp(sm__conf_table[i].section, section) == 0 &&
            strcasecmp(sm__conf_table[i].key, key) == 0)
            return &sm__conf_table[i];
    }
    return NULL;
}

bool sm__conf_section_exists(const char *section)
{
    for (size_t i = 0; i < sm__conf_count; i++) {
        if (strcasecmp(sm__conf_table[i].section, section) == 0)
            return true;
    }
    return false;
}

static void strlist_clear(sm_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void strlist_push_take(sm_strlist_t *l, char *item)
{
    l->items = sm_xrealloc(l->items, (l->n + 1) * sizeof l->items[0]);
    l->items[l->n++] = item;
}

bool sm_strlist_contains(const sm_strlist_t *l, const char *item)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i], item) == 0)
            return true;
    }
    return false;
}

/* Copy of s[0..len) without leading and trailing blanks. */
static char *trimmed_dup(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return sm_xstrndup(s, len);
}

/* Removes one pair of surrounding double quotes in place; false when a quote
 * opens but does not close. */
static bool unquote_inplace(char *s)
{
    size_t len = strlen(s);
    if (len == 0 || s[0] != '"')
        return true;
    if (len < 2 || s[len - 1] != '"')
        return false;
    memmove(s, s + 1, len - 2);
    s[len - 2] = '\0';
    return true;
}

void sm__conf_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Message about key d with the origin attached:
 *   FILE  "path:line: section.key: msg"
 *   ENV   "section.key: msg (from SIGNAL_MANAGER_SECTION_KEY)"
 *   FLAG  "section.key: msg (from --section.key)" */
static int fail_key(char *err, size_t errlen, const sm__conf_origin_t *o, const char *section,
                    const char *key, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail_key(char *err, size_t errlen, const sm__conf_origin_t *o, const char *section,
                    const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    switch (o->src) {
    case SM_CONF_SRC_FILE:
        if (o->file != NULL)
            sm__conf_errf(err, errlen, "%s:%d: %s.%s: %s", o->file, o->line, section, key, msg);
        else
            sm__conf_errf(err, errlen, "%s.%s: %s (from the config file)", section, key, msg);
        break;
    case SM_CONF_SRC_ENV:
    case SM_CONF_SRC_FLAG:
        if (o->name != NULL) {
            sm__conf_errf(err, errlen, "%s.%s: %s (from %s)", section, key, msg, o->name);
        } else {
            char env[SM__CONF_ENV_MAX];
            const sm__conf_directive_t *d = sm__conf_find(section, key);
            if (d != NULL && o->src == SM_CONF_SRC_ENV) {
                sm__conf_env_name(d, env);
                sm__conf_errf(err, errlen, "%s.%s: %s (from %s)", section, key, msg, env);
            } else {
                sm__conf_errf(err, errlen, "%s.%s: %s (from --%s.%s)", section, key, msg, section,
                              key);
            }
        }
        break;
    case SM_CONF_SRC_DEFAULT:
    default:
        sm__conf_errf(err, errlen, "%s.%s: %s (default)", section, key, msg);
        break;
    }
    return SM_ECONFIG;
}

/* The value as quoted in messages: "text" (cut when long), or "the value" for
 * secrets, whose text never appears in a message. */
static const char *shown(const sm__conf_directive_t *d, const char *v, char *buf, size_t len)
{
    if (d->flags & SM_CONF_SECRET)
        return "the value";
    if (strlen(v) > SHOWN_VALUE_MAX)
        snprintf(buf, len, "\"%.*s...\"", SHOWN_VALUE_MAX, v);
    else
        snprintf(buf, len, "\"%s\"", v);
    return buf;
}

/* "a|b|c" -> "a, b, c" for messages. */
static void choices_text(const char *choices, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < len; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
}

/* The canonical spelling of v among "a|b|c" (case-insensitive), or NULL. */
static char *match_choice(const char *choices, const char *v)
{
    const char *p = choices;
    size_t vlen = strlen(v);
    while (*p) {
        const char *end = strchr(p, '|');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == vlen && strncasecmp(p, v, n) == 0)
            return sm_xstrndup(p, n);
        if (end == NULL)
            break;
        p = end + 1;
    }
    return NULL;
}

static bool has_control_char(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            return true;
    }
    return false;
}

/* ---- value parsers ---------------------------------------------------- */

typedef enum { NUM_OK, NUM_SYNTAX, NUM_RANGE } num_result_t;

/* Whole number with an optional unit (ms, s, m, h; blanks allowed before
 * it); a bare number is multiplied by bare_ms.  Only decimal digits: "1.5s"
 * and "-1" are syntax errors, values past uint64 are range errors. */
static num_result_t parse_duration(const char *s, uint64_t bare_ms, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t n = 0, mult = 0;
    bool overflow = false;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return NUM_SYNTAX;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - digit) / 10)
            overflow = true;
        else
            n = n * 10 + digit;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0') {
        mult = bare_ms;
    } else {
        for (size_t i = 0; i < SM_ARRAY_LEN(units); i++) {
            if (strcmp(p, units[i].name) == 0)
                mult = units[i].ms;
        }
        if (mult == 0)
            return NUM_SYNTAX;
    }
    if (overflow || n > UINT64_MAX / mult)
        return NUM_RANGE;
    *out = n * mult;
    return NUM_OK;
}

static num_result_t parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (*s == '\0' || isspace((unsigned char)*s))
        return NUM_SYNTAX;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return NUM_SYNTAX;
    if (errno == ERANGE)
        return NUM_RANGE;
    *out = (int64_t)v;
    return NUM_OK;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < SM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Comma-separated items into *out (appended).  With unquote (ini files), a
 * value quoted as a whole and items quoted one by one are both accepted. */
static int parse_list(const sm__conf_directive_t *d, const char *value, bool unquote,
                      sm_strlist_t *out, const sm__conf_origin_t *o, char *err, size_t errlen)
{
    char buf[SHOWN_VALUE_MAX + 8];
    char *copy = sm_xstrdup(value);
    const char *p;
    size_t index = 0;
    int rc = 0;

    if (copy[0] == '[') {
        rc = fail_key(err, errlen, o, d->section, d->key,
                      "%s looks like a TOML array; write the items comma-separated on one "
                      "line, or as repeated \"%s[] = item\" lines",
                      shown(d, value, buf, sizeof buf), d->key);
        goto out;
    }
    /* "a, b" quoted as a whole: drop the outer quotes (but not those of
     * "a", "b", whose items are unquoted one by one below). */
    if (unquote && copy[0] == '"' && strchr(copy + 1, '"') == copy + strlen(copy) - 1)
        unquote_inplace(copy);
    if (copy[strspn(copy, " \t")] == '\0')
        goto out; /* an empty value is an empty list */
    for (p = copy;; p++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *item = trimmed_dup(p, n);
        char *canon;

        index++;
        if (unquote && !unquote_inplace(item)) {
            free(item);
            rc = fail_key(err, errlen, o, d->section, d->key,
                          "item %zu has an unbalanced double quote", index);
            goto out;
        }
        if (item[0] == '\0') {
            free(item);
            if (d->flags & SM_CONF_SECRET)
                rc = fail_key(err, errlen, o, d->section, d->key, "item %zu is empty", index);
            else
                rc = fail_key(err, errlen, o, d->section, d->key, "item %zu of %s is empty", index,
                              shown(d, value, buf, sizeof buf));
            goto out;
        }
        if (has_control_char(item)) {
            free(item);
            rc = fail_key(err, errlen, o, d->section, d->key,
                          "item %zu contains a control character", index);
            goto out;
        }
        if (d->choices[0] != '\0') {
            char list[128];
            canon = match_choice(d->choices, item);
            if (canon == NULL) {
                choices_text(d->choices, list, sizeof list);
                rc = fail_key(err, errlen, o, d->section, d->key, "%s is not one of %s",
                              shown(d, item, buf, sizeof buf), list);
                free(item);
                goto out;
            }
            free(item);
            item = canon;
        }
        strlist_push_take(out, item);
        if (end == NULL)
            break;
        p = end;
    }
out:
    free(copy);
    return rc;
}

/*
 * Parses value for d and stores it in c (replacing, or for lists with
 * SM__CONF_APPEND appending).  On error c is unchanged.
 */
int sm__conf_set(sm_config_t *c, const sm__conf_directive_t *d, const char *raw,
                 sm__conf_mode_t mode, bool unquote, const sm__conf_origin_t *o, char *err,
                 size_t errlen)
{
    char buf[SHOWN_VALUE_MAX + 8];
    char list[128];
    void *field = sm__conf_field(c, d);
    char *v;
    int rc = 0;

    /* Surrounding blanks never matter except inside quotes of a string. */
    v = (d->type == SM__CT_STRING && !unquote) ? sm_xstrdup(raw) : trimmed_dup(raw, strlen(raw));
    if (unquote && d->type != SM__CT_LIST && !unquote_inplace(v)) {
        rc = fail_key(err, errlen, o, d->section, d->key, "unbalanced double quote in %s",
                      shown(d, raw, buf, sizeof buf));
        goto out;
    }
    if (unquote && d->type != SM__CT_STRING && d->type != SM__CT_LIST) {
        char *t = trimmed_dup(v, strlen(v)); /* " debug " means debug */
        free(v);
        v = t;
    }
    SM_ASSERT(mode == SM__CONF_REPLACE || d->type == SM__CT_LIST);

    switch (d->type) {
    case SM__CT_STRING:
        if (has_control_char(v)) {
            rc = fail_key(err, errlen, o, d->section, d->key, "%s contains a control character",
                          shown(d, v, buf, sizeof buf));
            break;
        }
        free(*(char **)field);
        *(char **)field = v;
        v = NULL;
        break;
    case SM__CT_INT: {
        int64_t n = 0;
        num_result_t r = parse_int(v, &n);
        if (r == NUM_SYNTAX) {
            rc = fail_key(err, errlen, o, d->section, d->key, "%s is not an integer",
                          shown(d, v, buf, sizeof buf));
        } else if (r == NUM_RANGE || n < d->min || n > d->max) {
            rc = fail_key(err, errlen, o, d->section, d->key, "%s is out of range %lld..%lld",
                          shown(d, v, buf, sizeof buf), (long long)d->min, (long long)d->max);
        } else {
            *(int64_t *)field = n;
        }
        break;
    }
    case SM__CT_BOOL:
        if (!parse_bool(v, (bool *)field))
            rc = fail_key(err, errlen, o, d->section, d->key,
                          "%s is not a boolean (true/false, yes/no, on/off, 1/0)",
                          shown(d, v, buf, sizeof buf));
        break;
    case SM__CT_SECS:
    case SM__CT_MSECS: {
        uint64_t ms = 0;
        num_result_t r = parse_duration(v, d->type == SM__CT_SECS ? 1000 : 1, &ms);
        if (r == NUM_SYNTAX) {
            rc = fail_key(err, errlen, o, d->section, d->key,
                          "%s is not a duration (a whole number, %s, or with a unit: ms, s, m, h)",
                          shown(d, v, buf, sizeof buf),
                          d->type == SM__CT_SECS ? "bare = seconds" : "bare = milliseconds");
        } else if (r == NUM_RANGE || ms < (uint64_t)d->min || ms > (uint64_t)d->max) {
            char lo[32], hi[32];
            sm__conf_format_ms((uint64_t)d->min, lo, sizeof lo);
            sm__conf_format_ms((uint64_t)d->max, hi, sizeof hi);
            rc = fail_key(err, errlen, o, d->section, d->key, "%s is out of range %s..%s",
                          shown(d, v, buf, sizeof buf), lo, hi);
        } else {
            *(uint64_t *)field = ms;
        }
        break;
    }
    case SM__CT_ENUM: {
        char *canon = match_choice(d->choices, v);
        if (canon == NULL) {
            choices_text(d->choices, list, sizeof list);
            rc = fail_key(err, errlen, o, d->section, d->key, "%s is not one of %s",
                          shown(d, v, buf, sizeof buf), list);
            break;
        }
        free(*(char **)field);
        *(char **)field = canon;
        break;
    }
    case SM__CT_LIST: {
        sm_strlist_t parsed = {NULL, 0};
        sm_strlist_t *l = field;
        rc = parse_list(d, v, unquote, &parsed, o, err, errlen);
        if (rc != 0) {
            strlist_clear(&parsed);
            break;
        }
        if (mode == SM__CONF_REPLACE) {
            strlist_clear(l);
            *l = parsed;
        } else {
            for (size_t i = 0; i < parsed.n; i++)
                strlist_push_take(l, parsed.items[i]);
            free(parsed.items);
        }
        break;
    }
    }
out:
    free(v);
    return rc;
}

/* ---- whole configs ---------------------------------------------------- */

sm_config_t *sm_config_new_defaults(void)
{
    sm_config_t *c = SM_NEW(sm_config_t);
    sm__conf_origin_t o = {.src = SM_CONF_SRC_DEFAULT};
    char err[256];

    for (size_t i = 0; i < sm__conf_count; i++) {
        int rc = sm__conf_set(c, &sm__conf_table[i], sm__conf_table[i].def, SM__CONF_REPLACE, false,
                              &o, err, sizeof err);
        if (rc != 0) {
            /* A default that does not parse is a bug in directives.def. */
            fprintf(stderr, "%s\n", err);
            SM_ASSERT(rc == 0);
        }
    }
    return c;
}

void sm_config_free(sm_config_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < sm__conf_count; i++) {
        const sm__conf_directive_t *d = &sm__conf_table[i];
        void *field = sm__conf_field(c, d);
        if (d->type == SM__CT_STRING || d->type == SM__CT_ENUM)
            free(*(char **)field);
        else if (d->type == SM__CT_LIST)
            strlist_clear(field);
    }
    free(c->config_path);
    free(c->instance_id);
    free(c);
}

int sm_config_set(sm_config_t *c, const char *section, const char *key, const char *value,
                  sm_config_source_t src, char *err, size_t errlen)
{
    sm__conf_origin_t o = {.src = src};
    const sm__conf_directive_t *d = sm__conf_find(section, key);

    if (d == NULL) {
        if (!sm__conf_section_exists(section))
            return fail_key(err, errlen, &o, section, key, "unknown section [%s]", section);
        return fail_key(err, errlen, &o, section, key, "unknown key");
    }
    if (src == SM_CONF_SRC_FLAG && (d->flags & SM_CONF_SECRET)) {
        char env[SM__CONF_ENV_MAX];
        sm__conf_env_name(d, env);
        sm__conf_errf(
            err, errlen,
            "%s.%s: is a secret and cannot be set on the command line (other users can read "
            "it there); set it in the config file or in %s",
            d->section, d->key, env);
        return SM_ECONFIG;
    }
    return sm__conf_set(c, d, value, SM__CONF_REPLACE, src == SM_CONF_SRC_FILE, &o, err, errlen);
}

/* ---- environment ------------------------------------------------------ */

/* Variables Kubernetes injects for a Service named "signal-manager". */
static bool looks_like_k8s_service_var(const char *name)
{
    const char *rest = name + strlen(ENV_PREFIX);
    return strncmp(rest, "SERVICE_", 8) == 0 || strcmp(rest, "PORT") == 0 ||
           strncmp(rest, "PORT_", 5) == 0;
}

int sm_config_apply_env(sm_config_t *c, char *const *envp, char *err, size_t errlen)
{
    const size_t plen = strlen(ENV_PREFIX);

    if (envp == NULL)
        return 0;
    for (char *const *e = envp; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        const sm__conf_directive_t *d = NULL;
        char name[SM__CONF_ENV_MAX];
        size_t nlen;
        sm__conf_origin_t o = {.src = SM_CONF_SRC_ENV};

        if (strncmp(*e, ENV_PREFIX, plen) != 0 || eq == NULL)
            continue;
        nlen = (size_t)(eq - *e);
        if (nlen < sizeof name) {
            memcpy(name, *e, nlen);
            name[nlen] = '\0';
            for (size_t i = 0; i < sm__conf_count && d == NULL; i++) {
                char candidate[SM__CONF_ENV_MAX];
                sm__conf_env_name(&sm__conf_table[i], candidate);
                if (strcmp(candidate, name) == 0)
                    d = &sm__conf_table[i];
            }
        } else {
            snprintf(name, sizeof name, "%.*s...", (int)sizeof name - 4, *e);
        }
        if (d == NULL) {
            sm__conf_errf(err, errlen,
                          "%s: unknown environment variable: no configuration key has this name "
                          "(see --print-config=markdown)%s",
                          name,
                          looks_like_k8s_service_var(name)
                              ? "; if it comes from a Kubernetes Service named signal-manager, set "
                                "enableServiceLinks: false in the pod spec"
                              : "");
            return SM_ECONFIG;
        }
        o.name = name;
        if (sm__conf_set(c, d, eq + 1, SM__CONF_REPLACE, false, &o, err, errlen) != 0)
            return SM_ECONFIG;
    }
    return 0;
}

/* ---- cross-key checks and derived fields ------------------------------ */

static bool client_id_char(char ch)
{
    return isalnum((unsigned char)ch) || strchr("._:@-", ch) != NULL;
}

/* api_keys items are client_id:token, split at the last ':' because
 * client_ids may contain ':' (tokens therefore cannot); the rules match
 * sm_auth_new() (auth/auth.h), so --check-config catches what auth would
 * refuse.  Item numbers, not values, appear in messages: the list is secret. */
static int check_api_keys(const sm_strlist_t *l, char *err, size_t errlen)
{
    if (l->n == 0) {
        sm__conf_errf(err, errlen, "auth.api_keys: empty, but auth.auth_method includes token");
        return SM_ECONFIG;
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *item = l->items[i];
        const char *colon = strrchr(item, ':');
        size_t idlen = colon ? (size_t)(colon - item) : 0;

        if (colon == NULL || colon[1] == '\0' || idlen == 0) {
            sm__conf_errf(
                err, errlen,
                "auth.api_keys: item %zu is not \"client_id:token\" (both parts non-empty)", i + 1);
            return SM_ECONFIG;
        }
        if (idlen > CLIENT_ID_MAX) {
            sm__conf_errf(err, errlen,
                          "auth.api_keys: item %zu: client_id is longer than %d characters", i + 1,
                          CLIENT_ID_MAX);
            return SM_ECONFIG;
        }
        for (size_t k = 0; k < idlen; k++) {
            if (!client_id_char(item[k])) {
                sm__conf_errf(
                    err, errlen,
                    "auth.api_keys: item %zu: client_id may only contain A-Z a-z 0-9 . _ : @ -",
                    i + 1);
                return SM_ECONFIG;
            }
        }
        for (const char *t = colon + 1; *t; t++) {
            if (*t < 0x21 || *t > 0x7e || t - colon > API_TOKEN_MAX) {
                sm__conf_errf(err, errlen,
                              "auth.api_keys: item %zu: the token must be 1-%d printable ASCII "
                              "characters without spaces",
                              i + 1, API_TOKEN_MAX);
                return SM_ECONFIG;
            }
        }
        for (size_t j = 0; j < i; j++) {
            const char *other = l->items[j];
            const char *ocolon = strrchr(other, ':');
            if ((size_t)(ocolon - other) == idlen && memcmp(other, item, idlen) == 0) {
                sm__conf_errf(err, errlen,
                              "auth.api_keys: items %zu and %zu have the same client_id", j + 1,
                              i + 1);
                return SM_ECONFIG;
            }
        }
    }
    return 0;
}

static bool is_wildcard_host(const char *h)
{
    return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ||
           strcmp(h, "[::]") == 0;
}

/* CPUs this process may use: the affinity mask (taskset, cpusets), further
 * bounded by a cgroup v2 CPU quota (a container's cpu limit: cpu.max
 * "quota period", rounded up), so "0 = number of cores" means the cores the
 * container gets, not the node's. */
static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        n = CPU_COUNT(&set);
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char quota[32];
        long period = 0;
        if (fscanf(f, "%31s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
            long q = strtol(quota, NULL, 10);
            long lim = (q + period - 1) / period;
            if (lim >= 1 && lim < n)
                n = lim;
        }
        fclose(f);
    }
    if (n < 1)
        return 1;
    return n > 256 ? 256 : (unsigned)n; /* the same cap as server.io_threads */
}

int sm_config_finish(sm_config_t *c, char *err, size_t errlen)
{
    char a[32], b[32];
    int rc;

    if (c->server_tls_enabled && c->server_tls_cert_path[0] == '\0') {
        sm__conf_errf(err, errlen, "server.tls_cert_path: required when server.tls_enabled = true");
        return SM_ECONFIG;
    }
    if (c->server_tls_enabled && c->server_tls_key_path[0] == '\0') {
        sm__conf_errf(err, errlen, "server.tls_key_path: required when server.tls_enabled = true");
        return SM_ECONFIG;
    }
    if (c->auth_auth_method.n == 0) {
        sm__conf_errf(err, errlen,
                      "auth.auth_method: at least one method is required (token, jwt)");
        return SM_ECONFIG;
    }
    if (sm_strlist_contains(&c->auth_auth_method, "jwt") && strlen(c->auth_token_secret) < 32) {
        sm__conf_errf(
            err, errlen,
            "auth.token_secret: must be at least 32 bytes when auth.auth_method includes jwt "
            "(it has %zu); set SIGNAL_MANAGER_AUTH_TOKEN_SECRET",
            strlen(c->auth_token_secret));
        return SM_ECONFIG;
    }
    for (size_t i = 0; i < c->auth_auth_method.n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->auth_auth_method.items[i], c->auth_auth_method.items[j]) == 0) {
                sm__conf_errf(err, errlen, "auth.auth_method: \"%s\" is listed twice",
                              c->auth_auth_method.items[i]);
                return SM_ECONFIG;
            }
        }
    }
    if (sm_strlist_contains(&c->auth_auth_method, "token")) {
        rc = check_api_keys(&c->auth_api_keys, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (c->heartbeat_timeout <= c->heartbeat_interval) {
        sm__conf_format_ms(c->heartbeat_timeout, a, sizeof a);
        sm__conf_format_ms(c->heartbeat_interval, b, sizeof b);
        sm__conf_errf(err, errlen,
                      "heartbeat.timeout: %s must be longer than heartbeat.interval (%s)", a, b);
        return SM_ECONFIG;
    }
    if (c->metrics_enabled && c->metrics_port != 0 && c->metrics_port == c->server_port &&
        (strcmp(c->metrics_host, c->server_host) == 0 || is_wildcard_host(c->metrics_host) ||
         is_wildcard_host(c->server_host))) {
        sm__conf_errf(
            err, errlen,
            "metrics.port: %lld is also server.port on the same host (%s, %s); choose another "
            "port or set metrics.enabled = false",
            (long long)c->metrics_port, c->metrics_host, c->server_host);
        return SM_ECONFIG;
    }
    if (strcmp(c->store_backend, "sqlite") == 0 && c->store_path[0] == '\0') {
        sm__conf_errf(err, errlen, "store.path: must not be empty when store.backend = sqlite");
        return SM_ECONFIG;
    }
    if (strcmp(c->events_backend, "log") == 0 && c->events_path[0] == '\0') {
        sm__conf_errf(err, errlen, "events.path: must not be empty when events.backend = log");
        return SM_ECONFIG;
    }
    /* Parsed here only to be checked (--check-config), the server parses it
     * again for the list it keeps. */
    sm_cidr_list_t *proxies = NULL;
    char why[256];
    if (sm_cidr_parse_list(c->server_trusted_proxies, &proxies, why, sizeof why) != 0) {
        sm__conf_errf(err, errlen, "server.trusted_proxies: %s", why);
        return SM_ECONFIG;
    }
    sm_cidr_list_free(proxies);

    c->io_threads = c->server_io_threads ? (unsigned)c->server_io_threads : online_cpus();
    c->workers = c->server_workers ? (unsigned)c->server_workers : online_cpus();
    free(c->instance_id);
    if (c->server_instance_id[0] != '\0') {
        c->instance_id = sm_xstrdup(c->server_instance_id);
    } else {
        char host[256], id[300];
        if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        snprintf(id, sizeof id, "%s:%lld", host, (long long)c->server_port);
        c->instance_id = sm_xstrdup(id);
    }
    return 0;
}

/* ---- command line ----------------------------------------------------- */

static bool flag_value(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=')
        return false;
    *value = arg + n + 1;
    return true;
}

int sm_config_from_args(int argc, char **argv, char *const *envp, sm_config_t **out,
                        sm_config_action_t *action, char *err, size_t errlen)
{
    const char *config_path = NULL, *print_format = NULL, *v;
    bool help = false, version = false, check = false;
    size_t *set_args = sm_xcalloc((size_t)(argc > 0 ? argc : 1), sizeof set_args[0]);
    size_t nset = 0;
    sm_config_t *c = NULL;
    struct stat st;
    int rc = SM_ECONFIG;

    *out = NULL;
    *action = SM_CONFIG_RUN;

    /* Pass 1: syntax of every argument; key flags are applied after env. */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') {
                sm__conf_errf(err, errlen, "--config needs a PATH");
                goto fail;
            }
            if (config_path != NULL) {
                sm__conf_errf(err, errlen, "--config given twice");
                goto fail;
            }
            config_path = argv[++i];
        } else if (flag_value(arg, "--config", &v)) {
            if (v[0] == '\0') {
                sm__conf_errf(err, errlen, "--config needs a PATH");
                goto fail;
            }
            if (config_path != NULL) {
                sm__conf_errf(err, errlen, "--config given twice");
                goto fail;
            }
            config_path = v;
        } else if (strcmp(arg, "--check-config") == 0) {
            check = true;
        } else if (strcmp(arg, "--version") == 0) {
            version = true;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            help = true;
        } else if (strcmp(arg, "--print-config") == 0) {
            print_format = "ini";
        } else if (flag_value(arg, "--print-config", &v)) {
            if (strcmp(v, "ini") == 0) {
                print_format = "ini";
            } else if (strcmp(v, "markdown") == 0) {
                print_format = "markdown";
            } else {
                sm__conf_errf(err, errlen,
                              "--print-config: \"%s\" is not a format (ini or markdown)", v);
                goto fail;
            }
        } else if (strncmp(arg, "--", 2) == 0 && strchr(arg, '.') != NULL &&
                   (strchr(arg, '=') == NULL || strchr(arg, '.') < strchr(arg, '='))) {
            const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');
            char section[64], key[128];
            const sm__conf_directive_t *d;
            size_t slen = (size_t)(dot - arg - 2);
            size_t klen = eq ? (size_t)(eq - dot - 1) : strlen(dot + 1);

            if (slen >= sizeof section || klen >= sizeof key) {
                sm__conf_errf(err, errlen, "%s: unknown option (see --help)", arg);
                goto fail;
            }
            memcpy(section, arg + 2, slen);
            section[slen] = '\0';
            memcpy(key, dot + 1, klen);
            key[klen] = '\0';
            d = sm__conf_find(section, key);
            if (d == NULL) {
                sm__conf_errf(err, errlen, "--%s.%s: unknown %s (see --print-config=markdown)",
                              section, key, sm__conf_section_exists(section) ? "key" : "section");
                goto fail;
            }
            if (d->flags & SM_CONF_SECRET) {
                char env[SM__CONF_ENV_MAX];
                sm__conf_env_name(d, env);
                sm__conf_errf(
                    err, errlen,
                    "%s.%s: is a secret and cannot be set on the command line (other users "
                    "can read it there); set it in the config file or in %s",
                    d->section, d->key, env);
                goto fail;
            }
            if (eq == NULL) {
                sm__conf_errf(err, errlen, "--%s.%s needs a value: --%s.%s=VALUE", d->section,
                              d->key, d->section, d->key);
                goto fail;
            }
            set_args[nset++] = (size_t)i;
        } else {
            sm__conf_errf(err, errlen, "%s: unknown %s (see --help)", arg,
                          arg[0] == '-' ? "option" : "argument");
            goto fail;
        }
    }

    c = sm_config_new_defaults();
    if (help || version || print_format != NULL) {
        /* Informational actions never fail on a broken file or environment. */
        *action = help ? SM_CONFIG_HELP : version ? SM_CONFIG_VERSION : SM_CONFIG_PRINT;
        c->print_format = *action == SM_CONFIG_PRINT ? print_format : NULL;
        rc = sm_config_finish(c, err, errlen);
        if (rc != 0)
            goto fail;
        goto done;
    }

    if (config_path != NULL) {
        if (sm_config_load_file(c, config_path, err, errlen) != 0)
            goto fail;
    } else if (stat(DEFAULT_CONFIG_PATH, &st) == 0) {
        if (sm_config_load_file(c, DEFAULT_CONFIG_PATH, err, errlen) != 0)
            goto fail;
    }
    if (sm_config_apply_env(c, envp, err, errlen) != 0)
        goto fail;
    for (size_t k = 0; k < nset; k++) {
        const char *arg = argv[set_args[k]];
        const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');
        char section[64], key[128], name[200];
        sm__conf_origin_t o = {.src = SM_CONF_SRC_FLAG, .name = name};
        const sm__conf_directive_t *d;

        snprintf(section, sizeof section, "%.*s", (int)(dot - arg - 2), arg + 2);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
        d = sm__conf_find(section, key);
        SM_ASSERT(d != NULL); /* checked in pass 1 */
        if (sm__conf_set(c, d, eq + 1, SM__CONF_REPLACE, false, &o, err, errlen) != 0)
            goto fail;
    }
    if (sm_config_finish(c, err, errlen) != 0)
        goto fail;
    *action = check ? SM_CONFIG_CHECK : SM_CONFIG_RUN;
done:
    free(set_args);
    *out = c;
    return 0;
fail:
    sm_config_free(c);
    free(set_args);
    *action = SM_CONFIG_RUN;
    return SM_ECONFIG;
}
