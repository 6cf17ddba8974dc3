'use strict';
/*
 * Test TLS material and TLS client helpers (issue 5 item 1).
 *
 *   const k = makeCerts();        scripts/gen-test-certs.sh into a fresh temp dir:
 *                                 k.dir, k.ca, k.cert, k.key, k.cert2, k.key2 (paths),
 *                                 k.caPem (Buffer), k.fp(path) / k.serial(path) of a PEM
 *   const pc = await peerCert(port, k.caPem)   TLS handshake, verified against the CA
 *                                 -> {fingerprint256, serialNumber, protocol, cipher}
 *   runOpenssl(args, {input, timeoutMs})        spawnSync('openssl', ...) bounded
 *   await captureClientHello()   the bytes a real TLS client sends first (a ClientHello)
 *
 * The temp dir is removed at process exit with the harness' other temp dirs.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const { spawnSync } = require('node:child_process');
const { makeTmpDir, ROOT } = require('./harness');
const { DEFAULT_TIMEOUT } = require('./client');

const SCRIPT = path.join(ROOT, 'scripts', 'gen-test-certs.sh');

function x509(file)
{
    return new crypto.X509Certificate(fs.readFileSync(file));
}

function makeCerts()
{
    const dir = path.join(makeTmpDir(), 'certs');
    const r = spawnSync('sh', [SCRIPT, dir], { encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) {
        throw new Error(`${SCRIPT} ${dir} failed (status ${r.status}, ${r.error || ''}):\n${r.stdout}${r.stderr}`);
    }
    const k = {
        dir,
        ca: path.join(dir, 'ca.crt'),
        cert: path.join(dir, 'server.crt'),
        key: path.join(dir, 'server.key'),
        cert2: path.join(dir, 'server2.crt'),
        key2: path.join(dir, 'server2.key'),
    };
    k.caPem = fs.readFileSync(k.ca);
    k.fp = (file) => x509(file).fingerprint256;
    k.serial = (file) => x509(file).serialNumber;
    return k;
}

/*
 * Handshake with the server at port, verify against ca, return what the peer
 * presented; the connection is closed before resolving.  Rejects on any TLS error.
 */
function peerCert(port, ca, { host = '127.0.0.1', timeoutMs = DEFAULT_TIMEOUT, ...tlsOpts } = {})
{
    return new Promise((resolve, reject) => {
        const s = tls.connect({ host, port, ca, servername: 'localhost', ...tlsOpts });
        const timer = setTimeout(() => {
            s.destroy();
            reject(new Error(`TLS handshake with ${host}:${port}: none within ${timeoutMs} ms`));
        }, timeoutMs);
        s.once('secureConnect', () => {
            clearTimeout(timer);
            const c = s.getPeerCertificate();
            const out = {
                fingerprint256: c.fingerprint256,
                serialNumber: c.serialNumber,
                protocol: s.getProtocol(),
                cipher: s.getCipher(),
                authorized: s.authorized,
            };
            s.destroy();
            resolve(out);
        });
        s.once('error', (e) => {
            clearTimeout(timer);
            s.destroy();
            reject(e);
        });
    });
}

/* The first flight of a real TLS client (node's ClientHello), captured by a local
 * listener that never answers; resolves a Buffer. */
function captureClientHello(timeoutMs = DEFAULT_TIMEOUT)
{
    return new Promise((resolve, reject) => {
        let client;
        const srv = net.createServer((sock) => {
            sock.once('data', (d) => {
                clearTimeout(timer);
                sock.destroy();
                client.destroy();
                srv.close();
                resolve(d);
            });
        });
        const timer = setTimeout(() => {
            srv.close();
            if (client) client.destroy();
            reject(new Error(`no ClientHello captured within ${timeoutMs} ms`));
        }, timeoutMs);
        srv.listen(0, '127.0.0.1', () => {
            client = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: 'localhost' });
            client.on('error', () => {});
        });
    });
}

function runOpenssl(args, { input = '', timeoutMs = 10000 } = {})
{
    const r = spawnSync('openssl', args, { input, encoding: 'utf8', timeout: timeoutMs });
    if (r.error) throw new Error(`openssl ${args.join(' ')}: ${r.error.message}`);
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

module.exports = { makeCerts, peerCert, runOpenssl, captureClientHello };
