/*
 * Cloudflare Realtime SFU client (src/cloud/cloudflare.c) and the SDP reader
 * (src/cloud/sdp.c).
 *
 * The calls run on a real REST client against the scripted loopback HTTP
 * server of fake_http.h (the same exception to "no sockets" as
 * test_http_client.c: 127.0.0.1, kernel-chosen ports).  Each test scripts
 * the server's answers, checks every request (method, path, headers, JSON
 * body exactly as cloud-apis.md §1.3) and the parsed result.  No sleeps:
 * waits run the loop until a condition holds, bounded by a guard timer;
 * retry intervals and timeouts are tens of milliseconds.  Each test ends
 * with uv_loop_close() == 0; run under ASan or valgrind for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloud/cloudflare.h"
#include "cloud/fake_http.h"
#include "cloud/http_client.h"
#include "core/assert.h"
#include "core/err.h"
#include "log/log.h"
#include "support/log_capture.h"
#include "support/uv_guard.h"

#define WAIT_MS 5000
#define APP "0123456789abcdef0123456789abcdef"
#define TOKEN "cf-SEKRET-app-token"
#define SID "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define PUB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define PATH "/v1/apps/" APP "/sessions/"
#define INTERVAL_MS 10

static int g_devnull = -1;

/* ---- SDP samples ------------------------------------------------------------ */

/* Chrome (unified plan): audio + video + data channel, BUNDLE, CRLF, mid
 * after the transport attributes, one direction per section. */
static const char chrome_offer[] =
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1 2\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS 3f2a\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Vx5c\r\n"
    "a=ice-pwd:SEKRETPWDSEKRETPWDabcdef\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 4A:7B:2C:91:0E:55:DA:13:6F:88:C2:47:19:AB:3E:D0:"
    "77:12:9C:E4:58:0B:F1:26:A3:6D:84:C9:1F:5E:02:BB\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
    "a=sendrecv\r\n"
    "a=msid:3f2a 9d1c\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n"
    "a=ssrc:1001 cname:abcd\r\n"
    "a=ssrc:1001 msid:3f2a 9d1c\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Vx5c\r\n"
    "a=ice-pwd:SEKRETPWDSEKRETPWDabcdef\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 4A:7B:2C:91:0E:55:DA:13:6F:88:C2:47:19:AB:3E:D0:"
    "77:12:9C:E4:58:0B:F1:26:A3:6D:84:C9:1F:5E:02:BB\r\n"
    "a=setup:actpass\r\n"
    "a=mid:1\r\n"
    "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n"
    "a=sendonly\r\n"
    "a=msid:3f2a 77e0\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
    "a=rtcp-fb:96 goog-remb\r\n"
    "a=rtcp-fb:96 nack pli\r\n"
    "a=rtpmap:97 rtx/90000\r\n"
    "a=fmtp:97 apt=96\r\n"
    "a=ssrc-group:FID 2001 2002\r\n"
    "a=ssrc:2001 cname:abcd\r\n"
    "a=ssrc:2002 cname:abcd\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Vx5c\r\n"
    "a=ice-pwd:SEKRETPWDSEKRETPWDabcdef\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 4A:7B:2C:91:0E:55:DA:13:6F:88:C2:47:19:AB:3E:D0:"
    "77:12:9C:E4:58:0B:F1:26:A3:6D:84:C9:1F:5E:02:BB\r\n"
    "a=setup:actpass\r\n"
    "a=mid:2\r\n"
    "a=sctp-port:5000\r\n"
    "a=max-message-size:262144\r\n";

/* Firefox style: transport attributes at session level, attributes in
 * alphabetical order (direction before mid), old "sdparta_N" mids. */
static const char firefox_offer[] =
    "v=0\r\n"
    "o=mozilla...THIS_IS_SDPARTA-99.0 7052848360639826063 0 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=fingerprint:sha-256 5D:0E:6C:11:9A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:"
    "D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5\r\n"
    "a=group:BUNDLE sdparta_0 sdparta_1\r\n"
    "a=ice-options:trickle\r\n"
    "a=msid-semantic:WMS *\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=sendrecv\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n"
    "a=ice-pwd:1c2b3a4d5e6f7a8b9c0d1e2f\r\n"
    "a=ice-ufrag:8a1b2c3d\r\n"
    "a=mid:sdparta_0\r\n"
    "a=msid:{5a8e} {1b2c}\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:109 opus/48000/2\r\n"
    "a=setup:actpass\r\n"
    "a=ssrc:3001 cname:{c0ffee}\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 120 124 121\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=recvonly\r\n"
    "a=fmtp:120 max-fs=12288;max-fr=60\r\n"
    "a=ice-pwd:1c2b3a4d5e6f7a8b9c0d1e2f\r\n"
    "a=ice-ufrag:8a1b2c3d\r\n"
    "a=mid:sdparta_1\r\n"
    "a=rtcp-fb:120 nack pli\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:120 VP8/90000\r\n"
    "a=setup:actpass\r\n";

/* Pre-BUNDLE style (no a=group), LF line endings, named mids, a rejected
 * section, a session-level direction and a section overriding it. */
static const char legacy_offer[] = "v=0\n"
                                   "o=- 1 1 IN IP4 10.0.0.1\n"
                                   "s=legacy\n"
                                   "c=IN IP4 10.0.0.1\n"
                                   "t=0 0\n"
                                   "a=sendonly\n"
                                   "m=audio 49170 RTP/SAVPF 0 8\n"
                                   "a=rtpmap:0 PCMU/8000\n"
                                   "a=mid:audio\n"
                                   "m=video 0 RTP/SAVPF 96\n"
                                   "a=mid:video\n"
                                   "a=inactive\n"
                                   "m=video 51372/2 RTP/SAVPF 97\n"
                                   "a=recvonly\n"
                                   "a=mid:screen  \n";

/* ---- Fixture ------------------------------------------------------------------ */

typedef struct {
    int status;
    int mode; /* FAKE_REPLY (0) unless set */
    const char *body;
} step_t;

typedef struct {
    uv_loop_t loop;
    uvg_t guard;
    fake_t fake;
    sm_rest_client_t *c;
    sm_cf_t *cf;
    char base[128];
    const step_t *script; /* request i gets script[min(i, nscript - 1)] */
    size_t nscript;
    int refused_fd;
} fx_t;

typedef struct {
    char *location, *session_id, *track_name, *mid, *error_code, *error_description;
} track_copy_t;

/* A deep copy of what one callback saw (the result is borrowed). */
typedef struct got_s {
    unsigned calls;
    int err, http_status;
    unsigned attempts;
    char *error_code, *error_description, *session_id, *sdp_type, *sdp;
    bool requires_renegotiation;
    bool tracks_null;
    size_t n_tracks;
    track_copy_t tracks[8];
    /* Optional follow-up from inside the callback on chain_fx->cf: a push on
     * the session just created, or (resubmit) another sessions/new. */
    fx_t *chain_fx;
    bool resubmit;
    int chain_rc;
    struct got_s *chain_next;
} got_t;

static void h_script(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    fx_t *fx = f->data;
    (void)req;
    SM_ASSERT(fx->nscript > 0);
    const step_t *s = &fx->script[i < fx->nscript ? i : fx->nscript - 1];
    out->mode = s->mode;
    out->status = s->status;
    out->body = s->body;
}

static void script(fx_t *fx, const step_t *steps, size_t n)
{
    fx->script = steps;
    fx->nscript = n;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uvg_init(&fx->guard, &fx->loop);
    fx->refused_fd = -1;
    assert_int_equal(fake_start(&fx->fake, &fx->loop, h_script), 0);
    fx->fake.data = fx;
    fx->c = sm_rest_client_new(&fx->loop);
    assert_non_null(fx->c);
    sm_rest_client_set_current(fx->c);
    snprintf(fx->base, sizeof fx->base, "http://127.0.0.1:%d/v1", fx->fake.port);
    fx->cf = sm_cf_new(fx->base, APP, TOKEN, 2000, 3, INTERVAL_MS);
    assert_non_null(fx->cf);
    *state = fx;
    return 0;
}

#define RUN_UNTIL(fx, cond) UVG_RUN_UNTIL(&(fx)->guard, cond, WAIT_MS)

static int teardown(void **state)
{
    fx_t *fx = *state;
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(fx->c);
    fake_stop(&fx->fake);
    uvg_close_loop(&fx->guard, WAIT_MS);
    if (fx->refused_fd >= 0)
        close(fx->refused_fd);
    sm_cf_free(fx->cf);
    fake_free(&fx->fake);
    free(fx);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void got_free(got_t *g)
{
    free(g->error_code);
    free(g->error_description);
    free(g->session_id);
    free(g->sdp_type);
    free(g->sdp);
    for (size_t i = 0; i < g->n_tracks && i < SM_ARRAY_LEN(g->tracks); i++) {
        track_copy_t *t = &g->tracks[i];
        free(t->location);
        free(t->session_id);
        free(t->track_name);
        free(t->mid);
        free(t->error_code);
        free(t->error_description);
    }
    memset(g, 0, sizeof *g);
}

static void on_result(const sm_cf_result_t *r, void *arg);

static const sm_cf_track_t chain_tracks[] = {{.mid = "0", .track_name = "mic"}};

static void on_result(const sm_cf_result_t *r, void *arg)
{
    got_t *g = arg;
    g->calls++;
    g->err = r->err;
    g->http_status = r->http_status;
    g->attempts = r->attempts;
    g->error_code = dup_or_null(r->error_code);
    g->error_description = dup_or_null(r->error_description);
    g->session_id = dup_or_null(r->session_id);
    g->sdp_type = dup_or_null(r->sdp_type);
    g->sdp = dup_or_null(r->sdp);
    g->requires_renegotiation = r->requires_renegotiation;
    g->tracks_null = r->tracks == NULL;
    g->n_tracks = r->n_tracks;
    assert_true(r->n_tracks <= SM_ARRAY_LEN(g->tracks));
    for (size_t i = 0; i < r->n_tracks; i++) {
        g->tracks[i] = (track_copy_t){
            .location = dup_or_null(r->tracks[i].location),
            .session_id = dup_or_null(r->tracks[i].session_id),
            .track_name = dup_or_null(r->tracks[i].track_name),
            .mid = dup_or_null(r->tracks[i].mid),
            .error_code = dup_or_null(r->tracks[i].error_code),
            .error_description = dup_or_null(r->tracks[i].error_description),
        };
    }
    if (g->chain_fx != NULL && g->resubmit) {
        g->chain_rc = sm_cf_session_new(g->chain_fx->cf, on_result, g->chain_next);
    } else if (g->chain_fx != NULL && r->err == 0) {
        /* Follow-up call from the callback, on the session just created. */
        g->chain_rc = sm_cf_push(g->chain_fx->cf, r->session_id, chrome_offer, chain_tracks, 1,
                                 on_result, g->chain_next);
    }
}

/* Request checks ---------------------------------------------------------------- */

static void check_req(const fake_req_t *r, const char *method, const char *path, bool json)
{
    char v[512];
    assert_string_equal(r->method, method);
    assert_string_equal(r->path, path);
    assert_true(fake_header(r, "authorization", v, sizeof v));
    assert_string_equal(v, "Bearer " TOKEN);
    if (json) {
        assert_true(fake_header(r, "content-type", v, sizeof v));
        assert_string_equal(v, "application/json");
        assert_true(r->body_len > 0);
    } else {
        assert_false(fake_header(r, "content-type", v, sizeof v));
        assert_int_equal(r->body_len, 0);
        assert_true(fake_header(r, "content-length", v, sizeof v));
        assert_string_equal(v, "0");
    }
}

/* The recorded body equals the JSON value exp (stolen), key order aside. */
static void check_body(const fake_req_t *r, json_t *exp)
{
    json_error_t e;
    assert_non_null(exp);
    json_t *got = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    if (got == NULL)
        fail_msg("request body is not JSON (%s): %s", e.text, r->body);
    if (!json_equal(got, exp)) {
        char *s = json_dumps(exp, JSON_COMPACT);
        print_error("body %s\nwant %s\n", r->body, s);
        free(s);
        fail();
    }
    json_decref(got);
    json_decref(exp);
}

/* ---- Handle ------------------------------------------------------------------- */

static void test_new_rejects_bad_settings(void **state)
{
    (void)state;
    sm_cf_t *cf;
    assert_null(sm_cf_new(NULL, APP, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("ftp://x/v1", APP, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://", APP, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("https:///", APP, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://a b/v1", APP, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1\r\n", APP, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", NULL, TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", "", TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", "../admin", TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", "a?b", TOKEN, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", APP, NULL, 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", APP, "", 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", APP, "tok\r\nX-Evil: 1", 1000, 3, 10));
    assert_null(sm_cf_new("http://x/v1", APP, TOKEN, 0, 3, 10));
    assert_null(sm_cf_new("http://x/v1", APP, TOKEN, 1000, 0, 10));
    char long_id[SM_CF_MAX_ID + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_null(sm_cf_new("http://x/v1", long_id, TOKEN, 1000, 3, 10));
    long_id[SM_CF_MAX_ID] = '\0'; /* exactly the maximum */
    cf = sm_cf_new("http://x/v1", long_id, TOKEN, 1000, 3, 10);
    assert_non_null(cf);
    sm_cf_free(cf);
    cf = sm_cf_new("https://rtc.live.cloudflare.com/v1", APP, TOKEN, 10000, 3, 1000);
    assert_non_null(cf);
    sm_cf_free(cf);
    sm_cf_free(NULL);
}

/* ---- Calls -------------------------------------------------------------------- */

static void test_session_new(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{201, 0, "{\"sessionId\":\"" SID "\"}"}};
    script(fx, s, 1);
    got_t g = {0};
    assert_int_equal(sm_cf_session_new(fx->cf, on_result, &g), 0);
    assert_int_equal(g.calls, 0); /* never inline */
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.http_status, 201);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.session_id, SID);
    assert_null(g.sdp);
    assert_null(g.sdp_type);
    assert_null(g.error_code);
    assert_false(g.requires_renegotiation);
    assert_int_equal(g.n_tracks, 0);
    assert_true(g.tracks_null);
    assert_int_equal(fx->fake.nreq, 1);
    check_req(&fx->fake.reqs[0], "POST", PATH "new", false);
    uvg_spins(&fx->guard, 3);
    assert_int_equal(g.calls, 1);
    got_free(&g);
}

static void test_base_url_trailing_slash(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{200, 0, "{\"sessionId\":\"x1\"}"}}; /* 200 accepted too */
    script(fx, s, 1);
    char base[160];
    snprintf(base, sizeof base, "%s//", fx->base);
    sm_cf_t *cf = sm_cf_new(base, APP, TOKEN, 2000, 1, 0);
    assert_non_null(cf);
    got_t g = {0};
    assert_int_equal(sm_cf_session_new(cf, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_string_equal(g.session_id, "x1");
    assert_string_equal(fx->fake.reqs[0].path, PATH "new");
    sm_cf_free(cf); /* the request had copied everything */
    got_free(&g);
}

static void test_push(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {200, 0,
         "{\"requiresImmediateRenegotiation\":false,"
         "\"sessionDescription\":{\"type\":\"answer\",\"sdp\":\"v=0\\r\\nANSWER\\r\\n\"},"
         "\"tracks\":[{\"trackName\":\"mic\",\"mid\":\"0\"},{\"trackName\":\"cam\",\"mid\":\"1\"}]"
         "}"},
    };
    script(fx, s, 1);
    const sm_cf_track_t t[] = {
        {.location = "ignored", .mid = "0", .track_name = "mic"},
        {.mid = "1", .track_name = "cam", .session_id = "ignored-for-push"},
    };
    got_t g = {0};
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, t, 2, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.http_status, 200);
    assert_null(g.session_id);
    assert_string_equal(g.sdp_type, "answer");
    assert_string_equal(g.sdp, "v=0\r\nANSWER\r\n");
    assert_false(g.requires_renegotiation);
    assert_int_equal(g.n_tracks, 2);
    assert_string_equal(g.tracks[0].track_name, "mic");
    assert_string_equal(g.tracks[0].mid, "0");
    assert_null(g.tracks[0].error_code);
    assert_null(g.tracks[0].location);
    assert_string_equal(g.tracks[1].track_name, "cam");
    assert_string_equal(g.tracks[1].mid, "1");

    const fake_req_t *r = &fx->fake.reqs[0];
    check_req(r, "POST", PATH SID "/tracks/new", true);
    check_body(r, json_pack("{s:{s:s,s:s},s:[{s:s,s:s,s:s},{s:s,s:s,s:s}]}", "sessionDescription",
                            "type", "offer", "sdp", chrome_offer, "tracks", "location", "local",
                            "mid", "0", "trackName", "mic", "location", "local", "mid", "1",
                            "trackName", "cam"));
    got_free(&g);
}

static void test_pull_with_track_error(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {200, 0,
         "{\"requiresImmediateRenegotiation\":true,"
         "\"sessionDescription\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\nOFFER\\r\\n\"},"
         "\"tracks\":[{\"sessionId\":\"" PUB "\",\"trackName\":\"cam\",\"mid\":\"2\"},"
         "{\"sessionId\":\"" PUB "\",\"trackName\":\"mic\",\"mid\":\"\","
         "\"errorCode\":\"not_found_track_error\",\"errorDescription\":\"Track not found on "
         "remote peer. Make sure the publisher peer is connected and sending packets for this "
         "track\"}]}"},
    };
    script(fx, s, 1);
    const sm_cf_track_t t[] = {
        {.session_id = PUB, .track_name = "cam"},
        {.session_id = PUB, .track_name = "mic", .mid = ""}, /* "" = not sent */
        {.session_id = PUB, .track_name = "scr", .mid = "#mine"},
    };
    got_t g = {0};
    assert_int_equal(sm_cf_pull(fx->cf, SID, t, 3, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0); /* per-track errors are not call errors */
    assert_null(g.error_code);
    assert_true(g.requires_renegotiation);
    assert_string_equal(g.sdp_type, "offer");
    assert_string_equal(g.sdp, "v=0\r\nOFFER\r\n");
    assert_int_equal(g.n_tracks, 2);
    assert_string_equal(g.tracks[0].session_id, PUB);
    assert_string_equal(g.tracks[0].track_name, "cam");
    assert_string_equal(g.tracks[0].mid, "2");
    assert_null(g.tracks[0].error_code);
    assert_null(g.tracks[0].error_description);
    assert_string_equal(g.tracks[1].track_name, "mic");
    assert_non_null(g.tracks[1].mid);
    assert_string_equal(g.tracks[1].mid, ""); /* empty, not absent */
    assert_string_equal(g.tracks[1].error_code, "not_found_track_error");
    assert_non_null(strstr(g.tracks[1].error_description, "Track not found"));

    const fake_req_t *r = &fx->fake.reqs[0];
    check_req(r, "POST", PATH SID "/tracks/new", true);
    check_body(r, json_pack("{s:[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s,s:s}]}", "tracks",
                            "location", "remote", "sessionId", PUB, "trackName", "cam", "location",
                            "remote", "sessionId", PUB, "trackName", "mic", "location", "remote",
                            "sessionId", PUB, "trackName", "scr", "mid", "#mine"));
    got_free(&g);
}

static void test_renegotiate(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{200, 0, "{}"}, {200, 0, ""}};
    script(fx, s, 2);
    const char *answer = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    got_t g[2] = {{0}};
    assert_int_equal(sm_cf_renegotiate(fx->cf, SID, answer, on_result, &g[0]), 0);
    RUN_UNTIL(fx, g[0].calls > 0);
    assert_int_equal(sm_cf_renegotiate(fx->cf, SID, answer, on_result, &g[1]), 0);
    RUN_UNTIL(fx, g[1].calls > 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g[i].err, 0); /* {} and an empty body alike */
        assert_int_equal(g[i].http_status, 200);
        assert_null(g[i].sdp);
        assert_int_equal(g[i].n_tracks, 0);
        const fake_req_t *r = &fx->fake.reqs[i];
        check_req(r, "PUT", PATH SID "/renegotiate", true);
        check_body(
            r, json_pack("{s:{s:s,s:s}}", "sessionDescription", "type", "answer", "sdp", answer));
        got_free(&g[i]);
    }
}

static void test_close(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {200, 0,
         "{\"requiresImmediateRenegotiation\":false,\"tracks\":[{\"mid\":\"1\"},"
         "{\"mid\":\"7\",\"errorCode\":\"close_track_error\",\"errorDescription\":\"Track "
         "doesn't exist or was already closed\"},"
         "{\"mid\":\"9\",\"errorCode\":\"internal_error\",\"errorDescription\":\"Backend "
         "error\"}]}"},
        {200, 0, "{\"tracks\":[{\"mid\":\"3\"}]}"},
    };
    script(fx, s, 2);
    const char *mids[] = {"1", "7", "9"};
    got_t g = {0}, g2 = {0};
    assert_int_equal(sm_cf_close(fx->cf, SID, mids, 3, true, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.n_tracks, 3);
    assert_string_equal(g.tracks[0].mid, "1");
    assert_null(g.tracks[0].error_code);
    assert_string_equal(g.tracks[1].mid, "7");
    assert_string_equal(g.tracks[1].error_code, "close_track_error");
    assert_string_equal(g.tracks[1].error_description, "Track doesn't exist or was already closed");
    assert_string_equal(g.tracks[2].error_code, "internal_error");
    assert_false(g.requires_renegotiation);
    check_req(&fx->fake.reqs[0], "PUT", PATH SID "/tracks/close", true);
    check_body(&fx->fake.reqs[0], json_pack("{s:[{s:s},{s:s},{s:s}],s:b}", "tracks", "mid", "1",
                                            "mid", "7", "mid", "9", "force", 1));

    const char *one[] = {"3"};
    assert_int_equal(sm_cf_close(fx->cf, SID, one, 1, false, on_result, &g2), 0);
    RUN_UNTIL(fx, g2.calls > 0);
    assert_int_equal(g2.err, 0);
    check_body(&fx->fake.reqs[1], json_pack("{s:[{s:s}],s:b}", "tracks", "mid", "3", "force", 0));
    got_free(&g);
    got_free(&g2);
}

/* sessions/new, then a push from inside its callback on the new session. */
static void test_chained_from_callback(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {201, 0, "{\"sessionId\":\"" SID "\"}"},
        {200, 0,
         "{\"sessionDescription\":{\"type\":\"answer\",\"sdp\":\"v=0\\r\\n\"},"
         "\"tracks\":[{\"trackName\":\"mic\",\"mid\":\"0\"}]}"},
    };
    script(fx, s, 2);
    got_t second = {0};
    got_t first = {.chain_fx = fx, .chain_next = &second};
    assert_int_equal(sm_cf_session_new(fx->cf, on_result, &first), 0);
    RUN_UNTIL(fx, second.calls > 0);
    assert_int_equal(first.chain_rc, 0);
    assert_int_equal(second.err, 0);
    assert_string_equal(second.tracks[0].mid, "0");
    assert_string_equal(fx->fake.reqs[1].path, PATH SID "/tracks/new");
    got_free(&first);
    got_free(&second);
}

/* ---- Errors ------------------------------------------------------------------- */

typedef struct {
    int status;
    const char *body;
    int err;
    const char *error_code;
} status_case_t;

static void test_status_mapping(void **state)
{
    fx_t *fx = *state;
    static const status_case_t cases[] = {
        {400, "{\"errorCode\":\"decoding_error\",\"errorDescription\":\"bad json\"}", SM_EINVAL,
         "decoding_error"},
        {401, "{\"errorCode\":\"unauthorized\"}", SM_EAUTH, "unauthorized"},
        {403, "", SM_EAUTH, NULL},
        {404, "{\"errorCode\":\"not_found\"}", SM_ENOTFOUND, "not_found"},
        {406,
         "{\"errorCode\":\"invalid_session_description\",\"errorDescription\":\"answer "
         "first\"}",
         SM_ECONFLICT, "invalid_session_description"},
        {410, "{\"errorCode\":\"session_error\"}", SM_ENOTFOUND, "session_error"},
        {413, "{\"errorCode\":\"payload_too_large\"}", SM_EINVAL, "payload_too_large"},
        {425, "{\"errorCode\":\"session_error\"}", SM_EINVAL, "session_error"},
        {302, "", SM_EUNAVAIL, NULL},
        {418, "not json at all", SM_EINVAL, NULL},
    };
    step_t steps[SM_ARRAY_LEN(cases)];
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++)
        steps[i] = (step_t){cases[i].status, 0, cases[i].body};
    script(fx, steps, SM_ARRAY_LEN(steps));
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++) {
        got_t g = {0};
        assert_int_equal(sm_cf_renegotiate(fx->cf, SID, "v=0\r\n", on_result, &g), 0);
        RUN_UNTIL(fx, g.calls > 0);
        if (g.err != cases[i].err)
            fail_msg("status %d: err %s, want %s", cases[i].status, sm_errname(g.err),
                     sm_errname(cases[i].err));
        assert_int_equal(g.http_status, cases[i].status);
        assert_int_equal(g.attempts, 1); /* none of these is retried */
        assert_int_equal(fx->fake.nreq, i + 1);
        if (cases[i].error_code != NULL)
            assert_string_equal(g.error_code, cases[i].error_code);
        else
            assert_null(g.error_code);
        got_free(&g);
    }
}

static void test_406_on_pull(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{406, 0,
                                "{\"errorCode\":\"invalid_session_description\","
                                "\"errorDescription\":\"the previous SFU offer must be "
                                "answered\"}"}};
    script(fx, s, 1);
    const sm_cf_track_t t[] = {{.session_id = PUB, .track_name = "cam"}};
    got_t g = {0};
    assert_int_equal(sm_cf_pull(fx->cf, SID, t, 1, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_ECONFLICT);
    assert_int_equal(g.http_status, 406);
    assert_string_equal(g.error_code, "invalid_session_description");
    assert_non_null(strstr(g.error_description, "answered"));
    assert_int_equal(g.n_tracks, 0);
    assert_null(g.sdp);
    assert_int_equal(fx->fake.nreq, 1);
    got_free(&g);
}

static void test_410_session_gone(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{410, 0, "{\"errorCode\":\"session_error\"}"}};
    script(fx, s, 1);
    const char *mids[] = {"0"};
    got_t g = {0};
    assert_int_equal(sm_cf_close(fx->cf, SID, mids, 1, true, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_ENOTFOUND);
    assert_int_equal(g.http_status, 410);
    assert_string_equal(g.error_code, "session_error");
    assert_int_equal(fx->fake.nreq, 1);
    got_free(&g);
}

static void test_503_twice_then_ok(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {503, 0, "{\"errorCode\":\"temporarily_unavailable_error\"}"},
        {503, 0, "busy"},
        {201, 0, "{\"sessionId\":\"" SID "\"}"},
    };
    script(fx, s, 3);
    got_t g = {0};
    assert_int_equal(sm_cf_session_new(fx->cf, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.http_status, 201);
    assert_int_equal(g.attempts, 3);
    assert_null(g.error_code); /* from the last attempt only */
    assert_string_equal(g.session_id, SID);
    assert_int_equal(fx->fake.nreq, 3);
    for (unsigned i = 0; i < 3; i++)
        check_req(&fx->fake.reqs[i], "POST", PATH "new", false);
    /* Waits of about the interval (jitter takes up to 20 % off, never adds). */
    uint64_t gap = fx->fake.reqs[1].at_ns - fx->fake.reqs[0].at_ns;
    assert_true(gap >= (uint64_t)INTERVAL_MS * 800000u);
    got_free(&g);
}

static void test_429_retried(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{429, 0, ""}, {200, 0, "{}"}};
    script(fx, s, 2);
    got_t g = {0};
    assert_int_equal(sm_cf_renegotiate(fx->cf, SID, "v=0\r\n", on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(fx->fake.nreq, 2);
    /* The same body both times. */
    assert_int_equal(fx->fake.reqs[0].body_len, fx->fake.reqs[1].body_len);
    assert_memory_equal(fx->fake.reqs[0].body, fx->fake.reqs[1].body, fx->fake.reqs[0].body_len);
    got_free(&g);
}

static void test_503_always(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{503, 0, "{\"errorCode\":\"backend_error\"}"}};
    script(fx, s, 1);
    const sm_cf_track_t t[] = {{.mid = "0", .track_name = "mic"}};
    got_t g = {0};
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, t, 1, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_EUNAVAIL);
    assert_int_equal(g.http_status, 503);
    assert_int_equal(g.attempts, 3); /* the handle's attempts */
    assert_int_equal(fx->fake.nreq, 3);
    assert_string_equal(g.error_code, "backend_error");
    assert_null(g.sdp);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 3);
    assert_int_equal(g.calls, 1);
    got_free(&g);
}

static void test_timeout(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{0, FAKE_SILENT, NULL}};
    script(fx, s, 1);
    sm_cf_t *cf = sm_cf_new(fx->base, APP, TOKEN, 80, 2, INTERVAL_MS);
    assert_non_null(cf);
    got_t g = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(sm_cf_session_new(cf, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(g.err, SM_EUNAVAIL);
    assert_int_equal(g.http_status, 0);
    assert_int_equal(g.attempts, 2);
    assert_null(g.session_id);
    assert_int_equal(fx->fake.nreq, 2);
    assert_true(ms >= 160 && ms < 2000); /* two 80 ms attempts */
    sm_cf_free(cf);
    got_free(&g);
}

static void test_connection_refused(void **state)
{
    fx_t *fx = *state;
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", fake_refused_port(&fx->refused_fd));
    sm_cf_t *cf = sm_cf_new(base, APP, TOKEN, 2000, 2, INTERVAL_MS);
    got_t g = {0};
    assert_int_equal(sm_cf_session_new(cf, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_EUNAVAIL);
    assert_int_equal(g.http_status, 0);
    assert_int_equal(g.attempts, 2);
    sm_cf_free(cf);
    got_free(&g);
}

static void test_error_code_in_200(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {200, 0, "{\"errorCode\":\"internal_error\",\"errorDescription\":\"Backend error\"}"}};
    script(fx, s, 1);
    const sm_cf_track_t t[] = {{.session_id = PUB, .track_name = "cam"}};
    got_t g = {0};
    assert_int_equal(sm_cf_pull(fx->cf, SID, t, 1, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_EUNAVAIL);
    assert_int_equal(g.http_status, 200);
    assert_string_equal(g.error_code, "internal_error");
    assert_string_equal(g.error_description, "Backend error");
    assert_int_equal(g.attempts, 1); /* answered: a mutation is never repeated */
    assert_int_equal(fx->fake.nreq, 1);
    got_free(&g);
}

typedef struct {
    int status;
    const char *body;
    int err;
} body_case_t;

static void test_malformed_success_bodies(void **state)
{
    fx_t *fx = *state;
    static const body_case_t cases[] = {
        {200, "not json", SM_EUNAVAIL},
        {200, "[1,2]", SM_EUNAVAIL},
        {200, "{\"tracks\":{}}", SM_EUNAVAIL},
        {200, "{\"tracks\":[1]}", SM_EUNAVAIL},
        {200, "{\"sessionDescription\":{\"type\":\"offer\"}}", SM_EUNAVAIL},
        {200, "{\"sessionDescription\":\"v=0\"}", SM_EUNAVAIL},
        {200, "{\"requiresImmediateRenegotiation\":\"yes\"}", SM_EUNAVAIL},
        {200, "{\"tracks\":null,\"sessionDescription\":null}", 0},
        {200, "{\"tracks\":[]}", 0},
        {204, "", 0},
    };
    step_t steps[SM_ARRAY_LEN(cases)];
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++)
        steps[i] = (step_t){cases[i].status, 0, cases[i].body};
    script(fx, steps, SM_ARRAY_LEN(steps));
    const sm_cf_track_t t[] = {{.session_id = PUB, .track_name = "cam"}};
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++) {
        got_t g = {0};
        assert_int_equal(sm_cf_pull(fx->cf, SID, t, 1, on_result, &g), 0);
        RUN_UNTIL(fx, g.calls > 0);
        if (g.err != cases[i].err)
            fail_msg("body %s: err %s, want %s", cases[i].body, sm_errname(g.err),
                     sm_errname(cases[i].err));
        assert_int_equal(g.attempts, 1);
        assert_null(g.sdp); /* never half a sessionDescription */
        assert_null(g.sdp_type);
        assert_int_equal(g.n_tracks, 0);
        got_free(&g);
    }
}

static void test_session_new_without_id(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {201, 0, ""},
        {201, 0, "{}"},
        {201, 0, "{\"sessionId\":\"\"}"},
        {201, 0, "{\"sessionId\":42}"},
    };
    script(fx, s, 4);
    for (int i = 0; i < 4; i++) {
        got_t g = {0};
        assert_int_equal(sm_cf_session_new(fx->cf, on_result, &g), 0);
        RUN_UNTIL(fx, g.calls > 0);
        assert_int_equal(g.err, SM_EUNAVAIL);
        assert_int_equal(g.http_status, 201);
        assert_null(g.session_id);
        got_free(&g);
    }
    assert_int_equal(fx->fake.nreq, 4);
}

/* Item fields of the wrong type read as absent; unknown fields are ignored. */
static void test_item_field_types(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {200, 0,
         "{\"future\":{\"x\":1},\"tracks\":[{\"mid\":7,\"trackName\":null,\"location\":\"remote\","
         "\"errorCode\":[\"x\"],\"sessionId\":\"" PUB "\",\"status\":\"active\"}]}"},
    };
    script(fx, s, 1);
    const sm_cf_track_t t[] = {{.session_id = PUB, .track_name = "cam"}};
    got_t g = {0};
    assert_int_equal(sm_cf_pull(fx->cf, SID, t, 1, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.n_tracks, 1);
    assert_null(g.tracks[0].mid);
    assert_null(g.tracks[0].track_name);
    assert_null(g.tracks[0].error_code);
    assert_string_equal(g.tracks[0].location, "remote");
    assert_string_equal(g.tracks[0].session_id, PUB);
    got_free(&g);
}

static void test_canceled(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{0, FAKE_SILENT, NULL}};
    script(fx, s, 1);
    got_t g = {0};
    assert_int_equal(sm_cf_session_new(fx->cf, on_result, &g), 0);
    RUN_UNTIL(fx, fx->fake.nreq > 0);
    sm_rest_cancel_all(fx->c);
    assert_int_equal(g.calls, 0);
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_ECANCELED);
    assert_int_equal(g.http_status, 0);
    got_free(&g);
}

static void test_invalid_arguments(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{200, 0, "{}"}};
    script(fx, s, 1);
    got_t g = {0};
    const sm_cf_track_t ok_local[] = {{.mid = "0", .track_name = "mic"}};
    const sm_cf_track_t ok_remote[] = {{.session_id = PUB, .track_name = "mic"}};
    const sm_cf_track_t no_mid[] = {{.track_name = "mic"}};
    const sm_cf_track_t no_name[] = {{.mid = "0", .track_name = ""}};
    const sm_cf_track_t no_pub[] = {{.track_name = "mic"}};
    const sm_cf_track_t bad_utf8[] = {{.mid = "0", .track_name = "\xff\xfe"}};
    sm_cf_track_t many[SM_CF_MAX_TRACKS + 1];
    for (size_t i = 0; i < SM_ARRAY_LEN(many); i++)
        many[i] = (sm_cf_track_t){.session_id = PUB, .track_name = "t"};
    const char *mids[] = {"0", ""};

    assert_int_equal(sm_cf_session_new(NULL, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_session_new(fx->cf, NULL, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, NULL, chrome_offer, ok_local, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, "", chrome_offer, ok_local, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, "../x", chrome_offer, ok_local, 1, on_result, &g),
                     SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, "a/b", chrome_offer, ok_local, 1, on_result, &g),
                     SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, NULL, ok_local, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, "", ok_local, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, "v=0\r\n\xc3(", ok_local, 1, on_result, &g),
                     SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, ok_local, 0, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, NULL, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, no_mid, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, no_name, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, bad_utf8, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_pull(fx->cf, SID, no_pub, 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_pull(fx->cf, SID, many, SM_CF_MAX_TRACKS + 1, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_renegotiate(fx->cf, SID, NULL, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_renegotiate(fx->cf, SID, "", on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_close(fx->cf, SID, mids, 2, true, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_close(fx->cf, SID, NULL, 1, true, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_close(fx->cf, SID, mids, 0, true, on_result, &g), SM_EINVAL);
    /* No REST client on this thread. */
    sm_rest_client_set_current(NULL);
    assert_int_equal(sm_cf_session_new(fx->cf, on_result, &g), SM_EINVAL);
    assert_int_equal(sm_cf_pull(fx->cf, SID, ok_remote, 1, on_result, &g), SM_EINVAL);
    sm_rest_client_set_current(fx->c);
    assert_int_equal(sm_rest_pending(fx->c), 0);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(g.calls, 0);
    assert_int_equal(fx->fake.nreq, 0);
    /* The maximum is fine. */
    assert_int_equal(sm_cf_pull(fx->cf, SID, many, SM_CF_MAX_TRACKS, on_result, &g), 0);
    RUN_UNTIL(fx, g.calls > 0);
    json_t *body = json_loadb(fx->fake.reqs[0].body, fx->fake.reqs[0].body_len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(body, "tracks")), SM_CF_MAX_TRACKS);
    json_decref(body);
    got_free(&g);
}

/* The thread's REST client closes with a call in flight: the call completes
 * with SM_ECANCELED, and a call made from that callback gets SM_ECLOSED. */
static void test_closing_client(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {{0, FAKE_SILENT, NULL}};
    script(fx, s, 1);
    got_t never = {0};
    got_t g = {.chain_fx = fx, .resubmit = true, .chain_next = &never};
    assert_int_equal(sm_cf_session_new(fx->cf, on_result, &g), 0);
    RUN_UNTIL(fx, fx->fake.nreq > 0);
    sm_rest_client_close(fx->c); /* still the current client, as a closing worker's */
    RUN_UNTIL(fx, g.calls > 0);
    assert_int_equal(g.err, SM_ECANCELED);
    assert_int_equal(g.chain_rc, SM_ECLOSED);
    sm_rest_client_set_current(NULL);
    fx->c = sm_rest_client_new(&fx->loop); /* for teardown */
    sm_rest_client_set_current(fx->c);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(never.calls, 0);
    got_free(&g);
}

static void test_log_has_no_secrets(void **state)
{
    fx_t *fx = *state;
    static const step_t s[] = {
        {200, 0,
         "{\"sessionDescription\":{\"type\":\"answer\",\"sdp\":\"v=0\\r\\nSEKRET-ANSWER\\r\\n\"},"
         "\"tracks\":[{\"trackName\":\"mic\",\"mid\":\"0\"}]}"},
        {200, 0, "{\"errorCode\":\"internal_error\",\"errorDescription\":\"SEKRET-desc\"}"},
        {200, 0, "{\"tracks\":\"SEKRET\"}"},
    };
    script(fx, s, 3);
    FILE *f = logcap_start(SM_LOG_DEBUG);

    const sm_cf_track_t t[] = {{.mid = "0", .track_name = "mic"}};
    got_t g[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sm_cf_push(fx->cf, SID, chrome_offer, t, 1, on_result, &g[i]), 0);
        RUN_UNTIL(fx, g[i].calls > 0);
    }
    assert_null(sm_cf_new(fx->base, APP, "SEKRET\n", 100, 1, 0));
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);

    char buf[16384];
    logcap_read(f, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"msg\":\"cloudflare call\""));
    assert_non_null(strstr(buf, "\"op\":\"push\""));
    assert_non_null(strstr(buf, "\"session_id\":\"" SID "\""));
    assert_non_null(strstr(buf, "\"status\":200"));
    assert_non_null(strstr(buf, "\"error_code\":\"internal_error\""));
    assert_non_null(strstr(buf, "\"what\":\"cloudflare.push\"")); /* the REST client's line */
    assert_non_null(strstr(buf, "unexpected response"));
    assert_non_null(strstr(buf, "\"setting\":\"app_token\""));
    assert_null(strstr(buf, "SEKRET"));
    assert_null(strstr(buf, "ice-pwd"));
    assert_null(strstr(buf, "Bearer"));
    for (int i = 0; i < 3; i++)
        got_free(&g[i]);
}

/* ---- SDP ---------------------------------------------------------------------- */

/* sm_sdp_media on an exactly-sized heap copy (no NUL after it), so the
 * sanitizers catch any read past len. */
static int media_of(const char *text, size_t len, sm_sdp_media_t *out, size_t cap)
{
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    int n = sm_sdp_media(len > 0 ? copy : NULL, len, out, cap);
    free(copy);
    return n;
}

static int media_str(const char *text, sm_sdp_media_t *out, size_t cap)
{
    return media_of(text, strlen(text), out, cap);
}

static void check_media(const sm_sdp_media_t *m, const char *mid, const char *kind, const char *dir,
                        bool rejected)
{
    assert_string_equal(m->mid, mid);
    assert_string_equal(m->kind, kind);
    assert_string_equal(m->direction, dir);
    assert_int_equal(m->rejected, rejected);
}

static char *crlf_to_lf(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    size_t j = 0;
    for (size_t i = 0; s[i] != '\0'; i++)
        if (!(s[i] == '\r' && s[i + 1] == '\n'))
            out[j++] = s[i];
    out[j] = '\0';
    return out;
}

static void test_sdp_chrome(void **state)
{
    (void)state;
    sm_sdp_media_t m[8];
    assert_int_equal(media_str(chrome_offer, m, 8), 3);
    check_media(&m[0], "0", "audio", "sendrecv", false);
    check_media(&m[1], "1", "video", "sendonly", false);
    check_media(&m[2], "2", "application", "sendrecv", false);
    /* The same with LF line endings. */
    char *lf = crlf_to_lf(chrome_offer);
    sm_sdp_media_t m2[8];
    assert_int_equal(media_str(lf, m2, 8), 3);
    assert_memory_equal(m, m2, 3 * sizeof m[0]);
    free(lf);
}

static void test_sdp_firefox(void **state)
{
    (void)state;
    sm_sdp_media_t m[4];
    assert_int_equal(media_str(firefox_offer, m, 4), 2);
    check_media(&m[0], "sdparta_0", "audio", "sendrecv", false);
    check_media(&m[1], "sdparta_1", "video", "recvonly", false);
}

static void test_sdp_legacy_no_bundle(void **state)
{
    (void)state;
    sm_sdp_media_t m[4];
    assert_int_equal(media_str(legacy_offer, m, 4), 3);
    check_media(&m[0], "audio", "audio", "sendonly", false);  /* session-level default */
    check_media(&m[1], "video", "video", "inactive", true);   /* port 0 */
    check_media(&m[2], "screen", "video", "recvonly", false); /* trailing blanks trimmed */
}

static void test_sdp_cap(void **state)
{
    (void)state;
    sm_sdp_media_t m[3];
    memset(m, 0x5a, sizeof m);
    assert_int_equal(media_str(chrome_offer, m, 2), 2);
    check_media(&m[0], "0", "audio", "sendrecv", false);
    check_media(&m[1], "1", "video", "sendonly", false);
    assert_int_equal(((unsigned char *)&m[2])[0], 0x5a); /* untouched */
    assert_int_equal(media_str(chrome_offer, NULL, 0), 0);
    /* A section past the cap is still checked. */
    const char *late_missing = "v=0\r\nm=audio 9 X 0\r\na=mid:0\r\nm=video 9 X 96\r\n";
    assert_int_equal(media_str(late_missing, m, 1), -1);
    assert_int_equal(media_str(late_missing, NULL, 0), -1);
}

static void test_sdp_rejects(void **state)
{
    (void)state;
    sm_sdp_media_t m[4];
    static const char *const bad[] = {
        "",
        "\r\n",
        "hello world",
        "{\"type\":\"offer\"}",
        "v=1\r\nm=audio 9 X 0\r\na=mid:0\r\n",
        " v=0\r\n",
        "v=0 \r\n",
        "o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n",
        "V=0\r\n",
        /* an m-section without a=mid */
        "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n",
        "v=0\r\nm=audio 9 X 0\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\nm=application 9 X w\r\n",
        "v=0\r\nm=audio 9 X 0\r\na=sendrecv\r\nm=video 9 X 96\r\na=mid:1\r\n",
        /* unusable a=mid / m= lines */
        "v=0\r\nm=audio 9 X 0\r\na=mid:\r\n",
        "v=0\r\nm=audio 9 X 0\r\na=mid:  \r\n",
        "v=0\r\nm=audio 9 X 0\r\na=mid:a b\r\n",
        "v=0\r\nm=audio 9 X 0\r\na=mid:a/b\r\n",
        "v=0\r\nm=audio 9 X 0\r\na=mid:\xc3\xa9\r\n",
        "v=0\r\nm=\r\na=mid:0\r\n",
        "v=0\r\nm= 9 X 0\r\na=mid:0\r\n",
        "v=0\r\nm=applicationxxxxx 9 X 0\r\na=mid:0\r\n",
        "v=0\r\nm=audio 9 X 0\r\na=MID:0\r\n",
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(bad); i++)
        if (media_str(bad[i], m, 4) != -1)
            fail_msg("accepted: %s", bad[i]);
    /* A mid of 64 bytes is too long; 63 is fine. */
    char text[256];
    char mid[65];
    memset(mid, 'm', 64);
    mid[64] = '\0';
    snprintf(text, sizeof text, "v=0\r\nm=audio 9 X 0\r\na=mid:%s\r\n", mid);
    assert_int_equal(media_str(text, m, 4), -1);
    mid[63] = '\0';
    snprintf(text, sizeof text, "v=0\r\nm=audio 9 X 0\r\na=mid:%s\r\n", mid);
    assert_int_equal(media_str(text, m, 4), 1);
    assert_string_equal(m[0].mid, mid);
    /* A NUL inside the text is not a token character. */
    static const char nul[] = "v=0\r\nm=audio 9 X 0\r\na=mid:0\0x\r\n";
    assert_int_equal(media_of(nul, sizeof nul - 1, m, 4), -1);
    /* Binary garbage after a valid start. */
    static const char bin[] = "v=0\r\nm=audio 9 X 0\r\n\x01\x02\xff\r\n";
    assert_int_equal(media_of(bin, sizeof bin - 1, m, 4), -1);
}

static void test_sdp_edge_cases(void **state)
{
    (void)state;
    sm_sdp_media_t m[4];
    assert_int_equal(media_str("v=0", m, 4), 0);
    assert_int_equal(media_str("v=0\r\n", m, 4), 0);
    assert_int_equal(media_str("v=0\n", m, 4), 0);
    assert_int_equal(media_str("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", m, 4), 0);
    /* Session-level a=mid is ignored; the first a=mid of a section wins;
     * odd lines are ignored. */
    assert_int_equal(media_str("v=0\r\na=mid:zz\r\nm=audio 9 X 0\r\na=mid:a\r\na=mid:b\r\n"
                               "garbage line\r\n\r\nm=video 9 X 96\r\nx\r\na=mid:v",
                               m, 4),
                     2);
    check_media(&m[0], "a", "audio", "sendrecv", false);
    check_media(&m[1], "v", "video", "sendrecv", false); /* no final newline */
    /* m= without port or with port "00" */
    assert_int_equal(media_str("v=0\nm=text\na=mid:t\nm=audio 00 X 0\na=mid:u\n", m, 4), 2);
    check_media(&m[0], "t", "text", "sendrecv", false);
    check_media(&m[1], "u", "audio", "sendrecv", true);
    /* Mixed line endings. */
    assert_int_equal(media_str("v=0\r\nm=audio 9 X 0\na=mid:0\r\nm=video 9 X 0\na=mid:1\n", m, 4),
                     2);
    check_media(&m[1], "1", "video", "sendrecv", false);
}

/* Every prefix of real offers: never a read past the end (sanitizers), and
 * any result other than -1 is a prefix of the full answer. */
static void test_sdp_truncated(void **state)
{
    (void)state;
    const char *offers[] = {chrome_offer, firefox_offer, legacy_offer};
    for (size_t o = 0; o < SM_ARRAY_LEN(offers); o++) {
        size_t len = strlen(offers[o]);
        sm_sdp_media_t full[4], m[4];
        int nfull = media_of(offers[o], len, full, 4);
        assert_true(nfull >= 2);
        int last = -1;
        for (size_t k = 0; k <= len; k++) {
            int n = media_of(offers[o], k, m, 4);
            assert_true(n >= -1 && n <= nfull);
            if (k < 3)
                assert_int_equal(n, -1);
            for (int i = 0; i < n; i++) {
                assert_string_equal(m[i].kind, full[i].kind);
                /* The last mid may be cut short by the truncation. */
                if (i < n - 1)
                    assert_string_equal(m[i].mid, full[i].mid);
                else
                    assert_true(strncmp(full[i].mid, m[i].mid, strlen(m[i].mid)) == 0);
            }
            if (n >= 0)
                last = n;
        }
        assert_int_equal(last, nfull);
    }
    /* Cut right after the last a=mid value: complete; cut after its m= line: -1. */
    const char *cut = strstr(chrome_offer, "a=mid:2") + strlen("a=mid:2");
    sm_sdp_media_t m[4];
    assert_int_equal(media_of(chrome_offer, (size_t)(cut - chrome_offer), m, 4), 3);
    assert_string_equal(m[2].mid, "2");
    const char *mline = strstr(chrome_offer, "m=application");
    assert_int_equal(media_of(chrome_offer, (size_t)(mline - chrome_offer) + 20, m, 4), -1);
}

int main(void)
{
    g_devnull = open("/dev/null", O_WRONLY);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_settings),
        cmocka_unit_test_setup_teardown(test_session_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base_url_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_with_track_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renegotiate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chained_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_406_on_pull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_410_session_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_twice_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_code_in_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_success_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_new_without_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_item_field_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canceled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closing_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_has_no_secrets, setup, teardown),
        cmocka_unit_test(test_sdp_chrome),
        cmocka_unit_test(test_sdp_firefox),
        cmocka_unit_test(test_sdp_legacy_no_bundle),
        cmocka_unit_test(test_sdp_cap),
        cmocka_unit_test(test_sdp_rejects),
        cmocka_unit_test(test_sdp_edge_cases),
        cmocka_unit_test(test_sdp_truncated),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sm_log_configure(SM_LOG_ERROR, SM_LOG_FORMAT_TEXT, -1);
    if (g_devnull >= 0)
        close(g_devnull);
    return rc;
}
