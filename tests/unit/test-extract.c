/* test-extract.c - the protocol parsers on crafted payloads: HTTP request
 * lines and headers (odd request lines, cut headers, repeated and
 * case-insensitive headers, pipelining with and without bodies), DNS
 * questions (compression, loops, name length limits, root, TCP framing,
 * truncation), TLS ClientHello SNI (valid, every truncation, not a
 * handshake, bad lengths); and extract_field() on top of them. Inputs are
 * exact-size heap copies so that the sanitizer build catches overreads. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "netpdl.h"
#include "test.h"

/* An exact-size heap copy of n bytes, freed by the next call. */
static const uint8_t *exact(const void *s, size_t n)
{
    static uint8_t *copy;
    free(copy);
    copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    return copy;
}

static int http(const char *s, struct http_request *r)
{
    memset(r, 0xaa, sizeof *r);   /* the parser must not rely on a clean struct */
    int found = http_parse_request(exact(s, strlen(s)), (uint32_t)strlen(s), 0, r);
    if (!found)
        memset(r, 0, sizeof *r);  /* so that checks after a failed one read nothing */
    return found;
}

/* ---- HTTP ---- */

static void test_http_basic(void)
{
    struct http_request r;
    CHECK_EQ_INT(http("GET /index.html?q=1 HTTP/1.1\r\n"
                      "Host: example.com\r\n"
                      "User-Agent: curl/8.0\r\n"
                      "Referer: http://a.example/\r\n"
                      "Accept: */*\r\n"
                      "Cookie: a=1\r\n"
                      "\r\n",
                      &r),
                 1);
    CHECK_SLICE(r.method, "GET");
    CHECK_SLICE(r.url, "/index.html?q=1");
    CHECK_SLICE(r.version, "HTTP/1.1");
    CHECK_EQ_U64(r.nheader[0], 1);
    CHECK_SLICE(r.header[0][0], "example.com");
    CHECK_EQ_U64(r.nheader[1], 1);
    CHECK_SLICE(r.header[1][0], "curl/8.0");
    CHECK_EQ_U64(r.nheader[2], 1);
    CHECK_SLICE(r.header[2][0], "http://a.example/");
    CHECK_EQ_U64(r.nheader[3], 1);
    CHECK_SLICE(r.header[3][0], "a=1");
    CHECK_EQ_U64(r.next, 0);
}

static void test_http_request_lines(void)
{
    struct http_request r;
    CHECK_EQ_INT(http("OPTIONS * HTTP/1.1\r\n\r\n", &r), 1);
    CHECK_SLICE(r.method, "OPTIONS");
    CHECK_SLICE(r.url, "*");
    CHECK_SLICE(r.version, "HTTP/1.1");
    /* Wireshark's reading: the token after the method is the URI */
    CHECK_EQ_INT(http("OPTIONS HTTP/1.1\r\n\r\n", &r), 1);
    CHECK_SLICE(r.method, "OPTIONS");
    CHECK_SLICE(r.url, "HTTP/1.1");
    CHECK_EQ_U64(r.version.len, 0);
    /* a method alone on a complete line: empty URL */
    CHECK_EQ_INT(http("OPTIONS\n", &r), 1);
    CHECK_SLICE(r.method, "OPTIONS");
    CHECK_EQ_U64(r.url.len, 0);
    CHECK_EQ_U64(r.version.len, 0);
    CHECK_EQ_INT(http("OPTIONS\r\nHost: h\r\n\r\n", &r), 1);
    CHECK_SLICE(r.method, "OPTIONS");
    CHECK_EQ_U64(r.url.len, 0);
    CHECK_SLICE(r.header[0][0], "h");
    CHECK_EQ_INT(http("GET /HTTP/1.1\r\n\r\n", &r), 1);
    CHECK_SLICE(r.url, "/HTTP/1.1");
    CHECK_EQ_U64(r.version.len, 0);
    /* a version that is not HTTP/ is not reported */
    CHECK_EQ_INT(http("GET / FOO/1.0\r\n\r\n", &r), 1);
    CHECK_SLICE(r.url, "/");
    CHECK_EQ_U64(r.version.len, 0);
    CHECK_EQ_INT(http("GET / http/1.0\r\n\r\n", &r), 1);
    CHECK_SLICE(r.version, "http/1.0");
    /* a request line cut by the segment end */
    CHECK_EQ_INT(http("GET /very/long/ur", &r), 1);
    CHECK_SLICE(r.url, "/very/long/ur");
    CHECK_EQ_U64(r.version.len, 0);
    CHECK_EQ_INT(http("GET / HTTP/1.", &r), 1);
    CHECK_SLICE(r.version, "HTTP/1.");
    /* not requests */
    CHECK_EQ_INT(http("GETX /", &r), 0);
    CHECK_EQ_INT(http("GETX / HTTP/1.1\r\n\r\n", &r), 0);
    CHECK_EQ_INT(http("get / HTTP/1.1\r\n\r\n", &r), 0);
    CHECK_EQ_INT(http("HTTP/1.1 200 OK\r\n\r\n", &r), 0);
    CHECK_EQ_INT(http(" GET / HTTP/1.1\r\n\r\n", &r), 0);
    CHECK_EQ_INT(http("GET", &r), 0);   /* cut right after the method */
    CHECK_EQ_INT(http("", &r), 0);
    CHECK_EQ_INT(http("\r\n", &r), 0);
    /* every method Wireshark knows, and a long one */
    CHECK_EQ_INT(http("M-SEARCH * HTTP/1.1\r\n\r\n", &r), 1);
    CHECK_SLICE(r.method, "M-SEARCH");
    CHECK_EQ_INT(http("BASELINE-CONTROL /x HTTP/1.1\r\n\r\n", &r), 1);
    CHECK_SLICE(r.method, "BASELINE-CONTROL");
    /* off beyond the payload */
    const char *s = "GET / HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(http_parse_request((const uint8_t *)s, (uint32_t)strlen(s),
                                    (uint32_t)strlen(s), &r), 0);
}

static void test_http_headers(void)
{
    struct http_request r;
    /* a header cut by the segment end is reported cut */
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nHost: exam", &r), 1);
    CHECK_EQ_U64(r.nheader[0], 1);
    CHECK_SLICE(r.header[0][0], "exam");
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nHost: example.com\r", &r), 1);
    CHECK_SLICE(r.header[0][0], "example.com");
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nHost:", &r), 1);
    CHECK_EQ_U64(r.nheader[0], 1);
    CHECK_EQ_U64(r.header[0][0].len, 0);
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nHos", &r), 1);
    CHECK_EQ_U64(r.nheader[0], 0);
    /* repeated headers, in order */
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nCookie: a=1\r\nHost: h\r\ncookie:b=2\r\n\r\n", &r), 1);
    CHECK_EQ_U64(r.nheader[3], 2);
    CHECK_SLICE(r.header[3][0], "a=1");
    CHECK_SLICE(r.header[3][1], "b=2");
    /* more than VALUE_MAX_PARTS: the first ones are kept */
    char many[1024] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < VALUE_MAX_PARTS + 3; i++)
        sprintf(many + strlen(many), "Cookie: c%d\r\n", i);
    strcat(many, "\r\n");
    CHECK_EQ_INT(http(many, &r), 1);
    CHECK_EQ_U64(r.nheader[3], VALUE_MAX_PARTS);
    CHECK_SLICE(r.header[3][VALUE_MAX_PARTS - 1], "c7");
    /* header names in any case; leading blanks and tabs skipped */
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nhOsT: x\r\nUSER-AGENT:\t y\r\nrEfErEr: z\r\n\r\n", &r),
                 1);
    CHECK_SLICE(r.header[0][0], "x");
    CHECK_SLICE(r.header[1][0], "y");
    CHECK_SLICE(r.header[2][0], "z");
    /* near misses are other headers */
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\nHosts: x\r\nX-Host: y\r\nCookie2: z\r\n\r\n", &r), 1);
    CHECK_EQ_U64(r.nheader[0] + r.nheader[1] + r.nheader[2] + r.nheader[3], 0);
    /* LF without CR */
    CHECK_EQ_INT(http("GET /a HTTP/1.0\nHost: h\nUser-Agent: u\n\n", &r), 1);
    CHECK_SLICE(r.version, "HTTP/1.0");
    CHECK_SLICE(r.header[0][0], "h");
    CHECK_SLICE(r.header[1][0], "u");
    /* headers after the blank line belong to the body */
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\n\r\nHost: body", &r), 1);
    CHECK_EQ_U64(r.nheader[0], 0);
}

static void test_http_pipelining(void)
{
    struct http_request r;
    const char *a = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    char two[256];
    snprintf(two, sizeof two, "%sGET /b HTTP/1.1\r\nHost: b\r\n\r\n", a);
    const uint8_t *p = exact(two, strlen(two));
    uint32_t len = (uint32_t)strlen(two);
    CHECK_EQ_INT(http_parse_request(p, len, 0, &r), 1);
    CHECK_SLICE(r.url, "/a");
    CHECK_EQ_U64(r.next, strlen(a));
    CHECK_EQ_INT(http_parse_request(p, len, r.next, &r), 1);
    CHECK_SLICE(r.url, "/b");
    CHECK_SLICE(r.header[0][0], "b");
    CHECK_EQ_U64(r.nheader[0], 1);
    CHECK_EQ_U64(r.next, 0);

    /* a body of Content-Length bytes comes before the next request */
    const char *post = "POST /a HTTP/1.1\r\ncontent-length: 5\r\n\r\n";
    snprintf(two, sizeof two, "%shelloPUT /b HTTP/1.1\r\n\r\n", post);
    p = exact(two, strlen(two));
    len = (uint32_t)strlen(two);
    CHECK_EQ_INT(http_parse_request(p, len, 0, &r), 1);
    CHECK_SLICE(r.method, "POST");
    CHECK_EQ_U64(r.next, strlen(post) + 5);
    CHECK_EQ_INT(http_parse_request(p, len, r.next, &r), 1);
    CHECK_SLICE(r.method, "PUT");
    CHECK_SLICE(r.url, "/b");
    /* a body that ends with the segment, or goes beyond it: no next */
    CHECK_EQ_INT(http("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", &r), 1);
    CHECK_EQ_U64(r.next, 0);
    CHECK_EQ_INT(http("POST /a HTTP/1.1\r\nContent-Length: 500\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
                      &r),
                 1);
    CHECK_EQ_U64(r.next, 0);
    /* a Content-Length too large for any segment: still no next */
    CHECK_EQ_INT(http("POST /a HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                      &r),
                 1);
    CHECK_EQ_U64(r.next, 0);
    CHECK_EQ_INT(http("POST /a HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                      &r),
                 1);
    CHECK_EQ_U64(r.next, 0);
    CHECK_EQ_INT(http("POST /a HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"
                      "GET / HTTP/1.1\r\n\r\n",
                      &r),
                 1);
    CHECK_EQ_U64(r.next, 0);
    /* nothing after the blank line */
    CHECK_EQ_INT(http("GET / HTTP/1.1\r\n\r\n", &r), 1);
    CHECK_EQ_U64(r.next, 0);
}

/* extract_field() and extract_http_next() over a TCP packet's payload. */
static void test_extract_fields(void)
{
    static const char pl[] = "GET /1 HTTP/1.1\r\nHost: one\r\nCookie: x=1\r\nCookie: y=2\r\n\r\n"
                             "HEAD /2 HTTP/1.0\r\n\r\n"
                             "junk";
    uint8_t frame[14 + sizeof pl];
    memset(frame, 0, 14);
    memcpy(frame + 14, pl, sizeof pl - 1);
    struct packet p;
    memset(&p, 0, sizeof p);
    p.data = exact(frame, 14 + sizeof pl - 1);
    p.caplen = p.wirelen = 14 + sizeof pl - 1;
    p.flags = PKT_HAS_KEY;
    p.ip_version = 4;
    p.l4_proto = IPPROTO_TCP;
    p.payload_off = 14;
    p.payload_len = sizeof pl - 1;
    p.sport = 40000;
    p.dport = 80;
    p.frame = 42;
    p.ts = 1234567890123456789ull;
    struct extract_ctx x;
    struct field_value v;
    extract_begin(&x, &p);
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_METHOD, &v), 1);
    CHECK_EQ_INT(v.kind, VALUE_STR);
    CHECK_EQ_U64(v.nparts, 1);
    CHECK_SLICE(v.parts[0], "GET");
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_COOKIE, &v), 1);
    CHECK_EQ_U64(v.nparts, 2);
    CHECK_SLICE(v.parts[0], "x=1");
    CHECK_SLICE(v.parts[1], "y=2");
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_REFERER, &v), 0);
    CHECK_EQ_INT(extract_field(&x, FIELD_TCP_DPORT, &v), 1);
    CHECK_EQ_U64(v.num, 80);
    CHECK_EQ_INT(extract_field(&x, FIELD_UDP_DPORT, &v), 0);
    CHECK_EQ_INT(extract_field(&x, FIELD_FRAME_NUMBER, &v), 1);
    CHECK_EQ_U64(v.num, 42);
    CHECK_EQ_INT(extract_field(&x, FIELD_FRAME_TIME, &v), 1);
    CHECK_EQ_INT(v.kind, VALUE_TIME);
    CHECK_EQ_U64(v.num, 1234567890123456789ull);
    CHECK_EQ_INT(extract_field(&x, FIELD_DNS_QRY_NAME, &v), 0);
    CHECK_EQ_INT(extract_field(&x, FIELD_TLS_SNI, &v), 0);
    CHECK_EQ_INT(extract_field(&x, FIELD_COUNT, &v), 0);
    CHECK_EQ_INT(extract_field(&x, -1, &v), 0);
    CHECK_EQ_INT(extract_http_next(&x), 1);
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_METHOD, &v), 1);
    CHECK_SLICE(v.parts[0], "HEAD");
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_VERSION, &v), 1);
    CHECK_SLICE(v.parts[0], "HTTP/1.0");
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_HOST, &v), 0);
    CHECK_EQ_INT(extract_http_next(&x), 0);   /* "junk" is not a request */
    /* the same payload over UDP is not HTTP */
    p.l4_proto = IPPROTO_UDP;
    extract_begin(&x, &p);
    CHECK_EQ_INT(extract_field(&x, FIELD_HTTP_METHOD, &v), 0);
    CHECK_EQ_INT(extract_http_next(&x), 0);
    /* field names and aliases */
    CHECK_EQ_INT(extract_field_lookup("http.host"), FIELD_HTTP_HOST);
    CHECK_EQ_INT(extract_field_lookup("http.request.uri"), FIELD_HTTP_URL);
    CHECK_EQ_INT(extract_field_lookup("ipv6.src"), FIELD_IP_SRC);
    CHECK_EQ_INT(extract_field_lookup("tls.handshake.extensions_server_name"), FIELD_TLS_SNI);
    CHECK_EQ_INT(extract_field_lookup("http.hos"), -1);
    CHECK_EQ_INT(extract_field_lookup(""), -1);
    for (int i = 0; i < FIELD_COUNT; i++) {
        const struct field_def *d = extract_field_def(i);
        CHECK(d != NULL && d->name != NULL);
        if (d && d->name)
            CHECK_EQ_INT(extract_field_lookup(d->name), i);
    }
    CHECK(extract_field_def(FIELD_COUNT) == NULL);
}

/* ---- DNS ---- */

struct buf {
    uint8_t d[2048];
    uint32_t n;
};

static void b_put(struct buf *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += (uint32_t)n;
}

static void b_u16(struct buf *b, uint16_t v)
{
    b->d[b->n++] = (uint8_t)(v >> 8);
    b->d[b->n++] = (uint8_t)v;
}

static void dns_header(struct buf *b, uint16_t id, uint16_t flags, uint16_t qdcount)
{
    b->n = 0;
    b_u16(b, id);
    b_u16(b, flags);
    b_u16(b, qdcount);
    b_u16(b, 0);
    b_u16(b, 0);
    b_u16(b, 0);
}

/* A name in wire form from dotted text ("" is the root). */
static void dns_name(struct buf *b, const char *dotted)
{
    while (*dotted) {
        const char *dot = strchr(dotted, '.');
        size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
        b->d[b->n++] = (uint8_t)l;
        b_put(b, dotted, l);
        dotted += l + (dot != NULL);
    }
    b->d[b->n++] = 0;
}

static int dns(const struct buf *b, int tcp, struct dns_query *q)
{
    memset(q, 0xaa, sizeof *q);
    int found = dns_parse_query(exact(b->d, b->n), b->n, tcp, q);
    if (!found || !q->has_question)
        q->name_len = 0;          /* so that checks after a failed one read nothing */
    return found;
}

#define CHECK_NAME(q, lit) CHECK_MEM_STR((q).name, (q).name_len, lit)

static void test_dns_basic(void)
{
    struct buf b;
    struct dns_query q;
    dns_header(&b, 0x1234, 0x0100, 1);
    dns_name(&b, "www.example.com");
    b_u16(&b, 28);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.id, 0x1234);
    CHECK_EQ_U64(q.qr, 0);
    CHECK_EQ_U64(q.qdcount, 1);
    CHECK_EQ_U64(q.has_question, 1);
    CHECK_NAME(q, "www.example.com");
    CHECK_EQ_U64(q.qtype, 28);
    CHECK_EQ_U64(q.qclass, 1);
    /* a response */
    b.d[2] = 0x81;
    b.d[3] = 0x80;
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.qr, 1);
    /* over TCP: a 2-byte length first */
    struct buf t;
    t.n = 0;
    b_u16(&t, (uint16_t)b.n);
    b_put(&t, b.d, b.n);
    CHECK_EQ_INT(dns(&t, 1, &q), 1);
    CHECK_EQ_U64(q.id, 0x1234);
    CHECK_NAME(q, "www.example.com");
    CHECK_EQ_U64(q.qtype, 28);
    CHECK_EQ_U64(q.qclass, 1);
    /* the same bytes read as UDP: the header is shifted */
    CHECK_EQ_INT(dns(&t, 0, &q), 1);
    CHECK_EQ_U64(q.id, b.n);
    /* too short for a header */
    t.n = 13;
    CHECK_EQ_INT(dns(&t, 1, &q), 0);
    t.n = 1;
    CHECK_EQ_INT(dns(&t, 1, &q), 0);
    b.n = 11;
    CHECK_EQ_INT(dns(&b, 0, &q), 0);
    b.n = 12;
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    /* no question */
    dns_header(&b, 7, 0, 0);
    dns_name(&b, "a.b");
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.qdcount, 0);
    CHECK_EQ_U64(q.has_question, 0);
    /* the root */
    dns_header(&b, 7, 0, 1);
    dns_name(&b, "");
    b_u16(&b, 2);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 1);
    CHECK_NAME(q, "<Root>");
    CHECK_EQ_U64(q.qtype, 2);
}

static void test_dns_compression(void)
{
    struct buf b;
    struct dns_query q;
    /* "www" then a pointer to "example.com" at offset 32 */
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\x03www\xc0\x20", 6);
    b_u16(&b, 15);                      /* qtype right after the pointer */
    b_u16(&b, 3);
    while (b.n < 32)
        b.d[b.n++] = 0xff;
    dns_name(&b, "example.com");
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 1);
    CHECK_NAME(q, "www.example.com");
    CHECK_EQ_U64(q.qtype, 15);
    CHECK_EQ_U64(q.qclass, 3);
    /* a pointer to a pointer */
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\x01" "a\xc0\x14", 4);   /* -> 20 */
    b_u16(&b, 1);
    b_u16(&b, 1);
    b_put(&b, "\xc0\x16", 2);           /* 20 -> 22 */
    b_put(&b, "\x01" "b\x00", 3);       /* 22: "b" */
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 1);
    CHECK_NAME(q, "a.b");
    CHECK_EQ_U64(q.qtype, 1);
    /* a pointer to itself, and a two-pointer loop */
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\xc0\x0c", 2);
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\x01" "a\xc0\x10", 4);   /* 12: "a" -> 16 */
    b_put(&b, "\x01" "b\xc0\x0c", 4);   /* 16: "b" -> 12 */
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    /* a pointer past the message, a pointer cut in half */
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\xc1\x00", 2);
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\x01" "a\xc0", 3);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    /* extended label types (01, 10) are refused */
    dns_header(&b, 1, 0, 1);
    b_put(&b, "\x41" "a\x00", 3);
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
}

/* A name of labels with the given lengths (filled with 'a'..). */
static void dns_labels(struct buf *b, const int *lens, int n)
{
    for (int i = 0; i < n; i++) {
        b->d[b->n++] = (uint8_t)lens[i];
        memset(b->d + b->n, 'a' + i, (size_t)lens[i]);
        b->n += (uint32_t)lens[i];
    }
    b->d[b->n++] = 0;
}

static void test_dns_lengths(void)
{
    struct buf b;
    struct dns_query q;
    /* 255 octets on the wire, root byte included: the longest legal name */
    static const int ok[] = {63, 63, 63, 61};
    dns_header(&b, 1, 0, 1);
    dns_labels(&b, ok, 4);
    CHECK_EQ_U64(b.n - 12, 255);
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 1);
    CHECK_EQ_U64(q.name_len, 63 * 3 + 61 + 3);
    /* 256 octets (RFC 1035 3.1: "255 octets or less", length bytes included) */
    static const int one_more[] = {63, 63, 63, 62};
    dns_header(&b, 1, 0, 1);
    dns_labels(&b, one_more, 4);
    CHECK_EQ_U64(b.n - 12, 256);
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    /* far too long */
    static const int five[] = {63, 63, 63, 63, 63};
    dns_header(&b, 1, 0, 1);
    dns_labels(&b, five, 5);
    b_u16(&b, 1);
    b_u16(&b, 1);
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 0);
    /* the limit counts what pointers add: 200 octets, then a pointer to a
     * 42-octet name (fine) or a 65-octet one (too long) */
    static const int head[] = {63, 63, 63, 7};
    for (int tail = 40; tail <= 63; tail += 23) {
        dns_header(&b, 1, 0, 1);
        dns_labels(&b, head, 4);
        b.n--;                    /* no root: a pointer ends the name */
        b_put(&b, "\xd0\x00", 2);  /* -> 4096, patched below */
        b_u16(&b, 1);
        b_u16(&b, 1);
        uint32_t at = b.n;
        b.d[at - 6] = (uint8_t)(0xc0 | at >> 8);
        b.d[at - 5] = (uint8_t)at;
        dns_labels(&b, &tail, 1);
        CHECK_EQ_INT(dns(&b, 0, &q), 1);
        CHECK_EQ_U64(q.has_question, tail == 40);
        if (tail == 40)
            CHECK_EQ_U64(q.name_len, 63 * 3 + 7 + 40 + 4);
    }
    /* a truncated question: name cut, or type/class cut */
    dns_header(&b, 9, 0, 1);
    dns_name(&b, "www.example.com");
    b_u16(&b, 1);
    b_u16(&b, 1);
    uint32_t full = b.n;
    for (uint32_t n = 12; n < full; n++) {
        b.n = n;
        CHECK_EQ_INT(dns(&b, 0, &q), 1);
        CHECK_EQ_U64(q.id, 9);
        CHECK_EQ_U64(q.has_question, 0);
    }
    b.n = full;
    CHECK_EQ_INT(dns(&b, 0, &q), 1);
    CHECK_EQ_U64(q.has_question, 1);
}

/* A description set of one protocol whose <fields> are `fields`. */
static struct netpdl_set *pdl_load(const char *proto, const char *fields)
{
    char doc[2048];
    snprintf(doc, sizeof doc, "<netpdl><protocol name=\"%s\"><format><fields>%s"
             "</fields></format></protocol></netpdl>", proto, fields);
    struct netpdl_set *set = netpdl_set_create();
    CHECK_EQ_INT(netpdl_set_load_mem(set, doc, strlen(doc), "t.xml", stderr), 0);
    return set;
}

/* showtemplate="DNSName" of a description: the name that starts at the
 * field, compression followed, as dotted text; malformed: absent. Two such
 * fields in one packet keep their own text. */
static void test_netpdl_dns_name(void)
{
    struct netpdl_set *set = pdl_load("d",
        "<field type=\"fixed\" name=\"hdr\" size=\"12\"/>"
        "<field type=\"tokenended\" name=\"q\" endtoken=\"\\x00\" showtemplate=\"DNSName\"/>"
        "<field type=\"fixed\" name=\"gap\" size=\"4\"/>"
        "<field type=\"eatall\" name=\"rest\" showtemplate=\"DNSName\"/>");
    int q = FIELD_COUNT + netpdl_set_lookup(set, "d.q");
    int rest = FIELD_COUNT + netpdl_set_lookup(set, "d.rest");
    struct buf b;
    dns_header(&b, 1, 0, 1);
    dns_name(&b, "www.example.test");   /* 12..29 */
    b_u16(&b, 1);
    b_u16(&b, 1);
    b_put(&b, "\x02" "m1\xc0\x10", 5);  /* 34: "m1" then "example.test" */
    uint8_t frame[14 + sizeof b.d];
    memset(frame, 0, 14);
    memcpy(frame + 14, b.d, b.n);
    struct packet p;
    memset(&p, 0, sizeof p);
    p.data = exact(frame, 14 + b.n);
    p.caplen = p.wirelen = 14 + b.n;
    p.flags = PKT_HAS_KEY;
    p.ip_version = 4;
    p.l4_proto = IPPROTO_UDP;
    p.payload_off = 14;
    p.payload_len = b.n;
    struct extract_ctx x;
    memset(&x, 0, sizeof x);
    struct field_value v, w;
    extract_begin(&x, &p);
    extract_use_netpdl(&x, set);
    CHECK_EQ_INT(extract_field(&x, q, &v), 1);
    CHECK_EQ_INT(extract_field(&x, rest, &w), 1);
    CHECK_SLICE(w.parts[0], "m1.example.test");
    CHECK_SLICE(v.parts[0], "www.example.test");   /* not overwritten by the second */
    CHECK_EQ_INT(extract_field(&x, q, &v), 1);     /* asked again: the same */
    CHECK_SLICE(v.parts[0], "www.example.test");
    /* another filter's descriptions on the same packet: slot 1 is theirs */
    struct netpdl_set *set2 = pdl_load("e",
        "<field type=\"fixed\" name=\"skip\" size=\"34\"/>"
        "<field type=\"eatall\" name=\"n\" showtemplate=\"DNSName\"/>");
    int n2 = FIELD_COUNT + netpdl_set_lookup(set2, "e.n");
    CHECK_EQ_INT(n2, q);
    extract_use_netpdl(&x, set2);
    CHECK_EQ_INT(extract_field(&x, n2, &v), 1);
    CHECK_SLICE(v.parts[0], "m1.example.test");
    extract_use_netpdl(&x, set);
    /* the next packet: a pointer loop where the second name starts */
    b.d[34] = 0xc0;
    b.d[35] = 34;
    memcpy(frame + 14, b.d, b.n);
    p.data = exact(frame, 14 + b.n);
    extract_begin(&x, &p);
    extract_use_netpdl(&x, set);
    CHECK_EQ_INT(extract_field(&x, rest, &w), 0);
    CHECK_EQ_INT(extract_field(&x, q, &v), 1);
    CHECK_SLICE(v.parts[0], "www.example.test");
    extract_fini(&x);
    netpdl_set_destroy(set);
    netpdl_set_destroy(set2);
}

/* ---- TLS ---- */

/* A ClientHello with a session id, two cipher suites, a supported_versions
 * extension, then server_name last. Returns the offset of the server_name
 * extension. */
static uint32_t client_hello(struct buf *b, const char *host, uint8_t sid_len)
{
    b->n = 0;
    b_put(b, "\x16\x03\x01\x00\x00", 5);          /* record, length patched */
    b_put(b, "\x01\x00\x00\x00", 4);              /* ClientHello, length patched */
    b_u16(b, 0x0303);
    memset(b->d + b->n, 0x42, 32);
    b->n += 32;
    b->d[b->n++] = sid_len;
    memset(b->d + b->n, 0x17, sid_len);
    b->n += sid_len;
    b_u16(b, 4);
    b_u16(b, 0x1301);
    b_u16(b, 0x1302);
    b->d[b->n++] = 1;
    b->d[b->n++] = 0;
    uint32_t ext_len_at = b->n;
    b_u16(b, 0);
    b_u16(b, 43);                                 /* supported_versions */
    b_u16(b, 3);
    b_put(b, "\x02\x03\x04", 3);
    uint32_t sni_at = b->n;
    size_t hl = strlen(host);
    b_u16(b, 0);                                  /* server_name */
    b_u16(b, (uint16_t)(hl + 5));
    b_u16(b, (uint16_t)(hl + 3));
    b->d[b->n++] = 0;
    b_u16(b, (uint16_t)hl);
    b_put(b, host, hl);
    uint32_t ext_len = b->n - ext_len_at - 2;
    b->d[ext_len_at] = (uint8_t)(ext_len >> 8);
    b->d[ext_len_at + 1] = (uint8_t)ext_len;
    b->d[3] = (uint8_t)((b->n - 5) >> 8);
    b->d[4] = (uint8_t)(b->n - 5);
    b->d[7] = (uint8_t)((b->n - 9) >> 8);
    b->d[8] = (uint8_t)(b->n - 9);
    return sni_at;
}

static int tls(const struct buf *b, uint32_t n, struct slice *sni)
{
    sni->ptr = NULL;
    sni->len = 0;
    return tls_parse_sni(exact(b->d, n), n, sni);
}

static void test_tls(void)
{
    struct buf b;
    struct slice sni;
    uint32_t sni_at = client_hello(&b, "www.example.org", 32);
    CHECK_EQ_INT(tls(&b, b.n, &sni), 1);
    CHECK_SLICE(sni, "www.example.org");
    /* every cut before the end of the name fails cleanly */
    unsigned wrong = 0;
    for (uint32_t n = 0; n < b.n; n++)
        wrong += tls(&b, n, &sni) != 0;
    CHECK_EQ_U64(wrong, 0);
    CHECK(sni_at > 43);
    /* a cut inside the server_name extension */
    CHECK_EQ_INT(tls(&b, sni_at + 4 + 5 + 3, &sni), 0);
    /* lengths declared beyond the segment are tolerated when the name is whole */
    struct buf longer = b;
    longer.d[3] = 0x40;
    longer.d[6] = 0x01;
    CHECK_EQ_INT(tls(&longer, longer.n, &sni), 1);
    CHECK_SLICE(sni, "www.example.org");
    /* no session id, a one-letter name */
    client_hello(&b, "a", 0);
    CHECK_EQ_INT(tls(&b, b.n, &sni), 1);
    CHECK_SLICE(sni, "a");
    /* not a handshake, not a ClientHello, not TLS */
    client_hello(&b, "x.example", 32);
    b.d[0] = 0x17;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    b.d[0] = 0x16;
    b.d[5] = 0x02;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    b.d[5] = 0x01;
    b.d[1] = 0x02;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    b.d[1] = 0x03;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 1);
    /* a session id longer than the rest of the segment */
    b.d[43] = 0xff;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    b.d[43] = 32;
    /* cipher suites length past the end */
    b.d[43 + 1 + 32] = 0xff;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    /* no server_name extension */
    client_hello(&b, "x.example", 32);
    uint32_t at = client_hello(&b, "x.example", 32);
    b.d[at + 1] = 0x10;   /* type 16 (ALPN) instead of 0 */
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    /* a server_name list whose first entry is not a host name */
    at = client_hello(&b, "x.example", 32);
    b.d[at + 6] = 1;
    CHECK_EQ_INT(tls(&b, b.n, &sni), 0);
    /* an empty host name */
    client_hello(&b, "", 32);
    CHECK_EQ_INT(tls(&b, b.n, &sni), 1);
    CHECK_EQ_U64(sni.len, 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_http_basic();
    test_http_request_lines();
    test_http_headers();
    test_http_pipelining();
    test_extract_fields();
    test_dns_basic();
    test_dns_compression();
    test_dns_lengths();
    test_netpdl_dns_name();
    test_tls();
    return test_summary(argv[0]);
}
