/* reader.c - the reader thread: reads the input, keeps the clock, decodes,
 * counts, and dispatches each packet to the worker that owns its flow
 * (symmetric hash, so both directions meet). Every packet's clock stamp is
 * the reader's clock, which is why flow expiry gives the same records for
 * any number of workers. */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#include "reader.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "readahead.h"
#include "counter.h"
#include "feedback.h"
#include "log.h"
#include "output-json.h"
#include "stats.h"
#include "worker.h"

#define CHECK_EVERY 4096          /* packets between looks at the time and signals */
#define WAIT_SPINS 20000          /* pause loops, some 100 us: waking a thread costs more */

static volatile int stop_requested;   /* sig_atomic_t is int on Linux; shared with output-redis */

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct run {
    const struct config *conf;
    const struct run_options *opt;
    struct pipeline pl;
    struct capture cap;
    struct output_sink sink;
    struct outbuf statbuf;         /* stats records from this thread */
    struct redis_out *stats_redis; /* this thread's connection, with the Redis output */
    struct worker *workers;
    struct feedback *fb;           /* FEEDBACK_CHANNEL: the subscriber thread */
    struct pktq *queues;
    int nworkers;
    int ready_workers;             /* initialised, to be finalised */
    int sink_open;
    int read_thread;               /* the capture reads ahead in its own thread */
    int spins;                     /* pause loops before a wait sleeps */
    struct reader_counters rc;
    /* per read buffer, per worker: queue position just after the last packet
     * from that buffer; the buffer is free once the worker's tail passes it */
    uint32_t fence[READAHEAD_SLOTS][MAX_WORKERS];
    struct stats_source src;
    double started, last_stats, last_progress;
};

static int pipeline_init(struct pipeline *pl, const struct config *conf)
{
    memset(pl, 0, sizeof *pl);
    pl->conf = conf;
    classify_init(&pl->classifier);
    for (int i = 0; i < conf->nfilters; i++) {
        const struct filter_conf *f = &conf->filter[i];
        if (classify_add(&pl->classifier, f->name, f->bpf) < 0)
            return -1;
        pl->filter_name[i] = f->name;
        if (f->nfields)
            pl->record_filters |= 1ull << i;
    }
    return 0;
}

static void report(struct run *r, int final, const char *input_error)
{
    struct stats_totals t;
    stats_sum(&r->src, &t);
    double elapsed = now_s() - r->started;
    if (r->opt->progress)
        fputs("\r\033[K", stderr);
    if (!r->opt->quiet)
        stats_print(stderr, &r->src, &t, elapsed, final);
    if (stats_json(&r->statbuf, &r->src, &t, elapsed, final, input_error) == 0) {
        if (r->stats_redis)
            redis_out_stats(r->stats_redis, r->statbuf.buf, r->statbuf.len - 1, final);
        outbuf_flush(&r->statbuf);
    }
}

static void progress(struct run *r, double now)
{
    uint64_t n = COUNTER_GET(r->rc.packets);
    double pct = r->cap.size ? 100.0 * (double)r->cap.offset / (double)r->cap.size : 0;
    double el = now - r->started;
    fprintf(stderr, "\r\033[Kdati: %5.1f%%  %llu packets  %.0f packets/s", pct,
            (unsigned long long)n, el > 0 ? (double)n / el : 0);
}

/* Periodic work, every CHECK_EVERY packets: statistics and progress. */
static void tick(struct run *r)
{
    double now = now_s();
    if (r->nworkers == 1)
        worker_drain(&r->workers[0]);
    if (r->conf->time_stats && now - r->last_stats >= r->conf->time_stats) {
        r->last_stats = now;
        report(r, 0, NULL);
    }
    if (r->opt->progress && now - r->last_progress >= 0.5) {
        r->last_progress = now;
        progress(r, now);
    }
}

/* Reads everything; returns 1 at the clean end, 0 when stopped, -1 on damage. */
static int read_loop(struct run *r, uint64_t *clock_out)
{
    struct packet pkt;
    int linktype, last_linktype = -1;
    uint16_t slot = 0;
    uint64_t clock = 0, frame = 0;
    int rc;
    memset(&pkt, 0, sizeof pkt);
    for (;;) {
        /* between packets, so that a stop never leaves one half-counted */
        if (frame % CHECK_EVERY == 0 && frame) {
            tick(r);
            if (stop_requested || r->sink.error) {
                rc = 0;
                break;
            }
        }
        if ((rc = capture_next(&r->cap, &pkt, &linktype)) <= 0)
            break;
        pkt.frame = ++frame;
        if (pkt.ts > clock)
            clock = pkt.ts;
        pkt.clock = clock;
        COUNTER_INC(r->rc.packets);
        COUNTER_ADD(r->rc.bytes, pkt.wirelen);
        if (linktype != last_linktype && decode_linktype_supported(linktype)) {
            int s = classify_link_slot(&r->pl.classifier, linktype);
            if (s >= 0) {
                last_linktype = linktype;
                slot = (uint16_t)s;
            }
        }
        enum decode_result res = linktype == last_linktype ? decode_packet(&pkt, linktype)
                                                           : DECODE_ERR_LINKTYPE;
        COUNTER_INC(r->rc.decode[res]);
        if (decode_is_error(res))
            continue;
        pkt.link_slot = slot;
        if (r->nworkers == 1) {
            worker_process(&r->workers[0], &pkt);
            continue;
        }
        /* the high bits pick the worker: the flow table uses the low ones */
        int w = (pkt.flags & PKT_HAS_KEY)
                    ? (int)(((uint64_t)pkt.hash * (uint32_t)r->nworkers) >> 32) : 0;
        *pktq_reserve(&r->queues[w]) = pkt;
        pktq_commit(&r->queues[w]);
        r->fence[r->cap.slot][w] = r->queues[w].head_local;
    }
    *clock_out = clock;
    if (rc < 0)
        return -1;
    return rc == 0 && !stop_requested && !r->sink.error ? 1 : 0;
}

/* Capture callbacks: an input buffer is free once every worker's queue tail has
 * passed the last packet from it; before the capture waits for input, hand
 * the workers everything queued so far. */
static int buffer_free(void *ctx, unsigned slot)
{
    struct run *r = ctx;
    for (int w = 0; w < r->nworkers; w++)
        if (!pktq_consumed(&r->queues[w], r->fence[slot][w]))
            return 0;
    /* a fence left behind would compare wrongly after 2^31 more packets */
    for (int w = 0; w < r->nworkers; w++)
        r->fence[slot][w] = r->queues[w].head_local;
    return 1;
}

static void tick(struct run *r);

/* The capture waits for input: hand the workers what is queued, write out
 * records that have waited long enough, keep the statistics on time, and
 * tell it to give up when dati is being stopped. */
static int on_input_wait(void *ctx)
{
    struct run *r = ctx;
    if (r->nworkers > 1)
        for (int w = 0; w < r->nworkers; w++)
            pktq_publish(&r->queues[w]);
    else
        worker_drain(&r->workers[0]);
    tick(r);
    return stop_requested || __atomic_load_n(&r->sink.error, __ATOMIC_RELAXED);
}

/* CPUs this process may run on (its affinity mask: cpusets, taskset). */
static long usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return sysconf(_SC_NPROCESSORS_ONLN);
}

static int start_feedback(struct run *r)
{
    char err[256];
    if (!r->conf->feedback_channel)
        return 0;
    if (!(r->fb = feedback_start(r->conf, r->workers, r->nworkers, err, sizeof err))) {
        log_error("feedback channel: %s", err);
        return -1;
    }
    r->src.fb = r->fb;
    return 0;
}

static int setup(struct run *r)
{
    const struct config *conf = r->conf;
    char err[256];
    if (pipeline_init(&r->pl, conf) < 0) {
        log_error("too many filters");
        return -1;
    }
    r->nworkers = (int)r->opt->workers;
    /* Threads: this one, the workers when there are several, and a read-ahead
     * thread when a core is left for it. Waits spin before they sleep only
     * when every thread has a core: otherwise spinning steals the core from
     * the thread being waited for. */
    long cpus = r->opt->cpus ? (long)r->opt->cpus : usable_cpus();
    int threads = 1 + (r->nworkers > 1 ? r->nworkers : 0);
    r->read_thread = cpus > threads;
    threads += r->read_thread;
    r->spins = cpus >= threads ? WAIT_SPINS : 0;
    if (output_sink_open(&r->sink, r->opt->output, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    r->sink_open = 1;
    if (outbuf_init(&r->statbuf, &r->sink) < 0)
        return -1;
    if (conf->redis_line && !(r->stats_redis = redis_out_open(conf, err, sizeof err))) {
        log_error("%s", err);
        return -1;
    }
    r->workers = calloc((size_t)r->nworkers, sizeof *r->workers);
    if (!r->workers)
        return -1;
    uint32_t n = (uint32_t)r->nworkers;
    uint32_t max_flows = (conf->max_flows + n - 1) / n;
    uint32_t buckets = ((conf->flow_table_size ? conf->flow_table_size : conf->max_flows) + n - 1) / n;
    for (int i = 0; i < r->nworkers; i++) {
        if (worker_init(&r->workers[i], i, &r->pl, max_flows, buckets, &r->sink, err,
                        sizeof err) < 0) {
            log_error("%s", err);
            return -1;
        }
        r->ready_workers = i + 1;
    }
    r->src = (struct stats_source){&r->rc, r->workers, r->nworkers, &r->pl, NULL};
    if (start_feedback(r) < 0)   /* before the worker threads: they take its queues */
        return -1;
    if (r->nworkers > 1) {
        r->queues = aligned_alloc(64, sizeof *r->queues * (size_t)r->nworkers);
        if (!r->queues)
            return -1;
        for (int i = 0; i < r->nworkers; i++) {
            pktq_init(&r->queues[i], r->spins);
            r->workers[i].q = &r->queues[i];
            if (worker_start(&r->workers[i]) < 0) {
                log_error("cannot start worker thread %d", i);
                for (int j = 0; j < i; j++) {
                    pktq_close(&r->queues[j]);
                    worker_stop(&r->workers[j]);
                }
                free(r->queues);
                r->queues = NULL;
                return -1;
            }
        }
    }
    return 0;
}

static void teardown(struct run *r)
{
    feedback_free(r->fb);
    for (int i = 0; i < r->ready_workers; i++)
        worker_fini(&r->workers[i]);
    free(r->workers);
    free(r->queues);
    outbuf_fini(&r->statbuf);
    redis_out_close(r->stats_redis);
    if (r->sink_open)
        output_sink_close(&r->sink);
    capture_close(&r->cap);
    classify_fini(&r->pl.classifier);
}

int reader_run(const struct config *conf, const struct run_options *opt)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.conf = conf;
    r.opt = opt;
    redis_out_set_stop(&stop_requested);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_stop_signal);   /* before setup: REDIS_RETRY waits there */
    signal(SIGTERM, on_stop_signal);
    if (setup(&r) < 0) {
        teardown(&r);
        return 2;
    }
    r.started = r.last_stats = r.last_progress = now_s();

    uint64_t clock = 0;
    int done = -1;
    struct capture_options copt = {NULL, on_input_wait, &r, r.read_thread, r.spins};
    if (r.nworkers > 1)
        copt.slot_free = buffer_free;
    if (capture_open_file(&r.cap, opt->input, &copt) == 0)
        done = read_loop(&r, &clock);
    enum flow_end why = done == 0 && (stop_requested || r.sink.error) ? FLOW_END_SHUTDOWN
                                                                     : FLOW_END_EOF;
    if (r.nworkers > 1) {
        for (int i = 0; i < r.nworkers; i++)
            pktq_close(&r.queues[i]);
        for (int i = 0; i < r.nworkers; i++)
            worker_stop(&r.workers[i]);
    }
    for (int i = 0; i < r.nworkers; i++)
        worker_finish(&r.workers[i], clock, why);

    const char *input_error = done < 0 ? r.cap.errbuf : NULL;
    feedback_stop(r.fb);   /* before the final report: it counts what was left */
    report(&r, 1, input_error);
    int status = 0;
    if (done < 0) {
        log_error("%s: %s%s", opt->input, r.cap.errbuf,
                  r.rc.packets ? " (the packets before it were processed)" : "");
        status = 1;
    }
    if (r.sink.error) {
        log_error("writing %s: %s", opt->output, strerror(r.sink.error));
        status = 1;
    }
    teardown(&r);
    return status;
}
