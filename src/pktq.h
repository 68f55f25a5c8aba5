/* pktq.h - a bounded single-producer/single-consumer queue of packet
 * descriptors from the reader to one worker. Lock-free on the fast path;
 * an empty or full side sleeps on a futex instead of burning the core,
 * which matters with more threads than cores. Generic apart from the
 * element type. */
#ifndef DATI_PKTQ_H
#define DATI_PKTQ_H

#include <stdint.h>

#include "packet.h"

#define PKTQ_SIZE 4096   /* descriptors; a power of two */

struct pktq {
    /* producer side */
    uint32_t head __attribute__((aligned(64)));   /* next slot to publish */
    uint32_t head_local;                          /* written, not yet published */
    uint32_t consumer_sleeping;
    /* consumer side */
    uint32_t tail __attribute__((aligned(64)));   /* next slot to consume */
    uint32_t producer_sleeping;
    uint32_t closed;                              /* no more packets will come */
    int spins;
    struct packet slot[PKTQ_SIZE] __attribute__((aligned(64)));
};

/* spins: pause loops before a wait sleeps; 0 yields the core instead. */
void pktq_init(struct pktq *q, int spins);

/* Producer: a slot to fill, waiting while the queue is full. */
struct packet *pktq_reserve(struct pktq *q);
/* Producer: the reserved slot is filled; published every few packets. */
void pktq_commit(struct pktq *q);
/* Producer: makes everything committed visible now. */
void pktq_publish(struct pktq *q);
/* Producer: publishes the rest and tells the consumer nothing else comes. */
void pktq_close(struct pktq *q);

/* Producer: whether the consumer's tail has reached pos (wrapping). */
static inline int pktq_consumed(struct pktq *q, uint32_t pos)
{
    return (int32_t)(pos - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE)) <= 0;
}

/* Consumer: number of packets ready from *first on, waiting for some; 0 when
 * a wait of some milliseconds brought none, or the queue is done. busy: the
 * consumer just had work, so spinning first is worth it; an idle consumer
 * goes straight to sleep. */
uint32_t pktq_wait(struct pktq *q, uint32_t *first, int busy);

/* Consumer: closed and drained: nothing will ever come. */
static inline int pktq_done(struct pktq *q)
{
    return __atomic_load_n(&q->closed, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&q->head, __ATOMIC_ACQUIRE) == q->tail;
}
/* Consumer: n packets from the front are done; their slots may be reused. */
void pktq_release(struct pktq *q, uint32_t n);

static inline struct packet *pktq_at(struct pktq *q, uint32_t i)
{
    return &q->slot[i & (PKTQ_SIZE - 1)];
}

#endif
