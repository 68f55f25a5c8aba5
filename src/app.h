/* app.h - CLASSIFY 1: application classification with nDPI (4.2), one
 * detection module per worker. Every flow is fed to nDPI, both directions
 * in order, until nDPI names it for good or gives up (ndpiReader's policy:
 * after 81 TCP or 25 UDP packets, and at the flow's end), then never again.
 * nDPI's per-flow state (688 bytes and what nDPI allocates) lives only while
 * a flow is being classified, in a bounded pool; what stays per flow entry
 * is a 12-byte result, and the host name nDPI found, shared between flows. */
#ifndef DATI_APP_H
#define DATI_APP_H

#include <stddef.h>
#include <stdint.h>

struct packet;
struct outbuf;

enum app_state { APP_NONE, APP_CLASSIFYING, APP_DONE, APP_POOL_FULL };

#define APP_HOST_MAX 80           /* nDPI's host_server_name, with its NUL */
#define APP_NAME_MAX 64           /* "TLS.Google": master.app */
#define APP_COUNT_SLOTS 1024      /* distinct names counted per worker */

/* Per flow entry, beside the flow table (like flow-features.h). */
struct app_result {
    uint16_t master, app;         /* nDPI protocol ids; both 0: Unknown */
    uint16_t category;
    uint8_t confidence;           /* ndpi_confidence_t */
    uint8_t state;                /* enum app_state */
    uint32_t ref;                 /* CLASSIFYING: pool entry; DONE: host entry; 1-based, 0 none */
};

struct app_counters {
    uint64_t classified;          /* given a name (nDPI's, or its guess at the end) */
    uint64_t unknown;             /* given up without one */
    uint64_t pool_full;           /* no room in the pool when the flow began: never classified */
    uint64_t hosts_dropped;       /* a host name not kept: the host table was full */
    uint64_t names_other;         /* classified flows whose name found no counting slot */
    /* flows per name: key = (master << 16 | app) + 1, 0 = free; written by
     * the worker only, key last, so that the statistics can read along */
    uint32_t name_key[APP_COUNT_SLOTS];
    uint64_t name_flows[APP_COUNT_SLOTS];
};

struct app_classifier;

/* One per worker: result slots for max_flows flow entries, pool_size nDPI
 * flow states. NULL with the reason in err. Call from one thread at a time
 * (nDPI's module set-up is not thread-safe). */
struct app_classifier *app_new(uint32_t max_flows, uint32_t pool_size, char *err, size_t errlen);
void app_free(struct app_classifier *a);

/* The flow in slot begins: a pool entry, or APP_POOL_FULL. */
void app_flow_begin(struct app_classifier *a, uint32_t slot);
/* A packet of the flow in slot. Returns 1 when this packet made the
 * flow's result final (the packet an APP filter selects from). */
int app_packet(struct app_classifier *a, uint32_t slot, const struct packet *p);
/* The flow ends: one still being classified is given up (with nDPI's guess). */
void app_flow_end(struct app_classifier *a, uint32_t slot);
/* After the flow's last record: its host name is let go. */
void app_flow_release(struct app_classifier *a, uint32_t slot);

const struct app_result *app_result_of(const struct app_classifier *a, uint32_t slot);

/* ,"app":"TLS.Google","category":"Web","confidence":"DPI","app_host":"..."
 * for a flow record; ,"app":null while still being classified. */
int app_json(struct outbuf *b, const struct app_classifier *a, uint32_t slot);

/* The flow's name as ndpiReader prints it, into buf; its length. */
size_t app_name(const struct app_result *r, char *buf, size_t len);

const struct app_counters *app_counters(const struct app_classifier *a);
/* What the classifier holds: results, pool, host names, nDPI's dissection
 * memory (not the detection module, about 8.5 MB). */
uint64_t app_memory_bytes(const struct app_classifier *a);

/* Names, for configuration and statistics, from a module made once for
 * the process (app_names_init, from the main thread, before any worker).
 * An nDPI name ("TLS.YouTube", "BitTorrent", "Z39.50", "Unknown") to its
 * ids: 0 when known, -1 when not. */
int app_names_init(char *err, size_t errlen);
const char *app_library_version(void);
int app_lookup(const char *name, uint16_t *master, uint16_t *app);
/* name of (master, app) as ndpiReader prints it */
size_t app_pair_name(uint16_t master, uint16_t app, char *buf, size_t len);

#endif
