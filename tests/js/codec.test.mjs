/*
 * SDK codec: frame encode/decode, uuids, BINARY SIGNAL prefix, constants.
 * Golden bytes come from docs/protocol.md §2.2 (the PING example).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
    MessageType, PayloadType, HEADER_SIZE, MAX_PAYLOAD_SIZE, START_BYTE, PROTOCOL_VERSION,
    encodeFrame, decodeFrame, encodeSignalBinary, decodeSignalBinary, toBytes,
    uuidv4, uuidToBytes, uuidFromBytes, messageTypeName, isValidId,
    SignalManagerError, FrameError, RequestTimeoutError, NO_RECONNECT_CLOSE_CODES,
} from '../../lib/js/signal-manager.js';

const PING_UUID = '550e8400-e29b-41d4-a716-446655440000';
const PING_HEX =
    'aa04550e8400e29b41d4a71644665544' +
    '000002001b7b2274696d657374616d70' +
    '223a313730343131303430303030307d';

function hex(bytes) {
    return Buffer.from(bytes).toString('hex');
}

/* A header with chosen fields and a raw body (no checks): for malformed cases. */
function raw({ start = 0xaa, type = MessageType.PING, pt = PayloadType.JSON, len, body = [] } = {}) {
    const b = Buffer.from(body);
    const h = Buffer.alloc(21);
    h[0] = start;
    h[1] = type;
    h[18] = pt;
    h.writeUInt16BE(len ?? b.length, 19);
    return Buffer.concat([h, b]);
}

function expectFrameError(fn, reason) {
    assert.throws(fn, (err) => {
        assert.ok(err instanceof FrameError, `expected FrameError, got ${err}`);
        assert.ok(err instanceof SignalManagerError);
        assert.equal(err.reason, reason);
        assert.equal(err.local, true);
        return true;
    });
}

test('message type constants match DECISIONS §2 and the protocol table', () => {
    assert.deepEqual({ ...MessageType }, {
        CONNECT: 0x01, CONNECT_ACK: 0x02, DISCONNECT: 0x03, PING: 0x04, PING_ACK: 0x05,
        REGISTER: 0x20, REGISTER_ACK: 0x21, UNREGISTER: 0x22, UNREGISTER_ACK: 0x23,
        ROOM_CREATE: 0x30, ROOM_CREATE_ACK: 0x31, ROOM_JOIN: 0x32, ROOM_JOIN_ACK: 0x33,
        ROOM_LEAVE: 0x34, ROOM_LEAVE_ACK: 0x35, ROOM_EVENT: 0x36, SIGNAL: 0x40,
        SESSION_UPDATE: 0x42, SESSION_UPDATE_ACK: 0x43, ERROR: 0xff,
    });
    assert.deepEqual({ ...PayloadType }, { NONE: 0, BINARY: 1, JSON: 2 });
    assert.equal(HEADER_SIZE, 21);
    assert.equal(START_BYTE, 0xaa);
    assert.equal(MAX_PAYLOAD_SIZE, 65535);
    assert.equal(PROTOCOL_VERSION, '1.0.0');
    assert.ok(Object.isFrozen(MessageType));
    assert.equal(messageTypeName(0x20), 'REGISTER');
    assert.equal(messageTypeName(0xff), 'ERROR');
    assert.equal(messageTypeName(0x7f), '0x7f');
    assert.deepEqual([...NO_RECONNECT_CLOSE_CODES].sort(), [1002, 1003, 1008, 1009, 4409]);
});

test('encodes the PING example of docs/protocol.md byte for byte', () => {
    const bytes = encodeFrame({ type: MessageType.PING, uuid: PING_UUID, json: { timestamp: 1704110400000 } });
    assert.ok(bytes instanceof Uint8Array);
    assert.equal(bytes.length, 48);
    assert.equal(hex(bytes), PING_HEX);
});

test('decodes the PING example', () => {
    const f = decodeFrame(Buffer.from(PING_HEX, 'hex'));
    assert.equal(f.type, MessageType.PING);
    assert.equal(f.typeName, 'PING');
    assert.equal(f.uuid, PING_UUID);
    assert.equal(f.payloadType, PayloadType.JSON);
    assert.deepEqual(f.json, { timestamp: 1704110400000 });
    assert.equal(f.payload.length, 27);
});

test('round trips: JSON, NONE, BINARY SIGNAL, unicode, max size', () => {
    const cases = [
        { type: MessageType.REGISTER, uuid: uuidv4(), json: { client_id: 'a', metadata: { x: [1, 2, { y: null }] } } },
        { type: MessageType.DISCONNECT, uuid: uuidv4() },
        { type: MessageType.SIGNAL, uuid: uuidv4(), payload: new Uint8Array([3, 0x61, 0x62, 0x63, 0, 255, 7]) },
        { type: MessageType.SIGNAL, uuid: uuidv4(), json: { type: 'chat', data: 'héllo ☃ 𝄞' } },
    ];
    for (const c of cases) {
        const bytes = encodeFrame(c);
        const f = decodeFrame(bytes);
        assert.equal(f.type, c.type);
        assert.equal(f.uuid, c.uuid);
        if (c.json !== undefined) {
            assert.equal(f.payloadType, PayloadType.JSON);
            assert.deepEqual(f.json, c.json);
        } else if (c.payload) {
            assert.equal(f.payloadType, PayloadType.BINARY);
            assert.deepEqual([...f.payload], [...c.payload]);
        } else {
            assert.equal(f.payloadType, PayloadType.NONE);
            assert.equal(f.payload.length, 0);
            assert.equal(f.json, undefined);
        }
        /* encodeFrame(decodeFrame(b)) is b */
        assert.equal(hex(encodeFrame(f)), hex(bytes));
    }
    const big = new Uint8Array(MAX_PAYLOAD_SIZE).fill(9);
    const bytes = encodeFrame({ type: MessageType.SIGNAL, payload: big });
    assert.equal(bytes.length, HEADER_SIZE + MAX_PAYLOAD_SIZE);
    assert.equal(bytes[19], 0xff);
    assert.equal(bytes[20], 0xff);
    assert.equal(decodeFrame(bytes).payload.length, MAX_PAYLOAD_SIZE);
});

test('encodeFrame generates a v4 uuid when none is given', () => {
    const f = decodeFrame(encodeFrame({ type: MessageType.PING, json: { timestamp: 1 } }));
    assert.match(f.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('decodeFrame accepts ArrayBuffer, Buffer, offset views, DataView and fragments', () => {
    const bytes = Buffer.from(PING_HEX, 'hex');
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    const padded = new Uint8Array(bytes.length + 10);
    padded.set(bytes, 7);
    const view = padded.subarray(7, 7 + bytes.length);
    const dv = new DataView(padded.buffer, 7, bytes.length);
    const fragments = [bytes.subarray(0, 5), bytes.subarray(5, 30), bytes.subarray(30)];
    for (const input of [ab, bytes, view, dv, fragments]) {
        const f = decodeFrame(input);
        assert.equal(f.uuid, PING_UUID);
        assert.deepEqual(f.json, { timestamp: 1704110400000 });
    }
    assert.equal(toBytes(bytes), bytes);
});

test('decodeFrame rejects every malformed frame with its reason', () => {
    expectFrameError(() => decodeFrame('text message'), 'not-binary');
    expectFrameError(() => decodeFrame(42), 'not-binary');
    expectFrameError(() => decodeFrame(new Uint8Array(0)), 'too-short');
    expectFrameError(() => decodeFrame(new Uint8Array(20).fill(0xaa)), 'too-short');
    expectFrameError(() => decodeFrame(raw({ start: 0xab })), 'bad-start-byte');
    expectFrameError(() => decodeFrame(raw({ len: 5, body: [1, 2, 3] })), 'length-mismatch');
    expectFrameError(() => decodeFrame(raw({ len: 2, body: [0x7b, 0x7d, 0x20] })), 'length-mismatch');
    expectFrameError(() => decodeFrame(raw({ len: 65535, body: [] })), 'length-mismatch');
    expectFrameError(() => decodeFrame(raw({ pt: 3 })), 'unknown-payload-type');
    expectFrameError(() => decodeFrame(raw({ pt: 0xff, body: [1] })), 'unknown-payload-type');
    expectFrameError(() => decodeFrame(raw({ pt: PayloadType.NONE, body: [1] })), 'none-with-payload');
    expectFrameError(() => decodeFrame(raw({ type: MessageType.PING_ACK, pt: PayloadType.BINARY, body: [1] })),
        'binary-not-allowed');
    expectFrameError(() => decodeFrame(raw({ type: 0x99, pt: PayloadType.BINARY, body: [1] })), 'binary-not-allowed');
    expectFrameError(() => decodeFrame(raw({ pt: PayloadType.JSON, body: [] })), 'empty-json');
    expectFrameError(() => decodeFrame(raw({ body: [0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d] })), 'invalid-utf8');
    expectFrameError(() => decodeFrame(raw({ body: [...Buffer.from('{"a":1')] })), 'invalid-json');
    expectFrameError(() => decodeFrame(raw({ body: [...Buffer.from('{"a":1}x')] })), 'invalid-json');
    for (const root of ['[1,2]', 'null', '42', '"s"', 'true'])
        expectFrameError(() => decodeFrame(raw({ body: [...Buffer.from(root)] })), 'json-not-object');
});

test('decodeFrame returns unknown message types (forward compatible) but not bad payloads', () => {
    const f = decodeFrame(raw({ type: 0x77, pt: PayloadType.JSON, body: [...Buffer.from('{"x":1}')] }));
    assert.equal(f.type, 0x77);
    assert.equal(f.typeName, '0x77');
    assert.deepEqual(f.json, { x: 1 });
});

test('encodeFrame rejects bad type, uuid, payload and oversize payloads', () => {
    expectFrameError(() => encodeFrame({ type: 256 }), 'bad-type');
    expectFrameError(() => encodeFrame({ type: -1 }), 'bad-type');
    expectFrameError(() => encodeFrame({ type: 1.5 }), 'bad-type');
    expectFrameError(() => encodeFrame({}), 'bad-type');
    expectFrameError(() => encodeFrame({ type: 1, uuid: 'nope' }), 'bad-uuid');
    expectFrameError(() => encodeFrame({ type: 1, uuid: new Uint8Array(15) }), 'bad-uuid');
    expectFrameError(() => encodeFrame({ type: 1, payload: 'str' }), 'bad-payload');
    expectFrameError(() => encodeFrame({ type: 1, json: () => 1 }), 'bad-payload');
    expectFrameError(() => encodeFrame({ type: MessageType.SIGNAL, payload: new Uint8Array(MAX_PAYLOAD_SIZE + 1) }),
        'payload-too-large');
    try {
        encodeFrame({ type: MessageType.SIGNAL, json: { data: 'x'.repeat(70000) } });
        assert.fail('expected payload-too-large');
    } catch (err) {
        assert.equal(err.reason, 'payload-too-large');
        assert.equal(err.errorCode, 413);
    }
});

test('uuid helpers: v4 format, uniqueness, text <-> bytes', () => {
    const seen = new Set();
    for (let i = 0; i < 200; i++) {
        const u = uuidv4();
        assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        seen.add(u);
    }
    assert.equal(seen.size, 200);
    const b = uuidToBytes(PING_UUID.toUpperCase());
    assert.equal(hex(b), '550e8400e29b41d4a716446655440000');
    assert.equal(uuidFromBytes(b), PING_UUID);
    expectFrameError(() => uuidToBytes('550e8400e29b41d4a716446655440000'), 'bad-uuid');
    expectFrameError(() => uuidFromBytes(new Uint8Array(17)), 'bad-uuid');
});

test('BINARY SIGNAL prefix: encode, decode and malformed prefixes', () => {
    const p = encodeSignalBinary('test_client_2', new Uint8Array([1, 2, 3]));
    assert.equal(p[0], 13);
    assert.equal(Buffer.from(p.subarray(1, 14)).toString(), 'test_client_2');
    assert.deepEqual([...p.subarray(14)], [1, 2, 3]);
    const d = decodeSignalBinary(p);
    assert.equal(d.clientId, 'test_client_2');
    assert.deepEqual([...d.body], [1, 2, 3]);
    assert.equal(decodeSignalBinary(encodeSignalBinary('x', new ArrayBuffer(0))).body.length, 0);
    const long = 'a'.repeat(128);
    assert.equal(decodeSignalBinary(encodeSignalBinary(long, new Uint8Array([9]))).clientId, long);

    expectFrameError(() => encodeSignalBinary('bad id', new Uint8Array(1)), 'bad-id');
    expectFrameError(() => encodeSignalBinary('a'.repeat(129), new Uint8Array(1)), 'bad-id');
    expectFrameError(() => encodeSignalBinary('', new Uint8Array(1)), 'bad-id');
    expectFrameError(() => encodeSignalBinary('ok', 'text'), 'bad-payload');
    expectFrameError(() => decodeSignalBinary(new Uint8Array(0)), 'bad-signal-prefix');
    expectFrameError(() => decodeSignalBinary(new Uint8Array([0, 1, 2])), 'bad-signal-prefix');
    expectFrameError(() => decodeSignalBinary(new Uint8Array([5, 0x61, 0x62])), 'bad-signal-prefix');
    expectFrameError(() => decodeSignalBinary(new Uint8Array([2, 0x61, 0x20, 9])), 'bad-signal-prefix');
});

test('id validation follows [A-Za-z0-9._:@-]{1,128}', () => {
    for (const ok of ['a', 'test_client_1', 'a.b:c@d-e_f', '0'.repeat(128)])
        assert.ok(isValidId(ok), ok);
    for (const bad of ['', 'a b', 'é', '0'.repeat(129), 'a/b', null, 5])
        assert.ok(!isValidId(bad), String(bad));
});

test('error classes carry errorCode, details, uuid, local', () => {
    const e = SignalManagerError.fromPayload(
        { error_code: 404, error_message: 'target client not found', details: { target_client_id: 'x' } },
        PING_UUID, 'SIGNAL');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'SignalManagerError');
    assert.equal(e.errorCode, 404);
    assert.equal(e.message, 'target client not found');
    assert.deepEqual(e.details, { target_client_id: 'x' });
    assert.equal(e.uuid, PING_UUID);
    assert.equal(e.local, false);
    assert.equal(e.requestType, 'SIGNAL');
    const garbage = SignalManagerError.fromPayload(undefined);
    assert.equal(garbage.errorCode, 500);
    const t = new RequestTimeoutError('REGISTER', 50, PING_UUID);
    assert.ok(t instanceof SignalManagerError);
    assert.equal(t.errorCode, 408);
    assert.equal(t.local, true);
    assert.equal(t.name, 'RequestTimeoutError');
});
