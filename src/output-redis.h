/* output-redis.h - records into Redis in the seed's layout: a unique id per
 * record (ids reserved in blocks with INCRBY), a hash per record
 * (HSET key Timestamp ts field value ...) with a TTL (EXPIRE), and the key
 * PUBLISHed on the filter's channel; flow records PUBLISHed as JSON on the
 * session channel. One connection per worker, commands pipelined; replies
 * are read when a pipeline is flushed, which is also the back-pressure that
 * makes reading a file lossless. Only its worker thread touches it. */
#ifndef DATI_OUTPUT_REDIS_H
#define DATI_OUTPUT_REDIS_H

#include <stdint.h>

#include "extract.h"
#include "flow.h"
#include "output.h"

struct config;
struct filter_conf;
struct redis_out;

struct redis_counters {
    uint64_t records;          /* field records queued; delivered = records - lost */
    uint64_t flows;            /* flow records queued; delivered = flows - flows_lost */
    uint64_t lost;             /* field records not stored: error reply, stopped while down */
    uint64_t flows_lost;
    uint64_t commands;         /* commands acknowledged */
    uint64_t errors;           /* error replies, all kinds */
    uint64_t errors_oom, errors_auth, errors_wrongtype, errors_other;
    uint64_t reconnects;
    uint64_t flow_states;           /* dati:flow:<id> state updates queued (FLOW_STATE_INTERVAL) */
    uint64_t flow_events;           /* FLOW_EVENTS publications queued */
    uint64_t flow_updates_dropped;  /* live mode: either, not sent (queue full, disconnected) */
    uint64_t queued, queued_peak;   /* records (both kinds) queued or sent, not acknowledged */
    /* live mode: records (either kind) never queued, by reason */
    uint64_t dropped_queue_full;    /* both pipelines busy: Redis is slower than the traffic */
    uint64_t dropped_disconnected;  /* the connection is down, reconnecting */
};

/* While Redis is down, the output waits and reconnects until *flag is set. */
void redis_out_set_stop(const volatile int *flag);

/* Live mode (live capture): a record is never waited for. When the pipeline
 * being filled is full while the other is still in flight, or the connection
 * is down, the record is dropped and counted by reason; the connection is
 * tried again with back-off. Off (the default): reading a file waits for
 * Redis and loses nothing. Only the owning worker calls it. */
void redis_out_set_live(struct redis_out *r, int live);

/* A plain connection (authenticated, database selected), for other modules
 * (the feedback subscriber and replies), with a 2 s timeout on every read and
 * write: a stalled server never holds the caller longer. NULL with the
 * reason in err. */
struct redisContext *redis_out_connect(const struct config *conf, char *err, size_t errlen);

/* Connects as the configuration says (REDIS_RETRY: retrying an unreachable
 * server that long). Returns the output, or NULL with the
 * reason (naming the address) in err. */
struct redis_out *redis_out_open(const struct config *conf, char *err, size_t errlen);
void redis_out_close(struct redis_out *r);

/* Queue one field record / one flow record; the pipeline is flushed when full.
 * Return 0, or -1 when the record could not be queued (counted as lost). */
int redis_out_record(struct redis_out *r, struct extract_ctx *x, const struct filter_conf *f,
                     int filter_index, uint64_t flow_id, unsigned sub);
int redis_out_flow(struct redis_out *r, const struct flow *fl, enum flow_end why,
                   const char *const *names);

/* The tags of the flow of the records about to be queued ("a,b" and the
 * JSON array), until set to NULL: field records get a "tags" field, flow
 * records a "tags" member. Not copied: valid until changed. */
void redis_out_set_tags(struct redis_out *r, const char *csv, size_t csvlen, const char *json,
                        size_t jsonlen);

/* FLOW_STATE_INTERVAL: the state of a flow as hash dati:flow:<id> (counters,
 * first/last, filters, tags, "state" active or the end reason). Active: with
 * a TTL of PKT_TTL + 2 intervals, refreshed with each update. Ended: the
 * final counters, kept with the flow record for REDIS_FLOW_EXPIRE, else the
 * key is deleted. Live mode: skipped when the queue is full or Redis down. */
void redis_out_flow_state(struct redis_out *r, const struct flow *fl, const char *const *names,
                          int ended, enum flow_end why);

/* FLOW_EVENTS: PUBLISH <channel> <the flow record as it is now, reason
 * "start">, with its tags. Not counted as a flow record. Live mode: skipped
 * when the queue is full or Redis down. */
void redis_out_flow_event(struct redis_out *r, const struct flow *fl, const char *const *names);

/* RECORD_SEQ: the next record (field or flow) carries worker and seq. */
void redis_out_set_seq(struct redis_out *r, unsigned worker, uint64_t seq);

/* Sends what is queued and reads every reply. */
void redis_out_flush(struct redis_out *r);
/* The drain timer: flushes what has waited OUTBUF_DRAIN_NS. */
void redis_out_drain(struct redis_out *r);

const struct redis_counters *redis_out_counters(const struct redis_out *r);

#define REDIS_STATS_KEY "dati:stats"   /* hash and channel of the statistics */

/* Statistics on the bus: HSET dati:stats json <line> final <0|1> and PUBLISH
 * dati:stats <line>, synchronously (every TIME_STATS seconds, not per packet).
 * Returns 0, or -1 when Redis did not take them. */
int redis_out_stats(struct redis_out *r, const char *json, size_t len, int final);

#endif
