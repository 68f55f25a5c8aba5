/* stats.h - counters of the whole pipeline, summed from the reader and the
 * workers, printed for people (stderr) and as a JSON stats record. Every
 * packet read lands in exactly one decode bucket, so the sums can be checked. */
#ifndef DATI_STATS_H
#define DATI_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "app.h"
#include "decode.h"
#include "defrag.h"
#include "outbuf.h"
#include "ipfix.h"
#include "redis-cluster.h"
#include "redis-conn.h"
#include "worker.h"

/* A live interface's kernel counters, as seen by PACKET_STATISTICS. */
struct iface_stats {
    const char *name;
    uint64_t received;             /* handed to dati's rings, or dropped for want of room */
    uint64_t dropped;              /* dropped by the kernel: the ring was full */
};

struct stats_totals {
    uint64_t packets, bytes, decoded, errors;
    uint64_t decode[DECODE_RESULT_COUNT];
    uint64_t processed, matched, no_flow, retransmitted;
    uint64_t matches[CLASSIFY_MAX_FILTERS], records[CLASSIFY_MAX_FILTERS];
    uint64_t skipped[CLASSIFY_MAX_FILTERS];
    uint64_t reasm_segments[CLASSIFY_MAX_FILTERS], reasm_records[CLASSIFY_MAX_FILTERS];
    uint64_t records_total, records_dropped, flow_records, flow_records_dropped, output_lost;
    uint64_t netpdl_regex_errors;
    uint64_t flows_active, flows_created, flows_ended[FLOW_END_COUNT];
    uint64_t rss_anon_kb;
    uint64_t kernel_received, kernel_dropped;
    struct tap_counters tap;
    int redis;                     /* the Redis output is in use */
    struct redis_counters rd;
    int cluster;                   /* the Redis output is a cluster's */
    struct redis_cluster_counters cl;
    int nnodes;                    /* the cluster's nodes, each summed over the workers */
    struct stats_node {
        char name[REDIS_NODE_NAME_MAX];   /* host:port */
        struct redis_counters rd;
    } node[REDIS_CLUSTER_MAX_NODES];
    int ipfix;                     /* IPFIX export is on */
    struct ipfix_counters ix;
    uint64_t ipfix_pending;        /* records in the workers' messages, not yet sent */
    int defrag;                    /* REASSEMBLY 1 */
    struct stream_counters st;     /* TCP messages, the workers' summed */
    struct defrag_counters df;     /* the reader's, or the live workers' summed */
    int classify;                  /* CLASSIFY 1 */
    struct app_counters app;       /* summed; name_key/name_flows merged, sorted by flows */
    int napps;                     /* names in app.name_key, in order */
    uint64_t unmatched_flows;      /* made for APP filters, never matched: no record */
    uint64_t app_memory_bytes;     /* the classifiers' results, pools, names, nDPI's blocks */
};

/* The name of t->app's i-th counted application. */
size_t stats_app_name(const struct stats_totals *t, int i, char *buf, size_t len);

struct stats_source {
    const struct reader_counters *reader;
    const struct worker *workers;
    int nworkers;
    const struct pipeline *pl;
    const struct iface_stats *ifaces;   /* live capture; NULL reading a file */
    int nifaces;
    const struct feedback *fb;     /* NULL without FEEDBACK_CHANNEL */
    const struct ipfix_exporter *ipfix; /* NULL without IPFIX_COLLECTOR */
    const struct defrag *defrag;   /* REASSEMBLY reading a file; live, the workers' */
};

void stats_sum(const struct stats_source *s, struct stats_totals *t);

/* Human-readable summary; elapsed in seconds. */
void stats_print(FILE *f, const struct stats_source *s, const struct stats_totals *t,
                 double elapsed, int final);

/* One {"type":"stats",...} line. Returns 0 or -1 (out of memory). */
int stats_json(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t,
               double elapsed, int final, const char *input_error);

#endif
