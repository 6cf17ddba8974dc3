'use strict';
/* connection_timeout, heartbeat.timeout, registration_timeout (DECISIONS.md §4, §5). */

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, P, until, expectError, describe: desc, Waiters } = require('./lib/client');
const { registerEventually } = require('./lib/util');
const { lockDatabase } = require('./lib/sqlite_lock');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };

/* A plain TCP socket; resolves {sock, opened, ended: Promise<elapsed ms>, data()}. */
function rawSocket(t, port)
{
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        const w = new Waiters();
        const st = { sock, closedAt: null, chunks: [] };
        t.after(() => sock.destroy());
        sock.on('data', (d) => st.chunks.push(d));
        sock.on('error', () => {});
        sock.on('close', () => {
            st.closedAt = Date.now();
            w.poke();
        });
        st.waitClosed = (ms = 5000) => w.add(() => (st.closedAt ? st.closedAt - st.opened : undefined),
            ms, 'the server to close the raw socket');
        sock.on('connect', () => {
            st.opened = Date.now();
            resolve(st);
        });
        sock.once('error', reject);
    });
}

test('connection_timeout: a TCP socket that sends nothing is closed', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '500ms' } });
    const s = await rawSocket(t, srv.port);
    const elapsed = await s.waitClosed(5000);
    assert.ok(elapsed >= 350, `closed after ${elapsed} ms, before the 500 ms timeout`);
    assert.equal(Buffer.concat(s.chunks).length, 0, 'nothing written to a socket that sent no request');
});

test('connection_timeout: a socket stuck in the middle of the HTTP request is closed', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '500ms' } });
    const s = await rawSocket(t, srv.port);
    s.sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
    const elapsed = await s.waitClosed(5000);
    assert.ok(elapsed >= 350, `closed after ${elapsed} ms, before the 500 ms timeout`);
});

test('connection_timeout: an upgraded socket without CONNECT gets close 1008', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '500ms' } });
    const c = srv.client();
    const t0 = Date.now();
    await c.connect();
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1008, `close ${cl.code} ${cl.reason}; ${c.history()}`);
    assert.ok(Date.now() - t0 >= 350, 'not before the timeout');
    const notice = c.seen.find((f) => f.type === T.DISCONNECT);
    if (notice) {
        assert.equal(notice.json.reason, 'connection timeout');
        assert.equal(notice.json.code, 1008);
    }
});

test('connection_timeout: a failed CONNECT does not stop the clock', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '500ms' } });
    const c = srv.client();
    await c.connect();
    expectError(await c.request(T.CONNECT, { client_id: 'test_client_1', auth_token: 'bad', version: '1.0.0' }), 401);
    expectError(await c.request(T.PING, { timestamp: 1 }), 401);
    assert.equal((await c.waitClose(5000)).code, 1008);
});

test('connection_timeout does not apply once CONNECT_ACK was sent', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '500ms' } });
    const c = await srv.connect('test_client_1', 'test_token_1');
    /* a raw socket opened now is our clock: when it is closed, the timeout has passed for c too */
    const s = await rawSocket(t, srv.port);
    await s.waitClosed(5000);
    assert.ok(c.isOpen, `authenticated connection closed: ${c.history()}`);
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
});

test('heartbeat timeout: DISCONNECT notice "heartbeat timeout", close 4408, registration released', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_HEARTBEAT_TIMEOUT: '500ms', SIGNAL_MANAGER_HEARTBEAT_INTERVAL: '200ms' } });
    const a = await srv.connect('test_client_1', 'test_token_1');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    const t0 = Date.now();
    const notice = await a.next((f) => f.type === T.DISCONNECT, 5000, 'the DISCONNECT notice');
    assert.ok(Date.now() - t0 >= 350, `notice after ${Date.now() - t0} ms, before the 500 ms timeout`);
    assert.equal(notice.payloadType, P.JSON);
    assert.deepEqual({ reason: notice.json.reason, code: notice.json.code, reconnect: notice.json.reconnect },
        { reason: 'heartbeat timeout', code: 4408, reconnect: true });
    const cl = await a.waitClose();
    assert.equal(cl.code, 4408, `close ${cl.code} ${cl.reason}`);
    /* another connection can register the client_id now */
    const b = await srv.connect('test_client_1', 'test_token_1');
    const f = await registerEventually(b);
    assert.equal(f.type, T.REGISTER_ACK);
});

test('heartbeat timeout: any received frame counts as activity', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_HEARTBEAT_TIMEOUT: '600ms', SIGNAL_MANAGER_HEARTBEAT_INTERVAL: '200ms' } });
    const silent = await srv.connect('test_client_1', 'test_token_1');
    const busy = await srv.connect('test_client_2', 'test_token_2');
    assert.equal((await busy.register()).type, T.REGISTER_ACK);
    /* busy sends a frame every 150 ms, alternating PING and (answered) bad frames */
    let n = 0;
    const timer = setInterval(() => {
        if (!busy.isOpen) return;
        if (n++ % 2 === 0) busy.send(T.PING, { timestamp: n });
        else busy.send(T.REGISTER, busy.registerPayload());  /* 409, still activity */
    }, 150);
    t.after(() => clearInterval(timer));
    /* the silent one is our clock */
    assert.equal((await silent.waitClose(5000)).code, 4408);
    clearInterval(timer);
    assert.ok(busy.isOpen, `active connection was closed: ${busy.history()}`);
    assert.ok(!busy.seen.some((f) => f.type === T.DISCONNECT), 'no DISCONNECT notice to the active one');
    assert.equal((await busy.pingFrame()).type, T.PING_ACK);
});

test('registration_timeout: REGISTER with a blocked store -> ERROR 408, not registered, later REGISTER ok', opts, async (t) => {
    const srv = await startServer(t, {
        env: {
            SIGNAL_MANAGER_STORE_BACKEND: 'sqlite',
            SIGNAL_MANAGER_SERVER_REGISTRATION_TIMEOUT: '300ms',
            SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '2s',
            SIGNAL_MANAGER_DATABASE_RETRY_ATTEMPTS: '3',
            SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL: '100',
        },
    });
    const a = await srv.connect('test_client_1', 'test_token_1');
    const b = await srv.connect('test_client_1', 'test_token_1');
    /* make sure the database file exists and the schema is written */
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    assert.equal((await a.unregister()).type, T.UNREGISTER_ACK);
    const lock = await lockDatabase(t, srv.storePath);
    const t0 = Date.now();
    const f = await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 4000 });
    const took = Date.now() - t0;
    expectError(f, 408);
    assert.ok(took >= 250, `408 after ${took} ms, before registration_timeout`);
    /* not registered: UNREGISTER says 404 */
    expectError(await a.unregister(), 404);
    await lock.release();
    /* b (same identity) can register: nothing half-done holds the client_id */
    const ok = await until(async () => {
        const r = await b.register();
        if (r.type === T.REGISTER_ACK) return r;
        const retry = r.type === T.ERROR && [408, 503].includes(r.json.error_code);
        throw Object.assign(new Error(`REGISTER answered ${desc(r)}`), { fatal: !retry });
    }, 10000, 'REGISTER to succeed after the lock is released');
    assert.equal(ok.json.client_id, 'test_client_1');
    expectError(await a.register(), 409);
});
