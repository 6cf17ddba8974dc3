'use strict';
/*
 * webrtc.mode = cloudflare against the Node Cloudflare SFU fake (tests/fakes):
 * DECISIONS §6 "cloudflare", docs/protocol.md 10.13.
 *
 * Covered: ROOM_CREATE (publish session + tracks/new local, subscribe
 * session), ROOM_JOIN with and without an offer (publish + pull of every
 * current publication), tracks_published, SESSION_UPDATE answer / pull /
 * close and its errors (404 foreign session, 400 pull on the publish session,
 * 409 from the SFU's 406), pull retries while a publisher is not sending yet,
 * forced tracks/close on leave / DISCONNECT / UNREGISTER / end of the resume
 * window / idle close, SFU failures (503 bursts retried, retries exhausted ->
 * 503 with nothing left, a hung SFU -> 503 within the bound),
 * limits.max_sfu_sessions, and the Calls app token never in the server log.
 *
 * Offers are browser-like SDP (tests/fakes/sdp.js sampleOffer: ICE
 * credentials, fingerprint, setup:actpass on every m-section), answers to SFU
 * offers are sdp.createAnswer(offer), as a browser would make them.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, expectError, describe: desc } = require('./lib/client');
const { metrics } = require('./lib/util');
const {
    cid, tok, keysEnv, registered, createRoom, joinRoom, leaveRoom, created, joined, left,
    roomEvent, eventsSeen, roundTrip,
} = require('./lib/rooms');
const { startCloudflareSfu, sdp } = require('../fakes');

const opts = { timeout: TEST_TIMEOUT };
/* Distinctive, so that a leak into the log cannot be missed. */
const APP_TOKEN = 'cf-app-token-9f3Kq7ZxWv2-never-logged';
const HEX32 = /^[0-9a-f]{32}$/;

/*
 * Fake SFU + server in cloudflare mode.  o.sfu: fake options; o.env: extra
 * server env; o.timeout: webrtc.cloudflare_timeout.  The server is stopped
 * before the fake is closed (after-hooks run in order), and every test checks
 * afterwards that the app token never reached the log.
 */
async function setup(t, o = {})
{
    const sfu = await startCloudflareSfu({ appSecret: APP_TOKEN, ...(o.sfu || {}) });
    let srv;
    try {
        srv = await startServer(t, {
            env: {
                ...keysEnv(5),
                SIGNAL_MANAGER_STORE_BACKEND: 'memory',
                SIGNAL_MANAGER_LOGGING_LEVEL: 'debug',
                SIGNAL_MANAGER_WEBRTC_MODE: 'cloudflare',
                SIGNAL_MANAGER_CLOUDFLARE_APP_ID: sfu.appId,
                SIGNAL_MANAGER_CLOUDFLARE_APP_TOKEN: o.appToken || APP_TOKEN,
                SIGNAL_MANAGER_CLOUDFLARE_BASE_URL: sfu.baseUrl,
                SIGNAL_MANAGER_WEBRTC_CLOUDFLARE_TIMEOUT: o.timeout || '2s',
                ...(o.env || {}),
            },
        });
    } catch (e) {
        await sfu.close();
        throw e;
    }
    t.after(() => sfu.close());
    t.after(() => assertNoToken(srv));
    return { sfu, ctl: sfu.control, srv };
}

function assertNoToken(srv)
{
    const hit = srv.lines.find((l) => l.includes(APP_TOKEN));
    assert.equal(hit, undefined, `the Calls app token appears in the server log: ${hit}`);
}

const offer = (kinds = ['audio', 'video']) => sdp.sampleOffer(kinds);
/* The browser's answer to an SFU offer. */
const answerTo = (offerSdp) => sdp.createAnswer(offerSdp);

function sessionUpdate(c, body)
{
    return c.request(T.SESSION_UPDATE, { version: '1.0.0', ...body });
}

async function updated(c, body)
{
    const f = await sessionUpdate(c, body);
    assert.equal(f.type, T.SESSION_UPDATE_ACK, `SESSION_UPDATE ${JSON.stringify(body).slice(0, 120)}: ${desc(f)}`);
    return f.json;
}

/* Fake SFU requests on one session: op = 'tracks/new' | 'tracks/close' | 'renegotiate'. */
function calls(ctl, sid, op, method)
{
    return ctl.requests({ path: `/sessions/${sid}/${op}`, method })
        .filter((r) => r.outcome !== 'pending');
}

function sessionsNew(ctl)
{
    return ctl.requests({ method: 'POST', path: '/sessions/new' }).filter((r) => r.outcome !== 'pending');
}

/* The server's gauge of open SFU sessions (counted against limits.max_sfu_sessions). */
async function sfuGauge(srv)
{
    const v = (await metrics(srv)).values.get('signal_manager_sfu_sessions');
    assert.equal(typeof v, 'number', 'signal_manager_sfu_sessions is exported');
    return v;
}

function trackOf(ctl, sid, mid)
{
    const s = ctl.session(sid);
    assert.ok(s, `fake SFU session ${sid} exists`);
    return s.tracks.find((x) => x.mid === mid);
}

/* A creates `room` publishing audio+video; returns the ACK payload. */
async function createWithOffer(a, room, kinds)
{
    return (await created(a, room, { offer_sdp: offer(kinds) })).json;
}

/* c joins (with an offer when kinds is given) and answers the SFU's offer. */
async function joinAndAnswer(c, room, kinds)
{
    const j = (await joined(c, room, kinds ? { offer_sdp: offer(kinds) } : {})).json;
    if (j.subscribe.offer_sdp) {
        const u = await updated(c, { session_id: j.subscribe.session_id, action: 'answer',
            answer_sdp: answerTo(j.subscribe.offer_sdp) });
        assert.equal(u.status, 200);
    }
    return j;
}

/* tracks/close force:true requests on sid, as arrays of mids. */
function forcedCloses(ctl, sid)
{
    return calls(ctl, sid, 'tracks/close', 'PUT').map((r) => {
        assert.equal(r.body.force, true, `tracks/close on ${sid} is forced: ${r.rawBody}`);
        assert.equal(r.body.sessionDescription, undefined, 'a forced close carries no SDP');
        return r.body.tracks.map((x) => x.mid).sort();
    });
}

/* ---- ROOM_CREATE ---- */

test('ROOM_CREATE with an offer: answer_sdp, connection_info with the SFU session, a subscribe session',
    opts, async (t) => {
        const { ctl, srv } = await setup(t);
        const a = await registered(srv, 1);
        const o = offer(['audio', 'video']);
        const f = await created(a, 'r-create', { offer_sdp: o, metadata: { topic: 'x' } });
        const j = f.json;
        assert.equal(j.status, 200);
        assert.equal(j.room_id, 'r-create');
        assert.equal(j.session_id, a.sessionId, 'top-level session_id stays the signaling session');
        assert.deepEqual(j.participants, [cid(1)]);

        /* the SFU's answer to the creator's offer: same m-sections, an answer */
        assert.equal(typeof j.answer_sdp, 'string', desc(f));
        const ans = sdp.validate(j.answer_sdp, 'answer');
        assert.deepEqual(ans.media.map((m) => [m.kind, m.mid]), [['audio', '0'], ['video', '1']]);

        const ci = j.connection_info;
        assert.equal(ci.room_id, 'r-create');
        assert.equal(ci.role, 'sender');
        assert.equal(ci.app_id, ctl.appId);
        assert.equal(ci.status, 'connecting');
        assert.equal(ci.mode, 'cloudflare');
        assert.match(ci.session_id, HEX32, 'connection_info.session_id is the SFU session id');
        assert.deepEqual(ci.tracks, [{ track_name: 'audio-0', mid: '0' }, { track_name: 'video-1', mid: '1' }]);
        assert.equal(ci.metadata.session_id, ci.session_id);
        assert.equal(ci.metadata.client_id, cid(1));
        assert.ok(!Number.isNaN(Date.parse(ci.metadata.created_at)), `created_at ${ci.metadata.created_at}`);
        assert.match(j.subscribe.session_id, HEX32);
        assert.notEqual(j.subscribe.session_id, ci.session_id, 'publish and subscribe sessions differ');

        /* what the SFU saw: two sessions/new, one tracks/new local with the offer, Bearer token */
        const news = sessionsNew(ctl);
        assert.equal(news.length, 2);
        for (const r of news) {
            assert.equal(r.headers.authorization, `Bearer ${APP_TOKEN}`);
            assert.equal(r.rawBody, '', 'sessions/new is sent without a body');
        }
        const push = calls(ctl, ci.session_id, 'tracks/new', 'POST');
        assert.equal(push.length, 1);
        assert.deepEqual(push[0].body.sessionDescription, { type: 'offer', sdp: o });
        assert.deepEqual(push[0].body.tracks, [
            { location: 'local', mid: '0', trackName: 'audio-0' },
            { location: 'local', mid: '1', trackName: 'video-1' }]);
        assert.equal(push[0].headers['content-type'], 'application/json');
        const pubs = ctl.publications().filter((p) => p.sessionId === ci.session_id);
        assert.deepEqual(pubs.map((p) => [p.trackName, p.closed]).sort(), [['audio-0', false], ['video-1', false]]);
        assert.deepEqual(ctl.session(j.subscribe.session_id).tracks, [], 'nothing pulled yet');
    });

test('ROOM_CREATE without an offer or with nothing to publish: 400 naming offer_sdp, no SFU call',
    opts, async (t) => {
        const { ctl, srv } = await setup(t);
        const a = await registered(srv, 1);
        let e = expectError(await createRoom(a, 'r-no-offer'), 400, /offer_sdp/);
        assert.equal(e.details.field, 'offer_sdp');
        e = expectError(await createRoom(a, 'r-no-offer', { offer_sdp: offer(['application']) }), 400, /offer_sdp/);
        assert.equal(e.details.field, 'offer_sdp');
        /* recvonly sections publish nothing either */
        const recv = sdp.sampleOffer(['audio'], { direction: 'recvonly' });
        expectError(await createRoom(a, 'r-no-offer', { offer_sdp: recv }), 400, /offer_sdp/);
        expectError(await createRoom(a, 'r-no-offer', { offer_sdp: 'not sdp' }), 400, /offer_sdp/);
        assert.equal(ctl.requests().length, 0, 'the SFU was not called');
        /* nothing reserved: the id works */
        await createWithOffer(a, 'r-no-offer');
        /* an offer with a data channel besides media publishes the media only */
        const mixed = await createWithOffer(a, 'r-mixed', ['audio', 'application', 'video']);
        assert.deepEqual(mixed.connection_info.tracks,
            [{ track_name: 'audio-0', mid: '0' }, { track_name: 'video-2', mid: '2' }]);
    });

test('ROOM_CREATE with an offer the SFU refuses: ERROR 400, no room, sessions released', opts, async (t) => {
    const { ctl, srv } = await setup(t, { env: { SIGNAL_MANAGER_LIMITS_MAX_SFU_SESSIONS: '2' } });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    /* parses for the server (m-lines with mids) but has no ICE credentials: the SFU answers 400 */
    const bad = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' +
        'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n' +
        'a=rtpmap:111 opus/48000/2\r\n';
    expectError(await createRoom(a, 'r-bad-sdp', { offer_sdp: bad }), 400, /SFU/);
    const push = ctl.requests({ path: '/tracks/new' });
    assert.equal(push.length, 1, 'not retried: a 400 is final');
    assert.equal(push[0].status, 400);
    expectError(await joinRoom(b, 'r-bad-sdp'), 404);
    /* both SFU sessions were given back (limits.max_sfu_sessions = 2) */
    await createWithOffer(a, 'r-bad-sdp');
});

/* ---- ROOM_JOIN ---- */

test('ROOM_JOIN with an offer: publish + subscribe (the SFU offer pulls the creator\'s tracks); ' +
    'tracks_published to the others; SESSION_UPDATE answer reaches renegotiate', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const ca = await createWithOffer(a, 'r-join');
    const aPub = ca.connection_info.session_id;

    const bo = offer(['audio', 'video']);
    const f = await joined(b, 'r-join', { offer_sdp: bo });
    const j = f.json;
    assert.deepEqual(j.participants, [cid(1), cid(2)]);
    assert.equal(j.session_id, b.sessionId);
    assert.equal(j.offer_sdp, undefined, 'no stored creator offer in cloudflare mode');
    /* publish: the SFU's answer to B's offer */
    assert.match(j.publish.session_id, HEX32);
    assert.deepEqual(sdp.validate(j.publish.answer_sdp, 'answer').media.map((m) => m.mid), ['0', '1']);
    assert.deepEqual(j.publish.tracks, [{ track_name: 'audio-0', mid: '0' }, { track_name: 'video-1', mid: '1' }]);
    /* subscribe: the SFU's offer pulling A's publications */
    const sub = j.subscribe;
    assert.match(sub.session_id, HEX32);
    assert.notEqual(sub.session_id, j.publish.session_id);
    const so = sdp.validate(sub.offer_sdp, 'offer');
    assert.deepEqual(so.media.map((m) => [m.kind, m.mid, m.direction]),
        [['audio', '0', 'sendonly'], ['video', '1', 'sendonly']]);
    assert.deepEqual(sub.tracks, [
        { session_id: aPub, track_name: 'audio-0', mid: '0' },
        { session_id: aPub, track_name: 'video-1', mid: '1' }]);
    const pull = calls(ctl, sub.session_id, 'tracks/new', 'POST');
    assert.equal(pull.length, 1);
    assert.deepEqual(pull[0].body, { tracks: [
        { location: 'remote', sessionId: aPub, trackName: 'audio-0' },
        { location: 'remote', sessionId: aPub, trackName: 'video-1' }] });
    assert.ok(ctl.pendingOffer(sub.session_id), 'the SFU offer waits for B\'s answer');

    /* A hears of B and of B's publications */
    await roomEvent(a, 'participant_joined', { room_id: 'r-join', client_id: cid(2) });
    const ev = await roomEvent(a, 'tracks_published', { room_id: 'r-join', client_id: cid(2) });
    assert.deepEqual(ev.json.tracks, [
        { session_id: j.publish.session_id, track_name: 'audio-0' },
        { session_id: j.publish.session_id, track_name: 'video-1' }]);
    assert.equal(typeof ev.json.timestamp, 'number');
    assert.equal(eventsSeen(b, 'tracks_published').length, 0, 'the publisher is not told of its own tracks');

    /* B answers the SFU offer: PUT renegotiate with exactly that SDP */
    const answer = answerTo(sub.offer_sdp);
    const u = await updated(b, { session_id: sub.session_id, action: 'answer', answer_sdp: answer });
    assert.deepEqual(u, { status: 200, session_id: sub.session_id, action: 'answer' });
    const ren = calls(ctl, sub.session_id, 'renegotiate', 'PUT');
    assert.equal(ren.length, 1);
    assert.deepEqual(ren[0].body, { sessionDescription: { type: 'answer', sdp: answer } });
    assert.equal(ctl.pendingOffer(sub.session_id), null);
    assert.equal(trackOf(ctl, sub.session_id, '1').status, 'active');

    /* A pulls B's new publications on its subscribe session, then answers */
    const p = await updated(a, { session_id: ca.subscribe.session_id, action: 'pull', tracks: ev.json.tracks });
    assert.equal(p.status, 200);
    assert.equal(p.action, 'pull');
    assert.equal(p.session_id, ca.subscribe.session_id);
    assert.deepEqual(p.tracks, [
        { session_id: j.publish.session_id, track_name: 'audio-0', mid: '0' },
        { session_id: j.publish.session_id, track_name: 'video-1', mid: '1' }]);
    sdp.validate(p.offer_sdp, 'offer');
    await updated(a, { session_id: ca.subscribe.session_id, action: 'answer', answer_sdp: answerTo(p.offer_sdp) });
    assert.equal(trackOf(ctl, ca.subscribe.session_id, '0').status, 'active');
});

test('ROOM_JOIN without an offer subscribes only: no publish, no tracks_published', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const c = await registered(srv, 3);
    const ca = await createWithOffer(a, 'r-sub');
    const jb = await joinAndAnswer(b, 'r-sub', ['video']);
    const before = sessionsNew(ctl).length;
    const j = (await joined(c, 'r-sub')).json;
    assert.equal(sessionsNew(ctl).length, before + 1, 'one SFU session (subscribe) for a join without offer');
    assert.equal(j.publish, undefined);
    assert.deepEqual(j.participants, [cid(1), cid(2), cid(3)]);
    assert.deepEqual(j.subscribe.tracks.map((x) => [x.session_id, x.track_name, x.mid]), [
        [ca.connection_info.session_id, 'audio-0', '0'],
        [ca.connection_info.session_id, 'video-1', '1'],
        [jb.publish.session_id, 'video-0', '2']]);
    assert.deepEqual(sdp.validate(j.subscribe.offer_sdp, 'offer').media.map((m) => m.mid), ['0', '1', '2']);
    for (const x of [a, b]) {
        await roomEvent(x, 'participant_joined', { room_id: 'r-sub', client_id: cid(3) });
        /* tracks_published would have been queued right after participant_joined */
        await roundTrip(x);
        assert.equal(eventsSeen(x, 'tracks_published', { client_id: cid(3) }).length, 0);
    }
    /* an offer with nothing to publish (data channel only) is a subscribe-only join */
    const d = await registered(srv, 4);
    const jd = (await joined(d, 'r-sub', { offer_sdp: offer(['application']) })).json;
    assert.equal(jd.publish, undefined);
    assert.equal(jd.subscribe.tracks.length, 3);
    expectError(await joinRoom(await registered(srv, 5), 'r-sub', { offer_sdp: 'garbage' }), 400, /offer_sdp/);
});

test('ROOM_JOIN with an offer the SFU refuses: ERROR 400, not a member, nobody told', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await createWithOffer(a, 'r-join-bad');
    const bad = offer(['audio']).replace(/a=fingerprint:[^\r\n]*\r\n/g, '');
    expectError(await joinRoom(b, 'r-join-bad', { offer_sdp: bad }), 400, /SFU/);
    await roundTrip(a);
    assert.equal(eventsSeen(a, 'participant_joined').length, 0);
    expectError(await leaveRoom(b, 'r-join-bad'), 404);
    /* the failed publish session got nothing to close (the push itself failed) */
    assert.equal(ctl.requests({ path: '/tracks/close' }).length, 0);
    await joinAndAnswer(b, 'r-join-bad', ['audio']);
});

/* ---- pulls of publications that are not sending yet ---- */

test('pull of a publication not sending yet is retried until it works (join and SESSION_UPDATE pull)',
    opts, async (t) => {
        const { ctl, srv } = await setup(t, { sfu: { sendingDelayMs: 1200 }, timeout: '4s' });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const ca = await createWithOffer(a, 'r-retry');
        const aPub = ca.connection_info.session_id;
        /* ROOM_JOIN: A's tracks start "sending" 1.2 s after they were published */
        const t0 = Date.now();
        const j = (await joined(b, 'r-retry')).json;
        const took = Date.now() - t0;
        const pulls = calls(ctl, j.subscribe.session_id, 'tracks/new', 'POST');
        assert.ok(pulls.length >= 2, `the pull was retried (${pulls.length} pulls)`);
        assert.ok(took < 4000, `join answered within webrtc.cloudflare_timeout (${took} ms)`);
        assert.deepEqual(j.subscribe.tracks.map((x) => [x.track_name, x.mid, x.error]),
            [['audio-0', '0', undefined], ['video-1', '1', undefined]]);
        assert.ok(j.subscribe.offer_sdp);
        await updated(b, { session_id: j.subscribe.session_id, action: 'answer',
            answer_sdp: answerTo(j.subscribe.offer_sdp) });
        /* SESSION_UPDATE pull: B closes A's video, A's video stops sending for a while */
        await updated(b, { session_id: j.subscribe.session_id, action: 'close', mids: ['1'] });
        ctl.setSending(aPub, 'video-1', false);
        const n0 = calls(ctl, j.subscribe.session_id, 'tracks/new', 'POST').length;
        const pending = updated(b, { session_id: j.subscribe.session_id, action: 'pull',
            tracks: [{ session_id: aPub, track_name: 'video-1' }] });
        /* two refused pulls, then the publisher sends */
        const seen = await ctl.waitForRequests({ method: 'POST', path: `/sessions/${j.subscribe.session_id}/tracks/new` },
            { count: n0 + 2, timeoutMs: 3000 });
        for (const r of seen.slice(n0)) assert.equal(r.status, 200);
        ctl.setSending(aPub, 'video-1', true);
        const p = await pending;
        assert.equal(p.tracks.length, 1);
        assert.equal(p.tracks[0].error, undefined, JSON.stringify(p.tracks));
        assert.equal(p.tracks[0].mid, '2');
        assert.ok(p.offer_sdp);
        assert.ok(calls(ctl, j.subscribe.session_id, 'tracks/new', 'POST').length >= n0 + 3);
    });

test('a SESSION_UPDATE_ACK that would outgrow a frame is answered ERROR 413, not dropped', opts, async (t) => {
    const { srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const aPub = (await createWithOffer(a, 'r-big')).connection_info.session_id;
    const sub = (await joinAndAnswer(b, 'r-big')).subscribe.session_id;
    /* every pull adds 64 m-sections to the SFU's next offer for the session */
    const tracks = Array.from({ length: 64 }, () => ({ session_id: aPub, track_name: 'audio-0' }));
    const first = await updated(b, { session_id: sub, action: 'pull', tracks });
    await updated(b, { session_id: sub, action: 'answer', answer_sdp: answerTo(first.offer_sdp) });
    const f = await sessionUpdate(b, { session_id: sub, action: 'pull', tracks });
    const e = expectError(f, 413, /reply too large/);
    assert.equal(e.details.session_id, sub);
    assert.ok(srv.logs.some((j) => j.msg === 'reply too large for one frame: ERROR 413 instead'));
});

test('a closed publication leaves the others in publication order for later joiners', opts, async (t) => {
    const { srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const ca = await createWithOffer(a, 'r-order', ['audio', 'video', 'audio']);
    await updated(a, { session_id: ca.connection_info.session_id, action: 'close', mids: ['0'] });
    const j = await joinAndAnswer(b, 'r-order');
    assert.deepEqual(j.subscribe.tracks.map((x) => x.track_name), ['video-1', 'audio-2']);
});

test('pull of a publication that never sends: tracks[].error once webrtc.cloudflare_timeout has passed',
    opts, async (t) => {
        const { ctl, srv } = await setup(t, { timeout: '1500ms' });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const ca = await createWithOffer(a, 'r-never');
        const aPub = ca.connection_info.session_id;
        ctl.setSending(aPub, 'audio-0', false);
        ctl.setSending(aPub, 'video-1', false);
        let t0 = Date.now();
        const j = (await joined(b, 'r-never')).json;
        let took = Date.now() - t0;
        assert.ok(took >= 900 && took < 1500 + 1000, `join answered after ${took} ms (timeout 1500 ms)`);
        assert.ok(calls(ctl, j.subscribe.session_id, 'tracks/new', 'POST').length >= 2, 'retried before giving up');
        assert.equal(j.subscribe.offer_sdp, null, 'nothing pulled: no SFU offer');
        for (const x of j.subscribe.tracks) {
            assert.equal(x.session_id, aPub);
            assert.equal(x.mid, '');
            assert.equal(x.error.code, 'not_found_track_error');
            assert.match(x.error.description, /not found/i);
        }
        assert.deepEqual(j.participants, [cid(1), cid(2)], 'the join itself succeeded');
        /* SESSION_UPDATE pull: the same rule */
        t0 = Date.now();
        const p = await updated(b, { session_id: j.subscribe.session_id, action: 'pull',
            tracks: [{ session_id: aPub, track_name: 'video-1' }] });
        took = Date.now() - t0;
        assert.ok(took >= 900 && took < 1500 + 1000, `pull answered after ${took} ms`);
        assert.equal(p.offer_sdp, null);
        assert.equal(p.tracks[0].error.code, 'not_found_track_error');
        /* a publication that does not exist at all gets the same per-track error */
        ctl.setSending(aPub, 'video-1', true);
        const q = await updated(b, { session_id: j.subscribe.session_id, action: 'pull',
            tracks: [{ session_id: aPub, track_name: 'video-1' }, { session_id: aPub, track_name: 'nope' }] });
        assert.deepEqual(q.tracks.map((x) => [x.track_name, x.mid, x.error && x.error.code]),
            [['video-1', '0', undefined], ['nope', '', 'not_found_track_error']]);
        assert.ok(q.offer_sdp, 'an offer for what could be pulled');
    });

/* ---- SESSION_UPDATE ---- */

test('SESSION_UPDATE close: tracks/close force on the SFU, closed mids are not closed again on leave',
    opts, async (t) => {
        const { ctl, srv } = await setup(t);
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        await createWithOffer(a, 'r-close');
        const j = await joinAndAnswer(b, 'r-close');
        const sid = j.subscribe.session_id;
        const u = await updated(b, { session_id: sid, action: 'close', mids: ['0'] });
        assert.deepEqual(u, { status: 200, session_id: sid, action: 'close', tracks: [{ mid: '0' }] });
        assert.deepEqual(forcedCloses(ctl, sid), [['0']]);
        assert.equal(trackOf(ctl, sid, '0').status, 'inactive');
        /* closing it again: the SFU's close_track_error means "already closed", no error */
        const again = await updated(b, { session_id: sid, action: 'close', mids: ['0'] });
        assert.deepEqual(again.tracks, [{ mid: '0' }]);
        /* a per-track failure other than close_track_error is reported */
        ctl.trackErrors(1, { op: 'close' });
        const fail = await updated(b, { session_id: sid, action: 'close', mids: ['1'] });
        assert.deepEqual(fail.tracks, [{ mid: '1', error: 'internal_error' }]);
        /* leaving closes what is still pulled (mid 1, whose close failed), not mid 0 */
        const n = forcedCloses(ctl, sid).length;
        await left(b, 'r-close');
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${sid}/tracks/close` }, { count: n + 1 });
        assert.deepEqual(forcedCloses(ctl, sid)[n], ['1']);
    });

test('SESSION_UPDATE errors: foreign session 404, pull on the publish session 400, ' +
    'unanswered SFU offer (SFU 406) 409, SFU session gone (410) 404', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const c = await registered(srv, 3);
    const ca = await createWithOffer(a, 'r-err');
    const aPub = ca.connection_info.session_id;
    const j = (await joined(b, 'r-err', { offer_sdp: offer(['audio']) })).json;
    const sub = j.subscribe.session_id;
    const n0 = ctl.requests().length;

    /* not one of the client's SFU sessions: unknown, or another member's */
    let e = expectError(await sessionUpdate(b, { session_id: 'ffffffffffffffffffffffffffffffff', action: 'close',
        mids: ['0'] }), 404, /session_id/);
    assert.equal(e.details.session_id, 'ffffffffffffffffffffffffffffffff');
    expectError(await sessionUpdate(b, { session_id: ca.subscribe.session_id, action: 'answer', answer_sdp: 'v=0' }),
        404);
    expectError(await sessionUpdate(c, { session_id: sub, action: 'answer', answer_sdp: 'v=0' }), 404,
        /session_id/);
    /* pull belongs on the subscribe session */
    expectError(await sessionUpdate(b, { session_id: j.publish.session_id, action: 'pull',
        tracks: [{ session_id: aPub, track_name: 'audio-0' }] }), 400, /subscribe/);
    /* malformed requests */
    e = expectError(await sessionUpdate(b, { session_id: sub, action: 'answer' }), 400, /answer_sdp/);
    assert.equal(e.details.field, 'answer_sdp');
    expectError(await sessionUpdate(b, { session_id: sub, action: 'pull', tracks: [] }), 400, /tracks/);
    expectError(await sessionUpdate(b, { session_id: sub, action: 'close' }), 400, /mids/);
    expectError(await sessionUpdate(b, { session_id: sub, action: 'bogus' }), 400, /action/);
    assert.equal(ctl.requests().length, n0, 'none of these reached the SFU');

    /* B has not answered the SFU offer yet: the SFU refuses the next mutation (406) */
    e = expectError(await sessionUpdate(b, { session_id: sub, action: 'close', mids: ['0'] }), 409,
        /answer/);
    assert.equal(e.details.session_id, sub);
    const refused = calls(ctl, sub, 'tracks/close', 'PUT');
    assert.equal(refused.length, 1, 'a 406 is not retried');
    assert.equal(refused[0].status, 406);
    /* a wrong answer is the SFU's 400 */
    expectError(await sessionUpdate(b, { session_id: sub, action: 'answer', answer_sdp: answerTo(offer(['audio'])) }),
        400);
    /* the right answer still works */
    await updated(b, { session_id: sub, action: 'answer', answer_sdp: answerTo(j.subscribe.offer_sdp) });
    /* an answer with no pending offer: 406 from the SFU */
    expectError(await sessionUpdate(b, { session_id: sub, action: 'answer', answer_sdp: answerTo(j.subscribe.offer_sdp) }),
        409);
    /* the SFU forgot the session (410): 404 */
    ctl.expireSession(sub);
    expectError(await sessionUpdate(b, { session_id: sub, action: 'close', mids: ['0'] }), 404, /expired|not found/);
});

test('SESSION_UPDATE pull: items without session_id / track_name, or more than 64, are a 400 naming tracks',
    opts, async (t) => {
        const { ctl, srv } = await setup(t);
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const ca = await createWithOffer(a, 'r-badpull');
        const aPub = ca.connection_info.session_id;
        const j = await joinAndAnswer(b, 'r-badpull');
        const sid = j.subscribe.session_id;
        const n0 = ctl.requests().length;
        for (const tracks of [[{ track_name: 'audio-0' }], [{ session_id: aPub }], [{ session_id: aPub, track_name: '' }],
            [{ session_id: aPub, track_name: 5 }],
            Array.from({ length: 65 }, (_, i) => ({ session_id: aPub, track_name: `t${i}` }))]) {
            const e = expectError(await sessionUpdate(b, { session_id: sid, action: 'pull', tracks }), 400, /tracks/);
            assert.equal(e.details.field, 'tracks');
        }
        assert.equal(ctl.requests().length, n0, 'nothing reached the SFU');
    });

test('SESSION_UPDATE close with an empty mid is a 400 naming mids', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const ca = await createWithOffer(a, 'r-badclose');
    const n0 = ctl.requests().length;
    const e = expectError(await sessionUpdate(a, { session_id: ca.subscribe.session_id, action: 'close', mids: [''] }),
        400, /mids/);
    assert.equal(e.details.field, 'mids');
    assert.equal(ctl.requests().length, n0);
});

test('a publication committed while another join is pulling still reaches that joiner', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const c = await registered(srv, 3);
    await createWithOffer(a, 'r-race');
    /* C's pull is held by the SFU; B joins with an offer and completes meanwhile */
    const isPull = (x) => x.body && Array.isArray(x.body.tracks) && x.body.tracks[0].location === 'remote';
    ctl.latency(600, { count: 1, match: { method: 'POST', path: '/tracks/new', test: isPull } });
    const pending = joinRoom(c, 'r-race');
    await ctl.waitForRequests({ method: 'POST', path: '/tracks/new', test: isPull }, { completed: false });
    const jb = (await joined(b, 'r-race', { offer_sdp: offer(['audio']) })).json;
    const f = await pending;
    assert.equal(f.type, T.ROOM_JOIN_ACK, desc(f));
    assert.ok(f.json.participants.includes(cid(2)), 'C\'s ACK lists B');
    await roundTrip(c);
    const pulled = f.json.subscribe.tracks.some((x) => x.session_id === jb.publish.session_id);
    const told = eventsSeen(c, 'tracks_published', { client_id: cid(2) }).length > 0;
    assert.ok(pulled || told, 'C learns of B\'s publication (pulled in its join, or by tracks_published)');
});

/* ---- leaving ---- */

test('ROOM_LEAVE and DISCONNECT: forced tracks/close on the member\'s sessions, participant_left with tracks',
    opts, async (t) => {
        const { ctl, srv } = await setup(t);
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const c = await registered(srv, 3);
        const ca = await createWithOffer(a, 'r-leave');
        const jb = await joinAndAnswer(b, 'r-leave', ['audio', 'video']);
        const jc = await joinAndAnswer(c, 'r-leave');
        assert.equal(jc.subscribe.tracks.length, 4);

        /* ROOM_LEAVE of B: its publications and its pulls are closed */
        await left(b, 'r-leave');
        for (const x of [a, c]) {
            const ev = await roomEvent(x, 'participant_left', { room_id: 'r-leave', client_id: cid(2) });
            assert.deepEqual(ev.json.tracks, [
                { session_id: jb.publish.session_id, track_name: 'audio-0' },
                { session_id: jb.publish.session_id, track_name: 'video-1' }]);
        }
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jb.publish.session_id}/tracks/close` });
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jb.subscribe.session_id}/tracks/close` });
        assert.deepEqual(forcedCloses(ctl, jb.publish.session_id), [['0', '1']]);
        assert.deepEqual(forcedCloses(ctl, jb.subscribe.session_id), [['0', '1']]);
        assert.ok(ctl.publications().filter((p) => p.sessionId === jb.publish.session_id).every((p) => p.closed));

        /* DISCONNECT of C (subscribe only): its pulled mids are closed; no tracks in participant_left */
        c.send(T.DISCONNECT, null);
        await c.waitClose();
        const ev = await roomEvent(a, 'participant_left', { room_id: 'r-leave', client_id: cid(3) });
        assert.equal(ev.json.tracks, undefined, 'C published nothing');
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jc.subscribe.session_id}/tracks/close` });
        assert.deepEqual(forcedCloses(ctl, jc.subscribe.session_id), [['0', '1', '2', '3']]);

        /* the last member leaving closes its own publications */
        await left(a, 'r-leave');
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${ca.connection_info.session_id}/tracks/close` });
        assert.deepEqual(forcedCloses(ctl, ca.connection_info.session_id), [['0', '1']]);
        expectError(await joinRoom(b, 'r-leave'), 404);
        /* its subscribe session had nothing pulled: nothing to close there */
        assert.equal(calls(ctl, ca.subscribe.session_id, 'tracks/close', 'PUT').length, 0);
    });

test('UNREGISTER and the end of the resume window close the member\'s tracks too', opts, async (t) => {
    const { ctl, srv } = await setup(t, { env: { SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '500ms' } });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const c = await registered(srv, 3);
    await createWithOffer(a, 'r-gone');
    const jb = await joinAndAnswer(b, 'r-gone', ['audio']);
    const jc = await joinAndAnswer(c, 'r-gone', ['video']);

    const f = await b.unregister();
    assert.equal(f.type, T.UNREGISTER_ACK, desc(f));
    const evb = await roomEvent(a, 'participant_left', { client_id: cid(2) });
    assert.deepEqual(evb.json.tracks, [{ session_id: jb.publish.session_id, track_name: 'audio-0' }]);
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jb.publish.session_id}/tracks/close` });
    assert.deepEqual(forcedCloses(ctl, jb.publish.session_id), [['0']]);

    /* abrupt end: detached, nothing closed yet; closed when the resume window ends */
    c.terminate();
    const t0 = Date.now();
    const evc = await roomEvent(a, 'participant_left', { client_id: cid(3) }, 5000);
    assert.ok(Date.now() - t0 >= 300, 'participant_left only when the resume window ended');
    assert.deepEqual(evc.json.tracks, [{ session_id: jc.publish.session_id, track_name: 'video-0' }]);
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jc.publish.session_id}/tracks/close` });
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jc.subscribe.session_id}/tracks/close` });
    assert.deepEqual(forcedCloses(ctl, jc.subscribe.session_id), [['0', '1', '2']]);
});

test('a resumed client keeps its SFU sessions: SESSION_UPDATE works on the new connection', opts, async (t) => {
    const { ctl, srv } = await setup(t, { env: { SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '5s' } });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await createWithOffer(a, 'r-resume');
    const j = (await joined(b, 'r-resume', { offer_sdp: offer(['audio']) })).json;
    const token = b.connectAck.json.resume_token;
    b.terminate();
    await srv.waitLog((l) => /detached/.test(l.msg) && l.client_id === cid(2), 3000, 'the detach');
    assert.equal(ctl.requests({ path: '/tracks/close' }).length, 0, 'nothing closed while detached');
    const b2 = await srv.connect(cid(2), tok(2), { resume_token: token });
    assert.equal(b2.connectAck.json.resumed, true, desc(b2.connectAck));
    b2.clientId = cid(2);
    const u = await updated(b2, { session_id: j.subscribe.session_id, action: 'answer',
        answer_sdp: answerTo(j.subscribe.offer_sdp) });
    assert.equal(u.status, 200);
    await left(b2, 'r-resume');
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${j.publish.session_id}/tracks/close` });
    assert.deepEqual(forcedCloses(ctl, j.publish.session_id), [['0']]);
    assert.deepEqual((await roomEvent(a, 'participant_left', { client_id: cid(2) })).json.tracks,
        [{ session_id: j.publish.session_id, track_name: 'audio-0' }]);
});

test('idle room: room_closed, and every member\'s SFU tracks are closed; SFU sessions are released',
    opts, async (t) => {
        const { ctl, srv } = await setup(t, { env: {
            SIGNAL_MANAGER_WEBRTC_SESSION_TIMEOUT: '1s', SIGNAL_MANAGER_LIMITS_MAX_SFU_SESSIONS: '4' } });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const ca = await createWithOffer(a, 'r-idle');
        const jb = await joinAndAnswer(b, 'r-idle', ['audio']);
        /* the limit is reached: 2 sessions each */
        expectError(await createRoom(a, 'r-idle-2', { offer_sdp: offer() }), 503, /max_sfu_sessions/);
        for (const x of [a, b]) {
            const ev = await roomEvent(x, 'room_closed', { room_id: 'r-idle' }, 5000);
            assert.equal(ev.json.reason, 'idle');
        }
        const want = [
            [ca.connection_info.session_id, ['0', '1']],
            [jb.publish.session_id, ['0']],
            [jb.subscribe.session_id, ['0', '1']],
        ];
        for (const [sid, mids] of want) {
            await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${sid}/tracks/close` });
            assert.deepEqual(forcedCloses(ctl, sid), [mids], `tracks/close on ${sid}`);
        }
        assert.equal(calls(ctl, ca.subscribe.session_id, 'tracks/close', 'PUT').length, 0);
        expectError(await joinRoom(b, 'r-idle'), 404);
        /* all four SFU sessions were given back */
        assert.equal(await sfuGauge(srv), 0);
        await createWithOffer(a, 'r-idle-2');
        await joinAndAnswer(b, 'r-idle-2', ['audio']);
    });

/* ---- SFU failures ---- */

test('SFU 503 bursts are retried (1 s apart) and the create succeeds', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    ctl.fail(2, 'unavailable', { match: { method: 'POST', path: '/sessions/new' } });
    ctl.fail(1, 'rate_limited', { match: { method: 'POST', path: '/tracks/new' } });
    const t0 = Date.now();
    const ca = await createWithOffer(a, 'r-burst');
    const took = Date.now() - t0;
    const news = sessionsNew(ctl);
    assert.deepEqual(news.map((r) => r.status), [503, 503, 201, 201]);
    const push = ctl.requests({ path: '/tracks/new' });
    assert.deepEqual(push.map((r) => r.status), [429, 200]);
    /* three waits of about 1 s (jittered down by up to 20 %) */
    assert.ok(took >= 3 * 800 - 100, `create took ${took} ms with 3 retries`);
    assert.deepEqual(ca.connection_info.tracks.map((x) => x.mid), ['0', '1']);
});

test('SFU retries exhausted: ERROR 503, the room does not exist, nothing left open; a later create works',
    { timeout: 30000 }, async (t) => {
        const { ctl, srv } = await setup(t, { env: { SIGNAL_MANAGER_LIMITS_MAX_SFU_SESSIONS: '2' } });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        /* sessions/new fails three times */
        ctl.fail(3, 'unavailable', { match: { method: 'POST', path: '/sessions/new' } });
        const t0 = Date.now();
        expectError(await createRoom(a, 'r-down', { offer_sdp: offer() }), 503);
        assert.ok(Date.now() - t0 < 3 * 1000 + 2000, 'bounded by the retries');
        assert.deepEqual(sessionsNew(ctl).map((r) => r.status), [503, 503, 503]);
        expectError(await joinRoom(b, 'r-down'), 404);

        /* the push fails three times: the publish session exists, nothing was published */
        ctl.fail(3, 500, { match: { method: 'POST', path: '/tracks/new' } });
        expectError(await createRoom(a, 'r-down', { offer_sdp: offer() }), 503);
        assert.deepEqual(ctl.requests({ path: '/tracks/new' }).map((r) => r.status), [500, 500, 500]);
        expectError(await joinRoom(b, 'r-down'), 404);

        /* the subscribe session cannot be created after the push: the published tracks are closed */
        const pushed = ctl.requests({ path: '/tracks/new' }).length;
        ctl.fail(3, 'unavailable', { match: { method: 'POST', path: '/sessions/new',
            test: () => ctl.requests({ path: '/tracks/new' }).length > pushed } });
        expectError(await createRoom(a, 'r-down', { offer_sdp: offer() }), 503);
        const last = ctl.requests({ path: '/tracks/new' }).pop();
        assert.equal(last.status, 200);
        const pubSid = /sessions\/([0-9a-f]+)\//.exec(last.path)[1];
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${pubSid}/tracks/close` });
        assert.deepEqual(forcedCloses(ctl, pubSid), [['0', '1']]);
        assert.ok(ctl.publications().filter((p) => p.sessionId === pubSid).every((p) => p.closed));
        expectError(await joinRoom(b, 'r-down'), 404);

        /* the same id works now, within limits.max_sfu_sessions = 2: everything was released */
        assert.equal(await sfuGauge(srv), 0);
        const ca = await createWithOffer(a, 'r-down');
        assert.deepEqual(ca.participants, [cid(1)]);
        assert.equal(await sfuGauge(srv), 2);
    });

test('the room closes while a join waits for the SFU: ERROR 404, the joiner\'s tracks are closed again',
    opts, async (t) => {
        const { ctl, srv } = await setup(t, { timeout: '1s' });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        await createWithOffer(a, 'r-vanish');
        /* B's pull is held 400 ms by the SFU; meanwhile A, the only member, leaves */
        ctl.latency(400, { count: 1, match: { method: 'POST', path: '/tracks/new',
            test: (ctx) => ctx.body && Array.isArray(ctx.body.tracks) && ctx.body.tracks[0].location === 'remote' } });
        const pending = joinRoom(b, 'r-vanish', { offer_sdp: offer(['audio']) });
        await ctl.waitForRequests({ method: 'POST', path: '/tracks/new',
            test: (r) => r.body && r.body.tracks && r.body.tracks[0].location === 'remote' }, { completed: false });
        await left(a, 'r-vanish');
        expectError(await pending, 404, /room not found/);
        const push = ctl.requests({ path: '/tracks/new' }).filter((r) => r.body.tracks[0].location === 'local').pop();
        const bPub = /sessions\/([0-9a-f]+)\//.exec(push.path)[1];
        await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${bPub}/tracks/close` });
        assert.deepEqual(forcedCloses(ctl, bPub), [['0']]);
        expectError(await leaveRoom(b, 'r-vanish'), 404);
    });

test('a pull where only some publications are not sending yet answers at once, the rest in tracks[].error',
    opts, async (t) => {
        /* The SFU's offer for the tracks it could pull must be answered before the next call on the
         * session, so the failed ones are not retried behind the client's back. */
        const { ctl, srv } = await setup(t, { timeout: '3s' });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const c = await registered(srv, 3);
        const ca = await createWithOffer(a, 'r-part');
        const jb = await joinAndAnswer(b, 'r-part', ['audio']);
        ctl.setSending(jb.publish.session_id, 'audio-0', false);
        const t0 = Date.now();
        const j = (await joined(c, 'r-part')).json;
        assert.ok(Date.now() - t0 < 1000, 'not retried');
        assert.equal(calls(ctl, j.subscribe.session_id, 'tracks/new', 'POST').length, 1);
        assert.deepEqual(j.subscribe.tracks.map((x) => [x.session_id, x.track_name, x.mid, x.error && x.error.code]), [
            [ca.connection_info.session_id, 'audio-0', '0', undefined],
            [ca.connection_info.session_id, 'video-1', '1', undefined],
            [jb.publish.session_id, 'audio-0', '', 'not_found_track_error']]);
        assert.deepEqual(sdp.validate(j.subscribe.offer_sdp, 'offer').media.map((m) => m.mid), ['0', '1']);
        /* answer, then pull the missing one when it sends */
        await updated(c, { session_id: j.subscribe.session_id, action: 'answer', answer_sdp: answerTo(j.subscribe.offer_sdp) });
        ctl.setSending(jb.publish.session_id, 'audio-0', true);
        const p = await updated(c, { session_id: j.subscribe.session_id, action: 'pull',
            tracks: [{ session_id: jb.publish.session_id, track_name: 'audio-0' }] });
        assert.deepEqual(p.tracks, [{ session_id: jb.publish.session_id, track_name: 'audio-0', mid: '2' }]);
    });

test('server shutdown closes the members\' SFU tracks before it exits', opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const ca = await createWithOffer(a, 'r-stop');
    const jb = await joinAndAnswer(b, 'r-stop', ['audio']);
    await srv.stop();
    assert.deepEqual(forcedCloses(ctl, ca.connection_info.session_id), [['0', '1']]);
    assert.deepEqual(forcedCloses(ctl, jb.publish.session_id), [['0']]);
    assert.deepEqual(forcedCloses(ctl, jb.subscribe.session_id), [['0', '1']]);
});

test('SFU 406 or 410 during ROOM_CREATE is an SFU failure (503), not "room already exists" / "room not found"',
    opts, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    ctl.fail(1, 'overlap', { match: { method: 'POST', path: '/tracks/new' } });
    expectError(await createRoom(a, 'r-map', { offer_sdp: offer() }), 503);
    ctl.fail(1, 'session_gone', { match: { method: 'POST', path: '/tracks/new' } });
    expectError(await createRoom(a, 'r-map', { offer_sdp: offer() }), 503);
    await createWithOffer(a, 'r-map');
});

test('SFU failure in the middle of a join: ERROR 503, the joiner\'s published tracks are closed again, ' +
    'not a member', { timeout: 30000 }, async (t) => {
    const { ctl, srv } = await setup(t);
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await createWithOffer(a, 'r-midfail');
    /* B's pull (remote tracks/new) fails three times after B published */
    ctl.fail(3, 'unavailable', { match: { method: 'POST', path: '/tracks/new',
        test: (ctx) => ctx.body && Array.isArray(ctx.body.tracks) && ctx.body.tracks[0].location === 'remote' } });
    expectError(await joinRoom(b, 'r-midfail', { offer_sdp: offer(['audio']) }), 503);
    const pushes = ctl.requests({ path: '/tracks/new' }).filter((r) => r.body.tracks[0].location === 'local');
    const bPub = /sessions\/([0-9a-f]+)\//.exec(pushes[pushes.length - 1].path)[1];
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${bPub}/tracks/close` });
    assert.deepEqual(forcedCloses(ctl, bPub), [['0']], 'the published track was closed again');
    await roundTrip(a);
    assert.equal(eventsSeen(a, 'participant_joined').length, 0, 'nobody was told');
    assert.equal(eventsSeen(a, 'tracks_published').length, 0);
    expectError(await leaveRoom(b, 'r-midfail'), 404);
    await joinAndAnswer(b, 'r-midfail', ['audio']);
});

test('SFU that never answers: ERROR 503 within 3 x webrtc.cloudflare_timeout + 2 retry intervals',
    { timeout: 30000 }, async (t) => {
        const { ctl, srv } = await setup(t, { timeout: '700ms' });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        ctl.hang(Infinity, { match: { method: 'POST', path: '/sessions/new' } });
        const t0 = Date.now();
        const f = await a.request(T.ROOM_CREATE, { version: '1.0.0', client_id: a.clientId, room_id: 'r-hang',
            offer_sdp: offer() }, { timeoutMs: 8000 });
        const took = Date.now() - t0;
        expectError(f, 503);
        assert.ok(took >= 3 * 700 + 2 * 800 - 200, `503 after ${took} ms: three attempts of 700 ms, two pauses`);
        assert.ok(took <= 3 * 700 + 2 * 1000 + 1000, `503 after ${took} ms`);
        assert.equal(sessionsNew(ctl).length, 3, 'three attempts');
        ctl.clearFaults();
        expectError(await joinRoom(b, 'r-hang'), 404);
        await createWithOffer(a, 'r-hang');
    });

test('limits.max_sfu_sessions: a create or join that needs more sessions gets 503, nothing half-done',
    opts, async (t) => {
        const { ctl, srv } = await setup(t, { env: { SIGNAL_MANAGER_LIMITS_MAX_SFU_SESSIONS: '3' } });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        const c = await registered(srv, 3);
        await createWithOffer(a, 'r-lim');                       /* 2 sessions */
        assert.equal(await sfuGauge(srv), 2);
        const n0 = sessionsNew(ctl).length;
        let e = expectError(await joinRoom(b, 'r-lim', { offer_sdp: offer() }), 503, /max_sfu_sessions/);
        assert.equal(e.details.room_id, 'r-lim');
        assert.equal(sessionsNew(ctl).length, n0, 'refused before any SFU call');
        await joinAndAnswer(b, 'r-lim');                         /* 1 session: 3 in all */
        expectError(await joinRoom(c, 'r-lim'), 503, /max_sfu_sessions/);
        e = expectError(await createRoom(c, 'r-lim-2', { offer_sdp: offer() }), 503, /max_sfu_sessions/);
        await roundTrip(a);
        assert.deepEqual(eventsSeen(a, 'participant_joined').map((f) => f.json.client_id), [cid(2)]);
        expectError(await joinRoom(b, 'r-lim-2'), 404, /not found/);
        assert.equal(await sfuGauge(srv), 3);
        /* B leaves: its session is given back */
        await left(b, 'r-lim');
        assert.equal(await sfuGauge(srv), 2);
        await joinAndAnswer(c, 'r-lim');
        assert.equal(await sfuGauge(srv), 3);
    });

test('the JavaScript SDK drives the whole SFU flow against the server', opts, async (t) => {
    const { SignalManagerClient } = await import('../../lib/js/signal-manager.js');
    const WebSocket = require('ws');
    const { ctl, srv } = await setup(t);
    const sdk = (i) => {
        const c = new SignalManagerClient({ url: srv.url, clientId: cid(i), authToken: tok(i), WebSocket,
            reconnect: false });
        t.after(() => c.disconnect().catch(() => {}));
        return c;
    };
    const a = sdk(1);
    const b = sdk(2);
    for (const c of [a, b]) {
        await c.connect();
        await c.register();
    }
    const ca = await a.createRoom({ roomId: 'r-sdk', offerSdp: offer(['video']), timeout: 15000 });
    assert.deepEqual(a.sfuSessions('r-sdk'), { publish: ca.connection_info.session_id, subscribe: ca.subscribe.session_id });
    const published = new Promise((resolve) => {
        a.on('roomEvent', (ev) => { if (ev.event === 'tracks_published') resolve(ev); });
    });
    const jb = await b.joinRoom('r-sdk', { offerSdp: offer(['audio']), timeout: 15000 });
    assert.deepEqual(b.sfuSessions('r-sdk'), { publish: jb.publish.session_id, subscribe: jb.subscribe.session_id });
    const ua = await b.answerSubscription(jb.subscribe.session_id, answerTo(jb.subscribe.offer_sdp));
    assert.equal(ua.action, 'answer');
    assert.equal(ctl.pendingOffer(jb.subscribe.session_id), null);

    const ev = await published;
    const p = await a.pullTracks(a.sfuSessions('r-sdk').subscribe, ev.tracks, { timeout: 15000 });
    assert.deepEqual(p.tracks, [{ session_id: jb.publish.session_id, track_name: 'audio-0', mid: '0' }]);
    await a.answerSubscription(a.sfuSessions('r-sdk').subscribe, answerTo(p.offer_sdp));
    assert.equal(trackOf(ctl, ca.subscribe.session_id, '0').status, 'active');
    const cl = await a.closeTracks(ca.subscribe.session_id, ['0']);
    assert.deepEqual(cl.tracks, [{ mid: '0' }]);
    await assert.rejects(b.pullTracks(jb.publish.session_id, ev.tracks), (e) => e.errorCode === 400 && !e.local);
    const leftEv = new Promise((resolve) => {
        a.on('roomEvent', (x) => { if (x.event === 'participant_left') resolve(x); });
    });
    await b.leaveRoom('r-sdk');
    assert.equal(b.sfuSessions('r-sdk'), null);
    assert.deepEqual((await leftEv).tracks, ev.tracks);
});

test('the Calls app token is never logged, also when the SFU refuses it', opts, async (t) => {
    /* the server holds a token the SFU does not accept: 401 from the SFU */
    const { ctl, srv } = await setup(t, { appToken: `${APP_TOKEN}-wrong` });
    const a = await registered(srv, 1);
    expectError(await createRoom(a, 'r-auth', { offer_sdp: offer() }), 503);
    const r = sessionsNew(ctl);
    assert.equal(r.length, 1, 'an auth failure is not retried');
    assert.equal(r[0].status, 401);
    assert.ok(srv.logs.some((j) => j.msg === 'cloudflare call' && j.op === 'session_new'), 'the call is logged');
    const wrong = srv.lines.find((l) => l.includes(`${APP_TOKEN}-wrong`) || l.includes(APP_TOKEN));
    assert.equal(wrong, undefined, `token in the log: ${wrong}`);
    assert.ok(!a.seen.some((f) => f.payload.toString('utf8').includes(APP_TOKEN)), 'nor sent to the client');
});
