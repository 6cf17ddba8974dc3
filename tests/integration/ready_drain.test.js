'use strict';
/*
 * Readiness and the jittered drain (issue 5 item 6): GET /ready is 200 only while
 * listening, not draining and with the store answering (503 {"status":"draining"}
 * during a drain, 503 once SM_STORE_UNHEALTHY_AFTER store operations failed in a
 * row); on SIGTERM the clients are closed in random order, in batches spread over
 * server.drain_spread (capped at half of server.drain_timeout), or all at once
 * with drain_spread = 0.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, httpGet, rawUpgrade, until, expectError, describe: desc } = require('./lib/client');
const { health } = require('./lib/util');
const { keysEnv, cid, tok } = require('./lib/rooms');
const { lockDatabase } = require('./lib/sqlite_lock');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };
/* src/store/store.h SM_STORE_UNHEALTHY_AFTER */
const UNHEALTHY_AFTER = 3;

async function ready(srv, method = 'GET')
{
    const r = await httpGet(srv.port, '/ready', { method });
    return { status: r.status, body: r.body, headers: r.headers, json: method === 'HEAD' ? null : JSON.parse(r.body) };
}

test('/ready: 200 {"status":"ready"} when serving (GET and HEAD); 503 {"status":"draining"} during a drain', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '4s' } });
    const r = await ready(srv);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { status: 'ready' });
    assert.match(r.headers['content-type'] || '', /application\/json/);
    const h = await ready(srv, 'HEAD');
    assert.equal(h.status, 200);
    assert.equal(h.body, '');
    assert.equal(h.headers['content-length'], String(Buffer.byteLength(r.body)));

    /* a WebSocket that never answers the close keeps the drain going for a while */
    const straggler = await rawUpgrade(srv.port);
    t.after(() => straggler.sock.destroy());
    const c = await srv.connect('test_client_1', 'test_token_1');
    srv.kill('SIGTERM');
    await srv.waitLog((j) => j.msg === 'draining', 5000, 'the "draining" log line');
    const d = await ready(srv);
    assert.equal(d.status, 503, d.body);
    assert.deepEqual(d.json, { status: 'draining' });
    assert.equal((await ready(srv, 'HEAD')).status, 503);
    /* /health stays the liveness answer: it says draining, it does not disappear */
    const hl = await health(srv);
    assert.equal(hl.json.status, 'draining');
    assert.equal((await c.waitClose(5000)).code, 1001);
    straggler.sock.destroy();
    await srv.stop({ timeoutMs: 8000 });
});

test('/ready: 503 while the store is unavailable, 200 again once it answers', opts, async (t) => {
    const srv = await startServer(t, {
        env: {
            SIGNAL_MANAGER_STORE_BACKEND: 'sqlite',
            SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '100ms',
            SIGNAL_MANAGER_DATABASE_RETRY_ATTEMPTS: '1',
            SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL: '10',
        },
    });
    const a = await srv.connect('test_client_1', 'test_token_1');
    /* the schema exists and the store answers */
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    assert.equal((await a.unregister()).type, T.UNREGISTER_ACK);
    assert.equal((await ready(srv)).status, 200);

    const lock = await lockDatabase(t, srv.storePath);
    const first = await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 5000 });
    expectError(first, 503);
    let failures = 1;
    let r = await ready(srv);
    while (r.status === 200 && failures < UNHEALTHY_AFTER) {
        expectError(await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 5000 }), 503);
        failures++;
        r = await ready(srv);
    }
    t.diagnostic(`/ready turned 503 after ${failures} failed REGISTERs`);
    assert.equal(failures, UNHEALTHY_AFTER, `/ready turned 503 after ${failures} failed operations, store.h says ${UNHEALTHY_AFTER}`);
    assert.equal(r.status, 503, `/ready after ${failures} failed REGISTERs (store unhealthy after ${UNHEALTHY_AFTER} failed operations): ${r.body}`);
    assert.equal(r.json.reason, 'store unavailable', r.body);
    assert.notEqual(r.json.status, 'ready');
    const h = await health(srv);
    assert.equal(h.json.store.healthy, false, JSON.stringify(h.json));
    /* the connection itself is still served */
    assert.equal((await a.pingFrame()).type, T.PING_ACK);

    await lock.release();
    await until(async () => {
        const f = await a.register();
        if (f.type === T.REGISTER_ACK) return f;
        throw Object.assign(new Error(desc(f)), { fatal: !(f.type === T.ERROR && [408, 503].includes(f.json.error_code)) });
    }, 8000, 'REGISTER to succeed after the lock is gone');
    const back = await ready(srv);
    assert.equal(back.status, 200, back.body);
    assert.deepEqual(back.json, { status: 'ready' });
});

/* N connected clients (test_client_1..N), each with the time its DISCONNECT notice arrived. */
async function drainClients(srv, n)
{
    const clients = [];
    for (let i = 1; i <= n; i++) {
        const c = await srv.connect(cid(i), tok(i));
        c.order = i - 1;
        c.ws.prependListener('message', (data) => {
            if (c.noticeAt === undefined && data.length > 1 && data[1] === T.DISCONNECT) c.noticeAt = performance.now();
        });
        clients.push(c);
    }
    return clients;
}

/* Pairs out of order relative to the connection order. */
function inversions(seq)
{
    let n = 0;
    for (let i = 0; i < seq.length; i++) for (let j = i + 1; j < seq.length; j++) if (seq[i] > seq[j]) n++;
    return n;
}

async function drainAndCollect(srv, clients)
{
    const t0 = performance.now();
    srv.kill('SIGTERM');
    for (const c of clients) {
        const cl = await c.waitClose(8000);
        assert.equal(cl.code, 1001, `close ${cl.code} ${cl.reason}; ${c.history()}`);
        const notice = c.seen.find((f) => f.type === T.DISCONNECT);
        assert.ok(notice, `DISCONNECT before the close; ${c.history()}`);
        assert.deepEqual({ code: notice.json.code, reconnect: notice.json.reconnect }, { code: 1001, reconnect: true });
        assert.ok(c.noticeAt !== undefined, 'notice time recorded');
    }
    const byTime = [...clients].sort((x, y) => x.noticeAt - y.noticeAt);
    return {
        t0,
        first: byTime[0].noticeAt - t0,
        last: byTime[byTime.length - 1].noticeAt - t0,
        spread: byTime[byTime.length - 1].noticeAt - byTime[0].noticeAt,
        order: byTime.map((c) => c.order),
        times: byTime.map((c) => c.noticeAt - t0),
    };
}

test('drain_spread = 1s: 40 clients are closed in random order, spread over about a second', opts, async (t) => {
    const N = 40;
    const srv = await startServer(t, {
        env: {
            ...MEM, ...keysEnv(N),
            SIGNAL_MANAGER_SERVER_IO_THREADS: '1',
            SIGNAL_MANAGER_SERVER_DRAIN_SPREAD: '1s',
            SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '4s',
        },
    });
    const clients = await drainClients(srv, N);
    const r = await drainAndCollect(srv, clients);
    t.diagnostic(`notices from ${r.first.toFixed(0)} to ${r.last.toFixed(0)} ms after SIGTERM (spread ${r.spread.toFixed(0)} ms); order ${r.order.join(',')}`);
    assert.ok(r.spread >= 500, `closes spread over ${r.spread.toFixed(0)} ms, expected about 1000 (drain_spread 1s)`);
    assert.ok(r.last < 1000 + 1000, `last close ${r.last.toFixed(0)} ms after SIGTERM, beyond drain_spread 1s`);
    /* batches, not a burst: no 100 ms window holds more than a few of the 40 */
    let most = 0;
    for (let i = 0; i < r.times.length; i++) {
        let k = i;
        while (k < r.times.length && r.times[k] - r.times[i] < 100) k++;
        most = Math.max(most, k - i);
    }
    assert.ok(most <= N / 2, `${most} of ${N} closes within one 100 ms window`);
    /* random order: a shuffle of 40 has ~390 of 780 pairs inverted (sd ~43) */
    const inv = inversions(r.order);
    const max = (N * (N - 1)) / 2;
    assert.ok(inv > 0.15 * max && inv < 0.85 * max, `close order vs connect order: ${inv} of ${max} pairs inverted (${r.order.join(',')})`);
    const ex = await srv.stop();
    assert.equal(ex.code, 0);
    assert.ok(srv.logs.some((j) => j.msg === 'drain complete'), 'drain completed before drain_timeout');
});

test('drain_spread = 0 closes every client at once', opts, async (t) => {
    const N = 40;
    const srv = await startServer(t, {
        env: {
            ...MEM, ...keysEnv(N),
            SIGNAL_MANAGER_SERVER_IO_THREADS: '1',
            SIGNAL_MANAGER_SERVER_DRAIN_SPREAD: '0',
            SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '4s',
        },
    });
    const clients = await drainClients(srv, N);
    const r = await drainAndCollect(srv, clients);
    t.diagnostic(`notices from ${r.first.toFixed(0)} to ${r.last.toFixed(0)} ms after SIGTERM`);
    assert.ok(r.spread < 300, `drain_spread 0: closes spread over ${r.spread.toFixed(0)} ms`);
    await srv.stop();
});

test('drain_spread is capped at half of drain_timeout, so every client still gets a clean close', opts, async (t) => {
    const N = 40;
    const srv = await startServer(t, {
        env: {
            ...MEM, ...keysEnv(N),
            SIGNAL_MANAGER_SERVER_DRAIN_SPREAD: '30s',
            SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '2s',
        },
    });
    const clients = await drainClients(srv, N);
    const r = await drainAndCollect(srv, clients);
    t.diagnostic(`notices from ${r.first.toFixed(0)} to ${r.last.toFixed(0)} ms after SIGTERM`);
    assert.ok(r.last < 1000 + 600, `last close ${r.last.toFixed(0)} ms after SIGTERM; spread capped at drain_timeout/2 = 1 s`);
    assert.ok(r.spread >= 400, `still spread (${r.spread.toFixed(0)} ms)`);
    const ex = await srv.stop();
    assert.equal(ex.code, 0);
    assert.ok(srv.logs.some((j) => j.msg === 'drain complete'), 'drain completed, nobody was cut off by drain_timeout');
    assert.ok(!srv.logs.some((j) => /drain timeout/.test(j.msg)), 'no forced close at drain_timeout');
});
