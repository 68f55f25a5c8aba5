/* output-json.c - formatting records as JSON lines, straight from packet
 * memory into the worker's output buffer; and the JSON lines output. */
#include "output-json.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "config.h"
#include "counter.h"
#include "app.h"
#include "flow-features.h"
#include "flowtag.h"
#include "stats.h"

int json_raw(struct outbuf *b, const char *s, size_t n)
{
    if (outbuf_room(b, n) < 0)
        return -1;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    return 0;
}

int json_lit(struct outbuf *b, const char *s) { return json_raw(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

static const char hex[] = "0123456789abcdef";

/* The escaped bytes, without the surrounding quotes. */
static int str_body(struct outbuf *b, const uint8_t *s, size_t n)
{
    /* worst case: every byte becomes a 6-character escape */
    if (outbuf_room(b, n * 6) < 0)
        return -1;
    char *o = b->buf + b->len;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(s + i, n - i);
            if (l) {
                memcpy(o, s + i, l);
                o += l;
                i += l;
                continue;
            }
            memcpy(o, "\\udc", 4);   /* a lone byte: U+DC80..U+DCFF */
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
            i++;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        i++;
    }
    b->len = (size_t)(o - b->buf);
    return 0;
}

int json_str(struct outbuf *b, const uint8_t *s, size_t n)
{
    if (json_raw(b, "\"", 1) < 0 || str_body(b, s, n) < 0)
        return -1;
    return json_raw(b, "\"", 1);
}

/* Decimal digits of v, right-aligned in out[20]; returns the count. */
static int u64_digits(uint64_t v, char out[20])
{
    int i = 20;
    do {
        out[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return 20 - i;
}

int json_u64(struct outbuf *b, uint64_t v)
{
    char d[20];
    int n = u64_digits(v, d);
    return json_raw(b, d + 20 - n, (size_t)n);
}

/* Seconds with nine decimals, as Wireshark's frame.time_epoch prints them. */
int json_time(struct outbuf *b, uint64_t ns)
{
    if (json_u64(b, ns / 1000000000u) < 0 || outbuf_room(b, 10) < 0)
        return -1;
    char *o = b->buf + b->len;
    uint32_t frac = (uint32_t)(ns % 1000000000u);
    o[0] = '.';
    for (int i = 9; i >= 1; i--) {
        o[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    b->len += 10;
    return 0;
}

/* Dotted IPv4 into out; returns the length. */
static size_t ipv4_text(const uint8_t *a, char *out)
{
    char *o = out;
    for (int i = 0; i < 4; i++) {
        char d[20];
        int n = u64_digits(a[i], d);
        memcpy(o, d + 20 - n, (size_t)n);
        o += n;
        if (i < 3)
            *o++ = '.';
    }
    return (size_t)(o - out);
}

/* RFC 5952 text: lower-case hex without leading zeros, the longest run of
 * two or more zero groups (the first of equals) as "::", and IPv4-mapped
 * addresses as ::ffff:a.b.c.d. Not inet_ntop: glibc prints ::1:2 as
 * ::0.1.0.2. Returns the length (at most 45). */
static size_t ipv6_text(const uint8_t *a, char *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) {
        memcpy(out, "::ffff:", 7);
        return 7 + ipv4_text(a + 12, out + 7);
    }
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && a[2 * j] == 0 && a[2 * j + 1] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    char *o = out;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *o++ = ':';
            *o++ = ':';
            i += best_len - 1;
            continue;
        }
        if (i && i != best + best_len)
            *o++ = ':';
        unsigned g = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        int started = 0;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned nib = (g >> shift) & 15;
            if (nib || started || shift == 0) {
                *o++ = hex[nib];
                started = 1;
            }
        }
    }
    return (size_t)(o - out);
}

int json_addr(struct outbuf *b, const uint8_t *addr, int len)
{
    char text[48];
    text[0] = '"';
    size_t n = len == 4 ? ipv4_text(addr, text + 1) : ipv6_text(addr, text + 1);
    text[n + 1] = '"';
    return json_raw(b, text, n + 2);
}

static int json_value(struct outbuf *b, const struct field_value *v)
{
    switch (v->kind) {
    case VALUE_UINT:
        return json_u64(b, v->num);
    case VALUE_TIME:
        return json_time(b, v->num);
    case VALUE_ADDR:
        return json_addr(b, v->parts[0].ptr, (int)v->parts[0].len);
    case VALUE_STR:
        break;
    }
    /* a repeated header is one string, its values joined with ',' */
    if (json_raw(b, "\"", 1) < 0)
        return -1;
    for (uint32_t i = 0; i < v->nparts; i++) {
        if ((i && json_raw(b, ",", 1) < 0) || str_body(b, v->parts[i].ptr, v->parts[i].len) < 0)
            return -1;
    }
    return json_raw(b, "\"", 1);
}

/* ,"interface":"eth1" for live packets; nothing for a file */
static int json_iface(struct outbuf *b, int iface)
{
    const char *name = capture_iface_name(iface);
    if (!name)
        return 0;
    int rc = json_lit(b, ",\"interface\":\"");
    rc |= json_lit(b, name);
    return rc | json_lit(b, "\"");
}

int json_record(struct outbuf *b, struct extract_ctx *x, const struct filter_conf *f,
                int filter_index, uint64_t flow_id, unsigned sub)
{
    const struct packet *p = x->pkt;
    size_t start = b->len;
    int rc = json_lit(b, "{\"type\":\"record\",\"id\":");
    rc |= json_u64(b, p->frame * 4096 + (uint64_t)filter_index * 64 + sub);
    rc |= json_lit(b, ",\"frame\":");
    rc |= json_u64(b, p->frame);
    rc |= json_lit(b, ",\"ts\":");
    rc |= json_time(b, p->ts);
    rc |= json_lit(b, ",\"filter\":\"");
    rc |= json_lit(b, f->name);
    rc |= json_lit(b, "\"");
    rc |= json_iface(b, p->iface);
    if (flow_id) {
        rc |= json_lit(b, ",\"flow\":");
        rc |= json_u64(b, flow_id);
    }
    rc |= json_lit(b, ",\"fields\":{");
    int first = 1;
    for (int i = 0; i < f->nfields; i++) {
        struct field_value v;
        if (!extract_field(x, f->field_id[i], &v))
            continue;
        rc |= json_lit(b, first ? "\"" : ",\"");
        rc |= json_lit(b, f->field_key[i]);
        rc |= json_lit(b, "\":");
        rc |= json_value(b, &v);
        first = 0;
    }
    rc |= json_lit(b, "}}\n");
    if (rc)
        b->len = start;   /* out of memory: drop the whole line, the caller counts it */
    return rc ? -1 : 0;
}

static const char *proto_name(uint8_t proto)
{
    switch (proto) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    }
    return NULL;
}

int json_flow(struct outbuf *b, const struct flow *fl, enum flow_end why,
              const char *const *names)
{
    const struct flow_key *k = &fl->key;
    int alen = k->family == 4 ? 4 : 16;
    const uint8_t *client = fl->client_is_lo ? k->lo_addr : k->hi_addr;
    const uint8_t *server = fl->client_is_lo ? k->hi_addr : k->lo_addr;
    uint16_t cport = fl->client_is_lo ? k->lo_port : k->hi_port;
    uint16_t sport = fl->client_is_lo ? k->hi_port : k->lo_port;
    int ports = k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP;
    size_t start = b->len;

    int rc = json_lit(b, "{\"type\":\"flow\",\"flow\":");
    rc |= json_u64(b, fl->id);
    rc |= json_iface(b, fl->iface);
    rc |= json_lit(b, ",\"proto\":");
    const char *pn = proto_name(k->proto);
    if (pn) {
        rc |= json_lit(b, "\"");
        rc |= json_lit(b, pn);
        rc |= json_lit(b, "\"");
    } else {
        rc |= json_u64(b, k->proto);
    }
    rc |= json_lit(b, ",\"client\":");
    rc |= json_addr(b, client, alen);
    if (ports) {
        rc |= json_lit(b, ",\"client_port\":");
        rc |= json_u64(b, cport);
    }
    rc |= json_lit(b, ",\"server\":");
    rc |= json_addr(b, server, alen);
    if (ports) {
        rc |= json_lit(b, ",\"server_port\":");
        rc |= json_u64(b, sport);
    }
    rc |= json_lit(b, ",\"first\":");
    rc |= json_time(b, fl->first_ts);
    rc |= json_lit(b, ",\"last\":");
    rc |= json_time(b, fl->last_ts);
    rc |= json_lit(b, ",\"c2s_packets\":");
    rc |= json_u64(b, fl->packets[FLOW_C2S]);
    rc |= json_lit(b, ",\"c2s_bytes\":");
    rc |= json_u64(b, fl->bytes[FLOW_C2S]);
    rc |= json_lit(b, ",\"s2c_packets\":");
    rc |= json_u64(b, fl->packets[FLOW_S2C]);
    rc |= json_lit(b, ",\"s2c_bytes\":");
    rc |= json_u64(b, fl->bytes[FLOW_S2C]);
    rc |= json_lit(b, ",\"filters\":[");
    int first = 1;
    for (int i = 0; i < 64; i++) {
        if (!((fl->filters >> i) & 1))
            continue;
        rc |= json_lit(b, first ? "\"" : ",\"");
        rc |= json_lit(b, names[i]);
        rc |= json_lit(b, "\"");
        first = 0;
    }
    rc |= json_lit(b, "],\"reason\":\"");
    rc |= json_lit(b, flow_end_name(why));
    rc |= json_lit(b, "\"}\n");
    if (rc)
        b->len = start;
    return rc ? -1 : 0;
}

int json_meta_add(struct outbuf *b, const struct record_meta *m)
{
    b->len -= 2;   /* "}\n" */
    int rc = 0;
    if (m->tags)
        rc |= json_lit(b, ",\"tags\":") | json_raw(b, m->tags->json, m->tags->jsonlen);
    if (m->seq)
        rc |= json_lit(b, ",\"worker\":") | json_u64(b, m->worker) | json_lit(b, ",\"seq\":") |
              json_u64(b, m->seq);
    if (m->probe)   /* PROBE_NAME's characters need no escaping */
        rc |= json_lit(b, ",\"probe\":\"") | json_lit(b, m->probe) | json_lit(b, "\"");
    if (m->frag_counts)   /* REASSEMBLY: the flow had IP fragments */
        rc |= json_lit(b, ",\"fragments\":") | json_u64(b, m->frag_counts >> 32) |
              json_lit(b, ",\"reassembled\":") | json_u64(b, m->frag_counts & 0xffffffffu);
    if (m->app)
        rc |= app_json(b, m->app, m->flow_slot);
    if (m->features)
        rc |= features_json(b, m->feature_table, m->features);
    return rc | json_lit(b, "}\n");
}

/* The JSON lines output: one buffer per worker, into the shared sink. */
struct json_output {
    struct output base;
    struct outbuf out;
};

static int json_out_field(struct output *o, struct extract_ctx *x, const struct record_meta *m)
{
    struct outbuf *b = &((struct json_output *)o)->out;
    size_t start = b->len;
    if (json_record(b, x, m->filter, m->filter_index, m->flow_id, m->sub) < 0 ||
        json_meta(b, m) < 0) {
        b->len = start;   /* no half record for the next to be appended to */
        return -1;
    }
    outbuf_end_line(b);
    return 0;
}

static int json_out_flow(struct output *o, const struct flow *fl, enum flow_end why,
                         const struct record_meta *m)
{
    struct outbuf *b = &((struct json_output *)o)->out;
    size_t start = b->len;
    if (json_flow(b, fl, why, m->filter_names) < 0 || json_meta(b, m) < 0) {
        b->len = start;
        return -1;
    }
    outbuf_end_line(b);
    return 0;
}

static void json_out_drain(struct output *o)
{
    struct outbuf *b = &((struct json_output *)o)->out;
    if (b->since)   /* read the clock only when a line waits */
        outbuf_drain(b, outbuf_now());
}

static void json_out_flush(struct output *o) { outbuf_flush(&((struct json_output *)o)->out); }

static void json_out_sum(const struct output *o, struct stats_totals *t)
{
    t->output_lost += COUNTER_GET(((const struct json_output *)o)->out.lost);
}

static void json_out_close(struct output *o)
{
    struct json_output *j = (struct json_output *)o;
    outbuf_flush(&j->out);
    outbuf_fini(&j->out);
    free(j);
}

static const struct output_ops json_ops = {
    .field = json_out_field, .flow = json_out_flow, .drain = json_out_drain,
    .flush = json_out_flush, .sum = json_out_sum, .close = json_out_close,
};

struct output *output_json_open(struct output_sink *sink)
{
    struct json_output *j = calloc(1, sizeof *j);
    if (!j || outbuf_init(&j->out, sink) < 0) {
        free(j);
        return NULL;
    }
    j->base.ops = &json_ops;
    return &j->base;
}
