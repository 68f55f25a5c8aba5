/* decode.c - Ethernet/802.1Q/SLL/raw/loopback, IPv4/IPv6 and TCP/UDP/ICMP
 * into the offsets of struct packet. Every bound is checked with BYTES_FITS;
 * a malformed packet is a verdict, never an error path or a log line. */
#include "decode.h"

#include <netinet/in.h>
#include <string.h>

#include "bytes.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100

static const char *const result_names[DECODE_RESULT_COUNT] = {
    [DECODE_TCP] = "tcp",
    [DECODE_UDP] = "udp",
    [DECODE_ICMP] = "icmp",
    [DECODE_IP_OTHER] = "ip_other",
    [DECODE_FRAGMENT] = "ip_fragment",
    [DECODE_NOT_IP] = "not_ip",
    [DECODE_ERR_LINK] = "link_short",
    [DECODE_ERR_VLAN] = "vlan_bad",
    [DECODE_ERR_IP_SHORT] = "ip_short",
    [DECODE_ERR_IP_VERSION] = "ip_version",
    [DECODE_ERR_IP_HLEN] = "ip_header_len",
    [DECODE_ERR_IP_LEN] = "ip_total_len",
    [DECODE_ERR_IPV6_EXT] = "ipv6_ext_chain",
    [DECODE_ERR_TCP_SHORT] = "tcp_short",
    [DECODE_ERR_TCP_OFFSET] = "tcp_data_offset",
    [DECODE_ERR_UDP_SHORT] = "udp_short",
    [DECODE_ERR_UDP_LEN] = "udp_len",
    [DECODE_ERR_ICMP_SHORT] = "icmp_short",
    [DECODE_ERR_LINKTYPE] = "linktype_unsupported",
};

const char *decode_result_name(enum decode_result r)
{
    return r < DECODE_RESULT_COUNT ? result_names[r] : "?";
}

int decode_is_error(enum decode_result r) { return r >= DECODE_OK_COUNT; }

int decode_linktype_supported(int linktype)
{
    switch (linktype) {
    case LINKTYPE_NULL: case LINKTYPE_ETHERNET: case LINKTYPE_RAW: case LINKTYPE_LOOP:
    case LINKTYPE_LINUX_SLL: case LINKTYPE_IPV4: case LINKTYPE_IPV6:
    case LINKTYPE_LINUX_SLL2:
        return 1;
    }
    return 0;
}

/* One word of the key into the hash. */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

static inline uint32_t hash_words(uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3,
                                  uint64_t w4)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    return (uint32_t)mix(mix(mix(mix(mix(h, w0), w1), w2), w3), w4);
}

uint32_t flow_key_hash(const struct flow_key *k)
{
    uint64_t w[5];
    memcpy(w, k, sizeof w);
    return hash_words(w[0], w[1], w[2], w[3], w[4]);
}

/* Orders the endpoints so that A->B and B->A give the same key. */
static uint64_t load64(const uint8_t *a)
{
    uint64_t v;
    memcpy(&v, a, 8);
    return v;
}

/* The key is built as five words in registers, stored a word at a time
 * and hashed from the registers: built field by field (or through an array
 * on the stack), the reads that followed waited for narrower stores before
 * them (a store-forwarding stall per packet). */
static void make_key(struct packet *p, const uint8_t *src, const uint8_t *dst, int alen)
{
    uint64_t w0, w1 = 0, w2, w3 = 0;
    int src_lo;
    if (alen == 4) {
        uint32_t s4 = rd32(src), d4 = rd32(dst);   /* big-endian: compares as memcmp */
        src_lo = s4 < d4 || (s4 == d4 && p->sport <= p->dport);
        uint32_t s_le, d_le;
        memcpy(&s_le, src, 4);
        memcpy(&d_le, dst, 4);
        w0 = src_lo ? s_le : d_le;
        w2 = src_lo ? d_le : s_le;
    } else {
        uint64_t s0 = __builtin_bswap64(load64(src)), d0 = __builtin_bswap64(load64(dst));
        uint64_t s1 = __builtin_bswap64(load64(src + 8)), d1 = __builtin_bswap64(load64(dst + 8));
        int c = s0 != d0 ? (s0 < d0 ? -1 : 1) : s1 != d1 ? (s1 < d1 ? -1 : 1) : 0;
        src_lo = c < 0 || (c == 0 && p->sport <= p->dport);
        const uint8_t *lo = src_lo ? src : dst, *hi = src_lo ? dst : src;
        w0 = load64(lo);
        w1 = load64(lo + 8);
        w2 = load64(hi);
        w3 = load64(hi + 8);
    }
    uint16_t lo_port = src_lo ? p->sport : p->dport, hi_port = src_lo ? p->dport : p->sport;
    /* lo_port, hi_port, proto, family, two zero bytes: struct flow_key's layout */
    uint64_t w4 = (uint64_t)lo_port | (uint64_t)hi_port << 16 | (uint64_t)p->l4_proto << 32 |
                  (uint64_t)p->ip_version << 40;
    uint8_t *k = (uint8_t *)&p->key;
    memcpy(k, &w0, 8);
    memcpy(k + 8, &w1, 8);
    memcpy(k + 16, &w2, 8);
    memcpy(k + 24, &w3, 8);
    memcpy(k + 32, &w4, 8);
    p->flags |= PKT_HAS_KEY | (src_lo ? PKT_SRC_IS_LO : 0);
    p->hash = hash_words(w0, w1, w2, w3, w4);
}

/* A transport header cut by the snapshot length (not by a short datagram):
 * the ports are there, the payload is not. Such a packet still counts in its
 * flow. */
static enum decode_result snapped_ports(struct packet *p, uint32_t off, uint32_t end,
                                        enum decode_result ok, enum decode_result bad)
{
    if (!(p->flags & PKT_SNAPPED) || !BYTES_FITS(off, 4, end))
        return bad;
    p->sport = rd16(p->data + off);
    p->dport = rd16(p->data + off + 2);
    p->payload_off = end;
    p->payload_len = 0;
    return ok;
}

/* Transport header at off, within an IP payload ending at end (captured). */
static enum decode_result decode_l4(struct packet *p, uint32_t off, uint32_t end)
{
    const uint8_t *d = p->data;
    p->l4_off = off;
    switch (p->l4_proto) {
    case IPPROTO_TCP: {
        if (!BYTES_FITS(off, 20, end))
            return snapped_ports(p, off, end, DECODE_TCP, DECODE_ERR_TCP_SHORT);
        uint32_t hlen = (uint32_t)(d[off + 12] >> 4) * 4;
        if (hlen < 20)
            return DECODE_ERR_TCP_OFFSET;
        if (!BYTES_FITS(off, hlen, end))
            return snapped_ports(p, off, end, DECODE_TCP, DECODE_ERR_TCP_OFFSET);
        p->sport = rd16(d + off);
        p->dport = rd16(d + off + 2);
        p->tcp_seq = rd32(d + off + 4);
        p->tcp_flags = d[off + 13];
        p->payload_off = off + hlen;
        p->payload_len = end - off - hlen;
        return DECODE_TCP;
    }
    case IPPROTO_UDP: {
        if (!BYTES_FITS(off, 8, end))
            return snapped_ports(p, off, end, DECODE_UDP, DECODE_ERR_UDP_SHORT);
        uint32_t ulen = rd16(d + off + 4);
        if (ulen != 0 && ulen < 8)   /* 0 is legal for IPv6 jumbograms */
            return DECODE_ERR_UDP_LEN;
        p->sport = rd16(d + off);
        p->dport = rd16(d + off + 2);
        p->payload_off = off + 8;
        p->payload_len = end - off - 8;
        if (ulen >= 8 && ulen - 8 < p->payload_len)
            p->payload_len = ulen - 8;
        return DECODE_UDP;
    }
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
        if (!BYTES_FITS(off, 4, end))
            return DECODE_ERR_ICMP_SHORT;
        p->payload_off = off + 4;
        p->payload_len = end - off - 4;
        return DECODE_ICMP;
    default:
        p->payload_off = off;
        p->payload_len = end - off;
        return DECODE_IP_OTHER;
    }
}

/* End of the IP datagram within the captured bytes: Ethernet padding after
 * the datagram is not payload, a snaplen cut is not an error. */
static int ip_end(struct packet *p, uint32_t off, uint32_t total, uint32_t *end)
{
    uint32_t wire_avail = p->wirelen > off ? p->wirelen - off : 0;
    if (p->wirelen < p->caplen)
        wire_avail = p->caplen - off;
    if (total > wire_avail)
        return -1;
    uint32_t cap_avail = p->caplen - off;
    *end = off + (total < cap_avail ? total : cap_avail);
    if (total > cap_avail)
        p->flags |= PKT_SNAPPED;
    return 0;
}

static enum decode_result decode_ipv4(struct packet *p, uint32_t off)
{
    const uint8_t *d = p->data;
    if (!BYTES_FITS(off, 20, p->caplen))
        return DECODE_ERR_IP_SHORT;
    if (d[off] >> 4 != 4)
        return DECODE_ERR_IP_VERSION;
    uint32_t hlen = (uint32_t)(d[off] & 0x0f) * 4;
    if (hlen < 20)
        return DECODE_ERR_IP_HLEN;
    if (!BYTES_FITS(off, hlen, p->caplen))
        return DECODE_ERR_IP_SHORT;
    uint32_t total = rd16(d + off + 2);
    if (total == 0)        /* TSO/GSO captures leave it 0: trust the frame */
        total = p->caplen - off;
    if (total < hlen)
        return DECODE_ERR_IP_LEN;
    uint32_t end;
    if (ip_end(p, off, total, &end) < 0)
        return DECODE_ERR_IP_LEN;
    p->ip_version = 4;
    p->l3_off = off;
    p->l4_proto = d[off + 9];
    uint16_t frag = rd16(d + off + 6);
    if (frag & 0x3fff)
        p->flags |= PKT_FRAGMENT;
    if (frag & 0x1fff) {   /* a later fragment carries no transport header */
        p->l4_off = p->payload_off = off + hlen;
        p->payload_len = end - off - hlen;
        return DECODE_FRAGMENT;
    }
    enum decode_result r = decode_l4(p, off + hlen, end);
    if (r == DECODE_TCP || r == DECODE_UDP || r == DECODE_ICMP)
        make_key(p, d + off + 12, d + off + 16, 4);
    return r;
}

static int ipv6_is_ext(uint8_t nh)
{
    return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 51 ||
           nh == 135 || nh == 139 || nh == 140;
}

static enum decode_result decode_ipv6(struct packet *p, uint32_t off)
{
    const uint8_t *d = p->data;
    if (!BYTES_FITS(off, 40, p->caplen))
        return DECODE_ERR_IP_SHORT;
    if (d[off] >> 4 != 6)
        return DECODE_ERR_IP_VERSION;
    uint32_t plen = rd16(d + off + 4);
    if (plen == 0)         /* jumbogram or TSO capture */
        plen = p->caplen - off - 40;
    uint32_t end;
    if (ip_end(p, off, 40 + plen, &end) < 0)
        return DECODE_ERR_IP_LEN;
    p->ip_version = 6;
    p->l3_off = off;
    uint8_t nh = d[off + 6];
    uint32_t cur = off + 40;
    for (int n = 0; ipv6_is_ext(nh); n++) {
        if (n == DECODE_IPV6_MAX_EXT || !BYTES_FITS(cur, 8, end))
            return DECODE_ERR_IPV6_EXT;
        uint32_t len;
        if (nh == 44) {    /* fragment header: fixed 8 bytes */
            len = 8;
            if (rd16(d + cur + 2) & 0xfff9)   /* RFC 6946: an atomic fragment is none */
                p->flags |= PKT_FRAGMENT;
            if (rd16(d + cur + 2) & 0xfff8) {
                p->l4_proto = d[cur];
                p->l4_off = p->payload_off = cur + 8;
                p->payload_len = end - cur - 8;
                return DECODE_FRAGMENT;
            }
        } else if (nh == 51) {  /* AH counts its length in 4-byte words */
            len = ((uint32_t)d[cur + 1] + 2) * 4;
        } else {
            len = ((uint32_t)d[cur + 1] + 1) * 8;
        }
        if (!BYTES_FITS(cur, len, end))
            return DECODE_ERR_IPV6_EXT;
        nh = d[cur];
        cur += len;
    }
    p->l4_proto = nh;
    enum decode_result r = decode_l4(p, cur, end);
    if (r == DECODE_TCP || r == DECODE_UDP || r == DECODE_ICMP)
        make_key(p, d + off + 8, d + off + 24, 16);
    return r;
}

static enum decode_result decode_ethertype(struct packet *p, uint32_t off, uint16_t type)
{
    for (int tags = 0;; tags++) {
        if (type == ETHERTYPE_IPV4)
            return decode_ipv4(p, off);
        if (type == ETHERTYPE_IPV6)
            return decode_ipv6(p, off);
        if (type != ETHERTYPE_VLAN && type != ETHERTYPE_QINQ && type != ETHERTYPE_QINQ_OLD)
            return DECODE_NOT_IP;
        if (tags == DECODE_MAX_VLAN || !BYTES_FITS(off, 4, p->caplen))
            return DECODE_ERR_VLAN;
        type = rd16(p->data + off + 2);
        off += 4;
    }
}

/* Raw IP: the version nibble says which. */
static enum decode_result decode_raw(struct packet *p, uint32_t off)
{
    if (!BYTES_FITS(off, 1, p->caplen))
        return DECODE_ERR_IP_SHORT;
    switch (p->data[off] >> 4) {
    case 4: return decode_ipv4(p, off);
    case 6: return decode_ipv6(p, off);
    }
    return DECODE_ERR_IP_VERSION;
}

/* BSD loopback: a 4-byte address family, host order for NULL, network order
 * for LOOP; AF_INET6 differs between systems (10, 24, 28, 30). */
static enum decode_result decode_null(struct packet *p, int network_order)
{
    if (p->caplen < 4)
        return DECODE_ERR_LINK;
    uint32_t af = network_order ? rd32(p->data) : rd32le(p->data);
    if (!network_order && af > 0xffff)
        af = rd32(p->data);   /* written on a big-endian host */
    switch (af) {
    case 2: return decode_ipv4(p, 4);
    case 10: case 24: case 28: case 30: return decode_ipv6(p, 4);
    }
    return DECODE_NOT_IP;
}

enum decode_result decode_packet(struct packet *p, int linktype)
{
    p->flags = 0;
    p->ip_version = 0;
    p->l4_proto = 0;
    p->l3_off = p->l4_off = p->payload_off = p->payload_len = 0;
    p->sport = p->dport = 0;
    p->tcp_seq = 0;
    p->tcp_flags = 0;
    p->hash = 0;
    switch (linktype) {
    case LINKTYPE_ETHERNET:
        if (p->caplen < 14)
            return DECODE_ERR_LINK;
        return decode_ethertype(p, 14, rd16(p->data + 12));
    case LINKTYPE_LINUX_SLL:
        if (p->caplen < 16)
            return DECODE_ERR_LINK;
        return decode_ethertype(p, 16, rd16(p->data + 14));
    case LINKTYPE_LINUX_SLL2:
        if (p->caplen < 20)
            return DECODE_ERR_LINK;
        return decode_ethertype(p, 20, rd16(p->data));
    case LINKTYPE_RAW:
        return decode_raw(p, 0);
    case LINKTYPE_IPV4:
        return decode_ipv4(p, 0);
    case LINKTYPE_IPV6:
        return decode_ipv6(p, 0);
    case LINKTYPE_NULL:
        return decode_null(p, 0);
    case LINKTYPE_LOOP:
        return decode_null(p, 1);
    }
    return DECODE_ERR_LINKTYPE;
}
