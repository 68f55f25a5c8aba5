/* run.c - what a run does whichever way packets arrive: build the pipeline,
 * open the output and the workers, report statistics, tear down. */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#include "run.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "counter.h"
#include "feedback.h"
#include "http.h"
#include "log.h"
#include "monitor.h"
#include "output-json.h"

#define WAIT_SPINS 20000          /* pause loops, some 100 us: waking a thread costs more */

volatile int run_stop_requested;   /* sig_atomic_t is int on Linux */
volatile int run_reload_requested, run_stats_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        run_reload_requested = 1;
    else if (sig == SIGUSR1)
        run_stats_requested = 1;
    else
        run_request_stop();
}

double run_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct pipeline *pipeline_new(const struct config *conf, const int *linktypes, int nlinks,
                              struct tap_pool *taps, char *err, size_t errlen)
{
    struct pipeline *pl = calloc(1, sizeof *pl);
    if (!pl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pl->conf = conf;
    pl->taps = taps;
    classify_init(&pl->classifier);
    for (int i = 0; i < conf->nfilters; i++) {
        const struct filter_conf *f = &conf->filter[i];
        if (classify_add(&pl->classifier, f->name, f->bpf) < 0) {
            snprintf(err, errlen, "too many filters");
            goto fail;
        }
        pl->filter_name[i] = f->name;
        pl->name_kinds[i] = (uint8_t)names_of_fields(f->field_id, f->nfields);
        if (f->nfields)
            pl->record_filters |= 1ull << i;
        for (int t = 0; t < f->ntaps; t++) {
            int d = tap_pool_open(taps, f->tap_if[t], err, errlen);
            if (d < 0)
                goto fail;
            pl->tap[i].dev[pl->tap[i].n++] = (uint16_t)d;
        }
        pl->tap[i].round_robin = f->tap_round_robin;
        if (f->ntaps)
            pl->tap_filters |= 1ull << i;
        if (f->napps)
            pl->app_filters |= 1ull << i;
    }
    /* live capture compiles up front: workers never compile */
    for (int i = 0; i < nlinks; i++)
        if (classify_link_slot(&pl->classifier, linktypes[i]) < 0) {
            snprintf(err, errlen, "too many link types");
            goto fail;
        }
    return pl;
fail:
    pipeline_free(pl);
    return NULL;
}

void pipeline_free(struct pipeline *pl)
{
    if (!pl)
        return;
    classify_fini(&pl->classifier);
    if (pl->owned_conf)
        config_free(pl->owned_conf);
    free(pl);
}

/* The kernel's counters of each interface, over every worker's ring. */
static void refresh_ifstats(struct run *r)
{
    for (int i = 0; i < r->nifaces; i++)
        for (int w = 0; w < r->ready_workers; w++)
            if (r->workers[w].cap.ops)
                capture_live_stats(&r->workers[w].cap, i, &r->ifstats[i].received,
                                   &r->ifstats[i].dropped);
}

/* HTTP_LISTEN's documents, from the counters now. */
static void update_monitor(struct run *r, int final)
{
    struct stats_totals t;
    refresh_ifstats(r);
    stats_sum(&r->src, &t);
    monitor_update(r->mon, &r->src, &t, run_now() - r->started, final);
}

int run_start_http(struct run *r)
{
    char err[256];
    if (!r->mon)
        return 0;
    update_monitor(r, 0);   /* the first request finds documents */
    if (!(r->http = http_start(r->http_fd, r->conf->http_listen, r->mon, err, sizeof err))) {
        log_error("%s", err);
        return -1;
    }
    r->http_fd = -1;   /* the server's now */
    log_info("serving metrics and the live page on http://%s/", r->conf->http_listen);
    return 0;
}

void run_report(struct run *r, int final, const char *input_error)
{
    struct stats_totals t;
    refresh_ifstats(r);
    stats_sum(&r->src, &t);
    double elapsed = run_now() - r->started;
    if (r->mon)
        monitor_update(r->mon, &r->src, &t, elapsed, final);
    if (r->opt->progress)
        fputs("\r\033[K", stderr);
    if (!r->opt->quiet && log_is_syslog()) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (f) {
            stats_print(f, &r->src, &t, elapsed, final);
            fclose(f);
            log_text(0, text, 6);   /* without stats_print's "dati: " */
            free(text);
        }
    } else if (!r->opt->quiet) {
        stats_print(stderr, &r->src, &t, elapsed, final);
    }
    if (stats_json(&r->statbuf, &r->src, &t, elapsed, final, input_error) == 0) {
        if (r->stats_cluster)   /* the key's master, now (a failover moves it) */
            r->stats_redis = redis_cluster_conn(r->stats_cluster, r->stats_key,
                                                strlen(r->stats_key));
        if (r->stats_redis)
            redis_conn_stats(r->stats_redis, r->stats_key, r->statbuf.buf, r->statbuf.len - 1,
                             final);
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

void run_tick(struct run *r)
{
    double now = run_now();
    if (run_stats_requested) {
        run_stats_requested = 0;
        run_report(r, 0, NULL);
    }
    if (r->conf->time_stats && now - r->last_stats >= r->conf->time_stats) {
        r->last_stats = now;
        run_report(r, 0, NULL);
    }
    if (r->mon && monitor_due(r->mon, now - r->started))
        update_monitor(r, 0);
    else if (r->mon)
        monitor_drain(r->mon, now - r->started);
    if (r->opt->progress && now - r->last_progress >= 0.5) {
        r->last_progress = now;
        progress(r, now);
    }
}

/* CPUs this process may run on (its affinity mask: cpusets, taskset). */
static long usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return sysconf(_SC_NPROCESSORS_ONLN);
}

/* Live interfaces: looked up before anything else is opened, so that a
 * typo is the first and only message. */
static int resolve_ifaces(struct run *r)
{
    char err[256];
    r->nifaces = r->opt->nifnames;
    if (r->nifaces > CAPTURE_MAX_IFACES) {
        log_error("at most %d interfaces", CAPTURE_MAX_IFACES);
        return -1;
    }
    for (int i = 0; i < r->nifaces; i++) {
        if (capture_iface_lookup(&r->ifaces[i], r->opt->ifnames[i], err, sizeof err) < 0) {
            log_error("%s", err);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (r->ifaces[j].ifindex == r->ifaces[i].ifindex) {
                log_error("interface %s given twice", r->ifaces[i].name);
                return -1;
            }
        r->ifaces[i].fanout_id = -1;   /* the first ring has the kernel choose one */
        r->ifstats[i].name = r->ifaces[i].name;
        capture_set_iface_name(i + 1, r->ifaces[i].name);
    }
    return 0;
}

/* REASSEMBLY: reading a file, this thread defragments for all workers; live,
 * each worker its own rings' fragments, with its share of the limits. */
static int start_defrag(struct run *r)
{
    const struct config *c = r->conf;
    uint32_t n = r->nifaces ? (uint32_t)r->nworkers : 1;
    struct defrag_limits lim = {
        .memcap = c->defrag_memcap / n,
        .max_datagrams = (c->defrag_max_datagrams + n - 1) / n,
        .max_size = c->defrag_max_size,
        .timeout_ns = (uint64_t)c->defrag_timeout * 1000000000u,
    };
    if (r->nifaces) {
        for (int i = 0; i < r->nworkers; i++) {
            struct worker *w = &r->workers[i];
            if (!(w->defrag = defrag_new(&lim)) || !(w->defrag_buf = malloc(DEFRAG_FRAME_MAX)))
                return -1;
        }
        return 0;
    }
    for (int k = 0; k < DEFRAG_SLOTS; k++)
        r->defrag_worker[k] = -1;
    if (!(r->defrag = defrag_new(&lim)))
        return -1;
    for (int k = 0; k < (r->nworkers > 1 ? DEFRAG_SLOTS : 1); k++)
        if (!(r->defrag_buf[k] = malloc(DEFRAG_FRAME_MAX)))
            return -1;
    return 0;
}

static int setup(struct run *r)
{
    const struct config *conf = r->conf;
    char err[256];
    if (r->opt->nifnames && resolve_ifaces(r) < 0)
        return -1;
    int linktypes[CAPTURE_MAX_IFACES];
    for (int i = 0; i < r->nifaces; i++)
        linktypes[i] = r->ifaces[i].linktype;
    if (run_check_taps(r, conf, err, sizeof err) < 0 ||
        !(r->pl = pipeline_new(conf, linktypes, r->nifaces, &r->taps, err, sizeof err))) {
        log_error("%s", err);
        return -1;
    }
    for (int i = 0; i < r->nifaces; i++)
        r->link_slot[i] = (uint16_t)classify_link_slot(&r->pl->classifier, linktypes[i]);
    r->nworkers = (int)r->opt->workers;
    /* Threads reading a file: this one, the workers when there are several,
     * and a read-ahead thread when a core is left for it (with one worker
     * on 2 cores: 0.23 s for the bench's lab mix, against 0.39 s reading on
     * this thread, whose parsing then waits for the kernel's copy). Waits
     * spin before they sleep only when every thread has a core: otherwise
     * spinning steals the core from the thread being waited for. */
    long cpus = r->opt->cpus ? (long)r->opt->cpus : usable_cpus();
    int threads = 1 + (r->nworkers > 1 ? r->nworkers : 0);
    r->read_thread = cpus > threads;
    threads += r->read_thread;
    r->spins = cpus >= threads ? WAIT_SPINS : 0;
    /* OUTPUT none: no JSON lines, the statistics record still on stdout */
    int no_lines = strcmp(r->opt->output, "none") == 0;
    if (no_lines && !conf->ipfix_collector && !conf->redis_line) {
        log_error("-w none leaves the records nowhere to go: it needs IPFIX_COLLECTOR or Redis");
        return -1;
    }
    if (output_sink_open(&r->sink, no_lines ? "-" : r->opt->output, err, sizeof err) < 0) {
        log_error("%s", err);
        return -1;
    }
    r->sink_open = 1;
    if (outbuf_init(&r->statbuf, &r->sink) < 0)
        return -1;
    /* statistics: to the node of their key, in a cluster */
    snprintf(r->stats_key, sizeof r->stats_key, conf->probe_name[0] ? "%s:%s" : "%s",
             REDIS_STATS_KEY, conf->probe_name);
    if (conf->redis_ncluster && (r->stats_cluster = redis_cluster_open(conf, err, sizeof err)))
        r->stats_redis = redis_cluster_conn(r->stats_cluster, r->stats_key, strlen(r->stats_key));
    else if (conf->redis_line && !conf->redis_ncluster)
        r->stats_redis = redis_conn_open(conf, err, sizeof err);
    if (conf->redis_line && !r->stats_redis) {
        log_error("%s", err);
        return -1;
    }
    if (conf->ipfix_collector && !(r->ipfix = ipfix_open(conf, err, sizeof err))) {
        log_error("%s", err);
        return -1;
    }
    r->workers = calloc((size_t)r->nworkers, sizeof *r->workers);
    if (!r->workers)
        return -1;
    struct output_env env = {no_lines ? NULL : &r->sink, r->ipfix, 0};
    uint32_t n = (uint32_t)r->nworkers;
    uint32_t max_flows = (conf->max_flows + n - 1) / n;
    uint32_t buckets = ((conf->flow_table_size ? conf->flow_table_size : conf->max_flows) + n - 1) / n;
    for (int i = 0; i < r->nworkers; i++) {
        if (worker_init(&r->workers[i], i, r->pl, max_flows, buckets,
                        (conf->classify_max_flows + n - 1) / n,
                        conf->reassembly_memcap / n, &env, err,
                        sizeof err) < 0) {
            log_error("%s", err);
            return -1;
        }
        r->ready_workers = i + 1;
    }
    if (conf->reassembly && start_defrag(r) < 0) {
        log_error("out of memory for REASSEMBLY (DEFRAG_MEMCAP %u bytes)", conf->defrag_memcap);
        return -1;
    }
    if (conf->http_listen) {
        if (!(r->mon = monitor_new(conf, r->nworkers, r->opt->input, r->opt->output))) {
            log_error("out of memory");
            return -1;
        }
        for (int i = 0; i < r->nworkers; i++)
            r->workers[i].names = monitor_ring(r->mon, i);
        if ((r->http_fd = http_listen_socket(conf->http_listen, err, sizeof err)) < 0) {
            log_error("%s", err);
            return -1;
        }
    }
    r->src = (struct stats_source){&r->rc, r->workers, r->nworkers, r->pl, r->ifstats, r->nifaces,
                                   NULL, r->ipfix, r->defrag};
    return 0;
}

int run_check_taps(const struct run *r, const struct config *conf, char *err, size_t errlen)
{
    for (int f = 0; f < conf->nfilters; f++)
        for (int t = 0; t < conf->filter[f].ntaps; t++)
            for (int i = 0; i < r->nifaces; i++)
                if (strcmp(conf->filter[f].tap_if[t], r->ifaces[i].name) == 0) {
                    snprintf(err, errlen, "TAP_IF %s is also captured on: every packet written "
                             "to it would come back, and match again", r->ifaces[i].name);
                    return -1;
                }
    return 0;
}

int run_start_feedback(struct run *r)
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

static void teardown(struct run *r)
{
    http_stop(r->http);   /* first: it serves what the workers' counters made */
    if (r->http_fd >= 0)
        close(r->http_fd);
    feedback_free(r->fb);
    for (int i = 0; i < r->ready_workers; i++) {
        capture_close(&r->workers[i].cap);
        worker_fini(&r->workers[i]);
    }
    free(r->workers);
    defrag_free(r->defrag);
    for (int k = 0; k < DEFRAG_SLOTS; k++)
        free(r->defrag_buf[k]);
    monitor_free(r->mon);   /* after the workers: they sampled into its rings */
    free(r->queues);
    outbuf_fini(&r->statbuf);
    if (r->stats_cluster)
        redis_cluster_close(r->stats_cluster);
    else
        redis_conn_close(r->stats_redis);
    ipfix_close(r->ipfix);   /* after the workers: their outputs sent what they held */
    if (r->sink_open)
        output_sink_close(&r->sink);
    capture_close(&r->cap);
    if (r->input_fd > STDIN_FILENO)
        close(r->input_fd);
    pipeline_free(r->pl);
    while (r->retired) {
        struct pipeline *next = r->retired->retired;
        pipeline_free(r->retired);
        r->retired = next;
    }
    tap_pool_close(&r->taps);
}

int run_main(const struct config *conf, const struct run_options *opt)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.conf = conf;
    r.opt = opt;
    r.http_fd = -1;
    /* before anything is opened or started: a missing file is one line */
    char err[256];
    if (opt->input && (r.input_fd = capture_input_open(opt->input, err, sizeof err)) < 0) {
        log_error("%s: %s", opt->input, err);
        return 1;
    }
    if (!opt->input)
        r.input_fd = -1;
    redis_conn_set_stop(&run_stop_requested);   /* read atomically there */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;   /* no SA_RESTART: waits wake up */
    sigaction(SIGINT, &sa, NULL);   /* before setup: REDIS_RETRY waits there */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    if (setup(&r) < 0) {
        teardown(&r);
        return 2;
    }
    r.started = r.last_stats = r.last_progress = run_now();
    int status = opt->nifnames ? live_run(&r) : reader_run(&r);
    teardown(&r);
    return status;
}
