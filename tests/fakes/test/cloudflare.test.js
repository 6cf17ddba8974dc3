'use strict';
/* Fake Cloudflare SFU: sessions, publish, pull + renegotiate, 406/410 rules,
 * per-track errors inside 200, close, overlap detection. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startCloudflareSfu, NOT_SENDING } = require('../cloudflare');
const sdp = require('../sdp');
const { request } = require('../http');

async function setup(t, opts)
{
    const sfu = await startCloudflareSfu(opts);
    t.after(() => sfu.close());
    const auth = { authorization: `Bearer ${sfu.appSecret}` };
    const call = (method, path, body, headers = auth) => request(`${sfu.baseUrl}/apps/${sfu.appId}${path}`, { method, body, headers });
    const newSession = async () => {
        const r = await call('POST', '/sessions/new');
        assert.equal(r.status, 201);
        return r.json.sessionId;
    };
    /* publisher session with tracks cam (video, mid 1) + mic (audio, mid 0) */
    const publisher = async () => {
        const sid = await newSession();
        const r = await call('POST', `/sessions/${sid}/tracks/new`, {
            sessionDescription: { type: 'offer', sdp: sdp.sampleOffer(['audio', 'video']) },
            tracks: [{ location: 'local', mid: '1', trackName: 'cam' }, { location: 'local', mid: '0', trackName: 'mic' }],
        });
        assert.equal(r.status, 200, r.text);
        return { sid, r };
    };
    return { sfu, call, newSession, publisher };
}

test('auth: missing/wrong secret -> 401 unauthorized, unknown app -> 404 not_found', async (t) => {
    const { sfu, call } = await setup(t);
    const none = await call('POST', '/sessions/new', undefined, {});
    assert.equal(none.status, 401);
    assert.equal(none.json.errorCode, 'unauthorized');
    assert.equal((await call('POST', '/sessions/new', undefined, { authorization: 'Bearer nope' })).status, 401);
    const app = await request(`${sfu.baseUrl}/apps/0123456789abcdef0123456789abcdef/sessions/new`,
        { method: 'POST', headers: { authorization: `Bearer ${sfu.appSecret}` } });
    assert.equal(app.status, 404);
    assert.equal(app.json.errorCode, 'not_found');
});

test('sessions/new -> 201 with a 32-hex sessionId; with an offer also an answer', async (t) => {
    const { call, sfu } = await setup(t);
    const r = await call('POST', '/sessions/new?correlationId=abc');
    assert.equal(r.status, 201);
    assert.match(r.json.sessionId, /^[0-9a-f]{32}$/);
    assert.deepEqual(Object.keys(r.json), ['sessionId']);
    assert.equal(sfu.control.session(r.json.sessionId).correlationId, 'abc');
    const offer = sdp.sampleOffer(['application']);
    const w = await call('POST', '/sessions/new', { sessionDescription: { type: 'offer', sdp: offer } });
    assert.equal(w.status, 201);
    assert.equal(w.json.sessionDescription.type, 'answer');
    assert.deepEqual(sdp.validate(w.json.sessionDescription.sdp, 'answer').media.map((m) => m.mid), ['0']);
    const bad = await call('POST', '/sessions/new', '{not json');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errorCode, 'decoding_error');
});

test('publish: tracks/new local + offer -> 200, no renegotiation, answer mirrors the offer, tracks echoed', async (t) => {
    const { publisher, sfu } = await setup(t);
    const { sid, r } = await publisher();
    assert.equal(r.json.requiresImmediateRenegotiation, false);
    assert.equal(r.json.sessionDescription.type, 'answer');
    const a = sdp.validate(r.json.sessionDescription.sdp, 'answer');
    assert.deepEqual(a.media.map((m) => [m.mid, m.kind, m.direction]), [['0', 'audio', 'recvonly'], ['1', 'video', 'recvonly']]);
    assert.deepEqual(r.json.tracks, [{ trackName: 'cam', mid: '1' }, { trackName: 'mic', mid: '0' }]);
    assert.deepEqual(sfu.control.publications().map((p) => [p.sessionId, p.trackName, p.kind]).sort(),
        [[sid, 'cam', 'video'], [sid, 'mic', 'audio']]);
});

test('publish errors: bad mid, mixed locations, duplicate trackName, bad SDP', async (t) => {
    const { call, newSession, publisher } = await setup(t);
    const sid = await newSession();
    const offer = { type: 'offer', sdp: sdp.sampleOffer(['audio']) };
    const badMid = await call('POST', `/sessions/${sid}/tracks/new`, { sessionDescription: offer, tracks: [{ location: 'local', mid: '7', trackName: 'a' }] });
    assert.equal(badMid.status, 406);
    assert.equal(badMid.json.errorCode, 'invalid_params');
    const mixed = await call('POST', `/sessions/${sid}/tracks/new`, { sessionDescription: offer, tracks: [
        { location: 'local', mid: '0', trackName: 'a' }, { location: 'remote', sessionId: sid, trackName: 'b' }] });
    assert.equal(mixed.status, 406);
    const badSdp = await call('POST', `/sessions/${sid}/tracks/new`, { sessionDescription: { type: 'offer', sdp: 'v=0\r\nbogus' },
        tracks: [{ location: 'local', mid: '0', trackName: 'a' }] });
    assert.equal(badSdp.status, 400);
    assert.equal(badSdp.json.errorCode, 'invalid_session_description');
    const pub = await publisher();
    const dup = await call('POST', `/sessions/${pub.sid}/tracks/new`, { sessionDescription: { type: 'offer', sdp: sdp.sampleOffer(['audio', 'video']) },
        tracks: [{ location: 'local', mid: '0', trackName: 'mic' }] });
    assert.equal(dup.status, 406);
});

test('pull: 200 + SFU offer with fresh mids; 406 until answered via PUT renegotiate; GET shows tracks', async (t) => {
    const { call, newSession, publisher, sfu } = await setup(t);
    const pub = await publisher();
    const sub = await newSession();
    const r = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [
        { location: 'remote', sessionId: pub.sid, trackName: 'cam' }, { location: 'remote', sessionId: pub.sid, trackName: 'mic' }] });
    assert.equal(r.status, 200);
    assert.equal(r.json.requiresImmediateRenegotiation, true);
    assert.equal(r.json.sessionDescription.type, 'offer');
    assert.deepEqual(r.json.tracks, [{ sessionId: pub.sid, trackName: 'cam', mid: '0' }, { sessionId: pub.sid, trackName: 'mic', mid: '1' }]);
    const offer = sdp.validate(r.json.sessionDescription.sdp, 'offer');
    assert.deepEqual(offer.media.map((m) => [m.mid, m.kind, m.direction]), [['0', 'video', 'sendonly'], ['1', 'audio', 'sendonly']]);
    assert.ok(offer.media[0].fmts.includes('96'), 'publisher codecs offered');

    const blocked = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [{ location: 'remote', sessionId: pub.sid, trackName: 'cam' }] });
    assert.equal(blocked.status, 406);
    assert.equal(blocked.json.errorCode, 'invalid_session_description');
    const blockedClose = await call('PUT', `/sessions/${sub}/tracks/close`, { tracks: [{ mid: '0' }], force: true });
    assert.equal(blockedClose.status, 406);

    const g1 = await call('GET', `/sessions/${sub}`);
    assert.deepEqual(g1.json.tracks.map((x) => x.status), ['inactive', 'inactive']);

    const wrong = await call('PUT', `/sessions/${sub}/renegotiate`, { sessionDescription: { type: 'answer', sdp: sdp.createAnswer(sdp.sampleOffer(['video'])) } });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.json.errorCode, 'invalid_session_description');

    const answer = sdp.createAnswer(r.json.sessionDescription.sdp);
    const ok = await call('PUT', `/sessions/${sub}/renegotiate`, { sessionDescription: { type: 'answer', sdp: answer } });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, {});
    const again = await call('PUT', `/sessions/${sub}/renegotiate`, { sessionDescription: { type: 'answer', sdp: answer } });
    assert.equal(again.status, 406, 'nothing pending any more');

    const g = await call('GET', `/sessions/${sub}`);
    assert.deepEqual(g.json, { tracks: [
        { location: 'remote', mid: '0', trackName: 'cam', sessionId: pub.sid, status: 'active' },
        { location: 'remote', mid: '1', trackName: 'mic', sessionId: pub.sid, status: 'active' }], dataChannels: [] });
    assert.equal(sfu.control.session(sub).pendingOffer, false);

    /* next pull: offer carries the old m-sections plus a new mid */
    const pub2 = await publisher();
    const r2 = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [{ location: 'remote', sessionId: pub2.sid, trackName: 'cam' }] });
    assert.deepEqual(r2.json.tracks, [{ sessionId: pub2.sid, trackName: 'cam', mid: '2' }]);
    assert.deepEqual(sdp.parse(r2.json.sessionDescription.sdp).media.map((m) => m.mid), ['0', '1', '2']);
});

test('pull before the publisher sends: per-item not_found_track_error inside a 200, then success', async (t) => {
    const { call, newSession, publisher, sfu } = await setup(t, { sendingDelayMs: 60000 });
    const pub = await publisher();
    const sub = await newSession();
    const body = { tracks: [{ location: 'remote', sessionId: pub.sid, trackName: 'cam' }] };
    const early = await call('POST', `/sessions/${sub}/tracks/new`, body);
    assert.equal(early.status, 200);
    assert.deepEqual(early.json, { requiresImmediateRenegotiation: false, tracks: [
        { sessionId: pub.sid, trackName: 'cam', mid: '', errorCode: 'not_found_track_error', errorDescription: NOT_SENDING }] });
    assert.equal(sfu.control.session(sub).pendingOffer, false, 'nothing to answer');
    const unknown = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [{ location: 'remote', sessionId: pub.sid, trackName: 'nope' }] });
    assert.equal(unknown.json.tracks[0].errorCode, 'not_found_track_error');

    sfu.control.setSendingDelay(0);
    const later = await call('POST', `/sessions/${sub}/tracks/new`, body);
    assert.equal(later.json.requiresImmediateRenegotiation, true);
    assert.equal(later.json.tracks[0].mid, '0');
    assert.equal(later.json.tracks[0].errorCode, undefined);

    sfu.control.setSending(pub.sid, 'mic', false);
    await call('PUT', `/sessions/${sub}/renegotiate`, { sessionDescription: { type: 'answer', sdp: sdp.createAnswer(later.json.sessionDescription.sdp) } });
    const mic = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [{ location: 'remote', sessionId: pub.sid, trackName: 'mic' }] });
    assert.equal(mic.json.tracks[0].errorCode, 'not_found_track_error');
});

test('sendingDelayMs: a publication becomes pullable once the delay has passed', async (t) => {
    const { call, newSession, publisher } = await setup(t, { sendingDelayMs: 100 });
    const pub = await publisher();
    const sub = await newSession();
    await new Promise((r) => setTimeout(r, 120));
    const r = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [{ location: 'remote', sessionId: pub.sid, trackName: 'cam' }] });
    assert.equal(r.json.tracks[0].errorCode, undefined);
    assert.equal(r.json.requiresImmediateRenegotiation, true);
});

test('unknown or expired session -> 410 session_error', async (t) => {
    const { call, sfu, newSession } = await setup(t);
    const r = await call('POST', '/sessions/00000000000000000000000000000000/tracks/new', { tracks: [] });
    assert.equal(r.status, 410);
    assert.equal(r.json.errorCode, 'session_error');
    assert.equal((await call('GET', '/sessions/00000000000000000000000000000000')).status, 410);
    const sid = await newSession();
    assert.equal(sfu.control.expireSession(sid), true);
    const gone = await call('PUT', `/sessions/${sid}/tracks/close`, { tracks: [{ mid: '0' }], force: true });
    assert.equal(gone.status, 410);
});

test('tracks/close: force true, close_track_error for unknown mids, force false needs an offer and answers', async (t) => {
    const { call, publisher, newSession, sfu } = await setup(t);
    const pub = await publisher();
    const noForce = await call('PUT', `/sessions/${pub.sid}/tracks/close`, { tracks: [{ mid: '0' }] });
    assert.equal(noForce.status, 400);
    assert.equal(noForce.json.errorCode, 'decoding_error');
    const noOffer = await call('PUT', `/sessions/${pub.sid}/tracks/close`, { tracks: [{ mid: '0' }], force: false });
    assert.equal(noOffer.status, 406);
    assert.equal(noOffer.json.errorCode, 'invalid_params');

    const forced = await call('PUT', `/sessions/${pub.sid}/tracks/close`, { tracks: [{ mid: '0' }, { mid: '9' }], force: true });
    assert.equal(forced.status, 200);
    assert.deepEqual(forced.json, { requiresImmediateRenegotiation: false, tracks: [
        { mid: '0' }, { mid: '9', errorCode: 'close_track_error', errorDescription: "Track doesn't exist or was already closed" }] });
    const twice = await call('PUT', `/sessions/${pub.sid}/tracks/close`, { tracks: [{ mid: '0' }], force: true });
    assert.equal(twice.json.tracks[0].errorCode, 'close_track_error');
    assert.equal(sfu.control.publications().find((p) => p.trackName === 'mic').closed, true);

    const offer = sdp.sampleOffer(['audio', 'video']).replace('m=video 9', 'm=video 0');
    const nego = await call('PUT', `/sessions/${pub.sid}/tracks/close`, { tracks: [{ mid: '1' }], force: false,
        sessionDescription: { type: 'offer', sdp: offer } });
    assert.equal(nego.status, 200);
    assert.equal(nego.json.requiresImmediateRenegotiation, false);
    assert.equal(nego.json.sessionDescription.type, 'answer');
    assert.deepEqual(sdp.parse(nego.json.sessionDescription.sdp).media.map((m) => [m.mid, m.rejected]), [['0', false], ['1', true]]);
    assert.deepEqual(nego.json.tracks, [{ mid: '1' }]);

    const g = await call('GET', `/sessions/${pub.sid}`);
    assert.deepEqual(g.json.tracks.map((x) => x.status), ['inactive', 'inactive']);
    const sub = await newSession();
    const pull = await call('POST', `/sessions/${sub}/tracks/new`, { tracks: [{ location: 'remote', sessionId: pub.sid, trackName: 'cam' }] });
    assert.equal(pull.json.tracks[0].errorCode, 'not_found_track_error', 'closed publication cannot be pulled');
});

test('injected per-track errors (internal_error items) and top-level presets', async (t) => {
    const { call, publisher, sfu } = await setup(t);
    const pub = await publisher();
    sfu.control.trackErrors(1, { op: 'close' });
    const r = await call('PUT', `/sessions/${pub.sid}/tracks/close`, { tracks: [{ mid: '0' }, { mid: '1' }], force: true });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.tracks, [{ mid: '0', errorCode: 'internal_error', errorDescription: 'Backend error' }, { mid: '1' }]);
    sfu.control.fail(1, 'internal_error');
    const f = await call('GET', `/sessions/${pub.sid}`);
    assert.equal(f.status, 500);
    assert.deepEqual(f.json, { errorCode: 'internal_error', errorDescription: 'Backend error' });
    sfu.control.fail(1, 429);
    assert.equal((await call('GET', `/sessions/${pub.sid}`)).status, 429);
    assert.equal((await call('GET', `/sessions/${pub.sid}`)).status, 200);
});

test('overlapping mutations on one session -> 406; different sessions run in parallel', async (t) => {
    const { call, newSession, sfu } = await setup(t);
    const a = await newSession();
    const b = await newSession();
    sfu.control.latency(300, { match: { path: '/tracks/new' }, count: 2 });
    const offer = (mid) => ({ sessionDescription: { type: 'offer', sdp: sdp.sampleOffer(['audio']) }, tracks: [{ location: 'local', mid, trackName: `t${mid}` }] });
    const first = call('POST', `/sessions/${a}/tracks/new`, offer('0'));
    await new Promise((r) => setTimeout(r, 30));
    const other = call('POST', `/sessions/${b}/tracks/new`, offer('0'));
    const second = await call('PUT', `/sessions/${a}/tracks/close`, { tracks: [{ mid: '0' }], force: true });
    assert.equal(second.status, 406);
    assert.equal(second.json.errorCode, 'invalid_params');
    assert.equal((await first).status, 200);
    assert.equal((await other).status, 200);
    const after = await call('PUT', `/sessions/${a}/tracks/close`, { tracks: [{ mid: '0' }], force: true });
    assert.equal(after.status, 200);
});
