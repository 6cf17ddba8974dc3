/*
 * One HTTP client for every REST backend (Firestore, Cloudflare Calls,
 * Pub/Sub, Google token endpoints): libcurl's multi interface driven by a
 * libuv loop (uv_poll per socket, one uv_timer for curl's timeouts: the
 * socket-action integration of curl's docs/examples/multi-uv.c).
 *
 * Ownership and threads: a client belongs to the thread running its loop
 * (each worker has one; a backend may create its own on its own thread).
 * Every function runs on that thread only (asserted), except
 * sm_rest_client_current(), which returns the calling thread's client, and
 * sm_rest_default_retryable() / sm_rest_backoff_ms(), which are pure.
 * A request's options are copied at submission (the caller may free them
 * when sm_rest_request returns); the response handed to the callback is
 * borrowed for the call.  The callback always runs later on the loop thread,
 * from the loop (never inside sm_rest_request, sm_rest_cancel_all or
 * sm_rest_client_close).
 *
 * Connections are kept alive and reused per host (curl's connection cache,
 * shared by all requests of the client; up to 16 idle connections are kept).
 * HTTP/1.1 only, no compression, redirects are not followed, TLS peers are
 * verified.  Retries: a request is attempted up to opts.max_attempts times;
 * an attempt is retried only when it failed in a retryable way (network
 * error, timeout, HTTP 429, HTTP 5xx, or whatever the caller's `retryable`
 * classifier says for APIs whose bodies decide, such as Firestore's 409
 * ABORTED), after a backoff (sm_rest_backoff_ms: retry_base_ms doubling,
 * capped at retry_max_ms, with ±20% jitter).  Never retried, whatever the
 * classifier says: a response larger than max_response, and curl errors no
 * retry can fix (malformed URL, unsupported scheme, TLS certificate
 * verification failures).  Cancel: sm_rest_cancel_all completes every
 * pending request with err = SM_ECANCELED (used at shutdown).
 *
 * Logs: one debug line per attempt (method, label, status, ms; the curl
 * error text on failures).  Never the URL, headers or bodies, which may
 * carry credentials.
 *
 * Global state: curl_global_init runs once per process (pthread_once) and is
 * never undone; the thread-local "current client" pointer (see below).
 */
#ifndef SM_CLOUD_HTTP_CLIENT_H
#define SM_CLOUD_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sm_rest_client_s sm_rest_client_t;

typedef struct {
    int status;       /* HTTP status of the last attempt; 0 when err != 0 */
    int err;          /* 0, or SM_ETIMEDOUT, SM_EIO (network, or response
                       * larger than max_response), SM_ECANCELED */
    const char *body; /* response body of the last attempt (NUL-terminated,
                       * "" when err != 0), borrowed for the callback */
    size_t body_len;
    unsigned attempts;   /* attempts started (a canceled one included) */
    uint64_t elapsed_ms; /* from submission to completion, backoffs included */
} sm_rest_resp_t;

/* Called exactly once per accepted request, on the loop thread.  It may call
 * any sm_rest_* function, including sm_rest_request (a follow-up call),
 * sm_rest_cancel_all and sm_rest_client_close. */
typedef void (*sm_rest_cb)(const sm_rest_resp_t *resp, void *arg);

/* Classifier for one finished attempt: true = retry it (when attempts are
 * left).  status is 0 on network errors/timeouts (err tells which: SM_EIO or
 * SM_ETIMEDOUT); body/len are that attempt's response body ("" and 0 on
 * errors).  Runs on the loop thread inside the client's event processing:
 * it must only look at its arguments. */
typedef bool (*sm_rest_retryable_fn)(int status, int err, const char *body, size_t len);

typedef struct {
    const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;            /* absolute http:// or https:// URL */
    const char *const *headers; /* NULL-terminated "Name: value" lines (no CR/LF), or
                                 * NULL.  Give Content-Type for a body: without it curl
                                 * sends application/x-www-form-urlencoded. */
    const char *body;           /* request body or NULL.  POST, PUT and PATCH always send
                                 * one (Content-Length: 0 when empty); DELETE only when
                                 * body_len > 0; GET must have none. */
    size_t body_len;
    uint64_t timeout_ms;            /* per attempt, whole request; 0 = 30 s */
    unsigned max_attempts;          /* >= 1 */
    uint64_t retry_base_ms;         /* first backoff (0 = retry at once) */
    uint64_t retry_max_ms;          /* backoff cap */
    sm_rest_retryable_fn retryable; /* NULL = sm_rest_default_retryable */
    size_t max_response;            /* largest response body accepted; a larger one fails the
                                     * attempt with SM_EIO, not retried.  0 = 4 MiB */
    const char *what;               /* short label for logs and metrics ("firestore.get"),
                                     * NULL = "-" */
} sm_rest_opts_t;

/* What one finished attempt looked like, for metrics (see the hook below).
 * Strings are borrowed for the call. */
typedef struct {
    const char *what; /* opts.what or "-" */
    const char *method;
    int status;          /* 0 on network errors/timeouts */
    int err;             /* 0, SM_ETIMEDOUT or SM_EIO; canceled attempts are not reported */
    unsigned attempt;    /* 1-based */
    uint64_t ms;         /* duration of this attempt */
    bool retry;          /* another attempt follows */
    uint64_t backoff_ms; /* the wait before it, when retry */
} sm_rest_attempt_t;

typedef void (*sm_rest_attempt_cb)(const sm_rest_attempt_t *a, void *arg);

/* Pure, any thread.  Network errors and timeouts (err SM_EIO/SM_ETIMEDOUT),
 * HTTP 429 and 5xx. */
bool sm_rest_default_retryable(int status, int err, const char *body, size_t len);

/* Pure, any thread.  The wait before retry number `retry` (1 = the wait
 * after the first attempt): base * 2^(retry-1), capped at cap, times a
 * jitter factor in [0.8, 1.2] taken from rnd (rnd % 41 -> 80..120 %),
 * then capped at cap again, so no wait ever exceeds cap. */
uint64_t sm_rest_backoff_ms(uint64_t base, uint64_t cap, unsigned retry, uint32_t rnd);

/* Pure, any thread.  url starts with "http://" or "https://" and holds no
 * space or control character: the check sm_rest_request applies, for the
 * backends to run on their configured base URLs at start-up. */
bool sm_rest_url_ok(const char *url);

/* Loop thread (the thread that runs loop from now on).  Creates the client
 * on loop (curl_global_init is done once per process by the first call,
 * thread-safely).  NULL on failure (curl init failed; logged).  The loop
 * must outlive the client: after sm_rest_client_close, run it until the
 * client's handles have closed (uv_run until it returns, as usual at exit). */
sm_rest_client_t *sm_rest_client_new(uv_loop_t *loop);
/* Loop thread (NULL: no-op): cancel everything (each pending callback still runs once,
 * later, with SM_ECANCELED), close the connections and the handles; the
 * struct is freed once the loop has run the close callbacks.  c must not be
 * used after this returns, except from callbacks it delivers, where
 * sm_rest_request returns SM_ECLOSED.  Clear sm_rest_client_set_current
 * first if it points at c. */
void sm_rest_client_close(sm_rest_client_t *c);

/* Loop thread.  0 when accepted (cb will be called exactly once, later), or
 * SM_EINVAL (bad options: unknown method, !sm_rest_url_ok(url), max_attempts 0,
 * a header line with CR/LF or no colon, a GET with a body, no cb) /
 * SM_ECLOSED (client closing): cb is not called.  The first attempt starts
 * on the next loop iteration. */
int sm_rest_request(sm_rest_client_t *c, const sm_rest_opts_t *opts, sm_rest_cb cb, void *arg);
/* Loop thread: complete every pending request (running or waiting for a
 * retry) with SM_ECANCELED now; the callbacks run later from the loop.
 * The client stays usable. */
void sm_rest_cancel_all(sm_rest_client_t *c);
/* Loop thread: accepted requests whose callback has not run yet (in flight,
 * waiting for a retry, or completed with the callback queued). */
size_t sm_rest_pending(const sm_rest_client_t *c);

/* Loop thread: call fn after every finished attempt (NULL to remove).  fn
 * runs inside the client's event processing: it may count, log or observe,
 * but must not call sm_rest_* functions on c. */
void sm_rest_client_set_attempt_hook(sm_rest_client_t *c, sm_rest_attempt_cb fn, void *arg);

/* Loop thread: the loop the client runs on (for modules that defer their
 * callbacks to it, e.g. gcreds). */
uv_loop_t *sm_rest_client_loop(const sm_rest_client_t *c);

/* The client of the calling thread (set with sm_rest_client_set_current by
 * the thread that owns it, e.g. each worker at start), or NULL.  The
 * pointer is thread-local; c is not owned by it. */
sm_rest_client_t *sm_rest_client_current(void);
void sm_rest_client_set_current(sm_rest_client_t *c);

#endif
