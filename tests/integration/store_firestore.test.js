'use strict';
/*
 * store.backend = firestore against the Node Firestore fake (tests/fakes):
 * documents written by REGISTER/UNREGISTER and rooms, retries (503 bursts,
 * 409 ABORTED), exhausted retries -> ERROR 503 with nothing left, a store
 * slower than registration_timeout -> ERROR 408 and the late write undone,
 * start-up clean-up of this instance's stale documents, and both credential
 * modes: FIRESTORE_EMULATOR_HOST ("Bearer owner") and a service-account key
 * file (generated here, exchanged at the fake token endpoint, refreshed
 * after a 401).
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, runServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, until, expectError, describe: desc } = require('./lib/client');
const { health } = require('./lib/util');
const { keysEnv, cid, tok, registered, created, joined, left } = require('./lib/rooms');
const { startFakes } = require('../fakes');

const opts = { timeout: TEST_TIMEOUT };
const PREFIX = 'it_';
const PROJECT = 'test-project';

/* Server env for the Firestore backend; emulator mode unless a key file is given. */
function fsEnv(f, extra = {}, { keyFile = null } = {})
{
    const env = {
        ...keysEnv(4),
        SIGNAL_MANAGER_STORE_BACKEND: 'firestore',
        SIGNAL_MANAGER_FIRESTORE_PROJECT_ID: PROJECT,
        SIGNAL_MANAGER_FIRESTORE_COLLECTION_PREFIX: PREFIX,
        SIGNAL_MANAGER_SERVER_INSTANCE_ID: 'it-fs-1',
        SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '1s',
        SIGNAL_MANAGER_DATABASE_RETRY_ATTEMPTS: '3',
        SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL: '50',
        GOOGLE_APPLICATION_CREDENTIALS: null,
        GCE_METADATA_HOST: null,
        FIRESTORE_EMULATOR_HOST: `127.0.0.1:${f.firestore.port}`,
        ...extra,
    };
    if (keyFile) {
        env.FIRESTORE_EMULATOR_HOST = null;
        env.SIGNAL_MANAGER_FIRESTORE_BASE_URL = f.firestore.url;
        env.SIGNAL_MANAGER_FIRESTORE_CREDENTIALS = keyFile;
    }
    return env;
}

const regPath = (id) => `${PREFIX}registrations/${id}`;
const roomPath = (id) => `${PREFIX}rooms/${id}`;
const memberPath = (room, client) => `${PREFIX}room_members/${room}:${client}`;

/* createDocument requests for the registrations collection. */
const CREATE_REG = { method: 'POST', path: `/documents/${PREFIX}registrations` };

function creates(f)
{
    return f.firestore.control.requests(CREATE_REG).filter((r) => r.outcome !== 'pending');
}

/* Wait until the document at path is gone (or present, with present=true). */
function docEventually(f, p, present, timeoutMs = 5000)
{
    return until(() => (f.firestore.control.get(p) !== null) === present || undefined, timeoutMs,
        `${p} to be ${present ? 'written' : 'deleted'}`);
}

test('emulator mode: REGISTER writes the registration document, UNREGISTER deletes it', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, { env: fsEnv(f) });
    assert.ok(srv.logs.some((j) => j.msg === 'store opened' && j.backend === 'firestore' && j.emulator === true),
        'start-up log names the firestore backend in emulator mode');
    const a = await srv.connect(cid(1), tok(1));
    const ack = await a.register({ capabilities: ['audio', 'video'], metadata: { name: 'A' } });
    assert.equal(ack.type, T.REGISTER_ACK, desc(ack));

    const doc = f.firestore.control.get(regPath(cid(1)));
    assert.ok(doc, 'registration document written');
    const fl = doc.fields;
    assert.deepEqual(fl.client_id, { stringValue: cid(1) });
    assert.deepEqual(fl.session_id, { stringValue: ack.json.session_id });
    assert.deepEqual(fl.instance_id, { stringValue: 'it-fs-1' });
    assert.deepEqual(JSON.parse(fl.capabilities.stringValue), ['audio', 'video']);
    assert.deepEqual(JSON.parse(fl.metadata.stringValue), { name: 'A' });
    for (const k of ['connected_at', 'registered_at']) {
        assert.ok(fl[k].timestampValue, `${k} is a timestampValue: ${JSON.stringify(fl[k])}`);
        assert.ok(Math.abs(Date.parse(fl[k].timestampValue) - Date.now()) < 60000, `${k} is now`);
    }
    /* emulator convention: "Bearer owner" on every call */
    const reqs = f.firestore.control.requests({ path: '/documents' });
    assert.ok(reqs.length > 0);
    for (const r of reqs) assert.equal(r.headers.authorization, 'Bearer owner', `${r.method} ${r.path}`);

    /* a second client id is independent; the same id from elsewhere is 409 */
    const b = await srv.connect(cid(1), tok(1));
    expectError(await b.register(), 409);
    assert.equal(f.firestore.control.data(regPath(cid(1))).session_id, ack.json.session_id);

    assert.equal((await a.unregister()).type, T.UNREGISTER_ACK);
    assert.equal(f.firestore.control.get(regPath(cid(1))), null, 'registration document deleted');
    assert.equal((await b.register()).type, T.REGISTER_ACK);
    await docEventually(f, regPath(cid(1)), true);
});

test('rooms: ROOM_CREATE / JOIN / LEAVE keep room and membership documents', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, { env: fsEnv(f) });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'room-1');
    const room = f.firestore.control.data(roomPath('room-1'));
    assert.ok(room, 'room document written');
    assert.equal(room.room_id, 'room-1');
    assert.equal(room.instance_id, 'it-fs-1');
    assert.ok(f.firestore.control.get(memberPath('room-1', cid(1))), 'creator is a member');

    await joined(b, 'room-1');
    const m = f.firestore.control.data(memberPath('room-1', cid(2)));
    assert.ok(m, 'membership document written');
    assert.equal(m.room_id, 'room-1');
    assert.equal(m.client_id, cid(2));
    assert.ok(['sender', 'receiver'].includes(m.role), `role ${m.role}`);
    assert.equal(m.instance_id, 'it-fs-1');
    assert.ok(f.firestore.control.get(memberPath('room-1', cid(2))).fields.joined_at.timestampValue);

    await left(b, 'room-1');
    await docEventually(f, memberPath('room-1', cid(2)), false);
    await left(a, 'room-1');
    /* the last member left: the room and its memberships go */
    await docEventually(f, roomPath('room-1'), false);
    await docEventually(f, memberPath('room-1', cid(1)), false);
});

test('a burst of 503s and a 409 ABORTED are retried: REGISTER succeeds', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, { env: fsEnv(f) });
    f.firestore.control.clearRequests();

    f.firestore.control.fail(2, 'UNAVAILABLE', { match: CREATE_REG });
    const a = await srv.connect(cid(1), tok(1));
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    assert.equal(creates(f).length, 3, 'two 503s, then the create');
    assert.ok(f.firestore.control.get(regPath(cid(1))));

    f.firestore.control.clearRequests();
    f.firestore.control.fail(1, 'ABORTED', { match: CREATE_REG });
    const b = await srv.connect(cid(2), tok(2));
    assert.equal((await b.register()).type, T.REGISTER_ACK);
    const c = creates(f);
    assert.equal(c.length, 2, 'ABORTED (409), then the create');
    assert.equal(c[0].status, 409);
    assert.ok(f.firestore.control.get(regPath(cid(2))));

    /* 409 ALREADY_EXISTS is final: one create, ERROR 409 */
    f.firestore.control.clearRequests();
    f.firestore.control.setData(regPath(cid(3)), { client_id: cid(3), session_id: 'elsewhere', instance_id: 'other' });
    const d = await srv.connect(cid(3), tok(3));
    expectError(await d.register(), 409);
    assert.equal(creates(f).length, 1);
    assert.equal(f.firestore.control.data(regPath(cid(3))).session_id, 'elsewhere');
});

test('retries exhausted: ERROR 503, no document, store unhealthy, then recovery', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, { env: fsEnv(f) });
    const a = await srv.connect(cid(1), tok(1));
    f.firestore.control.clearRequests();
    f.firestore.control.fail(Infinity, 'UNAVAILABLE', { match: { path: '/documents' } });
    const t0 = Date.now();
    expectError(await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 8000 }), 503);
    const took = Date.now() - t0;
    assert.ok(took < 3 * 1000 + 2000, `503 after ${took} ms`);
    assert.equal(creates(f).length, 3, 'retry_attempts = 3');
    assert.equal(f.firestore.control.get(regPath(cid(1))), null, 'nothing half-done');
    expectError(await a.unregister(), 404);
    /* two more failures: /health reports the store unhealthy */
    expectError(await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 8000 }), 503);
    expectError(await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 8000 }), 503);
    const h = await health(srv);
    assert.equal(h.status, 503);
    assert.equal(h.json.status, 'unhealthy');

    f.firestore.control.clearFaults();
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    assert.ok(f.firestore.control.get(regPath(cid(1))));
    assert.equal((await health(srv)).json.status, 'healthy');
});

test('a write that landed but whose answer was lost: the retry recognises its own document', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, { env: fsEnv(f) });
    f.firestore.control.fail(1, 'DEADLINE_EXCEEDED', { match: CREATE_REG, apply: true });
    const a = await srv.connect(cid(1), tok(1));
    const ack = await a.register();
    assert.equal(ack.type, T.REGISTER_ACK, desc(ack));
    assert.equal(f.firestore.control.data(regPath(cid(1))).session_id, ack.json.session_id);
});

test('store slower than registration_timeout: ERROR 408, the late write is undone', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, {
        env: fsEnv(f, {
            SIGNAL_MANAGER_SERVER_REGISTRATION_TIMEOUT: '300ms',
            SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '3s',
        }),
    });
    const a = await srv.connect(cid(1), tok(1));
    f.firestore.control.latency(900, { match: CREATE_REG, count: 1 });
    const t0 = Date.now();
    const r = await a.request(T.REGISTER, a.registerPayload(), { timeoutMs: 5000 });
    const took = Date.now() - t0;
    expectError(r, 408);
    assert.ok(took >= 250 && took < 900, `408 after ${took} ms`);
    /* the create lands ~900 ms in; the server deletes it again */
    await f.firestore.control.waitForRequests(CREATE_REG, { count: 1, timeoutMs: 5000 });
    await f.firestore.control.waitForRequests({ method: 'DELETE', path: `/documents/${PREFIX}registrations/` },
        { count: 1, timeoutMs: 5000 });
    await docEventually(f, regPath(cid(1)), false);
    expectError(await a.unregister(), 404);
    /* and the client can register now */
    const ok = await until(async () => {
        const x = await a.register();
        if (x.type === T.REGISTER_ACK) return x;
        throw Object.assign(new Error(`REGISTER answered ${desc(x)}`), { fatal: !(x.type === T.ERROR && [408, 409, 503].includes(x.json.error_code)) });
    }, 5000, 'REGISTER after the undo');
    assert.equal(f.firestore.control.data(regPath(cid(1))).session_id, ok.json.session_id);
});

test('restart with the same instance_id removes the documents the crashed run left', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const env = fsEnv(f);
    const srv = await startServer(t, { env, checkExit: false });
    const a = await registered(srv, 1);
    const b = await registered(srv, 2);
    await created(a, 'room-crash');
    await joined(b, 'room-crash');
    /* another instance's records, one of its clients in our room */
    const ctl = f.firestore.control;
    ctl.setData(regPath('other-1'), { client_id: 'other-1', session_id: 's', instance_id: 'it-fs-2' });
    ctl.setData(roomPath('room-other'), { room_id: 'room-other', instance_id: 'it-fs-2' });
    ctl.setData(memberPath('room-other', cid(2)), { room_id: 'room-other', client_id: cid(2), role: 'receiver', instance_id: 'it-fs-1' });
    ctl.setData(memberPath('room-crash', 'other-1'), { room_id: 'room-crash', client_id: 'other-1', role: 'receiver', instance_id: 'it-fs-2' });
    srv.kill('SIGKILL');
    await srv.waitExit();
    assert.ok(ctl.get(regPath(cid(1))) && ctl.get(roomPath('room-crash')), 'the crash left documents behind');

    const again = await startServer(t, { env });
    const line = again.logs.find((j) => j.msg === 'removed records left by a previous run');
    assert.ok(line, 'clean-up logged');
    assert.equal(line.registrations, 2);
    assert.equal(line.rooms, 1);
    for (const p of [regPath(cid(1)), regPath(cid(2)), roomPath('room-crash'), memberPath('room-crash', cid(1)),
        memberPath('room-crash', cid(2)), memberPath('room-crash', 'other-1'), memberPath('room-other', cid(2))]) {
        assert.equal(ctl.get(p), null, `${p} removed`);
    }
    assert.ok(ctl.get(regPath('other-1')), 'other instance untouched');
    assert.ok(ctl.get(roomPath('room-other')), 'other instance untouched');
    /* the clean-up queried by instance_id and deleted in commits */
    assert.ok(ctl.requests({ path: ':runQuery' }).length >= 3);
    assert.ok(ctl.requests({ path: ':commit' }).some((r) => r.body.writes.every((w) => w.delete)));
    const c = await again.connect(cid(1), tok(1));
    assert.equal((await c.register()).type, T.REGISTER_ACK);
});

test('Firestore unreachable at start-up: the start fails with a clear error', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    f.firestore.control.fail(Infinity, 'UNAVAILABLE');
    const r = await runServer({ env: fsEnv(f) }, 15000);
    assert.equal(r.listening, false);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cleanup of instance it-fs-1 failed/);
});

test('config: store.backend=firestore without project_id is refused, naming the key', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const r = await runServer({ env: fsEnv(f, { SIGNAL_MANAGER_FIRESTORE_PROJECT_ID: '' }) });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /firestore\.project_id/);
});

test('key-file credentials: token from the token endpoint, refreshed after a 401', opts, async (t) => {
    const f = await startFakes(t, { auth: true, firestore: { auth: 'issuer' } });
    const sa = f.auth.control.createServiceAccount({ projectId: PROJECT });
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'sm-fs-key-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const keyFile = path.join(dir, 'sa.json');
    fs.writeFileSync(keyFile, sa.keyFileText, { mode: 0o600 });

    const srv = await startServer(t, { env: fsEnv(f, {}, { keyFile }) });
    assert.ok(srv.logs.some((j) => j.msg === 'store opened' && j.emulator === false), 'not in emulator mode');
    const a = await srv.connect(cid(1), tok(1));
    assert.equal((await a.register()).type, T.REGISTER_ACK);
    const authz = f.firestore.control.requests(CREATE_REG).map((r) => r.headers.authorization);
    assert.ok(authz.length > 0);
    for (const h of authz) {
        assert.match(h, /^Bearer /);
        assert.notEqual(h, 'Bearer owner');
        assert.ok(f.auth.control.validateToken(h.slice(7)).valid, 'a token the fake issued');
    }
    assert.ok(f.auth.control.tokens().length >= 1);

    /* every token expires: the next call gets 401, fetches a new token, succeeds */
    f.auth.control.expireTokens();
    f.firestore.control.clearRequests();
    const b = await srv.connect(cid(2), tok(2));
    assert.equal((await b.register()).type, T.REGISTER_ACK);
    const statuses = creates(f).map((r) => r.status);
    assert.deepEqual(statuses, [401, 200]);
    assert.ok(f.firestore.control.get(regPath(cid(2))));
});

test('key-file credentials the token endpoint refuses: the start fails naming firestore.credentials', opts, async (t) => {
    const f = await startFakes(t, { auth: true, firestore: { auth: 'issuer' } });
    /* a well-formed key the token endpoint does not know */
    const { generateServiceAccountKey } = require('../fakes');
    const key = generateServiceAccountKey({ projectId: PROJECT, tokenUri: f.auth.tokenUri });
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'sm-fs-key-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const keyFile = path.join(dir, 'sa.json');
    fs.writeFileSync(keyFile, key.keyFileText, { mode: 0o600 });
    const r = await runServer({ env: fsEnv(f, {}, { keyFile }) }, 15000);
    assert.equal(r.listening, false);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /firestore\.credentials/);
});
