/* tap.h - forwarding matching packets to a pool of tun/tap devices (TAP_IF).
 * A name starting with "tap" is a tap device (Ethernet frames); any other
 * name is a tun device (raw IP). The pool is opened by the main thread;
 * workers only write. */
#ifndef DATI_TAP_H
#define DATI_TAP_H

#include <net/if.h>
#include <stdint.h>

#include "packet.h"

#define TAP_MAX_DEVICES 256

struct tap_device {
    char name[IF_NAMESIZE];
    int fd;
    int ethernet;              /* tap: whole frames; tun: from the IP header */
};

struct tap_pool {
    int ndevs;
    struct tap_device dev[TAP_MAX_DEVICES];
};

/* Per-worker counters of what was written. */
struct tap_counters {
    uint64_t packets;          /* written */
    uint64_t queue_full;       /* the device's queue was full: dropped */
    uint64_t errors;           /* any other write error: dropped */
    uint64_t not_ip;           /* not IP, so nothing a tun can carry */
};

/* The device's index in the pool, opening it (and creating it if missing,
 * and bringing it up) the first time. Returns -1 with the reason in err. */
int tap_pool_open(struct tap_pool *pool, const char *name, char *err, size_t errlen);
void tap_pool_close(struct tap_pool *pool);

/* Writes p (of the given link type) to d; counts the outcome in c. */
void tap_write(const struct tap_device *d, const struct packet *p, int linktype,
               struct tap_counters *c);

#endif
