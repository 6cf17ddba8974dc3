'use strict';
/* Framing and WebSocket-level rules (DECISIONS.md §1, §2, §5). */

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const {
    T, P, UUID_RE, encodeFrame, expectError, describe: desc, rawUpgrade, wsParseServerFrames,
} = require('./lib/client');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };

/* A PING frame buffer, optionally altered. */
function pingFrame(o = {})
{
    return encodeFrame(T.PING, o.payload !== undefined ? o.payload : { timestamp: 1 }, o);
}

/*
 * Malformed frames: [name, buffer, uuid to expect echoed or null].  The uuid is
 * expected back whenever the 21-byte header is intact with a good start byte.
 */
function malformedFrames()
{
    const cases = [];
    const add = (name, f, echo = true) => cases.push([name, f.buf, echo ? f.uuid : null]);
    const good = pingFrame();
    cases.push(['empty message', Buffer.alloc(0), null]);
    cases.push(['1 byte', Buffer.from([0xaa]), null]);
    cases.push(['20-byte header', good.buf.subarray(0, 20), null]);
    {
        const f = pingFrame();
        f.buf[0] = 0xab;
        add('bad start byte', f, false);
    }
    {
        const f = pingFrame();
        f.buf[0] = 0x00;
        add('start byte 0x00', f, false);
    }
    add('length field larger than payload', pingFrame({ length: 100 }));
    add('length field smaller than payload', pingFrame({ length: 3 }));
    add('length field 0 with payload', pingFrame({ length: 0 }));
    {
        const f = pingFrame({ payload: null, length: 4 });
        add('length 4 but no payload', f);
    }
    add('payload type 0x03', pingFrame({ payloadType: 0x03 }));
    add('payload type 0xff', pingFrame({ payloadType: 0xff }));
    add('payload type NONE with length > 0', pingFrame({ payloadType: P.NONE }));
    add('BINARY payload on PING', pingFrame({ payload: Buffer.from('{"timestamp":1}') }));
    for (const type of [0x00, 0x06, 0x10, 0x24, 0x37, 0x41, 0x44, 0x99, 0xfe]) {
        add(`unknown type 0x${type.toString(16)}`, encodeFrame(type, { timestamp: 1 }));
    }
    for (const [name, type] of [['CONNECT_ACK', T.CONNECT_ACK], ['PING_ACK', T.PING_ACK],
        ['REGISTER_ACK', T.REGISTER_ACK], ['UNREGISTER_ACK', T.UNREGISTER_ACK],
        ['ROOM_CREATE_ACK', T.ROOM_CREATE_ACK], ['ROOM_JOIN_ACK', T.ROOM_JOIN_ACK],
        ['ROOM_LEAVE_ACK', T.ROOM_LEAVE_ACK], ['ROOM_EVENT', T.ROOM_EVENT],
        ['SESSION_UPDATE_ACK', T.SESSION_UPDATE_ACK], ['ERROR', T.ERROR]]) {
        add(`server->client type ${name}`, encodeFrame(type, { status: 200 }));
    }
    add('invalid JSON', pingFrame({ payload: '{"timestamp":' }));
    add('JSON with trailing garbage', pingFrame({ payload: '{"timestamp":1} x' }));
    add('JSON array', pingFrame({ payload: '[1,2]' }));
    add('JSON string', pingFrame({ payload: '"x"' }));
    add('JSON number', pingFrame({ payload: '42' }));
    add('JSON null', pingFrame({ payload: 'null' }));
    add('empty JSON payload', pingFrame({ payload: '' }));
    add('invalid UTF-8 in JSON', pingFrame({
        payload: Buffer.concat([Buffer.from('{"timestamp":1,"x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
        payloadType: P.JSON,
    }));
    return cases;
}

test('every malformed frame -> ERROR 400 and the connection stays open', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_LIMITS_MAX_BAD_FRAMES: '1000' } });
    const c = await srv.connect('test_client_1', 'test_token_1');
    const failures = [];
    for (const [name, buf, uuid] of malformedFrames()) {
        try {
            c.sendRaw(buf);
            const f = uuid ? await c.next((x) => x.uuid === uuid || x.type === T.ERROR, undefined, `ERROR for ${name}`)
                : await c.nextOfType(T.ERROR);
            expectError(f, 400);
            if (uuid) assert.equal(f.uuid, uuid, 'ERROR carries the request uuid');
            const p = await c.pingFrame();
            assert.equal(p.type, T.PING_ACK, `PING after it: ${desc(p)}`);
        } catch (e) {
            failures.push(`${name}: ${e.message}`);
            if (!c.isOpen) break;
            /* resynchronise: drop whatever is queued */
            c.frames.length = 0;
        }
    }
    assert.deepEqual(failures, []);
    assert.ok(c.isOpen, 'connection open');
});

test('frame-level errors come before the authentication check (400, not 401)', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    for (const f of [pingFrame({ payloadType: 0x07 }), encodeFrame(0x99, { a: 1 }),
        encodeFrame(T.CONNECT_ACK, { status: 200 }), pingFrame({ length: 50 }),
        encodeFrame(T.CONNECT, Buffer.from('{}'))]) {
        c.sendRaw(f.buf);
        const e = await c.next((x) => x.uuid === f.uuid);
        expectError(e, 400);
    }
    /* and a good CONNECT still works */
    await c.hello('test_client_1', 'test_token_1');
});

test('a text message closes the connection with 1003', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = await srv.connect('test_client_1', 'test_token_1');
    c.sendText('{"hello":"world"}');
    const cl = await c.waitClose();
    assert.equal(cl.code, 1003, `close ${cl.code} ${cl.reason}`);
});

test('a text message before CONNECT closes with 1003 too', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    c.sendText('hi');
    assert.equal((await c.waitClose()).code, 1003);
});

test('a message over limits.max_message_size closes with 1009; one at the limit is fine', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_LIMITS_MAX_MESSAGE_SIZE: '1024' } });
    const c = await srv.connect('test_client_1', 'test_token_1');
    /* a PING padded with JSON whitespace to exactly 1024 bytes */
    const json = '{"timestamp":5}';
    const exact = encodeFrame(T.PING, json + ' '.repeat(1024 - 21 - json.length));
    assert.equal(exact.buf.length, 1024);
    c.sendRaw(exact.buf);
    const ack = await c.next((f) => f.uuid === exact.uuid);
    assert.equal(ack.type, T.PING_ACK, desc(ack));
    assert.equal(ack.json.timestamp, 5);
    /* one byte more */
    const over = encodeFrame(T.PING, json + ' '.repeat(1025 - 21 - json.length));
    assert.equal(over.buf.length, 1025);
    c.sendRaw(over.buf);
    const cl = await c.waitClose();
    assert.equal(cl.code, 1009, `close ${cl.code} ${cl.reason}`);
});

test('an oversize message made of small fragments closes with 1009', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_LIMITS_MAX_MESSAGE_SIZE: '1024' } });
    const c = await srv.connect('test_client_1', 'test_token_1');
    const f = encodeFrame(T.PING, `{"timestamp":1,"pad":"${'x'.repeat(3000)}"}`);
    c.sendFragmented(f.buf, [500, 500, 500, 500, 500]);
    const cl = await c.waitClose();
    assert.equal(cl.code, 1009, `close ${cl.code} ${cl.reason}`);
});

test('a fragmented binary message is reassembled (CONNECT and PING in fragments)', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    const conn = encodeFrame(T.CONNECT, { client_id: 'test_client_1', auth_token: 'test_token_1', version: '1.0.0' });
    c.sendFragmented(conn.buf, [1, 20, 5]);
    const ack = await c.next((f) => f.uuid === conn.uuid);
    assert.equal(ack.type, T.CONNECT_ACK, desc(ack));
    /* header split across fragments, a WebSocket ping interleaved between fragments */
    const ping = encodeFrame(T.PING, { timestamp: 77 });
    c.ws.send(ping.buf.subarray(0, 10), { binary: true, fin: false });
    const pong = c.ping(Buffer.from('mid'));
    c.ws.send(ping.buf.subarray(10), { binary: true, fin: true });
    await pong;
    const p = await c.next((f) => f.uuid === ping.uuid);
    assert.equal(p.type, T.PING_ACK, desc(p));
    assert.equal(p.json.timestamp, 77);
});

test('a WebSocket ping is answered with a pong carrying the same data', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const c = srv.client();
    await c.connect();
    await c.ping(Buffer.from('before-connect'));
    await c.hello('test_client_1', 'test_token_1');
    await c.ping(crypto.randomBytes(125));
    await c.ping(Buffer.alloc(0));
});

test('more than limits.max_bad_frames malformed frames -> DISCONNECT notice, then close 1008', opts, async (t) => {
    const srv = await startServer(t, { env: { ...MEM, SIGNAL_MANAGER_LIMITS_MAX_BAD_FRAMES: '3' } });
    const c = await srv.connect('test_client_1', 'test_token_1');
    const reqUuids = [];
    for (let i = 0; i < 3; i++) {
        const f = encodeFrame(0x99, { i });
        reqUuids.push(f.uuid);
        c.sendRaw(f.buf);
        expectError(await c.next((x) => x.uuid === f.uuid), 400);
    }
    /* good frames in between do not reset the count */
    assert.equal((await c.pingFrame()).type, T.PING_ACK);
    assert.ok(c.isOpen, 'open after exactly max_bad_frames bad frames');
    const last = encodeFrame(0x99, { i: 3 });
    reqUuids.push(last.uuid);
    c.sendRaw(last.buf);
    const cl = await c.waitClose();
    const notice = c.frames.find((f) => f.type === T.DISCONNECT);
    assert.ok(notice, `a DISCONNECT notice before the close; ${c.history()}`);
    assert.equal(notice.payloadType, P.JSON);
    assert.match(notice.uuid, UUID_RE);
    assert.ok(!reqUuids.includes(notice.uuid), 'the notice has a fresh uuid');
    assert.equal(typeof notice.json.reason, 'string');
    assert.equal(notice.json.code, 1008);
    assert.equal(notice.json.reconnect, false);
    assert.equal(cl.code, 1008, `close ${cl.code} ${cl.reason}`);
    /* nothing after the notice */
    const i = c.seen.indexOf(notice);
    assert.deepEqual(c.seen.slice(i + 1).map(desc), []);
});

test('an unmasked client frame is rejected (connection closed)', opts, async (t) => {
    const srv = await startServer(t, { env: MEM });
    const r = await rawUpgrade(srv.port);
    t.after(() => r.sock.destroy());
    const f = encodeFrame(T.CONNECT, { client_id: 'test_client_1', auth_token: 'test_token_1', version: '1.0.0' });
    /* binary, FIN, no mask bit */
    const head = f.buf.length < 126 ? Buffer.from([0x82, f.buf.length])
        : Buffer.from([0x82, 126, f.buf.length >> 8, f.buf.length & 0xff]);
    r.sock.write(Buffer.concat([head, f.buf]));
    await r.waitEnd();
    const frames = wsParseServerFrames(r.data);
    /* no CONNECT_ACK may have been produced from an unmasked frame */
    for (const fr of frames) {
        if (fr.opcode === 2) assert.notEqual(fr.payload[1], T.CONNECT_ACK, 'CONNECT_ACK for an unmasked frame');
    }
    const close = frames.find((fr) => fr.opcode === 8);
    if (close && close.payload.length >= 2) {
        assert.equal(close.payload.readUInt16BE(0), 1002, 'close code for a protocol error');
    }
});
