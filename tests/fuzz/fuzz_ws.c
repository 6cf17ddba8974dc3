/*
 * Fuzz target: the WebSocket receive side (src/ws/ws_conn.c on wslay), fed
 * the bytes a peer sends after the upgrade, with the per-thread spare context
 * that connections borrow and hand back.
 *
 * Input: byte 0 flags (bits 0-1: pieces - 1; bits 2-3: message size limit;
 * bits 4-5: before which piece the second connection is fed, bit 7: after
 * all of them; bit 6: the server starts closing the first connection before
 * its last piece), bytes 1..6 three split points, the rest the peer's
 * bytes.
 *
 * Two connections share one sm_ws_thread_t, as on an I/O thread: A reads the
 * bytes in up to four pieces, B all at once, interleaved.  Each is driven as
 * the connection layer drives it (reactor/conn.c ws_input): after a close is
 * sent or received it is CLOSING and feeds with server_closing; a close
 * received then, or a fatal result, ends it.  Checked:
 *   - a reference reader (RFC 6455 client frames: masked, RSV 0, minimal
 *     lengths, control frames final and <= 125 bytes, fragmentation rules,
 *     the size limit) predicts the binary messages and pongs; both
 *     connections deliver exactly those, up to the first frame that makes the
 *     server close;
 *   - A and B deliver the same messages, send the same close frame and
 *     report the same close, whatever the split (unless the server closed A
 *     itself, or the peer's close frame is involved: see below); what they
 *     emit is pongs, then at most one close frame;
 *   - after each piece, A's context is handed back (*slot NULL) exactly when
 *     the bytes so far end on a message boundary with nothing to close;
 *   - no message exceeds the limit, nothing leaks.
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "ws/ws_conn.h"

FUZZ_INITIALIZE_QUIET()

/* ---- what a connection saw ---- */

typedef struct {
    uint64_t max;
    size_t msgs;
    uint64_t msg_hash;
    uint8_t *out; /* emitted bytes */
    size_t out_len, out_cap;
    bool closing, done;
    bool close_received, close_sent;
    uint16_t code_sent, code_recv;
    bool text_rejected;
} rec_t;

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    h ^= n;
    h *= 0x100000001b3ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void out_put(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n)
            c *= 2;
        *buf = realloc(*buf, c);
        FUZZ_CHECK(*buf != NULL);
        *cap = c;
    }
    if (n)
        memcpy(*buf + *len, p, n);
    *len += n;
}

static void on_binary(void *conn, const uint8_t *data, size_t len)
{
    rec_t *r = conn;
    FUZZ_CHECK(len <= r->max);
    FUZZ_CHECK(len == 0 || data != NULL);
    r->msgs++;
    r->msg_hash = hash_bytes(r->msg_hash, data, len);
}

static void emit(void *conn, const uint8_t *data, size_t len)
{
    rec_t *r = conn;
    FUZZ_CHECK(len > 0 && data != NULL);
    out_put(&r->out, &r->out_len, &r->out_cap, data, len);
}

/* One read on a connection, as reactor/conn.c does it. */
static void feed(sm_ws_thread_t *t, sm_ws_t **slot, rec_t *r, const uint8_t *p, size_t n)
{
    if (r->done || n == 0)
        return;
    sm_ws_result_t res;
    memset(&res, 0xa5, sizeof res);
    bool closing = r->closing;
    sm_ws_feed(t, slot, r, p, n, closing, &res);
    FUZZ_CHECK(!res.fatal); /* only on out of memory */
    if (closing) {
        FUZZ_CHECK(*slot != NULL); /* never handed back while closing */
        if (res.close_received)
            r->done = true;
        return;
    }
    if (res.close_sent && !r->close_sent) {
        r->close_sent = true;
        r->code_sent = res.code_sent;
        FUZZ_CHECK(res.code_sent >= 1000);
    }
    if (res.close_received && !r->close_received) {
        r->close_received = true;
        r->code_recv = res.code_recv;
    }
    r->text_rejected |= res.text_rejected;
    if (res.close_sent || res.close_received) {
        FUZZ_CHECK(*slot != NULL);
        r->closing = true;
    }
}

/* ---- the reference reader ---- */

enum { REF_OPEN, REF_TERMINAL, REF_UNKNOWN };

typedef struct {
    size_t end;        /* bytes of the valid prefix: complete frames, nothing closed */
    int what_next;     /* REF_TERMINAL: a frame that makes the server close follows
                        * the prefix; REF_UNKNOWN: a partial close frame (wslay may
                        * or may not have refused its reason yet); else REF_OPEN */
    bool close_next;   /* the frame after the prefix is the peer's close frame */
    size_t msgs;       /* complete binary messages in the prefix */
    uint64_t msg_hash; /* of those messages, as on_binary hashes them */
    uint8_t *pongs;    /* the server's replies to the pings in the prefix */
    size_t pongs_len, pongs_cap;
    bool *bound; /* [off] for off in 0..n: a message ends there, nothing open */
} ref_t;

/* Frames as wslay's frame layer (first checks, after 2 header bytes or the
 * extended length) and event layer (once the header, mask and one payload
 * byte are in) judge them, with ws_conn's text rule. */
static void reference(const uint8_t *p, size_t n, uint64_t max, ref_t *ref)
{
    size_t off = 0;
    bool frag = false;
    uint8_t *msg = NULL;
    size_t msg_cap = 0, msg_used = 0;
    memset(ref, 0, sizeof *ref);
    ref->bound = calloc(n + 1, sizeof *ref->bound);
    FUZZ_CHECK(ref->bound != NULL);
    ref->bound[0] = true;
    for (;;) {
        ref->end = off;
        if (n - off < 2)
            break;
        uint8_t b0 = p[off], b1 = p[off + 1];
        bool fin = b0 & 0x80;
        unsigned rsv = (b0 >> 4) & 7, op = b0 & 0x0f;
        bool masked = b1 & 0x80;
        uint64_t len = b1 & 0x7f;
        size_t h = 2;
        if (op >= 8 && (len > 125 || !fin)) {
            ref->what_next = REF_TERMINAL;
            break;
        }
        if (len == 126) {
            if (n - off < 4)
                break;
            len = (uint64_t)p[off + 2] << 8 | p[off + 3];
            h = 4;
            if (len < 126) {
                ref->what_next = REF_TERMINAL;
                break;
            }
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[off + 2 + i];
            h = 10;
            if (len < 65536 || (len >> 63)) {
                ref->what_next = REF_TERMINAL;
                break;
            }
        }
        if (n - off < h + (masked ? 4u : 0u) + (len > 0))
            break;
        bool data_frame = op <= 2;
        if (rsv != 0 || !masked || (op == 0 && !frag) || ((op == 1 || op == 2) && frag) ||
            (op >= 3 && op <= 7) || op >= 11 || (data_frame ? msg_used : 0) + len > max ||
            op == 1) {
            /* 1002, 1009, or text: 1003 */
            ref->what_next = REF_TERMINAL;
            break;
        }
        const uint8_t *mask = p + off + h;
        h += 4;
        ref->close_next = op == 8;
        if (len > n - off - h) {
            if (op == 8)
                ref->what_next = REF_UNKNOWN;
            break; /* incomplete frame */
        }
        if (op == 8) {
            ref->what_next = REF_TERMINAL; /* the peer's close */
            break;
        }
        const uint8_t *pl = p + off + h;
        if (data_frame) {
            if (msg_used + len > msg_cap) {
                msg_cap = msg_used + len + 64;
                msg = realloc(msg, msg_cap);
                FUZZ_CHECK(msg != NULL);
            }
            for (uint64_t i = 0; i < len; i++)
                msg[msg_used + i] = pl[i] ^ mask[i % 4];
            msg_used += len;
            frag = !fin;
            if (fin) {
                ref->msgs++;
                ref->msg_hash = hash_bytes(ref->msg_hash, msg, msg_used);
                msg_used = 0;
            }
        } else if (op == 9) {
            uint8_t pong[2 + 125];
            pong[0] = 0x8a;
            pong[1] = (uint8_t)len;
            for (uint64_t i = 0; i < len; i++)
                pong[2 + i] = pl[i] ^ mask[i % 4];
            out_put(&ref->pongs, &ref->pongs_len, &ref->pongs_cap, pong, 2 + len);
        }
        off += h + len;
        if (!frag)
            ref->bound[off] = true;
    }
    free(msg);
}

/* What a connection emitted, split into its pong payloads (each with its
 * length byte, as in the reference) and its close frame.  Everything wslay
 * emits is an unmasked final control frame of at most 125 bytes, pongs
 * first, then at most one close. */
typedef struct {
    uint8_t *pongs;
    size_t pongs_len, pongs_cap;
    const uint8_t *close; /* the close frame, or NULL */
    size_t close_len;
} emitted_t;

static void split_emitted(const rec_t *r, emitted_t *e)
{
    memset(e, 0, sizeof *e);
    size_t off = 0;
    while (off < r->out_len) {
        FUZZ_CHECK(r->out_len - off >= 2);
        uint8_t b0 = r->out[off], b1 = r->out[off + 1];
        FUZZ_CHECK(b0 == 0x8a || b0 == 0x88);
        FUZZ_CHECK(b1 <= 125 && r->out_len - off - 2 >= b1);
        FUZZ_CHECK(e->close == NULL); /* nothing after the close */
        if (b0 == 0x8a) {
            out_put(&e->pongs, &e->pongs_len, &e->pongs_cap, r->out + off, 2u + b1);
        } else {
            e->close = r->out + off;
            e->close_len = 2u + b1;
        }
        off += 2u + b1;
    }
}

/* ---- the target ---- */

static const uint64_t limits[4] = {8, 125, 4096, 1u << 20};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    unsigned pieces = (flags & 3u) + 1u;
    uint64_t max = limits[(flags >> 2) & 3u];
    unsigned b_at = (flags & 0x80) ? 4u : ((flags >> 4) & 3u) % (pieces + 1u);
    bool server_close = flags & 0x40;
    size_t cut[5];
    cut[0] = 0;
    for (int i = 1; i <= 3; i++)
        cut[i] = fuzz_u16(&in);
    const uint8_t *p = in.p;
    size_t n = in.n;
    cut[4] = n;
    for (unsigned i = 1; i <= 3; i++)
        cut[i] = i < pieces ? cut[i] % (n + 1) : n;
    for (int i = 1; i <= 3; i++) /* sort cut[1..3] */
        for (int j = i + 1; j <= 3; j++)
            if (cut[j] < cut[i]) {
                size_t x = cut[i];
                cut[i] = cut[j];
                cut[j] = x;
            }

    ref_t ref;
    reference(p, n, max, &ref);

    sm_ws_callbacks_t cb = {.on_binary = on_binary, .emit = emit};
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cb, max);
    rec_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.max = b.max = max;
    sm_ws_t *sa = NULL, *sb = NULL;

    for (unsigned i = 0; i <= 3; i++) {
        if (i == b_at)
            feed(&t, &sb, &b, p, n);
        size_t len = cut[i + 1] - cut[i];
        if (len == 0)
            continue;
        if (server_close && i + 1 == pieces)
            a.closing = true;
        bool was_ws = !a.closing;
        feed(&t, &sa, &a, p + cut[i], len);
        if (was_ws && !a.closing) {
            /* Still open: handed back exactly at clean message boundaries. */
            size_t o = cut[i + 1];
            bool clean = o <= ref.end && ref.bound[o];
            FUZZ_CHECK((sa == NULL) == clean);
        }
    }
    if (b_at == 4)
        feed(&t, &sb, &b, p, n);

    /* B read everything at once. */
    if (ref.what_next != REF_UNKNOWN)
        FUZZ_CHECK(b.closing == (ref.what_next == REF_TERMINAL));
    if (!b.closing)
        FUZZ_CHECK((sb == NULL) == (ref.end == n && ref.bound[n]));
    FUZZ_CHECK(b.msgs == ref.msgs && b.msg_hash == ref.msg_hash);
    /* Pongs answer the pings in order.  wslay 1.1.1 drops the pongs still
     * queued when it sends a close in the same write (the close jumps the
     * queue; see tests/fuzz/README.md), so after a close only a prefix. */
    emitted_t ea, eb;
    split_emitted(&a, &ea);
    split_emitted(&b, &eb);
    FUZZ_CHECK(eb.pongs_len <= ref.pongs_len);
    FUZZ_CHECK(eb.pongs_len == 0 || memcmp(eb.pongs, ref.pongs, eb.pongs_len) == 0);
    FUZZ_CHECK(ea.pongs_len <= ref.pongs_len);
    FUZZ_CHECK(ea.pongs_len == 0 || memcmp(ea.pongs, ref.pongs, ea.pongs_len) == 0);
    if (ref.what_next == REF_OPEN) {
        FUZZ_CHECK(eb.pongs_len == ref.pongs_len && eb.close == NULL);
        if (!server_close)
            FUZZ_CHECK(ea.pongs_len == ref.pongs_len && ea.close == NULL);
    }
    FUZZ_CHECK((eb.close != NULL) == b.close_sent);

    if (!server_close)
        FUZZ_CHECK(a.msgs == b.msgs && a.msg_hash == b.msg_hash);
    /* wslay checks the UTF-8 of a close reason per read, skipping the first
     * two bytes of every read rather than of the payload, so the verdict on
     * a peer's close frame depends on how it was split (README). */
    if (!server_close && !ref.close_next) {
        FUZZ_CHECK(a.close_sent == b.close_sent && a.code_sent == b.code_sent);
        FUZZ_CHECK(ea.close_len == eb.close_len);
        FUZZ_CHECK(ea.close_len == 0 || memcmp(ea.close, eb.close, ea.close_len) == 0);
        FUZZ_CHECK(a.close_received == b.close_received && a.code_recv == b.code_recv);
        FUZZ_CHECK(a.text_rejected == b.text_rejected);
    }
    free(ea.pongs);
    free(eb.pongs);

    sm_ws_release(&t, &sa);
    sm_ws_release(&t, &sb);
    FUZZ_CHECK(sa == NULL && sb == NULL);
    sm_ws_thread_destroy(&t);
    free(a.out);
    free(b.out);
    free(ref.pongs);
    free(ref.bound);
    return 0;
}
