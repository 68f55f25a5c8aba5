/* readahead.c - the I/O thread and the consumer's side of the buffer ring.
 * Threads: the I/O thread (when there is one) alone writes io_k, io_len,
 * filled, done, error and io_wake_at; the consumer (the reader thread) alone
 * writes pos, cursor_chunk and released. Each publishes with a release store
 * and a bump of the futex word the other may sleep on (io_seq, rel_seq);
 * sleeps have a short timeout only as a backstop. Without an I/O thread the
 * consumer calls read_step() itself and nothing is shared. */
#include "readahead.h"

#include "counter.h"

#include "capture.h"
#include "hugemem.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (256u << 10)   /* per read(): what the kernel copies stays in cache */
#define READ_POLL_MS 100         /* longest wait for input before timers run */

static void futex_wait(uint32_t *addr, uint32_t val)
{
    struct timespec ts = {0, 1000 * 1000};
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void bump(uint32_t *seq, uint32_t *waiting)
{
    __atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(waiting, __ATOMIC_SEQ_CST))
        futex_wake(seq);
}

/* I/O thread: chunk k may be filled once the chunk that used its buffer
 * before has been released. */
static int io_may_fill(struct readahead *ra, uint64_t k)
{
    return k < __atomic_load_n(&ra->released, __ATOMIC_ACQUIRE) + READAHEAD_SLOTS;
}

/* One read() into the buffer of chunk io_k. Returns 1 after progress, 0 at
 * the end of input or on an error (done is set), -1 when that buffer is not
 * free yet. */
static int read_step(struct readahead *ra)
{
    uint64_t k = ra->io_k;
    if (!io_may_fill(ra, k))
        return -1;
    uint8_t *data = ra->mem[k % READAHEAD_SLOTS] + READAHEAD_GAP;
    uint32_t want = READAHEAD_CHUNK - ra->io_len < READ_SIZE ? READAHEAD_CHUNK - ra->io_len
                                                              : READ_SIZE;
    ssize_t n;
    do
        n = read(ra->fd, data + ra->io_len, want);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        ra->error = n < 0 ? errno : 0;
        __atomic_store_n(&ra->done, 1, __ATOMIC_RELEASE);
        bump(&ra->io_seq, &ra->consumer_waiting);
        return 0;
    }
    ra->io_len += (uint32_t)n;
    __atomic_store_n(&ra->filled, k * READAHEAD_CHUNK + ra->io_len, __ATOMIC_RELEASE);
    if (ra->io_len == READAHEAD_CHUNK) {
        ra->io_k++;
        ra->io_len = 0;
    }
    if (ra->threaded)
        bump(&ra->io_seq, &ra->consumer_waiting);
    return 1;
}

static void *io_main(void *arg)
{
    struct readahead *ra = arg;
    for (;;) {
        int rc = read_step(ra);
        if (rc == 0)
            return NULL;
        if (rc > 0)
            continue;
        /* The ring is full: sleep until half of it is free, so that a
         * hand-off costs one wake-up per half ring rather than per buffer
         * (waking a thread is slow, on virtual machines above all). */
        uint64_t want = ra->io_k + 1 + READAHEAD_SLOTS / 2 - READAHEAD_SLOTS;
        __atomic_store_n(&ra->io_wake_at, want, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&ra->released, __ATOMIC_SEQ_CST) < want) {
            if (__atomic_load_n(&ra->stop, __ATOMIC_ACQUIRE))
                return NULL;
            uint32_t seq = __atomic_load_n(&ra->rel_seq, __ATOMIC_SEQ_CST);
            __atomic_store_n(&ra->io_waiting, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&ra->released, __ATOMIC_SEQ_CST) < want)
                futex_wait(&ra->rel_seq, seq);
            __atomic_store_n(&ra->io_waiting, 0, __ATOMIC_SEQ_CST);
        }
    }
}

int readahead_start(struct readahead *ra, int fd, const struct capture_options *opt)
{
    memset(ra, 0, sizeof *ra);
    ra->fd = fd;
    /* one mapping for the ring, its pages touched as the input fills them */
    if (!(ra->region = huge_alloc(READAHEAD_SLOTS * READAHEAD_SLOT_BYTES)))
        return -1;
    for (int i = 0; i < READAHEAD_SLOTS; i++)
        ra->mem[i] = ra->region + (size_t)i * READAHEAD_SLOT_BYTES;
    if (opt) {
        ra->slot_free = opt->slot_free;
        ra->idle = opt->idle;
        ra->ctx = opt->ctx;
        ra->threaded = opt->read_thread;
        ra->spins = opt->spins;
    }
    if (!ra->threaded)
        return 0;
    int rc = pthread_create(&ra->thread, NULL, io_main, ra);
    if (rc) {
        readahead_stop(ra);
        errno = rc;
        return -1;
    }
    ra->started = 1;
    return 0;
}

void readahead_stop(struct readahead *ra)
{
    if (ra->started) {
        /* It may wait for a buffer (the flag ends that) or sit in read() on a
         * pipe (only cancellation ends that). */
        __atomic_store_n(&ra->stop, 1, __ATOMIC_RELEASE);
        bump(&ra->rel_seq, &ra->io_waiting);
        pthread_cancel(ra->thread);
        pthread_join(ra->thread, NULL);
        ra->started = 0;
    }
    huge_free(ra->region, READAHEAD_SLOTS * READAHEAD_SLOT_BYTES);
    ra->region = NULL;
    memset(ra->mem, 0, sizeof ra->mem);
}

/* Releases, in order, the buffers of chunks before the cursor's that no
 * worker points into any more. */
static void release(struct readahead *ra)
{
    uint64_t r = ra->released;
    uint64_t cur = ra->pos / READAHEAD_CHUNK;
    ra->cursor_chunk = cur;
    while (r < cur && (!ra->slot_free || ra->slot_free(ra->ctx, (unsigned)(r % READAHEAD_SLOTS))))
        r++;
    if (r == ra->released)
        return;
    __atomic_store_n(&ra->released, r, __ATOMIC_SEQ_CST);
    if (r >= __atomic_load_n(&ra->io_wake_at, __ATOMIC_SEQ_CST))
        bump(&ra->rel_seq, &ra->io_waiting);
}

static int has_filled(struct readahead *ra, uint64_t end)
{
    return __atomic_load_n(&ra->filled, __ATOMIC_ACQUIRE) >= end ||
           __atomic_load_n(&ra->done, __ATOMIC_ACQUIRE);
}

/* Waits until the input holds `end` bytes or has ended. Spins a little
 * first: the next read() usually completes within microseconds, while
 * waking a sleeping thread can take far longer (on virtual machines an idle
 * CPU must be woken too); sleeping at every hand-off halved the speed. */
/* The consumer's callback: run timers, hand work over; nonzero means stop. */
static int idle(struct readahead *ra)
{
    if (ra->idle && ra->idle(ra->ctx)) {
        ra->stopped = 1;
        return 1;
    }
    return 0;
}

/* Whether fd has input within READ_POLL_MS: a pipe may trickle, and the
 * consumer must not sit in read() while records wait or a stop is asked. */
static int input_ready(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, READ_POLL_MS);
    if (n < 0 && errno == EINTR)
        return 0;   /* a signal: perhaps a stop, which the caller checks first */
    return n != 0;  /* other errors and hang-ups: read() will say */
}

/* Waits until the input holds `end` bytes or has ended. Returns 0, or -1
 * when the consumer asked to stop. */
static int wait_filled(struct readahead *ra, uint64_t end)
{
    while (!ra->threaded && !has_filled(ra, end)) {
        if (idle(ra))
            return -1;
        if (!input_ready(ra->fd))
            continue;
        if (read_step(ra) >= 0)
            continue;
        release(ra);   /* a buffer is still held by the workers */
        if (read_step(ra) < 0)
            sched_yield();
    }
    for (int i = 0; i < ra->spins; i++) {
        if (has_filled(ra, end))
            return 0;
        cpu_relax();
    }
    for (;;) {
        uint32_t seq = __atomic_load_n(&ra->io_seq, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&ra->filled, __ATOMIC_ACQUIRE) >= end ||
            __atomic_load_n(&ra->done, __ATOMIC_ACQUIRE))
            return 0;
        release(ra);
        if (idle(ra))   /* also lets the workers run dry, or nothing gets released */
            return -1;
        __atomic_store_n(&ra->consumer_waiting, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&ra->filled, __ATOMIC_SEQ_CST) < end &&
            !__atomic_load_n(&ra->done, __ATOMIC_SEQ_CST))
            futex_wait(&ra->io_seq, seq);
        __atomic_store_n(&ra->consumer_waiting, 0, __ATOMIC_SEQ_CST);
    }
}

/* The I/O thread's copy lands in the other core's cache, and the consumer
 * reads record headers one after the other, each a miss it waits for.
 * Loading every line some way ahead of the cursor makes that a stream: the
 * headers are there when the parser comes (0.50 s -> 0.23 s for the bench's
 * 2 GB lab mix; 4 to 64 KiB ahead measured the same). */
static void prefetch_ahead(struct readahead *ra, uint64_t filled)
{
    uint64_t end = ra->pos + READAHEAD_PREFETCH;
    if (end > filled)
        end = filled;
    if (ra->prefetched < ra->pos)
        ra->prefetched = ra->pos & ~(uint64_t)63;
    for (; ra->prefetched < end; ra->prefetched += 64) {
        uint64_t k = ra->prefetched / READAHEAD_CHUNK;
        __builtin_prefetch(ra->mem[k % READAHEAD_SLOTS] + READAHEAD_GAP +
                           ra->prefetched % READAHEAD_CHUNK);
    }
}

int readahead_peek(struct readahead *ra, uint32_t need, const uint8_t **out, unsigned *slot,
                   uint32_t *avail)
{
    uint64_t k = ra->pos / READAHEAD_CHUNK;
    uint32_t off = (uint32_t)(ra->pos % READAHEAD_CHUNK);
    if (k != ra->cursor_chunk)
        release(ra);
    uint64_t filled = __atomic_load_n(&ra->filled, __ATOMIC_ACQUIRE);
    if (filled < ra->pos + need) {
        if (wait_filled(ra, ra->pos + need) < 0)
            return READAHEAD_STOPPED;
        filled = __atomic_load_n(&ra->filled, __ATOMIC_ACQUIRE);
        if (filled < ra->pos + need) {
            *avail = (uint32_t)(filled - ra->pos);
            return ra->error ? -1 : 0;
        }
    }
    if (ra->threaded)
        prefetch_ahead(ra, filled);
    if (off + need <= READAHEAD_CHUNK) {
        *slot = (unsigned)(k % READAHEAD_SLOTS);
        *out = ra->mem[*slot] + READAHEAD_GAP + off;
        return 1;
    }
    /* straddles chunks k and k+1: put the first part in front of the second */
    uint32_t first = READAHEAD_CHUNK - off;
    if (need - first > READAHEAD_CHUNK || first > READAHEAD_GAP)
        return -1;   /* callers never ask for more than one record */
    *slot = (unsigned)((k + 1) % READAHEAD_SLOTS);
    uint8_t *dst = ra->mem[*slot] + READAHEAD_GAP - first;
    memcpy(dst, ra->mem[k % READAHEAD_SLOTS] + READAHEAD_GAP + off, first);
    *out = dst;
    return 1;
}
