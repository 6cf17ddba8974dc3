'use strict';
/* REGISTER / UNREGISTER and the release of registrations (DECISIONS.md §3). */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, PROTOCOL_VERSION, expectError, describe: desc } = require('./lib/client');
const { registerEventually } = require('./lib/util');

const opts = { timeout: TEST_TIMEOUT };
/* Each test runs once with the default sqlite store and once with the memory store
 * where the behaviour must not depend on it. */
const BACKENDS = ['sqlite', 'memory'];

function envFor(backend, extra = {})
{
    return { SIGNAL_MANAGER_STORE_BACKEND: backend, ...extra };
}

for (const backend of BACKENDS) {
    test(`[${backend}] REGISTER ok -> REGISTER_ACK with the documented fields`, opts, async (t) => {
        const srv = await startServer(t, { env: envFor(backend) });
        const c = await srv.connect('test_client_1', 'test_token_1');
        const uuid = '3b241101-e2bb-4255-8caf-4136c566a962';
        const f = await c.request(T.REGISTER, c.registerPayload({
            capabilities: ['webrtc'], metadata: { platform: 'node', features: ['video'] },
        }), { uuid });
        assert.equal(f.type, T.REGISTER_ACK, desc(f));
        assert.equal(f.uuid, uuid);
        assert.equal(f.json.version, '1.0.0');
        assert.equal(f.json.status, 200);
        assert.equal(f.json.message, 'Registration successful');
        assert.equal(f.json.client_id, 'test_client_1');
        assert.equal(typeof f.json.session_id, 'string');
        assert.ok(f.json.session_id.length > 0);
    });

    test(`[${backend}] REGISTER twice on one connection -> ERROR 409`, opts, async (t) => {
        const srv = await startServer(t, { env: envFor(backend) });
        const c = await srv.connect('test_client_1', 'test_token_1');
        assert.equal((await c.register()).type, T.REGISTER_ACK);
        expectError(await c.register(), 409);
        /* still registered: UNREGISTER works */
        assert.equal((await c.unregister()).type, T.UNREGISTER_ACK);
    });

    test(`[${backend}] REGISTER of a client_id held by another live connection -> ERROR 409`, opts, async (t) => {
        const srv = await startServer(t, { env: envFor(backend) });
        const a = await srv.connect('test_client_1', 'test_token_1');
        const b = await srv.connect('test_client_1', 'test_token_1');
        assert.equal((await a.register()).type, T.REGISTER_ACK);
        expectError(await b.register(), 409);
        /* the holder is untouched */
        assert.ok(a.isOpen);
        assert.equal((await a.pingFrame()).type, T.PING_ACK);
        expectError(await a.register(), 409);
    });

    test(`[${backend}] UNREGISTER ok, then REGISTER again ok; another connection can take it after UNREGISTER`, opts, async (t) => {
        const srv = await startServer(t, { env: envFor(backend) });
        const a = await srv.connect('test_client_1', 'test_token_1');
        const b = await srv.connect('test_client_1', 'test_token_1');
        assert.equal((await a.register()).type, T.REGISTER_ACK);
        const uuid = 'a8098c1a-f86e-41d5-9b1e-6a4d8d3c1e11';
        const u = await a.request(T.UNREGISTER, a.registerPayload(), { uuid });
        assert.equal(u.type, T.UNREGISTER_ACK, desc(u));
        assert.equal(u.uuid, uuid);
        assert.equal(u.json.version, '1.0.0');
        assert.equal(u.json.status, 200);
        assert.equal(u.json.message, 'Unregistration successful');
        assert.equal(u.json.client_id, 'test_client_1');
        expectError(await a.unregister(), 404, /not registered/i);
        /* UNREGISTER releases at once (clean end) */
        assert.equal((await b.register()).type, T.REGISTER_ACK);
        expectError(await a.register(), 409);
        assert.equal((await b.unregister()).type, T.UNREGISTER_ACK);
        assert.equal((await a.register()).type, T.REGISTER_ACK);
    });
}

test('REGISTER with "room_id": null (as in the protocol document\'s example) is accepted', opts, async (t) => {
    const srv = await startServer(t);
    const c = await srv.connect('test_client_1', 'test_token_1');
    const f = await c.register({ room_id: null });
    assert.equal(f.type, T.REGISTER_ACK, desc(f));
});

test('UNREGISTER when not registered -> ERROR 404', opts, async (t) => {
    const srv = await startServer(t);
    const c = await srv.connect('test_client_1', 'test_token_1');
    expectError(await c.unregister(), 404, /not registered/i);
});

test('REGISTER with a client_id other than the CONNECT\'s -> ERROR 403', opts, async (t) => {
    const srv = await startServer(t);
    const c = await srv.connect('test_client_1', 'test_token_1');
    const p = { version: PROTOCOL_VERSION, client_id: 'test_client_2', auth_token: 'test_token_2' };
    expectError(await c.request(T.REGISTER, p), 403);
    expectError(await c.request(T.UNREGISTER, p), 403);
    /* client_id check comes before the token check (order 4 before 5) */
    expectError(await c.request(T.REGISTER, { ...p, auth_token: 'wrong' }), 403);
    /* nothing was registered */
    expectError(await c.unregister(), 404);
});

test('REGISTER / UNREGISTER with a bad auth_token -> ERROR 401', opts, async (t) => {
    const srv = await startServer(t);
    const c = await srv.connect('test_client_1', 'test_token_1');
    expectError(await c.register({ auth_token: 'wrong' }), 401);
    expectError(await c.register({ auth_token: 'test_token_2' }), 401);
    expectError(await c.unregister({ auth_token: 'wrong' }), 401);
    assert.equal((await c.register()).type, T.REGISTER_ACK);
    /* token checked before state (order 5 before 6): registered + bad token -> 401 not 409 */
    expectError(await c.register({ auth_token: 'wrong' }), 401);
    expectError(await c.unregister({ auth_token: 'wrong' }), 401);
    assert.equal((await c.unregister()).type, T.UNREGISTER_ACK);
});

test('REGISTER with missing / mistyped fields -> ERROR 400 naming the field', opts, async (t) => {
    const srv = await startServer(t);
    const c = await srv.connect('test_client_1', 'test_token_1');
    for (const field of ['version', 'client_id', 'auth_token']) {
        const p = c.registerPayload();
        delete p[field];
        expectError(await c.request(T.REGISTER, p), 400, new RegExp(field));
        expectError(await c.request(T.UNREGISTER, p), 400, new RegExp(field));
    }
    expectError(await c.register({ version: '2.0.0' }), 400, /version/);
    expectError(await c.register({ client_id: 7 }), 400, /client_id/);
    expectError(await c.register({ room_id: 'bad room id!' }), 400, /room_id/);
    expectError(await c.request(T.REGISTER, '{"version":'), 400);
    /* validation comes before the client_id comparison (order 3 before 4) */
    expectError(await c.register({ client_id: 'test_client_2', version: 'x' }), 400, /version/);
    assert.equal((await c.register()).type, T.REGISTER_ACK);
});

test('ROOM_* and SIGNAL while only CONNECTED -> ERROR 401 "not registered"', opts, async (t) => {
    const srv = await startServer(t);
    const c = await srv.connect('test_client_1', 'test_token_1');
    await srv.connect('test_client_2', 'test_token_2').then((b) => b.register());
    const base = c.registerPayload();
    const cases = [
        [T.ROOM_CREATE, { ...base, room_id: 'room-1' }],
        [T.ROOM_JOIN, { ...base, room_id: 'room-1' }],
        [T.ROOM_LEAVE, { ...base, room_id: 'room-1' }],
        [T.SIGNAL, { target_client_id: 'test_client_2', type: 'offer', data: { sdp: 'v=0' } }],
    ];
    for (const [type, payload] of cases) {
        const f = await c.request(type, payload);
        try {
            expectError(f, 401, /not registered/i);
        } catch (e) {
            throw new Error(`type 0x${type.toString(16)}: ${e.message}`);
        }
    }
});

/*
 * Release of the registration when the connection ends.  A second connection
 * with the same identity is CONNECTed while the first is live, then the first
 * ends; the second must be able to REGISTER (the release is asynchronous, so
 * REGISTER is retried while it answers 409, bounded in time).
 */
const ENDINGS = {
    'DISCONNECT message': async (a) => {
        a.send(T.DISCONNECT, null);
        assert.equal((await a.waitClose()).code, 1000);
    },
    'DISCONNECT message with a reason': async (a) => {
        a.send(T.DISCONNECT, { reason: 'going away' });
        assert.equal((await a.waitClose()).code, 1000);
    },
    'WebSocket close frame': async (a) => {
        a.close(1000, 'bye');
        await a.waitClose();
    },
    'socket destroyed without a close frame (FIN)': async (a) => {
        a.terminate();
        await a.waitClose();
    },
    'socket reset (RST)': async (a) => {
        a.reset();
        await a.waitClose();
    },
};

for (const backend of BACKENDS) {
    for (const [how, end] of Object.entries(ENDINGS)) {
        test(`[${backend}] registration released on ${how}`, opts, async (t) => {
            const srv = await startServer(t, { env: envFor(backend) });
            const a = await srv.connect('test_client_1', 'test_token_1');
            const b = await srv.connect('test_client_1', 'test_token_1');
            assert.equal((await a.register()).type, T.REGISTER_ACK);
            expectError(await b.register(), 409);
            await end(a);
            const f = await registerEventually(b);
            assert.equal(f.json.client_id, 'test_client_1');
            /* and a third connection now sees it held */
            const c = await srv.connect('test_client_1', 'test_token_1');
            expectError(await c.register(), 409);
        });
    }
}
