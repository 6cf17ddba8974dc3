/*
 * signal-bench: load generator for Signal Manager (and for any peer speaking
 * its protocol, such as the Node reference in tests/bench/ref-server.js).
 *
 * One process, one libuv loop, one thread: pin it to its own core
 * (scripts/bench.sh does) so it never competes with the server.
 *
 * Modules:
 *   main.c       command line, RLIMIT_NOFILE, run, report
 *   runner.c     the run (sm_bench_t): connections, CONNECT/REGISTER/room
 *                set-up, warm-up and measured phases, error accounting,
 *                orderly shutdown
 *   scenarios.c  rtt, churn, idle, route, fanout (sm_bench_scenario_t)
 *   report.c     the human table and the JSON line
 *   wsclient.c   WebSocket client framing; hist.c latency histogram;
 *                procstat.c /proc readers
 *
 * A run goes: SETUP (connect every client at `concurrency` at a time, CONNECT,
 * REGISTER and join rooms as the scenario needs) -> WARMUP (traffic, nothing
 * recorded) -> MEASURE (counters and histogram reset at its start; server
 * CPU and our CPU sampled at both ends) -> STOP (traffic stops, every client
 * closes with a close frame, bounded in time).  Everything is
 * single-threaded; the run object is passed around, there is no global
 * mutable state.
 */
#ifndef SM_BENCH_BENCH_H
#define SM_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/types.h>
#include <uv.h>

#include <sm/proto.h>

#include "bench/hist.h"
#include "bench/wsclient.h"

#define SM_BENCH_ID_MAX 64
#define SM_BENCH_MAX_SRC 64
#define SM_BENCH_MAX_ERRKINDS 24

/* Command-line options (main.c fills them; defaults depend on the scenario). */
typedef struct sm_bench_opts_s {
    const char *scenario;
    const char *host;
    int port;
    int conns;              /* -c: clients (churn: handshakes in flight) */
    int inflight;           /* -P: requests in flight per client / pair / room */
    double duration;        /* -d: measured seconds */
    double warmup;          /* --warmup seconds before measuring */
    int concurrency;        /* -k: connections being set up at once */
    int room_size;          /* fanout: members per room */
    double rate;            /* route: offered SIGNALs/s in total (0 = closed loop) */
    int tick_us;            /* --rate: pacing period in microseconds (100) */
    bool binary;            /* route/fanout: BINARY SIGNAL payloads instead of JSON */
    int src_addrs;          /* 127.0.0.1..N as source addresses (0 = automatic) */
    pid_t server_pid;       /* 0 = unknown: no server CPU or RSS figures */
    const char *jwt_secret; /* NULL: token auth with the default test credentials */
    int jwt_lifetime;       /* seconds between iat and exp */
    const char *id_prefix;  /* client ids are <prefix>-<n> */
    const char *label;      /* free text copied into the JSON line */
    double setup_timeout;   /* seconds allowed for SETUP */
    bool quiet;             /* JSON line only */
} sm_bench_opts_t;

typedef enum { SM_BENCH_SETUP, SM_BENCH_WARMUP, SM_BENCH_MEASURE, SM_BENCH_STOP } sm_bench_phase_t;

typedef enum {
    SM_CL_IDLE,       /* no connection */
    SM_CL_CONNECTING, /* CONNECT sent */
    SM_CL_REGISTERING,
    SM_CL_ROOM, /* ROOM_CREATE / ROOM_JOIN sent */
    SM_CL_READY,
    SM_CL_FAILED,
} sm_bench_cl_state_t;

typedef struct sm_bench_s sm_bench_t;

/* One simulated client (churn: one slot that reconnects in a loop). */
typedef struct sm_bench_client_s {
    sm_bench_t *b;
    sm_wsc_t *c; /* NULL while not connected */
    uint32_t idx;
    uint8_t state; /* sm_bench_cl_state_t */
    uint8_t id_len;
    char id[SM_BENCH_ID_MAX];
    char *token;             /* owned (JWT) or NULL (token auth: a static string) */
    uint64_t t0;             /* ns: start of the current set-up or handshake */
    sm_ws_tpl_t connect_tpl; /* CONNECT, encoded at the first connect (owned) */
    /* Scenario data: templates (owned, freed by the runner). */
    sm_ws_tpl_t *tpl;
    uint32_t ntpl;
    uint32_t peer; /* route: partner; fanout: room */
} sm_bench_client_t;

/* Scenario vtable (scenarios.c).  Hooks may be NULL. */
typedef struct sm_bench_scenario_s {
    const char *name;
    const char *unit;    /* throughput unit, e.g. "rt/s" */
    const char *op_name; /* one operation, e.g. "round trip" */
    bool registers;      /* clients REGISTER during set-up */
    bool rooms;          /* clients join rooms of opts.room_size during set-up */
    bool no_setup;       /* churn: no set-up phase; clients are slots */
    bool idle;           /* idle: no traffic; RSS and set-up rate are the figures */
    /* Fill defaults for options the user left unset (value < 0 / 0); -P, -k
     * and the set-up timeout get common defaults in main.c afterwards. */
    void (*defaults)(sm_bench_opts_t *o);
    /* Check options, build templates; 0 or -1 with a message printed. */
    int (*prepare)(sm_bench_t *b);
    /* WARMUP begins: start the traffic. */
    void (*start)(sm_bench_t *b);
    /* A frame for a READY client during WARMUP/MEASURE/STOP that the runner
     * does not handle itself (it handles ERROR, DISCONNECT and ROOM_EVENT). */
    void (*on_frame)(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f);
    /* An ERROR frame answering this client's traffic (already counted). */
    void (*on_error)(sm_bench_t *b, sm_bench_client_t *cl, const sm_frame_t *f);
    /* churn: a slot's connection closed (why as wsclient reports it). */
    void (*on_closed)(sm_bench_t *b, sm_bench_client_t *cl, sm_wsc_end_t why, int uv_err,
                      int ws_code);
    /* During WARMUP/MEASURE when set: every --tick-us with --rate (the
     * open-loop pacing), every millisecond otherwise. */
    void (*tick)(sm_bench_t *b);
    /* Free b->priv and anything prepare() allocated outside the clients. */
    void (*cleanup)(sm_bench_t *b);
} sm_bench_scenario_t;

/* Find a scenario by name; NULL if unknown. */
const sm_bench_scenario_t *sm_bench_scenario_find(const char *name);
/* The variant of sc for an offered rate (--rate): route gets a tick
 * (--tick-us) that sends at the rate; other scenarios are returned unchanged. */
const sm_bench_scenario_t *sm_bench_scenario_rated(const sm_bench_scenario_t *sc);
/* "rtt|churn|idle|route|fanout". */
const char *sm_bench_scenario_names(void);

typedef struct sm_bench_errkind_s {
    char name[40];
    uint64_t count;
} sm_bench_errkind_t;

/* Everything report.c prints. */
typedef struct sm_bench_result_s {
    uint64_t ops;      /* operations in the measured window */
    double seconds;    /* length of the measured window */
    double throughput; /* ops / seconds (idle: connections set up per second) */
    uint64_t errors;   /* sum of errkinds during the whole run */
    uint64_t stop_404; /* ERROR 404 to traffic after STOP began (the stop race), not in errors */
    sm_bench_errkind_t errkinds[SM_BENCH_MAX_ERRKINDS];
    unsigned nerrkinds;
    bool have_server_cpu;
    double server_cpu_us; /* during the measured window */
    double client_cpu_us;
    bool have_sys_busy;
    double sys_busy_us;     /* whole machine, same window */
    uint32_t clients_ready; /* after set-up */
    bool have_rss;
    uint64_t rss_before_kib, rss_after_kib;
    uint64_t extra_ops; /* fanout: rounds completed; idle: not used */
    sm_wsc_stats_t io;  /* client-side I/O counters at the end */
} sm_bench_result_t;

struct sm_bench_s {
    const sm_bench_opts_t *o;
    const sm_bench_scenario_t *sc;
    uv_loop_t *loop;
    sm_wsc_ctx_t *ctx;
    const uint8_t *mask; /* the context's mask key, for template patching */

    sm_bench_client_t *clients;
    uint32_t nclients;

    struct sockaddr_in srcs[SM_BENCH_MAX_SRC];
    int nsrcs; /* 0: let the kernel choose */
    unsigned src_rr;

    /* SETUP progress */
    uint32_t next_launch; /* index of the next client to connect */
    uint32_t in_setup;    /* clients between connect and READY/FAILED */
    uint32_t ready, failed;
    uint32_t rooms_pending; /* ROOM_CREATE/ROOM_JOIN requests unanswered */
    bool rooms_done;

    sm_bench_phase_t phase;
    uint64_t t_setup0, t_setup1, t_meas0, t_meas1; /* ns */
    uint64_t ops;                                  /* reset when MEASURE starts */
    uint64_t ops2; /* second counter (fanout rounds); reset likewise */
    sm_bench_hist_t hist;

    uint64_t srv_cpu0, self_cpu0, sys_busy0;
    bool srv_cpu_ok, sys_busy_ok;

    uv_timer_t phase_timer;
    /* The --rate pacing tick: a timerfd (libuv timers have 1 ms steps). */
    uv_poll_t tick_poll;
    int tick_fd; /* -1 when the scenario has no tick */
    uv_timer_t watch_timer;
    bool stopping_done;
    int exit_code;

    void *priv; /* scenario state */
    sm_bench_result_t res;
};

/* ---- runner.c: used by main.c ---- */

/* Run one scenario to completion on a new loop; fills b->res.  Returns 0,
 * or -1 when the run could not produce a result (message printed). */
int sm_bench_run(sm_bench_t *b, const sm_bench_opts_t *o, const sm_bench_scenario_t *sc);
/* Free what sm_bench_run left (clients, templates). */
void sm_bench_free(sm_bench_t *b);

/* ---- runner.c: used by scenarios ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sm_bench_now_ns(void);

/* True while traffic should flow (WARMUP or MEASURE). */
static inline bool sm_bench_running(const sm_bench_t *b)
{
    return b->phase == SM_BENCH_WARMUP || b->phase == SM_BENCH_MEASURE;
}

/* Record one completed operation with latency lat_ns. */
static inline void sm_bench_record(sm_bench_t *b, uint64_t lat_ns)
{
    b->ops++;
    sm_bench_hist_add(&b->hist, lat_ns);
}

/* Count an error of kind `name` (printed in the report).  The first few of
 * each run are also described on stderr with `detail`. */
void sm_bench_error(sm_bench_t *b, const char *name, const char *detail);

/* Open a connection for client cl from the next source address, queue its
 * CONNECT (pipelined behind the upgrade request) and set cl->t0. */
void sm_bench_client_connect(sm_bench_t *b, sm_bench_client_t *cl);

/* Build a protocol frame (header + payload) into a new template. */
void sm_bench_tpl_frame(sm_bench_t *b, sm_ws_tpl_t *t, uint8_t type, uint8_t payload_type,
                        const void *payload, size_t len);

/* Write the low `digits` (1..16) hex digits of v to out, lowercase, most
 * significant first (no NUL). */
void sm_bench_hex(char *out, uint64_t v, int digits);
/* Parse `digits` (1..16) lowercase hex digits; returns false on any other
 * character (*v untouched). */
bool sm_bench_unhex(const char *in, int digits, uint64_t *v);

#endif
