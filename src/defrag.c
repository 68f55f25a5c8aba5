/* defrag.c - IP reassembly (defrag.h). Held fragments live in blocks of a
 * pool sized by the memcap at start; datagrams in a hash table and in a
 * list in order of their first fragment, which is their timeout order
 * because the clock never goes back. */
#include "defrag.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bytes.h"
#include "decode.h"
#include "counter.h"

#define BLOCK 512   /* a 1500-byte fragment takes 3, an 8-byte one 1 */

struct frag {
    uint32_t next;             /* next held fragment by offset, 1-based; or next free */
    uint32_t block;            /* first block, 1-based; blocks chain through block_next */
    uint32_t start, end;       /* payload bytes of the datagram */
    uint32_t hdrlen;           /* offset 0: the frame's headers, stored before the data */
    uint32_t nblocks;
};

struct dgram {
    uint8_t src[16], dst[16];
    uint32_t ident;
    uint8_t family, proto;     /* proto: IPv4's, part of its key */
    uint8_t last_seen;         /* the fragment without "more fragments" came: total known */
    uint8_t used;
    uint32_t hash;
    uint32_t total;            /* payload length, once last_seen */
    uint32_t have;             /* payload bytes held (no overlaps: all distinct) */
    uint32_t frags;            /* held fragments by offset, 1-based */
    uint32_t nfrags;
    uint64_t wire_bytes;       /* their frames' wire length */
    uint64_t first_clock;
    uint32_t chain;            /* hash chain, or next free */
    uint32_t older, newer;     /* arrival order */
    /* from the first fragment (offset 0): where its headers are */
    uint32_t l3_off, ip_hdr_end;   /* IPv4: header end; IPv6: the fragment header */
    uint32_t nh_pos;           /* IPv6: the byte that says "fragment header next" */
    uint8_t next_header;       /* IPv6: what follows the fragment header */
};

struct defrag {
    struct defrag_limits lim;
    struct defrag_counters c;
    uint8_t *data;             /* nblocks * BLOCK */
    uint32_t *block_next;      /* 1-based chains; free blocks too */
    /* free lists; entries past the *_used marks were never used (their pages
     * are untouched until then) */
    uint32_t nblocks, free_block, free_blocks, block_used;
    struct frag *frag;         /* nblocks of them: a fragment takes a block at least */
    uint32_t free_frag, frag_used;
    struct dgram *dg;          /* max_datagrams */
    uint32_t *bucket, mask;
    uint32_t free_dg, dg_used, ndg;
    uint32_t oldest, newest;
    uint32_t seed;
};

/* What the frame says of itself as a fragment. */
struct info {
    const uint8_t *src, *dst;
    uint32_t ident, start, end, len, hdrlen, alen;
    uint32_t ip_hdr_end, nh_pos;
    uint8_t family, proto, more, next_header;
    const uint8_t *payload;
};

#define FRAG(d, i) (&(d)->frag[(i) - 1])
#define DG(d, i) (&(d)->dg[(i) - 1])

struct defrag *defrag_new(const struct defrag_limits *lim)
{
    struct defrag *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->lim = *lim;
    uint64_t nb = lim->memcap / BLOCK;
    d->nblocks = nb < 1 ? 1 : nb > (1u << 26) ? 1u << 26 : (uint32_t)nb;
    uint32_t buckets = 1;
    while (buckets < lim->max_datagrams)
        buckets <<= 1;
    d->mask = buckets - 1;
    /* the blocks are touched only as fragments come: the memcap is a bound, not a cost */
    d->data = malloc((size_t)d->nblocks * BLOCK);
    d->block_next = malloc(sizeof *d->block_next * d->nblocks);
    d->frag = malloc(sizeof *d->frag * d->nblocks);
    d->dg = malloc(sizeof *d->dg * (lim->max_datagrams ? lim->max_datagrams : 1));
    d->bucket = calloc(buckets, sizeof *d->bucket);
    if (!d->data || !d->block_next || !d->frag || !d->dg || !d->bucket) {
        defrag_free(d);
        return NULL;
    }
    d->free_blocks = d->nblocks;
    if (getrandom(&d->seed, sizeof d->seed, 0) != sizeof d->seed)
        d->seed = 0x9e3779b9u;   /* only the spread of the buckets depends on it */
    return d;
}

void defrag_free(struct defrag *d)
{
    if (!d)
        return;
    free(d->data);
    free(d->block_next);
    free(d->frag);
    free(d->dg);
    free(d->bucket);
    free(d);
}

const struct defrag_counters *defrag_counters(const struct defrag *d) { return &d->c; }


/* The fragment's fields; 0 when the frame cannot be held (invalid). */
static int parse(const struct packet *p, struct info *in)
{
    const uint8_t *d = p->data;
    uint32_t off = p->l3_off;
    memset(in, 0, sizeof *in);
    if (p->ip_version == 4) {
        uint32_t hlen = (uint32_t)(d[off] & 0x0f) * 4, total = rd16(d + off + 2);
        if (total < hlen || (uint64_t)off + total > p->caplen)
            return 0;   /* cut by the capture (or a TSO length of 0): bytes missing */
        uint16_t frag = rd16(d + off + 6);
        in->family = 4;
        in->src = d + off + 12;
        in->dst = d + off + 16;
        in->alen = 4;
        in->ident = rd16(d + off + 4);
        in->proto = d[off + 9];
        in->start = (uint32_t)(frag & 0x1fff) * 8;
        in->more = (frag & 0x2000) != 0;
        in->ip_hdr_end = off + hlen;
        in->payload = d + off + hlen;
        in->len = total - hlen;
        in->hdrlen = off + hlen;
    } else {
        uint32_t plen = rd16(d + off + 4), end = off + 40 + plen, cur = off + 40;
        uint32_t nh_pos = off + 6;
        if (plen == 0 || end > p->caplen)
            return 0;
        for (int n = 0; d[nh_pos] != 44; n++) {   /* decode walked it: well formed */
            if (n == 16 || cur + 8 > end)
                return 0;
            uint8_t nh = d[nh_pos];
            uint32_t len = nh == 51 ? ((uint32_t)d[cur + 1] + 2) * 4 : ((uint32_t)d[cur + 1] + 1) * 8;
            nh_pos = cur;
            cur += len;
        }
        if (cur + 8 > end)
            return 0;
        uint16_t fo = rd16(d + cur + 2);
        in->family = 6;
        in->src = d + off + 8;
        in->dst = d + off + 24;
        in->alen = 16;
        in->ident = rd32(d + cur + 4);
        in->next_header = d[cur];
        in->start = fo & 0xfff8;
        in->more = fo & 1;
        in->ip_hdr_end = cur;
        in->nh_pos = nh_pos;
        in->payload = d + cur + 8;
        in->len = end - cur - 8;
        in->hdrlen = cur + 8;
    }
    in->end = in->start + in->len;
    return 1;
}

static uint32_t hash_of(const struct defrag *d, const struct info *in)
{
    uint32_t h = d->seed ^ in->ident ^ (uint32_t)in->proto << 24 ^ in->family;
    for (uint32_t i = 0; i < in->alen; i++)
        h = (h ^ in->src[i]) * 0x01000193u;
    for (uint32_t i = 0; i < in->alen; i++)
        h = (h ^ in->dst[i]) * 0x01000193u;
    return h ^ h >> 16;
}

static uint32_t find(const struct defrag *d, const struct info *in, uint32_t h)
{
    for (uint32_t i = d->bucket[h & d->mask]; i; i = DG(d, i)->chain) {
        const struct dgram *g = DG(d, i);
        if (g->hash == h && g->ident == in->ident && g->family == in->family &&
            (in->family == 6 || g->proto == in->proto) &&
            memcmp(g->src, in->src, in->alen) == 0 && memcmp(g->dst, in->dst, in->alen) == 0)
            return i;
    }
    return 0;
}

static void free_frag(struct defrag *d, uint32_t fi)
{
    struct frag *f = FRAG(d, fi);
    uint32_t b = f->block, last = b;
    while (d->block_next[last - 1])
        last = d->block_next[last - 1];
    d->block_next[last - 1] = d->free_block;
    d->free_block = b;
    d->free_blocks += f->nblocks;
    COUNTER_ADD(d->c.held, -1);
    COUNTER_ADD(d->c.held_bytes, -(uint64_t)f->nblocks * BLOCK);
    f->next = d->free_frag;
    d->free_frag = fi;
}

/* Ends datagram gi; its held fragments are added to *count (a drop reason)
 * or, count NULL, were reassembled. */
static void end_dgram(struct defrag *d, uint32_t gi, uint64_t *count)
{
    struct dgram *g = DG(d, gi);
    for (uint32_t fi = g->frags, next; fi; fi = next) {
        next = FRAG(d, fi)->next;
        free_frag(d, fi);
    }
    if (count)
        COUNTER_ADD(*count, g->nfrags);
    uint32_t *link = &d->bucket[g->hash & d->mask];
    while (*link != gi)
        link = &DG(d, *link)->chain;
    *link = g->chain;
    if (g->older)
        DG(d, g->older)->newer = g->newer;
    else
        d->oldest = g->newer;
    if (g->newer)
        DG(d, g->newer)->older = g->older;
    else
        d->newest = g->older;
    g->used = 0;
    g->chain = d->free_dg;
    d->free_dg = gi;
    d->ndg--;
}

void defrag_expire(struct defrag *d, uint64_t clock)
{
    while (d->oldest && (clock == UINT64_MAX ||
                         clock - DG(d, d->oldest)->first_clock > d->lim.timeout_ns))
        end_dgram(d, d->oldest, &d->c.timeout);
}

static uint32_t new_dgram(struct defrag *d, const struct info *in, uint32_t h, uint64_t clock)
{
    uint32_t gi = d->free_dg;
    if (gi)
        d->free_dg = DG(d, gi)->chain;
    else if (d->dg_used < d->lim.max_datagrams)
        gi = ++d->dg_used;
    else
        return 0;
    struct dgram *g = DG(d, gi);
    memset(g, 0, sizeof *g);
    memcpy(g->src, in->src, in->alen);
    memcpy(g->dst, in->dst, in->alen);
    g->ident = in->ident;
    g->family = in->family;
    g->proto = in->proto;
    g->hash = h;
    g->used = 1;
    g->first_clock = clock;
    g->chain = d->bucket[h & d->mask];
    d->bucket[h & d->mask] = gi;
    g->older = d->newest;
    if (d->newest)
        DG(d, d->newest)->newer = gi;
    else
        d->oldest = gi;
    d->newest = gi;
    d->ndg++;
    return gi;
}

/* Copies n bytes from the chain at block b, skipping the first skip. */
static void read_blocks(const struct defrag *d, uint32_t b, uint32_t skip, uint8_t *to, uint32_t n)
{
    for (; skip >= BLOCK; skip -= BLOCK)
        b = d->block_next[b - 1];
    while (n) {
        uint32_t k = BLOCK - skip < n ? BLOCK - skip : n;
        memcpy(to, d->data + (size_t)(b - 1) * BLOCK + skip, k);
        to += k;
        n -= k;
        skip = 0;
        b = d->block_next[b - 1];
    }
}

static int same_bytes(const struct defrag *d, const struct frag *f, const uint8_t *p, uint32_t n)
{
    uint8_t tmp[BLOCK];
    for (uint32_t done = 0; done < n; done += BLOCK) {
        uint32_t k = n - done < BLOCK ? n - done : BLOCK;
        /* the data follow the headers of an offset-0 fragment */
        uint32_t skip = f->hdrlen + done, b = f->block;
        read_blocks(d, b, skip, tmp, k);
        if (memcmp(tmp, p + done, k) != 0)
            return 0;
    }
    return 1;
}

/* Stores the fragment (and, at offset 0, the frame's headers first). */
static uint32_t store(struct defrag *d, const struct packet *p, const struct info *in)
{
    uint32_t hdr = in->start == 0 ? in->hdrlen : 0, n = hdr + in->len;
    uint32_t need = n ? (n + BLOCK - 1) / BLOCK : 1;
    if (d->free_blocks < need)   /* a fragment takes a block at least: a descriptor is free */
        return 0;
    uint32_t fi = d->free_frag;
    if (fi)
        d->free_frag = FRAG(d, fi)->next;
    else
        fi = ++d->frag_used;
    struct frag *f = FRAG(d, fi);
    *f = (struct frag){.start = in->start, .end = in->end, .hdrlen = hdr, .nblocks = need};
    uint32_t prev = 0;
    for (uint32_t i = 0, done = 0; i < need; i++) {
        uint32_t b = d->free_block;
        if (b)
            d->free_block = d->block_next[b - 1];
        else
            b = ++d->block_used;
        if (prev)
            d->block_next[prev - 1] = b;
        else
            f->block = b;
        uint32_t k = n - done < BLOCK ? n - done : BLOCK;
        uint8_t *to = d->data + (size_t)(b - 1) * BLOCK;
        for (uint32_t j = 0; j < k; j++, done++)   /* headers, then payload */
            to[j] = done < hdr ? p->data[done] : in->payload[done - hdr];
        prev = b;
    }
    d->block_next[prev - 1] = 0;
    d->free_blocks -= need;
    COUNTER_INC(d->c.held);
    COUNTER_ADD(d->c.held_bytes, (uint64_t)need * BLOCK);
    return fi;
}

/* The whole datagram as one frame in buf. */
static void rebuild(struct defrag *d, uint32_t gi, const struct packet *p, uint8_t *buf,
                    struct packet *out)
{
    struct dgram *g = DG(d, gi);
    const struct frag *first = FRAG(d, g->frags);
    uint32_t hdr = g->ip_hdr_end;   /* IPv6: up to the fragment header, left out */
    read_blocks(d, first->block, 0, buf, hdr);
    uint8_t *ip = buf + g->l3_off;
    if (g->family == 4) {
        uint32_t total = g->ip_hdr_end - g->l3_off + g->total;
        ip[2] = (uint8_t)(total >> 8);
        ip[3] = (uint8_t)total;
        ip[6] &= 0x40;          /* don't-fragment stays; more-fragments and offset go */
        ip[7] = 0;
        ip[10] = ip[11] = 0;
        uint32_t sum = 0, hlen = (uint32_t)(ip[0] & 0x0f) * 4;
        for (uint32_t i = 0; i < hlen; i += 2)
            sum += rd16(ip + i);
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        ip[10] = (uint8_t)(~sum >> 8);
        ip[11] = (uint8_t)~sum;
    } else {
        uint32_t plen = g->ip_hdr_end - g->l3_off - 40 + g->total;
        ip[4] = (uint8_t)(plen >> 8);
        ip[5] = (uint8_t)plen;
        buf[g->nh_pos] = g->next_header;
    }
    uint8_t *to = buf + hdr;
    for (uint32_t fi = g->frags; fi; fi = FRAG(d, fi)->next) {
        const struct frag *f = FRAG(d, fi);
        read_blocks(d, f->block, f->hdrlen, to + f->start, f->end - f->start);
    }
    memset(out, 0, sizeof *out);
    out->data = buf;
    out->caplen = hdr + g->total;
    out->wirelen = p->wirelen;
    out->ts = p->ts;
    out->clock = p->clock;
    out->frame = p->frame;
    out->iface = p->iface;
    out->link_slot = p->link_slot;
    out->extra_frames = (uint16_t)(g->nfrags - 1);
    out->extra_bytes = (uint32_t)(g->wire_bytes - p->wirelen);
    COUNTER_INC(d->c.datagrams);
    end_dgram(d, gi, &d->c.reassembled);
}

enum defrag_result defrag_add(struct defrag *d, const struct packet *p, uint8_t *buf,
                              struct packet *out)
{
    struct info in;
    if (!parse(p, &in)) {
        COUNTER_INC(d->c.fragments);
        COUNTER_INC(d->c.invalid);
        return DEFRAG_HELD;
    }
    if (in.start == 0 && !in.more) {
        if (in.family == 6)
            return DEFRAG_PASS;   /* RFC 6946: an atomic fragment is a whole datagram */
        COUNTER_INC(d->c.fragments);        /* IPv4 says it is not a fragment: decode did not flag it */
        COUNTER_INC(d->c.invalid);
        return DEFRAG_HELD;
    }
    COUNTER_INC(d->c.fragments);
    if ((in.more && (in.len == 0 || in.len % 8)) || (in.start == 0 && in.hdrlen > DEFRAG_HEADER_MAX)) {
        COUNTER_INC(d->c.invalid);
        return DEFRAG_HELD;
    }
    uint32_t h = hash_of(d, &in), gi = find(d, &in, h);
    uint32_t ip_hdr = in.family == 4 ? in.ip_hdr_end - p->l3_off : 0;
    if (in.end > d->lim.max_size || ip_hdr + in.end > 65535) {
        COUNTER_INC(d->c.too_big);
        if (gi)
            end_dgram(d, gi, &d->c.too_big);
        return DEFRAG_HELD;
    }
    if (!gi && !(gi = new_dgram(d, &in, h, p->clock))) {
        COUNTER_INC(d->c.no_room);
        return DEFRAG_HELD;
    }
    struct dgram *g = DG(d, gi);
    /* the end is known once, and nothing may lie beyond it: else, as Linux
     * does, the whole datagram goes */
    uint32_t held_end = 0;
    for (uint32_t fi = g->frags; fi; fi = FRAG(d, fi)->next)
        held_end = FRAG(d, fi)->end;
    if ((g->last_seen && (in.end > g->total || (!in.more && in.end != g->total))) ||
        (!in.more && held_end > in.end)) {
        COUNTER_INC(d->c.invalid);
        end_dgram(d, gi, &d->c.invalid);
        return DEFRAG_HELD;
    }
    uint32_t *link = &g->frags;
    for (uint32_t fi = g->frags; fi; fi = FRAG(d, fi)->next) {
        const struct frag *f = FRAG(d, fi);
        if (f->start == in.start && f->end == in.end) {
            COUNTER_INC(d->c.duplicates);
            if (!same_bytes(d, f, in.payload, in.len))
                COUNTER_INC(d->c.conflicting);
            return DEFRAG_HELD;
        }
        if (in.start < f->end && f->start < in.end) {
            COUNTER_INC(d->c.overlap);
            end_dgram(d, gi, &d->c.overlap);
            return DEFRAG_HELD;
        }
        if (f->start < in.start)
            link = &FRAG(d, fi)->next;
    }
    uint32_t fi = store(d, p, &in);
    if (!fi) {
        COUNTER_INC(d->c.no_room);
        if (!g->frags)
            end_dgram(d, gi, NULL);
        return DEFRAG_HELD;
    }
    FRAG(d, fi)->next = *link;
    *link = fi;
    g->nfrags++;
    g->have += in.len;
    g->wire_bytes += p->wirelen;
    if (!in.more) {
        g->last_seen = 1;
        g->total = in.end;
    }
    if (in.start == 0) {
        g->l3_off = p->l3_off;
        g->ip_hdr_end = in.ip_hdr_end;
        g->nh_pos = in.nh_pos;
        g->next_header = in.next_header;
    }
    if (!g->last_seen || g->have != g->total || FRAG(d, g->frags)->start != 0)
        return DEFRAG_HELD;
    /* the first fragment's headers (options, extension headers) count too */
    uint32_t headers = g->ip_hdr_end - g->l3_off - (g->family == 4 ? 0 : 40);
    if (headers + g->total > 65535) {
        end_dgram(d, gi, &d->c.too_big);
        return DEFRAG_HELD;
    }
    rebuild(d, gi, p, buf, out);
    return DEFRAG_DONE;
}

struct packet *defrag_packet(struct defrag *d, struct packet *p, int linktype, uint8_t *buf,
                             struct packet *out)
{
    defrag_expire(d, p->clock);
    switch (defrag_add(d, p, buf, out)) {
    case DEFRAG_PASS:
        return p;
    case DEFRAG_HELD:
        return NULL;
    case DEFRAG_DONE:
        break;
    }
    if (decode_is_error(decode_packet(out, linktype))) {
        COUNTER_INC(d->c.undecodable);
        return NULL;
    }
    out->flags |= PKT_REASSEMBLED;
    out->link_slot = p->link_slot;
    return out;
}
