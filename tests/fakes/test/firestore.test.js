'use strict';
/* Fake Firestore: endpoints, encoding quirks, preconditions, queries, commit. */

const test = require('node:test');
const assert = require('node:assert/strict');
const { startFirestore, encodeFields } = require('../firestore');
const { request } = require('../http');

const OWNER = { authorization: 'Bearer owner' };
const TS6 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

async function setup(t, opts)
{
    const fs = await startFirestore(opts);
    t.after(() => fs.close());
    const root = `${fs.url}/v1/projects/p1/databases/(default)/documents`;
    const call = (method, path, body, headers = OWNER) => request(root + path, { method, body, headers });
    return { fs, root, call, name: (rel) => `projects/p1/databases/(default)/documents/${rel}` };
}

test('create, get: Document shape, integer strings, empty map/array, 6-digit times, pretty JSON', async (t) => {
    const { call, name } = await setup(t);
    const fields = {
        client_id: { stringValue: 'c1' },
        port: { integerValue: 443 },
        big: { integerValue: '9007199254740993' },
        ratio: { doubleValue: 2.0 },
        online: { booleanValue: true },
        meta: { mapValue: { fields: { v: { nullValue: null } } } },
        empty_map: { mapValue: {} },
        empty_map2: { mapValue: { fields: {} } },
        empty_arr: { arrayValue: { values: [] } },
        rooms: { arrayValue: { values: [{ stringValue: 'r1' }] } },
        seen: { timestampValue: '2025-05-01T14:00:00.1234567+02:00' },
        whole: { timestampValue: '2025-05-01T12:00:00Z' },
    };
    const r = await call('POST', '/clients?documentId=c1', { fields });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json; charset=UTF-8/);
    assert.ok(r.text.startsWith('{\n  "name": '), 'pretty-printed with 2-space indent');
    assert.ok(r.text.endsWith('}\n'));
    const d = r.json;
    assert.deepEqual(Object.keys(d), ['name', 'fields', 'createTime', 'updateTime']);
    assert.equal(d.name, name('clients/c1'));
    assert.match(d.createTime, TS6);
    assert.equal(d.createTime, d.updateTime);
    assert.equal(d.fields.port.integerValue, '443');
    assert.equal(d.fields.big.integerValue, '9007199254740993');
    assert.ok(/"ratio": \{\s+"doubleValue": 2\s+\}/.test(r.text), 'doubleValue 2 printed without a decimal point');
    assert.deepEqual(d.fields.empty_map, { mapValue: {} });
    assert.deepEqual(d.fields.empty_map2, { mapValue: {} });
    assert.deepEqual(d.fields.empty_arr, { arrayValue: {} });
    assert.equal(d.fields.seen.timestampValue, '2025-05-01T12:00:00.123456Z');
    assert.equal(d.fields.whole.timestampValue, '2025-05-01T12:00:00Z');

    const g = await call('GET', '/clients/c1');
    assert.equal(g.status, 200);
    assert.deepEqual(g.json, d);
    const compact = await call('GET', '/clients/c1?prettyPrint=false');
    assert.ok(!compact.text.includes('\n'));
    const masked = await call('GET', '/clients/c1?mask.fieldPaths=port&mask.fieldPaths=meta.v');
    assert.deepEqual(Object.keys(masked.json.fields).sort(), ['meta', 'port']);
});

test('get missing -> 404 NOT_FOUND with the documented message; %28default%29 accepted', async (t) => {
    const { fs, call, name } = await setup(t);
    const r = await call('GET', '/clients/c9');
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { error: { code: 404, message: `Document "${name('clients/c9')}" not found.`, status: 'NOT_FOUND' } });
    const enc = await request(`${fs.url}/v1/projects/p1/databases/%28default%29/documents/clients/c9`, { headers: OWNER });
    assert.equal(enc.status, 404);
    assert.equal(enc.json.error.status, 'NOT_FOUND');
    const db = await request(`${fs.url}/v1/projects/p1/databases/other/documents/clients/c9`, { headers: OWNER });
    assert.equal(db.status, 404);
    assert.match(db.json.error.message, /database other does not exist/);
});

test('createDocument duplicate -> 409 ALREADY_EXISTS; auto ID; name in body rejected', async (t) => {
    const { call, name } = await setup(t);
    assert.equal((await call('POST', '/clients?documentId=c1', { fields: {} })).status, 200);
    const dup = await call('POST', '/clients?documentId=c1', { fields: {} });
    assert.equal(dup.status, 409);
    assert.deepEqual(dup.json.error, { code: 409, message: `Document already exists: ${name('clients/c1')}`, status: 'ALREADY_EXISTS' });
    const auto = await call('POST', '/clients', { fields: { a: { stringValue: 'x' } } });
    assert.equal(auto.status, 200);
    assert.match(auto.json.name, /\/clients\/[A-Za-z0-9]{20}$/);
    const named = await call('POST', '/clients?documentId=c2', { name: name('clients/c2'), fields: {} });
    assert.equal(named.status, 400);
    assert.equal(named.json.error.status, 'INVALID_ARGUMENT');
    const sub = await call('POST', '/rooms/r1/members?documentId=c1', { fields: {} });
    assert.equal(sub.json.name, name('rooms/r1/members/c1'));
});

test('invalid values -> 400 INVALID_ARGUMENT', async (t) => {
    const { call } = await setup(t);
    const bad = [
        { x: { integerValue: '12a' } },
        { x: { integerValue: 1.5 } },
        { x: { stringValue: 5 } },
        { x: { fooValue: 1 } },
        { x: { stringValue: 'a', integerValue: '1' } },
        { x: { arrayValue: { values: [{ arrayValue: {} }] } } },
        { x: { timestampValue: '2025-13-01T00:00:00Z' } },
    ];
    for (const fields of bad) {
        const r = await call('POST', '/c', { fields });
        assert.equal(r.status, 400, JSON.stringify(fields));
        assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
        assert.equal(r.json.error.code, 400);
    }
    const notJson = await call('PATCH', '/c/d', '{nope');
    assert.equal(notJson.status, 400);
    assert.match(notJson.json.error.message, /^Invalid JSON payload received/);
});

test('patch: upsert, replace without mask, updateMask merge + delete, preconditions', async (t) => {
    const { fs, call, name } = await setup(t);
    const up = await call('PATCH', '/clients/c1', { fields: { a: { stringValue: '1' }, b: { stringValue: '2' }, m: { mapValue: { fields: { x: { integerValue: '1' }, y: { integerValue: '2' } } } } } });
    assert.equal(up.status, 200, 'PATCH without precondition creates');
    const t0 = up.json.updateTime;

    const masked = await call('PATCH', '/clients/c1?updateMask.fieldPaths=a&updateMask.fieldPaths=b&updateMask.fieldPaths=m.x&updateMask.fieldPaths=c',
        { fields: { a: { stringValue: 'A' }, c: { booleanValue: false }, z: { stringValue: 'ignored' } } });
    assert.equal(masked.status, 200);
    assert.deepEqual(fs.control.data('projects/p1/databases/(default)/documents/clients/c1'), { a: 'A', c: false, m: { y: 2 } });
    assert.notEqual(masked.json.updateTime, t0);
    assert.equal(masked.json.createTime, up.json.createTime);

    const replaced = await call('PATCH', '/clients/c1', { fields: { only: { stringValue: 'x' } } });
    assert.deepEqual(Object.keys(replaced.json.fields), ['only']);

    const noop = await call('PATCH', '/clients/c1', { fields: { only: { stringValue: 'x' } } });
    assert.equal(noop.json.updateTime, replaced.json.updateTime, 'a write that changes nothing keeps updateTime');

    const ex = await call('PATCH', '/clients/c2?currentDocument.exists=true', { fields: {} });
    assert.equal(ex.status, 404);
    assert.deepEqual(ex.json.error, { code: 404, message: `No document to update: ${name('clients/c2')}`, status: 'NOT_FOUND' });
    const nx = await call('PATCH', '/clients/c1?currentDocument.exists=false', { fields: {} });
    assert.equal(nx.status, 409);
    assert.equal(nx.json.error.status, 'ALREADY_EXISTS');

    const cur = replaced.json.updateTime;
    const ok = await call('PATCH', `/clients/c1?currentDocument.updateTime=${encodeURIComponent(cur)}`, { fields: { v: { integerValue: '2' } } });
    assert.equal(ok.status, 200);
    const stale = await call('PATCH', `/clients/c1?currentDocument.updateTime=${encodeURIComponent(cur)}`, { fields: {} });
    assert.equal(stale.status, 400);
    assert.equal(stale.json.error.status, 'FAILED_PRECONDITION');
    assert.match(stale.json.error.message, /^the stored version \(\d+\) does not match the required base version \(\d+\)$/);
    const both = await call('PATCH', '/clients/c1?currentDocument.exists=true&currentDocument.updateTime=' + encodeURIComponent(cur), { fields: {} });
    assert.equal(both.status, 400);
    const missing = await call('PATCH', `/clients/nope?currentDocument.updateTime=${encodeURIComponent(cur)}`, { fields: {} });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.status, 'FAILED_PRECONDITION');
});

test('delete: idempotent 200 {}, 404 with exists=true, updateTime precondition', async (t) => {
    const { fs, call } = await setup(t);
    const gone = await call('DELETE', '/clients/none');
    assert.equal(gone.status, 200);
    assert.deepEqual(gone.json, {});
    const ex = await call('DELETE', '/clients/none?currentDocument.exists=true');
    assert.equal(ex.status, 404);
    assert.equal(ex.json.error.status, 'NOT_FOUND');
    const d = (await call('PATCH', '/clients/c1', { fields: {} })).json;
    const stale = await call('DELETE', '/clients/c1?currentDocument.updateTime=2020-01-01T00:00:00.000001Z');
    assert.equal(stale.status, 400);
    assert.equal(stale.json.error.status, 'FAILED_PRECONDITION');
    const ok = await call('DELETE', `/clients/c1?currentDocument.updateTime=${encodeURIComponent(d.updateTime)}`);
    assert.equal(ok.status, 200);
    assert.equal(fs.control.count(), 0);
});

test('list: direct children only, paging, {} when empty', async (t) => {
    const { fs, call } = await setup(t);
    assert.deepEqual((await call('GET', '/clients')).json, {});
    for (const id of ['c3', 'c1', 'c2']) fs.control.setData(`projects/p1/databases/(default)/documents/clients/${id}`, { n: Number(id[1]) });
    fs.control.setData('projects/p1/databases/(default)/documents/clients/c1/sub/x', { n: 9 });
    const all = (await call('GET', '/clients')).json;
    assert.deepEqual(all.documents.map((d) => d.name.split('/').pop()), ['c1', 'c2', 'c3']);
    assert.equal(all.nextPageToken, undefined);
    const p1 = (await call('GET', '/clients?pageSize=2')).json;
    assert.equal(p1.documents.length, 2);
    assert.ok(p1.nextPageToken);
    const p2 = (await call('GET', `/clients?pageSize=2&pageToken=${encodeURIComponent(p1.nextPageToken)}`)).json;
    assert.deepEqual(p2.documents.map((d) => d.name.split('/').pop()), ['c3']);
    assert.equal(p2.nextPageToken, undefined);
    const desc = (await call('GET', '/clients?orderBy=n%20desc')).json;
    assert.deepEqual(desc.documents.map((d) => d.fields.n.integerValue), ['3', '2', '1']);
});

test('runQuery: EQUAL, AND, readTime-only row when empty, orderBy/limit/select, subcollection parent', async (t) => {
    const { fs, call } = await setup(t);
    const P = 'projects/p1/databases/(default)/documents';
    fs.control.setData(`${P}/registrations/a`, { instance_id: 'i-1', n: 3, tags: ['x', 'y'] });
    fs.control.setData(`${P}/registrations/b`, { instance_id: 'i-2', n: 1 });
    fs.control.setData(`${P}/registrations/c`, { instance_id: 'i-1', n: 2 });
    fs.control.setData(`${P}/rooms/r1/members/c1`, { role: 'sender' });
    fs.control.setData(`${P}/rooms/r2/members/c1`, { role: 'receiver' });

    const q = (structuredQuery, parent = '') => call('POST', `${parent}:runQuery`, { structuredQuery });
    const eq = (f, v) => ({ fieldFilter: { field: { fieldPath: f }, op: 'EQUAL', value: v } });

    const r = await q({ from: [{ collectionId: 'registrations' }], where: eq('instance_id', { stringValue: 'i-1' }) });
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json));
    assert.deepEqual(r.json.map((x) => x.document.name.split('/').pop()), ['a', 'c']);
    for (const row of r.json) assert.match(row.readTime, TS6);

    const none = await q({ from: [{ collectionId: 'registrations' }], where: eq('instance_id', { stringValue: 'i-9' }) });
    assert.equal(none.status, 200);
    assert.equal(none.json.length, 1);
    assert.deepEqual(Object.keys(none.json[0]), ['readTime']);

    const and = await q({ from: [{ collectionId: 'registrations' }], where: { compositeFilter: { op: 'AND', filters: [
        eq('instance_id', { stringValue: 'i-1' }), { fieldFilter: { field: { fieldPath: 'n' }, op: 'GREATER_THAN', value: { integerValue: '2' } } }] } } });
    assert.deepEqual(and.json.map((x) => x.document.name.split('/').pop()), ['a']);

    const ordered = await q({ from: [{ collectionId: 'registrations' }], orderBy: [{ field: { fieldPath: 'n' }, direction: 'DESCENDING' }],
        limit: 2, select: { fields: [{ fieldPath: 'n' }] } });
    assert.deepEqual(ordered.json.map((x) => x.document.fields), [{ n: { integerValue: '3' } }, { n: { integerValue: '2' } }]);

    const contains = await q({ from: [{ collectionId: 'registrations' }], where: { fieldFilter: { field: { fieldPath: 'tags' }, op: 'ARRAY_CONTAINS', value: { stringValue: 'y' } } } });
    assert.equal(contains.json.length, 1);
    const inq = await q({ from: [{ collectionId: 'registrations' }], where: { fieldFilter: { field: { fieldPath: 'n' }, op: 'IN', value: { arrayValue: { values: [{ integerValue: '1' }, { doubleValue: 2 }] } } } } });
    assert.deepEqual(inq.json.map((x) => x.document.name.split('/').pop()), ['b', 'c']);

    const sub = await q({ from: [{ collectionId: 'members' }] }, '/rooms/r1');
    assert.deepEqual(sub.json.map((x) => x.document.fields.role.stringValue), ['sender']);
    const desc = await q({ from: [{ collectionId: 'members', allDescendants: true }], where: eq('role', { stringValue: 'receiver' }) });
    assert.equal(desc.json.length, 1);

    const start = await q({ from: [{ collectionId: 'registrations' }], orderBy: [{ field: { fieldPath: 'n' } }], startAt: { values: [{ integerValue: '2' }], before: false } });
    assert.deepEqual(start.json.map((x) => x.document.name.split('/').pop()), ['a']);

    const badOp = await q({ from: [{ collectionId: 'registrations' }], where: { fieldFilter: { field: { fieldPath: 'n' }, op: 'LIKE', value: { integerValue: '1' } } } });
    assert.equal(badOp.status, 400);
});

test('commit: atomic with preconditions, REQUEST_TIME transform, delete result without updateTime', async (t) => {
    const { fs, call, name } = await setup(t);
    const P = 'projects/p1/databases/(default)/documents';
    fs.control.setData(`${P}/clients/c1`, { room: 'none', keep: 1 });
    const writes = [
        { update: { name: name('rooms/r1'), fields: { owner: { stringValue: 'c1' } } }, currentDocument: { exists: false } },
        { update: { name: name('clients/c1'), fields: { room: { stringValue: 'r1' } } }, updateMask: { fieldPaths: ['room'] },
            updateTransforms: [{ fieldPath: 'updated_at', setToServerValue: 'REQUEST_TIME' }, { fieldPath: 'keep', increment: { integerValue: '2' } }] },
        { delete: name('invites/x') },
    ];
    const r = await call('POST', ':commit', { writes });
    assert.equal(r.status, 200);
    assert.match(r.json.commitTime, TS6);
    assert.equal(r.json.writeResults.length, 3);
    assert.equal(r.json.writeResults[0].updateTime, r.json.commitTime);
    assert.deepEqual(r.json.writeResults[2], {});
    const tr = r.json.writeResults[1].transformResults;
    assert.equal(tr.length, 2);
    assert.ok(tr[0].timestampValue);
    assert.deepEqual(tr[1], { integerValue: '3' });
    const c1 = fs.control.data(`${P}/clients/c1`);
    assert.equal(c1.room, 'r1');
    assert.equal(c1.keep, 3);
    assert.equal(typeof c1.updated_at, 'string');

    const before = fs.control.documents();
    const fail = await call('POST', ':commit', { writes: [
        { update: { name: name('rooms/r2'), fields: {} } },
        { update: { name: name('rooms/r1'), fields: {} }, currentDocument: { exists: false } },
    ] });
    assert.equal(fail.status, 409);
    assert.equal(fail.json.error.status, 'ALREADY_EXISTS');
    assert.deepEqual(fs.control.documents(), before, 'nothing applied when one write fails');

    const delMissing = await call('POST', ':commit', { writes: [{ delete: name('rooms/zz'), currentDocument: { exists: true } }] });
    assert.equal(delMissing.status, 404);
    const bad = await call('POST', ':commit', { writes: [{ update: { name: name('rooms/r1'), fields: {} }, delete: name('rooms/r1') }] });
    assert.equal(bad.status, 400);
});

test('batchWrite: independent writes with per-write status; transactions', async (t) => {
    const { fs, call, name } = await setup(t);
    fs.control.setData('projects/p1/databases/(default)/documents/rooms/r1', { a: 1 });
    const r = await call('POST', ':batchWrite', { writes: [
        { update: { name: name('rooms/r1'), fields: {} }, currentDocument: { exists: false } },
        { update: { name: name('rooms/r2'), fields: { b: { integerValue: '2' } } } },
    ] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.status[0], { code: 6, message: `Document already exists: ${name('rooms/r1')}` });
    assert.deepEqual(r.json.status[1], {});
    assert.deepEqual(r.json.writeResults[0], {});
    assert.ok(r.json.writeResults[1].updateTime);
    assert.ok(fs.control.get('projects/p1/databases/(default)/documents/rooms/r2'));

    const tx = await call('POST', ':beginTransaction', {});
    assert.equal(typeof tx.json.transaction, 'string');
    const c = await call('POST', ':commit', { transaction: tx.json.transaction, writes: [] });
    assert.equal(c.status, 200);
    const again = await call('POST', ':commit', { transaction: tx.json.transaction, writes: [] });
    assert.equal(again.status, 400);
});

test('auth: Bearer owner or issuer token, else 401 UNAUTHENTICATED', async (t) => {
    const issued = new Map([['good', { valid: true, scopes: ['https://www.googleapis.com/auth/datastore'] }],
        ['narrow', { valid: true, scopes: ['https://www.googleapis.com/auth/pubsub'] }]]);
    const { call } = await setup(t, { auth: { issuer: (tok) => issued.get(tok) || { valid: false } } });
    const none = await call('GET', '/clients/c1', undefined, {});
    assert.equal(none.status, 401);
    assert.equal(none.json.error.status, 'UNAUTHENTICATED');
    assert.match(none.headers['www-authenticate'], /invalid_token/);
    assert.equal((await call('GET', '/clients/c1', undefined, { authorization: 'Bearer bogus' })).status, 401);
    assert.equal((await call('GET', '/clients/c1', undefined, { authorization: 'Bearer good' })).status, 404);
    assert.equal((await call('GET', '/clients/c1')).status, 404, 'owner accepted');
    const scope = await call('GET', '/clients/c1', undefined, { authorization: 'Bearer narrow' });
    assert.equal(scope.status, 403);
    assert.equal(scope.json.error.status, 'PERMISSION_DENIED');
});

test('409 ABORTED vs ALREADY_EXISTS differ only by error.status; emulator reset', async (t) => {
    const { fs, call } = await setup(t);
    fs.control.fail(1, 'ABORTED', { match: { path: ':commit' } });
    const ab = await call('POST', ':commit', { writes: [] });
    assert.equal(ab.status, 409);
    assert.equal(ab.json.error.status, 'ABORTED');
    assert.equal(ab.json.error.code, 409);
    assert.equal((await call('POST', ':commit', { writes: [] })).status, 200);

    fs.control.setData('projects/p1/databases/(default)/documents/a/b', { x: 1 });
    const reset = await request(`${fs.url}/emulator/v1/projects/p1/databases/(default)/documents`, { method: 'DELETE' });
    assert.equal(reset.status, 200);
    assert.equal(fs.control.count(), 0);
    assert.deepEqual(encodeFields({ n: 1, f: 1.5, s: 'x', a: [], m: {} }),
        { n: { integerValue: '1' }, f: { doubleValue: 1.5 }, s: { stringValue: 'x' }, a: { arrayValue: {} }, m: { mapValue: {} } });
});
