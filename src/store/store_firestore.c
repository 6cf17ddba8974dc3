/*
 * Firestore store backend: registrations, rooms, memberships and client
 * credentials as Firestore documents, reached over the REST API
 * (reference/cloud-apis.md §2) on the calling thread's REST client, so a
 * worker never blocks on the network.
 *
 * Documents (<p> = firestore.collection_prefix, ids escaped with
 * sm_fs_id_escape so that "." or ".." are valid document ids):
 *   <p>registrations/<client>   client_id, session_id, capabilities (JSON
 *                               text), metadata (JSON text), instance_id,
 *                               connected_at, registered_at (timestamps)
 *   <p>rooms/<room>             room_id, creator_id, instance_id, metadata,
 *                               created_at, max_participants, member_seq
 *                               (bumped by every add_member, see below)
 *   <p>room_members/<room>:<client>
 *                               room_id, client_id, role, joined_at,
 *                               instance_id (the server the member joined on)
 *   <p>clients/<client>         token_sha256 (auth_method=store, read only)
 * NULL strings are left out of the document; times are timestampValue.
 * Memberships are one flat collection (not subcollections) so that start-up
 * clean-up can find them with one query per field.
 *
 * DESIGN
 * - Each operation is a small state machine (fs_op_t) of REST calls with
 *   continuations.  A call first asks the credentials for an Authorization
 *   header, then runs on the REST client with the per-attempt timeout, an
 *   attempt budget shared by the whole operation (database.retry_attempts
 *   failed attempts in total) and sm_fs_retryable as the classifier, which
 *   decides by error.status: 409 ABORTED is retried, 409 ALREADY_EXISTS is
 *   an answer.  401 UNAUTHENTICATED invalidates the token and resends the
 *   call once, outside the budget.
 * - Atomicity.  Creates are createDocument (?documentId) or a commit with an
 *   exists=false precondition, so a failed create leaves nothing.  A create
 *   retried after an ambiguous attempt (timeout, DEADLINE_EXCEEDED) may meet
 *   its own document as ALREADY_EXISTS: it re-reads and compares (session_id
 *   and registered_at; creator, instance and created_at; role and
 *   joined_at) and reports success when the document is its own.  A create
 *   that ends with retries exhausted completes with SM_EUNAVAIL at once and
 *   then, still holding its record's place in the order, deletes the
 *   document if an attempt did land (read, compare, delete with an
 *   updateTime precondition).  One ambiguity is left: curl resends a request
 *   by itself when a reused keep-alive connection dies before any byte of
 *   the answer, invisibly (one attempt for us); if the first send had
 *   landed, the create reports SM_ECONFLICT for its own document.  The
 *   session layer then re-reads, sees this instance's stale row and
 *   replaces it, so this costs a round trip, not a wrong answer.
 * - Deletes carry preconditions: delete_registration deletes with the
 *   updateTime it read (and re-reads after FAILED_PRECONDITION); add_member
 *   commits the membership together with an increment of its room's
 *   member_seq under exists=true, so the room's updateTime changes with
 *   every join; delete_room reads the room, queries its memberships and
 *   commits their deletes with the room's delete under that updateTime: a
 *   member that joined meanwhile fails the commit and the room is read again.
 * - count_registrations pages through a runQuery that selects only
 *   __name__ (500 per page): the Node fake has no :runAggregationQuery, and
 *   the registrations of one deployment are few thousands at most.
 * - Ordering: each thread keeps a list of its operations in submission
 *   order; an operation starts once no earlier operation of that thread
 *   touches the same record (store.h, "Ordering").
 * - Thread-local state: that list (t_ops).  A store may be used from any
 *   number of threads; close waits until every operation has finished.
 */
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "cloud/firestore.h"
#include "cloud/gcreds.h"
#include "cloud/http_client.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "log/log.h"

/* Writes per commit: the historical Firestore limit, still the safe size. */
#define FS_BATCH_MAX 500
/* Documents per runQuery page: a page of names stays far below the REST
 * client's 4 MiB response cap, and most queries fit in one page. */
#define FS_PAGE 500
/* Values per IN filter (the Firestore limit is 30). */
#define FS_IN_MAX 30
/* Re-reads after a precondition failed (somebody else wrote meanwhile);
 * past them the record is too busy to delete reliably: SM_EUNAVAIL. */
#define FS_REDO_MAX 3
/* Backoff cap in multiples of database.retry_interval: with the default
 * 100 ms and 3 attempts the waits are 100 and 200 ms; the cap only matters
 * for large retry_attempts. */
#define FS_BACKOFF_CAP_FACTOR 32
/* Start-up clean-up guard: beyond this the temporary loop cancels what is
 * left.  Every call is bounded by itself; this bounds a clean-up with many
 * pages and commits. */
#define FS_CLEANUP_GUARD_MIN_MS 60000

static const char scope_datastore[] = "https://www.googleapis.com/auth/datastore";

enum { COLL_REGS, COLL_ROOMS, COLL_MEMBERS, COLL_CLIENTS, COLL__N };
static const char *const coll_suffix[COLL__N] = {"registrations", "rooms", "room_members",
                                                 "clients"};

typedef struct {
    char *docs_url; /* <base>/v1/projects/<p>/databases/<d>/documents */
    char *root;     /* projects/<p>/databases/<d>/documents, for names in bodies */
    char *coll[COLL__N];
    sm_gcreds_t *creds;
    bool emulator;
    uint64_t timeout_ms;
    unsigned attempts;
    uint64_t interval_ms;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t idle;
    unsigned inflight; /* operations not yet freed */
    char *instance_id; /* written into memberships */
} fs_store_t;

typedef struct fs_op_s fs_op_t;

/* One finished call as a continuation sees it. */
typedef struct {
    sm_fs_class_t cls; /* never SM_FS_RETRY, SM_FS_FATAL or SM_FS_UNAUTHENTICATED here */
    json_t *json;      /* parsed body when cls == SM_FS_OK (borrowed) */
    bool retried;      /* the call took more than one attempt */
    int http;
    const char *body; /* raw body (for logs) */
    size_t len;
} fs_res_t;

typedef void (*fs_next_fn)(fs_op_t *op, const fs_res_t *r);
typedef void (*fs_row_fn)(fs_op_t *op, json_t *doc);
typedef void (*fs_step_fn)(fs_op_t *op);
/* Is this stored document the one this operation wrote? */
typedef bool (*fs_ours_fn)(const fs_op_t *op, const json_t *fields);

typedef enum { K_NONE, K_REG, K_COUNT, K_ROOM } fs_key_t;

struct fs_op_s {
    fs_store_t *fs;
    sm_store_req_t *req; /* NULL once completed */
    sm_store_op_t kind;
    sm_rest_client_t *rest;
    sm_list_t node; /* t_ops */
    bool started;
    fs_key_t kclass;
    char *key;          /* client_id or room_id (for ordering) */
    bool *freed_flag;   /* set when the op is freed (cleanup_instance waits on it) */
    unsigned budget;    /* failed attempts left for this operation */
    const char *opname; /* for logs */

    /* The call in flight. */
    char method[8];
    char *url;
    char *body;
    const char *what;
    fs_next_fn next;
    bool reauthed;
    bool creating; /* an ambiguous failure may have created undo_name */
    char *undo_name;
    fs_ours_fn ours;
    /* What identifies the document a create writes (kept past completion). */
    char *own_s1;  /* session_id | creator_id | role */
    char *own_s2;  /* instance_id of a room */
    int64_t own_t; /* registered_at | created_at | joined_at (ms) */

    /* Operation state. */
    unsigned redo;
    bool maybe_done; /* an earlier delete call was retried: it may have landed */
    char *update_time;
    char *name;   /* the main document's name */
    json_t *rows; /* collected documents or names (array) */
    json_t *set;  /* cleanup: names to delete (object used as a set) */
    json_t *ids;  /* cleanup: room ids / client ids to look up (array) */
    size_t pos;
    int stage;
    unsigned regs, rooms;

    /* Query in progress. */
    unsigned qcoll;
    json_t *qwhere;  /* filter, or NULL */
    json_t *qselect; /* select.fields array, or NULL = whole documents */
    char *qcursor;   /* name of the last document of the previous page */
    fs_row_fn qrow;
    fs_step_fn qdone;
};

static _Thread_local sm_list_t t_ops;
static _Thread_local bool t_ops_ready;

static void op_start(fs_op_t *op);
static void fs_send(fs_op_t *op);

/* ---- Small helpers ------------------------------------------------------- */

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    SM_ASSERT(n >= 0);
    return s;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    SM_ASSERT(s != NULL);
    return s;
}

/* "<root>/<coll>/<escaped id>" */
static char *doc_name(const fs_store_t *fs, unsigned coll, const char *id)
{
    char *e = sm_fs_id_escape(id);
    char *n = xasprintf("%s/%s/%s", fs->root, fs->coll[coll], e);
    free(e);
    return n;
}

static char *member_name(const fs_store_t *fs, const char *room, const char *client)
{
    char *r = sm_fs_id_escape(room), *c = sm_fs_id_escape(client);
    char *n = xasprintf("%s/%s/%s:%s", fs->root, fs->coll[COLL_MEMBERS], r, c);
    free(r);
    free(c);
    return n;
}

/* URL of a document name ("<root>/<coll>/<id>"): the id segment encoded. */
static char *doc_url(const fs_store_t *fs, const char *name)
{
    const char *rel = name + strlen(fs->root) + 1; /* "<coll>/<id>" */
    const char *slash = strchr(rel, '/');
    SM_ASSERT(slash != NULL);
    char *id = sm_fs_url_encode(slash + 1);
    char *u = xasprintf("%s/%.*s/%s", fs->docs_url, (int)(slash - rel), rel, id);
    free(id);
    return u;
}

static void set_str(json_t *fields, const char *name, const char *v)
{
    if (v != NULL)
        json_object_set_new(fields, name, sm_fs_value_string(v));
}

static int opt_str(const json_t *fields, const char *name, const char **out)
{
    *out = NULL;
    int rc = sm_fs_get_string(fields, name, out);
    return rc == SM_ENOTFOUND ? 0 : rc;
}

static int opt_time(const json_t *fields, const char *name, int64_t *out)
{
    *out = 0;
    int rc = sm_fs_get_time_ms(fields, name, out);
    return rc == SM_ENOTFOUND ? 0 : rc;
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* ---- Operation lifecycle -------------------------------------------------- */

static bool conflicts(const fs_op_t *a, const fs_op_t *b)
{
    if (a->fs != b->fs || a->kclass == K_NONE || b->kclass == K_NONE)
        return false;
    if (a->kclass == K_COUNT || b->kclass == K_COUNT)
        return (a->kclass == K_COUNT) != (b->kclass == K_COUNT) &&
               (a->kclass == K_REG || b->kclass == K_REG);
    return a->kclass == b->kclass && strcmp(a->key, b->key) == 0;
}

/* Can op start: no earlier operation of this thread conflicts with it? */
static bool startable(const fs_op_t *op)
{
    sm_list_t *n;
    for (n = t_ops.next; n != &t_ops; n = n->next) {
        const fs_op_t *x = SM_CONTAINER_OF(n, fs_op_t, node);
        if (x == op)
            return true;
        if (conflicts(x, op))
            return false;
    }
    return true;
}

/* Hand the request back; the operation may go on (an undo) afterwards. */
static void op_complete(fs_op_t *op, int status)
{
    if (op->req == NULL)
        return;
    sm_store_req_t *req = op->req;
    op->req = NULL;
    if (status != 0)
        sm_store_req_reset_result(req);
    sm_store_req_complete(req, status);
}

static void op_free(fs_op_t *op)
{
    fs_store_t *fs = op->fs;
    sm_list_remove(&op->node);
    if (op->freed_flag)
        *op->freed_flag = true;
    free(op->key);
    free(op->url);
    free(op->body);
    free(op->undo_name);
    free(op->own_s1);
    free(op->own_s2);
    free(op->update_time);
    free(op->name);
    json_decref(op->rows);
    json_decref(op->set);
    json_decref(op->ids);
    json_decref(op->qwhere);
    json_decref(op->qselect);
    free(op->qcursor);
    free(op);
    pthread_mutex_lock(&fs->lock);
    if (--fs->inflight == 0)
        pthread_cond_broadcast(&fs->idle);
    pthread_mutex_unlock(&fs->lock);

    /* Start whatever waited for it (one at a time: a start may finish inline). */
    for (bool again = true; again;) {
        again = false;
        sm_list_t *n;
        for (n = t_ops.next; n != &t_ops; n = n->next) {
            fs_op_t *x = SM_CONTAINER_OF(n, fs_op_t, node);
            if (!x->started && startable(x)) {
                op_start(x);
                again = true;
                break;
            }
        }
    }
}

/* The operation is over: complete (if not yet) and free. */
static void op_finish(fs_op_t *op, int status)
{
    op_complete(op, status);
    op_free(op);
}

static void log_call_failure(const fs_op_t *op, sm_fs_class_t cls, const sm_rest_resp_t *resp)
{
    char status[40], msg[256];
    sm_fs_error_text(resp->body, resp->body_len, status, sizeof status, msg, sizeof msg);
    if (resp->err == SM_ECANCELED) {
        SM_LOG(SM_LOG_INFO, SM_MSG("firestore call canceled (shutting down)"),
               SM_STR("op", op->opname), SM_STR("call", op->what));
        return;
    }
    bool fatal = cls != SM_FS_RETRY;
    SM_LOG(fatal ? SM_LOG_ERROR : SM_LOG_WARN,
           SM_MSG(fatal ? "firestore refused the request (not retried; check the project, "
                          "database, credentials and IAM permissions)"
                        : "firestore unavailable: retries exhausted"),
           SM_STR("op", op->opname), SM_STR("call", op->what), SM_INT("http_status", resp->status),
           SM_STR("status", status[0] ? status : sm_fs_class_name(cls)),
           SM_STR("message", msg[0] ? msg : (resp->err ? sm_strerror(resp->err) : "")),
           SM_UINT("attempts", resp->attempts), SM_UINT("elapsed_ms", resp->elapsed_ms));
}

/* A continuation got an outcome it has no use for. */
static void unexpected(fs_op_t *op, const fs_res_t *r)
{
    char status[40], msg[256];
    sm_fs_error_text(r->body, r->len, status, sizeof status, msg, sizeof msg);
    SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: unexpected answer"), SM_STR("op", op->opname),
           SM_STR("call", op->what), SM_INT("http_status", r->http),
           SM_STR("status", status[0] ? status : sm_fs_class_name(r->cls)), SM_STR("message", msg));
    op_finish(op, SM_EUNAVAIL);
}

/* A document that should be ours does not decode. */
static void corrupt(fs_op_t *op, const char *what)
{
    SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: malformed document"), SM_STR("op", op->opname),
           SM_STR("document", what));
    op_finish(op, SM_EUNAVAIL);
}

/* The usual prelude of a continuation that read one document: true when
 * r holds it; else the operation is finished (missing: with the status
 * given, any other answer: unexpected). */
static bool got_doc(fs_op_t *op, const fs_res_t *r, int missing)
{
    if (r->cls == SM_FS_OK)
        return true;
    if (r->cls == SM_FS_NOT_FOUND)
        op_finish(op, missing);
    else
        unexpected(op, r);
    return false;
}

/* ---- Calls ----------------------------------------------------------------- */

static void undo_start(fs_op_t *op);

static void on_resp(const sm_rest_resp_t *resp, void *arg)
{
    fs_op_t *op = arg;
    sm_fs_class_t cls = sm_fs_classify(resp->status, resp->err, resp->body, resp->body_len);
    /* Failed attempts of this call (a final answer is not one). */
    unsigned lost = resp->attempts - (cls == SM_FS_RETRY || resp->attempts == 0 ? 0 : 1);
    op->budget -= lost < op->budget ? lost : op->budget;

    if (cls == SM_FS_UNAUTHENTICATED && !op->reauthed && resp->err == 0) {
        SM_LOG(SM_LOG_INFO, SM_MSG("firestore rejected the access token; fetching a new one"),
               SM_STR("op", op->opname), SM_STR("call", op->what));
        op->reauthed = true;
        sm_gcreds_invalidate(op->fs->creds);
        fs_send(op);
        return;
    }
    /* A failed call ends the operation; every other class is an answer. */
    bool failed = cls == SM_FS_RETRY || cls == SM_FS_FATAL || cls == SM_FS_UNAUTHENTICATED;
    json_t *json = NULL;
    if (failed) {
        log_call_failure(op, cls, resp);
    } else if (cls == SM_FS_OK &&
               (json = json_loadb(resp->body, resp->body_len, 0, NULL)) == NULL) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: response is not JSON"), SM_STR("op", op->opname),
               SM_STR("call", op->what));
        cls = SM_FS_FATAL;
        failed = true;
    }
    if (failed) {
        /* Only an ambiguous failure may have written something. */
        bool undo = op->creating && op->req != NULL && resp->err != SM_ECANCELED &&
                    (cls == SM_FS_RETRY || resp->attempts > 1);
        op_complete(op, SM_EUNAVAIL);
        if (undo)
            undo_start(op);
        else
            op_free(op);
        return;
    }
    op->creating = false;
    fs_res_t r = {
        .cls = cls,
        .json = json,
        .retried = resp->attempts > 1,
        .http = resp->status,
        .body = resp->body,
        .len = resp->body_len,
    };
    op->next(op, &r);
    json_decref(json);
}

static void on_authz(int err, const char *authz, void *arg)
{
    fs_op_t *op = arg;
    if (err != 0) {
        SM_LOG(err == SM_ECANCELED ? SM_LOG_INFO : SM_LOG_ERROR,
               SM_MSG("firestore: no access token"), SM_STR("op", op->opname),
               SM_STR("credentials", sm_gcreds_describe(op->fs->creds)),
               SM_STR("error", sm_strerror(err)));
        op_finish(op, SM_EUNAVAIL);
        return;
    }
    char *auth_line = sm_gcreds_header(authz);
    const char *headers[3] = {"Content-Type: application/json", auth_line, NULL};
    const fs_store_t *fs = op->fs;
    sm_rest_opts_t o = {
        .method = op->method,
        .url = op->url,
        .headers = headers,
        .body = op->body,
        .body_len = op->body ? strlen(op->body) : 0,
        .timeout_ms = fs->timeout_ms,
        .max_attempts = op->budget > 0 ? op->budget : 1,
        .retry_base_ms = fs->interval_ms,
        .retry_max_ms = fs->interval_ms * FS_BACKOFF_CAP_FACTOR,
        .retryable = sm_fs_retryable,
        .what = op->what,
    };
    int rc = sm_rest_request(op->rest, &o, on_resp, op);
    sm_gcreds_header_free(auth_line);
    if (rc != 0) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: request not accepted"), SM_STR("op", op->opname),
               SM_STR("call", op->what), SM_STR("error", sm_strerror(rc)));
        op_finish(op, SM_EUNAVAIL);
    }
}

static void fs_send(fs_op_t *op)
{
    int rc = sm_gcreds_get(op->fs->creds, on_authz, op);
    if (rc != 0) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: credentials unusable on this thread"),
               SM_STR("op", op->opname), SM_STR("error", sm_strerror(rc)));
        op_finish(op, SM_EUNAVAIL);
    }
}

/* Start a call: url and body (may be NULL) are taken over. */
static void fs_call(fs_op_t *op, const char *method, char *url, char *body, const char *what,
                    fs_next_fn next)
{
    snprintf(op->method, sizeof op->method, "%s", method);
    free(op->url);
    free(op->body);
    op->url = url;
    op->body = body;
    op->what = what;
    op->next = next;
    op->reauthed = false;
    fs_send(op);
}

static void call_get(fs_op_t *op, const char *name, fs_next_fn next)
{
    fs_call(op, "GET", doc_url(op->fs, name), NULL, "firestore.get", next);
}

/* POST createDocument of <coll>/<id>; fields is stolen.  op->ours must be
 * set: the document's name becomes undo_name (see on_resp, put_done). */
static void call_create(fs_op_t *op, unsigned coll, const char *id, json_t *fields, fs_next_fn next)
{
    SM_ASSERT(op->ours != NULL);
    char *e = sm_fs_id_escape(id);
    char *q = sm_fs_url_encode(e);
    char *url = xasprintf("%s/%s?documentId=%s", op->fs->docs_url, op->fs->coll[coll], q);
    free(e);
    free(q);
    json_t *doc = json_object();
    json_object_set_new(doc, "fields", fields);
    char *body = dump(doc);
    json_decref(doc);
    free(op->undo_name);
    op->undo_name = doc_name(op->fs, coll, id);
    op->creating = true;
    fs_call(op, "POST", url, body, "firestore.create", next);
}

/* POST :commit of writes (stolen). */
static void call_commit(fs_op_t *op, json_t *writes, fs_next_fn next)
{
    json_t *b = json_object();
    json_object_set_new(b, "writes", writes);
    char *body = dump(b);
    json_decref(b);
    fs_call(op, "POST", xasprintf("%s:commit", op->fs->docs_url), body, "firestore.commit", next);
}

static json_t *write_delete(const char *name, const char *update_time)
{
    json_t *w = json_pack("{s:s}", "delete", name);
    if (update_time != NULL)
        json_object_set_new(w, "currentDocument", json_pack("{s:s}", "updateTime", update_time));
    return w;
}

/* Writes deleting (unconditionally) the documents names[from, to), for a
 * commit of at most FS_BATCH_MAX writes. */
static json_t *writes_delete(const json_t *names, size_t from, size_t to)
{
    json_t *w = json_array();
    for (size_t i = from; i < to; i++)
        json_array_append_new(w, write_delete(json_string_value(json_array_get(names, i)), NULL));
    return w;
}

/* ---- Paged queries ----------------------------------------------------------
 * runQuery over one collection, ordered by __name__, FS_PAGE documents per
 * page, the next page starting after the last name seen.  qrow gets every
 * document, qdone runs after the last page. */

static void query_page(fs_op_t *op);

static void query_page_done(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls != SM_FS_OK || !json_is_array(r->json)) {
        unexpected(op, r);
        return;
    }
    size_t n = 0, i;
    json_t *row;
    const char *last = NULL;
    for (i = 0; i < json_array_size(r->json); i++) {
        row = json_array_get(r->json, i);
        json_t *doc = json_object_get(row, "document"); /* absent in [{"readTime": ...}] */
        const char *name = json_string_value(json_object_get(doc, "name"));
        if (name == NULL)
            continue;
        n++;
        last = name;
        op->qrow(op, doc);
    }
    if (n == FS_PAGE) {
        free(op->qcursor);
        op->qcursor = sm_xstrdup(last);
        query_page(op);
        return;
    }
    json_decref(op->qwhere);
    json_decref(op->qselect);
    free(op->qcursor);
    op->qwhere = op->qselect = NULL;
    op->qcursor = NULL;
    op->qdone(op);
}

static void query_page(fs_op_t *op)
{
    json_t *sq = json_pack("{s:[{s:s}], s:[{s:{s:s}, s:s}], s:i}", "from", "collectionId",
                           op->fs->coll[op->qcoll], "orderBy", "field", "fieldPath", "__name__",
                           "direction", "ASCENDING", "limit", FS_PAGE);
    if (op->qwhere)
        json_object_set(sq, "where", op->qwhere);
    if (op->qselect)
        json_object_set_new(sq, "select", json_pack("{s:O}", "fields", op->qselect));
    if (op->qcursor)
        json_object_set_new(
            sq, "startAt",
            json_pack("{s:[{s:s}], s:b}", "values", "referenceValue", op->qcursor, "before", 0));
    json_t *b = json_pack("{s:o}", "structuredQuery", sq);
    char *body = dump(b);
    json_decref(b);
    fs_call(op, "POST", xasprintf("%s:runQuery", op->fs->docs_url), body, "firestore.runQuery",
            query_page_done);
}

/* where is stolen (may be NULL); select_fields: NULL = whole documents, or
 * a NULL-terminated list of field paths ("__name__" for names only). */
static void query_start(fs_op_t *op, unsigned coll, json_t *where, const char *const *select_fields,
                        fs_row_fn row, fs_step_fn done)
{
    op->qcoll = coll;
    op->qwhere = where;
    op->qselect = NULL;
    if (select_fields) {
        op->qselect = json_array();
        for (const char *const *f = select_fields; *f; f++)
            json_array_append_new(op->qselect, json_pack("{s:s}", "fieldPath", *f));
    }
    free(op->qcursor);
    op->qcursor = NULL;
    op->qrow = row;
    op->qdone = done;
    query_page(op);
}

/* fieldFilter EQUAL on a string field. */
static json_t *where_equal(const char *field, const char *value)
{
    return json_pack("{s:{s:{s:s}, s:s, s:o}}", "fieldFilter", "field", "fieldPath", field, "op",
                     "EQUAL", "value", sm_fs_value_string(value));
}

/* fieldFilter IN on a string field, values[from, to) of a JSON array of strings. */
static json_t *where_in(const char *field, const json_t *values, size_t from, size_t to)
{
    json_t *vals = json_array();
    for (size_t i = from; i < to; i++)
        json_array_append_new(vals,
                              sm_fs_value_string(json_string_value(json_array_get(values, i))));
    return json_pack("{s:{s:{s:s}, s:s, s:o}}", "fieldFilter", "field", "fieldPath", field, "op",
                     "IN", "value", sm_fs_value_array_new(vals));
}

/* ---- Undo of a create whose outcome is unknown -------------------------------
 * The request has been completed with SM_EUNAVAIL.  Read undo_name; if it
 * is this operation's document, delete it under its updateTime.  One
 * attempt per call (the store is failing already); a leftover keeps our
 * instance_id, so the session's stale-row logic or the next start-up's
 * clean-up removes it. */

static void undo_deleted(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls == SM_FS_OK)
        SM_LOG(SM_LOG_INFO, SM_MSG("firestore: removed a document a failed create had written"),
               SM_STR("op", op->opname));
    op_free(op);
}

static void undo_read(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls != SM_FS_OK) {
        op_free(op); /* NOT_FOUND: nothing landed */
        return;
    }
    const char *ut = json_string_value(json_object_get(r->json, "updateTime"));
    if (ut == NULL || !op->ours(op, json_object_get(r->json, "fields"))) {
        op_free(op); /* somebody else's document */
        return;
    }
    json_t *w = json_array();
    json_array_append_new(w, write_delete(op->undo_name, ut));
    call_commit(op, w, undo_deleted);
}

static void undo_start(fs_op_t *op)
{
    op->budget = 1;
    call_get(op, op->undo_name, undo_read);
}

/* ---- Registrations ------------------------------------------------------------ */

static json_t *reg_fields(const sm_registration_t *g)
{
    json_t *f = json_object();
    set_str(f, "client_id", g->client_id);
    set_str(f, "session_id", g->session_id);
    set_str(f, "capabilities", g->capabilities_json);
    set_str(f, "metadata", g->metadata_json);
    set_str(f, "instance_id", g->instance_id);
    json_object_set_new(f, "connected_at", sm_fs_value_time_ms(g->connected_at_ms));
    json_object_set_new(f, "registered_at", sm_fs_value_time_ms(g->registered_at_ms));
    return f;
}

/* Decode into g (strings borrowed from fields).  client_id is the key. */
static int reg_decode(const json_t *fields, const char *client_id, sm_registration_t *g)
{
    memset(g, 0, sizeof *g);
    g->client_id = (char *)client_id;
    const char *sid = NULL, *caps, *meta, *inst;
    if (sm_fs_get_string(fields, "session_id", &sid) != 0 ||
        opt_str(fields, "capabilities", &caps) != 0 || opt_str(fields, "metadata", &meta) != 0 ||
        opt_str(fields, "instance_id", &inst) != 0 ||
        opt_time(fields, "connected_at", &g->connected_at_ms) != 0 ||
        opt_time(fields, "registered_at", &g->registered_at_ms) != 0)
        return SM_EPROTO;
    g->session_id = (char *)sid;
    g->capabilities_json = (char *)caps;
    g->metadata_json = (char *)meta;
    g->instance_id = (char *)inst;
    return 0;
}

/* ---- Creates (put_registration, put_room, add_member) ------------------------ */

static void put_checked(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls == SM_FS_OK)
        op_finish(op, op->ours(op, json_object_get(r->json, "fields")) ? 0 : SM_ECONFLICT);
    else if (r->cls == SM_FS_NOT_FOUND)
        op_finish(op, SM_ECONFLICT); /* it existed a moment ago; somebody else's */
    else
        unexpected(op, r);
}

static void put_done(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls == SM_FS_OK) {
        op_finish(op, 0);
    } else if (r->cls == SM_FS_ALREADY_EXISTS && r->retried) {
        /* An earlier attempt may have landed: is the document ours? */
        call_get(op, op->undo_name, put_checked);
    } else if (r->cls == SM_FS_ALREADY_EXISTS) {
        op_finish(op, SM_ECONFLICT);
    } else if (r->cls == SM_FS_NOT_FOUND && op->kind == SM_STORE_OP_ADD_MEMBER) {
        op_finish(op, SM_ENOTFOUND); /* the room's exists=true precondition */
    } else {
        unexpected(op, r);
    }
}

static bool reg_ours(const fs_op_t *op, const json_t *fields)
{
    const char *sid = NULL;
    int64_t t = 0;
    return sm_fs_get_string(fields, "session_id", &sid) == 0 && strcmp(sid, op->own_s1) == 0 &&
           opt_time(fields, "registered_at", &t) == 0 && t == op->own_t;
}

static void put_registration_start(fs_op_t *op)
{
    const sm_registration_t *g = &op->req->reg;
    op->own_s1 = sm_xstrdup(g->session_id);
    op->own_t = g->registered_at_ms;
    op->ours = reg_ours;
    call_create(op, COLL_REGS, g->client_id, reg_fields(g), put_done);
}

/* ---- Registrations: delete, get, count ----------------------------------------- */

/* Answer to a delete under the updateTime read by `reread` (delete_registration,
 * delete_room).  The document changed (or went) since it was read: read it
 * again and decide again, at most FS_REDO_MAX times; then it is too busy
 * (logged as busy_msg, with op->key as key_field). */
static void precond_delete_done(fs_op_t *op, const fs_res_t *r, fs_next_fn reread,
                                const char *busy_msg, const char *key_field)
{
    if (r->cls == SM_FS_OK) {
        op_finish(op, 0);
    } else if ((r->cls == SM_FS_FAILED_PRECONDITION || r->cls == SM_FS_NOT_FOUND) &&
               op->redo < FS_REDO_MAX) {
        op->redo++;
        op->maybe_done = op->maybe_done || r->retried;
        call_get(op, op->name, reread);
    } else if (r->cls == SM_FS_FAILED_PRECONDITION) {
        SM_LOG(SM_LOG_WARN, SM_MSG(busy_msg), SM_STR(key_field, op->key),
               SM_UINT("reads", op->redo + 1));
        op_finish(op, SM_EUNAVAIL);
    } else {
        unexpected(op, r);
    }
}

static void del_reg_read(fs_op_t *op, const fs_res_t *r);

static void del_reg_done(fs_op_t *op, const fs_res_t *r)
{
    precond_delete_done(op, r, del_reg_read,
                        "firestore: registration keeps changing; delete given up", "client_id");
}

static void del_reg_read(fs_op_t *op, const fs_res_t *r)
{
    /* Gone: by an earlier attempt of ours if a retried delete may have landed. */
    if (!got_doc(op, r, op->maybe_done ? 0 : SM_ENOTFOUND))
        return;
    const char *sid = NULL;
    const char *ut = json_string_value(json_object_get(r->json, "updateTime"));
    if (sm_fs_get_string(json_object_get(r->json, "fields"), "session_id", &sid) != 0 ||
        strcmp(sid, op->req->session_id) != 0) {
        op_finish(op, SM_ENOTFOUND); /* another session's registration */
        return;
    }
    if (ut == NULL) {
        corrupt(op, op->name);
        return;
    }
    char *q = sm_fs_url_encode(ut);
    char *u = doc_url(op->fs, op->name);
    char *url = xasprintf("%s?currentDocument.updateTime=%s", u, q);
    free(q);
    free(u);
    fs_call(op, "DELETE", url, NULL, "firestore.delete", del_reg_done);
}

static void delete_registration_start(fs_op_t *op)
{
    op->name = doc_name(op->fs, COLL_REGS, op->req->client_id);
    call_get(op, op->name, del_reg_read);
}

static void get_reg_done(fs_op_t *op, const fs_res_t *r)
{
    if (!got_doc(op, r, SM_ENOTFOUND))
        return;
    sm_registration_t g;
    if (reg_decode(json_object_get(r->json, "fields"), op->req->client_id, &g) != 0) {
        corrupt(op, json_string_value(json_object_get(r->json, "name")));
        return;
    }
    sm_store_req_set_registration(op->req, &g);
    op_finish(op, 0);
}

static void get_registration_start(fs_op_t *op)
{
    op->name = doc_name(op->fs, COLL_REGS, op->req->client_id);
    call_get(op, op->name, get_reg_done);
}

static void count_row(fs_op_t *op, json_t *doc)
{
    (void)doc;
    op->regs++;
}

static void count_done(fs_op_t *op)
{
    sm_store_req_set_count(op->req, op->regs);
    op_finish(op, 0);
}

static const char *const select_name[] = {"__name__", NULL};

static void count_registrations_start(fs_op_t *op)
{
    query_start(op, COLL_REGS, NULL, select_name, count_row, count_done);
}

/* ---- Rooms ------------------------------------------------------------------------ */

static json_t *room_fields(const sm_room_rec_t *r)
{
    json_t *f = json_object();
    set_str(f, "room_id", r->room_id);
    set_str(f, "creator_id", r->creator_id);
    set_str(f, "instance_id", r->instance_id);
    set_str(f, "metadata", r->metadata_json);
    json_object_set_new(f, "created_at", sm_fs_value_time_ms(r->created_at_ms));
    json_object_set_new(f, "max_participants", sm_fs_value_int(r->max_participants));
    return f;
}

static int room_decode(const json_t *fields, const char *room_id, sm_room_rec_t *r)
{
    memset(r, 0, sizeof *r);
    r->room_id = (char *)room_id;
    const char *creator, *inst, *meta;
    int64_t maxp = 0;
    int rc = sm_fs_get_int(fields, "max_participants", &maxp);
    if ((rc != 0 && rc != SM_ENOTFOUND) || maxp < INT32_MIN || maxp > INT32_MAX ||
        opt_str(fields, "creator_id", &creator) != 0 ||
        opt_str(fields, "instance_id", &inst) != 0 || opt_str(fields, "metadata", &meta) != 0 ||
        opt_time(fields, "created_at", &r->created_at_ms) != 0)
        return SM_EPROTO;
    r->creator_id = (char *)creator;
    r->instance_id = (char *)inst;
    r->metadata_json = (char *)meta;
    r->max_participants = (int)maxp;
    return 0;
}

static bool room_ours(const fs_op_t *op, const json_t *fields)
{
    const char *creator, *inst;
    int64_t t = 0;
    return opt_str(fields, "creator_id", &creator) == 0 && same_str(creator, op->own_s1) &&
           opt_str(fields, "instance_id", &inst) == 0 && same_str(inst, op->own_s2) &&
           opt_time(fields, "created_at", &t) == 0 && t == op->own_t;
}

static void put_room_start(fs_op_t *op)
{
    const sm_room_rec_t *r = &op->req->room;
    op->own_s1 = r->creator_id ? sm_xstrdup(r->creator_id) : NULL;
    op->own_s2 = r->instance_id ? sm_xstrdup(r->instance_id) : NULL;
    op->own_t = r->created_at_ms;
    op->ours = room_ours;
    call_create(op, COLL_ROOMS, r->room_id, room_fields(r), put_done);
}

/* delete_room: read the room, list its memberships, commit everything with
 * the room's delete last, under the updateTime read. */

static void del_room_read(fs_op_t *op, const fs_res_t *r);
static void del_room_commit(fs_op_t *op);

static void del_room_batch_done(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls != SM_FS_OK) {
        unexpected(op, r);
        return;
    }
    op->pos += FS_BATCH_MAX;
    del_room_commit(op);
}

/* A member joined (or the room went) since we read it: start over. */
static void del_room_final_done(fs_op_t *op, const fs_res_t *r)
{
    precond_delete_done(op, r, del_room_read, "firestore: room keeps changing; delete given up",
                        "room_id");
}

static void del_room_commit(fs_op_t *op)
{
    size_t n = json_array_size(op->rows);
    bool last = n - op->pos + 1 <= FS_BATCH_MAX;
    json_t *w = writes_delete(op->rows, op->pos, last ? n : op->pos + FS_BATCH_MAX);
    if (last)
        json_array_append_new(w, write_delete(op->name, op->update_time));
    call_commit(op, w, last ? del_room_final_done : del_room_batch_done);
}

static void collect_name(fs_op_t *op, json_t *doc)
{
    json_array_append(op->rows, json_object_get(doc, "name"));
}

static void del_room_members_listed(fs_op_t *op)
{
    op->pos = 0;
    del_room_commit(op);
}

static void del_room_read(fs_op_t *op, const fs_res_t *r)
{
    if (!got_doc(op, r, op->maybe_done ? 0 : SM_ENOTFOUND))
        return;
    const char *ut = json_string_value(json_object_get(r->json, "updateTime"));
    if (ut == NULL) {
        corrupt(op, op->name);
        return;
    }
    free(op->update_time);
    op->update_time = sm_xstrdup(ut);
    json_decref(op->rows);
    op->rows = json_array();
    query_start(op, COLL_MEMBERS, where_equal("room_id", op->key), select_name, collect_name,
                del_room_members_listed);
}

static void delete_room_start(fs_op_t *op)
{
    op->name = doc_name(op->fs, COLL_ROOMS, op->req->room_id);
    call_get(op, op->name, del_room_read);
}

/* get_room: the room, then its memberships in join order. */

typedef struct {
    int64_t joined;
    int64_t created_us;
    const char *name;
    sm_room_member_t m;
} member_row_t;

static int member_cmp(const void *a, const void *b)
{
    const member_row_t *x = a, *y = b;
    if (x->joined != y->joined)
        return x->joined < y->joined ? -1 : 1;
    if (x->created_us != y->created_us)
        return x->created_us < y->created_us ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void collect_doc(fs_op_t *op, json_t *doc)
{
    json_array_append(op->rows, doc);
}

/* Members in the order they were added: joined_at (ms, stamped by the
 * core), then the document's createTime (µs, commit order), then name. */
static void get_room_members_listed(fs_op_t *op)
{
    size_t n = json_array_size(op->rows);
    member_row_t *rows = sm_xcalloc(n ? n : 1, sizeof *rows);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *doc = json_array_get(op->rows, i);
        const json_t *f = json_object_get(doc, "fields");
        member_row_t *m = &rows[k];
        const char *client = NULL, *role = NULL, *ct;
        m->name = json_string_value(json_object_get(doc, "name"));
        ct = json_string_value(json_object_get(doc, "createTime"));
        if (sm_fs_get_string(f, "client_id", &client) != 0 ||
            sm_fs_get_string(f, "role", &role) != 0 || opt_time(f, "joined_at", &m->joined) != 0 ||
            ct == NULL || sm_fs_parse_time_us(ct, &m->created_us) != 0) {
            SM_LOG(SM_LOG_WARN, SM_MSG("firestore: malformed membership skipped"),
                   SM_STR("document", m->name ? m->name : "?"));
            continue;
        }
        m->m.room_id = op->req->room_id;
        m->m.client_id = (char *)client;
        m->m.role = (char *)role;
        m->m.joined_at_ms = m->joined;
        k++;
    }
    qsort(rows, k, sizeof rows[0], member_cmp);
    for (size_t i = 0; i < k; i++)
        sm_store_req_add_member(op->req, &rows[i].m);
    free(rows);
    op_finish(op, 0);
}

static void get_room_read(fs_op_t *op, const fs_res_t *r)
{
    if (!got_doc(op, r, SM_ENOTFOUND))
        return;
    sm_room_rec_t rec;
    if (room_decode(json_object_get(r->json, "fields"), op->req->room_id, &rec) != 0) {
        corrupt(op, op->name);
        return;
    }
    sm_store_req_set_room(op->req, &rec);
    json_decref(op->rows);
    op->rows = json_array();
    query_start(op, COLL_MEMBERS, where_equal("room_id", op->key), NULL, collect_doc,
                get_room_members_listed);
}

static void get_room_start(fs_op_t *op)
{
    op->name = doc_name(op->fs, COLL_ROOMS, op->req->room_id);
    call_get(op, op->name, get_room_read);
}

/* ---- Memberships ------------------------------------------------------------------ */

static bool member_ours(const fs_op_t *op, const json_t *fields)
{
    const char *role = NULL;
    int64_t t = 0;
    return sm_fs_get_string(fields, "role", &role) == 0 && strcmp(role, op->own_s1) == 0 &&
           opt_time(fields, "joined_at", &t) == 0 && t == op->own_t;
}

static void add_member_start(fs_op_t *op)
{
    const sm_store_req_t *req = op->req;
    fs_store_t *fs = op->fs;
    char *room = doc_name(fs, COLL_ROOMS, req->room_id);
    op->undo_name = member_name(fs, req->room_id, req->client_id);
    op->own_s1 = sm_xstrdup(req->role);
    op->own_t = req->joined_at_ms;
    op->ours = member_ours;

    json_t *f = json_object();
    set_str(f, "room_id", req->room_id);
    set_str(f, "client_id", req->client_id);
    set_str(f, "role", req->role);
    json_object_set_new(f, "joined_at", sm_fs_value_time_ms(req->joined_at_ms));
    pthread_mutex_lock(&fs->lock);
    if (fs->instance_id && fs->instance_id[0])
        set_str(f, "instance_id", fs->instance_id);
    pthread_mutex_unlock(&fs->lock);

    /* 1: the room must exist; bumping member_seq gives it a new updateTime,
     *    which is what delete_room's precondition watches.
     * 2: the membership, only if it does not exist yet. */
    json_t *w = json_pack(
        "[{s:{s:s, s:{}}, s:{s:[]}, s:[{s:s, s:o}], s:{s:b}}, {s:{s:s, s:o}, s:{s:b}}]", "update",
        "name", room, "fields", "updateMask", "fieldPaths", "updateTransforms", "fieldPath",
        "member_seq", "increment", sm_fs_value_int(1), "currentDocument", "exists", 1, "update",
        "name", op->undo_name, "fields", f, "currentDocument", "exists", 0);
    SM_ASSERT(w != NULL);
    free(room);
    op->creating = true;
    call_commit(op, w, put_done);
}

static void remove_member_done(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls == SM_FS_OK)
        op_finish(op, 0);
    else if (r->cls == SM_FS_NOT_FOUND)
        op_finish(op, SM_ENOTFOUND);
    else
        unexpected(op, r);
}

static void remove_member_start(fs_op_t *op)
{
    char *name = member_name(op->fs, op->req->room_id, op->req->client_id);
    char *u = doc_url(op->fs, name);
    free(name);
    fs_call(op, "DELETE", xasprintf("%s?currentDocument.exists=true", u), NULL, "firestore.delete",
            remove_member_done);
    free(u);
}

/* ---- Client credentials -------------------------------------------------------------- */

static void get_client_done(fs_op_t *op, const fs_res_t *r)
{
    if (!got_doc(op, r, SM_ENOTFOUND))
        return;
    const char *hash = NULL;
    sm_fs_get_string(json_object_get(r->json, "fields"), "token_sha256", &hash);
    sm_client_rec_t c = {.client_id = op->req->client_id, .token_sha256 = (char *)hash};
    sm_store_req_set_client(op->req, &c); /* the core checks the hash */
    op_finish(op, 0);
}

static void get_client_start(fs_op_t *op)
{
    op->name = doc_name(op->fs, COLL_CLIENTS, op->req->client_id);
    call_get(op, op->name, get_client_done);
}

/* ---- Start-up clean-up ------------------------------------------------------------------
 * Stages: registrations, rooms and memberships of the instance; memberships
 * of those rooms and of those clients (IN filters of FS_IN_MAX values);
 * then every name found is deleted in commits of FS_BATCH_MAX writes. */

enum { CL_REGS, CL_ROOMS, CL_MEMBERS, CL_ROOM_MEMBERS, CL_CLIENT_MEMBERS, CL_DELETE };

static void cleanup_next(fs_op_t *op);

static void add_to_set(fs_op_t *op, json_t *doc)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (name)
        json_object_set_new(op->set, name, json_null());
}

static void cleanup_reg_row(fs_op_t *op, json_t *doc)
{
    const char *id = NULL;
    add_to_set(op, doc);
    op->regs++;
    if (sm_fs_get_string(json_object_get(doc, "fields"), "client_id", &id) == 0)
        json_array_append_new(op->rows, json_string(id));
}

static void cleanup_room_row(fs_op_t *op, json_t *doc)
{
    const char *id = NULL;
    add_to_set(op, doc);
    op->rooms++;
    if (sm_fs_get_string(json_object_get(doc, "fields"), "room_id", &id) == 0)
        json_array_append_new(op->ids, json_string(id));
}

static void cleanup_stage_done(fs_op_t *op)
{
    op->stage++;
    op->pos = 0;
    cleanup_next(op);
}

static void cleanup_chunk_done(fs_op_t *op)
{
    op->pos += FS_IN_MAX;
    cleanup_next(op);
}

static void cleanup_batch_done(fs_op_t *op, const fs_res_t *r)
{
    if (r->cls != SM_FS_OK) {
        unexpected(op, r);
        return;
    }
    op->pos += FS_BATCH_MAX;
    cleanup_next(op);
}

static void cleanup_next(fs_op_t *op)
{
    static const char *const sel_client[] = {"client_id", NULL};
    static const char *const sel_room[] = {"room_id", NULL};
    const char *inst = op->req->instance_id;
    switch (op->stage) {
    case CL_REGS:
        query_start(op, COLL_REGS, where_equal("instance_id", inst), sel_client, cleanup_reg_row,
                    cleanup_stage_done);
        return;
    case CL_ROOMS:
        query_start(op, COLL_ROOMS, where_equal("instance_id", inst), sel_room, cleanup_room_row,
                    cleanup_stage_done);
        return;
    case CL_MEMBERS:
        query_start(op, COLL_MEMBERS, where_equal("instance_id", inst), select_name, add_to_set,
                    cleanup_stage_done);
        return;
    case CL_ROOM_MEMBERS:
    case CL_CLIENT_MEMBERS: {
        const json_t *ids = op->stage == CL_ROOM_MEMBERS ? op->ids : op->rows;
        size_t n = json_array_size(ids);
        if (op->pos >= n) {
            cleanup_stage_done(op);
            return;
        }
        size_t end = op->pos + FS_IN_MAX < n ? op->pos + FS_IN_MAX : n;
        const char *field = op->stage == CL_ROOM_MEMBERS ? "room_id" : "client_id";
        query_start(op, COLL_MEMBERS, where_in(field, ids, op->pos, end), select_name, add_to_set,
                    cleanup_chunk_done);
        return;
    }
    case CL_DELETE:
    default: {
        if (op->pos == 0) {
            /* The set's names as an array, for batching. */
            json_decref(op->rows);
            op->rows = json_array();
            for (void *it = json_object_iter(op->set); it; it = json_object_iter_next(op->set, it))
                json_array_append_new(op->rows, json_string(json_object_iter_key(it)));
        }
        size_t n = json_array_size(op->rows);
        if (op->pos >= n) {
            sm_store_req_set_removed(op->req, op->regs, op->rooms);
            op_finish(op, 0);
            return;
        }
        size_t end = op->pos + FS_BATCH_MAX < n ? op->pos + FS_BATCH_MAX : n;
        call_commit(op, writes_delete(op->rows, op->pos, end), cleanup_batch_done);
        return;
    }
    }
}

static void cleanup_start(fs_op_t *op)
{
    op->set = json_object();
    op->rows = json_array(); /* client ids, then the names to delete */
    op->ids = json_array();  /* room ids */
    op->stage = CL_REGS;
    cleanup_next(op);
}

/* ---- Submission ---------------------------------------------------------------------- */

static void op_start(fs_op_t *op)
{
    op->started = true;
    switch (op->kind) {
    case SM_STORE_OP_PUT_REGISTRATION:
        put_registration_start(op);
        return;
    case SM_STORE_OP_DELETE_REGISTRATION:
        delete_registration_start(op);
        return;
    case SM_STORE_OP_GET_REGISTRATION:
        get_registration_start(op);
        return;
    case SM_STORE_OP_COUNT_REGISTRATIONS:
        count_registrations_start(op);
        return;
    case SM_STORE_OP_PUT_ROOM:
        put_room_start(op);
        return;
    case SM_STORE_OP_DELETE_ROOM:
        delete_room_start(op);
        return;
    case SM_STORE_OP_GET_ROOM:
        get_room_start(op);
        return;
    case SM_STORE_OP_ADD_MEMBER:
        add_member_start(op);
        return;
    case SM_STORE_OP_REMOVE_MEMBER:
        remove_member_start(op);
        return;
    case SM_STORE_OP_CLEANUP_INSTANCE:
        cleanup_start(op);
        return;
    case SM_STORE_OP_GET_CLIENT:
        get_client_start(op);
        return;
    }
    SM_ASSERT(!"unknown store op");
}

static fs_op_t *op_new(fs_store_t *fs, sm_store_req_t *req, sm_rest_client_t *rest)
{
    fs_op_t *op = SM_NEW(fs_op_t);
    op->fs = fs;
    op->req = req;
    op->kind = req->op;
    op->rest = rest;
    op->opname = sm_store_op_name(req->op);
    op->budget = fs->attempts;
    sm_list_init(&op->node);
    switch (req->op) {
    case SM_STORE_OP_PUT_REGISTRATION:
        op->kclass = K_REG;
        op->key = sm_xstrdup(req->reg.client_id);
        break;
    case SM_STORE_OP_DELETE_REGISTRATION:
    case SM_STORE_OP_GET_REGISTRATION:
        op->kclass = K_REG;
        op->key = sm_xstrdup(req->client_id);
        break;
    case SM_STORE_OP_COUNT_REGISTRATIONS:
        op->kclass = K_COUNT;
        break;
    case SM_STORE_OP_PUT_ROOM:
        op->kclass = K_ROOM;
        op->key = sm_xstrdup(req->room.room_id);
        break;
    case SM_STORE_OP_DELETE_ROOM:
    case SM_STORE_OP_GET_ROOM:
    case SM_STORE_OP_ADD_MEMBER:
    case SM_STORE_OP_REMOVE_MEMBER:
        op->kclass = K_ROOM;
        op->key = sm_xstrdup(req->room_id);
        break;
    case SM_STORE_OP_CLEANUP_INSTANCE:
    case SM_STORE_OP_GET_CLIENT:
        op->kclass = K_NONE;
        break;
    }
    pthread_mutex_lock(&fs->lock);
    fs->inflight++;
    pthread_mutex_unlock(&fs->lock);
    return op;
}

static void op_submit(fs_op_t *op)
{
    if (!t_ops_ready) {
        sm_list_init(&t_ops);
        t_ops_ready = true;
    }
    sm_list_insert_tail(&t_ops, &op->node);
    if (startable(op))
        op_start(op);
}

/* Every asynchronous operation. */
static void fs_submit(void *impl, sm_store_req_t *req)
{
    sm_rest_client_t *rest = sm_rest_client_current();
    if (rest == NULL) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: no REST client on this thread"),
               SM_STR("op", sm_store_op_name(req->op)));
        sm_store_req_complete(req, SM_EUNAVAIL);
        return;
    }
    op_submit(op_new(impl, req, rest));
}

static void on_cleanup_guard(uv_timer_t *t)
{
    SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: start-up clean-up took too long; canceled"));
    sm_rest_cancel_all(t->data);
}

/* Main thread, blocking: a temporary loop and REST client run the clean-up
 * to its end; the request is completed before this returns. */
static void fs_cleanup_instance(void *impl, sm_store_req_t *req)
{
    fs_store_t *fs = impl;
    pthread_mutex_lock(&fs->lock);
    free(fs->instance_id);
    fs->instance_id = sm_xstrdup(req->instance_id);
    pthread_mutex_unlock(&fs->lock);

    uv_loop_t loop;
    SM_ASSERT(uv_loop_init(&loop) == 0);
    sm_rest_client_t *prev = sm_rest_client_current();
    sm_rest_client_t *rest = sm_rest_client_new(&loop);
    if (rest == NULL) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("firestore: cannot create a REST client for the clean-up"));
        sm_store_req_complete(req, SM_EUNAVAIL);
        goto out_loop;
    }
    sm_rest_client_set_current(rest);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    guard.data = rest;
    uint64_t budget =
        (fs->timeout_ms + fs->interval_ms * FS_BACKOFF_CAP_FACTOR) * fs->attempts * 10;
    uv_timer_start(&guard, on_cleanup_guard,
                   budget > FS_CLEANUP_GUARD_MIN_MS ? budget : FS_CLEANUP_GUARD_MIN_MS, 0);

    bool freed = false;
    fs_op_t *op = op_new(fs, req, rest);
    op->freed_flag = &freed;
    op_submit(op);
    while (!freed)
        uv_run(&loop, UV_RUN_ONCE);

    uv_close((uv_handle_t *)&guard, NULL);
    sm_rest_client_set_current(prev);
    sm_rest_client_close(rest);
    uv_run(&loop, UV_RUN_DEFAULT);
out_loop:
    if (uv_loop_close(&loop) != 0)
        SM_LOG(SM_LOG_WARN, SM_MSG("firestore: clean-up loop did not close cleanly"));
}

/* ---- Open and close ---------------------------------------------------------------------- */

static bool all_chars(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s)))
            return false;
    return true;
}

static void fs_free(fs_store_t *fs)
{
    free(fs->docs_url);
    free(fs->root);
    for (int i = 0; i < COLL__N; i++)
        free(fs->coll[i]);
    sm_gcreds_close(fs->creds);
    free(fs->instance_id);
    pthread_cond_destroy(&fs->idle);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}

static int fs_open(const sm_config_t *cfg, void **impl, char *err, size_t errlen)
{
    const char *project = cfg->firestore_project_id ? cfg->firestore_project_id : "";
    const char *db =
        cfg->firestore_database && *cfg->firestore_database ? cfg->firestore_database : "(default)";
    const char *prefix = cfg->firestore_collection_prefix ? cfg->firestore_collection_prefix : "";
    const char *key_file = cfg->firestore_credentials ? cfg->firestore_credentials : "";
    const char *emu = getenv("FIRESTORE_EMULATOR_HOST");
    bool emulator = emu != NULL && emu[0] != '\0';

    if (project[0] == '\0') {
        snprintf(err, errlen, "firestore.project_id: required when store.backend = firestore");
        return SM_ECONFIG;
    }
    /* Project ids are [a-z0-9-] (domain-scoped ones add '.' and ':'). */
    if (strlen(project) > 100 || !all_chars(project, "-_.:")) {
        snprintf(err, errlen, "firestore.project_id: \"%s\" is not a valid project id", project);
        return SM_ECONFIG;
    }
    if (strlen(db) > 100 || !all_chars(db, "-_()")) {
        snprintf(err, errlen, "firestore.database: \"%s\" is not a valid database id", db);
        return SM_ECONFIG;
    }
    /* Collection ids: no '/', and nothing that could spell __x__. */
    if (strlen(prefix) > 100 || !all_chars(prefix, "-_.") || strncmp(prefix, "__", 2) == 0) {
        snprintf(err, errlen,
                 "firestore.collection_prefix: \"%s\": use at most 100 of [A-Za-z0-9_.-], not "
                 "starting with \"__\"",
                 prefix);
        return SM_ECONFIG;
    }
    char *base;
    if (emulator) {
        if (!sm_gcreds_host_ok(emu)) {
            snprintf(err, errlen, "FIRESTORE_EMULATOR_HOST: \"%.64s\" is not host:port", emu);
            return SM_ECONFIG;
        }
        base = xasprintf("http://%s", emu);
    } else {
        const char *b = cfg->firestore_base_url ? cfg->firestore_base_url : "";
        if (!sm_rest_url_ok(b)) {
            snprintf(err, errlen, "firestore.base_url: \"%s\" is not an http(s) URL", b);
            return SM_ECONFIG;
        }
        base = sm_xstrdup(b);
    }
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0';

    fs_store_t *fs = SM_NEW(fs_store_t);
    pthread_mutex_init(&fs->lock, NULL);
    pthread_cond_init(&fs->idle, NULL);
    fs->emulator = emulator;
    sm__store_retry_settings(cfg, &fs->timeout_ms, &fs->attempts, &fs->interval_ms);
    fs->root = xasprintf("projects/%s/databases/%s/documents", project, db);
    fs->docs_url = xasprintf("%s/v1/%s", base, fs->root);
    free(base);
    for (int i = 0; i < COLL__N; i++)
        fs->coll[i] = xasprintf("%s%s", prefix, coll_suffix[i]);
    const char *inst =
        cfg->instance_id && cfg->instance_id[0] ? cfg->instance_id : cfg->server_instance_id;
    fs->instance_id = inst && inst[0] ? sm_xstrdup(inst) : NULL;

    sm_gcreds_opts_t go = {
        .emulator = emulator,
        .emulator_token = emulator ? "owner" : NULL,
        .key_file = emulator ? NULL : key_file,
        .scopes = scope_datastore,
        .config_key = "firestore.credentials",
        .timeout_ms = fs->timeout_ms,
    };
    int rc = sm_gcreds_open(&go, &fs->creds, err, errlen);
    if (rc != 0) {
        fs->creds = NULL;
        fs_free(fs);
        return SM_ECONFIG;
    }
    if (!emulator && (rc = sm_gcreds_check(fs->creds, err, errlen)) != 0) {
        fs_free(fs);
        return SM_ECONFIG;
    }
    SM_LOG(SM_LOG_INFO, SM_MSG("store opened"), SM_STR("backend", "firestore"),
           SM_STR("project_id", project), SM_STR("database", db),
           SM_STR("collection_prefix", prefix), SM_BOOL("emulator", emulator),
           SM_STR("credentials", sm_gcreds_describe(fs->creds)));
    *impl = fs;
    return 0;
}

static void fs_close(void *impl)
{
    fs_store_t *fs = impl;
    if (t_ops_ready) {
        sm_list_t *n;
        for (n = t_ops.next; n != &t_ops; n = n->next) {
            /* sm_store_close on a thread with firestore operations in flight:
             * their completions need this thread's loop, which we would block. */
            SM_ASSERT(SM_CONTAINER_OF(n, fs_op_t, node)->fs != fs);
        }
    }
    pthread_mutex_lock(&fs->lock);
    while (fs->inflight > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        if (pthread_cond_timedwait(&fs->idle, &fs->lock, &ts) != 0 && fs->inflight > 0)
            SM_LOG(SM_LOG_WARN, SM_MSG("firestore: close is waiting for operations"),
                   SM_UINT("in_flight", fs->inflight));
    }
    pthread_mutex_unlock(&fs->lock);
    fs_free(fs);
}

const sm_store_vtable_t sm_store_backend_firestore = {
    .name = "firestore",
    .open = fs_open,
    .close = fs_close,
    .cleanup_instance = fs_cleanup_instance,
    .put_registration = fs_submit,
    .delete_registration = fs_submit,
    .get_registration = fs_submit,
    .count_registrations = fs_submit,
    .put_room = fs_submit,
    .delete_room = fs_submit,
    .get_room = fs_submit,
    .add_member = fs_submit,
    .remove_member = fs_submit,
    .get_client = fs_submit,
};
