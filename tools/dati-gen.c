/*
 * dati-gen: deterministic traffic generator for the dati DPI probe.
 * Writes a classic pcap with the 2013 ISP "lab mix" (background TCP plus
 * 1500-byte HTTP GETs, optionally DNS, TLS and IPv6) for the demo, tests and
 * benchmarks. Same seed and options always give a byte-identical file.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
enum { PCAP_FILE_HDR = 24, PCAP_RECORD_HDR = 16, LINKTYPE_ETHERNET = 1 };

enum { ETH_HDR = 14, VLAN_HDR = 4, IPV4_HDR = 20, IPV6_HDR = 40 };
enum { TCP_HDR = 20, UDP_HDR = 8, PROTO_TCP = 6, PROTO_UDP = 17 };

#define FRAME_MAX           1518
#define BG_FRAME_MIN        500
#define BG_FRAME_MAX        1518
#define HTTP_REQUEST_FRAME  1500
#define HTTP_RESPONSE_FRAME 600

/* Second octet of 198.18.0.0/15 (18 clients, 19 servers); IPv6 uses N-17. */
#define NET_CLIENT      18
#define NET_SERVER      19
#define HTTP_SERVERS    100
#define DNS_SERVER_HOST 53 /* 198.19.0.53 */
#define TLS_SERVER_HOST 43 /* 198.19.0.43 */
#define CLIENT_PORT_MIN 1024
#define NAME_SPACE      1000 /* k in host<k>/tls<k>.example.test */

#define MAX_COUNT    1000000000000ull
#define MAX_FLOWS    10000000ull
#define MAX_RATE     1000000000ull
#define NS_PER_SEC   1000000000ull
#define OUT_BUF_SIZE (4u << 20)

struct options {
    const char *output;
    uint64_t count, seed, flows, http_flows, rate, start;
    double http_share, dns_share, tls_share, ipv6_share, stop_early;
    bool responses, ns, round_robin, services;
    unsigned vlan;       /* 0 = untagged */
    unsigned frame_size; /* background frame length; 0 = uniform 500..1518 */
    /* IP fragments: datagrams whose IP payload exceeds fragment are cut */
    unsigned fragment;   /* IP payload bytes per fragment (a multiple of 8); 0 = none */
    int frag_order;      /* FRAG_IN, FRAG_REVERSE, FRAG_SHUFFLE */
    bool frag_dup;       /* every fragment twice */
    bool frag_conflict;  /* the first fragment again, with other bytes */
    bool frag_overlap;   /* a fragment overlapping two others */
    double frag_drop_last; /* percent of cut datagrams whose last fragment never comes */
    /* TCP segments: payloads longer than segment are cut (the same orders and
     * faults as fragments); split_at cuts every payload in two there */
    unsigned segment, split_at;
    bool split_every;    /* the n-th payload of a length cut at byte 1 + n mod (length - 1) */
    int seg_order;
    bool seg_dup, seg_conflict;
    double seg_drop_last;
};

enum { FRAG_IN, FRAG_REVERSE, FRAG_SHUFFLE };

/* Addresses are 198.<net>.<host> or 2001:2:0:<net-17>::<host>. */
struct endpoint {
    uint8_t net;
    uint16_t host;
    uint16_t port;
};

struct flow {
    uint32_t seq_client; /* next sequence number client->server */
    uint32_t seq_server; /* next sequence number server->client */
    uint16_t client_host, server_host;
    uint16_t client_port, server_port;
    bool ipv6;
    bool stopped; /* silent after the first third (--stop-early) */
};

struct flow_table {
    struct flow *flows;
    uint32_t *live; /* indexes of flows that never stop */
    size_t n, n_live;
};

struct packet {
    bool ipv6;
    uint8_t proto;
    struct endpoint src, dst;
    uint32_t seq, ack; /* TCP only */
    size_t payload_len;
};

struct counters {
    uint64_t packets, bytes, background, http_requests, http_responses;
    uint64_t dns_queries, tls_hellos, ipv6;
    uint64_t frames, fragmented, fragments;   /* --fragment: records, datagrams cut, pieces */
    uint64_t segmented, segments;             /* --segment/--split-at: payloads cut, pieces */
};

struct output {
    FILE *file;
    const char *name;
    uint8_t *buf;
    size_t len;
};

struct gen {
    struct options opt;
    uint64_t rng;
    double odds_http, odds_dns, odds_tls; /* per-draw probabilities */
    uint64_t cutoff;                      /* from this index on, stopped flows are silent */
    struct flow_table bg, http;
    struct output out;
    struct counters n;
    uint64_t frag_rng;   /* its own stream: the same datagrams, cut or not */
};

struct http_variant {
    const char *url, *host, *user_agent, *referer, *cookie;
};

static const struct http_variant http_variants[] = {
    {"/index.html", "www.example.test", "Mozilla/5.0 (X11; Linux x86_64) dati-gen/1",
     "http://www.example.test/", "session=0a1b2c"},
    {"/search?q=dati&lang=en", "search.example.test", "curl/7.88.1",
     "http://search.example.test/home", "uid=42; theme=dark"},
    {"/images/logo.png", "cdn.example.test", "Wget/1.21.3", "http://www.example.test/index.html",
     "a=1"},
};

static const uint16_t bg_server_ports[] = {443, 8443, 5001, 22};

/* --services: names of public services (in the payload only; the addresses
 * stay in 198.18.0.0/15), so that a classifier such as nDPI names the flows */
static const char *const service_names[] = {
    "www.youtube.com", "www.google.com", "en.wikipedia.org", "www.netflix.com",
    "www.facebook.com", "github.com", "www.amazon.com", "www.twitch.tv",
};
#define SERVICES (sizeof service_names / sizeof service_names[0])

/* ---- errors -------------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn)) static void fail_usage(const char *fmt, ...)
{
    va_list ap;

    fputs("dati-gen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'dati-gen --help'.\n", stderr);
    exit(2);
}

__attribute__((noreturn)) static void fail_io(const char *what, const char *name)
{
    fprintf(stderr, "dati-gen: %s %s: %s\n", what, name, strerror(errno));
    exit(1);
}

/* ---- PRNG (splitmix64: tiny, fast, and identical on every platform) ---- */

static uint64_t rng_next(struct gen *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Modulo bias is below 2^-40 for every n used here. */
static uint64_t rng_below(struct gen *g, uint64_t n)
{
    return rng_next(g) % n;
}

static uint64_t rng_range(struct gen *g, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(g, hi - lo + 1);
}

static double rng_unit(struct gen *g)
{
    return (double)(rng_next(g) >> 11) * 0x1p-53;
}

static bool rng_percent(struct gen *g, double pct)
{
    return rng_unit(g) * 100.0 < pct;
}

/* ---- byte writers (explicit byte order keeps output host-independent) ---- */

static uint8_t *put8(uint8_t *p, unsigned v)
{
    *p = (uint8_t)v;
    return p + 1;
}

static uint8_t *put_be16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, v >> 16);
    return put_be16(p + 2, v & 0xffff);
}

static uint8_t *put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    memcpy(p, src, n);
    return p + n;
}

static void fill_random(struct gen *g, uint8_t *p, size_t n)
{
    while (n > 0) {
        uint64_t r = rng_next(g);

        for (int i = 0; i < 8 && n > 0; i++, n--, r >>= 8)
            *p++ = (uint8_t)r;
    }
}

/* ---- Internet checksum (RFC 1071) ---------------------------------------- */

/* 32-bit big-endian words fold to the same one's complement sum as 16-bit. */
static uint64_t sum_words(const uint8_t *p, size_t n, uint64_t acc)
{
    for (; n >= 4; p += 4, n -= 4)
        acc += (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n >= 2) {
        acc += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        n -= 2;
    }
    if (n == 1)
        acc += (uint32_t)p[0] << 8;
    return acc;
}

static uint16_t fold_checksum(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

/* ---- output buffer --------------------------------------------------- */

static void out_flush(struct gen *g)
{
    struct output *o = &g->out;

    if (o->len > 0 && fwrite(o->buf, 1, o->len, o->file) != o->len)
        fail_io("cannot write", o->name);
    o->len = 0;
}

/* Returns where the next n bytes go; the caller advances out.len itself. */
static uint8_t *out_reserve(struct gen *g, size_t n)
{
    if (OUT_BUF_SIZE - g->out.len < n)
        out_flush(g);
    return g->out.buf + g->out.len;
}

static void out_open(struct gen *g)
{
    struct output *o = &g->out;
    uint8_t *p;

    o->name = g->opt.output;
    if (strcmp(o->name, "-") == 0) {
        o->file = stdout;
        o->name = "<stdout>";
    } else if (!(o->file = fopen(o->name, "wb"))) {
        fail_io("cannot open", o->name);
    }
    o->buf = malloc(OUT_BUF_SIZE);
    if (!o->buf) {
        fputs("dati-gen: out of memory\n", stderr);
        exit(1);
    }
    p = out_reserve(g, PCAP_FILE_HDR);
    p = put_le32(p, g->opt.ns ? PCAP_MAGIC_NS : PCAP_MAGIC_US);
    p = put_le32(p, 2 | 4u << 16); /* version 2.4 as two LE u16 */
    p = put_le32(p, 0);            /* thiszone */
    p = put_le32(p, 0);            /* sigfigs */
    p = put_le32(p, 65535);        /* snaplen */
    put_le32(p, LINKTYPE_ETHERNET);
    o->len += PCAP_FILE_HDR;
}

static void out_close(struct gen *g)
{
    out_flush(g);
    if (fflush(g->out.file) != 0 || ferror(g->out.file))
        fail_io("cannot write", g->out.name);
    if (fclose(g->out.file) != 0)
        fail_io("cannot close", g->out.name);
    free(g->out.buf);
}

/* ---- timestamps ------------------------------------------------------- */

/* start + index/rate in exact integer ns, truncated to the file's unit. */
static void packet_time(const struct gen *g, uint64_t index, uint64_t *sec, uint32_t *frac)
{
    uint64_t ns = (index % g->opt.rate) * NS_PER_SEC / g->opt.rate;

    *sec = g->opt.start + index / g->opt.rate;
    *frac = (uint32_t)(g->opt.ns ? ns : ns / 1000);
}

/* ---- frame assembly ----------------------------------------------------- */

static size_t headers_len(const struct gen *g, bool ipv6, uint8_t proto)
{
    return (size_t)ETH_HDR + (g->opt.vlan ? VLAN_HDR : 0) + (ipv6 ? IPV6_HDR : IPV4_HDR) +
           (proto == PROTO_TCP ? TCP_HDR : UDP_HDR);
}

static uint8_t *put_addr(uint8_t *p, bool ipv6, const struct endpoint *e)
{
    if (!ipv6) {
        p = put8(p, 198);
        p = put8(p, e->net);
        return put_be16(p, e->host);
    }
    p = put_be32(p, 0x20010002);            /* 2001:2:: (RFC 5180) */
    p = put_be32(p, (uint32_t)e->net - 17); /* :0:1 clients, :0:2 servers */
    p = put_be32(p, 0);
    return put_be32(p, e->host);
}

/* Locally administered MAC mirroring the IPv4 address: 02:00:c6:NN:HH:LL. */
static uint8_t *put_mac(uint8_t *p, const struct endpoint *e)
{
    return put_addr(put_be16(p, 0x0200), false, e);
}

static uint8_t *put_ethernet(const struct gen *g, uint8_t *p, const struct packet *pk)
{
    p = put_mac(p, &pk->dst);
    p = put_mac(p, &pk->src);
    if (g->opt.vlan) {
        p = put_be16(p, 0x8100);
        p = put_be16(p, g->opt.vlan); /* PCP 0, DEI 0 */
    }
    return put_be16(p, pk->ipv6 ? 0x86dd : 0x0800);
}

static uint8_t *put_ipv4(struct gen *g, uint8_t *ip, const struct packet *pk, size_t l4_len)
{
    uint8_t *p = ip;

    p = put8(p, 0x45); /* version 4, IHL 5 */
    p = put8(p, 0);    /* DSCP/ECN */
    p = put_be16(p, (unsigned)(IPV4_HDR + l4_len));
    p = put_be16(p, (unsigned)(rng_next(g) & 0xffff));
    p = put_be16(p, 0x4000); /* DF, offset 0 */
    p = put8(p, 64);
    p = put8(p, pk->proto);
    p = put_be16(p, 0); /* checksum, filled below */
    p = put_addr(p, false, &pk->src);
    p = put_addr(p, false, &pk->dst);
    put_be16(ip + 10, fold_checksum(sum_words(ip, IPV4_HDR, 0)));
    return p;
}

static uint8_t *put_ipv6(uint8_t *p, const struct packet *pk, size_t l4_len)
{
    p = put_be32(p, 0x60000000); /* version 6, class 0, flow label 0 */
    p = put_be16(p, (unsigned)l4_len);
    p = put8(p, pk->proto);
    p = put8(p, 64);
    p = put_addr(p, true, &pk->src);
    return put_addr(p, true, &pk->dst);
}

static void put_tcp(uint8_t *p, const struct packet *pk)
{
    p = put_be16(p, pk->src.port);
    p = put_be16(p, pk->dst.port);
    p = put_be32(p, pk->seq);
    p = put_be32(p, pk->ack);
    p = put8(p, 5 << 4); /* data offset 5, no options */
    p = put8(p, 0x18);   /* ACK|PSH */
    p = put_be16(p, 65535);
    p = put_be16(p, 0); /* checksum, filled later */
    put_be16(p, 0);     /* urgent pointer */
}

static void put_udp(uint8_t *p, const struct packet *pk, size_t l4_len)
{
    p = put_be16(p, pk->src.port);
    p = put_be16(p, pk->dst.port);
    p = put_be16(p, (unsigned)l4_len);
    put_be16(p, 0); /* checksum, filled later */
}

/* TCP/UDP checksum over the pseudo-header (addresses taken from l3). */
static void put_l4_checksum(const uint8_t *l3, uint8_t *l4, const struct packet *pk, size_t l4_len)
{
    uint64_t acc = pk->ipv6 ? sum_words(l3 + 8, 32, 0) : sum_words(l3 + 12, 8, 0);
    uint16_t sum;

    acc += pk->proto + l4_len;
    sum = fold_checksum(sum_words(l4, l4_len, acc));
    if (pk->proto == PROTO_UDP) {
        put_be16(l4 + 6, sum ? sum : 0xffff); /* 0 = "no checksum" */
    } else {
        put_be16(l4 + 16, sum);
    }
}

static size_t frame_len_of(const struct gen *g, const struct packet *pk)
{
    return headers_len(g, pk->ipv6, pk->proto) + pk->payload_len;
}

/* Reserves the next record; the payload is written in place, no copies. */
static uint8_t *packet_payload(struct gen *g, const struct packet *pk)
{
    uint8_t *rec;

    assert(frame_len_of(g, pk) <= FRAME_MAX);
    rec = out_reserve(g, PCAP_RECORD_HDR + FRAME_MAX);
    return rec + PCAP_RECORD_HDR + headers_len(g, pk->ipv6, pk->proto);
}

/* ---- IP fragments (--fragment) ------------------------------------------ */

static uint64_t frag_next(struct gen *g)
{
    uint64_t z = (g->frag_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One record: the datagram's headers (from frame, l3 at link bytes) as a
 * fragment holding IP payload [start, start + n) of data; fill: other bytes. */
static void put_fragment(struct gen *g, const uint8_t *frame, size_t link, bool ipv6,
                         uint32_t ident, const uint8_t *data, size_t start, size_t n, bool more,
                         uint32_t sec, uint32_t frac, bool fill)
{
    uint8_t *rec = out_reserve(g, PCAP_RECORD_HDR + FRAME_MAX + 8), *p = rec + PCAP_RECORD_HDR;
    memcpy(p, frame, link);
    uint8_t *ip = p + link, *d;
    if (!ipv6) {
        memcpy(ip, frame + link, IPV4_HDR);
        put_be16(ip + 2, (unsigned)(IPV4_HDR + n));
        put_be16(ip + 6, (unsigned)((more ? 0x2000 : 0) | start / 8));
        put_be16(ip + 10, 0);
        put_be16(ip + 10, fold_checksum(sum_words(ip, IPV4_HDR, 0)));
        d = ip + IPV4_HDR;
    } else {
        memcpy(ip, frame + link, IPV6_HDR);
        put_be16(ip + 4, (unsigned)(8 + n));
        ip[6] = 44;   /* a fragment header next */
        uint8_t *fh = ip + IPV6_HDR;
        fh[0] = frame[link + 6];
        fh[1] = 0;
        put_be16(fh + 2, (unsigned)(start | (more ? 1 : 0)));
        put_be32(fh + 4, ident);
        d = fh + 8;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = fill ? (uint8_t)~data[start + i] : data[start + i];
    size_t len = (size_t)(d - p) + n;
    rec = put_le32(rec, sec);
    rec = put_le32(rec, frac);
    rec = put_le32(rec, (uint32_t)len);
    put_le32(rec, (uint32_t)len);
    g->out.len += PCAP_RECORD_HDR + len;
    g->n.frames++;
    g->n.fragments++;
    g->n.bytes += len;
}

/* Cuts the frame just written (not yet counted in out.len) into fragments,
 * written in its place; false when it is small enough to stay whole. */
static bool cut_datagram(struct gen *g, const struct packet *pk, uint32_t sec, uint32_t frac)
{
    static uint8_t frame[FRAME_MAX];
    static size_t order[FRAME_MAX / 8 + 1];
    size_t link = ETH_HDR + (g->opt.vlan ? VLAN_HDR : 0), l3 = pk->ipv6 ? IPV6_HDR : IPV4_HDR;
    size_t frame_len = frame_len_of(g, pk), payload = frame_len - link - l3;
    size_t size = g->opt.fragment;
    if (!size || payload <= size)
        return false;
    memcpy(frame, g->out.buf + g->out.len + PCAP_RECORD_HDR, frame_len);
    const uint8_t *data = frame + link + l3;
    uint32_t ident = (uint32_t)frag_next(g);
    size_t n = (payload + size - 1) / size;
    bool drop_last = frag_next(g) % 10000 < (uint64_t)(g->opt.frag_drop_last * 100);
    for (size_t i = 0; i < n; i++)
        order[i] = g->opt.frag_order == FRAG_REVERSE ? n - 1 - i : i;
    if (g->opt.frag_order == FRAG_SHUFFLE)
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)(frag_next(g) % (i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
    g->n.fragmented++;
    for (size_t i = 0; i < n; i++) {
        size_t k = order[i], start = k * size, len = k == n - 1 ? payload - start : size;
        if (k == n - 1 && drop_last)
            continue;
        put_fragment(g, frame, link, pk->ipv6, ident, data, start, len, k < n - 1, sec, frac,
                     false);
        if (g->opt.frag_dup)
            put_fragment(g, frame, link, pk->ipv6, ident, data, start, len, k < n - 1, sec,
                         frac, false);
        if (g->opt.frag_conflict && k == 0)
            put_fragment(g, frame, link, pk->ipv6, ident, data, start, len, true, sec, frac,
                         true);
        if (g->opt.frag_overlap && i == 0 && size / 2 + size <= payload)   /* across two pieces */
            put_fragment(g, frame, link, pk->ipv6, ident, data, size / 2 & ~(size_t)7, size,
                         true, sec, frac, false);
    }
    return true;
}

/* ---- TCP segments (--segment, --split-at) ----------------------------------- */

/* One record: the frame's headers with payload [start, start + n) of data
 * (fill: other bytes), lengths, sequence number and checksums set. */
static void put_segment(struct gen *g, const uint8_t *frame, size_t link, bool ipv6,
                        const uint8_t *data, size_t start, size_t n, uint32_t sec, uint32_t frac,
                        bool fill)
{
    size_t l3 = ipv6 ? IPV6_HDR : IPV4_HDR;
    uint8_t *rec = out_reserve(g, PCAP_RECORD_HDR + FRAME_MAX), *p = rec + PCAP_RECORD_HDR;
    memcpy(p, frame, link + l3 + TCP_HDR);
    uint8_t *ip = p + link, *tcp = ip + l3;
    if (ipv6) {
        put_be16(ip + 4, (unsigned)(TCP_HDR + n));
    } else {
        put_be16(ip + 2, (unsigned)(IPV4_HDR + TCP_HDR + n));
        put_be16(ip + 10, 0);
        put_be16(ip + 10, fold_checksum(sum_words(ip, IPV4_HDR, 0)));
    }
    uint32_t seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
    put_be32(tcp + 4, seq + (uint32_t)start);
    for (size_t i = 0; i < n; i++)
        tcp[TCP_HDR + i] = fill ? (uint8_t)~data[start + i] : data[start + i];
    put_be16(tcp + 16, 0);
    uint64_t acc = ipv6 ? sum_words(ip + 8, 32, 0) : sum_words(ip + 12, 8, 0);
    put_be16(tcp + 16, fold_checksum(sum_words(tcp, TCP_HDR + n, acc + PROTO_TCP + TCP_HDR + n)));
    size_t len = link + l3 + TCP_HDR + n;
    rec = put_le32(rec, sec);
    rec = put_le32(rec, frac);
    rec = put_le32(rec, (uint32_t)len);
    put_le32(rec, (uint32_t)len);
    g->out.len += PCAP_RECORD_HDR + len;
    g->n.frames++;
    g->n.segments++;
    g->n.bytes += len;
}

/* Cuts the TCP frame just written into segments, like cut_datagram. */
static bool cut_segment(struct gen *g, const struct packet *pk, uint32_t sec, uint32_t frac)
{
    static uint8_t frame[FRAME_MAX];
    static size_t starts[FRAME_MAX + 1];
    static size_t order[FRAME_MAX + 1];
    static uint32_t turn[FRAME_MAX + 1];   /* --split-every: payloads of each length so far */
    size_t link = ETH_HDR + (g->opt.vlan ? VLAN_HDR : 0), l3 = pk->ipv6 ? IPV6_HDR : IPV4_HDR;
    size_t payload = pk->payload_len, n = 0;
    if (pk->proto != PROTO_TCP || payload < 2)
        return false;
    if (g->opt.split_at || g->opt.split_every) {
        size_t at = g->opt.split_every ? 1 + turn[payload]++ % (payload - 1) : g->opt.split_at;
        if (at >= payload)
            return false;
        starts[n++] = 0;
        starts[n++] = at;
    } else {
        if (!g->opt.segment || payload <= g->opt.segment)
            return false;
        for (size_t s = 0; s < payload; s += g->opt.segment)
            starts[n++] = s;
    }
    starts[n] = payload;
    memcpy(frame, g->out.buf + g->out.len + PCAP_RECORD_HDR, frame_len_of(g, pk));
    const uint8_t *data = frame + link + l3 + TCP_HDR;
    bool drop_last = frag_next(g) % 10000 < (uint64_t)(g->opt.seg_drop_last * 100);
    for (size_t i = 0; i < n; i++)
        order[i] = g->opt.seg_order == FRAG_REVERSE ? n - 1 - i : i;
    if (g->opt.seg_order == FRAG_SHUFFLE)   /* the first segment first, the rest in any order */
        for (size_t i = n - 1; i > 1; i--) {
            size_t j = 1 + (size_t)(frag_next(g) % i), t = order[i];
            order[i] = order[j], order[j] = t;
        }
    g->n.segmented++;
    for (size_t i = 0; i < n; i++) {
        size_t k = order[i], s = starts[k], len = starts[k + 1] - s;
        if (k == n - 1 && drop_last)
            continue;
        put_segment(g, frame, link, pk->ipv6, data, s, len, sec, frac, false);
        if (g->opt.seg_dup)
            put_segment(g, frame, link, pk->ipv6, data, s, len, sec, frac, false);
        if (g->opt.seg_conflict && len > 1)   /* its second half again, other bytes */
            put_segment(g, frame, link, pk->ipv6, data, s + len / 2, len - len / 2, sec, frac,
                        true);
    }
    return true;
}

/* Writes headers and checksums around the payload, then the pcap record. */
static void packet_finish(struct gen *g, const struct packet *pk)
{
    size_t frame_len = frame_len_of(g, pk);
    size_t l4_len = (pk->proto == PROTO_TCP ? TCP_HDR : UDP_HDR) + pk->payload_len;
    uint8_t *rec = g->out.buf + g->out.len;
    uint8_t *l3 = put_ethernet(g, rec + PCAP_RECORD_HDR, pk);
    uint8_t *l4 = pk->ipv6 ? put_ipv6(l3, pk, l4_len) : put_ipv4(g, l3, pk, l4_len);
    uint64_t sec;
    uint32_t frac;

    if (pk->proto == PROTO_TCP)
        put_tcp(l4, pk);
    else
        put_udp(l4, pk, l4_len);
    put_l4_checksum(l3, l4, pk, l4_len);

    packet_time(g, g->n.packets, &sec, &frac);
    if (cut_segment(g, pk, (uint32_t)sec, frac) || cut_datagram(g, pk, (uint32_t)sec, frac)) {
        g->n.packets++;   /* the fragments counted their frames and bytes */
        g->n.ipv6 += pk->ipv6;
        return;
    }
    g->n.frames++;
    rec = put_le32(rec, (uint32_t)sec);
    rec = put_le32(rec, frac);
    rec = put_le32(rec, (uint32_t)frame_len); /* caplen */
    put_le32(rec, (uint32_t)frame_len);       /* wire length */
    g->out.len += PCAP_RECORD_HDR + frame_len;
    g->n.packets++;
    g->n.bytes += frame_len;
    g->n.ipv6 += pk->ipv6;
}

/* ---- flows -------------------------------------------------------- */

static void flow_table_init(struct gen *g, struct flow_table *t, size_t n, bool http)
{
    t->flows = calloc(n, sizeof *t->flows);
    t->live = calloc(n, sizeof *t->live);
    if (!t->flows || !t->live) {
        fputs("dati-gen: out of memory for flow tables\n", stderr);
        exit(1);
    }
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        struct flow *f = &t->flows[i];

        /* Hosts 0 and 0xffff look like network/broadcast: avoid. */
        f->client_host = (uint16_t)rng_range(g, 1, 0xfffe);
        f->client_port = (uint16_t)rng_range(g, CLIENT_PORT_MIN, 65535);
        if (http) {
            f->server_host = (uint16_t)(1 + i % HTTP_SERVERS);
            f->server_port = 80;
        } else {
            /* Above 198.19.0.255 so background never hits the
             * well-known HTTP/DNS/TLS servers in 198.19.0.0/24. */
            f->server_host = (uint16_t)rng_range(g, 0x100, 0xfffe);
            f->server_port = bg_server_ports[rng_below(g, 4)];
        }
        f->seq_client = (uint32_t)rng_next(g);
        f->seq_server = (uint32_t)rng_next(g);
        f->ipv6 = rng_percent(g, g->opt.ipv6_share);
        f->stopped = rng_percent(g, g->opt.stop_early);
        if (!f->stopped)
            t->live[t->n_live++] = (uint32_t)i;
    }
}

/*
 * Before the cutoff any flow may send; afterwards only live ones, drawn
 * uniformly (equivalent to re-drawing until a live flow comes up). If every
 * flow has stopped, stopped flows keep sending rather than losing packets.
 */
static struct flow *pick_flow(struct gen *g, struct flow_table *t)
{
    if (g->n.packets >= g->cutoff && t->n_live > 0)
        return &t->flows[t->live[rng_below(g, t->n_live)]];
    return &t->flows[rng_below(g, t->n)];
}

/* A TCP packet on a flow; advances that direction's sequence number. */
static struct packet flow_packet(const struct gen *g, struct flow *f, bool to_server,
                                 size_t frame_len)
{
    struct endpoint client = {NET_CLIENT, f->client_host, f->client_port};
    struct endpoint server = {NET_SERVER, f->server_host, f->server_port};
    struct packet pk = {.ipv6 = f->ipv6, .proto = PROTO_TCP};

    pk.payload_len = frame_len - headers_len(g, f->ipv6, PROTO_TCP);
    if (to_server) {
        pk.src = client;
        pk.dst = server;
        pk.seq = f->seq_client;
        pk.ack = f->seq_server;
        f->seq_client += (uint32_t)pk.payload_len;
    } else {
        pk.src = server;
        pk.dst = client;
        pk.seq = f->seq_server;
        pk.ack = f->seq_client;
        f->seq_server += (uint32_t)pk.payload_len;
    }
    return pk;
}

/* A single packet from a fresh random client to a well-known server. */
static struct packet one_off_packet(struct gen *g, uint8_t proto, uint16_t server_host,
                                    uint16_t server_port)
{
    struct packet pk = {.proto = proto};

    pk.ipv6 = rng_percent(g, g->opt.ipv6_share);
    pk.src.net = NET_CLIENT;
    pk.src.host = (uint16_t)rng_range(g, 1, 0xfffe);
    pk.src.port = (uint16_t)rng_range(g, CLIENT_PORT_MIN, 65535);
    pk.dst.net = NET_SERVER;
    pk.dst.host = server_host;
    pk.dst.port = server_port;
    if (proto == PROTO_TCP) {
        pk.seq = (uint32_t)rng_next(g);
        pk.ack = (uint32_t)rng_next(g);
    }
    return pk;
}

/* ---- traffic kinds ----------------------------------------------------- */

static void emit_background(struct gen *g)
{
    /* --round-robin visits every flow in turn: N flows are all live after
     * N background packets (the flow-table memory benchmark needs that). */
    struct flow *f =
        g->opt.round_robin ? &g->bg.flows[g->n.background % g->opt.flows] : pick_flow(g, &g->bg);
    bool to_server = rng_next(g) & 1;
    size_t frame_len =
        g->opt.frame_size ? g->opt.frame_size : rng_range(g, BG_FRAME_MIN, BG_FRAME_MAX);
    struct packet pk = flow_packet(g, f, to_server, frame_len);
    uint8_t *payload = packet_payload(g, &pk);

    fill_random(g, payload, pk.payload_len);
    /* Never look like an HTTP method or a TLS handshake record. */
    if ((payload[0] >= 'A' && payload[0] <= 'Z') || payload[0] == 0x16)
        payload[0] ^= 0x80;
    packet_finish(g, &pk);
    g->n.background++;
}

/* head + "X-Pad: aaa...\r\n\r\n", padded so the payload is exactly len. */
static void fill_padded_http(uint8_t *p, size_t len, const char *head)
{
    static const char pad_name[] = "X-Pad: ";
    static const char tail[] = "\r\n\r\n";
    size_t head_len = strlen(head);
    size_t fixed = head_len + strlen(pad_name) + strlen(tail);

    assert(len > fixed);
    p = put_bytes(p, head, head_len);
    p = put_bytes(p, pad_name, strlen(pad_name));
    memset(p, 'a', len - fixed);
    put_bytes(p + (len - fixed), tail, strlen(tail));
}

static void emit_http_request(struct gen *g, struct flow *f)
{
    const struct http_variant *v = &http_variants[rng_below(g, 3)];
    const char *host = g->opt.services ? service_names[rng_below(g, SERVICES)] : v->host;
    struct packet pk = flow_packet(g, f, true, HTTP_REQUEST_FRAME);
    char head[512];

    snprintf(head, sizeof head,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
             "Referer: %s\r\nCookie: %s\r\n",
             v->url, host, v->user_agent, v->referer, v->cookie);
    fill_padded_http(packet_payload(g, &pk), pk.payload_len, head);
    packet_finish(g, &pk);
    g->n.http_requests++;
}

static void emit_http_response(struct gen *g, struct flow *f)
{
    struct packet pk = flow_packet(g, f, false, HTTP_RESPONSE_FRAME);

    fill_padded_http(packet_payload(g, &pk), pk.payload_len,
                     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
    packet_finish(g, &pk);
    g->n.http_responses++;
}

static void emit_http(struct gen *g)
{
    struct flow *f = pick_flow(g, &g->http);

    emit_http_request(g, f);
    /* The pair is split only when the request is the file's last packet. */
    if (g->opt.responses && g->n.packets < g->opt.count)
        emit_http_response(g, f);
}

/* DNS header after the id: flags RD, QDCOUNT 1, AN/NS/ARCOUNT 0. */
static const uint8_t dns_query_header[] = {1, 0, 0, 1, 0, 0, 0, 0, 0, 0};

/* ".example.test" in DNS wire format, root label included. */
static const uint8_t example_test_labels[] = {7,   'e', 'x', 'a', 'm', 'p', 'l',
                                              'e', 4,   't', 'e', 's', 't', 0};

static void emit_dns(struct gen *g)
{
    struct packet pk = one_off_packet(g, PROTO_UDP, DNS_SERVER_HOST, 53);
    unsigned k = (unsigned)rng_below(g, NAME_SPACE);
    unsigned qtype = (rng_next(g) & 1) ? 28 : 1; /* AAAA or A */
    unsigned id = (unsigned)(rng_next(g) & 0xffff);
    char label[16];
    size_t label_len = (size_t)snprintf(label, sizeof label, "host%u", k);
    uint8_t name[64], *p;
    size_t name_len = 0;

    if (g->opt.services) {   /* the dotted name in labels */
        const char *s = service_names[k % SERVICES];
        for (const char *dot; *s; s = *dot ? dot + 1 : dot) {
            dot = s + strcspn(s, ".");
            name[name_len++] = (uint8_t)(dot - s);
            memcpy(name + name_len, s, (size_t)(dot - s));
            name_len += (size_t)(dot - s);
        }
        name[name_len++] = 0;
    } else {
        name[name_len++] = (uint8_t)label_len;
        memcpy(name + name_len, label, label_len);
        name_len += label_len;
        memcpy(name + name_len, example_test_labels, sizeof example_test_labels);
        name_len += sizeof example_test_labels;
    }
    pk.payload_len = 12 + name_len + 4;
    p = packet_payload(g, &pk);
    p = put_be16(p, id);
    p = put_bytes(p, dns_query_header, sizeof dns_query_header);
    p = put_bytes(p, name, name_len);
    p = put_be16(p, qtype);
    put_be16(p, 1); /* class IN */
    packet_finish(g, &pk);
    g->n.dns_queries++;
}

/* ClientHello extensions: server_name (one host_name), supported_versions. */
static uint8_t *put_hello_extensions(uint8_t *p, const char *name, size_t name_len)
{
    p = put_be16(p, 0x0000); /* server_name */
    p = put_be16(p, (unsigned)(5 + name_len));
    p = put_be16(p, (unsigned)(3 + name_len)); /* server_name_list */
    p = put8(p, 0);                            /* host_name */
    p = put_be16(p, (unsigned)name_len);
    p = put_bytes(p, name, name_len);
    p = put_be16(p, 0x002b); /* supported_versions */
    p = put_be16(p, 5);
    p = put8(p, 4);
    p = put_be16(p, 0x0304);    /* TLS 1.3 */
    return put_be16(p, 0x0303); /* TLS 1.2 */
}

static void emit_tls(struct gen *g)
{
    struct packet pk = one_off_packet(g, PROTO_TCP, TLS_SERVER_HOST, 443);
    unsigned k = (unsigned)rng_below(g, NAME_SPACE);
    char name[32];
    size_t name_len = g->opt.services
                          ? (size_t)snprintf(name, sizeof name, "%s", service_names[k % SERVICES])
                          : (size_t)snprintf(name, sizeof name, "tls%u.example.test", k);
    size_t ext_len = (4 + 5 + name_len) + (4 + 5);
    /* version, random, session id, ciphers, compression, extensions */
    size_t hello_len = 2 + 32 + 1 + (2 + 4) + (1 + 1) + (2 + ext_len);
    uint8_t *p;

    pk.payload_len = 5 + 4 + hello_len;
    p = packet_payload(g, &pk);
    p = put8(p, 0x16); /* record: handshake */
    p = put_be16(p, 0x0301);
    p = put_be16(p, (unsigned)(4 + hello_len));
    p = put8(p, 1); /* ClientHello */
    p = put8(p, 0); /* 24-bit length, < 64k */
    p = put_be16(p, (unsigned)hello_len);
    p = put_be16(p, 0x0303);
    fill_random(g, p, 32);
    p += 32;
    p = put8(p, 0); /* empty session id */
    p = put_be16(p, 4);
    p = put_be16(p, 0x1301); /* TLS_AES_128_GCM_SHA256 */
    p = put_be16(p, 0xc02f); /* ECDHE_RSA_AES_128_GCM */
    p = put8(p, 1);
    p = put8(p, 0); /* null compression */
    p = put_be16(p, (unsigned)ext_len);
    put_hello_extensions(p, name, name_len);
    packet_finish(g, &pk);
    g->n.tls_hellos++;
}

/* ---- generator -------------------------------------------------------- */

/*
 * An HTTP draw yields two packets with --responses, so its per-draw chance q
 * is chosen for HTTP to be h of all packets: 2q / (1 + q) = h. The other
 * shares scale by (1 + q), the expected packets per draw.
 */
static void gen_set_odds(struct gen *g)
{
    double h = g->opt.http_share / 100.0;
    double q = g->opt.responses ? h / (2.0 - h) : h;
    double per_draw = g->opt.responses ? 1.0 + q : 1.0;

    g->odds_http = q;
    g->odds_dns = g->opt.dns_share / 100.0 * per_draw;
    g->odds_tls = g->opt.tls_share / 100.0 * per_draw;
}

static void gen_init(struct gen *g)
{
    g->rng = g->opt.seed;
    g->frag_rng = g->opt.seed ^ 0x66726167u;
    gen_set_odds(g);
    g->cutoff = g->opt.count / 3;
    flow_table_init(g, &g->bg, g->opt.flows, false);
    flow_table_init(g, &g->http, g->opt.http_flows, true);
    out_open(g);
}

static void gen_step(struct gen *g)
{
    double u = rng_unit(g);

    if (u < g->odds_http)
        emit_http(g);
    else if (u < g->odds_http + g->odds_dns)
        emit_dns(g);
    else if (u < g->odds_http + g->odds_dns + g->odds_tls)
        emit_tls(g);
    else
        emit_background(g);
}

static void print_summary(const struct gen *g)
{
    uint64_t first_sec, last_sec;
    uint32_t first_frac, last_frac;
    uint32_t scale = g->opt.ns ? 1 : 1000; /* show what the file holds */

    packet_time(g, 0, &first_sec, &first_frac);
    packet_time(g, g->n.packets - 1, &last_sec, &last_frac);
    fprintf(stderr,
            "{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"background\":%" PRIu64
            ",\"http_requests\":%" PRIu64 ",\"http_responses\":%" PRIu64 ",\"dns_queries\":%" PRIu64
            ",\"tls_hellos\":%" PRIu64 ",\"ipv6\":%" PRIu64 ",\"first_ts\":%" PRIu64 ".%09" PRIu32
            ",\"last_ts\":%" PRIu64 ".%09" PRIu32 "}\n",
            g->n.packets, g->n.bytes, g->n.background, g->n.http_requests, g->n.http_responses,
            g->n.dns_queries, g->n.tls_hellos, g->n.ipv6, first_sec, first_frac * scale, last_sec,
            last_frac * scale);
    if (g->opt.fragment || g->opt.segment || g->opt.split_at || g->opt.split_every)
        fprintf(stderr, "{\"frames\":%" PRIu64 ",\"fragmented\":%" PRIu64
                ",\"fragments\":%" PRIu64 ",\"segmented\":%" PRIu64 ",\"segments\":%" PRIu64
                "}\n", g->n.frames, g->n.fragmented, g->n.fragments, g->n.segmented,
                g->n.segments);
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *to)
{
    fputs("Usage: dati-gen [options] -o FILE      (FILE \"-\" = stdout)\n"
          "Write a deterministic pcap of the dati lab traffic mix.\n"
          "\n"
          "  -o, --output FILE      output pcap file, \"-\" for stdout\n"
          "  -n, --count N          packets in total (default 100000)\n"
          "  -s, --seed N           PRNG seed (default 1)\n"
          "      --http-share PCT   percent of packets that are HTTP GET requests\n"
          "                         (and responses, with --responses) (default 1.4)\n"
          "      --dns-share PCT    percent that are DNS queries over UDP (default 0)\n"
          "      --tls-share PCT    percent that are TLS ClientHellos (default 0)\n"
          "      --ipv6-share PCT   percent of flows that use IPv6 (default 0)\n"
          "      --flows N          distinct background TCP flows (default 1000)\n"
          "      --http-flows N     distinct HTTP client flows (default 1000)\n"
          "      --rate PPS         packets per second for timestamps (default 100000)\n"
          "      --start SEC        epoch seconds of the first packet\n"
          "                         (default 1700000000)\n"
          "      --stop-early PCT   percent of flows silent after the first third\n"
          "                         of the file (default 0)\n"
          "      --responses        follow each HTTP request with a 200 OK response\n"
          "      --vlan ID          tag every frame with 802.1Q VID 1..4094\n"
          "      --ns               nanosecond pcap timestamps\n"
          "      --frame-size N     background frames of exactly N bytes (64..1518)\n"
          "      --round-robin      background packets visit the flows in turn\n"
          "      --services         HTTP hosts, DNS names and TLS server names of\n"
          "                         public services (youtube.com, ...) instead of\n"
          "                         example.test ones (addresses do not change)\n"
          "      --fragment N       cut IP datagrams whose payload exceeds N bytes (a\n"
          "                         multiple of 8) into fragments of N; the datagrams and\n"
          "                         their times are those of the run without it\n"
          "      --frag-order O     in (default), reverse or shuffle\n"
          "      --frag-dup         every fragment twice\n"
          "      --frag-conflict    a datagram's first fragment again, other bytes\n"
          "      --frag-overlap     a fragment across the first two of each datagram\n"
          "      --frag-drop-last PCT  percent of cut datagrams missing their last piece\n"
          "      --segment N        cut TCP payloads longer than N bytes into segments of N\n"
          "      --split-at K       cut every TCP payload longer than K in two at byte K\n"
          "      --split-every      cut the n-th TCP payload of a length in two at byte\n"
          "                         1 + n mod (length - 1): every position in turn\n"
          "      --seg-order O      in (default), reverse, or shuffle (the first one first)\n"
          "      --seg-dup          every segment twice\n"
          "      --seg-conflict     a segment across each cut, with other bytes\n"
          "      --seg-drop-last PCT  percent of cut payloads missing their last segment\n"
          "  -h, --help             show this help\n"
          "\n"
          "Addresses: IPv4 198.18.0.0/15, IPv6 2001:2::/48. A JSON summary line is\n"
          "printed on stderr.\n",
          to);
}

static uint64_t parse_uint(const char *opt, const char *arg, uint64_t min, uint64_t max)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        fail_usage("%s: expected an integer in %" PRIu64 "..%" PRIu64 ", got '%s'", opt, min, max,
                   arg);
    return v;
}

static double parse_percent(const char *opt, const char *arg)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(arg, &end);
    if (end == arg || *end != '\0' || errno != 0 || !isfinite(v) || v < 0.0 || v > 100.0)
        fail_usage("%s: expected a percentage 0..100, got '%s'", opt, arg);
    return v;
}

enum {
    OPT_HTTP_SHARE = 256,
    OPT_DNS_SHARE,
    OPT_TLS_SHARE,
    OPT_IPV6_SHARE,
    OPT_FLOWS,
    OPT_HTTP_FLOWS,
    OPT_RATE,
    OPT_START,
    OPT_STOP_EARLY,
    OPT_RESPONSES,
    OPT_VLAN,
    OPT_NS,
    OPT_ROUND_ROBIN,
    OPT_FRAME_SIZE,
    OPT_SERVICES,
    OPT_FRAGMENT,
    OPT_FRAG_ORDER,
    OPT_FRAG_DUP,
    OPT_FRAG_CONFLICT,
    OPT_FRAG_OVERLAP,
    OPT_FRAG_DROP_LAST,
    OPT_SEGMENT,
    OPT_SPLIT_AT,
    OPT_SEG_ORDER,
    OPT_SEG_DUP,
    OPT_SEG_CONFLICT,
    OPT_SEG_DROP_LAST,
    OPT_SPLIT_EVERY,
};

static const struct option long_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"count", required_argument, NULL, 'n'},
    {"seed", required_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {"http-share", required_argument, NULL, OPT_HTTP_SHARE},
    {"dns-share", required_argument, NULL, OPT_DNS_SHARE},
    {"tls-share", required_argument, NULL, OPT_TLS_SHARE},
    {"ipv6-share", required_argument, NULL, OPT_IPV6_SHARE},
    {"flows", required_argument, NULL, OPT_FLOWS},
    {"http-flows", required_argument, NULL, OPT_HTTP_FLOWS},
    {"rate", required_argument, NULL, OPT_RATE},
    {"start", required_argument, NULL, OPT_START},
    {"stop-early", required_argument, NULL, OPT_STOP_EARLY},
    {"responses", no_argument, NULL, OPT_RESPONSES},
    {"vlan", required_argument, NULL, OPT_VLAN},
    {"ns", no_argument, NULL, OPT_NS},
    {"round-robin", no_argument, NULL, OPT_ROUND_ROBIN},
    {"frame-size", required_argument, NULL, OPT_FRAME_SIZE},
    {"services", no_argument, NULL, OPT_SERVICES},
    {"fragment", required_argument, NULL, OPT_FRAGMENT},
    {"frag-order", required_argument, NULL, OPT_FRAG_ORDER},
    {"frag-dup", no_argument, NULL, OPT_FRAG_DUP},
    {"frag-conflict", no_argument, NULL, OPT_FRAG_CONFLICT},
    {"frag-overlap", no_argument, NULL, OPT_FRAG_OVERLAP},
    {"frag-drop-last", required_argument, NULL, OPT_FRAG_DROP_LAST},
    {"segment", required_argument, NULL, OPT_SEGMENT},
    {"split-at", required_argument, NULL, OPT_SPLIT_AT},
    {"split-every", no_argument, NULL, OPT_SPLIT_EVERY},
    {"seg-order", required_argument, NULL, OPT_SEG_ORDER},
    {"seg-dup", no_argument, NULL, OPT_SEG_DUP},
    {"seg-conflict", no_argument, NULL, OPT_SEG_CONFLICT},
    {"seg-drop-last", required_argument, NULL, OPT_SEG_DROP_LAST},
    {NULL, 0, NULL, 0},
};

static void apply_option(struct options *o, int c, const char *arg)
{
    switch (c) {
    case 'o':
        o->output = arg;
        break;
    case 'n':
        o->count = parse_uint("--count", arg, 1, MAX_COUNT);
        break;
    case 's':
        o->seed = parse_uint("--seed", arg, 0, UINT64_MAX);
        break;
    case OPT_HTTP_SHARE:
        o->http_share = parse_percent("--http-share", arg);
        break;
    case OPT_DNS_SHARE:
        o->dns_share = parse_percent("--dns-share", arg);
        break;
    case OPT_TLS_SHARE:
        o->tls_share = parse_percent("--tls-share", arg);
        break;
    case OPT_IPV6_SHARE:
        o->ipv6_share = parse_percent("--ipv6-share", arg);
        break;
    case OPT_FLOWS:
        o->flows = parse_uint("--flows", arg, 1, MAX_FLOWS);
        break;
    case OPT_HTTP_FLOWS:
        o->http_flows = parse_uint("--http-flows", arg, 1, MAX_FLOWS);
        break;
    case OPT_RATE:
        o->rate = parse_uint("--rate", arg, 1, MAX_RATE);
        break;
    case OPT_START:
        o->start = parse_uint("--start", arg, 0, UINT32_MAX);
        break;
    case OPT_STOP_EARLY:
        o->stop_early = parse_percent("--stop-early", arg);
        break;
    case OPT_SERVICES:
        o->services = true;
        break;
    case OPT_RESPONSES:
        o->responses = true;
        break;
    case OPT_VLAN:
        o->vlan = (unsigned)parse_uint("--vlan", arg, 1, 4094);
        break;
    case OPT_NS:
        o->ns = true;
        break;
    case OPT_ROUND_ROBIN:
        o->round_robin = true;
        break;
    case OPT_FRAGMENT:
        o->fragment = (unsigned)parse_uint("--fragment", arg, 8, 1480);
        if (o->fragment % 8)
            fail_usage("--fragment: a multiple of 8, got '%s'", arg);
        break;
    case OPT_FRAG_ORDER:
    case OPT_SEG_ORDER: {
        int *order = c == OPT_FRAG_ORDER ? &o->frag_order : &o->seg_order;
        if (strcmp(arg, "in") == 0)
            *order = FRAG_IN;
        else if (strcmp(arg, "reverse") == 0)
            *order = FRAG_REVERSE;
        else if (strcmp(arg, "shuffle") == 0)
            *order = FRAG_SHUFFLE;
        else
            fail_usage("%s: in, reverse or shuffle, got '%s'",
                       c == OPT_FRAG_ORDER ? "--frag-order" : "--seg-order", arg);
        break;
    }
    case OPT_SEGMENT:
        o->segment = (unsigned)parse_uint("--segment", arg, 1, 1460);
        break;
    case OPT_SPLIT_AT:
        o->split_at = (unsigned)parse_uint("--split-at", arg, 1, 1460);
        break;
    case OPT_SPLIT_EVERY:
        o->split_every = true;
        break;
    case OPT_SEG_DUP:
        o->seg_dup = true;
        break;
    case OPT_SEG_CONFLICT:
        o->seg_conflict = true;
        break;
    case OPT_SEG_DROP_LAST:
        o->seg_drop_last = parse_percent("--seg-drop-last", arg);
        break;
    case OPT_FRAG_DUP:
        o->frag_dup = true;
        break;
    case OPT_FRAG_CONFLICT:
        o->frag_conflict = true;
        break;
    case OPT_FRAG_OVERLAP:
        o->frag_overlap = true;
        break;
    case OPT_FRAG_DROP_LAST:
        o->frag_drop_last = parse_percent("--frag-drop-last", arg);
        break;
    case OPT_FRAME_SIZE:
        o->frame_size = (unsigned)parse_uint("--frame-size", arg, 64, BG_FRAME_MAX);
        break;
    }
}

static void check_options(const struct options *o)
{
    if (!o->output)
        fail_usage("no output file (use -o FILE, or -o - for stdout)");
    /* Small tolerance so e.g. 33.3 + 33.3 + 33.4 is accepted. */
    if (o->http_share + o->dns_share + o->tls_share > 100.0 + 1e-9)
        fail_usage("--http-share + --dns-share + --tls-share is %g, "
                   "must be <= 100",
                   o->http_share + o->dns_share + o->tls_share);
    /* pcap stores seconds in 32 bits. */
    if (o->start + (o->count - 1) / o->rate > UINT32_MAX)
        fail_usage("--start/--count/--rate: last timestamp does not "
                   "fit the pcap 32-bit seconds field");
}

static void parse_options(int argc, char **argv, struct options *o)
{
    int c;

    *o = (struct options){
        .count = 100000,
        .seed = 1,
        .http_share = 1.4,
        .flows = 1000,
        .http_flows = 1000,
        .rate = 100000,
        .start = 1700000000,
    };
    opterr = 0; /* we print our own messages, then exit 2 */
    while ((c = getopt_long(argc, argv, ":o:n:s:h", long_options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == ':')
            fail_usage("option '%s' needs a value", argv[optind - 1]);
        if (c == '?')
            fail_usage("unknown or malformed option '%s'", argv[optind - 1]);
        apply_option(o, c, optarg);
    }
    if (optind < argc)
        fail_usage("unexpected argument '%s'", argv[optind]);
    check_options(o);
}

int main(int argc, char **argv)
{
    struct gen g = {0};

    parse_options(argc, argv, &g.opt);
    /* A closed pipe must be a write error (exit 1), not a silent kill. */
    signal(SIGPIPE, SIG_IGN);
    gen_init(&g);
    while (g.n.packets < g.opt.count)
        gen_step(&g);
    out_close(&g);
    print_summary(&g);
    free(g.bg.flows);
    free(g.bg.live);
    free(g.http.flows);
    free(g.http.live);
    return 0;
}
