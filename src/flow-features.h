/* flow-features.h - FLOW_FEATURES N: per-flow statistics for classifiers that
 * never see packets. The first N packets' sizes, directions and gaps (the
 * "SPLT" features of the traffic-classification literature) and, per
 * direction over the whole flow, packet size and inter-arrival min, mean,
 * max and standard deviation. Stored beside the flow table (the flow
 * entry stays as it is), one fixed-size slot per flow entry, allocated
 * once: nothing per packet. doc/records.md defines the members. */
#ifndef DATI_FLOW_FEATURES_H
#define DATI_FLOW_FEATURES_H

#include <stddef.h>
#include <stdint.h>

struct outbuf;

#define FEATURES_MAX 64           /* FLOW_FEATURES' upper bound: a bit per packet's direction */

struct feature_dir {
    uint32_t len_min, len_max;    /* bytes on the wire */
    uint64_t len_sum;
    double len_sq;                /* sum of squares, for the deviation */
    uint32_t iat_min, iat_max;    /* µs between packets of this direction */
    uint64_t iat_sum;
    double iat_sq;
    uint64_t last_ts;             /* ns; 0: no packet yet */
    uint64_t packets;
};

struct flow_features {
    struct feature_dir d[2];      /* [FLOW_C2S], [FLOW_S2C] */
    uint64_t prev_ts;             /* the flow's previous packet, ns */
    uint64_t dirs;                /* bit i: packet i went server to client */
    uint32_t n;                   /* packets in the arrays below (at most the table's splt) */
    uint32_t pad;
    uint32_t splt[];              /* len[splt], then iat_us[splt] */
};

struct feature_table {
    uint8_t *mem;
    size_t stride;
    uint32_t splt;                /* N */
    uint32_t nslots;
};

/* One slot per flow entry. Returns 0, or -1 when memory ran out. */
int features_init(struct feature_table *t, uint32_t nslots, unsigned splt);
void features_fini(struct feature_table *t);

static inline struct flow_features *features_of(const struct feature_table *t, uint32_t slot)
{
    return (struct flow_features *)(void *)(t->mem + (size_t)slot * t->stride);
}

/* A new flow in the slot: forget the one before. */
void features_reset(const struct feature_table *t, struct flow_features *f);

/* A packet of the flow: direction, bytes on the wire, capture time (ns). */
void features_update(const struct feature_table *t, struct flow_features *f, int dir, uint32_t len,
                     uint64_t ts);

/* "features":{...} as a member (a leading comma). Returns 0 or -1. */
int features_json(struct outbuf *b, const struct feature_table *t, const struct flow_features *f);

#endif
