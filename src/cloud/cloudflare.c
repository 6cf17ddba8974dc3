/*
 * Cloudflare Realtime SFU client: builds the five calls the cloudflare media
 * mode needs (sessions/new, tracks/new local and remote, renegotiate,
 * tracks/close) as JSON requests on the calling thread's REST client, and
 * turns the answers into one sm_cf_result_t per call: HTTP status and
 * top-level errorCode mapped to an SM_E* code, per-track items (with their
 * own errorCode) listed for the caller (cloud-apis.md §1.3, §1.5).
 *
 * DESIGN
 * - The handle is a few immutable strings (URL prefix, Authorization header)
 *   and the retry settings, so every thread can share it without locks.
 * - A call is a small heap record (callback, argument, op name, session id)
 *   owned by the REST request until its callback: the REST client copies the
 *   URL, headers and body at submission.
 * - The response is parsed into a json_t kept alive for the user callback;
 *   the result borrows its strings from it, and the tracks array is one
 *   allocation freed right after the callback.
 * - Retrying is the REST client's job (network errors, timeouts, 429, 5xx:
 *   sm_rest_default_retryable).  Once the SFU has answered with anything else,
 *   including a 2xx that carries a top-level errorCode, the call is final: a
 *   mutation must not run twice.
 */
#include "cloud/cloudflare.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/http_client.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "log/log.h"

struct sm_cf_s {
    char *prefix; /* "<base>/apps/<app>/sessions/" */
    char *auth;   /* "Authorization: Bearer <token>" header line */
    uint64_t timeout_ms;
    unsigned attempts;
    uint64_t retry_interval_ms;
};

typedef enum { OP_SESSION_NEW, OP_PUSH, OP_PULL, OP_RENEGOTIATE, OP_CLOSE } op_t;

static const char *const op_names[] = {
    [OP_SESSION_NEW] = "session_new", [OP_PUSH] = "push",   [OP_PULL] = "pull",
    [OP_RENEGOTIATE] = "renegotiate", [OP_CLOSE] = "close",
};
static const char *const op_labels[] = {
    [OP_SESSION_NEW] = "cloudflare.session_new",
    [OP_PUSH] = "cloudflare.push",
    [OP_PULL] = "cloudflare.pull",
    [OP_RENEGOTIATE] = "cloudflare.renegotiate",
    [OP_CLOSE] = "cloudflare.close",
};

typedef struct {
    op_t op;
    sm_cf_cb cb;
    void *arg;
    char sid[SM_CF_MAX_ID + 1]; /* "" for sessions/new */
} call_t;

/* ---- Argument checks ----------------------------------------------------- */

/* [A-Za-z0-9_-]{1,SM_CF_MAX_ID}: safe as one URL path segment. */
static bool valid_id(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || n >= SM_CF_MAX_ID)
            return false;
    }
    return true;
}

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* ---- Handle -------------------------------------------------------------- */

static void bad_setting(const char *what)
{
    SM_LOG(SM_LOG_ERROR, SM_MSG("cloudflare: invalid setting"), SM_STR("setting", what));
}

sm_cf_t *sm_cf_new(const char *base_url, const char *app_id, const char *app_token,
                   uint64_t timeout_ms, unsigned attempts, uint64_t retry_interval_ms)
{
    if (base_url == NULL || !sm_rest_url_ok(base_url)) {
        bad_setting("base_url");
        return NULL;
    }
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/')
        blen--;
    size_t scheme = base_url[4] == 's' ? 8 : 7;
    if (blen <= scheme) {
        bad_setting("base_url");
        return NULL;
    }
    if (!valid_id(app_id)) {
        bad_setting("app_id");
        return NULL;
    }
    if (!nonempty(app_token) || has_ctl(app_token)) {
        bad_setting("app_token"); /* never the value */
        return NULL;
    }
    if (timeout_ms == 0 || attempts == 0) {
        bad_setting(timeout_ms == 0 ? "timeout" : "attempts");
        return NULL;
    }

    sm_cf_t *cf = SM_NEW(sm_cf_t);
    size_t plen = blen + strlen("/apps/") + strlen(app_id) + strlen("/sessions/") + 1;
    cf->prefix = sm_xmalloc(plen);
    snprintf(cf->prefix, plen, "%.*s/apps/%s/sessions/", (int)blen, base_url, app_id);
    size_t alen = strlen("Authorization: Bearer ") + strlen(app_token) + 1;
    cf->auth = sm_xmalloc(alen);
    snprintf(cf->auth, alen, "Authorization: Bearer %s", app_token);
    cf->timeout_ms = timeout_ms;
    cf->attempts = attempts;
    cf->retry_interval_ms = retry_interval_ms;
    return cf;
}

void sm_cf_free(sm_cf_t *cf)
{
    if (cf == NULL)
        return;
    /* The token is in memory that goes back to the allocator: wipe it. */
    explicit_bzero(cf->auth, strlen(cf->auth));
    free(cf->auth);
    free(cf->prefix);
    free(cf);
}

/* ---- Responses ----------------------------------------------------------- */

static int map_status(int status)
{
    if (status >= 200 && status <= 299)
        return 0;
    switch (status) {
    case 401:
    case 403:
        return SM_EAUTH;
    case 404:
    case 410:
        return SM_ENOTFOUND;
    case 406:
        return SM_ECONFLICT;
    case 429:
        return SM_EUNAVAIL;
    default:
        /* Other 4xx: the request was wrong.  1xx/3xx (redirects are not
         * followed) and 5xx: the service did not do its job. */
        return status >= 400 && status <= 499 ? SM_EINVAL : SM_EUNAVAIL;
    }
}

/* The string member key of o, or NULL (absent, or not a string). */
static const char *str_member(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Fill r (and *tracks) from a 2xx body.  NULL on success, else the name of
 * the field that is not as documented. */
static const char *parse_success(const json_t *root, op_t op, sm_cf_result_t *r,
                                 sm_cf_track_t **tracks)
{
    if (op == OP_SESSION_NEW) {
        r->session_id = str_member(root, "sessionId");
        if (!nonempty(r->session_id)) {
            r->session_id = NULL;
            return "sessionId";
        }
    }
    const json_t *sd = json_object_get(root, "sessionDescription");
    if (sd != NULL && !json_is_null(sd)) {
        r->sdp_type = str_member(sd, "type");
        r->sdp = str_member(sd, "sdp");
        if (r->sdp_type == NULL || r->sdp == NULL) {
            r->sdp_type = r->sdp = NULL;
            return "sessionDescription";
        }
    }
    const json_t *rr = json_object_get(root, "requiresImmediateRenegotiation");
    if (rr != NULL && !json_is_null(rr)) {
        if (!json_is_boolean(rr))
            return "requiresImmediateRenegotiation";
        r->requires_renegotiation = json_is_true(rr);
    }
    const json_t *items = json_object_get(root, "tracks");
    if (items == NULL || json_is_null(items))
        return NULL;
    if (!json_is_array(items))
        return "tracks";
    size_t n = json_array_size(items);
    if (n == 0)
        return NULL;
    /* n is bounded by the response size (REST client's max_response). */
    sm_cf_track_t *t = sm_xcalloc(n, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(items, i);
        if (!json_is_object(it)) {
            free(t);
            return "tracks[]";
        }
        t[i] = (sm_cf_track_t){
            .location = str_member(it, "location"),
            .session_id = str_member(it, "sessionId"),
            .track_name = str_member(it, "trackName"),
            .mid = str_member(it, "mid"),
            .error_code = str_member(it, "errorCode"),
            .error_description = str_member(it, "errorDescription"),
        };
    }
    *tracks = t;
    r->tracks = t;
    r->n_tracks = n;
    return NULL;
}

static void on_response(const sm_rest_resp_t *resp, void *arg)
{
    call_t *call = arg;
    sm_cf_result_t r = {.http_status = resp->status, .attempts = resp->attempts};
    sm_cf_track_t *tracks = NULL;
    json_t *root = NULL;

    if (resp->err != 0) {
        /* Network error or timeout on the last attempt, or a response too
         * large to accept: the SFU is not usable right now. */
        r.err = resp->err == SM_ECANCELED ? SM_ECANCELED : SM_EUNAVAIL;
    } else {
        r.err = map_status(resp->status);
        if (resp->body_len > 0) {
            root = json_loadb(resp->body, resp->body_len, 0, NULL);
            if (root != NULL && !json_is_object(root)) {
                json_decref(root);
                root = NULL;
            }
        }
        if (root != NULL) {
            r.error_code = str_member(root, "errorCode");
            r.error_description = str_member(root, "errorDescription");
        }
        if (r.err == 0) {
            const char *bad = NULL;
            if (root == NULL && resp->body_len > 0)
                bad = "body";
            else if (root != NULL)
                bad = parse_success(root, call->op, &r, &tracks);
            else if (call->op == OP_SESSION_NEW)
                bad = "sessionId"; /* empty body */
            if (bad != NULL) {
                SM_LOG(SM_LOG_WARN, SM_MSG("cloudflare: unexpected response"),
                       SM_STR("op", op_names[call->op]), SM_INT("status", resp->status),
                       SM_STR("field", bad));
                r.err = SM_EUNAVAIL;
            } else if (r.error_code != NULL) {
                r.err = SM_EUNAVAIL; /* a 2xx that reports a failure (§1.5) */
            }
        }
    }

    SM_LOG(SM_LOG_DEBUG, SM_MSG("cloudflare call"), SM_STR("op", op_names[call->op]),
           SM_STR("session_id", call->sid[0] != '\0' ? call->sid : r.session_id),
           SM_INT("status", r.http_status), SM_STR("err", sm_errname(r.err)),
           SM_STR("error_code", r.error_code), SM_UINT("attempts", r.attempts),
           SM_UINT("ms", resp->elapsed_ms));

    call->cb(&r, call->arg);
    free(tracks);
    json_decref(root);
    free(call);
}

/* ---- Requests ------------------------------------------------------------ */

/* Add key: s to o; false when s is not valid UTF-8 (jansson refuses it). */
static bool put_str(json_t *o, const char *key, const char *s)
{
    json_t *v = json_string(s);
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

static json_t *session_description(const char *type, const char *sdp)
{
    json_t *d = json_object();
    if (!put_str(d, "type", type) || !put_str(d, "sdp", sdp)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

/* Submit op on this thread's REST client.  body (NULL: none) is consumed. */
static int submit(sm_cf_t *cf, op_t op, const char *method, const char *sid, const char *suffix,
                  json_t *body, sm_cf_cb cb, void *arg)
{
    sm_rest_client_t *client = sm_rest_client_current();
    if (client == NULL) {
        json_decref(body);
        return SM_EINVAL;
    }
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        SM_ASSERT(text != NULL); /* strings were checked when the body was built */
    }
    if (sid == NULL)
        sid = "";
    size_t ulen = strlen(cf->prefix) + strlen(sid) + strlen(suffix) + 1;
    char *url = sm_xmalloc(ulen);
    snprintf(url, ulen, "%s%s%s", cf->prefix, sid, suffix);
    /* "Content-Type:" with no value removes curl's form content type from a
     * POST without a body. */
    const char *headers[] = {
        cf->auth,
        text != NULL ? "Content-Type: application/json" : "Content-Type:",
        NULL,
    };
    sm_rest_opts_t o = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = text,
        .body_len = text != NULL ? strlen(text) : 0,
        .timeout_ms = cf->timeout_ms,
        .max_attempts = cf->attempts,
        /* Fixed interval (DECISIONS §4), not a doubling backoff. */
        .retry_base_ms = cf->retry_interval_ms,
        .retry_max_ms = cf->retry_interval_ms,
        .retryable = sm_rest_default_retryable,
        .what = op_labels[op],
    };
    call_t *call = SM_NEW(call_t);
    call->op = op;
    call->cb = cb;
    call->arg = arg;
    snprintf(call->sid, sizeof call->sid, "%s", sid);
    int rc = sm_rest_request(client, &o, on_response, call);
    free(text); /* the REST client keeps copies */
    free(url);
    if (rc != 0)
        free(call);
    return rc;
}

int sm_cf_session_new(sm_cf_t *cf, sm_cf_cb cb, void *arg)
{
    if (cf == NULL || cb == NULL)
        return SM_EINVAL;
    return submit(cf, OP_SESSION_NEW, "POST", NULL, "new", NULL, cb, arg);
}

static bool common_ok(const sm_cf_t *cf, const char *sid, size_t n, sm_cf_cb cb)
{
    return cf != NULL && cb != NULL && valid_id(sid) && n >= 1 && n <= SM_CF_MAX_TRACKS;
}

int sm_cf_push(sm_cf_t *cf, const char *sid, const char *offer_sdp, const sm_cf_track_t *tracks,
               size_t n, sm_cf_cb cb, void *arg)
{
    if (!common_ok(cf, sid, n, cb) || tracks == NULL || !nonempty(offer_sdp))
        return SM_EINVAL;
    json_t *sd = session_description("offer", offer_sdp);
    if (sd == NULL)
        return SM_EINVAL;
    json_t *body = json_object();
    json_t *arr = json_array(); /* borrowed once in body */
    /* Setting a literal key fails only without memory (jansson's own
     * allocations): not a case we recover from anywhere. */
    json_object_set_new(body, "sessionDescription", sd);
    json_object_set_new(body, "tracks", arr);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_object();
        ok = nonempty(tracks[i].mid) && nonempty(tracks[i].track_name) &&
             put_str(t, "location", "local") && put_str(t, "mid", tracks[i].mid) &&
             put_str(t, "trackName", tracks[i].track_name);
        json_array_append_new(arr, t);
    }
    if (!ok) {
        json_decref(body);
        return SM_EINVAL;
    }
    return submit(cf, OP_PUSH, "POST", sid, "/tracks/new", body, cb, arg);
}

int sm_cf_pull(sm_cf_t *cf, const char *sid, const sm_cf_track_t *tracks, size_t n, sm_cf_cb cb,
               void *arg)
{
    if (!common_ok(cf, sid, n, cb) || tracks == NULL)
        return SM_EINVAL;
    json_t *body = json_object();
    json_t *arr = json_array(); /* borrowed once in body */
    json_object_set_new(body, "tracks", arr);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_object();
        ok = nonempty(tracks[i].session_id) && nonempty(tracks[i].track_name) &&
             put_str(t, "location", "remote") && put_str(t, "sessionId", tracks[i].session_id) &&
             put_str(t, "trackName", tracks[i].track_name) &&
             (!nonempty(tracks[i].mid) || put_str(t, "mid", tracks[i].mid));
        json_array_append_new(arr, t);
    }
    if (!ok) {
        json_decref(body);
        return SM_EINVAL;
    }
    return submit(cf, OP_PULL, "POST", sid, "/tracks/new", body, cb, arg);
}

int sm_cf_renegotiate(sm_cf_t *cf, const char *sid, const char *answer_sdp, sm_cf_cb cb, void *arg)
{
    if (!common_ok(cf, sid, 1, cb) || !nonempty(answer_sdp))
        return SM_EINVAL;
    json_t *sd = session_description("answer", answer_sdp);
    if (sd == NULL)
        return SM_EINVAL;
    json_t *body = json_object();
    json_object_set_new(body, "sessionDescription", sd);
    return submit(cf, OP_RENEGOTIATE, "PUT", sid, "/renegotiate", body, cb, arg);
}

int sm_cf_close(sm_cf_t *cf, const char *sid, const char *const *mids, size_t n, bool force,
                sm_cf_cb cb, void *arg)
{
    if (!common_ok(cf, sid, n, cb) || mids == NULL)
        return SM_EINVAL;
    json_t *body = json_object();
    json_t *arr = json_array(); /* borrowed once in body */
    json_object_set_new(body, "tracks", arr);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_object();
        ok = nonempty(mids[i]) && put_str(t, "mid", mids[i]);
        json_array_append_new(arr, t);
    }
    json_object_set_new(body, "force", json_boolean(force));
    if (!ok) {
        json_decref(body);
        return SM_EINVAL;
    }
    return submit(cf, OP_CLOSE, "PUT", sid, "/tracks/close", body, cb, arg);
}
