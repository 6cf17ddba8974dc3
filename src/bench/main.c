/*
 * signal-bench: command line, resource limits, one scenario run, report.
 * See bench.h for the architecture and docs/performance.md for how the
 * figures are meant to be read.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>

#include "bench/bench.h"
#include "bench/report.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: signal-bench [options] SCENARIO\n"
                 "\n"
                 "scenarios: rtt | churn | idle | route | fanout\n"
                 "  rtt     -c clients each keeping -P PINGs in flight: round trips/s, latency\n"
                 "  churn   -c at a time: connect + upgrade + CONNECT + CONNECT_ACK + close\n"
                 "  idle    -c clients CONNECTed and REGISTERed, held -d s: server RSS per conn\n"
                 "  route   -c/2 pairs exchanging SIGNALs (-P in flight, or --rate R in total)\n"
                 "  fanout  rooms of --room-size: one SIGNAL to each member, member after member\n"
                 "\n"
                 "options:\n"
                 "  --host ADDR          server address, IPv4/IPv6 literal (127.0.0.1)\n"
                 "  --port N             server port (8080)\n"
                 "  -c N                 clients (churn: handshakes in flight)\n"
                 "  -P N                 requests in flight per client/pair/room (1)\n"
                 "  -d SECONDS           measured duration (10; idle: how long to hold)\n"
                 "  --warmup SECONDS     traffic before measuring (2)\n"
                 "  -k N                 connections being set up at once (256)\n"
                 "  --room-size K        fanout: members per room (8)\n"
                 "  --rate R             route: offered SIGNALs/s in total (open loop)\n"
                 "  --tick-us N          --rate: send what is due every N us (100)\n"
                 "  --binary             route/fanout: BINARY SIGNAL payloads (default JSON)\n"
                 "  --src-addrs N        use 127.0.0.1..127.0.0.N as source addresses\n"
                 "  --server-pid PID     report server CPU per operation (and RSS for idle)\n"
                 "  --auth token|jwt     token: the default test credentials (only two ids)\n"
                 "  --jwt-secret S       sign HS256 JWTs (sub = client id); implies --auth jwt;\n"
                 "                       also read from SIGNAL_BENCH_JWT_SECRET\n"
                 "  --id-prefix P        client ids are P-<n> (b<pid>)\n"
                 "  --label TEXT         copied into the JSON line\n"
                 "  --setup-timeout S    seconds allowed for connecting everyone (60 + c/500)\n"
                 "  -q, --quiet          print only the JSON line\n"
                 "  -h, --help\n");
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_WARMUP,
    OPT_ROOM,
    OPT_RATE,
    OPT_TICK,
    OPT_BINARY,
    OPT_SRC,
    OPT_PID,
    OPT_AUTH,
    OPT_SECRET,
    OPT_PREFIX,
    OPT_LABEL,
    OPT_SETUP_TIMEOUT,
};

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* Raise RLIMIT_NOFILE to its hard limit; warn when it cannot hold `need`. */
static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need + 32 > rl.rlim_cur)
        fprintf(stderr,
                "signal-bench: RLIMIT_NOFILE is %llu, fewer than the %d connections asked "
                "for: raise it (ulimit -Hn) or lower -c\n",
                (unsigned long long)rl.rlim_cur, need);
}

int main(int argc, char **argv)
{
    sm_bench_opts_t o = {
        .host = "127.0.0.1",
        .port = 8080,
        .duration = 10,
        .warmup = 2,
        .jwt_lifetime = 3000,
        .setup_timeout = -1,
        .tick_us = 100,
    };
    const char *auth = NULL;
    bool dur_set = false;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"room-size", required_argument, NULL, OPT_ROOM},
        {"rate", required_argument, NULL, OPT_RATE},
        {"tick-us", required_argument, NULL, OPT_TICK},
        {"binary", no_argument, NULL, OPT_BINARY},
        {"src-addrs", required_argument, NULL, OPT_SRC},
        {"server-pid", required_argument, NULL, OPT_PID},
        {"auth", required_argument, NULL, OPT_AUTH},
        {"jwt-secret", required_argument, NULL, OPT_SECRET},
        {"id-prefix", required_argument, NULL, OPT_PREFIX},
        {"label", required_argument, NULL, OPT_LABEL},
        {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, pid = 0;
    bool ok = true;
    while ((opt = getopt_long(argc, argv, "c:P:d:k:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_HOST:
            o.host = optarg;
            break;
        case OPT_PORT:
            ok = parse_int(optarg, 1, 65535, &o.port);
            break;
        case 'c':
            ok = parse_int(optarg, 1, 10000000, &o.conns);
            break;
        case 'P':
            ok = parse_int(optarg, 1, 1000000, &o.inflight);
            break;
        case 'd':
            ok = parse_double(optarg, 0.01, 86400, &o.duration);
            dur_set = true;
            break;
        case OPT_WARMUP:
            ok = parse_double(optarg, 0, 3600, &o.warmup);
            break;
        case 'k':
            ok = parse_int(optarg, 1, 1000000, &o.concurrency);
            break;
        case OPT_ROOM:
            ok = parse_int(optarg, 2, 65535, &o.room_size);
            break;
        case OPT_RATE:
            ok = parse_double(optarg, 1, 1e9, &o.rate);
            break;
        case OPT_TICK:
            ok = parse_int(optarg, 10, 1000000, &o.tick_us);
            break;
        case OPT_BINARY:
            o.binary = true;
            break;
        case OPT_SRC:
            ok = parse_int(optarg, 1, SM_BENCH_MAX_SRC, &o.src_addrs);
            break;
        case OPT_PID:
            ok = parse_int(optarg, 1, 1 << 30, &pid);
            o.server_pid = (pid_t)pid;
            break;
        case OPT_AUTH:
            auth = optarg;
            ok = strcmp(auth, "token") == 0 || strcmp(auth, "jwt") == 0;
            break;
        case OPT_SECRET:
            o.jwt_secret = optarg;
            break;
        case OPT_PREFIX:
            o.id_prefix = optarg;
            break;
        case OPT_LABEL:
            o.label = optarg;
            break;
        case OPT_SETUP_TIMEOUT:
            ok = parse_double(optarg, 1, 86400, &o.setup_timeout);
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "signal-bench: bad option value '%s' (see --help)\n", optarg);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    o.scenario = argv[optind];
    const sm_bench_scenario_t *sc = sm_bench_scenario_find(o.scenario);
    if (sc == NULL) {
        fprintf(stderr, "signal-bench: unknown scenario '%s' (%s)\n", o.scenario,
                sm_bench_scenario_names());
        return 2;
    }
    if (o.jwt_secret == NULL && (auth == NULL || strcmp(auth, "jwt") == 0))
        o.jwt_secret = getenv("SIGNAL_BENCH_JWT_SECRET");
    if (auth && strcmp(auth, "token") == 0)
        o.jwt_secret = NULL;
    if (auth && strcmp(auth, "jwt") == 0 && (o.jwt_secret == NULL || !*o.jwt_secret)) {
        fprintf(stderr, "signal-bench: --auth jwt needs --jwt-secret or SIGNAL_BENCH_JWT_SECRET\n");
        return 2;
    }
    if (o.jwt_secret != NULL && !*o.jwt_secret) {
        fprintf(stderr, "signal-bench: the JWT secret (--jwt-secret or SIGNAL_BENCH_JWT_SECRET) "
                        "is empty\n");
        return 2;
    }
    if (o.rate > 0)
        sc = sm_bench_scenario_rated(sc);
    if (sc->idle && !dur_set)
        o.duration = 5;
    if (sc->defaults)
        sc->defaults(&o);
    if (o.inflight <= 0)
        o.inflight = 1;
    if (o.concurrency <= 0)
        o.concurrency = 256;
    if (o.setup_timeout <= 0)
        o.setup_timeout = 60 + o.conns / 500.0;
    char prefix[32];
    if (o.id_prefix == NULL) {
        snprintf(prefix, sizeof prefix, "b%d", (int)getpid());
        o.id_prefix = prefix;
    }
    if (!sm_proto_id_valid(o.id_prefix, strlen(o.id_prefix)) || strlen(o.id_prefix) > 40) {
        fprintf(stderr, "signal-bench: --id-prefix must be 1-40 characters of [A-Za-z0-9._:@-]\n");
        return 2;
    }
    raise_nofile(o.conns);
    /* A write to a connection the server has just closed must be an error
     * (EPIPE, counted), not the end of the process. */
    signal(SIGPIPE, SIG_IGN);

    sm_bench_t b;
    int rc = sm_bench_run(&b, &o, sc);
    if (rc == 0) {
        if (!o.quiet)
            sm_bench_report_human(stdout, &b);
        sm_bench_report_json(stdout, &b);
        fflush(stdout);
    }
    sm_bench_free(&b);
    return rc == 0 ? 0 : 1;
}
