/* classify.h - the named BPF filters: compiled once per link type with
 * libpcap, run on every decoded packet, giving a bit mask of matches.
 * Programs are compiled by the reader thread before it hands a packet of a
 * new link type to any worker; workers only read them afterwards. */
#ifndef DATI_CLASSIFY_H
#define DATI_CLASSIFY_H

#include <pcap/pcap.h>
#include <stdint.h>

#include "packet.h"

#define CLASSIFY_MAX_FILTERS 64   /* one bit each in a flow's filter mask */
#define CLASSIFY_MAX_LINKS 16     /* distinct link types in one input */

struct classify_link {
    int linktype;
    uint64_t usable;              /* filters that compiled for this link type */
    struct bpf_program prog[CLASSIFY_MAX_FILTERS];
};

struct classifier {
    int nfilters;
    const char *name[CLASSIFY_MAX_FILTERS];   /* borrowed from the config */
    const char *expr[CLASSIFY_MAX_FILTERS];
    int nlinks;
    struct classify_link link[CLASSIFY_MAX_LINKS];
};

void classify_init(struct classifier *c);
void classify_fini(struct classifier *c);

/* Adds a filter (name and expression are borrowed). Returns its index or -1. */
int classify_add(struct classifier *c, const char *name, const char *expr);

/* The program set for a link type, compiling it on first use. Filters that
 * do not compile for it (e.g. "ether host" on raw IP) never match there; a
 * warning names each. Returns the slot, or -1 when there are too many link
 * types. */
int classify_link_slot(struct classifier *c, int linktype);

/* Bit i set when filter i matches. */
static inline uint64_t classify_packet(const struct classifier *c, const struct packet *p)
{
    const struct classify_link *l = &c->link[p->link_slot];
    uint64_t mask = 0;
    for (int i = 0; i < c->nfilters; i++) {
        if (((l->usable >> i) & 1) &&
            bpf_filter(l->prog[i].bf_insns, p->data, p->wirelen, p->caplen))
            mask |= 1ull << i;
    }
    return mask;
}

/* Compiles expr for Ethernet to check it; on failure writes libpcap's message
 * into err and returns -1. */
int classify_check(const char *expr, char *err, size_t errlen);

/* The DLT value libpcap expects for a file's LINKTYPE value. */
int classify_dlt(int linktype);

#endif
