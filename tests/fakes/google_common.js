'use strict';
/*
 * Pieces shared by the Google REST fakes (Firestore, Pub/Sub): google.rpc status
 * table, error bodies {"error":{code,message,status}}, pretty-printed JSON replies
 * (2-space indent + trailing newline, compact with ?prettyPrint=false), and the
 * bearer-token check (cloud-apis.md §2.12, §4, §5).
 */

const { request, queryOne } = require('./http');

/* canonical code name -> [HTTP status, gRPC numeric code] (cloud-apis.md §5) */
const CODES = Object.freeze({
    OK: [200, 0],
    CANCELLED: [499, 1],
    UNKNOWN: [500, 2],
    INVALID_ARGUMENT: [400, 3],
    DEADLINE_EXCEEDED: [504, 4],
    NOT_FOUND: [404, 5],
    ALREADY_EXISTS: [409, 6],
    PERMISSION_DENIED: [403, 7],
    RESOURCE_EXHAUSTED: [429, 8],
    FAILED_PRECONDITION: [400, 9],
    ABORTED: [409, 10],
    OUT_OF_RANGE: [400, 11],
    UNIMPLEMENTED: [501, 12],
    INTERNAL: [500, 13],
    UNAVAILABLE: [503, 14],
    DATA_LOSS: [500, 15],
    UNAUTHENTICATED: [401, 16],
});

/* Default canonical status for an injected failure with only an HTTP code. */
const STATUS_FOR_HTTP = Object.freeze({
    400: 'INVALID_ARGUMENT',
    401: 'UNAUTHENTICATED',
    403: 'PERMISSION_DENIED',
    404: 'NOT_FOUND',
    409: 'ABORTED',
    429: 'RESOURCE_EXHAUSTED',
    499: 'CANCELLED',
    500: 'INTERNAL',
    501: 'UNIMPLEMENTED',
    503: 'UNAVAILABLE',
    504: 'DEADLINE_EXCEEDED',
});

const MESSAGES = Object.freeze({
    UNAUTHENTICATED: 'Request had invalid authentication credentials. Expected OAuth 2 access token, ' +
        'login cookie or other valid authentication credential. ' +
        'See https://developers.google.com/identity/sign-in/web/devconsole-project.',
    SCOPES: 'Request had insufficient authentication scopes.',
    UNAVAILABLE: 'The service is currently unavailable.',
    DEADLINE_EXCEEDED: 'Deadline exceeded.',
    RESOURCE_EXHAUSTED: 'Quota exceeded.',
    INTERNAL: 'Internal error encountered.',
    ABORTED: 'Too much contention on these documents. Please try again.',
    CANCELLED: 'The operation was cancelled.',
    PERMISSION_DENIED: 'Missing or insufficient permissions.',
    INDEX: 'The query requires an index. You can create it here: ' +
        'https://console.firebase.google.com/v1/r/project/fake/firestore/indexes?create_composite=fake',
});

/* Error thrown by handlers; turned into {"error":{...}} by googleReply. */
class GoogleError extends Error {
    constructor(status, message, details)
    {
        super(message);
        if (!CODES[status]) throw new Error(`unknown google status ${status}`);
        this.status = status;
        this.details = details;
    }

    get httpStatus()
    {
        return CODES[this.status][0];
    }

    get grpcCode()
    {
        return CODES[this.status][1];
    }
}

function prettyFor(query)
{
    const p = query && queryOne(query, 'prettyPrint');
    return !(p === 'false' || p === '0');
}

function jsonText(obj, pretty)
{
    return pretty ? JSON.stringify(obj, null, 2) + '\n' : JSON.stringify(obj);
}

function googleJson(status, obj, pretty = true, headers = {})
{
    return {
        status,
        headers: { 'content-type': 'application/json; charset=UTF-8', vary: 'Origin, X-Origin, Referer', ...headers },
        body: jsonText(obj, pretty),
    };
}

function errorBody(status, message, details)
{
    const [code] = CODES[status];
    const error = { code, message, status };
    if (details) error.details = details;
    return { error };
}

function googleError(status, message, pretty = true, headers = {})
{
    return googleJson(CODES[status][0], errorBody(status, message), pretty, headers);
}

/* Failure body for an injected HTTP status (fail(n, 503) etc.). */
function errorForStatus(httpStatus)
{
    const name = STATUS_FOR_HTTP[httpStatus] || (httpStatus >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT');
    const body = errorBody(name, MESSAGES[name] || `Injected ${name}.`);
    body.error.code = httpStatus;
    return { status: httpStatus, headers: { 'content-type': 'application/json; charset=UTF-8' }, body: jsonText(body, true) };
}

function preset(name, message)
{
    return { status: CODES[name][0], headers: { 'content-type': 'application/json; charset=UTF-8' },
        body: jsonText(errorBody(name, message || MESSAGES[name] || `Injected ${name}.`), true) };
}

/*
 * Bearer check.  `auth` option of a Google fake:
 *   'none'                   no check at all (Pub/Sub emulator behaviour)
 *   { owner = true,          accept "Bearer owner" (Firestore emulator admin token)
 *     tokens = [],           static accepted tokens (any scope)
 *     issuer,                a google_auth fake (object with control.validateToken) or
 *                            its base URL (checked via GET /__fake/tokeninfo)
 *     scopes = [...] }       accepted scopes for issued tokens (any one suffices)
 * Returns null when authorised, else a GoogleError.
 */
async function checkAuth(auth, headers, extraTokens)
{
    if (auth === 'none') return null;
    const a = auth || {};
    const h = String(headers.authorization || '');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m) return new GoogleError('UNAUTHENTICATED', MESSAGES.UNAUTHENTICATED);
    const token = m[1];
    if (a.owner !== false && token === 'owner') return null;
    if ((a.tokens || []).includes(token) || (extraTokens && extraTokens.has(token))) return null;
    if (a.issuer) {
        let info;
        try {
            info = await validateWithIssuer(a.issuer, token);
        } catch (e) {
            return new GoogleError('UNAVAILABLE', `fake: token issuer unreachable: ${e.message}`);
        }
        if (info && info.valid) {
            const need = a.scopes || [];
            if (need.length && !need.some((s) => (info.scopes || []).includes(s))) {
                return new GoogleError('PERMISSION_DENIED', MESSAGES.SCOPES);
            }
            return null;
        }
    }
    return new GoogleError('UNAUTHENTICATED', MESSAGES.UNAUTHENTICATED);
}

async function validateWithIssuer(issuer, token)
{
    if (typeof issuer === 'function') return issuer(token);
    if (issuer && issuer.control && issuer.control.validateToken) return issuer.control.validateToken(token);
    if (issuer && issuer.validateToken) return issuer.validateToken(token);
    if (typeof issuer === 'string') {
        const r = await request(`${issuer.replace(/\/$/, '')}/__fake/tokeninfo?access_token=${encodeURIComponent(token)}`,
            { timeoutMs: 2000 });
        return r.json;
    }
    throw new Error('auth.issuer must be a google_auth fake, a function or a URL');
}

const UNAUTH_HEADERS = Object.freeze({
    'www-authenticate': 'Bearer realm="https://accounts.google.com/", error="invalid_token"',
});

module.exports = {
    CODES,
    MESSAGES,
    GoogleError,
    prettyFor,
    jsonText,
    googleJson,
    googleError,
    errorBody,
    errorForStatus,
    preset,
    checkAuth,
    UNAUTH_HEADERS,
};
