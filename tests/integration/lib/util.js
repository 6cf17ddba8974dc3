'use strict';
/* Shared helpers for the integration tests: eventual REGISTER, /health, metrics. */

const assert = require('node:assert/strict');
const { T, describe: desc, httpGet, until, DEFAULT_TIMEOUT } = require('./client');

/*
 * REGISTER until it succeeds; ERROR 409 (still held) means "retry".  Any other
 * answer fails at once.  Bounded by timeoutMs.
 */
async function registerEventually(c, timeoutMs = DEFAULT_TIMEOUT, extra = {})
{
    return until(async () => {
        const f = await c.register(extra);
        if (f.type === T.REGISTER_ACK) return f;
        const retry = f.type === T.ERROR && f.json && f.json.error_code === 409;
        throw Object.assign(new Error(`REGISTER answered ${desc(f)}`), { fatal: !retry });
    }, timeoutMs, `REGISTER of ${c.clientId} to succeed`, 25);
}

/* GET /health; resolves {status, json, res}. */
async function health(srv, opts = {})
{
    const res = await httpGet(srv.port, '/health', { host: srv.host.replace(/[[\]]/g, ''), ...opts });
    let json;
    try {
        json = JSON.parse(res.body);
    } catch (e) {
        throw new Error(`/health body is not JSON: ${JSON.stringify(res.body)} (HTTP ${res.status})`);
    }
    return { status: res.status, json, res };
}

/* Prometheus text -> Map "name{labels}" -> number (labels as written by the server, sorted). */
function parseMetrics(text)
{
    const out = new Map();
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\S+)?$/.exec(line.trim());
        if (!m) throw new Error(`bad metrics line: ${JSON.stringify(line)}`);
        let key = m[1];
        if (m[2]) {
            const labels = [...m[2].slice(1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
                .map((x) => `${x[1]}="${x[2]}"`).sort();
            if (labels.length) key += `{${labels.join(',')}}`;
        }
        const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
        out.set(key, v);
    }
    return out;
}

async function metrics(srv)
{
    assert.ok(srv.metricsPort, 'metrics port known (listening line has metrics_port)');
    const res = await httpGet(srv.metricsPort, '/metrics');
    assert.equal(res.status, 200, `GET /metrics: HTTP ${res.status} ${res.body.slice(0, 200)}`);
    return { text: res.body, values: parseMetrics(res.body), res };
}

module.exports = { registerEventually, health, parseMetrics, metrics };
