/* ipfix-record.c - dati's two templates (IPv4, IPv6) and their data
 * records. A biflow per RFC 5103: source is the flow's client, the forward
 * counters are client to server, the reverse ones (enterprise 29305) server
 * to client; the filters and tags are strings of dati's own (enterprise
 * IPFIX_PEN_DATI), the application nDPI named is IANA's applicationName. Numbers are big-endian, as the wire wants them. */
#include "ipfix-record.h"

#include <string.h>

#include "ipfix.h"

enum { VARLEN = 65535 };

/* One element of the templates, in record order. len 0: the address
 * length of the family (4 or 16); id4/id6: its id for each family. */
static const struct element {
    uint16_t id4, id6, len;
    uint32_t pen;                  /* 0: IANA's registry */
} elements[] = {
    {152, 152, 8, 0},              /* flowStartMilliseconds */
    {153, 153, 8, 0},              /* flowEndMilliseconds */
    {8, 27, 0, 0},                 /* sourceIPv4Address / sourceIPv6Address: the client */
    {12, 28, 0, 0},                /* destinationIPv4Address / destinationIPv6Address */
    {7, 7, 2, 0},                  /* sourceTransportPort */
    {11, 11, 2, 0},                /* destinationTransportPort */
    {4, 4, 1, 0},                  /* protocolIdentifier */
    {1, 1, 8, 0},                  /* octetDeltaCount: client to server */
    {2, 2, 8, 0},                  /* packetDeltaCount */
    {1, 1, 8, IPFIX_PEN_REVERSE},  /* reverse octetDeltaCount: server to client */
    {2, 2, 8, IPFIX_PEN_REVERSE},  /* reverse packetDeltaCount */
    {136, 136, 1, 0},              /* flowEndReason */
    {148, 148, 8, 0},              /* flowId: dati's flow id */
    {239, 239, 1, 0},              /* biflowDirection: 1, initiator (source is the client) */
    {1, 1, VARLEN, IPFIX_PEN_DATI},/* dati filters: names of the filters that matched */
    {2, 2, VARLEN, IPFIX_PEN_DATI},/* dati tags: the flow's tags (feedback channel) */
    {96, 96, VARLEN, 0},           /* applicationName: CLASSIFY's name of the flow, or empty */
};
#define NELEMENTS (sizeof elements / sizeof elements[0])

static uint8_t *put8(uint8_t *p, uint8_t v) { *p = v; return p + 1; }
static uint8_t *put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; return p + 2; }
static uint8_t *put32(uint8_t *p, uint32_t v) { return put16(put16(p, (uint16_t)(v >> 16)), (uint16_t)v); }
static uint8_t *put64(uint8_t *p, uint64_t v) { return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v); }

size_t ipfix_record_templates(uint8_t *out, size_t room)
{
    size_t need = 4 + 2 * (4 + NELEMENTS * 8);
    if (room < need)
        return 0;
    uint8_t *p = put16(out, 2);    /* set id 2: templates */
    p = put16(p, 0);               /* length, below */
    for (int v6 = 0; v6 <= 1; v6++) {
        p = put16(p, v6 ? IPFIX_TEMPLATE_V6 : IPFIX_TEMPLATE_V4);
        p = put16(p, NELEMENTS);
        for (size_t i = 0; i < NELEMENTS; i++) {
            const struct element *e = &elements[i];
            uint16_t id = v6 ? e->id6 : e->id4;
            p = put16(p, e->pen ? (uint16_t)(id | 0x8000) : id);
            p = put16(p, e->len ? e->len : (v6 ? 16 : 4));
            if (e->pen)
                p = put32(p, e->pen);
        }
    }
    put16(out + 2, (uint16_t)(p - out));
    return (size_t)(p - out);
}

uint16_t ipfix_record_template(const struct flow *f)
{
    return f->key.family == 6 ? IPFIX_TEMPLATE_V6 : IPFIX_TEMPLATE_V4;
}

/* flowEndReason (IANA): 1 idle timeout, 2 active timeout, 4 forced end
 * (end of input, dati stopped), 5 lack of resources (evicted). */
static uint8_t end_reason(enum flow_end why)
{
    switch (why) {
    case FLOW_END_IDLE: return 1;
    case FLOW_INTERIM: return 2;
    case FLOW_END_EVICTED: return 5;
    default: return 4;
    }
}

/* A variable-length string: one length byte (the short form), cut at 254. */
static uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
    if (n > 254)
        n = 254;
    *p++ = (uint8_t)n;
    if (n)
        memcpy(p, s, n);
    return p + n;
}

size_t ipfix_record_encode(uint8_t *out, const struct flow *f, const struct ipfix_flow_values *v)
{
    const struct flow_key *k = &f->key;
    int alen = k->family == 6 ? 16 : 4;
    const uint8_t *client = f->client_is_lo ? k->lo_addr : k->hi_addr;
    const uint8_t *server = f->client_is_lo ? k->hi_addr : k->lo_addr;
    uint8_t *p = out;
    p = put64(p, f->first_ts / 1000000u);
    p = put64(p, f->last_ts / 1000000u);
    memcpy(p, client, (size_t)alen);
    p += alen;
    memcpy(p, server, (size_t)alen);
    p += alen;
    p = put16(p, f->client_is_lo ? k->lo_port : k->hi_port);
    p = put16(p, f->client_is_lo ? k->hi_port : k->lo_port);
    p = put8(p, k->proto);
    p = put64(p, v->bytes[FLOW_C2S]);
    p = put64(p, v->packets[FLOW_C2S]);
    p = put64(p, v->bytes[FLOW_S2C]);
    p = put64(p, v->packets[FLOW_S2C]);
    p = put8(p, end_reason(v->why));
    p = put64(p, f->id);
    p = put8(p, 1);
    p = put_str(p, v->filters, v->filterslen);
    p = put_str(p, v->tags, v->tags ? v->tagslen : 0);
    p = put_str(p, v->app, v->app ? v->applen : 0);
    return (size_t)(p - out);
}
