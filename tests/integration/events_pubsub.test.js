'use strict';
/* events.backend=pubsub against the Pub/Sub and Google-auth fakes (tests/fakes):
 * lifecycle events arrive with the right event_type attribute and fields, none lost
 * across a clean SIGTERM; credentials from a service-account key generated at test
 * time (the fake token endpoint verifies the RS256 assertion); PUBSUB_EMULATOR_HOST
 * mode sends no Authorization header; retryable failures are retried; bad
 * credentials and a missing project fail the start naming the key
 * (DECISIONS.md §10, reference/cloud-apis.md §3, §4). */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, runServer, makeTmpDir, TEST_TIMEOUT } = require('./lib/harness');
const { T, until } = require('./lib/client');
const { cid, keysEnv, registered, created } = require('./lib/rooms');
const { startFakes, writeServiceAccountKeyFile } = require('../fakes');

const opts = { timeout: TEST_TIMEOUT };
const TOPIC = 'sm-events';

function baseEnv(extra = {})
{
    return {
        SIGNAL_MANAGER_STORE_BACKEND: 'memory',
        SIGNAL_MANAGER_EVENTS_BACKEND: 'pubsub',
        SIGNAL_MANAGER_PUBSUB_PROJECT_ID: 'test-project',
        SIGNAL_MANAGER_PUBSUB_TOPIC: TOPIC,
        PUBSUB_EMULATOR_HOST: null,
        GOOGLE_APPLICATION_CREDENTIALS: null,
        GCE_METADATA_HOST: null,
        ...keysEnv(3),
        ...extra,
    };
}

/* A service-account key registered with the auth fake, written to a file. */
function keyFile(auth)
{
    const sa = auth.control.createServiceAccount();
    const file = path.join(makeTmpDir(), 'sa.json');
    fs.writeFileSync(file, sa.keyFileText, { mode: 0o600 });
    return { file, sa };
}

/* CONNECT + REGISTER two clients, ROOM_CREATE, one DISCONNECTs, SIGTERM.
 * Returns what the test needs to check the events. */
async function lifecycle(srv)
{
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'room-ps');
    a.send(T.DISCONNECT, { reason: 'bye' });
    await a.waitClose();
    /* b is still connected at SIGTERM: its client.disconnected is emitted
     * during the shutdown and must still be published. */
    await srv.stop();
    return { a, b };
}

function stoppedLine(srv)
{
    return srv.logs.find((j) => j.msg === 'events: Pub/Sub publisher stopped');
}

/* The events every lifecycle() run must have produced. */
function checkLifecycleEvents(msgs, srv, a, b)
{
    for (const m of msgs) {
        assert.ok(m.json, `data is JSON: ${m.text}`);
        assert.deepEqual(Object.keys(m.attributes), ['event_type']);
        assert.equal(m.attributes.event_type, m.json.event, 'event_type attribute = the event name');
        assert.equal(typeof m.json.timestamp, 'string');
        assert.equal(m.json.instance_id, srv.logs.find((j) => j.msg === 'listening').instance_id);
    }
    const find = (ev, pred = () => true) => msgs.find((m) => m.json.event === ev && pred(m.json));
    const ofA = (j) => j.client_id === cid(1);
    const ofB = (j) => j.client_id === cid(2);
    assert.ok(find('client.connected', ofA), 'client.connected of a');
    assert.ok(find('client.connected', ofB), 'client.connected of b');
    assert.equal(find('client.registered', ofA).json.session_id, a.sessionId);
    assert.equal(find('client.registered', ofB).json.session_id, b.sessionId);
    const rc = find('room.created');
    assert.ok(rc, 'room.created');
    assert.equal(rc.json.room_id, 'room-ps');
    assert.equal(rc.json.client_id, cid(1));
    assert.ok(find('client.disconnected', ofA), 'client.disconnected of a (DISCONNECT)');
    assert.ok(find('client.disconnected', ofB), 'client.disconnected of b (at SIGTERM)');
    /* none lost: everything the server queued was published */
    const line = stoppedLine(srv);
    assert.ok(line, 'the publisher logged its totals');
    assert.equal(line.dropped, 0, JSON.stringify(line));
    assert.equal(line.published, msgs.length, `published ${line.published}, fake has ${msgs.length}`);
}

test('key file credentials: assertion verified by the token endpoint, events published with the Bearer token, none lost at SIGTERM', opts, async (t) => {
    const f = await startFakes(t, { auth: true, pubsub: { topics: [TOPIC], auth: 'issuer' } });
    const { file, sa } = keyFile(f.auth);
    const srv = await startServer(t, {
        env: baseEnv({
            SIGNAL_MANAGER_PUBSUB_CREDENTIALS: file,
            SIGNAL_MANAGER_PUBSUB_BASE_URL: f.pubsub.url,
        }),
    });
    const start = srv.logs.find((j) => j.msg === 'events: publishing to Pub/Sub');
    assert.ok(start, 'start-up line');
    assert.equal(start.credentials, `key file ${sa.clientEmail}`);
    assert.equal(start.topic, `projects/test-project/topics/${TOPIC}`);
    /* the start-up check fetched a token: the key was accepted */
    const tokenReqs = f.auth.control.requests({ path: '/token' });
    assert.ok(tokenReqs.length >= 1);
    assert.equal(tokenReqs[0].status, 200, JSON.stringify(tokenReqs[0].body));

    const { a, b } = await lifecycle(srv);
    const msgs = f.pubsub.control.messages({ topic: TOPIC });
    checkLifecycleEvents(msgs, srv, a, b);
    const pubs = f.pubsub.control.requests({ path: ':publish' });
    assert.ok(pubs.length >= 1);
    for (const r of pubs) {
        assert.match(r.headers.authorization || '', /^Bearer ya29\./, 'publish carries the access token');
        assert.equal(r.status, 200);
        assert.ok(r.body.messages.length <= 1000);
    }
    /* batched: a handful of requests for the whole lifecycle, not one per event */
    assert.ok(pubs.length < msgs.length, `${pubs.length} requests for ${msgs.length} events`);
    /* nothing secret in the server's log */
    const token = f.auth.control.tokens()[0].token;
    assert.ok(!srv.stderr.includes(token), 'no access token in the log');
    assert.ok(!srv.stderr.includes('PRIVATE KEY') && !srv.stderr.includes('eyJ'), 'no key or assertion in the log');
});

test('PUBSUB_EMULATOR_HOST: plain http, no Authorization header, events arrive', opts, async (t) => {
    const f = await startFakes(t, { pubsub: { topics: [TOPIC] } });
    const srv = await startServer(t, {
        env: baseEnv({
            PUBSUB_EMULATOR_HOST: `127.0.0.1:${f.pubsub.port}`,
            /* ignored in emulator mode */
            SIGNAL_MANAGER_PUBSUB_BASE_URL: 'https://pubsub.invalid',
            SIGNAL_MANAGER_PUBSUB_CREDENTIALS: '/nonexistent/key.json',
        }),
    });
    assert.equal(srv.logs.find((j) => j.msg === 'events: publishing to Pub/Sub').credentials, 'emulator');
    const { a, b } = await lifecycle(srv);
    const msgs = f.pubsub.control.messages({ topic: TOPIC });
    checkLifecycleEvents(msgs, srv, a, b);
    const pubs = f.pubsub.control.requests({ path: ':publish' });
    assert.ok(pubs.length >= 1);
    for (const r of pubs) assert.equal(r.headers.authorization, undefined, 'no Authorization in emulator mode');
});

test('503 and 429 from Pub/Sub are retried: every event still arrives once', opts, async (t) => {
    const f = await startFakes(t, { pubsub: { topics: [TOPIC] } });
    f.pubsub.control.fail(1, 'UNAVAILABLE', { match: { path: ':publish' } });
    f.pubsub.control.fail(1, 'RESOURCE_EXHAUSTED', { match: { path: ':publish' } });
    const srv = await startServer(t, { env: baseEnv({ PUBSUB_EMULATOR_HOST: `127.0.0.1:${f.pubsub.port}` }) });
    const a = await registered(srv, 1);
    await until(() => f.pubsub.control.messages({ topic: TOPIC, eventType: 'client.registered' }).length === 1 || undefined,
        5000, 'client.registered after the retries');
    const outcomes = f.pubsub.control.requests({ path: ':publish' }).map((r) => r.status);
    assert.deepEqual(outcomes.slice(0, 3), [503, 429, 200]);
    await srv.stop();
    const msgs = f.pubsub.control.messages({ topic: TOPIC });
    const names = msgs.map((m) => `${m.json.event}/${m.json.client_id}`);
    assert.equal(new Set(names).size, names.length, `no duplicates: ${names}`);
    assert.ok(names.includes(`client.connected/${a.clientId}`));
    assert.ok(names.includes(`client.disconnected/${a.clientId}`));
    assert.equal(stoppedLine(srv).dropped, 0);
});

test('a topic Pub/Sub does not know: batches dropped and counted, not retried, the server keeps working', opts, async (t) => {
    const f = await startFakes(t, { pubsub: { topics: ['other'] } });
    const srv = await startServer(t, { env: baseEnv({ PUBSUB_EMULATOR_HOST: `127.0.0.1:${f.pubsub.port}` }) });
    const a = await registered(srv, 1);
    assert.ok(a.sessionId);
    await until(() => srv.logs.find((j) => j.msg === 'events: Pub/Sub publish failed, events dropped') || undefined,
        5000, 'the failure log line');
    const line = srv.logs.find((j) => j.msg === 'events: Pub/Sub publish failed, events dropped');
    assert.equal(line.status, 404);
    assert.match(line.detail, /NOT_FOUND/);
    await srv.stop();
    assert.equal(f.pubsub.control.messages().length, 0);
    const stopped = stoppedLine(srv);
    assert.ok(stopped.dropped >= 2, JSON.stringify(stopped));
    /* 404 is final: one request per batch, no retries */
    const pubs = f.pubsub.control.requests({ path: ':publish' });
    assert.ok(pubs.every((r) => r.status === 404));
    const batches = pubs.map((r) => r.body.messages.length).reduce((x, y) => x + y, 0);
    assert.equal(batches, stopped.dropped, 'each dropped event was sent exactly once');
});

test('start-up errors name the key: unregistered key (invalid_grant), missing project id, unreadable key file', opts, async (t) => {
    const f = await startFakes(t, { auth: true, pubsub: { topics: [TOPIC], auth: 'issuer' } });
    /* a well-formed key the token endpoint does not know */
    const dir = makeTmpDir();
    const stranger = writeServiceAccountKeyFile(path.join(dir, 'stranger.json'), { tokenUri: f.auth.tokenUri });
    let r = await runServer({
        env: baseEnv({ SIGNAL_MANAGER_PUBSUB_CREDENTIALS: stranger.path, SIGNAL_MANAGER_PUBSUB_BASE_URL: f.pubsub.url }),
    });
    assert.notEqual(r.code, 0, 'refused to start');
    assert.equal(r.listening, false);
    assert.match(r.stderr, /pubsub\.credentials: key file [^ ]+: token endpoint refused the key: 400 invalid_grant/);

    r = await runServer({ env: baseEnv({ SIGNAL_MANAGER_PUBSUB_PROJECT_ID: '', PUBSUB_EMULATOR_HOST: '127.0.0.1:9' }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /pubsub\.project_id: must be set when events\.backend = pubsub/);

    r = await runServer({ env: baseEnv({ SIGNAL_MANAGER_PUBSUB_CREDENTIALS: path.join(dir, 'missing.json') }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /pubsub\.credentials: .*missing\.json: cannot open/);
});
