'use strict';
/* SIGNAL relay (DECISIONS.md §6): JSON and BINARY forms, errors, order, shared-room rule. */

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, P, UUID_RE, expectError, describe: desc } = require('./lib/client');
const {
    cid, keysEnv, registered, created, joined, left, roundTrip, binSignal, parseBinSignal,
} = require('./lib/rooms');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };
const MAX_PAYLOAD = 65535;

const LONG_ID = `${'x'.repeat(120)}.@:-_`;      /* 125 characters */
const L100 = 'L'.repeat(100);

function env(extra = {}, n = 3)
{
    return { ...MEM, ...keysEnv(n, [`${LONG_ID}:tok-long`, `${L100}:tok-100`]), ...extra };
}

const isSignal = (f) => f.type === T.SIGNAL;

/* Send a SIGNAL that must fail; returns the ERROR's JSON. */
async function signalError(c, payload, code, re)
{
    return expectError(await c.request(T.SIGNAL, payload), code, re);
}

/* No SIGNAL reply reached the sender: a PING round trip shows nothing else queued. */
async function noReplyTo(c, uuid)
{
    await roundTrip(c);
    const r = c.seen.find((f) => f.uuid === uuid);
    assert.equal(r, undefined, `a successful SIGNAL got a reply: ${r && desc(r)}`);
}

test('JSON SIGNAL relayed to the target with from_client_id added and every field intact; no ACK', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const payload = {
        target_client_id: cid(2),
        type: 'offer',
        room_id: 'r-1',
        data: { sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', nested: [1, 2.5, null, true, { k: 'ünïcødé ✓' }], n: null },
        app_field: 'kept',
    };
    const uuid = a.send(T.SIGNAL, payload);
    const f = await b.next(isSignal, 3000, 'the relayed SIGNAL');
    assert.equal(f.payloadType, P.JSON);
    assert.match(f.uuid, UUID_RE);
    assert.notEqual(f.uuid, uuid, 'relayed SIGNAL carries a fresh uuid');
    assert.deepEqual(f.json, { ...payload, from_client_id: cid(1) });
    await noReplyTo(a, uuid);

    /* other types, data of any JSON type (including null), whitespace around the object */
    for (const [type, data] of [['answer', 'x'], ['candidate', { candidate: 'a=1', sdpMid: '0' }], ['my-app-type', null], ['n', 42]]) {
        a.send(T.SIGNAL, { target_client_id: cid(2), type, data });
        const g = await b.next(isSignal, 3000, `SIGNAL ${type}`);
        assert.deepEqual(g.json, { target_client_id: cid(2), type, data, from_client_id: cid(1) });
    }
    a.send(T.SIGNAL, ` \n{ "target_client_id" : "${cid(2)}", "type":"offer", "data":{} }\n `);
    const g = await b.next(isSignal, 3000, 'SIGNAL with whitespace');
    assert.deepEqual(g.json, { target_client_id: cid(2), type: 'offer', data: {}, from_client_id: cid(1) });
});

test('a spoofed from_client_id in the payload is replaced by the real sender', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await registered(srv, 3);
    for (const spoof of [cid(3), '', 17, null, { x: 1 }]) {
        a.send(T.SIGNAL, { from_client_id: spoof, target_client_id: cid(2), type: 'offer', data: { s: 1 } });
        const f = await b.next(isSignal, 3000, 'the relayed SIGNAL');
        assert.equal(f.json.from_client_id, cid(1), `spoof ${JSON.stringify(spoof)}: ${desc(f)}`);
        assert.deepEqual(f.json, { target_client_id: cid(2), type: 'offer', data: { s: 1 }, from_client_id: cid(1) });
        /* exactly one from_client_id key in the text */
        assert.equal((f.payload.toString('utf8').match(/"from_client_id"/g) || []).length, 1, f.payload.toString('utf8'));
    }
});

test('SIGNAL to a client that is not registered -> ERROR 404 with details.target_client_id', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    /* unknown id */
    let e = await signalError(a, { target_client_id: 'nobody', type: 'offer', data: {} }, 404);
    assert.equal(e.details.target_client_id, 'nobody');
    /* known id, only CONNECTED */
    const b = await srv.connect(cid(2), 'test_token_2');
    e = await signalError(a, { target_client_id: cid(2), type: 'offer', data: {} }, 404);
    assert.equal(e.details.target_client_id, cid(2));
    /* BINARY form too */
    e = expectError(await a.request(T.SIGNAL, binSignal(cid(2), Buffer.from('x'))), 404);
    assert.equal(e.details.target_client_id, cid(2));
    /* after UNREGISTER the target is gone again */
    assert.equal((await b.register()).type, T.REGISTER_ACK);
    a.send(T.SIGNAL, { target_client_id: cid(2), type: 'offer', data: {} });
    await b.next(isSignal, 3000, 'SIGNAL once registered');
    assert.equal((await b.unregister()).type, T.UNREGISTER_ACK);
    e = await signalError(a, { target_client_id: cid(2), type: 'offer', data: {} }, 404);
    assert.equal(e.details.target_client_id, cid(2));
    await roundTrip(b);
    assert.equal(b.seen.filter(isSignal).length, 1, 'only the SIGNAL sent while registered arrived');
});

test('SIGNAL while not registered -> ERROR 401 (JSON and BINARY)', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    await registered(srv, 2);
    const a = await srv.connect(cid(1), 'test_token_1');
    await signalError(a, { target_client_id: cid(2), type: 'offer', data: {} }, 401, /not registered/i);
    expectError(await a.request(T.SIGNAL, binSignal(cid(2), Buffer.from([1, 2]))), 401, /not registered/i);
});

test('SIGNAL with missing or bad fields -> ERROR 400 naming the field', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    await registered(srv, 2);
    const base = { target_client_id: cid(2), type: 'offer', data: {} };
    for (const [payload, field] of [
        [{ type: 'offer', data: {} }, 'target_client_id'],
        [{ ...base, target_client_id: 'bad id!' }, 'target_client_id'],
        [{ ...base, type: undefined }, 'type'],
        [{ ...base, type: '' }, 'type'],
        [{ ...base, data: undefined }, 'data'],
        [{ ...base, room_id: 7 }, 'room_id'],
    ]) {
        const e = await signalError(a, payload, 400);
        assert.ok(e.error_message.includes(field) || (e.details && e.details.field === field),
            `${JSON.stringify(payload)}: error does not name ${field}: ${JSON.stringify(e)}`);
    }
});

test('BINARY SIGNAL: the prefix is rewritten to the sender, the body is intact', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const longId = LONG_ID;
    const c = await registered(srv, longId, 'tok-long');
    for (const body of [Buffer.alloc(0), Buffer.from([0]), crypto.randomBytes(1000), Buffer.from(JSON.stringify({ target_client_id: 'z' }))]) {
        const uuid = a.send(T.SIGNAL, binSignal(cid(2), body));
        const f = await b.next(isSignal, 3000, 'the relayed BINARY SIGNAL');
        assert.equal(f.payloadType, P.BINARY);
        assert.notEqual(f.uuid, uuid);
        const { clientId, body: got } = parseBinSignal(f.payload);
        assert.equal(clientId, cid(1));
        assert.ok(got.equals(body), `body of ${body.length} bytes changed`);
        await noReplyTo(a, uuid);
    }
    /* a longer sender id than the target id, and the other way round */
    c.send(T.SIGNAL, binSignal(cid(2), Buffer.from('from long')));
    let f = await b.next(isSignal, 3000, 'BINARY SIGNAL from the long id');
    assert.deepEqual({ ...parseBinSignal(f.payload), body: parseBinSignal(f.payload).body.toString() },
        { clientId: longId, body: 'from long' });
    b.send(T.SIGNAL, binSignal(longId, Buffer.from('to long')));
    f = await c.next(isSignal, 3000, 'BINARY SIGNAL to the long id');
    assert.deepEqual({ ...parseBinSignal(f.payload), body: parseBinSignal(f.payload).body.toString() },
        { clientId: cid(2), body: 'to long' });
});

test('BINARY SIGNAL with a malformed prefix -> ERROR 400; the connection stays usable', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const bad = [
        Buffer.alloc(0),                                    /* no prefix at all */
        Buffer.from([0]),                                   /* id length 0 */
        Buffer.from([0, 1, 2, 3]),
        Buffer.concat([Buffer.from([20]), Buffer.from(cid(2))]),   /* says 20, has 13 */
        binSignal('bad id!', Buffer.from('x')),             /* forbidden characters */
        binSignal('x'.repeat(129), Buffer.from('x')),       /* longer than 128 */
    ];
    for (const p of bad) {
        const f = await a.request(T.SIGNAL, p);
        try {
            expectError(f, 400);
        } catch (e) {
            throw new Error(`payload ${p.subarray(0, 24).toString('hex')}: ${e.message}`);
        }
    }
    assert.ok(a.isOpen);
    a.send(T.SIGNAL, binSignal(cid(2), Buffer.from('ok')));
    const f = await b.next(isSignal, 3000, 'a good BINARY SIGNAL after the bad ones');
    assert.equal(parseBinSignal(f.payload).body.toString(), 'ok');
    await roundTrip(b);
    assert.equal(b.seen.filter(isSignal).length, 1, 'no malformed SIGNAL was relayed');
});

test('order: 1,000 SIGNALs sent in a burst arrive in order (JSON and BINARY mixed)', opts, async (t) => {
    const srv = await startServer(t, { env: { ...env(), SIGNAL_MANAGER_LIMITS_MESSAGE_RATE: '0' } }); /* a burst is the point here */
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const N = 1000;
    const frames = [];
    for (let i = 0; i < N; i++) {
        const payload = i % 5 === 4
            ? binSignal(cid(2), Buffer.from(`seq:${i}`))
            : { target_client_id: cid(2), type: 'candidate', data: { seq: i, pad: 'p'.repeat(i % 97) } };
        frames.push(payload);
    }
    for (const p of frames) a.send(T.SIGNAL, p);     /* one burst, no awaits */
    const got = [];
    await b.waiters.add(() => {
        for (;;) {
            const i = b.frames.findIndex(isSignal);
            if (i < 0) break;
            got.push(b.frames.splice(i, 1)[0]);
        }
        return got.length >= N ? true : undefined;
    }, 8000, `${N} SIGNALs at the target`, () => `got ${got.length}`);
    const seqs = got.map((f) => (f.payloadType === P.JSON ? f.json.data.seq : Number(parseBinSignal(f.payload).body.toString().slice(4))));
    const firstBad = seqs.findIndex((s, i) => s !== i);
    assert.equal(firstBad, -1, `out of order at index ${firstBad}: ${seqs.slice(Math.max(0, firstBad - 3), firstBad + 3)}`);
    assert.ok(a.frames.every((f) => f.type !== T.ERROR), `errors to the sender: ${a.history()}`);
});

test('order per pair with two senders interleaving their bursts to one target', opts, async (t) => {
    const srv = await startServer(t, { env: { ...env(), SIGNAL_MANAGER_SERVER_WORKERS: '4', SIGNAL_MANAGER_SERVER_IO_THREADS: '2', SIGNAL_MANAGER_LIMITS_MESSAGE_RATE: '0' } });
    const a = await registered(srv, 1);
    const c = await registered(srv, 3);
    const b = await registered(srv, 2);
    const N = 600;
    for (let i = 0; i < N; i++) {
        a.send(T.SIGNAL, { target_client_id: cid(2), type: 'x', data: { seq: i } });
        c.send(T.SIGNAL, binSignal(cid(2), Buffer.from(String(i))));
    }
    const seqs = { [cid(1)]: [], [cid(3)]: [] };
    await b.waiters.add(() => {
        for (;;) {
            const i = b.frames.findIndex(isSignal);
            if (i < 0) break;
            const f = b.frames.splice(i, 1)[0];
            if (f.payloadType === P.JSON) seqs[f.json.from_client_id].push(f.json.data.seq);
            else {
                const s = parseBinSignal(f.payload);
                seqs[s.clientId].push(Number(s.body.toString()));
            }
        }
        return seqs[cid(1)].length + seqs[cid(3)].length >= 2 * N ? true : undefined;
    }, 8000, `${2 * N} SIGNALs at the target`, () => `got ${seqs[cid(1)].length} + ${seqs[cid(3)].length}`);
    for (const [from, s] of Object.entries(seqs)) {
        assert.equal(s.length, N, `from ${from}`);
        const bad = s.findIndex((v, i) => v !== i);
        assert.equal(bad, -1, `SIGNALs from ${from} out of order at ${bad}: ${s.slice(Math.max(0, bad - 3), bad + 3)}`);
    }
});

test('routing.require_shared_room=true: 403 without a shared room, relayed with one', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_ROUTING_REQUIRE_SHARED_ROOM: 'true' }) });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => registered(srv, i)));
    const sig = { target_client_id: cid(2), type: 'offer', data: {} };
    let e = await signalError(a, sig, 403);
    assert.equal(e.details.target_client_id, cid(2));
    expectError(await a.request(T.SIGNAL, binSignal(cid(2), Buffer.from('x'))), 403);
    /* an unknown target is still 404 */
    await signalError(a, { ...sig, target_client_id: 'nobody' }, 404);
    /* a in one room, b in another: still no shared room */
    await created(a, 'ra');
    await created(b, 'rb');
    await signalError(a, sig, 403);
    /* c shares ra with a only */
    await joined(c, 'ra');
    await signalError(c, sig, 403);
    a.send(T.SIGNAL, { ...sig, target_client_id: cid(3) });
    await c.next(isSignal, 3000, 'SIGNAL a -> c in ra');
    /* b joins ra: now a <-> b works, both ways, JSON and BINARY */
    await joined(b, 'ra');
    a.send(T.SIGNAL, sig);
    assert.equal((await b.next(isSignal, 3000, 'SIGNAL a -> b')).json.from_client_id, cid(1));
    b.send(T.SIGNAL, binSignal(cid(1), Buffer.from('back')));
    assert.equal(parseBinSignal((await a.next(isSignal, 3000, 'SIGNAL b -> a')).payload).clientId, cid(2));
    /* b leaves ra: 403 again */
    await left(b, 'ra');
    e = await signalError(a, sig, 403);
    assert.equal(e.details.target_client_id, cid(2));
});

test('routing.require_shared_room=false (default): SIGNAL needs no shared room', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    a.send(T.SIGNAL, { target_client_id: cid(2), type: 'offer', data: {} });
    await b.next(isSignal, 3000, 'SIGNAL without rooms');
});

test('SIGNAL to a detached client (dropped, within the resume window) -> ERROR 404', opts, async (t) => {
    const srv = await startServer(t, { env: env({ SIGNAL_MANAGER_SERVER_RESUME_WINDOW: '10s' }) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'r');
    await joined(b, 'r');
    b.terminate();
    /* the server has seen the drop once it logs the detach */
    await srv.waitLog((l) => /detached/.test(l.msg) && l.client_id === cid(2), 3000, 'the detach log line');
    const sig = { target_client_id: cid(2), type: 'offer', room_id: 'r', data: {} };
    const e = await a.request(T.SIGNAL, sig);
    const j = expectError(e, 404);
    assert.equal(j.details.target_client_id, cid(2));
    /* the registration is kept meanwhile: a plain REGISTER would be allowed, but the
     * holder is not reachable; the room still lists b */
    const c = await registered(srv, 3);
    assert.deepEqual((await joined(c, 'r')).json.participants, [cid(1), cid(2), cid(3)]);
});

test('SIGNAL too large once from_client_id is added -> ERROR 413; one byte less is relayed', opts, async (t) => {
    const srv = await startServer(t, { env: env() });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    const added = `,"from_client_id":"${cid(1)}"`.length;
    const make = (len) => {
        const base = JSON.stringify({ target_client_id: cid(2), type: 'offer', data: '' });
        const s = JSON.stringify({ target_client_id: cid(2), type: 'offer', data: 'd'.repeat(len - base.length) });
        assert.equal(Buffer.byteLength(s), len);
        return s;
    };
    /* exactly fits after the splice */
    a.send(T.SIGNAL, make(MAX_PAYLOAD - added));
    const f = await b.next(isSignal, 3000, 'the largest relayable SIGNAL');
    assert.equal(f.payload.length, MAX_PAYLOAD);
    assert.equal(f.json.from_client_id, cid(1));
    /* one byte more does not */
    expectError(await a.request(T.SIGNAL, make(MAX_PAYLOAD - added + 1)), 413, /large/i);
    expectError(await a.request(T.SIGNAL, make(MAX_PAYLOAD)), 413);
    /* the spoof path (payload rebuilt) has the same limit */
    const spoof = (len) => {
        const base = JSON.stringify({ target_client_id: cid(2), type: 'offer', data: '', from_client_id: 'x' });
        return JSON.stringify({ target_client_id: cid(2), type: 'offer', data: 'd'.repeat(len - base.length), from_client_id: 'x' });
    };
    expectError(await a.request(T.SIGNAL, spoof(MAX_PAYLOAD)), 413);
    /* BINARY: a sender id longer than the target id can overflow too */
    const l = await registered(srv, L100, 'tok-100');
    const body = Buffer.alloc(MAX_PAYLOAD - 1 - cid(2).length, 7);
    expectError(await l.request(T.SIGNAL, binSignal(cid(2), body)), 413);
    /* the connection is fine afterwards */
    await roundTrip(b);
    assert.equal(b.seen.filter(isSignal).length, 1, 'nothing oversize was relayed');
    a.send(T.SIGNAL, { target_client_id: cid(2), type: 'offer', data: 'small' });
    assert.equal((await b.next(isSignal, 3000, 'a small SIGNAL after the 413s')).json.data, 'small');
});
