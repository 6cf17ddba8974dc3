'use strict';
/* Store failures on REGISTER (DECISIONS.md §3 "nothing is left half-done", §4). */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, until, expectError, describe: desc } = require('./lib/client');
const { lockDatabase } = require('./lib/sqlite_lock');

const opts = { timeout: TEST_TIMEOUT };
const FAST_STORE = {
    SIGNAL_MANAGER_STORE_BACKEND: 'sqlite',
    SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '100ms',
    SIGNAL_MANAGER_DATABASE_RETRY_ATTEMPTS: '2',
    SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL: '50',
    SIGNAL_MANAGER_SERVER_REGISTRATION_TIMEOUT: '10s',
};

/* REGISTER until ACK, retrying only while the store is still reported unavailable. */
function registerAfterRecovery(c, timeoutMs = 10000)
{
    return until(async () => {
        const r = await c.register();
        if (r.type === T.REGISTER_ACK) return r;
        const retry = r.type === T.ERROR && [408, 503].includes(r.json.error_code);
        throw Object.assign(new Error(`REGISTER answered ${desc(r)}`), { fatal: !retry });
    }, timeoutMs, 'REGISTER to succeed after the store recovered');
}

test('REGISTER while the database is locked -> ERROR 503; not registered; ok after the lock is gone', opts, async (t) => {
    const srv = await startServer(t, { env: FAST_STORE });
    const a = await srv.connect('test_client_1', 'test_token_1');
    const b = await srv.connect('test_client_1', 'test_token_1');
    /* first REGISTER/UNREGISTER makes sure the schema exists before we lock */
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    assert.equal((await a.unregister()).type, T.UNREGISTER_ACK);

    const lock = await lockDatabase(t, srv.storePath);
    const f = await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 5000 });
    expectError(f, 503);
    /* the connection and the rest of the protocol keep working */
    assert.equal((await a.pingFrame()).type, T.PING_ACK);
    expectError(await a.unregister(), 404);
    /* a second failure while still locked, from the other connection */
    expectError(await b.request(T.REGISTER, b.registerPayload(), { timeoutMs: 5000 }), 503);
    expectError(await b.unregister(), 404);

    await lock.release();
    const ok = await registerAfterRecovery(b);
    assert.equal(ok.json.client_id, 'test_client_1');
    /* b holds it now; a failed REGISTER left nothing that would let a in */
    expectError(await a.register(), 409);
    assert.equal((await b.unregister()).type, T.UNREGISTER_ACK);
    assert.equal((await a.register()).type, T.REGISTER_ACK);
});

test('a registration that was live before the store failed stays live', opts, async (t) => {
    const srv = await startServer(t, { env: FAST_STORE });
    const a = await srv.connect('test_client_1', 'test_token_1');
    const b = await srv.connect('test_client_2', 'test_token_2');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    const lock = await lockDatabase(t, srv.storePath);
    expectError(await b.request(T.REGISTER, b.registerPayload(), { timeoutMs: 5000 }), 503);
    /* a is still registered: a second REGISTER is 409, not a fresh attempt */
    expectError(await a.register(), 409);
    await lock.release();
    assert.equal((await registerAfterRecovery(b)).type, T.REGISTER_ACK);
});

test('store locked before any client registered (first write fails) -> 503, then recovery', opts, async (t) => {
    const srv = await startServer(t, { env: FAST_STORE });
    const a = await srv.connect('test_client_1', 'test_token_1');
    /* the server creates its database at start-up; lock it right away */
    assert.ok(fs.existsSync(srv.storePath), `no database file at ${srv.storePath} after start-up`);
    const lock = await lockDatabase(t, srv.storePath);
    expectError(await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 5000 }), 503);
    await lock.release();
    assert.equal((await registerAfterRecovery(a)).type, T.REGISTER_ACK);
});
