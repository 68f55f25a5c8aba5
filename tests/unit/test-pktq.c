/* test-pktq.c - the reader-to-worker queue: close semantics and wrap-around
 * on one thread; then a producer thread and a consumer thread passing
 * 1,000,000 packets (checked for order, count and contents), a slow
 * consumer (the producer waits on a full queue) and a trickling producer
 * (the consumer waits on an empty one); pktq_consumed() as a late consumer
 * releases, also across the wrap of the 32-bit positions. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pktq.h"
#include "test.h"

static struct pktq *queue_new(void)
{
    struct pktq *q = aligned_alloc(64, sizeof *q);
    if (q)
        pktq_init(q, 0);
    return q;
}

static void push(struct pktq *q, uint64_t frame)
{
    struct packet *p = pktq_reserve(q);
    p->frame = frame;
    p->clock = frame * 3;
    p->caplen = (uint32_t)frame;
    pktq_commit(q);
}

static void test_close_semantics(void)
{
    struct pktq *q = queue_new();
    uint32_t first = 99;
    /* fewer than a batch, then close: close publishes them */
    push(q, 1);
    push(q, 2);
    push(q, 3);
    pktq_close(q);
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 3);
    CHECK_EQ_U64(first, 0);
    CHECK_EQ_U64(pktq_at(q, first)->frame, 1);
    CHECK_EQ_U64(pktq_at(q, first + 2)->frame, 3);
    /* not released yet: the same packets again */
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 3);
    pktq_release(q, 2);
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 1);
    CHECK_EQ_U64(first, 2);
    pktq_release(q, 1);
    /* closed and drained: 0, every time */
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 0);
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 0);
    CHECK(pktq_done(q));
    /* closing an empty queue */
    pktq_init(q, 0);
    CHECK(!pktq_done(q));
    pktq_close(q);
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 0);
    CHECK(pktq_done(q));
    /* an explicit publish makes a packet visible before a batch is full */
    pktq_init(q, 0);
    push(q, 1);
    pktq_publish(q);
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 1);
    pktq_release(q, 1);
    /* wrap-around on one thread: fill, drain, several times over */
    unsigned bad = 0;
    uint64_t next_in = 2, next_out = 2;
    for (int round = 0; round < 5; round++) {
        for (uint32_t i = 0; i < PKTQ_SIZE - (uint32_t)round; i++)
            push(q, next_in++);
        pktq_publish(q);
        uint32_t n;
        while (next_out < next_in && (n = pktq_wait(q, &first, 1)) != 0) {
            for (uint32_t i = 0; i < n; i++)
                bad += pktq_at(q, first + i)->frame != next_out++;
            pktq_release(q, n);
        }
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(next_out, next_in);
    free(q);
}

struct run {
    struct pktq *q;
    uint64_t count;
    unsigned producer_pause_every;   /* usleep after this many packets, 0: never */
    unsigned consumer_pause_every;
    /* consumer results */
    uint64_t received, out_of_order, bad_contents;
};

static void *producer(void *arg)
{
    struct run *r = arg;
    for (uint64_t f = 1; f <= r->count; f++) {
        push(r->q, f);
        if (r->producer_pause_every && f % r->producer_pause_every == 0) {
            pktq_publish(r->q);
            usleep(200);
        }
    }
    pktq_close(r->q);
    return NULL;
}

static void *consumer(void *arg)
{
    struct run *r = arg;
    uint64_t expect = 1;
    for (;;) {
        uint32_t first;
        uint32_t n = pktq_wait(r->q, &first, 1);
        if (n == 0) {   /* a wait without news, or the end */
            if (pktq_done(r->q))
                break;
            continue;
        }
        if (n > PKTQ_SIZE)
            r->out_of_order++;
        for (uint32_t i = 0; i < n && i < PKTQ_SIZE; i++) {
            const struct packet *p = pktq_at(r->q, first + i);
            if (p->frame != expect)
                r->out_of_order++;
            if (p->clock != p->frame * 3 || p->caplen != (uint32_t)p->frame)
                r->bad_contents++;
            expect = p->frame + 1;
            r->received++;
            if (r->consumer_pause_every && r->received % r->consumer_pause_every == 0)
                usleep(1000);
        }
        pktq_release(r->q, n);
    }
    return NULL;
}

static void run_threads(uint64_t count, unsigned producer_pause, unsigned consumer_pause)
{
    struct run r = {.q = queue_new(), .count = count, .producer_pause_every = producer_pause,
                    .consumer_pause_every = consumer_pause};
    pthread_t pt, ct;
    CHECK_EQ_INT(pthread_create(&ct, NULL, consumer, &r), 0);
    CHECK_EQ_INT(pthread_create(&pt, NULL, producer, &r), 0);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    CHECK_EQ_U64(r.received, count);
    CHECK_EQ_U64(r.out_of_order, 0);
    CHECK_EQ_U64(r.bad_contents, 0);
    CHECK(pktq_done(r.q));
    uint32_t first;
    CHECK_EQ_U64(pktq_wait(r.q, &first, 1), 0);
    free(r.q);
}

/* A consumer that starts late, releases what is there in halves and counts
 * it; pktq_consumed() must not say yes before that. */
struct late {
    struct pktq *q;
    uint32_t expect;
    uint32_t released;   /* atomic */
};

static void *late_consumer(void *arg)
{
    struct late *l = arg;
    usleep(20000);
    uint32_t done = 0;
    while (done < l->expect) {
        uint32_t first;
        uint32_t n = pktq_wait(l->q, &first, 1);
        if (n == 0) {   /* a wait without news, or the end */
            if (pktq_done(l->q))
                break;
            continue;
        }
        uint32_t half = n > 1 ? n / 2 : n;
        __atomic_add_fetch(&l->released, half, __ATOMIC_SEQ_CST);
        pktq_release(l->q, half);
        usleep(2000);
        done += half;
    }
    return NULL;
}

static void consumed_from(uint32_t start)
{
    struct pktq *q = queue_new();
    q->head = q->head_local = q->tail = start;
    /* positions already consumed, including just behind */
    CHECK(pktq_consumed(q, start));
    CHECK(pktq_consumed(q, start - 3));
    for (uint64_t f = 1; f <= 40; f++)
        push(q, f);
    pktq_publish(q);
    CHECK(!pktq_consumed(q, start + 1));
    CHECK(!pktq_consumed(q, start + 40));
    uint32_t first;
    CHECK_EQ_U64(pktq_wait(q, &first, 1), 40);
    pktq_release(q, 10);
    CHECK(pktq_consumed(q, start + 10));
    CHECK(!pktq_consumed(q, start + 11));
    pktq_release(q, 30);
    CHECK(pktq_consumed(q, start + 40));
    CHECK(pktq_consumed(q, q->head_local));

    /* a producer polling while a late consumer releases */
    struct late l = {.q = q, .expect = 40};
    for (uint64_t f = 1; f <= l.expect; f++)
        push(q, f);
    pktq_publish(q);
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, late_consumer, &l), 0);
    unsigned early = 0;
    for (uint32_t k = 1; k <= l.expect; k++) {
        while (!pktq_consumed(q, start + 40 + k))
            sched_yield();
        early += __atomic_load_n(&l.released, __ATOMIC_SEQ_CST) < k;
    }
    CHECK_EQ_U64(early, 0);
    pthread_join(t, NULL);
    CHECK_EQ_U64(q->tail, (uint32_t)(start + 80));
    free(q);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_close_semantics();
    run_threads(1000000, 0, 0);          /* as fast as both go */
    run_threads(50000, 0, 5000);         /* slow consumer: the producer waits when full */
    run_threads(300, 1, 0);              /* trickle: the consumer waits when empty */
    consumed_from(0);
    consumed_from(0xffffffe0u);          /* positions wrap */
    return test_summary(argv[0]);
}
