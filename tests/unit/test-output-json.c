/* test-output-json.c - the JSON writers: string escaping (quotes, backslash,
 * control characters, UTF-8 passed through, invalid bytes as \udcXX, overlong
 * and surrogate encodings refused), numbers, time with nine decimals, IPv4
 * and RFC 5952 IPv6 addresses, buffer growth, and whole field and flow
 * records. Nothing is written to a sink: the buffer is inspected. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "output-json.h"
#include "test.h"

static struct outbuf ob;

/* The buffer as a C string (the writers do not terminate it). */
static const char *text(void)
{
    static char s[1 << 16];
    size_t n = ob.len < sizeof s - 1 ? ob.len : sizeof s - 1;
    memcpy(s, ob.buf, n);
    s[n] = 0;
    return s;
}

static const char *str(const char *s, size_t n)
{
    ob.len = 0;
    CHECK_EQ_INT(json_str(&ob, (const uint8_t *)s, n), 0);
    return text();
}

#define STR(lit) str(lit, sizeof lit - 1)

static void test_escaping(void)
{
    CHECK_STR(STR(""), "\"\"");
    CHECK_STR(STR("plain ASCII ~!@#$%^&*()"), "\"plain ASCII ~!@#$%^&*()\"");
    CHECK_STR(STR("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
    CHECK_STR(STR("\n\r\t"), "\"\\n\\r\\t\"");
    CHECK_STR(STR("\x01\x08\x0c\x1f"), "\"\\u0001\\u0008\\u000c\\u001f\"");
    CHECK_STR(STR("a\0b"), "\"a\\u0000b\"");
    CHECK_STR(STR("\x7f"), "\"\x7f\"");   /* DEL needs no escape in JSON */
    /* valid UTF-8 at each length and boundary passes through */
    CHECK_STR(STR("\xc2\x80 \xdf\xbf"), "\"\xc2\x80 \xdf\xbf\"");                   /* U+0080, U+07FF */
    CHECK_STR(STR("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");       /* é € */
    CHECK_STR(STR("\xe0\xa0\x80\xef\xbf\xbf"), "\"\xe0\xa0\x80\xef\xbf\xbf\"");       /* U+0800, U+FFFF */
    CHECK_STR(STR("\xed\x9f\xbf\xee\x80\x80"), "\"\xed\x9f\xbf\xee\x80\x80\"");       /* U+D7FF, U+E000 */
    CHECK_STR(STR("\xf0\x90\x80\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"),
              "\"\xf0\x90\x80\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"");              /* U+10000, 😀, U+10FFFF */
    /* lone bytes become U+DC80..U+DCFF, one escape per byte */
    CHECK_STR(STR("\x80"), "\"\\udc80\"");
    CHECK_STR(STR("\xff\xfe"), "\"\\udcff\\udcfe\"");
    CHECK_STR(STR("a\xc3"), "\"a\\udcc3\"");                        /* cut at the end */
    CHECK_STR(STR("\xc3("), "\"\\udcc3(\"");                        /* bad continuation */
    CHECK_STR(STR("\xe2\x82"), "\"\\udce2\\udc82\"");
    CHECK_STR(STR("\xe2\x82z"), "\"\\udce2\\udc82z\"");
    CHECK_STR(STR("\xf0\x9f\x98"), "\"\\udcf0\\udc9f\\udc98\"");
    /* overlong encodings */
    CHECK_STR(STR("\xc0\x80"), "\"\\udcc0\\udc80\"");
    CHECK_STR(STR("\xc1\xbf"), "\"\\udcc1\\udcbf\"");
    CHECK_STR(STR("\xe0\x80\x80"), "\"\\udce0\\udc80\\udc80\"");
    CHECK_STR(STR("\xe0\x9f\xbf"), "\"\\udce0\\udc9f\\udcbf\"");
    CHECK_STR(STR("\xf0\x8f\xbf\xbf"), "\"\\udcf0\\udc8f\\udcbf\\udcbf\"");
    /* UTF-16 surrogates encoded in UTF-8 (CESU) */
    CHECK_STR(STR("\xed\xa0\x80"), "\"\\udced\\udca0\\udc80\"");
    CHECK_STR(STR("\xed\xbf\xbf"), "\"\\udced\\udcbf\\udcbf\"");
    /* above U+10FFFF, and bytes that never start a sequence */
    CHECK_STR(STR("\xf4\x90\x80\x80"), "\"\\udcf4\\udc90\\udc80\\udc80\"");
    CHECK_STR(STR("\xf5\x80\x80\x80"), "\"\\udcf5\\udc80\\udc80\\udc80\"");
    CHECK_STR(STR("\xf8\x88\x80\x80\x80"), "\"\\udcf8\\udc88\\udc80\\udc80\\udc80\"");
    /* a long string of worst-case bytes grows the buffer */
    size_t n = 100000;
    char *big = malloc(n);
    memset(big, 0x01, n);
    ob.len = 0;
    CHECK_EQ_INT(json_str(&ob, (const uint8_t *)big, n), 0);
    CHECK_EQ_U64(ob.len, 2 + 6 * n);
    CHECK(ob.cap >= ob.len);
    CHECK(memcmp(ob.buf + ob.len - 7, "\\u0001\"", 7) == 0);
    free(big);
}

static void test_numbers(void)
{
    ob.len = 0;
    json_u64(&ob, 0);
    json_lit(&ob, " ");
    json_u64(&ob, 18446744073709551615ull);
    CHECK_STR(text(), "0 18446744073709551615");
    static const struct {
        uint64_t ns;
        const char *s;
    } times[] = {
        {0, "0.000000000"},
        {1, "0.000000001"},
        {999999999, "0.999999999"},
        {1000000000, "1.000000000"},
        {1700000000123456789ull, "1700000000.123456789"},
        {1700000000000000010ull, "1700000000.000000010"},
        {18446744073709551615ull, "18446744073.709551615"},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        ob.len = 0;
        CHECK_EQ_INT(json_time(&ob, times[i].ns), 0);
        CHECK_STR(text(), times[i].s);
    }
}

static const char *addr6(const char *hex16)
{
    uint8_t a[16];
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(hex16 + 2 * i, "%2x", &v);
        a[i] = (uint8_t)v;
    }
    ob.len = 0;
    CHECK_EQ_INT(json_addr(&ob, a, 16), 0);
    return text();
}

static void test_addresses(void)
{
    static const uint8_t v4[][4] = {{0, 0, 0, 0}, {192, 0, 2, 1}, {255, 255, 255, 255},
                                    {10, 20, 30, 40}};
    static const char *const v4s[] = {"\"0.0.0.0\"", "\"192.0.2.1\"", "\"255.255.255.255\"",
                                      "\"10.20.30.40\""};
    for (int i = 0; i < 4; i++) {
        ob.len = 0;
        CHECK_EQ_INT(json_addr(&ob, v4[i], 4), 0);
        CHECK_STR(text(), v4s[i]);
    }
    /* RFC 5952: lower case, no leading zeros, the longest run of zero
     * fields (the first of equal runs) as "::", never for one field */
    CHECK_STR(addr6("20010db8000000000000000000000001"), "\"2001:db8::1\"");
    CHECK_STR(addr6("20010db8000000010001000100010001"), "\"2001:db8:0:1:1:1:1:1\"");
    CHECK_STR(addr6("20010000000000010000000000000001"), "\"2001:0:0:1::1\"");
    CHECK_STR(addr6("20010db8000000000001000000000001"), "\"2001:db8::1:0:0:1\"");
    CHECK_STR(addr6("00000000000000000000000000000000"), "\"::\"");
    CHECK_STR(addr6("00000000000000000000000000000001"), "\"::1\"");
    CHECK_STR(addr6("fe80000000000000000000000000abcd"), "\"fe80::abcd\"");
    CHECK_STR(addr6("00010002000300040005000600070008"), "\"1:2:3:4:5:6:7:8\"");
    CHECK_STR(addr6("20010db8000000000000000000000000"), "\"2001:db8::\"");
    CHECK_STR(addr6("ffffffffffffffffffffffffffffffff"),
              "\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\"");
    /* IPv4-mapped addresses use the dotted quad (RFC 5952 section 5) */
    CHECK_STR(addr6("00000000000000000000ffffc0000201"), "\"::ffff:192.0.2.1\"");
    /* ... but an address in ::/96 is not "IPv4-compatible" in dotted form:
     * those are deprecated (RFC 4291 2.5.5.1) and RFC 5952 section 4 gives
     * hex fields */
    CHECK_STR(addr6("00000000000000000000000000010002"), "\"::1:2\"");
}

/* A packet with an HTTP request, for json_record(). */
static const char http_payload[] =
    "GET /a\"b HTTP/1.1\r\nHost: h\xc3\xa9\r\nCookie: a=1\r\nCookie: b=\\2\r\n\r\n";

static void test_record(void)
{
    uint8_t frame[54 + sizeof http_payload];
    memset(frame, 0, sizeof frame);
    static const uint8_t ip[20] = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0,
                                   192, 0, 2, 1, 198, 51, 100, 7};
    memcpy(frame + 14, ip, 20);
    memcpy(frame + 54, http_payload, sizeof http_payload - 1);
    struct packet p;
    memset(&p, 0, sizeof p);
    p.data = frame;
    p.caplen = p.wirelen = (uint32_t)(54 + sizeof http_payload - 1);
    p.ts = 1700000000000000001ull;
    p.frame = 3;
    p.flags = PKT_HAS_KEY;
    p.ip_version = 4;
    p.l4_proto = IPPROTO_TCP;
    p.l3_off = 14;
    p.l4_off = 34;
    p.payload_off = 54;
    p.payload_len = sizeof http_payload - 1;
    p.sport = 40000;
    p.dport = 80;

    struct filter_conf f;
    memset(&f, 0, sizeof f);
    f.name = "web";
    static const int ids[] = {FIELD_IP_SRC,    FIELD_IP_DST,      FIELD_TCP_DPORT,
                              FIELD_UDP_DPORT, FIELD_HTTP_METHOD, FIELD_HTTP_URL,
                              FIELD_HTTP_HOST, FIELD_HTTP_COOKIE, FIELD_HTTP_REFERER,
                              FIELD_FRAME_TIME};
    static char *const keys[] = {"ip.src",      "ip.dst",   "tcp.dstport", "udp.dport",
                                 "http.method", "http.url", "http.host",   "http.cookie",
                                 "http.referer", "frame.time_epoch"};
    f.nfields = 10;
    for (int i = 0; i < f.nfields; i++) {
        f.field_id[i] = ids[i];
        f.field_key[i] = keys[i];
    }
    struct extract_ctx x;
    extract_begin(&x, &p);
    ob.len = 0;
    CHECK_EQ_INT(json_record(&ob, &x, &f, 2, 77, 0), 0);
    CHECK_STR(text(), "{\"type\":\"record\",\"id\":12416,\"frame\":3,"
                      "\"ts\":1700000000.000000001,\"filter\":\"web\",\"flow\":77,\"fields\":{"
                      "\"ip.src\":\"192.0.2.1\",\"ip.dst\":\"198.51.100.7\",\"tcp.dstport\":80,"
                      "\"http.method\":\"GET\",\"http.url\":\"/a\\\"b\",\"http.host\":\"h\xc3\xa9\","
                      "\"http.cookie\":\"a=1,b=\\\\2\","
                      "\"frame.time_epoch\":1700000000.000000001}}\n");
    /* no flow, another sub-request index, no field present */
    f.nfields = 1;
    f.field_id[0] = FIELD_UDP_DPORT;
    extract_begin(&x, &p);
    ob.len = 0;
    CHECK_EQ_INT(json_record(&ob, &x, &f, 0, 0, 5), 0);
    CHECK_STR(text(), "{\"type\":\"record\",\"id\":12293,\"frame\":3,"
                      "\"ts\":1700000000.000000001,\"filter\":\"web\",\"fields\":{}}\n");
}

static void test_flow(void)
{
    struct flow fl;
    memset(&fl, 0, sizeof fl);
    static const uint8_t lo[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    static const uint8_t hi[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
    memcpy(fl.key.lo_addr, lo, 16);
    memcpy(fl.key.hi_addr, hi, 16);
    fl.key.lo_port = 443;
    fl.key.hi_port = 50000;
    fl.key.proto = IPPROTO_TCP;
    fl.key.family = 6;
    fl.client_is_lo = 0;   /* the client is hi: 2001:db8::2 port 50000 */
    fl.id = 9;
    fl.first_ts = 1000000000;
    fl.last_ts = 2500000000ull;
    fl.packets[FLOW_C2S] = 3;
    fl.bytes[FLOW_C2S] = 300;
    fl.packets[FLOW_S2C] = 2;
    fl.bytes[FLOW_S2C] = 4000;
    fl.filters = 1u << 0 | 1u << 2;
    const char *const names[] = {"http", "dns", "tls"};
    ob.len = 0;
    CHECK_EQ_INT(json_flow(&ob, &fl, FLOW_END_IDLE, names), 0);
    CHECK_STR(text(), "{\"type\":\"flow\",\"flow\":9,\"proto\":\"tcp\","
                      "\"client\":\"2001:db8::2\",\"client_port\":50000,"
                      "\"server\":\"2001:db8::1\",\"server_port\":443,"
                      "\"first\":1.000000000,\"last\":2.500000000,"
                      "\"c2s_packets\":3,\"c2s_bytes\":300,\"s2c_packets\":2,\"s2c_bytes\":4000,"
                      "\"filters\":[\"http\",\"tls\"],\"reason\":\"idle\"}\n");
    /* ICMP over IPv4: no ports; an unnamed protocol is a number */
    memset(&fl.key, 0, sizeof fl.key);
    fl.key.lo_addr[0] = 10;
    fl.key.hi_addr[0] = 11;
    fl.key.proto = IPPROTO_ICMP;
    fl.key.family = 4;
    fl.client_is_lo = 1;
    fl.filters = 0;
    ob.len = 0;
    CHECK_EQ_INT(json_flow(&ob, &fl, FLOW_END_EVICTED, names), 0);
    CHECK_STR(text(), "{\"type\":\"flow\",\"flow\":9,\"proto\":\"icmp\","
                      "\"client\":\"10.0.0.0\",\"server\":\"11.0.0.0\","
                      "\"first\":1.000000000,\"last\":2.500000000,"
                      "\"c2s_packets\":3,\"c2s_bytes\":300,\"s2c_packets\":2,\"s2c_bytes\":4000,"
                      "\"filters\":[],\"reason\":\"evicted\"}\n");
    fl.key.proto = 132;
    ob.len = 0;
    CHECK_EQ_INT(json_flow(&ob, &fl, FLOW_END_EOF, names), 0);
    CHECK(strstr(text(), "\"proto\":132,") != NULL);
    CHECK(strstr(text(), "\"reason\":\"end_of_input\"") != NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (outbuf_init(&ob, NULL) < 0)
        return 1;
    test_escaping();
    test_numbers();
    test_addresses();
    test_record();
    test_flow();
    outbuf_fini(&ob);
    return test_summary(argv[0]);
}
