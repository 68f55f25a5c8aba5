/* flow.h - the flow table (the seed's BPA "sessions"): bidirectional 5-tuple
 * flows, preallocated, expired by idle time in O(1) per packet.
 * One table per worker; only its worker thread touches it. */
#ifndef DATI_FLOW_H
#define DATI_FLOW_H

#include <stdint.h>

#include "packet.h"

enum flow_end {
    FLOW_END_IDLE,       /* no packet for longer than the idle timeout */
    FLOW_END_EOF,        /* still active when the input ended */
    FLOW_END_EVICTED,    /* the table was full; the least recently seen flow made room */
    FLOW_END_SHUTDOWN,   /* dati was stopped */
    FLOW_END_COUNT,
    FLOW_INTERIM = FLOW_END_COUNT, /* not an end: ACTIVE_TIMEOUT's record of a long flow */
    FLOW_START                     /* not an end: FLOW_EVENTS' event of a new flow */
};

enum { FLOW_C2S = 0, FLOW_S2C = 1 };

#define FLOW_MAX_TAGS 4   /* tags a flow can carry: the entry stays 144 bytes */

struct flow {
    struct flow_key key;      /* hot: compared on lookup */
    uint32_t hash;
    uint32_t chain;           /* free list: next free entry, 1-based index, 0 = none */
    uint64_t last_clock;      /* reader clock at the last packet, ns: drives expiry */
    uint64_t packets[2];      /* [FLOW_C2S], [FLOW_S2C] */
    uint64_t bytes[2];        /* on-the-wire bytes per direction */
    uint64_t filters;         /* bit i: filter i matched a packet of this flow */
    uint64_t id;              /* frame number of the packet that created it */
    uint64_t first_ts, last_ts; /* capture time of first and latest packet, ns */
    uint32_t lru_prev, lru_next; /* 1-based; head is the flow idle the longest */
    uint32_t tcp_end[2];      /* per direction: highest sequence number + payload seen */
    uint8_t client_is_lo : 1; /* the client (first sender) is key.lo_* */
    uint8_t tcp_seen : 2;     /* bit per direction: tcp_end[] is valid (one byte for both) */
    uint8_t app_done : 1;     /* CLASSIFY: nDPI needs no more of this flow (app.h) */
    uint8_t matched : 1;      /* a filter matched a packet once (filters may be remapped) */
    uint8_t stream_open : 2;  /* REASSEMBLY: bit per direction: a message is being reassembled */
    uint8_t fragmented : 1;   /* REASSEMBLY: it had IP fragments (its counts in frag_counts) */
    uint8_t iface;            /* packet.iface of the first packet */
    uint8_t marks;            /* FLOW_WATCH, FLOW_IGNORE, FLOW_STATE_* (feedback channel) */
    uint8_t tag[FLOW_MAX_TAGS]; /* tags (flowtag.h): name index + 1, 0 = none */
    uint8_t reports;          /* ACTIVE_TIMEOUT periods covered by interim records */
};

enum { FLOW_WATCH = 1, FLOW_IGNORE = 2, FLOW_STATE_SENT = 4 /* dati:flow:<id> was written */,
       FLOW_STATE_DIRTY = 8 /* a command changed it: dati:flow:<id> to be written again */ };

typedef void (*flow_emit_fn)(void *ctx, const struct flow *f, enum flow_end why);

/* A cache line of the hash index: up to 8 flows, each with a 16-bit tag of
 * its hash, so a lookup loads one line and only the entries whose tag
 * matches (a new flow, or a bucket shared with others, costs no entry load).
 * A full bucket sends further flows to the next (linear probing); overflow
 * counts the flows that passed it, so a lookup knows when to go on. */
#define FLOW_BUCKET_SLOTS 8
struct flow_bucket {
    uint32_t idx[FLOW_BUCKET_SLOTS];   /* 1-based entry index, 0 = free */
    uint16_t tag[FLOW_BUCKET_SLOTS];
    uint32_t overflow;
    uint32_t pad[3];
} __attribute__((aligned(64)));

struct flow_table {
    struct flow *flows;       /* max_flows entries, index i stored as i + 1 */
    struct flow_bucket *buckets;   /* the hash index: room for twice max_flows */
    uint32_t bucket_mask;
    uint32_t seed;            /* random per table: where a flow lands cannot be chosen */
    uint32_t probe_max;       /* buckets past its home the farthest flow ever went */
    uint32_t max_flows;
    uint32_t used;            /* entries ever handed out (high-water mark) */
    uint32_t free_head;       /* recycled entries, chained through .chain */
    uint32_t lru_head, lru_tail;
    uint64_t idle_ns;
    flow_emit_fn emit;
    void *emit_ctx;
    /* counters, read by the stats reporter */
    uint64_t active, created;
    uint64_t ended[FLOW_END_COUNT];
};

/* Allocates room for max_flows flows and an index of at least `buckets`
 * slots (and twice max_flows), in buckets of 8, a power of two of them.
 * Memory is touched only as flows are used.
 * Returns 0, or -1 with errno set when the allocation fails. */
int flow_table_init(struct flow_table *t, uint32_t max_flows, uint32_t buckets,
                    uint64_t idle_ns, flow_emit_fn emit, void *emit_ctx);
void flow_table_fini(struct flow_table *t);

/* Touches the whole index now (live capture, before packets come): its
 * pages are then not zeroed by the kernel in the middle of a burst. */
void flow_table_prefault(struct flow_table *t);

/* Ends, with FLOW_END_IDLE, every flow whose last packet is more than the idle
 * timeout older than clock. clock never goes backwards. */
void flow_table_advance(struct flow_table *t, uint64_t clock);

/* The flow of a keyed packet, or NULL. */
struct flow *flow_lookup(struct flow_table *t, const struct packet *p);

/* A flow's place in the index: the packet's hash (fixed, as workers are
 * chosen by it) mixed with the table's seed, so that traffic crafted to
 * collide cannot pile flows into one run of buckets. The high half picks
 * the home bucket, bits 16-31 the tag. */
static inline uint64_t flow_index_hash(const struct flow_table *t, uint32_t hash)
{
    return (uint64_t)(hash ^ t->seed) * 0x9e3779b97f4a7c15ull;
}

static inline uint32_t flow_home(const struct flow_table *t, uint64_t ih)
{
    return (uint32_t)(ih >> 32) & t->bucket_mask;
}

static inline uint16_t flow_tag(uint64_t ih) { return (uint16_t)(ih >> 16); }

/* Batches: the loads a lookup of hash will make, started early so that
 * they overlap other packets' work. First the bucket; a few packets later
 * (once the bucket has arrived) the entries its tags point to. */
static inline void flow_prefetch_bucket(const struct flow_table *t, uint32_t hash)
{
    __builtin_prefetch(&t->buckets[flow_home(t, flow_index_hash(t, hash))]);
}

static inline void flow_prefetch_entry(const struct flow_table *t, uint32_t hash)
{
    uint64_t ih = flow_index_hash(t, hash);
    const struct flow_bucket *b = &t->buckets[flow_home(t, ih)];
    uint16_t tag = flow_tag(ih);
    for (int s = 0; s < FLOW_BUCKET_SLOTS; s++)
        if (b->tag[s] == tag && b->idx[s]) {
            const char *f = (const char *)&t->flows[b->idx[s] - 1];
            __builtin_prefetch(f);   /* the key, then what flow_update writes */
            __builtin_prefetch(f + 64);
            __builtin_prefetch(f + sizeof(struct flow) - 1);
        }
}

/* A new flow for p (not yet counted: call flow_update next). When the table is
 * full the least recently seen flow is ended with FLOW_END_EVICTED first. */
struct flow *flow_create(struct flow_table *t, const struct packet *p);

/* Counts p in f and marks f as the most recently seen. Returns 1 when p is a
 * TCP segment whose payload this direction has already carried (a
 * retransmission, which gives no field records), else 0. */
int flow_update(struct flow_table *t, struct flow *f, const struct packet *p);

/* Ends every flow with the given reason, oldest first. */
void flow_table_flush(struct flow_table *t, enum flow_end why);

/* After a configuration reload: filter bit i of every flow becomes bit
 * map[i] (dropped when map[i] < 0), so flow records name the right filters. */
void flow_table_remap_filters(struct flow_table *t, const int8_t map[64]);

const char *flow_end_name(enum flow_end why);

/* Direction of p within f: FLOW_C2S or FLOW_S2C. */
static inline int flow_direction(const struct flow *f, const struct packet *p)
{
    int src_lo = (p->flags & PKT_SRC_IS_LO) != 0;
    return src_lo == f->client_is_lo ? FLOW_C2S : FLOW_S2C;
}

#endif
