'use strict';
/*
 * Fake Google credentials endpoints (cloud-apis.md §4): the OAuth token endpoint
 * of the service-account JWT flow and the GCE/Cloud Run metadata server, on one
 * http.Server, plus helpers that make throwaway service-account key files.
 *
 *   const ga = await startGoogleAuth({ projectId });
 *   const sa = ga.control.createServiceAccount();   // key registered with the fake
 *   fs.writeFileSync(path, sa.keyFileText);         // GOOGLE_APPLICATION_CREDENTIALS
 *   GCE_METADATA_HOST = `127.0.0.1:${ga.port}`
 *
 * Token endpoint: POST {url}/token, form-encoded only,
 *   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>.
 *   The JWT signature is verified (node:crypto) against the public key registered
 *   for its `iss` (and `kid` when given); aud must be the token URI
 *   (https://oauth2.googleapis.com/token or this fake's {url}/token, or opts.audiences);
 *   scope must be non-empty; exp - iat <= 3600 s, iat not in the future and exp not
 *   in the past (opts.clockSkewSec, default 60 s).  -> 200 {access_token,
 *   expires_in, token_type:"Bearer"}.  Errors are OAuth JSON {error, error_description}.
 * Metadata server: GET /computeMetadata/v1/... requires `Metadata-Flavor: Google`
 *   (else 403 text "Missing Metadata-Flavor:Google header."), echoes that header;
 *   instance/service-accounts/{default|email}/token[?scopes=a,b] (cached token,
 *   expires_in counts down), .../email, project/project-id, project/numeric-project-id.
 * Tokens issued by either path are known to control.validateToken(token) and
 *   GET /__fake/tokeninfo?access_token=..., which the Firestore/Pub/Sub fakes use
 *   with auth: {issuer}.
 */

const crypto = require('node:crypto');
const { startFakeServer, jsonReply, textReply, HttpError, queryOne } = require('./http');

const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const DEFAULT_SCOPES = ['https://www.googleapis.com/auth/cloud-platform'];
const MSG = Object.freeze({
    signature: 'Invalid JWT Signature.',
    time: 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. ' +
        'Check your iat and exp values in the JWT claim.',
    account: 'Invalid grant: account not found',
    scope: 'Empty or missing scope not allowed.',
});

function b64url(buf)
{
    return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function b64urlDecode(s)
{
    if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
    return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/* RS256 compact JWS (tests use it to forge good and bad assertions). */
function signJwt(claims, privateKeyPem, header = {})
{
    const h = { alg: 'RS256', typ: 'JWT', ...header };
    const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(claims))}`;
    const sig = crypto.sign('RSA-SHA256', Buffer.from(input), privateKeyPem);
    return `${input}.${b64url(sig)}`;
}

/*
 * A throwaway service-account key (RSA 2048) in the key-file format of §4.2.
 * opts: projectId, clientEmail, tokenUri, keyId.
 * Returns {key (the JSON object), keyFileText, privateKeyPem, publicKeyPem, keyId, clientEmail}.
 */
function generateServiceAccountKey(opts = {})
{
    const projectId = opts.projectId || 'test-project';
    const name = opts.accountName || `sm-test-${crypto.randomBytes(3).toString('hex')}`;
    const clientEmail = opts.clientEmail || `${name}@${projectId}.iam.gserviceaccount.com`;
    const keyId = opts.keyId || crypto.randomBytes(20).toString('hex');
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' });
    const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' });
    const key = {
        type: 'service_account',
        project_id: projectId,
        private_key_id: keyId,
        private_key: privateKeyPem,
        client_email: clientEmail,
        client_id: '1' + Array.from(crypto.randomBytes(20), (b) => b % 10).join(''),
        auth_uri: 'https://accounts.google.com/o/oauth2/auth',
        token_uri: opts.tokenUri || GOOGLE_TOKEN_URI,
        auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
        client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(clientEmail)}`,
        universe_domain: 'googleapis.com',
    };
    return { key, keyFileText: JSON.stringify(key, null, 2) + '\n', privateKeyPem, publicKeyPem, keyId, clientEmail };
}

/* Write a generated key to `path` (mode 0600); returns generateServiceAccountKey's result + path. */
function writeServiceAccountKeyFile(path, opts = {})
{
    const sa = opts.key ? opts : generateServiceAccountKey(opts);
    require('node:fs').writeFileSync(path, sa.keyFileText, { mode: 0o600 });
    return { ...sa, path };
}

function oauthError(status, error, description)
{
    return jsonReply(status, { error, error_description: description }, { 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate' });
}

/*
 * opts:
 *   projectId            metadata project-id (default "test-project")
 *   numericProjectId     default "123456789012"
 *   serviceAccountEmail  metadata default account (default "default-sa@<project>.iam.gserviceaccount.com")
 *   metadataScopes       scopes of metadata tokens when ?scopes= is absent (default cloud-platform)
 *   tokenLifetimeSec     expires_in of new tokens (default 3599)
 *   audiences            extra accepted JWT aud values
 *   clockSkewSec         tolerance for iat in the future / exp in the past (default 60)
 *   host, port
 */
async function startGoogleAuth(opts = {})
{
    const projectId = opts.projectId || 'test-project';
    const numericProjectId = opts.numericProjectId || '123456789012';
    const saEmail = opts.serviceAccountEmail || `default-sa@${projectId}.iam.gserviceaccount.com`;
    const metadataScopes = opts.metadataScopes || DEFAULT_SCOPES;
    let lifetime = opts.tokenLifetimeSec || 3599;
    const skew = opts.clockSkewSec === undefined ? 60 : opts.clockSkewSec;
    const keys = new Map();        /* client_email -> [{keyId, publicKey}] */
    const tokens = new Map();      /* access_token -> {source, email, scopes, issuedAt, expiresAt, revoked} */
    const metadataCache = new Map();  /* scope key -> token */
    let fake;

    function issue(source, email, scopes)
    {
        const token = `ya29.fake-${crypto.randomBytes(24).toString('base64url')}`;
        const now = Date.now();
        tokens.set(token, { source, email, scopes, issuedAt: now, expiresAt: now + lifetime * 1000, revoked: false });
        return token;
    }

    function validateToken(token)
    {
        const t = tokens.get(token);
        if (!t) return { valid: false, reason: 'unknown token' };
        if (t.revoked) return { valid: false, reason: 'revoked' };
        if (Date.now() >= t.expiresAt) return { valid: false, reason: 'expired' };
        return { valid: true, email: t.email, scopes: t.scopes, source: t.source,
            expiresIn: Math.floor((t.expiresAt - Date.now()) / 1000) };
    }

    function registerKey({ clientEmail, publicKeyPem, keyId })
    {
        if (!clientEmail || !publicKeyPem) throw new Error('registerKey needs clientEmail and publicKeyPem');
        const publicKey = crypto.createPublicKey(publicKeyPem);
        const list = keys.get(clientEmail) || [];
        list.push({ keyId: keyId || null, publicKey });
        keys.set(clientEmail, list);
    }

    function tokenEndpoint(ctx)
    {
        if (ctx.method !== 'POST') return oauthError(405, 'invalid_request', 'Token endpoint accepts POST only.');
        const ct = String(ctx.headers['content-type'] || '').toLowerCase();
        if (!ct.startsWith('application/x-www-form-urlencoded')) {
            return oauthError(400, 'invalid_request', 'Invalid Content-Type; expected application/x-www-form-urlencoded.');
        }
        const form = new URLSearchParams(ctx.rawBody.toString('utf8'));
        const grant = form.get('grant_type');
        if (!grant) return oauthError(400, 'invalid_request', 'Missing required parameter: grant_type');
        if (grant !== JWT_GRANT) return oauthError(400, 'unsupported_grant_type', `Invalid grant_type: ${grant}`);
        const assertion = form.get('assertion');
        if (!assertion) return oauthError(400, 'invalid_request', 'Missing required parameter: assertion');
        const parts = assertion.split('.');
        let header;
        let claims;
        try {
            if (parts.length !== 3) throw new Error('3 parts');
            header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
            claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
        } catch {
            return oauthError(400, 'invalid_grant', 'Invalid JWT: the assertion is not a well-formed compact JWS.');
        }
        if (header.alg !== 'RS256') return oauthError(400, 'invalid_grant', MSG.signature);
        const list = keys.get(claims.iss);
        if (!list || !list.length) return oauthError(400, 'invalid_grant', MSG.account);
        const candidates = header.kid ? list.filter((k) => k.keyId === null || k.keyId === header.kid) : list;
        let sig;
        try {
            sig = b64urlDecode(parts[2]);
        } catch {
            return oauthError(400, 'invalid_grant', MSG.signature);
        }
        const input = Buffer.from(`${parts[0]}.${parts[1]}`);
        if (!candidates.some((k) => crypto.verify('RSA-SHA256', input, k.publicKey, sig))) {
            return oauthError(400, 'invalid_grant', MSG.signature);
        }
        const auds = [GOOGLE_TOKEN_URI, `${fake.url}/token`, ...(opts.audiences || [])];
        if (!auds.includes(claims.aud)) {
            return oauthError(400, 'invalid_grant', `Invalid JWT: Failed audience check. The right audience is ${GOOGLE_TOKEN_URI}`);
        }
        const now = Math.floor(Date.now() / 1000);
        const { iat, exp } = claims;
        if (!Number.isInteger(iat) || !Number.isInteger(exp) || exp <= iat || exp - iat > 3600 ||
            iat > now + skew || exp < now - skew) {
            return oauthError(400, 'invalid_grant', MSG.time);
        }
        if (claims.sub !== undefined && claims.sub !== claims.iss) {
            return oauthError(401, 'unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method, ' +
                'or client not authorized for any of the scopes requested.');
        }
        if (typeof claims.scope !== 'string' || !claims.scope.trim()) return oauthError(400, 'invalid_scope', MSG.scope);
        const scopes = claims.scope.trim().split(/\s+/);
        if (scopes.some((s) => !/^https:\/\/www\.googleapis\.com\/auth\/[\w.-]+$/.test(s))) {
            return oauthError(400, 'invalid_scope', 'Invalid OAuth scope or ID token audience provided.');
        }
        const token = issue('jwt', claims.iss, scopes);
        return jsonReply(200, { access_token: token, expires_in: lifetime, token_type: 'Bearer' },
            { 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate' });
    }

    function metadata(ctx)
    {
        const flavor = { 'metadata-flavor': 'Google' };
        if (ctx.method !== 'GET') return textReply(405, 'Method not allowed\n', flavor);
        if (String(ctx.headers['metadata-flavor'] || '') !== 'Google') {
            return { status: 403, headers: { 'content-type': 'text/html; charset=UTF-8', ...flavor },
                body: 'Missing Metadata-Flavor:Google header.\n' };
        }
        const p = ctx.path.replace(/^\/computeMetadata\/v1\//, '');
        if (p === 'project/project-id') return textReply(200, projectId, { 'content-type': 'application/text', ...flavor });
        if (p === 'project/numeric-project-id') return textReply(200, numericProjectId, { 'content-type': 'application/text', ...flavor });
        const m = /^instance\/service-accounts\/([^/]+)\/(token|email|scopes)$/.exec(p);
        if (m && (m[1] === 'default' || decodeURIComponent(m[1]) === saEmail)) {
            const txt = (s) => textReply(200, s, { 'content-type': 'application/text', ...flavor });
            if (m[2] === 'email') return txt(saEmail);
            if (m[2] === 'scopes') return txt(metadataScopes.join('\n') + '\n');
            const q = queryOne(ctx.query, 'scopes');
            const scopes = q ? q.split(',').map((s) => s.trim()).filter(Boolean) : metadataScopes;
            const ck = scopes.slice().sort().join(' ');
            let token = metadataCache.get(ck);
            let info = token && validateToken(token);
            if (!info || !info.valid || info.expiresIn < 300) {
                token = issue('metadata', saEmail, scopes);
                metadataCache.set(ck, token);
                info = validateToken(token);
            }
            return jsonReply(200, { access_token: token, expires_in: info.expiresIn, token_type: 'Bearer' }, flavor);
        }
        return { status: 404, headers: { 'content-type': 'text/html; charset=UTF-8', ...flavor }, body: 'Not Found\n' };
    }

    function handle(ctx)
    {
        if (ctx.path === '/token') return tokenEndpoint(ctx);
        if (ctx.path.startsWith('/computeMetadata/v1/')) return metadata(ctx);
        if (ctx.path === '/' && ctx.method === 'GET' && ctx.headers['metadata-flavor'] === 'Google') {
            return textReply(200, 'computeMetadata/\n', { 'metadata-flavor': 'Google' });
        }
        return textReply(404, 'Not Found\n');
    }

    function createServiceAccount(o = {})
    {
        const sa = generateServiceAccountKey({ projectId, tokenUri: `${fake.url}/token`, ...o });
        registerKey(sa);
        return sa;
    }

    function snapshot()
    {
        return {
            projectId,
            serviceAccounts: [...keys.keys()],
            tokens: [...tokens.entries()].map(([token, t]) => ({ token, ...t, valid: validateToken(token).valid })),
        };
    }

    function admin(a)
    {
        const b = a.body;
        if (a.method === 'GET' && a.sub === '/tokeninfo') {
            return jsonReply(200, validateToken(String(a.query.access_token || '')));
        }
        if (a.method === 'POST' && a.sub === '/keys') {
            try {
                registerKey(b);
            } catch (e) {
                throw new HttpError(400, e.message);
            }
            return jsonReply(200, {});
        }
        if (a.method === 'POST' && a.sub === '/service-accounts') return jsonReply(200, createServiceAccount(b));
        if (a.method === 'POST' && a.sub === '/expire-tokens') return jsonReply(200, { expired: expireTokens() });
        if (a.method === 'POST' && a.sub === '/revoke') return jsonReply(200, { revoked: revokeToken(b.token) });
        if (a.method === 'POST' && a.sub === '/token-lifetime') {
            lifetime = Number(b.seconds) || 3599;
            return jsonReply(200, {});
        }
        return undefined;
    }

    function expireTokens()
    {
        let n = 0;
        for (const t of tokens.values()) {
            if (t.expiresAt > Date.now()) {
                t.expiresAt = Date.now();
                n += 1;
            }
        }
        metadataCache.clear();
        return n;
    }

    function revokeToken(token)
    {
        const t = tokens.get(token);
        if (!t) return false;
        t.revoked = true;
        return true;
    }

    fake = await startFakeServer({
        name: 'google-auth',
        host: opts.host,
        port: opts.port,
        handle,
        admin,
        presets: {
            server_error: { status: 500, body: { error: 'internal_failure', error_description: 'Backend Error' } },
            unavailable: { status: 503, body: { error: 'temporarily_unavailable', error_description: 'Service unavailable' } },
        },
        errorFor: (status) => ({ status, body: { error: status >= 500 ? 'internal_failure' : 'invalid_request', error_description: `Injected ${status}` } }),
        snapshot,
        onReset() {
            tokens.clear();
            metadataCache.clear();
            lifetime = opts.tokenLifetimeSec || 3599;
        },
    });
    Object.assign(fake.control, {
        projectId,
        tokenUri: `${fake.url}/token`,
        metadataHost: `${fake.host}:${fake.port}`,
        serviceAccountEmail: saEmail,
        /* generate + register a key; {key, keyFileText, privateKeyPem, publicKeyPem, keyId, clientEmail} */
        createServiceAccount,
        registerKey,
        /* -> {valid, email, scopes, source, expiresIn} | {valid:false, reason} */
        validateToken,
        tokens() {
            return snapshot().tokens;
        },
        /* every token issued so far expires now (the next API call gets 401) */
        expireTokens,
        revokeToken,
        setTokenLifetime(sec) {
            lifetime = Number(sec);
        },
    });
    Object.assign(fake, { tokenUri: `${fake.url}/token`, metadataHost: `${fake.host}:${fake.port}` });
    return fake;
}

module.exports = {
    startGoogleAuth,
    generateServiceAccountKey,
    writeServiceAccountKeyFile,
    signJwt,
    GOOGLE_TOKEN_URI,
    JWT_GRANT,
};
