'use strict';
/*
 * /metrics of the real server after real traffic (issue 5 item 2): CONNECT,
 * REGISTER, PING, a room, an ERROR 401 and a disconnect move the documented
 * series (messages by type, errors by code, the session duration histogram,
 * store operation totals and latency histograms); the Firestore backend
 * against the Node fake moves the REST series (requests, retries, latency
 * by status class), and so does webrtc.mode = cloudflare against the SFU
 * fake (plus the SFU session gauge); no client, room or session id appears
 * in the text; and
 * `promtool check metrics` (Debian package `prometheus`) accepts every
 * scrape.  Without promtool on PATH the promtool checks are skipped with a
 * message, the rest still runs.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, PROTOCOL_VERSION, until, expectError } = require('./lib/client');
const { metrics } = require('./lib/util');
const { keysEnv, cid, tok, registered, created } = require('./lib/rooms');
const { startFakes, startCloudflareSfu, sdp } = require('../fakes');

const opts = { timeout: TEST_TIMEOUT };

const PROMTOOL = (() => {
    const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    return r.error ? null : 'promtool';
})();
const NO_PROMTOOL = 'promtool not found on PATH (Debian package `prometheus`; scripts/deps.sh test installs it)';

/* promtool check metrics on text: asserts it passes (no-op without promtool). */
function promtoolAccepts(t, text, what)
{
    if (!PROMTOOL) {
        t.diagnostic(`SKIP promtool check of ${what}: ${NO_PROMTOOL}`);
        return false;
    }
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0,
        `promtool check metrics rejected ${what} (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    return true;
}

const v = (m, k) => m.get(k) || 0;

/* Every sample key of a histogram family for one label set, as parseMetrics
 * writes them (labels sorted). */
function hist(m, name, labels = {})
{
    const ls = Object.entries(labels).map(([k, x]) => `${k}="${x}"`);
    const key = (suffix, extra = []) => {
        const all = [...ls, ...extra].sort();
        return `${name}${suffix}${all.length ? `{${all.join(',')}}` : ''}`;
    };
    const buckets = [];
    for (const [k, x] of m) {
        if (!k.startsWith(`${name}_bucket{`)) continue;
        const le = /le="([^"]+)"/.exec(k)[1];
        const rest = k.replace(/,?le="[^"]+"/, '').replace('{,', '{').replace(/\{\}$/, '');
        if (rest === key('_bucket')) buckets.push([le === '+Inf' ? Infinity : Number(le), x]);
    }
    buckets.sort((a, b) => a[0] - b[0]);
    return { count: v(m, key('_count')), sum: v(m, key('_sum')), buckets };
}

/* Cumulative buckets: non-decreasing, +Inf equals _count. */
function assertHistogramShape(h, what)
{
    assert.ok(h.buckets.length > 1, `${what}: buckets rendered`);
    for (let i = 1; i < h.buckets.length; i++) {
        assert.ok(h.buckets[i][1] >= h.buckets[i - 1][1], `${what}: buckets cumulative at le=${h.buckets[i][0]}`);
    }
    const inf = h.buckets[h.buckets.length - 1];
    assert.equal(inf[0], Infinity, `${what}: last bucket is +Inf`);
    assert.equal(inf[1], h.count, `${what}: +Inf bucket equals _count`);
}

const K = {
    pingIn: 'signal_manager_messages_received_total{type="PING"}',
    connectIn: 'signal_manager_messages_received_total{type="CONNECT"}',
    registerIn: 'signal_manager_messages_received_total{type="REGISTER"}',
    roomCreateIn: 'signal_manager_messages_received_total{type="ROOM_CREATE"}',
    err401: 'signal_manager_errors_total{code="401"}',
    rooms: 'signal_manager_rooms_active',
    reg: 'signal_manager_registered_clients',
    sessions: 'signal_manager_sessions_active',
};
const SD = 'signal_manager_session_duration_seconds';
const SL = 'signal_manager_store_operation_duration_seconds';
const storeOps = (backend, op, outcome) =>
    `signal_manager_store_operations_total{backend="${backend}",op="${op}",outcome="${outcome}"}`;

test('metrics after traffic: the series move, labels stay bounded, promtool accepts', opts, async (t) => {
    const srv = await startServer(t, { env: keysEnv(2) }); /* sqlite store (the default) */
    const m0 = (await metrics(srv)).values;
    promtoolAccepts(t, (await metrics(srv)).text, 'the idle server');
    assert.equal(hist(m0, SD).count, 0, 'no session ended yet');

    /* CONNECT + REGISTER, two PINGs, a room */
    const a = await registered(srv, 1);
    for (let i = 0; i < 2; i++) assert.equal((await a.pingFrame()).type, T.PING_ACK);
    await created(a, 'metrics-room-1');
    /* an ERROR 401: CONNECT with a wrong token */
    const b = srv.client();
    await b.connect();
    const uuid = b.send(T.CONNECT, { client_id: cid(2), auth_token: 'wrong', version: PROTOCOL_VERSION });
    expectError(await b.next((x) => x.uuid === uuid), 401);

    const mid = await until(async () => {
        const m = (await metrics(srv)).values;
        return v(m, K.pingIn) === v(m0, K.pingIn) + 2 && v(m, K.err401) === v(m0, K.err401) + 1
            && v(m, K.rooms) === 1 && v(m, K.reg) === 1
            && v(m, storeOps('sqlite', 'add_member', 'ok')) >= 1 && m;
    }, 5000, 'PING, ERROR 401, the room, the registration and its store writes to show');
    assert.equal(v(mid, K.connectIn), v(m0, K.connectIn) + 2, 'two CONNECT frames');
    assert.equal(v(mid, K.registerIn), v(m0, K.registerIn) + 1);
    assert.equal(v(mid, K.roomCreateIn), v(m0, K.roomCreateIn) + 1);
    assert.ok(v(mid, K.sessions) >= 2, 'two sessions held');
    /* store: the registration and the room went through sqlite */
    assert.equal(v(mid, storeOps('sqlite', 'put_registration', 'ok')), 1);
    assert.equal(v(mid, storeOps('sqlite', 'put_room', 'ok')), 1);
    assert.equal(v(mid, storeOps('sqlite', 'add_member', 'ok')), 1);
    const put = hist(mid, SL, { backend: 'sqlite', op: 'put_registration' });
    assert.equal(put.count, 1, 'one put_registration latency observed');
    assert.ok(put.sum > 0 && put.sum < 10, `put_registration latency ${put.sum} s`);
    assertHistogramShape(put, 'store latency');
    assert.equal(hist(mid, SD).count, hist(m0, SD).count, 'no session ended yet');

    /* a clean disconnect ends a's session (CONNECT_ACK .. now); b never got
     * CONNECT_ACK, so its end is not a session end */
    a.close();
    await a.waitClose();
    b.close();
    await b.waitClose();
    const end = await until(async () => {
        const m = (await metrics(srv)).values;
        return hist(m, SD).count === hist(m0, SD).count + 1 && v(m, K.reg) === 0 && v(m, K.rooms) === 0
            && v(m, storeOps('sqlite', 'delete_registration', 'ok')) === 1 && m;
    }, 5000, 'the session end, the released registration and the closed room to show');
    const sd = hist(end, SD);
    assertHistogramShape(sd, 'session duration');
    assert.ok(sd.sum >= 0 && sd.sum < 60, `session lasted ${sd.sum} s`);
    assert.equal(sd.buckets.find(([le]) => le === 1)[1], 1, 'a sub-second session is in le="1"');
    /* the session really ended: a later scrape must not count it twice */
    assert.equal(hist((await metrics(srv)).values, SD).count, hist(m0, SD).count + 1);

    const { text } = await metrics(srv);
    for (const id of [cid(1), cid(2), 'metrics-room-1', a.sessionId]) {
        assert.ok(!text.includes(id), `the exposition contains no id (${id})`);
    }
    /* every label value is from a small set: at most a few hundred series */
    const series = text.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.ok(series.length < 1500, `${series.length} series`);
    promtoolAccepts(t, text, 'the scrape after traffic');
});

test('metrics: the Firestore backend moves the REST and store series', opts, async (t) => {
    const f = await startFakes(t, { firestore: true });
    const srv = await startServer(t, {
        env: {
            ...keysEnv(2),
            SIGNAL_MANAGER_STORE_BACKEND: 'firestore',
            SIGNAL_MANAGER_FIRESTORE_PROJECT_ID: 'test-project',
            SIGNAL_MANAGER_FIRESTORE_COLLECTION_PREFIX: 'mt_',
            SIGNAL_MANAGER_SERVER_INSTANCE_ID: 'it-metrics-fs',
            SIGNAL_MANAGER_DATABASE_OPERATION_TIMEOUT: '1s',
            SIGNAL_MANAGER_DATABASE_RETRY_ATTEMPTS: '3',
            SIGNAL_MANAGER_DATABASE_RETRY_INTERVAL: '50',
            GOOGLE_APPLICATION_CREDENTIALS: null,
            GCE_METADATA_HOST: null,
            FIRESTORE_EMULATOR_HOST: `127.0.0.1:${f.firestore.port}`,
        },
    });
    const m0 = (await metrics(srv)).values;
    const REQ_OK = 'signal_manager_rest_requests_total{api="firestore",outcome="ok"}';
    const RETRIES = 'signal_manager_rest_retries_total{api="firestore"}';
    const RD = 'signal_manager_rest_request_duration_seconds';

    /* two 503s on the registration's create, then success */
    f.firestore.control.fail(2, 'UNAVAILABLE', { match: { method: 'POST', path: '/documents/mt_registrations' } });
    const a = await srv.connect(cid(1), tok(1));
    assert.equal((await a.register()).type, T.REGISTER_ACK);

    const m = await until(async () => {
        const x = (await metrics(srv)).values;
        return v(x, storeOps('firestore', 'put_registration', 'ok')) === 1 && x;
    }, 5000, 'the put_registration to be counted');
    assert.equal(v(m, RETRIES) - v(m0, RETRIES), 2, 'the two 503s were retried');
    assert.ok(v(m, REQ_OK) > v(m0, REQ_OK), 'successful Firestore calls counted');
    const h5 = hist(m, RD, { api: 'firestore', status_class: '5xx' });
    assert.equal(h5.count, 2, 'two attempts answered 5xx');
    assertHistogramShape(h5, 'REST 5xx latency');
    const h2 = hist(m, RD, { api: 'firestore', status_class: '2xx' });
    assert.ok(h2.count >= 1, 'attempts answered 2xx');
    assertHistogramShape(h2, 'REST 2xx latency');
    const put = hist(m, SL, { backend: 'firestore', op: 'put_registration' });
    assert.equal(put.count, 1);
    assertHistogramShape(put, 'firestore store latency');
    /* the store latency covers the retries: at least the 50 ms backoff */
    assert.ok(put.sum >= 0.04, `put_registration took ${put.sum} s with two retries`);
    assert.equal(v(m, 'signal_manager_rest_requests_total{api="cloudflare",outcome="ok"}'), 0);

    promtoolAccepts(t, (await metrics(srv)).text, 'the Firestore scrape');
});

test('metrics: cloudflare mode moves the SFU gauge and the cloudflare REST series', opts, async (t) => {
    const sfu = await startCloudflareSfu({ appSecret: 'cf-metrics-secret' });
    t.after(() => sfu.close());
    const srv = await startServer(t, {
        env: {
            ...keysEnv(2),
            SIGNAL_MANAGER_STORE_BACKEND: 'memory',
            SIGNAL_MANAGER_WEBRTC_MODE: 'cloudflare',
            SIGNAL_MANAGER_CLOUDFLARE_APP_ID: sfu.appId,
            SIGNAL_MANAGER_CLOUDFLARE_APP_TOKEN: 'cf-metrics-secret',
            SIGNAL_MANAGER_CLOUDFLARE_BASE_URL: sfu.baseUrl,
            SIGNAL_MANAGER_WEBRTC_CLOUDFLARE_TIMEOUT: '2s',
        },
    });
    const SFU = 'signal_manager_sfu_sessions';
    const CF_OK = 'signal_manager_rest_requests_total{api="cloudflare",outcome="ok"}';
    const m0 = (await metrics(srv)).values;
    assert.equal(v(m0, SFU), 0);
    const a = await registered(srv, 1);
    await created(a, 'metrics-sfu-room', { offer_sdp: sdp.sampleOffer(['audio', 'video']) });
    const m = await until(async () => {
        const x = (await metrics(srv)).values;
        return v(x, SFU) >= 1 && v(x, CF_OK) > v(m0, CF_OK) && x;
    }, 5000, 'the SFU sessions and the Calls API calls to show');
    const h = hist(m, 'signal_manager_rest_request_duration_seconds', { api: 'cloudflare', status_class: '2xx' });
    assert.ok(h.count >= 1, 'Calls API attempts observed');
    assertHistogramShape(h, 'cloudflare REST latency');
    promtoolAccepts(t, (await metrics(srv)).text, 'the cloudflare-mode scrape');
    /* leaving gives the SFU sessions back */
    a.close();
    await a.waitClose();
    await until(async () => v((await metrics(srv)).values, SFU) === 0 || undefined, 5000,
        'signal_manager_sfu_sessions back to 0');
});

test('metrics: promtool is available to the suite', { skip: PROMTOOL ? false : NO_PROMTOOL }, () => {
    /* Reported as a skipped test when promtool is missing, so a run without
     * it says so instead of passing quietly. */
    const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: '# HELP foo x\n# TYPE foo counter\nfoo 1\n', encoding: 'utf8' });
    assert.notEqual(r.status, 0, 'promtool rejects a counter without _total (the check is real)');
});
