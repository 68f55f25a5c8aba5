/* test-decode.c - decode_packet() on packets crafted byte by byte: every link
 * type, VLAN/QinQ, IPv4 options, IPv6 extension headers, TCP options, UDP,
 * ICMP; the offsets, ports, payload length (Ethernet padding excluded) and
 * flow key it gives; every malformed case in its named verdict; and every
 * truncation of a valid packet, copied to an exact-size heap buffer so that
 * the sanitizer build catches any read past caplen. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "test.h"

/* ---- a packet builder: headers appended in order, lengths patched at the end ---- */

struct pb {
    uint8_t d[4096];
    uint32_t n;
    int ip_off;      /* of the innermost IP header, -1 when none */
    int ip_ver;
    int udp_off;     /* of the UDP header, -1 when none */
};

static void pb_init(struct pb *b)
{
    memset(b, 0, sizeof *b);
    b->ip_off = b->udp_off = -1;
}

static void put(struct pb *b, const void *p, uint32_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put8(struct pb *b, uint8_t v) { b->d[b->n++] = v; }
static void put16(struct pb *b, uint16_t v) { put8(b, (uint8_t)(v >> 8)); put8(b, (uint8_t)v); }
static void put32(struct pb *b, uint32_t v) { put16(b, (uint16_t)(v >> 16)); put16(b, (uint16_t)v); }
static void fill(struct pb *b, uint8_t v, uint32_t n) { memset(b->d + b->n, v, n); b->n += n; }
static void set16(struct pb *b, uint32_t off, uint16_t v)
{
    b->d[off] = (uint8_t)(v >> 8);
    b->d[off + 1] = (uint8_t)v;
}

static const uint8_t A4[4] = {10, 0, 0, 1}, B4[4] = {10, 0, 0, 2};
static const uint8_t A6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t B6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};

static void eth(struct pb *b, uint16_t type)
{
    static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0xbb}, src[6] = {0x02, 0, 0, 0, 0, 0xaa};
    put(b, dst, 6);
    put(b, src, 6);
    put16(b, type);
}

/* An 802.1Q/802.1ad tag: TCI, then the type of what follows. */
static void vlan(struct pb *b, uint16_t tci, uint16_t next_type)
{
    put16(b, tci);
    put16(b, next_type);
}

/* IPv4 header with optlen bytes of options (NOPs); total length patched. */
static void ipv4(struct pb *b, uint8_t proto, const uint8_t *src, const uint8_t *dst,
                 uint32_t optlen, uint16_t frag)
{
    b->ip_off = (int)b->n;
    b->ip_ver = 4;
    put8(b, (uint8_t)(0x40 | (5 + optlen / 4)));
    put8(b, 0);
    put16(b, 0);          /* total length, patched */
    put16(b, 0x1234);
    put16(b, frag);
    put8(b, 64);
    put8(b, proto);
    put16(b, 0);
    put(b, src, 4);
    put(b, dst, 4);
    fill(b, 1, optlen);
}

static void ipv6(struct pb *b, uint8_t nh, const uint8_t *src, const uint8_t *dst)
{
    b->ip_off = (int)b->n;
    b->ip_ver = 6;
    put32(b, 0x60000000);
    put16(b, 0);          /* payload length, patched */
    put8(b, nh);
    put8(b, 64);
    put(b, src, 16);
    put(b, dst, 16);
}

/* A generic extension header (hop-by-hop, routing, destination options) of
 * (units + 1) * 8 bytes. */
static void ipv6_ext(struct pb *b, uint8_t nh, uint8_t units)
{
    put8(b, nh);
    put8(b, units);
    fill(b, 0, (uint32_t)units * 8 + 6);
}

static void ipv6_frag(struct pb *b, uint8_t nh, uint16_t offset_units, int more)
{
    put8(b, nh);
    put8(b, 0);
    put16(b, (uint16_t)(offset_units << 3 | (more ? 1 : 0)));
    put32(b, 0xcafe);
}

/* TCP header with optlen bytes of options (NOPs). */
static void tcp(struct pb *b, uint16_t sport, uint16_t dport, uint32_t optlen)
{
    put16(b, sport);
    put16(b, dport);
    put32(b, 1000);
    put32(b, 0);
    put8(b, (uint8_t)((5 + optlen / 4) << 4));
    put8(b, 0x18);
    put16(b, 65535);
    put16(b, 0);
    put16(b, 0);
    fill(b, 1, optlen);
}

static void udp(struct pb *b, uint16_t sport, uint16_t dport)
{
    b->udp_off = (int)b->n;
    put16(b, sport);
    put16(b, dport);
    put16(b, 0);          /* length, patched */
    put16(b, 0);
}

static void icmp(struct pb *b, uint8_t type)
{
    put8(b, type);
    put8(b, 0);
    put16(b, 0);
    put32(b, 0x00010001);
}

static void payload(struct pb *b, const char *s) { put(b, s, (uint32_t)strlen(s)); }

/* Sets the IP and UDP lengths to cover everything appended so far. */
static void finish(struct pb *b)
{
    if (b->ip_off >= 0 && b->ip_ver == 4)
        set16(b, (uint32_t)b->ip_off + 2, (uint16_t)(b->n - (uint32_t)b->ip_off));
    if (b->ip_off >= 0 && b->ip_ver == 6)
        set16(b, (uint32_t)b->ip_off + 4, (uint16_t)(b->n - (uint32_t)b->ip_off - 40));
    if (b->udp_off >= 0)
        set16(b, (uint32_t)b->udp_off + 4, (uint16_t)(b->n - (uint32_t)b->udp_off));
}

/* Decodes the first caplen bytes of b (wirelen on the wire) from an
 * exact-size heap copy, so that ASan sees any read past caplen. The copy
 * stays valid until the next call. */
static enum decode_result dec_cut(struct packet *p, const struct pb *b, int linktype,
                                  uint32_t caplen, uint32_t wirelen)
{
    static uint8_t *copy;
    free(copy);
    copy = malloc(caplen ? caplen : 1);
    memcpy(copy, b->d, caplen);
    memset(p, 0xee, sizeof *p);   /* decode_packet must not depend on old contents */
    p->data = copy;
    p->caplen = caplen;
    p->wirelen = wirelen;
    p->ts = 1;
    p->frame = 1;
    return decode_packet(p, linktype);
}

static enum decode_result dec(struct packet *p, const struct pb *b, int linktype)
{
    return dec_cut(p, b, linktype, b->n, b->n);
}

#define CHECK_RESULT(r, want)                                                              \
    do {                                                                                   \
        enum decode_result r_ = (r);                                                       \
        if (!test_result(r_ == (want), __FILE__, __LINE__, #r " == " #want))               \
            fprintf(stderr, "    got %s, expected %s\n", decode_result_name(r_),          \
                    decode_result_name(want));                                             \
    } while (0)

/* ---- valid packets ---- */

static void test_eth_ipv4_tcp_options(void)
{
    struct pb b;
    pb_init(&b);
    eth(&b, 0x0800);
    ipv4(&b, IPPROTO_TCP, A4, B4, 8, 0);      /* 28-byte IP header */
    tcp(&b, 40000, 80, 12);                   /* 32-byte TCP header */
    payload(&b, "GET / HTTP/1.1\r\n\r\n");
    finish(&b);
    struct packet p;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);
    CHECK_EQ_U64(p.ip_version, 4);
    CHECK_EQ_U64(p.l4_proto, IPPROTO_TCP);
    CHECK_EQ_U64(p.l3_off, 14);
    CHECK_EQ_U64(p.l4_off, 14 + 28);
    CHECK_EQ_U64(p.payload_off, 14 + 28 + 32);
    CHECK_EQ_U64(p.payload_len, 18);
    CHECK_MEM_STR(packet_payload(&p), p.payload_len, "GET / HTTP/1.1\r\n\r\n");
    CHECK_EQ_U64(p.sport, 40000);
    CHECK_EQ_U64(p.dport, 80);
    CHECK_EQ_U64(p.flags, PKT_HAS_KEY | PKT_SRC_IS_LO);   /* 10.0.0.1 < 10.0.0.2 */
    CHECK(memcmp(packet_src_addr(&p), A4, 4) == 0);
    CHECK(memcmp(packet_dst_addr(&p), B4, 4) == 0);
    CHECK(memcmp(p.key.lo_addr, A4, 4) == 0);
    CHECK(memcmp(p.key.hi_addr, B4, 4) == 0);
    CHECK_EQ_U64(p.key.lo_port, 40000);
    CHECK_EQ_U64(p.key.hi_port, 80);
    CHECK_EQ_U64(p.key.proto, IPPROTO_TCP);
    CHECK_EQ_U64(p.key.family, 4);
    static const uint8_t zero[12];
    CHECK(memcmp(p.key.lo_addr + 4, zero, 12) == 0);
    CHECK(memcmp(p.key.hi_addr + 4, zero, 12) == 0);
    CHECK_EQ_U64(p.key.pad[0] | p.key.pad[1], 0);
    CHECK_EQ_U64(p.hash, flow_key_hash(&p.key));
}

/* Ethernet pads short frames to 60 bytes: the IP total length says where the
 * datagram ends, the padding is not payload. */
static void test_eth_padding(void)
{
    struct pb b;
    pb_init(&b);
    eth(&b, 0x0800);
    ipv4(&b, IPPROTO_UDP, A4, B4, 0, 0);
    udp(&b, 5353, 53);
    payload(&b, "hi");
    finish(&b);
    CHECK_EQ_U64(b.n, 14 + 20 + 8 + 2);
    fill(&b, 0, 60 - b.n);
    struct packet p;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_UDP);
    CHECK_EQ_U64(p.payload_off, 42);
    CHECK_EQ_U64(p.payload_len, 2);

    pb_init(&b);
    eth(&b, 0x0800);
    ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0);
    tcp(&b, 1, 2, 0);
    finish(&b);
    fill(&b, 0xff, 6);                        /* 54 + 6 = 60 */
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);
    CHECK_EQ_U64(p.payload_off, 54);
    CHECK_EQ_U64(p.payload_len, 0);

    /* the same over IPv6: the payload length field bounds it */
    pb_init(&b);
    eth(&b, 0x86dd);
    ipv6(&b, IPPROTO_UDP, A6, B6);
    udp(&b, 1000, 53);
    payload(&b, "x");
    finish(&b);
    fill(&b, 0, 8);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_UDP);
    CHECK_EQ_U64(p.payload_len, 1);
}

/* The UDP length bounds the payload when it is below the IP payload. */
static void test_udp_lengths(void)
{
    struct pb b;
    pb_init(&b);
    ipv4(&b, IPPROTO_UDP, A4, B4, 0, 0);
    udp(&b, 53, 53);
    payload(&b, "abcdef");
    finish(&b);
    set16(&b, 20 + 4, 8 + 3);
    struct packet p;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_UDP);
    CHECK_EQ_U64(p.payload_len, 3);
    set16(&b, 20 + 4, 0);                    /* 0: jumbogram convention, whole datagram */
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_UDP);
    CHECK_EQ_U64(p.payload_len, 6);
    set16(&b, 20 + 4, 7);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_ERR_UDP_LEN);
    set16(&b, 20 + 4, 1000);                 /* beyond the datagram: what is there */
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_UDP);
    CHECK_EQ_U64(p.payload_len, 6);
}

static void build_tcp4(struct pb *b, const uint8_t *src, const uint8_t *dst, uint16_t sport,
                       uint16_t dport)
{
    pb_init(b);
    eth(b, 0x0800);
    ipv4(b, IPPROTO_TCP, src, dst, 0, 0);
    tcp(b, sport, dport, 0);
    payload(b, "data");
    finish(b);
}

static void build_udp6(struct pb *b, const uint8_t *src, const uint8_t *dst, uint16_t sport,
                       uint16_t dport)
{
    pb_init(b);
    eth(b, 0x86dd);
    ipv6(b, IPPROTO_UDP, src, dst);
    udp(b, sport, dport);
    payload(b, "data");
    finish(b);
}

/* A->B and B->A: same key and hash, PKT_SRC_IS_LO tells them apart. */
static void check_symmetric(const struct pb *ab, const struct pb *ba, int line)
{
    struct packet p, q;
    enum decode_result r1 = dec(&p, ab, LINKTYPE_ETHERNET);
    enum decode_result r2 = dec(&q, ba, LINKTYPE_ETHERNET);
    if (!test_result(r1 == r2 && !decode_is_error(r1), __FILE__, line, "both directions decode"))
        return;
    test_result((p.flags & PKT_HAS_KEY) && (q.flags & PKT_HAS_KEY), __FILE__, line, "keyed");
    test_result(memcmp(&p.key, &q.key, sizeof p.key) == 0, __FILE__, line, "equal keys");
    test_result(p.hash == q.hash, __FILE__, line, "equal hashes");
    test_result(((p.flags ^ q.flags) & PKT_SRC_IS_LO) != 0, __FILE__, line,
                "PKT_SRC_IS_LO differs");
}

static void test_key_symmetry(void)
{
    struct pb ab, ba;
    build_tcp4(&ab, A4, B4, 40000, 80);
    build_tcp4(&ba, B4, A4, 80, 40000);
    check_symmetric(&ab, &ba, __LINE__);
    check_symmetric(&ba, &ab, __LINE__);
    /* same address both ends: the ports decide */
    build_tcp4(&ab, A4, A4, 1000, 2000);
    build_tcp4(&ba, A4, A4, 2000, 1000);
    check_symmetric(&ab, &ba, __LINE__);
    /* the address decides even when the ports say otherwise */
    build_tcp4(&ab, A4, B4, 9, 1);
    build_tcp4(&ba, B4, A4, 1, 9);
    check_symmetric(&ab, &ba, __LINE__);
    struct packet p;
    dec(&p, &ab, LINKTYPE_ETHERNET);
    CHECK_EQ_U64(p.key.lo_port, 9);   /* 10.0.0.1's port */
    CHECK_EQ_U64(p.key.hi_port, 1);
    build_udp6(&ab, A6, B6, 53, 5353);
    build_udp6(&ba, B6, A6, 5353, 53);
    check_symmetric(&ab, &ba, __LINE__);
    dec(&p, &ab, LINKTYPE_ETHERNET);
    CHECK(memcmp(p.key.lo_addr, A6, 16) == 0);
    CHECK_EQ_U64(p.key.family, 6);
    /* different flows differ */
    struct packet q;
    build_tcp4(&ab, A4, B4, 40000, 80);
    build_tcp4(&ba, A4, B4, 40001, 80);
    dec(&p, &ab, LINKTYPE_ETHERNET);
    dec(&q, &ba, LINKTYPE_ETHERNET);
    CHECK(memcmp(&p.key, &q.key, sizeof q.key) != 0);
    /* a packet from itself to itself, same port: src counts as lo */
    build_tcp4(&ab, A4, A4, 7, 7);
    dec(&p, &ab, LINKTYPE_ETHERNET);
    CHECK(p.flags & PKT_SRC_IS_LO);
}

static void test_vlan(void)
{
    struct pb b;
    struct packet p;
    static const uint16_t tpids[] = {0x8100, 0x88a8, 0x9100};
    for (int i = 0; i < 3; i++) {
        pb_init(&b);
        eth(&b, tpids[i]);
        vlan(&b, 100, 0x0800);
        ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0);
        tcp(&b, 1234, 443, 0);
        finish(&b);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);
        CHECK_EQ_U64(p.l3_off, 18);
        CHECK_EQ_U64(p.l4_off, 38);
        CHECK_EQ_U64(p.dport, 443);
    }
    /* QinQ: 802.1ad outer, 802.1Q inner, IPv6 */
    pb_init(&b);
    eth(&b, 0x88a8);
    vlan(&b, 10, 0x8100);
    vlan(&b, 20, 0x86dd);
    ipv6(&b, IPPROTO_UDP, A6, B6);
    udp(&b, 1, 2);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_UDP);
    CHECK_EQ_U64(p.l3_off, 22);
    CHECK_EQ_U64(p.l4_off, 62);
    CHECK_EQ_U64(p.payload_len, 0);
    /* DECODE_MAX_VLAN tags are fine, one more is not */
    for (int ntags = DECODE_MAX_VLAN; ntags <= DECODE_MAX_VLAN + 1; ntags++) {
        pb_init(&b);
        eth(&b, 0x8100);
        for (int t = 0; t < ntags; t++)
            vlan(&b, (uint16_t)t, t == ntags - 1 ? 0x0800 : 0x8100);
        ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0);
        tcp(&b, 1, 2, 0);
        finish(&b);
        if (ntags == DECODE_MAX_VLAN) {
            CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);
            CHECK_EQ_U64(p.l3_off, 14 + 4 * DECODE_MAX_VLAN);
        } else {
            CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_VLAN);
        }
    }
    /* a tag cut short */
    pb_init(&b);
    eth(&b, 0x8100);
    put16(&b, 100);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_VLAN);
    /* a tag in full, nothing after it: the IP header is missing */
    pb_init(&b);
    eth(&b, 0x8100);
    vlan(&b, 100, 0x0800);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_SHORT);
    /* VLAN carrying ARP */
    pb_init(&b);
    eth(&b, 0x8100);
    vlan(&b, 100, 0x0806);
    fill(&b, 0, 28);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_NOT_IP);
    CHECK_EQ_U64(p.flags, 0);
}

static void test_not_ip_and_link(void)
{
    struct pb b;
    struct packet p;
    pb_init(&b);
    eth(&b, 0x0806);
    fill(&b, 0, 28);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_NOT_IP);
    CHECK_EQ_U64(p.flags, 0);
    CHECK_EQ_U64(p.ip_version, 0);
    /* short Ethernet header */
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, 13, 13), DECODE_ERR_LINK);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, 14, 14), DECODE_NOT_IP);
    /* the ethertype says IPv4, the header says 6 */
    pb_init(&b);
    eth(&b, 0x0800);
    ipv6(&b, IPPROTO_TCP, A6, B6);
    tcp(&b, 1, 2, 0);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_VERSION);
    pb_init(&b);
    eth(&b, 0x86dd);
    ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0);
    tcp(&b, 1, 2, 0);
    fill(&b, 0, 20);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_VERSION);
}

static void test_ipv4_malformed(void)
{
    struct pb b;
    struct packet p;
    pb_init(&b);
    eth(&b, 0x0800);
    ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0);
    tcp(&b, 1, 2, 0);
    payload(&b, "0123456789");
    finish(&b);
    uint32_t full = b.n;   /* 14 + 20 + 20 + 10 = 64 */
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);

    /* IHL below 5 */
    for (uint8_t ihl = 0; ihl < 5; ihl++) {
        b.d[14] = (uint8_t)(0x40 | ihl);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_HLEN);
    }
    /* IHL 15 (60 bytes) but only 50 bytes of datagram */
    b.d[14] = 0x4f;
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, 14 + 50, 14 + 50), DECODE_ERR_IP_SHORT);
    b.d[14] = 0x45;
    /* fewer than 20 bytes of IP */
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, 33, 33), DECODE_ERR_IP_SHORT);
    /* total length below the header */
    set16(&b, 16, 19);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_LEN);
    /* total length beyond the frame */
    set16(&b, 16, (uint16_t)(full - 14 + 1));
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_LEN);
    set16(&b, 16, 0xffff);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_ERR_IP_LEN);
    /* ... but within the wire length of a snaplen-cut frame it is fine */
    set16(&b, 16, (uint16_t)(full - 14));
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, full - 4, full), DECODE_TCP);
    CHECK_EQ_U64(p.payload_off, 54);
    CHECK_EQ_U64(p.payload_len, 6);   /* what was captured of the 10 */
    CHECK(p.flags & PKT_HAS_KEY);
    /* a snaplen cut inside the TCP header: the ports count, the payload is gone */
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, 14 + 20 + 19, full), DECODE_TCP);
    CHECK_EQ_U64(p.payload_len, 0);
    CHECK(p.flags & PKT_HAS_KEY);
    CHECK(p.flags & PKT_SNAPPED);
    /* ... fewer than the 4 bytes of ports: nothing to count it by */
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_ETHERNET, 14 + 20 + 3, full), DECODE_ERR_TCP_SHORT);
    /* total length 0 (TSO capture): the frame decides */
    set16(&b, 16, 0);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);
    CHECK_EQ_U64(p.payload_len, 10);
    set16(&b, 16, (uint16_t)(full - 14));
}

static void test_tcp_malformed(void)
{
    struct pb b;
    struct packet p;
    pb_init(&b);
    ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0);
    tcp(&b, 1, 2, 0);
    payload(&b, "0123456789");
    finish(&b);
    /* data offset below 5 */
    for (uint8_t off = 0; off < 5; off++) {
        b.d[20 + 12] = (uint8_t)(off << 4);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_TCP_OFFSET);
    }
    /* data offset 8 (32 bytes) is past the 30-byte segment */
    b.d[20 + 12] = 8 << 4;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_TCP_OFFSET);
    b.d[20 + 12] = 15 << 4;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_TCP_OFFSET);
    /* data offset 7 (28 bytes): 2 bytes of payload left */
    b.d[20 + 12] = 7 << 4;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_TCP);
    CHECK_EQ_U64(p.payload_off, 48);
    CHECK_EQ_U64(p.payload_len, 2);
    /* the data offset is checked against the datagram, not the frame: trailing
     * bytes after the IP total length are not TCP options */
    b.d[20 + 12] = 5 << 4;
    set16(&b, 2, 40);   /* no payload */
    b.d[20 + 12] = 6 << 4;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_TCP_OFFSET);
    b.d[20 + 12] = 5 << 4;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_TCP);
    CHECK_EQ_U64(p.payload_len, 0);
    /* TCP header cut short */
    set16(&b, 2, 39);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_TCP_SHORT);
    set16(&b, 2, 20);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_TCP_SHORT);
}

static void test_udp_icmp_other(void)
{
    struct pb b;
    struct packet p;
    /* UDP cut short */
    pb_init(&b);
    ipv4(&b, IPPROTO_UDP, A4, B4, 0, 0);
    put32(&b, 0x00350035);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_UDP_SHORT);
    /* ICMP echo: keyed with ports 0 */
    pb_init(&b);
    ipv4(&b, IPPROTO_ICMP, A4, B4, 0, 0);
    icmp(&b, 8);
    payload(&b, "ping");
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ICMP);
    CHECK_EQ_U64(p.l4_off, 20);
    CHECK_EQ_U64(p.payload_off, 24);
    CHECK_EQ_U64(p.payload_len, 8);
    CHECK(p.flags & PKT_HAS_KEY);
    CHECK_EQ_U64(p.key.lo_port | p.key.hi_port, 0);
    CHECK_EQ_U64(p.key.proto, IPPROTO_ICMP);
    /* ICMP with 3 bytes */
    pb_init(&b);
    ipv4(&b, IPPROTO_ICMP, A4, B4, 0, 0);
    put16(&b, 0x0800);
    put8(&b, 0);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_ICMP_SHORT);
    /* ICMPv6 */
    pb_init(&b);
    ipv6(&b, IPPROTO_ICMPV6, A6, B6);
    icmp(&b, 128);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_ICMP);
    CHECK_EQ_U64(p.l4_proto, IPPROTO_ICMPV6);
    CHECK_EQ_U64(p.payload_len, 4);
    CHECK(p.flags & PKT_HAS_KEY);
    /* GRE: IP, no transport, no key */
    pb_init(&b);
    ipv4(&b, 47, A4, B4, 0, 0);
    put32(&b, 0x00000800);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_IP_OTHER);
    CHECK_EQ_U64(p.ip_version, 4);
    CHECK_EQ_U64(p.l4_proto, 47);
    CHECK_EQ_U64(p.l4_off, 20);
    CHECK_EQ_U64(p.payload_len, 4);
    CHECK_EQ_U64(p.flags & PKT_HAS_KEY, 0);
    /* IPv6 "no next header" (59) */
    pb_init(&b);
    ipv6(&b, 59, A6, B6);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_IP_OTHER);
    CHECK_EQ_U64(p.payload_len, 0);
}

static void test_ipv4_fragments(void)
{
    struct pb b;
    struct packet p;
    /* first fragment (MF, offset 0): decoded, keyed, marked */
    pb_init(&b);
    ipv4(&b, IPPROTO_UDP, A4, B4, 0, 0x2000);
    udp(&b, 53, 1053);
    fill(&b, 'x', 32);
    finish(&b);
    set16(&b, 24, 1000);   /* the UDP length covers all fragments */
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_UDP);
    CHECK(p.flags & PKT_HAS_KEY);
    CHECK(p.flags & PKT_FRAGMENT);
    CHECK_EQ_U64(p.payload_len, 32);
    /* later fragment: no transport header, no key */
    pb_init(&b);
    ipv4(&b, IPPROTO_UDP, A4, B4, 0, 0x2000 | 5);
    fill(&b, 'y', 40);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_FRAGMENT);
    CHECK_EQ_U64(p.flags & PKT_HAS_KEY, 0);
    CHECK(p.flags & PKT_FRAGMENT);
    CHECK_EQ_U64(p.l4_proto, IPPROTO_UDP);
    CHECK_EQ_U64(p.payload_off, 20);
    CHECK_EQ_U64(p.payload_len, 40);
    /* last fragment (no MF, offset > 0) */
    b.d[6] = 0;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_FRAGMENT);
    /* DF alone is not a fragment */
    pb_init(&b);
    ipv4(&b, IPPROTO_TCP, A4, B4, 0, 0x4000);
    tcp(&b, 1, 2, 0);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_TCP);
    CHECK_EQ_U64(p.flags & PKT_FRAGMENT, 0);
}

static void test_ipv6_ext(void)
{
    struct pb b;
    struct packet p;
    /* hop-by-hop (8) + routing (24) + destination options (16) + TCP */
    pb_init(&b);
    eth(&b, 0x86dd);
    ipv6(&b, 0, A6, B6);
    ipv6_ext(&b, 43, 0);
    ipv6_ext(&b, 60, 2);
    ipv6_ext(&b, IPPROTO_TCP, 1);
    tcp(&b, 50000, 443, 4);
    payload(&b, "hello");
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_ETHERNET), DECODE_TCP);
    CHECK_EQ_U64(p.ip_version, 6);
    CHECK_EQ_U64(p.l3_off, 14);
    CHECK_EQ_U64(p.l4_off, 14 + 40 + 8 + 24 + 16);
    CHECK_EQ_U64(p.payload_off, 14 + 40 + 48 + 24);
    CHECK_EQ_U64(p.payload_len, 5);
    CHECK_EQ_U64(p.sport, 50000);
    CHECK_EQ_U64(p.key.proto, IPPROTO_TCP);
    CHECK(memcmp(packet_src_addr(&p), A6, 16) == 0);
    CHECK(memcmp(packet_dst_addr(&p), B6, 16) == 0);
    /* AH counts 4-byte words: len 4 -> (4 + 2) * 4 = 24 bytes */
    pb_init(&b);
    ipv6(&b, 51, A6, B6);
    put8(&b, IPPROTO_UDP);
    put8(&b, 4);
    fill(&b, 0, 22);
    udp(&b, 500, 500);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_UDP);
    CHECK_EQ_U64(p.l4_off, 40 + 24);
    /* DECODE_IPV6_MAX_EXT headers pass, one more is too many */
    for (int next = DECODE_IPV6_MAX_EXT; next <= DECODE_IPV6_MAX_EXT + 1; next++) {
        pb_init(&b);
        ipv6(&b, 60, A6, B6);
        for (int i = 0; i < next; i++)
            ipv6_ext(&b, i == next - 1 ? IPPROTO_UDP : 60, 0);
        udp(&b, 1, 2);
        finish(&b);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6),
                     next == DECODE_IPV6_MAX_EXT ? DECODE_UDP : DECODE_ERR_IPV6_EXT);
    }
    /* an extension header cut short by the payload length ... */
    pb_init(&b);
    ipv6(&b, 0, A6, B6);
    ipv6_ext(&b, IPPROTO_TCP, 3);            /* 32 bytes */
    finish(&b);
    set16(&b, 4, 16);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_IPV6, 56, 56), DECODE_ERR_IPV6_EXT);
    set16(&b, 4, 4);                         /* not even the first 8 bytes */
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_IPV6, 44, 44), DECODE_ERR_IPV6_EXT);
    /* ... or by the snaplen */
    set16(&b, 4, 32);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_IPV6, 60, 72), DECODE_ERR_IPV6_EXT);
    /* payload length beyond the frame */
    set16(&b, 4, 33);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_ERR_IP_LEN);
    /* IPv6 header cut short */
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_IPV6, 39, 39), DECODE_ERR_IP_SHORT);
}

static void test_ipv6_fragments(void)
{
    struct pb b;
    struct packet p;
    /* first fragment: the chain goes on to TCP */
    pb_init(&b);
    ipv6(&b, 44, A6, B6);
    ipv6_frag(&b, IPPROTO_TCP, 0, 1);
    tcp(&b, 80, 1024, 0);
    payload(&b, "abc");
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_TCP);
    CHECK(p.flags & PKT_HAS_KEY);
    CHECK(p.flags & PKT_FRAGMENT);
    CHECK_EQ_U64(p.l4_off, 48);
    CHECK_EQ_U64(p.payload_len, 3);
    /* later fragment */
    pb_init(&b);
    ipv6(&b, 0, A6, B6);
    ipv6_ext(&b, 44, 0);
    ipv6_frag(&b, IPPROTO_TCP, 100, 0);
    fill(&b, 'z', 16);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_FRAGMENT);
    CHECK_EQ_U64(p.flags & PKT_HAS_KEY, 0);
    CHECK(p.flags & PKT_FRAGMENT);
    CHECK_EQ_U64(p.l4_proto, IPPROTO_TCP);
    CHECK_EQ_U64(p.payload_off, 56);
    CHECK_EQ_U64(p.payload_len, 16);
}

static void build_inner_v4(struct pb *b)
{
    ipv4(b, IPPROTO_TCP, A4, B4, 0, 0);
    tcp(b, 1111, 2222, 0);
    payload(b, "xyz");
    finish(b);
}

static void test_link_types(void)
{
    struct pb b;
    struct packet p;
    /* Linux cooked v1: protocol at 14 */
    pb_init(&b);
    put16(&b, 0);
    put16(&b, 1);
    put16(&b, 6);
    fill(&b, 0xaa, 8);
    put16(&b, 0x0800);
    build_inner_v4(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_LINUX_SLL), DECODE_TCP);
    CHECK_EQ_U64(p.l3_off, 16);
    CHECK_EQ_U64(p.payload_len, 3);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_LINUX_SLL, 15, 15), DECODE_ERR_LINK);
    /* Linux cooked v2: protocol first, 20-byte header */
    pb_init(&b);
    put16(&b, 0x86dd);
    put16(&b, 0);
    put32(&b, 3);
    put16(&b, 1);
    put8(&b, 0);
    put8(&b, 6);
    fill(&b, 0xaa, 8);
    ipv6(&b, IPPROTO_UDP, A6, B6);
    udp(&b, 1, 2);
    payload(&b, "q");
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_LINUX_SLL2), DECODE_UDP);
    CHECK_EQ_U64(p.l3_off, 20);
    CHECK_EQ_U64(p.payload_off, 68);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_LINUX_SLL2, 19, 19), DECODE_ERR_LINK);
    /* raw IP (101): the version nibble picks */
    pb_init(&b);
    build_inner_v4(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_TCP);
    CHECK_EQ_U64(p.l3_off, 0);
    CHECK_EQ_U64(p.l4_off, 20);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_TCP);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_ERR_IP_VERSION);
    b.d[0] = 0x55;
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_ERR_IP_VERSION);
    pb_init(&b);
    ipv6(&b, IPPROTO_TCP, A6, B6);
    tcp(&b, 1, 2, 0);
    finish(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_RAW), DECODE_TCP);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV6), DECODE_TCP);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_IPV4), DECODE_ERR_IP_VERSION);
    /* BSD loopback: host order (NULL), either byte order of the writer */
    static const uint8_t af_le[4] = {2, 0, 0, 0}, af_be[4] = {0, 0, 0, 2};
    static const uint32_t af6[] = {10, 24, 28, 30};
    pb_init(&b);
    put(&b, af_le, 4);
    build_inner_v4(&b);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_NULL), DECODE_TCP);
    CHECK_EQ_U64(p.l3_off, 4);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_LOOP), DECODE_NOT_IP);   /* LOOP is network order */
    memcpy(b.d, af_be, 4);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_NULL), DECODE_TCP);
    CHECK_RESULT(dec(&p, &b, LINKTYPE_LOOP), DECODE_TCP);
    CHECK_EQ_U64(p.l3_off, 4);
    for (int i = 0; i < 4; i++) {
        pb_init(&b);
        uint8_t le[4] = {(uint8_t)af6[i], 0, 0, 0};
        put(&b, le, 4);
        ipv6(&b, IPPROTO_UDP, A6, B6);
        udp(&b, 1, 2);
        finish(&b);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_NULL), DECODE_UDP);
        uint8_t be[4] = {0, 0, 0, (uint8_t)af6[i]};
        memcpy(b.d, be, 4);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_NULL), DECODE_UDP);
        CHECK_RESULT(dec(&p, &b, LINKTYPE_LOOP), DECODE_UDP);
    }
    memcpy(b.d, af_le, 4);
    b.d[0] = 7;   /* some other family */
    CHECK_RESULT(dec(&p, &b, LINKTYPE_NULL), DECODE_NOT_IP);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_NULL, 3, 3), DECODE_ERR_LINK);
    CHECK_RESULT(dec_cut(&p, &b, LINKTYPE_LOOP, 3, 3), DECODE_ERR_LINK);
    /* unsupported link types */
    CHECK_RESULT(dec(&p, &b, 105), DECODE_ERR_LINKTYPE);
    CHECK_RESULT(dec(&p, &b, -1), DECODE_ERR_LINKTYPE);
    CHECK(!decode_linktype_supported(105));
    CHECK(!decode_linktype_supported(12));
    static const int supported[] = {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW,
                                    LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4,
                                    LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2};
    for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++) {
        CHECK(decode_linktype_supported(supported[i]));
        /* a zero-length packet is an error for every link type */
        enum decode_result r = dec_cut(&p, &b, supported[i], 0, 0);
        CHECK(decode_is_error(r));
        CHECK(r == DECODE_ERR_LINK || r == DECODE_ERR_IP_SHORT);
        CHECK_EQ_U64(p.flags, 0);
    }
}

static void test_result_names(void)
{
    for (int r = 0; r < DECODE_RESULT_COUNT; r++) {
        const char *n = decode_result_name((enum decode_result)r);
        CHECK(n != NULL && n[0] != '?');
        CHECK_EQ_INT(decode_is_error((enum decode_result)r), r >= DECODE_OK_COUNT);
    }
    CHECK_STR(decode_result_name(DECODE_RESULT_COUNT), "?");
    CHECK_STR(decode_result_name(DECODE_TCP), "tcp");
}

/* Every cut of a valid packet either decodes (with offsets inside caplen)
 * or is an error; never a read past caplen (ASan build). */
static void truncate_all(const struct pb *b, int linktype, enum decode_result full_result)
{
    unsigned bad = 0;
    for (uint32_t cap = 0; cap <= b->n; cap++) {
        for (int same_wire = 0; same_wire < 2; same_wire++) {
            struct packet p;
            enum decode_result r = dec_cut(&p, b, linktype, cap, same_wire ? cap : b->n);
            if (r >= DECODE_RESULT_COUNT)
                bad++;
            else if (!decode_is_error(r) && r != DECODE_NOT_IP &&
                     (p.payload_off > cap || p.payload_len > cap - p.payload_off ||
                      p.l4_off > cap || p.l3_off > cap))
                bad++;
            if (cap == b->n && r != full_result)
                bad++;
        }
    }
    CHECK_EQ_U64(bad, 0);
}

static void test_truncation(void)
{
    struct pb b;
    pb_init(&b);
    eth(&b, 0x8100);
    vlan(&b, 5, 0x86dd);
    ipv6(&b, 0, A6, B6);
    ipv6_ext(&b, 44, 1);
    ipv6_frag(&b, 60, 0, 1);
    ipv6_ext(&b, IPPROTO_TCP, 0);
    tcp(&b, 443, 50000, 20);
    payload(&b, "\x16\x03\x01\x01\x05hello");
    finish(&b);
    truncate_all(&b, LINKTYPE_ETHERNET, DECODE_TCP);

    pb_init(&b);
    put32(&b, 2);
    ipv4(&b, IPPROTO_UDP, A4, B4, 40, 0);
    udp(&b, 53, 53);
    payload(&b, "0123456789abcdef");
    finish(&b);
    b.d[0] = 2;
    b.d[3] = 0;
    truncate_all(&b, LINKTYPE_NULL, DECODE_UDP);

    pb_init(&b);
    put16(&b, 0x0800);
    fill(&b, 0, 18);
    build_inner_v4(&b);
    truncate_all(&b, LINKTYPE_LINUX_SLL2, DECODE_TCP);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_eth_ipv4_tcp_options();
    test_eth_padding();
    test_udp_lengths();
    test_key_symmetry();
    test_vlan();
    test_not_ip_and_link();
    test_ipv4_malformed();
    test_tcp_malformed();
    test_udp_icmp_other();
    test_ipv4_fragments();
    test_ipv6_ext();
    test_ipv6_fragments();
    test_link_types();
    test_result_names();
    test_truncation();
    return test_summary(argv[0]);
}
