/* capture-file.c - pcap and pcapng from any file descriptor, parsed in
 * place in the read-ahead buffers (readahead.c): no copy per packet. Every
 * length in the input is checked against what was read before it is used;
 * damage stops the reading with a message naming the byte offset. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "capture.h"
#include "decode.h"
#include "readahead.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAPNG_SHB 0x0a0d0d0au
#define PCAPNG_BOM 0x1a2b3c4du
#define PCAPNG_MAX_BLOCK READAHEAD_GAP   /* a block must fit where a straddling one is copied */
#define PCAPNG_MAX_IFACES 4096

struct iface {
    int linktype;
    uint32_t snaplen;
    int64_t offset_s;          /* if_tsoffset, seconds */
    uint64_t units;            /* timestamp units per second */
};

struct file_reader {
    struct readahead ra;
    int owns_fd;
    int swapped;               /* byte order differs from little-endian reading */
    /* pcap */
    int linktype;
    uint32_t frac_per_ns;      /* 1 for ns files, 1000 for us files */
    /* pcapng */
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
    snprintf(c->errbuf, sizeof c->errbuf, "%s at byte %llu", msg, (unsigned long long)off);
    return -1;
}

static uint64_t here(const struct file_reader *r) { return r->ra.pos; }

/* need bytes at the cursor into *p: 1, or 0 when the input ends first
 * (*left says how many bytes remain), -1 on a read error (reported), or
 * STOPPED when dati is being stopped (the parsers then end cleanly). */
#define STOPPED (-2)
static int peek(struct capture *c, struct file_reader *r, uint32_t need, const uint8_t **p,
                uint32_t *left)
{
    int rc = readahead_peek(&r->ra, need, p, &c->slot, left);
    if (rc == READAHEAD_STOPPED)
        return STOPPED;
    if (rc < 0)
        return fail(c, here(r), "read: %s", strerror(r->ra.error ? r->ra.error : EIO));
    return rc;
}

/* ---- classic pcap ---- */

static int pcap_next(struct capture *c, struct packet *p, int *linktype)
{
    struct file_reader *r = c->priv;
    const uint8_t *h;
    uint32_t left;
    int rc = peek(c, r, 16, &h, &left);
    if (rc <= 0) {
        if (rc == 0 && left)
            return fail(c, here(r), "truncated record header: %u of 16 bytes", left);
        return rc == STOPPED ? 0 : rc;
    }
    uint32_t caplen = r32(r, h + 8);
    if (caplen > CAPTURE_MAX_CAPLEN)
        return fail(c, here(r), "record claims %u captured bytes, more than the limit of %u",
                    caplen, CAPTURE_MAX_CAPLEN);
    rc = peek(c, r, 16 + caplen, &h, &left);
    if (rc <= 0)
        return rc == STOPPED ? 0
               : rc < 0      ? -1
                             : fail(c, here(r), "truncated record: %u bytes of data announced, "
                                    "%u left", caplen, left - 16);
    uint32_t wirelen = r32(r, h + 12);
    p->data = h + 16;
    p->caplen = caplen;
    p->wirelen = wirelen < caplen ? caplen : wirelen;
    p->ts = (uint64_t)r32(r, h) * 1000000000u + (uint64_t)r32(r, h + 4) * r->frac_per_ns;
    *linktype = r->linktype;
    readahead_advance(&r->ra, 16 + caplen);
    c->offset = here(r);
    return 1;
}

static int pcap_open(struct capture *c, struct file_reader *r)
{
    const uint8_t *h;
    uint32_t left;
    int rc = peek(c, r, 24, &h, &left);
    if (rc == STOPPED)
        return fail(c, 0, "stopped before the file header arrived");
    if (rc <= 0)
        return rc < 0 ? -1 : fail(c, 0, "truncated pcap file header: %u of 24 bytes", left);
    uint32_t magic = rd32le(h);
    r->swapped = !(magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS);
    if (r->swapped)
        magic = rd32(h);
    r->frac_per_ns = magic == PCAP_MAGIC_NS ? 1 : 1000;
    uint16_t major = r16(r, h + 4);
    if (major != 2)
        return fail(c, 4, "unsupported pcap version %u", major);
    /* the top bits carry FCS information (LT_FCS_DATABITS), not the type */
    r->linktype = (int)(r32(r, h + 20) & 0x03ffffff);
    if (!decode_linktype_supported(r->linktype))
        return fail(c, 20, "unsupported link type %d", r->linktype);
    readahead_advance(&r->ra, 24);
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
        return fail(c, here(r), "interface block too short (%u bytes)", len);
    if (r->nifaces == PCAPNG_MAX_IFACES)
        return fail(c, here(r), "more than %u interfaces", PCAPNG_MAX_IFACES);
    if (r->nifaces == r->cap_ifaces) {
        uint32_t n = r->cap_ifaces ? r->cap_ifaces * 2 : 8;
        struct iface *ni = realloc(r->ifaces, n * sizeof *ni);
        if (!ni)
            return fail(c, here(r), "out of memory");
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
                return fail(c, here(r), "bad if_tsresol %u", b[o]);
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
            return fail(c, here(r), "packet block too short (%u bytes)", len);
        ifidx = r32(r, b + 8);
        ts = (uint64_t)r32(r, b + 12) << 32 | r32(r, b + 16);
        caplen = r32(r, b + 20);
        wirelen = r32(r, b + 24);
        hdr = 28;
    } else if (type == 2) {    /* obsolete packet block */
        if (len < 32)
            return fail(c, here(r), "packet block too short (%u bytes)", len);
        ifidx = r16(r, b + 8);
        ts = (uint64_t)r32(r, b + 12) << 32 | r32(r, b + 16);
        caplen = r32(r, b + 20);
        wirelen = r32(r, b + 24);
        hdr = 28;
    } else {                   /* simple packet block: interface 0, no time */
        if (len < 16)
            return fail(c, here(r), "packet block too short (%u bytes)", len);
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
        return fail(c, here(r), "packet for interface %u, but only %u are described", ifidx, r->nifaces);
    if (caplen > len - hdr - 4)
        return fail(c, here(r), "packet data (%u bytes) overruns its block of %u bytes", caplen, len);
    if (caplen > CAPTURE_MAX_CAPLEN)
        return fail(c, here(r), "packet claims %u captured bytes, more than the limit of %u", caplen, CAPTURE_MAX_CAPLEN);
    const struct iface *ifc = &r->ifaces[ifidx];
    p->data = b + hdr;
    p->caplen = caplen;
    p->wirelen = wirelen < caplen ? caplen : wirelen;
    p->ts = type == 3 ? 0 : ng_time(ifc, ts);
    *linktype = ifc->linktype;
    return 1;
}

/* A section header: sets the byte order, forgets the interfaces. */
static int ng_shb(struct capture *c, struct file_reader *r, const uint8_t *b)
{
    uint32_t bom = rd32le(b + 8);
    if (bom == PCAPNG_BOM)
        r->swapped = 0;
    else if (rd32(b + 8) == PCAPNG_BOM)
        r->swapped = 1;
    else
        return fail(c, here(r), "bad pcapng byte-order magic 0x%08x", bom);
    r->nifaces = 0;
    return 0;
}

static int ng_next(struct capture *c, struct packet *p, int *linktype)
{
    struct file_reader *r = c->priv;
    for (;;) {
        const uint8_t *b;
        uint32_t left;
        int rc = peek(c, r, 12, &b, &left);
        if (rc <= 0) {
            if (rc == 0 && left)
                return fail(c, here(r), "truncated block header: %u of 12 bytes", left);
            return rc == STOPPED ? 0 : rc;
        }
        if (rd32le(b) == PCAPNG_SHB) {
            if ((rc = peek(c, r, 28, &b, &left)) <= 0)
                return rc == STOPPED ? 0 : rc < 0 ? -1 : fail(c, here(r), "truncated section header");
            if (ng_shb(c, r, b) < 0)
                return -1;
        }
        uint32_t type = r32(r, b), len = r32(r, b + 4);
        if (len < 12 || len % 4 || len > PCAPNG_MAX_BLOCK)
            return fail(c, here(r), "bad block length %u (block type %u)", len, type);
        if ((rc = peek(c, r, len, &b, &left)) <= 0)
            return rc == STOPPED ? 0
                   : rc < 0      ? -1
                                 : fail(c, here(r), "truncated block: %u bytes announced, %u left",
                                        len, left);
        if (r32(r, b + len - 4) != len)
            return fail(c, here(r), "block length %u not repeated at its end (found %u)", len,
                        r32(r, b + len - 4));
        rc = 0;
        if (type == 1)
            rc = ng_idb(c, r, b, len);
        else if (type == 6 || type == 2 || type == 3)
            rc = ng_packet(c, r, b, len, type, p, linktype);
        if (rc < 0)
            return -1;
        readahead_advance(&r->ra, len);
        c->offset = here(r);
        if (rc == 1)
            return 1;
    }
}

static void file_close(struct capture *c)
{
    struct file_reader *r = c->priv;
    if (!r)
        return;
    readahead_stop(&r->ra);
    if (r->owns_fd)
        close(r->ra.fd);
    free(r->ifaces);
    free(r);
    c->priv = NULL;
}

static const struct capture_ops pcap_ops = {pcap_next, file_close};
static const struct capture_ops pcapng_ops = {ng_next, file_close};

int capture_file_open_fd(struct capture *c, int fd, int owns_fd, const struct capture_options *opt)
{
    struct file_reader *r = calloc(1, sizeof *r);
    if (!r) {
        if (owns_fd)
            close(fd);
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
        return -1;
    }
    c->priv = r;
    c->ops = &pcap_ops;
    r->owns_fd = owns_fd;
    if (readahead_start(&r->ra, fd, opt) < 0) {
        r->ra.fd = fd;
        snprintf(c->errbuf, sizeof c->errbuf, "cannot start reading: %s", strerror(errno));
        goto err;
    }
    const uint8_t *h;
    uint32_t left;
    int rc = peek(c, r, 4, &h, &left);
    if (rc <= 0) {
        if (rc == STOPPED)
            snprintf(c->errbuf, sizeof c->errbuf, "stopped before any input arrived");
        else if (rc == 0)
            snprintf(c->errbuf, sizeof c->errbuf, "%s",
                     left ? "too short for a capture file" : "empty file: not a capture");
        goto err;
    }
    uint32_t magic = rd32le(h);
    if (magic == PCAPNG_SHB) {
        c->ops = &pcapng_ops;
        c->kind = "pcapng";
        return 0;
    }
    if (magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS && rd32(h) != PCAP_MAGIC_US &&
        rd32(h) != PCAP_MAGIC_NS) {
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
