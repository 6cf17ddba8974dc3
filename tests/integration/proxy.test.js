'use strict';
/*
 * Behind a TCP load balancer (issue 5 item 4): PROXY protocol v1/v2/auto from
 * server.trusted_proxies only.
 *
 * - A real HAProxy (Debian `haproxy`, mode tcp, send-proxy-v2, health checks on
 *   GET /ready) in front of two instances: the server logs the client's own
 *   address (a socket bound to 127.0.0.2), not HAProxy's (127.0.0.1); draining
 *   one instance (SIGTERM) sends its clients DISCONNECT 1001 reconnect:true,
 *   HAProxy marks it DOWN because /ready answers 503 (seen in `show stat` as
 *   L7STS/503 while the instance is still running), and the clients reconnecting
 *   through HAProxy land on the other instance (its /health registered_clients
 *   and its upgrade log lines).
 * - v1, v2 and auto directly, with headers crafted on raw sockets: the source
 *   address is logged and used by limits.connect_rate; an untrusted peer's header
 *   is just bad HTTP (400); a malformed header from a trusted peer closes the
 *   connection; a trusted peer that sends nothing is closed by connection_timeout.
 * - --check-config refuses a bad server.trusted_proxies, naming the key.
 *
 * Without haproxy installed the HAProxy tests are skipped with a message
 * (scripts/deps.sh test installs it).
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, runServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, P, until, describe: desc } = require('./lib/client');
const { keysEnv, cid, tok } = require('./lib/rooms');
const { startHaproxy, haproxyPath } = require('./lib/haproxy');
const {
    openRaw, httpVia, upgradeVia, getText, proxyV1, proxyV2, wsFrom, wsWithPrefix,
} = require('./lib/rawnet');

const opts = { timeout: TEST_TIMEOUT };
const HAPROXY = haproxyPath();
const hpOpts = { ...opts, timeout: 30000, skip: HAPROXY ? false : 'haproxy not installed (Debian package `haproxy`)' };

function proxyEnv(mode, extra = {})
{
    return {
        SIGNAL_MANAGER_STORE_BACKEND: 'memory',
        SIGNAL_MANAGER_SERVER_PROXY_PROTOCOL: mode,
        SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES: '127.0.0.1/32',
        SIGNAL_MANAGER_LOGGING_LEVEL: 'debug',
        ...extra,
    };
}

const upgrades = (srv) => srv.logs.filter((j) => j.msg === 'websocket upgrade');
const LOCAL = proxyV2({ local: true });

/* GET path on an instance that expects a PROXY v2 header from 127.0.0.1: send LOCAL. */
async function getLocal(srv, path)
{
    const r = await httpVia(srv.port, getText(path), { prefix: LOCAL });
    assert.ok(r.status, `GET ${path} with a PROXY v2 LOCAL header: no HTTP answer (${JSON.stringify(r.raw)})`);
    return { status: r.status, json: JSON.parse(r.body) };
}

async function viaHaproxy(hp, i)
{
    const c = wsFrom(`ws://127.0.0.1:${hp.port}/`, '127.0.0.2');
    await c.connect();
    await c.hello(cid(i), tok(i));
    const f = await c.register();
    assert.equal(f.type, T.REGISTER_ACK, `REGISTER ${cid(i)} through haproxy: ${desc(f)}`);
    c.idx = i;
    return c;
}

async function twoBehindHaproxy(t, extra = {})
{
    const env = proxyEnv('v2', { ...keysEnv(12), ...extra });
    const a = await startServer(t, { env });
    const b = await startServer(t, { env });
    const hp = await startHaproxy(t, { servers: [{ name: 'sm1', port: a.port }, { name: 'sm2', port: b.port }] });
    t.after(() => {
        if (process.env.SM_SHOW_LOGS) process.stderr.write(`--- haproxy ---\n${hp.output}\n`);
    });
    await hp.waitStatus('sm1', /^UP/, 5000);
    await hp.waitStatus('sm2', /^UP/, 5000);
    return { a, b, hp };
}

test('HAProxy send-proxy-v2: both instances see the client address 127.0.0.2, not the proxy', hpOpts, async (t) => {
    const { a, b, hp } = await twoBehindHaproxy(t);
    const clients = [];
    for (let i = 1; i <= 4; i++) clients.push(await viaHaproxy(hp, i));
    for (const c of clients) assert.equal((await c.pingFrame()).type, T.PING_ACK);
    /* log lines may trail the replies a little */
    await until(() => upgrades(a).length + upgrades(b).length >= 4 || undefined, 3000, '4 upgrade log lines');
    const ua = upgrades(a);
    const ub = upgrades(b);
    assert.equal(ua.length + ub.length, 4, `4 upgrades logged: ${JSON.stringify([...ua, ...ub])}`);
    assert.ok(ua.length >= 1 && ub.length >= 1, `roundrobin used both instances (${ua.length} + ${ub.length})`);
    for (const u of [...ua, ...ub]) assert.equal(u.peer, '127.0.0.2', `peer in ${JSON.stringify(u)}`);
    /* each instance counts the clients it holds */
    const ha = await getLocal(a, '/health');
    const hb = await getLocal(b, '/health');
    assert.equal(ha.json.registered_clients + hb.json.registered_clients, 4);
    assert.equal(ha.json.registered_clients, ua.length);
    /* plain HTTP through haproxy works too */
    const h = await httpVia(hp.port, getText('/health'), { localAddress: '127.0.0.3' });
    assert.equal(h.status, 200, h.raw);
    /* haproxy's own checks never got a bad-header complaint */
    const bad = [...a.logs, ...b.logs].filter((j) => /PROXY/.test(j.msg));
    assert.deepEqual(bad, [], 'no PROXY header errors from haproxy traffic');
});

test('draining one instance behind HAProxy: DISCONNECT 1001, /ready 503 marks it DOWN, clients reconnect to the other', hpOpts, async (t) => {
    const { a, b, hp } = await twoBehindHaproxy(t, {
        SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '8s', SIGNAL_MANAGER_SERVER_DRAIN_SPREAD: '200ms',
    });
    const N = 8;
    const clients = [];
    for (let i = 1; i <= N; i++) clients.push(await viaHaproxy(hp, i));
    const onA = (await getLocal(a, '/health')).json.registered_clients;
    assert.ok(onA >= 1 && onA < N, `clients spread over both instances (${onA} on the first)`);
    assert.equal((await getLocal(a, '/ready')).status, 200);

    /* a WebSocket on A that never answers the close keeps A draining for a while
     * (closing grace), so that A is still up while haproxy checks it */
    const straggler = await upgradeVia(a.port, { prefix: LOCAL, t });
    assert.equal(straggler.status, 101);
    await a.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '127.0.0.1', 3000, 'the straggler\'s upgrade log line');
    const aUpgrades = upgrades(a).length;
    const bUpgrades = upgrades(b).length;

    a.kill('SIGTERM');
    await a.waitLog((j) => j.msg === 'draining', 5000, 'the "draining" log line');
    const ready = await getLocal(a, '/ready');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.json, { status: 'draining' });

    /* exactly A's clients are told to go, with reconnect: true */
    const moved = [];
    await until(() => clients.filter((c) => c.closed).length === onA || undefined, 5000,
        `${onA} clients of the drained instance to be closed`);
    for (const c of clients) {
        if (!c.closed) continue;
        assert.equal(c.closed.code, 1001, `close ${c.closed.code}; ${c.history()}`);
        const notice = c.seen.find((f) => f.type === T.DISCONNECT);
        assert.ok(notice && notice.payloadType === P.JSON, `DISCONNECT before the close; ${c.history()}`);
        assert.deepEqual({ code: notice.json.code, reconnect: notice.json.reconnect }, { code: 1001, reconnect: true });
        moved.push(c);
    }

    /* haproxy marks A down from its /ready answer while A is still running */
    const row = await hp.waitStatus('sm1', /^DOWN/, 5000);
    assert.equal(a.exit, null, 'the drained instance is still running (draining) when haproxy marks it down');
    assert.equal(row.check_status, 'L7STS', `marked down by the HTTP status of /ready: ${JSON.stringify(row)}`);
    assert.equal(row.check_code, '503');
    assert.match((await hp.stat()).get('sm2').status, /^UP/);

    /* reconnecting through haproxy lands on B */
    const back = [];
    for (const c of moved) back.push(await viaHaproxy(hp, c.idx));
    for (const c of back) assert.equal((await c.pingFrame()).type, T.PING_ACK);
    await until(() => upgrades(b).length - bUpgrades >= moved.length || undefined, 3000,
        `${moved.length} new upgrade log lines on B`);
    assert.equal(upgrades(a).length, aUpgrades, 'no upgrade on the draining instance');
    const newOnB = upgrades(b).slice(bUpgrades);
    assert.equal(newOnB.length, moved.length, `the ${moved.length} reconnects were upgraded by B`);
    for (const u of newOnB) assert.equal(u.peer, '127.0.0.2');
    assert.equal((await getLocal(b, '/health')).json.registered_clients, N, 'B holds every client now');
    /* B's own clients were never disturbed */
    for (const c of clients.filter((x) => !x.closed)) assert.equal((await c.pingFrame()).type, T.PING_ACK);

    straggler.conn.destroy();
    const ex = await a.stop({ timeoutMs: 10000 });
    assert.equal(ex.code, 0);
});

test('proxy_protocol v1 from a trusted peer: TCP4/TCP6 sources are logged; UNKNOWN keeps the socket address', opts, async (t) => {
    const srv = await startServer(t, { env: proxyEnv('v1') });
    const c = wsWithPrefix(srv.port, proxyV1('198.51.100.7', '127.0.0.1', 40001, srv.port));
    await c.connect();
    await c.hello('test_client_1', 'test_token_1');
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
    await srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '198.51.100.7', 3000, 'upgrade from 198.51.100.7');

    const six = await upgradeVia(srv.port, { prefix: proxyV1('2001:db8::7', '::1', 40002, srv.port), t });
    assert.equal(six.status, 101, six.raw);
    await srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '2001:db8::7', 3000, 'upgrade from 2001:db8::7');

    const unk = await upgradeVia(srv.port, { prefix: Buffer.from('PROXY UNKNOWN\r\n'), t });
    assert.equal(unk.status, 101, unk.raw);
    await srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '127.0.0.1', 3000, 'upgrade from 127.0.0.1 (UNKNOWN)');

    /* a v2 header is not accepted in v1 mode */
    const v2 = await upgradeVia(srv.port, { prefix: proxyV2({ src: '198.51.100.8', dst: '127.0.0.1', sport: 1, dport: 2 }), t });
    assert.equal(v2.status, null, `v2 header in v1 mode: ${JSON.stringify(v2.raw)}`);
    for (const r of [six, unk]) r.conn.destroy();
});

test('proxy_protocol v2 and auto: crafted headers, LOCAL, a header split over several writes', opts, async (t) => {
    const v2srv = await startServer(t, { env: proxyEnv('v2') });
    const hdr = proxyV2({ src: '203.0.113.5', dst: '127.0.0.1', sport: 50000, dport: v2srv.port });
    const c = wsWithPrefix(v2srv.port, hdr);
    await c.connect();
    await c.hello('test_client_1', 'test_token_1');
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
    await v2srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '203.0.113.5', 3000, 'upgrade from 203.0.113.5');
    /* TLVs after the addresses are skipped */
    const tlv = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]); /* PP2_TYPE_NOOP "abc" */
    const withTlv = await upgradeVia(v2srv.port, { prefix: proxyV2({ src: '2001:db8::42', dst: '::1', sport: 1, dport: 2, tlv }), t });
    assert.equal(withTlv.status, 101, withTlv.raw);
    await v2srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '2001:db8::42', 3000, 'upgrade from 2001:db8::42');
    /* v1 is not v2 */
    const v1 = await upgradeVia(v2srv.port, { prefix: proxyV1('198.51.100.1', '127.0.0.1', 1, 2), t });
    assert.equal(v1.status, null, `v1 header in v2 mode: ${JSON.stringify(v1.raw)}`);

    /* the header and the request in small pieces */
    const conn = await openRaw(v2srv.port, { t });
    conn.sock.setNoDelay(true);
    const split = proxyV2({ src: '203.0.113.77', dst: '127.0.0.1', sport: 50001, dport: v2srv.port });
    const req = Buffer.from(getText('/ready'));
    for (const piece of [split.subarray(0, 7), split.subarray(7, 17), split.subarray(17), req.subarray(0, 5), req.subarray(5)]) {
        await new Promise((r) => conn.sock.write(piece, r));
        await new Promise((r) => setImmediate(r));
    }
    await conn.waitEnd(3000);
    assert.match(conn.data.toString('latin1'), /^HTTP\/1\.1 200 /, JSON.stringify(conn.data.toString('latin1')));

    const auto = await startServer(t, { env: proxyEnv('auto') });
    const a1 = await upgradeVia(auto.port, { prefix: proxyV1('198.51.100.21', '127.0.0.1', 1, 2), t });
    const a2 = await upgradeVia(auto.port, { prefix: proxyV2({ src: '198.51.100.22', dst: '127.0.0.1', sport: 1, dport: 2 }), t });
    const a3 = await upgradeVia(auto.port, { prefix: LOCAL, t });
    assert.deepEqual([a1.status, a2.status, a3.status], [101, 101, 101]);
    await auto.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '198.51.100.21', 3000, 'auto: v1 source');
    await auto.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '198.51.100.22', 3000, 'auto: v2 source');
    await auto.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '127.0.0.1', 3000, 'auto: LOCAL keeps the socket address');
    /* auto still needs a header from a trusted peer */
    const none = await httpVia(auto.port, getText('/health'));
    assert.equal(none.status, null, `auto mode, trusted peer without a header: ${JSON.stringify(none.raw)}`);
    for (const r of [withTlv, a1, a2, a3]) r.conn.destroy();
});

test('an untrusted peer is not believed: its PROXY header is bad HTTP (400); without one it is served as itself', opts, async (t) => {
    for (const mode of ['v1', 'v2', 'auto']) {
        const srv = await startServer(t, { env: proxyEnv(mode) });
        const r1 = await httpVia(srv.port, getText('/health'), { prefix: proxyV1('198.51.100.99', '127.0.0.1', 1, 2), localAddress: '127.0.0.2' });
        assert.equal(r1.status, 400, `${mode}: v1 header from an untrusted peer: ${JSON.stringify(r1.raw.slice(0, 80))}`);
        const r2 = await httpVia(srv.port, getText('/health'), { prefix: proxyV2({ src: '198.51.100.98', dst: '127.0.0.1', sport: 1, dport: 2 }), localAddress: '127.0.0.2' });
        assert.ok(r2.status === 400 || r2.status === null, `${mode}: v2 header from an untrusted peer: ${JSON.stringify(r2.raw.slice(0, 80))}`);
        /* the same peer without a header is an ordinary client */
        const c = wsFrom(srv.url, '127.0.0.2');
        await c.connect();
        await c.hello('test_client_1', 'test_token_1');
        assert.equal((await c.pingFrame()).type, T.PING_ACK);
        await srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '127.0.0.2', 3000, `${mode}: upgrade from 127.0.0.2`);
        assert.ok(!upgrades(srv).some((u) => /^198\.51\.100\./.test(u.peer)), `${mode}: a spoofed address was believed`);
        c.close();
        await c.waitClose();
    }
});

test('a malformed PROXY header from a trusted peer closes the connection; a silent one times out', opts, async (t) => {
    const srv = await startServer(t, { env: proxyEnv('auto', { SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '600ms' }) });
    const bad = [
        ['an address out of range', Buffer.from('PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n')],
        ['a TCP6 line with IPv4 addresses', Buffer.from('PROXY TCP6 1.2.3.4 127.0.0.1 1 2\r\n')],
        ['a port with a leading zero', Buffer.from('PROXY TCP4 1.2.3.4 127.0.0.1 01 2\r\n')],
        ['double spaces', Buffer.from('PROXY  TCP4 1.2.3.4 127.0.0.1 1 2\r\n')],
        ['a v1 line without CRLF past 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)],
        ['a v2 header with version 3', (() => { const b = proxyV2({ src: '1.2.3.4', dst: '5.6.7.8', sport: 1, dport: 2 }); b[12] = 0x31; return b; })()],
        ['a v2 header with a length too short for INET', (() => { const b = proxyV2({ src: '1.2.3.4', dst: '5.6.7.8', sport: 1, dport: 2 }); b.writeUInt16BE(4, 14); return b; })()],
        ['a v2 header with a huge length', (() => { const b = proxyV2({ src: '1.2.3.4', dst: '5.6.7.8', sport: 1, dport: 2 }); b.writeUInt16BE(60000, 14); return b; })()],
        ['plain HTTP (no header)', Buffer.alloc(0)],
    ];
    for (const [what, prefix] of bad) {
        const n = srv.logs.length;
        const t0 = Date.now();
        const r = await httpVia(srv.port, getText('/health'), { prefix, timeoutMs: 3000 });
        assert.equal(r.status, null, `${what}: answered ${JSON.stringify(r.raw.slice(0, 80))}`);
        assert.equal(r.raw, '', `${what}: nothing is written back`);
        assert.ok(Date.now() - t0 < 500, `${what}: closed at once, not by the connection timeout (${Date.now() - t0} ms)`);
        await srv.waitLog((j) => srv.logs.indexOf(j) >= n && j.msg === 'bad PROXY header from a trusted proxy',
            3000, `the warning for ${what}`);
    }
    /* a trusted peer that sends nothing, or half a header, is closed by connection_timeout */
    const t0 = Date.now();
    const silent = await openRaw(srv.port, { t });
    const half = await openRaw(srv.port, { t });
    half.write(proxyV2({ src: '1.2.3.4', dst: '5.6.7.8', sport: 1, dport: 2 }).subarray(0, 20));
    await silent.waitEnd(3000);
    await half.waitEnd(3000);
    for (const [what, c] of [['silent', silent], ['half a header', half]]) {
        const ms = c.endedAt - t0;
        assert.ok(ms >= 450 && ms < 2500, `${what}: closed after ${ms} ms with connection_timeout 600 ms`);
    }
    /* still serving */
    const ok = await httpVia(srv.port, getText('/health'), { prefix: LOCAL });
    assert.equal(ok.status, 200);
});

test('limits.connect_rate counts the PROXY source address, not the proxy', opts, async (t) => {
    const srv = await startServer(t, {
        env: proxyEnv('v1', {
            SIGNAL_MANAGER_SERVER_IO_THREADS: '1',
            SIGNAL_MANAGER_LIMITS_CONNECT_RATE: '2',
            SIGNAL_MANAGER_LIMITS_CONNECT_BURST: '2',
        }),
    });
    const from = (ip) => upgradeVia(srv.port, { prefix: proxyV1(ip, '127.0.0.1', 40000, srv.port), t });
    const flood = await Promise.all(Array.from({ length: 8 }, () => from('198.51.100.1')));
    const st = flood.map((r) => r.status);
    assert.ok(st.filter((s) => s === 429).length >= 4, `flood from 198.51.100.1 through the proxy: ${st}`);
    assert.ok(st.every((s) => s === 101 || s === 429), `${st}`);
    /* same proxy connection source (127.0.0.1), another client address: allowed */
    const other = await from('198.51.100.2');
    assert.equal(other.status, 101, `another client behind the same proxy: HTTP ${other.status}`);
    for (const r of [...flood, other]) r.conn.destroy();
});

test('--check-config refuses a bad server.trusted_proxies, naming the key and the item', opts, async (t) => {
    const bad = await runServer({ args: ['--check-config'], env: proxyEnv('v2', { SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES: 'garbage' }) });
    const out = bad.stderr + bad.stdout;
    assert.equal(bad.listening, false, '--check-config must not start the server');
    assert.ok(bad.code !== null && bad.code !== 0, `exit ${bad.code} (signal ${bad.signal})\n${out}`);
    assert.match(out, /server\.trusted_proxies: item 1 "garbage": not an IPv4 or IPv6 address/, out);

    const good = await runServer({ args: ['--check-config'], env: proxyEnv('v2', { SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES: '10.0.0.0/8, ::1' }) });
    assert.equal(good.listening, false, '--check-config must not start the server');
    assert.equal(good.code, 0, `a good list: exit ${good.code}\n${good.stderr}${good.stdout}`);
});
