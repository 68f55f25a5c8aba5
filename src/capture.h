/* capture.h - where packets come from, behind one ops table: pcap and pcapng
 * from a file or pipe (capture-file.c, used by the reader thread), and live
 * AF_PACKET rings (capture-afpacket.c, one capture per worker thread). */
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
    void (*notice)(void *ctx, const char *msg);    /* a live interface went down */
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

/* The two halves of capture_open_file, for a caller that opens the input
 * before anything else (a missing file is then the only message):
 * capture_input_open returns a descriptor (standard input for "-"), or -1
 * with the reason in err; capture_open_input takes the descriptor over in
 * every case and returns as capture_open_file does. */
int capture_input_open(const char *path, char *err, size_t errlen);
int capture_open_input(struct capture *c, int fd, const struct capture_options *opt);

/* Reads pcap or pcapng from fd (closed by capture_close when owns_fd). */
int capture_file_open_fd(struct capture *c, int fd, int owns_fd, const struct capture_options *opt);

#define CAPTURE_MAX_IFACES 16

/* A live interface, resolved once by the main thread. */
struct capture_iface {
    const char *name;
    int ifindex;
    int linktype;              /* LINKTYPE_ETHERNET or LINKTYPE_RAW (tun) */
    int fanout_id;             /* the fanout group all workers' rings join; -1 until the
                                * first ring has the kernel choose a unique one */
};

struct capture_live_options {
    unsigned block_size;       /* bytes, a multiple of the page size */
    unsigned block_count;
    unsigned block_timeout_ms; /* a block is handed over at the latest after this */
    unsigned snaplen;          /* 0: whole packets */
    unsigned poll_ms;          /* longest wait before opt->idle runs */
    int promisc;
    int fanout;                /* join ifs[i].fanout_id (several workers) */
};

/* Looks an interface up by name: index and link type. Returns 0, or -1 with
 * the reason in err. */
int capture_iface_lookup(struct capture_iface *ifc, const char *name, char *err, size_t errlen);

/* One TPACKET_V3 ring per interface. ifs must outlive the capture; the
 * first capture opened sets each ifs[i].fanout_id. Rings take no packet
 * until capture_live_start(), called once every worker's capture is open.
 * Returns 0, or -1 with the reason, naming the interface, in c->errbuf.
 * next() returns -1 when an interface disappears; while one is merely down,
 * it says so through opt->notice and waits. */
int capture_open_live(struct capture *c, struct capture_iface *ifs, int nifs,
                      const struct capture_live_options *lo, const struct capture_options *opt);
int capture_live_start(struct capture *c);

/* Live capture, in batches: up to max packets that are ready now (waiting,
 * as capture_next does, only when none is), v[i] with linktype[i]. The
 * packets stay valid until the next call, which hands the blocks they came
 * from back to the kernel first. Returns the count, 0 when opt->idle asked
 * to stop, -1 when an interface is gone (errbuf). */
int capture_live_batch(struct capture *c, struct packet *v, int *linktype, int max);

/* Interface names by packet.iface (1-based), for records. Set before the
 * workers start, read-only afterwards. */
void capture_set_iface_name(int iface, const char *name);
const char *capture_iface_name(int iface);

/* Adds the kernel's counters for interface iface (index into ifs) since the
 * last call. Returns 0 or -1. */
int capture_live_stats(struct capture *c, int iface, uint64_t *received, uint64_t *dropped);

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
