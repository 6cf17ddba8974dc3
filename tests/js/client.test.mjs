/*
 * SDK client against the fake server (support/fake-server.mjs): connect,
 * register, rooms, signals, typed errors, timeouts, heartbeat, reconnect with
 * resume and its fallback, backoff.  Every wait is bounded; no fixed sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import {
    SignalManagerClient, SignalManagerError, RequestTimeoutError, MessageType, ClientState, Emitter,
} from '../../lib/js/signal-manager.js';
import { startFakeServer, waitEvent, recordEvents, T, frame } from './support/fake-server.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('../../node_modules/ws');

const TEST_TIMEOUT = 10000;

function makeClient(t, srv, opts = {}) {
    const c = new SignalManagerClient({
        url: srv.url, clientId: 'test_client_1', authToken: 'test_token_1', WebSocket,
        requestTimeout: 3000, reconnectBaseDelay: 10, reconnectMaxDelay: 40, ...opts,
    });
    t.after(() => c.disconnect().catch(() => {}));
    return c;
}

async function server(t, opts) {
    const srv = await startFakeServer(opts);
    t.after(() => srv.close());
    return srv;
}

async function rejectsWith(promise, check) {
    try {
        await promise;
    } catch (err) {
        check(err);
        return err;
    }
    assert.fail('expected a rejection');
}

test('connect sends CONNECT with credentials, version, capabilities, metadata; resolves with the ACK',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const c = makeClient(t, srv, { metadata: { app: 'test' } });
        const states = recordEvents(c, ['state']).state;
        assert.equal(c.state, 'disconnected');
        const ack = await c.connect();
        assert.equal(ack.status, 200);
        assert.equal(typeof ack.session_id, 'string');
        assert.equal(c.sessionId, ack.session_id);
        assert.equal(c.state, ClientState.CONNECTED);
        assert.equal(c.resumeToken, ack.resume_token);
        const f = srv.framesOf(T.CONNECT)[0];
        assert.equal(f.payloadType, 2);
        assert.equal(f.json.client_id, 'test_client_1');
        assert.equal(f.json.auth_token, 'test_token_1');
        assert.equal(f.json.version, '1.0.0');
        assert.deepEqual(f.json.capabilities, ['websocket', 'heartbeat', 'webrtc']);
        assert.equal(f.json.metadata.app, 'test');
        assert.equal(typeof f.json.metadata.timestamp, 'number');
        assert.equal(f.json.resume_token, undefined, 'first CONNECT carries no resume token');
        assert.deepEqual(states.map((s) => s.state), ['connecting', 'connected']);
        await assert.rejects(c.connect(), (err) => err.errorCode === 409 && err.local);
    });

test('register / unregister, with the reply matched by uuid', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv);
    await c.connect();
    const ack = await c.register({ metadata: { features: ['video'] } });
    assert.equal(ack.status, 200);
    assert.equal(ack.client_id, 'test_client_1');
    assert.equal(c.state, 'registered');
    assert.equal(c.registered, true);
    const reg = srv.framesOf(T.REGISTER)[0];
    assert.deepEqual(
        { v: reg.json.version, id: reg.json.client_id, tok: reg.json.auth_token, md: reg.json.metadata },
        { v: '1.0.0', id: 'test_client_1', tok: 'test_token_1', md: { features: ['video'] } });
    const un = await c.unregister();
    assert.equal(un.status, 200);
    assert.equal(c.state, 'connected');
    assert.equal(srv.framesOf(T.UNREGISTER)[0].json.auth_token, 'test_token_1');
});

test('authToken may be a function (fresh token per request)', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    let calls = 0;
    const c = makeClient(t, srv, { authToken: async () => { calls++; return 'test_token_1'; } });
    await c.connect();
    await c.register();
    assert.equal(calls, 2);
});

test('ERROR replies reject with typed SignalManagerError', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const bad = makeClient(t, srv, { authToken: 'wrong' });
    const err = await rejectsWith(bad.connect(), (e) => {
        assert.ok(e instanceof SignalManagerError);
        assert.equal(e.errorCode, 401);
        assert.equal(e.message, 'invalid credentials');
        assert.equal(e.local, false);
        assert.equal(e.requestType, 'CONNECT');
        assert.equal(e.details.client_id, 'test_client_1');
    });
    assert.equal(err.uuid, srv.framesOf(T.CONNECT)[0].uuid, 'the error carries the request uuid');
    assert.equal(bad.state, 'disconnected');

    const c = makeClient(t, srv);
    await c.connect();
    await rejectsWith(c.joinRoom('r1'), (e) => {
        assert.equal(e.errorCode, 401);
        assert.equal(e.message, 'client not registered');
    });
    await c.register();
    await rejectsWith(c.register(), (e) => assert.equal(e.errorCode, 409));
    await rejectsWith(c.joinRoom('no-such-room'), (e) => {
        assert.equal(e.errorCode, 404);
        assert.equal(e.requestType, 'ROOM_JOIN');
    });
    assert.equal(c.state, 'registered', 'errors do not change the state');
});

test('invalid arguments are rejected locally (400) without sending', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv);
    await c.connect();
    await c.register();
    const before = srv.frames.length;
    for (const p of [c.joinRoom('has space'), c.createRoom({ roomId: 'x/y' }), c.signal('', 'offer', {}),
        c.signal('ok', '', {}), c.signalBinary('bad id', new Uint8Array(1))])
        await rejectsWith(p, (e) => assert.equal(e.errorCode, 400));
    await rejectsWith(c.signal('test_client_2', 'big', 'x'.repeat(70000)), (e) => assert.equal(e.errorCode, 413));
    assert.equal(srv.frames.length, before);
    assert.throws(() => new SignalManagerClient({ url: srv.url, clientId: 'a b', authToken: 't', WebSocket }),
        TypeError);
    assert.throws(() => new SignalManagerClient({ url: srv.url, clientId: 'a', authToken: 't' }), /WebSocket/);
});

test('request timeout rejects with RequestTimeoutError (408, local)', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv, { requestTimeout: 150, connectTimeout: 5000 });
    await c.connect();
    srv.swallow = (f) => f.type === T.REGISTER;
    const started = Date.now();
    const err = await rejectsWith(c.register(), (e) => {
        assert.ok(e instanceof RequestTimeoutError);
        assert.ok(e instanceof SignalManagerError);
        assert.equal(e.errorCode, 408);
        assert.equal(e.local, true);
        assert.equal(e.requestType, 'REGISTER');
    });
    assert.ok(Date.now() - started >= 140);
    assert.equal(err.uuid, srv.framesOf(T.REGISTER)[0].uuid);
    assert.equal(c.state, 'connected');
    /* a late reply is ignored */
    srv.send(srv.framesOf(T.REGISTER)[0].conn, T.REGISTER_ACK, err.uuid, { status: 200 });
    srv.swallow = null;
    await c.ping();
    assert.equal(c.state, 'connected');
});

test('connect to a closed port rejects with 503 and does not retry', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await startFakeServer();
    const url = srv.url;
    await srv.close();
    const c = new SignalManagerClient({ url, clientId: 'a', authToken: 'a', WebSocket, requestTimeout: 1000 });
    const ev = recordEvents(c, ['reconnecting', 'disconnect']);
    await rejectsWith(c.connect(), (e) => {
        assert.equal(e.errorCode, 503);
        assert.equal(e.local, true);
    });
    assert.equal(c.state, 'disconnected');
    assert.equal(ev.reconnecting.length, 0);
    assert.equal(ev.disconnect.length, 0);
});

test('heartbeat: PINGs with a timestamp at the configured interval', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t, { heartbeatInterval: 1 });
    const c = makeClient(t, srv, { heartbeatInterval: 30 });
    const t0 = Date.now();
    await c.connect();
    await srv.waitFrame(() => srv.framesOf(T.PING).length >= 3, 3000, 'three PINGs');
    const pings = srv.framesOf(T.PING);
    for (const p of pings) {
        assert.equal(typeof p.json.timestamp, 'number');
        assert.ok(p.json.timestamp >= t0);
    }
    assert.equal(c.state, 'connected');
    const r = await c.ping();
    assert.equal(typeof r.serverTime, 'number');
    assert.ok(r.rtt >= 0);
});

test('heartbeat interval defaults to the server\'s heartbeat_interval', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t, { heartbeatInterval: 1 });
    const c = makeClient(t, srv);
    await c.connect();
    const started = Date.now();
    await srv.waitFrame((f) => f.type === T.PING, 3000, 'a PING after ~1 s');
    assert.ok(Date.now() - started >= 900, 'first PING after heartbeat_interval seconds');
});

test('heartbeat: a server heartbeat_interval too large for a timer falls back to 30 s', { timeout: TEST_TIMEOUT }, async (t) => {
    /* 1e7 s is past setInterval's limit (2^31-1 ms): such a timer fires every
     * millisecond, which would be a PING storm. */
    const srv = await server(t, { heartbeatInterval: 1e7 });
    const delays = [];
    const realSetInterval = globalThis.setInterval;
    globalThis.setInterval = (fn, ms, ...args) => {
        delays.push(ms);
        return realSetInterval(fn, ms, ...args);
    };
    t.after(() => { globalThis.setInterval = realSetInterval; });
    const c = makeClient(t, srv);
    await c.connect();
    globalThis.setInterval = realSetInterval;
    assert.ok(delays.includes(30000), `heartbeat timer delays: ${delays}`);
    assert.ok(delays.every((ms) => ms <= 0x7fffffff), `heartbeat timer delays: ${delays}`);
});

test('missing PING_ACK: the connection is declared dead and resumed', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv, { heartbeatInterval: 40, heartbeatTimeout: 100 });
    await c.connect();
    await c.register();
    const token = c.resumeToken;
    srv.answerPings = false;
    const disc = await waitEvent(c, 'disconnect', (e) => e.source === 'close');
    assert.equal(disc.willReconnect, true);
    assert.equal(disc.final, false);
    assert.match(disc.reason, /heartbeat/);
    srv.answerPings = true;
    const rec = await waitEvent(c, 'reconnected');
    assert.equal(rec.resumed, true);
    const connects = srv.framesOf(T.CONNECT);
    assert.equal(connects.length, 2);
    assert.equal(connects[1].json.resume_token, token);
    assert.equal(c.state, 'registered');
});

test('reconnect with resume_token: resumed true keeps registration and rooms without re-sending',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const c = makeClient(t, srv);
        const ev = recordEvents(c, ['reconnecting', 'reconnected', 'disconnect', 'state']);
        await c.connect();
        await c.register();
        await c.createRoom({ roomId: 'room-a' });
        const token = c.resumeToken;
        const session = c.sessionId;
        srv.dropAll();
        const rec = await waitEvent(c, 'reconnected');
        assert.equal(rec.resumed, true);
        assert.equal(rec.registered, true);
        assert.deepEqual(rec.rooms, ['room-a']);
        assert.equal(rec.attempts, 1);
        const connects = srv.framesOf(T.CONNECT);
        assert.equal(connects.length, 2);
        assert.equal(connects[1].json.resume_token, token);
        assert.equal(srv.framesOf(T.REGISTER).length, 1, 'no REGISTER after a resume');
        assert.equal(srv.framesOf(T.ROOM_JOIN).length, 0, 'no ROOM_JOIN after a resume');
        assert.equal(c.sessionId, session, 'the fake keeps the session id on resume');
        assert.notEqual(c.resumeToken, token, 'the new ACK\'s token replaces the old');
        assert.equal(c.state, 'registered');
        assert.deepEqual(c.rooms, ['room-a']);
        assert.equal(ev.disconnect.length, 1);
        assert.equal(ev.disconnect[0].code, 1006);
        assert.equal(ev.disconnect[0].willReconnect, true);
        assert.equal(ev.reconnecting.length, 1);
        assert.deepEqual(ev.state.map((s) => s.state),
            ['connecting', 'connected', 'registered', 'reconnecting', 'registered']);
        /* the resumed session works */
        await c.leaveRoom('room-a');
        assert.deepEqual(c.rooms, []);
    });

test('reconnect with resumed:false falls back to REGISTER and rejoins rooms', { timeout: TEST_TIMEOUT },
    async (t) => {
        const srv = await server(t);
        const other = makeClient(t, srv, { clientId: 'test_client_2', authToken: 'test_token_2' });
        await other.connect();
        await other.register();
        await other.createRoom({ roomId: 'room-b' });

        const c = makeClient(t, srv);
        await c.connect();
        await c.register({ metadata: { m: 1 }, capabilities: ['x'] });
        await c.joinRoom('room-b', { metadata: { seat: 2 } });
        await c.createRoom({ roomId: 'room-c' });
        srv.resume = false;
        const otherBack = waitEvent(other, 'reconnected', () => true, 5000);
        srv.dropAll(); /* drops `other` too: it resumes (server says false) and re-creates its room */
        const rec = await waitEvent(c, 'reconnected');
        assert.equal(rec.resumed, false);
        assert.equal(rec.registered, true);
        assert.equal(c.state, 'registered');
        const regs = srv.framesOf(T.REGISTER).filter((f) => f.json.client_id === 'test_client_1');
        assert.equal(regs.length, 2);
        assert.deepEqual(regs[1].json.metadata, { m: 1 });
        assert.deepEqual(regs[1].json.capabilities, ['x']);
        assert.equal(regs[1].conn, srv.framesOf(T.CONNECT).filter((f) => f.json.client_id === 'test_client_1')[1].conn);
        assert.deepEqual([...rec.rooms].sort(), ['room-b', 'room-c']);
        assert.deepEqual(rec.failedRooms, []);
        assert.deepEqual(c.rooms.sort(), ['room-b', 'room-c']);
        await otherBack;
        /* both members are back in room-b on the fake */
        assert.deepEqual([...srv.rooms.get('room-b')].sort(), ['test_client_1', 'test_client_2']);
    });

test('fallback: a room that no longer exists is re-created (recreateRooms)', { timeout: TEST_TIMEOUT },
    async (t) => {
        const srv = await server(t);
        const c = makeClient(t, srv);
        await c.connect();
        await c.register();
        await c.createRoom({ roomId: 'solo', metadata: { k: 'v' } });
        srv.resume = false;
        srv.dropAll();
        /* The server forgets the room as if the resume window had passed. */
        srv.rooms.clear();
        const rec = await waitEvent(c, 'reconnected');
        assert.deepEqual(rec.rooms, ['solo']);
        const joins = srv.framesOf(T.ROOM_JOIN);
        assert.equal(joins.length, 1);
        const creates = srv.framesOf(T.ROOM_CREATE);
        assert.equal(creates.length, 2);
        assert.deepEqual(creates[1].json.metadata, { k: 'v' });
        assert.ok(srv.rooms.has('solo'));
    });

test('fallback: REGISTER refused after reconnect is reported, client stays connected',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const c = makeClient(t, srv);
        await c.connect();
        await c.register();
        await c.createRoom({ roomId: 'r' });
        srv.resume = false;
        srv.swallow = null;
        const errors = recordEvents(c, ['error']).error;
        srv.dropAll();
        /* Another live session takes the client_id before the reconnect REGISTERs. */
        srv.registry.get('test_client_1').conn = { ws: { readyState: 3 } };
        const rec = await waitEvent(c, 'reconnected');
        assert.equal(rec.resumed, false);
        assert.equal(rec.registered, false);
        assert.equal(rec.registerError.errorCode, 409);
        assert.deepEqual(rec.failedRooms.map((f) => f.roomId), ['r']);
        assert.equal(c.state, 'connected');
        assert.equal(c.registered, false);
        assert.ok(errors.some((e) => e.errorCode === 409 && e.context.kind === 'reregister'));
    });

test('backoff: 5 attempts with growing delays, then a final disconnect', { timeout: TEST_TIMEOUT },
    async (t) => {
        const srv = await server(t);
        const c = makeClient(t, srv, { reconnectBaseDelay: 20, reconnectMaxDelay: 200, reconnectJitter: 0 });
        const ev = recordEvents(c, ['reconnecting', 'reconnected', 'disconnect']);
        await c.connect();
        await c.register();
        srv.refuse = true;
        const before = srv.connectionCount;
        srv.dropAll();
        const fin = await waitEvent(c, 'disconnect', (e) => e.final === true, 5000);
        assert.equal(fin.attempts, 5);
        assert.equal(fin.willReconnect, false);
        assert.ok(fin.error instanceof SignalManagerError);
        assert.deepEqual(ev.reconnecting.map((e) => e.attempt), [1, 2, 3, 4, 5]);
        assert.deepEqual(ev.reconnecting.map((e) => e.delay), [20, 40, 80, 160, 200]);
        assert.equal(ev.reconnecting[0].maxAttempts, 5);
        assert.equal(srv.connectionCount - before, 5, 'five connection attempts');
        assert.equal(ev.reconnected.length, 0);
        assert.equal(c.state, 'disconnected');
        assert.equal(c.registered, false);
        /* calls now fail at once */
        await rejectsWith(c.ping(), (e) => assert.equal(e.errorCode, 503));
    });

test('backoff delays have jitter within [d*(1-j), d]', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv, { reconnectBaseDelay: 100, reconnectMaxDelay: 1000, reconnectJitter: 0.5 });
    for (let a = 1; a <= 6; a++) {
        const d = Math.min(1000, 100 * 2 ** (a - 1));
        for (let i = 0; i < 20; i++) {
            const v = c._backoffDelay(a);
            assert.ok(v >= d * 0.5 - 1 && v <= d, `attempt ${a}: ${v} not in [${d / 2}, ${d}]`);
        }
    }
});

test('a reconnect that eventually succeeds resets after success', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv, { reconnectBaseDelay: 20, reconnectJitter: 0 });
    await c.connect();
    srv.refuse = true;
    const off = c.on('reconnecting', (e) => {
        if (e.attempt === 3)
            srv.refuse = false;
    });
    srv.dropAll();
    const rec = await waitEvent(c, 'reconnected');
    off();
    assert.equal(rec.attempts, 3);
    assert.equal(c.state, 'connected');
});

test('no reconnect after disconnect(), notice reconnect:false, or close codes 1008/1003/1009/4409',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        /* disconnect(): DISCONNECT sent, close awaited */
        const a = makeClient(t, srv);
        const evA = recordEvents(a, ['disconnect', 'reconnecting']);
        await a.connect();
        await a.register();
        const info = await a.disconnect('bye');
        assert.equal(info.code, 1000);
        const d = srv.framesOf(T.DISCONNECT)[0];
        assert.deepEqual(d.json, { reason: 'bye' });
        assert.equal(a.state, 'disconnected');
        assert.equal(evA.reconnecting.length, 0);
        assert.equal(evA.disconnect.length, 1);
        assert.equal(evA.disconnect[0].final, true);
        assert.equal(evA.disconnect[0].requested, true);
        assert.equal(a.resumeToken, null);

        /* notice reconnect:false, then 1008 */
        const b = makeClient(t, srv);
        const evB = recordEvents(b, ['disconnect', 'reconnecting']);
        await b.connect();
        srv.closeAll(1008, { reason: 'too many malformed frames', code: 1008, reconnect: false });
        const fin = await waitEvent(b, 'disconnect', (e) => e.source === 'close');
        assert.deepEqual(evB.disconnect[0], { source: 'notice', reason: 'too many malformed frames', code: 1008,
            reconnect: false });
        assert.equal(fin.code, 1008);
        assert.equal(fin.final, true);
        assert.deepEqual(fin.notice, { reason: 'too many malformed frames', code: 1008, reconnect: false });
        assert.equal(b.state, 'disconnected');
        assert.equal(evB.reconnecting.length, 0);

        for (const code of [1003, 1009, 4409, 1002]) {
            const c = makeClient(t, srv);
            const ev = recordEvents(c, ['reconnecting']);
            await c.connect();
            srv.closeAll(code);
            const e = await waitEvent(c, 'disconnect', (x) => x.source === 'close');
            assert.equal(e.code, code);
            assert.equal(e.final, true, `code ${code}`);
            assert.equal(ev.reconnecting.length, 0);
        }

        /* a notice with reconnect:true before 1001 (drain) does reconnect */
        const r = makeClient(t, srv);
        await r.connect();
        srv.closeAll(1001, { reason: 'server shutting down', code: 1001, reconnect: true });
        const rec = await waitEvent(r, 'reconnected');
        assert.equal(rec.resumed, false, 'a clean close releases the session on the fake');
    });

test('reconnect:false option disables reconnects', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv, { reconnect: false });
    await c.connect();
    srv.dropAll();
    const e = await waitEvent(c, 'disconnect');
    assert.equal(e.final, true);
    assert.equal(c.state, 'disconnected');
});

test('replaced by a resumed connection: 4409 ends the old client without reconnect',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const a = makeClient(t, srv);
        await a.connect();
        await a.register();
        /* a second connection presents a's resume token (a half-open takeover) */
        const ws = new WebSocket(srv.url);
        t.after(() => ws.terminate());
        await new Promise((resolve) => ws.once('open', resolve));
        const notice = waitEvent(a, 'disconnect', (e) => e.source === 'notice');
        ws.send(frame(T.CONNECT, '00000000-0000-4000-8000-000000000001', {
            client_id: 'test_client_1', auth_token: 'test_token_1', version: '1.0.0', resume_token: a.resumeToken,
        }));
        const n = await notice;
        assert.deepEqual(n, { source: 'notice', reason: 'replaced', code: 4409, reconnect: false });
        const fin = await waitEvent(a, 'disconnect', (e) => e.source === 'close');
        assert.equal(fin.code, 4409);
        assert.equal(fin.final, true);
        assert.equal(a.state, 'disconnected');
    });

test('signal events: JSON and binary, both ways, with room id', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const a = makeClient(t, srv);
    const b = makeClient(t, srv, { clientId: 'test_client_2', authToken: 'test_token_2' });
    for (const c of [a, b]) {
        await c.connect();
        await c.register();
    }
    await a.createRoom({ roomId: 'call' });
    const joined = waitEvent(a, 'roomEvent', (e) => e.event === 'participant_joined');
    const jack = await b.joinRoom('call');
    assert.deepEqual(jack.participants.sort(), ['test_client_1', 'test_client_2']);
    const je = await joined;
    assert.deepEqual(je, { event: 'participant_joined', room_id: 'call', client_id: 'test_client_2' });

    const got = waitEvent(a, 'signal');
    const uuid = await b.signal('test_client_1', 'offer', { type: 'offer', sdp: 'v=0\r\n' }, { roomId: 'call' });
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    const s = await got;
    assert.equal(s.binary, false);
    assert.equal(s.from, 'test_client_2');
    assert.equal(s.type, 'offer');
    assert.equal(s.roomId, 'call');
    assert.deepEqual(s.data, { type: 'offer', sdp: 'v=0\r\n' });
    const sent = srv.frames.find((f) => f.uuid === uuid);
    assert.deepEqual(sent.json, { target_client_id: 'test_client_1', type: 'offer', room_id: 'call',
        data: { type: 'offer', sdp: 'v=0\r\n' } });

    const gotBin = waitEvent(b, 'signal', (e) => e.binary);
    await a.signalBinary('test_client_2', new Uint8Array([0, 1, 2, 250]));
    const bin = await gotBin;
    assert.equal(bin.from, 'test_client_1');
    assert.deepEqual([...bin.bytes], [0, 1, 2, 250]);
    const raw = srv.framesOf(T.SIGNAL).find((f) => f.payloadType === 1);
    assert.equal(raw.payload[0], 13);
    assert.equal(raw.payload.subarray(1, 14).toString(), 'test_client_2');

    /* order is kept */
    const seen = [];
    const all = new Promise((resolve) => {
        const off = b.on('signal', (e) => {
            if (e.type === 'candidate') {
                seen.push(e.data.n);
                if (seen.length === 20) {
                    off();
                    resolve();
                }
            }
        });
    });
    for (let n = 0; n < 20; n++)
        a.signal('test_client_2', 'candidate', { n });
    await all;
    assert.deepEqual(seen, [...Array(20).keys()]);

    const left = waitEvent(a, 'roomEvent', (e) => e.event === 'participant_left');
    await b.leaveRoom('call');
    assert.equal((await left).client_id, 'test_client_2');
});

test('signal to an unknown target resolves, then emits a 404 error event with the uuid',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const a = makeClient(t, srv);
        await a.connect();
        await a.register();
        const errEv = waitEvent(a, 'error');
        const uuid = await a.signal('nobody', 'offer', { sdp: 'x' }, { roomId: 'r1' });
        const err = await errEv;
        assert.ok(err instanceof SignalManagerError);
        assert.equal(err.errorCode, 404);
        assert.equal(err.uuid, uuid);
        assert.equal(err.details.target_client_id, 'nobody');
        assert.equal(err.requestType, 'SIGNAL');
        assert.deepEqual(err.context, { kind: 'signal', targetClientId: 'nobody', type: 'offer', roomId: 'r1' });
        const errBin = waitEvent(a, 'error');
        const u2 = await a.signalBinary('nobody', new Uint8Array([1]));
        const e2 = await errBin;
        assert.equal(e2.uuid, u2);
        assert.equal(e2.context.binary, true);
        assert.equal(a.state, 'registered');
    });

test('requests made while reconnecting wait and are sent after the session is back',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const a = makeClient(t, srv, { reconnectBaseDelay: 50, reconnectJitter: 0 });
        const b = makeClient(t, srv, { clientId: 'test_client_2', authToken: 'test_token_2' });
        for (const c of [a, b]) {
            await c.connect();
            await c.register();
        }
        const reconnecting = waitEvent(a, 'reconnecting');
        srv.dropClient('test_client_1');
        await reconnecting;
        assert.equal(a.state, 'reconnecting');
        const got = waitEvent(b, 'signal', (e) => e.type === 'hello');
        const sent = a.signal('test_client_2', 'hello', 1);
        const pong = a.ping();
        await sent;
        await pong;
        assert.equal((await got).from, 'test_client_1');
        const connects = srv.framesOf(T.CONNECT).filter((f) => f.json.client_id === 'test_client_1');
        const hello = srv.framesOf(T.SIGNAL).find((f) => f.json?.type === 'hello');
        assert.equal(hello.conn, connects[connects.length - 1].conn);
    });

test('requests pending when the connection drops reject with 503', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv);
    await c.connect();
    srv.swallow = (f) => f.type === T.REGISTER;
    const p = c.register();
    await srv.waitFrame((f) => f.type === T.REGISTER);
    srv.dropAll();
    await rejectsWith(p, (e) => {
        assert.equal(e.errorCode, 503);
        assert.equal(e.local, true);
    });
    srv.swallow = null;
    await waitEvent(c, 'reconnected');
});

test('disconnect() during reconnect stops it', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv, { reconnectBaseDelay: 5000, reconnectMaxDelay: 5000, reconnectJitter: 0 });
    await c.connect();
    const r = waitEvent(c, 'reconnecting');
    srv.dropAll();
    await r;
    const before = srv.connectionCount;
    const fin = waitEvent(c, 'disconnect', (e) => e.final);
    await c.disconnect();
    await fin;
    assert.equal(c.state, 'disconnected');
    assert.equal(srv.connectionCount, before);
});

test('room_closed removes the room; text and malformed frames become error events',
    { timeout: TEST_TIMEOUT }, async (t) => {
        const srv = await server(t);
        const c = makeClient(t, srv);
        await c.connect();
        await c.register();
        await c.createRoom({ roomId: 'gone' });
        assert.deepEqual(c.rooms, ['gone']);
        const closed = waitEvent(c, 'roomEvent');
        srv.event('test_client_1', { event: 'room_closed', room_id: 'gone' });
        assert.equal((await closed).event, 'room_closed');
        assert.deepEqual(c.rooms, []);

        const conn = [...srv.conns][0];
        const e1 = waitEvent(c, 'error');
        conn.ws.send('a text message');
        assert.equal((await e1).reason, 'not-binary');
        const e2 = waitEvent(c, 'error');
        conn.ws.send(Buffer.from([0xab, 1, 2]));
        assert.equal((await e2).reason, 'too-short');
        const e3 = waitEvent(c, 'error');
        srv.send(conn, T.ERROR, '11111111-2222-4333-8444-555555555555',
            { error_code: 400, error_message: 'x', details: {} });
        const u = await e3;
        assert.equal(u.errorCode, 400);
        assert.equal(u.context.kind, 'unsolicited');
        assert.equal(c.state, 'registered');
    });

test('sessionUpdate and generic request correlate by uuid', { timeout: TEST_TIMEOUT }, async (t) => {
    const srv = await server(t);
    const c = makeClient(t, srv);
    await c.connect();
    await c.register();
    const ack = await c.sessionUpdate({ session_id: 'sfu-1', action: 'answer', answer_sdp: 'v=0' });
    assert.equal(ack.session_id, 'sfu-1');
    const f = srv.framesOf(T.SESSION_UPDATE)[0];
    assert.equal(f.json.version, '1.0.0');
    assert.equal(f.json.action, 'answer');
    const ack2 = await c.request(MessageType.PING, { timestamp: 5 });
    assert.equal(ack2.timestamp, 5);
});

test('a throwing listener does not disturb other listeners; its error is re-thrown later', () => {
    const em = new Emitter();
    const seen = [];
    em.on('x', () => {
        throw new Error('listener bug');
    });
    em.on('x', (v) => seen.push(v));
    const orig = globalThis.setTimeout;
    const deferred = [];
    globalThis.setTimeout = (fn) => {
        deferred.push(fn);
        return 0;
    };
    try {
        em.emit('x', 7);
    } finally {
        globalThis.setTimeout = orig;
    }
    assert.deepEqual(seen, [7]);
    assert.equal(deferred.length, 1);
    assert.throws(deferred[0], /listener bug/);
    const off = em.on('y', (v) => seen.push(v));
    em.once('y', (v) => seen.push(-v));
    em.emit('y', 1);
    off();
    em.emit('y', 2);
    assert.deepEqual(seen, [7, 1, -1]);
    assert.equal(em.listenerCount('y'), 0);
});

test('message data as Node Buffers or fragments (binaryType ignored) is handled', { timeout: TEST_TIMEOUT },
    async (t) => {
        for (const forced of ['nodebuffer', 'fragments']) {
            class ForcedWS extends WebSocket {
                set binaryType(_v) {
                    super.binaryType = forced;
                }

                get binaryType() {
                    return super.binaryType;
                }
            }
            const srv = await server(t);
            const a = makeClient(t, srv, { WebSocket: ForcedWS });
            const b = makeClient(t, srv, { clientId: 'test_client_2', authToken: 'test_token_2' });
            await a.connect();
            await a.register();
            await b.connect();
            await b.register();
            const got = waitEvent(a, 'signal', (e) => e.binary);
            await b.signalBinary('test_client_1', new Uint8Array([7, 8]));
            assert.deepEqual([...(await got).bytes], [7, 8], forced);
        }
    });

test('without terminate() (browser WebSocket) a dead connection is closed and the reconnect registers again',
    { timeout: TEST_TIMEOUT }, async (t) => {
        class BrowserLikeWS extends WebSocket {
            get terminate() {
                return undefined;
            }
        }
        const srv = await server(t);
        const c = makeClient(t, srv, { WebSocket: BrowserLikeWS, heartbeatInterval: 40, heartbeatTimeout: 100 });
        await c.connect();
        await c.register({ metadata: { k: 1 } });
        await c.createRoom({ roomId: 'kept' });
        srv.answerPings = false;
        const rec = waitEvent(c, 'reconnected');
        await waitEvent(c, 'disconnect', (e) => e.source === 'close');
        srv.answerPings = true;
        const r = await rec;
        /* the close frame reached the fake, which released the session: no resume */
        assert.equal(r.resumed, false);
        assert.equal(r.registered, true);
        assert.deepEqual(r.rooms, ['kept']);
        assert.equal(srv.framesOf(T.REGISTER).length, 2);
        assert.equal(c.state, 'registered');
    });
