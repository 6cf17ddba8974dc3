'use strict';
/*
 * Rate limits and caps (issue 5 item 3): limits.connect_rate/_burst per source
 * address -> HTTP 429 + Retry-After before the upgrade, without hurting a client
 * from another address; limits.message_rate/_burst per connection -> ERROR 429
 * (uuid echoed), then DISCONNECT "rate limit exceeded" + close 1008 on sustained
 * abuse, without hurting another connection; limits.max_concurrent_registrations
 * -> ERROR 503; and the counters signal_manager_connect_rejected_total and
 * signal_manager_messages_rate_limited_total.
 *
 * Another client address: Linux routes all of 127.0.0.0/8 to lo, so a socket
 * bound to 127.0.0.2 reaches the server on 127.0.0.1 as a different source.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, Client, until, expectError, describe: desc } = require('./lib/client');
const { makeCerts } = require('./lib/certs');
const { metrics, health } = require('./lib/util');
const { keysEnv, cid, tok } = require('./lib/rooms');
const { upgradeVia, wsFrom } = require('./lib/rawnet');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };
const v = (m, k) => m.get(k) || 0;

test('connect flood from one address -> HTTP 429 with Retry-After; another address still connects', opts, async (t) => {
    const srv = await startServer(t, {
        env: {
            ...MEM,
            SIGNAL_MANAGER_SERVER_IO_THREADS: '1',
            SIGNAL_MANAGER_LIMITS_CONNECT_RATE: '5',
            SIGNAL_MANAGER_LIMITS_CONNECT_BURST: '5',
        },
    });
    const m0 = (await metrics(srv)).values;
    const N = 16;
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: N }, () => upgradeVia(srv.port, { t })));
    const took = (Date.now() - t0) / 1000;
    const ok = results.filter((r) => r.status === 101);
    const limited = results.filter((r) => r.status === 429);
    const other = results.filter((r) => r.status !== 101 && r.status !== 429);
    t.diagnostic(`${N} upgrades in ${took} s: ${ok.length} x 101, ${limited.length} x 429`);
    assert.deepEqual(other.map((r) => r.status), [], `only 101 and 429 expected: ${other.map((r) => JSON.stringify(r.raw)).join(' | ')}`);
    /* burst 5, plus what 5/s refilled while the flood lasted */
    const allowed = 5 + Math.floor(took * 5) + 1;
    assert.ok(ok.length >= 5 && ok.length <= allowed, `${ok.length} upgrades accepted in ${took} s (burst 5, rate 5/s)`);
    assert.ok(limited.length >= 1 && limited.length >= N - allowed, `${limited.length} of ${N} refused with 429`);
    for (const r of limited) {
        assert.match(r.headers['retry-after'] || '', /^[1-9]\d*$/, `429 with Retry-After: ${r.raw}`);
        assert.match(r.headers.connection || '', /close/i);
        assert.ok(r.conn.ended, 'the 429 connection is closed by the server');
    }

    /* a client from another loopback address is not affected */
    const other2 = wsFrom(srv.url, '127.0.0.2');
    await other2.connect();
    await other2.hello('test_client_1', 'test_token_1');
    assert.equal((await other2.pingFrame()).type, T.PING_ACK);
    /* the upgraded flood connections still work too (the limit is on new ones) */
    assert.ok(ok.every((r) => !r.conn.ended), 'accepted connections stay open');

    const m1 = (await metrics(srv)).values;
    assert.equal(v(m1, 'signal_manager_connect_rejected_total') - v(m0, 'signal_manager_connect_rejected_total'),
        limited.length, 'connect_rejected_total counts each 429');

    /* the bucket refills: the flooding address gets in again after a while */
    const back = await until(async () => {
        const r = await upgradeVia(srv.port, { t });
        if (r.status !== 101) throw new Error(`HTTP ${r.status}`);
        return r;
    }, 5000, 'an upgrade from 127.0.0.1 after the refill', 100);
    back.conn.destroy();
    for (const r of ok) r.conn.destroy();
});

test('message flood -> ERROR 429 (uuid echoed), then DISCONNECT "rate limit exceeded" + close 1008; other clients unaffected', opts, async (t) => {
    const srv = await startServer(t, {
        env: { ...MEM, SIGNAL_MANAGER_LIMITS_MESSAGE_RATE: '5', SIGNAL_MANAGER_LIMITS_MESSAGE_BURST: '5' },
    });
    const m0 = (await metrics(srv)).values;
    const a = await srv.connect('test_client_1', 'test_token_1');
    const b = await srv.connect('test_client_2', 'test_token_2');
    assert.equal((await b.pingFrame()).type, T.PING_ACK);

    const sent = new Set();
    for (let i = 0; i < 40; i++) sent.add(a.send(T.PING, { timestamp: Date.now() }));
    const cl = await a.waitClose(5000);
    assert.equal(cl.code, 1008, `close ${cl.code} ${cl.reason}; ${a.history()}`);
    const acks = a.seen.filter((f) => f.type === T.PING_ACK);
    const errs = a.seen.filter((f) => f.type === T.ERROR);
    const notice = a.seen.find((f) => f.type === T.DISCONNECT);
    t.diagnostic(`40 PINGs at once: ${acks.length} PING_ACK, ${errs.length} ERROR 429, then close ${cl.code}`);
    assert.ok(acks.length >= 1 && acks.length <= 5, `${acks.length} PING_ACKs before the limit (burst 5, CONNECT took one)`);
    assert.ok(errs.length >= 1, `ERROR 429 before the close; ${a.history()}`);
    for (const e of errs) {
        expectError(e, 429);
        assert.ok(sent.has(e.uuid), `ERROR 429 echoes a PING uuid: ${desc(e)}`);
    }
    assert.ok(notice, `DISCONNECT notice before close 1008; ${a.history()}`);
    assert.equal(notice.json.reason, 'rate limit exceeded');
    assert.equal(notice.json.code, 1008);
    /* every reply came in order: ACKs, then the 429s, then the notice */
    const order = a.seen.map((f) => f.type).filter((x) => x !== T.CONNECT_ACK);
    const lastAck = order.lastIndexOf(T.PING_ACK);
    const firstErr = order.indexOf(T.ERROR);
    assert.ok(lastAck < firstErr && order.indexOf(T.DISCONNECT) === order.length - 1, `reply order ${order.map((x) => x.toString(16))}`);

    /* the other connection on the same server keeps getting PING_ACK */
    for (let i = 0; i < 3; i++) assert.equal((await b.pingFrame()).type, T.PING_ACK, b.history());
    assert.ok(b.isOpen);

    const m1 = (await metrics(srv)).values;
    const counted = v(m1, 'signal_manager_messages_rate_limited_total') - v(m0, 'signal_manager_messages_rate_limited_total');
    assert.ok(counted >= errs.length + 1, `messages_rate_limited_total moved by ${counted}, ${errs.length} ERROR 429 + the closing one`);
});

test('a short burst over message_rate gets ERROR 429 but the connection stays and recovers', opts, async (t) => {
    const srv = await startServer(t, {
        env: { ...MEM, SIGNAL_MANAGER_LIMITS_MESSAGE_RATE: '5', SIGNAL_MANAGER_LIMITS_MESSAGE_BURST: '5' },
    });
    const a = await srv.connect('test_client_1', 'test_token_1');
    const uuids = [];
    for (let i = 0; i < 7; i++) uuids.push(a.send(T.PING, { timestamp: Date.now() }));
    const replies = [];
    for (const u of uuids) replies.push(await a.next((f) => f.uuid === u, 5000, `the reply to PING ${u}`));
    const acks = replies.filter((f) => f.type === T.PING_ACK).length;
    const errs = replies.filter((f) => f.type === T.ERROR);
    assert.ok(acks >= 3 && errs.length >= 1, `replies: ${replies.map(desc).join(' | ')}`);
    errs.forEach((e) => expectError(e, 429));
    assert.ok(a.isOpen, `still open after a short burst; ${a.history()}`);
    /* slow down: after the refill PINGs are answered again */
    await until(async () => {
        const f = await a.pingFrame();
        if (f.type === T.PING_ACK) return f;
        expectError(f, 429);
        return undefined;
    }, 5000, 'a PING_ACK after slowing down', 300);
    assert.ok(a.isOpen, a.history());
});

test('limits.max_concurrent_registrations = 2: a third REGISTER gets ERROR 503; room again after an UNREGISTER', opts, async (t) => {
    const srv = await startServer(t, {
        env: { ...MEM, ...keysEnv(3), SIGNAL_MANAGER_LIMITS_MAX_CONCURRENT_REGISTRATIONS: '2' },
    });
    const c = [];
    for (let i = 1; i <= 3; i++) c.push(await srv.connect(cid(i), tok(i)));
    assert.equal((await c[0].register()).type, T.REGISTER_ACK);
    assert.equal((await c[1].register()).type, T.REGISTER_ACK);
    const third = await c[2].register();
    expectError(third, 503, /registrations/i);
    assert.equal((await health(srv)).json.registered_clients, 2);
    /* the refused client is still connected and usable */
    assert.equal((await c[2].pingFrame()).type, T.PING_ACK);
    assert.equal((await c[0].unregister()).type, T.UNREGISTER_ACK);
    assert.equal((await c[2].register()).type, T.REGISTER_ACK);
    expectError(await c[0].register(), 503, /registrations/i);
    assert.equal((await health(srv)).json.registered_clients, 2);
});

/* limits.max_pending_output: a reader that stops reading while the server
 * keeps answering gets the DISCONNECT notice and close 1008 once its unsent
 * output passes the limit, over TLS exactly as in the clear (the TLS case once
 * lost the notice: queued records were dropped mid-sequence). */
for (const tls of [false, true]) {
    test(`slow consumer over ${tls ? 'wss' : 'ws'} -> DISCONNECT notice + close 1008`, opts, async (t) => {
        const env = {
            ...MEM,
            SIGNAL_MANAGER_LIMITS_MAX_PENDING_OUTPUT: '4096',
            SIGNAL_MANAGER_LIMITS_MESSAGE_RATE: '0',
        };
        let wsOptions;
        if (tls) {
            const k = makeCerts();
            Object.assign(env, {
                SIGNAL_MANAGER_SERVER_TLS_ENABLED: 'true',
                SIGNAL_MANAGER_SERVER_TLS_CERT_PATH: k.cert,
                SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: k.key,
            });
            wsOptions = { ca: fs.readFileSync(k.ca), servername: 'localhost' };
        }
        const srv = await startServer(t, { env });
        const c = new Client(`${tls ? 'wss' : 'ws'}://127.0.0.1:${srv.port}/`, wsOptions ? { wsOptions } : {});
        await c.connect();
        await c.hello('test_client_1', 'test_token_1');
        c.ws._socket.pause(); /* stop reading: the PING_ACKs pile up in the server */
        const slow = () => srv.logs.some((j) => j.msg === 'slow consumer closed');
        await until(() => {
            for (let i = 0; i < 2000; i++) c.send(T.PING, { timestamp: Date.now() });
            return slow();
        }, 20000, 'the server to log "slow consumer closed"', 5);
        c.ws._socket.resume();
        const cl = await c.waitClose(10000);
        assert.equal(cl.code, 1008, `close ${cl.code} ${cl.reason}; ${c.history()}`);
        const notices = c.seen.filter((f) => f.type === T.DISCONNECT);
        assert.equal(notices.length, 1, c.history());
        assert.equal(notices[0].json.code, 1008);
    });
}
