/* worker.h - a worker owns a share of the flow table, its output buffer and
 * its counters, and turns the packets it is given into field records and
 * flow records. With one worker it runs inline in the reader's thread; with
 * more, each runs in its own thread fed by a pktq. */
#ifndef DATI_WORKER_H
#define DATI_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "capture.h"
#include "defrag.h"
#include "stream.h"
#include "classify.h"
#include "decode.h"
#include "config.h"
#include "extract.h"
#include "flow-features.h"
#include "flow.h"
#include "outbuf.h"
#include "output.h"
#include "pktq.h"
#include "tap.h"

/* What every worker reads and nobody changes while they run. */
struct pipeline {
    const struct config *conf;
    struct classifier classifier;
    const char *filter_name[CLASSIFY_MAX_FILTERS];
    uint64_t record_filters;       /* filters with FIELDS */
    uint64_t tap_filters;          /* filters with TAP_IF */
    uint64_t app_filters;          /* filters with APP: they match a classified flow only */
    uint8_t name_kinds[CLASSIFY_MAX_FILTERS];  /* names.h: what the live page samples */
    struct tap_pool *taps;
    struct pipeline *retired;      /* replaced by a reload, freed at exit */
    struct config *owned_conf;     /* a reloaded configuration, freed with the pipeline */
    struct {
        int n;
        int round_robin;
        uint16_t dev[CONFIG_MAX_TAPS];   /* indexes into taps */
    } tap[CLASSIFY_MAX_FILTERS];
};

/* Compiles conf's filters, and for each of linktypes up front (live
 * capture, where workers never compile); opens the filters' TAP_IF devices
 * in taps. Returns NULL with the reason in err. */
struct pipeline *pipeline_new(const struct config *conf, const int *linktypes, int nlinks,
                              struct tap_pool *taps, char *err, size_t errlen);
void pipeline_free(struct pipeline *pl);

/* What came in: written by the reader thread reading a file, by each
 * worker in live capture. Every packet lands in one decode bucket. */
struct reader_counters {
    uint64_t packets;              /* read from the input */
    uint64_t bytes;                /* their on-the-wire length */
    uint64_t decode[DECODE_RESULT_COUNT];
};

struct worker_counters {
    uint64_t packets;              /* given to this worker */
    uint64_t matched;              /* packets matching at least one filter */
    uint64_t matches[CLASSIFY_MAX_FILTERS];
    uint64_t records[CLASSIFY_MAX_FILTERS];
    uint64_t records_dropped;      /* no memory to format them */
    uint64_t flow_records;
    uint64_t flow_records_dropped;
    uint64_t no_flow;              /* matched but not keyed (not TCP/UDP/ICMP, fragment) */
    uint64_t retransmitted[CLASSIFY_MAX_FILTERS]; /* matches skipped: payload seen before */
    /* REASSEMBLY: matching segments taken into TCP messages, and the records
     * made from those (at the segment that completed a message) */
    uint64_t reasm_segments[CLASSIFY_MAX_FILTERS];
    uint64_t reasm_records[CLASSIFY_MAX_FILTERS];
    uint64_t records_retired;      /* records of filters a reload removed */
};

struct feedback;
struct name_ring;
struct flowtag;
struct app_classifier;

struct worker {
    int index;
    const struct pipeline *pl;
    struct flow_table flows;
    struct output *out;            /* JSON lines, Redis: its ops table says which */
    struct extract_ctx x;
    struct worker_counters c;
    struct pktq *q;                /* NULL when running inline */
    struct flowtag *ft;            /* with FEEDBACK_CHANNEL: tags, marks, rules, id index */
    struct feedback *fb;           /* atomic: set while the feedback thread runs */
    struct name_ring *names;       /* HTTP_LISTEN: names for the live page; NULL: off */
    struct feature_table feat;     /* FLOW_FEATURES: a slot per flow entry; mem NULL: off */
    struct app_classifier *app;    /* CLASSIFY 1: nDPI, a result per flow entry; NULL: off */
    uint64_t unmatched_flows;      /* ended without any filter's match: no record (APP) */
    uint64_t active_ns;            /* ACTIVE_TIMEOUT in ns, 0: off */
    uint64_t seq;                  /* RECORD_SEQ: records this worker made, dropped ones too */
    uint64_t state_ns, state_clock;/* FLOW_STATE_INTERVAL: last refresh (monotonic, packet clock) */
    pthread_t thread;
    /* live capture: the worker reads its own rings */
    struct capture cap;
    struct reader_counters in;
    struct defrag *defrag;         /* REASSEMBLY, live: this worker's own */
    uint8_t *defrag_buf;           /* its rebuilt frame */
    uint64_t *frag_counts;         /* REASSEMBLY: per flow, fragments << 32 | datagrams */
    struct stream_table *streams;  /* REASSEMBLY: TCP messages split over segments */
    uint64_t clock;                /* latest packet time or wall time, ns */
    uint64_t frame;                /* frame numbers: index + 1, then + nworkers */
    const struct pipeline *next_pl;/* set by a reload; taken at the next batch */
    int done;                      /* live: the thread has ended (it takes no pipeline) */
    struct tap_counters tapc;
    uint32_t tap_turn[CLASSIFY_MAX_FILTERS];   /* TAP_BALANCE roundrobin */
    /* the next record index (of a record's id) per filter at frame rec_frame:
     * a segment may complete a message and hold more */
    uint64_t rec_frame;
    uint8_t rec_sub[CLASSIFY_MAX_FILTERS];
};

/* Returns 0, or -1 with the reason in err: no memory for the flow table or
 * the output, or Redis (when configured) could not be reached. The output
 * is made from env (its max_flows is set here). classify_flows: CLASSIFY's
 * pool, reasm_memcap: REASSEMBLY_MEMCAP, this worker's shares. */
int worker_init(struct worker *w, int index, const struct pipeline *pl, uint32_t max_flows,
                uint32_t buckets, uint32_t classify_flows, uint64_t reasm_memcap,
                const struct output_env *env, char *err, size_t errlen);

/* Takes a pipeline a reload handed over in w->next_pl, if any: flows and
 * per-filter counters follow their filters by name. Called between packets. */
void worker_take_pipeline(struct worker *w);

/* The drain timer: writes out records that have waited long enough. */
void worker_drain(struct worker *w);
void worker_fini(struct worker *w);

/* One packet, decoded (not a decode error). */
void worker_process(struct worker *w, const struct packet *p);

/* n packets, in order, the i-th at &ring[(first + i) & mask] (an array, or
 * a queue's ring): the same as worker_process on each, with the memory
 * loads of the packets ahead (headers, flow buckets, flow entries) started
 * early so that they overlap the work on the ones before. */
#define WORKER_BATCH 32
void worker_process_batch(struct worker *w, const struct packet *ring, uint32_t first,
                          uint32_t n, uint32_t mask);

/* End of input at reader clock `clock`: idle flows expire, the rest end with why. */
void worker_finish(struct worker *w, uint64_t clock, enum flow_end why);

/* Threaded mode: consume w->q until it is closed, then finish. */
int worker_start(struct worker *w);
/* Waits for the thread to end: after its queue was closed and drained. */
void worker_stop(struct worker *w);

#endif
