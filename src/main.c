/*
 * signal-manager: flags and configuration, logging set-up, then the server's
 * start, run (until SIGTERM/SIGINT) and stop.
 *
 * Exit codes: 0 after a stop by SIGTERM/SIGINT (also when the drain timeout
 * had to cut connections: the server did what it was asked; the log says
 * so), or after --help/--version/--check-config/--print-config; 1 when the
 * server could not start; 2 for a configuration error (the message names the
 * key).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/err.h"
#include "log/log.h"
#include "reactor/server.h"

extern char **environ;

static int open_log(const sm_config_t *cfg, char *err, size_t errlen)
{
    sm_log_level_t level = SM_LOG_INFO;
    sm_log_level_parse(cfg->logging_level, &level);
    sm_log_format_t fmt =
        strcmp(cfg->logging_format, "text") == 0 ? SM_LOG_FORMAT_TEXT : SM_LOG_FORMAT_JSON;
    int fd = cfg->logging_console_output ? 2 : -1;
    if (cfg->logging_file[0] != '\0') {
        fd = open(cfg->logging_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "logging.file: cannot open %s", cfg->logging_file);
            return SM_ECONFIG;
        }
    }
    sm_log_configure(level, fmt, fd);
    return fd;
}

int main(int argc, char **argv)
{
    char err[512] = "";
    sm_config_t *cfg = NULL;
    sm_config_action_t action;
    if (sm_config_from_args(argc, argv, environ, &cfg, &action, err, sizeof err) != 0) {
        fprintf(stderr, "signal-manager: %s\n", err);
        return 2;
    }
    switch (action) {
    case SM_CONFIG_HELP:
        sm_config_print_usage(argv[0], stdout);
        sm_config_free(cfg);
        return 0;
    case SM_CONFIG_VERSION:
        printf("signal-manager %s\n", SM_VERSION);
        sm_config_free(cfg);
        return 0;
    case SM_CONFIG_PRINT: {
        int rc = sm_config_print_reference(cfg->print_format, stdout);
        sm_config_free(cfg);
        return rc == 0 ? 0 : 2;
    }
    case SM_CONFIG_CHECK:
        sm_config_dump(cfg, stdout);
        sm_config_free(cfg);
        return 0;
    case SM_CONFIG_RUN:
        break;
    }

    int log_fd = open_log(cfg, err, sizeof err);
    if (log_fd == SM_ECONFIG) {
        fprintf(stderr, "signal-manager: %s\n", err);
        sm_config_free(cfg);
        return 2;
    }
    sm_server_t *srv = NULL;
    int rc = sm_server_start(cfg, &srv, err, sizeof err);
    if (rc != 0) {
        SM_LOG(SM_LOG_FATAL, SM_MSG("start failed"), SM_STR("error", err));
        if (!sm_log_enabled(SM_LOG_FATAL))
            fprintf(stderr, "signal-manager: %s\n", err);
        sm_server_free(srv);
        sm_config_free(cfg);
        if (log_fd > 2)
            close(log_fd);
        return rc == SM_ECONFIG ? 2 : 1;
    }
    rc = sm_server_run(srv);
    sm_server_free(srv);
    SM_LOG(SM_LOG_INFO, SM_MSG("stopped"), SM_BOOL("drained", rc == 0));
    sm_config_free(cfg);
    if (log_fd > 2)
        close(log_fd);
    return 0;
}
