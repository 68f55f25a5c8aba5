/* capture-file.c - pcap and pcapng files read in place through mmap: no
 * read() per packet and no copy, packets point into the mapping. Every
 * length in the file is checked against what remains before it is used;
 * damage stops the reading with a message naming the offset. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bytes.h"
#include "capture.h"
#include "decode.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAPNG_SHB 0x0a0d0d0au
#define PCAPNG_BOM 0x1a2b3c4du
#define PCAPNG_MAX_BLOCK (16u << 20)   /* libpcap's limit for one block */
#define PCAPNG_MAX_IFACES 4096
#define PREFETCH_AHEAD 4096    /* bytes streamed into the cache ahead of the reader */

struct iface {
    int linktype;
    uint32_t snaplen;
    int64_t offset_s;          /* if_tsoffset, seconds */
    uint64_t units;            /* timestamp units per second */
};

struct file_reader {
    const uint8_t *map;
    uint64_t size;
    uint64_t off;
    uint64_t prefetched;       /* bytes up to here have been prefetched */
    int swapped;               /* byte order differs from little-endian reading */
    /* pcap */
    int linktype;
    uint32_t frac_per_ns;      /* 1 for ns files, 1000 for us files */
    /* pcapng */
    int ng;
    struct iface *ifaces;
    uint32_t nifaces, cap_ifaces;
};

static uint32_t r32(const struct file_reader *r, const uint8_t *p)
{
    return r->swapped ? rd32(p) : rd32le(p);
}

static uint16_t r16(const struct file_reader *r, const uint8_t *p)
{
    return r->swapped ? rd16(p) : rd16le(p);
}

typedef unsigned long long ull;

/* Writes "<message> at byte <off>" into errbuf; returns -1. */
static int fail(struct capture *c, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct capture *c, uint64_t off, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->errbuf, sizeof c->errbuf, "%s at byte %llu", msg, (ull)off);
    return -1;
}

/* Each record header is a load that depends on the one before, and packets
 * are too far apart for the hardware prefetcher: without help the reader
 * waits on memory for every packet. So stream the mapping into the cache a
 * few KiB ahead of the reader, one prefetch per cache line. */
static inline void prefetch_ahead(struct file_reader *r)
{
    uint64_t until = r->size - r->off > PREFETCH_AHEAD ? r->off + PREFETCH_AHEAD : r->size;
    if (r->prefetched < r->off)
        r->prefetched = r->off;
    for (; r->prefetched < until; r->prefetched += 64)
        __builtin_prefetch(r->map + r->prefetched);
}

/* ---- classic pcap ---- */

static int pcap_next(struct capture *c, struct packet *p, int *linktype)
{
    struct file_reader *r = c->priv;
    if (r->off == r->size)
        return 0;
    if (r->size - r->off < 16)
        return fail(c, r->off, "truncated record header: %llu of %llu bytes", (ull)(r->size - r->off), (ull)(16));
    const uint8_t *h = r->map + r->off;
    uint32_t caplen = r32(r, h + 8);
    uint32_t wirelen = r32(r, h + 12);
    if (caplen > CAPTURE_MAX_CAPLEN)
        return fail(c, r->off, "record claims %llu captured bytes, more than the limit of %llu", (ull)(caplen), (ull)(CAPTURE_MAX_CAPLEN));
    if (caplen > r->size - r->off - 16)
        return fail(c, r->off, "truncated record: %llu bytes of data announced, %llu left in the file", (ull)(caplen), (ull)(r->size - r->off - 16));
    p->data = h + 16;
    p->caplen = caplen;
    p->wirelen = wirelen < caplen ? caplen : wirelen;
    p->ts = (uint64_t)r32(r, h) * 1000000000u + (uint64_t)r32(r, h + 4) * r->frac_per_ns;
    *linktype = r->linktype;
    r->off += 16 + (uint64_t)caplen;
    c->offset = r->off;
    prefetch_ahead(r);
    return 1;
}

static int pcap_open(struct capture *c, struct file_reader *r)
{
    if (r->size < 24)
        return fail(c, 0, "truncated pcap file header: %llu of %llu bytes", (ull)(r->size), (ull)(24));
    uint32_t magic = rd32le(r->map);
    if (magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS) {
        r->swapped = 0;
    } else {
        r->swapped = 1;
        magic = rd32(r->map);
    }
    r->frac_per_ns = magic == PCAP_MAGIC_NS ? 1 : 1000;
    uint16_t major = r16(r, r->map + 4);
    if (major != 2)
        return fail(c, 4, "unsupported pcap version %llu", (ull)(major));
    /* the top bits carry FCS information (LT_FCS_DATABITS), not the type */
    r->linktype = (int)(r32(r, r->map + 20) & 0x03ffffff);
    if (!decode_linktype_supported(r->linktype))
        return fail(c, 20, "unsupported link type %llu", (ull)((uint64_t)r->linktype));
    r->off = 24;
    c->kind = "pcap";
    return 0;
}

/* ---- pcapng ---- */

/* Units per second from an if_tsresol byte: 10^-n or 2^-n seconds. */
static uint64_t tsresol_units(uint8_t v)
{
    uint64_t u = 1;
    int n = v & 0x7f;
    if (v & 0x80)
        return n < 64 ? (1ull << n) : 0;
    for (int i = 0; i < n; i++) {
        if (u > UINT64_MAX / 10)
            return 0;
        u *= 10;
    }
    return u;
}

static uint64_t ng_time(const struct iface *ifc, uint64_t ts)
{
    __uint128_t ns = (__uint128_t)(ts % ifc->units) * 1000000000u / ifc->units;
    ns += (__uint128_t)(ts / ifc->units) * 1000000000u;
    ns += (__int128)ifc->offset_s * 1000000000;
    return (uint64_t)ns;
}

static int ng_idb(struct capture *c, struct file_reader *r, const uint8_t *b, uint32_t len)
{
    if (len < 20)
        return fail(c, r->off, "interface block too short (%llu bytes)", (ull)(len));
    if (r->nifaces == PCAPNG_MAX_IFACES)
        return fail(c, r->off, "more than %llu interfaces", (ull)(PCAPNG_MAX_IFACES));
    if (r->nifaces == r->cap_ifaces) {
        uint32_t n = r->cap_ifaces ? r->cap_ifaces * 2 : 8;
        struct iface *ni = realloc(r->ifaces, n * sizeof *ni);
        if (!ni)
            return fail(c, r->off, "out of memory");
        r->ifaces = ni;
        r->cap_ifaces = n;
    }
    struct iface *ifc = &r->ifaces[r->nifaces++];
    ifc->linktype = r16(r, b + 8);
    ifc->snaplen = r32(r, b + 12);
    ifc->offset_s = 0;
    ifc->units = 1000000;
    /* options: code(2) length(2) value padded to 4, until opt_endofopt */
    uint32_t o = 16, end = len - 4;
    while (BYTES_FITS(o, 4, end)) {
        uint16_t code = r16(r, b + o), olen = r16(r, b + o + 2);
        o += 4;
        if (code == 0 || !BYTES_FITS(o, olen, end))
            break;
        if (code == 9 && olen >= 1) {
            uint64_t u = tsresol_units(b[o]);
            if (u == 0)
                return fail(c, r->off, "bad if_tsresol %llu", (ull)(b[o]));
            ifc->units = u;
        } else if (code == 14 && olen >= 8) {
            uint64_t v = r->swapped ? (uint64_t)rd32(b + o) << 32 | rd32(b + o + 4)
                                    : (uint64_t)rd32le(b + o + 4) << 32 | rd32le(b + o);
            ifc->offset_s = (int64_t)v;
        }
        o += (olen + 3u) & ~3u;
    }
    return 0;
}

static int ng_packet(struct capture *c, struct file_reader *r, const uint8_t *b, uint32_t len,
                     uint32_t type, struct packet *p, int *linktype)
{
    uint32_t ifidx, caplen, wirelen, hdr;
    uint64_t ts = 0;
    if (type == 6) {           /* enhanced packet block */
        if (len < 32)
            return fail(c, r->off, "packet block too short (%llu bytes)", (ull)(len));
        ifidx = r32(r, b + 8);
        ts = (uint64_t)r32(r, b + 12) << 32 | r32(r, b + 16);
        caplen = r32(r, b + 20);
        wirelen = r32(r, b + 24);
        hdr = 28;
    } else if (type == 2) {    /* obsolete packet block */
        if (len < 32)
            return fail(c, r->off, "packet block too short (%llu bytes)", (ull)(len));
        ifidx = r16(r, b + 8);
        ts = (uint64_t)r32(r, b + 12) << 32 | r32(r, b + 16);
        caplen = r32(r, b + 20);
        wirelen = r32(r, b + 24);
        hdr = 28;
    } else {                   /* simple packet block: interface 0, no time */
        if (len < 16)
            return fail(c, r->off, "packet block too short (%llu bytes)", (ull)(len));
        ifidx = 0;
        wirelen = r32(r, b + 8);
        hdr = 12;
        caplen = len - 16;
        if (r->nifaces && r->ifaces[0].snaplen && caplen > r->ifaces[0].snaplen)
            caplen = r->ifaces[0].snaplen;
        if (caplen > wirelen)
            caplen = wirelen;
    }
    if (ifidx >= r->nifaces)
        return fail(c, r->off, "packet for interface %llu, but only %llu are described", (ull)(ifidx), (ull)(r->nifaces));
    if (caplen > len - hdr - 4)
        return fail(c, r->off, "packet data (%llu bytes) overruns its block of %llu bytes", (ull)(caplen), (ull)(len));
    if (caplen > CAPTURE_MAX_CAPLEN)
        return fail(c, r->off, "packet claims %llu captured bytes, more than the limit of %llu", (ull)(caplen), (ull)(CAPTURE_MAX_CAPLEN));
    const struct iface *ifc = &r->ifaces[ifidx];
    p->data = b + hdr;
    p->caplen = caplen;
    p->wirelen = wirelen < caplen ? caplen : wirelen;
    p->ts = type == 3 ? 0 : ng_time(ifc, ts);
    *linktype = ifc->linktype;
    return 1;
}

/* A section header: sets the byte order, forgets the interfaces. */
static int ng_shb(struct capture *c, struct file_reader *r, const uint8_t *b, uint64_t avail)
{
    if (avail < 28)
        return fail(c, r->off, "truncated section header: %llu of %llu bytes", (ull)(avail), (ull)(28));
    uint32_t bom = rd32le(b + 8);
    if (bom == PCAPNG_BOM)
        r->swapped = 0;
    else if (rd32(b + 8) == PCAPNG_BOM)
        r->swapped = 1;
    else
        return fail(c, r->off, "bad pcapng byte-order magic 0x%08llx", (ull)(bom));
    r->nifaces = 0;
    return 0;
}

static int ng_next(struct capture *c, struct packet *p, int *linktype)
{
    struct file_reader *r = c->priv;
    for (;;) {
        if (r->off == r->size)
            return 0;
        uint64_t avail = r->size - r->off;
        const uint8_t *b = r->map + r->off;
        if (avail < 12)
            return fail(c, r->off, "truncated block header: %llu bytes left, %llu needed", (ull)(avail), (ull)(12));
        if (rd32le(b) == PCAPNG_SHB && ng_shb(c, r, b, avail) < 0)
            return -1;
        uint32_t type = r32(r, b), len = r32(r, b + 4);
        if (len < 12 || len % 4 || len > PCAPNG_MAX_BLOCK)
            return fail(c, r->off, "bad block length %llu (block type %llu)", (ull)(len), (ull)(type));
        if (len > avail)
            return fail(c, r->off, "truncated block: %llu bytes announced, %llu left in the file", (ull)(len), (ull)(avail));
        if (r32(r, b + len - 4) != len)
            return fail(c, r->off, "block length %llu not repeated at its end (found %llu)", (ull)(len), (ull)(r32(r, b + len - 4)));
        int rc = 0;
        if (type == 1)
            rc = ng_idb(c, r, b, len);
        else if (type == 6 || type == 2 || type == 3)
            rc = ng_packet(c, r, b, len, type, p, linktype);
        if (rc < 0)
            return -1;
        r->off += len;
        c->offset = r->off;
        prefetch_ahead(r);
        if (rc == 1)
            return 1;
    }
}

static void file_close(struct capture *c)
{
    struct file_reader *r = c->priv;
    if (r->size)
        munmap((void *)r->map, r->size);
    free(r->ifaces);
    free(r);
    c->priv = NULL;
}

static const struct capture_ops pcap_ops = {pcap_next, file_close};
static const struct capture_ops pcapng_ops = {ng_next, file_close};

int capture_file_open_mmap(struct capture *c, int fd, uint64_t size)
{
    struct file_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
        return -1;
    }
    c->priv = r;
    c->ops = &pcap_ops;
    c->size = size;
    c->stable_data = 1;
    if (size == 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "empty file: not a capture");
        goto err;
    }
    r->size = size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        r->size = 0;
        snprintf(c->errbuf, sizeof c->errbuf, "mmap: %s", strerror(errno));
        goto err;
    }
    r->map = m;
    madvise(m, size, MADV_SEQUENTIAL | MADV_WILLNEED);
    uint32_t magic = size >= 4 ? rd32le(r->map) : 0;
    if (magic == PCAPNG_SHB) {
        r->ng = 1;
        c->ops = &pcapng_ops;
        c->kind = "pcapng";
        if (size < 12 || (rd32le(r->map + 8) != PCAPNG_BOM && rd32(r->map + 8) != PCAPNG_BOM)) {
            snprintf(c->errbuf, sizeof c->errbuf, "not a pcapng file (bad byte-order magic)");
            goto err;
        }
        return 0;
    }
    if (magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS && rd32(r->map) != PCAP_MAGIC_US &&
        rd32(r->map) != PCAP_MAGIC_NS) {
        snprintf(c->errbuf, sizeof c->errbuf, "not a pcap or pcapng file (magic 0x%08x)", magic);
        goto err;
    }
    if (pcap_open(c, r) < 0)
        goto err;
    return 0;
err:
    file_close(c);
    c->ops = NULL;
    return -1;
}
