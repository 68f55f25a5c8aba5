/* test-app.c - CLASSIFY's classifier (app.c): names checked and printed as
 * ndpiReader does, a DNS query and its answer named and made final at the
 * answer, the pool refusing a flow when full and taking it back, host names
 * shared between flows and let go with the last one, and a flow given up
 * at its end. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "decode.h"
#include "outbuf.h"
#include "packet.h"
#include "test.h"

static void test_names(void)
{
    char err[160], buf[APP_NAME_MAX];
    uint16_t m, a;
    CHECK(app_names_init(err, sizeof err) == 0);
    CHECK(app_lookup("TLS.YouTube", &m, &a) == 0 && m != 0 && a != 0);
    CHECK(app_pair_name(m, a, buf, sizeof buf) == strlen("TLS.YouTube"));
    CHECK_STR(buf, "TLS.YouTube");
    CHECK(app_lookup("dns", &m, &a) == 0 && m == 0 && a != 0);   /* any case */
    app_pair_name(0, a, buf, sizeof buf);
    CHECK_STR(buf, "DNS");
    CHECK(app_lookup("Z39.50", &m, &a) == 0 && m == 0);          /* a dot of its own */
    CHECK(app_lookup("Unknown", &m, &a) == 0 && m == 0 && a == 0);
    CHECK(app_lookup("NoSuchApp", &m, &a) == -1);
    CHECK(app_lookup("TLS.Nope", &m, &a) == -1);
    CHECK(app_lookup("", &m, &a) == -1);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(app_lookup(longname, &m, &a) == -1);
}

/* An Ethernet/IPv4/UDP DNS packet for www.wikipedia.org, query or answer. */
static size_t dns_frame(uint8_t *f, int answer)
{
    static const uint8_t name[] = "\3www\11wikipedia\3org";
    uint8_t dns[128];
    size_t n = 0;
    uint8_t hdr[12] = {0x12, 0x34, answer ? 0x81 : 0x01, answer ? 0x80 : 0x00, 0, 1, 0, answer ? 1 : 0, 0, 0, 0, 0};
    memcpy(dns, hdr, 12);
    n = 12;
    memcpy(dns + n, name, sizeof name);   /* with the root's 0 */
    n += sizeof name;
    uint8_t q[4] = {0, 1, 0, 1};
    memcpy(dns + n, q, 4);
    n += 4;
    if (answer) {
        uint8_t rr[16] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 7};
        memcpy(dns + n, rr, 16);
        n += 16;
    }
    uint8_t eth[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00};
    memcpy(f, eth, 14);
    uint8_t *ip = f + 14, *udp = ip + 20;
    size_t len = 20 + 8 + n;
    uint8_t iph[20] = {0x45, 0, (uint8_t)(len >> 8), (uint8_t)len, 0, 1, 0, 0, 64, 17, 0, 0,
                       198, 18, 0, 1, 198, 18, 0, 53};
    if (answer) {   /* the other way round */
        iph[15] = 53;
        iph[19] = 1;
    }
    memcpy(ip, iph, 20);
    uint16_t sport = answer ? 53 : 40000, dport = answer ? 40000 : 53;
    uint8_t uh[8] = {(uint8_t)(sport >> 8), (uint8_t)sport, (uint8_t)(dport >> 8), (uint8_t)dport,
                     (uint8_t)((8 + n) >> 8), (uint8_t)(8 + n), 0, 0};
    memcpy(udp, uh, 8);
    memcpy(udp + 8, dns, n);
    return 14 + len;
}

static void packet_of(struct packet *p, const uint8_t *f, size_t len, uint64_t ms)
{
    memset(p, 0, sizeof *p);
    p->data = f;
    p->caplen = p->wirelen = (uint32_t)len;
    p->ts = p->clock = ms * 1000000;
    CHECK(decode_packet(p, 1) < DECODE_OK_COUNT);
}

static void test_dns_flow(void)
{
    char err[160];
    struct app_classifier *a = app_new(4, 2, err, sizeof err);
    CHECK(a != NULL);
    uint8_t q[256], r[256];
    struct packet pq, pr;
    packet_of(&pq, q, dns_frame(q, 0), 1000);
    packet_of(&pr, r, dns_frame(r, 1), 1002);

    app_flow_begin(a, 0);
    CHECK(app_result_of(a, 0)->state == APP_CLASSIFYING);
    CHECK(app_packet(a, 0, &pq) == 0);   /* named, but the answer is still to come */
    CHECK(app_packet(a, 0, &pr) == 1);   /* final at the answer */
    const struct app_result *res = app_result_of(a, 0);
    CHECK(res->state == APP_DONE);
    char name[APP_NAME_MAX];
    app_name(res, name, sizeof name);
    CHECK_STR(name, "DNS.Wikipedia");
    CHECK(app_packet(a, 0, &pq) == 0);   /* nothing more once final */

    struct outbuf b;
    CHECK(outbuf_init(&b, NULL) == 0);
    CHECK(app_json(&b, a, 0) == 0);
    CHECK_MEM_STR(b.buf, b.len, ",\"app\":\"DNS.Wikipedia\",\"category\":\"Web\","
                                "\"confidence\":\"DPI\",\"app_host\":\"www.wikipedia.org\"");

    /* a second flow to the same name shares its host entry */
    app_flow_begin(a, 1);
    app_packet(a, 1, &pq);
    app_packet(a, 1, &pr);
    CHECK(app_result_of(a, 1)->ref == app_result_of(a, 0)->ref);

    /* both pool entries are free again: two more flows fit, a third does not */
    app_flow_begin(a, 2);
    app_flow_begin(a, 3);
    app_flow_release(a, 0);
    app_flow_begin(a, 0);
    CHECK(app_result_of(a, 0)->state == APP_POOL_FULL);
    b.len = 0;
    CHECK(app_json(&b, a, 0) == 0);
    CHECK_MEM_STR(b.buf, b.len, ",\"app\":null,\"app_state\":\"pool_full\"");
    b.len = 0;
    CHECK(app_json(&b, a, 2) == 0);   /* still being classified */
    CHECK_MEM_STR(b.buf, b.len, ",\"app\":null");

    /* a flow that ends first is given up with nDPI's guess (port 53: DNS) */
    app_packet(a, 2, &pq);
    app_flow_end(a, 2);
    app_name(app_result_of(a, 2), name, sizeof name);
    CHECK(app_result_of(a, 2)->state == APP_DONE);
    CHECK(strncmp(name, "DNS", 3) == 0);
    /* an empty flow given up: Unknown, counted */
    app_flow_end(a, 3);
    app_name(app_result_of(a, 3), name, sizeof name);
    CHECK_STR(name, "Unknown");

    const struct app_counters *c = app_counters(a);
    CHECK(c->classified == 3 && c->unknown == 1 && c->pool_full == 1);
    uint64_t sum = 0;
    for (int i = 0; i < APP_COUNT_SLOTS; i++)
        sum += c->name_key[i] ? c->name_flows[i] : 0;
    CHECK(sum == 4);
    for (uint32_t s = 0; s < 4; s++)
        app_flow_release(a, s);
    free(b.buf);
    app_free(a);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_names();
    test_dns_flow();
    return test_summary(argv[0]);
}
