/* output.h - what every output implements, as libpcap's back-ends do: a
 * table of operations that a worker calls without knowing which output it
 * is (JSON lines, Redis hashes, Redis streams). Each worker has an output of
 * its own; only that worker's thread calls it, or the main thread before
 * the worker starts (set_live) or once it has ended (flush, close), and the
 * statistics read its counters (sum) with relaxed loads. */
#ifndef DATI_OUTPUT_H
#define DATI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "flow.h"

struct config;
struct extract_ctx;
struct feature_table;
struct flow_features;
struct app_classifier;
struct filter_conf;
struct ipfix_exporter;
struct output_sink;
struct stats_totals;
struct tagtext;

/* What belongs to one record besides its content: it travels with each
 * call, nothing is set before a record and cleared after. */
struct record_meta {
    const char *const *filter_names;   /* filter i's name (a flow's filter list) */
    const struct tagtext *tags;        /* the flow's tags (feedback channel); NULL: none */
    unsigned worker;                   /* RECORD_SEQ: the worker that made the record */
    uint64_t seq;                      /* and its number there; 0: records carry neither */
    const char *probe;                 /* PROBE_NAME; NULL: none */
    uint32_t flow_slot;                /* flow records: the flow's index in its worker's table */
    /* flow records with FLOW_FEATURES: the flow's statistics; NULL: none */
    const struct feature_table *feature_table;
    const struct flow_features *features;
    const struct app_classifier *app;  /* flow records with CLASSIFY 1; NULL: off */
    uint64_t frag_counts;              /* flow records: fragments << 32 | reassembled datagrams */
    /* field records only */
    const struct filter_conf *filter;  /* the filter that matched */
    int filter_index;
    uint64_t flow_id;                  /* the packet's flow, 0: none */
    unsigned sub;                      /* which HTTP request of the packet (pipelining) */
};

struct output;

struct output_ops {
    /* A field record (the filter's FIELDS of x's packet) and a flow record
     * (at the flow's end, or FLOW_INTERIM). 0 when written or queued, -1
     * when dropped: the caller counts it; the output counts why. field is
     * NULL for an output of flows only (IPFIX): no field records are made. */
    int (*field)(struct output *o, struct extract_ctx *x, const struct record_meta *m);
    int (*flow)(struct output *o, const struct flow *fl, enum flow_end why,
                const struct record_meta *m);
    /* FLOW_STATE_INTERVAL: a flow's live state (ended: its last); FLOW_EVENTS:
     * a flow has started. NULL where the output has no such thing. */
    void (*flow_state)(struct output *o, const struct flow *fl, int ended, enum flow_end why,
                       const struct record_meta *m);
    void (*flow_event)(struct output *o, const struct flow *fl, const struct record_meta *m);
    /* Live capture: never wait for the destination, drop and count instead.
     * NULL where writing never waits long (a file, a pipe). */
    void (*set_live)(struct output *o);
    void (*drain)(struct output *o);   /* the drain timer: write what has waited enough */
    void (*flush)(struct output *o);   /* write everything, and wait until it is taken */
    /* Adds this output's counters into the statistics (relaxed loads). */
    void (*sum)(const struct output *o, struct stats_totals *t);
    void (*close)(struct output *o);   /* flushes, then frees */
};

struct output {
    const struct output_ops *ops;
};

/* What a worker's output is made from: the run's shared resources. */
struct output_env {
    struct output_sink *sink;          /* JSON lines; NULL: none (OUTPUT none) */
    struct ipfix_exporter *ipfix;      /* IPFIX_COLLECTOR; NULL: none */
    uint32_t max_flows;                /* the worker's flow table size */
};

/* The output the configuration asks for: Redis (either layout) when
 * REDIS_* is set, else JSON lines into the shared sink; with IPFIX, flow
 * records also (or, without JSON lines, only) to the collector. NULL with
 * the reason in err. */
struct output *output_open(const struct config *conf, const struct output_env *env, char *err,
                           size_t errlen);

static inline void output_close(struct output *o)
{
    if (o)
        o->ops->close(o);
}

#endif
