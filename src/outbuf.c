/* outbuf.c - the shared sink and the per-worker line buffers. */
#include "outbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int output_sink_open(struct output_sink *s, const char *path, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (strcmp(path, "-") == 0) {
        s->fd = STDOUT_FILENO;
    } else {
        s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            snprintf(err, errlen, "cannot open %s for writing: %s", path, strerror(errno));
            return -1;
        }
        s->owns_fd = 1;
    }
    pthread_mutex_init(&s->lock, NULL);
    return 0;
}

void output_sink_close(struct output_sink *s)
{
    if (s->owns_fd && close(s->fd) < 0 && !s->error)
        s->error = errno;
    pthread_mutex_destroy(&s->lock);
}

uint64_t outbuf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int outbuf_init(struct outbuf *b, struct output_sink *sink)
{
    memset(b, 0, sizeof *b);
    b->cap = OUTBUF_FLUSH_AT * 2;
    b->buf = malloc(b->cap);
    b->sink = sink;
    return b->buf ? 0 : -1;
}

void outbuf_fini(struct outbuf *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

int outbuf_grow(struct outbuf *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n)
        cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb)
        return -1;
    b->buf = nb;
    b->cap = cap;
    return 0;
}

int outbuf_flush(struct outbuf *b)
{
    struct output_sink *s = b->sink;
    if (b->len == 0)
        return __atomic_load_n(&s->error, __ATOMIC_RELAXED) ? -1 : 0;
    pthread_mutex_lock(&s->lock);
    size_t off = 0;
    while (!s->error && off < b->len) {
        ssize_t n = write(s->fd, b->buf + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s->error = n < 0 ? errno : EIO;
            break;
        }
        off += (size_t)n;
    }
    s->bytes += off;
    int rc = s->error ? -1 : 0;
    pthread_mutex_unlock(&s->lock);
    if (rc)   /* a line partly written counts as lost too */
        __atomic_store_n(&b->lost, b->lost + b->lines, __ATOMIC_RELAXED);
    b->len = 0;
    b->lines = 0;
    b->since = 0;
    return rc;
}

int outbuf_printf(struct outbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= b->cap - b->len) {
        if (outbuf_grow(b, (size_t)n + 1) < 0)
            return -1;
        va_start(ap, fmt);
        vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}
