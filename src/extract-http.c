/* extract-http.c - HTTP/1.x request line and the headers dati reports, from
 * one segment as it is (no reassembly). Follows what Wireshark shows for a
 * single segment: a header cut at the segment end is reported cut, a repeated
 * header is reported once per occurrence (joined with ',' on output). */
#include <string.h>

#include "bytes.h"
#include "extract.h"

/* Methods Wireshark recognises at the start of a request. */
static const char *const methods[] = {
    "GET", "PUT", "ACL", "COPY", "HEAD", "LOCK", "MOVE", "POLL", "POST",
    "BCOPY", "BMOVE", "MKCOL", "TRACE", "PATCH", "LABEL", "MERGE",
    "DELETE", "SEARCH", "UNLOCK", "REPORT", "UPDATE", "NOTIFY",
    "BDELETE", "CONNECT", "OPTIONS", "CHECKIN", "PROPFIND", "CHECKOUT",
    "CCM_POST", "M-SEARCH", "SUBSCRIBE", "PROPPATCH", "BPROPFIND",
    "BPROPPATCH", "UNCHECKOUT", "MKACTIVITY", "MKWORKSPACE", "UNSUBSCRIBE",
    "RPC_CONNECT", "VERSION-CONTROL", "BASELINE-CONTROL", NULL,
};

static const char *const header_names[HTTP_HEADERS] = {
    "host", "user-agent", "referer", "cookie",
};

static int is_method(const uint8_t *p, uint32_t len)
{
    for (int i = 0; methods[i]; i++) {
        if (strlen(methods[i]) == len && memcmp(methods[i], p, len) == 0)
            return 1;
    }
    return 0;
}

/* Length of the line at p (up to, not including, LF or the end); where the
 * next line starts (len when none); whether an LF ended the line. */
static uint32_t line_len(const uint8_t *p, uint32_t len, uint32_t *next, int *ended)
{
    const uint8_t *lf = memchr(p, '\n', len);
    uint32_t n = lf ? (uint32_t)(lf - p) : len;
    *next = lf ? n + 1 : len;
    *ended = lf != NULL;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    return n;
}

static uint32_t token_len(const uint8_t *p, uint32_t len)
{
    uint32_t i = 0;
    while (i < len && p[i] != ' ')
        i++;
    return i;
}

int http_request_start(const uint8_t *p, uint32_t len)
{
    uint32_t n = token_len(p, len);
    for (int i = 0; methods[i]; i++) {
        size_t m = strlen(methods[i]);
        if (n < len ? n == m && memcmp(methods[i], p, m) == 0   /* "GET " ... */
                    : n <= m && memcmp(methods[i], p, n) == 0)  /* "GE": more may come */
            return 1;
    }
    return 0;
}

static uint64_t parse_decimal(struct slice s)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9'; i++) {
        if (n > UINT32_MAX)
            return UINT64_MAX;
        n = n * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    return n;
}

/* Returns 0, or -1 for a line that is not a header (Wireshark stops there). */
static int parse_header(struct http_request *r, const uint8_t *line, uint32_t n,
                        struct slice *content_length)
{
    const uint8_t *colon = memchr(line, ':', n);
    if (!colon)
        return -1;
    uint32_t name_len = (uint32_t)(colon - line);
    uint32_t v = name_len + 1;
    while (v < n && (line[v] == ' ' || line[v] == '\t'))
        v++;
    struct slice value = {line + v, n - v};
    for (int h = 0; h < HTTP_HEADERS; h++) {
        if (strlen(header_names[h]) == name_len && bytes_iprefix(line, name_len, header_names[h])) {
            if (r->nheader[h] < VALUE_MAX_PARTS)
                r->header[h][r->nheader[h]++] = value;
            return 0;
        }
    }
    if (name_len == 14 && bytes_iprefix(line, name_len, "content-length"))
        *content_length = value;
    return 0;
}

int http_parse_request(const uint8_t *p, uint32_t len, uint32_t off, struct http_request *r)
{
    memset(r->nheader, 0, sizeof r->nheader);
    r->version.len = 0;
    r->next = r->end = 0;
    r->body = 0;
    if (off >= len)
        return 0;
    const uint8_t *s = p + off;
    uint32_t n = len - off;

    uint32_t next;
    int ended;
    uint32_t ll = line_len(s, n, &next, &ended);
    uint32_t ml = token_len(s, ll);
    if (ml == 0 || !is_method(s, ml) || (ml == ll && !ended))
        return 0;   /* no method, or a request line cut right after it */
    r->method = (struct slice){s, ml};
    uint32_t u = ml < ll ? ml + 1 : ml;
    uint32_t ul = token_len(s + u, ll - u);
    r->url = (struct slice){s + u, ul};
    uint32_t vpos = u + ul;
    while (vpos < ll && s[vpos] == ' ')
        vpos++;
    if (bytes_iprefix(s + vpos, ll - vpos, "http/"))
        r->version = (struct slice){s + vpos, ll - vpos};

    struct slice content_length = {NULL, 0};
    uint32_t pos = next;
    while (pos < n) {
        uint32_t after;
        uint32_t hl = line_len(s + pos, n - pos, &after, &ended);
        if (hl == 0 && ended) {   /* the blank line: headers end, a body may follow */
            uint64_t body = content_length.ptr ? parse_decimal(content_length) : 0;
            uint32_t start = pos + after;   /* of the body */
            r->end = off + start;
            r->body = body;
            if (start < n && body < n - start)
                r->next = off + start + (uint32_t)body;
            break;
        }
        if (parse_header(r, s + pos, hl, &content_length) < 0)
            break;
        pos += after;
    }
    return 1;
}
