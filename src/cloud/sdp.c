/*
 * SDP reader for the cloudflare media mode: lists a session description's
 * m-sections (media kind, mid, direction, rejected) so the server can name
 * the tracks of a client's offer in tracks/new (cloud-apis.md §1.3).  The
 * declaration lives in cloudflare.h, its only consumer's header.
 *
 * DESIGN
 * - One forward pass over exactly len bytes, line by line (memchr for '\n',
 *   a trailing '\r' dropped), with no allocation and no NUL needed: the SDP
 *   arrives from a peer inside a JSON payload and is handed over as a
 *   pointer and a length.
 * - Deliberately not a validator: the SFU (or the other browser) judges the
 *   SDP.  This code only refuses what it cannot answer for: a text that does
 *   not start like an SDP, and m-sections it cannot name (no usable a=mid),
 *   since a track without its mid cannot be published.
 * - Session-level attributes all precede the first m= line (RFC 4566 §5), so
 *   a section's default direction is known when its m= line is read.
 */
#include "cloud/cloudflare.h"

#include <limits.h>
#include <string.h>

#include "core/assert.h"

/* RFC 4566 §9 token-char: visible ASCII except the separators
 * " ( ) , / : ; < = > ? @ [ \ ]. */
static bool token_char(unsigned char c)
{
    if (c < 0x21 || c > 0x7e)
        return false;
    return strchr("\"(),/:;<=>?@[\\]", c) == NULL;
}

/* [p, e) is a non-empty run of token characters shorter than cap; copy it
 * NUL-terminated into dst.  False otherwise (dst untouched). */
static bool copy_token(char *dst, size_t cap, const char *p, const char *e)
{
    size_t n = (size_t)(e - p);
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!token_char((unsigned char)p[i]))
            return false;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

static bool line_is(const char *p, const char *e, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(e - p) == n && memcmp(p, lit, n) == 0;
}

static bool line_starts(const char *p, const char *e, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0;
}

/* One of the four direction attributes (without "a="), or NULL. */
static const char *direction_of(const char *p, const char *e)
{
    static const char *const dirs[] = {"sendrecv", "sendonly", "recvonly", "inactive"};
    for (size_t i = 0; i < SM_ARRAY_LEN(dirs); i++)
        if (line_is(p, e, dirs[i]))
            return dirs[i];
    return NULL;
}

/* "m=<media> <port>[/<n>] <proto> <fmt> ...": fill kind and rejected. */
static bool parse_m_line(const char *p, const char *e, sm_sdp_media_t *m)
{
    const char *sp = memchr(p, ' ', (size_t)(e - p));
    const char *tok_end = sp != NULL ? sp : e;
    if (!copy_token(m->kind, sizeof m->kind, p, tok_end))
        return false;
    m->rejected = false;
    if (sp != NULL) {
        const char *q = sp;
        while (q < e && *q == ' ')
            q++;
        bool digits = false, nonzero = false;
        for (; q < e && *q >= '0' && *q <= '9'; q++) {
            digits = true;
            nonzero = nonzero || *q != '0';
        }
        m->rejected = digits && !nonzero;
    }
    return true;
}

int sm_sdp_media(const char *sdp, size_t len, sm_sdp_media_t *out, size_t cap)
{
    SM_ASSERT(out != NULL || cap == 0);
    SM_ASSERT(sdp != NULL || len == 0);
    if (len == 0)
        return -1; /* no "v=0" line */
    if (cap > INT_MAX)
        cap = INT_MAX;
    const char *p = sdp;
    const char *end = sdp + len;
    const char *session_dir = "sendrecv";
    sm_sdp_media_t cur = {0};
    bool in_section = false, have_mid = false, first = true;
    size_t count = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        const char *next = nl != NULL ? nl + 1 : end;
        if (le > p && le[-1] == '\r')
            le--;
        if (first) {
            if (!line_is(p, le, "v=0"))
                return -1;
            first = false;
        } else if (line_starts(p, le, "m=")) {
            if (in_section) {
                if (!have_mid)
                    return -1;
                if (count < cap)
                    out[count] = cur;
                count++;
            }
            memset(&cur, 0, sizeof cur);
            if (!parse_m_line(p + 2, le, &cur))
                return -1;
            strcpy(cur.direction, session_dir);
            in_section = true;
            have_mid = false;
        } else if (line_starts(p, le, "a=")) {
            const char *a = p + 2;
            const char *ae = le;
            while (ae > a && (ae[-1] == ' ' || ae[-1] == '\t'))
                ae--; /* trailing blanks left by SDP munging */
            const char *dir = direction_of(a, ae);
            if (dir != NULL && in_section)
                strcpy(cur.direction, dir);
            else if (dir != NULL)
                session_dir = dir;
            else if (in_section && !have_mid && line_starts(a, ae, "mid:")) {
                if (!copy_token(cur.mid, sizeof cur.mid, a + 4, ae))
                    return -1;
                have_mid = true;
            }
        }
        p = next;
    }
    if (in_section) {
        if (!have_mid)
            return -1;
        if (count < cap)
            out[count] = cur;
        count++;
    }
    return (int)(count < cap ? count : cap);
}
