/* test-defrag.c - IP reassembly: datagrams cut into fragments (IPv4, and
 * IPv6 with an extension header before the fragment header) come back
 * byte for byte as the frame they were before cutting, in order, reversed
 * and shuffled; duplicates, conflicting duplicates, overlaps, a moved end,
 * misaligned fragments, the size limit, the memcap, the datagram cap and
 * the timeout, each with its counter; the accounting identity after every
 * step; and a random interleaving of many datagrams against the originals. */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "defrag.h"
#include "test.h"

#define NS 1000000000ull

static uint8_t outbuf[DEFRAG_FRAME_MAX];

/* An Ethernet frame of a whole UDP datagram: IPv4 (family 4) or IPv6 with
 * a hop-by-hop header; payload bytes follow from seed. */
static size_t whole_frame(uint8_t *f, int family, uint16_t ident, uint32_t payload, uint8_t seed)
{
    memset(f, 0, 14);
    f[12] = family == 4 ? 0x08 : 0x86;
    f[13] = family == 4 ? 0x00 : 0xdd;
    uint8_t *ip = f + 14, *udp;
    uint32_t ulen = 8 + payload;
    if (family == 4) {
        memset(ip, 0, 20);
        ip[0] = 0x45;
        ip[2] = (uint8_t)((20 + ulen) >> 8), ip[3] = (uint8_t)(20 + ulen);
        ip[4] = (uint8_t)(ident >> 8), ip[5] = (uint8_t)ident;
        ip[8] = 64, ip[9] = 17;
        memcpy(ip + 12, "\xc6\x12\x00\x01\xc6\x12\x00\x02", 8);   /* 198.18.0.1 -> .2 */
        uint32_t sum = 0;
        for (int i = 0; i < 20; i += 2)
            sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        ip[10] = (uint8_t)(~sum >> 8), ip[11] = (uint8_t)~sum;
        udp = ip + 20;
    } else {
        memset(ip, 0, 48);
        ip[0] = 0x60;
        uint32_t plen = 8 + ulen;   /* hop-by-hop + UDP */
        ip[4] = (uint8_t)(plen >> 8), ip[5] = (uint8_t)plen;
        ip[6] = 0, ip[7] = 64;      /* next: hop-by-hop */
        ip[8] = 0x20, ip[9] = 0x01, ip[10] = 0x0d, ip[11] = 0xb8, ip[23] = 1;
        ip[24] = 0x20, ip[25] = 0x01, ip[26] = 0x0d, ip[27] = 0xb8, ip[39] = 2;
        ip[40] = 17;                /* hop-by-hop: next UDP, length 0 (8 bytes), PadN */
        ip[42] = 1, ip[43] = 4;
        udp = ip + 48;
    }
    udp[0] = 0x30, udp[1] = 0x39, udp[2] = 0, udp[3] = 53;
    udp[4] = (uint8_t)(ulen >> 8), udp[5] = (uint8_t)ulen;
    for (uint32_t i = 0; i < payload; i++)
        udp[8 + i] = (uint8_t)(seed + i * 7);
    return (size_t)(udp - f) + ulen;
}

/* The fragment of whole (len bytes) holding IP payload [start, start+n). */
static size_t cut(uint8_t *to, const uint8_t *whole, size_t len, int family, uint32_t ident,
                  uint32_t start, uint32_t n, int more)
{
    uint32_t hdr = family == 4 ? 14 + 20 : 14 + 48;   /* IPv6: up to the fragment header */
    memcpy(to, whole, hdr);
    uint8_t *ip = to + 14, *data;
    if (family == 4) {
        ip[2] = (uint8_t)((20 + n) >> 8), ip[3] = (uint8_t)(20 + n);
        uint16_t fo = (uint16_t)(start / 8 | (more ? 0x2000 : 0));
        ip[6] = (uint8_t)(fo >> 8), ip[7] = (uint8_t)fo;
        data = to + hdr;
    } else {
        uint8_t *fh = to + hdr;
        ip[4] = (uint8_t)((8 + 8 + n) >> 8), ip[5] = (uint8_t)(8 + 8 + n);
        fh[0] = 17, fh[1] = 0;   /* next header: UDP */
        ip[40] = 44;             /* hop-by-hop now says: fragment header */
        uint16_t fo = (uint16_t)(start | (more ? 1 : 0));
        fh[2] = (uint8_t)(fo >> 8), fh[3] = (uint8_t)fo;
        fh[4] = (uint8_t)(ident >> 24), fh[5] = (uint8_t)(ident >> 16);
        fh[6] = (uint8_t)(ident >> 8), fh[7] = (uint8_t)ident;
        data = fh + 8;
    }
    memcpy(data, whole + hdr + start, n);
    (void)len;
    return (size_t)(data - to) + n;
}

static struct packet frame(const uint8_t *buf, size_t len, uint64_t n, uint64_t clock)
{
    struct packet p;
    memset(&p, 0, sizeof p);
    p.data = buf;
    p.caplen = p.wirelen = (uint32_t)len;
    p.frame = n;
    p.ts = p.clock = clock;
    decode_packet(&p, LINKTYPE_ETHERNET);
    return p;
}

static int accounted(const struct defrag *d)
{
    const struct defrag_counters *c = defrag_counters(d);
    return c->fragments == c->reassembled + c->duplicates + c->timeout + c->overlap +
                               c->too_big + c->no_room + c->invalid + c->held;
}

static struct defrag_limits lim = {1u << 20, 64, 65535, 30 * NS};

struct piece {
    uint8_t buf[2048];
    size_t len;
};

/* Cuts a datagram of payload bytes in pieces of size (the last smaller). */
static int pieces(struct piece *pc, const uint8_t *whole, size_t len, int family, uint32_t ident,
                  uint32_t ip_payload, uint32_t size)
{
    int n = 0;
    for (uint32_t s = 0; s < ip_payload; s += size) {
        uint32_t k = ip_payload - s < size ? ip_payload - s : size;
        pc[n].len = cut(pc[n].buf, whole, len, family, ident, s, k, s + k < ip_payload);
        n++;
    }
    return n;
}

static void test_orders(int family)
{
    static uint8_t whole[4096];
    static struct piece pc[16];
    size_t len = whole_frame(whole, family, 77, 3000, 1);
    uint32_t ip_payload = (uint32_t)len - (family == 4 ? 34 : 62);
    int n = pieces(pc, whole, len, family, 77, ip_payload, 1232);
    CHECK_EQ_INT(n, 3);
    static const int orders[3][3] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0}};
    for (int o = 0; o < 3; o++) {
        struct defrag *d = defrag_new(&lim);
        struct packet out;
        uint32_t others = 0;
        for (int i = 0; i < 3; i++) {
            const struct piece *x = &pc[orders[o][i]];
            struct packet p = frame(x->buf, x->len, (uint64_t)i + 1, (uint64_t)i * NS);
            CHECK(p.flags & PKT_FRAGMENT);
            enum defrag_result r = defrag_add(d, &p, outbuf, &out);
            CHECK_EQ_INT(r, i < 2 ? DEFRAG_HELD : DEFRAG_DONE);
            if (i < 2)
                others += (uint32_t)x->len;
            CHECK(accounted(d));
        }
        CHECK_EQ_U64(out.caplen, len);
        CHECK(memcmp(out.data, whole, len) == 0);   /* the frame before it was cut */
        CHECK_EQ_U64(out.extra_frames, 2);
        CHECK_EQ_U64(out.extra_bytes, others);
        CHECK_EQ_U64(out.frame, 3);
        CHECK_EQ_INT(decode_packet(&out, LINKTYPE_ETHERNET), DECODE_UDP);
        CHECK_EQ_U64(out.dport, 53);
        CHECK_EQ_U64(out.payload_len, 3000);
        CHECK(!(out.flags & PKT_FRAGMENT));
        const struct defrag_counters *c = defrag_counters(d);
        CHECK_EQ_U64(c->datagrams, 1);
        CHECK_EQ_U64(c->reassembled, 3);
        CHECK_EQ_U64(c->held, 0);
        CHECK_EQ_U64(c->held_bytes, 0);
        defrag_free(d);
    }
}

static void test_duplicates_and_overlaps(void)
{
    static uint8_t whole[4096], other[4096];
    static struct piece pc[8], bad;
    size_t len = whole_frame(whole, 4, 5, 2000, 1);
    whole_frame(other, 4, 5, 2000, 99);   /* same headers, other bytes */
    int n = pieces(pc, whole, len, 4, 5, 2008, 800);
    CHECK_EQ_INT(n, 3);
    struct packet out, p;
    struct defrag *d = defrag_new(&lim);
    p = frame(pc[0].buf, pc[0].len, 1, 0);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    p = frame(pc[0].buf, pc[0].len, 2, 0);   /* the same again */
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    bad.len = cut(bad.buf, other, len, 4, 5, 800, 800, 1);   /* same place, other bytes */
    p = frame(pc[1].buf, pc[1].len, 3, 0);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    p = frame(bad.buf, bad.len, 4, 0);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    p = frame(pc[2].buf, pc[2].len, 5, 0);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_DONE);
    CHECK(memcmp(out.data, whole, len) == 0);   /* the first copy won */
    CHECK_EQ_U64(out.extra_frames, 2);          /* duplicates are not the datagram's */
    const struct defrag_counters *c = defrag_counters(d);
    CHECK_EQ_U64(c->duplicates, 2);
    CHECK_EQ_U64(c->conflicting, 1);
    CHECK(accounted(d));

    /* a partial overlap discards the datagram (Linux): held ones and itself */
    p = frame(pc[0].buf, pc[0].len, 6, NS);
    defrag_add(d, &p, outbuf, &out);
    p = frame(pc[1].buf, pc[1].len, 7, NS);
    defrag_add(d, &p, outbuf, &out);
    bad.len = cut(bad.buf, whole, len, 4, 5, 400, 800, 1);
    p = frame(bad.buf, bad.len, 8, NS);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    CHECK_EQ_U64(c->overlap, 3);
    CHECK_EQ_U64(c->held, 0);
    /* what comes after starts a new datagram, which never completes */
    p = frame(pc[2].buf, pc[2].len, 9, NS);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    CHECK_EQ_U64(c->held, 1);
    defrag_expire(d, NS + 30 * NS);   /* not yet: more than the timeout */
    CHECK_EQ_U64(c->held, 1);
    defrag_expire(d, NS + 30 * NS + 1);
    CHECK_EQ_U64(c->timeout, 1);
    CHECK_EQ_U64(c->held, 0);
    CHECK(accounted(d));
    defrag_free(d);
}

static void test_invalid_and_limits(void)
{
    static uint8_t whole[4096];
    static struct piece pc[8], x;
    size_t len = whole_frame(whole, 4, 9, 2000, 3);
    int n = pieces(pc, whole, len, 4, 9, 2008, 800);
    struct packet out, p;
    struct defrag *d = defrag_new(&lim);
    const struct defrag_counters *c = defrag_counters(d);
    x.len = cut(x.buf, whole, len, 4, 9, 0, 100, 1);   /* "more" but not a multiple of 8 */
    p = frame(x.buf, x.len, 1, 0);
    defrag_add(d, &p, outbuf, &out);
    CHECK_EQ_U64(c->invalid, 1);
    /* the last fragment, then one beyond the end it set: all go */
    p = frame(pc[n - 1].buf, pc[n - 1].len, 2, 0);
    defrag_add(d, &p, outbuf, &out);
    x.len = cut(x.buf, whole, len, 4, 9, 2400, 80, 1);
    p = frame(x.buf, x.len, 3, 0);
    defrag_add(d, &p, outbuf, &out);
    CHECK_EQ_U64(c->invalid, 3);
    CHECK_EQ_U64(c->held, 0);
    /* a cut frame: bytes are missing */
    p = frame(pc[0].buf, pc[0].len, 4, 0);
    p.caplen -= 10;
    defrag_add(d, &p, outbuf, &out);
    CHECK_EQ_U64(c->invalid, 4);
    CHECK(accounted(d));
    defrag_free(d);

    /* the size limit */
    struct defrag_limits small = lim;
    small.max_size = 1500;
    d = defrag_new(&small);
    c = defrag_counters(d);
    p = frame(pc[0].buf, pc[0].len, 1, 0);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_HELD);
    p = frame(pc[1].buf, pc[1].len, 2, 0);   /* ends at 1600 */
    defrag_add(d, &p, outbuf, &out);
    CHECK_EQ_U64(c->too_big, 2);
    CHECK(accounted(d));
    defrag_free(d);

    /* the datagram cap, then the memcap (an 800-byte fragment takes 2 blocks) */
    struct defrag_limits tight = lim;
    tight.max_datagrams = 2;
    tight.memcap = 5 * 512;
    d = defrag_new(&tight);
    c = defrag_counters(d);
    for (uint16_t id = 1; id <= 3; id++) {
        len = whole_frame(whole, 4, id, 2000, 3);
        x.len = cut(x.buf, whole, len, 4, id, 800, 800, 1);
        p = frame(x.buf, x.len, id, 0);
        defrag_add(d, &p, outbuf, &out);
    }
    CHECK_EQ_U64(c->no_room, 1);
    CHECK_EQ_U64(c->held, 2);
    x.len = cut(x.buf, whole, len, 4, 1, 1600, 408, 0);
    len = whole_frame(whole, 4, 1, 2000, 3);
    x.len = cut(x.buf, whole, len, 4, 1, 1600, 408, 0);
    p = frame(x.buf, x.len, 4, 0);
    defrag_add(d, &p, outbuf, &out);   /* 4 blocks held, 1 free: this one needs 1: fits */
    CHECK_EQ_U64(c->held, 3);
    x.len = cut(x.buf, whole, len, 4, 1, 0, 800, 1);
    p = frame(x.buf, x.len, 5, 0);
    defrag_add(d, &p, outbuf, &out);   /* headers + 800 bytes: 2 blocks, 0 free */
    CHECK_EQ_U64(c->no_room, 2);
    CHECK(accounted(d));
    defrag_expire(d, UINT64_MAX);      /* the end of input */
    CHECK_EQ_U64(c->timeout, 3);
    CHECK_EQ_U64(c->held, 0);
    CHECK(accounted(d));
    defrag_free(d);
}

static void test_ipv6_atomic(void)
{
    static uint8_t whole[4096];
    static struct piece x;
    size_t len = whole_frame(whole, 6, 1, 100, 3);
    x.len = cut(x.buf, whole, len, 6, 1, 0, 108, 0);   /* offset 0, no "more": RFC 6946 */
    struct packet out, p = frame(x.buf, x.len, 1, 0);
    CHECK_EQ_INT(decode_packet(&p, LINKTYPE_ETHERNET), DECODE_UDP);
    CHECK(!(p.flags & PKT_FRAGMENT));   /* decode sees a whole datagram */
    struct defrag *d = defrag_new(&lim);
    CHECK_EQ_INT(defrag_add(d, &p, outbuf, &out), DEFRAG_PASS);
    CHECK_EQ_U64(defrag_counters(d)->fragments, 0);
    defrag_free(d);
}

/* Many datagrams of both families, cut at random multiples of 8, their
 * fragments shuffled together: each comes back as it was. */
static void test_random(void)
{
    enum { N = 40 };
    static uint8_t whole[N][4096];
    static size_t wlen[N];
    static struct piece pc[N * 40];
    static int owner[N * 40];
    int np = 0;
    srand(7);
    for (int i = 0; i < N; i++) {
        int family = i % 2 ? 6 : 4;
        wlen[i] = whole_frame(whole[i], family, (uint16_t)(i + 1),
                              (uint32_t)(200 + rand() % 3000), (uint8_t)i);
        uint32_t ip_payload = (uint32_t)wlen[i] - (family == 4 ? 34 : 62);
        for (uint32_t s = 0; s < ip_payload;) {
            uint32_t k = (uint32_t)(1 + rand() % 150) * 8;
            if (s == 0 && k >= ip_payload)   /* one piece would be no fragment */
                k = ip_payload / 2 & ~7u;
            if (s + k >= ip_payload)
                k = ip_payload - s;
            pc[np].len = cut(pc[np].buf, whole[i], wlen[i], family, (uint32_t)(i + 1), s, k,
                             s + k < ip_payload);
            owner[np++] = i;
            s += k;
        }
    }
    for (int i = np - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        struct piece t = pc[i];
        pc[i] = pc[j], pc[j] = t;
        int o = owner[i];
        owner[i] = owner[j], owner[j] = o;
    }
    struct defrag *d = defrag_new(&lim);
    int done = 0, right = 0;
    for (int i = 0; i < np; i++) {
        struct packet out, p = frame(pc[i].buf, pc[i].len, (uint64_t)i + 1, 0);
        if (defrag_add(d, &p, outbuf, &out) == DEFRAG_DONE) {
            done++;
            right += out.caplen == wlen[owner[i]] &&
                     memcmp(out.data, whole[owner[i]], wlen[owner[i]]) == 0;
        }
    }
    CHECK_EQ_INT(done, N);
    CHECK_EQ_INT(right, N);
    CHECK_EQ_U64(defrag_counters(d)->reassembled, (uint64_t)np);
    CHECK(accounted(d));
    defrag_free(d);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_orders(4);
    test_orders(6);
    test_duplicates_and_overlaps();
    test_invalid_and_limits();
    test_ipv6_atomic();
    test_random();
    return test_summary(argv[0]);
}
