'use strict';
/* auth.auth_method=jwt (DECISIONS.md §8). */

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, runServer, TEST_TIMEOUT } = require('./lib/harness');
const { T, PROTOCOL_VERSION, signJwt, b64url, expectError, describe: desc, terminateAllClients } = require('./lib/client');

const opts = { timeout: TEST_TIMEOUT };
const SECRET = `it-jwt-secret-${crypto.randomBytes(16).toString('hex')}`;
const EXPIRY = 600;

const now = () => Math.floor(Date.now() / 1000);

function claims(sub, extra = {})
{
    const iat = now();
    return { sub, iat, exp: iat + 300, ...extra };
}

function jwtEnv(method = 'jwt', extra = {})
{
    return {
        SIGNAL_MANAGER_STORE_BACKEND: 'memory',
        SIGNAL_MANAGER_AUTH_AUTH_METHOD: method,
        SIGNAL_MANAGER_AUTH_TOKEN_SECRET: SECRET,
        SIGNAL_MANAGER_AUTH_TOKEN_EXPIRY: String(EXPIRY),
        ...extra,
    };
}

async function tryConnect(srv, clientId, token)
{
    const c = srv.client();
    await c.connect();
    const f = await c.request(T.CONNECT, { client_id: clientId, auth_token: token, version: PROTOCOL_VERSION });
    return { c, f };
}

function uid()
{
    return `jwt-user-${crypto.randomBytes(4).toString('hex')}`;
}

describe('auth_method=jwt', () => {
    let srv;
    before(async () => {
        srv = await startServer(null, { env: jwtEnv() });
    });
    after(async () => {
        terminateAllClients();
        if (srv) {
            await srv.stop();
            assert.ok(!srv.stderr.includes(SECRET), 'the token secret never appears in the log');
        }
    });

    const accepted = async (clientId, token) => {
        const { c, f } = await tryConnect(srv, clientId, token);
        assert.equal(f.type, T.CONNECT_ACK, `expected CONNECT_ACK, got ${desc(f)}`);
        return c;
    };
    const refused = async (clientId, token) => {
        const { f } = await tryConnect(srv, clientId, token);
        expectError(f, 401);
    };

    it('a valid token connects any client_id and registers', opts, async () => {
        const id = uid();
        const token = signJwt(claims(id), SECRET);
        const c = await accepted(id, token);
        const r = await c.request(T.REGISTER, { version: PROTOCOL_VERSION, client_id: id, auth_token: token });
        assert.equal(r.type, T.REGISTER_ACK, desc(r));
        assert.equal(r.json.client_id, id);
        /* a second identity at the same time */
        const id2 = uid();
        await accepted(id2, signJwt(claims(id2), SECRET));
    });

    it('expired token -> 401 (past the 30 s skew)', opts, async () => {
        const id = uid();
        await refused(id, signJwt(claims(id, { iat: now() - 400, exp: now() - 120 }), SECRET));
    });

    it('token expired less than the 30 s skew ago is accepted', opts, async () => {
        const id = uid();
        await accepted(id, signJwt(claims(id, { iat: now() - 300, exp: now() - 5 }), SECRET));
    });

    it('wrong secret -> 401', opts, async () => {
        const id = uid();
        await refused(id, signJwt(claims(id), `${SECRET}-other`));
        await refused(id, signJwt(claims(id), 'x'.repeat(40)));
    });

    it('sub different from client_id -> 401', opts, async () => {
        const id = uid();
        await refused(id, signJwt(claims(`${id}-other`), SECRET));
        await refused(id, signJwt(claims(undefined), SECRET));
    });

    it('lifetime above token_expiry -> 401; exactly token_expiry is accepted', opts, async () => {
        const id = uid();
        const iat = now();
        await refused(id, signJwt(claims(id, { iat, exp: iat + EXPIRY + 1 }), SECRET));
        await refused(id, signJwt(claims(id, { iat: iat - 3000, exp: iat + 3000 }), SECRET));
        await accepted(id, signJwt(claims(id, { iat, exp: iat + EXPIRY }), SECRET));
    });

    it('missing exp -> 401', opts, async () => {
        const id = uid();
        const c = claims(id);
        delete c.exp;
        await refused(id, signJwt(c, SECRET));
    });

    it('nbf is honoured (future -> 401; within the skew -> ok)', opts, async () => {
        const id = uid();
        await refused(id, signJwt(claims(id, { nbf: now() + 200 }), SECRET));
        await accepted(id, signJwt(claims(id, { nbf: now() + 5 }), SECRET));
        await accepted(id, signJwt(claims(id, { nbf: now() - 5 }), SECRET));
    });

    it('malformed, tampered, alg none or alg mismatch -> 401', opts, async () => {
        const id = uid();
        const good = signJwt(claims(id), SECRET);
        const [h, , s] = good.split('.');
        const tampered = `${h}.${b64url(JSON.stringify(claims(uid())))}.${s}`;
        const none = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims(id)))}.`;
        const hs384 = signJwt(claims(id), SECRET, { alg: 'HS384', typ: 'JWT' });
        for (const token of ['abc', 'a.b', 'a.b.c', `${good}x`, good.slice(0, -2), tampered, none, hs384, '']) {
            const { f } = await tryConnect(srv, id, token);
            try {
                assert.equal(f.type, T.ERROR, desc(f));
                assert.ok([400, 401].includes(f.json.error_code), desc(f));
                if (token !== '') assert.equal(f.json.error_code, 401, desc(f));
            } catch (e) {
                throw new Error(`token ${JSON.stringify(token.slice(0, 40))}: ${e.message}`);
            }
        }
    });

    it('api keys are not accepted when only jwt is configured', opts, async () => {
        await refused('test_client_1', 'test_token_1');
    });

    it('REGISTER with an expired token -> 401', opts, async () => {
        const id = uid();
        const c = await accepted(id, signJwt(claims(id), SECRET));
        const old = signJwt(claims(id, { iat: now() - 400, exp: now() - 120 }), SECRET);
        const f = await c.request(T.REGISTER, { version: PROTOCOL_VERSION, client_id: id, auth_token: old });
        expectError(f, 401);
    });
});

describe('auth_method=token,jwt', () => {
    let srv;
    before(async () => {
        srv = await startServer(null, { env: jwtEnv('token,jwt') });
    });
    after(async () => {
        terminateAllClients();
        if (srv) await srv.stop();
    });

    it('both api keys and JWTs are accepted', opts, async () => {
        const { f } = await tryConnect(srv, 'test_client_1', 'test_token_1');
        assert.equal(f.type, T.CONNECT_ACK, desc(f));
        const id = uid();
        const { f: g } = await tryConnect(srv, id, signJwt(claims(id), SECRET));
        assert.equal(g.type, T.CONNECT_ACK, desc(g));
        const { f: bad } = await tryConnect(srv, id, signJwt(claims(id), 'y'.repeat(40)));
        expectError(bad, 401);
    });
});

describe('jwt configuration errors', () => {
    it('a token_secret shorter than 32 bytes is refused, naming the key, without echoing it', opts, async () => {
        const short = 'short-secret-abc';
        const r = await runServer({ env: { ...jwtEnv(), SIGNAL_MANAGER_AUTH_TOKEN_SECRET: short } });
        assert.equal(r.listening, false, 'server started with a short secret');
        assert.notEqual(r.code, 0);
        assert.match(r.stderr + r.stdout, /token_secret/i);
        assert.ok(!(r.stderr + r.stdout).includes(short), 'secret not printed');
    });

    it('jwt without a token_secret is refused', opts, async () => {
        const r = await runServer({ env: { ...jwtEnv(), SIGNAL_MANAGER_AUTH_TOKEN_SECRET: null } });
        assert.equal(r.listening, false, 'server started without a secret');
        assert.notEqual(r.code, 0);
        assert.match(r.stderr + r.stdout, /token_secret/i);
    });

    it('an unknown auth method is refused', opts, async () => {
        const r = await runServer({ env: { ...jwtEnv('token,kerberos') } });
        assert.equal(r.listening, false);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr + r.stdout, /auth_method/i);
    });
});
