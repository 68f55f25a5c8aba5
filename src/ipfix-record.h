/* ipfix-record.h - dati's IPFIX templates and the encoding of one flow
 * record as a data record of them: one list of elements, so that the
 * templates and the records cannot disagree. Pure functions on buffers. */
#ifndef DATI_IPFIX_RECORD_H
#define DATI_IPFIX_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "flow.h"

/* What a data record carries besides the flow's key and times. */
struct ipfix_flow_values {
    uint64_t packets[2], bytes[2];   /* [FLOW_C2S], [FLOW_S2C]: deltas since the last record */
    enum flow_end why;               /* or FLOW_INTERIM */
    const char *filters;             /* "http,dns": the filters that matched */
    size_t filterslen;
    const char *tags;                /* "a,b", or NULL */
    size_t tagslen;
    const char *app;                 /* CLASSIFY: "TLS.Google", or NULL */
    size_t applen;
};

/* The template set (both templates) at out; returns its length, 0 when
 * room is short. */
size_t ipfix_record_templates(uint8_t *out, size_t room);

/* Largest data record: fixed part, both addresses IPv6, three strings of
 * up to 254 bytes (longer ones are cut). */
#define IPFIX_RECORD_MAX (128 + 3 * 258)

/* The template id of f's record (IPv4 or IPv6). */
uint16_t ipfix_record_template(const struct flow *f);

/* Encodes f's data record at out (IPFIX_RECORD_MAX bytes of room); returns
 * its length. */
size_t ipfix_record_encode(uint8_t *out, const struct flow *f, const struct ipfix_flow_values *v);

#endif
