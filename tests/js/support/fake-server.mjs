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
 *
 * SFU mode (`startFakeServer({ sfu: true })`, DECISIONS §6 cloudflare, shapes
 * as the real server's): ROOM_CREATE needs an offer_sdp with audio/video
 * m-sections and answers with answer_sdp, connection_info (publish SFU
 * session, tracks "<kind>-<mid>") and subscribe; ROOM_JOIN publishes an offer
 * (publish {...}) and pulls every other member's publication (subscribe
 * {session_id, offer_sdp, tracks}), then sends tracks_published; SESSION_UPDATE
 * answer / pull / close on the client's own SFU sessions (else 404; pull only
 * on a subscribe session, else 400); participant_left carries the leaver's
 * tracks.  srv.sfuSessions: sid -> {clientId, roomId, kind, mids}.
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
        this.sfu = !!opts.sfu;
        this.sfuSessions = new Map();   /* sid -> {clientId, roomId, kind, mids: []} */
        this.publications = new Map();  /* room_id -> [{clientId, session_id, track_name}] */
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
        const ev = { event: 'participant_left', room_id: roomId, client_id: s.clientId };
        if (this.sfu) {
            const all = this.publications.get(roomId) ?? [];
            const mine = all.filter((p) => p.clientId === s.clientId);
            this.publications.set(roomId, all.filter((p) => p.clientId !== s.clientId));
            for (const [sid, x] of this.sfuSessions) {
                if (x.clientId === s.clientId && x.roomId === roomId)
                    this.sfuSessions.delete(sid);
            }
            if (mine.length)
                ev.tracks = mine.map((p) => ({ session_id: p.session_id, track_name: p.track_name }));
        }
        if (members.size === 0) {
            this.rooms.delete(roomId);
            this.publications.delete(roomId);
            return;
        }
        for (const m of members)
            this.event(m, ev);
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
            if (this.sfu) {
                this._sfuCreate(conn, s, f, j);
                return;
            }
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
            if (this.sfu) {
                this._sfuJoin(conn, s, f, j, members);
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
            if (this.sfu) {
                this._sfuUpdate(conn, s, f, j);
                return;
            }
            this.send(conn, T.SESSION_UPDATE_ACK, f.uuid, { status: 200, session_id: j.session_id });
            return;
        default:
            this.error(conn, f.uuid, 400, 'unknown message type', { field: 'type' });
        }
    }

    /* ---- SFU mode ---- */

    _sfuSession(s, roomId, kind) {
        const sid = randomBytes(16).toString('hex');
        this.sfuSessions.set(sid, { clientId: s.clientId, roomId, kind, mids: [], nextMid: 0 });
        return sid;
    }

    /* [{track_name, mid}] for the audio/video m-sections of an offer. */
    static publishable(offer) {
        const out = [];
        for (const sec of String(offer).split(/\r?\n(?=m=)/).slice(1)) {
            const kind = /^m=(\w+)/.exec(sec)[1];
            const mid = /a=mid:(\S+)/.exec(sec);
            if ((kind === 'audio' || kind === 'video') && mid && !/a=(recvonly|inactive)/.test(sec))
                out.push({ track_name: `${kind}-${mid[1]}`, mid: mid[1] });
        }
        return out;
    }

    _sfuPublish(s, roomId, offer) {
        const tracks = FakeServer.publishable(offer);
        if (!tracks.length)
            return null;
        const sid = this._sfuSession(s, roomId, 'publish');
        this.sfuSessions.get(sid).mids.push(...tracks.map((t) => t.mid));
        const list = this.publications.get(roomId) ?? [];
        for (const t of tracks)
            list.push({ clientId: s.clientId, session_id: sid, track_name: t.track_name });
        this.publications.set(roomId, list);
        return { session_id: sid, answer_sdp: `v=0\r\ns=sfu answer for ${s.clientId}\r\n`, tracks };
    }

    /* Pull `tracks` ([{session_id, track_name}]) into the subscribe session sid. */
    _sfuPull(sid, tracks) {
        const sess = this.sfuSessions.get(sid);
        const live = this.publications.get(sess.roomId) ?? [];
        const items = tracks.map((t) => {
            if (!live.some((p) => p.session_id === t.session_id && p.track_name === t.track_name)) {
                return { session_id: t.session_id, track_name: t.track_name, mid: '',
                    error: { code: 'not_found_track_error', description: 'Track not found on remote peer.' } };
            }
            const mid = String(sess.nextMid++);
            sess.mids.push(mid);
            return { session_id: t.session_id, track_name: t.track_name, mid };
        });
        const offer = items.some((x) => !x.error) ? `v=0\r\ns=sfu offer ${sid} ${sess.nextMid}\r\n` : null;
        return { offer_sdp: offer, tracks: items };
    }

    _sfuCreate(conn, s, f, j) {
        const roomId = j.room_id ?? `room-${randomBytes(4).toString('hex')}`;
        if (typeof j.offer_sdp !== 'string' || !FakeServer.publishable(j.offer_sdp).length) {
            this.error(conn, f.uuid, 400, 'offer_sdp: an SDP offer with audio or video to publish is required ' +
                'in cloudflare mode', { field: 'offer_sdp' });
            return;
        }
        if (this.rooms.has(roomId)) {
            this.error(conn, f.uuid, 409, 'room already exists', { room_id: roomId });
            return;
        }
        this.rooms.set(roomId, new Set([s.clientId]));
        s.rooms.add(roomId);
        const pub = this._sfuPublish(s, roomId, j.offer_sdp);
        const sub = this._sfuSession(s, roomId, 'subscribe');
        this.send(conn, T.ROOM_CREATE_ACK, f.uuid, { version: '1.0.0', status: 200,
            message: 'Room created successfully', room_id: roomId, session_id: s.sessionId,
            max_participants: 16, participants: [s.clientId], answer_sdp: pub.answer_sdp,
            connection_info: { room_id: roomId, role: 'sender', app_id: 'fake-app', session_id: pub.session_id,
                status: 'connecting', mode: 'cloudflare', tracks: pub.tracks,
                metadata: { session_id: pub.session_id, created_at: new Date().toISOString(), client_id: s.clientId } },
            subscribe: { session_id: sub } });
    }

    _sfuJoin(conn, s, f, j, members) {
        const roomId = j.room_id;
        const pub = typeof j.offer_sdp === 'string' ? this._sfuPublish(s, roomId, j.offer_sdp) : null;
        const sub = this._sfuSession(s, roomId, 'subscribe');
        const others = (this.publications.get(roomId) ?? []).filter((p) => p.clientId !== s.clientId);
        const pulled = others.length ? this._sfuPull(sub, others) : { offer_sdp: null, tracks: [] };
        const before = [...members];
        members.add(s.clientId);
        s.rooms.add(roomId);
        const ack = { version: '1.0.0', status: 200, message: 'Joined room', room_id: roomId,
            session_id: s.sessionId, participants: [...members] };
        if (pub)
            ack.publish = pub;
        ack.subscribe = { session_id: sub, ...pulled };
        this.send(conn, T.ROOM_JOIN_ACK, f.uuid, ack);
        for (const m of before) {
            this.event(m, { event: 'participant_joined', room_id: roomId, client_id: s.clientId });
            if (pub) {
                this.event(m, { event: 'tracks_published', room_id: roomId, client_id: s.clientId,
                    tracks: pub.tracks.map((t) => ({ session_id: pub.session_id, track_name: t.track_name })) });
            }
        }
    }

    _sfuUpdate(conn, s, f, j) {
        const sess = this.sfuSessions.get(j.session_id);
        if (!sess || sess.clientId !== s.clientId) {
            this.error(conn, f.uuid, 404, 'session_id is not one of this client\'s SFU sessions',
                { session_id: j.session_id });
            return;
        }
        const ack = { status: 200, session_id: j.session_id, action: j.action };
        if (j.action === 'pull') {
            if (sess.kind !== 'subscribe') {
                this.error(conn, f.uuid, 400, 'pull: use the subscribe session_id', { session_id: j.session_id });
                return;
            }
            Object.assign(ack, this._sfuPull(j.session_id, j.tracks));
        } else if (j.action === 'close') {
            ack.tracks = j.mids.map((mid) => ({ mid }));
            sess.mids = sess.mids.filter((m) => !j.mids.includes(m));
        }
        this.send(conn, T.SESSION_UPDATE_ACK, f.uuid, ack);
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
