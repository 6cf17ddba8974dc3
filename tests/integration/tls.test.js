'use strict';
/*
 * TLS on the WebSocket listener (issue 5 item 1): certificates generated at test
 * time (scripts/gen-test-certs.sh), openssl s_client and the `ws` client over
 * wss://, /health over https, plain HTTP to the TLS port and a TLS hello to a
 * plain port refused cleanly, certificate reload on SIGHUP (good and bad files),
 * the handshake bounded by server.connection_timeout, and bad TLS configs.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const { startServer, runServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, Client, until, describe: desc } = require('./lib/client');
const { makeCerts, peerCert, runOpenssl, captureClientHello } = require('./lib/certs');
const { openRaw, httpVia, getText, proxyV2 } = require('./lib/rawnet');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };

let certs;
function keys()
{
    if (!certs) certs = makeCerts();
    return certs;
}

function tlsEnv(k, extra = {})
{
    return {
        ...MEM,
        SIGNAL_MANAGER_SERVER_TLS_ENABLED: 'true',
        SIGNAL_MANAGER_SERVER_TLS_CERT_PATH: k.cert,
        SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: k.key,
        ...extra,
    };
}

function wssClient(srv, ca)
{
    return new Client(`wss://127.0.0.1:${srv.port}/`, { wsOptions: { ca, servername: 'localhost' } });
}

async function wssConnected(srv, ca, id = 'test_client_1', token = 'test_token_1')
{
    const c = wssClient(srv, ca);
    await c.connect();
    await c.hello(id, token);
    return c;
}

function httpsGet(port, urlPath, ca, timeoutMs = 5000)
{
    return new Promise((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port, path: urlPath, ca, servername: 'localhost', timeout: timeoutMs }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { body += d; });
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`https GET ${urlPath}: no answer within ${timeoutMs} ms`)));
        req.on('error', reject);
    });
}

/* The server still serves wss after whatever the test did to it. */
async function stillServes(srv, ca, id = 'test_client_2', token = 'test_token_2')
{
    const c = await wssConnected(srv, ca, id, token);
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
    c.close();
    await c.waitClose();
}

test('openssl s_client: TLS 1.2 handshake verified against the test CA; TLS 1.3-only and non-AEAD suites refused', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, { env: tlsEnv(k) });
    const base = ['s_client', '-connect', `127.0.0.1:${srv.port}`, '-servername', 'localhost', '-brief'];
    const ok = runOpenssl([...base, '-tls1_2', '-CAfile', k.ca, '-verify_return_error']);
    assert.equal(ok.status, 0, `s_client -tls1_2 failed:\n${ok.out}`);
    assert.match(ok.out, /Protocol version: TLSv1\.2/, ok.out);
    assert.match(ok.out, /Verification: OK/, ok.out);
    assert.match(ok.out, /Ciphersuite: ECDHE-\w+-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)/, ok.out);

    /* mbedTLS 2.28 as packaged has no TLS 1.3 (tls.h): a 1.3-only client fails */
    const v13 = runOpenssl([...base, '-tls1_3', '-CAfile', k.ca]);
    assert.notEqual(v13.status, 0, `a TLS 1.3-only client got through:\n${v13.out}`);
    /* CBC without forward secrecy is not offered */
    const weak = runOpenssl([...base, '-tls1_2', '-cipher', 'AES128-SHA:AES256-SHA']);
    assert.notEqual(weak.status, 0, `a non-AEAD, non-ECDHE suite was accepted:\n${weak.out}`);
    /* TLS 1.1 is below the minimum */
    const v11 = runOpenssl([...base, '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    assert.notEqual(v11.status, 0, `a TLS 1.1 client got through:\n${v11.out}`);
    await stillServes(srv, k.caPem);
});

test('wss:// end to end: CONNECT, REGISTER, PING, DISCONNECT; /health and /ready over https', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, { env: tlsEnv(k) });
    const c = await wssConnected(srv, k.caPem);
    assert.equal(c.ws._socket.getProtocol(), 'TLSv1.2');
    assert.ok(c.ws._socket.authorized, 'server certificate verified against the test CA');
    const reg = await c.register();
    assert.equal(reg.type, T.REGISTER_ACK, desc(reg));
    const pong = await c.pingFrame();
    assert.equal(pong.type, T.PING_ACK, desc(pong));
    /* a large message crosses several TLS records both ways */
    const big = await c.request(T.PING, { timestamp: Date.now(), pad: 'x'.repeat(40000) });
    assert.equal(big.type, T.PING_ACK, desc(big));
    const h = await httpsGet(srv.port, '/health', k.caPem);
    assert.equal(h.status, 200, h.body);
    const hj = JSON.parse(h.body);
    assert.equal(hj.status, 'healthy');
    assert.equal(hj.registered_clients, 1);
    const r = await httpsGet(srv.port, '/ready', k.caPem);
    assert.equal(r.status, 200, r.body);
    c.send(T.DISCONNECT, { reason: 'bye' });
    const cl = await c.waitClose();
    assert.equal(cl.code, 1000, `close ${cl.code} ${cl.reason}; ${c.history()}`);
    await until(async () => JSON.parse((await httpsGet(srv.port, '/health', k.caPem)).body).registered_clients === 0,
        5000, 'registered_clients back to 0 after DISCONNECT');
});

test('plain HTTP and a plain WebSocket upgrade to the TLS port are refused cleanly', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, { env: tlsEnv(k) });       /* connection_timeout 30 s */
    const held = await wssConnected(srv, k.caPem);
    const t0 = Date.now();
    const r = await httpVia(srv.port, getText('/health'), { timeoutMs: 3000 });
    assert.equal(r.status, null, `plain HTTP on the TLS port was answered in HTTP: ${JSON.stringify(r.raw.slice(0, 100))}`);
    assert.ok(!r.raw.startsWith('HTTP/'), JSON.stringify(r.raw.slice(0, 100)));
    /* closed because of the failed handshake, not by the 30 s connection timeout */
    assert.ok(Date.now() - t0 < 3000, `closed after ${Date.now() - t0} ms`);
    if (r.raw.length) assert.equal(r.raw.charCodeAt(0), 0x15, `a TLS alert record, got ${JSON.stringify(r.raw.slice(0, 20))}`);

    const plain = new Client(`ws://127.0.0.1:${srv.port}/`);
    await assert.rejects(plain.connect(3000), (e) => !e.statusCode, 'plain ws:// upgrade must fail without an HTTP answer');

    /* the open wss client and new ones are unaffected */
    assert.equal((await held.pingFrame()).type, T.PING_ACK);
    await stillServes(srv, k.caPem);
});

test('a TLS ClientHello to a plain port gets HTTP 400 or a close; the server keeps serving', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, { env: MEM });
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, 'captured a TLS handshake record');
    const raw = await openRaw(srv.port, { t });
    raw.write(hello);
    await raw.waitEnd(5000, 'the plain port to answer a ClientHello and close');
    const text = raw.data.toString('latin1');
    assert.ok(text === '' || /^HTTP\/1\.1 400 /.test(text), `answer to a ClientHello: ${JSON.stringify(text.slice(0, 80))}`);
    t.diagnostic(`plain port answered a ClientHello with ${text ? JSON.stringify(text.split('\r\n')[0]) : 'a bare close'}`);
    /* and a real TLS client fails cleanly (no hang) */
    await new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca: k.caPem });
        const timer = setTimeout(() => {
            s.destroy();
            reject(new Error('TLS client against the plain port: no error within 5 s'));
        }, 5000);
        s.on('secureConnect', () => reject(new Error('TLS handshake succeeded against a plain port')));
        s.on('error', () => {
            clearTimeout(timer);
            resolve();
        });
    });
    const c = await srv.connect('test_client_1', 'test_token_1');
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
});

test('SIGHUP reloads the certificate: open connections keep working, new ones see the new certificate', opts, async (t) => {
    const k = keys();
    const live = { cert: path.join(k.dir, 'live-reload.crt'), key: path.join(k.dir, 'live-reload.key') };
    fs.copyFileSync(k.cert, live.cert);
    fs.copyFileSync(k.key, live.key);
    const srv = await startServer(t, {
        env: tlsEnv(k, { SIGNAL_MANAGER_SERVER_TLS_CERT_PATH: live.cert, SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: live.key }),
    });
    const first = await peerCert(srv.port, k.caPem);
    assert.equal(first.fingerprint256, k.fp(k.cert));
    assert.equal(first.serialNumber, k.serial(k.cert));
    const before = await wssConnected(srv, k.caPem);
    assert.equal((await before.register()).type, T.REGISTER_ACK);

    fs.copyFileSync(k.key2, live.key);
    fs.copyFileSync(k.cert2, live.cert);
    srv.kill('SIGHUP');
    await srv.waitLog((j) => j.msg === 'TLS certificate reloaded', 5000, 'the "TLS certificate reloaded" log line');
    const second = await peerCert(srv.port, k.caPem);
    assert.equal(second.fingerprint256, k.fp(k.cert2), 'a new connection sees the second certificate');
    assert.equal(second.serialNumber, k.serial(k.cert2));
    assert.notEqual(second.serialNumber, first.serialNumber);
    /* the connection opened before is still up, on its old session */
    assert.equal((await before.pingFrame()).type, T.PING_ACK);
    assert.ok(before.isOpen, before.history());
    assert.equal(before.ws._socket.getPeerCertificate().fingerprint256, k.fp(k.cert));
    await stillServes(srv, k.caPem);
    assert.equal((await before.pingFrame()).type, T.PING_ACK);
});

test('SIGHUP with a broken or mismatched key keeps the current certificate and logs an error', opts, async (t) => {
    const k = keys();
    const live = { cert: path.join(k.dir, 'live-bad.crt'), key: path.join(k.dir, 'live-bad.key') };
    fs.copyFileSync(k.cert, live.cert);
    fs.copyFileSync(k.key, live.key);
    const srv = await startServer(t, {
        env: tlsEnv(k, { SIGNAL_MANAGER_SERVER_TLS_CERT_PATH: live.cert, SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: live.key }),
    });
    const held = await wssConnected(srv, k.caPem);
    const cases = [
        { what: 'a key file that is not PEM', cert: k.cert2, key: Buffer.from('-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n') },
        { what: 'an empty key file', cert: k.cert2, key: Buffer.alloc(0) },
        { what: 'the key of the other certificate', cert: k.cert2, key: fs.readFileSync(k.key) },
    ];
    for (const c of cases) {
        const n = srv.logs.length;
        fs.copyFileSync(c.cert, live.cert);
        fs.writeFileSync(live.key, c.key);
        srv.kill('SIGHUP');
        const line = await srv.waitLog((j) => srv.logs.indexOf(j) >= n && /TLS (reload|certificate)/.test(j.msg),
            5000, `the reload log line for ${c.what}`);
        assert.equal(line.level, 'error', `${c.what}: ${JSON.stringify(line)}`);
        assert.match(line.msg, /keeping the current certificate/);
        assert.match(line.error, /server\.tls_key_path/, `${c.what}: error names the key: ${JSON.stringify(line)}`);
        assert.ok(line.error.includes(live.key), `${c.what}: error names the file: ${line.error}`);
        const pc = await peerCert(srv.port, k.caPem);
        assert.equal(pc.fingerprint256, k.fp(k.cert), `${c.what}: the first certificate is still served`);
        assert.equal((await held.pingFrame()).type, T.PING_ACK);
    }
    await stillServes(srv, k.caPem);
});

test('the TLS handshake counts against server.connection_timeout', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, { env: tlsEnv(k, { SIGNAL_MANAGER_SERVER_CONNECTION_TIMEOUT: '600ms' }) });
    const t0 = Date.now();
    /* a TCP client that never sends a ClientHello */
    const silent = await openRaw(srv.port, { t });
    /* one that sends half a TLS record header and stops */
    const partial = await openRaw(srv.port, { t });
    partial.write(Buffer.from([0x16, 0x03, 0x01]));
    /* one that completes the handshake but never sends an HTTP request */
    const idleTls = tls.connect({ host: '127.0.0.1', port: srv.port, ca: k.caPem, servername: 'localhost' });
    t.after(() => idleTls.destroy());
    const idleClosed = new Promise((resolve) => idleTls.on('close', () => resolve(Date.now())));
    idleTls.on('error', () => {});
    await new Promise((resolve, reject) => {
        idleTls.once('secureConnect', resolve);
        idleTls.once('error', reject);
    });
    await silent.waitEnd(5000, 'the server to close a socket that never sent a ClientHello');
    await partial.waitEnd(5000, 'the server to close a socket with half a TLS record');
    const idleAt = await Promise.race([idleClosed, new Promise((r) => setTimeout(() => r(null), 5000))]);
    assert.ok(idleAt, 'a TLS connection without an HTTP request is closed by the connection timeout');
    for (const [what, at] of [['silent', silent.endedAt], ['partial', partial.endedAt], ['idle TLS', idleAt]]) {
        const ms = at - t0;
        assert.ok(ms >= 450 && ms < 3000, `${what} socket closed after ${ms} ms with connection_timeout 600 ms`);
    }
    assert.equal(silent.data.length, 0, 'nothing written to the silent socket');
    await stillServes(srv, k.caPem);
});

test('TLS and PROXY v2 together: the PROXY header comes before the TLS handshake', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, {
        env: tlsEnv(k, {
            SIGNAL_MANAGER_SERVER_PROXY_PROTOCOL: 'v2',
            SIGNAL_MANAGER_SERVER_TRUSTED_PROXIES: '127.0.0.1/32',
            SIGNAL_MANAGER_LOGGING_LEVEL: 'debug',
        }),
    });
    const hdr = proxyV2({ src: '203.0.113.9', dst: '127.0.0.1', sport: 41000, dport: srv.port });
    const c = new Client(`wss://127.0.0.1:${srv.port}/`, {
        wsOptions: {
            ca: k.caPem,
            servername: 'localhost',
            createConnection: (o) => {
                const sock = net.connect({ host: '127.0.0.1', port: srv.port });
                sock.write(hdr);
                return tls.connect({ ...o, socket: sock });
            },
        },
    });
    await c.connect();
    await c.hello('test_client_1', 'test_token_1');
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
    await srv.waitLog((j) => j.msg === 'websocket upgrade' && j.peer === '203.0.113.9', 5000,
        'the upgrade logged with the PROXY source address');
});

test('bad TLS configuration: non-zero exit naming the key', opts, async (t) => {
    const k = keys();
    const garbage = path.join(k.dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'this is not a certificate\n');
    const cases = [
        { what: 'tls_enabled without a certificate', env: { SIGNAL_MANAGER_SERVER_TLS_CERT_PATH: null, SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: null }, re: /server\.tls_cert_path/ },
        { what: 'tls_enabled without a key', env: { SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: null }, re: /server\.tls_key_path/ },
        { what: 'a key that does not match the certificate', env: { SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: k.key2 }, re: /server\.tls_key_path/ },
        { what: 'a missing key file', env: { SIGNAL_MANAGER_SERVER_TLS_KEY_PATH: path.join(k.dir, 'nope.key') }, re: /server\.tls_key_path/ },
        { what: 'a certificate file that is not PEM', env: { SIGNAL_MANAGER_SERVER_TLS_CERT_PATH: garbage }, re: /server\.tls_cert_path/ },
        { what: 'a CA file that is not PEM', env: { SIGNAL_MANAGER_SERVER_TLS_CA_PATH: garbage }, re: /server\.tls_ca_path/ },
    ];
    for (const c of cases) {
        const r = await runServer({ env: tlsEnv(k, c.env) });
        assert.equal(r.listening, false, `${c.what}: the server started`);
        assert.notEqual(r.code, 0, `${c.what}: exit code 0\n${r.stderr}`);
        assert.match(r.stderr, c.re, `${c.what}: the error names the key\n${r.stderr}`);
    }
    /* the CA chain file is optional and appended: a real one is fine */
    const srv = await startServer(t, { env: tlsEnv(k, { SIGNAL_MANAGER_SERVER_TLS_CA_PATH: k.ca }) });
    await stillServes(srv, k.caPem);
});

test('drain over TLS: wss clients get DISCONNECT 1001 reconnect:true and close 1001; exit 0', opts, async (t) => {
    const k = keys();
    const srv = await startServer(t, { env: tlsEnv(k, { SIGNAL_MANAGER_SERVER_DRAIN_SPREAD: '300ms' }) });
    const a = await wssConnected(srv, k.caPem, 'test_client_1', 'test_token_1');
    const b = await wssConnected(srv, k.caPem, 'test_client_2', 'test_token_2');
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    srv.kill('SIGTERM');
    for (const c of [a, b]) {
        const cl = await c.waitClose(5000);
        assert.equal(cl.code, 1001, `close ${cl.code}; ${c.history()}`);
        const notice = c.seen.find((f) => f.type === T.DISCONNECT);
        assert.ok(notice, c.history());
        assert.deepEqual({ code: notice.json.code, reconnect: notice.json.reconnect }, { code: 1001, reconnect: true });
    }
    assert.equal((await srv.stop()).code, 0);
    assert.ok(srv.logs.some((j) => j.msg === 'drain complete'), 'wss clients answered the close: no drain timeout');
});

test('SIGHUP without TLS is logged and ignored', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = await srv.connect('test_client_1', 'test_token_1');
    srv.kill('SIGHUP');
    await srv.waitLog((j) => /SIGHUP/.test(j.msg), 5000, 'a log line about SIGHUP');
    assert.equal(srv.exit, null, 'still running');
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
});
