'use strict';
/*
 * Fake Pub/Sub REST v1 publisher side (cloud-apis.md §3, checklist §3.5).
 *
 *   const ps = await startPubsub({ projectId, topics: ['events'], autoCreateTopics });
 *   PUBSUB_EMULATOR_HOST = `127.0.0.1:${ps.port}`
 *
 * Endpoints: POST /v1/projects/{p}/topics/{t}:publish, PUT/GET/DELETE
 * /v1/projects/{p}/topics/{t}, GET /v1/projects/{p}/topics.  Publish validates as
 * the real service: base64 `data` (standard alphabet, padded), non-empty data or at
 * least one attribute, string attribute values (<= 100 attributes, key <= 256
 * bytes, value <= 1024 bytes), no messageId/publishTime, one orderingKey per
 * request, 1..1000 messages, request body <= 10,485,760 bytes.  Unknown topic ->
 * 404 NOT_FOUND "Resource not found (resource=<topic>)." unless autoCreateTopics.
 * Every accepted message is recorded with its decoded data for assertions.
 * Auth is not checked by default (emulator behaviour); pass `auth` (see
 * google_common.checkAuth) to require a bearer token with a pubsub scope.
 */

const { startFakeServer, jsonReply, HttpError } = require('./http');
const G = require('./google_common');

const { GoogleError } = G;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function invalid(message)
{
    return new GoogleError('INVALID_ARGUMENT', message);
}

/*
 * opts:
 *   projectId         default project for bare topic names (default "test-project")
 *   topics            topics existing at start: "name" or "projects/p/topics/name"
 *   autoCreateTopics  publish to an unknown topic creates it (default false: 404)
 *   auth              'none' (default) or {owner, tokens, issuer, scopes}
 *   maxMessages       default 1000
 *   maxRequestBytes   default 10485760
 *   host, port
 */
async function startPubsub(opts = {})
{
    const projectId = opts.projectId || 'test-project';
    const auth = !opts.auth || opts.auth === 'none' ? 'none' : {
        owner: false,
        scopes: ['https://www.googleapis.com/auth/pubsub', 'https://www.googleapis.com/auth/cloud-platform'],
        ...opts.auth,
    };
    let autoCreate = !!opts.autoCreateTopics;
    const maxMessages = opts.maxMessages || 1000;
    const maxRequestBytes = opts.maxRequestBytes || 10485760;
    const topics = new Set();
    let messages = [];
    let nextId = 4000000000000000n;

    function topicName(t)
    {
        return t.startsWith('projects/') ? t : `projects/${projectId}/topics/${t}`;
    }

    function seed()
    {
        topics.clear();
        for (const t of opts.topics || []) topics.add(topicName(t));
    }
    seed();

    function checkTopicId(id)
    {
        if (!/^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/.test(id) || id.startsWith('goog')) {
            throw invalid(`Invalid [topics] name: (name=${id})`);
        }
    }

    function publish(name, topicId, ctx, pretty)
    {
        if (ctx.rawBody.length > maxRequestBytes) {
            throw invalid(`Request payload size exceeds the limit: ${maxRequestBytes} bytes.`);
        }
        if (!topics.has(name)) {
            if (!autoCreate) throw new GoogleError('NOT_FOUND', `Resource not found (resource=${topicId}).`);
            topics.add(name);
        }
        let body;
        try {
            body = JSON.parse(ctx.rawBody.toString('utf8') || '{}');
        } catch (e) {
            throw invalid(`Invalid JSON payload received. ${e.message}`);
        }
        if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('Invalid JSON payload received. Expected an object.');
        for (const k of Object.keys(body)) {
            if (k !== 'messages') throw invalid(`Invalid JSON payload received. Unknown name "${k}": Cannot find field.`);
        }
        const msgs = body.messages;
        if (msgs !== undefined && !Array.isArray(msgs)) throw invalid(`Invalid value at 'messages' (type.googleapis.com/google.pubsub.v1.PubsubMessage), ${JSON.stringify(msgs)}`);
        const n = msgs ? msgs.length : 0;
        if (n === 0) throw invalid('The value for message_count is too small. You passed 0 in the request, but the minimum value is 1.');
        if (n > maxMessages) {
            throw invalid(`The value for message_count is too large. You passed ${n} in the request, but the maximum value is ${maxMessages}.`);
        }
        const decoded = msgs.map((m, i) => checkMessage(m, i));
        const keys = new Set(decoded.map((m) => m.orderingKey || ''));
        if (keys.size > 1) {
            throw invalid('In a single publish request, all messages must have no ordering key or they must all have the same ordering key.');
        }
        const publishTime = new Date().toISOString();
        const ids = decoded.map((m) => {
            nextId += 1n;
            const rec = { topic: name, topicId, project: name.split('/')[1], messageId: nextId.toString(), publishTime,
                requestSeq: ctx.record.seq, ...m };
            messages.push(rec);
            return rec.messageId;
        });
        return G.googleJson(200, { messageIds: ids }, pretty);
    }

    function checkMessage(m, i)
    {
        const at = `messages[${i}]`;
        if (!m || typeof m !== 'object' || Array.isArray(m)) throw invalid(`Invalid value at '${at}'.`);
        for (const k of Object.keys(m)) {
            if (k === 'messageId' || k === 'publishTime') throw invalid(`${at}.${k} must not be set by the publisher.`);
            if (!['data', 'attributes', 'orderingKey'].includes(k)) {
                throw invalid(`Invalid JSON payload received. Unknown name "${k}" at '${at}': Cannot find field.`);
            }
        }
        let data = Buffer.alloc(0);
        if (m.data !== undefined) {
            if (typeof m.data !== 'string' || !B64.test(m.data)) {
                throw invalid(`Invalid value at '${at}.data' (TYPE_BYTES), Base64 decoding failed for ${JSON.stringify(String(m.data).slice(0, 64))}`);
            }
            data = Buffer.from(m.data, 'base64');
        }
        const attributes = {};
        if (m.attributes !== undefined) {
            if (!m.attributes || typeof m.attributes !== 'object' || Array.isArray(m.attributes)) {
                throw invalid(`Invalid value at '${at}.attributes'.`);
            }
            const entries = Object.entries(m.attributes);
            if (entries.length > 100) throw invalid(`${at} has ${entries.length} attributes; the maximum is 100.`);
            entries.forEach(([k, v], j) => {
                if (typeof v !== 'string') throw invalid(`Invalid value at '${at}.attributes[${j}].value' (TYPE_STRING), ${JSON.stringify(v)}`);
                if (k === '' || Buffer.byteLength(k) > 256) throw invalid(`${at}: attribute key "${k.slice(0, 40)}" must be 1-256 bytes.`);
                if (Buffer.byteLength(v) > 1024) throw invalid(`${at}: attribute "${k}" value is longer than 1024 bytes.`);
                attributes[k] = v;
            });
        }
        if (!data.length && !Object.keys(attributes).length) {
            throw invalid('One or more messages in the publish request is empty. Each message must contain either non-empty data, or at least one attribute.');
        }
        if (m.orderingKey !== undefined && (typeof m.orderingKey !== 'string' || Buffer.byteLength(m.orderingKey) > 1024)) {
            throw invalid(`Invalid value at '${at}.ordering_key'.`);
        }
        const text = data.toString('utf8');
        let json;
        try {
            json = JSON.parse(text);
        } catch {
            json = undefined;
        }
        const out = { data, text, json, attributes };
        if (m.orderingKey) out.orderingKey = m.orderingKey;
        return out;
    }

    async function handle(ctx)
    {
        const pretty = G.prettyFor(ctx.query);
        try {
            const denied = await G.checkAuth(auth, ctx.headers);
            if (denied) throw denied;
            return route(ctx, pretty);
        } catch (e) {
            if (e instanceof GoogleError) {
                return G.googleError(e.status, e.message, pretty, e.status === 'UNAUTHENTICATED' ? G.UNAUTH_HEADERS : {});
            }
            throw e;
        }
    }

    function route(ctx, pretty)
    {
        const m = /^\/v1\/projects\/([^/]+)\/topics(?:\/([^/:]+)(?::(\w+))?)?$/.exec(ctx.path);
        if (!m) throw new GoogleError('NOT_FOUND', `fake pubsub: no route for ${ctx.method} ${ctx.path}`);
        const project = decodeURIComponent(m[1]);
        if (!m[2]) {
            if (ctx.method !== 'GET') throw new GoogleError('NOT_FOUND', `fake pubsub: no route for ${ctx.method} ${ctx.path}`);
            const list = [...topics].filter((t) => t.startsWith(`projects/${project}/topics/`)).sort().map((name) => ({ name }));
            return G.googleJson(200, list.length ? { topics: list } : {}, pretty);
        }
        const topicId = decodeURIComponent(m[2]);
        const name = `projects/${project}/topics/${topicId}`;
        if (m[3]) {
            if (m[3] !== 'publish' || ctx.method !== 'POST') {
                throw new GoogleError('NOT_FOUND', `fake pubsub: no route for ${ctx.method} ${ctx.path}`);
            }
            return publish(name, topicId, ctx, pretty);
        }
        switch (ctx.method) {
        case 'PUT':
            checkTopicId(topicId);
            if (topics.has(name)) throw new GoogleError('ALREADY_EXISTS', 'Topic already exists');
            topics.add(name);
            return G.googleJson(200, { name }, pretty);
        case 'GET':
            if (!topics.has(name)) throw new GoogleError('NOT_FOUND', `Resource not found (resource=${topicId}).`);
            return G.googleJson(200, { name }, pretty);
        case 'DELETE':
            if (!topics.delete(name)) throw new GoogleError('NOT_FOUND', `Resource not found (resource=${topicId}).`);
            return G.googleJson(200, {}, pretty);
        default:
            throw new GoogleError('NOT_FOUND', `fake pubsub: no route for ${ctx.method} ${ctx.path}`);
        }
    }

    function view(m)
    {
        const v = { topic: m.topic, messageId: m.messageId, publishTime: m.publishTime, requestSeq: m.requestSeq,
            data: m.data.toString('base64'), text: m.text, attributes: m.attributes };
        if (m.json !== undefined) v.json = m.json;
        if (m.orderingKey) v.orderingKey = m.orderingKey;
        return v;
    }

    function select(filter = {})
    {
        const t = filter.topic ? topicName(filter.topic) : null;
        return messages.filter((m) => (!t || m.topic === t) &&
            (!filter.eventType || m.attributes.event_type === filter.eventType));
    }

    function waitForMessages(count, filter = {}, timeoutMs = 5000)
    {
        return new Promise((resolve, reject) => {
            const check = () => {
                const got = select(filter);
                if (got.length >= count) {
                    cleanup();
                    resolve(got);
                }
            };
            const timer = setTimeout(() => {
                cleanup();
                reject(new Error(`pubsub fake: waited ${timeoutMs} ms for ${count} message(s) ` +
                    `${JSON.stringify(filter)}, got ${select(filter).length}`));
            }, timeoutMs);
            const cleanup = () => {
                clearTimeout(timer);
                fake.control.events.off('done', check);
            };
            fake.control.events.on('done', check);
            check();
        });
    }

    function snapshot()
    {
        return { projectId, autoCreateTopics: autoCreate, topics: [...topics].sort(), messages: messages.map(view) };
    }

    function admin(a)
    {
        if (a.method === 'GET' && a.sub === '/messages') {
            return jsonReply(200, { messages: select({ topic: a.query.topic, eventType: a.query.event_type }).map(view) });
        }
        if (a.method === 'DELETE' && a.sub === '/messages') {
            messages = [];
            return jsonReply(200, {});
        }
        const t = /^\/topics\/(.+)$/.exec(a.sub);
        if (t && a.method === 'PUT') {
            topics.add(topicName(decodeURIComponent(t[1])));
            return jsonReply(200, {});
        }
        if (t && a.method === 'DELETE') return jsonReply(200, { deleted: topics.delete(topicName(decodeURIComponent(t[1]))) });
        if (a.method === 'POST' && a.sub === '/auto-create') {
            autoCreate = !!a.body.enabled;
            return jsonReply(200, {});
        }
        if (a.sub.startsWith('/topics') || a.sub.startsWith('/messages')) throw new HttpError(405, 'method not allowed');
        return undefined;
    }

    const fake = await startFakeServer({
        name: 'pubsub',
        host: opts.host,
        port: opts.port,
        handle,
        admin,
        presets: {
            UNAVAILABLE: G.preset('UNAVAILABLE'),
            DEADLINE_EXCEEDED: G.preset('DEADLINE_EXCEEDED'),
            RESOURCE_EXHAUSTED: G.preset('RESOURCE_EXHAUSTED'),
            INTERNAL: G.preset('INTERNAL'),
            ABORTED: G.preset('ABORTED', 'The operation was aborted.'),
            CANCELLED: G.preset('CANCELLED'),
            PERMISSION_DENIED: G.preset('PERMISSION_DENIED', "User not authorized to perform this action."),
        },
        errorFor: G.errorForStatus,
        snapshot,
        maxBodyBytes: Math.max(maxRequestBytes * 2, 32 * 1024 * 1024),
        onReset() {
            seed();
            messages = [];
            autoCreate = !!opts.autoCreateTopics;
        },
    });
    Object.assign(fake.control, {
        projectId,
        /* recorded messages [{topic, messageId, data (Buffer), text, json?, attributes,
         * orderingKey?, publishTime, requestSeq}], optionally {topic, eventType} */
        messages: select,
        clearMessages() {
            messages = [];
        },
        waitForMessages,
        topics() {
            return [...topics].sort();
        },
        createTopic(t) {
            topics.add(topicName(t));
        },
        deleteTopic(t) {
            return topics.delete(topicName(t));
        },
        setAutoCreate(on) {
            autoCreate = !!on;
        },
    });
    return fake;
}

module.exports = { startPubsub };
