/*
 * Observation points: bucket tables, label classification and the writers
 * behind the one-line hooks in session.c, store.c and worker.c.
 *
 * Bucket choices.  Sessions: signaling sessions last from seconds (a failed
 * call set-up) to a working day (a kiosk or a monitoring client), so the
 * bounds are roughly logarithmic from 1 s to 24 h.  Store: memory and sqlite
 * answer in tens of microseconds to a few milliseconds, Firestore in tens to
 * hundreds of milliseconds and up to seconds with retries, hence 100 us ..
 * 10 s.  REST: one HTTP attempt is bounded by its timeout (30 s default),
 * so 5 ms .. 30 s.
 */
#include "metrics/observe.h"

#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "store/store.h"

_Static_assert(SM_STORE_OP_GET_CLIENT + 1 == SM_METRIC_STORE_OPS,
               "sm_store_op_t changed: update SM_METRIC_STORE_OPS in metrics/counters.h");

const sm_hist_spec_t sm_metrics_session_spec = {
    .bounds = {1000, 5000, 15000, 30000, 60000, 300000, 900000, 1800000, 3600000, 7200000, 14400000,
               28800000, 43200000, 86400000},
    .n_bounds = 14,
    .scale = 1e-3,
};

const sm_hist_spec_t sm_metrics_store_spec = {
    .bounds = {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
               1000000, 2500000, 5000000, 10000000},
    .n_bounds = 16,
    .scale = 1e-6,
};

const sm_hist_spec_t sm_metrics_rest_spec = {
    .bounds = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000},
    .n_bounds = 12,
    .scale = 1e-3,
};

static _Thread_local sm_counters_t *t_counters;

void sm_metrics_thread_set(sm_counters_t *c)
{
    t_counters = c;
}

sm_counters_t *sm_metrics_thread(void)
{
    return t_counters;
}

/* ---- labels ---- */

static const char *const rest_api_names[] = {
#define SM__NAME(id, name) name,
    SM_METRIC_REST_APIS(SM__NAME)
#undef SM__NAME
};
static const char *const rest_class_names[] = {
#define SM__NAME(id, name) name,
    SM_METRIC_REST_CLASSES(SM__NAME)
#undef SM__NAME
};
static const char *const rest_outcome_names[] = {
#define SM__NAME(id, name) name,
    SM_METRIC_REST_OUTCOMES(SM__NAME)
#undef SM__NAME
};
static const char *const store_outcome_names[] = {
#define SM__NAME(id, name) name,
    SM_METRIC_STORE_OUTCOMES(SM__NAME)
#undef SM__NAME
};

const char *sm_metrics_rest_api_name(unsigned api)
{
    return api < SM_REST_API_COUNT ? rest_api_names[api] : "other";
}

const char *sm_metrics_rest_class_name(unsigned cls)
{
    return cls < SM_REST_CLASS_COUNT ? rest_class_names[cls] : "error";
}

const char *sm_metrics_rest_outcome_name(unsigned outcome)
{
    return outcome < SM_REST_OUTCOME_COUNT ? rest_outcome_names[outcome] : "error";
}

const char *sm_metrics_store_outcome_name(unsigned outcome)
{
    return outcome < SM_STORE_OUTCOME_COUNT ? store_outcome_names[outcome] : "error";
}

unsigned sm_metrics_rest_api(const char *what)
{
    static const struct {
        const char *prefix;
        unsigned api;
    } map[] = {
        {"firestore", SM_REST_API_FIRESTORE},
        {"cloudflare", SM_REST_API_CLOUDFLARE},
        {"pubsub", SM_REST_API_PUBSUB},
        {"gcreds", SM_REST_API_TOKEN}, /* Google token endpoint / metadata server */
        {"token", SM_REST_API_TOKEN},
    };
    if (what == NULL)
        return SM_REST_API_OTHER;
    size_t n = strcspn(what, ".");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].prefix) == n && strncmp(what, map[i].prefix, n) == 0)
            return map[i].api;
    return SM_REST_API_OTHER;
}

unsigned sm_metrics_rest_class(int status, int err)
{
    if (err == SM_ETIMEDOUT)
        return SM_REST_CLASS_TIMEOUT;
    if (err != 0 || status < 100 || status > 599)
        return SM_REST_CLASS_ERROR;
    return SM_REST_CLASS_1XX + (unsigned)(status / 100 - 1);
}

unsigned sm_metrics_rest_outcome(int status, int err)
{
    switch (sm_metrics_rest_class(status, err)) {
    case SM_REST_CLASS_1XX:
    case SM_REST_CLASS_2XX:
    case SM_REST_CLASS_3XX:
        return SM_REST_OUTCOME_OK;
    case SM_REST_CLASS_4XX:
        return SM_REST_OUTCOME_CLIENT_ERROR;
    case SM_REST_CLASS_5XX:
        return SM_REST_OUTCOME_SERVER_ERROR;
    case SM_REST_CLASS_TIMEOUT:
        return SM_REST_OUTCOME_TIMEOUT;
    default:
        return SM_REST_OUTCOME_ERROR;
    }
}

unsigned sm_metrics_store_outcome(int status)
{
    switch (status) {
    case 0:
        return SM_STORE_OUTCOME_OK;
    case SM_ENOTFOUND:
        return SM_STORE_OUTCOME_NOT_FOUND;
    case SM_ECONFLICT:
        return SM_STORE_OUTCOME_CONFLICT;
    default:
        return SM_STORE_OUTCOME_ERROR;
    }
}

/* ---- writers ---- */

void sm_metrics_session_ended_at(sm_counters_t *c, int64_t connected_at_ms, int64_t ended_at_ms)
{
    if (c == NULL)
        return;
    uint64_t ms = ended_at_ms > connected_at_ms ? (uint64_t)(ended_at_ms - connected_at_ms) : 0;
    sm_hist_observe(&c->session_duration, &sm_metrics_session_spec, ms);
}

void sm_metrics_session_ended(sm_counters_t *c, int64_t connected_at_ms)
{
    sm_metrics_session_ended_at(c, connected_at_ms, sm_clock_wall_ms());
}

void sm_metrics_store_done_in(sm_counters_t *c, int op, int status, uint64_t elapsed_us)
{
    if (c == NULL || op < 0 || op >= SM_METRIC_STORE_OPS)
        return;
    sm_hist_observe(&c->store_latency[op], &sm_metrics_store_spec, elapsed_us);
    sm_count(&c->store_ops[op][sm_metrics_store_outcome(status)], 1);
}

void sm_metrics_store_done(int op, int status, uint64_t elapsed_us)
{
    sm_metrics_store_done_in(t_counters, op, status, elapsed_us);
}

void sm_metrics_rest_attempt(const sm_rest_attempt_t *a, void *arg)
{
    sm_counters_t *c = arg;
    if (c == NULL)
        return;
    unsigned api = sm_metrics_rest_api(a->what);
    sm_hist_observe(&c->rest_latency[api][sm_metrics_rest_class(a->status, a->err)],
                    &sm_metrics_rest_spec, a->ms);
    if (a->retry)
        sm_count(&c->rest_retries[api], 1);
    else
        sm_count(&c->rest_calls[api][sm_metrics_rest_outcome(a->status, a->err)], 1);
}
