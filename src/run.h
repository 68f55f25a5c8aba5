/* run.h - one run of dati: the pipeline, the workers, the output and the
 * statistics shared by both ways packets arrive: a capture file read by
 * one reader thread (reader.c), or live interfaces read by every worker
 * from its own rings (live.c). */
#ifndef DATI_RUN_H
#define DATI_RUN_H

#include "capture.h"
#include "config.h"
#include "defrag.h"
#include "outbuf.h"
#include "ipfix.h"
#include "redis-cluster.h"
#include "redis-conn.h"
#include "readahead.h"
#include "stats.h"
#include "worker.h"

#define MAX_WORKERS 64
/* rebuilt frames the workers may still be reading: enough that the reader
 * seldom waits (each DEFRAG_FRAME_MAX bytes, of which a datagram touches
 * only what it fills) */
#define DEFRAG_SLOTS 256

struct run_options {
    const char *input;         /* capture file, "-" for stdin; NULL for live capture */
    const char *const *ifnames;/* live interfaces (-i or IFNAME) */
    int nifnames;
    const char *output;        /* JSON lines, "-" for stdout */
    const char *config_path;   /* reread on SIGHUP; NULL: the built-in configuration */
    unsigned workers;
    unsigned cpus;             /* CPUs to plan threads for; 0: those this process may use */
    int progress;              /* draw a progress line on stderr */
    int quiet;                 /* no statistics on stderr */
    int daemonize;             /* -D: detach, log to syslog */
    const char *pidfile;       /* -p */
    const char *user;          /* -u: drop root to this user once everything is open */
};

struct run {
    const struct config *conf;     /* the first configuration: Redis, output, capture */
    const struct run_options *opt;
    struct pipeline *pl;           /* filters and fields in use (replaced by a reload) */
    struct capture cap;            /* the file (reader.c) */
    int input_fd;                  /* the file, opened first; -1 once cap has it */
    struct output_sink sink;
    struct outbuf statbuf;         /* stats records from this thread */
    struct redis_conn *stats_redis;/* this thread's connection, with the Redis output */
    struct ipfix_exporter *ipfix;  /* IPFIX_COLLECTOR: shared by the workers' outputs */
    struct redis_cluster *stats_cluster; /* REDIS_CLUSTER: stats_redis is one of its nodes */
    char stats_key[96];            /* dati:stats, or dati:stats:<probe> */
    struct worker *workers;
    struct feedback *fb;           /* FEEDBACK_CHANNEL: the subscriber thread */
    struct monitor *mon;           /* HTTP_LISTEN: what the server serves, made here */
    struct http_server *http;      /* HTTP_LISTEN: the server's thread */
    int http_fd;                   /* its socket, bound at start; -1: none */
    struct pktq *queues;
    int nworkers;
    int ready_workers;             /* initialised, to be finalised */
    int sink_open;
    int read_thread;               /* the capture reads ahead in its own thread */
    int spins;                     /* pause loops before a wait sleeps */
    struct reader_counters rc;
    /* REASSEMBLY, reading a file: this thread defragments; a rebuilt frame
     * stays in its buffer until its worker's tail passes fence */
    struct defrag *defrag;
    uint8_t *defrag_buf[DEFRAG_SLOTS];
    int defrag_worker[DEFRAG_SLOTS];   /* -1: free */
    uint32_t defrag_fence[DEFRAG_SLOTS];
    unsigned defrag_turn;
    /* per read buffer, per worker: queue position just after the last packet
     * from that buffer; the buffer is free once the worker's tail passes it */
    uint32_t fence[READAHEAD_SLOTS][MAX_WORKERS];
    /* one worker, inline: packets decoded and not yet processed (their
     * buffers, bit per slot, stay held until they are) */
    struct packet batch[WORKER_BATCH];
    uint32_t nbatch;
    uint32_t batch_slots;
    /* live capture */
    struct capture_iface ifaces[CAPTURE_MAX_IFACES];
    struct iface_stats ifstats[CAPTURE_MAX_IFACES];
    uint16_t link_slot[CAPTURE_MAX_IFACES];
    int nifaces;
    struct tap_pool taps;          /* TAP_IF devices of every pipeline so far */
    struct pipeline *retired;      /* pipelines a worker may still use: freed at exit */
    unsigned reloads;
    struct stats_source src;
    double started, last_stats, last_progress;
};

/* Set by SIGINT/SIGTERM (and read by the Redis output while it waits). */
extern volatile int run_stop_requested;
/* Read and set from every thread and from signal handlers: atomic
 * accesses (lock-free, so safe in a handler), never a plain one. */
static inline int run_stopping(void)
{
    return __atomic_load_n(&run_stop_requested, __ATOMIC_RELAXED);
}

static inline void run_request_stop(void)
{
    __atomic_store_n(&run_stop_requested, 1, __ATOMIC_RELAXED);
}

/* Runs dati over opt->input or opt->ifnames. Returns the exit status: 0 when
 * everything was read and written, 1 when the input could not be opened
 * (said in one line, nothing else done), was damaged or failed, or the
 * output failed (what came before is processed and reported), 2 when
 * the run could not start. */
int run_main(const struct config *conf, const struct run_options *opt);

/* The statistics: stderr (unless quiet), a stats record, and Redis. */
void run_report(struct run *r, int final, const char *input_error);

/* Periodic statistics and progress. */
void run_tick(struct run *r);

double run_now(void);

/* A TAP_IF device that is also a capture interface would loop: -1 and why. */
int run_check_taps(const struct run *r, const struct config *conf, char *err, size_t errlen);

/* The feedback subscriber thread, with FEEDBACK_CHANNEL: started before
 * the worker threads (they take its queues) and after -D's fork. */
int run_start_feedback(struct run *r);

/* The HTTP server's thread, with HTTP_LISTEN: after -D's fork and after
 * -u gave root up (its socket was bound at setup, as root). */
int run_start_http(struct run *r);

/* SIGHUP: reload the filters from the configuration file (reload.c). */
void run_reload(struct run *r);

/* Set by SIGHUP and SIGUSR1. */
extern volatile int run_reload_requested, run_stats_requested;

/* The two ways in: each returns like run_main. */
int reader_run(struct run *r);
int live_run(struct run *r);

#endif
