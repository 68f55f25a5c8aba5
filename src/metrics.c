/* metrics.c - the Prometheus text format of the statistics. Each family is
 * written whole (its HELP, TYPE and every sample together, as the format
 * requires); names follow Prometheus' conventions: dati_ prefix, _total for
 * counters, base units (bytes, seconds). Label values are escaped: interface
 * and node names come from the configuration, not from traffic, but a
 * backslash or quote must still not break the line. */
#include "metrics.h"

#include <string.h>

#include "feedback.h"
#include "output-json.h"
#include "version.h"

const char *const http_status_code[HTTP_STATUS_KINDS] = {"200", "403", "404", "405", "503"};

static int family(struct outbuf *b, const char *name, const char *type, const char *help)
{
    return outbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* key="value": backslash, quote and newline escaped as the format says;
 * other control bytes and non-ASCII ones (interface and host names are
 * ASCII in practice, but not by rule) as '?', so the line stays UTF-8. */
static int label(struct outbuf *b, const char *key, const char *value)
{
    int rc = outbuf_printf(b, "%s=\"", key);
    for (const unsigned char *v = (const unsigned char *)value; *v && rc == 0; v++) {
        unsigned char c = *v;
        rc = c == '\\' || c == '"' ? outbuf_printf(b, "\\%c", c)
             : c == '\n'            ? json_lit(b, "\\n")
             : c < 0x20 || c >= 0x7f ? json_lit(b, "?")
                                    : outbuf_printf(b, "%c", c);
    }
    return rc | json_lit(b, "\"");
}

/* name{key="value"} v */
static int sample_l(struct outbuf *b, const char *name, const char *key, const char *value,
                    uint64_t v)
{
    return outbuf_printf(b, "%s{", name) | label(b, key, value) |
           outbuf_printf(b, "} %llu\n", (unsigned long long)v);
}

static int sample(struct outbuf *b, const char *name, uint64_t v)
{
    return outbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* A family with one sample per value of one label. */
struct labelled {
    const char *value;
    uint64_t n;
};

static int by_label(struct outbuf *b, const char *name, const char *type, const char *help,
                    const char *key, const struct labelled *v, int n)
{
    int rc = family(b, name, type, help);
    for (int i = 0; i < n; i++)
        rc |= sample_l(b, name, key, v[i].value, v[i].n);
    return rc;
}

static int one(struct outbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    return family(b, name, type, help) | sample(b, name, v);
}

#define COUNTER(name, help, v) one(b, name, "counter", help, v)
#define GAUGE(name, help, v) one(b, name, "gauge", help, v)
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int input(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t)
{
    struct labelled v[DECODE_RESULT_COUNT];
    int rc = COUNTER("dati_packets_total", "Packets read, from the file or the interfaces' rings.",
                     t->packets);
    rc |= COUNTER("dati_bytes_total", "Bytes of the packets read, as on the wire.", t->bytes);
    rc |= COUNTER("dati_packets_processed_total", "Packets the workers classified.",
                  t->processed);
    for (int i = 0; i < DECODE_OK_COUNT; i++)
        v[i] = (struct labelled){decode_result_name((enum decode_result)i), t->decode[i]};
    rc |= by_label(b, "dati_packets_decoded_total", "counter", "Packets decoded, by what they are.",
                   "result", v, DECODE_OK_COUNT);
    for (int i = DECODE_OK_COUNT; i < DECODE_RESULT_COUNT; i++)
        v[i - DECODE_OK_COUNT] = (struct labelled){decode_result_name((enum decode_result)i),
                                                   t->decode[i]};
    rc |= by_label(b, "dati_packets_malformed_total", "counter",
                   "Malformed packets, by what was wrong.", "reason", v,
                   DECODE_RESULT_COUNT - DECODE_OK_COUNT);
    if (s->nifaces) {
        struct labelled rx[CAPTURE_MAX_IFACES], dr[CAPTURE_MAX_IFACES];
        for (int i = 0; i < s->nifaces; i++) {
            rx[i] = (struct labelled){s->ifaces[i].name, s->ifaces[i].received};
            dr[i] = (struct labelled){s->ifaces[i].name, s->ifaces[i].dropped};
        }
        rc |= by_label(b, "dati_interface_received_total", "counter",
                       "Packets the kernel handed to dati's rings, or dropped for want of room.",
                       "interface", rx, s->nifaces);
        rc |= by_label(b, "dati_interface_kernel_drops_total", "counter",
                       "Packets the kernel dropped: the ring was full.", "interface", dr,
                       s->nifaces);
    }
    return rc;
}

static int filters_reassembled(struct outbuf *b, const struct stats_source *s,
                               const struct stats_totals *t)
{
    struct labelled g[CLASSIFY_MAX_FILTERS], r[CLASSIFY_MAX_FILTERS];
    int n = s->pl->classifier.nfilters;
    for (int i = 0; i < n; i++) {
        g[i] = (struct labelled){s->pl->filter_name[i], t->reasm_segments[i]};
        r[i] = (struct labelled){s->pl->filter_name[i], t->reasm_records[i]};
    }
    int rc = by_label(b, "dati_filter_reassembled_segments_total", "counter",
                      "Segments the filter matched that went into TCP messages.", "filter", g, n);
    rc |= by_label(b, "dati_filter_reassembled_records_total", "counter",
                   "Field records of the filter made from reassembled TCP messages.", "filter",
                   r, n);
    return rc;
}

static int filters(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t)
{
    struct labelled m[CLASSIFY_MAX_FILTERS], r[CLASSIFY_MAX_FILTERS], k[CLASSIFY_MAX_FILTERS];
    int n = s->pl->classifier.nfilters;
    for (int i = 0; i < n; i++) {
        m[i] = (struct labelled){s->pl->filter_name[i], t->matches[i]};
        r[i] = (struct labelled){s->pl->filter_name[i], t->records[i]};
        k[i] = (struct labelled){s->pl->filter_name[i], t->skipped[i]};
    }
    int rc = by_label(b, "dati_filter_matches_total", "counter", "Packets the filter matched.",
                      "filter", m, n);
    rc |= by_label(b, "dati_filter_records_total", "counter", "Field records of the filter.",
                   "filter", r, n);
    rc |= by_label(b, "dati_filter_skipped_retransmissions_total", "counter",
                   "Retransmitted segments the filter matched and made no record of.", "filter",
                   k, n);
    if (t->defrag)   /* REASSEMBLY 1 */
        rc |= filters_reassembled(b, s, t);
    return rc;
}

static int flows_records(struct outbuf *b, const struct stats_totals *t)
{
    struct labelled ended[FLOW_END_COUNT];
    for (int i = 0; i < FLOW_END_COUNT; i++)
        ended[i] = (struct labelled){flow_end_name((enum flow_end)i), t->flows_ended[i]};
    int rc = GAUGE("dati_flows_active", "Flows in the flow tables now.", t->flows_active);
    rc |= COUNTER("dati_flows_created_total", "Flows created.", t->flows_created);
    rc |= by_label(b, "dati_flows_ended_total", "counter", "Flows ended, by why.", "reason",
                   ended, FLOW_END_COUNT);
    rc |= COUNTER("dati_flows_matched_without_flow_total",
                  "Matched packets with no flow (not TCP or UDP, or no room).", t->no_flow);
    struct labelled made[] = {{"field", t->records_total}, {"flow", t->flow_records}};
    struct labelled dropped[] = {{"field", t->records_dropped}, {"flow", t->flow_records_dropped}};
    rc |= by_label(b, "dati_records_total", "counter", "Records made, by kind.", "kind", made,
                   N(made));
    rc |= by_label(b, "dati_records_dropped_total", "counter",
                   "Records the output refused (full, down, out of memory), by kind.", "kind",
                   dropped, N(dropped));
    rc |= COUNTER("dati_records_output_lost_total",
                  "JSON lines the output file or pipe did not take.", t->output_lost);
    rc |= COUNTER("dati_netpdl_regex_errors_total",
                  "NetPDL regular expression searches that failed (match limit, JIT stack).",
                  t->netpdl_regex_errors);
    rc |= GAUGE("dati_memory_rss_anon_bytes", "Anonymous resident memory (heap, tables, queues).",
                t->rss_anon_kb * 1024);
    rc |= GAUGE("dati_flow_entry_bytes", "Size of one flow table entry.", sizeof(struct flow));
    return rc;
}

static int defrag(struct outbuf *b, const struct stats_totals *t)
{
    const struct defrag_counters *d = &t->df;
    struct labelled dropped[] = {{"timeout", d->timeout}, {"overlap", d->overlap},
                                 {"too_big", d->too_big}, {"no_room", d->no_room},
                                 {"invalid", d->invalid}};
    int rc = COUNTER("dati_defrag_fragments_total", "Frames that were IP fragments.",
                     d->fragments);
    rc |= COUNTER("dati_defrag_datagrams_total", "IP datagrams rebuilt from fragments.",
                  d->datagrams);
    rc |= COUNTER("dati_defrag_reassembled_fragments_total",
                  "Fragments in the rebuilt datagrams.", d->reassembled);
    rc |= COUNTER("dati_defrag_duplicate_fragments_total",
                  "Fragments with the offset and length of one held, ignored.", d->duplicates);
    rc |= COUNTER("dati_defrag_conflicting_fragments_total",
                  "Duplicate fragments whose bytes differ from the copy kept.", d->conflicting);
    rc |= COUNTER("dati_defrag_undecodable_datagrams_total",
                  "Rebuilt datagrams whose headers did not decode.", d->undecodable);
    rc |= by_label(b, "dati_defrag_dropped_fragments_total", "counter",
                   "Fragments dropped, by why.", "reason", dropped, N(dropped));
    rc |= GAUGE("dati_defrag_held_fragments", "Fragments waiting for the rest of their datagram.",
                d->held);
    rc |= GAUGE("dati_defrag_held_bytes", "Memory the held fragments take.", d->held_bytes);
    const struct stream_counters *st = &t->st;
    struct labelled gave_up[] = {{"too_long", st->too_long}, {"no_room", st->no_room},
                                 {"unfinished", st->unfinished},
                                 {"not_message", st->not_message}, {"gap", st->gap}};
    rc |= COUNTER("dati_reassembly_started_total",
                  "TCP messages split over segments: a buffer opened.", st->started);
    rc |= COUNTER("dati_reassembly_completed_total", "TCP messages made whole.", st->completed);
    rc |= COUNTER("dati_reassembly_segments_total",
                  "Segments that went into a message after its first.", st->segments);
    rc |= COUNTER("dati_reassembly_out_of_order_segments_total",
                  "Segments held ahead of a gap.", st->out_of_order);
    rc |= COUNTER("dati_reassembly_retransmitted_segments_total",
                  "Segments whose bytes were all held already.", st->retransmitted);
    rc |= COUNTER("dati_reassembly_conflicting_segments_total",
                  "Segments whose overlapping bytes differed from those held.", st->conflicting);
    rc |= by_label(b, "dati_reassembly_gave_up_total", "counter",
                   "TCP messages given up, by why.", "reason", gave_up, N(gave_up));
    rc |= GAUGE("dati_reassembly_buffers", "Message buffers in use now.", st->held);
    return rc;
}

static int classify(struct outbuf *b, const struct stats_totals *t)
{
    struct labelled r[] = {{"classified", t->app.classified}, {"unknown", t->app.unknown},
                           {"pool_full", t->app.pool_full}};
    int rc = by_label(b, "dati_classify_flows_total", "counter",
                      "Flows by classification result: named by nDPI, given up without a "
                      "name, or never classified (the pool was full).", "result", r, N(r));
    rc |= COUNTER("dati_classify_hosts_dropped_total",
                  "Host names nDPI found and dati did not keep (host table full).",
                  t->app.hosts_dropped);
    rc |= COUNTER("dati_classify_unmatched_flows_total",
                  "Flows made for APP filters that none of them matched (no flow record).",
                  t->unmatched_flows);
    rc |= COUNTER("dati_app_uncounted_flows_total",
                  "Classified flows whose application had no counting slot left.",
                  t->app.names_other);
    rc |= GAUGE("dati_classify_memory_bytes",
                "What classification holds: per-flow results, nDPI's flow states and what nDPI "
                "allocated for them, host names (not nDPI's modules).", t->app_memory_bytes);
    rc |= family(b, "dati_app_flows_total", "counter", "Classified flows, by nDPI application.");
    for (int i = 0; i < t->napps; i++) {
        char name[APP_NAME_MAX];
        stats_app_name(t, i, name, sizeof name);
        rc |= sample_l(b, "dati_app_flows_total", "app", name, t->app.name_flows[i]);
    }
    return rc;
}

static int tap(struct outbuf *b, const struct stats_totals *t)
{
    struct labelled drops[] = {{"queue_full", t->tap.queue_full}, {"error", t->tap.errors},
                               {"not_ip", t->tap.not_ip}};
    return COUNTER("dati_tap_forwarded_total", "Packets written to TAP_IF devices.",
                   t->tap.packets) |
           by_label(b, "dati_tap_dropped_total", "counter",
                    "Packets not written to a TAP_IF device, by cause.", "cause", drops, N(drops));
}

static int redis_nodes(struct outbuf *b, const struct stats_totals *t)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } per_node[] = {
#define NODE(n, type, help, m) {n, type, help, offsetof(struct redis_counters, m)}
        NODE("dati_redis_node_records_total", "counter", "Field records queued for the node.",
             records),
        NODE("dati_redis_node_flows_total", "counter", "Flow records queued for the node.", flows),
        NODE("dati_redis_node_lost_total", "counter", "Field records the node did not store.",
             lost),
        NODE("dati_redis_node_flows_lost_total", "counter", "Flow records the node did not store.",
             flows_lost),
        NODE("dati_redis_node_commands_total", "counter", "Commands the node acknowledged.",
             commands),
        NODE("dati_redis_node_errors_total", "counter", "Error replies of the node.", errors),
        NODE("dati_redis_node_reconnects_total", "counter", "Connections to the node made again.",
             reconnects),
        NODE("dati_redis_node_queued", "gauge", "Records queued or sent to the node, unanswered.",
             queued),
        NODE("dati_redis_node_dropped_queue_full_total", "counter",
             "Live capture: records for the node dropped, its pipelines busy.", dropped_queue_full),
        NODE("dati_redis_node_dropped_disconnected_total", "counter",
             "Live capture: records for the node dropped while it was disconnected.",
             dropped_disconnected),
        NODE("dati_redis_node_rerouted_total", "counter",
             "Commands of a lost node sent to the new owner of its slots.", rerouted),
#undef NODE
    };
    int rc = 0;
    for (int f = 0; f < N(per_node); f++) {
        rc |= family(b, per_node[f].name, per_node[f].type, per_node[f].help);
        for (int i = 0; i < t->nnodes; i++)
            rc |= sample_l(b, per_node[f].name, "node", t->node[i].name,
                           *(const uint64_t *)((const char *)&t->node[i].rd + per_node[f].off));
    }
    return rc;
}

static int redis(struct outbuf *b, const struct stats_totals *t)
{
    const struct redis_counters *r = &t->rd;
    struct labelled made[] = {{"field", r->records}, {"flow", r->flows}};
    struct labelled lost[] = {{"field", r->lost}, {"flow", r->flows_lost}};
    struct labelled errors[] = {{"oom", r->errors_oom}, {"auth", r->errors_auth},
                                {"wrongtype", r->errors_wrongtype}, {"other", r->errors_other}};
    struct labelled dropped[] = {{"queue_full", r->dropped_queue_full},
                                 {"disconnected", r->dropped_disconnected}};
    int rc = by_label(b, "dati_redis_records_total", "counter", "Records queued for Redis, by kind.",
                      "kind", made, N(made));
    rc |= by_label(b, "dati_redis_lost_total", "counter",
                   "Records queued that Redis did not store (error reply, connection lost).",
                   "kind", lost, N(lost));
    rc |= COUNTER("dati_redis_commands_total", "Commands Redis acknowledged.", r->commands);
    rc |= by_label(b, "dati_redis_errors_total", "counter", "Error replies, by kind.", "type",
                   errors, N(errors));
    rc |= COUNTER("dati_redis_reconnects_total", "Connections to Redis made again.",
                  r->reconnects);
    rc |= COUNTER("dati_redis_flow_states_total", "Live flow state updates queued.",
                  r->flow_states);
    rc |= COUNTER("dati_redis_flow_events_total", "Flow start events queued.", r->flow_events);
    rc |= COUNTER("dati_redis_flow_updates_dropped_total",
                  "Live capture: flow state updates and events not sent.", r->flow_updates_dropped);
    rc |= GAUGE("dati_redis_queued", "Records queued or sent, not yet acknowledged.", r->queued);
    rc |= GAUGE("dati_redis_queued_peak", "The most records ever queued at once.", r->queued_peak);
    rc |= by_label(b, "dati_redis_dropped_total", "counter",
                   "Live capture: records never queued, by cause.", "cause", dropped, N(dropped));
    if (!t->cluster)
        return rc;
    struct labelled redirects[] = {{"moved", t->cl.moved}, {"ask", t->cl.ask}};
    rc |= GAUGE("dati_redis_cluster_masters", "Cluster masters connected to.", t->cl.masters);
    rc |= by_label(b, "dati_redis_cluster_redirects_total", "counter",
                   "Commands sent again after a redirection, by kind.", "type", redirects,
                   N(redirects));
    rc |= COUNTER("dati_redis_cluster_retries_total",
                  "Commands sent again after TRYAGAIN or CLUSTERDOWN.", t->cl.retries);
    rc |= COUNTER("dati_redis_cluster_slots_moved_total", "Slots whose owner changed (MOVED).",
                  t->cl.refreshes);
    rc |= COUNTER("dati_redis_cluster_failovers_total",
                  "Masters lost and their slots found on another.", t->cl.failovers);
    rc |= COUNTER("dati_redis_cluster_rerouted_total",
                  "Commands of a lost node sent to the new owner of its slots.", r->rerouted);
    rc |= COUNTER("dati_redis_cluster_wait_short_total",
                  "Pipelines fewer replicas acknowledged than REDIS_WAIT_REPLICAS asks.",
                  r->wait_short);
    return rc | redis_nodes(b, t);
}

static int ipfix(struct outbuf *b, const struct stats_totals *t)
{
    const struct ipfix_counters *x = &t->ix;
    struct labelled unsent[] = {{"send_failed", x->lost}, {"collector_down", x->dropped}};
    int rc = COUNTER("dati_ipfix_records_total", "IPFIX data records sent.", x->records);
    rc |= COUNTER("dati_ipfix_messages_total", "IPFIX data messages sent.", x->messages);
    rc |= COUNTER("dati_ipfix_template_messages_total", "IPFIX template messages sent.",
                  x->templates);
    rc |= COUNTER("dati_ipfix_bytes_total", "Bytes of all IPFIX messages sent.", x->bytes);
    rc |= by_label(b, "dati_ipfix_records_unsent_total", "counter",
                   "IPFIX records not delivered, by cause.", "cause", unsent, N(unsent));
    rc |= GAUGE("dati_ipfix_pending_records", "Records in the workers' messages, not yet sent.",
                t->ipfix_pending);
    rc |= COUNTER("dati_ipfix_send_errors_total", "Failed sends to the collector.",
                  x->send_errors);
    return rc | COUNTER("dati_ipfix_reconnects_total", "TCP connections made after the first.",
                        x->reconnects);
}

static int feedback(struct outbuf *b, const struct feedback *fb)
{
    struct feedback_totals f;
    feedback_totals(fb, &f);
    struct labelled outcome[] = {
        {"applied", f.c.applied},     {"malformed", f.c.malformed},   {"unknown", f.c.unknown},
        {"invalid", f.c.invalid},     {"oversized", f.c.oversized},   {"queue_full", f.c.queue_full},
        {"unknown_flow", f.c.unknown_flow}, {"stopped", f.c.stopped}, {"refused", f.c.refused},
    };
    struct labelled limits[] = {{"tags", f.ft.tags_full}, {"names", f.ft.names_full},
                                {"rules", f.ft.rules_full}};
    struct labelled records[] = {{"watched", f.ft.watched_records},
                                 {"ignored", f.ft.ignored_records}};
    int rc = COUNTER("dati_feedback_messages_total", "Messages on the feedback channel.",
                     f.c.received);
    rc |= by_label(b, "dati_feedback_commands_total", "counter",
                   "Feedback commands, by how they ended.", "result", outcome, N(outcome));
    rc |= by_label(b, "dati_feedback_refused_total", "counter",
                   "Commands refused by a worker's limit, by limit.", "limit", limits, N(limits));
    rc |= COUNTER("dati_feedback_rule_tagged_total", "Flows tagged by a match rule.",
                  f.ft.rule_tagged);
    rc |= COUNTER("dati_feedback_rules_expired_total", "Match rules expired.", f.ft.rules_expired);
    rc |= by_label(b, "dati_feedback_records_total", "counter",
                   "Field records written only because the flow is watched, or not written "
                   "because it is ignored.", "effect", records, N(records));
    struct labelled acks[] = {{"published", f.c.acks}, {"lost", f.c.acks_lost}};
    rc |= by_label(b, "dati_feedback_acks_total", "counter", "Acknowledgements, by outcome.",
                   "result", acks, N(acks));
    return rc | COUNTER("dati_feedback_reconnects_total",
                        "Feedback subscriber connections made again.", f.c.reconnects);
}

int metrics_render(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t,
                   const struct metrics_extra *x)
{
    const struct config *conf = s->pl->conf;
    int rc = family(b, "dati_info", "gauge", "dati's version and probe name; always 1.");
    rc |= json_lit(b, "dati_info{") | label(b, "version", DATI_VERSION);
    if (conf->probe_name[0])
        rc |= json_lit(b, ",") | label(b, "probe", conf->probe_name);
    rc |= json_lit(b, "} 1\n");
    rc |= family(b, "dati_start_time_seconds", "gauge", "When dati started, Unix time.");
    rc |= outbuf_printf(b, "dati_start_time_seconds %.3f\n", x->started);
    rc |= family(b, "dati_uptime_seconds", "gauge", "Seconds since dati started.");
    rc |= outbuf_printf(b, "dati_uptime_seconds %.3f\n", x->uptime);
    rc |= GAUGE("dati_input_ended", "1 once the input file has been read to its end.",
                (uint64_t)x->final);
    rc |= input(b, s, t) | filters(b, s, t) | flows_records(b, t);
    if (s->pl->tap_filters)
        rc |= tap(b, t);
    if (t->defrag)
        rc |= defrag(b, t);
    if (t->classify)
        rc |= classify(b, t);
    if (t->redis)
        rc |= redis(b, t);
    if (t->ipfix)
        rc |= ipfix(b, t);
    if (s->fb)
        rc |= feedback(b, s->fb);
    struct labelled http[HTTP_STATUS_KINDS];
    for (int i = 0; i < HTTP_STATUS_KINDS; i++)
        http[i] = (struct labelled){http_status_code[i], x->http[i]};
    rc |= by_label(b, "dati_http_responses_total", "counter",
                   "Responses of this HTTP server, by status code.", "code", http,
                   HTTP_STATUS_KINDS);
    struct labelled names[] = {{"sampled", x->names_sampled}, {"ring_full", x->names_unsampled}};
    rc |= by_label(b, "dati_top_names_total", "counter",
                   "Names of field records (hosts, server names, DNS queries) for the live "
                   "page's top lists: sampled, or not for want of room.", "result", names,
                   N(names));
    return rc;
}
