/*
 * Firestore store backend (src/store/store_firestore.c) and its helpers
 * (src/cloud/firestore.c).
 *
 * 1. Pure helpers: Value encoding and decoding with the §2.2 quirks, RFC 3339
 *    times, document-id escaping, response classification by error.status.
 * 2. The store contract (contract.h, shared with test_store.c) against a small
 *    Firestore written here: documents in memory, get, createDocument,
 *    delete with preconditions, runQuery (EQUAL/IN, select, __name__ order,
 *    limit, startAt) and :commit (atomic, preconditions, increment), plus
 *    scripted faults (status + google.rpc body, silence, "apply then fail").
 *    It runs on its own thread and loop (fake_http.h), because the backend
 *    runs its calls on the test thread's loop and cleanup_instance blocks
 *    the calling thread on a loop of its own.
 * 3. Failure handling: 409 ALREADY_EXISTS vs 409 ABORTED, retry then
 *    success, retries exhausted (SM_EUNAVAIL, nothing left), the timeout
 *    bound, a create that landed but whose answer was lost, 401 ->
 *    invalidate and retry once, not-retried statuses, preconditions,
 *    commit batches, emulator mode and configuration errors.
 *
 * Exception to the unit-test rule "no sockets": the backend's job is REST
 * calls, so these tests use loopback sockets only (as test_http_client.c).
 * No sleeps: every wait runs the loop until a condition holds.
 *
 * Google credentials are a stub (--wrap): a token is "fetched" from the fake
 * (GET /token), so the callback is asynchronous like the real one, and the
 * fake can expire tokens to provoke 401s.
 *
 * WRAP: sm_gcreds_open sm_gcreds_close sm_gcreds_check
 * WRAP: sm_gcreds_get sm_gcreds_invalidate sm_gcreds_describe
 */
#include "contract.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>

#include "cloud/fake_http.h"
#include "cloud/firestore.h"
#include "cloud/gcreds.h"
#include "cloud/http_client.h"
#include "core/assert.h"

#define PROJECT "test-project"
#define ROOT "projects/" PROJECT "/databases/(default)/documents"
#define PREFIX "t_"

/* ======================================================================
 * The fake Firestore
 * ====================================================================== */

enum { F_REPLY, F_SILENT, F_DROP, F_BEFORE };

typedef struct {
    char method[8];   /* "" = any */
    char match[64];   /* substring of the path (with query), "" = any */
    int status;       /* HTTP status of the scripted answer */
    char gstatus[32]; /* google.rpc status for the error body */
    int mode;
    bool apply; /* run the real handler first (the write happens), then answer with the fault */
    unsigned count;
    void (*before)(void); /* F_BEFORE: change the state (lock held), then handle normally */
} ffault_t;

typedef struct {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    fake_t http;
    pthread_mutex_t lock; /* guards everything below (the test thread inspects it) */
    pthread_cond_t ready_cond;
    bool ready;
    json_t *docs; /* name -> {"fields", "c" (create µs), "u" (update µs)} */
    int64_t clock_us;
    unsigned token_gen;
    ffault_t faults[16];
    unsigned nfaults;
    /* counters (token requests excluded) */
    unsigned n_req, n_get, n_create, n_delete, n_query, n_commit;
    unsigned max_commit_writes;
    unsigned n_401;
    char last_auth[128];
    char *resp; /* body of the answer being sent */
} ffs_t;

static ffs_t g_fs;

static void fs_clock_fmt(int64_t us, char *out, size_t cap)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (unsigned)(us % 1000000));
}

/* Percent-decode s[0..n) into a new string. */
static char *fs_unpct(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n + 1 && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char h[3] = {s[i + 1], s[i + 2], 0};
            o[k++] = (char)strtol(h, NULL, 16);
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    return o;
}

/* Value of query parameter key (decoded, malloc'd) or NULL. */
static char *fs_query_param(const char *query, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
            return fs_unpct(p + kl + 1, len - kl - 1);
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void fs_answer(fake_resp_t *out, int status, json_t *body)
{
    free(g_fs.resp);
    g_fs.resp = json_dumps(body, JSON_INDENT(2) | JSON_ENCODE_ANY); /* pretty, as the service */
    json_decref(body);
    out->mode = FAKE_REPLY;
    out->status = status;
    out->body = g_fs.resp;
    out->body_len = strlen(g_fs.resp);
}

static void fs_error(fake_resp_t *out, int status, const char *gstatus, const char *msg)
{
    fs_answer(out, status,
              json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", msg, "status",
                        gstatus));
}

static json_t *fs_doc_out(const char *name, const json_t *d, const json_t *select)
{
    char ct[40], ut[40];
    fs_clock_fmt(json_integer_value(json_object_get(d, "c")), ct, sizeof ct);
    fs_clock_fmt(json_integer_value(json_object_get(d, "u")), ut, sizeof ut);
    json_t *out = json_pack("{s:s, s:s, s:s}", "name", name, "createTime", ct, "updateTime", ut);
    json_t *fields = json_object_get(d, "fields");
    json_t *f = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(fields, k, v)
    {
        bool keep = select == NULL;
        size_t i;
        json_t *sel;
        json_array_foreach(select, i,
                           sel) if (strcmp(json_string_value(json_object_get(sel, "fieldPath")),
                                           k) == 0) keep = true;
        if (keep)
            json_object_set(f, k, v);
    }
    if (json_object_size(f))
        json_object_set_new(out, "fields", f);
    else
        json_decref(f);
    return out;
}

/* Check a precondition against the current doc (NULL = missing): 0 or fills out. */
static bool fs_precond_fail(const json_t *pre, const char *name, const json_t *doc,
                            fake_resp_t *out)
{
    if (pre == NULL)
        return false;
    json_t *ex = json_object_get(pre, "exists");
    const char *ut = json_string_value(json_object_get(pre, "updateTime"));
    char msg[512];
    if (json_is_true(ex) && doc == NULL) {
        snprintf(msg, sizeof msg, "No document to update: %s", name);
        fs_error(out, 404, "NOT_FOUND", msg);
        return true;
    }
    if (json_is_false(ex) && doc != NULL) {
        snprintf(msg, sizeof msg, "Document already exists: %s", name);
        fs_error(out, 409, "ALREADY_EXISTS", msg);
        return true;
    }
    if (ut != NULL) {
        char cur[40] = "";
        if (doc)
            fs_clock_fmt(json_integer_value(json_object_get(doc, "u")), cur, sizeof cur);
        if (doc == NULL || strcmp(cur, ut) != 0) {
            fs_error(out, 400, "FAILED_PRECONDITION",
                     "the stored version does not match the required base version");
            return true;
        }
    }
    return false;
}

static json_t *fs_new_doc(json_t *fields, int64_t c, int64_t u)
{
    return json_pack("{s:O, s:I, s:I}", "fields", fields, "c", (json_int_t)c, "u", (json_int_t)u);
}

/* Apply one commit write to docs; false (and out filled) on failure. */
static bool fs_apply_write(json_t *docs, const json_t *w, int64_t now, fake_resp_t *out)
{
    const json_t *pre = json_object_get(w, "currentDocument");
    const char *del = json_string_value(json_object_get(w, "delete"));
    if (del) {
        if (fs_precond_fail(pre, del, json_object_get(docs, del), out))
            return false;
        json_object_del(docs, del);
        return true;
    }
    const json_t *u = json_object_get(w, "update");
    const char *name = json_string_value(json_object_get(u, "name"));
    if (name == NULL || strncmp(name, ROOT "/", strlen(ROOT) + 1) != 0) {
        fs_error(out, 400, "INVALID_ARGUMENT", "bad write");
        return false;
    }
    json_t *cur = json_object_get(docs, name);
    if (fs_precond_fail(pre, name, cur, out))
        return false;
    json_t *fields;
    const json_t *mask = json_object_get(w, "updateMask");
    if (mask) {
        fields = cur ? json_deep_copy(json_object_get(cur, "fields")) : json_object();
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(mask, "fieldPaths"), i, p)
        {
            json_t *v = json_object_get(json_object_get(u, "fields"), json_string_value(p));
            if (v)
                json_object_set(fields, json_string_value(p), v);
            else
                json_object_del(fields, json_string_value(p));
        }
    } else {
        fields = json_deep_copy(json_object_get(u, "fields"));
        if (fields == NULL)
            fields = json_object();
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(w, "updateTransforms"), i, t)
    {
        const char *fp = json_string_value(json_object_get(t, "fieldPath"));
        int64_t base = 0, inc = 0;
        sm_fs_read_int(json_object_get(fields, fp), &base);
        assert_int_equal(sm_fs_read_int(json_object_get(t, "increment"), &inc), 0);
        json_object_set_new(fields, fp, sm_fs_value_int(base + inc));
    }
    int64_t created = cur ? json_integer_value(json_object_get(cur, "c")) : now;
    json_object_set_new(docs, name, fs_new_doc(fields, created, now));
    json_decref(fields);
    return true;
}

static bool fs_where(const json_t *where, const json_t *fields)
{
    if (where == NULL)
        return true;
    const json_t *ff = json_object_get(where, "fieldFilter");
    const char *path =
        json_string_value(json_object_get(json_object_get(ff, "field"), "fieldPath"));
    const char *op = json_string_value(json_object_get(ff, "op"));
    const json_t *val = json_object_get(ff, "value");
    const json_t *have = json_object_get(fields, path);
    if (have == NULL)
        return false;
    if (strcmp(op, "EQUAL") == 0)
        return json_equal((json_t *)have, (json_t *)val);
    assert_string_equal(op, "IN");
    const json_t *vals = NULL;
    assert_int_equal(sm_fs_read_array(val, &vals), 0);
    size_t i;
    json_t *x;
    json_array_foreach(vals, i, x) if (json_equal((json_t *)have, x)) return true;
    return false;
}

static int fs_strcmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void fs_run_query(const json_t *sq, fake_resp_t *out)
{
    const char *coll = json_string_value(
        json_object_get(json_array_get(json_object_get(sq, "from"), 0), "collectionId"));
    const json_t *where = json_object_get(sq, "where");
    const json_t *select = json_object_get(json_object_get(sq, "select"), "fields");
    json_int_t limit = json_integer_value(json_object_get(sq, "limit"));
    const char *after = json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(sq, "startAt"), "values"), 0),
        "referenceValue"));
    assert_true(json_is_false(json_object_get(json_object_get(sq, "startAt"), "before")) ||
                json_object_get(sq, "startAt") == NULL);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/%s/", ROOT, coll);
    size_t n = 0, cap = json_object_size(g_fs.docs) + 1;
    const char **names = calloc(cap, sizeof *names);
    const char *k;
    json_t *d;
    json_object_foreach(g_fs.docs, k, d)
    {
        if (strncmp(k, prefix, strlen(prefix)) != 0 || strchr(k + strlen(prefix), '/'))
            continue;
        if (after && strcmp(k, after) <= 0)
            continue;
        if (fs_where(where, json_object_get(d, "fields")))
            names[n++] = k;
    }
    qsort(names, n, sizeof *names, fs_strcmp);
    if (limit > 0 && (json_int_t)n > limit)
        n = (size_t)limit;
    char rt[40];
    fs_clock_fmt(g_fs.clock_us, rt, sizeof rt);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:o, s:s}", "document",
                           fs_doc_out(names[i], json_object_get(g_fs.docs, names[i]), select),
                           "readTime", rt));
    if (n == 0)
        json_array_append_new(arr, json_pack("{s:s}", "readTime", rt));
    free(names);
    fs_answer(out, 200, arr);
}

/* The real handler. */
static void fs_handle(const fake_req_t *req, fake_resp_t *out)
{
    char *path = strdup(req->path);
    char *query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    json_t *body = req->body ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
    int64_t now = ++g_fs.clock_us;
    char name[1024];
    const char *v1 = "/v1/" ROOT;
    if (strncmp(path, v1, strlen(v1)) != 0) {
        fs_error(out, 404, "NOT_FOUND", "no route");
        goto out;
    }
    const char *rest = path + strlen(v1);
    if (strcmp(rest, ":runQuery") == 0) {
        g_fs.n_query++;
        fs_run_query(json_object_get(body, "structuredQuery"), out);
        goto out;
    }
    if (strcmp(rest, ":commit") == 0) {
        g_fs.n_commit++;
        json_t *writes = json_object_get(body, "writes");
        if (json_array_size(writes) > g_fs.max_commit_writes)
            g_fs.max_commit_writes = (unsigned)json_array_size(writes);
        json_t *view = json_deep_copy(g_fs.docs);
        size_t i;
        json_t *w;
        bool ok = true;
        json_array_foreach(writes, i, w) if (ok && !fs_apply_write(view, w, now, out)) ok = false;
        if (ok) {
            json_decref(g_fs.docs);
            g_fs.docs = view;
            char ct[40];
            fs_clock_fmt(now, ct, sizeof ct);
            fs_answer(out, 200, json_pack("{s:s}", "commitTime", ct));
        } else {
            json_decref(view);
        }
        goto out;
    }
    /* "/<coll>" or "/<coll>/<id>" */
    const char *coll = rest + 1;
    const char *slash = strchr(coll, '/');
    if (slash == NULL) {
        if (strcmp(req->method, "POST") != 0 || query == NULL) {
            fs_error(out, 400, "INVALID_ARGUMENT", "bad create");
            goto out;
        }
        g_fs.n_create++;
        char *id = fs_query_param(query, "documentId");
        assert_non_null(id);
        snprintf(name, sizeof name, "%s/%s/%s", ROOT, coll, id);
        free(id);
        if (json_object_get(g_fs.docs, name)) {
            char msg[1100];
            snprintf(msg, sizeof msg, "Document already exists: %s", name);
            fs_error(out, 409, "ALREADY_EXISTS", msg);
            goto out;
        }
        json_t *fields = json_object_get(body, "fields");
        json_t *d = fs_new_doc(fields ? fields : json_object(), now, now);
        if (fields == NULL)
            json_decref(json_object_get(d, "fields")); /* the temporary object */
        json_object_set_new(g_fs.docs, name, d);
        fs_answer(out, 200, fs_doc_out(name, d, NULL));
        goto out;
    }
    char *id = fs_unpct(slash + 1, strlen(slash + 1));
    snprintf(name, sizeof name, "%s/%.*s/%s", ROOT, (int)(slash - coll), coll, id);
    free(id);
    json_t *doc = json_object_get(g_fs.docs, name);
    if (strcmp(req->method, "GET") == 0) {
        g_fs.n_get++;
        if (doc == NULL) {
            char msg[1100];
            snprintf(msg, sizeof msg, "Document \"%s\" not found.", name);
            fs_error(out, 404, "NOT_FOUND", msg);
        } else {
            fs_answer(out, 200, fs_doc_out(name, doc, NULL));
        }
        goto out;
    }
    if (strcmp(req->method, "DELETE") == 0) {
        g_fs.n_delete++;
        json_t *pre = NULL;
        char *ex = query ? fs_query_param(query, "currentDocument.exists") : NULL;
        char *ut = query ? fs_query_param(query, "currentDocument.updateTime") : NULL;
        if (ex)
            pre = json_pack("{s:b}", "exists", strcmp(ex, "true") == 0);
        else if (ut)
            pre = json_pack("{s:s}", "updateTime", ut);
        free(ex);
        free(ut);
        bool failed = fs_precond_fail(pre, name, doc, out);
        json_decref(pre);
        if (!failed) {
            json_object_del(g_fs.docs, name);
            fs_answer(out, 200, json_object());
        }
        goto out;
    }
    fs_error(out, 400, "INVALID_ARGUMENT", "no such method");
out:
    json_decref(body);
    free(path);
}

static void fs_http_handler(fake_t *f, const fake_req_t *req, unsigned index, fake_resp_t *out)
{
    (void)f;
    (void)index;
    pthread_mutex_lock(&g_fs.lock);
    if (strncmp(req->path, "/token", 6) == 0) {
        /* The credentials stub: a cached token is echoed (?have=), else the current one. */
        const char *q = strchr(req->path, '?');
        char *have = q ? fs_query_param(q + 1, "have") : NULL;
        char tok[64];
        if (have && *have)
            snprintf(tok, sizeof tok, "%s", have);
        else
            snprintf(tok, sizeof tok, "tok-%u", g_fs.token_gen);
        free(have);
        free(g_fs.resp);
        g_fs.resp = strdup(tok);
        out->status = 200;
        out->body = g_fs.resp;
        out->body_len = strlen(tok);
        pthread_mutex_unlock(&g_fs.lock);
        return;
    }
    g_fs.n_req++;
    char auth[128] = "";
    fake_header(req, "authorization", auth, sizeof auth);
    snprintf(g_fs.last_auth, sizeof g_fs.last_auth, "%s", auth);
    char want[64];
    snprintf(want, sizeof want, "Bearer tok-%u", g_fs.token_gen);
    ffault_t *fault = NULL;
    for (unsigned i = 0; i < g_fs.nfaults; i++) {
        ffault_t *x = &g_fs.faults[i];
        if (x->count > 0 && (!x->method[0] || strcmp(x->method, req->method) == 0) &&
            (!x->match[0] || strstr(req->path, x->match))) {
            x->count--;
            fault = x;
            break;
        }
    }
    if (fault && fault->mode == F_BEFORE) {
        fault->before();
        fault = NULL;
    }
    if (fault == NULL || fault->apply) {
        if (strcmp(auth, want) != 0 && strcmp(auth, "Bearer owner") != 0) {
            g_fs.n_401++;
            fs_error(out, 401, "UNAUTHENTICATED",
                     "Request had invalid authentication credentials.");
        } else {
            fs_handle(req, out);
        }
    }
    if (fault) {
        out->mode = fault->mode == F_SILENT ? FAKE_SILENT
                    : fault->mode == F_DROP ? FAKE_DROP
                                            : FAKE_REPLY;
        if (fault->mode == F_REPLY) {
            if (fault->gstatus[0])
                fs_error(out, fault->status, fault->gstatus, "injected");
            else
                fs_answer(out, fault->status, json_string("injected"));
        }
    }
    pthread_mutex_unlock(&g_fs.lock);
}

static void fs_on_stop(uv_async_t *a)
{
    fake_stop(&g_fs.http);
    uv_close((uv_handle_t *)a, NULL);
}

static void *fs_thread(void *arg)
{
    (void)arg;
    assert_int_equal(uv_loop_init(&g_fs.loop), 0);
    uv_async_init(&g_fs.loop, &g_fs.stop, fs_on_stop);
    assert_int_equal(fake_start(&g_fs.http, &g_fs.loop, fs_http_handler), 0);
    pthread_mutex_lock(&g_fs.lock);
    g_fs.ready = true;
    pthread_cond_signal(&g_fs.ready_cond);
    pthread_mutex_unlock(&g_fs.lock);
    uv_run(&g_fs.loop, UV_RUN_DEFAULT);
    uv_loop_close(&g_fs.loop);
    return NULL;
}

static void ffs_start(void)
{
    memset(&g_fs, 0, sizeof g_fs);
    pthread_mutex_init(&g_fs.lock, NULL);
    pthread_cond_init(&g_fs.ready_cond, NULL);
    g_fs.docs = json_object();
    g_fs.clock_us = 1700000000000000LL;
    g_fs.token_gen = 1;
    pthread_create(&g_fs.thread, NULL, fs_thread, NULL);
    pthread_mutex_lock(&g_fs.lock);
    while (!g_fs.ready)
        pthread_cond_wait(&g_fs.ready_cond, &g_fs.lock);
    pthread_mutex_unlock(&g_fs.lock);
}

static void ffs_stop(void)
{
    uv_async_send(&g_fs.stop);
    pthread_join(g_fs.thread, NULL);
    fake_free(&g_fs.http);
    json_decref(g_fs.docs);
    free(g_fs.resp);
}

static void ffs_reset(void)
{
    pthread_mutex_lock(&g_fs.lock);
    json_object_clear(g_fs.docs);
    g_fs.nfaults = 0;
    g_fs.n_req = g_fs.n_get = g_fs.n_create = g_fs.n_delete = g_fs.n_query = g_fs.n_commit = 0;
    g_fs.max_commit_writes = g_fs.n_401 = 0;
    pthread_mutex_unlock(&g_fs.lock);
}

static ffault_t *ffs_fault(const char *method, const char *match, int status, const char *gstatus,
                           int mode, bool apply, unsigned count)
{
    pthread_mutex_lock(&g_fs.lock);
    assert_true(g_fs.nfaults < (size_t)SM_ARRAY_LEN(g_fs.faults));
    ffault_t *f = &g_fs.faults[g_fs.nfaults++];
    memset(f, 0, sizeof *f);
    snprintf(f->method, sizeof f->method, "%s", method ? method : "");
    snprintf(f->match, sizeof f->match, "%s", match ? match : "");
    f->status = status;
    snprintf(f->gstatus, sizeof f->gstatus, "%s", gstatus ? gstatus : "");
    f->mode = mode;
    f->apply = apply;
    f->count = count;
    pthread_mutex_unlock(&g_fs.lock);
    return f;
}

/* Run before() (with the fake's lock held) when the next matching request
 * arrives, then handle that request normally. */
static void ffs_before(const char *method, const char *match, void (*before)(void))
{
    ffault_t *f = ffs_fault(method, match, 0, NULL, F_BEFORE, false, 1);
    pthread_mutex_lock(&g_fs.lock);
    f->before = before;
    pthread_mutex_unlock(&g_fs.lock);
}

/* Fields of a stored document (relative path "t_registrations/alice"), as
 * compact JSON text in out; false when absent. */
static bool ffs_doc(const char *rel, char *out, size_t cap)
{
    char name[512];
    snprintf(name, sizeof name, "%s/%s", ROOT, rel);
    pthread_mutex_lock(&g_fs.lock);
    json_t *d = json_object_get(g_fs.docs, name);
    if (d && out) {
        char *s = json_dumps(json_object_get(d, "fields"), JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(out, cap, "%s", s);
        free(s);
    }
    pthread_mutex_unlock(&g_fs.lock);
    return d != NULL;
}

static void ffs_put_doc(const char *rel, json_t *fields)
{
    char name[512];
    snprintf(name, sizeof name, "%s/%s", ROOT, rel);
    pthread_mutex_lock(&g_fs.lock);
    int64_t now = ++g_fs.clock_us;
    json_object_set_new(g_fs.docs, name, fs_new_doc(fields, now, now));
    pthread_mutex_unlock(&g_fs.lock);
    json_decref(fields);
}

static size_t ffs_count(void)
{
    pthread_mutex_lock(&g_fs.lock);
    size_t n = json_object_size(g_fs.docs);
    pthread_mutex_unlock(&g_fs.lock);
    return n;
}

#define FFS_GET(field)                                                                             \
    ({                                                                                             \
        pthread_mutex_lock(&g_fs.lock);                                                            \
        unsigned v_ = g_fs.field;                                                                  \
        pthread_mutex_unlock(&g_fs.lock);                                                          \
        v_;                                                                                        \
    })

/* ======================================================================
 * Credentials stub
 * ====================================================================== */

static struct {
    pthread_mutex_t lock;
    char cached[64];
    atomic_uint invalidations;
    atomic_uint gets;
    int open_rc, check_rc;
    bool opened_emulator;
    char opened_token[32];
    char opened_key_file[256];
} g_cred = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int g_sentinel;

int __wrap_sm_gcreds_open(const sm_gcreds_opts_t *opts, sm_gcreds_t **out, char *err,
                          size_t errlen);
void __wrap_sm_gcreds_close(sm_gcreds_t *g);
int __wrap_sm_gcreds_check(sm_gcreds_t *g, char *err, size_t errlen);
int __wrap_sm_gcreds_get(sm_gcreds_t *g, sm_gcreds_cb cb, void *arg);
void __wrap_sm_gcreds_invalidate(sm_gcreds_t *g);
const char *__wrap_sm_gcreds_describe(const sm_gcreds_t *g);

int __wrap_sm_gcreds_open(const sm_gcreds_opts_t *opts, sm_gcreds_t **out, char *err, size_t errlen)
{
    g_cred.opened_emulator = opts->emulator;
    snprintf(g_cred.opened_token, sizeof g_cred.opened_token, "%s",
             opts->emulator_token ? opts->emulator_token : "");
    snprintf(g_cred.opened_key_file, sizeof g_cred.opened_key_file, "%s",
             opts->key_file ? opts->key_file : "");
    if (g_cred.open_rc != 0) {
        snprintf(err, errlen, "%s: stub refuses", opts->config_key);
        *out = NULL;
        return g_cred.open_rc;
    }
    *out = (sm_gcreds_t *)&g_sentinel;
    return 0;
}

void __wrap_sm_gcreds_close(sm_gcreds_t *g)
{
    assert_true(g == NULL || g == (sm_gcreds_t *)&g_sentinel);
}

int __wrap_sm_gcreds_check(sm_gcreds_t *g, char *err, size_t errlen)
{
    (void)g;
    if (g_cred.check_rc != 0)
        snprintf(err, errlen, "firestore.credentials: stub token endpoint refused");
    return g_cred.check_rc;
}

typedef struct {
    sm_gcreds_cb cb;
    void *arg;
    bool emulator;
} cred_get_t;

static void cred_on_token(const sm_rest_resp_t *resp, void *arg)
{
    cred_get_t *g = arg;
    if (resp->err != 0 || resp->status != 200) {
        g->cb(SM_EUNAVAIL, NULL, g->arg);
    } else {
        char authz[96];
        snprintf(authz, sizeof authz, "Bearer %.*s", (int)resp->body_len, resp->body);
        pthread_mutex_lock(&g_cred.lock);
        snprintf(g_cred.cached, sizeof g_cred.cached, "%.*s", (int)resp->body_len, resp->body);
        pthread_mutex_unlock(&g_cred.lock);
        g->cb(0, g->emulator ? "Bearer owner" : authz, g->arg);
    }
    free(g);
}

int __wrap_sm_gcreds_get(sm_gcreds_t *g, sm_gcreds_cb cb, void *arg)
{
    (void)g;
    sm_rest_client_t *c = sm_rest_client_current();
    if (c == NULL)
        return SM_EINVAL;
    atomic_fetch_add(&g_cred.gets, 1);
    char url[256];
    pthread_mutex_lock(&g_cred.lock);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/token?have=%s", g_fs.http.port, g_cred.cached);
    pthread_mutex_unlock(&g_cred.lock);
    cred_get_t *x = calloc(1, sizeof *x);
    x->cb = cb;
    x->arg = arg;
    x->emulator = g_cred.opened_emulator;
    sm_rest_opts_t o = {.method = "GET", .url = url, .max_attempts = 1, .timeout_ms = 5000};
    int rc = sm_rest_request(c, &o, cred_on_token, x);
    if (rc != 0)
        free(x);
    return rc;
}

void __wrap_sm_gcreds_invalidate(sm_gcreds_t *g)
{
    (void)g;
    atomic_fetch_add(&g_cred.invalidations, 1);
    pthread_mutex_lock(&g_cred.lock);
    g_cred.cached[0] = '\0';
    pthread_mutex_unlock(&g_cred.lock);
}

const char *__wrap_sm_gcreds_describe(const sm_gcreds_t *g)
{
    (void)g;
    return "stub";
}

/* ======================================================================
 * Fixture
 * ====================================================================== */

static sm_rest_client_t *g_rest;
static char g_base_url[64];

static void fs_cfg(h_fixture_t *fx)
{
    h_config(fx, "firestore");
    fx->cfg.firestore_project_id = PROJECT;
    fx->cfg.firestore_database = "(default)";
    fx->cfg.firestore_collection_prefix = PREFIX;
    fx->cfg.firestore_credentials = "";
    snprintf(g_base_url, sizeof g_base_url, "http://127.0.0.1:%d/", g_fs.http.port);
    fx->cfg.firestore_base_url = g_base_url;
    /* Generous: loopback plus sanitizers; failure tests shorten it. */
    fx->cfg.database_operation_timeout = 5000;
    fx->cfg.database_retry_attempts = 3;
    fx->cfg.database_retry_interval = 5;
}

static h_fixture_t *fx_new(void)
{
    unsetenv("FIRESTORE_EMULATOR_HOST");
    ffs_reset();
    pthread_mutex_lock(&g_cred.lock);
    g_cred.cached[0] = '\0';
    g_cred.open_rc = g_cred.check_rc = 0;
    pthread_mutex_unlock(&g_cred.lock);
    atomic_store(&g_cred.invalidations, 0);
    h_fixture_t *fx = h_fixture_new("firestore");
    fs_cfg(fx);
    g_rest = sm_rest_client_new(&fx->loop);
    assert_non_null(g_rest);
    sm_rest_client_set_current(g_rest);
    return fx;
}

static int setup(void **state)
{
    h_fixture_t *fx = fx_new();
    h_open(fx);
    *state = fx;
    return 0;
}

static int setup_noopen(void **state)
{
    *state = fx_new();
    return 0;
}

/* Run the loop until this thread's REST client is idle (undo work after a
 * completion included: every step of an operation is a REST request). */
static void drain(h_fixture_t *fx)
{
    while (sm_rest_pending(g_rest) > 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static int teardown(void **state)
{
    h_fixture_t *fx = *state;
    drain(fx);
    h_close_store(fx);
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(g_rest);
    g_rest = NULL;
    h_fixture_free(fx);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    ffs_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ffs_stop();
    return 0;
}

/* ======================================================================
 * 1. Helpers
 * ====================================================================== */

static void assert_json(json_t *v, const char *want)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, want);
    free(s);
    json_decref(v);
}

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_value_builders(void **state)
{
    (void)state;
    assert_json(sm_fs_value_int(42), "{\"integerValue\":\"42\"}");
    assert_json(sm_fs_value_int(-9223372036854775807LL - 1),
                "{\"integerValue\":\"-9223372036854775808\"}");
    assert_json(sm_fs_value_string("a\"b"), "{\"stringValue\":\"a\\\"b\"}");
    assert_json(sm_fs_value_bool(true), "{\"booleanValue\":true}");
    assert_json(sm_fs_value_null(), "{\"nullValue\":null}");
    assert_json(sm_fs_value_double(NAN), "{\"doubleValue\":\"NaN\"}");
    assert_json(sm_fs_value_double(-INFINITY), "{\"doubleValue\":\"-Infinity\"}");
    assert_json(sm_fs_value_time_ms(1700000000123LL),
                "{\"timestampValue\":\"2023-11-14T22:13:20.123Z\"}");
    assert_json(sm_fs_value_time_ms(0), "{\"timestampValue\":\"1970-01-01T00:00:00.000Z\"}");
    assert_json(sm_fs_value_time_ms(-1), "{\"timestampValue\":\"1969-12-31T23:59:59.999Z\"}");
    /* Outside 0001..9999: an integerValue of ms, never lost. */
    assert_json(sm_fs_value_time_ms(INT64_MAX), "{\"integerValue\":\"9223372036854775807\"}");
    /* Empty array and map are {} (no values / fields key). */
    assert_json(sm_fs_value_array_new(NULL), "{\"arrayValue\":{}}");
    assert_json(sm_fs_value_array_new(json_array()), "{\"arrayValue\":{}}");
    assert_json(sm_fs_value_map_new(json_object()), "{\"mapValue\":{}}");
    json_t *a = json_array();
    json_array_append_new(a, sm_fs_value_string("r1"));
    assert_json(sm_fs_value_array_new(a),
                "{\"arrayValue\":{\"values\":[{\"stringValue\":\"r1\"}]}}");
    json_t *m = json_object();
    json_object_set_new(m, "v", sm_fs_value_null());
    assert_json(sm_fs_value_map_new(m), "{\"mapValue\":{\"fields\":{\"v\":{\"nullValue\":null}}}}");
    /* A double survives a trip through JSON text. */
    json_t *d = sm_fs_value_double(2.5);
    char *txt = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    json_t *back = parse(txt);
    free(txt);
    double x = 0;
    assert_int_equal(sm_fs_read_double(back, &x), 0);
    assert_true(x == 2.5);
    json_decref(back);
}

static void test_value_readers(void **state)
{
    (void)state;
    /* The example document of cloud-apis.md §2.2, pretty-printed as the service sends it. */
    json_t *doc =
        parse("{\n  \"fields\": {\n    \"client_id\": {\"stringValue\": \"c1\"},\n"
              "    \"port\": {\"integerValue\": \"443\"},\n"
              "    \"num\": {\"integerValue\": 7},\n"
              "    \"two\": {\"doubleValue\": 2},\n"
              "    \"inf\": {\"doubleValue\": \"Infinity\"},\n"
              "    \"online\": {\"booleanValue\": true},\n"
              "    \"meta\": {\"mapValue\": {\"fields\": {\"v\": {\"nullValue\": null}}}},\n"
              "    \"empty_map\": {\"mapValue\": {}},\n"
              "    \"rooms\": {\"arrayValue\": {\"values\": [{\"stringValue\": \"r1\"}]}},\n"
              "    \"empty_arr\": {\"arrayValue\": {}},\n"
              "    \"seen\": {\"timestampValue\": \"2025-05-01T12:00:00Z\"},\n"
              "    \"seen6\": {\"timestampValue\": \"2025-05-01T12:00:00.123456Z\"},\n"
              "    \"nothing\": {\"nullValue\": null},\n"
              "    \"big\": {\"integerValue\": \"9223372036854775808\"},\n"
              "    \"junk\": {\"integerValue\": \"12x\"},\n"
              "    \"two_keys\": {\"stringValue\": \"a\", \"integerValue\": \"1\"}\n"
              "  }\n}\n");
    const json_t *f = json_object_get(doc, "fields");
    const char *s;
    int64_t n;
    double d;
    bool b;
    const json_t *sub;
    assert_int_equal(sm_fs_get_string(f, "client_id", &s), 0);
    assert_string_equal(s, "c1");
    assert_int_equal(sm_fs_get_int(f, "port", &n), 0);
    assert_int_equal(n, 443);
    assert_int_equal(sm_fs_get_int(f, "num", &n), 0); /* a JSON number is accepted on input */
    assert_int_equal(n, 7);
    assert_int_equal(sm_fs_read_double(json_object_get(f, "two"), &d), 0);
    assert_true(d == 2.0);
    assert_int_equal(sm_fs_get_int(f, "two", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sm_fs_read_double(json_object_get(f, "inf"), &d), 0);
    assert_true(isinf(d) && d > 0);
    assert_int_equal(sm_fs_read_double(json_object_get(f, "port"), &d), 0);
    assert_true(d == 443.0);
    assert_int_equal(sm_fs_read_bool(json_object_get(f, "online"), &b), 0);
    assert_true(b);
    assert_int_equal(sm_fs_read_map(json_object_get(f, "meta"), &sub), 0);
    assert_non_null(json_object_get(sub, "v"));
    assert_int_equal(sm_fs_read_map(json_object_get(f, "empty_map"), &sub), 0);
    assert_null(sub);
    assert_int_equal(sm_fs_read_array(json_object_get(f, "rooms"), &sub), 0);
    assert_int_equal(json_array_size(sub), 1);
    assert_int_equal(sm_fs_read_array(json_object_get(f, "empty_arr"), &sub), 0);
    assert_null(sub);
    assert_int_equal(sm_fs_get_time_ms(f, "seen", &n), 0);
    assert_int_equal(n, 1746100800000LL);
    assert_int_equal(sm_fs_get_time_ms(f, "seen6", &n), 0);
    assert_int_equal(n, 1746100800123LL);
    assert_int_equal(sm_fs_get_time_ms(f, "port", &n), 0); /* integerValue ms */
    assert_int_equal(n, 443);
    /* Absent or null: ENOTFOUND; wrong type or malformed: EPROTO. */
    assert_int_equal(sm_fs_get_string(f, "missing", &s), SM_ENOTFOUND);
    assert_int_equal(sm_fs_get_string(f, "nothing", &s), SM_ENOTFOUND);
    assert_int_equal(sm_fs_get_string(NULL, "client_id", &s), SM_ENOTFOUND);
    assert_int_equal(sm_fs_get_string(f, "port", &s), SM_EPROTO);
    assert_int_equal(sm_fs_get_int(f, "client_id", &n), SM_EPROTO);
    assert_int_equal(sm_fs_get_int(f, "big", &n), SM_EPROTO);
    assert_int_equal(sm_fs_get_int(f, "junk", &n), SM_EPROTO);
    assert_int_equal(sm_fs_get_string(f, "two_keys", &s), SM_EPROTO);
    assert_int_equal(sm_fs_get_time_ms(f, "client_id", &n), SM_EPROTO);
    json_decref(doc);
}

static void test_times(void **state)
{
    (void)state;
    char buf[32];
    int64_t us;
    assert_int_equal(sm_fs_format_time_ms(-62135596800000LL, buf, sizeof buf), 0);
    assert_string_equal(buf, "0001-01-01T00:00:00.000Z");
    assert_int_equal(sm_fs_format_time_ms(253402300799999LL, buf, sizeof buf), 0);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    assert_int_equal(sm_fs_format_time_ms(253402300800000LL, buf, sizeof buf), SM_EINVAL);
    assert_int_equal(sm_fs_format_time_ms(-62135596800001LL, buf, sizeof buf), SM_EINVAL);
    assert_int_equal(sm_fs_format_time_ms(0, buf, 10), SM_EINVAL);
    assert_int_equal(sm_fs_format_time_ms(951782400000LL, buf, sizeof buf), 0);
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");

    /* Round trips across the range, before 1970 included. */
    static const int64_t samples[] = {0,
                                      1,
                                      -1,
                                      999,
                                      -1000,
                                      86399999,
                                      951868800000LL,
                                      1700000000123LL,
                                      -2208988800001LL,
                                      4102444800000LL};
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(samples); i++) {
        assert_int_equal(sm_fs_format_time_ms(samples[i], buf, sizeof buf), 0);
        assert_int_equal(sm_fs_parse_time_us(buf, &us), 0);
        assert_int_equal(us, samples[i] * 1000);
    }
    /* Fraction digits 0-9 (past microseconds dropped), offsets, lower-case t/z. */
    assert_int_equal(sm_fs_parse_time_us("2025-01-01T10:00:00Z", &us), 0);
    assert_int_equal(us, 1735725600000000LL);
    assert_int_equal(sm_fs_parse_time_us("2025-01-01T10:00:00.5Z", &us), 0);
    assert_int_equal(us, 1735725600500000LL);
    assert_int_equal(sm_fs_parse_time_us("2025-01-01T10:00:00.123456789Z", &us), 0);
    assert_int_equal(us, 1735725600123456LL);
    assert_int_equal(sm_fs_parse_time_us("2025-01-01t12:30:00.000+02:30z", &us), SM_EINVAL);
    assert_int_equal(sm_fs_parse_time_us("2025-01-01t12:30:00+02:30", &us), 0);
    assert_int_equal(us, 1735725600000000LL);
    assert_int_equal(sm_fs_parse_time_us("2025-01-01T09:00:00-01:00", &us), 0);
    assert_int_equal(us, 1735725600000000LL);
    assert_int_equal(sm_fs_parse_time_us("2025-01-01t10:00:00z", &us), 0);
    assert_int_equal(sm_fs_parse_time_us("2024-02-29T00:00:00Z", &us), 0);
    static const char *const bad[] = {
        "2023-02-29T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T10:00:00",
        "2025-01-01 10:00:00Z",
        "2025-01-01T10:00:00.Z",
        "2025-01-01T10:00:00.1234567890Z",
        "0000-01-01T00:00:00Z",
        "2025-01-01T10:00:00+0200",
        "",
        "x",
    };
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(bad); i++)
        assert_int_equal(sm_fs_parse_time_us(bad[i], &us), SM_EINVAL);
    assert_int_equal(sm_fs_parse_time_us(NULL, &us), SM_EINVAL);
}

/* A valid Firestore document id (§2.1). */
static bool valid_doc_id(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && strcmp(id, ".") != 0 && strcmp(id, "..") != 0 && !strchr(id, '/') &&
           !(n >= 4 && strncmp(id, "__", 2) == 0 && strcmp(id + n - 2, "__") == 0);
}

static void test_id_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"alice", "alice"},
        {"test_client_1", "test_client_1"},
        {"___", "___"},
        {"__", "__"},
        {"__a", "__a"},
        {".", "%2E"},
        {"..", "%2E%2E"},
        {"...", "..."},
        {"a.b", "a.b"},
        {"__x__", "%5F_x__"},
        {"____", "%5F___"},
        {"a:b", "a%3Ab"},
        {"user@example.com", "user@example.com"},
        {"a/b", "a%2Fb"},
        {"50%", "50%25"},
        {"%2E", "%252E"},
        {"-", "-"},
    };
    char *outs[sizeof cases / sizeof cases[0]];
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(cases); i++) {
        char *e = sm_fs_id_escape(cases[i].in);
        assert_string_equal(e, cases[i].out);
        assert_true(valid_doc_id(e));
        char *back = sm_fs_id_unescape(e);
        assert_non_null(back);
        assert_string_equal(back, cases[i].in);
        free(back);
        outs[i] = e;
    }
    /* Injective over the sample. */
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(cases); i++)
        for (size_t j = i + 1; j < (size_t)SM_ARRAY_LEN(cases); j++)
            assert_string_not_equal(outs[i], outs[j]);
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(cases); i++)
        free(outs[i]);
    /* Every 1- and 2-char id over the protocol's alphabet plus '_' and '%'. */
    const char *alpha = "aZ09._:@-_%/";
    size_t na = strlen(alpha);
    char id[3] = {0};
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j <= na; j++) {
            id[0] = alpha[i];
            id[1] = j < na ? alpha[j] : '\0';
            char *e = sm_fs_id_escape(id);
            assert_true(valid_doc_id(e));
            char *back = sm_fs_id_unescape(e);
            assert_string_equal(back, id);
            free(back);
            free(e);
        }
    }
    /* Every 4-char id over a small alphabet that spells the reserved forms. */
    const char *small = "_.:a";
    char id4[5] = {0};
    for (int i = 0; i < 256; i++) {
        for (int k = 0; k < 4; k++)
            id4[k] = small[(i >> (2 * k)) & 3];
        char *e = sm_fs_id_escape(id4);
        assert_true(valid_doc_id(e));
        char *back = sm_fs_id_unescape(e);
        assert_string_equal(back, id4);
        free(back);
        free(e);
    }
    /* Malformed escapes are refused. */
    assert_null(sm_fs_id_unescape("%G1"));
    assert_null(sm_fs_id_unescape("abc%4"));
    assert_null(sm_fs_id_unescape("%00"));
    /* URL encoding: unreserved only. */
    char *u = sm_fs_url_encode("2025-01-01T10:00:00.123456Z");
    assert_string_equal(u, "2025-01-01T10%3A00%3A00.123456Z");
    free(u);
    u = sm_fs_url_encode("%2E a/b~_");
    assert_string_equal(u, "%252E%20a%2Fb~_");
    free(u);
}

static sm_fs_class_t classify(int http, const char *body)
{
    return sm_fs_classify(http, 0, body, body ? strlen(body) : 0);
}

static void test_classify(void **state)
{
    (void)state;
    /* 409 is shared: only error.status tells ALREADY_EXISTS from ABORTED. */
    assert_int_equal(classify(409, "{\"error\":{\"code\":409,\"message\":\"Document already "
                                   "exists: x\",\"status\":\"ALREADY_EXISTS\"}}"),
                     SM_FS_ALREADY_EXISTS);
    assert_int_equal(classify(409, "{\n  \"error\": {\n    \"code\": 409,\n    \"message\": "
                                   "\"Aborted\",\n    \"status\": \"ABORTED\"\n  }\n}\n"),
                     SM_FS_RETRY);
    const char *ae = "{\"error\":{\"status\":\"ALREADY_EXISTS\"}}";
    const char *ab = "{\"error\":{\"status\":\"ABORTED\"}}";
    assert_false(sm_fs_retryable(409, 0, ae, strlen(ae)));
    assert_true(sm_fs_retryable(409, 0, ab, strlen(ab)));
    assert_int_equal(classify(400, "{\"error\":{\"status\":\"FAILED_PRECONDITION\"}}"),
                     SM_FS_FAILED_PRECONDITION);
    assert_int_equal(classify(400, "{\"error\":{\"status\":\"INVALID_ARGUMENT\"}}"), SM_FS_FATAL);
    assert_int_equal(classify(403, "{\"error\":{\"status\":\"PERMISSION_DENIED\"}}"), SM_FS_FATAL);
    assert_int_equal(classify(401, "{\"error\":{\"status\":\"UNAUTHENTICATED\"}}"),
                     SM_FS_UNAUTHENTICATED);
    assert_int_equal(classify(404, "{\"error\":{\"status\":\"NOT_FOUND\"}}"), SM_FS_NOT_FOUND);
    assert_int_equal(classify(429, "{\"error\":{\"status\":\"RESOURCE_EXHAUSTED\"}}"), SM_FS_RETRY);
    assert_int_equal(classify(503, "{\"error\":{\"status\":\"UNAVAILABLE\"}}"), SM_FS_RETRY);
    assert_int_equal(classify(504, "{\"error\":{\"status\":\"DEADLINE_EXCEEDED\"}}"), SM_FS_RETRY);
    assert_int_equal(classify(500, "{\"error\":{\"status\":\"INTERNAL\"}}"), SM_FS_RETRY);
    /* The status wins over the HTTP code. */
    assert_int_equal(classify(503, "{\"error\":{\"status\":\"PERMISSION_DENIED\"}}"), SM_FS_FATAL);
    /* No google.rpc body (a proxy): by HTTP code. */
    assert_int_equal(classify(502, "<html>bad gateway</html>"), SM_FS_RETRY);
    assert_int_equal(classify(429, NULL), SM_FS_RETRY);
    assert_int_equal(classify(401, ""), SM_FS_UNAUTHENTICATED);
    assert_int_equal(classify(418, "teapot"), SM_FS_FATAL);
    assert_int_equal(classify(200, "{}"), SM_FS_OK);
    /* Transport errors. */
    assert_int_equal(sm_fs_classify(0, SM_EIO, "", 0), SM_FS_RETRY);
    assert_int_equal(sm_fs_classify(0, SM_ETIMEDOUT, "", 0), SM_FS_RETRY);
    assert_int_equal(sm_fs_classify(0, SM_ECANCELED, "", 0), SM_FS_FATAL);
    char st[32], msg[64];
    const char *b = "{\"error\":{\"code\":409,\"message\":\"Document already exists\","
                    "\"status\":\"ALREADY_EXISTS\"}}";
    sm_fs_error_text(b, strlen(b), st, sizeof st, msg, sizeof msg);
    assert_string_equal(st, "ALREADY_EXISTS");
    assert_string_equal(msg, "Document already exists");
    sm_fs_error_text("nope", 4, st, sizeof st, msg, sizeof msg);
    assert_string_equal(st, "");
}

/* ======================================================================
 * 2. The store contract (scenarios of test_store.c)
 * ====================================================================== */

/* The document as stored: strings, RFC 3339 timestamps, no field for NULL. */
static void reg_put_get_docs(h_fixture_t *fx, const char *at)
{
    (void)fx;
    (void)at; /* "stored" */
    char doc[1024];
    assert_true(ffs_doc(PREFIX "registrations/alice", doc, sizeof doc));
    assert_string_equal(doc,
                        "{\"capabilities\":{\"stringValue\":\"[\\\"audio\\\",\\\"video\\\"]\"},"
                        "\"client_id\":{\"stringValue\":\"alice\"},"
                        "\"connected_at\":{\"timestampValue\":\"2023-11-14T22:13:20.123Z\"},"
                        "\"instance_id\":{\"stringValue\":\"inst-a\"},"
                        "\"registered_at\":{\"timestampValue\":\"2023-11-14T22:13:20.456Z\"},"
                        "\"session_id\":{\"stringValue\":\"s-1\"}}");
    char auth[128];
    pthread_mutex_lock(&g_fs.lock);
    snprintf(auth, sizeof auth, "%s", g_fs.last_auth);
    pthread_mutex_unlock(&g_fs.lock);
    assert_string_equal(auth, "Bearer tok-1");
}

static void test_reg_put_get(void **state)
{
    h_fixture_t *fx = *state;
    h_contract_reg_put_get(fx, reg_put_get_docs);
    assert_true(sm_store_healthy(fx->store));
    assert_string_equal(sm_store_backend_name(fx->store), "firestore");
}

/* Ids that are not valid Firestore document ids as they are. */
static void test_reg_odd_ids(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const ids[] = {".", "..", "__x__", "a:b", "a_b", "x@y.z", "-"};
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(ids); i++)
        assert_int_equal(h_put_reg3(fx, ids[i], "s", "inst"), 0);
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(ids); i++) {
        h_cap_t c;
        assert_int_equal(h_get_reg(fx, ids[i], &c), 0);
        assert_string_equal(c.reg.client_id, ids[i]);
        h_cap_clear(&c);
    }
    assert_true(ffs_doc(PREFIX "registrations/%2E", NULL, 0));
    assert_true(ffs_doc(PREFIX "registrations/%2E%2E", NULL, 0));
    assert_true(ffs_doc(PREFIX "registrations/%5F_x__", NULL, 0));
    assert_true(ffs_doc(PREFIX "registrations/a%3Ab", NULL, 0));
    assert_int_equal(h_count(fx), (size_t)SM_ARRAY_LEN(ids));
    for (size_t i = 0; i < (size_t)SM_ARRAY_LEN(ids); i++)
        assert_int_equal(h_del_reg(fx, ids[i], "s"), 0);
    assert_int_equal(ffs_count(), 0);
    /* Rooms and memberships with such ids. */
    assert_int_equal(h_put_room(fx, "..", "a:b", "inst"), 0);
    assert_int_equal(h_add_member(fx, "..", "a:b", "sender"), 0);
    assert_int_equal(h_add_member(fx, "..", ".", "receiver"), 0);
    assert_true(ffs_doc(PREFIX "room_members/%2E%2E:a%3Ab", NULL, 0));
    char list[64];
    h_members(fx, "..", list, sizeof list);
    assert_string_equal(list, "a:b,.");
    assert_int_equal(h_remove_member(fx, "..", "."), 0);
    assert_int_equal(h_del_room(fx, ".."), 0);
    assert_int_equal(ffs_count(), 0);
}

static void test_reg_input_is_copied(void **state)
{
    h_contract_reg_input_is_copied(*state);
}

static void test_reg_conflict(void **state)
{
    h_contract_reg_conflict(*state);
    /* A conflict is final: one createDocument each, never retried. */
    assert_int_equal(FFS_GET(n_create), 3);
}

static void test_reg_delete(void **state)
{
    h_contract_reg_delete(*state);
}

static void test_reg_count(void **state)
{
    h_fixture_t *fx = *state;
    assert_int_equal(h_count(fx), 0);
    char id[64];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(h_put_reg3(fx, id, "s", i % 2 ? "inst-a" : "inst-b"), 0);
    }
    assert_int_equal(h_count(fx), 100);
    assert_int_equal(h_del_reg(fx, "client-7", "s"), 0);
    assert_int_equal(h_put_reg3(fx, "client-8", "s", "x"), SM_ECONFLICT);
    assert_int_equal(h_count(fx), 99);
    /* Past one runQuery page (500): seeded directly. */
    for (int i = 0; i < 1100; i++) {
        snprintf(id, sizeof id, PREFIX "registrations/seed-%04d", i);
        ffs_put_doc(id, json_pack("{s:{s:s}}", "session_id", "stringValue", "s"));
    }
    pthread_mutex_lock(&g_fs.lock);
    g_fs.n_query = 0;
    pthread_mutex_unlock(&g_fs.lock);
    assert_int_equal(h_count(fx), 1199);
    assert_int_equal(FFS_GET(n_query), 3);
}

static void room_put_get_docs(h_fixture_t *fx, const char *at)
{
    (void)fx;
    (void)at; /* "stored" */
    char doc[1024];
    assert_true(ffs_doc(PREFIX "rooms/room-1", doc, sizeof doc));
    assert_non_null(strstr(doc, "\"max_participants\":{\"integerValue\":\"4\"}"));
    assert_non_null(
        strstr(doc, "\"created_at\":{\"timestampValue\":\"1970-01-01T00:00:03.000Z\"}"));
}

static void test_room_put_get(void **state)
{
    h_contract_room_put_get(*state, room_put_get_docs);
}

static void room_members_docs(h_fixture_t *fx, const char *at)
{
    (void)fx;
    if (strcmp(at, "rejected") == 0) {
        assert_int_equal(ffs_count(), 0); /* the failed commit left nothing */
        return;
    }
    /* "added" */
    char doc[1024];
    assert_true(ffs_doc(PREFIX "room_members/room-1:zed", doc, sizeof doc));
    assert_non_null(strstr(doc, "\"room_id\":{\"stringValue\":\"room-1\"}"));
    assert_non_null(strstr(doc, "\"client_id\":{\"stringValue\":\"zed\"}"));
    assert_non_null(strstr(doc, "\"role\":{\"stringValue\":\"receiver\"}"));
    assert_non_null(strstr(doc, "\"joined_at\":{\"timestampValue\":"));
    assert_true(ffs_doc(PREFIX "rooms/room-1", doc, sizeof doc));
    assert_non_null(strstr(doc, "\"member_seq\":{\"integerValue\":\"3\"}"));
}

static void test_room_members(void **state)
{
    h_contract_room_members(*state, room_members_docs);
}

static void room_delete_docs(h_fixture_t *fx, const char *at)
{
    (void)fx;
    if (strcmp(at, "deleting") == 0) {
        pthread_mutex_lock(&g_fs.lock);
        g_fs.n_commit = 0;
        pthread_mutex_unlock(&g_fs.lock);
    } else if (strcmp(at, "deleted") == 0) {
        assert_int_equal(FFS_GET(n_commit), 1); /* the room and its members in one commit */
    } else {                                    /* "gone" */
        assert_false(ffs_doc(PREFIX "room_members/room-1:alice", NULL, 0));
    }
}

static void test_room_delete(void **state)
{
    h_contract_room_delete(*state, room_delete_docs);
}

static void cleanup_instance_docs(h_fixture_t *fx, const char *at)
{
    if (strcmp(at, "cleaned") == 0) {
        /* The test thread's own REST client is current again. */
        assert_ptr_equal(sm_rest_client_current(), g_rest);
        return;
    }
    /* "recreated": memberships record the instance given to cleanup_instance
     * (this server's). */
    unsigned regs = 99, rooms = 99;
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-me", NULL, NULL), 0);
    assert_int_equal(h_add_member(fx, "room-a", "b1", "sender"), 0);
    char doc[512];
    assert_true(ffs_doc(PREFIX "room_members/room-a:b1", doc, sizeof doc));
    assert_non_null(strstr(doc, "\"instance_id\":{\"stringValue\":\"inst-me\"}"));
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-me", &regs, &rooms), 0);
    assert_false(ffs_doc(PREFIX "room_members/room-a:b1", NULL, 0));
}

static void test_cleanup_instance(void **state)
{
    h_contract_cleanup_instance(*state, cleanup_instance_docs);
}

/* More than one commit's worth of stale records: batches of at most 500. */
static void test_cleanup_batches(void **state)
{
    h_fixture_t *fx = *state;
    char id[64];
    for (int i = 0; i < 1203; i++) {
        snprintf(id, sizeof id, PREFIX "registrations/stale-%04d", i);
        char cid[32];
        snprintf(cid, sizeof cid, "stale-%04d", i);
        ffs_put_doc(id, json_pack("{s:{s:s}, s:{s:s}, s:{s:s}}", "client_id", "stringValue", cid,
                                  "session_id", "stringValue", "s", "instance_id", "stringValue",
                                  "inst-z"));
    }
    assert_int_equal(h_put_reg3(fx, "keep", "s", "inst-y"), 0);
    unsigned regs = 0, rooms = 0;
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-z", &regs, &rooms), 0);
    assert_int_equal(regs, 1203);
    assert_int_equal(rooms, 0);
    assert_int_equal(ffs_count(), 1);
    assert_int_equal(FFS_GET(n_commit), 3);
    assert_int_equal(FFS_GET(max_commit_writes), 500);
}

/* Ordering: per record, in submission order; count after earlier writes. */
static void test_async_and_ordered(void **state)
{
    h_fixture_t *fx = *state;
    enum { N = 8 };
    h_cap_t c[N];
    memset(c, 0, sizeof c);
    sm_registration_t g = {.client_id = "alice", .session_id = "s-1"};
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c[0]), 0);
    c[0].issued = true;
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c[1]), 0);
    c[1].issued = true;
    assert_int_equal(sm_store_get_registration(fx->store, "alice", &fx->q, h_cb, &c[2]), 0);
    c[2].issued = true;
    assert_int_equal(sm_store_delete_registration(fx->store, "alice", "s-1", &fx->q, h_cb, &c[3]),
                     0);
    c[3].issued = true;
    assert_int_equal(sm_store_get_registration(fx->store, "alice", &fx->q, h_cb, &c[4]), 0);
    c[4].issued = true;
    assert_int_equal(sm_store_count_registrations(fx->store, &fx->q, h_cb, &c[5]), 0);
    c[5].issued = true;
    sm_room_rec_t r = {.room_id = "room-1"};
    assert_int_equal(sm_store_put_room(fx->store, &r, &fx->q, h_cb, &c[6]), 0);
    c[6].issued = true;
    assert_int_equal(sm_store_add_member(fx->store, "room-1", "bob", "sender", &fx->q, h_cb, &c[7]),
                     0);
    c[7].issued = true;
    for (int i = 0; i < N; i++)
        assert_false(c[i].done);
    for (int i = 0; i < N; i++)
        h_wait(fx, &c[i].done);
    static const int want[N] = {0, SM_ECONFLICT, 0, 0, SM_ENOTFOUND, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        assert_false(c[i].was_inline);
        assert_int_equal(c[i].status, want[i]);
    }
    /* Same record: in order.  count came after every registration write. */
    for (int i = 1; i <= 5; i++)
        assert_true(c[i].order > c[i - 1].order);
    assert_true(c[7].order > c[6].order);
    assert_true(c[2].has_reg);
    assert_int_equal(c[5].count, 0);
    for (int i = 0; i < N; i++)
        h_cap_clear(&c[i]);
}

static void test_invalid_args(void **state)
{
    h_fixture_t *fx = *state;
    h_cap_t c;
    memset(&c, 0, sizeof c);
    sm_registration_t g = {.client_id = "alice", .session_id = ""};
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_get_client(fx->store, "", &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_add_member(fx->store, "r", "alice", "admin", &fx->q, h_cb, &c),
                     SM_EINVAL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(c.done);
    assert_int_equal(FFS_GET(n_req), 0);
}

/* Several threads, each with its own loop and REST client (as workers). */
static void *thread_rest_start(h_fixture_t *local)
{
    sm_rest_client_t *rest = sm_rest_client_new(&local->loop);
    sm_rest_client_set_current(rest);
    return rest;
}

static void thread_rest_stop(void *started)
{
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(started);
}

static void test_threads(void **state)
{
    static const h_thread_hooks_t hooks = {thread_rest_start, thread_rest_stop};
    h_contract_threads(*state, 12, &hooks);
}

/* ---- get_client (all three backends) ------------------------------------ */

/* A callback that keeps the client record. */
typedef struct {
    bool done;
    int status;
    char client_id[64];
    char hash[80];
} client_cap_t;

static void client_cb(int status, const sm_store_result_t *res, void *arg)
{
    client_cap_t *c = arg;
    c->done = true;
    c->status = status;
    if (status == 0) {
        assert_non_null(res->client);
        snprintf(c->client_id, sizeof c->client_id, "%s", res->client->client_id);
        snprintf(c->hash, sizeof c->hash, "%s", res->client->token_sha256);
    } else {
        assert_null(res->client);
    }
}

static int get_client(h_fixture_t *fx, const char *id, client_cap_t *c)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(sm_store_get_client(fx->store, id, &fx->q, client_cb, c), 0);
    h_wait(fx, &c->done);
    return c->status;
}

#define HASH_UPPER "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
#define HASH_LOWER "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static void test_get_client_firestore(void **state)
{
    h_fixture_t *fx = *state;
    ffs_put_doc(PREFIX "clients/alice",
                json_pack("{s:{s:s}}", "token_sha256", "stringValue", HASH_UPPER));
    ffs_put_doc(PREFIX "clients/bad", json_pack("{s:{s:s}}", "token_sha256", "stringValue", "xyz"));
    ffs_put_doc(PREFIX "clients/nohash", json_pack("{s:{s:s}}", "note", "stringValue", "x"));
    ffs_put_doc(PREFIX "clients/%2E",
                json_pack("{s:{s:s}}", "token_sha256", "stringValue", HASH_LOWER));
    client_cap_t c;
    assert_int_equal(get_client(fx, "alice", &c), 0);
    assert_string_equal(c.client_id, "alice");
    assert_string_equal(c.hash, HASH_LOWER);
    assert_int_equal(get_client(fx, ".", &c), 0);
    assert_int_equal(get_client(fx, "bob", &c), SM_ENOTFOUND);
    assert_int_equal(get_client(fx, "bad", &c), SM_ENOTFOUND);
    assert_int_equal(get_client(fx, "nohash", &c), SM_ENOTFOUND);
    assert_true(sm_store_healthy(fx->store));
}

static int setup_embedded(void **state)
{
    h_fixture_t *fx = h_fixture_new((const char *)*state);
    h_open(fx);
    *state = fx;
    return 0;
}

static int teardown_embedded(void **state)
{
    h_fixture_free(*state);
    return 0;
}

static void test_get_client_memory(void **state)
{
    h_fixture_t *fx = *state;
    client_cap_t c;
    assert_int_equal(get_client(fx, "alice", &c), SM_ENOTFOUND);
    assert_int_equal(sm_store_memory_set_client(fx->store, "alice", HASH_UPPER), 0);
    assert_int_equal(get_client(fx, "alice", &c), 0);
    assert_string_equal(c.hash, HASH_LOWER);
    assert_int_equal(sm_store_memory_set_client(fx->store, "alice", HASH_LOWER), 0); /* replace */
    assert_int_equal(sm_store_memory_set_client(fx->store, "alice", "abc"), SM_EINVAL);
    assert_int_equal(sm_store_memory_set_client(fx->store, "", HASH_LOWER), SM_EINVAL);
    assert_int_equal(sm_store_memory_set_client(fx->store, "alice", NULL), SM_EINVAL);
    assert_int_equal(get_client(fx, "alice", &c), 0);
    assert_int_equal(get_client(fx, "bob", &c), SM_ENOTFOUND);
}

static void test_get_client_sqlite(void **state)
{
    h_fixture_t *fx = *state;
    client_cap_t c;
    assert_int_equal(get_client(fx, "alice", &c), SM_ENOTFOUND);
    assert_int_equal(sm_store_memory_set_client(fx->store, "alice", HASH_LOWER), SM_EINVAL);
    /* Provisioned by the operator, straight into the file. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO clients VALUES ('alice', '" HASH_UPPER "');"
                                  "INSERT INTO clients VALUES ('bad', 'nothex');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(get_client(fx, "alice", &c), 0);
    assert_string_equal(c.client_id, "alice");
    assert_string_equal(c.hash, HASH_LOWER);
    assert_int_equal(get_client(fx, "bad", &c), SM_ENOTFOUND);
    assert_int_equal(get_client(fx, "bob", &c), SM_ENOTFOUND);
}

/* ======================================================================
 * 3. Failures
 * ====================================================================== */

/* 409 ABORTED is retried; 409 ALREADY_EXISTS is an answer. */
static void test_409_aborted_vs_already_exists(void **state)
{
    h_fixture_t *fx = *state;
    ffs_fault("POST", PREFIX "registrations?", 409, "ABORTED", F_REPLY, false, 1);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    assert_int_equal(FFS_GET(n_req), 2);
    assert_true(ffs_doc(PREFIX "registrations/alice", NULL, 0));
    assert_int_equal(h_put_reg3(fx, "alice", "s-2", "inst-a"), SM_ECONFLICT);
    assert_int_equal(FFS_GET(n_req), 3); /* not retried, not re-read */
    /* ABORTED on a commit (add_member) is retried as well. */
    assert_int_equal(h_put_room(fx, "r", "alice", "inst-a"), 0);
    ffs_fault("POST", ":commit", 409, "ABORTED", F_REPLY, false, 2);
    assert_int_equal(h_add_member(fx, "r", "alice", "sender"), 0);
    char list[32];
    h_members(fx, "r", list, sizeof list);
    assert_string_equal(list, "alice");
    assert_true(sm_store_healthy(fx->store));
}

static void test_retry_then_success(void **state)
{
    h_fixture_t *fx = *state;
    ffs_fault(NULL, NULL, 503, "UNAVAILABLE", F_REPLY, false, 2);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    assert_int_equal(FFS_GET(n_req), 3);
    ffs_fault("GET", NULL, 429, "RESOURCE_EXHAUSTED", F_REPLY, false, 1);
    ffs_fault("GET", NULL, 500, "INTERNAL", F_REPLY, false, 1);
    assert_true(h_reg_exists(fx, "alice"));
    ffs_fault(NULL, NULL, 502, NULL, F_REPLY, false, 1); /* a proxy's 502, no google.rpc body */
    ffs_fault(NULL, NULL, 0, NULL, F_DROP, false, 1);    /* connection dropped */
    assert_int_equal(h_count(fx), 1);
    assert_true(sm_store_healthy(fx->store));
}

/* The attempt budget is per operation: failures of its calls add up. */
static void test_budget_is_per_operation(void **state)
{
    h_fixture_t *fx = *state;
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    /* delete = get + delete: one failure on each uses 2 of the 3 attempts. */
    ffs_fault("GET", NULL, 503, "UNAVAILABLE", F_REPLY, false, 1);
    ffs_fault("DELETE", NULL, 503, "UNAVAILABLE", F_REPLY, false, 1);
    assert_int_equal(h_del_reg(fx, "alice", "s-1"), 0);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    ffs_fault("GET", NULL, 503, "UNAVAILABLE", F_REPLY, false, 2);
    ffs_fault("DELETE", NULL, 503, "UNAVAILABLE", F_REPLY, false, 1);
    assert_int_equal(h_del_reg(fx, "alice", "s-1"), SM_EUNAVAIL);
    assert_true(ffs_doc(PREFIX "registrations/alice", NULL, 0)); /* nothing changed */
}

static void test_retries_exhausted(void **state)
{
    h_fixture_t *fx = *state;
    ffs_fault(NULL, NULL, 503, "UNAVAILABLE", F_REPLY, false, 3);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_EUNAVAIL);
    drain(fx);
    assert_int_equal(ffs_count(), 0); /* nothing half-done */
    assert_true(sm_store_healthy(fx->store));
    /* put_room: 3 attempts, then its undo reads once; delete_room waits for
     * that (same record) and reads 3 times. */
    ffs_fault(NULL, NULL, 503, "UNAVAILABLE", F_REPLY, false, 7);
    assert_int_equal(h_put_room(fx, "r", "a", "i"), SM_EUNAVAIL);
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_false(sm_store_healthy(fx->store)); /* 3 failures in a row */
    drain(fx);
    assert_int_equal(ffs_count(), 0);
    assert_int_equal(h_put_room(fx, "r", "a", "i"), 0);
    assert_true(sm_store_healthy(fx->store));
}

/* A create whose first attempt landed but whose answer was lost: the retry
 * meets ALREADY_EXISTS, re-reads, finds its own document: success. */
static void test_create_landed_answer_lost(void **state)
{
    h_fixture_t *fx = *state;
    ffs_fault("POST", PREFIX "registrations?", 504, "DEADLINE_EXCEEDED", F_REPLY, true, 1);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    assert_int_equal(FFS_GET(n_create), 2);
    assert_int_equal(FFS_GET(n_get), 1);
    /* The same for rooms and memberships (a commit). */
    ffs_fault("POST", PREFIX "rooms?", 503, "UNAVAILABLE", F_REPLY, true, 1);
    assert_int_equal(h_put_room(fx, "r", "alice", "inst-a"), 0);
    /* (Not a dropped connection: curl itself resends a request whose reused
     * connection died before any answer, invisibly; see store_firestore.c.) */
    ffs_fault("POST", ":commit", 503, "UNAVAILABLE", F_REPLY, true, 1);
    assert_int_equal(h_add_member(fx, "r", "alice", "sender"), 0);
    /* Without a retry, ALREADY_EXISTS is a conflict even for an identical record. */
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_ECONFLICT);
    /* A retry that meets somebody else's document: conflict. */
    ffs_put_doc(PREFIX "registrations/bob",
                json_pack("{s:{s:s}}", "session_id", "stringValue", "other"));
    ffs_fault("POST", PREFIX "registrations?", 503, "UNAVAILABLE", F_REPLY, false, 1);
    assert_int_equal(h_put_reg3(fx, "bob", "s-1", "inst-a"), SM_ECONFLICT);
}

/* Retries exhausted after an attempt that did land: SM_EUNAVAIL, and the
 * document is deleted again (it was ours), so nothing is left. */
static void test_exhausted_after_landing_is_undone(void **state)
{
    h_fixture_t *fx = *state;
    ffs_fault("POST", PREFIX "registrations?", 504, "DEADLINE_EXCEEDED", F_REPLY, true, 1);
    ffs_fault("POST", PREFIX "registrations?", 503, "UNAVAILABLE", F_REPLY, false, 2);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_EUNAVAIL);
    drain(fx);
    assert_false(ffs_doc(PREFIX "registrations/alice", NULL, 0));
    /* Somebody else's document with the same id is never removed by an undo. */
    ffs_put_doc(PREFIX "registrations/bob",
                json_pack("{s:{s:s}}", "session_id", "stringValue", "other"));
    ffs_fault("POST", PREFIX "registrations?", 503, "UNAVAILABLE", F_REPLY, false, 3);
    assert_int_equal(h_put_reg3(fx, "bob", "s-1", "inst-a"), SM_EUNAVAIL);
    drain(fx);
    assert_true(ffs_doc(PREFIX "registrations/bob", NULL, 0));
    /* A later operation on the same record waits for the undo. */
    ffs_fault("POST", PREFIX "rooms?", 503, "UNAVAILABLE", F_REPLY, true, 3);
    h_cap_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    sm_room_rec_t r = {.room_id = "r", .creator_id = "c", .created_at_ms = 5};
    assert_int_equal(sm_store_put_room(fx->store, &r, &fx->q, h_cb, &a), 0);
    assert_int_equal(sm_store_get_room(fx->store, "r", &fx->q, h_cb, &b), 0);
    h_wait(fx, &b.done);
    assert_int_equal(a.status, SM_EUNAVAIL);
    assert_int_equal(b.status, SM_ENOTFOUND);
    h_cap_clear(&b);
}

/* Per-attempt timeout x attempts bounds a failing operation. */
static void test_timeout_bound(void **state)
{
    h_fixture_t *fx = *state;
    fx->cfg.database_operation_timeout = 150;
    fx->cfg.database_retry_attempts = 3;
    fx->cfg.database_retry_interval = 10;
    h_open(fx);
    ffs_fault("POST", PREFIX "registrations?", 0, NULL, F_SILENT, false, 3);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_EUNAVAIL);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_true(ms >= 3 * 150);
    assert_true(ms < 3 * 150 + 2 * 48 + 1000); /* backoffs <= 12+24 ms (+20%), plus slack */
    drain(fx);
    assert_int_equal(ffs_count(), 0);
}

static void test_401_invalidate_and_retry_once(void **state)
{
    h_fixture_t *fx = *state;
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    /* Every token issued so far expires: the cached one is refused once. */
    pthread_mutex_lock(&g_fs.lock);
    g_fs.token_gen++;
    pthread_mutex_unlock(&g_fs.lock);
    assert_true(h_reg_exists(fx, "alice"));
    assert_int_equal(atomic_load(&g_cred.invalidations), 1);
    assert_int_equal(FFS_GET(n_401), 1);
    assert_true(h_reg_exists(fx, "alice"));
    assert_int_equal(atomic_load(&g_cred.invalidations), 1);
    /* Refused again after the refresh: SM_EUNAVAIL, no endless loop. */
    ffs_fault(NULL, NULL, 401, "UNAUTHENTICATED", F_REPLY, false, 2);
    h_cap_t c;
    assert_int_equal(h_get_reg(fx, "alice", &c), SM_EUNAVAIL);
    h_cap_clear(&c);
    assert_int_equal(atomic_load(&g_cred.invalidations), 2);
}

/* Not retried: PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION (index). */
static void test_not_retried(void **state)
{
    h_fixture_t *fx = *state;
    ffs_fault(NULL, NULL, 403, "PERMISSION_DENIED", F_REPLY, false, 1);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_EUNAVAIL);
    assert_int_equal(FFS_GET(n_req), 1);
    ffs_fault(NULL, NULL, 400, "INVALID_ARGUMENT", F_REPLY, false, 1);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_EUNAVAIL);
    assert_int_equal(FFS_GET(n_req), 2);
    ffs_fault(NULL, ":runQuery", 400, "FAILED_PRECONDITION", F_REPLY, false, 1);
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_count_registrations(fx->store, &fx->q, h_cb, &c));
    assert_int_equal(c.status, SM_EUNAVAIL);
    assert_int_equal(FFS_GET(n_req), 3);
    assert_int_equal(ffs_count(), 0);
}

/* Another writer replaces alice's registration (new session, new updateTime). */
static void replace_alice(void)
{
    json_t *d = json_object_get(g_fs.docs, ROOT "/" PREFIX "registrations/alice");
    json_object_set_new(json_object_get(d, "fields"), "session_id", sm_fs_value_string("s-2"));
    json_object_set_new(d, "u", json_integer(++g_fs.clock_us));
}

/* A delete whose updateTime precondition fails re-reads and decides again. */
static void test_delete_precondition(void **state)
{
    h_fixture_t *fx = *state;
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    ffs_fault("DELETE", NULL, 400, "FAILED_PRECONDITION", F_REPLY, false, 1);
    assert_int_equal(h_del_reg(fx, "alice", "s-1"), 0);
    assert_int_equal(FFS_GET(n_get), 2);
    assert_false(h_reg_exists(fx, "alice"));
    /* Replaced by another session between read and delete: not ours any more. */
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    ffs_before("DELETE", NULL, replace_alice);
    assert_int_equal(h_del_reg(fx, "alice", "s-1"), SM_ENOTFOUND);
    assert_true(h_reg_exists(fx, "alice"));
    /* Always failing: given up after FS_REDO_MAX re-reads. */
    ffs_fault("DELETE", NULL, 400, "FAILED_PRECONDITION", F_REPLY, false, 10);
    assert_int_equal(h_del_reg(fx, "alice", "s-2"), SM_EUNAVAIL);
    assert_true(h_reg_exists(fx, "alice"));
}

/* "b" joins room r the way add_member does: a membership and a new room updateTime. */
static void b_joins(void)
{
    json_t *room = json_object_get(g_fs.docs, ROOT "/" PREFIX "rooms/r");
    json_object_set_new(room, "u", json_integer(++g_fs.clock_us));
    json_t *f = json_pack("{s:o, s:o, s:o}", "room_id", sm_fs_value_string("r"), "client_id",
                          sm_fs_value_string("b"), "role", sm_fs_value_string("receiver"));
    json_object_set_new(g_fs.docs, ROOT "/" PREFIX "room_members/r:b",
                        fs_new_doc(f, g_fs.clock_us, g_fs.clock_us));
    json_decref(f);
}

static void count_members_cb(int status, const sm_store_result_t *res, void *arg)
{
    size_t *n = arg;
    assert_int_equal(status, 0);
    *n = res->n_members;
    for (size_t i = 1; i < res->n_members; i++) /* same joined_at: createTime order */
        assert_true(strcmp(res->members[i - 1].client_id, res->members[i].client_id) < 0);
}

/* delete_room: a member that joins between the read and the commit makes
 * the commit fail; the room is read again and deleted with all members. */
static void test_delete_room_member_joined(void **state)
{
    h_fixture_t *fx = *state;
    assert_int_equal(h_put_room(fx, "r", "a", "i"), 0);
    assert_int_equal(h_add_member(fx, "r", "a", "sender"), 0);
    ffs_before("POST", ":commit", b_joins);
    assert_int_equal(h_del_room(fx, "r"), 0);
    assert_int_equal(FFS_GET(n_commit), 3); /* add_member, failed delete, delete */
    assert_int_equal(ffs_count(), 0);       /* b's membership went too */

    /* Many members: get_room pages through them; delete_room commits
     * members first and the room with the last batch. */
    assert_int_equal(h_put_room(fx, "big", "a", "i"), 0);
    char name[64], cid[32];
    for (int i = 0; i < 740; i++) {
        snprintf(cid, sizeof cid, "m%03d", i);
        snprintf(name, sizeof name, PREFIX "room_members/big:%s", cid);
        ffs_put_doc(name, json_pack("{s:o, s:o, s:o, s:o}", "room_id", sm_fs_value_string("big"),
                                    "client_id", sm_fs_value_string(cid), "role",
                                    sm_fs_value_string("sender"), "joined_at",
                                    sm_fs_value_time_ms(1000)));
    }
    size_t n = 0;
    assert_int_equal(sm_store_get_room(fx->store, "big", &fx->q, count_members_cb, &n), 0);
    while (n == 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(n, 740);
    pthread_mutex_lock(&g_fs.lock);
    g_fs.n_commit = 0;
    g_fs.max_commit_writes = 0;
    pthread_mutex_unlock(&g_fs.lock);
    assert_int_equal(h_del_room(fx, "big"), 0);
    assert_int_equal(FFS_GET(n_commit), 2);
    assert_int_equal(FFS_GET(max_commit_writes), 500);
    assert_int_equal(ffs_count(), 0);
}

static void test_no_rest_client(void **state)
{
    h_fixture_t *fx = *state;
    sm_rest_client_set_current(NULL);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_EUNAVAIL);
    sm_rest_client_set_current(g_rest);
    assert_int_equal(FFS_GET(n_req), 0);
    /* cleanup_instance brings its own loop and client. */
    sm_rest_client_set_current(NULL);
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-a", NULL, NULL), 0);
    assert_null(sm_rest_client_current());
    sm_rest_client_set_current(g_rest);
}

static void test_emulator_mode(void **state)
{
    h_fixture_t *fx = *state;
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", g_fs.http.port);
    setenv("FIRESTORE_EMULATOR_HOST", host, 1);
    g_cred.check_rc = SM_EAUTH; /* never asked in emulator mode */
    fx->cfg.firestore_base_url = "https://firestore.invalid";
    fx->cfg.firestore_credentials = "/nonexistent.json";
    h_open(fx);
    assert_true(g_cred.opened_emulator);
    assert_string_equal(g_cred.opened_token, "owner");
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    char auth[128];
    pthread_mutex_lock(&g_fs.lock);
    snprintf(auth, sizeof auth, "%s", g_fs.last_auth);
    pthread_mutex_unlock(&g_fs.lock);
    assert_string_equal(auth, "Bearer owner");
    unsetenv("FIRESTORE_EMULATOR_HOST");
}

static void expect_open_error(h_fixture_t *fx, const char *needle)
{
    char err[256] = "";
    sm_store_t *s = (sm_store_t *)1;
    assert_int_equal(sm_store_open(&fx->cfg, &s, err, sizeof err), SM_ECONFIG);
    assert_null(s);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_open_errors(void **state)
{
    h_fixture_t *fx = *state;
    fx->cfg.firestore_project_id = NULL;
    expect_open_error(fx, "firestore.project_id: required");
    fx->cfg.firestore_project_id = "";
    expect_open_error(fx, "firestore.project_id");
    fx->cfg.firestore_project_id = "a/b";
    expect_open_error(fx, "firestore.project_id");
    fx->cfg.firestore_project_id = PROJECT;
    fx->cfg.firestore_database = "x/y";
    expect_open_error(fx, "firestore.database");
    fx->cfg.firestore_database = "(default)";
    fx->cfg.firestore_collection_prefix = "a/";
    expect_open_error(fx, "firestore.collection_prefix");
    fx->cfg.firestore_collection_prefix = "__x";
    expect_open_error(fx, "firestore.collection_prefix");
    fx->cfg.firestore_collection_prefix = PREFIX;
    fx->cfg.firestore_base_url = "ftp://x";
    expect_open_error(fx, "firestore.base_url");
    fx->cfg.firestore_base_url = "http://x/\tv1"; /* a control character */
    expect_open_error(fx, "firestore.base_url");
    fx->cfg.firestore_base_url = g_base_url;
    g_cred.open_rc = SM_ECONFIG;
    expect_open_error(fx, "firestore.credentials");
    g_cred.open_rc = 0;
    g_cred.check_rc = SM_EAUTH; /* a bad key fails the start */
    fx->cfg.firestore_credentials = "/keys/sa.json";
    expect_open_error(fx, "firestore.credentials");
    assert_string_equal(g_cred.opened_key_file, "/keys/sa.json");
    g_cred.check_rc = 0;
    setenv("FIRESTORE_EMULATOR_HOST", "http://x/y", 1);
    expect_open_error(fx, "FIRESTORE_EMULATOR_HOST");
    setenv("FIRESTORE_EMULATOR_HOST", "localhost:8080?x", 1);
    expect_open_error(fx, "FIRESTORE_EMULATOR_HOST");
    unsetenv("FIRESTORE_EMULATOR_HOST");
    /* The test_store.c check for an unconfigured firestore still holds. */
    fx->cfg.firestore_project_id = NULL;
    expect_open_error(fx, "store.backend");
    fx->cfg.firestore_project_id = PROJECT;
    h_open(fx);
}

/* clang-format off */
#define FS(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define FS_NOOPEN(fn) cmocka_unit_test_setup_teardown(fn, setup_noopen, teardown)
#define EMB(fn, backend) {#fn, fn, setup_embedded, teardown_embedded, (void *)backend}
/* clang-format on */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_builders),
        cmocka_unit_test(test_value_readers),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_id_escaping),
        cmocka_unit_test(test_classify),
        FS(test_reg_put_get),
        FS(test_reg_odd_ids),
        FS(test_reg_input_is_copied),
        FS(test_reg_conflict),
        FS(test_reg_delete),
        FS(test_reg_count),
        FS(test_room_put_get),
        FS(test_room_members),
        FS(test_room_delete),
        FS(test_cleanup_instance),
        FS(test_cleanup_batches),
        FS(test_async_and_ordered),
        FS(test_invalid_args),
        FS(test_threads),
        FS(test_get_client_firestore),
        EMB(test_get_client_memory, "memory"),
        EMB(test_get_client_sqlite, "sqlite"),
        FS(test_409_aborted_vs_already_exists),
        FS(test_retry_then_success),
        FS(test_budget_is_per_operation),
        FS(test_retries_exhausted),
        FS(test_create_landed_answer_lost),
        FS(test_exhausted_after_landing_is_undone),
        FS_NOOPEN(test_timeout_bound),
        FS(test_401_invalidate_and_retry_once),
        FS(test_not_retried),
        FS(test_delete_precondition),
        FS(test_delete_room_member_joined),
        FS(test_no_rest_client),
        FS_NOOPEN(test_emulator_mode),
        FS_NOOPEN(test_open_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
