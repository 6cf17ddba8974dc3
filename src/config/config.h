/*
 * Configuration: defaults < ini file < environment < command-line flags.
 *
 * Owns the sm_config_t it returns.  Built once on the main thread at start-up
 * (sm_config_from_args), then frozen: every thread may read it, nobody writes
 * it, and it is freed after all other threads have stopped.  The keys are the
 * rows of directives.def; field names are <section>_<key>.
 *
 * Errors never abort: every function that can fail returns SM_ECONFIG (or
 * SM_EINVAL) and writes a one-line message naming the offending key, e.g.
 * "server.port: \"70000\" is out of range 0..65535 (from SIGNAL_MANAGER_SERVER_PORT)"
 * or "conf/x.ini:12: server.prot: unknown key".  Values of SM_CONF_SECRET keys
 * never appear in messages or in sm_config_dump().
 *
 * Implementation: config.c (table, value parsers, env, flags, checks),
 * config_file.c (ini via inih), config_print.c (dump, reference, usage).
 */
#ifndef SM_CONFIG_CONFIG_H
#define SM_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SM_CONF_SECRET 0x1

typedef struct {
    char **items; /* owned; each item owned */
    size_t n;
} sm_strlist_t;

#define SM__CONF_CTYPE_STRING char *
#define SM__CONF_CTYPE_INT int64_t
#define SM__CONF_CTYPE_BOOL bool
#define SM__CONF_CTYPE_SECS uint64_t
#define SM__CONF_CTYPE_MSECS uint64_t
#define SM__CONF_CTYPE_ENUM char *
#define SM__CONF_CTYPE_LIST sm_strlist_t

typedef struct sm_config_s {
#define SM_CONF(section, key, type, def, min, max, choices, flags, help)                           \
    SM__CONF_CTYPE_##type section##_##key;
#include "config/directives.def"
#undef SM_CONF
    /* Derived at load time (not keys): */
    char *config_path;   /* file that was read, or NULL when none; owned */
    unsigned io_threads; /* server_io_threads resolved (0 -> cores) */
    unsigned workers;    /* server_workers resolved (0 -> cores) */
    char *instance_id;   /* server_instance_id resolved (empty -> hostname:port); owned */
    /* Set by sm_config_from_args for SM_CONFIG_PRINT: "ini" or "markdown"
     * (a static string, pass it to sm_config_print_reference); else NULL. */
    const char *print_format;
} sm_config_t;

typedef enum {
    SM_CONFIG_RUN,     /* start the server */
    SM_CONFIG_CHECK,   /* --check-config: print the effective config, exit 0 */
    SM_CONFIG_VERSION, /* --version */
    SM_CONFIG_HELP,    /* --help */
    SM_CONFIG_PRINT,   /* --print-config=ini|markdown: print the reference, exit 0 */
} sm_config_action_t;

/* Where a value came from, for error messages. */
typedef enum {
    SM_CONF_SRC_DEFAULT,
    SM_CONF_SRC_FILE,
    SM_CONF_SRC_ENV,
    SM_CONF_SRC_FLAG,
} sm_config_source_t;

/* A fresh config holding the defaults of directives.def. Never NULL. */
sm_config_t *sm_config_new_defaults(void);
void sm_config_free(sm_config_t *c);

/*
 * Whole start-up sequence: defaults, then the ini file (--config PATH, else
 * conf/signal-manager.ini when it exists, else none), then envp's
 * SIGNAL_MANAGER_<SECTION>_<KEY> variables, then --<section>.<key>=VALUE
 * flags, then cross-key validation and derived fields.  Recognised flags:
 * --config PATH, --check-config, --version, --help, --print-config=ini|markdown,
 * --<section>.<key>=VALUE (not for secret keys); anything else is an error.
 * --help, --version and --print-config (bare = ini) read neither the file nor
 * envp, so they work with a broken configuration; they win over
 * --check-config (priority help > version > print > check).
 * On success *out owns the config (also for HELP/VERSION/PRINT; for PRINT
 * (*out)->print_format names the format) and *action says what to do.
 * On error returns SM_ECONFIG with err filled and *out NULL.
 * Main thread, once; argv and envp are only read.
 */
int sm_config_from_args(int argc, char **argv, char *const *envp, sm_config_t **out,
                        sm_config_action_t *action, char *err, size_t errlen);

/* Set one key from text (section and key match case-insensitively; a LIST
 * value replaces the whole list).  Unknown section/key, a bad value, or a
 * secret key with src SM_CONF_SRC_FLAG -> SM_ECONFIG and c unchanged.  src
 * only shapes the message, except SM_CONF_SRC_FILE also strips quotes. */
int sm_config_set(sm_config_t *c, const char *section, const char *key, const char *value,
                  sm_config_source_t src, char *err, size_t errlen);
/* Read an ini file through inih and set c->config_path to path.  Missing
 * file, syntax error, unknown section or key, a key set twice, a line longer
 * than inih's 200-byte buffer or a bad value -> SM_ECONFIG naming file:line
 * and section.key; keys before the bad line stay applied (callers discard c).
 * "key[] = items" lines: the first in a file replaces the list, later ones
 * append.  Values may be wrapped in double quotes. */
int sm_config_load_file(sm_config_t *c, const char *path, char *err, size_t errlen);
/* Apply SIGNAL_MANAGER_* variables from envp (NULL-terminated).  A variable
 * with that prefix that names no key is an error. */
int sm_config_apply_env(sm_config_t *c, char *const *envp, char *err, size_t errlen);
/* Cross-key checks and derived fields (io_threads, workers, instance_id).
 * May be called again after more changes.  0 or SM_ECONFIG. */
int sm_config_finish(sm_config_t *c, char *err, size_t errlen);

/* Effective configuration as ini text, secrets as "***" (--check-config). */
void sm_config_dump(const sm_config_t *c, FILE *out);
/* Reference documentation generated from the table: "ini" is the commented
 * conf/signal-manager.ini, "markdown" the README table. 0 or SM_EINVAL. */
int sm_config_print_reference(const char *format, FILE *out);
/* Usage text for --help. */
void sm_config_print_usage(const char *argv0, FILE *out);

/* Helpers for LIST values: exact (case-sensitive) item match. */
bool sm_strlist_contains(const sm_strlist_t *l, const char *item);

#endif
