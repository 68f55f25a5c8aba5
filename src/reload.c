/* reload.c - SIGHUP in live capture: read the configuration file again and
 * hand the workers new filters and fields without losing a flow. A file
 * with errors is refused and the running configuration stays. Only the
 * filter blocks change; settings fixed at start (interfaces, rings, flow
 * table, output, Redis) need a restart, which the log says. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "run.h"

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* Names the first setting that differs and needs a restart, or NULL. */
static const char *fixed_setting_changed(const struct config *a, const struct config *b)
{
#define SAME_NUM(m, name) if (a->m != b->m) return name
#define SAME_STR(m, name) if (str_differs(a->m, b->m)) return name
    SAME_NUM(pkt_ttl, "PKT_TTL");
    SAME_NUM(max_flows, "MAX_FLOWS");
    SAME_NUM(flow_table_size, "FLOW_TABLE_SIZE");
    SAME_NUM(workers, "WORKERS");
    SAME_NUM(ring_block_size, "RING_BLOCK_SIZE");
    SAME_NUM(ring_blocks, "RING_BLOCKS");
    SAME_NUM(ring_block_timeout_ms, "RING_BLOCK_TIMEOUT");
    SAME_NUM(snaplen, "SNAPLEN");
    SAME_NUM(promisc, "PROMISC");
    SAME_NUM(nifnames, "IFNAME");
    SAME_STR(output, "OUTPUT");
    SAME_STR(redis_sock, "REDIS_SOCK");
    SAME_STR(redis_host, "REDIS_HOST");
    SAME_NUM(redis_port, "REDIS_PORT");
    SAME_STR(redis_auth, "REDIS_AUTH");
    SAME_NUM(redis_db, "REDIS_DB");
    SAME_NUM(redis_stream, "REDIS_MODE");
    SAME_NUM(redis_spublish, "REDIS_PUBSUB");
    SAME_NUM(redis_pipeline, "REDIS_PIPELINE");
    SAME_NUM(redis_maxlen, "REDIS_MAXLEN");
    SAME_NUM(redis_flow_expire, "REDIS_FLOW_EXPIRE");
    SAME_STR(session_channel, "SESSION_CHANNEL");
    SAME_STR(feedback_channel, "FEEDBACK_CHANNEL");
    SAME_STR(feedback_reply, "FEEDBACK_REPLY");
    SAME_STR(flow_events, "FLOW_EVENTS");
    SAME_NUM(flow_state_interval, "FLOW_STATE_INTERVAL");
    SAME_NUM(active_timeout, "ACTIVE_TIMEOUT");
    SAME_NUM(record_seq, "RECORD_SEQ");
    SAME_NUM(flow_features, "FLOW_FEATURES");
    SAME_NUM(classify, "CLASSIFY");
    SAME_NUM(reassembly, "REASSEMBLY");
    SAME_NUM(defrag_timeout, "DEFRAG_TIMEOUT");
    SAME_NUM(defrag_memcap, "DEFRAG_MEMCAP");
    SAME_NUM(defrag_max_datagrams, "DEFRAG_MAX_DATAGRAMS");
    SAME_NUM(defrag_max_size, "DEFRAG_MAX_SIZE");
    SAME_NUM(reassembly_memcap, "REASSEMBLY_MEMCAP");
    SAME_NUM(classify_max_flows, "CLASSIFY_MAX_FLOWS");
    SAME_STR(ipfix_collector, "IPFIX_COLLECTOR");
    SAME_STR(http_listen, "HTTP_LISTEN");
    SAME_NUM(redis_ncluster, "REDIS_CLUSTER");
    SAME_NUM(redis_stream_shards, "REDIS_STREAM_SHARDS");
    SAME_NUM(redis_wait_replicas, "REDIS_WAIT_REPLICAS");
    SAME_NUM(redis_wait_ms, "REDIS_WAIT_REPLICAS");
    for (int i = 0; i < a->redis_ncluster; i++)
        if (strcmp(a->redis_cluster[i], b->redis_cluster[i]) != 0)
            return "REDIS_CLUSTER";
    if (strcmp(a->probe_name, b->probe_name) != 0)
        return "PROBE_NAME";
    SAME_NUM(ipfix_tcp, "IPFIX_TRANSPORT");
    SAME_NUM(ipfix_domain, "IPFIX_DOMAIN");
    SAME_NUM(ipfix_refresh_s, "IPFIX_TEMPLATE_REFRESH");
    SAME_NUM(ipfix_refresh_msgs, "IPFIX_TEMPLATE_REFRESH");
    for (int i = 0; i < a->nifnames; i++)
        if (strcmp(a->ifname[i], b->ifname[i]) != 0)
            return "IFNAME";
#undef SAME_NUM
#undef SAME_STR
    return NULL;
}

/* Settings the workers read as they run, but that only a restart changes:
 * the new configuration keeps the running ones. */
static int keep_running_settings(struct config *nc, const struct config *running)
{
    nc->record_seq = running->record_seq;
    nc->flow_features = running->flow_features;   /* the workers' tables are sized for it */
    nc->classify = running->classify;             /* APP filters match nothing without it */
    nc->classify_max_flows = running->classify_max_flows;
    nc->reassembly = running->reassembly;
    nc->defrag_timeout = running->defrag_timeout;
    nc->defrag_memcap = running->defrag_memcap;
    nc->defrag_max_datagrams = running->defrag_max_datagrams;
    nc->defrag_max_size = running->defrag_max_size;
    nc->reassembly_memcap = running->reassembly_memcap;
    memcpy(nc->probe_name, running->probe_name, sizeof nc->probe_name);
    nc->redis_spublish = running->redis_spublish;
    nc->flow_state_interval = running->flow_state_interval;
    nc->active_timeout = running->active_timeout;
    free(nc->flow_events);
    nc->flow_events = running->flow_events ? strdup(running->flow_events) : NULL;
    return running->flow_events && !nc->flow_events ? -1 : 0;
}

/* Loads the file, logging each error as it would be printed at start. */
static struct config *load(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    FILE *errs = open_memstream(&text, &len);
    int nerrors = 0;
    struct config *c = config_load(path, errs ? errs : stderr, &nerrors);
    if (errs)
        fclose(errs);
    log_text(1, text, 0);
    free(text);
    if (!c)
        log_error("reload refused: %d error%s in %s; the running configuration stays",
                  nerrors < 0 ? 1 : nerrors, nerrors == 1 ? "" : "s", path);
    return c;
}

void run_reload(struct run *r)
{
    const char *path = r->opt->config_path;
    if (!path) {
        log_warn("SIGHUP: dati runs on its built-in configuration; nothing to reload");
        return;
    }
    struct config *nc = load(path);
    if (!nc)
        return;
    const char *fixed = fixed_setting_changed(r->conf, nc);
    if (keep_running_settings(nc, r->conf) < 0) {
        log_error("reload refused: out of memory");
        config_free(nc);
        return;
    }
    for (int i = 0; i < nc->nfilters && !nc->classify; i++)
        if (nc->filter[i].napps || nc->filter[i].uses_app) {
            log_error("reload refused: filter %s needs CLASSIFY 1, and dati runs with "
                      "CLASSIFY 0 until it restarts; the running configuration stays",
                      nc->filter[i].name);
            config_free(nc);
            return;
        }
    int linktypes[CAPTURE_MAX_IFACES];
    for (int i = 0; i < r->nifaces; i++)
        linktypes[i] = r->ifaces[i].linktype;
    char err[256];
    struct pipeline *pl = run_check_taps(r, nc, err, sizeof err) < 0 ? NULL
                          : pipeline_new(nc, linktypes, r->nifaces, &r->taps, err, sizeof err);
    if (!pl) {
        log_error("reload refused: %s; the running configuration stays", err);
        config_free(nc);
        return;
    }
    pl->owned_conf = nc;
    /* same link types in the same order: the packets' link slots stay valid */
    for (int i = 0; i < r->nworkers; i++)
        __atomic_store_n(&r->workers[i].next_pl, pl, __ATOMIC_RELEASE);
    int waiting = r->nworkers;
    while (waiting && !run_stopping()) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
        waiting = 0;
        for (int i = 0; i < r->nworkers; i++)
            waiting += __atomic_load_n(&r->workers[i].next_pl, __ATOMIC_ACQUIRE) != NULL &&
                       !__atomic_load_n(&r->workers[i].done, __ATOMIC_ACQUIRE);
    }
    for (int i = 0; i < r->nworkers; i++)   /* a worker that ended never switched */
        waiting += __atomic_load_n(&r->workers[i].next_pl, __ATOMIC_ACQUIRE) != NULL;
    struct pipeline *old = r->pl;
    r->pl = pl;
    r->src.pl = pl;
    if (waiting) {   /* stopping before every worker switched: free both at exit */
        old->retired = r->retired;
        r->retired = old;
    } else {
        pipeline_free(old);
    }
    r->reloads++;
    log_warn("reloaded %s: %d filter%s", path, nc->nfilters, nc->nfilters == 1 ? "" : "s");
    if (fixed)
        log_warn("reload: %s changed, and takes effect only when dati restarts", fixed);
}
