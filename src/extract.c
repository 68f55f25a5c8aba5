/* extract.c - the table of built-in fields and the per-packet dispatch that
 * runs each protocol parser at most once. Per-worker state only. */
#include "extract.h"

#include <netinet/in.h>
#include <string.h>

static const struct field_def fields[FIELD_COUNT] = {
    [FIELD_FRAME_TIME] = {"frame.time", "frame.time_epoch", LAYER_BASE},
    [FIELD_FRAME_NUMBER] = {"frame.number", NULL, LAYER_BASE},
    [FIELD_FRAME_LEN] = {"frame.len", NULL, LAYER_BASE},
    [FIELD_IP_SRC] = {"ip.src", "ipv6.src", LAYER_BASE},
    [FIELD_IP_DST] = {"ip.dst", "ipv6.dst", LAYER_BASE},
    [FIELD_IP_PROTO] = {"ip.proto", "ipv6.nxt", LAYER_BASE},
    [FIELD_IP_VERSION] = {"ip.version", NULL, LAYER_BASE},
    [FIELD_TCP_SPORT] = {"tcp.sport", "tcp.srcport", LAYER_BASE},
    [FIELD_TCP_DPORT] = {"tcp.dport", "tcp.dstport", LAYER_BASE},
    [FIELD_UDP_SPORT] = {"udp.sport", "udp.srcport", LAYER_BASE},
    [FIELD_UDP_DPORT] = {"udp.dport", "udp.dstport", LAYER_BASE},
    [FIELD_HTTP_METHOD] = {"http.method", "http.request.method", LAYER_HTTP},
    [FIELD_HTTP_URL] = {"http.url", "http.request.uri", LAYER_HTTP},
    [FIELD_HTTP_VERSION] = {"http.version", "http.request.version", LAYER_HTTP},
    [FIELD_HTTP_HOST] = {"http.host", NULL, LAYER_HTTP},
    [FIELD_HTTP_USERAGENT] = {"http.useragent", "http.user_agent", LAYER_HTTP},
    [FIELD_HTTP_REFERER] = {"http.referer", NULL, LAYER_HTTP},
    [FIELD_HTTP_COOKIE] = {"http.cookie", NULL, LAYER_HTTP},
    [FIELD_DNS_ID] = {"dns.id", NULL, LAYER_DNS},
    [FIELD_DNS_QR] = {"dns.flags.response", NULL, LAYER_DNS},
    [FIELD_DNS_QRY_NAME] = {"dns.qry.name", NULL, LAYER_DNS},
    [FIELD_DNS_QRY_TYPE] = {"dns.qry.type", NULL, LAYER_DNS},
    [FIELD_DNS_QRY_CLASS] = {"dns.qry.class", NULL, LAYER_DNS},
    [FIELD_DNS_COUNT_QUERIES] = {"dns.count.queries", NULL, LAYER_DNS},
    [FIELD_TLS_SNI] = {"tls.sni", "tls.handshake.extensions_server_name", LAYER_TLS},
    [FIELD_APP] = {"app", NULL, LAYER_BASE},
};

int extract_field_lookup(const char *name)
{
    for (int i = 0; i < FIELD_COUNT; i++) {
        if (strcmp(name, fields[i].name) == 0 ||
            (fields[i].alias && strcmp(name, fields[i].alias) == 0))
            return i;
    }
    return -1;
}

const struct field_def *extract_field_def(int id)
{
    return id >= 0 && id < FIELD_COUNT ? &fields[id] : NULL;
}

void extract_begin(struct extract_ctx *x, const struct packet *p)
{
    x->pkt = p;
    x->parsed = 0;
    x->found = 0;
    x->http_off = 0;
    x->app.len = 0;
    x->pdl.set = NULL;
}

/* Descriptions start at the TCP or UDP payload; other packets have none. */
void extract_use_netpdl(struct extract_ctx *x, const struct netpdl_set *set)
{
    const struct packet *p = x->pkt;
    int l4 = (p->flags & PKT_HAS_KEY) &&
             (p->l4_proto == IPPROTO_TCP || p->l4_proto == IPPROTO_UDP);
    netpdl_run_begin(&x->pdl, l4 ? set : NULL, packet_payload(p), l4 ? p->payload_len : 0);
    x->npdl_names = 0;   /* the memo is by slot, and slots are the set's */
}

void extract_fini(struct extract_ctx *x)
{
    netpdl_run_fini(&x->pdl);
}

/* showtemplate="DNSName": the name that starts at off (compression pointers
 * may lead anywhere in the message), as dotted text. Absent when malformed. */
static int pdl_name(struct extract_ctx *x, int slot, uint32_t off, struct field_value *v)
{
    struct pdl_name *n = x->pdl_name;
    int i = 0;
    while (i < x->npdl_names && n[i].slot != slot)
        i++;
    if (i == x->npdl_names) {   /* the first time in this packet */
        uint32_t end;
        if (i == NETPDL_MAX_DNSNAMES)
            return 0;   /* the load refuses more */
        n[i].slot = (int16_t)slot;
        if (dns_name_text(x->pdl.payload, x->pdl.len, off, n[i].text, &n[i].len, &end) < 0)
            n[i].len = 0;
        x->npdl_names++;
    }
    v->parts[0] = (struct slice){(const uint8_t *)n[i].text, n[i].len};
    return n[i].len != 0;
}

static int netpdl_value(struct extract_ctx *x, int slot, struct field_value *v)
{
    struct netpdl_span sp;
    enum netpdl_show show;
    if (!netpdl_field(&x->pdl, slot, &sp, &v->num, &show))
        return 0;
    if (show == NETPDL_SHOW_NUMBER) {
        v->kind = VALUE_UINT;
        return 1;
    }
    v->kind = VALUE_STR;
    v->nparts = 1;
    v->parts[0] = (struct slice){x->pdl.payload + sp.off, sp.len};
    return show == NETPDL_SHOW_DNSNAME ? pdl_name(x, slot, sp.off, v) : 1;
}

/* Runs the layer's parser once per packet; returns whether it found its protocol. */
static int ensure_layer(struct extract_ctx *x, enum field_layer layer)
{
    uint8_t bit = (uint8_t)(1u << layer);
    if (x->parsed & bit)
        return (x->found & bit) != 0;
    x->parsed |= bit;
    const struct packet *p = x->pkt;
    const uint8_t *pl = packet_payload(p);
    int ok = 0;
    switch (layer) {
    case LAYER_BASE:
        ok = 1;
        break;
    case LAYER_HTTP:
        ok = p->l4_proto == IPPROTO_TCP && (p->flags & PKT_HAS_KEY) &&
             http_parse_request(pl, p->payload_len, x->http_off, &x->http);
        break;
    case LAYER_DNS:
        ok = (p->flags & PKT_HAS_KEY) &&
             (p->l4_proto == IPPROTO_UDP || p->l4_proto == IPPROTO_TCP) &&
             dns_parse_query(pl, p->payload_len, p->l4_proto == IPPROTO_TCP, &x->dns);
        break;
    case LAYER_TLS:
        ok = p->l4_proto == IPPROTO_TCP && (p->flags & PKT_HAS_KEY) &&
             tls_parse_sni(pl, p->payload_len, &x->sni);
        break;
    }
    if (ok)
        x->found |= bit;
    return ok;
}

int extract_http_next(struct extract_ctx *x)
{
    if (!ensure_layer(x, LAYER_HTTP) || x->http.next == 0)
        return 0;
    x->http_off = x->http.next;
    x->parsed &= (uint8_t)~(1u << LAYER_HTTP);
    x->found &= (uint8_t)~(1u << LAYER_HTTP);
    return ensure_layer(x, LAYER_HTTP);
}

static int set_str(struct field_value *v, struct slice s)
{
    v->kind = VALUE_STR;
    v->nparts = 1;
    v->parts[0] = s;
    return 1;
}

static int set_uint(struct field_value *v, uint64_t n)
{
    v->kind = VALUE_UINT;
    v->num = n;
    return 1;
}

static int set_header(struct field_value *v, const struct http_request *r, int h)
{
    if (r->nheader[h] == 0)
        return 0;
    v->kind = VALUE_STR;
    v->nparts = r->nheader[h];
    memcpy(v->parts, r->header[h], sizeof(struct slice) * v->nparts);
    return 1;
}

static int base_field(const struct packet *p, int id, struct field_value *v)
{
    int is_ip = p->ip_version != 0;
    int has_ports = (p->flags & PKT_HAS_KEY) != 0;
    switch (id) {
    case FIELD_FRAME_TIME:
        v->kind = VALUE_TIME;
        v->num = p->ts;
        return 1;
    case FIELD_FRAME_NUMBER: return set_uint(v, p->frame);
    case FIELD_FRAME_LEN: return set_uint(v, p->wirelen);
    case FIELD_IP_SRC:
    case FIELD_IP_DST:
        if (!is_ip)
            return 0;
        v->kind = VALUE_ADDR;
        v->nparts = 1;
        v->parts[0].ptr = id == FIELD_IP_SRC ? packet_src_addr(p) : packet_dst_addr(p);
        v->parts[0].len = p->ip_version == 4 ? 4 : 16;
        return 1;
    case FIELD_IP_PROTO: return is_ip ? set_uint(v, p->l4_proto) : 0;
    case FIELD_IP_VERSION: return is_ip ? set_uint(v, p->ip_version) : 0;
    case FIELD_TCP_SPORT:
    case FIELD_TCP_DPORT:
        if (!has_ports || p->l4_proto != IPPROTO_TCP)
            return 0;
        return set_uint(v, id == FIELD_TCP_SPORT ? p->sport : p->dport);
    case FIELD_UDP_SPORT:
    case FIELD_UDP_DPORT:
        if (!has_ports || p->l4_proto != IPPROTO_UDP)
            return 0;
        return set_uint(v, id == FIELD_UDP_SPORT ? p->sport : p->dport);
    }
    return 0;
}

int extract_field(struct extract_ctx *x, int id, struct field_value *v)
{
    if (id >= FIELD_COUNT)
        return netpdl_value(x, id - FIELD_COUNT, v);
    const struct field_def *def = extract_field_def(id);
    if (!def || !ensure_layer(x, def->layer))
        return 0;
    const struct http_request *r = &x->http;
    const struct dns_query *q = &x->dns;
    switch (id) {
    case FIELD_HTTP_METHOD: return set_str(v, r->method);
    case FIELD_HTTP_URL: return set_str(v, r->url);
    case FIELD_HTTP_VERSION: return r->version.len ? set_str(v, r->version) : 0;
    case FIELD_HTTP_HOST: return set_header(v, r, 0);
    case FIELD_HTTP_USERAGENT: return set_header(v, r, 1);
    case FIELD_HTTP_REFERER: return set_header(v, r, 2);
    case FIELD_HTTP_COOKIE: return set_header(v, r, 3);
    case FIELD_DNS_ID: return set_uint(v, q->id);
    case FIELD_DNS_QR: return set_uint(v, q->qr);
    case FIELD_DNS_COUNT_QUERIES: return set_uint(v, q->qdcount);
    case FIELD_DNS_QRY_NAME:
        if (!q->has_question)
            return 0;
        return set_str(v, (struct slice){(const uint8_t *)q->name, q->name_len});
    case FIELD_DNS_QRY_TYPE: return q->has_question ? set_uint(v, q->qtype) : 0;
    case FIELD_DNS_QRY_CLASS: return q->has_question ? set_uint(v, q->qclass) : 0;
    case FIELD_TLS_SNI: return set_str(v, x->sni);
    case FIELD_APP: return x->app.len ? set_str(v, x->app) : 0;
    }
    return base_field(x->pkt, id, v);
}
