/* redis-conn-int.h - the inside of a Redis connection, shared by the file
 * mode's pipelines (redis-conn.c) and live mode's admission and
 * reconnection (redis-live.c); nothing else includes it. */
#ifndef DATI_REDIS_CONN_INT_H
#define DATI_REDIS_CONN_INT_H

#include <hiredis/hiredis.h>
#include <pthread.h>

#include "outbuf.h"
#include "redis-conn.h"

#define LIVE_TIMEOUT_S 2                 /* live: the longest wait for Redis */
#define LIVE_STALL_S 5                   /* live: a pipeline unanswered this long (s): a lost server */
#define ID_BLOCK 1024                    /* record ids reserved per INCRBY */
#define ID_KEY "dati:id"                 /* the counter the ids come from */
#define CONNECT_TIMEOUT_S 2              /* a step of connecting: handshake, AUTH, SELECT */

/* A reply on the records' connections, read in place: every record takes
 * two or three replies, and hiredis would allocate a redisReply for each. */
struct reply {
    int type;                            /* REDIS_REPLY_* */
    long long integer;
    char str[128];                       /* an error's or status' text, cut */
};

/* One command given back by the cluster (MOVED, ASK, TRYAGAIN, CLUSTERDOWN)
 * to be sent again: its bytes are in the list's buffer. */
struct redirect {
    uint8_t kind;                        /* enum redis_cmd_kind */
    uint8_t how;                         /* REDIRECT_* */
    uint16_t slot;
    uint32_t off, len;                   /* in bytes */
    char target[280];                    /* host:port of MOVED and ASK (REDIS_NODE_NAME_MAX) */
};

struct redis_redirects {
    struct outbuf bytes;
    struct redirect *v;
    unsigned n, cap;
};

struct redis_conn {
    redisContext *c;
    struct redis_addr addr;              /* where it connects (host owned) */
    int cluster;                         /* redirections are kept to be resent, not errors */
    int wait_short;                      /* the last WAIT timed out: a master without replicas */
    struct redis_redirects redir;
    struct reply reply;                  /* the last one read on c */
    const struct config *conf;
    uint64_t next_id, ids_left;          /* the reserved block */
    uint64_t spare_id;                   /* the next block, asked for ahead (REDIS_CMD_IDS) */
    int spare_ready, ids_asked;
    int ids_unsent;                      /* live: the request is in cur, sent first chance */
    int ids_moved;                       /* cluster: it was redirected (dati:id moved) */
    int live;                            /* never wait: drop and count instead */
    int down;                            /* live: connection lost, retried from retry_at */
    uint64_t retry_at;
    unsigned retry_ms;
    /* live: a reconnection runs on a thread of its own (connector_main) */
    pthread_t connector;
    int connecting;                      /* started, not yet taken */
    int connector_threaded;              /* joinable: pthread_create succeeded */
    int connect_done;                    /* atomic: the attempt has ended */
    redisContext *fresh;                 /* its connection, or NULL with connect_err */
    char connect_err[256];
    /* Two pipelines: one being filled, one sent and waiting for its replies,
     * so that Redis works on one while dati formats the next. Each is kept,
     * in RESP, until Redis has answered all of it. */
    struct pipe {
        struct outbuf buf;
        uint8_t *kind;                   /* enum redis_cmd_kind of each command */
        uint32_t *off;                   /* where each command starts in buf */
        unsigned ncmds, nrecords, nflows;
        unsigned counted;                /* replies already counted (across a resend) */
        unsigned done;                   /* replies read since it was last sent */
        int waited;                      /* REDIS_WAIT_REPLICAS: its WAIT is in it */
    } pipes[2], *cur, *sent;             /* sent: NULL when nothing is in flight */
    struct pipe *behind;                 /* cur, already written behind sent (send_current) */
    unsigned max_cmds;
    uint64_t since;                      /* monotonic ns of the oldest queued record */
    uint64_t sent_at;                    /* monotonic ns when sent was sent */
    uint64_t last_log;                   /* rate limit for error logs */
    struct redis_counters n;
};

/* redis-conn.c, for redis-live.c and redis-cluster.c */
void conn_sleep_ms(unsigned ms);
/* A command that carried a record (kind) was not stored: counted lost. */
void conn_count_lost(struct redis_conn *r, int kind);
redisContext *conn_connect_to(const struct config *conf, const struct redis_addr *a, char *err,
                              size_t errlen, int *refused);
void conn_attach(struct redis_conn *r, redisContext *c);
int conn_collect(struct redis_conn *r, struct pipe *p, int wait);
void conn_count_unanswered(struct redis_conn *r, const struct pipe *p);
void conn_clear(struct pipe *p);
void conn_track_depth(struct redis_conn *r);
int conn_send_pipe(struct redis_conn *r, struct pipe *p);
void conn_swap_pipes(struct redis_conn *r);
int conn_pipe_full(const struct redis_conn *r);

/* redis-live.c, for redis-conn.c */
void live_went_down(struct redis_conn *r);
int live_reconnect(struct redis_conn *r, int wait);
void live_pump(struct redis_conn *r, int force);
int live_admit(struct redis_conn *r, uint64_t *update_dropped);
void live_connector_join(struct redis_conn *r);

#endif
