/* extract.h - built-in fields: the names users put in FIELDS, and the values
 * they have in one packet. Values point into the packet (no copies), but for
 * names made text (dns.qry.name, DNSName fields of descriptions), which live
 * in the context until the next packet; parsers run lazily, once per packet,
 * only for the protocols a filter asks for.
 * Per-worker state only. */
#ifndef DATI_EXTRACT_H
#define DATI_EXTRACT_H

#include <stdint.h>

#include "bytes.h"
#include "netpdl.h"
#include "packet.h"

enum field_id {
    FIELD_FRAME_TIME,
    FIELD_FRAME_NUMBER,
    FIELD_FRAME_LEN,
    FIELD_IP_SRC,
    FIELD_IP_DST,
    FIELD_IP_PROTO,
    FIELD_IP_VERSION,
    FIELD_TCP_SPORT,
    FIELD_TCP_DPORT,
    FIELD_UDP_SPORT,
    FIELD_UDP_DPORT,
    FIELD_HTTP_METHOD,
    FIELD_HTTP_URL,
    FIELD_HTTP_VERSION,
    FIELD_HTTP_HOST,
    FIELD_HTTP_USERAGENT,
    FIELD_HTTP_REFERER,
    FIELD_HTTP_COOKIE,
    FIELD_DNS_ID,
    FIELD_DNS_QR,
    FIELD_DNS_QRY_NAME,
    FIELD_DNS_QRY_TYPE,
    FIELD_DNS_QRY_CLASS,
    FIELD_DNS_COUNT_QUERIES,
    FIELD_TLS_SNI,
    FIELD_APP,    /* CLASSIFY 1: the flow's nDPI name, set by the worker */
    FIELD_COUNT   /* ids from here on: field FIELD_COUNT + k of the filter's descriptions */
};

enum field_layer { LAYER_BASE, LAYER_HTTP, LAYER_DNS, LAYER_TLS };

enum value_kind {
    VALUE_STR,     /* bytes; parts[0..nparts) joined with ',' (repeated headers) */
    VALUE_UINT,    /* num */
    VALUE_ADDR,    /* ptr: 4 or 16 address bytes, len says which */
    VALUE_TIME,    /* num: ns since the epoch */
};

#define VALUE_MAX_PARTS 8

struct field_value {
    enum value_kind kind;
    uint32_t nparts;
    struct slice parts[VALUE_MAX_PARTS];
    uint64_t num;
};

struct field_def {
    const char *name;         /* dati's name, also the record key by default */
    const char *alias;        /* Wireshark's name, or NULL */
    enum field_layer layer;
};

/* The field for a name or alias, or -1. */
int extract_field_lookup(const char *name);
const struct field_def *extract_field_def(int id);

/* One HTTP request within a payload: slices into the packet. */
#define HTTP_HEADERS 4   /* host, user agent, referer, cookie */
struct http_request {
    struct slice method, url, version;
    struct slice header[HTTP_HEADERS][VALUE_MAX_PARTS];
    uint8_t nheader[HTTP_HEADERS];
    uint32_t next;            /* payload offset of a pipelined next request, 0 = none */
    uint32_t end;             /* payload offset after the headers' blank line, 0 = cut */
    uint64_t body;            /* Content-Length, 0 without */
};

#define DNS_NAME_TEXT 256   /* a name is at most 255 octets on the wire, fewer as text */
struct dns_query {
    uint16_t id, qtype, qclass, qdcount;
    uint8_t qr;
    uint8_t has_question;     /* the first question parsed whole */
    uint16_t name_len;
    char name[DNS_NAME_TEXT]; /* dotted text of the first question's name */
};

/* Per-packet extraction state: which parsers have run and what they found. */
struct extract_ctx {
    const struct packet *pkt;
    uint8_t parsed;           /* bit per layer: parser ran */
    uint8_t found;            /* bit per layer: parser found its protocol */
    uint32_t http_off;        /* payload offset of the current HTTP request */
    struct http_request http;
    struct dns_query dns;
    struct slice sni;
    struct slice app;         /* FIELD_APP's value; len 0: not classified (yet) */
    struct netpdl_run pdl;    /* the filter's NetPDL descriptions, if any */
    /* description fields shown as DNS names, as text, made once per packet */
    uint8_t npdl_names;
    struct pdl_name {
        int16_t slot;
        uint16_t len;
        char text[DNS_NAME_TEXT];
    } pdl_name[NETPDL_MAX_DNSNAMES];
};

void extract_begin(struct extract_ctx *x, const struct packet *p);

/* After extract_begin: the descriptions (or NULL) whose fields ids from
 * FIELD_COUNT on name. A context used with descriptions starts zeroed and
 * ends with extract_fini. */
void extract_use_netpdl(struct extract_ctx *x, const struct netpdl_set *set);
void extract_fini(struct extract_ctx *x);

/* Fills v with the field's value in the current packet (and, for HTTP, the
 * current request). Returns 1 when present, 0 when absent. */
int extract_field(struct extract_ctx *x, int id, struct field_value *v);

/* Moves to the next pipelined HTTP request in the same payload.
 * Returns 1 when there is one, 0 otherwise. */
int extract_http_next(struct extract_ctx *x);

/* Protocol parsers, one file each; all return 1 when found, 0 when not. */
int http_parse_request(const uint8_t *p, uint32_t len, uint32_t off, struct http_request *r);
/* Whether p (len bytes, len > 0) may start a request: a method and a space,
 * or the start of a method name cut at len. */
int http_request_start(const uint8_t *p, uint32_t len);
int dns_parse_query(const uint8_t *p, uint32_t len, int over_tcp, struct dns_query *q);
int dns_name_text(const uint8_t *m, uint32_t len, uint32_t off, char *name, uint16_t *name_len,
                  uint32_t *end);
int tls_parse_sni(const uint8_t *p, uint32_t len, struct slice *sni);


#endif
