'use strict';
/* Resume after a dropped connection (DECISIONS.md §3 "Resume after a dropped connection"). */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, P, UUID_RE, until, expectError, describe: desc } = require('./lib/client');
const { registerEventually } = require('./lib/util');
const {
    cid, tok, keysEnv, registered, created, joined, leaveRoom, joinRoom, roomEvent, eventsSeen, roundTrip, sqliteRows,
} = require('./lib/rooms');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };
const TOKEN_RE = /^[0-9a-f]{32}$/;

function env(extra = {}, n = 4)
{
    return { ...MEM, ...keysEnv(n), ...extra };
}

const isSignal = (f) => f.type === T.SIGNAL;

/* Wait until the server has handled the drop of client i (detach log line). */
function detached(srv, i, timeoutMs = 3000)
{
    return srv.waitLog((l) => /detached/.test(l.msg) && l.client_id === cid(i), timeoutMs, `the detach of ${cid(i)}`);
}

/* Open a connection for client i and CONNECT with a resume token; returns the client. */
async function reconnect(srv, i, token)
{
    const extra = token === undefined ? {} : { resume_token: token };
    return srv.connect(cid(i), tok(i), extra);
}

function resumeOf(c)
{
    return { resumed: c.connectAck.json.resumed, session_id: c.connectAck.json.session_id };
}

/*
 * Barrier for "no event about X reached `watcher`": another member `clock` of the
 * room drops after X's window would have started, so its participant_left (after
 * the same window) comes later than any event about X could.
 */
async function waitPastWindow(srv, clock, clockIndex, watcher, room)
{
    clock.terminate();
    await detached(srv, clockIndex);
    await roomEvent(watcher, 'participant_left', { room_id: room, client_id: cid(clockIndex) }, 5000);
    await roundTrip(watcher);
}

test('CONNECT_ACK carries resume_token (32 hex) and resumed:false; tokens differ per connection', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await srv.connect(cid(1), tok(1));
    const b = await srv.connect(cid(1), tok(1));
    for (const c of [a, b]) {
        assert.match(c.connectAck.json.resume_token, TOKEN_RE, desc(c.connectAck));
        assert.equal(c.connectAck.json.resumed, false);
    }
    assert.notEqual(a.connectAck.json.resume_token, b.connectAck.json.resume_token);
});

for (const [how, drop] of [['FIN (terminate)', (c) => c.terminate()], ['RST (reset)', (c) => c.reset()]]) {
    test(`resume after an abrupt drop by ${how}: same session, registration and rooms kept, no events`, opts, async (t) => {
        const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '1500ms' }) });
        const [a, b, d] = await Promise.all([1, 2, 4].map((i) => registered(srv, i)));
        const sessionId = a.connectAck.json.session_id;
        const token = a.connectAck.json.resume_token;
        await created(a, 'r1');
        await created(b, 'r2');
        await joined(b, 'r1');
        await joined(a, 'r2');
        await joined(d, 'r1');
        /* the join events are sent after the ACKs: let them arrive before the mark */
        await roomEvent(b, 'participant_joined', { room_id: 'r2', client_id: cid(1) });
        await roomEvent(b, 'participant_joined', { room_id: 'r1', client_id: cid(4) });
        const mark = b.seen.length;      /* events to b from here on are checked */
        drop(a);
        await detached(srv, 1);
        /* detached: SIGNALs to it get 404 */
        expectError(await b.request(T.SIGNAL, { target_client_id: cid(1), type: 'offer', data: {} }), 404);

        const a2 = await reconnect(srv, 1, token);
        const ack = a2.connectAck.json;
        assert.equal(ack.status, 200);
        assert.equal(ack.resumed, true, desc(a2.connectAck));
        assert.equal(ack.session_id, sessionId, 'the same session_id');
        assert.match(ack.resume_token, TOKEN_RE);
        assert.notEqual(ack.resume_token, token, 'a fresh token for the new connection');

        /* registration kept: REGISTER is 409 "already registered", SIGNALs reach the new connection */
        expectError(await a2.register(), 409);
        b.send(T.SIGNAL, { target_client_id: cid(1), type: 'offer', data: { n: 1 } });
        const s = await a2.next(isSignal, 3000, 'SIGNAL to the resumed connection');
        assert.equal(s.json.from_client_id, cid(2));
        a2.send(T.SIGNAL, { target_client_id: cid(2), type: 'answer', data: { n: 2 } });
        assert.equal((await b.next(isSignal, 3000, 'SIGNAL from the resumed connection')).json.from_client_id, cid(1));

        /* rooms kept: a is still listed and still a member of both */
        const c = await registered(srv, 3);
        assert.deepEqual((await joined(c, 'r1')).json.participants, [cid(1), cid(2), cid(4), cid(3)]);
        expectError(await joinRoom(a2, 'r1'), 409);
        expectError(await joinRoom(a2, 'r2'), 409);

        /* no participant_left / participant_joined about a, even after the window */
        await waitPastWindow(srv, d, 4, b, 'r1');
        for (const [x, from] of [[b, mark], [c, 0]]) {
            const about = x.seen.slice(from).filter((f) => f.type === T.ROOM_EVENT && f.json.client_id === cid(1));
            assert.deepEqual(about.map(desc), [], `${x.clientId} heard about ${cid(1)}`);
        }
        /* the membership really moved: a leave from the new connection is seen by the others */
        const l = await a2.request(T.ROOM_LEAVE, { version: '1.0.0', client_id: cid(1), room_id: 'r2' });
        assert.equal(l.type, T.ROOM_LEAVE_ACK, desc(l));
        await roomEvent(b, 'participant_left', { room_id: 'r2', client_id: cid(1) });
        /* the used token is spent: presenting it again gives a fresh session */
        const a3 = await reconnect(srv, 1, token);
        assert.equal(a3.connectAck.json.resumed, false);
        assert.notEqual(a3.connectAck.json.session_id, sessionId);
        assert.ok(a2.isOpen, 'a failed resume does not touch the holder');
    });
}

test('half-open takeover: the old connection gets DISCONNECT "replaced" and close 4409', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '1s' }) });
    const [a, b, d] = await Promise.all([1, 2, 4].map((i) => registered(srv, i)));
    await created(a, 'r');
    await joined(b, 'r');
    await joined(d, 'r');
    const sessionId = a.connectAck.json.session_id;
    await roomEvent(b, 'participant_joined', { room_id: 'r', client_id: cid(4) });
    const mark = b.seen.length;
    /* a is never closed by us: it looks alive to the server */
    const a2 = await reconnect(srv, 1, a.connectAck.json.resume_token);
    assert.equal(a2.connectAck.json.resumed, true, desc(a2.connectAck));
    assert.equal(a2.connectAck.json.session_id, sessionId);

    const notice = await a.next((f) => f.type === T.DISCONNECT, 3000, 'the DISCONNECT notice on the old connection');
    assert.equal(notice.payloadType, P.JSON);
    assert.match(notice.uuid, UUID_RE);
    assert.equal(notice.json.reason, 'replaced');
    assert.equal(notice.json.reconnect, false);
    if (notice.json.code !== undefined) assert.equal(notice.json.code, 4409);
    assert.equal((await a.waitClose(3000)).code, 4409);
    assert.ok(a2.isOpen, 'the new connection stays open');

    /* everything moved to a2; the others saw nothing */
    b.send(T.SIGNAL, { target_client_id: cid(1), type: 'offer', data: {} });
    assert.equal((await a2.next(isSignal, 3000, 'SIGNAL to the new connection')).json.from_client_id, cid(2));
    expectError(await a2.register(), 409);
    await waitPastWindow(srv, d, 4, b, 'r');
    const about = b.seen.slice(mark).filter((f) => f.type === T.ROOM_EVENT && f.json.client_id === cid(1));
    assert.deepEqual(about.map(desc), [], `b heard about ${cid(1)}`);
    const c = await registered(srv, 3);
    assert.deepEqual((await joined(c, 'r')).json.participants, [cid(1), cid(2), cid(3)]);
    assert.equal(a.seen.filter(isSignal).length, 0, 'nothing relayed to the replaced connection');
});

test('a wrong, malformed or another client\'s token -> resumed:false, a fresh session (not an error)', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '10s' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    await joined(b, 'r');
    const token = a.connectAck.json.resume_token;
    a.terminate();
    await detached(srv, 1);
    const flipped = (token[0] === '0' ? '1' : '0') + token.slice(1);
    for (const bad of [flipped, '0'.repeat(32), token.slice(0, 30), `${token}00`, 'zz'.repeat(16), '', b.connectAck.json.resume_token]) {
        const x = await reconnect(srv, 1, bad);
        assert.equal(x.connectAck.type, T.CONNECT_ACK);
        assert.equal(x.connectAck.json.resumed, false, `token ${JSON.stringify(bad)}: ${desc(x.connectAck)}`);
        assert.notEqual(x.connectAck.json.session_id, a.connectAck.json.session_id);
        /* only CONNECTED: rooms are 401 */
        expectError(await joinRoom(x, 'r'), 401);
        x.close();
    }
    /* b presenting a's token as its own */
    const b2 = await reconnect(srv, 2, token);
    assert.equal(b2.connectAck.json.resumed, false);
    assert.ok(b.isOpen, 'b\'s live session is untouched');
    /* the detached session is untouched: the right token still resumes it */
    const a2 = await reconnect(srv, 1, token);
    assert.equal(a2.connectAck.json.resumed, true, desc(a2.connectAck));
    assert.equal(a2.connectAck.json.session_id, a.connectAck.json.session_id);
    await roundTrip(b);
    assert.equal(eventsSeen(b, 'participant_left').length, 0);
});

test('a resume_token of a client that was only CONNECTED (never registered) -> resumed:false', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await srv.connect(cid(1), tok(1));
    const token = a.connectAck.json.resume_token;
    a.terminate();
    const a2 = await reconnect(srv, 1, token);
    assert.equal(a2.connectAck.json.resumed, false);
    assert.equal((await a2.register()).type, T.REGISTER_ACK);
});

test('token after the window expired -> resumed:false; the registration was released and members told', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '500ms' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    await joined(b, 'r');
    const token = a.connectAck.json.resume_token;
    const t0 = Date.now();
    a.terminate();
    await roomEvent(b, 'participant_left', { room_id: 'r', client_id: cid(1) }, 5000);
    assert.ok(Date.now() - t0 >= 400, `participant_left after ${Date.now() - t0} ms`);
    await srv.waitLog((l) => l.msg === 'resume window over' && l.client_id === cid(1), 3000, 'the end of the window');
    const a2 = await reconnect(srv, 1, token);
    assert.equal(a2.connectAck.json.resumed, false, desc(a2.connectAck));
    assert.notEqual(a2.connectAck.json.session_id, a.connectAck.json.session_id);
    /* released: a fresh REGISTER works; a is in no room */
    assert.equal((await registerEventually(a2)).type, T.REGISTER_ACK);
    expectError(await leaveRoom(a2, 'r'), 404);
    b.send(T.SIGNAL, { target_client_id: cid(1), type: 'x', data: {} });
    await a2.next(isSignal, 3000, 'SIGNAL to the new registration');
});

const CLEAN_ENDS = {
    'a close frame': async (c) => {
        c.close(1000);
        await c.waitClose();
    },
    DISCONNECT: async (c) => {
        c.send(T.DISCONNECT, null);
        assert.equal((await c.waitClose()).code, 1000);
    },
    UNREGISTER: async (c) => {
        assert.equal((await c.unregister()).type, T.UNREGISTER_ACK);
        c.close(1000);
        await c.waitClose();
    },
};

for (const [how, end] of Object.entries(CLEAN_ENDS)) {
    test(`a clean end (${how}) releases at once: a resume afterwards gives resumed:false`, opts, async (t) => {
        const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '30s' }) });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        await created(a, 'r');
        await joined(b, 'r');
        const token = a.connectAck.json.resume_token;
        await end(a);
        await roomEvent(b, 'participant_left', { room_id: 'r', client_id: cid(1) }, 2000);
        const a2 = await reconnect(srv, 1, token);
        assert.equal(a2.connectAck.json.resumed, false, desc(a2.connectAck));
        assert.notEqual(a2.connectAck.json.session_id, a.connectAck.json.session_id);
        expectError(await joinRoom(a2, 'r'), 401);
        /* free for a plain REGISTER */
        assert.equal((await a2.register()).type, T.REGISTER_ACK);
        expectError(await leaveRoom(a2, 'r'), 404);
    });
}

test('a clean end with a slow store still releases at once: resume right after a DISCONNECT -> resumed:false', opts, async (t) => {
    const { lockDatabase } = require('./lib/sqlite_lock');
    const srv = await startServer(t, {
        env: {
            ...keysEnv(2), SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '30s',
            SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '300ms', SIGNAL_MANAGER_DATABASE_RETRY_ATTEMPTS: '3',
            SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL: '100',
        },
    });
    const a = await registered(srv, 1);
    const token = a.connectAck.json.resume_token;
    const lock = await lockDatabase(t, srv.storePath);
    a.send(T.DISCONNECT, null);
    assert.equal((await a.waitClose()).code, 1000);
    const a2 = await reconnect(srv, 1, token);
    const resumed = a2.connectAck.json.resumed;
    await lock.release();
    assert.equal(resumed, false, `a DISCONNECTed session was resumed while its store delete was pending: ${desc(a2.connectAck)}`);
});

test('after a clean end the client_id can REGISTER again at once (no 409); the store row is the new one', opts, async (t) => {
    const srv = await startServer(t, { env: { ...keysEnv(2), SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '30s' } });
    for (const end of Object.values(CLEAN_ENDS)) {
        const a = await registered(srv, 1);
        await end(a);
        const a2 = await srv.connect(cid(1), tok(1));
        const f = await a2.register();
        assert.equal(f.type, T.REGISTER_ACK, `REGISTER right after a clean end: ${desc(f)}`);
        const rows = await until(async () => {
            const r = await sqliteRows(srv.storePath, 'SELECT client_id, session_id FROM registrations');
            return r.length === 1 && r[0].session_id === a2.sessionId ? r : undefined;
        }, 3000, 'the registrations table to hold only the new session');
        assert.deepEqual(rows, [{ client_id: cid(1), session_id: a2.sessionId }]);
        a2.send(T.DISCONNECT, null);
        await a2.waitClose();
        await until(async () => (await sqliteRows(srv.storePath, 'SELECT count(*) AS n FROM registrations'))[0].n === 0 || undefined,
            3000, 'the registrations table to be empty');
    }
});

test('plain REGISTER over a detached holder takes the registration; the old rooms are left with events', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '30s' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r1');
    await created(b, 'r2');
    await joined(b, 'r1');
    await joined(a, 'r2');
    const token = a.connectAck.json.resume_token;
    a.terminate();
    await detached(srv, 1);
    const a2 = await srv.connect(cid(1), tok(1));
    const f = await a2.register();
    assert.equal(f.type, T.REGISTER_ACK, desc(f));
    assert.equal(f.json.session_id, a2.connectAck.json.session_id, 'the new session\'s own id');
    assert.notEqual(f.json.session_id, a.connectAck.json.session_id);
    /* the detached session's rooms are left, with events, long before the 30 s window */
    await roomEvent(b, 'participant_left', { room_id: 'r1', client_id: cid(1) }, 3000);
    await roomEvent(b, 'participant_left', { room_id: 'r2', client_id: cid(1) }, 3000);
    expectError(await leaveRoom(a2, 'r1'), 404);
    assert.deepEqual((await joined(a2, 'r1')).json.participants, [cid(2), cid(1)]);
    /* SIGNALs reach the new holder */
    b.send(T.SIGNAL, { target_client_id: cid(1), type: 'offer', data: {} });
    await a2.next(isSignal, 3000, 'SIGNAL to the new holder');
    /* the old token no longer resumes anything */
    const a3 = await reconnect(srv, 1, token);
    assert.equal(a3.connectAck.json.resumed, false);
    assert.ok(a2.isOpen);
});

test('REGISTER while the holder is live -> 409; the holder is untouched', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '30s' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    await joined(b, 'r');
    const a2 = await srv.connect(cid(1), tok(1));
    expectError(await a2.register(), 409);
    assert.ok(a.isOpen);
    b.send(T.SIGNAL, { target_client_id: cid(1), type: 'offer', data: {} });
    await a.next(isSignal, 3000, 'SIGNAL to the holder');
    await roundTrip(b);
    assert.equal(eventsSeen(b, 'participant_left').length, 0);
    assert.equal(a2.seen.filter(isSignal).length, 0);
});

test('heartbeat timeout counts as abrupt: the session is detached and can be resumed', opts, async (t) => {
    const srv = await startServer(t, {
        env: env({
            SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '10s',
            SIGNAL_MANAGER_HEARTBEAT_TIMEOUT: '600ms', SIGNAL_MANAGER_HEARTBEAT_INTERVAL: '200ms',
        }),
    });
    const a = await registered(srv, 1);
    await created(a, 'r');
    const token = a.connectAck.json.resume_token;
    /* a stays silent */
    const notice = await a.next((f) => f.type === T.DISCONNECT, 5000, 'the heartbeat DISCONNECT notice');
    assert.equal(notice.json.reason, 'heartbeat timeout');
    assert.equal((await a.waitClose()).code, 4408);
    await detached(srv, 1);
    const a2 = await reconnect(srv, 1, token);
    assert.equal(a2.connectAck.json.resumed, true, desc(a2.connectAck));
    assert.equal(a2.connectAck.json.session_id, a.connectAck.json.session_id);
    const b = await registered(srv, 2);
    const j = await joined(b, 'r');
    assert.deepEqual(j.json.participants, [cid(1), cid(2)], 'the room kept a');
    await roomEvent(a2, 'participant_joined', { room_id: 'r', client_id: cid(2) });
    b.send(T.SIGNAL, { target_client_id: cid(1), type: 'offer', data: {} });
    await a2.next(isSignal, 3000, 'SIGNAL to the resumed connection');
});
