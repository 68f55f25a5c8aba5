/* capture-afpacket.c - live capture from Linux AF_PACKET TPACKET_V3 rings.
 * One capture serves one worker: a ring per interface, every worker's ring
 * for an interface joined in one fanout group in hash mode, so the kernel
 * sends all packets of a flow (its flow hash is symmetric) to one worker.
 * Packets are handed out in place in the ring; a block goes back to the
 * kernel when the worker asks for the packet after its last one. */
#include "capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "decode.h"
#include "netdev.h"

#define VLAN_TAG_LEN 4

struct ring {
    int fd;
    uint8_t *map;
    size_t map_len;
    unsigned block;                    /* the block being read */
    struct tpacket_block_desc *bd;     /* that block when held, else NULL */
    struct tpacket3_hdr *next_pkt;     /* next packet in the held block */
    uint32_t left;                     /* packets left in the held block */
    uint8_t *prefetched, *block_end;   /* the held block's lines loaded up to here */
    int linktype;
    int down;                          /* the interface went down: said once */
};

struct afpacket {
    struct capture_live_options lo;
    const struct capture_options *opt;
    const struct capture_iface *ifs;
    int nrings;
    int turn;                          /* ring to look at first: fairness */
    struct ring ring[CAPTURE_MAX_IFACES];
    struct pollfd pfd[CAPTURE_MAX_IFACES];
};

int capture_iface_lookup(struct capture_iface *ifc, const char *name, char *err, size_t errlen)
{
    memset(ifc, 0, sizeof *ifc);
    ifc->name = name;
    if (strlen(name) >= IFNAMSIZ || !(ifc->ifindex = (int)if_nametoindex(name))) {
        snprintf(err, errlen, "no interface %s", name);
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (netdev_ioctl(name, SIOCGIFHWADDR, &ifr) < 0) {
        snprintf(err, errlen, "interface %s: %s", name, strerror(errno));
        return -1;
    }
    switch (ifr.ifr_hwaddr.sa_family) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:
        ifc->linktype = LINKTYPE_ETHERNET;
        return 0;
    case ARPHRD_NONE:      /* tun: raw IP */
    case ARPHRD_PPP:
    case ARPHRD_RAWIP:
        ifc->linktype = LINKTYPE_RAW;
        return 0;
    default:
        snprintf(err, errlen, "interface %s: link type %u (ARPHRD) is not supported", name,
                 ifr.ifr_hwaddr.sa_family);
        return -1;
    }
}

static int fail(struct capture *c, const char *ifname, const char *what)
{
    snprintf(c->errbuf, sizeof c->errbuf, "%s: %s: %s%s", ifname, what, strerror(errno),
             errno == EPERM ? " (live capture needs root or CAP_NET_RAW)" : "");
    return -1;
}

static int ring_open(struct capture *c, struct ring *r, struct capture_iface *ifc,
                     const struct capture_live_options *lo)
{
    /* protocol 0: nothing arrives before bind() names the interface, and a
     * drop-all filter keeps the ring empty until every worker has joined the
     * fanout group (capture_live_start), so no packet is seen twice or by a
     * worker that is not its flow's */
    r->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (r->fd < 0)
        return fail(c, ifc->name, "socket");
    struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog drop_all = {1, &drop};
    if (setsockopt(r->fd, SOL_SOCKET, SO_ATTACH_FILTER, &drop_all, sizeof drop_all) < 0)
        return fail(c, ifc->name, "attaching a filter");
    int v = TPACKET_V3;
    if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
        return fail(c, ifc->name, "TPACKET_V3");
    /* room to put back a VLAN tag the NIC or veth took out, as libpcap does */
    v = VLAN_TAG_LEN;
    if (setsockopt(r->fd, SOL_PACKET, PACKET_RESERVE, &v, sizeof v) < 0)
        return fail(c, ifc->name, "PACKET_RESERVE");
    struct tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = lo->block_size;
    req.tp_block_nr = lo->block_count;
    req.tp_frame_size = TPACKET_ALIGNMENT << 7;   /* unused by V3, but checked */
    req.tp_frame_nr = (unsigned)((uint64_t)lo->block_size * lo->block_count / req.tp_frame_size);
    req.tp_retire_blk_tov = lo->block_timeout_ms;
    if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
        snprintf(c->errbuf, sizeof c->errbuf,
                 "%s: the kernel refused a ring of %u blocks of %u bytes: %s", ifc->name,
                 lo->block_count, lo->block_size, strerror(errno));
        return -1;
    }
    r->map_len = (size_t)lo->block_size * lo->block_count;
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, r->fd, 0);
    if (r->map == MAP_FAILED)   /* MAP_LOCKED needs RLIMIT_MEMLOCK: try without */
        r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->map == MAP_FAILED) {
        r->map = NULL;
        return fail(c, ifc->name, "mmap of the ring");
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);   /* from now on, this interface's packets */
    sll.sll_ifindex = ifc->ifindex;
    if (bind(r->fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        return fail(c, ifc->name, "bind");
    if (lo->promisc) {
        struct packet_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.mr_ifindex = ifc->ifindex;
        mr.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(r->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
            return fail(c, ifc->name, "promiscuous mode");
    }
    if (lo->fanout) {
        /* The first ring asks the kernel for a group id no one else uses
         * (a fixed id could merge with another program's group and split
         * the traffic silently); the others join that id. */
        unsigned mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
        int first = ifc->fanout_id < 0;
        if (first)
            mode |= PACKET_FANOUT_FLAG_UNIQUEID;
        int arg = (int)((first ? 0u : (unsigned)ifc->fanout_id & 0xffff) | (mode << 16));
        if (setsockopt(r->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) {
            if (errno == EINVAL && !netdev_is_up(ifc->name))
                errno = ENETDOWN;   /* older kernels: no fanout on a down interface */
            return fail(c, ifc->name, "joining the fanout group");
        }
        if (first) {
            socklen_t len = sizeof arg;
            if (getsockopt(r->fd, SOL_PACKET, PACKET_FANOUT, &arg, &len) < 0)
                return fail(c, ifc->name, "reading the fanout group id");
            ifc->fanout_id = arg & 0xffff;
        }
    }
    r->linktype = ifc->linktype;
    return 0;
}

static struct tpacket_block_desc *block_at(const struct afpacket *a, const struct ring *r)
{
    return (struct tpacket_block_desc *)(void *)(r->map + (size_t)r->block * a->lo.block_size);
}

static void block_release(struct afpacket *a, struct ring *r)
{
    __atomic_store_n(&r->bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    r->bd = NULL;
    r->block = (r->block + 1) % a->lo.block_count;
}

/* Takes the ring's next block when the kernel has handed it over. */
static int block_take(struct afpacket *a, struct ring *r)
{
    struct tpacket_block_desc *bd = block_at(a, r);
    if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
        return 0;
    r->bd = bd;
    r->left = bd->hdr.bh1.num_pkts;
    r->next_pkt = (struct tpacket3_hdr *)(void *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
    r->prefetched = (uint8_t *)r->next_pkt;
    r->block_end = (uint8_t *)bd + bd->hdr.bh1.blk_len;
    return 1;
}

/* Puts a tag the kernel took out back in front of the EtherType, in the
 * ring's reserved headroom, so filters and the decoder see the frame as sent. */
static uint8_t *vlan_reinsert(struct tpacket3_hdr *h, uint8_t *mac, uint32_t *caplen,
                              uint32_t *wirelen)
{
    if (!(h->tp_status & TP_STATUS_VLAN_VALID) || *caplen < 2 * ETH_ALEN)
        return mac;
    uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
    uint8_t *m = mac - VLAN_TAG_LEN;
    memmove(m, mac, 2 * ETH_ALEN);
    m[12] = (uint8_t)(tpid >> 8);
    m[13] = (uint8_t)tpid;
    m[14] = (uint8_t)(h->hv1.tp_vlan_tci >> 8);
    m[15] = (uint8_t)h->hv1.tp_vlan_tci;
    *caplen += VLAN_TAG_LEN;
    *wirelen += VLAN_TAG_LEN;
    return m;
}

/* A socket error (interface down, gone): said once per episode. Returns -1
 * when the interface no longer exists. */
static int ring_error(struct capture *c, struct afpacket *a, int i)
{
    struct ring *r = &a->ring[i];
    int e = 0;
    socklen_t len = sizeof e;
    getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &e, &len);
    char name[IF_NAMESIZE];
    if (!if_indextoname((unsigned)a->ifs[i].ifindex, name)) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s: the interface is gone", a->ifs[i].name);
        return -1;
    }
    if (!r->down) {
        r->down = 1;
        snprintf(c->errbuf, sizeof c->errbuf, "%s: %s; waiting for it to come back",
                 a->ifs[i].name, strerror(e ? e : ENETDOWN));
        if (a->opt->notice)
            a->opt->notice(a->opt->ctx, c->errbuf);
    }
    return 0;
}

#define RING_PREFETCH (16u << 10)   /* bytes of the block ahead of the packet in flight */

/* One packet of the ring's held block into p. The kernel wrote the block on
 * another core, and each packet's header says where the next is: every line
 * some way ahead is loaded now, so that the walk does not wait for each
 * (as for files, readahead.c). */
static void ring_packet(struct ring *r, int i, struct packet *p)
{
    struct tpacket3_hdr *h = r->next_pkt;
    uint8_t *end = (uint8_t *)h + RING_PREFETCH;
    if (end > r->block_end)
        end = r->block_end;
    for (; r->prefetched < end; r->prefetched += 64)
        __builtin_prefetch(r->prefetched);
    r->left--;
    r->next_pkt = (struct tpacket3_hdr *)(void *)((uint8_t *)h + h->tp_next_offset);
    uint32_t caplen = h->tp_snaplen, wirelen = h->tp_len;
    uint8_t *mac = (uint8_t *)h + h->tp_mac;
    if (r->linktype == LINKTYPE_ETHERNET)
        mac = vlan_reinsert(h, mac, &caplen, &wirelen);
    p->data = mac;
    p->caplen = caplen;
    p->wirelen = wirelen;
    p->ts = (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec;
    p->iface = (uint8_t)(i + 1);
    r->down = 0;
}

int capture_live_batch(struct capture *c, struct packet *v, int *linktype, int max)
{
    struct afpacket *a = c->priv;
    for (;;) {
        int n = 0;
        for (int k = 0; k < a->nrings && n < max; k++) {
            int i = (a->turn + k) % a->nrings;
            struct ring *r = &a->ring[i];
            /* the packets handed out before are done with: a block whose
             * last one they were goes back now, empty (timed-out) ones too */
            while (r->bd && r->left == 0) {
                block_release(a, r);
                block_take(a, r);
            }
            if (!r->bd && !block_take(a, r))
                continue;
            /* a batch takes from one block per ring: the next stays the
             * kernel's until this one is released */
            for (; r->left && n < max; n++) {
                ring_packet(r, i, &v[n]);
                linktype[n] = r->linktype;
            }
            if (r->left == 0)
                a->turn = (i + 1) % a->nrings;   /* a block at a time per ring */
        }
        if (n)
            return n;
        /* nothing ready anywhere: wait, and let the owner do its timed work */
        int ready = poll(a->pfd, (nfds_t)a->nrings, (int)a->lo.poll_ms);
        for (int i = 0; i < a->nrings; i++) {
            /* a down interface raises no error when it is then deleted: look */
            if (((ready > 0 && (a->pfd[i].revents & POLLERR)) || a->ring[i].down) &&
                ring_error(c, a, i) < 0)
                return -1;
        }
        if (a->opt->idle && a->opt->idle(a->opt->ctx))
            return 0;
    }
}

static int afpacket_next(struct capture *c, struct packet *p, int *linktype)
{
    return capture_live_batch(c, p, linktype, 1);
}

int capture_live_start(struct capture *c)
{
    struct afpacket *a = c->priv;
    for (int i = 0; i < a->nrings; i++) {
        struct ring *r = &a->ring[i];
        int rc;
        if (a->lo.snaplen) {
            struct sock_filter ret = BPF_STMT(BPF_RET | BPF_K, a->lo.snaplen);
            struct sock_fprog prog = {1, &ret};
            rc = setsockopt(r->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
        } else {
            int unused = 0;
            rc = setsockopt(r->fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused);
        }
        if (rc < 0)
            return fail(c, a->ifs[i].name, "starting the capture");
    }
    return 0;
}

int capture_live_stats(struct capture *c, int iface, uint64_t *received, uint64_t *dropped)
{
    struct afpacket *a = c->priv;
    if (!a || iface < 0 || iface >= a->nrings)
        return -1;
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    memset(&st, 0, sizeof st);
    /* the kernel resets the counters on each read; tp_packets includes drops */
    if (getsockopt(a->ring[iface].fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
        return -1;
    *received += st.tp_packets;
    *dropped += st.tp_drops;
    return 0;
}

static void afpacket_close(struct capture *c)
{
    struct afpacket *a = c->priv;
    if (!a)
        return;
    for (int i = 0; i < a->nrings; i++) {
        if (a->ring[i].map)
            munmap(a->ring[i].map, a->ring[i].map_len);
        if (a->ring[i].fd >= 0)
            close(a->ring[i].fd);
    }
    free(a);
    c->priv = NULL;
}

static const struct capture_ops afpacket_ops = {afpacket_next, afpacket_close};

int capture_open_live(struct capture *c, struct capture_iface *ifs, int nifs,
                      const struct capture_live_options *lo, const struct capture_options *opt)
{
    memset(c, 0, sizeof *c);
    if (nifs < 1 || nifs > CAPTURE_MAX_IFACES) {
        snprintf(c->errbuf, sizeof c->errbuf, "from 1 to %d interfaces", CAPTURE_MAX_IFACES);
        return -1;
    }
    struct afpacket *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
        return -1;
    }
    a->lo = *lo;
    a->opt = opt;
    a->ifs = ifs;
    c->priv = a;
    c->ops = &afpacket_ops;
    c->kind = "afpacket";
    for (int i = 0; i < nifs; i++) {
        a->ring[i].fd = -1;
        a->nrings = i + 1;
        if (ring_open(c, &a->ring[i], &ifs[i], lo) < 0) {
            char msg[sizeof c->errbuf];
            memcpy(msg, c->errbuf, sizeof msg);
            capture_close(c);
            memcpy(c->errbuf, msg, sizeof msg);
            return -1;
        }
        a->pfd[i].fd = a->ring[i].fd;
        a->pfd[i].events = POLLIN | POLLERR;
    }
    return 0;
}
