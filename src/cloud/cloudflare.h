/*
 * Cloudflare Realtime SFU ("Calls") REST calls, typed and asynchronous:
 * reference/cloud-apis.md §1.  Used by the cloudflare media mode.  Plus a
 * small pure SDP reader (m-sections and their mids), implemented in sdp.c.
 *
 * Requests: `<base_url>/apps/<app_id>/sessions/...` with
 * `Authorization: Bearer <app_token>`; bodies are compact JSON with
 * `Content-Type: application/json` (sessions/new sends no body and no
 * Content-Type).  Shapes are exactly those of §1.3; see each call below.
 *
 * Every call runs on the calling thread's REST client
 * (sm_rest_client_current()) and completes on that thread, never inline.
 * Retries: network errors, timeouts, 429 and 5xx are retried (attempts and
 * interval from the handle, DECISIONS §4: webrtc.cloudflare_timeout per
 * attempt, 3 attempts 1 s apart, each wait jittered down by up to 20 %);
 * every other status is final, and so is a 2xx with a top-level errorCode
 * (a mutation is not repeated once the SFU has answered it).  A 200 whose
 * items carry errorCode is a success at this layer: the per-track errors are
 * in the result for the caller to judge (§1.5).  A retried sessions/new whose
 * first attempt timed out may leave an orphan session at the SFU (it expires
 * unused, §1.3).  This module keeps no per-session state; the caller
 * serialises mutations per SFU session (§1.4).
 *
 * Logs: one debug line per call ("cloudflare call": op, session id, HTTP
 * status, err, errorCode, attempts, ms).  Never the token, the URL or the
 * bodies (SDP).  The REST client adds its own line per attempt.
 *
 * The handle (sm_cf_t) is immutable after sm_cf_new (main thread) and
 * shared read-only by all threads; free it after every thread has stopped
 * calling (and every callback has run).  No global state.
 */
#ifndef SM_CLOUD_CLOUDFLARE_H
#define SM_CLOUD_CLOUDFLARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most tracks (or mids) one request may carry (§1.4 limits). */
#define SM_CF_MAX_TRACKS 64
/* Longest session id / app id accepted in a URL.  Real ones are 32 hex
 * characters; ids must match [A-Za-z0-9_-]+ so they can never change the
 * URL's path. */
#define SM_CF_MAX_ID 128

typedef struct sm_cf_s sm_cf_t;

/* One track.  In requests, location is ignored: sm_cf_push sends "local",
 * sm_cf_pull "remote".  In responses every field is NULL when the SFU left
 * it out (or sent a non-string); mid may be "" on failed items (§1.3). */
typedef struct {
    const char *location;   /* "local" or "remote" (echoed in responses when present) */
    const char *session_id; /* remote: the publisher's session id */
    const char *track_name;
    const char *mid;        /* request: optional for pulls ("#<trackName>" reuses a
                               transceiver), required for pushes; response: this
                               session's mid */
    const char *error_code; /* response items only: NULL when the item succeeded */
    const char *error_description;
} sm_cf_track_t;

/* What a call produced.  Every pointer (strings, tracks) is borrowed for
 * the callback only: copy what you keep. */
typedef struct {
    int err;                /* 0 (2xx, no top-level errorCode, well-formed body);
                               SM_EUNAVAIL (network error, timeout, 429 or 5xx after
                               the last attempt; a 2xx with a top-level errorCode,
                               whose fields are parsed as usual; a 2xx body that is not
                               the documented JSON, e.g. sessions/new without
                               sessionId; any 1xx/3xx); SM_ENOTFOUND (410 session gone,
                               or 404); SM_ECONFLICT (406: overlapping or unanswered
                               offer); SM_EINVAL (400/other 4xx, e.g. 413, 425);
                               SM_EAUTH (401/403); SM_ECANCELED (the thread's REST
                               client was canceled or closed, at shutdown) */
    int http_status;        /* of the last attempt; 0 when there was no response */
    unsigned attempts;      /* HTTP attempts made */
    const char *error_code; /* top-level errorCode (also parsed from 4xx/5xx JSON
                               bodies), or NULL */
    const char *error_description;
    const char *session_id;      /* sessions/new: the new session's id; else NULL */
    const char *sdp_type;        /* "offer" / "answer" when a sessionDescription came back */
    const char *sdp;             /* its SDP, else NULL (both or neither are set) */
    bool requires_renegotiation; /* requiresImmediateRenegotiation (false when absent) */
    const sm_cf_track_t *tracks; /* response items, in response order (NULL when none) */
    size_t n_tracks;
} sm_cf_result_t;

/* Called exactly once per submitted call, on the submitting thread, from
 * its loop.  r and everything it points to are valid during the call only.
 * The callback may submit further calls. */
typedef void (*sm_cf_cb)(const sm_cf_result_t *r, void *arg);

/* Main thread.  base_url like "https://rtc.live.cloudflare.com/v1" (http://
 * or https://, no whitespace; trailing slashes are dropped); app_id matches
 * [A-Za-z0-9_-]{1,128}; app_token non-empty, no control characters (the handle keeps
 * a copy; the caller's strings may be freed after the call); timeout_ms per
 * attempt (>= 1); attempts >= 1; retry_interval_ms between attempts (0 =
 * retry at once).  NULL on bad arguments (logged, without the token). */
sm_cf_t *sm_cf_new(const char *base_url, const char *app_id, const char *app_token,
                   uint64_t timeout_ms, unsigned attempts, uint64_t retry_interval_ms);
/* Main thread (NULL: no-op), once no thread uses cf any more. */
void sm_cf_free(sm_cf_t *cf);

/* Each returns 0 when submitted (cb called exactly once, later, on this
 * thread) or, with cb not called and nothing sent:
 *   SM_EINVAL   bad arguments: NULL cf/cb; sid not [A-Za-z0-9_-]{1,128}; n
 *               outside 1..SM_CF_MAX_TRACKS; a required string NULL or empty;
 *               a string that is not valid UTF-8 (it cannot go into JSON);
 *               or no REST client on this thread;
 *   SM_ECLOSED  this thread's REST client is closing.
 * The arguments are copied (into the request body) before the call returns. */

/* POST /apps/{app}/sessions/new, no body -> 201 {sessionId} -> r->session_id. */
int sm_cf_session_new(sm_cf_t *cf, sm_cf_cb cb, void *arg);
/* POST .../sessions/{sid}/tracks/new with the client's offer and local tracks:
 *   {"sessionDescription":{"type":"offer","sdp":offer_sdp},
 *    "tracks":[{"location":"local","mid":mid,"trackName":track_name}, ...]}
 * (mid and track_name required) -> answer + items ({trackName, mid}). */
int sm_cf_push(sm_cf_t *cf, const char *sid, const char *offer_sdp, const sm_cf_track_t *tracks,
               size_t n, sm_cf_cb cb, void *arg);
/* POST .../sessions/{sid}/tracks/new with remote tracks:
 *   {"tracks":[{"location":"remote","sessionId":session_id,"trackName":track_name
 *               [,"mid":mid]}, ...]}
 * (session_id and track_name required, mid sent only when non-empty) ->
 * SFU offer (requires_renegotiation) + items ({sessionId, trackName, mid},
 * or mid "" with error_code such as not_found_track_error). */
int sm_cf_pull(sm_cf_t *cf, const char *sid, const sm_cf_track_t *tracks, size_t n, sm_cf_cb cb,
               void *arg);
/* PUT .../sessions/{sid}/renegotiate with the client's answer:
 *   {"sessionDescription":{"type":"answer","sdp":answer_sdp}} -> 200 {} (an
 * empty 200 body is accepted as {}). */
int sm_cf_renegotiate(sm_cf_t *cf, const char *sid, const char *answer_sdp, sm_cf_cb cb, void *arg);
/* PUT .../sessions/{sid}/tracks/close {"tracks":[{"mid":mid}, ...],"force":force}.
 * Items whose errorCode is close_track_error count as closed (the caller
 * sees them); other item errors mean the mid is still open.  No
 * sessionDescription is sent: force=false (a negotiated close) needs the
 * client's offer, which the SFU rejects without (§1.3); the server's
 * cleanups use force=true. */
int sm_cf_close(sm_cf_t *cf, const char *sid, const char *const *mids, size_t n, bool force,
                sm_cf_cb cb, void *arg);

/* ---- SDP helpers (pure, any thread; sdp.c) ---- */

typedef struct {
    char mid[64];      /* a=mid value (RFC 4566 token characters, 1..63 bytes) */
    char kind[16];     /* m= media: "audio", "video", "application", ... */
    char direction[9]; /* "sendrecv", "sendonly", "recvonly" or "inactive": the
                          section's attribute, else the session-level one, else
                          "sendrecv" (RFC 4566 default) */
    bool rejected;     /* port 0 on the m= line (stopped/refused section) */
} sm_sdp_media_t;

/* The m-sections of an SDP (kind from the m= line, mid from its first a=mid)
 * in order.  Reads exactly len bytes of sdp (no NUL needed; NULL allowed
 * when len is 0); lines end with "\n" or "\r\n"; attribute order and BUNDLE
 * groups do not matter; lines that are not "<letter>=..." are ignored.
 * Writes the first min(count, cap) sections to out (out may be NULL when
 * cap is 0) and returns how many it wrote (at most cap: pass cap + 1 to
 * detect "more than cap"), or -1 when the text is not a usable SDP: the first
 * line is not "v=0", an m= line has no media token or one longer than 15
 * bytes, or an m-section (any, also past cap) has no a=mid or an a=mid that
 * is empty, longer than 63 bytes or not RFC 4566 token characters.  On -1
 * the contents of out are unspecified. */
int sm_sdp_media(const char *sdp, size_t len, sm_sdp_media_t *out, size_t cap);

#endif
