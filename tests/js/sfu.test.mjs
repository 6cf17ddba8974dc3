/*
 * SDK in SFU mode (webrtc.mode = cloudflare, DECISIONS §6) against the fake
 * server's SFU mode (support/fake-server.mjs { sfu: true }): createRoom /
 * joinRoom with offers, sfuSessions(), the tracks_published room event,
 * sessionUpdate (structured and raw forms) and its helpers
 * answerSubscription / pullTracks / closeTracks, local validation, per-call
 * timeouts, and what a reconnect does to the SFU session ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import {
    SignalManagerClient, SignalManagerError, RequestTimeoutError, SessionAction, MAX_SFU_TRACKS,
} from '../../lib/js/signal-manager.js';
import { startFakeServer, waitEvent, T } from './support/fake-server.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('../../node_modules/ws');

const TEST_TIMEOUT = 10000;

/* A browser-like offer: one sending m-section per kind, mids 0, 1, ... */
function offer(kinds = ['audio', 'video']) {
    let s = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
    kinds.forEach((k, i) => {
        s += `m=${k} 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:${i}\r\na=sendonly\r\n`;
    });
    return s;
}

async function sfuServer(t) {
    const srv = await startFakeServer({ sfu: true });
    t.after(() => srv.close());
    return srv;
}

async function client(t, srv, id, token, opts = {}) {
    const c = new SignalManagerClient({
        url: srv.url, clientId: id, authToken: token, WebSocket,
        requestTimeout: 3000, reconnectBaseDelay: 10, reconnectMaxDelay: 40, ...opts,
    });
    t.after(() => c.disconnect().catch(() => {}));
    await c.connect();
    await c.register();
    return c;
}

async function rejectsLocal400(promise, field) {
    await assert.rejects(promise, (err) => {
        assert.ok(err instanceof SignalManagerError, String(err));
        assert.equal(err.errorCode, 400);
        assert.equal(err.local, true);
        if (field)
            assert.equal(err.details.field, field, err.message);
        return true;
    });
}

test('createRoom with offerSdp: ACK with answer_sdp, connection_info and subscribe; sfuSessions()',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await sfuServer(t);
        const a = await client(t, srv, 'alice', 'a');
        const o = offer();
        const ack = await a.createRoom({ roomId: 'r1', offerSdp: o });
        assert.equal(srv.framesOf(T.ROOM_CREATE)[0].json.offer_sdp, o);
        assert.match(ack.answer_sdp, /^v=0/);
        assert.equal(ack.connection_info.mode, 'cloudflare');
        assert.deepEqual(ack.connection_info.tracks, [{ track_name: 'audio-0', mid: '0' }, { track_name: 'video-1', mid: '1' }]);
        assert.equal(typeof ack.subscribe.session_id, 'string');
        assert.deepEqual(a.sfuSessions('r1'),
            { publish: ack.connection_info.session_id, subscribe: ack.subscribe.session_id });
        assert.equal(a.sfuSessions('nope'), null);
        /* a copy: callers cannot change the client's record */
        a.sfuSessions('r1').publish = 'x';
        assert.equal(a.sfuSessions('r1').publish, ack.connection_info.session_id);
        /* the server's 400 for a create without an offer */
        await assert.rejects(a.createRoom({ roomId: 'r2' }), (e) => e.errorCode === 400 && !e.local &&
            e.details.field === 'offer_sdp');
        assert.deepEqual(a.rooms, ['r1']);
    });

test('joinRoom with and without an offer; tracks_published reaches the others as a roomEvent',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await sfuServer(t);
        const a = await client(t, srv, 'alice', 'a');
        const b = await client(t, srv, 'bob', 'b');
        const c = await client(t, srv, 'test_client_1', 'test_token_1');
        const ca = await a.createRoom({ roomId: 'r', offerSdp: offer() });
        const published = waitEvent(a, 'roomEvent', (e) => e.event === 'tracks_published');
        const jb = await b.joinRoom('r', { offerSdp: offer(['audio']) });
        assert.equal(srv.framesOf(T.ROOM_JOIN)[0].json.offer_sdp, offer(['audio']));
        assert.deepEqual(jb.participants, ['alice', 'bob']);
        assert.deepEqual(jb.publish.tracks, [{ track_name: 'audio-0', mid: '0' }]);
        assert.match(jb.subscribe.offer_sdp, /^v=0/);
        assert.deepEqual(jb.subscribe.tracks.map((x) => [x.session_id, x.track_name]),
            [[ca.connection_info.session_id, 'audio-0'], [ca.connection_info.session_id, 'video-1']]);
        assert.deepEqual(b.sfuSessions('r'), { publish: jb.publish.session_id, subscribe: jb.subscribe.session_id });
        const ev = await published;
        assert.deepEqual(ev, { event: 'tracks_published', room_id: 'r', client_id: 'bob',
            tracks: [{ session_id: jb.publish.session_id, track_name: 'audio-0' }] });

        const jc = await c.joinRoom('r');
        assert.equal(srv.framesOf(T.ROOM_JOIN)[1].json.offer_sdp, undefined);
        assert.equal(jc.publish, undefined);
        assert.equal(jc.subscribe.tracks.length, 3);
        assert.deepEqual(c.sfuSessions('r'), { publish: null, subscribe: jc.subscribe.session_id });
    });

test('answerSubscription / pullTracks / closeTracks send SESSION_UPDATE and resolve with the ACK',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await sfuServer(t);
        const a = await client(t, srv, 'alice', 'a');
        const b = await client(t, srv, 'bob', 'b');
        const ca = await a.createRoom({ roomId: 'r', offerSdp: offer(['video']) });
        const published = waitEvent(a, 'roomEvent', (e) => e.event === 'tracks_published');
        const jb = await b.joinRoom('r', { offerSdp: offer(['audio']) });
        const sub = b.sfuSessions('r').subscribe;

        const u = await b.answerSubscription(sub, 'v=0\r\ns=answer\r\n');
        assert.deepEqual(u, { status: 200, session_id: sub, action: 'answer' });
        let f = srv.framesOf(T.SESSION_UPDATE).at(-1);
        assert.deepEqual(f.json, { version: '1.0.0', session_id: sub, action: 'answer', answer_sdp: 'v=0\r\ns=answer\r\n' });

        /* pull exactly what the event announced (snake_case items pass through) */
        const ev = await published;
        const p = await a.pullTracks(a.sfuSessions('r').subscribe, ev.tracks);
        f = srv.framesOf(T.SESSION_UPDATE).at(-1);
        assert.deepEqual(f.json, { version: '1.0.0', session_id: ca.subscribe.session_id, action: 'pull',
            tracks: [{ session_id: jb.publish.session_id, track_name: 'audio-0' }] });
        assert.equal(p.action, 'pull');
        assert.match(p.offer_sdp, /^v=0/);
        assert.deepEqual(p.tracks, [{ session_id: jb.publish.session_id, track_name: 'audio-0', mid: '0' }]);
        /* camelCase items are converted; extra fields are not sent */
        await a.pullTracks(ca.subscribe.session_id,
            [{ sessionId: jb.publish.session_id, trackName: 'audio-0', mid: 'x', kind: 'audio' }]);
        f = srv.framesOf(T.SESSION_UPDATE).at(-1);
        assert.deepEqual(f.json.tracks, [{ session_id: jb.publish.session_id, track_name: 'audio-0' }]);
        /* per-track failures come back inside the ACK */
        const miss = await a.pullTracks(ca.subscribe.session_id, [{ sessionId: jb.publish.session_id, trackName: 'nope' }]);
        assert.equal(miss.offer_sdp, null);
        assert.equal(miss.tracks[0].error.code, 'not_found_track_error');

        const cl = await a.closeTracks(ca.subscribe.session_id, ['0', '1']);
        assert.deepEqual(cl, { status: 200, session_id: ca.subscribe.session_id, action: 'close',
            tracks: [{ mid: '0' }, { mid: '1' }] });
        f = srv.framesOf(T.SESSION_UPDATE).at(-1);
        assert.deepEqual(f.json, { version: '1.0.0', session_id: ca.subscribe.session_id, action: 'close',
            mids: ['0', '1'] });

        /* the same through sessionUpdate's structured form, with the SessionAction constants */
        await a.sessionUpdate({ sessionId: ca.subscribe.session_id, action: SessionAction.CLOSE, mids: ['2'] });
        assert.deepEqual(srv.framesOf(T.SESSION_UPDATE).at(-1).json.mids, ['2']);
    });

test('server errors reject with SignalManagerError: foreign session 404, pull on the publish session 400',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await sfuServer(t);
        const a = await client(t, srv, 'alice', 'a');
        const b = await client(t, srv, 'bob', 'b');
        await a.createRoom({ roomId: 'r', offerSdp: offer() });
        await b.joinRoom('r', { offerSdp: offer() });
        await assert.rejects(a.answerSubscription(b.sfuSessions('r').subscribe, 'v=0'), (e) => {
            assert.equal(e.errorCode, 404);
            assert.equal(e.local, false);
            assert.equal(e.requestType, 'SESSION_UPDATE');
            assert.equal(e.details.session_id, b.sfuSessions('r').subscribe);
            return true;
        });
        await assert.rejects(b.pullTracks(b.sfuSessions('r').publish,
            [{ sessionId: a.sfuSessions('r').publish, trackName: 'audio-0' }]),
        (e) => e.errorCode === 400 && !e.local && /subscribe/.test(e.message));
    });

test('structured sessionUpdate is checked locally (400, nothing sent); the raw form is sent as given',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await sfuServer(t);
        const a = await client(t, srv, 'alice', 'a');
        const sid = 'abcdef0123456789abcdef0123456789';
        await rejectsLocal400(a.sessionUpdate(null));
        await rejectsLocal400(a.sessionUpdate([]));
        await rejectsLocal400(a.answerSubscription('', 'v=0'), 'sessionId');
        await rejectsLocal400(a.answerSubscription('bad id!', 'v=0'), 'sessionId');
        await rejectsLocal400(a.answerSubscription(sid, ''), 'answerSdp');
        await rejectsLocal400(a.answerSubscription(sid), 'answerSdp');
        await rejectsLocal400(a.sessionUpdate({ sessionId: sid, action: 'renegotiate' }), 'action');
        await rejectsLocal400(a.pullTracks(sid, []), 'tracks');
        await rejectsLocal400(a.pullTracks(sid, 'x'), 'tracks');
        await rejectsLocal400(a.pullTracks(sid, [{ trackName: 'cam' }]), 'tracks[0]');
        await rejectsLocal400(a.pullTracks(sid, [{ sessionId: sid, trackName: 'cam' }, { session_id: sid }]), 'tracks[1]');
        await rejectsLocal400(a.pullTracks(sid, [null]), 'tracks[0]');
        const many = Array.from({ length: MAX_SFU_TRACKS + 1 }, (_, i) => ({ sessionId: sid, trackName: `t${i}` }));
        await rejectsLocal400(a.pullTracks(sid, many), 'tracks');
        await rejectsLocal400(a.closeTracks(sid, []), 'mids');
        await rejectsLocal400(a.closeTracks(sid, ['0', 1]), 'mids');
        await rejectsLocal400(a.closeTracks(sid, ['']), 'mids');
        await rejectsLocal400(a.closeTracks(sid, Array.from({ length: MAX_SFU_TRACKS + 1 }, (_, i) => String(i))), 'mids');
        assert.equal(srv.framesOf(T.SESSION_UPDATE).length, 0, 'nothing was sent');
        /* exactly MAX_SFU_TRACKS is fine (the fake answers 404: not a session of ours) */
        await assert.rejects(a.pullTracks(sid, many.slice(0, MAX_SFU_TRACKS)), (e) => e.errorCode === 404 && !e.local);
        assert.equal(srv.framesOf(T.SESSION_UPDATE)[0].json.tracks.length, MAX_SFU_TRACKS);
        /* raw form: unchanged, the server judges it */
        await assert.rejects(a.sessionUpdate({ session_id: sid, action: 'bogus', extra: 1 }), (e) => e.errorCode === 404);
        assert.deepEqual(srv.framesOf(T.SESSION_UPDATE)[1].json, { version: '1.0.0', session_id: sid, action: 'bogus', extra: 1 });
    });

test('timeout option: SFU calls may wait longer (or shorter) than requestTimeout', { timeout: TEST_TIMEOUT },
    async (t) => {
        const srv = await sfuServer(t);
        const a = await client(t, srv, 'alice', 'a', { requestTimeout: 200 });
        const held = [];
        srv.swallow = (f) => {
            if (f.type !== T.ROOM_CREATE && f.type !== T.SESSION_UPDATE)
                return false;
            held.push(f);
            return true;
        };
        /* held 400 ms: past requestTimeout, within the call's timeout */
        const created = a.createRoom({ roomId: 'slow', offerSdp: offer(), timeout: 2000 });
        await srv.waitFrame((f) => f.type === T.ROOM_CREATE);
        setTimeout(() => {
            srv.swallow = null;
            srv._handle(held[0].conn, held[0]);
        }, 400);
        const ack = await created;
        assert.equal(ack.room_id, 'slow');
        /* a short per-call timeout */
        srv.swallow = (f) => f.type === T.SESSION_UPDATE;
        const t0 = Date.now();
        await assert.rejects(a.pullTracks(a.sfuSessions('slow').subscribe,
            [{ sessionId: a.sfuSessions('slow').publish, trackName: 'audio-0' }], { timeout: 50 }),
        (e) => e instanceof RequestTimeoutError && e.errorCode === 408 && e.details.timeoutMs === 50);
        assert.ok(Date.now() - t0 < 200, 'the per-call timeout, not requestTimeout');
    });

test('sfuSessions forgets a room on leave and room_closed; a non-resumed reconnect reports the new ' +
    'sessions in roomAcks', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await sfuServer(t);
    const a = await client(t, srv, 'alice', 'a');
    const b = await client(t, srv, 'bob', 'b');
    await a.createRoom({ roomId: 'r1', offerSdp: offer() });
    await a.createRoom({ roomId: 'r2', offerSdp: offer() });
    const left = waitEvent(a, 'roomEvent', (e) => e.event === 'participant_left' && e.room_id === 'r1');
    const jb = await b.joinRoom('r1', { offerSdp: offer(['audio']) });
    await b.joinRoom('r2');
    await b.leaveRoom('r2');
    assert.equal(b.sfuSessions('r2'), null);
    assert.deepEqual(b.rooms, ['r1']);
    const closed = waitEvent(a, 'roomEvent', (e) => e.event === 'room_closed');
    srv.event('alice', { event: 'room_closed', room_id: 'r2', reason: 'idle' });
    await closed;
    assert.equal(a.sfuSessions('r2'), null);

    /* bob's connection drops; the server does not resume: rooms are left (tracks in participant_left) */
    srv.resume = false;
    const old = b.sfuSessions('r1');
    const back = waitEvent(b, 'reconnected');
    srv.dropClient('bob');
    /* (the fake releases the dropped session when the new REGISTER takes the client id over) */
    const ev = await back;
    assert.equal(ev.resumed, false);
    assert.deepEqual(ev.rooms, ['r1']);
    const ack = ev.roomAcks.r1;
    assert.equal(ack.room_id, 'r1');
    assert.equal(ack.publish, undefined, 'a rejoin carries no offer: subscribe only');
    assert.equal(typeof ack.subscribe.session_id, 'string');
    assert.notEqual(ack.subscribe.session_id, old.subscribe);
    assert.deepEqual(b.sfuSessions('r1'), { publish: null, subscribe: ack.subscribe.session_id });
    const pl = await left;
    assert.deepEqual(pl.tracks, [{ session_id: jb.publish.session_id, track_name: 'audio-0' }]);
});
