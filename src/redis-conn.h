/* redis-conn.h - one connection to Redis with two pipelines of commands and
 * the accounting of what they carry: the layouts (output-redis.c) format
 * commands into it; it sends them, reads every reply in place, reconnects
 * and resends (reading a file: nothing lost), or in live mode never waits
 * and counts each drop by cause (redis-live.c). Only its owner's thread
 * touches it, but for live mode's reconnection thread (its own fields, behind
 * an atomic flag); the counters are read by the statistics with relaxed
 * loads. */
#ifndef DATI_REDIS_CONN_H
#define DATI_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct redisContext;
struct redis_conn;

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
    uint64_t rerouted;              /* cluster: commands of a lost node sent to its slots' new owners */
    uint64_t wait_short;            /* REDIS_WAIT_REPLICAS: pipelines fewer replicas acknowledged */
};

/* What each queued command carries, to count what an error reply or a
 * lost connection loses: the first command of a field record or of a flow
 * record, or one that loses no record of its own. */
enum redis_cmd_kind { REDIS_CMD_RECORD, REDIS_CMD_MORE, REDIS_CMD_FLOW, REDIS_CMD_IDS,
                      REDIS_CMD_WAIT };

/* Where a connection goes: a unix socket, or host and port. */
struct redis_addr {
    const char *sock;
    const char *host;
    unsigned port;
};


/* The configured single Redis, or with REDIS_CLUSTER the first seed node
 * (host written into hostbuf). */
struct redis_addr redis_addr_of(const struct config *conf, char *hostbuf, size_t hostlen);

/* While Redis is down, connections wait and reconnect until *flag is set. */
void redis_conn_set_stop(const volatile int *flag);

/* A plain connection (authenticated, database selected), for other modules
 * (the feedback subscriber and replies), with a 2 s timeout on every read and
 * write: a stalled server never holds the caller longer. NULL with the
 * reason in err. */
struct redisContext *redis_conn_connect(const struct config *conf, char *err, size_t errlen);

/* Connects as the configuration says (REDIS_RETRY: retrying an unreachable
 * server that long). Returns the connection, or NULL with the reason
 * (naming the address) in err. */
struct redis_conn *redis_conn_open(const struct config *conf, char *err, size_t errlen);
/* The same to one node of a cluster (its redirections are kept for the
 * cluster to resend: redis_conn_take_redirects). live: in live mode and not
 * connected yet: its connector thread connects it, the worker never waits. */
struct redis_conn *redis_conn_open_node(const struct config *conf, const char *host, unsigned port,
                                        int live, char *err, size_t errlen);

/* A command the cluster answered with MOVED/ASK (to another node) or
 * TRYAGAIN/CLUSTERDOWN (later). */
enum { REDIRECT_MOVED, REDIRECT_ASK, REDIRECT_RETRY,
       REDIRECT_REROUTE /* its node was lost: to the slot's owner, once known */ };

/* DATI_TEST_REDIS_LIVE=1: live mode while reading a file (a test hook). */
int redis_test_live(void);

/* Whether dati is being stopped (the waits give up). */
int redis_conn_stopping(void);

/* Cluster: whether the node's connection is up; if not, one attempt to
 * make it again (no waiting). */
int redis_conn_alive(struct redis_conn *c);
struct redis_redirects;
/* Hands over the commands to resend (into *out, which the caller frees
 * with redis_redirects_free); returns their number. */
unsigned redis_conn_take_redirects(struct redis_conn *c, struct redis_redirects *out);
void redis_redirects_free(struct redis_redirects *l);

/* Cluster: INCRBY key n now, synchronously (ASKING first when asking);
 * 0 with the new value, or -1 with the error reply in err ("MOVED ...",
 * "ASK ...") or an empty err when the connection failed. */
int redis_conn_incrby(struct redis_conn *c, const char *key, long long n, int asking,
                      long long *val, char *err, size_t errlen);

/* Appends a command already in RESP (a redirected one). */
int redis_conn_append_raw(struct redis_conn *c, const char *cmd, size_t len,
                          enum redis_cmd_kind kind);
/* Sends what is queued, waits for the replies, and frees. */
void redis_conn_close(struct redis_conn *c);

/* Live mode (live capture): a record is never waited for. When the pipeline
 * being filled is full while the other is still in flight, or the connection
 * is down, the record is dropped and counted by reason; the connection is
 * tried again with back-off. Off (the default): reading a file waits for
 * Redis and loses nothing. */
void redis_conn_set_live(struct redis_conn *c);

/* Before a record's commands: whether they may be queued. Reading a file,
 * always (a full pipeline is sent first); live, -1 when the record is
 * dropped, counted by reason, or for a flow's state or start event (not
 * records) in *update_dropped. */
int redis_conn_admit(struct redis_conn *c, uint64_t *update_dropped);

/* Adds one command to the pipeline being filled (nothing is sent yet).
 * Returns 0, or -1 when out of memory or room. */
int redis_conn_append(struct redis_conn *c, int argc, const char **argv, const size_t *len,
                      enum redis_cmd_kind kind);

/* A record's commands go in whole or not at all: the mark before the
 * first, back to it when one could not be appended. */
struct redis_mark { size_t len; unsigned ncmds; };
struct redis_mark redis_conn_mark(const struct redis_conn *c);
void redis_conn_rollback(struct redis_conn *c, struct redis_mark m);

/* After a record's commands were appended (flow: a flow record): counted,
 * and the pipeline sent when full. */
void redis_conn_queued(struct redis_conn *c, int flow);
/* After commands that carry no record: the drain timer covers them. */
void redis_conn_touch(struct redis_conn *c);

/* The next record id, from blocks reserved with INCRBY dati:id. Returns 0,
 * or -1 when none could be had (live: counted as queue_full). */
int redis_conn_next_id(struct redis_conn *c, uint64_t *id);

/* Cluster, reading a file: the next id block asked for inside the
 * pipeline (once, until taken), and taken when its reply has come (flush:
 * the pipeline sent and answered first). 0 with the block's first id, -1
 * when there is none (a redirection: ask synchronously). */
void redis_conn_ask_ids(struct redis_conn *c);
int redis_conn_take_ids(struct redis_conn *c, int flush, uint64_t *first);

/* Sends what is queued and reads every reply. */
void redis_conn_flush(struct redis_conn *c);
/* The drain timer: sends what has waited OUTBUF_DRAIN_NS (reading a file,
 * and waits for the replies; live, takes those arrived, never waits). */
void redis_conn_drain(struct redis_conn *c);

struct redis_counters *redis_conn_counters(struct redis_conn *c);

/* Logs a problem at most once a second per connection. */
void redis_conn_log(struct redis_conn *c, const char *what, const char *detail);

#define REDIS_STATS_KEY "dati:stats"   /* hash and channel of the statistics */

/* Statistics on the bus: HSET key json <line> final <0|1> (key: dati:stats,
 * or with PROBE_NAME dati:stats:<probe>) and PUBLISH dati:stats <line>,
 * synchronously (every TIME_STATS seconds, not per packet). Returns 0, or -1
 * when Redis did not take them. */
int redis_conn_stats(struct redis_conn *c, const char *key, const char *json, size_t len,
                     int final);

/* Decimal digits of v at d (room for 20); returns their number. Formatting
 * is most of the cost of a record: no printf on this path. */
static inline size_t redis_fmt_u64(char *d, uint64_t v)
{
    char t[20];
    size_t n = 0, i = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        d[i++] = t[--n];
    return i;
}

#endif
