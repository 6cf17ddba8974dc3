/*
 * A fake Signal Manager for the SDK unit tests: a `ws` WebSocketServer on
 * 127.0.0.1:0 that speaks enough of the protocol (docs/protocol.md,
 * DECISIONS §3 resume and §6 p2p rooms) to drive the client, with knobs to
 * misbehave.  It decodes with its own small parser (not the SDK's), so a
 * codec bug in the SDK cannot hide behind a matching bug here.
 *
 *   const srv = await startFakeServer({ heartbeatInterval: 30 });
 *   srv.url, srv.frames (every frame received: {conn, type, uuid, payloadType, json, payload})
 *   srv.answerPings = false       stop answering PING (dead-connection test)
 *   srv.resume = false            CONNECT_ACK always says resumed:false
 *   srv.refuse = true             drop every new connection at once (reconnect failures)
 *   srv.swallow = (frame) => bool frames for which the server sends nothing
 *   srv.dropAll()                 end every TCP connection abruptly (no close frame)
 *   srv.dropClient(id)            the same for one client_id's connections
 *   srv.closeAll(code, notice?)   optional DISCONNECT notice, then close frame with code
 *   srv.waitFrame(pred, ms)       wait for a received frame matching pred
 *   await srv.close()
 */
import { createRequire } from 'node:module';
import { randomBytes, randomUUID } from 'node:crypto';

const require = createRequire(import.meta.url);
const { WebSocketServer } = require('../../../node_modules/ws');

export const T = {
    CONNECT: 0x01, CONNECT_ACK: 0x02, DISCONNECT: 0x03, PING: 0x04, PING_ACK: 0x05,
    REGISTER: 0x20, REGISTER_ACK: 0x21, UNREGISTER: 0x22, UNREGISTER_ACK: 0x23,
    ROOM_CREATE: 0x30, ROOM_CREATE_ACK: 0x31, ROOM_JOIN: 0x32, ROOM_JOIN_ACK: 0x33,
    ROOM_LEAVE: 0x34, ROOM_LEAVE_ACK: 0x35, ROOM_EVENT: 0x36, SIGNAL: 0x40,
    SESSION_UPDATE: 0x42, SESSION_UPDATE_ACK: 0x43, ERROR: 0xff,
};

export function uuidText(buf) {
    const h = Buffer.from(buf).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidBuf(text) {
    return Buffer.from(text.replace(/-/g, ''), 'hex');
}

/* Server-side frame builder: payload is an object (JSON), a Buffer (BINARY) or undefined. */
export function frame(type, uuid, payload) {
    let pt = 0;
    let body = Buffer.alloc(0);
    if (Buffer.isBuffer(payload)) {
        pt = 1;
        body = payload;
    } else if (payload !== undefined) {
        pt = 2;
        body = Buffer.from(JSON.stringify(payload), 'utf8');
    }
    const h = Buffer.alloc(21);
    h[0] = 0xaa;
    h[1] = type;
    uuidBuf(uuid).copy(h, 2);
    h[18] = pt;
    h.writeUInt16BE(body.length, 19);
    return Buffer.concat([h, body]);
}

function parse(buf) {
    if (buf.length < 21 || buf[0] !== 0xaa || buf.readUInt16BE(19) !== buf.length - 21)
        return null;
    const pt = buf[18];
    const payload = buf.subarray(21);
    let json;
    if (pt === 2)
        json = JSON.parse(payload.toString('utf8'));
    return { type: buf[1], uuid: uuidText(buf.subarray(2, 18)), payloadType: pt, payload, json };
}

function deferredTimeout(ms, what) {
    let timer;
    const p = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return { p, cancel: () => clearTimeout(timer) };
}

export class FakeServer {
    constructor(wss, opts) {
        this.wss = wss;
        this.url = `ws://127.0.0.1:${wss.address().port}/`;
        this.credentials = opts.credentials ?? {
            test_client_1: 'test_token_1', test_client_2: 'test_token_2', alice: 'a', bob: 'b',
        };
        this.heartbeatInterval = opts.heartbeatInterval ?? 30;
        this.answerPings = true;
        this.resume = true;
        this.refuse = false;
        this.swallow = null;
        this.frames = [];
        this.conns = new Set();
        this.sessions = new Map();   /* resume_token -> session */
        this.registry = new Map();   /* client_id -> session */
        this.rooms = new Map();      /* room_id -> Set<client_id> */
        this.connectionCount = 0;
        this._frameWaiters = [];
        wss.on('connection', (ws) => this._onConnection(ws));
    }

    _onConnection(ws) {
        this.connectionCount++;
        if (this.refuse) {
            ws.terminate();
            return;
        }
        const conn = { ws, id: this.connectionCount, session: null };
        this.conns.add(conn);
        ws.on('message', (data, isBinary) => {
            if (!isBinary) {
                ws.close(1003);
                return;
            }
            const f = parse(Buffer.from(data));
            if (!f) {
                this.send(conn, T.ERROR, '00000000-0000-0000-0000-000000000000',
                    { error_code: 400, error_message: 'bad frame', details: {} });
                return;
            }
            f.conn = conn;
            this.frames.push(f);
            for (const w of [...this._frameWaiters]) {
                if (w.pred(f)) {
                    this._frameWaiters.splice(this._frameWaiters.indexOf(w), 1);
                    w.resolve(f);
                }
            }
            if (this.swallow && this.swallow(f))
                return;
            this._handle(conn, f);
        });
        ws.on('close', (code) => {
            this.conns.delete(conn);
            const s = conn.session;
            if (!s || s.conn !== conn)
                return;
            s.conn = null;
            /* 1006: no close frame, i.e. abrupt: detach (DECISIONS §3); else release. */
            if (code !== 1006)
                this._release(s);
        });
        ws.on('error', () => {});
    }

    send(conn, type, uuid, payload) {
        if (conn.ws.readyState === 1)
            conn.ws.send(frame(type, uuid, payload));
    }

    error(conn, uuid, code, message, details = {}) {
        this.send(conn, T.ERROR, uuid, { error_code: code, error_message: message,
            details: { ...details, timestamp: Date.now() } });
    }

    _release(s) {
        if (this.registry.get(s.clientId) === s)
            this.registry.delete(s.clientId);
        for (const roomId of s.rooms)
            this._leave(s, roomId);
        for (const [tok, sess] of this.sessions) {
            if (sess === s)
                this.sessions.delete(tok);
        }
    }

    _leave(s, roomId) {
        const members = this.rooms.get(roomId);
        s.rooms.delete(roomId);
        if (!members)
            return;
        members.delete(s.clientId);
        if (members.size === 0) {
            this.rooms.delete(roomId);
            return;
        }
        for (const m of members)
            this.event(m, { event: 'participant_left', room_id: roomId, client_id: s.clientId });
    }

    /* ROOM_EVENT to a registered client (by id) if it is connected. */
    event(clientId, payload) {
        const s = this.registry.get(clientId);
        if (s && s.conn)
            this.send(s.conn, T.ROOM_EVENT, randomUUID(), payload);
    }

    _handle(conn, f) {
        const j = f.json ?? {};
        const s = conn.session;
        if (f.type === T.DISCONNECT) {
            if (s && s.conn === conn) {
                s.conn = null;
                this._release(s);
            }
            conn.ws.close(1000);
            return;
        }
        if (f.type === T.CONNECT) {
            if (s) {
                this.error(conn, f.uuid, 409, 'already connected');
                return;
            }
            if (this.credentials[j.client_id] !== j.auth_token) {
                this.error(conn, f.uuid, 401, 'invalid credentials', { client_id: j.client_id });
                return;
            }
            let resumed = false;
            let sess = this.resume && j.resume_token ? this.sessions.get(j.resume_token) : undefined;
            if (sess && sess.clientId === j.client_id) {
                resumed = true;
                this.sessions.delete(j.resume_token);
                if (sess.conn && sess.conn !== conn) {
                    const old = sess.conn;
                    this.send(old, T.DISCONNECT, randomUUID(), { reason: 'replaced', code: 4409, reconnect: false });
                    old.session = null;
                    old.ws.close(4409);
                }
            } else {
                sess = { clientId: j.client_id, sessionId: randomUUID(), registered: false, rooms: new Set(),
                    conn: null };
            }
            sess.conn = conn;
            conn.session = sess;
            const token = randomBytes(16).toString('hex');
            this.sessions.set(token, sess);
            this.send(conn, T.CONNECT_ACK, f.uuid, {
                status: 200, message: 'Connection established', session_id: sess.sessionId,
                server_version: '1.0.0', heartbeat_interval: this.heartbeatInterval,
                capabilities: ['websocket', 'heartbeat', 'webrtc'], resume_token: token, resumed,
            });
            return;
        }
        if (!s) {
            this.error(conn, f.uuid, 401, 'not authenticated: send CONNECT first');
            return;
        }
        switch (f.type) {
        case T.PING:
            if (this.answerPings)
                this.send(conn, T.PING_ACK, f.uuid, { timestamp: j.timestamp, server_time: Date.now() });
            return;
        case T.REGISTER: {
            if (s.registered) {
                this.error(conn, f.uuid, 409, 'client already registered', { client_id: s.clientId });
                return;
            }
            const holder = this.registry.get(s.clientId);
            if (holder && holder !== s) {
                if (holder.conn) {
                    this.error(conn, f.uuid, 409, 'client_id is already registered by another session',
                        { client_id: s.clientId });
                    return;
                }
                this._release(holder);
            }
            s.registered = true;
            this.registry.set(s.clientId, s);
            this.send(conn, T.REGISTER_ACK, f.uuid, { version: '1.0.0', status: 200,
                message: 'Registration successful', client_id: s.clientId, session_id: s.sessionId });
            return;
        }
        case T.UNREGISTER:
            if (!s.registered) {
                this.error(conn, f.uuid, 404, 'client not registered', { client_id: s.clientId });
                return;
            }
            this._release(s);
            s.registered = false;
            this.send(conn, T.UNREGISTER_ACK, f.uuid, { version: '1.0.0', status: 200,
                message: 'Unregistration successful', client_id: s.clientId });
            return;
        default:
            break;
        }
        if (!s.registered) {
            this.error(conn, f.uuid, 401, 'client not registered', { client_id: s.clientId });
            return;
        }
        switch (f.type) {
        case T.ROOM_CREATE: {
            const roomId = j.room_id ?? `room-${randomBytes(4).toString('hex')}`;
            if (this.rooms.has(roomId)) {
                this.error(conn, f.uuid, 409, 'room already exists', { room_id: roomId });
                return;
            }
            this.rooms.set(roomId, new Set([s.clientId]));
            s.rooms.add(roomId);
            this.send(conn, T.ROOM_CREATE_ACK, f.uuid, { version: '1.0.0', status: 200,
                message: 'Room created successfully', room_id: roomId, session_id: randomUUID(),
                connection_info: { room_id: roomId, role: 'sender', session_id: s.sessionId, status: 'connecting' } });
            return;
        }
        case T.ROOM_JOIN: {
            const members = this.rooms.get(j.room_id);
            if (!members) {
                this.error(conn, f.uuid, 404, 'room not found', { room_id: j.room_id });
                return;
            }
            for (const m of members)
                this.event(m, { event: 'participant_joined', room_id: j.room_id, client_id: s.clientId });
            members.add(s.clientId);
            s.rooms.add(j.room_id);
            this.send(conn, T.ROOM_JOIN_ACK, f.uuid, { version: '1.0.0', status: 200, room_id: j.room_id,
                session_id: randomUUID(), participants: [...members] });
            return;
        }
        case T.ROOM_LEAVE:
            if (!s.rooms.has(j.room_id)) {
                this.error(conn, f.uuid, 404, 'not a member of the room', { room_id: j.room_id });
                return;
            }
            this._leave(s, j.room_id);
            this.send(conn, T.ROOM_LEAVE_ACK, f.uuid, { version: '1.0.0', status: 200, room_id: j.room_id });
            return;
        case T.SIGNAL: {
            let target;
            let out;
            if (f.payloadType === 1) {
                const n = f.payload[0];
                target = f.payload.subarray(1, 1 + n).toString('latin1');
                const body = f.payload.subarray(1 + n);
                const me = Buffer.from(s.clientId, 'latin1');
                out = Buffer.concat([Buffer.from([me.length]), me, body]);
            } else {
                target = j.target_client_id;
                out = { ...j, from_client_id: s.clientId };
            }
            const ts = this.registry.get(target);
            if (!ts || !ts.conn) {
                this.error(conn, f.uuid, 404, 'target client not found', { target_client_id: target });
                return;
            }
            this.send(ts.conn, T.SIGNAL, randomUUID(), out);
            return;
        }
        case T.SESSION_UPDATE:
            this.send(conn, T.SESSION_UPDATE_ACK, f.uuid, { status: 200, session_id: j.session_id });
            return;
        default:
            this.error(conn, f.uuid, 400, 'unknown message type', { field: 'type' });
        }
    }

    waitFrame(pred, ms = 3000, what = 'a frame') {
        const found = this.frames.find(pred);
        if (found)
            return Promise.resolve(found);
        const t = deferredTimeout(ms, what);
        return Promise.race([
            new Promise((resolve) => this._frameWaiters.push({ pred, resolve })).finally(t.cancel),
            t.p,
        ]);
    }

    framesOf(type) {
        return this.frames.filter((f) => f.type === type);
    }

    /* Abrupt end: the session is detached now (not when `ws` reports the close later). */
    _drop(c) {
        if (c.session && c.session.conn === c)
            c.session.conn = null;
        c.ws.terminate();
    }

    dropAll() {
        for (const c of this.conns)
            this._drop(c);
    }

    dropClient(clientId) {
        for (const c of this.conns) {
            if (c.session && c.session.clientId === clientId)
                this._drop(c);
        }
    }

    closeAll(code, notice) {
        for (const c of this.conns) {
            if (notice)
                this.send(c, T.DISCONNECT, randomUUID(), notice);
            c.ws.close(code);
        }
    }

    async close() {
        for (const c of this.conns)
            c.ws.terminate();
        await new Promise((resolve) => this.wss.close(() => resolve()));
    }
}

export async function startFakeServer(opts = {}) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: opts.port ?? 0 });
    await new Promise((resolve, reject) => {
        wss.once('listening', resolve);
        wss.once('error', reject);
    });
    return new FakeServer(wss, opts);
}

/*
 * Wait for one event of an SDK client (its on() returns an unsubscribe).
 * Bounded: rejects after `ms` naming what it waited for.
 */
export function waitEvent(client, name, pred = () => true, ms = 3000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            off();
            reject(new Error(`timed out after ${ms} ms waiting for '${name}' event`));
        }, ms);
        const off = client.on(name, (ev) => {
            let ok;
            try {
                ok = pred(ev);
            } catch (err) {
                clearTimeout(timer);
                off();
                reject(err);
                return;
            }
            if (ok) {
                clearTimeout(timer);
                off();
                resolve(ev);
            }
        });
    });
}

/* Collect every event of `names` into arrays (for order/count checks). */
export function recordEvents(client, names) {
    const log = {};
    for (const n of names) {
        log[n] = [];
        client.on(n, (ev) => log[n].push(ev));
    }
    return log;
}
