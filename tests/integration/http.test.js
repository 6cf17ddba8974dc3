'use strict';
/* HTTP on the WebSocket port and the metrics endpoint (DECISIONS.md §7). */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, TEST_TIMEOUT, ROOT } = require('./lib/harness');
const { T, encodeFrame, httpGet, rawHttp, upgradeHeaders, until, expectError } = require('./lib/client');
const { health, metrics } = require('./lib/util');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

test('GET /health -> 200 JSON with the documented fields', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_INSTANCE_ID: 'it-health-1' } });
    const { status, json, res } = await health(srv);
    assert.equal(status, 200, res.raw);
    assert.match(res.headers['connection'] || '', /close/i, 'Connection: close');
    assert.equal(json.status, 'healthy');
    assert.match(json.timestamp, RFC3339);
    assert.ok(Math.abs(Date.parse(json.timestamp) - Date.now()) < 60000, `timestamp ${json.timestamp} is now`);
    for (const k of ['active_connections', 'registered_clients', 'webrtc_sessions']) {
        assert.ok(Number.isInteger(json[k]) && json[k] >= 0, `${k} = ${json[k]}`);
    }
    assert.equal(json.registered_clients, 0);
    assert.equal(json.webrtc_sessions, 0);
    assert.equal(json.version, fs.readFileSync(path.join(ROOT, 'VERSION'), 'utf8').trim());
    assert.equal(json.instance_id, 'it-health-1');
});

test('/health counts connections and registrations', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const base = (await health(srv)).json.active_connections;
    assert.ok(base <= 1, `idle server reports ${base} active connections`);
    const a = await srv.connect('test_client_1', 'test_token_1');
    const b = await srv.connect('test_client_2', 'test_token_2');
    await until(async () => (await health(srv)).json.active_connections === base + 2 || undefined,
        5000, `active_connections = ${base + 2}`);
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    await until(async () => (await health(srv)).json.registered_clients === 1 || undefined,
        5000, 'registered_clients = 1');
    a.close();
    b.terminate();
    await until(async () => {
        const j = (await health(srv)).json;
        return (j.active_connections === base && j.registered_clients === 0) || undefined;
    }, 5000, `active_connections = ${base} and registered_clients = 0 after both closed`);
});

test('GET / without Upgrade -> 426 with a text hint', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const res = await httpGet(srv.port, '/');
    assert.equal(res.status, 426, res.raw);
    assert.ok(res.body.trim().length > 0, 'a short text hint');
});

test('unknown paths -> 404, with or without Upgrade headers', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    for (const p of ['/nope', '/health/x', '/metrics', '/ws']) {
        const res = await httpGet(srv.port, p);
        assert.equal(res.status, 404, `${p}: ${res.raw}`);
    }
    const res = await httpGet(srv.port, '/ws', { headers: upgradeHeaders() });
    assert.equal(res.status, 404, `upgrade on /ws: ${res.raw}`);
    const c = srv.client('/other');
    await assert.rejects(c.connect(), (e) => e.statusCode === 404);
});

test('bad upgrades -> 400 (missing key, version 12, POST)', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const cases = [
        ['missing Sec-WebSocket-Key', 'GET', upgradeHeaders({ 'Sec-WebSocket-Key': null })],
        ['Sec-WebSocket-Version 12', 'GET', upgradeHeaders({ 'Sec-WebSocket-Version': '12' })],
        ['missing Sec-WebSocket-Version', 'GET', upgradeHeaders({ 'Sec-WebSocket-Version': null })],
        ['POST', 'POST', [...upgradeHeaders(), 'Content-Length: 0']],
    ];
    for (const [name, method, headers] of cases) {
        const res = await httpGet(srv.port, '/', { method, headers });
        assert.equal(res.status, 400, `${name}: ${res.raw}`);
    }
    /* the server is fine afterwards */
    await srv.connect('test_client_1', 'test_token_1');
});

test('garbage instead of HTTP closes the socket; the server keeps serving', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    /* either a 400 response or a plain close is acceptable; a hang is not */
    await rawHttp(srv.port, '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n').catch((e) => {
        if (!/incomplete HTTP response|ECONNRESET|bad status line/.test(e.message)) throw e;
    });
    assert.equal((await health(srv)).status, 200);
});

test('at server.max_connections a new upgrade gets 503; a slot frees when one closes', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_MAX_CONNECTIONS: '2' } });
    const a = await srv.connect('test_client_1', 'test_token_1');
    await srv.connect('test_client_2', 'test_token_2');
    const c = srv.client();
    await assert.rejects(c.connect(), (e) => {
        assert.equal(e.statusCode, 503, e.message);
        return true;
    });
    a.close();
    await a.waitClose();
    const d = await until(async () => {
        const x = srv.client();
        try {
            await x.connect();
        } catch (e) {
            if (e.statusCode === 503) return undefined;
            e.fatal = true;
            throw e;
        }
        return x;
    }, 5000, 'an upgrade to succeed after a connection closed');
    await d.hello('test_client_1', 'test_token_1');
});

test('metrics: /metrics lists the documented series', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    assert.ok(Number.isInteger(srv.metricsPort) && srv.metricsPort > 0, 'listening line has metrics_port');
    const c = await srv.connect('test_client_1', 'test_token_1');
    await c.pingFrame();
    c.sendRaw(encodeFrame(0x99, {}).buf);
    expectError(await c.nextOfType(T.ERROR), 400);
    const { text, res } = await metrics(srv);
    assert.match(res.headers['content-type'] || '', /text\/plain/);
    for (const name of ['signal_manager_connections_active', 'signal_manager_connections_total',
        'signal_manager_registered_clients', 'signal_manager_messages_received_total',
        'signal_manager_messages_sent_total', 'signal_manager_errors_total',
        'signal_manager_bytes_received_total', 'signal_manager_bytes_sent_total']) {
        assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'), `series ${name}`);
        assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'), `# TYPE line for ${name}`);
    }
    assert.match(text, /^signal_manager_messages_received_total\{[^}]*type="PING"[^}]*\} /m);
    assert.match(text, /^signal_manager_messages_sent_total\{[^}]*type="PING_ACK"[^}]*\} /m);
    assert.match(text, /^signal_manager_errors_total\{[^}]*code="400"[^}]*\} /m);
});

test('metrics: counters move', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const get = async () => (await metrics(srv)).values;
    const v = (m, k) => m.get(k) || 0;
    const K = {
        pingIn: 'signal_manager_messages_received_total{type="PING"}',
        pingOut: 'signal_manager_messages_sent_total{type="PING_ACK"}',
        err400: 'signal_manager_errors_total{code="400"}',
        connTotal: 'signal_manager_connections_total',
        connActive: 'signal_manager_connections_active',
        reg: 'signal_manager_registered_clients',
        bytesIn: 'signal_manager_bytes_received_total',
        bytesOut: 'signal_manager_bytes_sent_total',
    };
    const m0 = await get();
    const c = await srv.connect('test_client_1', 'test_token_1');
    for (let i = 0; i < 3; i++) assert.equal((await c.pingFrame()).type, T.PING_ACK);
    c.sendRaw(encodeFrame(0x99, {}).buf);
    expectError(await c.nextOfType(T.ERROR), 400);
    assert.equal((await c.register()).type, T.REGISTER_ACK);
    /* metrics may be aggregated asynchronously: poll until they show it */
    const m1 = await until(async () => {
        const m = await get();
        const ok = v(m, K.pingIn) >= v(m0, K.pingIn) + 3 && v(m, K.pingOut) >= v(m0, K.pingOut) + 3
            && v(m, K.err400) >= v(m0, K.err400) + 1 && v(m, K.connTotal) >= v(m0, K.connTotal) + 1
            && v(m, K.connActive) >= 1 && v(m, K.reg) === 1
            && v(m, K.bytesIn) > v(m0, K.bytesIn) && v(m, K.bytesOut) > v(m0, K.bytesOut);
        if (ok) return m;
        throw new Error(JSON.stringify(Object.fromEntries(Object.entries(K).map(([n, k]) => [n, [v(m0, k), v(m, k)]]))));
    }, 5000, 'the counters to move (name: [before, after])');
    /* exactly 3 PINGs: the count must not overshoot */
    assert.equal(v(m1, K.pingIn) - v(m0, K.pingIn), 3);
    c.close();
    await c.waitClose();
    await until(async () => {
        const m = await get();
        return (v(m, K.connActive) === v(m0, K.connActive) && v(m, K.reg) === 0) || undefined;
    }, 5000, 'connections_active and registered_clients back to their idle values');
});

test('metrics disabled: no metrics_port in the listening line', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_METRICS_ENABLED: 'false' } });
    assert.equal(srv.metricsPort, null);
    assert.equal((await health(srv)).status, 200);
});
