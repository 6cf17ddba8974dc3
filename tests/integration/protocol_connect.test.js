'use strict';
/* CONNECT, authentication state, PING (DECISIONS.md §1-§3). */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, P, UUID_RE, PROTOCOL_VERSION, expectError, describe: desc } = require('./lib/client');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };

function connectPayload(extra = {})
{
    return { client_id: 'test_client_1', auth_token: 'test_token_1', version: PROTOCOL_VERSION, ...extra };
}

test('CONNECT ok: CONNECT_ACK with the request uuid and the documented fields', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_HEARTBEAT_INTERVAL: '7' } });
    const c = srv.client();
    await c.connect();
    const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const ack = await c.request(T.CONNECT, connectPayload({
        capabilities: ['websocket', 'heartbeat'], metadata: { platform: 'node' },
    }), { uuid });
    assert.equal(ack.type, T.CONNECT_ACK, desc(ack));
    assert.equal(ack.uuid, uuid);
    assert.equal(ack.payloadType, P.JSON);
    const j = ack.json;
    assert.equal(j.status, 200);
    assert.equal(j.message, 'Connection established');
    assert.match(j.session_id, UUID_RE);
    assert.equal(j.server_version, '1.0.0');
    assert.equal(j.heartbeat_interval, 7);
    assert.ok(Array.isArray(j.capabilities), 'capabilities is an array');
    for (const cap of ['websocket', 'heartbeat', 'webrtc']) assert.ok(j.capabilities.includes(cap), cap);
});

test('CONNECT: two connections get distinct session ids; unknown fields are ignored', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const a = await srv.connect('test_client_1', 'test_token_1', { extra_field: { x: 1 } });
    const b = await srv.connect('test_client_2', 'test_token_2');
    assert.match(a.sessionId, UUID_RE);
    assert.match(b.sessionId, UUID_RE);
    assert.notEqual(a.sessionId, b.sessionId);
});

test('CONNECT: an older protocol version is accepted (0.9.0, 0.10.0, 1.0.0)', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    for (const version of ['0.9.0', '0.10.0', '1.0.0']) {
        const c = srv.client();
        await c.connect();
        const f = await c.request(T.CONNECT, connectPayload({ version }));
        assert.equal(f.type, T.CONNECT_ACK, `version ${version}: ${desc(f)}`);
        c.close();
    }
});

test('CONNECT with a bad token -> ERROR 401; the connection stays usable', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    const uuid = c.send(T.CONNECT, connectPayload({ auth_token: 'wrong' }));
    const f = await c.next((x) => x.uuid === uuid);
    expectError(f, 401);
    /* still AWAITING_CONNECT: a correct CONNECT now succeeds */
    const ack = await c.hello('test_client_1', 'test_token_1');
    assert.equal(ack.type, T.CONNECT_ACK);
});

test('CONNECT for an unknown client_id -> ERROR 401', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    const f = await c.request(T.CONNECT, connectPayload({ client_id: 'nobody', auth_token: 'test_token_1' }));
    expectError(f, 401);
});

test('CONNECT: another client\'s token -> ERROR 401', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    const f = await c.request(T.CONNECT, connectPayload({ client_id: 'test_client_1', auth_token: 'test_token_2' }));
    expectError(f, 401);
});

test('CONNECT with a missing required field -> ERROR 400 naming it', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    for (const field of ['client_id', 'auth_token', 'version']) {
        const p = connectPayload();
        delete p[field];
        const f = await c.request(T.CONNECT, p);
        expectError(f, 400, new RegExp(field));
    }
});

test('CONNECT with a field of the wrong type or pattern -> ERROR 400 naming it', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    const cases = [
        [{ client_id: 42 }, 'client_id'],
        [{ client_id: '' }, 'client_id'],
        [{ client_id: 'has space' }, 'client_id'],
        [{ client_id: 'x'.repeat(129) }, 'client_id'],
        [{ auth_token: 12345 }, 'auth_token'],
        [{ version: 1 }, 'version'],
    ];
    for (const [extra, field] of cases) {
        const f = await c.request(T.CONNECT, connectPayload(extra));
        try {
            expectError(f, 400, new RegExp(field));
        } catch (e) {
            throw new Error(`${JSON.stringify(extra)}: ${e.message}`);
        }
    }
});

test('CONNECT with a newer or malformed version -> ERROR 400', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    for (const version of ['1.0.1', '1.1.0', '2.0.0', '1.0.10', '10.0.0', '1.0', '1', 'abc', '1.0.0.0', '', 'v1.0.0', '1.x.0', '-1.0.0']) {
        const f = await c.request(T.CONNECT, connectPayload({ version }));
        try {
            expectError(f, 400, /version/);
        } catch (e) {
            throw new Error(`version ${JSON.stringify(version)}: ${e.message}`);
        }
    }
    /* nothing above authenticated the connection */
    const f = await c.request(T.PING, { timestamp: 1 });
    expectError(f, 401);
});

test('CONNECT with invalid JSON or a non-object payload -> ERROR 400', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    for (const text of ['{"client_id":', '[]', '"x"', '42', 'null', '{"a":1}{']) {
        const f = await c.request(T.CONNECT, text);
        try {
            expectError(f, 400);
        } catch (e) {
            throw new Error(`payload ${JSON.stringify(text)}: ${e.message}`);
        }
    }
});

test('anything but CONNECT/DISCONNECT before CONNECT -> ERROR 401 "not authenticated"', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    const reg = { version: PROTOCOL_VERSION, client_id: 'test_client_1', auth_token: 'test_token_1' };
    const cases = [
        [T.PING, { timestamp: Date.now() }],
        [T.REGISTER, reg],
        [T.UNREGISTER, reg],
        [T.ROOM_CREATE, { ...reg, room_id: 'r1' }],
        [T.ROOM_JOIN, { ...reg, room_id: 'r1' }],
        [T.ROOM_LEAVE, { ...reg, room_id: 'r1' }],
        [T.SIGNAL, { target_client_id: 'test_client_2', type: 'offer', data: {} }],
        [T.SESSION_UPDATE, { session_id: 'x', action: 'answer', answer_sdp: 'v=0' }],
        /* state is checked before the payload is parsed (check order 2 before 3) */
        [T.PING, '{not json'],
    ];
    for (const [type, payload] of cases) {
        const f = await c.request(type, payload);
        try {
            expectError(f, 401, /not authenticated/i);
        } catch (e) {
            throw new Error(`type 0x${type.toString(16)}: ${e.message}`);
        }
    }
    assert.ok(c.isOpen, 'connection still open');
});

test('DISCONNECT before CONNECT -> close 1000, no reply', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    c.send(T.DISCONNECT, null);
    const cl = await c.waitClose();
    assert.equal(cl.code, 1000);
    assert.deepEqual(c.seen.filter((f) => f.type !== T.DISCONNECT).map(desc), []);
});

test('CONNECT again on a connected socket -> ERROR 409; the session is unchanged', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = await srv.connect('test_client_1', 'test_token_1');
    const f = await c.request(T.CONNECT, connectPayload());
    expectError(f, 409, /already connected/i);
    /* also for a different identity */
    const g = await c.request(T.CONNECT, connectPayload({ client_id: 'test_client_2', auth_token: 'test_token_2' }));
    expectError(g, 409);
    const p = await c.pingFrame();
    assert.equal(p.type, T.PING_ACK);
});

test('PING -> PING_ACK echoing timestamp with server_time in ms', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = await srv.connect('test_client_1', 'test_token_1');
    for (const ts of [1704110400000, 0, Date.now()]) {
        const before = Date.now();
        const uuid = c.send(T.PING, { timestamp: ts });
        const f = await c.next((x) => x.uuid === uuid);
        const after = Date.now();
        assert.equal(f.type, T.PING_ACK, desc(f));
        assert.equal(f.payloadType, P.JSON);
        assert.equal(f.json.timestamp, ts);
        assert.equal(typeof f.json.server_time, 'number');
        assert.ok(Number.isInteger(f.json.server_time), 'server_time is an integer (ms)');
        /* same host clock: allow 5 s either way */
        assert.ok(f.json.server_time >= before - 5000 && f.json.server_time <= after + 5000,
            `server_time ${f.json.server_time} not within [${before}, ${after}] ms`);
    }
});

test('DISCONNECT after CONNECT -> close 1000, no ACK', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = await srv.connect('test_client_1', 'test_token_1');
    c.send(T.DISCONNECT, { reason: 'bye' });
    const cl = await c.waitClose();
    assert.equal(cl.code, 1000);
    assert.deepEqual(c.frames.filter((f) => f.type !== T.DISCONNECT).map(desc), []);
});

test('client credentials never appear in the server log', opts, async (t) => {
    const srv = await startServer(t, {
        env: {
            ...MEM,
            SIGNAL_MANAGER_LOGGING_LEVEL: 'debug',
            SIGNAL_MANAGER_AUTH_API_KEYS: 'test_client_1:s3cr3t-token-aaaa,test_client_2:test_token_2',
        },
    });
    const c = srv.client();
    await c.connect();
    const bad = await c.request(T.CONNECT, connectPayload({ auth_token: 'wr0ng-token-bbbb' }));
    expectError(bad, 401);
    await c.hello('test_client_1', 's3cr3t-token-aaaa');
    const r = await c.register();
    assert.equal(r.type, T.REGISTER_ACK, desc(r));
    c.close();
    await c.waitClose();
    await srv.stop();
    assert.doesNotMatch(srv.stderr, /s3cr3t-token-aaaa/);
    assert.doesNotMatch(srv.stderr, /wr0ng-token-bbbb/);
});
