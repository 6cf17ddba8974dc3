'use strict';
/* Fake Google auth: JWT-bearer token endpoint, metadata server, key generation,
 * and Firestore accepting the issued tokens. */

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startGoogleAuth, generateServiceAccountKey, writeServiceAccountKeyFile, signJwt, JWT_GRANT } = require('../google_auth');
const { startFirestore } = require('../firestore');
const { request } = require('../http');

const SCOPE = 'https://www.googleapis.com/auth/datastore https://www.googleapis.com/auth/pubsub';

/* One auth fake and one key for the whole file: RSA key generation is the slow part. */
let ga;
let sa;
test.before(async () => {
    ga = await startGoogleAuth({ projectId: 'proj-x' });
    sa = ga.control.createServiceAccount();
});
test.after(() => ga.close());

function claims(over = {})
{
    const now = Math.floor(Date.now() / 1000);
    return { iss: sa.clientEmail, scope: SCOPE, aud: sa.key.token_uri, iat: now, exp: now + 3600, ...over };
}

/* flip one full-6-bit character in the middle of the signature */
function tamper(jwt)
{
    const [h, c, sig] = jwt.split('.');
    const i = 10;
    return `${h}.${c}.${sig.slice(0, i)}${sig[i] === 'A' ? 'B' : 'A'}${sig.slice(i + 1)}`;
}

function exchange(assertion, contentType = 'application/x-www-form-urlencoded', grant = JWT_GRANT)
{
    const body = `grant_type=${encodeURIComponent(grant)}&assertion=${encodeURIComponent(assertion)}`;
    return request(ga.tokenUri, { method: 'POST', headers: { 'content-type': contentType }, body });
}

test('key file has the documented fields', () => {
    const k = sa.key;
    assert.equal(k.type, 'service_account');
    assert.equal(k.project_id, 'proj-x');
    assert.match(k.private_key, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(k.private_key_id, sa.keyId);
    assert.match(k.client_email, /@proj-x\.iam\.gserviceaccount\.com$/);
    assert.match(k.client_id, /^\d{21}$/);
    assert.equal(k.token_uri, `${ga.url}/token`);
    assert.ok(k.auth_uri && k.auth_provider_x509_cert_url && k.client_x509_cert_url);
    assert.ok(sa.keyFileText.includes('\\n'), 'PEM newlines are JSON escapes in the file');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-sa-'));
    try {
        const w = writeServiceAccountKeyFile(path.join(dir, 'k.json'), sa);
        assert.deepEqual(JSON.parse(fs.readFileSync(w.path, 'utf8')), sa.key);
        assert.equal(fs.statSync(w.path).mode & 0o777, 0o600);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('token endpoint: valid RS256 assertion -> access token', async () => {
    const r = await exchange(signJwt(claims(), sa.privateKeyPem, { kid: sa.keyId }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.token_type, 'Bearer');
    assert.equal(r.json.expires_in, 3599);
    assert.match(r.json.access_token, /^ya29\./);
    const info = ga.control.validateToken(r.json.access_token);
    assert.equal(info.valid, true);
    assert.deepEqual(info.scopes, SCOPE.split(' '));
    const alt = await exchange(signJwt(claims({ aud: 'https://oauth2.googleapis.com/token' }), sa.privateKeyPem));
    assert.equal(alt.status, 200, 'the official token URI is accepted as aud too');
});

test('token endpoint errors are OAuth JSON', async () => {
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const now = Math.floor(Date.now() / 1000);
    const cases = [
        [signJwt(claims(), other), 400, 'invalid_grant', 'Invalid JWT Signature.'],
        [tamper(signJwt(claims(), sa.privateKeyPem)), 400, 'invalid_grant', 'Invalid JWT Signature.'],
        [signJwt(claims({ iat: now - 7200, exp: now - 3600 }), sa.privateKeyPem), 400, 'invalid_grant', /short-lived token \(60 minutes\)/],
        [signJwt(claims({ exp: now + 7200 }), sa.privateKeyPem), 400, 'invalid_grant', /short-lived token/],
        [signJwt(claims({ iat: now + 600, exp: now + 1200 }), sa.privateKeyPem), 400, 'invalid_grant', /short-lived token/],
        [signJwt(claims({ aud: 'https://example.com/' }), sa.privateKeyPem), 400, 'invalid_grant', /audience/],
        [signJwt(claims({ iss: 'nobody@x.iam.gserviceaccount.com' }), sa.privateKeyPem), 400, 'invalid_grant', 'Invalid grant: account not found'],
        [signJwt(claims({ scope: '' }), sa.privateKeyPem), 400, 'invalid_scope', 'Empty or missing scope not allowed.'],
        ['not.a.jwt', 400, 'invalid_grant', /well-formed/],
    ];
    for (const [assertion, status, error, desc] of cases) {
        const r = await exchange(assertion);
        assert.equal(r.status, status, `${error} ${desc}`);
        assert.equal(r.json.error, error);
        if (desc instanceof RegExp) assert.match(r.json.error_description, desc);
        else assert.equal(r.json.error_description, desc);
    }
    const json = await request(ga.tokenUri, { method: 'POST', body: { grant_type: JWT_GRANT, assertion: signJwt(claims(), sa.privateKeyPem) } });
    assert.equal(json.status, 400, 'JSON body refused: form-encoded only');
    assert.equal(json.json.error, 'invalid_request');
    const grant = await exchange(signJwt(claims(), sa.privateKeyPem), undefined, 'client_credentials');
    assert.equal(grant.json.error, 'unsupported_grant_type');
});

test('metadata server: Metadata-Flavor required and echoed, token cached with countdown, project id', async () => {
    const base = `${ga.url}/computeMetadata/v1`;
    const no = await request(`${base}/instance/service-accounts/default/token`);
    assert.equal(no.status, 403);
    assert.equal(no.text, 'Missing Metadata-Flavor:Google header.\n');
    const H = { 'metadata-flavor': 'Google' };
    const t1 = await request(`${base}/instance/service-accounts/default/token`, { headers: H });
    assert.equal(t1.status, 200);
    assert.equal(t1.headers['metadata-flavor'], 'Google');
    assert.equal(t1.json.token_type, 'Bearer');
    assert.ok(t1.json.expires_in > 3500 && t1.json.expires_in <= 3599);
    const t2 = await request(`${base}/instance/service-accounts/default/token`, { headers: H });
    assert.equal(t2.json.access_token, t1.json.access_token, 'cached');
    const scoped = await request(`${base}/instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/pubsub`, { headers: H });
    assert.notEqual(scoped.json.access_token, t1.json.access_token);
    assert.deepEqual(ga.control.validateToken(scoped.json.access_token).scopes, ['https://www.googleapis.com/auth/pubsub']);
    const pid = await request(`${base}/project/project-id`, { headers: H });
    assert.equal(pid.text, 'proj-x');
    assert.equal(pid.headers['metadata-flavor'], 'Google');
    const email = await request(`${base}/instance/service-accounts/default/email`, { headers: H });
    assert.equal(email.text, ga.control.serviceAccountEmail);
});

test('Firestore accepts tokens issued by the auth fake (in-process and via URL); expiry -> 401', async (t) => {
    const store = await startFirestore({ auth: { issuer: ga } });
    const viaUrl = await startFirestore({ auth: { issuer: ga.url, owner: false } });
    t.after(() => Promise.all([store.close(), viaUrl.close()]));
    const tok = (await exchange(signJwt(claims(), sa.privateKeyPem))).json.access_token;
    const get = (f, token) => request(`${f.url}/v1/projects/p/databases/(default)/documents/a/b`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await get(store, tok)).status, 404);
    assert.equal((await get(viaUrl, tok)).status, 404);
    assert.equal((await get(viaUrl, 'owner')).status, 401, 'owner refused when owner:false');
    const meta = (await request(`${ga.url}/computeMetadata/v1/instance/service-accounts/default/token`,
        { headers: { 'metadata-flavor': 'Google' } })).json.access_token;
    assert.equal((await get(store, meta)).status, 404, 'metadata token has cloud-platform scope');
    ga.control.expireTokens();
    const expired = await get(store, tok);
    assert.equal(expired.status, 401);
    assert.equal(expired.json.error.status, 'UNAUTHENTICATED');
});

test('generateServiceAccountKey works without a fake; admin endpoint registers a key', async () => {
    const k = generateServiceAccountKey({ projectId: 'p2', clientEmail: 'x@p2.iam.gserviceaccount.com' });
    assert.equal(k.key.token_uri, 'https://oauth2.googleapis.com/token');
    const reg = await request(`${ga.url}/__fake/keys`, { method: 'POST', body: { clientEmail: k.clientEmail, publicKeyPem: k.publicKeyPem } });
    assert.equal(reg.status, 200);
    const now = Math.floor(Date.now() / 1000);
    const jwt = signJwt({ iss: k.clientEmail, scope: SCOPE, aud: 'https://oauth2.googleapis.com/token', iat: now, exp: now + 60 }, k.privateKeyPem);
    const r = await exchange(jwt);
    assert.equal(r.status, 200);
    const info = await request(`${ga.url}/__fake/tokeninfo?access_token=${encodeURIComponent(r.json.access_token)}`);
    assert.equal(info.json.valid, true);
    assert.equal(info.json.email, k.clientEmail);
});
