/* capture.h - where packets come from, behind one ops table (today: pcap
 * and pcapng from a file or pipe, capture-file.c; live back-ends later).
 * Used by the reader thread only. */
#ifndef DATI_CAPTURE_H
#define DATI_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"

#define CAPTURE_MAX_CAPLEN 262144u   /* libpcap's largest snapshot length */

struct capture;

/* How a back-end may use threads, and how it learns when the packets it
 * handed out are done with. Without slot_free, a packet is done with when
 * the next one is asked for. */
struct capture_options {
    int (*slot_free)(void *ctx, unsigned slot);   /* nothing points into buffer slot */
    int (*idle)(void *ctx);                        /* waiting for input; nonzero: stop */
    void *ctx;
    int read_thread;           /* read ahead in a thread of its own */
    int spins;                 /* pause loops before a wait sleeps */
};

struct capture_ops {
    /* Fills p->data, caplen, wirelen, ts and *linktype. Returns 1 for a
     * packet, 0 at the clean end of input or when opt->idle asked to stop,
     * -1 on damage (message in errbuf).
     * p->data lies in input buffer c->slot and stays valid until
     * opt->slot_free says that buffer is free. */
    int (*next)(struct capture *c, struct packet *p, int *linktype);
    void (*close)(struct capture *c);
};

struct capture {
    const struct capture_ops *ops;
    const char *kind;          /* "pcap", "pcapng" */
    unsigned slot;             /* input buffer holding the last packet returned */
    uint64_t size;             /* bytes of input when known, else 0 */
    uint64_t offset;           /* bytes consumed so far, for progress */
    char errbuf[256];
    void *priv;
};

/* Opens a capture file ("-" for standard input). Returns 0, or -1 with the
 * reason in c->errbuf (without the path: the caller names the input). */
int capture_open_file(struct capture *c, const char *path, const struct capture_options *opt);

/* Reads pcap or pcapng from fd (closed by capture_close when owns_fd). */
int capture_file_open_fd(struct capture *c, int fd, int owns_fd, const struct capture_options *opt);

static inline int capture_next(struct capture *c, struct packet *p, int *linktype)
{
    return c->ops->next(c, p, linktype);
}

static inline void capture_close(struct capture *c)
{
    if (c->ops)
        c->ops->close(c);
    c->ops = NULL;
}

#endif
