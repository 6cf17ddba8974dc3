'use strict';
/*
 * Fake cloud servers for the integration tests of the production backends.
 * See README.md in this directory.
 */

const { startFirestore, encodeFields, decodeFields, encodeValue, decodeValue } = require('./firestore');
const { startCloudflareSfu } = require('./cloudflare');
const { startPubsub } = require('./pubsub');
const { startGoogleAuth, generateServiceAccountKey, writeServiceAccountKeyFile, signJwt } = require('./google_auth');
const sdp = require('./sdp');
const { request } = require('./http');

/*
 * Start the fakes a test needs and close them in t.after() (when t is given).
 *   const f = await startFakes(t, { firestore: {...}, sfu: {...}, pubsub: {...}, auth: {...} });
 * A key whose value is false/undefined is not started.  With `auth` started,
 * firestore/pubsub options `auth: 'issuer'` are wired to it ({issuer: f.auth}).
 */
async function startFakes(t, which = {})
{
    const out = {};
    const started = [];
    try {
        if (which.auth) {
            out.auth = await startGoogleAuth(which.auth === true ? {} : which.auth);
            started.push(out.auth);
        }
        const wire = (o) => {
            const x = o === true ? {} : { ...o };
            if (x.auth === 'issuer') {
                if (!out.auth) throw new Error('auth: "issuer" needs the auth fake');
                x.auth = { issuer: out.auth };
            }
            return x;
        };
        if (which.firestore) {
            out.firestore = await startFirestore(wire(which.firestore));
            started.push(out.firestore);
        }
        if (which.pubsub) {
            out.pubsub = await startPubsub(wire(which.pubsub));
            started.push(out.pubsub);
        }
        if (which.sfu) {
            out.sfu = await startCloudflareSfu(which.sfu === true ? {} : which.sfu);
            started.push(out.sfu);
        }
    } catch (e) {
        await Promise.all(started.map((f) => f.close()));
        throw e;
    }
    out.closeAll = () => Promise.all(started.map((f) => f.close()));
    if (t && typeof t.after === 'function') t.after(() => out.closeAll());
    return out;
}

module.exports = {
    startFakes,
    startFirestore,
    startCloudflareSfu,
    startPubsub,
    startGoogleAuth,
    generateServiceAccountKey,
    writeServiceAccountKeyFile,
    signJwt,
    encodeFields,
    decodeFields,
    encodeValue,
    decodeValue,
    sdp,
    request,
};
