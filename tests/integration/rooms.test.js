'use strict';
/* Rooms in p2p mode: ROOM_CREATE / ROOM_JOIN / ROOM_LEAVE / ROOM_EVENT, limits,
 * idle timeout, leaving on the way out, the sqlite copy (DECISIONS.md §3, §6, §10). */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, P, UUID_RE, PROTOCOL_VERSION, until, expectError, describe: desc } = require('./lib/client');
const {
    cid, keysEnv, registered, createRoom, joinRoom, leaveRoom, created, joined, left,
    roomEvent, eventsSeen, roundTrip, sqliteRows,
} = require('./lib/rooms');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };
const ID_RE = /^[A-Za-z0-9._:@-]{1,128}$/;

function env(extra = {}, n = 4)
{
    return { ...MEM, ...keysEnv(n), ...extra };
}

test('ROOM_CREATE -> ROOM_CREATE_ACK with the request uuid and the documented fields', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const uuid = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    const f = await a.request(T.ROOM_CREATE, {
        version: PROTOCOL_VERSION, client_id: a.clientId, auth_token: a.authToken,
        room_id: 'room-1', offer_sdp: 'v=0 offer of 1', metadata: { topic: 'x' },
    }, { uuid });
    assert.equal(f.type, T.ROOM_CREATE_ACK, desc(f));
    assert.equal(f.uuid, uuid);
    assert.equal(f.payloadType, P.JSON);
    const j = f.json;
    assert.equal(j.status, 200);
    assert.equal(j.room_id, 'room-1');
    assert.equal(j.session_id, a.sessionId, 'session_id is the creator\'s session');
    assert.deepEqual(j.participants, [cid(1)]);
    assert.equal(j.max_participants, 16, 'default max_participants is webrtc.max_participants');
    assert.ok(j.connection_info && typeof j.connection_info === 'object', `connection_info: ${desc(f)}`);
    assert.equal(j.connection_info.room_id, 'room-1');
    assert.equal(j.connection_info.role, 'sender');
    assert.equal(j.connection_info.session_id, a.sessionId);
    /* a small metadata.max_participants is honoured */
    const g = await created(a, 'room-2', { metadata: { max_participants: 3 } });
    assert.equal(g.json.max_participants, 3);
});

test('ROOM_CREATE without room_id: the server picks a usable id', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const f1 = await created(a, undefined);
    const f2 = await created(a, undefined);
    for (const f of [f1, f2]) {
        assert.equal(typeof f.json.room_id, 'string', desc(f));
        assert.match(f.json.room_id, ID_RE);
        assert.deepEqual(f.json.participants, [cid(1)]);
    }
    assert.notEqual(f1.json.room_id, f2.json.room_id, 'two generated ids differ');
    const j = await joined(b, f1.json.room_id);
    assert.deepEqual(j.json.participants, [cid(1), cid(2)]);
});

test('ROOM_CREATE of an existing room_id -> ERROR 409 (same or another client)', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'dup');
    const e1 = expectError(await createRoom(a, 'dup'), 409, /exists/i);
    assert.equal(e1.details.room_id, 'dup');
    expectError(await createRoom(b, 'dup'), 409);
    /* nothing changed: a is still the only member, b can join */
    const j = await joined(b, 'dup');
    assert.deepEqual(j.json.participants, [cid(1), cid(2)]);
});

test('ROOM_JOIN: participants in join order, offer_sdp for the first joiner only, participant_joined to members', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map((i) => registered(srv, i)));
    await created(a, 'r', { offer_sdp: 'v=0 creator offer' });

    const uuid = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
    const jb = await b.request(T.ROOM_JOIN, { version: PROTOCOL_VERSION, client_id: b.clientId, room_id: 'r' }, { uuid });
    assert.equal(jb.type, T.ROOM_JOIN_ACK, desc(jb));
    assert.equal(jb.uuid, uuid);
    assert.equal(jb.json.status, 200);
    assert.equal(jb.json.room_id, 'r');
    assert.equal(jb.json.session_id, b.sessionId);
    assert.deepEqual(jb.json.participants, [cid(1), cid(2)]);
    assert.equal(jb.json.offer_sdp, 'v=0 creator offer', 'first joiner gets the creator\'s offer');

    const ev = await roomEvent(a, 'participant_joined', { room_id: 'r', client_id: cid(2) });
    assert.equal(ev.payloadType, P.JSON);
    assert.match(ev.uuid, UUID_RE);
    assert.notEqual(ev.uuid, uuid, 'a server-originated event carries a fresh uuid');

    const jc = await joined(c, 'r');
    assert.deepEqual(jc.json.participants, [cid(1), cid(2), cid(3)]);
    assert.equal(jc.json.offer_sdp, undefined, `second joiner gets no offer_sdp: ${desc(jc)}`);
    await roomEvent(a, 'participant_joined', { room_id: 'r', client_id: cid(3) });
    await roomEvent(b, 'participant_joined', { room_id: 'r', client_id: cid(3) });

    const jd = await joined(d, 'r');
    assert.deepEqual(jd.json.participants, [cid(1), cid(2), cid(3), cid(4)]);
    assert.equal(jd.json.offer_sdp, undefined);
    for (const x of [a, b, c]) await roomEvent(x, 'participant_joined', { room_id: 'r', client_id: cid(4) });

    /* nobody hears about their own join (events to the joiner would precede its PING_ACK) */
    for (const [x, i] of [[b, 2], [c, 3], [d, 4]]) {
        await roundTrip(x);
        assert.equal(eventsSeen(x, 'participant_joined', { client_id: cid(i) }).length, 0,
            `${cid(i)} got its own participant_joined: ${x.history()}`);
    }
    assert.equal(eventsSeen(a, 'participant_joined').length, 3);
    assert.equal(eventsSeen(b, 'participant_joined').length, 2);
    assert.equal(eventsSeen(c, 'participant_joined').length, 1);
});

test('ROOM_JOIN of a room created without offer_sdp: no offer_sdp field', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'plain');
    const j = await joined(b, 'plain');
    assert.equal(j.json.offer_sdp, undefined, desc(j));
});

test('ROOM_JOIN unknown room -> 404; joining twice (or the creator joining) -> 409', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const e = expectError(await joinRoom(b, 'nope'), 404, /not found/i);
    assert.equal(e.details.room_id, 'nope');
    await created(a, 'r');
    await joined(b, 'r');
    expectError(await joinRoom(b, 'r'), 409);
    expectError(await joinRoom(a, 'r'), 409);
    /* membership unchanged */
    const c = await registered(srv, 3);
    assert.deepEqual((await joined(c, 'r')).json.participants, [cid(1), cid(2), cid(3)]);
});

test('room full: metadata.max_participants -> ERROR 409 "room full"; a place frees on leave', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    assert.equal((await created(a, 'small', { metadata: { max_participants: 2 } })).json.max_participants, 2);
    await joined(b, 'small');
    const e = expectError(await joinRoom(c, 'small'), 409, /full/i);
    assert.equal(e.details.room_id, 'small');
    await left(b, 'small');
    assert.deepEqual((await joined(c, 'small')).json.participants, [cid(1), cid(3)]);
});

test('webrtc.max_participants caps metadata.max_participants and is the default', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_WEBRTC_MAX_PARTICIPANTS: '3' }) });
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map((i) => registered(srv, i)));
    assert.equal((await created(a, 'big', { metadata: { max_participants: 100 } })).json.max_participants, 3);
    assert.equal((await created(a, 'dflt')).json.max_participants, 3);
    await joined(b, 'big');
    await joined(c, 'big');
    expectError(await joinRoom(d, 'big'), 409, /full/i);
    await joined(b, 'dflt');
    await joined(c, 'dflt');
    expectError(await joinRoom(d, 'dflt'), 409, /full/i);
});

test('ROOM_LEAVE when not a member -> 404 (unknown room, or a room of others)', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const e = expectError(await leaveRoom(b, 'nope'), 404);
    assert.equal(e.details.room_id, 'nope');
    await created(a, 'r');
    expectError(await leaveRoom(b, 'r'), 404);
    /* a's membership is untouched */
    await roundTrip(a);
    assert.equal(eventsSeen(a, 'participant_left').length, 0);
    expectError(await joinRoom(a, 'r'), 409);
});

test('ROOM_LEAVE -> ROOM_LEAVE_ACK; the others get participant_left, the leaver does not', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    await created(a, 'r');
    await joined(b, 'r');
    await joined(c, 'r');
    const uuid = '11111111-2222-4333-8444-555555555555';
    const f = await b.request(T.ROOM_LEAVE, { version: PROTOCOL_VERSION, client_id: b.clientId, room_id: 'r' }, { uuid });
    assert.equal(f.type, T.ROOM_LEAVE_ACK, desc(f));
    assert.equal(f.uuid, uuid);
    assert.equal(f.json.status, 200);
    assert.equal(f.json.room_id, 'r');
    for (const x of [a, c]) {
        const ev = await roomEvent(x, 'participant_left', { room_id: 'r', client_id: cid(2) });
        assert.match(ev.uuid, UUID_RE);
    }
    assert.equal(eventsSeen(b, 'participant_left').length, 0, `leaver got participant_left: ${b.history()}`);
    /* b is out: leaving again is 404, joining again works and lists b last */
    expectError(await leaveRoom(b, 'r'), 404);
    assert.deepEqual((await joined(b, 'r')).json.participants, [cid(1), cid(3), cid(2)]);
});

test('the last leave closes the room: a later ROOM_JOIN gets 404 and the id is free again', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r', { offer_sdp: 'old offer' });
    await joined(b, 'r');
    await left(a, 'r');
    await left(b, 'r');
    expectError(await joinRoom(a, 'r'), 404);
    expectError(await joinRoom(b, 'r'), 404);
    /* the id can be created again, as a new room (the old offer is gone) */
    await created(b, 'r');
    const j = await joined(a, 'r');
    assert.deepEqual(j.json.participants, [cid(2), cid(1)]);
    assert.equal(j.json.offer_sdp, undefined);
});

test('the creator leaving does not close a room that still has members', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    await created(a, 'r');
    await joined(b, 'r');
    await left(a, 'r');
    await roomEvent(b, 'participant_left', { room_id: 'r', client_id: cid(1) });
    assert.deepEqual((await joined(c, 'r')).json.participants, [cid(2), cid(3)]);
    await roomEvent(b, 'participant_joined', { room_id: 'r', client_id: cid(3) });
    assert.equal(eventsSeen(b, 'room_closed').length, 0);
});

test('ROOM_* while only CONNECTED (before REGISTER, after UNREGISTER) -> ERROR 401', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    await created(a, 'r');
    const c = await srv.connect(cid(2), 'test_token_2');
    for (const fn of [createRoom, joinRoom, leaveRoom]) {
        expectError(await fn(c, 'r'), 401, /not registered/i);
    }
    assert.equal((await a.unregister()).type, T.UNREGISTER_ACK);
    for (const fn of [createRoom, joinRoom, leaveRoom]) {
        expectError(await fn(a, 'r2'), 401, /not registered/i);
    }
});

test('ROOM_* with the client_id of another client -> ERROR 403', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(b, 'r');
    const as = (type, room) => a.request(type, { version: PROTOCOL_VERSION, client_id: cid(2), room_id: room });
    expectError(await as(T.ROOM_CREATE, 'x'), 403);
    expectError(await as(T.ROOM_JOIN, 'r'), 403);
    expectError(await as(T.ROOM_LEAVE, 'r'), 403);
    /* nothing happened to b's room */
    await roundTrip(b);
    assert.equal(eventsSeen(b, 'participant_left').length, 0);
    expectError(await joinRoom(b, 'x'), 404);
    /* an auth_token that does not validate -> 401 */
    expectError(await createRoom(a, 'y', { auth_token: 'wrong' }), 401);
});

test('limits.max_rooms -> ERROR 503 past the limit; a closed room frees a slot', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_LIMITS_MAX_ROOMS: '2' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r1');
    await created(b, 'r2');
    const e = expectError(await createRoom(a, 'r3'), 503);
    assert.equal(e.details.room_id, 'r3');
    expectError(await createRoom(b, undefined), 503);
    expectError(await joinRoom(b, 'r3'), 404, undefined);
    await left(a, 'r1');
    await created(a, 'r3');
    expectError(await createRoom(b, 'r4'), 503);
});

test('idle room closed after webrtc.session_timeout: room_closed to members; SIGNAL activity keeps a room open', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_WEBRTC_SESSION_TIMEOUT: '1s' }) });
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map((i) => registered(srv, i)));
    await created(a, 'idle');
    await joined(b, 'idle');
    await created(c, 'busy');
    await joined(d, 'busy');
    const t0 = Date.now();
    /* c signals d in room "busy" every 200 ms */
    let n = 0;
    const timer = setInterval(() => {
        if (c.isOpen) c.send(T.SIGNAL, { target_client_id: cid(4), type: 'candidate', room_id: 'busy', data: { n: n++ } });
    }, 200);
    t.after(() => clearInterval(timer));
    const evs = [];
    for (const x of [a, b]) evs.push(await roomEvent(x, 'room_closed', { room_id: 'idle' }, 5000));
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 900, `idle room closed after ${elapsed} ms, before the 1 s timeout`);
    for (const ev of evs) assert.match(ev.uuid, UUID_RE);
    expectError(await joinRoom(c, 'idle'), 404);
    /* the busy room lived through the same time and is still there */
    clearInterval(timer);
    assert.ok(n >= 3, `only ${n} SIGNALs sent`);
    assert.equal(eventsSeen(c, 'room_closed').length + eventsSeen(d, 'room_closed').length, 0,
        `busy room closed: ${c.history()}`);
    expectError(await joinRoom(d, 'busy'), 409, /member/i);
    /* members of the closed room are in no room: leaving is 404 */
    expectError(await leaveRoom(a, 'idle'), 404);
});

test('UNREGISTER leaves every room: the others get participant_left for each', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    await created(a, 'r1');
    await created(b, 'r2');
    await joined(b, 'r1');
    await joined(a, 'r2');
    await joined(c, 'r2');
    await created(a, 'solo');
    assert.equal((await a.unregister()).type, T.UNREGISTER_ACK);
    await roomEvent(b, 'participant_left', { room_id: 'r1', client_id: cid(1) });
    await roomEvent(b, 'participant_left', { room_id: 'r2', client_id: cid(1) });
    await roomEvent(c, 'participant_left', { room_id: 'r2', client_id: cid(1) });
    /* a's solo room was closed; after REGISTER again a is in no room */
    expectError(await joinRoom(b, 'solo'), 404);
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    expectError(await leaveRoom(a, 'r1'), 404);
    assert.deepEqual((await joined(a, 'r1')).json.participants, [cid(2), cid(1)]);
});

for (const [how, end] of [
    ['DISCONNECT', async (x) => { x.send(T.DISCONNECT, null); assert.equal((await x.waitClose()).code, 1000); }],
    ['a close frame', async (x) => { x.close(1000); await x.waitClose(); }],
]) {
    test(`${how} leaves the rooms at once (even with a resume window)`, opts, async (t) => {
        const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '30s' }) });
        const a = await registered(srv, 1);
        const b = await registered(srv, 2);
        await created(a, 'r');
        await joined(b, 'r');
        const t0 = Date.now();
        await end(a);
        await roomEvent(b, 'participant_left', { room_id: 'r', client_id: cid(1) }, 3000);
        assert.ok(Date.now() - t0 < 2000, 'not delayed by the resume window');
        /* b is now alone; its leave closes the room */
        await left(b, 'r');
        expectError(await joinRoom(b, 'r'), 404);
    });
}

test('a member dropping abruptly: participant_left only when server.resume_window ends', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '800ms' }) });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    await created(a, 'r');
    await joined(b, 'r');
    await joined(c, 'r');
    const t0 = Date.now();
    a.terminate();                     /* FIN, no close frame */
    const ev = await roomEvent(b, 'participant_left', { room_id: 'r', client_id: cid(1) }, 5000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 700, `participant_left ${elapsed} ms after the drop, before the 800 ms window`);
    assert.match(ev.uuid, UUID_RE);
    await roomEvent(c, 'participant_left', { room_id: 'r', client_id: cid(1) }, 2000);
    /* the room lives on with b and c */
    const d = await registered(srv, 4);
    assert.deepEqual((await joined(d, 'r')).json.participants, [cid(2), cid(3), cid(4)]);
});

test('a member dropping abruptly with server.resume_window=0: participant_left at once', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '0' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    await joined(b, 'r');
    const t0 = Date.now();
    a.reset();                         /* RST */
    await roomEvent(b, 'participant_left', { room_id: 'r', client_id: cid(1) }, 3000);
    assert.ok(Date.now() - t0 < 500, `participant_left ${Date.now() - t0} ms after the drop`);
    /* and the registration is free at once too */
    const a2 = await srv.connect(cid(1), 'test_token_1');
    assert.equal((await a2.register()).type, T.REGISTER_ACK);
});

test('a room whose only member dropped abruptly is closed when the window ends', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '600ms' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    const t0 = Date.now();
    a.terminate();
    /* within the window the room still exists: creating it again is 409 ... */
    expectError(await createRoom(b, 'r'), 409);
    /* ... and once the window is over it is gone */
    await until(async () => {
        const f = await createRoom(b, 'r');
        if (f.type === T.ROOM_CREATE_ACK) return true;
        expectError(f, 409);
        return undefined;
    }, 4000, 'the room to be closed');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 500, `room closed ${elapsed} ms after the drop, before the 600 ms window`);
});

test('sqlite store: rooms and room_members rows follow create, join, leave and close', opts, async (t) => {
    const srv = await startServer(t, { env: { ...keysEnv(3), SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '0' } });
    const db = srv.storePath;
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    await created(a, 'r', { metadata: { max_participants: 5, topic: 'x' } });
    await joined(b, 'r');
    await joined(c, 'r');
    await created(a, 'other');
    const rooms = await sqliteRows(db, "SELECT room_id, creator_id, max_participants, metadata FROM rooms ORDER BY room_id");
    assert.deepEqual(rooms.map((r) => [r.room_id, r.creator_id, r.max_participants]),
        [['other', cid(1), 16], ['r', cid(1), 5]]);
    assert.deepEqual(JSON.parse(rooms[1].metadata), { max_participants: 5, topic: 'x' });
    const members = () => sqliteRows(db, "SELECT client_id, role FROM room_members WHERE room_id = 'r' ORDER BY rowid");
    assert.deepEqual((await members()).map((m) => [m.client_id, m.role]),
        [[cid(1), 'sender'], [cid(2), 'receiver'], [cid(3), 'receiver']]);

    await left(b, 'r');                                /* the ACK waits for the store */
    assert.deepEqual((await members()).map((m) => m.client_id), [cid(1), cid(3)]);

    c.terminate();                                     /* resume_window 0: released at once */
    await until(async () => (await members()).length === 1 || undefined, 3000, 'c\'s row to go');
    assert.deepEqual((await members()).map((m) => m.client_id), [cid(1)]);

    await left(a, 'r');                                /* last one out: room gone */
    assert.deepEqual(await sqliteRows(db, "SELECT room_id FROM rooms WHERE room_id = 'r'"), []);
    assert.deepEqual(await members(), []);

    a.send(T.DISCONNECT, null);                        /* closes "other" */
    await a.waitClose();
    await until(async () => (await sqliteRows(db, 'SELECT count(*) AS n FROM rooms'))[0].n === 0 || undefined,
        3000, 'the "other" room row to go');
    assert.deepEqual(await sqliteRows(db, 'SELECT * FROM room_members'), []);
});

test('sqlite store: an idle-closed room leaves no rows', opts, async (t) => {
    const srv = await startServer(t, { env: { ...keysEnv(2), SIGNAL_MANAGER_WEBRTC_SESSION_TIMEOUT: '1s' } });
    const db = srv.storePath;
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    await joined(b, 'r');
    assert.equal((await sqliteRows(db, 'SELECT count(*) AS n FROM room_members'))[0].n, 2);
    await roomEvent(a, 'room_closed', { room_id: 'r' }, 5000);
    await until(async () => (await sqliteRows(db, 'SELECT count(*) AS n FROM rooms'))[0].n === 0 || undefined,
        3000, 'the room row to go');
    assert.deepEqual(await sqliteRows(db, 'SELECT * FROM room_members'), []);
});

test('lifecycle events: room.created, room.joined, room.left, room.closed in the events log', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'evr');
    await joined(b, 'evr');
    await left(b, 'evr');
    await left(a, 'evr');
    const file = path.join(srv.dir, 'events.log');
    const events = await until(() => {
        if (!fs.existsSync(file)) return undefined;
        const evs = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
            .filter((e) => e.room_id === 'evr');
        return evs.some((e) => e.event === 'room.closed') ? evs : undefined;
    }, 5000, 'room events in the events log');
    const pick = (name, client) => events.find((e) => e.event === name && (client === undefined || e.client_id === client));
    for (const [name, client] of [['room.created', cid(1)], ['room.joined', cid(2)], ['room.left', cid(2)],
        ['room.left', cid(1)], ['room.closed', undefined]]) {
        const e = pick(name, client);
        assert.ok(e, `${name} ${client || ''} in ${JSON.stringify(events)}`);
        assert.ok(['number', 'string'].includes(typeof e.timestamp), `timestamp in ${JSON.stringify(e)}`);
        assert.ok(e.instance_id, `instance_id in ${JSON.stringify(e)}`);
    }
    assert.equal(pick('room.created').session_id, a.sessionId);
    assert.equal(pick('room.joined').session_id, b.sessionId);
});
