/* capture.h - where packets come from, behind one ops table: capture files
 * read through mmap (capture-file.c) or libpcap's reader for pipes and
 * anything else (capture-pcap.c). Used by the reader thread only. */
#ifndef DATI_CAPTURE_H
#define DATI_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"

#define CAPTURE_MAX_CAPLEN 262144u   /* libpcap's largest snapshot length */

struct capture;

struct capture_ops {
    /* Fills p->data, caplen, wirelen, ts and *linktype. Returns 1 for a
     * packet, 0 at the clean end of input, -1 on damage (message in errbuf).
     * p->data stays valid until the capture is closed (mmap) or, for
     * copying back-ends, until the next call. */
    int (*next)(struct capture *c, struct packet *p, int *linktype);
    void (*close)(struct capture *c);
};

struct capture {
    const struct capture_ops *ops;
    const char *kind;          /* "pcap", "pcapng", "libpcap" */
    int stable_data;           /* packet bytes outlive the next call (mmap) */
    uint64_t size;             /* bytes of input when known, else 0 */
    uint64_t offset;           /* bytes consumed so far, for progress */
    char errbuf[256];
    void *priv;
};

/* Opens a capture file ("-" for standard input). Returns 0, or -1 with the
 * reason in c->errbuf (without the path: the caller names the input). */
int capture_open_file(struct capture *c, const char *path);

int capture_file_open_mmap(struct capture *c, int fd, uint64_t size);
int capture_pcap_open(struct capture *c, const char *path);

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
