'use strict';
/* Drain on SIGTERM/SIGINT, restarts with each store, configuration errors. */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, runServer, makeTmpDir, TEST_TIMEOUT, ROOT } = require('./lib/harness');
const { T, P, UUID_RE, rawUpgrade, wsParseServerFrames, describe: desc } = require('./lib/client');
const { health, registerEventually } = require('./lib/util');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };

function checkShutdownNotice(c)
{
    const notice = c.seen.find((f) => f.type === T.DISCONNECT);
    assert.ok(notice, `DISCONNECT notice before the close; ${c.history()}`);
    assert.equal(notice.payloadType, P.JSON);
    assert.match(notice.uuid, UUID_RE);
    assert.deepEqual({ reason: notice.json.reason, code: notice.json.code, reconnect: notice.json.reconnect },
        { reason: 'server shutting down', code: 1001, reconnect: true });
}

/* A drain that had to force-close a straggler at drain_timeout still exits 0. */
async function stopAfterForcedDrain(srv)
{
    return srv.stop({ timeoutMs: 6000 });
}

test('SIGTERM drain: clients get DISCONNECT (1001, reconnect) and close 1001; exit 0', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '10s' } });
    const a = await srv.connect('test_client_1', 'test_token_1');
    const b = await srv.connect('test_client_2', 'test_token_2');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    const pre = srv.client();
    await pre.connect();                       /* upgraded, never sent CONNECT */
    const t0 = Date.now();
    srv.kill('SIGTERM');
    for (const c of [a, b, pre]) {
        const cl = await c.waitClose(5000);
        assert.equal(cl.code, 1001, `close ${cl.code} ${cl.reason}`);
    }
    checkShutdownNotice(a);
    checkShutdownNotice(b);
    const ex = await srv.stop();               /* asserts exit code 0 */
    assert.equal(ex.code, 0);
    /* clients answered the close at once: no need to wait out the 10 s drain_timeout */
    assert.ok(Date.now() - t0 < 5000, `exit took ${Date.now() - t0} ms with cooperative clients`);
});

test('SIGINT drains like SIGTERM', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const a = await srv.connect('test_client_1', 'test_token_1');
    srv.kill('SIGINT');
    assert.equal((await a.waitClose(5000)).code, 1001);
    checkShutdownNotice(a);
    await srv.stop({ signal: 'SIGINT' });
});

test('drain with a client that never answers the close: /health says draining; exit 0 by drain_timeout', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '1500ms' } });
    /* a hand-made WebSocket that never reads its close frame or answers it */
    const r = await rawUpgrade(srv.port);
    t.after(() => r.sock.destroy());
    const a = await srv.connect('test_client_1', 'test_token_1');
    const t0 = Date.now();
    srv.kill('SIGTERM');
    assert.equal((await a.waitClose(5000)).code, 1001);
    /* the raw socket keeps the drain open: /health, if still served, reports draining */
    let observed = 'not observable';
    try {
        const h = await health(srv, { timeoutMs: 1000 });
        assert.equal(h.status, 503, `/health during drain: HTTP ${h.status} ${JSON.stringify(h.json)}`);
        assert.equal(h.json.status, 'draining');
        observed = 'observed 503 draining';
    } catch (e) {
        if (!/ECONNREFUSED|ECONNRESET|EPIPE|incomplete HTTP response|no close within/.test(e.message)) throw e;
        observed = `not observable: ${e.message}`;
    }
    t.diagnostic(`/health during drain: ${observed}`);
    /* the raw socket got the notice and a close 1001 frame, then the server gave up on it */
    await r.waitEnd(5000);
    const frames = wsParseServerFrames(r.data);
    const close = frames.find((f) => f.opcode === 8);
    assert.ok(close, `a close frame on the raw socket (frames: ${frames.map((f) => f.opcode)})`);
    assert.equal(close.payload.readUInt16BE(0), 1001);
    const ex = await stopAfterForcedDrain(srv);
    assert.ok(ex);
    const took = Date.now() - t0;
    assert.ok(took < 1500 + 3000, `exit ${took} ms after SIGTERM with drain_timeout 1500 ms`);
});

test('new connections during the drain are not served', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '1500ms' } });
    const r = await rawUpgrade(srv.port);      /* keeps the drain going */
    t.after(() => r.sock.destroy());
    const a = await srv.connect('test_client_1', 'test_token_1');
    srv.kill('SIGTERM');
    await a.waitClose(5000);
    const c = srv.client();
    try {
        await c.connect(2000);
    } catch (e) {
        /* refused, reset, or an HTTP 503: all fine */
        assert.ok(!e.statusCode || e.statusCode === 503, e.message);
        await stopAfterForcedDrain(srv);
        return;
    }
    /* upgraded anyway: it must not be authenticated, and must be closed with 1001 */
    c.send(T.CONNECT, { client_id: 'test_client_1', auth_token: 'test_token_1', version: '1.0.0' });
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1001);
    assert.ok(!c.seen.some((f) => f.type === T.CONNECT_ACK), `CONNECT_ACK during drain: ${c.history()}`);
    await stopAfterForcedDrain(srv);
});

test('sqlite: a registration live at SIGKILL is cleaned at the next start (same instance_id)', opts, async (t) => {
    const dir = makeTmpDir();
    const env = { SIGNAL_MANAGER_STORE_BACKEND: 'sqlite', SIGNAL_MANAGER_SERVER_INSTANCE_ID: 'it-restart-1' };
    const s1 = await startServer(t, { dir, env });
    const a = await s1.connect('test_client_1', 'test_token_1');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    await s1.stop({ signal: 'SIGKILL', expectCode: null });
    assert.ok(fs.existsSync(s1.storePath), 'database file survives');
    await a.waitClose();

    const s2 = await startServer(t, { dir, env });
    assert.equal(s2.storePath, s1.storePath);
    assert.equal((await health(s2)).json.registered_clients, 0);
    const b = await s2.connect('test_client_1', 'test_token_1');
    const f = await b.register();
    assert.equal(f.type, T.REGISTER_ACK, `REGISTER after restart: ${desc(f)}`);
    await s2.stop();
});

test('sqlite: clean restart after SIGTERM, the client can register again', opts, async (t) => {
    const dir = makeTmpDir();
    const env = { SIGNAL_MANAGER_STORE_BACKEND: 'sqlite', SIGNAL_MANAGER_SERVER_INSTANCE_ID: 'it-restart-2' };
    const s1 = await startServer(t, { dir, env });
    const a = await s1.connect('test_client_1', 'test_token_1');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    await s1.stop();
    const s2 = await startServer(t, { dir, env });
    const b = await s2.connect('test_client_1', 'test_token_1');
    assert.equal((await b.register()).type, T.REGISTER_ACK);
    await s2.stop();
});

test('memory: clean restart works and starts empty', opts, async (t) => {
    const dir = makeTmpDir();
    const s1 = await startServer(t, { dir, env: MEM });
    const a = await s1.connect('test_client_1', 'test_token_1');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    await s1.stop();
    const s2 = await startServer(t, { dir, env: MEM });
    assert.equal((await health(s2)).json.registered_clients, 0);
    const b = await s2.connect('test_client_1', 'test_token_1');
    assert.equal((await b.register()).type, T.REGISTER_ACK);
    await s2.stop();
});

/* --- configuration ------------------------------------------------------------- */

async function expectConfigError(t, runOpts, keyRe, what)
{
    const r = await runServer(runOpts);
    assert.ok(!r.listening, `${what}: the server started listening instead of refusing the config`);
    assert.notEqual(r.code, 0, `${what}: exit code 0\n${r.stderr}`);
    assert.ok(r.code !== null, `${what}: killed by ${r.signal}\n${r.stderr}`);
    assert.match(r.stderr + r.stdout, keyRe, `${what}: the message names the key\n${r.stderr}${r.stdout}`);
    return r;
}

test('bad config values -> non-zero exit naming the key', opts, async (t) => {
    const cases = [
        [{ env: { SIGNAL_MANAGER_SERVER_PORT: '70000' } }, /server[._]port/i, 'port 70000'],
        [{ env: { SIGNAL_MANAGER_SERVER_PORT: 'abc' } }, /server[._]port/i, 'port abc'],
        [{ env: { SIGNAL_MANAGER_SERVER_FOO: '1' } }, /server[._]foo/i, 'unknown env key'],
        [{ env: { SIGNAL_MANAGER_NOSUCH_KEY: '1' } }, /nosuch/i, 'unknown env section'],
        [{ env: { SIGNAL_MANAGER_STORE_BACKEND: 'redis' } }, /store[._]backend/i, 'bad enum'],
        [{ env: { SIGNAL_MANAGER_HEARTBEAT_TIMEOUT: 'soon' } }, /heartbeat[._]timeout/i, 'bad duration'],
        [{ env: { SIGNAL_MANAGER_METRICS_ENABLED: 'maybe' } }, /metrics[._]enabled/i, 'bad bool'],
        [{ env: { SIGNAL_MANAGER_SERVER_MAX_CONNECTIONS: '0' } }, /server[._]max_connections/i, 'below min'],
        [{ args: ['--server.port=70000'] }, /server[._]port/i, 'flag port 70000'],
        [{ args: ['--server.nope=1'] }, /server[._]nope/i, 'unknown flag key'],
        [{ config: { server: { foo: '1' } } }, /foo/i, 'unknown key in the ini file'],
        /* (keys the harness sets through the environment, e.g. server.port, would be
         * overridden by it: use others for file values) */
        [{ config: { limits: { max_bad_frames: '0' } } }, /max_bad_frames/i, 'out-of-range value in the ini file'],
        [{ config: { heartbeat: { timeout: 'soon' } } }, /heartbeat[._]timeout|timeout/i, 'bad duration in the ini file'],
        [{ config: { server: { port: '-1' } }, env: { SIGNAL_MANAGER_SERVER_PORT: null } }, /port/i, 'bad port in the ini file'],
        [{ config: { nosuch: { a: '1' } } }, /nosuch/i, 'unknown section in the ini file'],
        [{ args: ['--config', '/nonexistent/sm.ini'] }, /\/nonexistent\/sm\.ini/, 'missing config file'],
    ];
    const failures = [];
    await Promise.all(cases.map(async ([o, re, what]) => {
        try {
            await expectConfigError(t, o, re, what);
        } catch (e) {
            failures.push(e.message);
        }
    }));
    assert.deepEqual(failures, []);
});

test('a secret given as a command-line flag is refused and not echoed', opts, async (t) => {
    const secret = 'flag-secret-0123456789-0123456789-xyz';
    const r = await expectConfigError(t, { args: [`--auth.token_secret=${secret}`] }, /token_secret/i, 'secret flag');
    assert.ok(!(r.stderr + r.stdout).includes(secret), 'the secret value is not printed');
});

test('--check-config: exit 0 for a good config, non-zero naming the key for a bad one', opts, async (t) => {
    const ok = await runServer({ args: ['--check-config'] });
    assert.equal(ok.listening, false, '--check-config must not start the server');
    assert.equal(ok.code, 0, ok.stderr);
    await expectConfigError(t, { args: ['--check-config'], env: { SIGNAL_MANAGER_SERVER_PORT: '70000' } },
        /server[._]port/i, '--check-config with a bad port');
});

test('--version prints the version; an unknown option fails', opts, async (t) => {
    const v = await runServer({ args: ['--version'] });
    assert.equal(v.code, 0, v.stderr);
    const version = fs.readFileSync(path.join(ROOT, 'VERSION'), 'utf8').trim();
    assert.ok((v.stdout + v.stderr).includes(version), `--version output ${JSON.stringify(v.stdout)} has ${version}`);
    const bad = await runServer({ args: ['--no-such-option'] });
    assert.equal(bad.listening, false);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr + bad.stdout, /no-such-option/);
});

test('precedence: defaults < ini file < environment < command line', opts, async (t) => {
    const hb = async (o) => {
        const srv = await startServer(t, { ...o, env: { ...MEM, ...(o.env || {}) } });
        const c = await srv.connect('test_client_1', 'test_token_1');
        const v = c.connectAck.json.heartbeat_interval;
        await srv.stop();
        return v;
    };
    assert.equal(await hb({}), 30);
    assert.equal(await hb({ config: { heartbeat: { interval: '11' } } }), 11);
    assert.equal(await hb({ config: { heartbeat: { interval: '11' } },
        env: { SIGNAL_MANAGER_HEARTBEAT_INTERVAL: '12' } }), 12);
    assert.equal(await hb({ config: { heartbeat: { interval: '11' } },
        env: { SIGNAL_MANAGER_HEARTBEAT_INTERVAL: '12' }, args: ['--heartbeat.interval=13'] }), 13);
});

test('ini file: api_keys[] lines replace the default credentials', opts, async (t) => {
    const srv = await startServer(t, {
        env: MEM,
        config: { auth: { api_keys: ['file_client_a:file_token_a', 'file_client_b:file_token_b'] } },
    });
    const a = await srv.connect('file_client_a', 'file_token_a');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    await srv.connect('file_client_b', 'file_token_b');
    const c = srv.client();
    await c.connect();
    const f = await c.request(T.CONNECT, { client_id: 'test_client_1', auth_token: 'test_token_1', version: '1.0.0' });
    assert.equal(f.type, T.ERROR, desc(f));
    assert.equal(f.json.error_code, 401);
});

test('SIGNAL_MANAGER_AUTH_API_KEYS from the environment', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_AUTH_API_KEYS: 'env_client:env_token' } });
    const a = await srv.connect('env_client', 'env_token');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
});

test('default store (sqlite): after SIGKILL and restart the client_id can register (clean-up may be asynchronous)', opts, async (t) => {
    /* same as the SIGKILL test but tolerant of an asynchronous clean-up at start */
    const dir = makeTmpDir();
    const env = { SIGNAL_MANAGER_SERVER_INSTANCE_ID: 'it-restart-3' };
    const s1 = await startServer(t, { dir, env });
    const a = await s1.connect('test_client_2', 'test_token_2');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    await s1.stop({ signal: 'SIGKILL', expectCode: null });
    const s2 = await startServer(t, { dir, env });
    const b = await s2.connect('test_client_2', 'test_token_2');
    assert.equal((await registerEventually(b)).type, T.REGISTER_ACK);
    await s2.stop();
});
