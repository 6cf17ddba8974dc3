'use strict';
/*
 * Shared HTTP machinery of the fake cloud servers (tests/fakes/*.js).
 *
 *   const fake = await startFakeServer({ name, handle, ... });
 *   fake.url, fake.port, fake.host, await fake.close(), fake.control
 *
 * Every fake is one http.Server on 127.0.0.1, port 0 by default.  A request goes
 * through this pipeline:
 *
 *   1. `/__fake/...` paths are the admin API (never recorded, never faulted).
 *   2. A `drop` fault with mode "immediate" that matches method+path destroys the
 *      socket before the body is read.
 *   3. The body is read (bounded by maxBodyBytes, else 413) and the request is
 *      recorded: {seq, time, method, path, query, headers, rawBody, body, status,
 *      outcome, durationMs}.  `body` is parsed JSON, a form object, or undefined.
 *   4. opts.onArrive(ctx) may return a cleanup function, called once when the
 *      response has finished or the connection closed (the SFU fake uses it to see
 *      overlapping mutations on one session).
 *   5. Latency: the sum of the `ms` of every matching latency rule.
 *   6. The first matching fault (fail / hang / drop, in the order they were added)
 *      consumes one of its count.  With `apply: true` the real handler runs first
 *      (state changes) and its reply is thrown away: "the write happened, the
 *      response was lost".
 *   7. Otherwise opts.handle(ctx) returns a reply {status, headers?, body?} (body:
 *      string/Buffer sent as is; anything else must be serialised by the service).
 *
 * Faults (control.fail / hang / drop) take {count = 1 (Infinity or -1 = until
 * cleared), match, apply}.  A match is {method?, path?, pathRegex?, test?}: `path`
 * is a substring of the raw path (or a RegExp), `pathRegex` a RegExp source string
 * (for the HTTP admin API), `test(ctx)` a JS predicate.  Drop modes: "immediate"
 * (before the body is read), "after-body" (default: request read, no byte of
 * response), "partial" (status line, headers and half a body, then destroy).
 */

const http = require('node:http');
const { EventEmitter } = require('node:events');

const ADMIN_PREFIX = '/__fake';
const DEFAULT_MAX_BODY = 32 * 1024 * 1024;

function isAdminPath(pathname)
{
    return pathname === ADMIN_PREFIX || pathname.startsWith(ADMIN_PREFIX + '/');
}

/* URLSearchParams -> {key: value} with repeated keys as arrays. */
function queryObject(searchParams)
{
    const q = {};
    for (const [k, v] of searchParams) {
        if (!(k in q)) q[k] = v;
        else if (Array.isArray(q[k])) q[k].push(v);
        else q[k] = [q[k], v];
    }
    return q;
}

/* All values of a query key as an array (repeated keys: `a=1&a=2`). */
function queryAll(query, key)
{
    const v = query[key];
    if (v === undefined) return [];
    return Array.isArray(v) ? v : [v];
}

/* Last value of a query key or undefined. */
function queryOne(query, key)
{
    const all = queryAll(query, key);
    return all.length ? all[all.length - 1] : undefined;
}

function parseBody(headers, raw)
{
    if (!raw.length) return undefined;
    const ct = String(headers['content-type'] || '').toLowerCase();
    const text = raw.toString('utf8');
    if (ct.startsWith('application/x-www-form-urlencoded')) {
        return queryObject(new URLSearchParams(text));
    }
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

function compileMatch(match)
{
    if (!match) return () => true;
    if (typeof match === 'function') return match;
    const method = match.method ? String(match.method).toUpperCase() : null;
    let pathTest = null;
    if (match.path instanceof RegExp) pathTest = (p) => match.path.test(p);
    else if (typeof match.path === 'string') pathTest = (p) => p.includes(match.path);
    if (typeof match.pathRegex === 'string') {
        const re = new RegExp(match.pathRegex);
        const prev = pathTest;
        pathTest = prev ? (p) => prev(p) && re.test(p) : (p) => re.test(p);
    }
    const test = typeof match.test === 'function' ? match.test : null;
    return (ctx) => {
        if (method && ctx.method !== method) return false;
        if (pathTest && !pathTest(ctx.path)) return false;
        if (test && !test(ctx)) return false;
        return true;
    };
}

function normCount(count)
{
    if (count === undefined || count === null) return 1;
    if (count === -1 || count === 'all' || count === 'Infinity') return Infinity;
    const n = Number(count);
    if (!(n > 0)) throw new Error(`fault count must be > 0, -1 or Infinity (got ${count})`);
    return n;
}

function describeMatch(match)
{
    if (!match) return null;
    if (typeof match === 'function') return '[function]';
    const out = {};
    if (match.method) out.method = match.method;
    if (match.path !== undefined) out.path = String(match.path);
    if (match.pathRegex) out.pathRegex = match.pathRegex;
    if (match.test) out.test = '[function]';
    return out;
}

function jsonReply(status, obj, headers = {})
{
    return {
        status,
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(obj),
    };
}

function textReply(status, text, headers = {})
{
    return { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...headers }, body: text };
}

/* Thrown by admin handlers (and anything else) to answer with a status. */
class HttpError extends Error {
    constructor(status, message)
    {
        super(message);
        this.status = status;
    }
}

/*
 * opts:
 *   name           service name (logs, admin info)
 *   host, port     listen address (default 127.0.0.1, 0)
 *   handle(ctx)    -> reply or Promise<reply>; ctx = {method, path, query, headers,
 *                  rawBody (Buffer), body, record, req, socket}
 *   admin(ctx)     -> reply | undefined (undefined = not a service admin route);
 *                  ctx.sub is the path after /__fake
 *   presets        {name: {status, body, headers?}} for fail({preset})
 *   errorFor(status) -> {status, headers, body} default body of an injected failure
 *   onArrive(ctx)  -> optional cleanup function
 *   onReset()      clear service state
 *   snapshot()     -> JSON-able service state (control.state(), GET /__fake/state)
 *   maxBodyBytes   default 32 MiB
 */
async function startFakeServer(opts)
{
    const name = opts.name || 'fake';
    const maxBody = opts.maxBodyBytes || DEFAULT_MAX_BODY;
    const events = new EventEmitter();
    events.setMaxListeners(0);
    let requests = [];
    let seq = 0;
    let faults = [];
    let latency = [];
    const hung = new Set();
    const timers = new Set();
    const sockets = new Set();
    let closed = false;

    function delay(ms)
    {
        return new Promise((resolve) => {
            const t = setTimeout(() => {
                timers.delete(t);
                resolve();
            }, ms);
            timers.add(t);
        });
    }

    function errorReply(spec)
    {
        if (typeof spec === 'string') {
            const p = opts.presets && opts.presets[spec];
            if (!p) throw new Error(`${name}: unknown failure preset "${spec}"`);
            return materialise(p);
        }
        if (typeof spec === 'number') return materialise(opts.errorFor ? opts.errorFor(spec) : { status: spec, body: '' });
        if (spec && spec.preset) {
            const base = errorReply(spec.preset);
            return { ...base, headers: { ...base.headers, ...(spec.headers || {}) } };
        }
        if (spec && typeof spec.status === 'number') {
            if (spec.body === undefined) {
                const base = errorReply(spec.status);
                return { ...base, headers: { ...base.headers, ...(spec.headers || {}) } };
            }
            return materialise(spec);
        }
        throw new Error(`${name}: a failure needs a preset name, a status or {status, body}`);
    }

    function materialise(r)
    {
        const headers = { ...(r.headers || {}) };
        let body = r.body;
        if (body === undefined || body === null) body = '';
        if (typeof body !== 'string' && !Buffer.isBuffer(body)) {
            body = JSON.stringify(body);
            if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
                headers['content-type'] = 'application/json';
            }
        }
        return { status: r.status, headers, body };
    }

    function addFault(kind, o = {})
    {
        const f = {
            id: ++seq,
            kind,
            remaining: normCount(o.count),
            matchSpec: o.match,
            test: compileMatch(o.match),
            apply: !!o.apply,
            mode: o.mode || 'after-body',
        };
        if (kind === 'fail') f.reply = errorReply(o.failure !== undefined ? o.failure : o);
        if (kind === 'drop' && !['immediate', 'after-body', 'partial'].includes(f.mode)) {
            throw new Error(`${name}: drop mode must be immediate, after-body or partial`);
        }
        faults.push(f);
        return f.id;
    }

    function takeFault(ctx, immediate)
    {
        for (const f of faults) {
            if (f.remaining <= 0) continue;
            if ((f.kind === 'drop' && f.mode === 'immediate') !== immediate) continue;
            if (!f.test(ctx)) continue;
            f.remaining -= 1;
            faults = faults.filter((x) => x.remaining > 0);
            return f;
        }
        return null;
    }

    function send(res, reply)
    {
        if (res.destroyed || res.writableEnded) return;
        const r = materialise(reply);
        res.writeHead(r.status, r.headers);
        res.end(r.body);
    }

    function finishRecord(rec, status, outcome)
    {
        rec.status = status;
        rec.outcome = outcome;
        rec.durationMs = Date.now() - rec.time;
        events.emit('done', rec);
    }

    async function runHandler(ctx)
    {
        try {
            return await opts.handle(ctx);
        } catch (e) {
            if (e instanceof HttpError) return textReply(e.status, e.message + '\n');
            process.stderr.write(`[fake ${name}] handler error: ${e && e.stack}\n`);
            return textReply(500, `fake ${name} internal error: ${e && e.message}\n`);
        }
    }

    async function onRequest(req, res)
    {
        const u = new URL(req.url, 'http://fake');
        const ctxBase = {
            method: req.method,
            path: u.pathname,
            query: queryObject(u.searchParams),
            headers: req.headers,
            req,
            socket: req.socket,
        };
        if (isAdminPath(u.pathname)) {
            await onAdmin(ctxBase, req, res);
            return;
        }
        const early = takeFault(ctxBase, true);
        if (early) {
            const rec = record(ctxBase, Buffer.alloc(0));
            finishRecord(rec, null, 'dropped');
            req.socket.destroy();
            return;
        }
        let raw;
        try {
            raw = await readBody(req, maxBody);
        } catch (e) {
            if (e instanceof HttpError) {
                res.setHeader('connection', 'close');
                send(res, textReply(e.status, e.message + '\n'));
            }
            return;
        }
        const ctx = { ...ctxBase, rawBody: raw, body: parseBody(req.headers, raw) };
        const rec = record(ctx, raw);
        ctx.record = rec;
        let cleanup = opts.onArrive ? opts.onArrive(ctx) : null;
        const release = () => {
            if (cleanup) {
                const c = cleanup;
                cleanup = null;
                c();
            }
        };
        res.on('finish', release);
        res.on('close', release);

        let ms = 0;
        for (const l of latency) {
            if (l.remaining > 0 && l.test(ctx)) {
                ms += l.ms;
                l.remaining -= 1;
            }
        }
        latency = latency.filter((l) => l.remaining > 0);
        if (ms > 0) await delay(ms);
        if (closed || res.destroyed) {
            finishRecord(rec, null, 'aborted');
            return;
        }

        const fault = takeFault(ctx, false);
        if (fault && fault.apply) await runHandler(ctx);
        if (fault) {
            if (fault.kind === 'fail') {
                send(res, fault.reply);
                finishRecord(rec, fault.reply.status, 'injected');
            } else if (fault.kind === 'hang') {
                const h = { ctx, res, rec };
                hung.add(h);
                res.on('close', () => hung.delete(h));
                finishRecord(rec, null, 'hung');
            } else if (fault.mode === 'partial') {
                const body = '{"partial": "this response is cut short by the fake server ...';
                res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length * 2) });
                res.write(body);
                finishRecord(rec, 200, 'dropped');
                const t = setTimeout(() => {
                    timers.delete(t);
                    req.socket.destroy();
                }, 5);
                timers.add(t);
            } else {
                finishRecord(rec, null, 'dropped');
                req.socket.destroy();
            }
            return;
        }
        const reply = await runHandler(ctx);
        if (closed || res.destroyed) {
            finishRecord(rec, null, 'aborted');
            return;
        }
        send(res, reply);
        finishRecord(rec, reply.status, 'ok');
    }

    function record(ctx, raw)
    {
        const rec = {
            seq: ++seq,
            time: Date.now(),
            method: ctx.method,
            path: ctx.path,
            query: ctx.query,
            headers: { ...ctx.headers },
            rawBody: raw.toString('utf8'),
            body: ctx.body,
            status: null,
            outcome: 'pending',
            durationMs: null,
        };
        requests.push(rec);
        events.emit('request', rec);
        return rec;
    }

    function filterRequests(filter)
    {
        if (!filter) return requests.slice();
        const t = compileMatch(filter);
        return requests.filter((r) => t(r));
    }

    function waitForRequests(filter, o = {})
    {
        const count = o.count || 1;
        const timeoutMs = o.timeoutMs === undefined ? 5000 : o.timeoutMs;
        const t = compileMatch(filter);
        const done = o.completed !== false;
        const ready = () => requests.filter((r) => t(r) && (!done || r.outcome !== 'pending'));
        return new Promise((resolve, reject) => {
            const check = () => {
                const got = ready();
                if (got.length >= count) {
                    cleanup();
                    resolve(got);
                }
            };
            const timer = setTimeout(() => {
                cleanup();
                reject(new Error(`${name}: waited ${timeoutMs} ms for ${count} request(s) matching ` +
                    `${JSON.stringify(describeMatch(filter))}, got ${ready().length}`));
            }, timeoutMs);
            const cleanup = () => {
                clearTimeout(timer);
                events.off('done', check);
                events.off('request', check);
            };
            events.on('done', check);
            events.on('request', check);
            check();
        });
    }

    function releaseHung()
    {
        const n = hung.size;
        for (const h of hung) h.res.socket && h.res.socket.destroy();
        hung.clear();
        return n;
    }

    function clearFaults()
    {
        faults = [];
        return releaseHung();
    }

    function reset()
    {
        clearFaults();
        latency = [];
        requests = [];
        if (opts.onReset) opts.onReset();
    }

    const control = {
        name,
        /* fail(count, failure, {match, apply}): failure = preset name | status | {status, body, headers} */
        fail(count, failure, o = {}) {
            return addFault('fail', { count, failure, match: o.match, apply: o.apply });
        },
        hang(count, o = {}) {
            return addFault('hang', { count, match: o.match, apply: o.apply });
        },
        drop(count, o = {}) {
            return addFault('drop', { count, match: o.match, apply: o.apply, mode: o.mode });
        },
        /* latency(ms, {match, count = Infinity}) adds a rule; rules add up */
        latency(ms, o = {}) {
            const n = Number(ms);
            if (!(n >= 0)) throw new Error(`${name}: latency must be >= 0 ms`);
            latency.push({ id: ++seq, ms: n, test: compileMatch(o.match), matchSpec: o.match,
                remaining: o.count === undefined ? Infinity : normCount(o.count) });
        },
        clearLatency() {
            latency = [];
        },
        clearFaults,
        releaseHung,
        faults() {
            return faults.map((f) => ({ id: f.id, kind: f.kind, remaining: f.remaining, mode: f.kind === 'drop' ? f.mode : undefined,
                status: f.reply ? f.reply.status : undefined, apply: f.apply, match: describeMatch(f.matchSpec) }));
        },
        hungCount() {
            return hung.size;
        },
        requests: filterRequests,
        clearRequests() {
            requests = [];
        },
        waitForRequests,
        reset,
        state() {
            return opts.snapshot ? opts.snapshot() : {};
        },
        events,
    };

    async function onAdmin(ctx, req, res)
    {
        let raw;
        try {
            raw = await readBody(req, maxBody);
        } catch (e) {
            send(res, textReply(e.status || 400, String(e.message) + '\n'));
            return;
        }
        let body;
        if (raw.length) {
            try {
                body = JSON.parse(raw.toString('utf8'));
            } catch {
                send(res, jsonReply(400, { error: 'admin body must be JSON' }));
                return;
            }
        }
        const actx = { ...ctx, body: body || {}, sub: ctx.path.slice(ADMIN_PREFIX.length) || '/' };
        try {
            const r = commonAdmin(actx) || (opts.admin && (await opts.admin(actx)));
            send(res, r || jsonReply(404, { error: `no admin route ${ctx.method} ${ctx.path}` }));
        } catch (e) {
            send(res, jsonReply(e instanceof HttpError ? e.status : 400, { error: String(e.message) }));
        }
    }

    function adminMatch(b)
    {
        if (!b.match) return undefined;
        const m = { ...b.match };
        if (m.test) throw new HttpError(400, 'match.test is JS only');
        return m;
    }

    function commonAdmin(a)
    {
        const key = `${a.method} ${a.sub}`;
        const b = a.body;
        switch (key) {
        case 'GET /':
            return jsonReply(200, { name, url: control.url });
        case 'GET /requests':
            return jsonReply(200, { requests: filterRequests(
                a.query.method || a.query.path || a.query.pathRegex
                    ? { method: a.query.method, path: a.query.path, pathRegex: a.query.pathRegex } : null) });
        case 'DELETE /requests':
            control.clearRequests();
            return jsonReply(200, {});
        case 'POST /reset':
            reset();
            return jsonReply(200, {});
        case 'GET /state':
            return jsonReply(200, control.state());
        case 'POST /fail': {
            const failure = b.preset !== undefined ? (b.headers ? { preset: b.preset, headers: b.headers } : b.preset)
                : { status: b.status, body: b.body, headers: b.headers };
            return jsonReply(200, { id: control.fail(b.count, failure, { match: adminMatch(b), apply: b.apply }) });
        }
        case 'POST /hang':
            return jsonReply(200, { id: control.hang(b.count, { match: adminMatch(b), apply: b.apply }) });
        case 'POST /drop':
            return jsonReply(200, { id: control.drop(b.count, { match: adminMatch(b), apply: b.apply, mode: b.mode }) });
        case 'POST /latency':
            control.latency(b.ms, { match: adminMatch(b), count: b.count });
            return jsonReply(200, {});
        case 'DELETE /latency':
            control.clearLatency();
            return jsonReply(200, {});
        case 'GET /faults':
            return jsonReply(200, { faults: control.faults(), hung: hung.size });
        case 'DELETE /faults':
            return jsonReply(200, { released: clearFaults() });
        case 'POST /release-hung':
            return jsonReply(200, { released: releaseHung() });
        default:
            return undefined;
        }
    }

    const server = http.createServer((req, res) => {
        onRequest(req, res).catch((e) => {
            process.stderr.write(`[fake ${name}] ${e && e.stack}\n`);
            if (!res.headersSent) send(res, textReply(500, 'fake internal error\n'));
        });
    });
    server.keepAliveTimeout = 30000;
    server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
    });
    server.on('clientError', (err, socket) => {
        if (socket.writable && !socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
        else socket.destroy();
    });

    const host = opts.host || '127.0.0.1';
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port || 0, host, () => {
            server.off('error', reject);
            resolve();
        });
    });
    const port = server.address().port;
    const url = `http://${host}:${port}`;
    control.url = url;
    control.port = port;

    async function close()
    {
        if (closed) return;
        closed = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        hung.clear();
        const p = new Promise((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        await p;
    }

    return { name, url, port, host, close, control, server };
}

function readBody(req, limit)
{
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        let over = false;
        req.on('data', (c) => {
            size += c.length;
            if (size > limit) {
                over = true;
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => {
            if (over) reject(new HttpError(413, `request body larger than ${limit} bytes`));
            else resolve(Buffer.concat(chunks));
        });
        req.on('error', reject);
        req.on('aborted', () => reject(new Error('aborted')));
    });
}

/* Minimal HTTP client for tests and for cross-fake token checks. */
function request(url, o = {})
{
    return new Promise((resolve, reject) => {
        const u = new URL(url);
        const headers = { ...(o.headers || {}) };
        let body = o.body;
        if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
            body = JSON.stringify(body);
            if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
                headers['content-type'] = 'application/json';
            }
        }
        if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
        const req = http.request({
            host: u.hostname, port: u.port, path: u.pathname + u.search, method: o.method || 'GET', headers,
            agent: o.agent === undefined ? false : o.agent,
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = text.length ? JSON.parse(text) : undefined;
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, headers: res.headers, text, json });
            });
            res.on('error', reject);
        });
        req.on('error', reject);
        if (o.timeoutMs) {
            req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`timeout after ${o.timeoutMs} ms`)));
        }
        if (body !== undefined) req.write(body);
        req.end();
    });
}

module.exports = {
    startFakeServer,
    request,
    jsonReply,
    textReply,
    HttpError,
    queryAll,
    queryOne,
    queryObject,
    compileMatch,
    ADMIN_PREFIX,
};
