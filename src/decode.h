/* decode.h - link, network and transport headers into offsets, without copies.
 * Pure functions of the packet bytes; safe on any input, never reads past caplen. */
#ifndef DATI_DECODE_H
#define DATI_DECODE_H

#include "packet.h"

/* Link types as written in pcap/pcapng files (LINKTYPE_*, not DLT_*). */
enum {
    LINKTYPE_NULL = 0,
    LINKTYPE_ETHERNET = 1,
    LINKTYPE_RAW = 101,
    LINKTYPE_LOOP = 108,
    LINKTYPE_LINUX_SLL = 113,
    LINKTYPE_IPV4 = 228,
    LINKTYPE_IPV6 = 229,
    LINKTYPE_LINUX_SLL2 = 276,
};

/* Every packet ends in exactly one of these; the first group is "decoded",
 * the second is a malformed packet. Names in decode_result_name(). */
enum decode_result {
    DECODE_TCP,
    DECODE_UDP,
    DECODE_ICMP,          /* ICMP and ICMPv6 */
    DECODE_IP_OTHER,      /* IP with another upper protocol (GRE, ESP, SCTP, ...) */
    DECODE_FRAGMENT,      /* a later IP fragment: no transport header */
    DECODE_NOT_IP,        /* ARP, LLDP, ...: valid, but nothing for the flow table */
    DECODE_OK_COUNT,
    DECODE_ERR_LINK = DECODE_OK_COUNT, /* link header shorter than its type needs */
    DECODE_ERR_VLAN,      /* VLAN tag cut short, or too many nested tags */
    DECODE_ERR_IP_SHORT,  /* IP header cut short */
    DECODE_ERR_IP_VERSION,/* version nibble disagrees with the link's protocol */
    DECODE_ERR_IP_HLEN,   /* IPv4 header length below 20 bytes */
    DECODE_ERR_IP_LEN,    /* IP total length smaller than its header, or beyond the frame */
    DECODE_ERR_IPV6_EXT,  /* extension header chain cut short or too long */
    DECODE_ERR_TCP_SHORT, /* TCP header cut short */
    DECODE_ERR_TCP_OFFSET,/* TCP data offset below 5 or past the segment */
    DECODE_ERR_UDP_SHORT, /* UDP header cut short */
    DECODE_ERR_UDP_LEN,   /* UDP length below 8 */
    DECODE_ERR_ICMP_SHORT,
    DECODE_ERR_LINKTYPE,  /* a link type dati does not decode */
    DECODE_RESULT_COUNT
};

#define DECODE_IPV6_MAX_EXT 8   /* extension headers followed before giving up */
#define DECODE_MAX_VLAN 4       /* nested 802.1Q/802.1ad tags */

/* Fills p's decoded members from p->data/caplen/wirelen for the given link
 * type; sets PKT_HAS_KEY, key and hash when the packet can belong to a flow. */
enum decode_result decode_packet(struct packet *p, int linktype);

int decode_is_error(enum decode_result r);
const char *decode_result_name(enum decode_result r);
int decode_linktype_supported(int linktype);

/* Symmetric hash of a canonical key. */
uint32_t flow_key_hash(const struct flow_key *k);

#endif
