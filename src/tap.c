/* tap.c - the TAP_IF pool: matching packets written to tun devices (raw IP,
 * like the seed's "noeth" extractors) or tap devices (Ethernet), so that
 * any program able to capture on an interface can analyse them. Devices
 * are opened (created if missing) once, while dati still has the right to;
 * writes are non-blocking: a full device queue is a counted drop, never a
 * stall of the capture. */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "counter.h"
#include "decode.h"
#include "netdev.h"

static int is_tap_name(const char *name)
{
    return strncmp(name, "tap", 3) == 0;
}

static int bring_up(const char *name, char *err, size_t errlen)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    int rc = netdev_ioctl(name, SIOCGIFFLAGS, &ifr);
    if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        rc = netdev_ioctl(name, SIOCSIFFLAGS, &ifr);
    }
    if (rc < 0)
        snprintf(err, errlen, "TAP_IF %s: cannot bring it up: %s", name, strerror(errno));
    return rc;
}

int tap_pool_open(struct tap_pool *pool, const char *name, char *err, size_t errlen)
{
    for (int i = 0; i < pool->ndevs; i++)
        if (strcmp(pool->dev[i].name, name) == 0)
            return i;
    if (pool->ndevs == TAP_MAX_DEVICES) {
        snprintf(err, errlen, "TAP_IF %s: more than %d devices in all", name, TAP_MAX_DEVICES);
        return -1;
    }
    struct tap_device *d = &pool->dev[pool->ndevs];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->ethernet = is_tap_name(name);
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "TAP_IF %s: /dev/net/tun: %s%s", name, strerror(errno),
                 errno == EACCES || errno == EPERM ? " (needs root or CAP_NET_ADMIN)" : "");
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    ifr.ifr_flags = (short)((d->ethernet ? IFF_TAP : IFF_TUN) | IFF_NO_PI);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        snprintf(err, errlen, "TAP_IF %s: cannot create or attach the %s device: %s%s", name,
                 d->ethernet ? "tap" : "tun", strerror(errno),
                 errno == EPERM ? " (needs root or CAP_NET_ADMIN)" : "");
        close(fd);
        return -1;
    }
    if (bring_up(name, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    d->fd = fd;
    return pool->ndevs++;
}

void tap_pool_close(struct tap_pool *pool)
{
    for (int i = 0; i < pool->ndevs; i++)
        close(pool->dev[i].fd);
    pool->ndevs = 0;
}

static void count_error(struct tap_counters *c, int e)
{
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS)
        COUNTER_INC(c->queue_full);
    else
        COUNTER_INC(c->errors);
}

void tap_write(const struct tap_device *d, const struct packet *p, int linktype,
               struct tap_counters *c)
{
    static const uint8_t eth_ip4[14] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00};
    static const uint8_t eth_ip6[14] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd};
    struct iovec iov[2];
    int n = 0;
    if (d->ethernet && linktype == LINKTYPE_ETHERNET) {
        iov[n++] = (struct iovec){(void *)p->data, p->caplen};
    } else if (p->ip_version) {
        if (d->ethernet)   /* raw IP onto Ethernet: a made-up link header in front */
            iov[n++] = (struct iovec){(void *)(p->ip_version == 4 ? eth_ip4 : eth_ip6), 14};
        iov[n++] = (struct iovec){(void *)(p->data + p->l3_off), p->caplen - p->l3_off};
    } else {
        COUNTER_INC(c->not_ip);   /* a tun carries IP only */
        return;
    }
    if (writev(d->fd, iov, n) < 0)
        count_error(c, errno);
    else
        COUNTER_INC(c->packets);
}
