/* stats.h - counters of the whole pipeline, summed from the reader and the
 * workers, printed for people (stderr) and as a JSON stats record. Every
 * packet read lands in exactly one decode bucket, so the sums can be checked. */
#ifndef DATI_STATS_H
#define DATI_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "decode.h"
#include "output.h"
#include "worker.h"

struct reader_counters {
    uint64_t packets;              /* read from the input */
    uint64_t bytes;                /* their on-the-wire length */
    uint64_t decode[DECODE_RESULT_COUNT];
};

struct stats_totals {
    uint64_t packets, bytes, decoded, errors;
    uint64_t decode[DECODE_RESULT_COUNT];
    uint64_t processed, matched, no_flow, retransmitted;
    uint64_t matches[CLASSIFY_MAX_FILTERS], records[CLASSIFY_MAX_FILTERS];
    uint64_t skipped[CLASSIFY_MAX_FILTERS];
    uint64_t records_total, records_dropped, flow_records, flow_records_dropped, output_lost;
    uint64_t flows_active, flows_created, flows_ended[FLOW_END_COUNT];
    uint64_t rss_anon_kb;
    int redis;                     /* the Redis output is in use */
    struct redis_counters rd;
};

struct stats_source {
    const struct reader_counters *reader;
    const struct worker *workers;
    int nworkers;
    const struct pipeline *pl;
    const struct feedback *fb;     /* NULL without FEEDBACK_CHANNEL */
};

void stats_sum(const struct stats_source *s, struct stats_totals *t);

/* Human-readable summary; elapsed in seconds. */
void stats_print(FILE *f, const struct stats_source *s, const struct stats_totals *t,
                 double elapsed, int final);

/* One {"type":"stats",...} line. Returns 0 or -1 (out of memory). */
int stats_json(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t,
               double elapsed, int final, const char *input_error);

#endif
