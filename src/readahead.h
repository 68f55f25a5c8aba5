/* readahead.h - an input byte stream read by a thread of its own, ahead of
 * its one consumer (the reader thread), into a ring of buffers. The consumer
 * sees contiguous bytes without copying: only a record that straddles two
 * buffers is copied, into the gap in front of the second. Bytes handed out
 * stay valid until their buffer is released, which the consumer does once a
 * callback says that no worker still points into it. */
#ifndef DATI_READAHEAD_H
#define DATI_READAHEAD_H

#include <pthread.h>
#include <stdint.h>

#define READAHEAD_CHUNK (512u << 10)  /* bytes per buffer */
#define READAHEAD_GAP (320u << 10)    /* room for one straddling record */
#define READAHEAD_SLOTS 16            /* buffers in the ring */
#define READAHEAD_SLOT_BYTES (READAHEAD_GAP + READAHEAD_CHUNK)
#define READAHEAD_PREFETCH (16u << 10) /* threaded: bytes ahead of the cursor in flight */

struct readahead {
    int fd;
    uint8_t *region;                  /* the buffers, one after the other */
    uint8_t *mem[READAHEAD_SLOTS];    /* each: gap, then a chunk of input */
    pthread_t thread;
    int started;
    int threaded;                     /* an I/O thread reads; else the consumer does */
    int spins;
    uint64_t io_k;                    /* chunk being filled (I/O side) */
    uint32_t io_len;                  /* bytes of it filled */
    /* written by the I/O thread */
    uint64_t filled;                  /* input bytes available */
    uint32_t io_seq;                  /* futex word, bumped at each fill */
    uint32_t done;                    /* end of input or error reached */
    int error;                        /* errno of a failed read, or 0 */
    uint32_t io_waiting;
    /* written by the consumer */
    uint64_t released;                /* chunks whose buffers may be refilled */
    uint64_t io_wake_at;              /* the I/O thread sleeps until released reaches it */
    uint32_t rel_seq;                 /* futex word, bumped when released passes io_wake_at */
    uint32_t consumer_waiting;
    uint32_t stop;                    /* the I/O thread must end */
    uint64_t pos;                     /* input offset of the cursor */
    uint64_t prefetched;              /* threaded: input bytes prefetched up to here */
    uint64_t cursor_chunk;            /* chunk of pos when buffers were last released */
    /* consumer callbacks (NULL: buffers are free as soon as the cursor passes) */
    int (*slot_free)(void *ctx, unsigned slot);   /* no worker points into slot */
    int (*idle)(void *ctx);                        /* waiting for input; nonzero: stop */
    int stopped;                                   /* idle asked to stop */
    void *ctx;
};

struct capture_options;

/* Starts reading fd. opt (may be NULL): whether a thread reads ahead (else
 * the consumer reads when it needs to), how long waits spin, and when
 * buffers are free. Returns 0, or -1 with errno set. */
int readahead_start(struct readahead *ra, int fd, const struct capture_options *opt);
void readahead_stop(struct readahead *ra);

#define READAHEAD_STOPPED (-2)

/* need contiguous bytes at the cursor: 1 and *out, 0 when the input ends
 * first (*avail says how many bytes are left), -1 on a read error
 * (ra->error), READAHEAD_STOPPED when the idle callback asked to stop. *slot
 * is the buffer the bytes are in. */
int readahead_peek(struct readahead *ra, uint32_t need, const uint8_t **out, unsigned *slot,
                   uint32_t *avail);

static inline void readahead_advance(struct readahead *ra, uint32_t n)
{
    ra->pos += n;
}

#endif
