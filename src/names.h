/* names.h - the names the live page lists as "top in the last minute":
 * HTTP hosts, TLS server names and DNS queries, sampled from the field
 * records as they are written. A worker copies a record's name into its
 * own ring (a single-producer queue, dropped and counted when full, never
 * waited for); the statistics thread drains the rings and keeps counts per
 * 10-second slot in a bounded table (names.c), off the packet path. */
#ifndef DATI_NAMES_H
#define DATI_NAMES_H

#include <stdint.h>

struct extract_ctx;
struct outbuf;

enum name_kind { NAME_HTTP_HOST, NAME_TLS_SNI, NAME_DNS_QUERY, NAME_KINDS };

#define NAME_TEXT 62              /* longer names are cut: enough to recognise one */
#define NAME_RING 4096            /* per worker (256 KiB): drained at every statistics
                                   * tick (100 ms live, 4096 packets reading a file) */

struct name_sample {
    uint8_t kind, len;
    char text[NAME_TEXT];
};

struct name_ring {
    uint32_t head __attribute__((aligned(64)));   /* producer: next slot to fill */
    uint64_t sampled, unsampled;                   /* producer's counters */
    uint32_t tail __attribute__((aligned(64)));   /* consumer: next slot to take */
    struct name_sample slot[NAME_RING];
};

/* The kinds (bit per enum name_kind) a filter's FIELDS name, so that a
 * record of a filter that names none costs nothing. */
unsigned names_of_fields(const int *field_ids, int nfields);

/* Worker side: the current record's names of the kinds in `kinds`. */
void names_sample(struct name_ring *r, struct extract_ctx *x, unsigned kinds);

#define TOP_WINDOW_SLOTS 6        /* of TOP_SLOT_S seconds: the last minute */
#define TOP_SLOT_S 10
#define TOP_ENTRIES 512           /* names counted per kind; the least counted goes */
#define TOP_SHOWN 10
#define TOP_EVICT_SCAN 16         /* entries looked at for one to replace */

struct top_entry {
    char text[NAME_TEXT];
    uint8_t len, used;
    int16_t next;                 /* hash chain */
    uint32_t total;
    uint32_t count[TOP_WINDOW_SLOTS];
};

struct top_table {
    struct top_entry e[TOP_ENTRIES];
    int16_t bucket[TOP_ENTRIES * 2];
    int16_t free_list;
    int used;
    int cursor;                   /* where the next eviction looks */
};

struct top_names {
    struct top_table kind[NAME_KINDS];
    int slot;                     /* current TOP_SLOT_S slot */
    double slot_started;
    uint64_t sampled, unsampled;  /* summed over the rings at the last drain */
};

void top_names_init(struct top_names *t, double now);
/* Statistics thread: takes what the rings hold, ages the slots at now. */
void top_names_drain(struct top_names *t, struct name_ring *const *rings, int nrings, double now);
/* The most counted names of a kind, at most TOP_SHOWN, into out; the count. */
int top_names_list(const struct top_names *t, int kind, const struct top_entry **out);
const char *name_kind_field(int kind);   /* "http.host", "tls.sni", "dns.qry.name" */
/* {"window":60,"sampled":N,"unsampled":N,"names":{"http.host":[["a",3],...],...}} */
int top_names_json(struct outbuf *b, const struct top_names *t);

#endif
