'use strict';
/*
 * Raw TCP helpers for the production-surface tests (issue 5): sockets bound to a
 * chosen loopback source address (Linux routes all of 127.0.0.0/8 to lo, so
 * 127.0.0.2 is "another client"), PROXY protocol v1/v2 headers built by hand,
 * and HTTP/upgrade exchanges that may start with such a header.
 *
 *   const c = await openRaw(port, { localAddress: '127.0.0.2' });
 *   c.write(buf); await c.waitData((d) => d.length > 0); await c.waitEnd(); c.destroy();
 *   await httpVia(port, 'GET /health HTTP/1.1\r\n...', { prefix, localAddress })
 *       -> {status, headers, body, raw} after the server closed ({status: null} when it
 *          closed without a complete HTTP head)
 *   await upgradeVia(port, { prefix, localAddress }) -> {status, headers, conn}
 *       (conn stays open after a 101; the head is parsed as soon as it is complete)
 *   proxyV1('198.51.100.7', '127.0.0.1', 40000, 8080), proxyV2({...}) -> Buffer
 *   await freePort() -> a TCP port that was free on 127.0.0.1 a moment ago
 *   wsFrom(url, localAddress, wsOptions) -> Client whose socket is bound to localAddress
 *   wsWithPrefix(port, prefix, {localAddress}) -> Client whose connection starts with prefix
 *
 * Every wait is bounded; every socket opened here is destroyed in the test's
 * t.after() (when t is passed) and at process exit.
 */

const net = require('node:net');
const { Waiters, parseHttpResponse, upgradeHeaders, Client, DEFAULT_TIMEOUT } = require('./client');

const open = new Set();
process.on('exit', () => {
    for (const s of open) s.destroy();
});

class RawConn {
    constructor(sock)
    {
        this.sock = sock;
        this.data = Buffer.alloc(0);
        this.ended = false;
        this.error = null;
        this.waiters = new Waiters();
        open.add(sock);
        sock.on('data', (d) => {
            this.data = Buffer.concat([this.data, d]);
            this.waiters.poke();
        });
        const end = () => {
            if (!this.ended) this.endedAt = Date.now();
            this.ended = true;
            this.waiters.poke();
        };
        sock.on('end', end);
        sock.on('close', () => {
            open.delete(sock);
            end();
        });
        sock.on('error', (e) => {
            this.error = e;
            end();
        });
    }

    write(buf)
    {
        this.sock.write(buf);
    }

    /* Resolves this.data once pred(this.data) is true; rejects when the socket ends first. */
    waitData(pred, timeoutMs = DEFAULT_TIMEOUT, what = 'data on the raw socket')
    {
        return this.waiters.add(() => {
            if (pred(this.data)) return this.data;
            if (this.ended) throw new Error(`socket closed while waiting for ${what}; got ${JSON.stringify(this.data.toString('latin1').slice(0, 200))}`);
            return undefined;
        }, timeoutMs, what);
    }

    /* Resolves when the peer closed (FIN, RST or error). */
    waitEnd(timeoutMs = DEFAULT_TIMEOUT, what = 'the server to close the raw socket')
    {
        return this.waiters.add(() => (this.ended ? true : undefined), timeoutMs, what,
            () => `got ${JSON.stringify(this.data.toString('latin1').slice(0, 200))}`);
    }

    destroy()
    {
        this.sock.destroy();
    }
}

/* Connect (bounded); resolves a RawConn. */
function openRaw(port, { host = '127.0.0.1', localAddress, timeoutMs = DEFAULT_TIMEOUT, t } = {})
{
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port, localAddress });
        const rc = new RawConn(sock);
        if (t) t.after(() => sock.destroy());
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`connect to ${host}:${port} from ${localAddress || 'any'}: no connection within ${timeoutMs} ms`));
        }, timeoutMs);
        sock.once('connect', () => {
            clearTimeout(timer);
            resolve(rc);
        });
        sock.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
    });
}

/* Index just past the end of an HTTP head, or -1. */
function headEnd(buf)
{
    const i = buf.indexOf('\r\n\r\n');
    return i < 0 ? -1 : i + 4;
}

/*
 * Send prefix (Buffer, e.g. a PROXY header) + text, wait until the server closes.
 * Resolves {status, headers, body, raw}; status null when no HTTP head came back.
 */
async function httpVia(port, text, { prefix, localAddress, host, timeoutMs = DEFAULT_TIMEOUT, t } = {})
{
    const c = await openRaw(port, { host, localAddress, timeoutMs, t });
    try {
        c.write(Buffer.concat([prefix || Buffer.alloc(0), Buffer.from(text, 'latin1')]));
        await c.waitEnd(timeoutMs, `the server to answer ${JSON.stringify(text.split('\r\n')[0])} and close`);
    } finally {
        c.destroy();
    }
    const raw = c.data.toString('latin1');
    if (headEnd(c.data) < 0) return { status: null, headers: {}, body: '', raw };
    return parseHttpResponse(raw);
}

function getText(path, host = '127.0.0.1')
{
    return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
}

function upgradeText(path = '/', host = '127.0.0.1')
{
    return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${upgradeHeaders().join('\r\n')}\r\n\r\n`;
}

/*
 * prefix + a WebSocket upgrade request; resolves {status, headers, body, conn} as soon
 * as the response head is complete (status null when the server closed first).
 * After a 101 conn stays open (the caller destroys it, or t.after does).
 */
async function upgradeVia(port, { prefix, localAddress, host, path = '/', timeoutMs = DEFAULT_TIMEOUT, t } = {})
{
    const conn = await openRaw(port, { host, localAddress, timeoutMs, t });
    conn.write(Buffer.concat([prefix || Buffer.alloc(0), Buffer.from(upgradeText(path), 'latin1')]));
    try {
        await conn.waitData((d) => headEnd(d) >= 0, timeoutMs, 'an HTTP response head');
    } catch (e) {
        if (!conn.ended) throw e;
        conn.destroy();
        return { status: null, headers: {}, body: '', raw: conn.data.toString('latin1'), conn };
    }
    const head = conn.data.subarray(0, headEnd(conn.data)).toString('latin1');
    const r = parseHttpResponse(head);
    if (r.status !== 101) {
        /* the body follows the head; wait for the close so that it is complete */
        await conn.waitEnd(timeoutMs).catch(() => {});
        conn.destroy();
        const full = parseHttpResponse(conn.data.toString('latin1'));
        return { ...full, conn };
    }
    return { ...r, conn };
}

/* PROXY protocol v1 line. */
function proxyV1(src, dst, sport, dport)
{
    const fam = net.isIPv6(src) ? 'TCP6' : 'TCP4';
    return Buffer.from(`PROXY ${fam} ${src} ${dst} ${sport} ${dport}\r\n`, 'latin1');
}

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function ip6Bytes(a)
{
    /* expand :: and any embedded IPv4 tail */
    let s = a;
    const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
    if (v4) {
        const b = v4[1].split('.').map(Number);
        s = s.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
    }
    const [l, r] = s.split('::');
    const left = l ? l.split(':') : [];
    const right = r !== undefined && r ? r.split(':') : [];
    const fill = r !== undefined ? new Array(8 - left.length - right.length).fill('0') : [];
    const groups = [...left, ...fill, ...right];
    const out = Buffer.alloc(16);
    groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
    return out;
}

/*
 * PROXY protocol v2 header.  {src, dst, sport, dport} for PROXY over TCP4/TCP6;
 * {local: true} for the LOCAL command; tlv: extra bytes appended after the addresses.
 */
function proxyV2({ src, dst, sport = 0, dport = 0, local = false, tlv = Buffer.alloc(0) } = {})
{
    let fam;
    let addr;
    if (local) {
        fam = 0x00;
        addr = Buffer.alloc(0);
    } else if (net.isIPv6(src)) {
        fam = 0x21;
        addr = Buffer.alloc(36);
        ip6Bytes(src).copy(addr, 0);
        ip6Bytes(dst).copy(addr, 16);
        addr.writeUInt16BE(sport, 32);
        addr.writeUInt16BE(dport, 34);
    } else {
        fam = 0x11;
        addr = Buffer.alloc(12);
        Buffer.from(src.split('.').map(Number)).copy(addr, 0);
        Buffer.from(dst.split('.').map(Number)).copy(addr, 4);
        addr.writeUInt16BE(sport, 8);
        addr.writeUInt16BE(dport, 10);
    }
    const head = Buffer.alloc(4);
    head[0] = local ? 0x20 : 0x21;
    head[1] = fam;
    head.writeUInt16BE(addr.length + tlv.length, 2);
    return Buffer.concat([V2_SIG, head, addr, tlv]);
}

function freePort(host = '127.0.0.1')
{
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, host, () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/* A Client (lib/client.js) whose socket is bound to localAddress. */
function wsFrom(url, localAddress, wsOptions = {})
{
    return new Client(url, { wsOptions: { localAddress, ...wsOptions } });
}

/*
 * A Client (lib/client.js) for ws://host:port/ whose TCP connection first sends
 * `prefix` (e.g. a PROXY header), from localAddress when given.
 */
function wsWithPrefix(port, prefix, { host = '127.0.0.1', localAddress, wsOptions = {} } = {})
{
    return new Client(`ws://${host}:${port}/`, {
        wsOptions: {
            ...wsOptions,
            createConnection: () => {
                const sock = net.connect({ host, port, localAddress });
                sock.write(prefix);
                return sock;
            },
        },
    });
}

module.exports = {
    RawConn, openRaw, httpVia, upgradeVia, getText, upgradeText, proxyV1, proxyV2, freePort, wsFrom, wsWithPrefix,
};
