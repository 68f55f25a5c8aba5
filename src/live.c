/* live.c - live capture: every worker reads its own AF_PACKET rings (one per
 * interface, fanned out by flow hash) and processes packets in place; this
 * thread only watches signals, statistics and the workers' health. Flows
 * expire on wall time even when no packet arrives. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counter.h"
#include "daemon.h"
#include "feedback.h"
#include "log.h"
#include "run.h"

#define LIVE_CHECK_EVERY 1024      /* packets between timed work under load */

struct live_worker {
    struct run *r;
    struct worker *w;
    struct capture_options copt;
    int failed;                    /* the capture gave up: an interface is gone */
};

/* The flow clock of live capture: monotonic time, offset once to read as
 * wall time. Flows expire by it, so a step of the wall clock (NTP, an
 * operator) neither expires every flow at once nor holds expiry back;
 * records keep the kernel's timestamps. */
static int64_t clock_offset;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void clock_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    clock_offset = (int64_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) -
                   (int64_t)mono_ns();
}

static uint64_t flow_clock_now(void)
{
    return (uint64_t)((int64_t)mono_ns() + clock_offset);
}

/* Timed work of a worker: wall-clock expiry and the drain timer. Returns
 * nonzero when the worker should stop. */
static int live_timed(void *ctx)
{
    struct live_worker *lw = ctx;
    struct worker *w = lw->w;
    uint64_t now = flow_clock_now();
    if (now > w->clock) {
        w->clock = now;
        flow_table_advance(&w->flows, now);
        if (w->defrag)
            defrag_expire(w->defrag, now);
    }
    worker_take_pipeline(w);
    worker_drain(w);
    return run_stopping() || __atomic_load_n(&lw->r->sink.error, __ATOMIC_RELAXED);
}

static void live_notice(void *ctx, const char *msg)
{
    (void)ctx;
    log_warn("%s", msg);
}

/* A batch of packets from the rings: decoded, then processed together
 * (worker_process_batch starts the loads of the packets ahead). A
 * fragment ends the run before it: the datagram it completes is in the
 * worker's one rebuilt-frame buffer, processed at once. */
static void live_batch(struct live_worker *lw, struct packet *v, const int *linktype, int n)
{
    struct worker *w = lw->w;
    struct run *r = lw->r;
    struct packet whole;
    uint32_t keep = 0;
    for (int i = 0; i < n; i++) {
        struct packet *p = &v[i];
        w->frame += (uint64_t)r->nworkers;
        p->frame = w->frame;
        p->clock = w->clock;   /* moved on by live_timed(), at least every 10 ms */
        COUNTER_INC(w->in.packets);
        COUNTER_ADD(w->in.bytes, p->wirelen);
        enum decode_result res = decode_packet(p, linktype[i]);
        p->link_slot = r->link_slot[p->iface - 1];
        if (w->defrag && (p->flags & PKT_FRAGMENT)) {   /* IPv6: the kernel's defrag is IPv4's */
            COUNTER_INC(w->in.decode[DECODE_FRAGMENT]);
            worker_process_batch(w, v, 0, keep, UINT32_MAX);
            keep = 0;
            struct packet *q = defrag_packet(w->defrag, p, linktype[i], w->defrag_buf, &whole);
            if (q)
                worker_process(w, q);
            continue;
        }
        COUNTER_INC(w->in.decode[res]);
        if (decode_is_error(res))
            continue;
        if (keep != (uint32_t)i)
            v[keep] = *p;   /* only after a packet left out */
        keep++;
    }
    worker_process_batch(w, v, 0, keep, UINT32_MAX);
}

static void *live_worker_main(void *arg)
{
    struct live_worker *lw = arg;
    struct worker *w = lw->w;
    struct packet v[WORKER_BATCH];
    int linktype[WORKER_BATCH], n;
    uint32_t since = 0;
    memset(v, 0, sizeof v);
    while ((n = capture_live_batch(&w->cap, v, linktype, WORKER_BATCH)) > 0) {
        live_batch(lw, v, linktype, n);
        if ((since += (uint32_t)n) >= LIVE_CHECK_EVERY) {
            since = 0;
            if (live_timed(lw))
                break;
        }
    }
    if (w->defrag)   /* what is still incomplete when capture ends is given up */
        defrag_expire(w->defrag, UINT64_MAX);
    if (n < 0) {
        log_error("%s", w->cap.errbuf);
        lw->failed = 1;
    }
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int live_run(struct run *r)
{
    const struct config *c = r->conf;
    struct capture_live_options lo = {
        .block_size = c->ring_block_size,
        .block_count = c->ring_blocks,
        .block_timeout_ms = c->ring_block_timeout_ms,
        .snaplen = c->snaplen,
        .poll_ms = 10,   /* the drain timer and expiry run at least this often */
        .promisc = c->promisc,
        .fanout = 1,
    };
    struct live_worker *lws = calloc((size_t)r->nworkers, sizeof *lws);
    if (!lws)
        return 2;
    int status = 0, started = 0, pidfile_written = 0;
    clock_init();
    if (r->stats_cluster)   /* the statistics' connection(s) never wait either */
        redis_cluster_set_live(r->stats_cluster);
    else if (r->stats_redis)
        redis_conn_set_live(r->stats_redis);
    if (r->ipfix)   /* the run's exporter, shared by the workers' outputs */
        ipfix_set_live(r->ipfix, 1);
    /* every ring first, so that a refusal stops the run before any thread runs */
    for (int i = 0; i < r->nworkers; i++) {
        struct live_worker *lw = &lws[i];
        lw->r = r;
        lw->w = &r->workers[i];
        lw->w->frame = (uint64_t)i + 1 - (uint64_t)r->nworkers;   /* first frame: i + 1 */
        lw->w->clock = flow_clock_now();
        flow_table_prefault(&lw->w->flows);
        lw->copt = (struct capture_options){.idle = live_timed, .ctx = lw, .notice = live_notice};
        if (lw->w->out->ops->set_live)   /* capture never waits for Redis: drops are counted */
            lw->w->out->ops->set_live(lw->w->out);
        if (capture_open_live(&lw->w->cap, r->ifaces, r->nifaces, &lo, &lw->copt) < 0) {
            log_error("%s", lw->w->cap.errbuf);
            status = 2;
            goto out;
        }
    }
    /* Everything that needs root is open: detach (before any thread: a fork
     * keeps only the calling one), say who we are, give root up; then the
     * threads, and the rings may take packets. The parent of -D exits only
     * now, with our status, so a failure here is seen where dati was run. */
    if ((r->opt->daemonize && daemon_detach() < 0) ||
        (r->opt->pidfile && daemon_write_pidfile(r->opt->pidfile) < 0) ||
        (pidfile_written = r->opt->pidfile != NULL,
         r->opt->user && daemon_drop_privileges(r->opt->user) < 0) ||
        run_start_http(r) < 0 || run_start_feedback(r) < 0) {
        status = 2;
        goto out;
    }
    for (; started < r->nworkers; started++)
        if (pthread_create(&r->workers[started].thread, NULL, live_worker_main, &lws[started])) {
            log_error("cannot start worker thread %d", started);
            status = 2;
            break;
        }
    for (int i = 0; i < r->nworkers && status == 0; i++)
        if (capture_live_start(&r->workers[i].cap) < 0) {
            log_error("%s", r->workers[i].cap.errbuf);
            status = 2;
        }
    if (status)
        run_request_stop();
    else
        log_info("capturing on %d interface%s with %d worker%s", r->nifaces,
                 r->nifaces == 1 ? "" : "s", r->nworkers, r->nworkers == 1 ? "" : "s");
    daemon_ready(status);
    while (!run_stopping()) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);   /* a signal cuts it short */
        int failed = 0;
        for (int i = 0; i < started; i++)
            failed |= __atomic_load_n(&r->workers[i].done, __ATOMIC_ACQUIRE);
        if (failed || __atomic_load_n(&r->sink.error, __ATOMIC_RELAXED))
            break;
        if (run_reload_requested) {
            run_reload_requested = 0;
            run_reload(r);
        }
        run_tick(r);
    }
    run_request_stop();   /* every worker, whatever ended the run */
    for (int i = 0; i < started; i++) {
        pthread_join(r->workers[i].thread, NULL);
        if (lws[i].failed)
            status = 1;
    }
    /* what is still in flight ends now: idle flows as idle, the rest
     * shutdown; the capture has stopped, so the export may wait for the
     * socket (live, a full one loses the message) */
    if (r->ipfix)
        ipfix_set_live(r->ipfix, 0);
    uint64_t now = flow_clock_now();
    for (int i = 0; i < r->nworkers; i++)
        worker_finish(&r->workers[i], now > r->workers[i].clock ? now : r->workers[i].clock,
                      FLOW_END_SHUTDOWN);
    /* a stop during a reload can leave a worker on the old filters: its
     * counters move to the new ones by name, as the report names them */
    for (int i = 0; i < r->nworkers; i++)
        worker_take_pipeline(&r->workers[i]);
    feedback_stop(r->fb);   /* before the final report: it counts what was left */
    run_report(r, 1, NULL);
    if (r->sink.error) {
        log_error("writing %s: %s", r->opt->output, strerror(r->sink.error));
        status = 1;
    }
out:
    daemon_ready(status);   /* if it failed before it said anything */
    if (pidfile_written)
        daemon_remove_pidfile(r->opt->pidfile);
    free(lws);
    return status;
}
