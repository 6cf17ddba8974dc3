'use strict';
/*
 * The production configuration end to end: store.backend = firestore,
 * webrtc.mode = cloudflare and events.backend = pubsub in one server, every
 * backend pointed at its fake (tests/fakes), Google credentials from one
 * service-account key file exchanged at the fake token endpoint (the way a
 * deployment outside GCP runs), one client authenticated by API key and one
 * by the store's clients collection (auth.auth_method = token,store).
 *
 * It runs the source document's lifecycle - connect, register, heartbeat,
 * room create with an offer, join, unregister, disconnect - and checks, after
 * each step, what each cloud service was told: the Firestore documents, the
 * SFU sessions and tracks, and (after a clean stop) every Pub/Sub event, none
 * lost and none secret in the log.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, makeTmpDir, TEST_TIMEOUT } = require('./lib/harness');
const { T, until, expectError, describe: desc } = require('./lib/client');
const { cid, tok, keysEnv, created, joined, roomEvent } = require('./lib/rooms');
const { startFakes, sdp } = require('../fakes');

const PROJECT = 'prod-project';
const PREFIX = 'pl_';
const TOPIC = 'sm-lifecycle';
const INSTANCE = 'pl-instance-1';
const APP_TOKEN = 'cf-app-token-prod-lifecycle-never-logged';
const ROOM = 'standup';

const regPath = (id) => `${PREFIX}registrations/${id}`;
const roomPath = (id) => `${PREFIX}rooms/${id}`;
const memberPath = (room, client) => `${PREFIX}room_members/${room}:${client}`;

function docEventually(f, p, present, timeoutMs = 5000)
{
    return until(() => (f.firestore.control.get(p) !== null) === present || undefined, timeoutMs,
        `${p} to be ${present ? 'written' : 'deleted'}`);
}

/* Forced tracks/close requests on an SFU session, as sorted arrays of mids. */
function forcedCloses(ctl, sid)
{
    return ctl.requests({ method: 'PUT', path: `/sessions/${sid}/tracks/close` })
        .filter((r) => r.outcome !== 'pending')
        .map((r) => {
            assert.equal(r.body.force, true, 'tracks/close is forced');
            return r.body.tracks.map((x) => x.mid).sort();
        });
}

test('production lifecycle: Firestore + Cloudflare Calls + Pub/Sub against the fakes', { timeout: TEST_TIMEOUT }, async (t) => {
    const f = await startFakes(t, {
        auth: true,
        firestore: { projectId: PROJECT, auth: 'issuer' },
        pubsub: { projectId: PROJECT, topics: [TOPIC], auth: 'issuer' },
        sfu: { appSecret: APP_TOKEN },
    });
    const sa = f.auth.control.createServiceAccount({ projectId: PROJECT });
    const keyFile = path.join(makeTmpDir(), 'sa.json');
    fs.writeFileSync(keyFile, sa.keyFileText, { mode: 0o600 });

    const srv = await startServer(t, {
        env: {
            /* A by API key, B by the store's clients collection */
            ...keysEnv(1),
            SIGNAL_MANAGER_AUTH_AUTH_METHOD: 'token,store',
            SIGNAL_MANAGER_SERVER_INSTANCE_ID: INSTANCE,
            SIGNAL_MANAGER_STORE_BACKEND: 'firestore',
            SIGNAL_MANAGER_FIRESTORE_PROJECT_ID: PROJECT,
            SIGNAL_MANAGER_FIRESTORE_COLLECTION_PREFIX: PREFIX,
            SIGNAL_MANAGER_FIRESTORE_BASE_URL: f.firestore.url,
            SIGNAL_MANAGER_FIRESTORE_CREDENTIALS: keyFile,
            SIGNAL_MANAGER_WEBRTC_MODE: 'cloudflare',
            SIGNAL_MANAGER_CLOUDFLARE_APP_ID: f.sfu.appId,
            SIGNAL_MANAGER_CLOUDFLARE_APP_TOKEN: APP_TOKEN,
            SIGNAL_MANAGER_CLOUDFLARE_BASE_URL: f.sfu.baseUrl,
            SIGNAL_MANAGER_EVENTS_BACKEND: 'pubsub',
            SIGNAL_MANAGER_PUBSUB_PROJECT_ID: PROJECT,
            SIGNAL_MANAGER_PUBSUB_TOPIC: TOPIC,
            SIGNAL_MANAGER_PUBSUB_BASE_URL: f.pubsub.url,
            SIGNAL_MANAGER_PUBSUB_CREDENTIALS: keyFile,
            FIRESTORE_EMULATOR_HOST: null,
            PUBSUB_EMULATOR_HOST: null,
            GOOGLE_APPLICATION_CREDENTIALS: null,
            GCE_METADATA_HOST: null,
        },
    });
    const ctl = f.sfu.control;
    const fsc = f.firestore.control;
    fsc.setData(`${PREFIX}clients/${cid(2)}`,
        { token_sha256: crypto.createHash('sha256').update(tok(2)).digest('hex') });

    /* start-up: every backend is the production one */
    assert.ok(srv.logs.some((j) => j.msg === 'store opened' && j.backend === 'firestore' && j.emulator === false),
        'firestore store, key-file credentials');
    assert.equal(srv.logs.find((j) => j.msg === 'events: publishing to Pub/Sub').credentials, `key file ${sa.clientEmail}`);

    /* 1. connect + register: the registration document */
    const a = await srv.connect(cid(1), tok(1));
    assert.equal(a.connectAck.type, T.CONNECT_ACK, desc(a.connectAck));
    const ra = await a.register({ capabilities: ['audio', 'video'], metadata: { name: 'Alice' } });
    assert.equal(ra.type, T.REGISTER_ACK, desc(ra));
    const regA = fsc.data(regPath(cid(1)));
    assert.ok(regA, 'registration document of A');
    assert.equal(regA.session_id, ra.json.session_id);
    assert.equal(regA.instance_id, INSTANCE);
    assert.deepEqual(JSON.parse(regA.metadata), { name: 'Alice' });

    /* 2. heartbeat: PING answered with the timestamp echoed */
    const ts = Date.now();
    const pong = await a.pingFrame(ts);
    assert.equal(pong.type, T.PING_ACK, desc(pong));

    /* 3. room create with an offer: the SFU answers it, room + member documents */
    const offerA = sdp.sampleOffer(['audio', 'video']);
    const ca = (await created(a, ROOM, { offer_sdp: offerA })).json;
    sdp.validate(ca.answer_sdp, 'answer');
    const aPub = ca.connection_info.session_id;
    const aSub = ca.subscribe.session_id;
    assert.equal(ca.connection_info.mode, 'cloudflare');
    const pushA = ctl.requests({ method: 'POST', path: `/sessions/${aPub}/tracks/new` });
    assert.equal(pushA.length, 1);
    assert.deepEqual(pushA[0].body.sessionDescription, { type: 'offer', sdp: offerA });
    assert.equal(pushA[0].headers.authorization, `Bearer ${APP_TOKEN}`);
    const room = fsc.data(roomPath(ROOM));
    assert.ok(room, 'room document');
    assert.equal(room.room_id, ROOM);
    assert.equal(room.instance_id, INSTANCE);
    assert.ok(fsc.get(memberPath(ROOM, cid(1))), 'membership document of A');

    /* 4. B (credentials in the store) joins with an offer: published, A's tracks pulled, B answers the SFU */
    const wrong = srv.client();
    await wrong.connect();
    expectError(await wrong.request(T.CONNECT, { version: '1.0.0', client_id: cid(2), auth_token: 'not-the-token' }),
        401);
    const b = await srv.connect(cid(2), tok(2));
    assert.equal(b.connectAck.type, T.CONNECT_ACK, desc(b.connectAck));
    assert.ok(fsc.requests({ method: 'GET', path: `/documents/${PREFIX}clients/${cid(2)}` }).length >= 1,
        'B\'s credentials were read from the store');
    /* the store is read once per connection: REGISTER re-checks against the
     * token it accepted at CONNECT */
    expectError(await b.register({ auth_token: 'another-token' }), 401);
    const rb = await b.register();
    assert.equal(rb.type, T.REGISTER_ACK, desc(rb));
    const jb = (await joined(b, ROOM, { offer_sdp: sdp.sampleOffer(['audio']) })).json;
    assert.deepEqual(jb.participants, [cid(1), cid(2)]);
    sdp.validate(jb.publish.answer_sdp, 'answer');
    assert.deepEqual(jb.subscribe.tracks.map((x) => [x.session_id, x.track_name]),
        [[aPub, 'audio-0'], [aPub, 'video-1']]);
    const u = await b.request(T.SESSION_UPDATE, { version: '1.0.0', session_id: jb.subscribe.session_id,
        action: 'answer', answer_sdp: sdp.createAnswer(jb.subscribe.offer_sdp) });
    assert.equal(u.type, T.SESSION_UPDATE_ACK, desc(u));
    await roomEvent(a, 'participant_joined', { room_id: ROOM, client_id: cid(2) });
    await roomEvent(a, 'tracks_published', { room_id: ROOM, client_id: cid(2) });
    const memB = fsc.data(memberPath(ROOM, cid(2)));
    assert.ok(memB, 'membership document of B');
    assert.equal(memB.instance_id, INSTANCE);

    /* 5. B unregisters: its documents go, its SFU tracks are closed, A is told */
    const ub = await b.unregister();
    assert.equal(ub.type, T.UNREGISTER_ACK, desc(ub));
    await roomEvent(a, 'participant_left', { room_id: ROOM, client_id: cid(2) });
    await docEventually(f, regPath(cid(2)), false);
    await docEventually(f, memberPath(ROOM, cid(2)), false);
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${jb.publish.session_id}/tracks/close` });
    assert.deepEqual(forcedCloses(ctl, jb.publish.session_id), [['0']]);
    assert.ok(fsc.get(roomPath(ROOM)), 'the room stays while A is in it');

    /* 6. both disconnect: the last member's departure closes the room */
    b.send(T.DISCONNECT, { reason: 'done' });
    await b.waitClose();
    a.send(T.DISCONNECT, { reason: 'done' });
    await a.waitClose();
    await docEventually(f, regPath(cid(1)), false);
    await docEventually(f, memberPath(ROOM, cid(1)), false);
    await docEventually(f, roomPath(ROOM), false);
    await ctl.waitForRequests({ method: 'PUT', path: `/sessions/${aPub}/tracks/close` });
    assert.deepEqual(forcedCloses(ctl, aPub), [['0', '1']]);
    /* A pulled nothing on its subscribe session: nothing to close there */
    assert.deepEqual(forcedCloses(ctl, aSub), []);

    /* 7. clean stop: every lifecycle event published, none dropped */
    await srv.stop();
    const msgs = f.pubsub.control.messages({ topic: TOPIC });
    const seen = msgs.map((m) => {
        assert.equal(m.attributes.event_type, m.json.event);
        assert.equal(m.json.instance_id, INSTANCE);
        return [m.json.event, m.json.client_id || null, m.json.room_id || null];
    });
    const expected = [
        ['client.connected', cid(1), null],
        ['client.registered', cid(1), null],
        ['room.created', cid(1), ROOM],
        ['client.connected', cid(2), null],
        ['client.registered', cid(2), null],
        ['room.joined', cid(2), ROOM],
        ['client.unregistered', cid(2), null],
        ['room.left', cid(2), ROOM],
        ['client.disconnected', cid(2), null],
        ['room.left', cid(1), ROOM],
        ['room.closed', null, ROOM],
        ['client.disconnected', cid(1), null],
    ];
    const key = (e) => e.join('|');
    assert.deepEqual(seen.map(key).sort(), expected.map(key).sort(), `events: ${JSON.stringify(seen)}`);
    /* per client, the client.* events and the room.* events each in lifecycle
     * order (docs/protocol.md 9: the two families are not ordered relative to
     * each other - a session's last room.left follows its client.disconnected) */
    for (const c of [cid(1), cid(2)]) {
        for (const fam of ['client.', 'room.']) {
            const pick = (l) => l.filter((e) => e[1] === c && e[0].startsWith(fam)).map((e) => e[0]);
            assert.deepEqual(pick(seen), pick(expected), `order of ${fam}* for ${c}`);
        }
    }
    const stopped = srv.logs.find((j) => j.msg === 'events: Pub/Sub publisher stopped');
    assert.equal(stopped.dropped, 0, JSON.stringify(stopped));
    for (const r of f.pubsub.control.requests({ path: ':publish' })) {
        assert.match(r.headers.authorization || '', /^Bearer ya29\./);
    }
    for (const r of fsc.requests({ path: '/documents' })) {
        assert.match(r.headers.authorization || '', /^Bearer ya29\./, `${r.method} ${r.path}`);
    }

    /* nothing secret in the log */
    for (const secret of [APP_TOKEN, ...f.auth.control.tokens().map((x) => x.token), 'PRIVATE KEY']) {
        assert.ok(!srv.stderr.includes(secret), `secret in the log: ${secret.slice(0, 12)}...`);
    }
});
