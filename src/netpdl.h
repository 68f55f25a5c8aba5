/* netpdl.h - NetPDL protocol descriptions: XML files read once at config
 * load and compiled into flat programs of field steps, then run over an L4
 * payload per packet without allocation. A set (all the descriptions one
 * filter loads) is read-only once loaded; each worker runs it with its own
 * struct netpdl_run. See doc/netpdl.md for the supported subset. */
#ifndef DATI_NETPDL_H
#define DATI_NETPDL_H

#include <stdint.h>
#include <stdio.h>

#include "bytes.h"

#define NETPDL_MAX_PROTOS 32    /* per set: one bit each in netpdl_run.done */
#define NETPDL_MAX_FIELDS 256   /* per set, all protocols together */

struct netpdl_set;

/* A field's value in the current packet: offset and length in the payload. */
struct netpdl_span {
    uint32_t off, len;
};

/* Per-worker state for one packet: which protocols ran, what they found. */
struct netpdl_run {
    const struct netpdl_set *set;
    const uint8_t *payload;
    uint32_t len;
    uint32_t done;                          /* bit per protocol: program ran */
    uint8_t present[NETPDL_MAX_FIELDS];
    struct netpdl_span val[NETPDL_MAX_FIELDS];
    /* made on the worker's first regex, kept until netpdl_run_fini() */
    void *match_data;                       /* pcre2_match_data */
    void *match_ctx;                        /* pcre2_match_context: limits, JIT stack */
    void *jit_stack;                        /* pcre2_jit_stack */
    uint64_t regex_errors;                  /* searches that failed (limit, JIT stack):
                                             * COUNTER_*, read by the stats thread */
};

enum netpdl_show {
    NETPDL_SHOW_BYTES,
    NETPDL_SHOW_NUMBER,
    NETPDL_SHOW_DNSNAME   /* showtemplate="DNSName": the span is where the name starts */
};
#define NETPDL_MAX_DNSNAMES 8   /* DNSName fields per set: the text is made per packet */

struct netpdl_set *netpdl_set_create(void);
void netpdl_set_destroy(struct netpdl_set *s);

/* Reads the description at path (named `name` in messages) into the set.
 * Every error is written to errs (may be NULL) as "name:line: reason".
 * Returns the number of errors; 0 when loaded, -1 for out of memory. On
 * errors the set is left as it was before the call. */
int netpdl_set_load(struct netpdl_set *s, const char *path, const char *name, FILE *errs);

/* The same from memory (len bytes). */
int netpdl_set_load_mem(struct netpdl_set *s, const char *text, size_t len, const char *name,
                        FILE *errs);

/* The slot of field "<protocol>.<field>", or -1. */
int netpdl_set_lookup(const struct netpdl_set *s, const char *name);

int netpdl_set_nfields(const struct netpdl_set *s);

/* Marks a slot as one the filter's records use. Once any slot is marked,
 * pattern fields that are neither marked nor named in an expression are not
 * searched (they move no offset, so nothing else changes). */
void netpdl_set_want(struct netpdl_set *s, int slot);
/* "<protocol>.<field>" of a slot. */
const char *netpdl_field_name(const struct netpdl_set *s, int slot);

/* Starts a packet: nothing has run yet. set may be NULL (no descriptions). */
void netpdl_run_begin(struct netpdl_run *r, const struct netpdl_set *set, const uint8_t *payload,
                      uint32_t len);

/* The value of a slot in the current packet, running its protocol's program
 * the first time one of its fields is asked for. Returns 1 and fills span
 * (and, for number fields, *num) when present, 0 when absent. */
int netpdl_field(struct netpdl_run *r, int slot, struct netpdl_span *span, uint64_t *num,
                 enum netpdl_show *show);

/* Frees what the run made (its regex match data, context and JIT stack). */
void netpdl_run_fini(struct netpdl_run *r);

#endif
