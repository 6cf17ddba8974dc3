/*
 * Signal Manager JavaScript SDK: frame codec and client.
 *
 * One ES module, no runtime dependencies.  Runs in browsers and in Node 20+
 * (pass a WebSocket implementation such as the `ws` package's as the
 * `WebSocket` option; Node 20 has none built in).  The wire protocol is the
 * project's docs/protocol.md:
 *
 *   frame = 0xAA | type u8 | uuid 16 bytes | payload_type u8 | length u16 BE | payload
 *
 * The module exports, from the bottom up:
 *   - constants: message types, payload types, limits, client states;
 *   - uuid helpers (v4 from crypto.getRandomValues, text <-> 16 bytes);
 *   - the codec: encodeFrame / decodeFrame, BINARY SIGNAL prefix helpers;
 *   - typed errors: SignalManagerError, RequestTimeoutError, FrameError;
 *   - SignalManagerClient: promise-based requests correlated by uuid,
 *     heartbeat, automatic reconnect with session resume, events.
 *
 * See README.md beside this file for the API and the behaviour on reconnect.
 */

/* ------------------------------------------------------------------------ */
/* Constants                                                                */
/* ------------------------------------------------------------------------ */

/** Protocol version this SDK speaks (sent in CONNECT, REGISTER, ROOM_*). */
export const PROTOCOL_VERSION = '1.0.0';
/** SDK version (reported in CONNECT metadata). */
export const SDK_VERSION = '1.0.0';

export const START_BYTE = 0xaa;
export const HEADER_SIZE = 21;
/** Largest payload one frame can carry (the u16 length field). */
export const MAX_PAYLOAD_SIZE = 0xffff;
export const MAX_ID_LENGTH = 128;

/** Message type values (DECISIONS §2 and the protocol document's table). */
export const MessageType = Object.freeze({
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

export const PayloadType = Object.freeze({
    NONE: 0x00,
    BINARY: 0x01,
    JSON: 0x02,
});

/** Values of SignalManagerClient#state. */
export const ClientState = Object.freeze({
    DISCONNECTED: 'disconnected',
    CONNECTING: 'connecting',
    CONNECTED: 'connected',
    REGISTERED: 'registered',
    RECONNECTING: 'reconnecting',
    DISCONNECTING: 'disconnecting',
});

/*
 * Close codes after which the client does not reconnect on its own: they mean
 * the client did something the server refuses (1002 protocol error, 1003 text
 * frame, 1008 policy, 1009 too big) or another connection took the session
 * over (4409).  Reconnecting unchanged would fail the same way or fight.
 */
export const NO_RECONNECT_CLOSE_CODES = Object.freeze([1002, 1003, 1008, 1009, 4409]);

const TYPE_NAMES = new Map(Object.entries(MessageType).map(([name, value]) => [value, name]));

/** Name of a message type value, e.g. 0x20 -> "REGISTER"; unknown -> "0x7f". */
export function messageTypeName(type) {
    const name = TYPE_NAMES.get(type);
    if (name !== undefined)
        return name;
    return `0x${Number(type).toString(16).padStart(2, '0')}`;
}

const ID_RE = /^[A-Za-z0-9._:@-]{1,128}$/;
/* What ID_RE accepts, for error messages. */
const ID_RULE = '1-128 characters of [A-Za-z0-9._:@-]';

/** SFU mode: most tracks or mids one SESSION_UPDATE may carry (the SFU's per-request limit). */
export const MAX_SFU_TRACKS = 64;

/** SESSION_UPDATE actions (SFU mode, webrtc.mode = cloudflare). */
export const SessionAction = Object.freeze({
    ANSWER: 'answer',
    PULL: 'pull',
    CLOSE: 'close',
});

/** True when `id` is a valid client_id / room_id: 1-128 chars of [A-Za-z0-9._:@-]. */
export function isValidId(id) {
    return typeof id === 'string' && ID_RE.test(id);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Every error the SDK produces.  `errorCode` is the protocol's error_code for
 * an ERROR from the server (400, 401, 403, 404, 408, 409, 413, 429, 500, 503),
 * or, when `local` is true, a code the SDK chose with the same meaning:
 * 400 invalid argument / malformed frame, 408 request timed out, 409 call not
 * valid in the current state, 413 payload too large for one frame,
 * 503 not connected or connection lost before the reply.
 */
export class SignalManagerError extends Error {
    constructor(errorCode, message, { details = {}, uuid = null, local = false,
        requestType = null, context = null, cause } = {}) {
        super(message, cause === undefined ? undefined : { cause });
        this.name = 'SignalManagerError';
        /** protocol error_code (or local equivalent) */
        this.errorCode = errorCode;
        /** ERROR payload `details` (server) or SDK details (local) */
        this.details = details ?? {};
        /** uuid of the request this error answers, when known */
        this.uuid = uuid;
        /** true when the SDK raised it; false when the server sent ERROR */
        this.local = local;
        /** name of the request type (e.g. "REGISTER"), when known */
        this.requestType = requestType;
        /** for 'error' events: what the error relates to ({kind:'signal', ...}) */
        this.context = context;
    }

    /** Build from an ERROR frame's JSON payload. */
    static fromPayload(payload, uuid = null, requestType = null) {
        const p = payload && typeof payload === 'object' ? payload : {};
        const code = Number.isInteger(p.error_code) ? p.error_code : 500;
        const msg = typeof p.error_message === 'string' ? p.error_message : 'server error';
        const details = p.details && typeof p.details === 'object' ? p.details : {};
        return new SignalManagerError(code, msg, { details, uuid, requestType });
    }
}

/** A request got no reply within its timeout: errorCode 408, local. */
export class RequestTimeoutError extends SignalManagerError {
    constructor(requestType, timeoutMs, uuid) {
        super(408, `${requestType} timed out after ${timeoutMs} ms`,
            { details: { timeoutMs }, uuid, local: true, requestType });
        this.name = 'RequestTimeoutError';
    }
}

/**
 * A frame could not be decoded or encoded.  `reason` says why:
 * not-binary, too-short, bad-start-byte, length-mismatch, unknown-payload-type,
 * none-with-payload, binary-not-allowed, empty-json, invalid-utf8, invalid-json,
 * json-not-object, bad-signal-prefix (decode); bad-type, bad-uuid,
 * bad-payload, payload-too-large (encode, errorCode 413), bad-id.
 */
export class FrameError extends SignalManagerError {
    constructor(reason, message, errorCode = 400) {
        super(errorCode, message, { details: { reason }, local: true });
        this.name = 'FrameError';
        this.reason = reason;
    }
}

/* ------------------------------------------------------------------------ */
/* UUIDs                                                                    */
/* ------------------------------------------------------------------------ */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** 16 bytes -> lowercase 8-4-4-4-12 text. */
export function uuidFromBytes(bytes) {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 16)
        throw new FrameError('bad-uuid', 'uuid must be 16 bytes');
    let s = '';
    for (let i = 0; i < 16; i++) {
        if (i === 4 || i === 6 || i === 8 || i === 10)
            s += '-';
        s += HEX[bytes[i]];
    }
    return s;
}

/** 8-4-4-4-12 text (any case) -> 16 bytes. */
export function uuidToBytes(text) {
    if (typeof text !== 'string' || !UUID_RE.test(text))
        throw new FrameError('bad-uuid', 'uuid must be 8-4-4-4-12 hex text');
    const hex = text.replace(/-/g, '');
    const out = new Uint8Array(16);
    for (let i = 0; i < 16; i++)
        out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return out;
}

/**
 * A random version 4 uuid, lowercase text.  Uses crypto.getRandomValues,
 * which (unlike crypto.randomUUID) also exists on pages that are not a secure
 * context, e.g. the demo opened over plain http on a LAN address.
 */
export function uuidv4() {
    return uuidFromBytes(uuidv4Bytes());
}

/* uuidv4() as its 16 bytes (what a frame carries). */
function uuidv4Bytes() {
    const c = globalThis.crypto;
    if (c && typeof c.getRandomValues === 'function') {
        const b = c.getRandomValues(new Uint8Array(16));
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        return b;
    }
    if (c && typeof c.randomUUID === 'function')
        return uuidToBytes(c.randomUUID());
    throw new Error('signal-manager: no crypto.getRandomValues in this environment');
}

/* ------------------------------------------------------------------------ */
/* Codec                                                                    */
/* ------------------------------------------------------------------------ */

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function isArrayBuffer(x) {
    return x instanceof ArrayBuffer ||
        Object.prototype.toString.call(x) === '[object ArrayBuffer]' ||
        Object.prototype.toString.call(x) === '[object SharedArrayBuffer]';
}

/**
 * View WebSocket message data as bytes without copying: ArrayBuffer,
 * any ArrayBufferView (Uint8Array, Node Buffer, DataView), or an array of
 * those (the `ws` package's 'fragments' binaryType, concatenated).
 * A string (text message) or anything else throws FrameError 'not-binary'.
 */
export function toBytes(data) {
    if (data instanceof Uint8Array)
        return data;
    if (isArrayBuffer(data))
        return new Uint8Array(data);
    if (ArrayBuffer.isView(data))
        return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (Array.isArray(data)) {
        const parts = data.map(toBytes);
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let off = 0;
        for (const p of parts) {
            out.set(p, off);
            off += p.length;
        }
        return out;
    }
    throw new FrameError('not-binary',
        `expected a binary message, got ${typeof data === 'string' ? 'a text message' : typeof data}`);
}

/**
 * Encode one frame.
 *
 *   encodeFrame({ type, uuid?, payloadType?, payload?, json? }) -> Uint8Array
 *
 * - `type`: message type value 0-255.
 * - `uuid`: 8-4-4-4-12 text or 16 bytes; a fresh v4 uuid when absent.
 * - `payload`: bytes (Uint8Array/ArrayBuffer/view).  When given it is sent as
 *   is, with `payloadType` (default BINARY, or NONE when empty).
 * - `json`: otherwise, a value sent as JSON (UTF-8); payloadType JSON.
 * - neither: payload type NONE, length 0.
 *
 * Throws FrameError: bad-type, bad-uuid, bad-payload, payload-too-large (413).
 * The exact inverse of decodeFrame: encodeFrame(decodeFrame(b)) equals b.
 */
export function encodeFrame({ type, uuid, payloadType, payload, json } = {}) {
    if (!Number.isInteger(type) || type < 0 || type > 0xff)
        throw new FrameError('bad-type', `message type must be an integer 0-255, got ${type}`);
    let uuidBytes;
    if (uuid === undefined || uuid === null)
        uuidBytes = uuidv4Bytes();
    else if (typeof uuid === 'string')
        uuidBytes = uuidToBytes(uuid);
    else if (uuid instanceof Uint8Array && uuid.length === 16)
        uuidBytes = uuid;
    else
        throw new FrameError('bad-uuid', 'uuid must be 8-4-4-4-12 text or 16 bytes');

    let body;
    let pt;
    if (payload !== undefined && payload !== null) {
        try {
            body = toBytes(payload);
        } catch {
            throw new FrameError('bad-payload', 'payload must be bytes');
        }
        pt = payloadType ?? (body.length > 0 ? PayloadType.BINARY : PayloadType.NONE);
    } else if (json !== undefined) {
        const text = JSON.stringify(json);
        if (text === undefined)
            throw new FrameError('bad-payload', 'json payload is not serializable');
        body = textEncoder.encode(text);
        pt = payloadType ?? PayloadType.JSON;
    } else {
        body = new Uint8Array(0);
        pt = payloadType ?? PayloadType.NONE;
    }
    if (!Number.isInteger(pt) || pt < 0 || pt > 0xff)
        throw new FrameError('bad-payload', `payload type must be an integer 0-255, got ${pt}`);
    if (body.length > MAX_PAYLOAD_SIZE)
        throw new FrameError('payload-too-large',
            `payload of ${body.length} bytes exceeds the ${MAX_PAYLOAD_SIZE}-byte frame limit`, 413);

    const out = new Uint8Array(HEADER_SIZE + body.length);
    out[0] = START_BYTE;
    out[1] = type;
    out.set(uuidBytes, 2);
    out[18] = pt;
    out[19] = body.length >>> 8;
    out[20] = body.length & 0xff;
    out.set(body, HEADER_SIZE);
    return out;
}

/**
 * Decode one frame (one WebSocket message).
 *
 * Returns { type, typeName, uuid, payloadType, payload, json }:
 * `payload` is a view of the payload bytes; `json` the parsed object for a
 * JSON payload (else undefined).  Unknown message types are returned, not
 * rejected (a newer server may add types).  Throws FrameError for:
 * not-binary, too-short, bad-start-byte, length-mismatch, unknown-payload-type,
 * none-with-payload, binary-not-allowed (BINARY on anything but SIGNAL),
 * empty-json, invalid-utf8, invalid-json, json-not-object.
 */
export function decodeFrame(data) {
    const b = toBytes(data);
    if (b.length < HEADER_SIZE)
        throw new FrameError('too-short',
            `frame of ${b.length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
    if (b[0] !== START_BYTE)
        throw new FrameError('bad-start-byte', `bad start byte 0x${HEX[b[0]]} (expected 0xaa)`);
    const len = (b[19] << 8) | b[20];
    if (len !== b.length - HEADER_SIZE)
        throw new FrameError('length-mismatch',
            `length field ${len} does not match the ${b.length - HEADER_SIZE} bytes after the header`);
    const type = b[1];
    const payloadType = b[18];
    const payload = b.subarray(HEADER_SIZE);
    let json;
    switch (payloadType) {
    case PayloadType.NONE:
        if (len !== 0)
            throw new FrameError('none-with-payload', 'payload type NONE with a non-zero length');
        break;
    case PayloadType.BINARY:
        if (type !== MessageType.SIGNAL)
            throw new FrameError('binary-not-allowed',
                `BINARY payload not allowed on ${messageTypeName(type)}`);
        break;
    case PayloadType.JSON: {
        if (len === 0)
            throw new FrameError('empty-json', 'JSON payload is empty');
        let text;
        try {
            text = textDecoder.decode(payload);
        } catch {
            throw new FrameError('invalid-utf8', 'JSON payload is not valid UTF-8');
        }
        try {
            json = JSON.parse(text);
        } catch (err) {
            throw new FrameError('invalid-json', `JSON payload does not parse: ${err.message}`);
        }
        if (json === null || typeof json !== 'object' || Array.isArray(json))
            throw new FrameError('json-not-object', 'JSON payload is not an object');
        break;
    }
    default:
        throw new FrameError('unknown-payload-type', `unknown payload type 0x${HEX[payloadType]}`);
    }
    return {
        type,
        typeName: messageTypeName(type),
        uuid: uuidFromBytes(b.subarray(2, 18)),
        payloadType,
        payload,
        json,
    };
}

/**
 * BINARY SIGNAL payload: `uint8 n | n bytes client_id | body`.
 * Returns the payload bytes; throws FrameError 'bad-id' for an invalid id,
 * 'bad-payload' when body is not bytes.
 */
export function encodeSignalBinary(clientId, body) {
    if (!isValidId(clientId))
        throw new FrameError('bad-id', `client_id must be ${ID_RULE}`);
    let bytes;
    try {
        bytes = toBytes(body);
    } catch {
        throw new FrameError('bad-payload', 'binary signal body must be bytes');
    }
    const out = new Uint8Array(1 + clientId.length + bytes.length);
    out[0] = clientId.length;
    for (let i = 0; i < clientId.length; i++)
        out[1 + i] = clientId.charCodeAt(i);
    out.set(bytes, 1 + clientId.length);
    return out;
}

/**
 * Split a BINARY SIGNAL payload into { clientId, body } (body is a view).
 * Throws FrameError 'bad-signal-prefix' when the prefix is missing, zero,
 * longer than the payload, or not a valid id.
 */
export function decodeSignalBinary(payload) {
    const b = toBytes(payload);
    if (b.length === 0 || b[0] === 0 || b[0] > b.length - 1)
        throw new FrameError('bad-signal-prefix', 'binary SIGNAL without a valid client_id prefix');
    const n = b[0];
    let id = '';
    for (let i = 0; i < n; i++)
        id += String.fromCharCode(b[1 + i]);
    if (!isValidId(id))
        throw new FrameError('bad-signal-prefix', 'binary SIGNAL prefix is not a valid client_id');
    return { clientId: id, body: b.subarray(1 + n) };
}

/* ------------------------------------------------------------------------ */
/* Event emitter                                                            */
/* ------------------------------------------------------------------------ */

/**
 * A tiny emitter: on(name, fn) returns an unsubscribe function; listeners get
 * one argument.  A listener that throws does not disturb the client or the
 * other listeners: the exception is re-thrown from a fresh task (reported like
 * an uncaught exception, as EventTarget does).
 */
export class Emitter {
    constructor() {
        this._listeners = new Map();
    }

    on(name, fn) {
        if (typeof fn !== 'function')
            throw new TypeError('listener must be a function');
        let set = this._listeners.get(name);
        if (!set) {
            set = new Set();
            this._listeners.set(name, set);
        }
        set.add(fn);
        return () => this.off(name, fn);
    }

    off(name, fn) {
        const set = this._listeners.get(name);
        if (set)
            set.delete(fn);
    }

    once(name, fn) {
        const off = this.on(name, (arg) => {
            off();
            fn(arg);
        });
        return off;
    }

    listenerCount(name) {
        return this._listeners.get(name)?.size ?? 0;
    }

    emit(name, arg) {
        const set = this._listeners.get(name);
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(arg);
            } catch (err) {
                setTimeout(() => {
                    throw err;
                }, 0);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* SFU mode: SESSION_UPDATE payloads                                        */
/* ------------------------------------------------------------------------ */

/*
 * Wire payload of a structured SESSION_UPDATE ({sessionId, action, answerSdp,
 * tracks, mids}); throws a local 400 naming the field.  Tracks are sent as
 * {session_id, track_name}, from either spelling.
 */
function sessionUpdateBody(p) {
    const bad = (field, msg) => localError(400, `${field}: ${msg}`, { details: { field } });
    if (!isValidId(p.sessionId))
        throw bad('sessionId', `must be ${ID_RULE}`);
    const body = { session_id: p.sessionId, action: p.action };
    switch (p.action) {
    case SessionAction.ANSWER:
        if (typeof p.answerSdp !== 'string' || p.answerSdp === '')
            throw bad('answerSdp', 'the SDP answer (a non-empty string) is required for action "answer"');
        body.answer_sdp = p.answerSdp;
        break;
    case SessionAction.PULL: {
        const t = p.tracks;
        if (!Array.isArray(t) || t.length === 0 || t.length > MAX_SFU_TRACKS)
            throw bad('tracks', `1-${MAX_SFU_TRACKS} tracks are required for action "pull"`);
        body.tracks = t.map((x, i) => {
            const sid = x && typeof x === 'object' ? x.sessionId ?? x.session_id : undefined;
            const name = x && typeof x === 'object' ? x.trackName ?? x.track_name : undefined;
            if (!isValidId(sid) || typeof name !== 'string' || name === '')
                throw bad(`tracks[${i}]`, 'needs the publisher\'s sessionId and a trackName');
            return { session_id: sid, track_name: name };
        });
        break;
    }
    case SessionAction.CLOSE: {
        const m = p.mids;
        if (!Array.isArray(m) || m.length === 0 || m.length > MAX_SFU_TRACKS ||
            m.some((x) => typeof x !== 'string' || x === ''))
            throw bad('mids', `1-${MAX_SFU_TRACKS} non-empty mid strings are required for action "close"`);
        body.mids = [...m];
        break;
    }
    default:
        throw bad('action', 'must be "answer", "pull" or "close"');
    }
    return body;
}

/* ------------------------------------------------------------------------ */
/* Client                                                                   */
/* ------------------------------------------------------------------------ */

const WS_OPEN = 1;
/* Longest setTimeout/setInterval delay (ms); larger ones fire at once. */
const MAX_TIMER_DELAY = 0x7fffffff;
const RECENT_SIGNALS_MAX = 1024;

const DEFAULTS = Object.freeze({
    version: PROTOCOL_VERSION,
    capabilities: ['websocket', 'heartbeat', 'webrtc'],
    metadata: {},
    requestTimeout: 10000,
    connectTimeout: null,
    heartbeatInterval: null,
    heartbeatTimeout: null,
    reconnect: true,
    maxReconnectAttempts: 5,
    reconnectBaseDelay: 500,
    reconnectMaxDelay: 10000,
    reconnectJitter: 0.5,
    rejoinRooms: true,
    recreateRooms: true,
});

function noop() {}

function localError(code, message, extra = {}) {
    return new SignalManagerError(code, message, { ...extra, local: true });
}

/* Local 400 for an argument `field` that is not a valid id. */
function idError(field) {
    return localError(400, `${field} must be ${ID_RULE}`);
}

function defaultMetadata() {
    const md = { sdk: `signal-manager-js/${SDK_VERSION}`, timestamp: Date.now() };
    const nav = globalThis.navigator;
    if (nav && typeof nav.userAgent === 'string' && typeof globalThis.document !== 'undefined') {
        md.platform = 'web';
        md.userAgent = nav.userAgent;
    } else if (typeof globalThis.process?.versions?.node === 'string') {
        md.platform = 'node';
    }
    return md;
}

/**
 * Signal Manager client.  See README.md for the full API.
 *
 *   const c = new SignalManagerClient({ url, clientId, authToken, WebSocket });
 *   await c.connect(); await c.register();
 *   c.on('signal', (s) => ...);
 */
export class SignalManagerClient extends Emitter {
    constructor(options) {
        super();
        if (!options || typeof options !== 'object')
            throw new TypeError('SignalManagerClient: options object required');
        if (typeof options.url !== 'string' || options.url === '')
            throw new TypeError('SignalManagerClient: options.url (ws:// or wss://) required');
        if (!isValidId(options.clientId))
            throw new TypeError(`SignalManagerClient: options.clientId must be ${ID_RULE}`);
        const tok = options.authToken;
        if (!(typeof tok === 'string' && tok !== '') && typeof tok !== 'function')
            throw new TypeError(
                'SignalManagerClient: options.authToken must be a non-empty string or a function');
        const WS = options.WebSocket ?? globalThis.WebSocket;
        if (typeof WS !== 'function')
            throw new TypeError(
                'SignalManagerClient: no WebSocket implementation; pass options.WebSocket');

        this._opts = { ...DEFAULTS };
        for (const k of Object.keys(DEFAULTS)) {
            if (options[k] !== undefined && options[k] !== null)
                this._opts[k] = options[k];
        }
        this._url = options.url;
        this._clientId = options.clientId;
        this._authToken = tok;
        this._WebSocket = WS;

        this._state = ClientState.DISCONNECTED;
        this._sock = null;            /* current socket record, see _openSocket */
        this._epoch = 0;              /* bumped by connect()/disconnect(): cancels stale work */
        this._pending = new Map();    /* uuid -> request entry */
        this._liveWaiters = new Set(); /* requests waiting for connected/registered */
        this._recentSignals = new Map(); /* uuid -> context, for late ERRORs */
        this._registerOptions = null; /* non-null while registered: replayed on reconnect */
        this._rooms = new Map();      /* roomId -> {metadata (join), roomMetadata (create)} */
        this._sfu = new Map();        /* roomId -> {publish, subscribe}: SFU session ids (cloudflare mode) */
        this._resumeToken = null;
        this._connectAck = null;
        this._heartbeatTimer = null;
        this._cancelSleep = null;
        this._lastCloseCode = null;
    }

    /* ---- read-only properties ---- */

    get state() { return this._state; }
    get url() { return this._url; }
    get clientId() { return this._clientId; }
    get sessionId() { return this._connectAck?.session_id ?? null; }
    /** Payload of the last CONNECT_ACK (null before the first). */
    get connectAck() { return this._connectAck; }
    get resumeToken() { return this._resumeToken; }
    get registered() { return this._registerOptions !== null; }
    /** Ids of the rooms this client is a member of (as far as it knows). */
    get rooms() { return [...this._rooms.keys()]; }

    /**
     * SFU mode: the client's SFU session ids in `roomId`, from the last
     * ROOM_CREATE_ACK / ROOM_JOIN_ACK for it: `{ publish, subscribe }`
     * (`publish` is null after a join without an offer).  null when the
     * client is not in the room or the room is not an SFU room.
     */
    sfuSessions(roomId) {
        const s = this._sfu.get(roomId);
        return s ? { ...s } : null;
    }

    /* ---- public API ---- */

    /**
     * Open the WebSocket and send CONNECT.  Resolves with the CONNECT_ACK
     * payload.  Rejects (and leaves the client 'disconnected') with the
     * server's ERROR (e.g. 401), 503 when the socket cannot be opened or
     * closes first, 408 after requestTimeout, 409 when not 'disconnected'.
     * Does not retry: automatic reconnect starts only once a session exists.
     */
    async connect() {
        if (this._state !== ClientState.DISCONNECTED)
            throw localError(409, `connect() called while ${this._state}`);
        const epoch = ++this._epoch;
        this._resumeToken = null;
        this._setState(ClientState.CONNECTING);
        try {
            const ack = await this._openSession(epoch, null);
            if (epoch !== this._epoch)
                throw localError(503, 'connect() cancelled by disconnect()');
            this._setState(ClientState.CONNECTED);
            this._flushLiveWaiters();
            return ack;
        } catch (err) {
            if (epoch === this._epoch) {
                this._dropSocket(1006, 'connect failed');
                this._finalize(err);
            }
            throw err;
        }
    }

    /**
     * REGISTER with { roomId?, capabilities?, metadata? }.  Resolves with the
     * REGISTER_ACK payload; the options are kept and replayed on reconnect
     * when the session is not resumed.
     */
    async register(opts = {}) {
        const o = { ...opts };
        if (o.roomId !== undefined && o.roomId !== null && !isValidId(o.roomId))
            throw idError('roomId');
        const ack = await this._request(MessageType.REGISTER, await this._registerPayload(o));
        this._registerOptions = o;
        if (this._state === ClientState.CONNECTED)
            this._setState(ClientState.REGISTERED);
        return ack;
    }

    /** UNREGISTER.  Resolves with the UNREGISTER_ACK payload; forgets the rooms. */
    async unregister() {
        const token = await this._token();
        const ack = await this._request(MessageType.UNREGISTER, {
            version: this._opts.version, client_id: this._clientId, auth_token: token,
        });
        this._registerOptions = null;
        this._forgetRooms();
        if (this._state === ClientState.REGISTERED)
            this._setState(ClientState.CONNECTED);
        return ack;
    }

    /**
     * ROOM_CREATE { roomId?, offerSdp?, metadata?, capabilities?, timeout? }.
     * Resolves with the ROOM_CREATE_ACK payload (its room_id is the room's
     * id).  SFU mode (offerSdp required there): the ACK also has `answer_sdp`
     * (the SFU's answer to offerSdp), `connection_info` (`session_id` = the
     * publish SFU session, `tracks`) and `subscribe.session_id`; both ids are
     * kept for sfuSessions().  `timeout` (ms) overrides requestTimeout for this
     * call (SFU calls can take long: the server retries them).
     */
    async createRoom(opts = {}) {
        const { roomId, offerSdp, metadata, capabilities, timeout } = opts;
        if (roomId !== undefined && roomId !== null && !isValidId(roomId))
            throw idError('roomId');
        const ack = await this._request(MessageType.ROOM_CREATE,
            this._createPayload(roomId, { offerSdp, capabilities, metadata }), { timeout });
        const id = typeof ack.room_id === 'string' ? ack.room_id : roomId;
        if (id) {
            this._rooms.set(id, { metadata: undefined, roomMetadata: metadata });
            this._rememberSfu(id, ack);
        }
        return ack;
    }

    /**
     * ROOM_JOIN roomId with { metadata?, offerSdp?, timeout? }.  Resolves with
     * the ROOM_JOIN_ACK payload ({room_id, session_id, participants,
     * offer_sdp?}).  SFU mode: also `publish` {session_id, answer_sdp, tracks}
     * when offerSdp was given, and `subscribe` {session_id, offer_sdp, tracks}
     * whose offer_sdp (the SFU's offer, or null) must be answered with
     * answerSubscription(); the session ids are kept for sfuSessions().
     */
    async joinRoom(roomId, opts = {}) {
        if (!isValidId(roomId))
            throw idError('roomId');
        const ack = await this._request(MessageType.ROOM_JOIN, this._joinPayload(roomId, opts),
            { timeout: opts.timeout });
        this._rooms.set(roomId, { metadata: opts.metadata, roomMetadata: undefined });
        this._rememberSfu(roomId, ack);
        return ack;
    }

    /** ROOM_LEAVE.  Resolves with the ROOM_LEAVE_ACK payload. */
    async leaveRoom(roomId) {
        if (!isValidId(roomId))
            throw idError('roomId');
        let ack;
        try {
            ack = await this._request(MessageType.ROOM_LEAVE, this._roomPayload(roomId));
        } catch (err) {
            if (!err.local && err.errorCode === 404)
                this._forgetRoom(roomId); /* not a member (any more) */
            throw err;
        }
        this._forgetRoom(roomId);
        return ack;
    }

    /**
     * SIGNAL with a JSON payload to one client.  No ACK exists on success, so
     * the promise resolves with the frame's uuid as soon as the frame is
     * handed to the socket.  An ERROR the server sends back for it later
     * (404 target not registered, 403 no shared room, 401 not registered) is
     * emitted as an 'error' event whose uuid is that value and whose context
     * is {kind:'signal', targetClientId, type, roomId}.  While reconnecting,
     * the frame waits (up to requestTimeout) and is sent once the session is
     * back; order between signals is kept.
     */
    signal(targetClientId, type, data = null, opts = {}) {
        if (!isValidId(targetClientId))
            return Promise.reject(idError('targetClientId'));
        if (typeof type !== 'string' || type.length < 1 || type.length > 64)
            return Promise.reject(localError(400, 'signal type must be a string of 1-64 characters'));
        const payload = { target_client_id: targetClientId, type, data };
        const roomId = opts.roomId ?? null;
        if (roomId !== null) {
            if (!isValidId(roomId))
                return Promise.reject(idError('roomId'));
            payload.room_id = roomId;
        }
        return this._request(MessageType.SIGNAL, payload, {
            noReply: true,
            context: { kind: 'signal', targetClientId, type, roomId },
        });
    }

    /**
     * SIGNAL with a BINARY payload (`bytes`: Uint8Array, ArrayBuffer or view)
     * to one client.  Same delivery and error rules as signal().
     */
    signalBinary(targetClientId, bytes) {
        let payload;
        try {
            payload = encodeSignalBinary(targetClientId, bytes);
        } catch (err) {
            return Promise.reject(err);
        }
        return this._request(MessageType.SIGNAL, payload, {
            payloadType: PayloadType.BINARY,
            noReply: true,
            context: { kind: 'signal', targetClientId, type: null, roomId: null, binary: true },
        });
    }

    /**
     * SFU mode (webrtc.mode = cloudflare): SESSION_UPDATE.  Resolves with the
     * SESSION_UPDATE_ACK payload ({status, session_id, action, ...}).
     *
     * Structured form: { sessionId, action: 'answer'|'pull'|'close',
     * answerSdp (answer), tracks (pull: [{sessionId, trackName}] or
     * [{session_id, track_name}], e.g. a tracks_published event's list),
     * mids (close: strings) }.  It is checked before anything is sent
     * (local 400: bad id, unknown action, missing answerSdp, empty or more
     * than MAX_SFU_TRACKS tracks / mids, a track without its publisher's
     * session id or track name).
     * Raw form (no `sessionId` key): the wire payload {session_id, action,
     * answer_sdp?, tracks?, mids?}, sent as given.  Both get `version`.
     * opts.timeout (ms) overrides requestTimeout.
     */
    sessionUpdate(payload, opts = {}) {
        if (!payload || typeof payload !== 'object' || Array.isArray(payload))
            return Promise.reject(localError(400, 'sessionUpdate payload must be an object'));
        let body = payload;
        if (payload.sessionId !== undefined) {
            try {
                body = sessionUpdateBody(payload);
            } catch (err) {
                return Promise.reject(err);
            }
        }
        return this._request(MessageType.SESSION_UPDATE, { version: this._opts.version, ...body },
            { timeout: opts.timeout });
    }

    /**
     * SFU mode: send the answer to an SFU offer (a subscribe session's
     * offer_sdp from ROOM_JOIN_ACK or from pullTracks()) = SESSION_UPDATE
     * action "answer".  Resolves with the ACK {status, session_id, action}.
     */
    answerSubscription(sessionId, answerSdp, opts = {}) {
        return this.sessionUpdate({ sessionId, action: SessionAction.ANSWER, answerSdp }, opts);
    }

    /**
     * SFU mode: pull publications into the subscribe session `sessionId`
     * (tracks as in a tracks_published event) = SESSION_UPDATE action "pull".
     * Resolves with the ACK {status, session_id, action, offer_sdp, tracks}:
     * answer offer_sdp (when not null) with answerSubscription(); items with
     * `error` were not pulled.  The server may retry for up to
     * webrtc.cloudflare_timeout while a publisher is not sending yet.
     */
    pullTracks(sessionId, tracks, opts = {}) {
        return this.sessionUpdate({ sessionId, action: SessionAction.PULL, tracks }, opts);
    }

    /**
     * SFU mode: stop tracks on one of this client's SFU sessions by mid =
     * SESSION_UPDATE action "close".  Resolves with the ACK
     * {status, session_id, action, tracks: [{mid, error?}]}.
     */
    closeTracks(sessionId, mids, opts = {}) {
        return this.sessionUpdate({ sessionId, action: SessionAction.CLOSE, mids }, opts);
    }

    /**
     * PING now.  Resolves with { timestamp, serverTime, rtt } (ms); rtt is
     * measured locally.
     */
    async ping() {
        const t0 = Date.now();
        const ack = await this._request(MessageType.PING, { timestamp: t0 });
        return { timestamp: t0, serverTime: ack.server_time, rtt: Date.now() - t0 };
    }

    /**
     * Send any request and resolve with its ACK payload: for message types
     * this SDK has no method for yet.  opts: { timeout?, noReply? }.
     */
    request(type, payload, opts = {}) {
        return this._request(type, payload, { timeout: opts.timeout, noReply: opts.noReply });
    }

    /**
     * Send DISCONNECT (JSON {reason} when given, else no payload) and wait
     * for the server to close the socket (up to requestTimeout, then the
     * socket is dropped).  Stops any reconnect in progress; forgets the
     * registration, rooms and resume token.  Resolves with { code, reason }
     * of the close (code null when there was no connection).
     */
    async disconnect(reason) {
        const epoch = ++this._epoch;
        if (this._cancelSleep)
            this._cancelSleep();
        const sock = this._sock;
        if (this._state === ClientState.DISCONNECTED && !sock)
            return { code: null, reason: '' };
        this._setState(ClientState.DISCONNECTING);
        this._stopHeartbeat();
        let info = { code: null, reason: '' };
        if (sock) {
            if (sock.established && sock.ws.readyState === WS_OPEN) {
                try {
                    const json = reason === undefined || reason === null ? undefined : { reason: String(reason) };
                    this._sendRaw(sock, encodeFrame({ type: MessageType.DISCONNECT, json }));
                } catch {
                    /* the close below ends it anyway */
                }
                info = await this._waitClose(sock, this._opts.requestTimeout);
            }
            if (!sock.closed) {
                this._abandonSocket(sock, 1000, 'client disconnect');
                info = { code: 1000, reason: 'client disconnect' };
            }
        }
        if (epoch === this._epoch) {
            const err = localError(503, 'disconnected by the client');
            this._finalize(err);
            this.emit('disconnect', {
                source: 'close', code: info.code, reason: info.reason, requested: true,
                willReconnect: false, final: true,
            });
        }
        return info;
    }

    /* ---- sessions and sockets ---- */

    /*
     * Socket record: { ws, opened, established, closed, openResolve,
     * openReject, closeWaiters, notice }.  Only this._sock's events are acted on; a stale
     * socket's late events are ignored.
     */
    _openSocket() {
        let ws;
        try {
            ws = new this._WebSocket(this._url);
        } catch (err) {
            return { sock: null, opened: Promise.reject(localError(503,
                `cannot open WebSocket to ${this._url}: ${err.message}`, { cause: err })) };
        }
        try {
            ws.binaryType = 'arraybuffer';
        } catch {
            /* toBytes copes with Blob-free binary types */
        }
        const sock = { ws, opened: false, established: false, closed: false,
            openResolve: null, openReject: null, closeWaiters: [], notice: null };
        const opened = new Promise((resolve, reject) => {
            sock.openResolve = resolve;
            sock.openReject = reject;
        });
        ws.onopen = () => {
            sock.opened = true;
            sock.openResolve();
        };
        ws.onmessage = (ev) => this._onMessage(sock, ev.data);
        ws.onclose = (ev) => this._onSocketClose(sock, ev.code, ev.reason ?? '');
        ws.onerror = noop; /* a close event follows; with `ws`, a listener also keeps errors from throwing */
        this._sock = sock;
        return { sock, opened };
    }

    /* Open a socket and CONNECT; resolves with the ACK.  Heartbeat starts on success. */
    async _openSession(epoch, resumeToken) {
        const start = Date.now();
        const timeout = this._opts.connectTimeout > 0 ? this._opts.connectTimeout : this._opts.requestTimeout;
        const token = await this._token();
        if (epoch !== this._epoch)
            throw localError(503, 'cancelled');
        const { sock, opened } = this._openSocket();
        let timer = null;
        try {
            await Promise.race([opened, new Promise((_, reject) => {
                timer = setTimeout(() => reject(new RequestTimeoutError('WebSocket open', timeout, null)),
                    timeout);
            })]);
        } catch (err) {
            if (sock && !sock.closed)
                this._abandonSocket(sock, 1006, 'open failed');
            throw err;
        } finally {
            clearTimeout(timer);
        }
        if (epoch !== this._epoch)
            throw localError(503, 'cancelled');
        const payload = {
            client_id: this._clientId,
            auth_token: token,
            version: this._opts.version,
            capabilities: this._opts.capabilities,
            metadata: { ...defaultMetadata(), ...this._opts.metadata },
        };
        if (resumeToken)
            payload.resume_token = resumeToken;
        const remaining = Math.max(1, timeout - (Date.now() - start));
        let ack;
        try {
            ack = await this._request(MessageType.CONNECT, payload, { internal: true, timeout: remaining });
        } catch (err) {
            if (!sock.closed)
                this._abandonSocket(sock, 1006, 'CONNECT failed');
            throw err;
        }
        if (sock.closed || epoch !== this._epoch)
            throw localError(503, 'connection closed');
        sock.established = true;
        this._connectAck = ack;
        if (typeof ack.resume_token === 'string' && ack.resume_token !== '')
            this._resumeToken = ack.resume_token;
        this._startHeartbeat(sock, ack);
        return ack;
    }

    _onMessage(sock, data) {
        if (sock !== this._sock || sock.closed)
            return;
        let frame;
        try {
            frame = decodeFrame(data);
        } catch (err) {
            err.context = { kind: 'decode' };
            this.emit('error', err);
            return;
        }
        this.emit('frame', frame);
        const json = frame.json ?? {};
        switch (frame.type) {
        case MessageType.ERROR:
            this._onErrorFrame(frame, json);
            return;
        case MessageType.DISCONNECT: {
            const notice = {
                reason: typeof json.reason === 'string' ? json.reason : '',
                code: Number.isInteger(json.code) ? json.code : null,
                reconnect: json.reconnect !== false,
            };
            sock.notice = notice;
            this.emit('disconnect', { source: 'notice', ...notice });
            return;
        }
        case MessageType.SIGNAL:
            this._onSignal(frame, json);
            return;
        case MessageType.ROOM_EVENT:
            if (json.event === 'room_closed' && typeof json.room_id === 'string')
                this._forgetRoom(json.room_id);
            this.emit('roomEvent', json);
            return;
        default: {
            const entry = this._pending.get(frame.uuid);
            if (!entry || entry.expected !== frame.type)
                return; /* a late reply (after its timeout) or unsolicited: only 'frame' sees it */
            if (Number.isInteger(json.status) && json.status >= 400) {
                this._settle(entry, new SignalManagerError(json.status,
                    typeof json.message === 'string' ? json.message : 'request failed',
                    { details: json, uuid: frame.uuid, requestType: messageTypeName(entry.type) }));
                return;
            }
            this._settle(entry, null, json);
        }
        }
    }

    _onErrorFrame(frame, json) {
        const entry = this._pending.get(frame.uuid);
        if (entry && entry.sock !== null) {
            this._settle(entry, SignalManagerError.fromPayload(json, frame.uuid,
                messageTypeName(entry.type)));
            return;
        }
        const ctx = this._recentSignals.get(frame.uuid);
        const err = SignalManagerError.fromPayload(json, frame.uuid,
            ctx ? 'SIGNAL' : null);
        err.context = ctx ?? { kind: 'unsolicited' };
        this.emit('error', err);
    }

    _onSignal(frame, json) {
        if (frame.payloadType === PayloadType.BINARY) {
            let parts;
            try {
                parts = decodeSignalBinary(frame.payload);
            } catch (err) {
                err.context = { kind: 'decode' };
                this.emit('error', err);
                return;
            }
            this.emit('signal', { binary: true, from: parts.clientId, bytes: parts.body, uuid: frame.uuid });
            return;
        }
        this.emit('signal', {
            binary: false,
            from: json.from_client_id ?? null,
            type: json.type ?? null,
            roomId: json.room_id ?? null,
            data: json.data === undefined ? null : json.data,
            uuid: frame.uuid,
        });
    }

    _onSocketClose(sock, code, reason) {
        if (sock.closed)
            return;
        sock.closed = true;
        const ws = sock.ws;
        ws.onopen = null;
        ws.onmessage = null;
        ws.onclose = null;
        ws.onerror = noop;
        const info = { code: code ?? 1006, reason: reason ?? '' };
        if (!sock.opened)
            sock.openReject(localError(503, `WebSocket to ${this._url} closed before opening (code ${info.code})`,
                { details: { closeCode: info.code, closeReason: info.reason } }));
        for (const w of sock.closeWaiters)
            w(info);
        sock.closeWaiters = [];
        if (sock !== this._sock)
            return;
        this._sock = null;
        this._lastCloseCode = info.code;
        this._stopHeartbeat();
        this._failSent(sock, localError(503, `connection closed before the reply (code ${info.code})`,
            { details: { closeCode: info.code, closeReason: info.reason } }));

        const state = this._state;
        if (state !== ClientState.CONNECTED && state !== ClientState.REGISTERED)
            return; /* connect(), the reconnect loop or disconnect() handle it */
        const willReconnect = this._shouldReconnect(info.code, sock.notice);
        this.emit('disconnect', {
            source: 'close', code: info.code, reason: info.reason, notice: sock.notice,
            requested: false, willReconnect, final: !willReconnect,
        });
        if (willReconnect) {
            this._setState(ClientState.RECONNECTING);
            this._reconnectLoop(this._epoch).catch((err) => {
                /* not expected: the loop handles its errors; make it visible */
                setTimeout(() => {
                    throw err;
                }, 0);
            });
        } else {
            this._finalize(localError(503, `connection closed (code ${info.code})`,
                { details: { closeCode: info.code, closeReason: info.reason } }));
        }
    }

    _shouldReconnect(code, notice) {
        if (!this._opts.reconnect || this._opts.maxReconnectAttempts <= 0)
            return false;
        if (notice && notice.reconnect === false)
            return false;
        return !NO_RECONNECT_CLOSE_CODES.includes(code);
    }

    /*
     * Drop a socket without waiting for the close handshake, and act as if it
     * closed now.  `terminate()` (the `ws` package) ends TCP without a close
     * frame, so the server detaches the session and a resume can take it
     * back; browsers only have close(), whose close frame (if it arrives)
     * releases the session at once, and the reconnect then registers afresh.
     */
    _abandonSocket(sock, code, reason) {
        const ws = sock.ws;
        ws.onopen = null;
        ws.onmessage = null;
        ws.onclose = null;
        ws.onerror = noop;
        try {
            if (typeof ws.terminate === 'function')
                ws.terminate();
            else
                ws.close();
        } catch {
            /* already closing */
        }
        this._onSocketClose(sock, code, reason);
    }

    _dropSocket(code, reason) {
        const sock = this._sock;
        if (sock && !sock.closed)
            this._abandonSocket(sock, code, reason);
    }

    _waitClose(sock, timeoutMs) {
        return new Promise((resolve) => {
            if (sock.closed) {
                resolve({ code: this._lastCloseCode, reason: '' });
                return;
            }
            const timer = setTimeout(() => resolve({ code: null, reason: 'close timeout' }), timeoutMs);
            sock.closeWaiters.push((info) => {
                clearTimeout(timer);
                resolve(info);
            });
        });
    }

    /* Back to 'disconnected': nothing pending, nothing remembered. */
    _finalize(err) {
        this._stopHeartbeat();
        this._rejectLiveWaiters(err);
        for (const entry of [...this._pending.values()])
            this._settle(entry, err);
        this._registerOptions = null;
        this._forgetRooms();
        this._resumeToken = null;
        this._setState(ClientState.DISCONNECTED);
    }

    /* ---- reconnect ---- */

    _backoffDelay(attempt) {
        const base = Math.max(0, Number(this._opts.reconnectBaseDelay));
        const cap = Math.max(base, Number(this._opts.reconnectMaxDelay));
        const jitter = Math.min(1, Math.max(0, Number(this._opts.reconnectJitter)));
        const d = Math.min(cap, base * 2 ** (attempt - 1));
        return Math.round(d * (1 - jitter * Math.random()));
    }

    _sleep(ms) {
        return new Promise((resolve) => {
            const timer = setTimeout(() => {
                this._cancelSleep = null;
                resolve();
            }, ms);
            this._cancelSleep = () => {
                clearTimeout(timer);
                this._cancelSleep = null;
                resolve();
            };
        });
    }

    async _reconnectLoop(epoch) {
        const max = this._opts.maxReconnectAttempts;
        let lastError = null;
        let attempt = 0;
        while (attempt < max) {
            attempt++;
            const delay = this._backoffDelay(attempt);
            this.emit('reconnecting', { attempt, maxAttempts: max, delay });
            await this._sleep(delay);
            if (epoch !== this._epoch)
                return;
            let ack;
            try {
                ack = await this._openSession(epoch, this._resumeToken);
            } catch (err) {
                if (epoch !== this._epoch)
                    return;
                lastError = err;
                this._dropSocket(1006, 'reconnect attempt failed');
                /* The server refused the CONNECT itself (bad credentials, bad
                 * field): retrying the same CONNECT cannot succeed. */
                if (!err.local && [400, 401, 403].includes(err.errorCode))
                    break;
                continue;
            }
            if (epoch !== this._epoch)
                return;
            try {
                const result = await this._restoreSession(ack);
                if (epoch !== this._epoch)
                    return;
                this._setState(this._registerOptions !== null
                    ? ClientState.REGISTERED : ClientState.CONNECTED);
                this.emit('reconnected', { ...result, attempts: attempt, sessionId: ack.session_id ?? null });
                this._flushLiveWaiters();
                return;
            } catch (err) {
                if (epoch !== this._epoch)
                    return;
                lastError = err;
                this._dropSocket(1006, 'session restore failed');
            }
        }
        if (epoch !== this._epoch)
            return;
        this.emit('disconnect', {
            source: 'close', code: this._lastCloseCode, reason: 'reconnect failed', requested: false,
            willReconnect: false, final: true, attempts: attempt, error: lastError,
        });
        this._finalize(lastError ?? localError(503, 'reconnect failed'));
    }

    /*
     * After a reconnect's CONNECT_ACK.  resumed: the server moved the
     * registration and rooms to this connection, nothing to do.  Otherwise
     * REGISTER again with the previous options, then ROOM_JOIN each room
     * (ROOM_CREATE when it no longer exists and recreateRooms is set).
     * Server ERRORs here are reported ('error' events and the result), not
     * retried; a local failure (connection lost, timeout) is thrown so the
     * reconnect loop tries the next attempt.
     */
    async _restoreSession(ack) {
        const resumed = ack.resumed === true;
        const result = { resumed, registered: this._registerOptions !== null, rooms: [], failedRooms: [],
            roomAcks: {} };
        if (resumed || this._registerOptions === null) {
            if (!resumed)
                this._forgetRooms();
            result.rooms = [...this._rooms.keys()];
            return result;
        }
        /* Not resumed: the server left our rooms and closed our SFU sessions. */
        this._sfu.clear();
        try {
            await this._request(MessageType.REGISTER, await this._registerPayload(this._registerOptions),
                { internal: true });
        } catch (err) {
            if (err.local)
                throw err;
            this._registerOptions = null;
            result.registered = false;
            result.registerError = err;
            result.failedRooms = [...this._rooms.keys()].map((roomId) => ({ roomId, error: err }));
            this._rooms.clear();
            err.context = { kind: 'reregister' };
            this.emit('error', err);
            return result;
        }
        if (!this._opts.rejoinRooms) {
            this._rooms.clear();
            return result;
        }
        for (const [roomId, info] of [...this._rooms]) {
            try {
                const roomAck = await this._rejoinRoom(roomId, info);
                result.rooms.push(roomId);
                result.roomAcks[roomId] = roomAck;
                this._rememberSfu(roomId, roomAck);
            } catch (err) {
                if (err.local)
                    throw err;
                this._rooms.delete(roomId);
                result.failedRooms.push({ roomId, error: err });
                err.context = { kind: 'rejoin', roomId };
                this.emit('error', err);
            }
        }
        return result;
    }

    /*
     * ROOM_JOIN; with recreateRooms, a 404 (the room was closed meanwhile)
     * becomes ROOM_CREATE, and that ROOM_CREATE's 409 (another member
     * re-created it first) one more ROOM_JOIN.
     */
    async _rejoinRoom(roomId, info) {
        const join = () => this._request(MessageType.ROOM_JOIN, this._joinPayload(roomId, info),
            { internal: true });
        try {
            return await join();
        } catch (err) {
            if (err.local || err.errorCode !== 404 || !this._opts.recreateRooms)
                throw err;
        }
        try {
            return await this._request(MessageType.ROOM_CREATE,
                this._createPayload(roomId, { metadata: info.roomMetadata }), { internal: true });
        } catch (err) {
            if (err.local || err.errorCode !== 409)
                throw err;
        }
        return join();
    }

    /* ---- heartbeat ---- */

    _startHeartbeat(sock, ack) {
        this._stopHeartbeat();
        let interval = this._opts.heartbeatInterval;
        if (!(interval > 0)) {
            /* The server's value, in seconds.  Beyond MAX_TIMER_DELAY a timer
             * overflows and fires at once: a PING storm, not a heartbeat. */
            const ms = Number(ack.heartbeat_interval) * 1000;
            interval = ms > 0 && ms <= MAX_TIMER_DELAY ? ms : 30000;
        }
        const timeout = this._opts.heartbeatTimeout > 0 ? this._opts.heartbeatTimeout
            : this._opts.requestTimeout;
        this._heartbeatTimer = setInterval(() => {
            if (sock !== this._sock || sock.closed)
                return;
            this._request(MessageType.PING, { timestamp: Date.now() }, { internal: true, timeout })
                .catch((err) => {
                    if (sock !== this._sock || sock.closed || !(err instanceof RequestTimeoutError))
                        return;
                    /* No PING_ACK in time: the connection is dead. */
                    this._abandonSocket(sock, 1006, 'heartbeat timeout: no PING_ACK');
                });
        }, interval);
    }

    _stopHeartbeat() {
        if (this._heartbeatTimer !== null) {
            clearInterval(this._heartbeatTimer);
            this._heartbeatTimer = null;
        }
    }

    /* ---- requests ---- */

    /*
     * Send a request and resolve with its ACK payload (or, with noReply,
     * with its uuid once sent).  opts: internal (send now, even while
     * connecting/reconnecting: used for CONNECT, PING and session restore),
     * timeout, payloadType (BINARY: payload is bytes), noReply, context.
     * Non-internal requests made while connecting/reconnecting wait for the
     * session (the timeout runs meanwhile).
     */
    _request(type, payload, opts = {}) {
        const timeoutMs = opts.timeout > 0 ? opts.timeout : this._opts.requestTimeout;
        const uuidBytes = uuidv4Bytes();
        const uuid = uuidFromBytes(uuidBytes);
        const name = messageTypeName(type);
        let frame;
        try {
            frame = opts.payloadType === PayloadType.BINARY
                ? encodeFrame({ type, uuid: uuidBytes, payloadType: PayloadType.BINARY, payload })
                : encodeFrame({ type, uuid: uuidBytes, json: payload });
        } catch (err) {
            err.requestType = name;
            return Promise.reject(err);
        }
        return new Promise((resolve, reject) => {
            const entry = {
                /* every ACK type is its request type + 1 */
                uuid, type, expected: opts.noReply ? null : (type + 1) & 0xff,
                resolve, reject, timer: null, sock: null, waiter: null,
            };
            this._pending.set(uuid, entry);
            entry.timer = setTimeout(() => this._settle(entry, new RequestTimeoutError(name, timeoutMs, uuid)),
                timeoutMs);
            const send = () => {
                const sock = this._sock;
                if (!sock || sock.closed || sock.ws.readyState !== WS_OPEN) {
                    this._settle(entry, localError(503, 'not connected', { uuid, requestType: name }));
                    return;
                }
                try {
                    this._sendRaw(sock, frame);
                } catch (err) {
                    this._settle(entry, localError(503, `send failed: ${err.message}`,
                        { uuid, requestType: name, cause: err }));
                    return;
                }
                entry.sock = sock;
                if (opts.noReply) {
                    if (opts.context)
                        this._rememberSent(uuid, opts.context);
                    this._settle(entry, null, uuid);
                }
            };
            if (opts.internal || this._isLive()) {
                send();
            } else if (this._state === ClientState.CONNECTING || this._state === ClientState.RECONNECTING) {
                entry.waiter = { send, fail: (err) => this._settle(entry, err) };
                this._liveWaiters.add(entry.waiter);
            } else {
                this._settle(entry, localError(503, `not connected (state ${this._state})`,
                    { uuid, requestType: name }));
            }
        });
    }

    _settle(entry, err, value) {
        if (!this._pending.has(entry.uuid))
            return;
        this._pending.delete(entry.uuid);
        clearTimeout(entry.timer);
        if (entry.waiter)
            this._liveWaiters.delete(entry.waiter);
        if (err)
            entry.reject(err);
        else
            entry.resolve(value);
    }

    /* Reject the requests sent on `sock` (their reply cannot come any more). */
    _failSent(sock, err) {
        for (const entry of [...this._pending.values()]) {
            if (entry.sock === sock)
                this._settle(entry, err);
        }
    }

    _flushLiveWaiters() {
        const waiters = [...this._liveWaiters];
        this._liveWaiters.clear();
        for (const w of waiters)
            w.send();
    }

    _rejectLiveWaiters(err) {
        const waiters = [...this._liveWaiters];
        this._liveWaiters.clear();
        for (const w of waiters)
            w.fail(err);
    }

    _rememberSent(uuid, context) {
        this._recentSignals.set(uuid, context);
        if (this._recentSignals.size > RECENT_SIGNALS_MAX)
            this._recentSignals.delete(this._recentSignals.keys().next().value);
    }

    _sendRaw(sock, bytes) {
        sock.ws.send(bytes);
    }

    _isLive() {
        return this._state === ClientState.CONNECTED || this._state === ClientState.REGISTERED;
    }

    _setState(state) {
        if (state === this._state)
            return;
        const previous = this._state;
        this._state = state;
        this.emit('state', { state, previous });
    }

    async _token() {
        const t = typeof this._authToken === 'function' ? await this._authToken() : this._authToken;
        if (typeof t !== 'string' || t === '')
            throw localError(401, 'authToken provider returned no token');
        return t;
    }

    async _registerPayload(o) {
        const payload = {
            version: this._opts.version,
            client_id: this._clientId,
            auth_token: await this._token(),
            capabilities: o.capabilities ?? this._opts.capabilities,
            metadata: o.metadata ?? {},
        };
        if (o.roomId)
            payload.room_id = o.roomId;
        return payload;
    }

    /* SFU session ids of a ROOM_CREATE_ACK / ROOM_JOIN_ACK (cloudflare mode). */
    _rememberSfu(roomId, ack) {
        const sub = ack && typeof ack.subscribe === 'object' && ack.subscribe !== null
            ? ack.subscribe.session_id : undefined;
        if (typeof sub !== 'string') {
            this._sfu.delete(roomId);
            return;
        }
        let pub = null;
        if (ack.publish && typeof ack.publish.session_id === 'string')
            pub = ack.publish.session_id;
        else if (ack.connection_info && ack.connection_info.mode === 'cloudflare' &&
            typeof ack.connection_info.session_id === 'string')
            pub = ack.connection_info.session_id;
        this._sfu.set(roomId, { publish: pub, subscribe: sub });
    }

    _forgetRoom(roomId) {
        this._rooms.delete(roomId);
        this._sfu.delete(roomId);
    }

    _forgetRooms() {
        this._rooms.clear();
        this._sfu.clear();
    }

    /* {version, client_id, room_id}: the start of every ROOM_* payload (room_id only when given). */
    _roomPayload(roomId) {
        const payload = { version: this._opts.version, client_id: this._clientId };
        if (roomId)
            payload.room_id = roomId;
        return payload;
    }

    _joinPayload(roomId, opts) {
        const payload = this._roomPayload(roomId);
        if (opts.metadata !== undefined)
            payload.metadata = opts.metadata;
        if (opts.offerSdp !== undefined && opts.offerSdp !== null)
            payload.offer_sdp = opts.offerSdp;
        return payload;
    }

    _createPayload(roomId, { offerSdp, capabilities, metadata }) {
        const payload = this._roomPayload(roomId);
        if (offerSdp !== undefined && offerSdp !== null)
            payload.offer_sdp = offerSdp;
        if (capabilities !== undefined)
            payload.capabilities = capabilities;
        if (metadata !== undefined)
            payload.metadata = metadata;
        return payload;
    }
}

export default SignalManagerClient;
