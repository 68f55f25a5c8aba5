/* feedback.h - the feedback channel: a thread subscribed to FEEDBACK_CHANNEL
 * reads analyzers' JSON commands (feedback-cmd.h), hands each to the
 * workers through bounded per-worker queues (lock-free, one producer, one
 * consumer), and publishes every outcome on FEEDBACK_REPLY. Workers take
 * their commands in worker_drain(), between batches of packets: the packet
 * path has no lock and no check per packet.
 *
 * Routing: a flow id does not say which worker owns the flow, so flow
 * commands go to every worker, and the one holding the flow applies it; a
 * match rule goes to every worker too (each keeps its own copy, and tags its
 * own flows). Each command carries a count of the workers yet to see it; the
 * last one hands it back to this thread, which acknowledges it. A full queue
 * drops the command for that worker (counted; acknowledged with reason
 * queue_full when no worker applied it, or, for a match rule, when not every
 * worker installed it). */
#ifndef DATI_FEEDBACK_H
#define DATI_FEEDBACK_H

#include <stdint.h>

#include "feedback-cmd.h"
#include "flowtag.h"
#include "outbuf.h"

#define FB_QUEUE_SIZE 1024   /* commands waiting per worker; a power of two */
#define FB_POLL_MAX 256      /* commands a worker applies per drain */
#define FB_POLL_RULES 4      /* of which match rules: each walks the worker's active flows */

struct config;
struct worker;
struct flowtag;

/* A command on its way: parsed, routed, applied, acknowledged. */
struct fb_item {
    struct fb_cmd cmd;
    int pending;             /* workers yet to take it (atomic) */
    int applied;             /* workers that applied it (atomic) */
    int refused;             /* a worker refused it; why below (the first) */
    int dropped;             /* workers whose queue was full */
    int stopped;             /* workers that never took it: dati stopped first */
    const char *why;
    uint64_t received_ns;
    struct fb_item *next;    /* on the done list */
};

struct fb_queue {
    uint32_t head __attribute__((aligned(64)));   /* producer: next slot to fill */
    uint32_t tail __attribute__((aligned(64)));   /* consumer: next slot to take */
    struct fb_item *slot[FB_QUEUE_SIZE];
};

struct feedback_counters {
    uint64_t received;       /* messages on the channel */
    uint64_t malformed, unknown, invalid, oversized;   /* rejected, by reason */
    /* every routed command ends as exactly one of: */
    uint64_t applied;        /* acknowledged ok: a flow command applied by its worker,
                              * a match rule installed by every worker */
    uint64_t refused;        /* a limit of the flow or worker (flowtag.h) */
    uint64_t queue_full;     /* not (everywhere) applied: a worker's full queue dropped it */
    uint64_t unknown_flow;   /* no worker holds the flow */
    uint64_t stopped;        /* still queued when dati stopped */
    uint64_t acks, acks_lost;/* replies published / not (Redis error) */
    uint64_t reconnects;
};

struct feedback;

/* Connects (two connections: subscriber and replies), subscribes and starts
 * the thread; attaches each worker to its queue. Returns NULL with the
 * reason in err. */
struct feedback *feedback_start(const struct config *conf, struct worker *workers, int nworkers,
                                char *err, size_t errlen);
/* Stops the thread, after the workers are done: commands they did not take
 * are acknowledged as stopped. The counters stay readable. */
void feedback_stop(struct feedback *fb);
void feedback_free(struct feedback *fb);

/* Worker side: applies the commands waiting in worker w's queue. */
void feedback_poll(struct feedback *fb, int w, struct flowtag *t);

/* The counters of the thread and of the workers' flow tags, summed
 * (relaxed loads); and as {"received":...} for the stats record. */
struct feedback_totals {
    struct feedback_counters c;
    struct ft_counters ft;
};
void feedback_totals(const struct feedback *fb, struct feedback_totals *t);
int feedback_json(struct outbuf *b, const struct feedback *fb);
const struct feedback_counters *feedback_counters(const struct feedback *fb);

#endif
