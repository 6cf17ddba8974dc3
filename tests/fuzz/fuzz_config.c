/*
 * Fuzz target: the configuration file and environment parsers
 * (src/config/config.c, config_file.c on inih).  A config file is trusted
 * more than a peer, but a typo must give a clear error, never a crash, and
 * secrets must never show up in messages or in the --check-config dump.
 *
 * Input: an ini file, optionally followed by a line "%%" and environment
 * lines (an input starting with "%%" is only environment); each of those
 * (up to 16) becomes "SIGNAL_MANAGER_<line>", or the line as it is when it
 * starts with '!'.  The file is written to a memfd and
 * loaded with sm_config_load_file into sm_config_new_defaults(); then
 * sm_config_apply_env, sm_config_finish and sm_config_dump run, each step on
 * the result of the previous one even after an error.  Checked: return codes
 * are 0 or SM_ECONFIG with a non-empty one-line message; a successful finish
 * leaves sane derived fields; the dump shows secret keys as *** (or "").
 * Secrets, differentially: the same input with the letters and digits of
 * every secret-looking value rotated (same lengths, separators and character
 * classes) must give the same return codes, messages and dump.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "core/err.h"
#include "fuzz.h"

#define ENV_MAX 16

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_log();
    memfd = memfd_create("smfuzz-config", MFD_CLOEXEC);
    FUZZ_CHECK(memfd >= 0);
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    return 0;
}

/* Everything the configuration shows: the three messages and the dump. */
typedef struct {
    int rc[3];
    char err[3][512];
    char *dump;
    size_t dump_len;
} outcome_t;

static void check_msg(int rc, const char *err, size_t cap)
{
    FUZZ_CHECK(rc == 0 || rc == SM_ECONFIG);
    if (rc == 0)
        return;
    size_t len = strnlen(err, cap);
    FUZZ_CHECK(len > 0 && len < cap);
    FUZZ_CHECK(strchr(err, '\n') == NULL);
}

/* Secret keys show as *** (or "" when empty) in the dump. */
static void check_dump(const char *text)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        static const char *const keys[] = {"token_secret = ", "api_keys = "};
        for (size_t i = 0; i < 2; i++) {
            size_t kl = strlen(keys[i]);
            if (len >= kl && strncmp(line, keys[i], kl) == 0) {
                size_t vl = len - kl;
                FUZZ_CHECK((vl == 3 && strncmp(line + kl, "***", 3) == 0) ||
                           (vl == 2 && strncmp(line + kl, "\"\"", 2) == 0));
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

static void run(const uint8_t *ini, size_t ini_len, const uint8_t *env, size_t env_len,
                outcome_t *o)
{
    memset(o, 0, sizeof *o);
    FUZZ_CHECK(ftruncate(memfd, 0) == 0);
    FUZZ_CHECK(pwrite(memfd, ini, ini_len, 0) == (ssize_t)ini_len);

    sm_config_t *c = sm_config_new_defaults();
    FUZZ_CHECK(c != NULL);
    o->rc[0] = sm_config_load_file(c, memfd_path, o->err[0], sizeof o->err[0]);
    check_msg(o->rc[0], o->err[0], sizeof o->err[0]);
    FUZZ_CHECK(o->rc[0] != 0 || (c->config_path && strcmp(c->config_path, memfd_path) == 0));

    char *envp[ENV_MAX + 1];
    size_t ne = 0;
    const uint8_t *p = env, *end = env + env_len;
    while (p < end && ne < ENV_MAX) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        if (ll > 0) {
            static const char prefix[] = "SIGNAL_MANAGER_";
            size_t raw = p[0] == '!';
            size_t pl = raw ? 0 : sizeof prefix - 1;
            char *e = malloc(pl + ll + 1);
            FUZZ_CHECK(e != NULL);
            memcpy(e, prefix, pl);
            memcpy(e + pl, p + raw, ll - raw);
            e[pl + ll - raw] = '\0';
            envp[ne++] = e;
        }
        p = le + 1;
    }
    envp[ne] = NULL;
    o->rc[1] = sm_config_apply_env(c, envp, o->err[1], sizeof o->err[1]);
    check_msg(o->rc[1], o->err[1], sizeof o->err[1]);

    o->rc[2] = sm_config_finish(c, o->err[2], sizeof o->err[2]);
    check_msg(o->rc[2], o->err[2], sizeof o->err[2]);
    if (o->rc[2] == 0) {
        FUZZ_CHECK(c->io_threads >= 1 && c->workers >= 1);
        FUZZ_CHECK(c->instance_id != NULL && c->instance_id[0] != '\0');
        FUZZ_CHECK(c->heartbeat_timeout > c->heartbeat_interval);
        FUZZ_CHECK(c->auth_auth_method.n >= 1);
    }
    FILE *f = open_memstream(&o->dump, &o->dump_len);
    FUZZ_CHECK(f != NULL);
    sm_config_dump(c, f);
    fclose(f);
    check_dump(o->dump);

    sm_config_free(c);
    for (size_t i = 0; i < ne; i++)
        free(envp[i]);
}

/* The input with every letter and digit of the values of secret-looking
 * lines (a name containing "secret" or "api_keys"; not section headers) rotated (a->b, z->a,
 * 9->0): a bijection that keeps lengths, separators, quotes and the
 * character classes the checks look at, so only the secret text changes. */
static uint8_t *rotate_secrets(const uint8_t *data, size_t size, size_t ini_len)
{
    uint8_t *out = malloc(size ? size : 1);
    FUZZ_CHECK(out != NULL);
    if (size)
        memcpy(out, data, size);
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t le = nl ? (size_t)(nl - data) : size;
        /* inih splits "name = value" and "name: value" at the first of them. */
        const char *delims = off < ini_len ? "=:" : "=";
        size_t d = off;
        while (d < le && (data[d] == ' ' || data[d] == '\t'))
            d++;
        bool section = d < le && data[d] == '[' && off < ini_len;
        while (d < le && !strchr(delims, data[d]))
            d++;
        if (d < le && !section) {
            char name[64];
            size_t n = d - off < sizeof name - 1 ? d - off : sizeof name - 1;
            for (size_t i = 0; i < n; i++)
                name[i] = (char)tolower(data[off + i]);
            name[n] = '\0';
            bool secret = strstr(name, "secret") || strstr(name, "api_keys");
            if (secret && memchr(data + off, '\0', n) == NULL) {
                for (size_t i = d + 1; i < le; i++) {
                    uint8_t ch = out[i];
                    if (ch >= 'a' && ch <= 'z')
                        out[i] = ch == 'z' ? 'a' : (uint8_t)(ch + 1);
                    else if (ch >= 'A' && ch <= 'Z')
                        out[i] = ch == 'Z' ? 'A' : (uint8_t)(ch + 1);
                    else if (ch >= '0' && ch <= '9')
                        out[i] = ch == '9' ? '0' : (uint8_t)(ch + 1);
                }
            }
        }
        off = le + 1;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memmem(data, size, "\n%%\n", 4);
    size_t ini_len = sep ? (size_t)(sep - data) + 1 : size;
    size_t env_off = sep ? (size_t)(sep - data) + 4 : size;
    if (size >= 3 && memcmp(data, "%%\n", 3) == 0) { /* no file, only the environment */
        ini_len = 0;
        env_off = 3;
    }

    outcome_t a, b;
    run(data, ini_len, data + env_off, size - env_off, &a);
    uint8_t *rot = rotate_secrets(data, size, ini_len);
    run(rot, ini_len, rot + env_off, size - env_off, &b);

    /* Secrets change nothing that is shown. */
    for (int i = 0; i < 3; i++) {
        FUZZ_CHECK(a.rc[i] == b.rc[i]);
        if (strcmp(a.err[i], b.err[i]) != 0)
            fprintf(stderr, "message shows a secret:\n  %s\n  %s\n", a.err[i], b.err[i]);
        FUZZ_CHECK(strcmp(a.err[i], b.err[i]) == 0);
    }
    FUZZ_CHECK(a.dump_len == b.dump_len && memcmp(a.dump, b.dump, a.dump_len) == 0);
    free(a.dump);
    free(b.dump);
    free(rot);
    return 0;
}
