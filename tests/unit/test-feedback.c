/* test-feedback.c - feedback commands: every form parsed into its fields,
 * each kind of rejection with its reason; then a worker's side (flowtag):
 * tags by id and by rule (with TTL in packet time), the limits, tag text,
 * and the flow id index through a random create/end sequence against a
 * simple model (lookups after backward-shift deletions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feedback-cmd.h"
#include "flowtag.h"
#include "test.h"

static enum fb_reject parse(const char *s, struct fb_cmd *c)
{
    char why[128];
    return fb_cmd_parse(s, strlen(s), c, why, sizeof why);
}

static void test_parse_ok(void)
{
    struct fb_cmd c;
    CHECK_EQ_INT(parse("{\"flow\": 81234, \"tag\": \"suspicious\"}", &c), FB_OK);
    CHECK_EQ_INT(c.op, FB_TAG);
    CHECK_EQ_U64(c.flow, 81234);
    CHECK_STR(c.tag, "suspicious");
    CHECK_EQ_INT(parse(" {\"untag\":\"a.b:c-d_e\",\"flow\":1,\"id\":\"x\\\"y\"} ", &c), FB_OK);
    CHECK_EQ_INT(c.op, FB_UNTAG);
    CHECK_STR(c.id, "\"x\\\"y\"");
    CHECK_EQ_INT(parse("{\"match\": {\"ip.dst\": \"198.18.0.7\", \"tcp.dport\": 80}, "
                       "\"tag\": \"cdn-a\", \"ttl\": 600, \"id\": 12}", &c), FB_OK);
    CHECK(c.by_match && c.flow == 0 && c.ttl == 600);
    CHECK_EQ_INT(c.match.has, FB_M_DST | FB_M_DPORT | FB_M_PROTO);
    CHECK_EQ_INT(c.match.proto, 6);
    CHECK_EQ_INT(c.match.dport, 80);
    CHECK_EQ_INT(c.match.family, 4);
    CHECK(memcmp(c.match.dst, "\xc6\x12\x00\x07", 4) == 0);
    CHECK_STR(c.id, "12");
    CHECK_EQ_INT(parse("{\"match\":{\"ip.src\":\"2001:2::1\",\"udp.sport\":53},\"tag\":\"d\"}", &c),
                 FB_OK);
    CHECK(c.match.family == 6 && c.match.proto == 17 && c.match.sport == 53);
    CHECK_EQ_INT(parse("{\"flow\": 7, \"watch\": true}", &c), FB_OK);
    CHECK(c.op == FB_WATCH && c.on == 1);
    CHECK_EQ_INT(parse("{\"flow\": 7, \"ignore\": false}", &c), FB_OK);
    CHECK(c.op == FB_IGNORE && c.on == 0);
    CHECK_EQ_INT(parse("{\"stats\": true}", &c), FB_OK);
    CHECK_EQ_INT(c.op, FB_STATS);
    CHECK_EQ_INT(parse("{\"id\": \"caf\xc3\xa9 \xf0\x9f\x93\xa6\", \"stats\": true}", &c), FB_OK);
    CHECK_STR(c.id, "\"caf\xc3\xa9 \xf0\x9f\x93\xa6\"");
    CHECK_EQ_INT(parse("{\"match\": {\"ip.proto\": 6, \"tcp.dport\": 80}, \"tag\": \"x\"}", &c),
                 FB_OK);
}

static void test_parse_rejects(void)
{
    struct fb_cmd c;
    static const struct {
        const char *text;
        enum fb_reject want;
    } cases[] = {
        {"", FB_MALFORMED},
        {"nope", FB_MALFORMED},
        {"[1]", FB_MALFORMED},
        {"{\"flow\": 1, \"tag\": \"x\"", FB_MALFORMED},
        {"{\"flow\": 1, \"tag\": \"x\"} x", FB_MALFORMED},
        {"{\"flow\": 01, \"tag\": \"x\"}", FB_MALFORMED},
        {"{\"flow\": 1, \"tag\": \"x\\q\"}", FB_MALFORMED},
        {"{\"flow\": 1, \"tag\": \"x\n\"}", FB_MALFORMED},
        {"{}", FB_UNKNOWN},
        {"{\"flow\": 1}", FB_UNKNOWN},
        {"{\"flow\": 1, \"paint\": \"x\"}", FB_UNKNOWN},
        {"{\"match\": {\"eth.src\": 1}, \"tag\": \"x\"}", FB_UNKNOWN},
        {"{\"flow\": 0, \"tag\": \"x\"}", FB_INVALID},
        {"{\"flow\": -3, \"tag\": \"x\"}", FB_INVALID},
        {"{\"flow\": 1.5, \"tag\": \"x\"}", FB_INVALID},
        {"{\"flow\": \"1\", \"tag\": \"x\"}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": \"\"}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": \"a b\"}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": \"012345678901234567890123456789012\"}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": 5}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": \"x\", \"watch\": true}", FB_INVALID},
        {"{\"flow\": 1, \"watch\": 1}", FB_INVALID},
        {"{\"tag\": \"x\"}", FB_INVALID},
        {"{\"flow\": 1, \"match\": {\"tcp.dport\": 80}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"match\": {\"tcp.dport\": 80}, \"watch\": true}", FB_INVALID},
        {"{\"match\": {}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"match\": {\"tcp.dport\": 70000}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"match\": {\"tcp.dport\": 80, \"udp.sport\": 1}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"match\": {\"ip.dst\": \"300.1.1.1\"}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"match\": {\"ip.src\": \"::1\", \"ip.dst\": \"1.2.3.4\"}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": \"x\", \"ttl\": 5}", FB_INVALID},
        {"{\"stats\": true, \"flow\": 1}", FB_INVALID},
        /* control characters, escaped too: "flow\u0000x" is not "flow" */
        {"{\"flow\\u0000x\": 1, \"tag\": \"x\"}", FB_MALFORMED},
        {"{\"flow\": 1, \"tag\": \"x\\u0001\"}", FB_MALFORMED},
        {"{\"id\": \"a\\nb\", \"stats\": true}", FB_INVALID},
        {"{\"flow\": 1, \"tag\": \"x\\", FB_MALFORMED},   /* a backslash at the end */
        /* duplicate keys: the second would silently win */
        {"{\"flow\": 1, \"tag\": \"x\", \"flow\": 2}", FB_INVALID},
        {"{\"id\": 1, \"id\": 2, \"stats\": true}", FB_INVALID},
        {"{\"match\": {\"tcp.dport\": 80}, \"match\": {\"tcp.dport\": 81}, \"tag\": \"x\"}",
         FB_INVALID},
        {"{\"match\": {\"tcp.dport\": 80}, \"tag\": \"x\", \"ttl\": 1, \"ttl\": 2}", FB_INVALID},
        {"{\"match\": {\"tcp.dport\": 80, \"tcp.dport\": 81}, \"tag\": \"x\"}", FB_INVALID},
        {"{\"match\": {\"ip.src\": \"1.2.3.4\", \"ip.src\": \"1.2.3.5\"}, \"tag\": \"x\"}",
         FB_INVALID},
        /* string ids are echoed as they came: UTF-8 only */
        {"{\"id\": \"\xff\", \"stats\": true}", FB_INVALID},
        {"{\"id\": \"\xc3\", \"stats\": true}", FB_INVALID},
        {"{\"id\": \"\xc0\xaf\", \"stats\": true}", FB_INVALID},
        {"{\"id\": \"\xed\xa0\x80\", \"stats\": true}", FB_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum fb_reject got = parse(cases[i].text, &c);
        CHECK_EQ_INT(got, cases[i].want);
        if (got != cases[i].want)
            fprintf(stderr, "    for %s\n", cases[i].text);
    }
    char big[FB_MSG_MAX + 2];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_EQ_INT(parse(big, &c), FB_OVERSIZED);
}

/* A flow table with flows keyed by (client port, id). */
static struct flow_table table;
static struct flowtag ft;

static void emit(void *ctx, const struct flow *f, enum flow_end why)
{
    (void)why;
    flowtag_ended(ctx, f);
}

static struct flow *new_flow(uint64_t id, uint16_t sport, uint16_t dport, uint64_t clock)
{
    struct packet p;
    memset(&p, 0, sizeof p);
    p.flags = PKT_HAS_KEY | PKT_SRC_IS_LO;
    p.key.family = 4;
    p.key.proto = 6;
    memcpy(p.key.lo_addr, "\xc6\x12\x00\x01", 4);
    memcpy(p.key.hi_addr, "\xc6\x13\x00\x07", 4);
    p.key.lo_port = sport;
    p.key.hi_port = dport;
    p.hash = (uint32_t)(id * 2654435761u);
    p.frame = id;
    p.clock = p.ts = clock;
    ft.clock = clock;
    struct flow *f = flow_lookup(&table, &p);
    if (!f) {
        f = flow_create(&table, &p);
        flowtag_created(&ft, f);
    }
    flow_update(&table, f, &p);
    return f;
}

static enum ft_result apply(const char *text)
{
    struct fb_cmd c;
    const char *why = NULL;
    if (parse(text, &c) != FB_OK)
        return (enum ft_result)99;
    return flowtag_apply(&ft, &c, &why);
}

static void test_flowtag(void)
{
    CHECK_EQ_INT(flow_table_init(&table, 64, 64, 1000000000000ull, emit, &ft), 0);
    CHECK_EQ_INT(flowtag_init(&ft, &table), 0);
    struct flow *a = new_flow(10, 1000, 80, 1);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"one\"}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"two\"}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"one\"}"), FT_APPLIED);   /* already there */
    CHECK_EQ_INT(apply("{\"flow\": 11, \"tag\": \"one\"}"), FT_NOT_HERE);
    struct tagtext tt;
    CHECK(flowtag_text(&ft, a, &tt));
    CHECK(tt.csvlen == 7 && memcmp(tt.csv, "one,two", 7) == 0);
    CHECK(tt.jsonlen == 13 && memcmp(tt.json, "[\"one\",\"two\"]", 13) == 0);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"untag\": \"one\"}"), FT_APPLIED);
    CHECK(flowtag_text(&ft, a, &tt) && tt.csvlen == 3 && memcmp(tt.csv, "two", 3) == 0);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"t3\"}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"t4\"}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"t5\"}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"t6\"}"), FT_REFUSED);   /* FLOW_MAX_TAGS */
    CHECK_EQ_U64(ft.c.tags_full, 1);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"watch\": true}"), FT_APPLIED);
    CHECK_EQ_INT(a->marks, FLOW_WATCH);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"ignore\": true}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"watch\": false}"), FT_APPLIED);
    CHECK_EQ_INT(a->marks, FLOW_IGNORE);

    /* rules: existing flows at once, new ones at birth, until the TTL */
    struct flow *b = new_flow(20, 2000, 443, 2);
    CHECK_EQ_INT(apply("{\"match\": {\"tcp.dport\": 443, \"ip.dst\": \"198.19.0.7\"}, "
                       "\"tag\": \"tls\", \"ttl\": 10}"), FT_APPLIED);
    CHECK(flowtag_text(&ft, b, &tt) && tt.csvlen == 3);
    struct flow *c = new_flow(30, 3000, 443, 5000000000ull);
    CHECK(flowtag_text(&ft, c, &tt) && memcmp(tt.csv, "tls", 3) == 0);
    struct flow *d = new_flow(31, 3001, 443, 13000000000ull);   /* after 2 ns + 10 s */
    CHECK(!flowtag_text(&ft, d, &tt));
    CHECK_EQ_U64(ft.c.rules_expired, 1);
    CHECK_EQ_INT(ft.nrules, 0);
    struct flow *e = new_flow(32, 3002, 8080, 13000000001ull);
    CHECK(!flowtag_text(&ft, e, &tt));
    CHECK_EQ_INT(apply("{\"match\": {\"ip.src\": \"198.18.0.1\"}, \"untag\": \"tls\"}"),
                 FT_APPLIED);
    CHECK(!flowtag_text(&ft, b, &tt) && !flowtag_text(&ft, c, &tt));

    /* the id index against a model, through creations, expiry and eviction */
    flow_table_flush(&table, FLOW_END_EOF);
    uint64_t live[64];
    int nlive = 0, bad = 0;
    uint64_t clock = 20000000000ull;
    srand(7);
    for (int i = 0; i < 20000; i++) {
        uint64_t id = 100 + (uint64_t)i;
        if (nlive < 64 && rand() % 3) {
            new_flow(id, (uint16_t)(id % 60000), 80, ++clock);
            live[nlive++] = id;
        } else if (nlive) {   /* a flow ends: the oldest, by flushing through eviction */
            int k = rand() % nlive;
            struct flow *f = flowtag_find(&ft, live[k]);
            if (!f) {
                bad++;
                continue;
            }
            /* end just this flow: expire everything older than it, re-add the others */
            flow_table_flush(&table, FLOW_END_EOF);
            uint64_t keep[64];
            int n = 0;
            for (int j = 0; j < nlive; j++)
                if (j != k)
                    keep[n++] = live[j];
            nlive = 0;
            for (int j = 0; j < n; j++) {
                new_flow(keep[j], (uint16_t)(keep[j] % 60000), 80, ++clock);
                live[nlive++] = keep[j];
            }
        }
        for (int j = 0; j < nlive; j++)
            if (!flowtag_find(&ft, live[j]) || flowtag_find(&ft, live[j])->id != live[j])
                bad++;
        if (flowtag_find(&ft, id + 1000000))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    flowtag_fini(&ft);
    flow_table_fini(&table);
}

/* Names are taken only for tags given: commands for other workers' flows,
 * ended flows and untag never fill the table (a publisher could otherwise
 * disable tagging for the run), and an unknown flow stays unknown. */
static void test_names_not_exhausted(void)
{
    CHECK_EQ_INT(flow_table_init(&table, 64, 64, 1000000000000ull, emit, &ft), 0);
    CHECK_EQ_INT(flowtag_init(&ft, &table), 0);
    struct flow *a = new_flow(10, 1000, 80, 1);
    char cmd[128];
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(cmd, sizeof cmd, "{\"flow\": 999, \"tag\": \"o%d\"}", i);
        bad += apply(cmd) != FT_NOT_HERE;
        snprintf(cmd, sizeof cmd, "{\"flow\": 999, \"untag\": \"u%d\"}", i);
        bad += apply(cmd) != FT_NOT_HERE;
        snprintf(cmd, sizeof cmd, "{\"flow\": 10, \"untag\": \"x%d\"}", i);
        bad += apply(cmd) != FT_APPLIED;
        snprintf(cmd, sizeof cmd, "{\"match\": {\"tcp.dport\": 80}, \"untag\": \"m%d\"}", i);
        bad += apply(cmd) != FT_APPLIED;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ft.nnames, 0);
    CHECK_EQ_U64(ft.c.names_full, 0);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"real\"}"), FT_APPLIED);
    struct tagtext tt;
    CHECK(flowtag_text(&ft, a, &tt) && tt.csvlen == 4 && memcmp(tt.csv, "real", 4) == 0);
    /* a full table still lets unknown flows be unknown */
    ft.nnames = FT_MAX_NAMES;   /* as if filled by tags given (empty names match none) */
    CHECK_EQ_INT(apply("{\"flow\": 999, \"tag\": \"new\"}"), FT_NOT_HERE);
    CHECK_EQ_INT(apply("{\"flow\": 10, \"tag\": \"new\"}"), FT_REFUSED);
    flowtag_fini(&ft);
    flow_table_fini(&table);
}

/* A rule's TTL counts from when it came on the worker's clock: from the
 * first packet when it came before any, from the clock's latest advance
 * (live: wall time) when the worker was quiet. */
static void test_rule_ttl_start(void)
{
    CHECK_EQ_INT(flow_table_init(&table, 64, 64, 1000000000000ull, emit, &ft), 0);
    CHECK_EQ_INT(flowtag_init(&ft, &table), 0);
    CHECK_EQ_INT(apply("{\"match\": {\"tcp.dport\": 80}, \"tag\": \"early\", \"ttl\": 600}"),
                 FT_APPLIED);
    struct tagtext tt;
    const uint64_t s = 1000000000ull;
    struct flow *a = new_flow(1, 1001, 80, 1000 * s);   /* first packet, at 1000 s */
    CHECK(flowtag_text(&ft, a, &tt));
    struct flow *b = new_flow(2, 1002, 80, 1590 * s);
    CHECK(flowtag_text(&ft, b, &tt));
    struct flow *c = new_flow(3, 1003, 80, 1601 * s);
    CHECK(!flowtag_text(&ft, c, &tt));
    CHECK_EQ_U64(ft.c.rules_expired, 1);
    /* quiet for an hour: the clock advanced (live), not by packets */
    flowtag_advance(&ft, 5000 * s);
    flowtag_advance(&ft, 0);
    CHECK_EQ_U64(ft.clock, 5000 * s);
    CHECK_EQ_INT(apply("{\"match\": {\"tcp.dport\": 443}, \"tag\": \"late\", \"ttl\": 600}"),
                 FT_APPLIED);
    struct flow *d = new_flow(4, 1004, 443, 5300 * s);
    CHECK(flowtag_text(&ft, d, &tt));
    flowtag_fini(&ft);
    flow_table_fini(&table);
}

/* The same rule sent again only gets a new TTL: no walk over the flows (a
 * flood of one rule costs capture nothing), so a flow untagged by id since
 * keeps its state; the new TTL holds. */
static void test_rule_resent(void)
{
    CHECK_EQ_INT(flow_table_init(&table, 64, 64, 1000000000000ull, emit, &ft), 0);
    CHECK_EQ_INT(flowtag_init(&ft, &table), 0);
    const uint64_t s = 1000000000ull;
    struct flow *a = new_flow(1, 1001, 80, 10 * s);
    struct tagtext tt;
    CHECK_EQ_INT(apply("{\"match\": {\"tcp.dport\": 80}, \"tag\": \"w\", \"ttl\": 5}"),
                 FT_APPLIED);
    CHECK(flowtag_text(&ft, a, &tt));
    CHECK_EQ_INT(apply("{\"flow\": 1, \"untag\": \"w\"}"), FT_APPLIED);
    CHECK_EQ_INT(apply("{\"match\": {\"tcp.dport\": 80}, \"tag\": \"w\", \"ttl\": 100}"),
                 FT_APPLIED);
    CHECK(!flowtag_text(&ft, a, &tt));   /* not walked again */
    CHECK_EQ_INT(ft.nrules, 1);
    CHECK_EQ_U64(ft.c.rule_tagged, 1);
    struct flow *b = new_flow(2, 1002, 80, 50 * s);   /* within the new TTL */
    CHECK(flowtag_text(&ft, b, &tt));
    flowtag_fini(&ft);
    flow_table_fini(&table);
}

/* FLOW_STATE_INTERVAL: flows a command changed are listed for a refresh of
 * their hash at once, also those a rule tags, and beyond the list's 64 they
 * are marked (not silently left out). */
static void test_changed_flows(void)
{
    CHECK_EQ_INT(flow_table_init(&table, 256, 256, 1000000000000ull, emit, &ft), 0);
    CHECK_EQ_INT(flowtag_init(&ft, &table), 0);
    ft.track_state = 1;
    for (int i = 1; i <= 100; i++)
        new_flow((uint64_t)i, (uint16_t)(1000 + i), 80, (uint64_t)i);
    CHECK_EQ_INT(apply("{\"flow\": 7, \"watch\": true}"), FT_APPLIED);
    CHECK_EQ_INT(ft.nchanged, 1);
    CHECK_EQ_U64(ft.changed[0], 7);
    CHECK_EQ_INT(apply("{\"match\": {\"tcp.dport\": 80}, \"tag\": \"all\"}"), FT_APPLIED);
    CHECK_EQ_INT(ft.nchanged, 64);
    CHECK(ft.dirty);
    int listed = 0, marked = 0;
    for (uint64_t id = 1; id <= 100; id++) {
        const struct flow *f = flowtag_find(&ft, id);
        int in_list = 0;
        for (int i = 0; i < ft.nchanged; i++)
            in_list |= ft.changed[i] == id;
        listed += in_list;
        marked += (f->marks & FLOW_STATE_DIRTY) != 0;
        CHECK(in_list || (f->marks & FLOW_STATE_DIRTY));
    }
    CHECK_EQ_INT(marked, 100 - 63);   /* the rule's first 63 fill the list */
    CHECK(listed >= 63);
    flowtag_fini(&ft);
    flow_table_fini(&table);
}

int main(void)
{
    test_parse_ok();
    test_parse_rejects();
    test_flowtag();
    test_names_not_exhausted();
    test_rule_ttl_start();
    test_rule_resent();
    test_changed_flows();
    return test_summary("test-feedback");
}
