/*
 * Fuzz target: the SDP m-section reader (src/cloud/sdp.c) that names the
 * tracks of a client's offer in the cloudflare media mode.  The SDP comes
 * from a peer inside a JSON payload (offer_sdp, answer_sdp).
 *
 * The input is the SDP, passed as exactly its bytes (no NUL).  Checked:
 *   - the result is -1 or a count <= cap; every section has a kind and a mid
 *     of RFC 4566 token characters within their buffers, a direction that
 *     is one of the four, and nothing past the NUL matters;
 *   - a smaller cap gives the same first sections, cap 0 (out NULL) gives 0
 *     exactly when the full read succeeds;
 *   - the same text with every bare "\n" written as "\r\n" reads the same.
 */
#include <stdbool.h>
#include <string.h>

#include "cloud/cloudflare.h"
#include "fuzz.h"

#define CAP 64

FUZZ_INITIALIZE_QUIET()

static bool token(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || strchr("\"(),/:;<=>?@[\\]", c) != NULL)
            return false;
    }
    return true;
}

static bool same(const sm_sdp_media_t *a, const sm_sdp_media_t *b)
{
    return strcmp(a->mid, b->mid) == 0 && strcmp(a->kind, b->kind) == 0 &&
           strcmp(a->direction, b->direction) == 0 && a->rejected == b->rejected;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sm_sdp_media_t all[CAP + 1], few[CAP + 1], crlf[CAP + 1];
    const char *sdp = (const char *)data;
    memset(all, 0, sizeof all);
    int n = sm_sdp_media(size ? sdp : NULL, size, all, CAP + 1);
    FUZZ_CHECK(n >= -1 && n <= CAP + 1);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(token(all[i].mid, sizeof all[i].mid));
        FUZZ_CHECK(token(all[i].kind, sizeof all[i].kind));
        FUZZ_CHECK(strcmp(all[i].direction, "sendrecv") == 0 ||
                   strcmp(all[i].direction, "sendonly") == 0 ||
                   strcmp(all[i].direction, "recvonly") == 0 ||
                   strcmp(all[i].direction, "inactive") == 0);
    }

    /* Caps below the count keep the first sections; cap 0 only validates. */
    int z = sm_sdp_media(size ? sdp : NULL, size, NULL, 0);
    FUZZ_CHECK(z == (n < 0 ? -1 : 0));
    if (n > 0) {
        int k = (int)(data[size - 1] % (unsigned)n);
        int m = sm_sdp_media(sdp, size, few, (size_t)k);
        FUZZ_CHECK(m == k);
        for (int i = 0; i < k; i++)
            FUZZ_CHECK(same(&few[i], &all[i]));
    }

    /* "\n" and "\r\n" are the same line end: write every bare "\n" as
     * "\r\n" (a line already ending in '\r' keeps it as content). */
    char *lf = malloc(2 * size + 1);
    FUZZ_CHECK(lf != NULL);
    size_t o = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
            lf[o++] = '\r';
        lf[o++] = (char)data[i];
    }
    if (o != size) {
        int c = sm_sdp_media(lf, o, crlf, CAP + 1);
        FUZZ_CHECK(c == n);
        for (int i = 0; i < c; i++)
            FUZZ_CHECK(same(&crlf[i], &all[i]));
    }
    free(lf);
    return 0;
}
