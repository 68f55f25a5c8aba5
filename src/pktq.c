/* pktq.c - the reader-to-worker queue: acquire/release indices, futex
 * sleeps with a short timeout as a backstop against a missed wake-up. */
#include "pktq.h"

#include "counter.h"

#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PKTQ_BATCH 32       /* publish after this many packets */
#define PKTQ_YIELDS 64      /* sched_yield()s before sleeping */

static void futex_wait(uint32_t *addr, uint32_t val)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void pktq_init(struct pktq *q, int spins)
{
    memset(q, 0, sizeof *q - sizeof q->slot);
    q->spins = spins;
}

/* Before sleeping: spin when each thread has a core, else let others run. */
static int keep_trying(const struct pktq *q, int round)
{
    if (round < q->spins) {
        cpu_relax();
        return 1;
    }
    if (round < q->spins + PKTQ_YIELDS) {
        sched_yield();
        return 1;
    }
    return 0;
}

struct packet *pktq_reserve(struct pktq *q)
{
    uint32_t h = q->head_local;
    for (int spins = 0; h - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) >= PKTQ_SIZE; spins++) {
        pktq_publish(q);   /* the consumer may be waiting for what we hold */
        if (keep_trying(q, spins))
            continue;
        __atomic_store_n(&q->producer_sleeping, 1, __ATOMIC_SEQ_CST);
        uint32_t t = __atomic_load_n(&q->tail, __ATOMIC_SEQ_CST);
        if (h - t >= PKTQ_SIZE)
            futex_wait(&q->tail, t);
        __atomic_store_n(&q->producer_sleeping, 0, __ATOMIC_RELAXED);
    }
    return pktq_at(q, h);
}

void pktq_publish(struct pktq *q)
{
    if (q->head_local == q->head)
        return;
    __atomic_store_n(&q->head, q->head_local, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&q->consumer_sleeping, __ATOMIC_SEQ_CST))
        futex_wake(&q->head);
}

void pktq_commit(struct pktq *q)
{
    if (++q->head_local - q->head >= PKTQ_BATCH)
        pktq_publish(q);
}

void pktq_close(struct pktq *q)
{
    pktq_publish(q);
    __atomic_store_n(&q->closed, 1, __ATOMIC_SEQ_CST);
    futex_wake(&q->head);
}

uint32_t pktq_wait(struct pktq *q, uint32_t *first, int busy)
{
    uint32_t t = q->tail;
    *first = t;
    for (int spins = 0;; spins++) {
        uint32_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
        if (h != t)
            return h - t;
        if (__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE)) {
            h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
            return h - t;
        }
        if (busy && keep_trying(q, spins))
            continue;
        __atomic_store_n(&q->consumer_sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&q->head, __ATOMIC_SEQ_CST) == t &&
            !__atomic_load_n(&q->closed, __ATOMIC_SEQ_CST))
            futex_wait(&q->head, t);
        __atomic_store_n(&q->consumer_sleeping, 0, __ATOMIC_RELAXED);
        h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
        return h - t;   /* the caller may have timers to run */
    }
}

void pktq_release(struct pktq *q, uint32_t n)
{
    __atomic_store_n(&q->tail, q->tail + n, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&q->producer_sleeping, __ATOMIC_SEQ_CST))
        futex_wake(&q->tail);
}
