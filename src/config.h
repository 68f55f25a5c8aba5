/* config.h - the configuration file, in the seed's syntax: one "KEYWORD value"
 * per line, '#' starts a comment line, FILTER_NAME opens a filter block that
 * BPF, FIELDS, TAP_IF, PROTOCOL_DEF and REDIS_CHANNEL/REDIS_EXPIRE belong to.
 * Loaded once by the main thread; read-only afterwards. */
#ifndef DATI_CONFIG_H
#define DATI_CONFIG_H

#include <stdint.h>
#include <stdio.h>

struct netpdl_set;

#define CONFIG_MAX_FILTERS 64
#define CONFIG_MAX_FIELDS 64
#define CONFIG_MAX_TAPS 64
#define CONFIG_MAX_APPS 32
#define CONFIG_MAX_IFNAMES 16
#define CONFIG_MAX_SIZE (16u << 20)   /* bytes: a config file is not a data set */

struct filter_conf {
    char *name;
    char *bpf;
    int line;                          /* of FILTER_NAME, for messages */
    int bpf_line;                      /* of BPF, 0 when there is none */
    int nfields;
    int field_id[CONFIG_MAX_FIELDS];   /* enum field_id */
    char *field_key[CONFIG_MAX_FIELDS];/* the name as written: the record's key */
    int uses_http;                     /* some field needs the HTTP parser */
    int ntaps;
    char *tap_if[CONFIG_MAX_TAPS];
    int tap_line;
    int tap_round_robin;               /* TAP_BALANCE roundrobin (the seed's); default: by flow */
    char *redis_channel;               /* default: the filter name */
    char *redis_prefix;                /* record keys: <prefix><id>; default "dati:rec:" */
    int redis_expire;                  /* seconds */
    struct netpdl_set *netpdl;         /* PROTOCOL_DEF descriptions, or NULL */
    int napps;                         /* APP: nDPI names the flow must have (app.h) */
    struct { uint16_t master, app; } app[CONFIG_MAX_APPS];  /* master 0: either id */
    int app_line;
    int uses_app;                      /* FIELDS names "app" */
};

struct config {
    char *path;
    int nfilters;
    struct filter_conf filter[CONFIG_MAX_FILTERS];
    int nifnames;
    char *ifname[CONFIG_MAX_IFNAMES];
    int ifname_line;
    /* live capture (AF_PACKET TPACKET_V3), per worker and interface */
    unsigned ring_block_size;          /* bytes */
    unsigned ring_blocks;
    unsigned ring_block_timeout_ms;
    unsigned snaplen;                  /* 0: whole packets */
    int ring_line;                     /* of the last RING_BLOCK_SIZE or RING_BLOCKS */
    int promisc;
    unsigned time_stats;               /* seconds between statistics; 0: only at exit */
    unsigned pkt_ttl;                  /* flow idle timeout, seconds */
    unsigned max_flows;                /* flows in the table, all workers together */
    unsigned flow_table_size;          /* flow index slots, all workers (at least 2 x max_flows); 0: = max_flows */
    unsigned workers;                  /* 0: not set (the command line decides) */
    char *output;                      /* JSON lines destination, "-" for stdout */
    /* Redis (parsed and validated; delivered by the Redis output) */
    char *redis_sock, *redis_host, *redis_auth, *session_channel;
    unsigned redis_port, redis_db, redis_pipeline;
    int redis_stream;                  /* REDIS_MODE stream: XADD instead of hash + PUBLISH */
    int redis_spublish;                /* REDIS_PUBSUB sharded: SPUBLISH on channel shards */
    int redis_pubsub_line;
    unsigned redis_maxlen;             /* streams keep about this many entries */
    unsigned redis_flow_expire;        /* > 0: flow records also as hashes with this TTL, s */
    unsigned redis_retry;              /* > 0: at start, retry an unreachable Redis this long, s */
    /* REDIS_CLUSTER: seed nodes, "host:port" each; NULL: one Redis */
    char *redis_cluster[16];
    int redis_ncluster;
    unsigned redis_stream_shards;      /* stream mode: each channel over this many keys */
    unsigned redis_wait_replicas;      /* cluster: WAIT for this many replicas per pipeline */
    unsigned redis_wait_ms;            /* and for this long at most, ms */
    int redis_wait_line;
    /* Feedback channel (feedback.h): analyzers tag, watch and ignore flows */
    char *feedback_channel;            /* NULL: no feedback subscriber */
    char *feedback_reply;              /* acknowledgements; default <feedback_channel>:reply */
    int feedback_line;
    unsigned flow_state_interval;      /* > 0: live dati:flow:<id> hashes refreshed this often, s */
    char *flow_events;                 /* channel of flow start events; NULL: none */
    int flow_events_line;
    unsigned active_timeout;           /* > 0: interim flow records of long flows, s */
    unsigned record_seq;               /* 1: records carry "worker" and a per-worker "seq" */
    unsigned flow_features;            /* > 0: flow records carry features.h's, this many SPLT */
    unsigned reassembly;               /* 1: IP fragments reassembled (defrag.h) */
    unsigned defrag_timeout;           /* s of packet time from a datagram's first fragment */
    unsigned defrag_memcap;            /* bytes of fragments held, all workers */
    unsigned defrag_max_datagrams;     /* datagrams in reassembly at once, all workers */
    unsigned defrag_max_size;          /* largest IP payload reassembled, bytes */
    unsigned reassembly_memcap;        /* bytes of TCP message buffers, all workers (stream.h) */
    unsigned classify;                 /* 1: nDPI names every flow (app.h) */
    unsigned classify_max_flows;       /* nDPI flow states at once, all workers together */
    int classify_line;
    /* IPFIX export (ipfix.h) */
    char *ipfix_collector;             /* host:port; NULL: no export */
    int ipfix_tcp;                     /* IPFIX_TRANSPORT tcp */
    unsigned ipfix_domain;             /* observation domain id */
    unsigned ipfix_refresh_s;          /* UDP: templates again after this many seconds, 0: never */
    unsigned ipfix_refresh_msgs;       /* and after this many messages, 0: never */
    /* PROBE_NAME: in every record and in dati:stats:<probe>; default, with
     * REDIS_CLUSTER, the host name; "": none (the records as before) */
    char probe_name[64];
    /* HTTP_LISTEN: metrics and the live page (http.h); NULL: off */
    char *http_listen;                 /* host:port; a bare port is on loopback */
    int output_line;                   /* of OUTPUT */
    int redis_line;
};

/* Parses text (len bytes, named `name` in messages). Every error is written to
 * errs as "name:line: message: 'text'"; all of them, not just the first.
 * Returns the config, or NULL when there was any error (*nerrors says how
 * many; -1 for out of memory). */
struct config *config_parse(const char *name, const char *text, size_t len, FILE *errs,
                            int *nerrors);

/* Reads and parses a file; I/O errors are reported like parse errors. */
struct config *config_load(const char *path, FILE *errs, int *nerrors);

/* The built-in configuration used without -c: HTTP requests, DNS queries,
 * TLS ClientHello server names. */
struct config *config_default(void);
extern const char config_default_text[];

void config_free(struct config *c);

#endif
