/* test-names.c - the live page's top names: counts per name over the last
 * minute (names age out slot by slot), the bounded table keeping a heavy
 * name when one-off names fill it and never counting a name more than it
 * was seen, hostile names escaped in the JSON, and
 * the rings' positions across many drains. Samples are put in a ring as a
 * worker would. */
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "outbuf.h"
#include "test.h"

static struct name_ring *ring_new(void)
{
    struct name_ring *r = aligned_alloc(64, sizeof *r);
    memset(r, 0, sizeof *r);
    return r;
}

/* What names_sample does once a name is taken from a record. */
static void put(struct name_ring *r, enum name_kind k, const char *name, int times)
{
    for (int i = 0; i < times; i++) {
        struct name_sample *s = &r->slot[r->head % NAME_RING];
        s->kind = (uint8_t)k;
        s->len = (uint8_t)strlen(name);
        memcpy(s->text, name, s->len);
        __atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
        r->sampled++;
    }
}

/* The top list of a kind as "name=count name=count". */
static const char *top(const struct top_names *t, enum name_kind k)
{
    static char out[2048];
    const struct top_entry *list[TOP_SHOWN];
    int n = top_names_list(t, k, list);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%.*s=%u", i ? " " : "",
                                list[i]->len, list[i]->text, list[i]->total);
    return out;
}

static void test_counts_and_order(void)
{
    static struct top_names t;
    struct name_ring *r = ring_new();
    top_names_init(&t, 0);
    put(r, NAME_HTTP_HOST, "b.test", 1);
    put(r, NAME_HTTP_HOST, "a.test", 3);
    put(r, NAME_HTTP_HOST, "c.test", 2);
    put(r, NAME_HTTP_HOST, "d.test", 2);   /* ties: by name */
    put(r, NAME_DNS_QUERY, "a.test", 7);   /* kinds apart */
    top_names_drain(&t, &r, 1, 0.5);
    CHECK_STR(top(&t, NAME_HTTP_HOST), "a.test=3 c.test=2 d.test=2 b.test=1");
    CHECK_STR(top(&t, NAME_DNS_QUERY), "a.test=7");
    CHECK_STR(top(&t, NAME_TLS_SNI), "");
    CHECK_EQ_U64(t.sampled, 15);
    CHECK_EQ_U64(r->tail, r->head);
    free(r);
}

static void test_last_minute_only(void)
{
    static struct top_names t;
    struct name_ring *r = ring_new();
    top_names_init(&t, 0);
    put(r, NAME_TLS_SNI, "old.test", 5);
    top_names_drain(&t, &r, 1, 1);
    put(r, NAME_TLS_SNI, "new.test", 2);
    top_names_drain(&t, &r, 1, 15);        /* the second 10-s slot */
    CHECK_STR(top(&t, NAME_TLS_SNI), "old.test=5 new.test=2");
    top_names_drain(&t, &r, 1, 59.9);
    CHECK_STR(top(&t, NAME_TLS_SNI), "old.test=5 new.test=2");
    top_names_drain(&t, &r, 1, 60);        /* the first slot leaves the window */
    CHECK_STR(top(&t, NAME_TLS_SNI), "new.test=2");
    put(r, NAME_TLS_SNI, "new.test", 1);
    top_names_drain(&t, &r, 1, 65);
    CHECK_STR(top(&t, NAME_TLS_SNI), "new.test=3");
    top_names_drain(&t, &r, 1, 500);       /* a long pause: everything aged */
    CHECK_STR(top(&t, NAME_TLS_SNI), "");
    put(r, NAME_TLS_SNI, "later.test", 1);
    top_names_drain(&t, &r, 1, 501);
    CHECK_STR(top(&t, NAME_TLS_SNI), "later.test=1");
    free(r);
}

/* One-off names that replace one another never outrank a name seen twice. */
static void test_one_offs_stay_small(void)
{
    static struct top_names t;
    struct name_ring *r = ring_new();
    top_names_init(&t, 0);
    char name[32];
    for (int i = 0; i < TOP_ENTRIES * 8; i++) {
        snprintf(name, sizeof name, "n%d.test", i);
        put(r, NAME_TLS_SNI, name, 1);
        if (i % 1000 == 999)
            top_names_drain(&t, &r, 1, 1);
    }
    put(r, NAME_TLS_SNI, "twice.test", 2);
    top_names_drain(&t, &r, 1, 2);
    const struct top_entry *list[TOP_SHOWN];
    CHECK_EQ_INT(top_names_list(&t, NAME_TLS_SNI, list), TOP_SHOWN);
    CHECK_MEM_STR(list[0]->text, list[0]->len, "twice.test");
    CHECK_EQ_U64(list[0]->total, 2);
    CHECK_EQ_U64(list[1]->total, 1);
    free(r);
}

static void test_full_table_keeps_heavy_names(void)
{
    static struct top_names t;
    struct name_ring *r = ring_new();
    top_names_init(&t, 0);
    put(r, NAME_DNS_QUERY, "heavy.test", 50);
    top_names_drain(&t, &r, 1, 0);
    char name[32];
    /* four times the table's size in one-off names, drained as they come */
    for (int i = 0; i < TOP_ENTRIES * 4; i++) {
        snprintf(name, sizeof name, "once%d.test", i);
        put(r, NAME_DNS_QUERY, name, 1);
        if (i % 1000 == 999)
            top_names_drain(&t, &r, 1, 1);
    }
    put(r, NAME_DNS_QUERY, "heavy.test", 1);
    top_names_drain(&t, &r, 1, 2);
    const struct top_entry *list[TOP_SHOWN];
    int n = top_names_list(&t, NAME_DNS_QUERY, list);
    CHECK_EQ_INT(n, TOP_SHOWN);
    CHECK_MEM_STR(list[0]->text, list[0]->len, "heavy.test");
    CHECK_EQ_U64(list[0]->total, 51);
    CHECK_EQ_INT(t.kind[NAME_DNS_QUERY].used, TOP_ENTRIES);
    /* every entry is reachable through its chain, and the free list is empty */
    int chained = 0;
    for (int b = 0; b < TOP_ENTRIES * 2; b++)
        for (int i = t.kind[NAME_DNS_QUERY].bucket[b]; i >= 0; i = t.kind[NAME_DNS_QUERY].e[i].next)
            chained++;
    CHECK_EQ_INT(chained, TOP_ENTRIES);
    CHECK_EQ_INT(t.kind[NAME_DNS_QUERY].free_list, -1);
    /* after a minute the one-offs are gone and the table takes new names */
    top_names_drain(&t, &r, 1, 70);
    CHECK_EQ_INT(t.kind[NAME_DNS_QUERY].used, 0);
    put(r, NAME_DNS_QUERY, "fresh.test", 2);
    top_names_drain(&t, &r, 1, 71);
    CHECK_STR(top(&t, NAME_DNS_QUERY), "fresh.test=2");
    free(r);
}

static void test_json_escapes_hostile_names(void)
{
    static struct top_names t;
    struct name_ring *r = ring_new();
    top_names_init(&t, 0);
    put(r, NAME_HTTP_HOST, "a\"b\\c<\x01", 1);
    r->unsampled = 4;
    top_names_drain(&t, &r, 1, 1);
    struct outbuf b;
    CHECK(outbuf_init(&b, NULL) == 0);
    CHECK(top_names_json(&b, &t) == 0);
    CHECK_MEM_STR(b.buf, b.len,
                  "{\"window\":60,\"sampled\":1,\"unsampled\":4,\"names\":{\"http.host\":"
                  "[[\"a\\\"b\\\\c<\\u0001\",1]],\"tls.sni\":[],\"dns.qry.name\":[]}}");
    free(b.buf);
    free(r);
}

static void test_rings_wrap(void)
{
    static struct top_names t;
    struct name_ring *r[2] = {ring_new(), ring_new()};
    top_names_init(&t, 0);
    r[1]->head = r[1]->tail = UINT32_MAX - 5;   /* positions wrap past 2^32 */
    for (int round = 0; round < 10; round++) {
        put(r[0], NAME_HTTP_HOST, "x.test", NAME_RING);   /* a full ring each time */
        put(r[1], NAME_HTTP_HOST, "y.test", 3);
        top_names_drain(&t, r, 2, 1);
    }
    char want[64];
    snprintf(want, sizeof want, "x.test=%d y.test=30", NAME_RING * 10);
    CHECK_STR(top(&t, NAME_HTTP_HOST), want);
    CHECK_EQ_U64(t.sampled, NAME_RING * 10 + 30);
    free(r[0]);
    free(r[1]);
}

int main(void)
{
    test_counts_and_order();
    test_last_minute_only();
    test_full_table_keeps_heavy_names();
    test_one_offs_stay_small();
    test_json_escapes_hostile_names();
    test_rings_wrap();
    return test_summary("test-names");
}
