/*
 * Unit tests of src/config: defaults, every value type with its bad values
 * and bounds, the ini reader (inih), environment and flag precedence,
 * cross-key checks, the secret-hiding dump, and drift tests that compare the
 * generated reference against conf/signal-manager.ini and
 * docs/configuration.md.
 *
 * The tests run in a fresh mkdtemp directory (the group setup chdirs there
 * and the teardown removes it), so ini files are written with relative names
 * and the default conf/signal-manager.ini lookup is under the tests' control.
 *
 * Regenerating the committed reference files after a change to
 * directives.def:  SM_CONFIG_REGEN=1 build/tests/unit/config/test_config
 * (the drift tests then write the files instead of comparing them).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ftw.h>

#include "config/config.h"
#include "core/err.h"

#ifndef SM_SOURCE_DIR
#error "SM_SOURCE_DIR must name the repository root (the Makefile defines it)"
#endif

#define ERRLEN 512
#define REF_INI SM_SOURCE_DIR "/conf/signal-manager.ini"
#define REF_MD SM_SOURCE_DIR "/docs/configuration.md"
#define REF_README SM_SOURCE_DIR "/README.md"
#define MD_BEGIN "<!-- BEGIN GENERATED: signal-manager --print-config=markdown -->\n"
#define MD_END "<!-- END GENERATED -->\n"

#define ARGV(...) ((char *[]){"signal-manager", __VA_ARGS__, NULL})
#define NOARGS ((char *[]){"signal-manager", NULL})
#define ENVP(...) ((char *[]){__VA_ARGS__, NULL})
#define NOENV ((char *[]){NULL})

static char g_tmpdir[64];
static char g_oldcwd[PATH_MAX];

/* ---- helpers ---------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    if (getcwd(g_oldcwd, sizeof g_oldcwd) == NULL)
        return -1;
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/sm-test-config-XXXXXX");
    if (mkdtemp(g_tmpdir) == NULL)
        return -1;
    return chdir(g_tmpdir);
}

static int group_teardown(void **state)
{
    (void)state;
    if (chdir(g_oldcwd) != 0)
        return -1;
    return nftw(g_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Whole file into a NUL-terminated heap buffer, or NULL when it cannot be read. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* What sm_config_print_reference wrote (heap).  noinline: gcc 12 takes the
 * open_memstream buffer for a dangling local otherwise. */
static __attribute__((noinline)) char *capture_reference(const char *format)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(sm_config_print_reference(format, f), 0);
    fclose(f);
    return text;
}

static __attribute__((noinline)) char *capture_dump(const sm_config_t *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    sm_config_dump(c, f);
    fclose(f);
    return text;
}

static int from_args(char **argv, char **envp, sm_config_t **c, sm_config_action_t *action,
                     char *err)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    err[0] = '\0';
    return sm_config_from_args(argc, argv, envp, c, action, err, ERRLEN);
}

/* Sets one key from src into a defaults config; returns the rc and keeps the
 * config in *out (freed by the caller). */
static int set1(sm_config_t **out, const char *section, const char *key, const char *value,
                sm_config_source_t src, char *err)
{
    *out = sm_config_new_defaults();
    err[0] = '\0';
    return sm_config_set(*out, section, key, value, src, err, ERRLEN);
}

/* Loads text as an ini file named "t.ini" into a defaults config. */
static int load_text(sm_config_t **out, const char *text, char *err)
{
    write_file("t.ini", text);
    *out = sm_config_new_defaults();
    err[0] = '\0';
    return sm_config_load_file(*out, "t.ini", err, ERRLEN);
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                                \
    } while (0)

#define assert_not_contains(hay, needle)                                                           \
    do {                                                                                           \
        if (strstr((hay), (needle)) != NULL)                                                       \
            fail_msg("did not expect \"%s\" in \"%s\"", (needle), (hay));                          \
    } while (0)

/* ---- defaults --------------------------------------------------------- */

static void test_defaults(void **state)
{
    char err[ERRLEN];
    sm_config_t *c = sm_config_new_defaults();
    (void)state;

    assert_string_equal(c->server_host, "127.0.0.1");
    assert_int_equal(c->server_port, 8080);
    assert_int_equal(c->server_max_connections, 1000);
    assert_int_equal(c->server_connection_timeout, 30000);
    assert_int_equal(c->server_registration_timeout, 10000);
    assert_false(c->server_tls_enabled);
    assert_string_equal(c->server_tls_cert_path, "");
    assert_int_equal(c->server_io_threads, 0);
    assert_int_equal(c->server_workers, 0);
    assert_int_equal(c->server_drain_timeout, 10000);
    assert_string_equal(c->server_instance_id, "");
    assert_int_equal(c->auth_auth_method.n, 1);
    assert_string_equal(c->auth_auth_method.items[0], "token");
    assert_int_equal(c->auth_api_keys.n, 2);
    assert_string_equal(c->auth_api_keys.items[0], "test_client_1:test_token_1");
    assert_string_equal(c->auth_api_keys.items[1], "test_client_2:test_token_2");
    assert_string_equal(c->auth_token_secret, "");
    assert_int_equal(c->auth_token_expiry, 3600);
    assert_int_equal(c->heartbeat_interval, 30000);
    assert_int_equal(c->heartbeat_timeout, 90000);
    assert_string_equal(c->webrtc_mode, "p2p");
    assert_int_equal(c->webrtc_session_timeout, 300000);
    assert_int_equal(c->webrtc_cloudflare_timeout, 10000);
    assert_int_equal(c->webrtc_max_participants, 16);
    assert_int_equal(c->database_operation_timeout, 5000);
    assert_int_equal(c->database_retry_attempts, 3);
    assert_int_equal(c->database_retry_interval, 100);
    assert_string_equal(c->logging_level, "info");
    assert_string_equal(c->logging_format, "json");
    assert_true(c->logging_console_output);
    assert_string_equal(c->logging_file, "");
    assert_true(c->metrics_enabled);
    assert_string_equal(c->metrics_host, "127.0.0.1");
    assert_int_equal(c->metrics_port, 9090);
    assert_string_equal(c->store_backend, "sqlite");
    assert_string_equal(c->store_path, "data/signal-manager.db");
    assert_string_equal(c->events_backend, "log");
    assert_string_equal(c->events_path, "data/events.log");
    assert_int_equal(c->events_queue_size, 65536);
    assert_int_equal(c->limits_max_message_size, 1048576);
    assert_int_equal(c->limits_max_pending_output, 1048576);
    assert_int_equal(c->limits_max_bad_frames, 20);
    assert_int_equal(c->limits_queue_size, 65536);
    assert_null(c->config_path);

    /* The defaults pass the cross-key checks; derived fields get filled. */
    assert_int_equal(sm_config_finish(c, err, sizeof err), 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->io_threads, cpus > 256 ? 256 : cpus);
    assert_int_equal(c->workers, c->io_threads);
    char host[256] = "", want[300];
    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(want, sizeof want, "%s:8080", host);
    assert_string_equal(c->instance_id, want);
    sm_config_free(c);
    sm_config_free(NULL);
}

/* ---- value types ------------------------------------------------------ */

static void test_int(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    assert_int_equal(set1(&c, "server", "port", "9000", SM_CONF_SRC_FLAG, err), 0);
    assert_int_equal(c->server_port, 9000);
    /* env/flag values are trimmed, a sign is allowed, bounds are inclusive */
    assert_int_equal(sm_config_set(c, "server", "port", " 0 ", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_int_equal(c->server_port, 0);
    assert_int_equal(sm_config_set(c, "server", "port", "+65535", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_int_equal(c->server_port, 65535);
    sm_config_free(c);

    assert_int_equal(set1(&c, "server", "port", "70000", SM_CONF_SRC_ENV, err), SM_ECONFIG);
    assert_string_equal(err, "server.port: \"70000\" is out of range 0..65535 "
                             "(from SIGNAL_MANAGER_SERVER_PORT)");
    assert_int_equal(c->server_port, 8080); /* unchanged after an error */
    sm_config_free(c);

    assert_int_equal(set1(&c, "server", "port", "-1", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    assert_string_equal(err, "server.port: \"-1\" is out of range 0..65535 (from --server.port)");
    sm_config_free(c);

    static const char *const bad[] = {"80a", "", "0x10", "8 0", "1e3", "--1", "8080.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(set1(&c, "server", "port", bad[i], SM_CONF_SRC_FLAG, err), SM_ECONFIG);
        assert_contains(err, "is not an integer");
        assert_contains(err, "server.port");
        sm_config_free(c);
    }
    /* overflow of int64 is a range error, not a wrap-around */
    assert_int_equal(
        set1(&c, "limits", "queue_size", "99999999999999999999", SM_CONF_SRC_FLAG, err),
        SM_ECONFIG);
    assert_contains(err, "is out of range 64..16777216");
    sm_config_free(c);
    assert_int_equal(set1(&c, "limits", "queue_size", "63", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    sm_config_free(c);
    assert_int_equal(set1(&c, "limits", "queue_size", "16777216", SM_CONF_SRC_FLAG, err), 0);
    assert_int_equal(c->limits_queue_size, 16777216);
    sm_config_free(c);
}

static void test_bool(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "Yes", "on", "1", " true "};
    static const char *const no[] = {"false", "False", "NO", "off", "0"};
    static const char *const bad[] = {"maybe", "", "2", "t", "truee"};
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        assert_int_equal(set1(&c, "logging", "console_output", "false", SM_CONF_SRC_FLAG, err), 0);
        assert_int_equal(
            sm_config_set(c, "logging", "console_output", yes[i], SM_CONF_SRC_ENV, err, ERRLEN), 0);
        assert_true(c->logging_console_output);
        sm_config_free(c);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        assert_int_equal(set1(&c, "logging", "console_output", no[i], SM_CONF_SRC_ENV, err), 0);
        assert_false(c->logging_console_output);
        sm_config_free(c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(set1(&c, "metrics", "enabled", bad[i], SM_CONF_SRC_ENV, err), SM_ECONFIG);
        assert_contains(err, "metrics.enabled: ");
        assert_contains(err, "is not a boolean");
        assert_contains(err, "(from SIGNAL_MANAGER_METRICS_ENABLED)");
        assert_true(c->metrics_enabled);
        sm_config_free(c);
    }
}

static void test_secs(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } ok[] = {
        {"30", 30000},   {"250ms", 250}, {"2s", 2000},    {"5m", 300000},
        {"1h", 3600000}, {"1 s", 1000},  {" 45 ", 45000}, {"100ms", 100},
    };
    static const char *const syntax[] = {"", "5x", "-1", "1.5s", "s", "1sec", "10 M", "ms"};
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(set1(&c, "heartbeat", "interval", ok[i].text, SM_CONF_SRC_ENV, err), 0);
        assert_int_equal(c->heartbeat_interval, ok[i].ms);
        sm_config_free(c);
    }
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        assert_int_equal(set1(&c, "heartbeat", "interval", syntax[i], SM_CONF_SRC_ENV, err),
                         SM_ECONFIG);
        assert_contains(err, "heartbeat.interval: ");
        assert_contains(err, "is not a duration");
        assert_int_equal(c->heartbeat_interval, 30000);
        sm_config_free(c);
    }
    /* bounds are in ms: 100ms..1h for heartbeat.interval */
    assert_int_equal(set1(&c, "heartbeat", "interval", "99ms", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    assert_string_equal(err, "heartbeat.interval: \"99ms\" is out of range 100ms..1h "
                             "(from --heartbeat.interval)");
    sm_config_free(c);
    assert_int_equal(set1(&c, "heartbeat", "interval", "3601", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    sm_config_free(c);
    assert_int_equal(set1(&c, "heartbeat", "interval", "60m", SM_CONF_SRC_FLAG, err), 0);
    assert_int_equal(c->heartbeat_interval, 3600000);
    sm_config_free(c);
    /* overflowing uint64 (digits or unit multiplication) is a range error */
    assert_int_equal(
        set1(&c, "heartbeat", "interval", "99999999999999999999999", SM_CONF_SRC_FLAG, err),
        SM_ECONFIG);
    assert_contains(err, "is out of range");
    sm_config_free(c);
    assert_int_equal(
        set1(&c, "heartbeat", "interval", "18446744073709551615h", SM_CONF_SRC_FLAG, err),
        SM_ECONFIG);
    assert_contains(err, "is out of range");
    sm_config_free(c);
    /* drain_timeout accepts 0 */
    assert_int_equal(set1(&c, "server", "drain_timeout", "0", SM_CONF_SRC_FLAG, err), 0);
    assert_int_equal(c->server_drain_timeout, 0);
    sm_config_free(c);
}

static void test_msecs(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    assert_int_equal(set1(&c, "database", "retry_interval", "250", SM_CONF_SRC_ENV, err), 0);
    assert_int_equal(c->database_retry_interval, 250);
    assert_int_equal(
        sm_config_set(c, "database", "retry_interval", "2s", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_int_equal(c->database_retry_interval, 2000);
    assert_int_equal(
        sm_config_set(c, "database", "retry_interval", "1m", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_int_equal(c->database_retry_interval, 60000);
    assert_int_equal(
        sm_config_set(c, "database", "retry_interval", "60001", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_string_equal(err, "database.retry_interval: \"60001\" is out of range 0..1m "
                             "(from SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL)");
    assert_int_equal(
        sm_config_set(c, "database", "retry_interval", "2m", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_int_equal(
        sm_config_set(c, "database", "retry_interval", "1.5", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_contains(err, "is not a duration");
    assert_int_equal(c->database_retry_interval, 60000);
    sm_config_free(c);
}

static void test_enum(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    assert_int_equal(set1(&c, "logging", "level", "debug", SM_CONF_SRC_ENV, err), 0);
    assert_string_equal(c->logging_level, "debug");
    /* matched case-insensitively, stored in the table's spelling */
    assert_int_equal(sm_config_set(c, "logging", "level", "WARN", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_string_equal(c->logging_level, "warn");
    assert_int_equal(sm_config_set(c, "logging", "level", "verbose", SM_CONF_SRC_ENV, err, ERRLEN),
                     SM_ECONFIG);
    assert_string_equal(err, "logging.level: \"verbose\" is not one of debug, info, warn, error "
                             "(from SIGNAL_MANAGER_LOGGING_LEVEL)");
    assert_string_equal(c->logging_level, "warn");
    assert_int_equal(sm_config_set(c, "logging", "level", "", SM_CONF_SRC_ENV, err, ERRLEN),
                     SM_ECONFIG);
    assert_int_equal(sm_config_set(c, "store", "backend", "memory", SM_CONF_SRC_FLAG, err, ERRLEN),
                     0);
    assert_string_equal(c->store_backend, "memory");
    assert_int_equal(sm_config_set(c, "webrtc", "mode", "sfu", SM_CONF_SRC_FLAG, err, ERRLEN),
                     SM_ECONFIG);
    assert_contains(err, "is not one of p2p");
    sm_config_free(c);
}

static void test_list(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    assert_int_equal(set1(&c, "auth", "auth_method", " jwt , TOKEN ", SM_CONF_SRC_ENV, err), 0);
    assert_int_equal(c->auth_auth_method.n, 2);
    assert_string_equal(c->auth_auth_method.items[0], "jwt");
    assert_string_equal(c->auth_auth_method.items[1], "token");
    assert_true(sm_strlist_contains(&c->auth_auth_method, "jwt"));
    assert_false(sm_strlist_contains(&c->auth_auth_method, "store"));

    assert_int_equal(
        sm_config_set(c, "auth", "auth_method", "token,,jwt", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_contains(err, "auth.auth_method: item 2 of \"token,,jwt\" is empty");
    assert_int_equal(
        sm_config_set(c, "auth", "auth_method", "token,", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_int_equal(
        sm_config_set(c, "auth", "auth_method", "token,magic", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_string_equal(err, "auth.auth_method: \"magic\" is not one of token, jwt, store "
                             "(from SIGNAL_MANAGER_AUTH_AUTH_METHOD)");
    assert_int_equal(c->auth_auth_method.n, 2); /* unchanged by the errors */

    /* an empty value is an empty list (finish then rejects it for auth_method) */
    assert_int_equal(sm_config_set(c, "auth", "auth_method", "", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_int_equal(c->auth_auth_method.n, 0);
    assert_int_equal(sm_config_finish(c, err, ERRLEN), SM_ECONFIG);
    assert_contains(err, "auth.auth_method: at least one method is required");

    /* lists without choices take any non-empty item; secret values never
     * appear in messages */
    assert_int_equal(
        sm_config_set(c, "auth", "api_keys", "a:b, c:d,e:f", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_int_equal(c->auth_api_keys.n, 3);
    assert_string_equal(c->auth_api_keys.items[1], "c:d");
    assert_int_equal(
        sm_config_set(c, "auth", "api_keys", "a:sekrit,,c:d", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_contains(err, "auth.api_keys: item 2 is empty");
    assert_not_contains(err, "sekrit");
    sm_config_free(c);
}

static void test_string(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    /* strings from env/flags are taken exactly, blanks included */
    assert_int_equal(set1(&c, "logging", "file", " /var/log/sm.log", SM_CONF_SRC_ENV, err), 0);
    assert_string_equal(c->logging_file, " /var/log/sm.log");
    assert_int_equal(sm_config_set(c, "logging", "file", "", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    assert_string_equal(c->logging_file, "");
    assert_int_equal(sm_config_set(c, "logging", "file", "a\nb", SM_CONF_SRC_ENV, err, ERRLEN),
                     SM_ECONFIG);
    assert_contains(err, "logging.file: ");
    assert_contains(err, "control character");
    assert_int_equal(
        sm_config_set(c, "auth", "token_secret", "abc\tdef-hidden", SM_CONF_SRC_ENV, err, ERRLEN),
        SM_ECONFIG);
    assert_contains(err, "auth.token_secret: the value contains a control character");
    assert_not_contains(err, "hidden");
    sm_config_free(c);
}

static void test_set_unknown(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    assert_int_equal(set1(&c, "server", "prot", "1", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    assert_contains(err, "server.prot: unknown key");
    sm_config_free(c);
    assert_int_equal(set1(&c, "serv", "port", "1", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    assert_contains(err, "serv.port: unknown section [serv]");
    sm_config_free(c);
    /* secrets are refused from the flag source even through the API */
    assert_int_equal(set1(&c, "auth", "token_secret", "x", SM_CONF_SRC_FLAG, err), SM_ECONFIG);
    assert_contains(err, "auth.token_secret: is a secret");
    assert_contains(err, "SIGNAL_MANAGER_AUTH_TOKEN_SECRET");
    sm_config_free(c);
}

/* ---- ini files -------------------------------------------------------- */

static void test_file_values(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    int rc = load_text(&c,
                       "; comment\n"
                       "# another comment\n"
                       "[server]\n"
                       "host = \"0.0.0.0\"\n"
                       "  port = 9001   ; inline comment\n"
                       "\tmax_connections=5\r\n"
                       "connection_timeout = \"2m\"\n"
                       "instance_id = \" spaced \"\n"
                       "\n"
                       "[Logging]\n"
                       "Level = \" Debug \"\n"
                       "file = \"\"\n"
                       "[auth]\n"
                       "auth_method = \"token, jwt\"\n"
                       "api_keys = \"a:1\", \"b:2\"\n"
                       "token_secret = \"0123456789abcdef0123456789abcdef\"\n",
                       err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->server_host, "0.0.0.0");
    assert_int_equal(c->server_port, 9001);
    assert_int_equal(c->server_max_connections, 5);
    assert_int_equal(c->server_connection_timeout, 120000);
    assert_string_equal(c->server_instance_id, " spaced ");
    assert_string_equal(c->logging_level, "debug");
    assert_string_equal(c->logging_file, "");
    assert_int_equal(c->auth_auth_method.n, 2);
    assert_string_equal(c->auth_auth_method.items[1], "jwt");
    assert_int_equal(c->auth_api_keys.n, 2);
    assert_string_equal(c->auth_api_keys.items[0], "a:1");
    assert_string_equal(c->auth_api_keys.items[1], "b:2");
    assert_string_equal(c->auth_token_secret, "0123456789abcdef0123456789abcdef");
    assert_string_equal(c->config_path, "t.ini");
    assert_int_equal(sm_config_finish(c, err, ERRLEN), 0);
    sm_config_free(c);
}

/* The source document's TOML example, minus its multi-line api_keys array,
 * pastes as is. */
static void test_file_toml_example(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    int rc = load_text(&c,
                       "[server]\nhost = \"127.0.0.1\"\nport = 8080\nmax_connections = 1000\n"
                       "connection_timeout = 30\nregistration_timeout = 10\ntls_enabled = false\n"
                       "[auth]\ntoken_secret = \"your-secret-key-change-in-production\"\n"
                       "token_expiry = 3600\nauth_method = \"token\"\n"
                       "[heartbeat]\ninterval = 30\ntimeout = 90\n"
                       "[webrtc]\nsession_timeout = 300\ncloudflare_timeout = 10\n"
                       "[database]\noperation_timeout = 5\nretry_attempts = 3\n"
                       "retry_interval = 100\n"
                       "[logging]\nlevel = \"info\"\nformat = \"json\"\nconsole_output = true\n"
                       "[metrics]\nenabled = true\nport = 9090\nhost = \"127.0.0.1\"\n",
                       err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->auth_token_secret, "your-secret-key-change-in-production");
    assert_int_equal(c->database_retry_interval, 100);
    assert_int_equal(c->webrtc_session_timeout, 300000);
    sm_config_free(c);

    /* its multi-line array gets a message that says what to write instead */
    rc = load_text(&c,
                   "[auth]\napi_keys = [\n    \"test_client_1:test_token_1\",\n"
                   "    \"test_client_2:test_token_2\"\n]\n",
                   err);
    assert_int_equal(rc, SM_ECONFIG);
    assert_contains(err, "t.ini:2: auth.api_keys: ");
    assert_contains(err, "TOML array");
    assert_contains(err, "api_keys[] = item");
    sm_config_free(c);
}

static void test_file_errors(void **state)
{
    static const struct {
        const char *text;
        const char *err; /* expected message, exactly */
    } cases[] = {
        {"[server]\nport = 1\n\nprot = 2\n", "t.ini:4: server.prot: unknown key"},
        {"[server]\n[serv]\nport = 1\n", "t.ini:3: serv.port: unknown section [serv]"},
        {"port = 1\n", "t.ini:1: port: key outside any [section]"},
        {"[server]\nport = 70000\n", "t.ini:2: server.port: \"70000\" is out of range 0..65535"},
        {"[server]\nport = \"80\n", "t.ini:2: server.port: unbalanced double quote in \"\"80\""},
        {"[server]\nport = 1\nport = 2\n",
         "t.ini:3: server.port: set twice in this file (first on line 2)"},
        {"[server]\nport[] = 1\n",
         "t.ini:2: server.port: not a list; \"port[]\" is only for list keys"},
        {"[auth]\napi_keys = a:b\napi_keys[] = c:d\n",
         "t.ini:3: auth.api_keys: mixes \"api_keys[] = ...\" with \"api_keys = ...\" (line 2); "
         "use one form"},
        {"[auth]\napi_keys[] = c:d\napi_keys = a:b\n",
         "t.ini:3: auth.api_keys: mixes \"api_keys = ...\" with \"api_keys[] = ...\" (line 2); "
         "use one form"},
        {"[auth]\napi_keys[] =\n", "t.ini:2: auth.api_keys: empty item"},
        {"[server]\nport 1\n", "t.ini:2: syntax error: expected \"[section]\" or \"key = value\""},
        {"[server\nport = 1\n", "t.ini:1: syntax error: expected \"[section]\" or \"key = value\""},
        /* a syntax error before a bad value is reported first */
        {"[server]\njunk\nport = x\n",
         "t.ini:2: syntax error: expected \"[section]\" or \"key = value\""},
        /* values of secrets never appear in messages */
        {"[auth]\napi_keys = \"a:topsecret\n",
         "t.ini:2: auth.api_keys: item 1 has an unbalanced double quote"},
    };
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = load_text(&c, cases[i].text, err);
        if (rc != SM_ECONFIG || strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, cases[i].err);
        assert_null(c->config_path);
        sm_config_free(c);
    }

    /* a missing file names the path */
    c = sm_config_new_defaults();
    assert_int_equal(sm_config_load_file(c, "no-such.ini", err, ERRLEN), SM_ECONFIG);
    assert_contains(err, "no-such.ini: cannot open the config file");
    sm_config_free(c);
}

static void test_file_long_lines(void **state)
{
    char err[ERRLEN], text[2048], item[64];
    sm_config_t *c;
    (void)state;

    /* a long comment is fine, and does not shift the line numbers */
    memset(text, 0, sizeof text);
    strcpy(text, "# ");
    memset(text + 2, 'x', 500);
    strcat(text, "\n[server]\nport = 1\nbad = 2\n");
    assert_int_equal(load_text(&c, text, err), SM_ECONFIG);
    assert_string_equal(err, "t.ini:4: server.bad: unknown key");
    sm_config_free(c);

    /* a long value line is an error naming the line, not a silent cut */
    strcpy(text, "[auth]\napi_keys = ");
    for (int i = 0; i < 20; i++) {
        snprintf(item, sizeof item, "%sclient_%02d:token_%02d", i ? "," : "", i, i);
        strcat(text, item);
    }
    strcat(text, "\n");
    assert_int_equal(load_text(&c, text, err), SM_ECONFIG);
    assert_contains(err, "t.ini:2: line is longer than");
    sm_config_free(c);

    /* the same list as key[] lines loads */
    strcpy(text, "[auth]\n");
    for (int i = 0; i < 20; i++) {
        snprintf(item, sizeof item, "api_keys[] = client_%02d:token_%02d\n", i, i);
        strcat(text, item);
    }
    assert_int_equal(load_text(&c, text, err), 0);
    assert_int_equal(c->auth_api_keys.n, 20);
    assert_string_equal(c->auth_api_keys.items[19], "client_19:token_19");
    sm_config_free(c);
}

static void test_file_list_lines(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    (void)state;

    /* the first key[] replaces the default list, further ones append */
    int rc = load_text(&c,
                       "[auth]\n"
                       "api_keys[] = alice:one\n"
                       "api_keys[] = \"bob:two\"\n"
                       "api_keys [] = carol:three, dave:four\n"
                       "auth_method[] = jwt\n"
                       "auth_method[] = token\n",
                       err);
    assert_int_equal(rc, 0);
    assert_int_equal(c->auth_api_keys.n, 4);
    assert_string_equal(c->auth_api_keys.items[0], "alice:one");
    assert_string_equal(c->auth_api_keys.items[1], "bob:two");
    assert_string_equal(c->auth_api_keys.items[2], "carol:three");
    assert_string_equal(c->auth_api_keys.items[3], "dave:four");
    assert_int_equal(c->auth_auth_method.n, 2);
    assert_string_equal(c->auth_auth_method.items[0], "jwt");
    assert_string_equal(c->auth_auth_method.items[1], "token");

    /* a second file starts over: its first key[] replaces again */
    write_file("u.ini", "[auth]\napi_keys[] = erin:five\n");
    assert_int_equal(sm_config_load_file(c, "u.ini", err, ERRLEN), 0);
    assert_int_equal(c->auth_api_keys.n, 1);
    assert_string_equal(c->auth_api_keys.items[0], "erin:five");
    assert_string_equal(c->config_path, "u.ini");

    /* a bad item leaves the list as it was */
    write_file("v.ini", "[auth]\nauth_method[] = token\nauth_method[] = magic\n");
    assert_int_equal(sm_config_load_file(c, "v.ini", err, ERRLEN), SM_ECONFIG);
    assert_string_equal(err,
                        "v.ini:3: auth.auth_method: \"magic\" is not one of token, jwt, store");
    sm_config_free(c);
}

/* ---- precedence: defaults < file < env < flags ----------------------- */

static void test_precedence(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    sm_config_action_t action;
    (void)state;

    write_file("p.ini", "[server]\nport = 1111\nhost = 10.0.0.1\nmax_connections = 7\n"
                        "[logging]\nlevel = warn\n");
    char **envp = ENVP("PATH=/usr/bin", "SIGNAL_MANAGER_SERVER_PORT=2222",
                       "SIGNAL_MANAGER_SERVER_HOST=10.0.0.2", "signal_manager_server_port=5",
                       "SIGNAL_MANAGER_AUTH_TOKEN_SECRET=from-env");

    /* file only */
    assert_int_equal(from_args(ARGV("--config", "p.ini"), NOENV, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_RUN);
    assert_int_equal(c->server_port, 1111);
    assert_string_equal(c->config_path, "p.ini");
    sm_config_free(c);

    /* env beats file; keys only in the file stay */
    assert_int_equal(from_args(ARGV("--config=p.ini"), envp, &c, &action, err), 0);
    assert_int_equal(c->server_port, 2222);
    assert_string_equal(c->server_host, "10.0.0.2");
    assert_int_equal(c->server_max_connections, 7);
    assert_string_equal(c->logging_level, "warn");
    assert_string_equal(c->auth_token_secret, "from-env");
    sm_config_free(c);

    /* flags beat env, in any position; --check-config is an action */
    assert_int_equal(from_args(ARGV("--server.port=3333", "--config", "p.ini", "--check-config",
                                    "--logging.level=error"),
                               envp, &c, &action, err),
                     0);
    assert_int_equal(action, SM_CONFIG_CHECK);
    assert_int_equal(c->server_port, 3333);
    assert_string_equal(c->server_host, "10.0.0.2");
    assert_string_equal(c->logging_level, "error");
    assert_true(strlen(c->instance_id) > strlen(":3333"));
    sm_config_free(c);

    /* a flag's bad value names the flag */
    assert_int_equal(from_args(ARGV("--server.port=x"), NOENV, &c, &action, err), SM_ECONFIG);
    assert_null(c);
    assert_string_equal(err, "server.port: \"x\" is not an integer (from --server.port)");
}

static void test_env_errors(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    sm_config_action_t action;
    (void)state;

    assert_int_equal(from_args(NOARGS, ENVP("SIGNAL_MANAGER_SERVER_PROT=1"), &c, &action, err),
                     SM_ECONFIG);
    assert_null(c);
    assert_contains(err, "SIGNAL_MANAGER_SERVER_PROT: unknown environment variable");

    assert_int_equal(
        from_args(NOARGS, ENVP("SIGNAL_MANAGER_SERVICE_HOST=10.1.2.3"), &c, &action, err),
        SM_ECONFIG);
    assert_contains(err, "SIGNAL_MANAGER_SERVICE_HOST: unknown environment variable");
    assert_contains(err, "enableServiceLinks");

    assert_int_equal(
        from_args(NOARGS, ENVP("SIGNAL_MANAGER_HEARTBEAT_TIMEOUT=soon"), &c, &action, err),
        SM_ECONFIG);
    assert_string_equal(err, "heartbeat.timeout: \"soon\" is not a duration (a whole number, "
                             "bare = seconds, or with a unit: ms, s, m, h) "
                             "(from SIGNAL_MANAGER_HEARTBEAT_TIMEOUT)");

    /* the API entry point alone */
    c = sm_config_new_defaults();
    assert_int_equal(sm_config_apply_env(c,
                                         ENVP("SIGNAL_MANAGER_STORE_BACKEND=memory",
                                              "SIGNAL_MANAGER_AUTH_API_KEYS=x:y"),
                                         err, ERRLEN),
                     0);
    assert_string_equal(c->store_backend, "memory");
    assert_int_equal(c->auth_api_keys.n, 1);
    assert_int_equal(sm_config_apply_env(c, NULL, err, ERRLEN), 0);
    sm_config_free(c);
}

static void test_flags(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    sm_config_action_t action;
    (void)state;

    assert_int_equal(from_args(ARGV("--auth.token_secret=abc"), NOENV, &c, &action, err),
                     SM_ECONFIG);
    assert_null(c);
    assert_contains(err, "auth.token_secret: is a secret and cannot be set on the command line");
    assert_contains(err, "config file or in SIGNAL_MANAGER_AUTH_TOKEN_SECRET");
    assert_not_contains(err, "abc");
    assert_int_equal(from_args(ARGV("--auth.api_keys=a:b"), NOENV, &c, &action, err), SM_ECONFIG);
    assert_contains(err, "auth.api_keys: is a secret");

    static const struct {
        const char *arg;
        const char *err;
    } bad[] = {
        {"--bogus", "--bogus: unknown option (see --help)"},
        {"stray", "stray: unknown argument (see --help)"},
        {"--server.prot=1", "--server.prot: unknown key (see --print-config=markdown)"},
        {"--serv.port=1", "--serv.port: unknown section (see --print-config=markdown)"},
        {"--server.port", "--server.port needs a value: --server.port=VALUE"},
        {"--print-config=xml", "--print-config: \"xml\" is not a format (ini or markdown)"},
        {"--config=", "--config needs a PATH"},
        {"--config", "--config needs a PATH"},
        {"-x", "-x: unknown option (see --help)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = from_args(ARGV((char *)bad[i].arg), NOENV, &c, &action, err);
        if (rc != SM_ECONFIG || strcmp(err, bad[i].err) != 0)
            fail_msg("%s: rc %d, err \"%s\", want \"%s\"", bad[i].arg, rc, err, bad[i].err);
        assert_null(c);
    }
    assert_int_equal(from_args(ARGV("--config=a", "--config", "b"), NOENV, &c, &action, err),
                     SM_ECONFIG);
    assert_string_equal(err, "--config given twice");

    /* --config must exist; the error names the path */
    assert_int_equal(from_args(ARGV("--config", "missing.ini"), NOENV, &c, &action, err),
                     SM_ECONFIG);
    assert_contains(err, "missing.ini: cannot open the config file");
    assert_null(c);
}

static void test_actions(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    sm_config_action_t action;
    (void)state;

    /* informational actions succeed even with a broken environment */
    char **broken = ENVP("SIGNAL_MANAGER_NOPE=1");
    assert_int_equal(from_args(ARGV("--help"), broken, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_HELP);
    assert_non_null(c);
    assert_null(c->print_format);
    sm_config_free(c);
    assert_int_equal(from_args(ARGV("-h"), broken, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_HELP);
    sm_config_free(c);
    assert_int_equal(from_args(ARGV("--version"), broken, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_VERSION);
    sm_config_free(c);
    assert_int_equal(from_args(ARGV("--print-config=markdown"), broken, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_PRINT);
    assert_string_equal(c->print_format, "markdown");
    sm_config_free(c);
    assert_int_equal(from_args(ARGV("--print-config"), NOENV, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_PRINT);
    assert_string_equal(c->print_format, "ini");
    sm_config_free(c);
    /* but not with a broken --check-config */
    assert_int_equal(from_args(ARGV("--check-config"), broken, &c, &action, err), SM_ECONFIG);
    assert_int_equal(from_args(NOARGS, NOENV, &c, &action, err), 0);
    assert_int_equal(action, SM_CONFIG_RUN);
    sm_config_free(c);

    /* usage mentions every flag */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sm_config_print_usage("sm", f);
    fclose(f);
    assert_contains(text, "Usage: sm ");
    assert_contains(text, "--config PATH");
    assert_contains(text, "--check-config");
    assert_contains(text, "--print-config=");
    assert_contains(text, "--version");
    assert_contains(text, "--help");
    assert_contains(text, "--<section>.<key>=VALUE");
    free(text);
    assert_int_equal(sm_config_print_reference("xml", stdout), SM_EINVAL);
    assert_int_equal(sm_config_print_reference(NULL, stdout), SM_EINVAL);
}

/* conf/signal-manager.ini in the current directory is read when present. */
static void test_default_path(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    sm_config_action_t action;
    (void)state;

    assert_int_equal(from_args(NOARGS, NOENV, &c, &action, err), 0);
    assert_null(c->config_path);
    sm_config_free(c);

    assert_int_equal(mkdir("conf", 0700), 0);
    write_file("conf/signal-manager.ini", "[server]\nport = 4444\n");
    assert_int_equal(from_args(NOARGS, NOENV, &c, &action, err), 0);
    assert_string_equal(c->config_path, "conf/signal-manager.ini");
    assert_int_equal(c->server_port, 4444);
    sm_config_free(c);

    /* --config replaces it */
    write_file("other.ini", "[server]\nhost = ::1\n");
    assert_int_equal(from_args(ARGV("--config", "other.ini"), NOENV, &c, &action, err), 0);
    assert_int_equal(c->server_port, 8080);
    assert_string_equal(c->server_host, "::1");
    sm_config_free(c);

    /* a broken default file is an error too */
    write_file("conf/signal-manager.ini", "[server]\nport = many\n");
    assert_int_equal(from_args(NOARGS, NOENV, &c, &action, err), SM_ECONFIG);
    assert_string_equal(err, "conf/signal-manager.ini:2: server.port: \"many\" is not an integer");

    assert_int_equal(remove("conf/signal-manager.ini"), 0);
    assert_int_equal(remove("conf"), 0);
}

/* ---- cross-key checks ------------------------------------------------- */

static void expect_finish(const char *const *env, const char *want)
{
    char err[ERRLEN];
    sm_config_t *c = sm_config_new_defaults();
    int rc = sm_config_apply_env(c, (char *const *)env, err, ERRLEN);
    if (rc != 0)
        fail_msg("env: %s", err);
    err[0] = '\0';
    rc = sm_config_finish(c, err, ERRLEN);
    if (want == NULL && rc != 0)
        fail_msg("unexpected finish error: %s", err);
    if (want != NULL && (rc != SM_ECONFIG || strstr(err, want) == NULL))
        fail_msg("finish: rc %d, err \"%s\", want \"%s\"", rc, err, want);
    sm_config_free(c);
}

static void test_finish(void **state)
{
    (void)state;
    expect_finish((const char *const[]){"SIGNAL_MANAGER_SERVER_TLS_ENABLED=true", NULL},
                  "server.tls_cert_path: required when server.tls_enabled = true");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_SERVER_TLS_ENABLED=true",
                                        "SIGNAL_MANAGER_SERVER_TLS_CERT_PATH=/c.pem", NULL},
                  "server.tls_key_path: required when server.tls_enabled = true");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_SERVER_TLS_ENABLED=true",
                                        "SIGNAL_MANAGER_SERVER_TLS_CERT_PATH=/c.pem",
                                        "SIGNAL_MANAGER_SERVER_TLS_KEY_PATH=/k.pem", NULL},
                  NULL);

    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_AUTH_METHOD=token,jwt", NULL},
                  "auth.token_secret: must be at least 32 bytes");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_AUTH_METHOD=jwt",
                                        "SIGNAL_MANAGER_AUTH_TOKEN_SECRET="
                                        "0123456789abcdef0123456789abcde",
                                        NULL},
                  "(it has 31)");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_AUTH_METHOD=jwt",
                                        "SIGNAL_MANAGER_AUTH_TOKEN_SECRET="
                                        "0123456789abcdef0123456789abcdef",
                                        NULL},
                  NULL);

    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=a:b,nocolon", NULL},
                  "auth.api_keys: item 2 is not \"client_id:token\"");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=a:", NULL},
                  "auth.api_keys: item 1 is not \"client_id:token\"");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=:tok", NULL},
                  "auth.api_keys: item 1 is not \"client_id:token\"");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=bad id:tok", NULL},
                  "auth.api_keys: item 1: client_id may only contain");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=a:1,b:2,a:3", NULL},
                  "auth.api_keys: items 1 and 3 have the same client_id");
    /* client_ids may contain ':' and '@'; the token is after the last ':' */
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=user@x.org:dev-1:t0k", NULL},
                  NULL);
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=a:b c", NULL},
                  "auth.api_keys: item 1: the token must be 1-8192 printable ASCII characters");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=", NULL},
                  "auth.api_keys: empty, but auth.auth_method includes token");
    /* api_keys only matter to the token method */
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_API_KEYS=",
                                        "SIGNAL_MANAGER_AUTH_"
                                        "AUTH_METHOD=jwt",
                                        "SIGNAL_MANAGER_AUTH_TOKEN_SECRET="
                                        "0123456789abcdef0123456789abcdef",
                                        NULL},
                  NULL);
    expect_finish((const char *const[]){"SIGNAL_MANAGER_AUTH_AUTH_METHOD=token,TOKEN", NULL},
                  "auth.auth_method: \"token\" is listed twice");
    char longid[200];
    memset(longid, 0, sizeof longid);
    strcpy(longid, "SIGNAL_MANAGER_AUTH_API_KEYS=");
    memset(longid + strlen(longid), 'a', 129);
    strcat(longid, ":t");
    expect_finish((const char *const[]){longid, NULL}, "client_id is longer than 128");

    expect_finish((const char *const[]){"SIGNAL_MANAGER_HEARTBEAT_TIMEOUT=30", NULL},
                  "heartbeat.timeout: 30s must be longer than heartbeat.interval (30s)");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_HEARTBEAT_INTERVAL=100ms",
                                        "SIGNAL_MANAGER_HEARTBEAT_TIMEOUT=101ms", NULL},
                  NULL);

    expect_finish((const char *const[]){"SIGNAL_MANAGER_METRICS_PORT=8080", NULL},
                  "metrics.port: 8080 is also server.port on the same host");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_METRICS_PORT=8080",
                                        "SIGNAL_MANAGER_METRICS_HOST=0.0.0.0", NULL},
                  "metrics.port: 8080 is also server.port");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_METRICS_PORT=8080",
                                        "SIGNAL_MANAGER_METRICS_ENABLED=false", NULL},
                  NULL);
    expect_finish((const char *const[]){"SIGNAL_MANAGER_METRICS_PORT=8080",
                                        "SIGNAL_MANAGER_METRICS_HOST=127.0.0.2", NULL},
                  NULL);
    expect_finish((const char *const[]){"SIGNAL_MANAGER_METRICS_PORT=0",
                                        "SIGNAL_MANAGER_SERVER_PORT=0", NULL},
                  NULL);

    expect_finish((const char *const[]){"SIGNAL_MANAGER_STORE_PATH=", NULL},
                  "store.path: must not be empty when store.backend = sqlite");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_STORE_PATH=",
                                        "SIGNAL_MANAGER_STORE_BACKEND=memory", NULL},
                  NULL);
    expect_finish((const char *const[]){"SIGNAL_MANAGER_EVENTS_PATH=", NULL},
                  "events.path: must not be empty when events.backend = log");

    /* trusted_proxies is parsed by the checks, so --check-config refuses a bad list. */
    expect_finish((const char *const[]){"SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES=garbage", NULL},
                  "server.trusted_proxies: item 1 \"garbage\": not an IPv4 or IPv6 address");
    expect_finish(
        (const char *const[]){"SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES=10.0.0.0/8, ::1/129", NULL},
        "server.trusted_proxies: item 2 \"::1/129\": IPv6 prefix length must be 0..128");
    expect_finish(
        (const char *const[]){"SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES=10.0.0.0/8,,::1", NULL},
        "server.trusted_proxies: item 2 \"\": empty item");
    expect_finish((const char *const[]){"SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES=10.0.0.0/8, ::1",
                                        "SIGNAL_MANAGER_SERVER_PROXY_PROTOCOL=v2", NULL},
                  NULL);
    expect_finish((const char *const[]){"SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES=  ", NULL}, NULL);
}

static void test_derived(void **state)
{
    char err[ERRLEN];
    sm_config_t *c = sm_config_new_defaults();
    (void)state;

    assert_int_equal(sm_config_apply_env(c,
                                         ENVP("SIGNAL_MANAGER_SERVER_IO_THREADS=3",
                                              "SIGNAL_MANAGER_SERVER_WORKERS=5",
                                              "SIGNAL_MANAGER_SERVER_INSTANCE_ID=node-a"),
                                         err, ERRLEN),
                     0);
    assert_int_equal(sm_config_finish(c, err, ERRLEN), 0);
    assert_int_equal(c->io_threads, 3);
    assert_int_equal(c->workers, 5);
    assert_string_equal(c->instance_id, "node-a");
    /* finish may run again (no leak, same result) */
    assert_int_equal(sm_config_finish(c, err, ERRLEN), 0);
    assert_string_equal(c->instance_id, "node-a");
    sm_config_free(c);
}

/* ---- dump and reference ----------------------------------------------- */

static void test_dump_hides_secrets(void **state)
{
    char err[ERRLEN];
    sm_config_t *c;
    sm_config_action_t action;
    (void)state;

    assert_int_equal(from_args(ARGV("--check-config"),
                               ENVP("SIGNAL_MANAGER_AUTH_TOKEN_SECRET=hunter2hunter2hunter2hunter2"
                                    "hunter2",
                                    "SIGNAL_MANAGER_AUTH_AUTH_METHOD=jwt,token",
                                    "SIGNAL_MANAGER_SERVER_PORT=7000",
                                    "SIGNAL_MANAGER_SERVER_INSTANCE_ID=node-7"),
                               &c, &action, err),
                     0);
    char *text = capture_dump(c);
    assert_not_contains(text, "hunter2");
    assert_not_contains(text, "test_token_1");
    assert_not_contains(text, "test_client_1");
    assert_contains(text, "\n[auth]\nauth_method = jwt,token\napi_keys = ***\n"
                          "token_secret = ***\ntoken_expiry = 3600\n");
    assert_contains(text, "\n[server]\nhost = 127.0.0.1\nport = 7000\n");
    assert_contains(text, "connection_timeout = 30s\n");
    assert_contains(text, "retry_interval = 100ms\n");
    assert_contains(text, "session_timeout = 5m\n");
    assert_contains(text, "tls_cert_path = \"\"\n");
    assert_contains(text, "instance_id = node-7");
    assert_contains(text, "# config file: none\n");
    free(text);

    /* an empty secret shows as empty, so an operator sees it is unset */
    assert_int_equal(sm_config_set(c, "auth", "token_secret", "", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    text = capture_dump(c);
    assert_contains(text, "token_secret = \"\"\n");
    free(text);
    sm_config_free(c);
}

/* The dump is an ini file: loading it gives the same configuration. */
static void test_dump_roundtrip(void **state)
{
    char err[ERRLEN];
    sm_config_t *c = sm_config_new_defaults(), *d;
    (void)state;

    assert_int_equal(sm_config_apply_env(c,
                                         ENVP("SIGNAL_MANAGER_SERVER_INSTANCE_ID= padded ",
                                              "SIGNAL_MANAGER_LOGGING_FILE=\"quoted\"",
                                              "SIGNAL_MANAGER_HEARTBEAT_TIMEOUT=1500ms",
                                              "SIGNAL_MANAGER_AUTH_AUTH_METHOD=jwt"),
                                         err, ERRLEN),
                     0);
    char *text = capture_dump(c);
    /* secrets are masked: load the dump with them emptied */
    for (char *p = strstr(text, "***"); p != NULL; p = strstr(p, "***")) {
        memcpy(p, "\"\"", 2);
        memmove(p + 2, p + 3, strlen(p + 3) + 1);
    }
    write_file("dump.ini", text);
    free(text);

    d = sm_config_new_defaults();
    assert_int_equal(sm_config_load_file(d, "dump.ini", err, ERRLEN), 0);
    assert_string_equal(d->server_instance_id, " padded ");
    assert_string_equal(d->logging_file, "\"quoted\"");
    assert_int_equal(d->heartbeat_timeout, 1500);
    assert_int_equal(d->auth_auth_method.n, 1);
    assert_int_equal(d->auth_api_keys.n, 0);
    /* equal apart from the masked secrets and the file name */
    assert_int_equal(sm_config_set(c, "auth", "api_keys", "", SM_CONF_SRC_ENV, err, ERRLEN), 0);
    char *a = capture_dump(c), *b;
    free(d->config_path);
    d->config_path = NULL;
    b = capture_dump(d);
    assert_string_equal(a, b);
    free(a);
    free(b);
    sm_config_free(c);
    sm_config_free(d);
}

static bool regen(void)
{
    const char *v = getenv("SM_CONFIG_REGEN");
    return v != NULL && strcmp(v, "1") == 0;
}

static void test_reference_ini_drift(void **state)
{
    char *want = capture_reference("ini");
    char *have;
    (void)state;

    if (regen()) {
        FILE *f = fopen(REF_INI, "w");
        assert_non_null(f);
        fputs(want, f);
        assert_int_equal(fclose(f), 0);
    }
    have = read_file(REF_INI);
    if (have == NULL)
        fail_msg("cannot read %s", REF_INI);
    if (strcmp(have, want) != 0)
        fail_msg("%s differs from `signal-manager --print-config=ini`; regenerate it with "
                 "SM_CONFIG_REGEN=1 build/tests/unit/config/test_config",
                 REF_INI);
    free(have);
    free(want);
}

/* The committed reference file, loaded, is exactly the defaults. */
static void test_reference_ini_is_defaults(void **state)
{
    char err[ERRLEN];
    sm_config_t *c = sm_config_new_defaults(), *d = sm_config_new_defaults();
    (void)state;

    if (sm_config_load_file(c, REF_INI, err, ERRLEN) != 0)
        fail_msg("%s", err);
    char *text = capture_reference("ini");
    write_file("ref.ini", text);
    free(text);
    if (sm_config_load_file(d, "ref.ini", err, ERRLEN) != 0)
        fail_msg("%s", err);
    sm_config_t *def = sm_config_new_defaults();
    free(c->config_path);
    free(d->config_path);
    c->config_path = d->config_path = NULL;
    char *a = capture_dump(c), *b = capture_dump(d), *e = capture_dump(def);
    sm_config_free(def);
    /* the dump masks secrets: check those directly */
    assert_string_equal(a, e);
    assert_string_equal(b, e);
    assert_string_equal(c->auth_api_keys.items[1], "test_client_2:test_token_2");
    assert_string_equal(c->auth_token_secret, "");
    free(a);
    free(b);
    free(e);
    sm_config_free(c);
    sm_config_free(d);
}

static void test_reference_ini_content(void **state)
{
    char *text = capture_reference("ini");
    (void)state;

    assert_contains(text, "\n[server]\n");
    assert_contains(text, "\n[limits]\n");
    assert_contains(text, "\n# TCP port of the WebSocket/HTTP listener (0 = pick a free port, "
                          "logged at\n# start)\n# Type: integer 0..65535\n# Default: 8080\n"
                          "# Env: SIGNAL_MANAGER_SERVER_PORT\nport = 8080\n");
    assert_contains(text, "# Env: SIGNAL_MANAGER_AUTH_TOKEN_SECRET (secret: not accepted as a "
                          "flag)\ntoken_secret = \"\"\n");
    assert_contains(text, "api_keys = test_client_1:test_token_1,test_client_2:test_token_2\n");
    /* every line fits the ini reader and a terminal */
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        if (nl - line > 100)
            fail_msg("reference line longer than 100 characters: %.*s", (int)(nl - line), line);
        line = nl + 1;
    }
    free(text);
}

/* The generated table between the markers of a markdown file matches. */
static void check_markdown_block(const char *path, const char *table)
{
    char *doc = read_file(path);
    char *begin, *end;

    if (doc == NULL)
        fail_msg("cannot read %s", path);
    begin = strstr(doc, MD_BEGIN);
    end = begin ? strstr(begin, MD_END) : NULL;
    if (begin == NULL || end == NULL)
        fail_msg("%s lacks the markers %s and %s", path, MD_BEGIN, MD_END);
    begin += strlen(MD_BEGIN);

    if (regen()) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "%.*s\n%s\n%s", (int)(begin - doc), doc, table, end);
        assert_int_equal(fclose(f), 0);
        free(doc);
        doc = read_file(path);
        begin = strstr(doc, MD_BEGIN) + strlen(MD_BEGIN);
        end = strstr(begin, MD_END);
    }
    size_t tlen = strlen(table);
    bool same = (size_t)(end - begin) == tlen + 2 && begin[0] == '\n' &&
                memcmp(begin + 1, table, tlen) == 0 && begin[tlen + 1] == '\n';
    if (!same)
        fail_msg("the table in %s differs from `signal-manager --print-config=markdown`; "
                 "regenerate it with SM_CONFIG_REGEN=1 build/tests/unit/config/test_config",
                 path);
    free(doc);
}

static void test_reference_markdown_drift(void **state)
{
    char *table = capture_reference("markdown");
    (void)state;

    check_markdown_block(REF_MD, table);
    check_markdown_block(REF_README, table);
    assert_contains(table, "| `server.port` | integer 0..65535 | `8080` | "
                           "`SIGNAL_MANAGER_SERVER_PORT` | TCP port of the WebSocket/HTTP");
    assert_contains(table, "| Key | Type | Default | Env variable | Description |\n");
    assert_contains(table, "### [auth]\n");
    free(table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_secs),
        cmocka_unit_test(test_msecs),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_set_unknown),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_toml_example),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_long_lines),
        cmocka_unit_test(test_file_list_lines),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_finish),
        cmocka_unit_test(test_derived),
        cmocka_unit_test(test_dump_hides_secrets),
        cmocka_unit_test(test_dump_roundtrip),
        cmocka_unit_test(test_reference_ini_drift),
        cmocka_unit_test(test_reference_ini_is_defaults),
        cmocka_unit_test(test_reference_ini_content),
        cmocka_unit_test(test_reference_markdown_drift),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
