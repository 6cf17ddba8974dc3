'use strict';
/* The control API shared by every fake (tests/fakes/http.js): failure injection,
 * latency, hangs, dropped connections, recording, reset, HTTP admin endpoints. */

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startFirestore } = require('../firestore');
const { startFakeServer, request, jsonReply } = require('../http');

const OWNER = { authorization: 'Bearer owner' };

async function setup(t)
{
    const fs = await startFirestore();
    t.after(() => fs.close());
    const root = `${fs.url}/v1/projects/p/databases/(default)/documents`;
    const call = (method, p, body, o = {}) => request(root + p, { method, body, headers: OWNER, ...o });
    return { fs, c: fs.control, call, root };
}

test('fail: N injected failures (preset, status, custom body), then normal service; match by method/path', async (t) => {
    const { c, call } = await setup(t);
    c.fail(2, 'UNAVAILABLE');
    for (let i = 0; i < 2; i++) {
        const r = await call('GET', '/a/b');
        assert.equal(r.status, 503);
        assert.deepEqual(r.json, { error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } });
    }
    assert.equal((await call('GET', '/a/b')).status, 404);

    c.fail(1, 504);
    const d = await call('GET', '/a/b');
    assert.equal(d.status, 504);
    assert.equal(d.json.error.status, 'DEADLINE_EXCEEDED');

    c.fail(1, { status: 429, body: { error: { code: 429, message: 'slow down', status: 'RESOURCE_EXHAUSTED' } }, headers: { 'retry-after': '1' } },
        { match: { method: 'POST', path: ':commit' } });
    assert.equal((await call('GET', '/a/b')).status, 404, 'GET does not match the POST :commit rule');
    const r = await call('POST', ':commit', { writes: [] });
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.json.error.message, 'slow down');
    assert.equal((await call('POST', ':commit', { writes: [] })).status, 200);

    c.fail(Infinity, 'INTERNAL', { match: { path: /\/x\// } });
    assert.equal((await call('GET', '/x/1')).status, 500);
    assert.equal((await call('GET', '/x/2')).status, 500);
    assert.equal(c.faults().length, 1);
    c.clearFaults();
    assert.equal((await call('GET', '/x/2')).status, 404);
});

test('apply: the write happens but the response is an error (outcome unknown)', async (t) => {
    const { c, call } = await setup(t);
    c.fail(1, 'DEADLINE_EXCEEDED', { apply: true });
    const r1 = await call('POST', '/rooms?documentId=r1', { fields: {} });
    assert.equal(r1.status, 504);
    const r2 = await call('POST', '/rooms?documentId=r1', { fields: {} });
    assert.equal(r2.status, 409, 'the first attempt was applied');
    assert.equal(r2.json.error.status, 'ALREADY_EXISTS');
});

test('latency per path adds up; count limits it', async (t) => {
    const { c, call } = await setup(t);
    c.latency(40, { match: { path: '/slow/' } });
    c.latency(400, { match: { path: '/slow/' }, count: 1 });
    const timed = async (p) => {
        const t0 = Date.now();
        await call('GET', p);
        return Date.now() - t0;
    };
    assert.ok(await timed('/slow/1') >= 435, 'two matching rules add up');
    const second = await timed('/slow/1');
    assert.ok(second >= 38 && second < 400, `second request took ${second} ms: the 400 ms rule was used up`);
    assert.ok(await timed('/fast/1') < 300);
    c.clearLatency();
    assert.ok(await timed('/slow/1') < 300);
    assert.ok(c.requests({ path: '/slow/' })[0].durationMs >= 435);
});

test('hang: never answered until the client gives up; close() does not wait for it', async (t) => {
    const { c, call } = await setup(t);
    c.hang(1);
    await assert.rejects(call('GET', '/a/b', undefined, { timeoutMs: 150 }), /timeout after 150 ms/);
    assert.equal(c.requests()[0].outcome, 'hung');
    assert.equal((await call('GET', '/a/b')).status, 404, 'only one hung');
    c.hang(1, { apply: true });
    const pending = call('POST', '/rooms?documentId=r1', { fields: {} });
    await c.waitForRequests({ method: 'POST' }, { timeoutMs: 1000 });
    assert.equal(c.hungCount(), 1);
    assert.ok(c.get('projects/p/databases/(default)/documents/rooms/r1'), 'applied before hanging');
    assert.equal(c.releaseHung(), 1);
    await assert.rejects(pending, /socket hang up|ECONNRESET/);
});

test('drop: immediate, after-body and partial responses break the connection', async (t) => {
    const { c, call, fs } = await setup(t);
    c.drop(1, { mode: 'immediate' });
    await assert.rejects(call('POST', '/rooms?documentId=r1', { fields: {} }), /socket hang up|ECONNRESET|EPIPE/);
    assert.equal(c.count(), 0);
    c.drop(1, { apply: true });
    await assert.rejects(call('POST', '/rooms?documentId=r1', { fields: {} }), /socket hang up|ECONNRESET/);
    assert.equal(c.count(), 1, 'after-body with apply: written, then dropped');
    c.drop(1, { mode: 'partial' });
    await assert.rejects(call('GET', '/rooms/r1'), /aborted|ECONNRESET/);
    assert.deepEqual(c.requests().map((r) => r.outcome), ['dropped', 'dropped', 'dropped']);

    /* a keep-alive client gets a fresh connection and carries on */
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const url = `${fs.url}/v1/projects/p/databases/(default)/documents/rooms/r1`;
    assert.equal((await request(url, { headers: OWNER, agent })).status, 200);
    c.drop(1);
    await assert.rejects(request(url, { headers: OWNER, agent }));
    assert.equal((await request(url, { headers: OWNER, agent })).status, 200);
});

test('recording: method, path, query (repeated keys), headers, parsed body, status; waitForRequests', async (t) => {
    const { c, call } = await setup(t);
    await call('PATCH', '/a/b?updateMask.fieldPaths=x&updateMask.fieldPaths=y&currentDocument.exists=false', { fields: { x: { integerValue: '1' } } });
    const [r] = c.requests();
    assert.equal(r.method, 'PATCH');
    assert.equal(r.path, '/v1/projects/p/databases/(default)/documents/a/b');
    assert.deepEqual(r.query, { 'updateMask.fieldPaths': ['x', 'y'], 'currentDocument.exists': 'false' });
    assert.equal(r.headers.authorization, 'Bearer owner');
    assert.deepEqual(r.body, { fields: { x: { integerValue: '1' } } });
    assert.equal(r.status, 200);
    assert.equal(r.outcome, 'ok');
    const later = c.waitForRequests({ method: 'DELETE' }, { timeoutMs: 1000 });
    setTimeout(() => call('DELETE', '/a/b'), 20);
    const got = await later;
    assert.equal(got[0].status, 200);
    await assert.rejects(c.waitForRequests({ method: 'PUT' }, { timeoutMs: 50 }), /waited 50 ms/);
    c.reset();
    assert.equal(c.requests().length, 0);
    assert.equal(c.count(), 0);
});

test('HTTP admin API under /__fake drives the same controls', async (t) => {
    const { fs, call } = await setup(t);
    const admin = (method, p, body) => request(`${fs.url}/__fake${p}`, { method, body });
    assert.equal((await admin('POST', '/fail', { count: 1, preset: 'ABORTED', match: { method: 'POST' } })).status, 200);
    const ab = await call('POST', ':commit', { writes: [] });
    assert.equal(ab.status, 409);
    assert.equal(ab.json.error.status, 'ABORTED');
    await admin('POST', '/fail', { count: 1, status: 502, body: 'bad gateway' });
    const bg = await call('GET', '/a/b');
    assert.equal(bg.status, 502);
    assert.equal(bg.text, 'bad gateway');
    await admin('POST', '/latency', { ms: 50, count: 1 });
    const t0 = Date.now();
    await call('GET', '/a/b');
    assert.ok(Date.now() - t0 >= 45);
    await admin('POST', '/hang', { count: 1, match: { pathRegex: '/h/\\d+$' } });
    await assert.rejects(call('GET', '/h/1', undefined, { timeoutMs: 80 }));
    await admin('POST', '/drop', { count: 1, mode: 'after-body' });
    await assert.rejects(call('GET', '/a/b'));
    assert.equal((await admin('PUT', '/documents/clients/c1', { data: { port: 443, on: true } })).status, 200);
    assert.deepEqual(fs.control.data('clients/c1'), { port: 443, on: true });
    const state = await admin('GET', '/state');
    assert.equal(state.json.documents['projects/test-project/databases/(default)/documents/clients/c1'].fields.port.integerValue, '443');
    const reqs = await admin('GET', '/requests?method=GET');
    assert.ok(reqs.json.requests.length >= 3);
    assert.ok(reqs.json.requests.every((r) => r.method === 'GET'));
    assert.ok(!reqs.json.requests.some((r) => r.path.startsWith('/__fake')), 'admin calls are not recorded');
    assert.equal((await admin('POST', '/fail', { count: 1 })).status, 400, 'a failure needs a preset or status');
    assert.equal((await admin('GET', '/nope')).status, 404);
    assert.equal((await admin('POST', '/reset')).status, 200);
    assert.equal(fs.control.count(), 0);
    assert.equal(fs.control.requests().length, 0);
});

test('startFakeServer: handler exceptions become 500 and body limit 413', async (t) => {
    const f = await startFakeServer({
        name: 'x',
        maxBodyBytes: 10,
        handle(ctx) {
            if (ctx.path === '/boom') throw new Error('boom');
            return jsonReply(200, { ok: true });
        },
    });
    t.after(() => f.close());
    const origWrite = process.stderr.write;
    process.stderr.write = () => true;
    try {
        assert.equal((await request(`${f.url}/boom`)).status, 500);
    } finally {
        process.stderr.write = origWrite;
    }
    assert.equal((await request(`${f.url}/big`, { method: 'POST', body: 'x'.repeat(100) })).status, 413);
    assert.equal((await request(`${f.url}/ok`)).status, 200);
});

test('startFakes wires Firestore to the auth fake and closes everything in t.after', async (t) => {
    const { startFakes } = require('../index');
    const f = await startFakes(t, { auth: true, firestore: { auth: 'issuer' }, pubsub: { topics: ['events'] }, sfu: true });
    const tok = (await request(`${f.auth.url}/computeMetadata/v1/instance/service-accounts/default/token`,
        { headers: { 'metadata-flavor': 'Google' } })).json.access_token;
    const doc = `${f.firestore.url}/v1/projects/p/databases/(default)/documents/a/b`;
    assert.equal((await request(doc, { headers: { authorization: `Bearer ${tok}` } })).status, 404);
    assert.equal((await request(doc, { headers: { authorization: 'Bearer other' } })).status, 401);
    assert.ok(f.pubsub.control.topics().includes('projects/test-project/topics/events'));
    assert.match(f.sfu.appId, /^[0-9a-f]{32}$/);
});
