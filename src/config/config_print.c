/*
 * Configuration as text: the effective values for --check-config (secrets as
 * "***"), the reference documents generated from directives.def (the
 * commented conf/signal-manager.ini and the markdown table of
 * docs/configuration.md, both compared against the committed files by the
 * unit tests) and the --help text.  Values are printed so that they parse
 * back to the same thing: durations carry their unit, and text that the ini
 * reader would trim or unquote is wrapped in double quotes.
 */
#include "config/config.h"

#include <stdlib.h>
#include <string.h>

#include "config/config_table.h"
#include "core/assert.h"
#include "core/err.h"

#define WRAP_COLUMNS 79 /* reference file comments: readable in any editor */

/* "a|b" -> "a, b" written to out. */
static void put_choices(FILE *out, const char *choices)
{
    for (const char *p = choices; *p; p++) {
        if (*p == '|')
            fputs(", ", out);
        else
            fputc(*p, out);
    }
}

static void put_type(FILE *out, const sm__conf_directive_t *d)
{
    char lo[32], hi[32];

    switch (d->type) {
    case SM__CT_STRING:
        fputs("string", out);
        break;
    case SM__CT_INT:
        fprintf(out, "integer %lld..%lld", (long long)d->min, (long long)d->max);
        break;
    case SM__CT_BOOL:
        fputs("boolean", out);
        break;
    case SM__CT_SECS:
    case SM__CT_MSECS:
        sm__conf_format_ms((uint64_t)d->min, lo, sizeof lo);
        sm__conf_format_ms((uint64_t)d->max, hi, sizeof hi);
        fprintf(out, "duration %s..%s (bare number = %s)", lo, hi,
                d->type == SM__CT_SECS ? "seconds" : "milliseconds");
        break;
    case SM__CT_ENUM:
        fputs("one of ", out);
        put_choices(out, d->choices);
        break;
    case SM__CT_LIST:
        if (d->choices[0] != '\0') {
            fputs("list of ", out);
            put_choices(out, d->choices);
        } else {
            fputs("list", out);
        }
        break;
    }
    if (d->flags & SM_CONF_SECRET)
        fputs(", secret", out);
}

/* Text the ini reader would change (trim, unquote, take for a TOML array)
 * is quoted; an empty value is shown as "" so it is visibly empty. */
static void put_text(FILE *out, const char *v)
{
    size_t len = strlen(v);
    bool quote = len == 0 || v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' ||
                 v[len - 1] == '\t' || v[0] == '"' || v[0] == '[';
    fprintf(out, quote ? "\"%s\"" : "%s", v);
}

/* The value of d in c as ini text; "***" for a non-empty secret when mask. */
static void put_value(FILE *out, const sm_config_t *c, const sm__conf_directive_t *d, bool mask)
{
    const void *field = sm__conf_cfield(c, d);
    char buf[32];

    if (mask && (d->flags & SM_CONF_SECRET)) {
        bool empty = d->type == SM__CT_LIST
                         ? ((const sm_strlist_t *)field)->n == 0
                         : (d->type != SM__CT_STRING || (*(char *const *)field)[0] == '\0');
        fputs(empty ? "\"\"" : "***", out);
        return;
    }
    switch (d->type) {
    case SM__CT_STRING:
    case SM__CT_ENUM:
        put_text(out, *(char *const *)field);
        break;
    case SM__CT_INT:
        fprintf(out, "%lld", (long long)*(const int64_t *)field);
        break;
    case SM__CT_BOOL:
        fputs(*(const bool *)field ? "true" : "false", out);
        break;
    case SM__CT_SECS:
    case SM__CT_MSECS:
        sm__conf_format_ms(*(const uint64_t *)field, buf, sizeof buf);
        fputs(buf, out);
        break;
    case SM__CT_LIST: {
        const sm_strlist_t *l = field;
        if (l->n == 0) {
            fputs("\"\"", out);
            break;
        }
        for (size_t i = 0; i < l->n; i++)
            fprintf(out, "%s%s", i ? "," : "", l->items[i]);
        break;
    }
    }
}

void sm_config_dump(const sm_config_t *c, FILE *out)
{
    const char *section = NULL;

    fputs("# Signal Manager effective configuration (secrets shown as ***)\n", out);
    fprintf(out, "# config file: %s\n", c->config_path ? c->config_path : "none");
    fprintf(out, "# resolved: io_threads = %u, workers = %u, instance_id = %s\n", c->io_threads,
            c->workers, c->instance_id ? c->instance_id : "");
    for (size_t i = 0; i < sm__conf_count; i++) {
        const sm__conf_directive_t *d = &sm__conf_table[i];
        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(out, "\n[%s]\n", section);
        }
        fprintf(out, "%s = ", d->key);
        put_value(out, c, d, true);
        fputc('\n', out);
    }
}

/* Writes text as "# " comment lines of at most WRAP_COLUMNS, breaking at spaces. */
static void put_comment(FILE *out, const char *text)
{
    const size_t width = WRAP_COLUMNS - 2;

    while (*text) {
        size_t len = strlen(text), cut = len;
        if (len > width) {
            cut = width;
            while (cut > 0 && text[cut] != ' ')
                cut--;
            if (cut == 0) /* one word longer than a line: break after it */
                cut = strcspn(text, " ");
        }
        fprintf(out, "# %.*s\n", (int)cut, text);
        text += cut;
        while (*text == ' ')
            text++;
    }
}

static const char ini_header[] =
    "Signal Manager configuration: every key with its default value.\n"
    "\n"
    "Generated from src/config/directives.def by `signal-manager --print-config=ini`; "
    "edit the table, not this file (a unit test fails when they differ).\n"
    "\n"
    "Precedence: built-in defaults < this file < environment < command-line flags. "
    "The server reads conf/signal-manager.ini from the current directory when it "
    "exists, or the file given with --config PATH.\n"
    "\n"
    "Every key can be set with the environment variable named below it "
    "(SIGNAL_MANAGER_<SECTION>_<KEY>) or with --<section>.<key>=VALUE; secret keys "
    "only in a file or the environment.\n"
    "\n"
    "Durations take a unit (250ms, 30s, 5m, 1h); a bare number means seconds, or "
    "milliseconds where the type says so.  Booleans: true/false, yes/no, on/off, 1/0.  "
    "Lists are comma-separated on one line, or repeated \"key[] = item\" lines (the "
    "first one replaces the default list).  Values may be wrapped in double quotes.\n";

static void print_ini(FILE *out, const sm_config_t *defaults)
{
    const char *section = NULL;
    char env[SM__CONF_ENV_MAX];

    for (const char *p = ini_header; *p;) {
        const char *nl = strchr(p, '\n');
        char *para = strndup(p, (size_t)(nl - p));
        SM_ASSERT(para != NULL);
        if (para[0] == '\0')
            fputs("#\n", out);
        else
            put_comment(out, para);
        free(para);
        p = nl + 1;
    }
    for (size_t i = 0; i < sm__conf_count; i++) {
        const sm__conf_directive_t *d = &sm__conf_table[i];
        if (section == NULL || strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(out, "\n[%s]\n", section);
        }
        fputc('\n', out);
        put_comment(out, d->help);
        fputs("# Type: ", out);
        put_type(out, d);
        fputs("\n# Default: ", out);
        put_value(out, defaults, d, false);
        fputc('\n', out);
        sm__conf_env_name(d, env);
        fprintf(out, "# Env: %s%s\n", env,
                (d->flags & SM_CONF_SECRET) ? " (secret: not accepted as a flag)" : "");
        fprintf(out, "%s = ", d->key);
        put_value(out, defaults, d, false);
        fputc('\n', out);
    }
}

/* Markdown table cell text: '|' escaped, so help text cannot split a cell. */
static void put_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void print_markdown(FILE *out, const sm_config_t *defaults)
{
    const char *section = NULL;
    char env[SM__CONF_ENV_MAX];

    for (size_t i = 0; i < sm__conf_count; i++) {
        const sm__conf_directive_t *d = &sm__conf_table[i];
        if (section == NULL || strcmp(section, d->section) != 0) {
            fprintf(out, "%s### [%s]\n\n", section ? "\n" : "", d->section);
            fputs("| Key | Type | Default | Env variable | Description |\n", out);
            fputs("|-----|------|---------|--------------|-------------|\n", out);
            section = d->section;
        }
        sm__conf_env_name(d, env);
        fprintf(out, "| `%s.%s` | ", d->section, d->key);
        put_type(out, d);
        fputs(" | `", out);
        put_value(out, defaults, d, false);
        fprintf(out, "` | `%s` | ", env);
        put_cell(out, d->help);
        fputs(" |\n", out);
    }
}

int sm_config_print_reference(const char *format, FILE *out)
{
    sm_config_t *defaults;

    if (format == NULL || (strcmp(format, "ini") != 0 && strcmp(format, "markdown") != 0))
        return SM_EINVAL;
    defaults = sm_config_new_defaults();
    if (strcmp(format, "ini") == 0)
        print_ini(out, defaults);
    else
        print_markdown(out, defaults);
    sm_config_free(defaults);
    return 0;
}

void sm_config_print_usage(const char *argv0, FILE *out)
{
    fprintf(out,
            "Usage: %s [options]\n"
            "\n"
            "Signal Manager: WebSocket signaling server.\n"
            "Configuration precedence: defaults < ini file < environment < flags.\n"
            "\n"
            "Options:\n"
            "  --config PATH            ini file to read (default: conf/signal-manager.ini\n"
            "                           in the current directory, when it exists)\n"
            "  --check-config           validate the configuration, print it (secrets\n"
            "                           as ***) and exit\n"
            "  --print-config=FORMAT    print the reference of every key (ini or markdown)\n"
            "  --<section>.<key>=VALUE  set one key, e.g. --server.port=9000\n"
            "                           (secret keys only in a file or the environment)\n"
            "  --version                print the version and exit\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Environment: SIGNAL_MANAGER_<SECTION>_<KEY>=VALUE sets any key, e.g.\n"
            "SIGNAL_MANAGER_SERVER_PORT=9000; unknown SIGNAL_MANAGER_* names are errors.\n"
            "Durations: 250ms, 30s, 5m, 1h (a bare number is seconds, or ms where noted).\n",
            argv0 ? argv0 : "signal-manager");
}
