'use strict';
/*
 * Test client for the Signal Manager binary protocol (DECISIONS.md §1-§5).
 *
 * - encodeFrame / decodeFrame: 0xAA | type u8 | uuid[16] | payload_type u8 | len u16 BE | payload
 * - Client: a `ws` connection that decodes every server frame into a queue.  Tests
 *   await frames with request() (reply correlated by uuid) or next(predicate);
 *   every wait is bounded and fails with a message naming what it waited for.
 * - raw helpers for malformed frames, text messages, fragments and oversize messages.
 * - rawUpgrade(): a hand-made WebSocket upgrade over net, for sockets that must
 *   misbehave (never answer a close frame, never send anything).
 * - signJwt(): HS256 JWT with node:crypto.
 */

const crypto = require('node:crypto');
const net = require('node:net');
const WebSocket = require('ws');

const T = Object.freeze({
    CONNECT: 0x01,
    CONNECT_ACK: 0x02,
    DISCONNECT: 0x03,
    PING: 0x04,
    PING_ACK: 0x05,
    REGISTER: 0x20,
    REGISTER_ACK: 0x21,
    UNREGISTER: 0x22,
    UNREGISTER_ACK: 0x23,
    ROOM_CREATE: 0x30,
    ROOM_CREATE_ACK: 0x31,
    ROOM_JOIN: 0x32,
    ROOM_JOIN_ACK: 0x33,
    ROOM_LEAVE: 0x34,
    ROOM_LEAVE_ACK: 0x35,
    ROOM_EVENT: 0x36,
    SIGNAL: 0x40,
    SESSION_UPDATE: 0x42,
    SESSION_UPDATE_ACK: 0x43,
    ERROR: 0xff,
});
const TYPE_NAMES = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));

const P = Object.freeze({ NONE: 0x00, BINARY: 0x01, JSON: 0x02 });

const START = 0xaa;
const HEADER_SIZE = 21;
const PROTOCOL_VERSION = '1.0.0';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const DEFAULT_TIMEOUT = Number(process.env.SM_WAIT_TIMEOUT_MS || 5000);

function typeName(t)
{
    return TYPE_NAMES[t] || `0x${t.toString(16).padStart(2, '0')}`;
}

/* uuid text <-> 16 bytes */
function uuidBytes(text)
{
    const hex = text.replace(/-/g, '');
    if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`bad uuid text ${text}`);
    return Buffer.from(hex, 'hex');
}

function uuidText(buf)
{
    const h = Buffer.from(buf).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function newUuid()
{
    return crypto.randomUUID();
}

/*
 * Build one frame.  payload: object (-> JSON), string (-> JSON text as is),
 * Buffer (as is), null/undefined (empty).  Options override any header field so
 * malformed frames can be made on purpose: {start, uuid, payloadType, length}.
 */
function encodeFrame(type, payload, opts = {})
{
    let body;
    let ptype;
    if (payload === null || payload === undefined) {
        body = Buffer.alloc(0);
        ptype = P.NONE;
    } else if (Buffer.isBuffer(payload)) {
        body = payload;
        ptype = P.BINARY;
    } else if (typeof payload === 'string') {
        body = Buffer.from(payload, 'utf8');
        ptype = P.JSON;
    } else {
        body = Buffer.from(JSON.stringify(payload), 'utf8');
        ptype = P.JSON;
    }
    if (opts.payloadType !== undefined) ptype = opts.payloadType;
    if (body.length > 0xffff && opts.length === undefined) {
        throw new Error(`payload of ${body.length} bytes does not fit a frame`);
    }
    const uuid = opts.uuid || newUuid();
    const head = Buffer.alloc(HEADER_SIZE);
    head[0] = opts.start !== undefined ? opts.start : START;
    head[1] = type;
    uuidBytes(uuid).copy(head, 2);
    head[18] = ptype;
    head.writeUInt16BE(opts.length !== undefined ? opts.length : body.length & 0xffff, 19);
    return { buf: Buffer.concat([head, body]), uuid };
}

/*
 * Decode one server frame strictly.  Returns {type, typeName, uuid, payloadType,
 * payload, json} or throws with a description of what is wrong.
 */
function decodeFrame(data)
{
    const buf = Buffer.from(data);
    if (buf.length < HEADER_SIZE) throw new Error(`server frame of ${buf.length} bytes < 21`);
    if (buf[0] !== START) throw new Error(`server frame start byte 0x${buf[0].toString(16)}`);
    const len = buf.readUInt16BE(19);
    if (len !== buf.length - HEADER_SIZE) {
        throw new Error(`server frame length field ${len} but ${buf.length - HEADER_SIZE} payload bytes`);
    }
    const frame = {
        type: buf[1],
        typeName: typeName(buf[1]),
        uuid: uuidText(buf.subarray(2, 18)),
        payloadType: buf[18],
        payload: buf.subarray(HEADER_SIZE),
        json: undefined,
    };
    if (frame.payloadType === P.JSON) {
        try {
            frame.json = JSON.parse(frame.payload.toString('utf8'));
        } catch (e) {
            throw new Error(`server ${frame.typeName} has invalid JSON payload: ${e.message}`);
        }
    } else if (frame.payloadType === P.NONE) {
        if (len !== 0) throw new Error(`server ${frame.typeName}: payload type NONE with length ${len}`);
    } else if (frame.payloadType !== P.BINARY) {
        throw new Error(`server ${frame.typeName}: payload type 0x${frame.payloadType.toString(16)}`);
    }
    return frame;
}

function describe(f)
{
    const body = f.json !== undefined ? JSON.stringify(f.json) : `${f.payload.length} bytes`;
    return `${f.typeName} uuid=${f.uuid} ${body}`;
}

/*
 * Bounded waits on a condition: add(check, ms, what) resolves with check()'s first
 * non-undefined result, rejects if check() throws or after ms.  The owner calls
 * poke() whenever something that may change the result happened.
 */
class Waiters {
    constructor() { this.list = []; }
    add(check, timeoutMs, what, onTimeout)
    {
        return new Promise((resolve, reject) => {
            const w = { check, resolve, reject };
            w.timer = setTimeout(() => {
                this.list.splice(this.list.indexOf(w), 1);
                reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${onTimeout ? `; ${onTimeout()}` : ''}`));
            }, timeoutMs);
            this.list.push(w);
            this.poke();
        });
    }
    poke()
    {
        for (const w of [...this.list]) {
            let r;
            try {
                r = w.check();
            } catch (e) {
                clearTimeout(w.timer);
                this.list.splice(this.list.indexOf(w), 1);
                w.reject(e);
                continue;
            }
            if (r !== undefined) {
                clearTimeout(w.timer);
                this.list.splice(this.list.indexOf(w), 1);
                w.resolve(r);
            }
        }
    }
}

const allClients = new Set();

class Client {
    /*
     * url: ws://host:port/...; opts.wsOptions pass to `ws` (e.g. headers, maxPayload).
     */
    constructor(url, opts = {})
    {
        this.url = url;
        this.opts = opts;
        this.ws = null;
        this.frames = [];       /* decoded server frames not yet consumed */
        this.seen = [];         /* every decoded frame, for diagnostics */
        this.texts = [];        /* text messages from the server (none expected) */
        this.protocolErrors = [];
        this.closed = null;     /* {code, reason} once closed */
        this.sessionId = null;
        this.clientId = null;
        this.waiters = new Waiters();
        allClients.add(this);
    }

    /* Open the WebSocket.  Rejects with err.statusCode when the upgrade is refused. */
    connect(timeoutMs = DEFAULT_TIMEOUT)
    {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(this.url, {
                perMessageDeflate: false,
                handshakeTimeout: timeoutMs,
                maxPayload: 64 * 1024 * 1024,
                ...(this.opts.wsOptions || {}),
            });
            this.ws = ws;
            let settled = false;
            const done = (err) => {
                if (settled) return;
                settled = true;
                if (err) reject(err); else resolve(this);
            };
            ws.on('unexpected-response', (req, res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (d) => { body += d; });
                const fin = () => {
                    const e = new Error(`upgrade refused: HTTP ${res.statusCode} ${body.trim()}`);
                    e.statusCode = res.statusCode;
                    e.body = body;
                    done(e);
                    req.destroy();
                };
                res.on('end', fin);
                res.on('close', fin);
                res.on('error', fin);
            });
            ws.on('open', () => done());
            ws.on('error', (e) => {
                this.lastError = e;
                done(e);
                this.waiters.poke();
            });
            ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
            ws.on('close', (code, reason) => {
                this.closed = { code, reason: reason.toString('utf8') };
                allClients.delete(this);
                done(new Error(`closed before open: ${code}`));
                this.waiters.poke();
            });
        });
    }

    onMessage(data, isBinary)
    {
        if (!isBinary) {
            this.texts.push(data.toString('utf8'));
            this.protocolErrors.push(`server sent a text message: ${data.toString('utf8').slice(0, 200)}`);
        } else {
            try {
                const f = decodeFrame(data);
                this.frames.push(f);
                this.seen.push(f);
            } catch (e) {
                this.protocolErrors.push(e.message);
            }
        }
        this.waiters.poke();
    }

    get isOpen()
    {
        return this.ws && this.ws.readyState === WebSocket.OPEN;
    }

    history()
    {
        const s = this.seen.slice(-10).map(describe).join(' | ');
        const c = this.closed ? ` closed=${this.closed.code}/${this.closed.reason}` : '';
        const p = this.protocolErrors.length ? ` protocol errors: ${this.protocolErrors.join('; ')}` : '';
        return `last frames: [${s}]${c}${p}`;
    }

    /* Send one frame; returns the uuid used. */
    send(type, payload, opts = {})
    {
        const { buf, uuid } = encodeFrame(type, payload, opts);
        this.ws.send(buf, { binary: true });
        return uuid;
    }

    sendRaw(buf, opts = { binary: true })
    {
        this.ws.send(buf, { binary: true, ...opts });
    }

    sendText(text)
    {
        this.ws.send(text, { binary: false });
    }

    /* Send `buf` as a binary message split into fragments of the given sizes (rest last). */
    sendFragmented(buf, sizes)
    {
        let off = 0;
        for (const n of sizes) {
            this.ws.send(buf.subarray(off, off + n), { binary: true, fin: false });
            off += n;
        }
        this.ws.send(buf.subarray(off), { binary: true, fin: true });
    }

    /*
     * Await the first unconsumed server frame that satisfies `pred` and consume it.
     * Rejects on timeout, on a malformed server frame, or when the socket closes
     * before such a frame arrived.
     */
    next(pred = () => true, timeoutMs = DEFAULT_TIMEOUT, what = 'a server frame')
    {
        return this.waiters.add(() => {
            if (this.protocolErrors.length) {
                throw Object.assign(new Error(`protocol violation by server: ${this.protocolErrors.join('; ')}`),
                    { fatal: true });
            }
            const i = this.frames.findIndex(pred);
            if (i >= 0) return this.frames.splice(i, 1)[0];
            if (this.closed) {
                throw Object.assign(new Error(`connection closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}; ${this.history()}`),
                    { fatal: true });
            }
            return undefined;
        }, timeoutMs, what, () => this.history());
    }

    nextOfType(type, timeoutMs = DEFAULT_TIMEOUT)
    {
        return this.next((f) => f.type === type, timeoutMs, typeName(type));
    }

    /* Send a request and await the ACK or ERROR carrying its uuid. */
    async request(type, payload, opts = {})
    {
        const uuid = this.send(type, payload, opts);
        return this.next((f) => f.uuid === uuid, opts.timeoutMs || DEFAULT_TIMEOUT,
            `the reply to ${typeName(type)} ${uuid}`);
    }

    /* Await the close; resolves {code, reason}. */
    waitClose(timeoutMs = DEFAULT_TIMEOUT)
    {
        return this.waiters.add(() => this.closed || undefined, timeoutMs, 'the connection to close',
            () => this.history());
    }

    /* Send a WebSocket ping and await the pong with the same data. */
    ping(data = crypto.randomBytes(8), timeoutMs = DEFAULT_TIMEOUT)
    {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.ws.off('pong', onPong);
                reject(new Error(`no pong within ${timeoutMs} ms`));
            }, timeoutMs);
            const onPong = (d) => {
                if (Buffer.compare(d, data) !== 0) return;
                clearTimeout(timer);
                this.ws.off('pong', onPong);
                resolve(d);
            };
            this.ws.on('pong', onPong);
            this.ws.ping(data);
        });
    }

    /* CONNECT and expect CONNECT_ACK; returns the ACK frame. */
    async hello(clientId = 'test_client_1', authToken = 'test_token_1', extra = {})
    {
        const f = await this.request(T.CONNECT, {
            client_id: clientId, auth_token: authToken, version: PROTOCOL_VERSION, ...extra,
        });
        if (f.type !== T.CONNECT_ACK) {
            throw new Error(`CONNECT ${clientId} answered with ${describe(f)}`);
        }
        this.clientId = clientId;
        this.authToken = authToken;
        this.sessionId = f.json && f.json.session_id;
        return f;
    }

    registerPayload(extra = {})
    {
        return {
            version: PROTOCOL_VERSION, client_id: this.clientId, auth_token: this.authToken, ...extra,
        };
    }

    /* REGISTER with the CONNECT credentials; returns the reply frame (ACK or ERROR). */
    register(extra = {})
    {
        return this.request(T.REGISTER, this.registerPayload(extra));
    }

    unregister(extra = {})
    {
        return this.request(T.UNREGISTER, this.registerPayload(extra));
    }

    pingFrame(timestamp = Date.now())
    {
        return this.request(T.PING, { timestamp });
    }

    /* Close with a close frame (clean end). */
    close(code = 1000, reason = '')
    {
        if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(code, reason);
    }

    /* Drop the TCP connection without a close frame (FIN). */
    terminate()
    {
        if (this.ws) this.ws.terminate();
    }

    /* Drop the TCP connection with a RST. */
    reset()
    {
        const s = this.ws && this.ws._socket;
        if (s && typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
        else this.terminate();
    }
}

/* Open a client and CONNECT it.  Returns the client (ack in client.connectAck). */
async function connectClient(url, clientId = 'test_client_1', authToken = 'test_token_1', extra = {})
{
    const c = new Client(url);
    await c.connect();
    c.connectAck = await c.hello(clientId, authToken, extra);
    return c;
}

/*
 * Retry `fn` until it resolves to something other than undefined/false, bounded by
 * timeoutMs.  A rejection retries too (its message is reported on timeout) unless
 * the error has `fatal: true`.  Each try should itself wait for a server round
 * trip; backoffMs is a small pause between tries, not a wait for a condition.
 */
async function until(fn, timeoutMs = DEFAULT_TIMEOUT, what = 'a condition', backoffMs = 20)
{
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const r = await fn();
            if (r !== undefined && r !== false) return r;
            last = r;
        } catch (e) {
            if (e && e.fatal) throw e;
            last = e;
        }
        if (Date.now() >= deadline) {
            const why = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${why}`);
        }
        await new Promise((r) => setTimeout(r, backoffMs));
    }
}

/*
 * Raw HTTP over net: send `text` (a complete request), read until the server
 * closes.  Resolves {status, headers, body, raw}.
 */
function rawHttp(port, text, { host = '127.0.0.1', timeoutMs = DEFAULT_TIMEOUT } = {})
{
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port });
        const chunks = [];
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`HTTP: no close within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
        }, timeoutMs);
        sock.on('connect', () => sock.write(text));
        sock.on('data', (d) => chunks.push(d));
        sock.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
        sock.on('close', () => {
            clearTimeout(timer);
            const raw = Buffer.concat(chunks).toString('latin1');
            try {
                resolve(parseHttpResponse(raw));
            } catch (e) {
                reject(e);
            }
        });
    });
}

function parseHttpResponse(raw)
{
    const sep = raw.indexOf('\r\n\r\n');
    if (sep < 0) throw new Error(`incomplete HTTP response: ${JSON.stringify(raw)}`);
    const lines = raw.slice(0, sep).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const headers = {};
    for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let body = raw.slice(sep + 4);
    if (/chunked/i.test(headers['transfer-encoding'] || '')) body = unchunk(body);
    else if (headers['content-length'] !== undefined) {
        body = body.slice(0, Number(headers['content-length']));
    }
    return { status: Number(m[1]), headers, body, raw };
}

function unchunk(s)
{
    let out = '';
    let i = 0;
    for (;;) {
        const eol = s.indexOf('\r\n', i);
        if (eol < 0) break;
        const n = parseInt(s.slice(i, eol), 16);
        if (!n) break;
        out += s.slice(eol + 2, eol + 2 + n);
        i = eol + 2 + n + 2;
    }
    return out;
}

function httpGet(port, path, opts = {})
{
    const host = opts.host || '127.0.0.1';
    const extra = (opts.headers || []).map((h) => `${h}\r\n`).join('');
    return rawHttp(port, `${opts.method || 'GET'} ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${extra}\r\n`, opts);
}

function upgradeHeaders(overrides = {})
{
    const h = {
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
        ...overrides,
    };
    return Object.entries(h).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}`);
}

/*
 * Hand-made upgrade over a net socket.  Resolves {sock, frames, waitData, waitEnd}
 * after the 101; rejects with the HTTP response otherwise.  Data after the 101 is
 * collected raw (server WebSocket frames, unmasked).
 */
function rawUpgrade(port, { host = '127.0.0.1', path = '/', timeoutMs = DEFAULT_TIMEOUT } = {})
{
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port });
        let buf = Buffer.alloc(0);
        let upgraded = false;
        const state = {
            sock,
            data: Buffer.alloc(0),
            ended: false,
            waiters: new Waiters(),
        };
        state.waitEnd = (ms = DEFAULT_TIMEOUT) => state.waiters.add(() => (state.ended ? true : undefined),
            ms, 'the raw socket to be closed by the server');
        state.waitData = (n, ms = DEFAULT_TIMEOUT) => state.waiters.add(
            () => (state.data.length >= n ? state.data : (state.ended ? (() => { throw new Error('socket closed'); })() : undefined)),
            ms, `${n} bytes on the raw socket`);
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`raw upgrade: no 101 within ${timeoutMs} ms`));
        }, timeoutMs);
        sock.on('connect', () => {
            sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${upgradeHeaders().join('\r\n')}\r\n\r\n`);
        });
        sock.on('data', (d) => {
            if (upgraded) {
                state.data = Buffer.concat([state.data, d]);
                state.waiters.poke();
                return;
            }
            buf = Buffer.concat([buf, d]);
            const sep = buf.indexOf('\r\n\r\n');
            if (sep < 0) return;
            const head = buf.subarray(0, sep).toString('latin1');
            if (!/^HTTP\/1\.1 101/.test(head)) {
                clearTimeout(timer);
                sock.destroy();
                reject(new Error(`raw upgrade refused: ${head.split('\r\n')[0]}`));
                return;
            }
            upgraded = true;
            clearTimeout(timer);
            state.data = buf.subarray(sep + 4);
            resolve(state);
        });
        const end = () => {
            state.ended = true;
            state.waiters.poke();
            if (!upgraded) {
                clearTimeout(timer);
                reject(new Error(`raw upgrade: socket closed before 101: ${buf.toString('latin1')}`));
            }
        };
        sock.on('end', end);
        sock.on('close', end);
        sock.on('error', () => end());
    });
}

/* Build a masked client WebSocket frame (for raw sockets). */
function wsClientFrame(opcode, payload, fin = true)
{
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    let head;
    if (len < 126) {
        head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]);
    } else if (len < 65536) {
        head = Buffer.alloc(4);
        head[0] = (fin ? 0x80 : 0) | opcode;
        head[1] = 0x80 | 126;
        head.writeUInt16BE(len, 2);
    } else {
        head = Buffer.alloc(10);
        head[0] = (fin ? 0x80 : 0) | opcode;
        head[1] = 0x80 | 127;
        head.writeBigUInt64BE(BigInt(len), 2);
    }
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
    return Buffer.concat([head, mask, body]);
}

/* Parse server (unmasked) WebSocket frames from a buffer: [{opcode, fin, payload}]. */
function wsParseServerFrames(buf)
{
    const out = [];
    let i = 0;
    while (i + 2 <= buf.length) {
        const fin = (buf[i] & 0x80) !== 0;
        const opcode = buf[i] & 0x0f;
        let len = buf[i + 1] & 0x7f;
        let off = i + 2;
        if (len === 126) {
            if (off + 2 > buf.length) break;
            len = buf.readUInt16BE(off);
            off += 2;
        } else if (len === 127) {
            if (off + 8 > buf.length) break;
            len = Number(buf.readBigUInt64BE(off));
            off += 8;
        }
        if (off + len > buf.length) break;
        out.push({ opcode, fin, payload: buf.subarray(off, off + len) });
        i = off + len;
    }
    return out;
}

/* HS256 JWT; header/claims are objects, secret a string or Buffer. */
function b64url(x)
{
    return Buffer.from(x).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function signJwt(claims, secret, header = { alg: 'HS256', typ: 'JWT' })
{
    const h = b64url(JSON.stringify(header));
    const p = b64url(JSON.stringify(claims));
    const sig = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest();
    return `${h}.${p}.${b64url(sig)}`;
}

/* Terminate every client still open (used by the harness' cleanup). */
function terminateAllClients()
{
    for (const c of allClients) {
        try {
            c.terminate();
        } catch {
            /* already gone */
        }
    }
    allClients.clear();
}

/* Assert helper for ERROR frames: returns the JSON payload. */
function expectError(frame, code, re)
{
    if (frame.type !== T.ERROR) {
        throw new Error(`expected ERROR ${code}, got ${describe(frame)}`);
    }
    const j = frame.json;
    if (!j || j.error_code !== code) {
        throw new Error(`expected ERROR ${code}, got ${describe(frame)}`);
    }
    if (typeof j.error_message !== 'string' || j.error_message.length === 0) {
        throw new Error(`ERROR without error_message: ${describe(frame)}`);
    }
    if (!j.details || typeof j.details !== 'object' || typeof j.details.timestamp !== 'number') {
        throw new Error(`ERROR without details.timestamp (number): ${describe(frame)}`);
    }
    if (re && !re.test(j.error_message)) {
        throw new Error(`ERROR ${code} message ${JSON.stringify(j.error_message)} does not match ${re}`);
    }
    return j;
}

module.exports = {
    T, P, START, HEADER_SIZE, PROTOCOL_VERSION, UUID_RE, DEFAULT_TIMEOUT,
    typeName, uuidBytes, uuidText, newUuid, encodeFrame, decodeFrame, describe,
    Client, connectClient, until, Waiters,
    rawHttp, httpGet, parseHttpResponse, upgradeHeaders, rawUpgrade, wsClientFrame, wsParseServerFrames,
    signJwt, b64url, terminateAllClients, expectError,
};
