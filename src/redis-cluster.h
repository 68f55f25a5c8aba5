/* redis-cluster.h - a worker's connections to a Redis Cluster: one
 * redis_conn (pipelines, accounting) per master, the slot map read from
 * CLUSTER SLOTS, key slots (CRC16, hash tags), and the commands the cluster
 * redirected (MOVED, ASK) or asked to retry (TRYAGAIN, CLUSTERDOWN), sent
 * again where they belong. Only its worker's thread touches it. */
#ifndef DATI_REDIS_CLUSTER_H
#define DATI_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "redis-conn.h"

#define REDIS_CLUSTER_SLOTS 16384
#define REDIS_CLUSTER_MAX_NODES 64
#define REDIS_NODE_NAME_MAX 280   /* "host:port": a DNS name (255) and a port */

struct redis_cluster_counters {
    uint64_t masters;          /* masters connected to */
    uint64_t moved, ask;       /* commands sent again after MOVED, after ASK */
    uint64_t retries;          /* commands sent again after TRYAGAIN or CLUSTERDOWN */
    uint64_t refreshes;        /* slots whose owner changed (MOVED) */
    uint64_t failovers;        /* masters lost, and their slots found on another */
};

struct redis_cluster;

/* The key slot of key (len bytes): CRC16-XMODEM of the key, or of the part
 * between the first '{' and the next '}' when that is not empty, mod 16384. */
unsigned redis_keyslot(const char *key, size_t len);

/* Asks the seed nodes (REDIS_CLUSTER, in turn) for the slot map and
 * connects to every master. NULL with the reason in err: no seed answered,
 * a seed not in cluster mode, AUTH refused, slots not covered. */
struct redis_cluster *redis_cluster_open(const struct config *conf, char *err, size_t errlen);
/* Sends what is queued (redirections too), then closes every connection. */
void redis_cluster_close(struct redis_cluster *cl);

/* The connection of the master that owns key's slot. */
struct redis_conn *redis_cluster_conn(struct redis_cluster *cl, const char *key, size_t len);
/* The next record id, from blocks of 1024 reserved with INCRBY dati:id on
 * its master, synchronously, following MOVED and ASK (a slot migration or
 * failover moves dati:id too). 0, or -1 when none could be had. */
int redis_cluster_next_id(struct redis_cluster *cl, uint64_t *id);

/* Sends again what the cluster redirected, to the node that now owns it
 * (MOVED: the slot map follows; ASK: once, after ASKING; TRYAGAIN and
 * CLUSTERDOWN: after 100 ms, reading a file). Cheap when there is nothing. */
void redis_cluster_service(struct redis_cluster *cl);

void redis_cluster_set_live(struct redis_cluster *cl);
void redis_cluster_drain(struct redis_cluster *cl);
/* Everything sent and answered, redirections included. */
void redis_cluster_flush(struct redis_cluster *cl);

int redis_cluster_nodes(const struct redis_cluster *cl);
struct redis_conn *redis_cluster_node(struct redis_cluster *cl, int i);
/* Node i's host:port. */
const char *redis_cluster_node_name(const struct redis_cluster *cl, int i);
const struct redis_cluster_counters *redis_cluster_counters(const struct redis_cluster *cl);

#endif
