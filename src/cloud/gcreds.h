/*
 * Google credentials for the REST backends (Firestore, Pub/Sub):
 * reference/cloud-apis.md §4.
 *
 * Sources, in order (Application Default Credentials, AIP-4110):
 *   1. emulator: the backend passes emulator=true when FIRESTORE_EMULATOR_HOST /
 *      PUBSUB_EMULATOR_HOST is set: no token at all (Firestore's emulator
 *      gets "Bearer owner": emulator_token); no request is ever made,
 *   2. a service-account key file (the backend's `credentials` key, else
 *      GOOGLE_APPLICATION_CREDENTIALS): an RS256 JWT (§4.2: iss = client_email,
 *      scope, aud = token_uri, exp = iat + 3600, kid = private_key_id) signed
 *      with mbedTLS, exchanged at the key's token_uri (form-encoded,
 *      grant_type jwt-bearer) for an access token,
 *   3. the metadata server: GET http://<host>/computeMetadata/v1/instance/
 *      service-accounts/default/token?scopes=<comma-separated> with
 *      "Metadata-Flavor: Google" (GCE_METADATA_HOST = host[:port] overrides
 *      metadata.google.internal, for tests).
 *
 * Tokens are cached and refreshed ahead of expiry (5 minutes early, or at
 * half the lifetime for short ones; never used in their last 10 seconds) and
 * after sm_gcreds_invalidate (an API answered 401).  The cache is shared by
 * all threads behind a mutex; each thread refreshes through its own REST
 * client (sm_rest_client_current), and concurrent requests of one thread
 * share one refresh (single flight per thread).  Token requests: up to 3
 * attempts, retried on network errors, timeouts and 5xx only (a 4xx such as
 * 400 invalid_grant is final), opts.timeout_ms per attempt.
 *
 * Ownership: sm_gcreds_open/close/check on the main thread; sm_gcreds_get
 * from any thread that owns a REST client; sm_gcreds_invalidate and
 * sm_gcreds_describe from any thread.  The key (RS256 signing, not
 * thread-safe in mbedTLS) is used under the cache mutex.  Secrets (private
 * key, assertions, tokens) are never logged; OAuth errors are logged with
 * their `error` and `error_description` only.
 *
 * A cached token is handed over from the thread's loop, found with
 * sm_rest_client_loop() (cloud/http_client.h).
 */
#ifndef SM_CLOUD_GCREDS_H
#define SM_CLOUD_GCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloud/http_client.h"

typedef struct sm_gcreds_s sm_gcreds_t;

/* Borrowed for the sm_gcreds_open call (everything is copied). */
typedef struct {
    bool emulator;              /* no credentials (emulator_token may still be sent) */
    const char *emulator_token; /* e.g. "owner" for Firestore's emulator, or NULL */
    const char *key_file;       /* service-account key file, or NULL/"" = env, metadata */
    const char *scopes;         /* space-separated OAuth scopes (required unless emulator) */
    const char *config_key;     /* config key named in errors, e.g. "firestore.credentials" */
    uint64_t timeout_ms;        /* per token request attempt; 0 = 10 s */
} sm_gcreds_opts_t;

/* Main thread.  Reads and checks the key file (a regular file of at most
 * 64 KiB holding a JSON object with type "service_account", client_email,
 * private_key a PEM RSA key of at least 2048 bits, optional private_key_id
 * and token_uri, an http(s) URL, default https://oauth2.googleapis.com/token)
 * or notes that the metadata server will be used.  Errors name the key and
 * the file: "firestore.credentials: /x.json: no private_key"; a path taken
 * from the environment is named "firestore.credentials
 * (GOOGLE_APPLICATION_CREDENTIALS)"; a bad GCE_METADATA_HOST is named as such.
 * Does no network I/O.  Returns 0 with *out owned by the caller, or
 * SM_ECONFIG (bad file or environment) / SM_EINVAL (opts: no scopes or
 * config_key) with err filled and *out NULL. */
int sm_gcreds_open(const sm_gcreds_opts_t *opts, sm_gcreds_t **out, char *err, size_t errlen);
/* Main thread, after every thread that called sm_gcreds_get has stopped
 * (and ran its loop until its callbacks were delivered).  NULL is allowed. */
void sm_gcreds_close(sm_gcreds_t *g);

/* Main thread, at start-up: fetch a first token synchronously (own loop and
 * client, made current for the call; up to 3 attempts of opts.timeout_ms)
 * so that bad credentials fail the start with a clear message, e.g.
 * "pubsub.credentials: key file x@p.iam.gserviceaccount.com: token endpoint
 * refused the key: 400 invalid_grant: Invalid JWT Signature.".  The token is
 * cached for the threads.  0 (always for the emulator), or SM_EAUTH /
 * SM_EUNAVAIL with err filled. */
int sm_gcreds_check(sm_gcreds_t *g, char *err, size_t errlen);

/* The value for an Authorization header ("Bearer ya29..."), or NULL when no
 * header is to be sent (emulator without token).  authz is borrowed for
 * the callback only.  err: 0, SM_EAUTH (credentials refused: 4xx from the
 * token endpoint or the metadata server), SM_EUNAVAIL (token endpoint or
 * metadata server unreachable, 5xx or 429 after the retries, or an answer
 * that is not a token), SM_ECANCELED (the thread's REST client was closed
 * while the token was being fetched).
 *
 * Calling thread: one that owns a REST client (sm_rest_client_current).
 * The callback runs on that thread, from its loop, never inline: a fresh
 * cached token is handed over on the next loop iteration (uv_idle), a
 * missing or stale one once this thread's token request completes.  Gets
 * of one thread share one token request (single flight per thread); other
 * threads refresh through their own clients.  A cached token that is still
 * valid but inside the refresh-ahead window is handed over at once while
 * one thread (the first to notice) refreshes it in the background.
 * The thread's loop must keep running until every callback has run (closing
 * the REST client completes a pending token request with SM_ECANCELED).
 *
 * Returns 0 (cb will run exactly once), SM_EINVAL (no REST client on this
 * thread, or cb NULL) or SM_ECLOSED (the thread's client is closing); cb is
 * not called on error. */
typedef void (*sm_gcreds_cb)(int err, const char *authz, void *arg);
int sm_gcreds_get(sm_gcreds_t *g, sm_gcreds_cb cb, void *arg);

/* Any thread.  The request header line "Authorization: <authz>" (allocated),
 * or NULL when authz is NULL (no header to send).  Release it with
 * sm_gcreds_header_free, which wipes the token before freeing. */
char *sm_gcreds_header(const char *authz);
void sm_gcreds_header_free(char *line);

/* Any thread.  The cached token was refused (API answered 401): the next
 * get fetches a new one (a token request already running is kept: its
 * token is newer than the refused one). */
void sm_gcreds_invalidate(sm_gcreds_t *g);

/* Any thread, pure: true when host (non-empty) may follow "http://" in the
 * URL built from a host variable (PUBSUB_EMULATOR_HOST, GCE_METADATA_HOST):
 * at most 255 bytes, none of "/?#@", blank, CR or LF, so that it names a
 * host[:port] and nothing else. */
bool sm_gcreds_host_ok(const char *host);

/* Any thread: "emulator", "key file <client_email>" or "metadata server"
 * for the start-up log line (borrowed, lives as long as g). */
const char *sm_gcreds_describe(const sm_gcreds_t *g);

#endif
