'use strict';
/* Fake Pub/Sub: publish validation, limits, topics, recording. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startPubsub } = require('../pubsub');
const { request } = require('../http');

const b64 = (s) => Buffer.from(s).toString('base64');

async function setup(t, opts = { topics: ['events'] })
{
    const ps = await startPubsub(opts);
    t.after(() => ps.close());
    const publish = (topic, body, headers) => request(`${ps.url}/v1/projects/test-project/topics/${topic}:publish`,
        { method: 'POST', body, headers });
    return { ps, publish };
}

test('publish: messageIds in order, messages recorded with decoded data and attributes', async (t) => {
    const { ps, publish } = await setup(t);
    const ev = (i) => ({ data: b64(JSON.stringify({ event: 'room.created', i })), attributes: { event_type: 'room.created' } });
    const r = await publish('events', { messages: [ev(1), ev(2), { attributes: { event_type: 'only.attr' } }] });
    assert.equal(r.status, 200);
    assert.ok(r.text.includes('\n  "messageIds"'), 'pretty JSON');
    assert.equal(r.json.messageIds.length, 3);
    assert.ok(r.json.messageIds.every((id) => /^\d+$/.test(id)));
    assert.equal(new Set(r.json.messageIds).size, 3);
    const msgs = ps.control.messages({ topic: 'events' });
    assert.deepEqual(msgs.map((m) => m.messageId), r.json.messageIds);
    assert.deepEqual(msgs[1].json, { event: 'room.created', i: 2 });
    assert.equal(msgs[0].attributes.event_type, 'room.created');
    assert.equal(msgs[0].topic, 'projects/test-project/topics/events');
    assert.equal(ps.control.messages({ eventType: 'only.attr' }).length, 1);
    const got = await ps.control.waitForMessages(3, { topic: 'events' }, 100);
    assert.equal(got.length, 3);
    const admin = await request(`${ps.url}/__fake/messages?topic=events`);
    assert.equal(admin.json.messages[1].text, JSON.stringify({ event: 'room.created', i: 2 }));
});

test('publish validation -> 400 INVALID_ARGUMENT', async (t) => {
    const { ps, publish } = await setup(t);
    const cases = [
        [{ messages: [] }, /message_count is too small/],
        [{}, /message_count is too small/],
        [{ messages: [{ data: 'not base64!' }] }, /Base64 decoding failed/],
        [{ messages: [{ data: 'YQ' }] }, /Base64 decoding failed/],
        [{ messages: [{ data: '' }] }, /is empty/],
        [{ messages: [{ attributes: {} }] }, /is empty/],
        [{ messages: [{ data: 'YQ==', attributes: { n: 5 } }] }, /TYPE_STRING/],
        [{ messages: [{ data: 'YQ==', messageId: '1' }] }, /must not be set/],
        [{ messages: [{ data: 'YQ==', orderingKey: 'a' }, { data: 'YQ==', orderingKey: 'b' }] }, /same ordering key/],
        [{ messages: [{ data: 'YQ==', attributes: { k: 'x'.repeat(1025) } }] }, /1024 bytes/],
        [{ messages: [{ data: 'YQ==' }], extra: 1 }, /Unknown name "extra"/],
        [{ messages: Array.from({ length: 1001 }, () => ({ data: 'YQ==' })) }, /too large. You passed 1001/],
    ];
    for (const [body, re] of cases) {
        const r = await publish('events', body);
        assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
        assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
        assert.match(r.json.error.message, re);
    }
    const thousand = await publish('events', { messages: Array.from({ length: 1000 }, () => ({ data: 'YQ==' })) });
    assert.equal(thousand.status, 200);
    assert.equal(thousand.json.messageIds.length, 1000);
    assert.equal(ps.control.messages().length, 1000, 'nothing recorded from rejected requests');
});

test('request larger than the limit -> 400 payload size', async (t) => {
    const { publish, ps } = await setup(t, { topics: ['events'], maxRequestBytes: 2000 });
    const r = await publish('events', { messages: [{ data: b64('x'.repeat(3000)) }] });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.message, 'Request payload size exceeds the limit: 2000 bytes.');
    assert.equal(ps.control.messages().length, 0);
});

test('unknown topic -> 404 NOT_FOUND; PUT creates; autoCreateTopics', async (t) => {
    const { ps, publish } = await setup(t);
    const r = await publish('nope', { messages: [{ data: 'YQ==' }] });
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { error: { code: 404, message: 'Resource not found (resource=nope).', status: 'NOT_FOUND' } });
    const c = await request(`${ps.url}/v1/projects/test-project/topics/nope`, { method: 'PUT' });
    assert.equal(c.status, 200);
    assert.deepEqual(c.json, { name: 'projects/test-project/topics/nope' });
    assert.equal((await request(`${ps.url}/v1/projects/test-project/topics/nope`, { method: 'PUT' })).status, 409);
    assert.equal((await publish('nope', { messages: [{ data: 'YQ==' }] })).status, 200);
    ps.control.setAutoCreate(true);
    assert.equal((await publish('fresh', { messages: [{ data: 'YQ==' }] })).status, 200);
    assert.ok(ps.control.topics().includes('projects/test-project/topics/fresh'));
});

test('auth when configured; injected 503 then success', async (t) => {
    const { ps, publish } = await setup(t, { topics: ['events'], auth: { tokens: ['tok'] } });
    const no = await publish('events', { messages: [{ data: 'YQ==' }] });
    assert.equal(no.status, 401);
    assert.equal(no.json.error.status, 'UNAUTHENTICATED');
    ps.control.fail(2, 'UNAVAILABLE');
    const h = { authorization: 'Bearer tok' };
    const a = await publish('events', { messages: [{ data: 'YQ==' }] }, h);
    assert.equal(a.status, 503);
    assert.equal(a.json.error.status, 'UNAVAILABLE');
    assert.equal((await publish('events', { messages: [{ data: 'YQ==' }] }, h)).status, 503);
    assert.equal((await publish('events', { messages: [{ data: 'YQ==' }] }, h)).status, 200);
    assert.equal(ps.control.messages().length, 1);
});
