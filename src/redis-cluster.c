/* redis-cluster.c - Redis Cluster (its specification: "Redis Cluster
 * Specification", key distribution and redirections): the slot map from
 * CLUSTER SLOTS at start, one connection per master, key slots, and the
 * resending of redirected commands. A command a node answered MOVED or ASK
 * is kept, with its bytes, by that node's connection (redis-conn.c); this
 * file sends it on to the node that owns the slot now, outside the loop
 * that reads replies, in the order the replies came. */
#include "redis-cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>

#include "config.h"
#include "counter.h"
#include "hostport.h"
#include "log.h"
#include "redis-conn-int.h"

#define MAX_ROUNDS 16   /* redirections of redirections: a loop is a broken cluster */
#define FAILOVER_POLL_MS 200   /* asking for the slot map while a master fails over */
#define LIVE_REFRESH_MS 1000   /* live: the slot map asked for at most this often */

/* A slot map as a node gave it: the owner of each slot by name. */
struct slot_map {
    char name[REDIS_CLUSTER_MAX_NODES][REDIS_NODE_NAME_MAX];   /* host:port */
    int nnames;
    uint8_t slot[REDIS_CLUSTER_SLOTS];        /* index into name[] + 1; 0: not covered */
};

struct redis_cluster {
    const struct config *conf;
    struct redis_conn *node[REDIS_CLUSTER_MAX_NODES];
    char name[REDIS_CLUSTER_MAX_NODES][REDIS_NODE_NAME_MAX];   /* host:port */
    uint8_t owns[REDIS_CLUSTER_MAX_NODES];    /* node i is a slot's master in the map */
    int nnodes;
    uint8_t slot_node[REDIS_CLUSTER_SLOTS];   /* index into node[] */
    int live;
    uint64_t next_id, ids_left;               /* the reserved block of record ids */
    /* live: the slot map is read on a thread of its own (a node may be
     * frozen), at most once per LIVE_REFRESH_MS, when a master is down */
    pthread_t refresher;
    int refreshing;                           /* started, not yet taken */
    int refresh_done;                         /* atomic: fresh holds its result */
    int refresh_ok;
    uint64_t refresh_at;
    uint64_t downs_seen;                      /* the nodes' reconnections, when last looked at */
    int refresh_wanted;                       /* a master lost, dati:id moved: not asked yet */
    struct slot_map fresh;
    struct redis_cluster_counters n;
};


/* CRC16-XMODEM (polynomial 0x1021), as the cluster specification defines
 * the key slot: once per record, so a byte at a time from a table. */
static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t crc = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        crc_table[i] = crc;
    }
}

static uint16_t crc16(const char *s, size_t n)
{
    pthread_once(&crc_once, crc_init);
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ (uint8_t)s[i]) & 0xff]);
    return crc;
}

unsigned redis_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (REDIS_CLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (REDIS_CLUSTER_SLOTS - 1);
}

/* The node called host:port, connected to if new; -1 when it cannot be. */
static int node_index(struct redis_cluster *cl, const char *host, unsigned port, char *err,
                      size_t errlen)
{
    char name[REDIS_NODE_NAME_MAX];
    snprintf(name, sizeof name, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    for (int i = 0; i < cl->nnodes; i++)
        if (strcmp(cl->name[i], name) == 0)
            return i;
    if (cl->nnodes == REDIS_CLUSTER_MAX_NODES) {
        snprintf(err, errlen, "more than %d cluster nodes", REDIS_CLUSTER_MAX_NODES);
        return -1;
    }
    struct redis_conn *c = redis_conn_open_node(cl->conf, host, port, cl->live, err, errlen);
    if (!c)
        return -1;
    if (cl->live)
        redis_conn_set_live(c);
    int i = cl->nnodes;
    cl->node[i] = c;
    snprintf(cl->name[i], sizeof cl->name[i], "%s", name);
    __atomic_store_n(&cl->nnodes, i + 1, __ATOMIC_RELEASE);   /* the statistics read it */
    COUNTER_INC(cl->n.masters);
    return i;
}

/* The node called host:port (a redirection's target, a slot map's
 * master), connected to if new; -1 with err when it cannot be. */
static int node_named(struct redis_cluster *cl, const char *target, char *err, size_t errlen)
{
    char host[REDIS_NODE_NAME_MAX];
    unsigned port = hostport_split(target, host, sizeof host);
    if (!port) {
        snprintf(err, errlen, "not host:port: %s", target);
        return -1;
    }
    return node_index(cl, host, port, err, errlen);
}

/* A redirection's target; -1 (logged) when it cannot be reached. */
static int redirect_target(struct redis_cluster *cl, const char *target)
{
    char err[256];
    int i = node_named(cl, target, err, sizeof err);
    if (i < 0)
        redis_conn_log(cl->node[0], "redirected to a node that cannot be reached", err);
    return i;
}

/* Reads the slot map from one node (host:port) into m, connecting to
 * nothing else. Returns 0 when it covers every slot, 1 when the node could
 * not be reached or its map is not whole (try another), -1 with err when it
 * answered and refused. */
static int fetch_slots(const struct config *conf, const char *seed, struct slot_map *m,
                       char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    char host[256];
    struct redis_addr a = {NULL, host, hostport_split(seed, host, sizeof host)};
    int refused;
    redisContext *c = conn_connect_to(conf, &a, err, errlen, &refused);
    if (!c)
        return refused ? -1 : 1;
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    redisSetTimeout(c, tv);
    redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
    int rc = -1;
    if (!rep) {
        snprintf(err, errlen, "Redis at %s: CLUSTER SLOTS: %s", seed, c->errstr);
        rc = 1;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis at %s is not in cluster mode (%s): REDIS_CLUSTER needs "
                 "cluster-enabled nodes", seed, rep->str);
    } else if (rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "Redis at %s: CLUSTER SLOTS: unexpected reply", seed);
    } else {
        rc = 0;
        for (size_t i = 0; i < rep->elements && rc == 0; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
                e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
                snprintf(err, errlen, "Redis at %s: CLUSTER SLOTS: unexpected entry", seed);
                rc = -1;
                break;
            }
            const redisReply *mr = e->element[2];
            /* an empty or unknown endpoint is the node we asked */
            const char *mhost = mr->element[0]->type == REDIS_REPLY_STRING && mr->element[0]->len &&
                                strcmp(mr->element[0]->str, "?") != 0 ? mr->element[0]->str : host;
            char name[REDIS_NODE_NAME_MAX];
            if (snprintf(name, sizeof name, strchr(mhost, ':') ? "[%s]:%lld" : "%s:%lld", mhost,
                         mr->element[1]->integer) >= (int)sizeof name) {
                snprintf(err, errlen, "Redis at %s: CLUSTER SLOTS: a host name too long", seed);
                rc = -1;
                break;
            }
            int k = 0;
            while (k < m->nnames && strcmp(m->name[k], name) != 0)
                k++;
            if (k == REDIS_CLUSTER_MAX_NODES) {
                snprintf(err, errlen, "more than %d cluster nodes", REDIS_CLUSTER_MAX_NODES);
                rc = -1;
                break;
            }
            if (k == m->nnames)
                memcpy(m->name[m->nnames++], name, sizeof name);
            long long lo = e->element[0]->integer, hi = e->element[1]->integer;
            for (long long s = lo; s <= hi && s < REDIS_CLUSTER_SLOTS; s++)
                if (s >= 0)
                    m->slot[s] = (uint8_t)(k + 1);
        }
    }
    freeReplyObject(rep);
    redisFree(c);
    for (int s = 0; rc == 0 && s < REDIS_CLUSTER_SLOTS; s++)
        if (!m->slot[s]) {
            snprintf(err, errlen, "the Redis Cluster does not cover slot %d: is its state ok?", s);
            rc = 1;
        }
    return rc;
}

/* Takes a whole map: connects to its masters not known yet. */
static int apply_map(struct redis_cluster *cl, const struct slot_map *m, char *err, size_t errlen)
{
    int idx[REDIS_CLUSTER_MAX_NODES];
    for (int k = 0; k < m->nnames; k++)
        if ((idx[k] = node_named(cl, m->name[k], err, errlen)) < 0)
            return -1;
    memset(cl->owns, 0, sizeof cl->owns);
    for (int s = 0; s < REDIS_CLUSTER_SLOTS; s++) {
        cl->slot_node[s] = (uint8_t)idx[m->slot[s] - 1];
        cl->owns[cl->slot_node[s]] = 1;
    }
    return 0;
}

static int read_slots(struct redis_cluster *cl, const char *seed, char *err, size_t errlen)
{
    struct slot_map *m = &cl->fresh;   /* not refreshing: the worker's own */
    int rc = fetch_slots(cl->conf, seed, m, err, errlen);
    return rc == 0 ? apply_map(cl, m, err, errlen) : rc;
}

static void refresher_join(struct redis_cluster *cl)
{
    if (cl->refreshing)
        pthread_join(cl->refresher, NULL);
    cl->refreshing = 0;
}

struct redis_cluster *redis_cluster_open(const struct config *conf, char *err, size_t errlen)
{
    struct redis_cluster *cl = calloc(1, sizeof *cl);
    if (!cl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cl->conf = conf;
    int rc = 1;
    for (int i = 0; i < conf->redis_ncluster && rc == 1; i++)
        rc = read_slots(cl, conf->redis_cluster[i], err, errlen);
    if (rc == 1) {
        char last[256];
        snprintf(last, sizeof last, "%s", err);
        snprintf(err, errlen, "no seed node of REDIS_CLUSTER gave a whole slot map (%s)", last);
    }
    if (rc != 0) {
        redis_cluster_close(cl);
        return NULL;
    }
    if (redis_test_live())
        redis_cluster_set_live(cl);
    return cl;
}

void redis_cluster_close(struct redis_cluster *cl)
{
    if (!cl)
        return;
    redis_cluster_flush(cl);
    refresher_join(cl);
    for (int i = 0; i < cl->nnodes; i++)
        redis_conn_close(cl->node[i]);
    free(cl);
}

/* The slot map again, from any node that gives a whole one. */
static void refresh(struct redis_cluster *cl)
{
    char err[256];
    for (int i = 0; i < cl->nnodes; i++)
        if (read_slots(cl, cl->name[i], err, sizeof err) == 0)
            return;
    for (int i = 0; i < cl->conf->redis_ncluster; i++)
        if (read_slots(cl, cl->conf->redis_cluster[i], err, sizeof err) == 0)
            return;
}

/* Live: the slot map read on the refresher thread, from any node that
 * gives a whole one (known masters first, then the seeds). It reads only
 * the names of nodes known when it started: the worker may add others. */
static void *refresher_main(void *arg)
{
    struct redis_cluster *cl = arg;
    char err[256];
    int n = __atomic_load_n(&cl->nnodes, __ATOMIC_ACQUIRE), ok = 0;
    for (int i = 0; i < n + cl->conf->redis_ncluster && !ok; i++)
        ok = fetch_slots(cl->conf, i < n ? cl->name[i] : cl->conf->redis_cluster[i - n],
                         &cl->fresh, err, sizeof err) == 0;
    cl->refresh_ok = ok;
    __atomic_store_n(&cl->refresh_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Live: a master is down. The slot map is asked for off the worker's path
 * (a node may be frozen, and nothing live waits), at most once per
 * LIVE_REFRESH_MS, and taken when its answer has come. */
static void live_refresh(struct redis_cluster *cl)
{
    char err[256];
    if (cl->refreshing) {
        if (!__atomic_load_n(&cl->refresh_done, __ATOMIC_ACQUIRE))
            return;
        refresher_join(cl);
        if (!cl->refresh_ok)
            return;
        uint8_t before[REDIS_CLUSTER_SLOTS];   /* once per map: a failover is a change */
        memcpy(before, cl->slot_node, sizeof before);
        if (apply_map(cl, &cl->fresh, err, sizeof err) < 0)
            redis_conn_log(cl->node[0], "slot map", err);
        else if (memcmp(before, cl->slot_node, sizeof before) != 0)
            COUNTER_INC(cl->n.failovers);
        return;
    }
    uint64_t now = outbuf_now();
    if (now < cl->refresh_at)
        return;
    cl->refresh_at = now + LIVE_REFRESH_MS * 1000000ull;
    cl->refresh_done = 0;
    sigset_t all, old;   /* signals are for the other threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    cl->refreshing = pthread_create(&cl->refresher, NULL, refresher_main, cl) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cl->refresh_wanted = !cl->refreshing;
}

static int live_up(const struct redis_conn *c) { return c->c && !c->down; }

/* A master that answers for slot: its node, once the cluster has one.
 * Reading a file, a master lost waits for its replica to take over (the
 * slot map is asked for again every FAILOVER_POLL_MS) as long as it takes,
 * as dati waits for a single Redis; -1 once dati is being stopped. Live,
 * nothing waits: -1 until the refresher has found the slot's new master. */
static int live_owner(struct redis_cluster *cl, unsigned slot)
{
    uint64_t last_log = 0;
    if (cl->live) {
        live_refresh(cl);
        int i = cl->slot_node[slot];
        return live_up(cl->node[i]) ? i : -1;
    }
    for (;;) {
        int i = cl->slot_node[slot];
        if (redis_conn_alive(cl->node[i]))
            return i;
        if (redis_conn_stopping())
            return -1;
        refresh(cl);
        i = cl->slot_node[slot];
        if (redis_conn_alive(cl->node[i])) {
            COUNTER_INC(cl->n.failovers);
            return i;
        }
        if (log_due(&last_log, 5000000000u))
            log_warn("Redis Cluster: the master of slot %u (%s) is down; waiting for a replica "
                     "to take over", slot, cl->name[i]);
        conn_sleep_ms(FAILOVER_POLL_MS);
    }
}

struct redis_conn *redis_cluster_conn(struct redis_cluster *cl, const char *key, size_t len)
{
    unsigned slot = redis_keyslot(key, len);
    struct redis_conn *c = cl->node[cl->slot_node[slot]];
    if (!c->c) {   /* its node was lost: where is the slot now? */
        int i = live_owner(cl, slot);
        if (i >= 0)
            c = cl->node[i];
    }
    return c;
}

int redis_cluster_next_id(struct redis_cluster *cl, uint64_t *id)
{
    /* live: from blocks asked for inside the pipeline of dati:id's master,
     * never waited for (redis_conn_next_id): while that master is down or
     * slow, records are dropped once the blocks in hand are used */
    if (cl->live)
        return redis_conn_next_id(redis_cluster_conn(cl, ID_KEY, sizeof ID_KEY - 1), id);
    /* reading a file: the next block asked for ahead in dati:id's master's
     * pipeline, synchronously (following redirections) only when that
     * failed */
    if (cl->ids_left <= ID_BLOCK / 2) {
        struct redis_conn *c = redis_cluster_conn(cl, ID_KEY, sizeof ID_KEY - 1);
        redis_conn_ask_ids(c);
        if (cl->ids_left == 0 && redis_conn_take_ids(c, 1, &cl->next_id) == 0)
            cl->ids_left = ID_BLOCK;
    }
    if (cl->ids_left == 0) {
        int to = -1, asking = 0;
        for (int round = 0; round < MAX_ROUNDS; round++) {
            struct redis_conn *c = to >= 0 ? cl->node[to] : redis_cluster_conn(cl, ID_KEY, sizeof ID_KEY - 1);
            char err[160];
            long long v;
            if (redis_conn_incrby(c, ID_KEY, ID_BLOCK, asking, &v, err, sizeof err) == 0) {
                cl->next_id = (uint64_t)v - ID_BLOCK + 1;
                cl->ids_left = ID_BLOCK;
                break;
            }
            const char *target = strrchr(err, ' ');
            asking = strncmp(err, "ASK ", 4) == 0;
            if ((asking || strncmp(err, "MOVED ", 6) == 0) && target &&
                (to = redirect_target(cl, target + 1)) >= 0) {
                if (!asking) {
                    cl->slot_node[redis_keyslot(ID_KEY, sizeof ID_KEY - 1)] = (uint8_t)to;
                    COUNTER_INC(cl->n.refreshes);
                }
                continue;
            }
            to = -1, asking = 0;
            if (redis_conn_stopping() || cl->live) {
                redis_conn_log(c, "INCRBY dati:id failed", err[0] ? err : "connection lost");
                return -1;
            }
            conn_sleep_ms(100);   /* TRYAGAIN, CLUSTERDOWN, a lost master: the map again */
            refresh(cl);
        }
        if (cl->ids_left == 0)
            return -1;
    }
    *id = cl->next_id++;
    cl->ids_left--;
    return 0;
}

/* Sends on the commands node i gave back; returns how many there were. */
static unsigned resend(struct redis_cluster *cl, int i, int last_round)
{
    struct redis_redirects l;
    unsigned n = redis_conn_take_redirects(cl->node[i], &l);
    int slept = 0;
    for (unsigned k = 0; k < n; k++) {
        const struct redirect *d = &l.v[k];
        int to = i;
        if (d->how == REDIRECT_REROUTE) {
            to = live_owner(cl, d->slot);
        } else if (d->how == REDIRECT_RETRY) {
            COUNTER_INC(cl->n.retries);
            if (!slept && !cl->live) {   /* a slot being moved, a failover under way */
                conn_sleep_ms(100);
                slept = 1;
            }
        } else if ((to = redirect_target(cl, d->target)) >= 0) {
            if (d->how == REDIRECT_MOVED && cl->slot_node[d->slot] != to) {
                cl->slot_node[d->slot] = (uint8_t)to;   /* MOVED: the slot is there now */
                COUNTER_INC(cl->n.refreshes);
            }
            COUNTER_INC(*(d->how == REDIRECT_MOVED ? &cl->n.moved : &cl->n.ask));
        }
        struct redis_conn *c = to >= 0 ? cl->node[to] : cl->node[i];
        uint64_t dropped = 0;
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        if (to < 0 || last_round || redis_conn_admit(c, &dropped) < 0 ||
            (d->how == REDIRECT_ASK &&
             redis_conn_append_raw(c, asking, sizeof asking - 1, REDIS_CMD_MORE) < 0) ||
            redis_conn_append_raw(c, l.bytes.buf + d->off, d->len, d->kind) < 0) {
            conn_count_lost(c, d->kind);
            continue;
        }
        redis_conn_touch(c);
    }
    redis_redirects_free(&l);
    return n;
}

static int pending(const struct redis_cluster *cl)
{
    for (int i = 0; i < cl->nnodes; i++)
        if (cl->node[i]->redir.n)
            return 1;
    return 0;
}

void redis_cluster_service(struct redis_cluster *cl)
{
    for (int round = 0; round < MAX_ROUNDS && pending(cl); round++)
        for (int i = 0; i < cl->nnodes; i++)
            if (cl->node[i]->redir.n)
                resend(cl, i, round == MAX_ROUNDS - 1);
}

void redis_cluster_set_live(struct redis_cluster *cl)
{
    /* the first id block with a round trip now, handed to dati:id's master's
     * connection, which asks for the next ones ahead */
    uint64_t id;
    if (!cl->conf->redis_stream && redis_cluster_next_id(cl, &id) == 0) {
        struct redis_conn *c = redis_cluster_conn(cl, ID_KEY, sizeof ID_KEY - 1);
        c->next_id = id;
        c->ids_left = cl->ids_left + 1;
        cl->ids_left = 0;
    }
    cl->live = 1;
    for (int i = 0; i < cl->nnodes; i++)
        redis_conn_set_live(cl->node[i]);
}

void redis_cluster_drain(struct redis_cluster *cl)
{
    /* live: a master lost since the last look (down now, or reconnected
     * meanwhile: a hung server still accepts connections, and may not own
     * its slots any more) has the slot map asked for; one asked for is
     * taken when it comes */
    if (cl->live) {
        uint64_t downs = 0;
        for (int i = 0; i < cl->nnodes; i++) {
            struct redis_conn *c = cl->node[i];
            downs += COUNTER_GET(c->n.reconnects);
            if (c->ids_moved || (cl->owns[i] && !live_up(c)))   /* a former master may stay down */
                cl->refresh_wanted = 1;
            c->ids_moved = 0;
        }
        if (downs != cl->downs_seen)
            cl->refresh_wanted = 1;
        cl->downs_seen = downs;
        if (cl->refresh_wanted || cl->refreshing)
            live_refresh(cl);
    }
    for (int i = 0; i < cl->nnodes; i++)
        redis_conn_drain(cl->node[i]);
    redis_cluster_service(cl);
}

void redis_cluster_flush(struct redis_cluster *cl)
{
    for (int round = 0; round < MAX_ROUNDS; round++) {
        for (int i = 0; i < cl->nnodes; i++)
            redis_conn_flush(cl->node[i]);
        if (!pending(cl))
            return;
        redis_cluster_service(cl);
    }
}

int redis_cluster_nodes(const struct redis_cluster *cl)
{
    return __atomic_load_n(&cl->nnodes, __ATOMIC_ACQUIRE);
}

struct redis_conn *redis_cluster_node(struct redis_cluster *cl, int i) { return cl->node[i]; }

const char *redis_cluster_node_name(const struct redis_cluster *cl, int i) { return cl->name[i]; }

const struct redis_cluster_counters *redis_cluster_counters(const struct redis_cluster *cl)
{
    return &cl->n;
}
