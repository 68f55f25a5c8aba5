/* redis-live.c - a Redis connection in live mode: capture never waits for
 * Redis. A record is admitted only when the pipeline being filled has room
 * and the connection is up; otherwise it is dropped and counted by cause.
 * A lost connection counts what its pipelines held and is tried again with
 * back-off, on a thread of its own so that the worker keeps capturing. */
#include "redis-conn-int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "counter.h"
#include "log.h"

/* Live: the connection broke. What the pipelines held is lost (counted);
 * new records are dropped, counted as disconnected, until a reconnection
 * (tried with back-off from the records and the drain timer) succeeds. */
void live_went_down(struct redis_conn *r)
{
    for (int i = 0; i < 2; i++) {
        COUNTER_ADD(r->n.commands, r->pipes[i].counted);
        conn_count_unanswered(r, &r->pipes[i]);
        conn_clear(&r->pipes[i]);
    }
    redis_conn_log(r, "connection lost", r->c ? r->c->errstr : "not connected");
    redisFree(r->c);
    r->c = NULL;
    r->sent = NULL;
    r->since = 0;
    r->ids_asked = r->ids_unsent = 0;   /* its reply will not come */
    r->down = 1;
    r->retry_ms = 100;
    r->retry_at = outbuf_now() + 100000000u;
    conn_track_depth(r);
}

/* Live: the waits that remain (the final flush, a full socket) end after
 * LIVE_TIMEOUT_S, as a broken connection, instead of hanging on a stalled
 * server. */
static void live_timeout(struct redis_conn *r)
{
    struct timeval tv = {LIVE_TIMEOUT_S, 0};
    if (r->c)
        redisSetTimeout(r->c, tv);
}

/* Live: connecting (handshake, AUTH, SELECT) may take CONNECT_TIMEOUT_S a
 * step when the server's host does not answer; a thread does it, so that
 * the worker's capture never waits on it. */
static void *connector_main(void *arg)
{
    struct redis_conn *r = arg;
    int refused;
    r->fresh = conn_connect_to(r->conf, &r->addr, r->connect_err, sizeof r->connect_err, &refused);
    __atomic_store_n(&r->connect_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

void live_connector_join(struct redis_conn *r)
{
    if (r->connecting && r->connector_threaded)
        pthread_join(r->connector, NULL);
    r->connecting = 0;
}

/* Live: a reconnection attempt when its time has come, or its result; wait:
 * start one now and wait for it (the final flush). Returns 0 when connected. */
int live_reconnect(struct redis_conn *r, int wait)
{
    if (!r->down)
        return 0;
    if (!r->connecting) {
        if (!wait && outbuf_now() < r->retry_at)
            return -1;
        r->connect_done = 0;
        r->connecting = 1;
        /* signals are for the other threads: one here would cut a wait short */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r->connector_threaded = pthread_create(&r->connector, NULL, connector_main, r) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!r->connector_threaded) {
            redis_conn_log(r, "reconnecting", "no thread for it: connecting from the worker");
            connector_main(r);
        }
    }
    if (!wait && !__atomic_load_n(&r->connect_done, __ATOMIC_ACQUIRE))
        return -1;
    live_connector_join(r);
    if (!r->fresh) {
        redis_conn_log(r, "unreachable, retrying", r->connect_err);
        r->retry_ms = r->retry_ms < 1000 ? r->retry_ms * 2 : 2000;
        r->retry_at = outbuf_now() + (uint64_t)r->retry_ms * 1000000u;
        return -1;
    }
    conn_attach(r, r->fresh);
    r->fresh = NULL;
    COUNTER_INC(r->n.reconnects);
    r->down = 0;
    live_timeout(r);
    return 0;
}

/* Live: takes the replies already arrived and, once the pipeline in flight
 * is answered, sends the one being filled when it is full, has waited the
 * drain time, or force. Never waits for Redis (but for the write of one
 * pipeline into a socket that the previous one has left empty). */
void live_pump(struct redis_conn *r, int force)
{
    if (r->down && live_reconnect(r, 0) < 0)
        return;
    if (r->sent) {
        int rc = conn_collect(r, r->sent, 0);
        /* a server that stopped answering (hung, or its host gone without a
         * word) is a lost one: in a cluster, its replica may have taken
         * over its slots by now, which only a lost connection makes dati
         * look for */
        uint64_t stall = (LIVE_STALL_S * 1000ull + (r->sent->waited ? r->conf->redis_wait_ms : 0)) *
                         1000000ull;   /* a WAIT may take its timeout */
        if (rc > 0 && outbuf_now() - r->sent_at >= stall) {
            char what[48];
            snprintf(what, sizeof what, "no reply for %d s", LIVE_STALL_S);
            redis_conn_log(r, what, "the connection is dropped");
            rc = -1;
        }
        if (rc < 0) {
            live_went_down(r);
            return;
        }
        if (rc > 0)
            return;
        COUNTER_ADD(r->n.commands, r->sent->ncmds);
        conn_clear(r->sent);
        r->sent = NULL;
        conn_track_depth(r);
    }
    if (r->cur->ncmds == 0 ||
        !(force || conn_pipe_full(r) || (r->since && outbuf_now() - r->since >= OUTBUF_DRAIN_NS)))
        return;
    if (conn_send_pipe(r, r->cur) < 0) {
        live_went_down(r);
        return;
    }
    conn_swap_pipes(r);
    r->ids_unsent = 0;
}

/* Live: whether a record may be queued now; if not, counts it by reason,
 * or, for a flow's state hash or start event (not records: the record drop
 * counters must add up to the records'), in *update_dropped. */
int live_admit(struct redis_conn *r, uint64_t *update_dropped)
{
    if (!r->down && conn_pipe_full(r))
        live_pump(r, 0);
    uint64_t *dropped = r->down && live_reconnect(r, 0) < 0 ? &r->n.dropped_disconnected
                        : conn_pipe_full(r)                         ? &r->n.dropped_queue_full
                                                                    : NULL;
    if (!dropped)
        return 0;
    COUNTER_INC(*(update_dropped ? update_dropped : dropped));
    return -1;
}

void redis_conn_set_live(struct redis_conn *r)
{
    uint64_t id;
    r->live = 0;
    /* the first id block with a round trip now, not by dropping records (a
     * cluster's node may not hold dati:id: its first records wait for it) */
    if (!r->cluster && !r->conf->redis_stream && r->ids_left == 0 &&
        redis_conn_next_id(r, &id) == 0) {
        r->next_id--;
        r->ids_left++;
    }
    r->live = 1;
    live_timeout(r);
}
