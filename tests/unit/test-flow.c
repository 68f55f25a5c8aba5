/* test-flow.c - the flow table: create, lookup and update in both directions
 * (per-direction counters, the client side), idle expiry exactly at the
 * boundary, LRU order, eviction when full, flush, reuse of freed entries,
 * flow ids; then a random sequence checked against a simple model, with the
 * smallest index and a large one; and flows that all hash to one bucket (and
 * some to one tag), spilling over the next buckets of the index. */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "flow.h"
#include "test.h"

#define NS 1000000000ull

/* What the emit callback saw, in order. */
struct ended {
    uint64_t id;
    enum flow_end why;
    uint64_t packets[2], bytes[2];
    uint16_t lo_port;
};

static struct ended log_[4096];
static unsigned nlog;

static void emit(void *ctx, const struct flow *f, enum flow_end why)
{
    (void)ctx;
    if (nlog < sizeof log_ / sizeof log_[0])
        log_[nlog] = (struct ended){f->id, why, {f->packets[0], f->packets[1]},
                                    {f->bytes[0], f->bytes[1]}, f->key.lo_port};
    nlog++;
}

/* A keyed IPv4 TCP packet between 10.0.0.1:port and 10.0.0.2:80; from_lo says
 * whether 10.0.0.1 sent it. */
static struct packet pkt(uint16_t port, int from_lo, uint64_t frame, uint64_t clock,
                         uint32_t wirelen)
{
    struct packet p;
    memset(&p, 0, sizeof p);
    p.key.lo_addr[0] = 10;
    p.key.lo_addr[3] = 1;
    p.key.hi_addr[0] = 10;
    p.key.hi_addr[3] = 2;
    p.key.lo_port = port;
    p.key.hi_port = 80;
    p.key.proto = 6;
    p.key.family = 4;
    p.hash = flow_key_hash(&p.key);
    p.flags = PKT_HAS_KEY | (from_lo ? PKT_SRC_IS_LO : 0);
    p.frame = frame;
    p.clock = clock;
    p.ts = clock + 7;    /* capture time and reader clock differ on purpose */
    p.wirelen = wirelen;
    p.caplen = wirelen;
    return p;
}

/* lookup, else create; then update: what a worker does per packet */
static struct flow *see(struct flow_table *t, const struct packet *p)
{
    flow_table_advance(t, p->clock);
    struct flow *f = flow_lookup(t, p);
    if (!f)
        f = flow_create(t, p);
    if (f)
        flow_update(t, f, p);
    return f;
}

static void test_directions(void)
{
    struct flow_table t;
    CHECK_EQ_INT(flow_table_init(&t, 4, 8, 30 * NS, emit, NULL), 0);
    nlog = 0;
    struct packet syn = pkt(40000, 1, 1, 100, 60);
    CHECK(flow_lookup(&t, &syn) == NULL);
    struct flow *f = flow_create(&t, &syn);
    CHECK(f != NULL);
    CHECK_EQ_U64(f->id, 1);
    CHECK_EQ_U64(f->client_is_lo, 1);
    CHECK_EQ_U64(f->first_ts, 107);
    CHECK_EQ_U64(f->packets[0] + f->packets[1], 0);   /* not counted before update */
    CHECK_EQ_U64(t.active, 1);
    CHECK_EQ_U64(t.created, 1);
    flow_update(&t, f, &syn);
    CHECK_EQ_INT(flow_direction(f, &syn), FLOW_C2S);
    CHECK_EQ_U64(f->packets[FLOW_C2S], 1);
    CHECK_EQ_U64(f->bytes[FLOW_C2S], 60);

    struct packet synack = pkt(40000, 0, 2, 200, 1500);
    CHECK(flow_lookup(&t, &synack) == f);
    CHECK_EQ_INT(flow_direction(f, &synack), FLOW_S2C);
    flow_update(&t, f, &synack);
    struct packet ack = pkt(40000, 1, 3, 300, 52);
    CHECK(see(&t, &ack) == f);
    CHECK_EQ_U64(f->packets[FLOW_C2S], 2);
    CHECK_EQ_U64(f->bytes[FLOW_C2S], 112);
    CHECK_EQ_U64(f->packets[FLOW_S2C], 1);
    CHECK_EQ_U64(f->bytes[FLOW_S2C], 1500);
    CHECK_EQ_U64(f->first_ts, 107);
    CHECK_EQ_U64(f->last_ts, 307);
    CHECK_EQ_U64(f->last_clock, 300);
    CHECK_EQ_U64(f->id, 1);

    /* a flow whose first packet comes from the hi side: that side is the client */
    struct packet from_hi = pkt(50000, 0, 4, 400, 100);
    struct flow *g = see(&t, &from_hi);
    CHECK(g != NULL && g != f);
    CHECK_EQ_U64(g->client_is_lo, 0);
    CHECK_EQ_U64(g->id, 4);
    CHECK_EQ_U64(g->packets[FLOW_C2S], 1);
    CHECK_EQ_U64(g->bytes[FLOW_C2S], 100);
    struct packet reply = pkt(50000, 1, 5, 500, 40);
    CHECK(see(&t, &reply) == g);
    CHECK_EQ_U64(g->packets[FLOW_S2C], 1);
    CHECK_EQ_U64(g->bytes[FLOW_S2C], 40);
    CHECK_EQ_U64(t.active, 2);
    CHECK_EQ_U64(t.created, 2);
    CHECK_EQ_U64(nlog, 0);
    flow_table_fini(&t);
}

static void test_expiry_boundary(void)
{
    struct flow_table t;
    const uint64_t ttl = 30 * NS;
    CHECK_EQ_INT(flow_table_init(&t, 8, 8, ttl, emit, NULL), 0);
    nlog = 0;
    struct packet a = pkt(1, 1, 10, 1000, 60);
    see(&t, &a);
    struct packet b = pkt(2, 1, 11, 2000, 60);
    see(&t, &b);
    flow_table_advance(&t, 1000 + ttl);          /* idle == TTL: stays */
    CHECK_EQ_U64(nlog, 0);
    CHECK(flow_lookup(&t, &a) != NULL);
    flow_table_advance(&t, 1000 + ttl + 1);      /* idle > TTL: ends */
    CHECK_EQ_U64(nlog, 1);
    CHECK_EQ_U64(log_[0].id, 10);
    CHECK_EQ_INT(log_[0].why, FLOW_END_IDLE);
    CHECK_EQ_U64(log_[0].packets[FLOW_C2S], 1);
    CHECK(flow_lookup(&t, &a) == NULL);
    CHECK(flow_lookup(&t, &b) != NULL);
    CHECK_EQ_U64(t.ended[FLOW_END_IDLE], 1);
    CHECK_EQ_U64(t.active, 1);
    flow_table_advance(&t, 2000 + ttl);
    CHECK_EQ_U64(nlog, 1);
    /* a packet refreshes the flow: its idle time restarts */
    struct packet b2 = pkt(2, 0, 12, 2000 + ttl, 60);
    see(&t, &b2);
    flow_table_advance(&t, 2000 + ttl + ttl);
    CHECK_EQ_U64(nlog, 1);
    flow_table_advance(&t, 2000 + 2 * ttl + 1);
    CHECK_EQ_U64(nlog, 2);
    CHECK_EQ_U64(log_[1].id, 11);
    CHECK_EQ_U64(log_[1].packets[FLOW_S2C], 1);
    CHECK_EQ_U64(t.active, 0);
    /* several flows end in one advance, oldest first */
    nlog = 0;
    for (uint16_t i = 0; i < 5; i++) {
        struct packet p = pkt((uint16_t)(100 + i), 1, 100 + i, 10 * NS * (i + 1), 60);
        see(&t, &p);
    }
    flow_table_advance(&t, 30 * NS + ttl + 1);   /* flows at 10, 20, 30 s end */
    CHECK_EQ_U64(nlog, 3);
    CHECK_EQ_U64(log_[0].id, 100);
    CHECK_EQ_U64(log_[1].id, 101);
    CHECK_EQ_U64(log_[2].id, 102);
    CHECK_EQ_U64(t.active, 2);
    flow_table_fini(&t);
}

static void test_lru_and_eviction(void)
{
    for (uint32_t buckets = 1; buckets <= 64; buckets *= 64) {
        struct flow_table t;
        CHECK_EQ_INT(flow_table_init(&t, 3, buckets, 1000 * NS, emit, NULL), 0);
        nlog = 0;
        struct packet p1 = pkt(1, 1, 1, 1, 10), p2 = pkt(2, 1, 2, 2, 10), p3 = pkt(3, 1, 3, 3, 10);
        see(&t, &p1);
        see(&t, &p2);
        see(&t, &p3);
        struct packet p1b = pkt(1, 0, 4, 4, 10);
        see(&t, &p1b);                      /* order now 2, 3, 1 */
        CHECK_EQ_U64(t.used, 3);
        struct packet p4 = pkt(4, 1, 5, 5, 10);
        struct flow *f4 = see(&t, &p4);     /* full: 2 is evicted */
        CHECK(f4 != NULL);
        CHECK_EQ_U64(nlog, 1);
        CHECK_EQ_U64(log_[0].id, 2);
        CHECK_EQ_INT(log_[0].why, FLOW_END_EVICTED);
        CHECK_EQ_U64(t.ended[FLOW_END_EVICTED], 1);
        CHECK(flow_lookup(&t, &p2) == NULL);
        CHECK(flow_lookup(&t, &p1) != NULL);
        CHECK(flow_lookup(&t, &p3) != NULL);
        CHECK(flow_lookup(&t, &p4) == f4);
        CHECK_EQ_U64(f4->id, 5);
        CHECK_EQ_U64(f4->packets[FLOW_C2S], 1);   /* a fresh entry, nothing of flow 2 left */
        CHECK_EQ_U64(f4->packets[FLOW_S2C], 0);
        CHECK_EQ_U64(t.used, 3);
        CHECK_EQ_U64(t.active, 3);
        /* the next eviction takes 3, then 1 */
        struct packet p5 = pkt(5, 1, 6, 6, 10), p6 = pkt(6, 1, 7, 7, 10);
        see(&t, &p5);
        see(&t, &p6);
        CHECK_EQ_U64(nlog, 3);
        CHECK_EQ_U64(log_[1].id, 3);
        CHECK_EQ_U64(log_[2].id, 1);
        CHECK_EQ_U64(log_[2].packets[FLOW_C2S], 1);
        CHECK_EQ_U64(log_[2].packets[FLOW_S2C], 1);
        /* flush: everything, oldest first, with the given reason */
        flow_table_flush(&t, FLOW_END_EOF);
        CHECK_EQ_U64(nlog, 6);
        CHECK_EQ_U64(log_[3].id, 5);
        CHECK_EQ_U64(log_[4].id, 6);
        CHECK_EQ_U64(log_[5].id, 7);
        CHECK_EQ_INT(log_[5].why, FLOW_END_EOF);
        CHECK_EQ_U64(t.ended[FLOW_END_EOF], 3);
        CHECK_EQ_U64(t.active, 0);
        CHECK(flow_lookup(&t, &p4) == NULL);
        CHECK(flow_lookup(&t, &p5) == NULL);
        CHECK(flow_lookup(&t, &p6) == NULL);
        flow_table_flush(&t, FLOW_END_SHUTDOWN);
        CHECK_EQ_U64(nlog, 6);
        /* freed entries are reused: no growth, new ids */
        struct flow *g = see(&t, &p2);
        CHECK(g >= t.flows && g < t.flows + 3);
        CHECK_EQ_U64(g->id, 2);
        CHECK_EQ_U64(g->packets[FLOW_C2S], 1);
        CHECK_EQ_U64(g->bytes[FLOW_C2S], 10);
        struct packet p7 = pkt(7, 0, 99, 99, 10);
        CHECK_EQ_U64(see(&t, &p7)->id, 99);
        CHECK_EQ_U64(t.used, 3);
        CHECK_EQ_U64(t.created, 8);
        CHECK_EQ_U64(t.active, 2);
        flow_table_fini(&t);
    }
}

static void test_edges(void)
{
    struct flow_table t;
    CHECK_EQ_INT(flow_table_init(&t, 0, 0, NS, emit, NULL), 0);
    struct packet p = pkt(1, 1, 1, 1, 1);
    CHECK(flow_create(&t, &p) == NULL);
    CHECK(flow_lookup(&t, &p) == NULL);
    flow_table_flush(&t, FLOW_END_EOF);
    flow_table_fini(&t);
    /* one flow only: each new flow evicts the previous */
    CHECK_EQ_INT(flow_table_init(&t, 1, 1, NS, emit, NULL), 0);
    nlog = 0;
    for (uint16_t i = 1; i <= 10; i++) {
        struct packet q = pkt(i, 1, i, i, 1);
        CHECK(see(&t, &q) == &t.flows[0]);
    }
    CHECK_EQ_U64(nlog, 9);
    CHECK_EQ_U64(log_[8].id, 9);
    flow_table_fini(&t);
    CHECK_STR(flow_end_name(FLOW_END_IDLE), "idle");
    CHECK_STR(flow_end_name(FLOW_END_EOF), "end_of_input");
    CHECK_STR(flow_end_name(FLOW_END_EVICTED), "evicted");
    CHECK_STR(flow_end_name(FLOW_END_SHUTDOWN), "shutdown");
    CHECK_STR(flow_end_name(FLOW_INTERIM), "active_timeout");
    CHECK_STR(flow_end_name(FLOW_START), "start");
    CHECK_STR(flow_end_name((enum flow_end)(FLOW_START + 1)), "?");
}

/* A random walk over 40 ports with a 16-flow table, against a model that
 * keeps each port's last clock, packet count and id. */
#define MODEL_PORTS 40
#define MODEL_MAX 16
static void test_model(uint32_t buckets)
{
    struct flow_table t;
    const uint64_t ttl = 50;
    CHECK_EQ_INT(flow_table_init(&t, MODEL_MAX, buckets, ttl, emit, NULL), 0);
    struct {
        int alive;
        uint64_t last, packets, id;
    } m[MODEL_PORTS + 1];
    memset(m, 0, sizeof m);
    unsigned bad = 0;
    uint64_t clock = 1;
    uint32_t rnd = 12345;
    for (uint64_t frame = 1; frame <= 20000; frame++) {
        rnd = rnd * 1103515245u + 12345u;
        clock += (rnd >> 16) % 4;
        uint16_t port = (uint16_t)(1 + (rnd >> 8) % MODEL_PORTS);
        struct packet p = pkt(port, (int)(rnd & 1), frame, clock, 100);
        nlog = 0;
        /* the model's expectations: expired flows, then maybe one eviction */
        unsigned expect_end = 0;
        for (int i = 1; i <= MODEL_PORTS; i++)
            if (m[i].alive && clock - m[i].last > ttl)
                expect_end++;
        struct flow *f = see(&t, &p);
        for (unsigned e = 0; e < nlog && e < 4096; e++) {
            uint16_t ep = log_[e].lo_port;
            if (!m[ep].alive || log_[e].id != m[ep].id ||
                log_[e].packets[0] + log_[e].packets[1] != m[ep].packets)
                bad++;
            if (log_[e].why == FLOW_END_IDLE) {
                if (clock - m[ep].last <= ttl)
                    bad++;
            } else if (log_[e].why == FLOW_END_EVICTED) {
                for (int i = 1; i <= MODEL_PORTS; i++)   /* the least recently seen */
                    if (i != ep && m[i].alive && m[i].last < m[ep].last)
                        bad++;
            } else {
                bad++;
            }
            m[ep].alive = 0;
        }
        unsigned idle_ended = 0;
        for (unsigned e = 0; e < nlog && e < 4096; e++)
            idle_ended += log_[e].why == FLOW_END_IDLE;
        if (idle_ended != expect_end)
            bad++;
        if (!f) {
            bad++;
            continue;
        }
        if (!m[port].alive) {
            m[port].alive = 1;
            m[port].packets = 0;
            m[port].id = frame;
        }
        m[port].packets++;
        m[port].last = clock;
        if (f->id != m[port].id || f->packets[0] + f->packets[1] != m[port].packets)
            bad++;
        unsigned alive = 0;
        for (int i = 1; i <= MODEL_PORTS; i++)
            alive += m[i].alive;
        if (alive != t.active || alive > MODEL_MAX)
            bad++;
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(t.created, t.active + t.ended[FLOW_END_IDLE] + t.ended[FLOW_END_EVICTED]);
    CHECK(t.ended[FLOW_END_IDLE] > 0);
    CHECK(t.ended[FLOW_END_EVICTED] > 0);
    flow_table_fini(&t);
}

/* flow_update's answer: 1 for a TCP segment whose payload this direction has
 * carried already; a SYN starts the count again (a reused 5-tuple). */
static void test_retransmissions(void)
{
    struct flow_table t;
    CHECK_EQ_INT(flow_table_init(&t, 4, 8, 30 * NS, emit, NULL), 0);
    struct packet p = pkt(40000, 1, 1, 100, 100);
    p.l4_proto = 6;
    p.tcp_flags = 0x02;   /* SYN, seq 1000 */
    p.tcp_seq = 1000;
    struct flow *f = flow_create(&t, &p);
    CHECK_EQ_INT(flow_update(&t, f, &p), 0);
    p.tcp_flags = 0x18;   /* data 1001..1100 */
    p.tcp_seq = 1001;
    p.payload_len = 100;
    CHECK_EQ_INT(flow_update(&t, f, &p), 0);
    CHECK_EQ_INT(flow_update(&t, f, &p), 1);   /* the same again */
    p.tcp_seq = 1051;                            /* half old, half new */
    CHECK_EQ_INT(flow_update(&t, f, &p), 0);
    struct packet back = pkt(40000, 0, 2, 101, 100);  /* the other direction counts apart */
    back.l4_proto = 6;
    back.tcp_seq = 1001;
    back.payload_len = 100;
    CHECK_EQ_INT(flow_update(&t, f, &back), 0);
    p.tcp_flags = 0x02;   /* a new connection on the same 5-tuple, lower ISN */
    p.tcp_seq = 10;
    p.payload_len = 0;
    CHECK_EQ_INT(flow_update(&t, f, &p), 0);
    p.tcp_flags = 0x18;
    p.tcp_seq = 11;
    p.payload_len = 50;
    CHECK_EQ_INT(flow_update(&t, f, &p), 0);
    p.tcp_seq = 0xfffffff0u;   /* sequence numbers wrap: still older than 61 */
    p.payload_len = 16;
    CHECK_EQ_INT(flow_update(&t, f, &p), 1);
    CHECK_EQ_U64(f->packets[FLOW_C2S], 7);
    flow_table_fini(&t);
}

/* The hash whose home bucket is b (the index mixes in a random seed). */
static uint32_t hash_with_home(const struct flow_table *t, uint32_t b)
{
    uint32_t h = 0;
    while (flow_home(t, flow_index_hash(t, h)) != b)
        h++;
    return h;
}

/* 40 flows with one hash (so one home bucket and one tag, told apart by
 * their keys), home the last bucket: 8 stay there, the rest wrap around to
 * buckets 0..3, and the buckets they pass count them. Ending them must
 * leave the index empty, overflow counts included; a lookup must end even
 * when every bucket's count is left non-zero. */
static void test_index_overflow(void)
{
    struct flow_table t;
    CHECK_EQ_INT(flow_table_init(&t, 64, 1, 100 * NS, emit, NULL), 0);
    CHECK_EQ_U64(t.bucket_mask + 1, 16);   /* 128 slots: twice the flows */
    uint32_t last = t.bucket_mask, h = hash_with_home(&t, last);
    struct packet p[40];
    for (int i = 0; i < 40; i++) {
        uint64_t at = i < 20 ? (uint64_t)i + 1 : (uint64_t)i + 50;   /* the first 20 older */
        p[i] = pkt((uint16_t)(1000 + i), 1, (uint64_t)i + 1, at, 60);
        p[i].hash = h;
        CHECK(flow_lookup(&t, &p[i]) == NULL);
        CHECK(see(&t, &p[i]) != NULL);
    }
    CHECK_EQ_U64(t.buckets[last].overflow, 32);
    CHECK_EQ_U64(t.buckets[0].overflow, 24);
    CHECK_EQ_U64(t.buckets[2].overflow, 8);
    CHECK_EQ_U64(t.buckets[3].overflow, 0);   /* the 40 fill buckets 15, 0, 1, 2, 3 */
    CHECK_EQ_U64(t.probe_max, 4);
    for (int i = 0; i < 40; i++) {
        struct flow *f = flow_lookup(&t, &p[i]);
        CHECK(f != NULL && f->key.lo_port == 1000 + i);
    }
    /* the first 20 end by idle time; the others are seen again and stay */
    nlog = 0;
    for (int i = 20; i < 40; i++) {
        p[i].clock = p[i].ts = 100 * NS + 30;
        see(&t, &p[i]);
    }
    CHECK_EQ_U64(nlog, 20);
    for (int i = 0; i < 40; i++) {
        struct flow *f = flow_lookup(&t, &p[i]);
        CHECK(i < 20 ? f == NULL : f != NULL && f->key.lo_port == 1000 + i);
    }
    /* freed slots in the home bucket are taken again first */
    struct packet q = pkt(2000, 1, 99, 100 * NS + 31, 60);
    q.hash = h;
    CHECK(see(&t, &q) != NULL);
    int home = 0;
    for (int s = 0; s < FLOW_BUCKET_SLOTS; s++)
        home += t.buckets[last].idx[s] != 0;
    CHECK(home > 0);
    flow_table_flush(&t, FLOW_END_SHUTDOWN);
    uint64_t left = 0;
    for (uint32_t b = 0; b <= t.bucket_mask; b++) {
        left += t.buckets[b].overflow;
        for (int s = 0; s < FLOW_BUCKET_SLOTS; s++)
            left += t.buckets[b].idx[s];
    }
    CHECK_EQ_U64(left, 0);
    /* counts left behind everywhere (flows that went far, then ended while
     * the ones they passed stayed): the search still ends */
    for (uint32_t b = 0; b <= t.bucket_mask; b++)
        t.buckets[b].overflow = 1;
    struct packet r = pkt(3000, 1, 100, 100 * NS + 32, 60);
    CHECK(flow_lookup(&t, &r) == NULL);
    flow_table_fini(&t);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_directions();
    test_retransmissions();
    test_expiry_boundary();
    test_lru_and_eviction();
    test_edges();
    test_model(1);
    test_model(1024);
    test_index_overflow();
    return test_summary(argv[0]);
}
