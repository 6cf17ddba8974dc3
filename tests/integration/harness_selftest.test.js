'use strict';
/* Self-test of the test library (no server needed): framing, JWT, parsers, waits. */

const test = require('node:test');
const assert = require('node:assert/strict');
const {
    T, P, encodeFrame, decodeFrame, uuidBytes, uuidText, signJwt, parseHttpResponse,
    wsClientFrame, wsParseServerFrames, until, Waiters,
} = require('./lib/client');
const { parseMetrics } = require('./lib/util');
const { iniText } = require('./lib/harness');

test('encodeFrame / decodeFrame round trip and header layout', () => {
    const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const { buf } = encodeFrame(T.REGISTER, { a: 1 }, { uuid });
    assert.equal(buf[0], 0xaa);
    assert.equal(buf[1], 0x20);
    assert.deepEqual(buf.subarray(2, 18), uuidBytes(uuid));
    assert.equal(buf[18], P.JSON);
    assert.equal(buf.readUInt16BE(19), 7);
    assert.equal(buf.length, 21 + 7);
    const f = decodeFrame(buf);
    assert.equal(f.type, T.REGISTER);
    assert.equal(f.uuid, uuid);
    assert.deepEqual(f.json, { a: 1 });
    const none = decodeFrame(encodeFrame(T.DISCONNECT, null).buf);
    assert.equal(none.payloadType, P.NONE);
    assert.equal(none.payload.length, 0);
    const bin = decodeFrame(encodeFrame(T.SIGNAL, Buffer.from([1, 2, 3])).buf);
    assert.equal(bin.payloadType, P.BINARY);
    assert.deepEqual([...bin.payload], [1, 2, 3]);
    assert.equal(uuidText(uuidBytes(uuid)), uuid);
});

test('decodeFrame rejects malformed server frames', () => {
    const good = encodeFrame(T.PING_ACK, { x: 1 }).buf;
    assert.throws(() => decodeFrame(good.subarray(0, 20)), /< 21/);
    const badStart = Buffer.from(good);
    badStart[0] = 0xab;
    assert.throws(() => decodeFrame(badStart), /start byte/);
    assert.throws(() => decodeFrame(encodeFrame(T.PING_ACK, { x: 1 }, { length: 3 }).buf), /length/);
    assert.throws(() => decodeFrame(encodeFrame(T.PING_ACK, '{bad').buf), /invalid JSON/);
    assert.throws(() => decodeFrame(encodeFrame(T.PING_ACK, { x: 1 }, { payloadType: 9 }).buf), /payload type/);
    assert.throws(() => encodeFrame(T.PING, Buffer.alloc(70000)), /does not fit/);
});

test('signJwt matches the well-known HS256 example', () => {
    const token = signJwt({ sub: '1234567890', name: 'John Doe', iat: 1516239022 }, 'your-256-bit-secret');
    assert.equal(token, 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c');
});

test('parseHttpResponse: content-length and chunked bodies', () => {
    const r = parseHttpResponse('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
    assert.equal(r.status, 426);
    assert.equal(r.headers.connection, 'close');
    assert.equal(r.body, 'hello');
    const c = parseHttpResponse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
    assert.equal(c.body, 'abcde');
    assert.throws(() => parseHttpResponse('HTTP/1.1 200 OK\r\n'), /incomplete/);
});

test('parseMetrics: names, sorted labels, values', () => {
    const m = parseMetrics([
        '# HELP x y', '# TYPE signal_manager_x counter',
        'signal_manager_x 3',
        'signal_manager_y{type="PING",b="2"} 4.5',
        'signal_manager_z{code="400"} 1 1700000000000',
        '',
    ].join('\n'));
    assert.equal(m.get('signal_manager_x'), 3);
    assert.equal(m.get('signal_manager_y{b="2",type="PING"}'), 4.5);
    assert.equal(m.get('signal_manager_z{code="400"}'), 1);
    assert.throws(() => parseMetrics('not a metric line at all'), /bad metrics line/);
});

test('wsClientFrame is masked and parses back after unmasking', () => {
    const payload = Buffer.from('x'.repeat(300));
    const fr = wsClientFrame(2, payload);
    assert.equal(fr[0], 0x82);
    assert.equal(fr[1] & 0x80, 0x80, 'mask bit');
    assert.equal(fr[1] & 0x7f, 126);
    const mask = fr.subarray(4, 8);
    const body = Buffer.from(fr.subarray(8));
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
    assert.deepEqual(body, payload);
    /* server frames are unmasked: build one by hand */
    const srvFrame = Buffer.concat([Buffer.from([0x88, 2]), Buffer.from([0x03, 0xe9])]);
    const parsed = wsParseServerFrames(Buffer.concat([srvFrame, Buffer.from([0x82])]));
    assert.equal(parsed.length, 1, 'incomplete trailing frame ignored');
    assert.equal(parsed[0].opcode, 8);
    assert.equal(parsed[0].payload.readUInt16BE(0), 1001);
});

test('until and Waiters are bounded and report what they waited for', async () => {
    let n = 0;
    assert.equal(await until(async () => (++n >= 3 ? 'ok' : undefined), 2000, 'three tries', 1), 'ok');
    await assert.rejects(until(async () => undefined, 50, 'never', 5), /timed out after 50 ms waiting for never/);
    await assert.rejects(until(async () => { throw Object.assign(new Error('stop'), { fatal: true }); }, 5000), /stop/);
    const w = new Waiters();
    let v;
    const p = w.add(() => v, 1000, 'v');
    v = 7;
    w.poke();
    assert.equal(await p, 7);
    await assert.rejects(w.add(() => undefined, 30, 'nothing'), /timed out after 30 ms waiting for nothing/);
});

test('iniText writes sections, keys and key[] lists', () => {
    assert.equal(iniText({ server: { port: 0 }, auth: { api_keys: ['a:b', 'c:d'] } }),
        '[server]\nport = 0\n\n[auth]\napi_keys[] = a:b\napi_keys[] = c:d\n\n');
});
