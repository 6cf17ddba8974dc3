/*
 * Private to src/config/: the directive table compiled from directives.def,
 * shared by config.c (parsing) and config_print.c (dump and reference text).
 *
 * Owns nothing mutable: the table is const and every helper is pure, so any
 * thread may call them.  Nothing outside src/config/ includes this header.
 */
#ifndef SM_CONFIG_CONFIG_TABLE_H
#define SM_CONFIG_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef enum {
    SM__CT_STRING,
    SM__CT_INT,
    SM__CT_BOOL,
    SM__CT_SECS,
    SM__CT_MSECS,
    SM__CT_ENUM,
    SM__CT_LIST,
} sm__conf_type_t;

/* One row of directives.def.  min/max are in milliseconds for SECS/MSECS. */
typedef struct {
    const char *section;
    const char *key;
    sm__conf_type_t type;
    const char *def; /* default as text, parsed like any other value */
    int64_t min;
    int64_t max;
    const char *choices; /* "a|b|c" for ENUM and LIST, "" otherwise */
    unsigned flags;      /* SM_CONF_SECRET */
    const char *help;
    size_t offset; /* of the field in sm_config_t */
} sm__conf_directive_t;

extern const sm__conf_directive_t sm__conf_table[];
extern const size_t sm__conf_count;

/* Where a value came from, rendered into error messages:
 *   FILE  "path:line: section.key: msg"
 *   ENV   "section.key: msg (from SIGNAL_MANAGER_SECTION_KEY)"
 *   FLAG  "section.key: msg (from --section.key)" */
typedef struct {
    sm_config_source_t src;
    const char *file; /* FILE: path, or NULL when unknown */
    int line;         /* FILE: 1-based line, 0 when unknown */
    const char *name; /* ENV: variable name; FLAG: the flag as written up to '='; or NULL */
} sm__conf_origin_t;

typedef enum {
    SM__CONF_REPLACE, /* the value replaces the field (a list: the whole list) */
    SM__CONF_APPEND,  /* LIST only: the value's items are appended */
} sm__conf_mode_t;

/* Row of section.key (case-insensitive), or NULL. */
const sm__conf_directive_t *sm__conf_find(const char *section, const char *key);
bool sm__conf_section_exists(const char *section);

/*
 * Parses value for d and stores it in c.  unquote (ini files): one pair of
 * surrounding double quotes is removed (for lists: around the whole value or
 * around each item).  On error returns SM_ECONFIG with a message naming the
 * key and o in err, and c is unchanged.  Secret values never appear in err.
 */
int sm__conf_set(sm_config_t *c, const sm__conf_directive_t *d, const char *value,
                 sm__conf_mode_t mode, bool unquote, const sm__conf_origin_t *o, char *err,
                 size_t errlen);

/* snprintf into err (which may be NULL or errlen 0: nothing is written). */
void sm__conf_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Longest SIGNAL_MANAGER_<SECTION>_<KEY> name plus NUL (checked by assert). */
#define SM__CONF_ENV_MAX 96

/* Writes SIGNAL_MANAGER_<SECTION>_<KEY> for d into buf (SM__CONF_ENV_MAX bytes). */
void sm__conf_env_name(const sm__conf_directive_t *d, char *buf);

/* Formats a duration in ms with the largest unit that divides it exactly:
 * 0 -> "0", 100 -> "100ms", 30000 -> "30s", 300000 -> "5m", 3600000 -> "1h".
 * The result parses back to the same value for both SECS and MSECS. */
void sm__conf_format_ms(uint64_t ms, char *buf, size_t len);

/* Field of c described by d (typed by the caller from d->type). */
void *sm__conf_field(sm_config_t *c, const sm__conf_directive_t *d);
const void *sm__conf_cfield(const sm_config_t *c, const sm__conf_directive_t *d);

#endif
