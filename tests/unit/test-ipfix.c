/* test-ipfix.c - dati's IPFIX templates and data records, byte for byte:
 * the template set as RFC 7011 lays it out (enterprise bit and PEN on the
 * reverse counters and dati's own elements), and the records of an IPv4
 * and an IPv6 flow with the client on either side of the key. */
#include "test.h"

#include "ipfix.h"
#include "ipfix-record.h"

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) << 16 | rd16(p + 2); }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }

static void test_templates(void)
{
    uint8_t buf[512];
    CHECK_EQ_U64(ipfix_record_templates(buf, 100), 0);   /* room short */
    size_t n = ipfix_record_templates(buf, sizeof buf);
    /* 17 elements, 4 of them enterprise-specific (8 bytes, else 4) */
    size_t one = 4 + 13 * 4 + 4 * 8;
    CHECK_EQ_U64(n, 4 + 2 * one);
    CHECK_EQ_U64(rd16(buf), 2);        /* template set */
    CHECK_EQ_U64(rd16(buf + 2), n);
    const uint8_t *t = buf + 4;
    CHECK_EQ_U64(rd16(t), IPFIX_TEMPLATE_V4);
    CHECK_EQ_U64(rd16(t + 2), 17);
    CHECK_EQ_U64(rd16(t + 4), 152);    /* flowStartMilliseconds, 8 bytes */
    CHECK_EQ_U64(rd16(t + 6), 8);
    CHECK_EQ_U64(rd16(t + 12), 8);     /* sourceIPv4Address, 4 bytes */
    CHECK_EQ_U64(rd16(t + 14), 4);
    /* the reverse octetDeltaCount: id 1 with the enterprise bit, PEN 29305 */
    const uint8_t *rev = t + 4 + 9 * 4;
    CHECK_EQ_U64(rd16(rev), 0x8001);
    CHECK_EQ_U64(rd16(rev + 2), 8);
    CHECK_EQ_U64(rd32(rev + 4), 29305);
    /* dati tags, variable length, PEN 32473; then applicationName (96), IANA's */
    const uint8_t *tags = t + one - 12;
    CHECK_EQ_U64(rd16(tags), 0x8002);
    CHECK_EQ_U64(rd16(tags + 2), 65535);
    CHECK_EQ_U64(rd32(tags + 4), 32473);
    CHECK_EQ_U64(rd16(t + one - 4), 96);
    CHECK_EQ_U64(rd16(t + one - 2), 65535);
    const uint8_t *t6 = t + one;
    CHECK_EQ_U64(rd16(t6), IPFIX_TEMPLATE_V6);
    CHECK_EQ_U64(rd16(t6 + 12), 27);   /* sourceIPv6Address, 16 bytes */
    CHECK_EQ_U64(rd16(t6 + 14), 16);
}

static void test_v4_record(void)
{
    struct flow f;
    memset(&f, 0, sizeof f);
    f.key.family = 4;
    f.key.proto = 6;
    memcpy(f.key.lo_addr, "\xc6\x12\x00\x01", 4);   /* 198.18.0.1 */
    memcpy(f.key.hi_addr, "\xc6\x13\x00\x50", 4);   /* 198.19.0.80 */
    f.key.lo_port = 80;
    f.key.hi_port = 40000;
    f.client_is_lo = 0;   /* the client is the hi side */
    f.first_ts = 1700000000123456789ull;
    f.last_ts = 1700000001999999999ull;
    f.id = 77;
    struct ipfix_flow_values v = {.packets = {3, 2}, .bytes = {300, 2000}, .why = FLOW_END_IDLE,
                                  .filters = "http,tls", .filterslen = 8,
                                  .app = "TLS.Google", .applen = 10};
    uint8_t rec[IPFIX_RECORD_MAX];
    size_t n = ipfix_record_encode(rec, &f, &v);
    CHECK_EQ_U64(ipfix_record_template(&f), IPFIX_TEMPLATE_V4);
    CHECK_EQ_U64(n, 8 + 8 + 4 + 4 + 2 + 2 + 1 + 4 * 8 + 1 + 8 + 1 + 1 + 8 + 1 + 1 + 10);
    CHECK_EQ_U64(rd64(rec), 1700000000123ull);       /* ms, truncated */
    CHECK_EQ_U64(rd64(rec + 8), 1700000001999ull);
    CHECK(memcmp(rec + 16, "\xc6\x13\x00\x50", 4) == 0);   /* source: the client */
    CHECK(memcmp(rec + 20, "\xc6\x12\x00\x01", 4) == 0);
    CHECK_EQ_U64(rd16(rec + 24), 40000);
    CHECK_EQ_U64(rd16(rec + 26), 80);
    CHECK_EQ_U64(rec[28], 6);
    CHECK_EQ_U64(rd64(rec + 29), 300);    /* client to server */
    CHECK_EQ_U64(rd64(rec + 37), 3);
    CHECK_EQ_U64(rd64(rec + 45), 2000);   /* server to client */
    CHECK_EQ_U64(rd64(rec + 53), 2);
    CHECK_EQ_U64(rec[61], 1);             /* idle timeout */
    CHECK_EQ_U64(rd64(rec + 62), 77);
    CHECK_EQ_U64(rec[70], 1);             /* biflowDirection: initiator */
    CHECK_EQ_U64(rec[71], 8);
    CHECK_MEM_STR(rec + 72, 8, "http,tls");
    CHECK_EQ_U64(rec[80], 0);             /* no tags */
    CHECK_EQ_U64(rec[81], 10);
    CHECK_MEM_STR(rec + 82, 10, "TLS.Google");
}

static void test_v6_record_and_reasons(void)
{
    struct flow f;
    memset(&f, 0, sizeof f);
    f.key.family = 6;
    f.key.proto = 17;
    f.key.lo_addr[0] = 0x20, f.key.lo_addr[15] = 1;
    f.key.hi_addr[0] = 0x20, f.key.hi_addr[15] = 2;
    f.key.lo_port = 5353;
    f.key.hi_port = 53;
    f.client_is_lo = 1;
    struct ipfix_flow_values v = {.why = FLOW_INTERIM, .tags = "x", .tagslen = 1};
    uint8_t rec[IPFIX_RECORD_MAX];
    size_t n = ipfix_record_encode(rec, &f, &v);
    CHECK_EQ_U64(ipfix_record_template(&f), IPFIX_TEMPLATE_V6);
    CHECK_EQ_U64(n, 16 + 32 + 5 + 32 + 1 + 8 + 1 + 1 + 2 + 1);   /* no application: empty */
    CHECK_EQ_U64(rec[16], 0x20);
    CHECK_EQ_U64(rec[31], 1);             /* source: lo, the client */
    CHECK_EQ_U64(rec[47], 2);
    CHECK_EQ_U64(rd16(rec + 48), 5353);
    CHECK_EQ_U64(rec[85], 2);             /* active timeout */
    CHECK_EQ_U64(rec[95], 0);             /* no filters */
    CHECK_EQ_U64(rec[96], 1);
    CHECK_EQ_U64(rec[97], 'x');
    static const struct { enum flow_end why; uint8_t code; } reasons[] = {
        {FLOW_END_IDLE, 1}, {FLOW_INTERIM, 2}, {FLOW_END_EOF, 4}, {FLOW_END_SHUTDOWN, 4},
        {FLOW_END_EVICTED, 5}};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        v.why = reasons[i].why;
        ipfix_record_encode(rec, &f, &v);
        CHECK_EQ_U64(rec[85], reasons[i].code);
    }
    /* a string longer than the short form is cut, not overrun */
    char longs[400];
    memset(longs, 'a', sizeof longs);
    v.tags = longs;
    v.tagslen = sizeof longs;
    n = ipfix_record_encode(rec, &f, &v);
    CHECK(n <= IPFIX_RECORD_MAX);
    CHECK_EQ_U64(rec[96], 254);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_templates();
    test_v4_record();
    test_v6_record_and_reasons();
    return test_summary(argv[0]);
}
