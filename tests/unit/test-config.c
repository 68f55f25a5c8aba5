/* test-config.c - config_parse() on strings: the defaults, every keyword's
 * value, fields resolved by name and alias, the error messages (file:line,
 * text) and their count, and the built-in configuration. */
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "config.h"
#include "extract.h"
#include "test.h"

static char *errtext;
static size_t errlen;

/* Parses s as "t.conf"; the messages end up in errtext. */
static struct config *parse(const char *s, int *nerrors)
{
    free(errtext);
    errtext = NULL;
    FILE *errs = open_memstream(&errtext, &errlen);
    *nerrors = -99;
    struct config *c = config_parse("t.conf", s, strlen(s), errs, nerrors);
    fclose(errs);
    return c;
}

/* The number of error lines, and whether one contains want. */
static int err_lines(void)
{
    int n = 0;
    for (const char *p = errtext; p && *p; p++)
        n += *p == '\n';
    return n;
}

#define CHECK_ERR(want)                                                                   \
    do {                                                                                  \
        if (!test_result(errtext && strstr(errtext, want) != NULL, __FILE__, __LINE__,    \
                         "errors contain " #want))                                        \
            fprintf(stderr, "    errors were:\n%s", errtext ? errtext : "(none)\n");      \
    } while (0)

static void test_defaults(void)
{
    int n;
    struct config *c = parse("FILTER_NAME a\nBPF tcp\n", &n);
    CHECK(c != NULL);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_U64(errlen, 0);
    if (!c)
        return;
    CHECK_STR(c->path, "t.conf");
    CHECK_EQ_U64(c->pkt_ttl, 30);
    CHECK_EQ_U64(c->time_stats, 10);
    CHECK_EQ_U64(c->max_flows, 1048576);
    CHECK_EQ_U64(c->flow_table_size, 0);
    CHECK_EQ_U64(c->workers, 0);
    CHECK(c->output == NULL);
    CHECK_EQ_U64(c->nifnames, 0);
    CHECK(c->redis_sock == NULL && c->redis_host == NULL && c->redis_auth == NULL);
    CHECK_EQ_U64(c->redis_port, 6379);
    CHECK_EQ_U64(c->redis_db, 0);
    CHECK_EQ_U64(c->redis_pipeline, 50);
    CHECK_EQ_INT(c->redis_line, 0);
    CHECK_EQ_INT(c->nfilters, 1);
    CHECK_STR(c->filter[0].name, "a");
    CHECK_STR(c->filter[0].bpf, "tcp");
    CHECK_EQ_INT(c->filter[0].line, 1);
    CHECK_EQ_INT(c->filter[0].nfields, 0);
    CHECK_EQ_INT(c->filter[0].ntaps, 0);
    CHECK_STR(c->filter[0].redis_channel, "a");
    CHECK_EQ_INT(c->filter[0].redis_expire, 300);
    CHECK_EQ_INT(c->filter[0].uses_http, 0);
    config_free(c);
}

static void test_every_keyword(void)
{
    int n;
    struct config *c = parse("# comment\n"
                             "   # indented comment\n"
                             "\n"
                             "IFNAME ix0\r\n"
                             "IFNAME\tix1\n"
                             "TIME_STATS 0\n"
                             "PKT_TTL 1000000000\n"
                             "MAX_FLOWS 1000\n"
                             "FLOW_TABLE_SIZE 4096\n"
                             "WORKERS 4\n"
                             "OUTPUT /tmp/out file.json\n"
                             "REDIS_SOCK /tmp/redis.sock\n"
                             "REDIS_PORT 6380\n"
                             "REDIS_AUTH s3cret\n"
                             "REDIS_DB 2\n"
                             "REDIS_PIPELINE 100000\n"
                             "SESSION_CHANNEL flows\n"
                             "FILTER_NAME http\n"
                             "  BPF   tcp dst port 80   \n"
                             "FIELDS ip.src http.request.uri\ttcp.dstport  http.cookie\n"
                             "FIELDS dns.id\n"
                             "TAP_IF tun0\n"
                             "TAP_IF tun14\n"
                             "REDIS_CHANNEL web\n"
                             "REDIS_EXPIRE 0\n"
                             "FILTER_NAME dns-1.a:b_c\n"
                             "BPF udp port 53\n",
                             &n);
    CHECK(c != NULL);
    CHECK_EQ_INT(n, 0);
    if (!c) {
        fprintf(stderr, "%s", errtext);
        return;
    }
    CHECK_EQ_INT(c->nifnames, 2);
    CHECK_STR(c->ifname[0], "ix0");
    CHECK_STR(c->ifname[1], "ix1");
    CHECK_EQ_INT(c->ifname_line, 4);
    CHECK_EQ_U64(c->time_stats, 0);
    CHECK_EQ_U64(c->pkt_ttl, 1000000000);
    CHECK_EQ_U64(c->max_flows, 1000);
    CHECK_EQ_U64(c->flow_table_size, 4096);
    CHECK_EQ_U64(c->workers, 4);
    CHECK_STR(c->output, "/tmp/out file.json");
    CHECK_STR(c->redis_sock, "/tmp/redis.sock");
    CHECK_EQ_U64(c->redis_port, 6380);
    CHECK_STR(c->redis_auth, "s3cret");
    CHECK_EQ_U64(c->redis_db, 2);
    CHECK_EQ_U64(c->redis_pipeline, 100000);
    CHECK_STR(c->session_channel, "flows");
    CHECK_EQ_INT(c->redis_line, 12);
    CHECK_EQ_INT(c->nfilters, 2);
    const struct filter_conf *f = &c->filter[0];
    CHECK_STR(f->name, "http");
    CHECK_EQ_INT(f->line, 18);
    CHECK_STR(f->bpf, "tcp dst port 80");
    CHECK_EQ_INT(f->nfields, 5);
    CHECK_EQ_INT(f->field_id[0], FIELD_IP_SRC);
    CHECK_EQ_INT(f->field_id[1], FIELD_HTTP_URL);
    CHECK_EQ_INT(f->field_id[2], FIELD_TCP_DPORT);
    CHECK_EQ_INT(f->field_id[3], FIELD_HTTP_COOKIE);
    CHECK_EQ_INT(f->field_id[4], FIELD_DNS_ID);
    CHECK_STR(f->field_key[1], "http.request.uri");   /* as written: the record key */
    CHECK_STR(f->field_key[2], "tcp.dstport");
    CHECK_EQ_INT(f->uses_http, 1);
    CHECK_EQ_INT(f->ntaps, 2);
    CHECK_STR(f->tap_if[0], "tun0");
    CHECK_STR(f->tap_if[1], "tun14");
    CHECK_EQ_INT(f->tap_line, 22);
    CHECK_STR(f->redis_channel, "web");
    CHECK_EQ_INT(f->redis_expire, 0);
    CHECK_STR(c->filter[1].name, "dns-1.a:b_c");
    CHECK_STR(c->filter[1].redis_channel, "dns-1.a:b_c");
    CHECK_EQ_INT(c->filter[1].uses_http, 0);
    config_free(c);
}

static void test_errors(void)
{
    int n;
    /* three errors, each with its file:line and text; parsing goes on */
    struct config *c = parse("BOGUS 1\n"
                             "FILTER_NAME a\n"
                             "BPF tcp\n"
                             "PKT_TTL 0\n"
                             "FIELDS ip.src nope\n",
                             &n);
    CHECK(c == NULL);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(err_lines(), 3);
    CHECK_ERR("t.conf:1: unknown keyword: 'BOGUS'\n");
    CHECK_ERR("t.conf:4: PKT_TTL needs a whole number from 1 to 1000000000: '0'\n");
    CHECK_ERR("t.conf:5: filter a: unknown field: 'nope'\n");

    c = parse("", &n);
    CHECK(c == NULL);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:0: no FILTER_NAME");
    c = parse("# only a comment\n", &n);
    CHECK(c == NULL);
    CHECK_EQ_INT(n, 1);

    c = parse("BPF tcp\nFILTER_NAME a\nBPF udp\n", &n);
    CHECK(c == NULL);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:1: BPF belongs to a filter");

    c = parse("FILTER_NAME a\nBPF tcp and\n", &n);
    CHECK(c == NULL);
    CHECK_EQ_INT(n, 1);   /* one error: the filter has a BPF line, a bad one */
    CHECK_ERR("t.conf:2: filter a: bad BPF expression: ");
    CHECK_ERR("syntax error");
    CHECK(errtext && !strstr(errtext, "no BPF line"));

    c = parse("FILTER_NAME a\nBPF tcp\nBPF udp\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:3: filter a already has a BPF expression");

    c = parse("FILTER_NAME a\nBPF tcp\nFIELDS ip.src ipv6.src\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:3: filter a: field listed twice: 'ipv6.src'");

    c = parse("FILTER_NAME a\nBPF tcp\nFILTER_NAME a\nBPF udp\n", &n);
    CHECK_EQ_INT(n, 1);   /* the duplicate's own BPF line is no second error */
    CHECK_ERR("t.conf:3: filter already defined at line 1: 'a'");

    c = parse("FILTER_NAME a b\nBPF tcp\n", &n);
    CHECK(n >= 1);
    CHECK_ERR("t.conf:1: a filter name uses letters");

    c = parse("FILTER_NAME a\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:1: filter has no BPF line (nor APP): 'a'");

    static const char *const bad_numbers[] = {"abc", "-1", "+5", "30s", "0x10", "4294967296",
                                              "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_numbers / sizeof bad_numbers[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "FILTER_NAME a\nBPF tcp\nPKT_TTL %s\n", bad_numbers[i]);
        c = parse(text, &n);
        CHECK(c == NULL);
        CHECK_EQ_INT(n, 1);
        CHECK_ERR("t.conf:3: PKT_TTL needs a whole number");
    }
    c = parse("FILTER_NAME a\nBPF tcp\nTIME_STATS 86401\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:3: TIME_STATS needs a whole number from 0 to 86400: '86401'");
    c = parse("FILTER_NAME a\nBPF tcp\nTIME_STATS 86400\n", &n);
    CHECK(c != NULL);
    config_free(c);

    c = parse("REDIS_SOCK /tmp/r.sock\nREDIS_HOST 127.0.0.1\nFILTER_NAME a\nBPF tcp\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:1: REDIS_SOCK and REDIS_HOST are exclusive");

    c = parse("IFNAME abcdefghijklmnop\nFILTER_NAME a\nBPF tcp\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:1: IFNAME needs an interface name of 1 to 15 characters: 'abcdefghijklmnop'");
    c = parse("IFNAME abcdefghijklmno\nFILTER_NAME a\nBPF tcp\n", &n);
    CHECK(c != NULL);
    config_free(c);

    c = parse("PKT_TTL\nFILTER_NAME a\nBPF tcp\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:1: PKT_TTL needs a value: 'PKT_TTL'");

    c = parse("FILTER_NAME a\nBPF tcp\nTAP_IF tun/0\n", &n);
    CHECK_EQ_INT(n, 1);
    CHECK_ERR("t.conf:3: TAP_IF needs an interface name");

    c = parse("FILTER_NAME a\nBPF tcp\nREDIS_PORT 0\nREDIS_PORT 65536\n", &n);
    CHECK_EQ_INT(n, 2);

    c = parse("FILTER_NAME a\nBPF tcp\nWORKERS 65\n", &n);
    CHECK_EQ_INT(n, 1);

}

/* A NUL inside the text is reported, not silently cut. */
static void test_nul(void)
{
    static const char text[] = "FILTER_NAME a\nBPF tcp\0 and udp\n";
    free(errtext);
    errtext = NULL;
    FILE *errs = open_memstream(&errtext, &errlen);
    int n = 0;
    struct config *c = config_parse("t.conf", text, sizeof text - 1, errs, &n);
    fclose(errs);
    CHECK(c == NULL);
    CHECK(n >= 1);
    CHECK_ERR("t.conf:2: NUL byte in the line");
}

/* Without an error stream the count is all there is. */
static void test_no_errs_stream(void)
{
    int n = 0;
    static const char text[] = "X\nY\nZ\nFILTER_NAME a\nBPF tcp\n";
    CHECK(config_parse("t.conf", text, sizeof text - 1, NULL, &n) == NULL);
    CHECK_EQ_INT(n, 3);
}

/* PROBE_NAME as given; without it, none for one Redis (records as they
 * were) and the host name's first label for a cluster. */
static void test_probe_name(void)
{
    /* the Redis line; the name wanted, NULL: the host name's first label */
    static const struct { const char *lines, *want; } cases[] = {
        {"PROBE_NAME edge-1.lab\nREDIS_HOST h\n", "edge-1.lab"},
        {"REDIS_HOST h\n", ""},
        {"REDIS_CLUSTER h:7000\n", NULL},
    };
    struct utsname u;
    CHECK(uname(&u) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n;
        char text[256];
        snprintf(text, sizeof text, "%sFILTER_NAME a\nBPF tcp\n", cases[i].lines);
        struct config *c = parse(text, &n);
        CHECK(c != NULL);
        if (c && cases[i].want) {
            CHECK_STR(c->probe_name, cases[i].want);
        } else if (c) {
            size_t len = strlen(c->probe_name);
            CHECK(len > 0 && strncmp(c->probe_name, u.nodename, len) == 0 &&
                  (u.nodename[len] == 0 || u.nodename[len] == '.'));
        }
        config_free(c);
    }
}

static void test_default_config(void)
{
    struct config *c = config_default();
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->path, "<built-in>");
    CHECK_EQ_INT(c->nfilters, 3);
    CHECK_STR(c->filter[0].name, "http");
    CHECK_STR(c->filter[1].name, "dns");
    CHECK_STR(c->filter[2].name, "tls");
    CHECK_EQ_INT(c->filter[0].uses_http, 1);
    CHECK_EQ_INT(c->filter[0].nfields, 11);
    CHECK_EQ_INT(c->filter[2].field_id[4], FIELD_TLS_SNI);
    for (int i = 0; i < c->nfilters; i++)
        CHECK(c->filter[i].bpf != NULL && c->filter[i].nfields > 0);
    CHECK_EQ_U64(c->pkt_ttl, 30);
    CHECK_EQ_U64(c->time_stats, 10);
    config_free(c);
    config_free(NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_defaults();
    test_every_keyword();
    test_probe_name();
    test_errors();
    test_nul();
    test_no_errs_stream();
    test_default_config();
    free(errtext);
    return test_summary(argv[0]);
}
