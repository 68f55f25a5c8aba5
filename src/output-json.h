/* output-json.h - JSON lines: field records, flow records, and the value
 * writers stats.c uses too. Strings are copied straight from the packet with
 * escaping; bytes that are not UTF-8 become \udc80-\udcff ("surrogateescape",
 * PEP 383), so every byte survives and decoders can get them back. */
#ifndef DATI_OUTPUT_JSON_H
#define DATI_OUTPUT_JSON_H

#include <stdint.h>

#include "extract.h"
#include "flow.h"
#include "outbuf.h"
#include "output.h"

struct filter_conf;

/* Value writers; each makes room for itself. Return 0, or -1 when out of memory. */
int json_raw(struct outbuf *b, const char *s, size_t n);
int json_lit(struct outbuf *b, const char *s);
int json_str(struct outbuf *b, const uint8_t *s, size_t n);
int json_u64(struct outbuf *b, uint64_t v);
int json_time(struct outbuf *b, uint64_t ns);
int json_addr(struct outbuf *b, const uint8_t *addr, int len);

/* One field record: the packet's values for the filter's fields. sub is the
 * index of the HTTP request within the packet (pipelining). */
int json_record(struct outbuf *b, struct extract_ctx *x, const struct filter_conf *f,
                int filter_index, uint64_t flow_id, unsigned sub);

/* One flow record; names[i] is filter i's name. */
int json_flow(struct outbuf *b, const struct flow *fl, enum flow_end why,
              const char *const *names);

/* Adds the members a record's meta asks for ("tags", then "worker" and
 * "seq", "probe", "features") to the JSON object just written, which ends
 * in "}\n". */
int json_meta_add(struct outbuf *b, const struct record_meta *m);

static inline int json_meta(struct outbuf *b, const struct record_meta *m)
{
    return m->tags || m->seq || m->probe || m->features || m->app || m->frag_counts
               ? json_meta_add(b, m) : 0;
}

/* JSON lines into sink, through a buffer of the output's own that reaches
 * the sink in whole lines. NULL when out of memory. */
struct output *output_json_open(struct output_sink *sink);

#endif
