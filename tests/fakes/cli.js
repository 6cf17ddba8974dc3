#!/usr/bin/env node
'use strict';
/*
 * Run fake cloud servers standalone (manual testing, or tests in another process
 * driving them through /__fake/...).
 *
 *   node tests/fakes/cli.js firestore|sfu|pubsub|auth|all [options]
 *
 *   --port N              listen port (single fake only; default 0 = any free port)
 *   --host H              listen address (default 127.0.0.1)
 *   --config JSON|@file   options: for one fake its option object, for "all"
 *                         {"firestore": {...}, "sfu": {...}, "pubsub": {...}, "auth": {...}}
 *   --key-file PATH       (auth/all) write a service-account key registered with the
 *                         auth fake, token_uri pointing at it
 *
 * Prints one JSON line per fake on stdout ({fake, url, port, env}) then runs until
 * SIGINT/SIGTERM.  With "all", Firestore accepts "Bearer owner" and tokens issued by
 * the auth fake; Pub/Sub does not check auth unless configured.
 */

const fs = require('node:fs');
const { startFirestore, startCloudflareSfu, startPubsub, startGoogleAuth } = require('./index');
const { writeServiceAccountKeyFile } = require('./google_auth');

function usage(msg)
{
    if (msg) process.stderr.write(`cli: ${msg}\n`);
    process.stderr.write('usage: node tests/fakes/cli.js firestore|sfu|pubsub|auth|all ' +
        '[--port N] [--host H] [--config JSON|@file] [--key-file PATH]\n');
    process.exit(2);
}

function parseArgs(argv)
{
    const a = { which: argv[0], port: 0, host: '127.0.0.1', config: {}, keyFile: null };
    if (!a.which || a.which.startsWith('-')) usage('which fake?');
    for (let i = 1; i < argv.length; i++) {
        const k = argv[i];
        const v = argv[i + 1];
        if (v === undefined) usage(`${k} needs a value`);
        i += 1;
        if (k === '--port') a.port = Number(v);
        else if (k === '--host') a.host = v;
        else if (k === '--key-file') a.keyFile = v;
        else if (k === '--config') {
            const text = v.startsWith('@') ? fs.readFileSync(v.slice(1), 'utf8') : v;
            try {
                a.config = JSON.parse(text);
            } catch (e) {
                usage(`--config is not JSON: ${e.message}`);
            }
        } else usage(`unknown option ${k}`);
    }
    return a;
}

function describe(kind, f)
{
    const env = {};
    if (kind === 'firestore') env.FIRESTORE_EMULATOR_HOST = `${f.host}:${f.port}`;
    if (kind === 'pubsub') env.PUBSUB_EMULATOR_HOST = `${f.host}:${f.port}`;
    if (kind === 'auth') env.GCE_METADATA_HOST = `${f.host}:${f.port}`;
    if (kind === 'sfu') Object.assign(env, { base_url: `${f.url}/v1`, app_id: f.appId, app_token: f.appSecret });
    return { fake: kind, url: f.url, port: f.port, env };
}

async function main()
{
    const a = parseArgs(process.argv.slice(2));
    const fakes = [];
    const start = async (kind, opts) => {
        const o = { host: a.host, ...opts };
        if (a.which !== 'all') o.port = a.port;
        const fn = { firestore: startFirestore, sfu: startCloudflareSfu, pubsub: startPubsub, auth: startGoogleAuth }[kind];
        const f = await fn(o);
        fakes.push(f);
        process.stdout.write(JSON.stringify(describe(kind, f)) + '\n');
        return f;
    };
    let auth = null;
    if (a.which === 'all') {
        const c = a.config;
        auth = await start('auth', c.auth || {});
        await start('firestore', { auth: { owner: true, issuer: auth }, ...(c.firestore || {}) });
        await start('pubsub', c.pubsub || {});
        await start('sfu', c.sfu || {});
    } else if (['firestore', 'sfu', 'pubsub', 'auth'].includes(a.which)) {
        const f = await start(a.which, a.config);
        if (a.which === 'auth') auth = f;
    } else {
        usage(`unknown fake "${a.which}"`);
    }
    if (a.keyFile) {
        if (!auth) usage('--key-file needs the auth fake (auth or all)');
        const sa = writeServiceAccountKeyFile(a.keyFile, auth.control.createServiceAccount());
        process.stdout.write(JSON.stringify({ keyFile: sa.path, clientEmail: sa.clientEmail }) + '\n');
    }
    const stop = async () => {
        await Promise.all(fakes.map((f) => f.close()));
        process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
}

main().catch((e) => {
    process.stderr.write(`cli: ${e.stack || e}\n`);
    process.exit(1);
});
