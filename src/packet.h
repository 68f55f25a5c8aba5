/* packet.h - one captured packet as it travels from the reader to a worker:
 * where its bytes are, when it was seen, and what the decoder found in it.
 * Written by the reader thread, read-only for the worker that receives it. */
#ifndef DATI_PACKET_H
#define DATI_PACKET_H

#include <stdint.h>

/* Flow identity, canonical so that both directions give the same key:
 * the (address, port) pair that compares lower is always stored first. */
struct flow_key {
    uint8_t lo_addr[16];   /* IPv4 uses the first 4 bytes, the rest stay 0 */
    uint8_t hi_addr[16];
    uint16_t lo_port;      /* host order; 0 for protocols without ports */
    uint16_t hi_port;
    uint8_t proto;         /* IPPROTO_* */
    uint8_t family;        /* 4 or 6 */
    uint8_t pad[2];        /* always 0, so keys compare as words */
} __attribute__((aligned(8)));

/* decode.c builds keys as five little-endian words in this layout */
_Static_assert(sizeof(struct flow_key) == 40, "flow key layout");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "keys are built for little-endian hosts");

/* Keys are 40 bytes with zeroed padding: compare them as five words. */
static inline int flow_key_equal(const struct flow_key *a, const struct flow_key *b)
{
    const uint64_t *x = (const uint64_t *)(const void *)a, *y = (const uint64_t *)(const void *)b;
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

enum {
    PKT_HAS_KEY = 1 << 0,     /* key and hash are valid: the packet can join a flow */
    PKT_SRC_IS_LO = 1 << 1,   /* the sender is key.lo_* */
    PKT_FRAGMENT = 1 << 2,    /* an IPv4/IPv6 fragment (first or later) */
    PKT_SNAPPED = 1 << 3,     /* the capture kept less of the datagram than was sent */
    PKT_REASSEMBLED = 1 << 4, /* rebuilt from IP fragments (defrag.h) */
};

struct packet {
    const uint8_t *data;      /* first byte of the link-layer header */
    uint32_t caplen;          /* bytes available at data */
    uint32_t wirelen;         /* length on the wire, bytes */
    uint64_t ts;              /* capture time, ns since the epoch */
    uint64_t clock;           /* reader's clock (latest ts so far), ns */
    uint64_t frame;           /* 1-based position in the input */
    uint32_t hash;            /* symmetric flow hash, valid with PKT_HAS_KEY */
    uint16_t link_slot;       /* classifier's compiled-program set for the link type */
    uint8_t flags;            /* PKT_* */
    uint8_t ip_version;       /* 4, 6, or 0 when not IP */
    uint8_t l4_proto;         /* IPPROTO_* of the innermost header decoded */
    uint8_t tcp_flags;        /* TCP flags byte (FIN 0x01, SYN 0x02, ...) */
    uint8_t iface;            /* live capture: 1-based interface index; 0: a file */
    uint8_t pad;
    uint32_t tcp_seq;         /* TCP sequence number, host order */
    uint32_t l3_off;          /* offset of the IP header */
    uint32_t l4_off;          /* offset of the TCP/UDP/ICMP header */
    uint32_t payload_off;     /* offset of the L4 payload */
    uint32_t payload_len;     /* L4 payload bytes captured (padding excluded) */
    uint16_t sport, dport;    /* host order */
    uint32_t extra_bytes;     /* a reassembled datagram: wire bytes of its other fragments */
    struct flow_key key;
    uint16_t extra_frames;    /* and their number (0: a packet of one frame) */
};

static inline const uint8_t *packet_src_addr(const struct packet *p)
{
    return p->data + p->l3_off + (p->ip_version == 4 ? 12 : 8);
}

static inline const uint8_t *packet_dst_addr(const struct packet *p)
{
    return p->data + p->l3_off + (p->ip_version == 4 ? 16 : 24);
}

static inline const uint8_t *packet_payload(const struct packet *p)
{
    return p->data + p->payload_off;
}

#endif
