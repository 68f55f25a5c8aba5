/* outbuf.h - growable byte buffers, and where JSON lines go: a sink (a file
 * descriptor shared by all workers) that per-worker buffers reach in whole
 * lines, one write() per buffer-full, under the sink's lock. A record is
 * never split. Without a sink, a buffer is plain storage (Redis pipelines). */
#ifndef DATI_OUTBUF_H
#define DATI_OUTBUF_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct output_sink {
    int fd;
    int owns_fd;
    pthread_mutex_t lock;
    int error;                /* errno of the first failed write, 0 while fine */
    uint64_t bytes;           /* written so far */
};

/* Opens path for writing ("-" is stdout). Returns 0, or -1 with the reason in err. */
int output_sink_open(struct output_sink *s, const char *path, char *err, size_t errlen);
void output_sink_close(struct output_sink *s);

#define OUTBUF_FLUSH_AT (64u << 10)   /* bytes buffered before a write */

struct outbuf {
    char *buf;
    size_t len, cap;
    struct output_sink *sink;
    uint64_t since;           /* monotonic ns of the oldest unwritten line, 0: none */
    uint64_t lines;           /* complete lines in buf */
    uint64_t lost;            /* lines the sink refused (a counter: read by the stats) */
};

#define OUTBUF_DRAIN_NS (100u * 1000 * 1000)   /* longest a line waits in a buffer */

uint64_t outbuf_now(void);

int outbuf_init(struct outbuf *b, struct output_sink *sink);
void outbuf_fini(struct outbuf *b);

/* Makes room for n more bytes, growing the buffer if a record needs it.
 * Returns 0, or -1 when memory ran out (the record is then dropped). */
int outbuf_grow(struct outbuf *b, size_t n);

static inline int outbuf_room(struct outbuf *b, size_t n)
{
    return b->cap - b->len >= n ? 0 : outbuf_grow(b, n);
}

/* Appends printf-formatted text (no sink flush). Returns 0, or -1 (memory). */
int outbuf_printf(struct outbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the buffer to the sink. Returns 0, or -1 once the sink has failed. */
int outbuf_flush(struct outbuf *b);

/* Called after each complete line: flushes when enough is buffered. */
static inline int outbuf_end_line(struct outbuf *b)
{
    if (b->since == 0)
        b->since = outbuf_now();
    b->lines++;
    return b->len >= OUTBUF_FLUSH_AT ? outbuf_flush(b) : 0;
}

/* The drain timer: writes what has waited OUTBUF_DRAIN_NS or more, so that
 * a trickle of records is not held back for want of a full buffer. */
static inline int outbuf_drain(struct outbuf *b, uint64_t now)
{
    return b->since && now - b->since >= OUTBUF_DRAIN_NS ? outbuf_flush(b) : 0;
}

#endif
