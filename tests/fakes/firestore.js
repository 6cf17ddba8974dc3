'use strict';
/*
 * Fake Firestore REST v1 server (cloud-apis.md §2, checklist §2.13).
 *
 *   const fs = await startFirestore({ projectId, databases, auth, ... });
 *   FIRESTORE_EMULATOR_HOST = `127.0.0.1:${fs.port}`
 *
 * Methods: get, list, createDocument (?documentId), patch (updateMask.fieldPaths,
 * currentDocument.exists / .updateTime, upsert, replace without mask), delete
 * (idempotent), :runQuery (fieldFilter all ops, compositeFilter AND/OR,
 * unaryFilter, orderBy, limit, offset, select, startAt/endAt), :commit (atomic,
 * preconditions, updateTransforms), :batchWrite, :beginTransaction, :rollback, and
 * the emulator reset DELETE /emulator/v1/projects/{p}/databases/{d}/documents.
 *
 * Encoding as the real service: integerValue strings, empty arrayValue/mapValue as
 * {}, Document times with 6 fractional digits + Z, timestampValue normalised to Z
 * with 0/3/6 digits, pretty JSON (2-space indent + newline) unless
 * ?prettyPrint=false, errors {"error":{code,message,status}}.  Times are kept in
 * microseconds (BigInt) and the clock is strictly increasing, so two writes never
 * share an updateTime.
 */

const crypto = require('node:crypto');
const { startFakeServer, HttpError, jsonReply, queryAll, queryOne } = require('./http');
const G = require('./google_common');

const { GoogleError } = G;

const MAX_DEPTH = 20;
const MAX_DOC_BYTES = 1048576;
const VERBS = new Set(['runQuery', 'commit', 'batchWrite', 'beginTransaction', 'rollback', 'batchGet',
    'listCollectionIds', 'runAggregationQuery', 'partitionQuery', 'listen', 'write']);
const IDENT = /^[a-zA-Z_][a-zA-Z_0-9]*$/;

/* ------------------------------------------------------------------ time */

let lastUs = 0n;

/* Strictly increasing microseconds since the epoch. */
function nowUs()
{
    let us = BigInt(Date.now()) * 1000n;
    if (us <= lastUs) us = lastUs + 1n;
    lastUs = us;
    return us;
}

function splitUs(us)
{
    let s = us / 1000000n;
    let frac = us % 1000000n;
    if (frac < 0n) {
        frac += 1000000n;
        s -= 1n;
    }
    return [s, frac];
}

/* "YYYY-MM-DDTHH:MM:SS" of a second count (years 0001-9999). */
function isoSeconds(s)
{
    return new Date(Number(s) * 1000).toISOString().slice(0, 19);
}

/* Document/commit/read times: always 6 fractional digits + Z. */
function fmtTime(us)
{
    const [s, frac] = splitUs(us);
    return `${isoSeconds(s)}.${frac.toString().padStart(6, '0')}Z`;
}

/* timestampValue output: Z-normalised with 0, 3 or 6 fractional digits. */
function fmtTsValue(us)
{
    const [s, frac] = splitUs(us);
    const base = isoSeconds(s);
    if (frac === 0n) return base + 'Z';
    if (frac % 1000n === 0n) return `${base}.${(frac / 1000n).toString().padStart(3, '0')}Z`;
    return `${base}.${frac.toString().padStart(6, '0')}Z`;
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/* RFC 3339 -> BigInt microseconds (extra precision rounded down), or null. */
function parseTime(str)
{
    if (typeof str !== 'string') return null;
    const m = TS_RE.exec(str);
    if (!m) return null;
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
    const dt = new Date(0);
    dt.setUTCFullYear(y, mo - 1, d);
    dt.setUTCHours(h, mi, s, 0);
    if (dt.getUTCDate() !== d || dt.getUTCMonth() !== mo - 1) return null;
    let ms = dt.getTime();
    if (m[8] !== 'Z' && m[8] !== 'z') {
        const sign = m[8][0] === '-' ? -1 : 1;
        ms -= sign * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6))) * 60000;
    }
    const frac = BigInt((m[7] || '').padEnd(9, '0').slice(0, 6));
    return BigInt(ms) * 1000n + frac;
}

/* ------------------------------------------------------------------ values */

function invalid(message)
{
    return new GoogleError('INVALID_ARGUMENT', message);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/* Validate an input Value and return its canonical (output) form. */
function normValue(v, where, depth = 0)
{
    if (depth > MAX_DEPTH) throw invalid(`Value at '${where}' exceeds the maximum nesting depth of ${MAX_DEPTH}.`);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        throw invalid(`Invalid value at '${where}' (type.googleapis.com/google.firestore.v1.Value), ${JSON.stringify(v)}`);
    }
    const keys = Object.keys(v);
    if (keys.length !== 1) {
        throw invalid(`Invalid value at '${where}': a Value must set exactly one of its value fields (got ${keys.length}).`);
    }
    const k = keys[0];
    const x = v[k];
    const bad = (type) => invalid(`Invalid value at '${where}.${snake(k)}' (${type}), ${JSON.stringify(x)}`);
    switch (k) {
    case 'nullValue':
        if (x !== null && x !== 'NULL_VALUE') throw bad('type.googleapis.com/google.protobuf.NullValue');
        return { nullValue: null };
    case 'booleanValue':
        if (typeof x !== 'boolean') throw bad('TYPE_BOOL');
        return { booleanValue: x };
    case 'integerValue': {
        let n;
        if (typeof x === 'string' && /^[+-]?\d+$/.test(x)) n = BigInt(x);
        else if (typeof x === 'number' && Number.isSafeInteger(x)) n = BigInt(x);
        else throw bad('TYPE_INT64');
        if (n < INT64_MIN || n > INT64_MAX) throw bad('TYPE_INT64');
        return { integerValue: n.toString() };
    }
    case 'doubleValue':
        if (typeof x === 'number') return { doubleValue: x };
        if (x === 'NaN' || x === 'Infinity' || x === '-Infinity') return { doubleValue: x };
        if (typeof x === 'string' && x.trim() !== '' && Number.isFinite(Number(x))) return { doubleValue: Number(x) };
        throw bad('TYPE_DOUBLE');
    case 'timestampValue': {
        const us = parseTime(x);
        if (us === null) throw bad('type.googleapis.com/google.protobuf.Timestamp');
        return { timestampValue: fmtTsValue(us) };
    }
    case 'stringValue':
        if (typeof x !== 'string') throw bad('TYPE_STRING');
        if (Buffer.byteLength(x) > MAX_DOC_BYTES - 89) throw invalid(`Value at '${where}' is longer than 1048487 bytes.`);
        return { stringValue: x };
    case 'bytesValue': {
        if (typeof x !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(x)) throw bad('TYPE_BYTES');
        return { bytesValue: Buffer.from(x.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('base64') };
    }
    case 'referenceValue':
        if (typeof x !== 'string' || !isDocumentName(x)) throw invalid(`Invalid resource name at '${where}': "${x}"`);
        return { referenceValue: x };
    case 'geoPointValue': {
        if (!x || typeof x !== 'object') throw bad('type.googleapis.com/google.type.LatLng');
        const lat = x.latitude === undefined ? 0 : x.latitude;
        const lng = x.longitude === undefined ? 0 : x.longitude;
        if (typeof lat !== 'number' || typeof lng !== 'number' || Math.abs(lat) > 90 || Math.abs(lng) > 180) {
            throw bad('type.googleapis.com/google.type.LatLng');
        }
        return { geoPointValue: { latitude: lat, longitude: lng } };
    }
    case 'arrayValue': {
        if (!x || typeof x !== 'object' || Array.isArray(x)) throw bad('type.googleapis.com/google.firestore.v1.ArrayValue');
        for (const ak of Object.keys(x)) {
            if (ak !== 'values') throw unknownName(ak, `${where}.array_value`);
        }
        const vals = x.values === undefined ? [] : x.values;
        if (!Array.isArray(vals)) throw bad('type.googleapis.com/google.firestore.v1.ArrayValue');
        const out = vals.map((e, i) => {
            if (e && typeof e === 'object' && 'arrayValue' in e) {
                throw invalid(`Cannot convert an array value in an array value (at '${where}.array_value.values[${i}]').`);
            }
            return normValue(e, `${where}.array_value.values[${i}]`, depth + 1);
        });
        return out.length ? { arrayValue: { values: out } } : { arrayValue: {} };
    }
    case 'mapValue': {
        if (!x || typeof x !== 'object' || Array.isArray(x)) throw bad('type.googleapis.com/google.firestore.v1.MapValue');
        for (const mk of Object.keys(x)) {
            if (mk !== 'fields') throw unknownName(mk, `${where}.map_value`);
        }
        const f = normFields(x.fields === undefined ? {} : x.fields, `${where}.map_value.fields`, depth + 1);
        return Object.keys(f).length ? { mapValue: { fields: f } } : { mapValue: {} };
    }
    default:
        throw unknownName(k, where);
    }
}

function unknownName(name, where)
{
    return invalid(`Invalid JSON payload received. Unknown name "${name}" at '${where}': Cannot find field.`);
}

function snake(s)
{
    return s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

function normFields(fields, where, depth = 0)
{
    if (!fields || typeof fields !== 'object' || Array.isArray(fields)) {
        throw invalid(`Invalid value at '${where}': expected an object of field name -> Value.`);
    }
    const out = {};
    for (const [name, v] of Object.entries(fields)) {
        if (name === '') throw invalid(`Field name at '${where}' must not be empty.`);
        out[name] = normValue(v, `${where}[${name}].value`, depth + 1);
    }
    return out;
}

/* Plain JS -> Value (tests and seeding): integers -> integerValue strings, etc. */
function encodeValue(x)
{
    if (x === null || x === undefined) return { nullValue: null };
    if (typeof x === 'boolean') return { booleanValue: x };
    if (typeof x === 'bigint') return { integerValue: x.toString() };
    if (typeof x === 'number') return Number.isInteger(x) ? { integerValue: String(x) } : { doubleValue: x };
    if (typeof x === 'string') return { stringValue: x };
    if (x instanceof Date) return { timestampValue: fmtTsValue(BigInt(x.getTime()) * 1000n) };
    if (Buffer.isBuffer(x)) return { bytesValue: x.toString('base64') };
    if (Array.isArray(x)) return x.length ? { arrayValue: { values: x.map(encodeValue) } } : { arrayValue: {} };
    if (typeof x === 'object') {
        const f = encodeFields(x);
        return Object.keys(f).length ? { mapValue: { fields: f } } : { mapValue: {} };
    }
    throw new Error(`cannot encode ${typeof x} as a Firestore Value`);
}

function encodeFields(obj)
{
    const out = {};
    for (const [k, v] of Object.entries(obj)) out[k] = encodeValue(v);
    return out;
}

/* Value -> plain JS: integers as Number when safe else BigInt, timestamps as strings,
 * bytes as Buffer, references as strings. */
function decodeValue(v)
{
    const k = Object.keys(v)[0];
    const x = v[k];
    switch (k) {
    case 'nullValue': return null;
    case 'integerValue': {
        const n = BigInt(x);
        return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    case 'doubleValue': return typeof x === 'string' ? Number(x) : x;
    case 'bytesValue': return Buffer.from(x, 'base64');
    case 'arrayValue': return (x.values || []).map(decodeValue);
    case 'mapValue': return decodeFields(x.fields || {});
    default: return x;
    }
}

function decodeFields(fields)
{
    const out = {};
    for (const [k, v] of Object.entries(fields || {})) out[k] = decodeValue(v);
    return out;
}

/* ------------------------------------------------------------------ field paths */

function parseFieldPath(s)
{
    if (typeof s !== 'string' || s === '') throw invalid(`Invalid field path "${s}".`);
    const segs = [];
    let i = 0;
    while (i < s.length) {
        let seg = '';
        if (s[i] === '`') {
            i += 1;
            let closed = false;
            while (i < s.length) {
                if (s[i] === '\\' && i + 1 < s.length) {
                    seg += s[i + 1];
                    i += 2;
                } else if (s[i] === '`') {
                    i += 1;
                    closed = true;
                    break;
                } else {
                    seg += s[i++];
                }
            }
            if (!closed || seg === '') throw invalid(`Invalid field path "${s}": bad quoted segment.`);
        } else {
            const j = s.indexOf('.', i);
            seg = s.slice(i, j < 0 ? s.length : j);
            i = j < 0 ? s.length : j;
            if (!IDENT.test(seg)) throw invalid(`Invalid field path "${s}": segment "${seg}" must be quoted with backticks.`);
        }
        segs.push(seg);
        if (i < s.length) {
            if (s[i] !== '.' || i + 1 >= s.length) throw invalid(`Invalid field path "${s}".`);
            i += 1;
        }
    }
    return segs;
}

function getPath(fields, segs)
{
    let cur = fields;
    for (let i = 0; i < segs.length; i++) {
        const v = cur && cur[segs[i]];
        if (!v) return undefined;
        if (i === segs.length - 1) return v;
        if (!v.mapValue) return undefined;
        cur = v.mapValue.fields || {};
    }
    return undefined;
}

function setPath(fields, segs, value)
{
    let cur = fields;
    for (let i = 0; i < segs.length - 1; i++) {
        let v = cur[segs[i]];
        if (!v || !v.mapValue) {
            v = { mapValue: { fields: {} } };
            cur[segs[i]] = v;
        }
        if (!v.mapValue.fields) v.mapValue.fields = {};
        cur = v.mapValue.fields;
    }
    cur[segs[segs.length - 1]] = value;
}

function deletePath(fields, segs)
{
    let cur = fields;
    for (let i = 0; i < segs.length - 1; i++) {
        const v = cur[segs[i]];
        if (!v || !v.mapValue || !v.mapValue.fields) return;
        cur = v.mapValue.fields;
    }
    delete cur[segs[segs.length - 1]];
}

/* Empty maps lose their `fields` key again after mask deletes. */
function tidy(fields)
{
    for (const v of Object.values(fields)) {
        if (v.mapValue && v.mapValue.fields) {
            tidy(v.mapValue.fields);
            if (!Object.keys(v.mapValue.fields).length) delete v.mapValue.fields;
        }
    }
    return fields;
}

function projectFields(fields, paths)
{
    const out = {};
    for (const p of paths) {
        const v = getPath(fields, p);
        if (v !== undefined) setPath(out, p, structuredClone(v));
    }
    return tidy(out);
}

/* ------------------------------------------------------------------ names */

function isValidId(id)
{
    return typeof id === 'string' && id !== '' && id !== '.' && id !== '..' && !id.includes('/') &&
        !/^__.*__$/.test(id) && Buffer.byteLength(id) <= 1500;
}

function isDocumentName(name)
{
    const m = /^projects\/[^/]+\/databases\/[^/]+\/documents\/(.+)$/.exec(name);
    if (!m) return false;
    const segs = m[1].split('/');
    return segs.length % 2 === 0 && segs.every(isValidId);
}

function compareNames(a, b)
{
    const x = a.split('/');
    const y = b.split('/');
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
        if (x[i] !== y[i]) return Buffer.compare(Buffer.from(x[i]), Buffer.from(y[i]));
    }
    return x.length - y.length;
}

/* ------------------------------------------------------------------ ordering */

function typeRank(v)
{
    switch (Object.keys(v)[0]) {
    case 'nullValue': return 0;
    case 'booleanValue': return 1;
    case 'integerValue': case 'doubleValue': return 2;
    case 'timestampValue': return 3;
    case 'stringValue': return 4;
    case 'bytesValue': return 5;
    case 'referenceValue': return 6;
    case 'geoPointValue': return 7;
    case 'arrayValue': return 8;
    case 'mapValue': return 9;
    default: return 10;
    }
}

function isNaNValue(v)
{
    return v.doubleValue !== undefined && (v.doubleValue === 'NaN' || Number.isNaN(v.doubleValue));
}

function numOf(v)
{
    if (v.integerValue !== undefined) return Number(v.integerValue);
    const d = v.doubleValue;
    if (d === 'Infinity') return Infinity;
    if (d === '-Infinity') return -Infinity;
    if (d === 'NaN') return NaN;
    return d;
}

function sign(n)
{
    return n < 0 ? -1 : n > 0 ? 1 : 0;
}

function compareValues(a, b)
{
    const ra = typeRank(a);
    const rb = typeRank(b);
    if (ra !== rb) return sign(ra - rb);
    switch (ra) {
    case 0: return 0;
    case 1: return sign(Number(a.booleanValue) - Number(b.booleanValue));
    case 2: {
        const na = isNaNValue(a);
        const nb = isNaNValue(b);
        if (na || nb) return na && nb ? 0 : na ? -1 : 1;
        if (a.integerValue !== undefined && b.integerValue !== undefined) {
            const x = BigInt(a.integerValue);
            const y = BigInt(b.integerValue);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        return sign(numOf(a) - numOf(b));
    }
    case 3: {
        const x = parseTime(a.timestampValue);
        const y = parseTime(b.timestampValue);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    case 4: return Buffer.compare(Buffer.from(a.stringValue), Buffer.from(b.stringValue));
    case 5: return Buffer.compare(Buffer.from(a.bytesValue, 'base64'), Buffer.from(b.bytesValue, 'base64'));
    case 6: return sign(compareNames(a.referenceValue, b.referenceValue));
    case 7: return sign(a.geoPointValue.latitude - b.geoPointValue.latitude) ||
        sign(a.geoPointValue.longitude - b.geoPointValue.longitude);
    case 8: {
        const x = a.arrayValue.values || [];
        const y = b.arrayValue.values || [];
        for (let i = 0; i < Math.min(x.length, y.length); i++) {
            const c = compareValues(x[i], y[i]);
            if (c) return c;
        }
        return sign(x.length - y.length);
    }
    case 9: {
        const x = a.mapValue.fields || {};
        const y = b.mapValue.fields || {};
        const kx = Object.keys(x).sort();
        const ky = Object.keys(y).sort();
        for (let i = 0; i < Math.min(kx.length, ky.length); i++) {
            const c = Buffer.compare(Buffer.from(kx[i]), Buffer.from(ky[i])) || compareValues(x[kx[i]], y[ky[i]]);
            if (c) return c;
        }
        return sign(kx.length - ky.length);
    }
    default: return 0;
    }
}

function equalValues(a, b)
{
    if (isNaNValue(a) || isNaNValue(b)) return false;
    return typeRank(a) === typeRank(b) && compareValues(a, b) === 0;
}

/* ------------------------------------------------------------------ the fake */

/*
 * opts:
 *   projectId          project used by control paths like "clients/c1" (default "test-project");
 *                      URLs may name any project
 *   databases          accepted database IDs (default ["(default)"]; "*" = any)
 *   auth               see google_common.checkAuth (default {owner: true}); scopes default
 *                      datastore + cloud-platform
 *   updateTimeOnMissing  status for an updateTime precondition on a missing document:
 *                      "FAILED_PRECONDITION" (default) or "NOT_FOUND"
 *   host, port
 */
async function startFirestore(opts = {})
{
    const projectId = opts.projectId || 'test-project';
    const databases = opts.databases || ['(default)'];
    const auth = opts.auth === 'none' ? 'none' : {
        owner: true,
        scopes: ['https://www.googleapis.com/auth/datastore', 'https://www.googleapis.com/auth/cloud-platform'],
        ...(opts.auth || {}),
    };
    const updateTimeOnMissing = opts.updateTimeOnMissing || 'FAILED_PRECONDITION';
    const docs = new Map();            /* full name -> {fields, createUs, updateUs} */
    const transactions = new Set();
    const extraTokens = new Set();

    function dbAllowed(d)
    {
        return databases === '*' || (Array.isArray(databases) && (databases.includes('*') || databases.includes(d)));
    }

    function fullName(path)
    {
        if (path.startsWith('projects/')) return path;
        return `projects/${projectId}/databases/(default)/documents/${path.replace(/^\/+/, '')}`;
    }

    function docOut(name, d, maskPaths)
    {
        const out = { name };
        const f = maskPaths ? projectFields(d.fields, maskPaths) : structuredClone(d.fields);
        if (Object.keys(f).length) out.fields = f;
        out.createTime = fmtTime(d.createUs);
        out.updateTime = fmtTime(d.updateUs);
        return out;
    }

    function maskFromQuery(query)
    {
        const m = queryAll(query, 'mask.fieldPaths');
        return m.length ? m.map(parseFieldPath) : null;
    }

    function preconditionFromQuery(query)
    {
        const ex = queryOne(query, 'currentDocument.exists');
        const ut = queryOne(query, 'currentDocument.updateTime');
        if (ex !== undefined && ut !== undefined) {
            throw invalid('Only one of currentDocument.exists and currentDocument.updateTime may be set.');
        }
        if (ex !== undefined) {
            if (ex !== 'true' && ex !== 'false') {
                throw invalid(`Invalid value at 'current_document.exists' (TYPE_BOOL), "${ex}"`);
            }
            return { exists: ex === 'true' };
        }
        if (ut !== undefined) return { updateTime: ut };
        return null;
    }

    function preconditionFromJson(p, where)
    {
        if (p === undefined || p === null) return null;
        if (typeof p !== 'object') throw invalid(`Invalid value at '${where}'.`);
        const keys = Object.keys(p);
        for (const k of keys) if (k !== 'exists' && k !== 'updateTime') throw unknownName(k, where);
        if (keys.length > 1) throw invalid(`Only one of exists and updateTime may be set at '${where}'.`);
        if (p.exists !== undefined && typeof p.exists !== 'boolean') {
            throw invalid(`Invalid value at '${where}.exists' (TYPE_BOOL), ${JSON.stringify(p.exists)}`);
        }
        return keys.length ? p : null;
    }

    function checkPrecondition(name, existing, pre)
    {
        if (!pre) return;
        if (pre.exists === true && !existing) throw new GoogleError('NOT_FOUND', `No document to update: ${name}`);
        if (pre.exists === false && existing) throw new GoogleError('ALREADY_EXISTS', `Document already exists: ${name}`);
        if (pre.updateTime !== undefined) {
            const us = parseTime(pre.updateTime);
            if (us === null) {
                throw invalid(`Invalid value at 'current_document.update_time' ` +
                    `(type.googleapis.com/google.protobuf.Timestamp), "${pre.updateTime}"`);
            }
            if (!existing) {
                if (updateTimeOnMissing === 'NOT_FOUND') throw new GoogleError('NOT_FOUND', `No document to update: ${name}`);
                throw new GoogleError('FAILED_PRECONDITION',
                    `the stored version (0) does not match the required base version (${us})`);
            }
            if (existing.updateUs !== us) {
                throw new GoogleError('FAILED_PRECONDITION',
                    `the stored version (${existing.updateUs}) does not match the required base version (${us})`);
            }
        }
    }

    function checkSize(name, fields)
    {
        const size = Buffer.byteLength(name) + Buffer.byteLength(JSON.stringify(fields));
        if (size > MAX_DOC_BYTES) {
            throw invalid(`Document '${name}' cannot be written because its size (${size} bytes) ` +
                `exceeds the maximum allowed size of 1,048,576 bytes.`);
        }
    }

    /* ---- transforms (commit updateTransforms) */

    function applyTransform(fields, t, commitUs, where)
    {
        if (!t || typeof t !== 'object' || typeof t.fieldPath !== 'string') {
            throw invalid(`Invalid value at '${where}': a FieldTransform needs fieldPath.`);
        }
        const segs = parseFieldPath(t.fieldPath);
        const kinds = Object.keys(t).filter((k) => k !== 'fieldPath');
        if (kinds.length !== 1) throw invalid(`Invalid value at '${where}': exactly one transform type must be set.`);
        const kind = kinds[0];
        const cur = getPath(fields, segs);
        let result;
        switch (kind) {
        case 'setToServerValue':
            if (t.setToServerValue !== 'REQUEST_TIME') {
                throw invalid(`Invalid value at '${where}.set_to_server_value', "${t.setToServerValue}"`);
            }
            result = { timestampValue: fmtTsValue(commitUs) };
            setPath(fields, segs, result);
            break;
        case 'increment': case 'maximum': case 'minimum': {
            const operand = normValue(t[kind], `${where}.${snake(kind)}`);
            if (typeRank(operand) !== 2) throw invalid(`Invalid value at '${where}.${snake(kind)}': must be a number.`);
            if (!cur || typeRank(cur) !== 2) {
                result = operand;
            } else if (kind === 'increment') {
                if (cur.integerValue !== undefined && operand.integerValue !== undefined) {
                    let n = BigInt(cur.integerValue) + BigInt(operand.integerValue);
                    if (n > INT64_MAX) n = INT64_MAX;
                    if (n < INT64_MIN) n = INT64_MIN;
                    result = { integerValue: n.toString() };
                } else {
                    const sum = numOf(cur) + numOf(operand);
                    result = { doubleValue: Number.isFinite(sum) ? sum : String(sum) };
                }
            } else {
                const c = compareValues(cur, operand);
                result = (kind === 'maximum' ? c >= 0 : c <= 0) ? cur : operand;
            }
            setPath(fields, segs, structuredClone(result));
            break;
        }
        case 'appendMissingElements': case 'removeAllFromArray': {
            const arr = normValue({ arrayValue: t[kind] }, `${where}.${snake(kind)}`);
            const add = arr.arrayValue.values || [];
            let vals = cur && cur.arrayValue ? (cur.arrayValue.values || []).slice() : [];
            if (kind === 'appendMissingElements') {
                for (const e of add) if (!vals.some((x) => equalValues(x, e))) vals.push(e);
            } else {
                vals = vals.filter((x) => !add.some((e) => equalValues(x, e)));
            }
            setPath(fields, segs, vals.length ? { arrayValue: { values: vals } } : { arrayValue: {} });
            result = { nullValue: null };
            break;
        }
        default:
            throw unknownName(kind, where);
        }
        return result;
    }

    /*
     * Apply one write to `view` (a Map overlay: name -> doc | null for deleted).
     * Returns the WriteResult.  Throws GoogleError on precondition/validation failure.
     */
    function applyWrite(view, w, i, commitUs, root)
    {
        const where = `writes[${i}]`;
        if (!w || typeof w !== 'object') throw invalid(`Invalid value at '${where}'.`);
        const allowed = ['update', 'delete', 'transform', 'updateMask', 'updateTransforms', 'currentDocument'];
        for (const k of Object.keys(w)) if (!allowed.includes(k)) throw unknownName(k, where);
        const ops = ['update', 'delete', 'transform'].filter((k) => w[k] !== undefined);
        if (ops.length !== 1) throw invalid(`Invalid value at '${where}': exactly one of update, delete, transform must be set.`);
        const pre = preconditionFromJson(w.currentDocument, `${where}.current_document`);
        const read = (n) => (view.has(n) ? view.get(n) : docs.get(n) || null);
        const checkName = (n) => {
            if (typeof n !== 'string' || !isDocumentName(n)) throw invalid(`Invalid resource name at '${where}': "${n}"`);
            if (!n.startsWith(root + '/')) throw invalid(`Document "${n}" is not in database "${root}".`);
        };

        if (w.delete !== undefined) {
            checkName(w.delete);
            checkPrecondition(w.delete, read(w.delete), pre);
            view.set(w.delete, null);
            return {};
        }
        let name;
        let bodyFields = {};
        let transforms = w.updateTransforms || [];
        let mask = null;
        if (w.transform !== undefined) {
            const t = w.transform;
            if (!t || typeof t !== 'object') throw invalid(`Invalid value at '${where}.transform'.`);
            name = t.document;
            transforms = t.fieldTransforms || [];
            mask = [];
        } else {
            const u = w.update;
            if (!u || typeof u !== 'object') throw invalid(`Invalid value at '${where}.update'.`);
            for (const k of Object.keys(u)) {
                if (!['name', 'fields', 'createTime', 'updateTime'].includes(k)) throw unknownName(k, `${where}.update`);
            }
            name = u.name;
            bodyFields = normFields(u.fields === undefined ? {} : u.fields, `${where}.update.fields`);
            if (w.updateMask !== undefined) {
                const fp = w.updateMask && w.updateMask.fieldPaths;
                if (fp !== undefined && !Array.isArray(fp)) throw invalid(`Invalid value at '${where}.update_mask.field_paths'.`);
                mask = (fp || []).map(parseFieldPath);
            }
        }
        checkName(name);
        if (!Array.isArray(transforms)) throw invalid(`Invalid value at '${where}.update_transforms'.`);
        const existing = read(name);
        checkPrecondition(name, existing, pre);
        let fields;
        if (mask) {
            fields = existing ? structuredClone(existing.fields) : {};
            for (const p of mask) {
                const v = getPath(bodyFields, p);
                if (v === undefined) deletePath(fields, p);
                else setPath(fields, p, structuredClone(v));
            }
            tidy(fields);
        } else {
            fields = bodyFields;
        }
        const transformResults = transforms.map((t, j) => applyTransform(fields, t, commitUs, `${where}.update_transforms[${j}]`));
        checkSize(name, fields);
        let doc;
        if (existing && !transforms.length && JSON.stringify(sortKeys(existing.fields)) === JSON.stringify(sortKeys(fields))) {
            doc = existing;
        } else {
            doc = { fields, createUs: existing ? existing.createUs : commitUs, updateUs: commitUs };
        }
        view.set(name, doc);
        const r = { updateTime: fmtTime(doc.updateUs) };
        if (transformResults.length) r.transformResults = transformResults;
        return r;
    }

    function commitView(view)
    {
        for (const [n, d] of view) {
            if (d === null) docs.delete(n);
            else docs.set(n, d);
        }
    }

    /* ---- runQuery */

    function runQuery(parent, sq)
    {
        if (!sq || typeof sq !== 'object') throw invalid('structuredQuery is required (the fake supports structured queries only).');
        const known = ['select', 'from', 'where', 'orderBy', 'startAt', 'endAt', 'offset', 'limit'];
        for (const k of Object.keys(sq)) {
            if (!known.includes(k)) {
                if (k === 'findNearest') throw new GoogleError('UNIMPLEMENTED', 'fake: findNearest is not supported.');
                throw unknownName(k, 'structured_query');
            }
        }
        if (!Array.isArray(sq.from) || sq.from.length !== 1) {
            throw invalid('Invalid value at \'structured_query.from\': exactly one collection selector is required.');
        }
        const sel = sq.from[0];
        if (!sel || typeof sel.collectionId !== 'string' || !isValidId(sel.collectionId)) {
            throw invalid('Invalid collection ID in structured_query.from.');
        }
        const pred = sq.where ? compileFilter(sq.where, 'structured_query.where') : () => true;
        const orders = (sq.orderBy || []).map((o, i) => {
            if (!o || !o.field || typeof o.field.fieldPath !== 'string') {
                throw invalid(`Invalid value at 'structured_query.order_by[${i}]'.`);
            }
            const dir = o.direction || 'ASCENDING';
            if (dir !== 'ASCENDING' && dir !== 'DESCENDING') {
                throw invalid(`Invalid value at 'structured_query.order_by[${i}].direction', "${dir}"`);
            }
            return { path: o.field.fieldPath, segs: fieldSegs(o.field.fieldPath), desc: dir === 'DESCENDING' };
        });
        if (!orders.length && sq.where) {
            for (const p of inequalityPaths(sq.where)) orders.push({ path: p, segs: fieldSegs(p), desc: false });
        }
        if (!orders.some((o) => o.path === '__name__')) {
            const last = orders.length ? orders[orders.length - 1].desc : false;
            orders.push({ path: '__name__', segs: null, desc: last });
        }
        const prefix = parent + '/';
        let rows = [];
        for (const [name, d] of docs) {
            if (!name.startsWith(prefix)) continue;
            const rest = name.slice(prefix.length).split('/');
            if (sel.allDescendants) {
                if (rest[rest.length - 2] !== sel.collectionId) continue;
            } else if (rest.length !== 2 || rest[0] !== sel.collectionId) {
                continue;
            }
            const doc = { name, d };
            if (!pred(doc)) continue;
            if (orders.some((o) => o.segs && getPath(d.fields, o.segs) === undefined)) continue;
            rows.push(doc);
        }
        const key = (doc, o) => (o.segs ? getPath(doc.d.fields, o.segs) : { referenceValue: doc.name });
        const cmpDocs = (a, b) => {
            for (const o of orders) {
                const c = compareValues(key(a, o), key(b, o));
                if (c) return o.desc ? -c : c;
            }
            return 0;
        };
        rows.sort(cmpDocs);
        const cursorCmp = (doc, cur, where) => {
            if (!cur || typeof cur !== 'object' || !Array.isArray(cur.values)) throw invalid(`Invalid value at '${where}'.`);
            if (cur.values.length > orders.length) throw invalid(`Too many cursor values at '${where}'.`);
            for (let i = 0; i < cur.values.length; i++) {
                let cv = normValue(cur.values[i], `${where}.values[${i}]`);
                if (orders[i].path === '__name__' && cv.referenceValue && !cv.referenceValue.includes('/documents/')) {
                    cv = { referenceValue: `${parent}/${sel.collectionId}/${cv.referenceValue}` };
                }
                const c = compareValues(key(doc, orders[i]), cv);
                if (c) return orders[i].desc ? -c : c;
            }
            return 0;
        };
        if (sq.startAt) {
            rows = rows.filter((doc) => {
                const c = cursorCmp(doc, sq.startAt, 'structured_query.start_at');
                return sq.startAt.before ? c >= 0 : c > 0;
            });
        }
        if (sq.endAt) {
            rows = rows.filter((doc) => {
                const c = cursorCmp(doc, sq.endAt, 'structured_query.end_at');
                return sq.endAt.before ? c < 0 : c <= 0;
            });
        }
        const offset = sq.offset === undefined ? 0 : intOf(sq.offset, 'structured_query.offset');
        const limit = sq.limit === undefined ? undefined : intOf(sq.limit, 'structured_query.limit');
        rows = rows.slice(offset);
        if (limit !== undefined) rows = rows.slice(0, limit);
        let mask = null;
        if (sq.select) {
            mask = (sq.select.fields || []).map((f) => f.fieldPath).filter((p) => p !== '__name__').map(parseFieldPath);
        }
        return rows.map((r) => docOut(r.name, r.d, mask));
    }

    function intOf(v, where)
    {
        const x = v && typeof v === 'object' ? v.value : v;
        const n = typeof x === 'string' ? Number(x) : x;
        if (!Number.isInteger(n) || n < 0) throw invalid(`Invalid value at '${where}', ${JSON.stringify(v)}`);
        return n;
    }

    function fieldSegs(p)
    {
        return p === '__name__' ? null : parseFieldPath(p);
    }

    function inequalityPaths(f)
    {
        const out = [];
        const walk = (x) => {
            if (x.compositeFilter) (x.compositeFilter.filters || []).forEach(walk);
            else if (x.fieldFilter && ['LESS_THAN', 'LESS_THAN_OR_EQUAL', 'GREATER_THAN', 'GREATER_THAN_OR_EQUAL',
                'NOT_EQUAL', 'NOT_IN'].includes(x.fieldFilter.op)) {
                const p = x.fieldFilter.field && x.fieldFilter.field.fieldPath;
                if (p && !out.includes(p)) out.push(p);
            }
        };
        walk(f);
        return out;
    }

    function compileFilter(f, where)
    {
        if (!f || typeof f !== 'object') throw invalid(`Invalid value at '${where}'.`);
        const keys = Object.keys(f);
        if (keys.length !== 1) throw invalid(`Invalid value at '${where}': exactly one filter type must be set.`);
        if (f.compositeFilter) {
            const cf = f.compositeFilter;
            if (cf.op !== 'AND' && cf.op !== 'OR') throw invalid(`Invalid value at '${where}.composite_filter.op', "${cf.op}"`);
            const subs = (cf.filters || []).map((x, i) => compileFilter(x, `${where}.composite_filter.filters[${i}]`));
            if (!subs.length) throw invalid(`Invalid value at '${where}.composite_filter.filters': at least one filter is required.`);
            return cf.op === 'AND' ? (d) => subs.every((s) => s(d)) : (d) => subs.some((s) => s(d));
        }
        if (f.unaryFilter) {
            const uf = f.unaryFilter;
            if (!uf.field || typeof uf.field.fieldPath !== 'string') throw invalid(`Invalid value at '${where}.unary_filter.field'.`);
            const segs = fieldSegs(uf.field.fieldPath);
            const get = (d) => (segs ? getPath(d.d.fields, segs) : { referenceValue: d.name });
            switch (uf.op) {
            case 'IS_NULL': return (d) => { const v = get(d); return !!v && v.nullValue !== undefined; };
            case 'IS_NOT_NULL': return (d) => { const v = get(d); return !!v && v.nullValue === undefined; };
            case 'IS_NAN': return (d) => { const v = get(d); return !!v && isNaNValue(v); };
            case 'IS_NOT_NAN': return (d) => { const v = get(d); return !!v && !isNaNValue(v); };
            default: throw invalid(`Invalid value at '${where}.unary_filter.op', "${uf.op}"`);
            }
        }
        if (f.fieldFilter) {
            const ff = f.fieldFilter;
            if (!ff.field || typeof ff.field.fieldPath !== 'string') throw invalid(`Invalid value at '${where}.field_filter.field'.`);
            const segs = fieldSegs(ff.field.fieldPath);
            let value = normValue(ff.value, `${where}.field_filter.value`);
            if (!segs && value.referenceValue === undefined) {
                throw invalid(`__name__ filters must use referenceValue (at '${where}').`);
            }
            const get = (d) => (segs ? getPath(d.d.fields, segs) : { referenceValue: d.name });
            const list = () => {
                if (!value.arrayValue) throw invalid(`A non-empty array is required for '${ff.op}' filters.`);
                return value.arrayValue.values || [];
            };
            const range = (test) => (d) => {
                const v = get(d);
                return !!v && typeRank(v) === typeRank(value) && !isNaNValue(v) && test(compareValues(v, value));
            };
            switch (ff.op) {
            case 'EQUAL': return (d) => { const v = get(d); return !!v && equalValues(v, value); };
            case 'NOT_EQUAL': return (d) => { const v = get(d); return !!v && !equalValues(v, value); };
            case 'LESS_THAN': return range((c) => c < 0);
            case 'LESS_THAN_OR_EQUAL': return range((c) => c <= 0);
            case 'GREATER_THAN': return range((c) => c > 0);
            case 'GREATER_THAN_OR_EQUAL': return range((c) => c >= 0);
            case 'ARRAY_CONTAINS': return (d) => {
                const v = get(d);
                return !!v && !!v.arrayValue && (v.arrayValue.values || []).some((e) => equalValues(e, value));
            };
            case 'IN': { const l = list(); return (d) => { const v = get(d); return !!v && l.some((e) => equalValues(v, e)); }; }
            case 'NOT_IN': { const l = list(); return (d) => { const v = get(d); return !!v && v.nullValue === undefined && !l.some((e) => equalValues(v, e)); }; }
            case 'ARRAY_CONTAINS_ANY': {
                const l = list();
                return (d) => {
                    const v = get(d);
                    return !!v && !!v.arrayValue && (v.arrayValue.values || []).some((e) => l.some((x) => equalValues(e, x)));
                };
            }
            default: throw invalid(`Invalid value at '${where}.field_filter.op', "${ff.op}"`);
            }
        }
        throw unknownName(keys[0], where);
    }

    /* ---- request routing */

    function parseJsonBody(ctx)
    {
        if (!ctx.rawBody.length) return {};
        try {
            return JSON.parse(ctx.rawBody.toString('utf8'));
        } catch (e) {
            throw invalid(`Invalid JSON payload received. ${e.message}`);
        }
    }

    function checkTransaction(t)
    {
        if (t === undefined) return;
        if (!transactions.has(t)) throw invalid('The referenced transaction has expired or is no longer valid.');
    }

    function newTransaction()
    {
        const t = crypto.randomBytes(16).toString('base64');
        transactions.add(t);
        return t;
    }

    async function handle(ctx)
    {
        const pretty = G.prettyFor(ctx.query);
        try {
            return await route(ctx, pretty);
        } catch (e) {
            if (e instanceof GoogleError) {
                const headers = e.status === 'UNAUTHENTICATED' ? G.UNAUTH_HEADERS : {};
                return G.googleError(e.status, e.message, pretty, headers);
            }
            throw e;
        }
    }

    async function route(ctx, pretty)
    {
        const raw = ctx.path.split('/');
        if (raw[1] === 'emulator' && ctx.method === 'DELETE' && raw.length === 8 && raw[2] === 'v1' && raw[3] === 'projects' &&
            raw[5] === 'databases' && raw[7] === 'documents') {
            const root = `projects/${dec(raw[4])}/databases/${dec(raw[6])}/documents/`;
            for (const n of [...docs.keys()]) if (n.startsWith(root)) docs.delete(n);
            return G.googleJson(200, {}, pretty);
        }
        if (raw[1] !== 'v1' || raw[2] !== 'projects' || raw[4] !== 'databases' || raw.length < 7 ||
            !/^documents(:|$)/.test(raw[6])) {
            throw new GoogleError('NOT_FOUND', `fake firestore: no route for ${ctx.method} ${ctx.path}`);
        }
        const denied = await G.checkAuth(auth, ctx.headers, extraTokens);
        if (denied) throw denied;
        const project = dec(raw[3]);
        const database = dec(raw[5]);
        if (!dbAllowed(database)) {
            throw new GoogleError('NOT_FOUND', `The database ${database} does not exist for project ${project} Please visit ` +
                `https://console.cloud.google.com/datastore/setup?project=${project} to add a Cloud Datastore or Cloud Firestore database. `);
        }
        const root = `projects/${project}/databases/${database}/documents`;
        let rest = raw.slice(6);
        let verb = null;
        const last = rest[rest.length - 1];
        const colon = last.lastIndexOf(':');
        if (colon >= 0 && VERBS.has(last.slice(colon + 1))) {
            verb = last.slice(colon + 1);
            rest[rest.length - 1] = last.slice(0, colon);
        }
        if (rest[0] !== 'documents') throw new GoogleError('NOT_FOUND', `fake firestore: no route for ${ctx.path}`);
        rest = rest.slice(1).map(dec);
        if (rest.length && rest[rest.length - 1] === '' && !verb) rest.pop();
        for (const s of rest) {
            if (!isValidId(s)) throw invalid(`Invalid resource name "${root}/${rest.join('/')}": bad path segment "${s}".`);
        }
        const rel = rest.join('/');
        const name = rel ? `${root}/${rel}` : root;
        const isDoc = rest.length > 0 && rest.length % 2 === 0;
        const isColl = rest.length % 2 === 1;
        const m = ctx.method;

        if (verb) {
            if (m !== 'POST') throw new GoogleError('NOT_FOUND', `fake firestore: ${verb} needs POST`);
            const body = parseJsonBody(ctx);
            switch (verb) {
            case 'runQuery': {
                if (isColl) throw invalid(`Invalid parent "${name}": must be a database or a document.`);
                for (const k of Object.keys(body)) {
                    if (!['structuredQuery', 'transaction', 'newTransaction', 'readTime'].includes(k)) {
                        throw unknownName(k, 'run_query_request');
                    }
                }
                checkTransaction(body.transaction);
                const readTime = fmtTime(nowUs());
                const out = runQuery(name, body.structuredQuery).map((d) => ({ document: d, readTime }));
                if (!out.length) out.push({ readTime });
                if (body.newTransaction !== undefined) out[0] = { transaction: newTransaction(), ...out[0] };
                return G.googleJson(200, out, pretty);
            }
            case 'commit': case 'batchWrite': {
                if (rest.length) throw new GoogleError('NOT_FOUND', `fake firestore: ${verb} is on the database root`);
                const writes = body.writes === undefined ? [] : body.writes;
                if (!Array.isArray(writes)) throw invalid(`Invalid value at 'writes'.`);
                for (const k of Object.keys(body)) {
                    if (!['writes', 'transaction', 'labels'].includes(k)) throw unknownName(k, `${verb}_request`);
                }
                return verb === 'commit' ? commit(root, body, writes, pretty) : batchWrite(root, writes, pretty);
            }
            case 'beginTransaction':
                if (rest.length) throw new GoogleError('NOT_FOUND', 'fake firestore: beginTransaction is on the database root');
                return G.googleJson(200, { transaction: newTransaction() }, pretty);
            case 'rollback':
                checkTransaction(body.transaction);
                if (body.transaction === undefined) throw invalid('transaction is required.');
                transactions.delete(body.transaction);
                return G.googleJson(200, {}, pretty);
            default:
                throw new GoogleError('UNIMPLEMENTED', `fake firestore: ${verb} is not implemented`);
            }
        }

        if (m === 'GET' && isDoc) {
            checkTransaction(queryOne(ctx.query, 'transaction'));
            const mask = maskFromQuery(ctx.query);
            const d = docs.get(name);
            if (!d) throw new GoogleError('NOT_FOUND', `Document "${name}" not found.`);
            return G.googleJson(200, docOut(name, d, mask), pretty);
        }
        if (m === 'GET' && isColl) return list(name, ctx.query, pretty);
        if (m === 'POST' && isColl) return createDocument(name, ctx, pretty);
        if (m === 'PATCH' && isDoc) return patch(name, root, ctx, pretty);
        if (m === 'DELETE' && isDoc) {
            const pre = preconditionFromQuery(ctx.query);
            const view = new Map();
            applyWrite(view, pre ? { delete: name, currentDocument: pre } : { delete: name }, 0, nowUs(), root);
            commitView(view);
            return G.googleJson(200, {}, pretty);
        }
        throw new GoogleError('NOT_FOUND', `fake firestore: no route for ${m} ${ctx.path}`);
    }

    function list(collName, query, pretty)
    {
        const mask = maskFromQuery(query);
        const ps = queryOne(query, 'pageSize');
        const pageSize = ps === undefined ? 0 : Number(ps);
        if (!Number.isInteger(pageSize) || pageSize < 0) throw invalid(`Invalid value at 'page_size' (TYPE_INT32), "${ps}"`);
        const token = queryOne(query, 'pageToken');
        let offset = 0;
        if (token) {
            offset = Number(Buffer.from(token, 'base64').toString('utf8').replace(/^offset:/, ''));
            if (!Number.isInteger(offset) || offset < 0) throw invalid('Invalid page token.');
        }
        const prefix = collName + '/';
        let rows = [...docs.entries()].filter(([n]) => n.startsWith(prefix) && !n.slice(prefix.length).includes('/'));
        const orderBy = queryOne(query, 'orderBy');
        const orders = orderBy ? orderBy.split(',').map((s) => {
            const [p, dir] = s.trim().split(/\s+/);
            return { path: p, segs: fieldSegs(p), desc: (dir || '').toLowerCase() === 'desc' };
        }) : [];
        rows.sort(([na, a], [nb, b]) => {
            for (const o of orders) {
                const va = o.segs ? getPath(a.fields, o.segs) : { referenceValue: na };
                const vb = o.segs ? getPath(b.fields, o.segs) : { referenceValue: nb };
                const c = !va || !vb ? (va ? 1 : vb ? -1 : 0) : compareValues(va, vb);
                if (c) return o.desc ? -c : c;
            }
            return compareNames(na, nb);
        });
        const total = rows.length;
        rows = rows.slice(offset, pageSize ? offset + pageSize : undefined);
        const out = {};
        if (rows.length) out.documents = rows.map(([n, d]) => docOut(n, d, mask));
        if (pageSize && offset + pageSize < total) out.nextPageToken = Buffer.from(`offset:${offset + pageSize}`).toString('base64');
        return G.googleJson(200, out, pretty);
    }

    function docBody(ctx, where, forbidName)
    {
        const body = parseJsonBody(ctx);
        if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('Invalid JSON payload: expected a Document object.');
        for (const k of Object.keys(body)) {
            if (!['name', 'fields', 'createTime', 'updateTime'].includes(k)) throw unknownName(k, where);
        }
        if (forbidName && body.name !== undefined && body.name !== '') {
            throw invalid('Document name must not be set when creating a document; use documentId.');
        }
        return normFields(body.fields === undefined ? {} : body.fields, `${where}.fields`);
    }

    function createDocument(collName, ctx, pretty)
    {
        let id = queryOne(ctx.query, 'documentId');
        if (id === undefined || id === '') {
            const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
            id = Array.from(crypto.randomBytes(20), (b) => abc[b % abc.length]).join('');
        }
        if (!isValidId(id)) throw invalid(`Invalid document ID "${id}".`);
        const fields = docBody(ctx, 'document', true);
        const name = `${collName}/${id}`;
        if (docs.has(name)) throw new GoogleError('ALREADY_EXISTS', `Document already exists: ${name}`);
        checkSize(name, fields);
        const us = nowUs();
        const d = { fields, createUs: us, updateUs: us };
        docs.set(name, d);
        return G.googleJson(200, docOut(name, d, maskFromQuery(ctx.query)), pretty);
    }

    function patch(name, root, ctx, pretty)
    {
        const fields = docBody(ctx, 'document', false);
        const pre = preconditionFromQuery(ctx.query);
        const maskPaths = queryAll(ctx.query, 'updateMask.fieldPaths');
        const w = { update: { name, fields } };
        if (maskPaths.length) w.updateMask = { fieldPaths: maskPaths };
        if (pre) w.currentDocument = pre;
        const view = new Map();
        applyWrite(view, w, 0, nowUs(), root);
        commitView(view);
        return G.googleJson(200, docOut(name, docs.get(name), maskFromQuery(ctx.query)), pretty);
    }

    function commit(root, body, writes, pretty)
    {
        checkTransaction(body.transaction);
        const commitUs = nowUs();
        const view = new Map();
        const results = writes.map((w, i) => applyWrite(view, w, i, commitUs, root));
        commitView(view);
        if (body.transaction !== undefined) transactions.delete(body.transaction);
        const out = {};
        if (results.length) out.writeResults = results;
        out.commitTime = fmtTime(commitUs);
        return G.googleJson(200, out, pretty);
    }

    function batchWrite(root, writes, pretty)
    {
        const names = writes.map((w) => (w && (w.delete || (w.update && w.update.name) || (w.transform && w.transform.document))));
        if (new Set(names).size !== names.length) {
            throw invalid('Cannot have multiple writes to the same document in a single batchWrite request.');
        }
        const writeResults = [];
        const status = [];
        writes.forEach((w, i) => {
            const view = new Map();
            try {
                writeResults.push(applyWrite(view, w, i, nowUs(), root));
                commitView(view);
                status.push({});
            } catch (e) {
                if (!(e instanceof GoogleError)) throw e;
                writeResults.push({});
                status.push({ code: e.grpcCode, message: e.message });
            }
        });
        return G.googleJson(200, { writeResults, status }, pretty);
    }

    /* ---- control */

    function snapshot()
    {
        const documents = {};
        for (const n of [...docs.keys()].sort(compareNames)) documents[n] = docOut(n, docs.get(n));
        return { projectId, documents };
    }

    const presets = {
        UNAVAILABLE: G.preset('UNAVAILABLE'),
        DEADLINE_EXCEEDED: G.preset('DEADLINE_EXCEEDED'),
        RESOURCE_EXHAUSTED: G.preset('RESOURCE_EXHAUSTED'),
        INTERNAL: G.preset('INTERNAL'),
        ABORTED: G.preset('ABORTED'),
        CANCELLED: G.preset('CANCELLED'),
        PERMISSION_DENIED: G.preset('PERMISSION_DENIED'),
        UNAUTHENTICATED: { ...G.preset('UNAUTHENTICATED', G.MESSAGES.UNAUTHENTICATED), headers: {
            'content-type': 'application/json; charset=UTF-8', ...G.UNAUTH_HEADERS } },
        FAILED_PRECONDITION_INDEX: G.preset('FAILED_PRECONDITION', G.MESSAGES.INDEX),
    };

    function setDocument(path, fields)
    {
        const name = fullName(path);
        if (!isDocumentName(name)) throw new Error(`not a document path: ${path}`);
        const f = normFields(fields, 'fields');
        const us = nowUs();
        const old = docs.get(name);
        docs.set(name, { fields: f, createUs: old ? old.createUs : us, updateUs: us });
        return docOut(name, docs.get(name));
    }

    function admin(a)
    {
        const m = /^\/documents\/(.+)$/.exec(a.sub);
        if (m) {
            const path = decodeURIComponent(m[1]);
            if (a.method === 'GET') {
                const d = docs.get(fullName(path));
                return d ? jsonReply(200, docOut(fullName(path), d)) : jsonReply(404, { error: 'no such document' });
            }
            if (a.method === 'PUT') {
                const fields = a.body.data !== undefined ? encodeFields(a.body.data) : a.body.fields || {};
                try {
                    return jsonReply(200, setDocument(path, fields));
                } catch (e) {
                    throw new HttpError(400, e.message);
                }
            }
            if (a.method === 'DELETE') return jsonReply(200, { deleted: docs.delete(fullName(path)) });
        }
        const t = /^\/touch\/(.+)$/.exec(a.sub);
        if (t && a.method === 'POST') {
            const d = control.touch(decodeURIComponent(t[1]));
            return d ? jsonReply(200, d) : jsonReply(404, { error: 'no such document' });
        }
        if (a.method === 'GET' && a.sub === '/documents') return jsonReply(200, snapshot());
        if (a.method === 'POST' && a.sub === '/tokens') {
            if (typeof a.body.token !== 'string') throw new HttpError(400, 'token (string) required');
            extraTokens.add(a.body.token);
            return jsonReply(200, {});
        }
        return undefined;
    }

    const fake = await startFakeServer({
        name: 'firestore',
        host: opts.host,
        port: opts.port,
        handle,
        admin,
        presets,
        errorFor: G.errorForStatus,
        snapshot,
        onReset() {
            docs.clear();
            transactions.clear();
        },
    });
    const control = Object.assign(fake.control, {
        projectId,
        /* name of a document from a relative path ("clients/c1") */
        name: fullName,
        documents() {
            return snapshot().documents;
        },
        /* Document JSON as the API would return it, or null */
        get(path) {
            const n = fullName(path);
            const d = docs.get(n);
            return d ? docOut(n, d) : null;
        },
        /* fields decoded to plain JS, or null */
        data(path) {
            const d = docs.get(fullName(path));
            return d ? decodeFields(d.fields) : null;
        },
        /* seed a document: fields as Values ({x:{stringValue:"a"}}); returns the Document */
        set: setDocument,
        /* seed from plain JS */
        setData(path, obj) {
            return setDocument(path, encodeFields(obj));
        },
        delete(path) {
            return docs.delete(fullName(path));
        },
        /* another writer touched the document: new updateTime, same fields */
        touch(path) {
            const n = fullName(path);
            const d = docs.get(n);
            if (!d) return null;
            d.updateUs = nowUs();
            return docOut(n, d);
        },
        count() {
            return docs.size;
        },
        addToken(token) {
            extraTokens.add(token);
        },
    });
    return fake;
}

function dec(s)
{
    try {
        return decodeURIComponent(s);
    } catch {
        throw invalid(`Invalid percent-encoding in path segment "${s}".`);
    }
}

function sortKeys(x)
{
    if (Array.isArray(x)) return x.map(sortKeys);
    if (x && typeof x === 'object') {
        const o = {};
        for (const k of Object.keys(x).sort()) o[k] = sortKeys(x[k]);
        return o;
    }
    return x;
}

module.exports = {
    startFirestore,
    encodeValue,
    encodeFields,
    decodeValue,
    decodeFields,
    parseFieldPath,
    parseTime,
    fmtTime,
    fmtTsValue,
    compareValues,
};
