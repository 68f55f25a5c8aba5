/* defrag.h - IPv4 and IPv6 reassembly (REASSEMBLY 1). Fragments are held
 * per datagram (source, destination, identification, and for IPv4 the
 * protocol) until it is whole; it is then rebuilt as one frame, the first
 * fragment's link and IP headers with the fragment fields cleared (IPv6:
 * the fragment header removed), which goes through the normal path like
 * any captured frame. Memory is fixed at start: nothing is allocated per
 * fragment. The policy on overlaps is Linux's: an exact duplicate is
 * ignored (the first copy stays), any other overlap discards the datagram. */
#ifndef DATI_DEFRAG_H
#define DATI_DEFRAG_H

#include <stdint.h>

#include "packet.h"

/* Headers (link, IP, IPv6 extensions before the fragment header) kept from
 * a first fragment at most; a frame with more is counted invalid. */
#define DEFRAG_HEADER_MAX 1024
/* The largest frame a rebuilt datagram makes: a buffer this size is enough. */
#define DEFRAG_FRAME_MAX (DEFRAG_HEADER_MAX + 65535)

struct defrag_limits {
    uint64_t memcap;           /* bytes of fragments held, all datagrams together */
    uint32_t max_datagrams;    /* datagrams being reassembled at once */
    uint32_t max_size;         /* largest datagram payload (after the IP header), bytes */
    uint64_t timeout_ns;       /* packet time from a datagram's first fragment */
};

/* Every fragment ends in exactly one of reassembled, duplicates, the drops,
 * or (for now) held. */
struct defrag_counters {
    uint64_t fragments;        /* frames that were IP fragments */
    uint64_t datagrams;        /* datagrams rebuilt */
    uint64_t reassembled;      /* fragments in them */
    uint64_t duplicates;       /* same offset and length as one held: ignored */
    uint64_t conflicting;      /* of those, with other bytes than the copy kept */
    uint64_t timeout;          /* dropped: datagram incomplete at its timeout or at the end */
    uint64_t overlap;          /* dropped: their datagram had overlapping fragments */
    uint64_t too_big;          /* dropped: their datagram would exceed max_size */
    uint64_t no_room;          /* dropped: memcap or max_datagrams reached */
    uint64_t invalid;          /* dropped: cut by the capture, misaligned, beyond the end */
    uint64_t undecodable;      /* rebuilt datagrams whose headers do not decode */
    uint64_t held;             /* fragments held now */
    uint64_t held_bytes;       /* memory they take now (whole blocks) */
};

enum defrag_result {
    DEFRAG_HELD,               /* taken (held, ignored or dropped): nothing to process */
    DEFRAG_DONE,               /* the datagram is whole: process *out */
    DEFRAG_PASS,               /* not a fragment after all (IPv6 atomic fragment): process p */
};

struct defrag;

/* NULL when the memory cannot be had. */
struct defrag *defrag_new(const struct defrag_limits *lim);
void defrag_free(struct defrag *d);

/* p: a decoded frame with PKT_FRAGMENT. On DEFRAG_DONE, *out is the rebuilt
 * frame in buf (DEFRAG_FRAME_MAX bytes), not yet decoded: caplen, times,
 * frame number and interface are p's (the fragment that completed it), and
 * extra_frames/extra_bytes are the other fragments' frames and wire bytes. */
enum defrag_result defrag_add(struct defrag *d, const struct packet *p, uint8_t *buf,
                              struct packet *out);

/* Drops the datagrams whose first fragment is older than the timeout at
 * clock; UINT64_MAX drops them all (end of input). */
void defrag_expire(struct defrag *d, uint64_t clock);

const struct defrag_counters *defrag_counters(const struct defrag *d);

/* defrag_add, then the decoding of what it rebuilt, for a frame p (decoded,
 * PKT_FRAGMENT) of a link of type linktype: returns what is to be
 * processed, p itself, out (the datagram p completed, decoded, in buf), or
 * NULL (nothing: the fragment is held or dropped). Expires datagrams first. */
struct packet *defrag_packet(struct defrag *d, struct packet *p, int linktype, uint8_t *buf,
                             struct packet *out);

#endif
