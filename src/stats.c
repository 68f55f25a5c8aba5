/* stats.c - summing and printing the counters. Runs on the reader thread,
 * reading the workers' counters with relaxed atomic loads. */
#include "stats.h"

#include <string.h>

#include "counter.h"
#include "feedback.h"
#include "output-json.h"

/* Anonymous resident memory in KiB (our heap: flows, buffers, queues; not
 * the mapped capture file, which the page cache owns), or 0 if unknown. */
static uint64_t rss_anon_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The workers' flows per name, merged into t->app: most flows first, then by key. */
static void sum_apps(struct stats_totals *t, const struct app_counters *c)
{
    struct app_counters *a = &t->app;
    a->classified += COUNTER_GET(c->classified);
    a->unknown += COUNTER_GET(c->unknown);
    a->pool_full += COUNTER_GET(c->pool_full);
    a->hosts_dropped += COUNTER_GET(c->hosts_dropped);
    a->names_other += COUNTER_GET(c->names_other);
    for (int s = 0; s < APP_COUNT_SLOTS; s++) {
        uint32_t key = __atomic_load_n(&c->name_key[s], __ATOMIC_ACQUIRE);
        if (!key)
            continue;
        uint64_t n = COUNTER_GET(c->name_flows[s]);
        int i = 0;
        while (i < t->napps && a->name_key[i] != key)
            i++;
        if (i == t->napps) {
            if (t->napps == APP_COUNT_SLOTS) {   /* more names than one worker counts */
                a->names_other += n;
                continue;
            }
            a->name_key[t->napps++] = key;
            a->name_flows[i] = 0;
        }
        a->name_flows[i] += n;
    }
}

static void sort_apps(struct stats_totals *t)
{
    struct app_counters *a = &t->app;
    for (int i = 1; i < t->napps; i++)   /* insertion: a few dozen names */
        for (int j = i; j > 0 && (a->name_flows[j] > a->name_flows[j - 1] ||
                                  (a->name_flows[j] == a->name_flows[j - 1] &&
                                   a->name_key[j] < a->name_key[j - 1])); j--) {
            uint32_t k = a->name_key[j];
            uint64_t n = a->name_flows[j];
            a->name_key[j] = a->name_key[j - 1];
            a->name_flows[j] = a->name_flows[j - 1];
            a->name_key[j - 1] = k;
            a->name_flows[j - 1] = n;
        }
}

size_t stats_app_name(const struct stats_totals *t, int i, char *buf, size_t len)
{
    uint32_t key = t->app.name_key[i] - 1;
    return app_pair_name((uint16_t)(key >> 16), (uint16_t)key, buf, len);
}

static void sum_defrag(struct stats_totals *t, const struct defrag *d)
{
    if (!d)
        return;
    const struct defrag_counters *c = defrag_counters(d);
    uint64_t *to = &t->df.fragments;
    const uint64_t *from = &c->fragments;
    t->defrag = 1;
    for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)   /* all uint64_t */
        to[i] += COUNTER_GET(from[i]);
}

void stats_sum(const struct stats_source *s, struct stats_totals *t)
{
    memset(t, 0, sizeof *t);
    t->packets = COUNTER_GET(s->reader->packets);
    t->bytes = COUNTER_GET(s->reader->bytes);
    for (int i = 0; i < DECODE_RESULT_COUNT; i++) {
        t->decode[i] = COUNTER_GET(s->reader->decode[i]);
        if (decode_is_error((enum decode_result)i))
            t->errors += t->decode[i];
        else
            t->decoded += t->decode[i];
    }
    for (int w = 0; w < s->nworkers; w++) {
        const struct reader_counters *in = &s->workers[w].in;
        t->packets += COUNTER_GET(in->packets);
        t->bytes += COUNTER_GET(in->bytes);
        for (int i = 0; i < DECODE_RESULT_COUNT; i++) {
            uint64_t n = COUNTER_GET(in->decode[i]);
            t->decode[i] += n;
            if (decode_is_error((enum decode_result)i))
                t->errors += n;
            else
                t->decoded += n;
        }
    }
    for (int i = 0; i < s->nifaces; i++) {
        t->kernel_received += s->ifaces[i].received;
        t->kernel_dropped += s->ifaces[i].dropped;
    }
    for (int w = 0; w < s->nworkers; w++) {
        const struct worker_counters *c = &s->workers[w].c;
        const struct flow_table *ft = &s->workers[w].flows;
        t->processed += COUNTER_GET(c->packets);
        t->matched += COUNTER_GET(c->matched);
        t->no_flow += COUNTER_GET(c->no_flow);

        for (int i = 0; i < s->pl->classifier.nfilters; i++) {
            t->matches[i] += COUNTER_GET(c->matches[i]);
            t->records[i] += COUNTER_GET(c->records[i]);
            t->skipped[i] += COUNTER_GET(c->retransmitted[i]);
            t->reasm_segments[i] += COUNTER_GET(c->reasm_segments[i]);
            t->reasm_records[i] += COUNTER_GET(c->reasm_records[i]);
            t->retransmitted += COUNTER_GET(c->retransmitted[i]);
            t->records_total += COUNTER_GET(c->records[i]);
        }
        const struct tap_counters *tc = &s->workers[w].tapc;
        t->tap.packets += COUNTER_GET(tc->packets);
        t->tap.queue_full += COUNTER_GET(tc->queue_full);
        t->tap.errors += COUNTER_GET(tc->errors);
        t->tap.not_ip += COUNTER_GET(tc->not_ip);
        t->records_total += COUNTER_GET(c->records_retired);
        t->records_dropped += COUNTER_GET(c->records_dropped);
        t->flow_records += COUNTER_GET(c->flow_records);
        t->flow_records_dropped += COUNTER_GET(c->flow_records_dropped);
        s->workers[w].out->ops->sum(s->workers[w].out, t);
        t->netpdl_regex_errors += COUNTER_GET(s->workers[w].x.pdl.regex_errors);
        t->flows_active += COUNTER_GET(ft->active);
        t->flows_created += COUNTER_GET(ft->created);
        for (int i = 0; i < FLOW_END_COUNT; i++)
            t->flows_ended[i] += COUNTER_GET(ft->ended[i]);
        t->unmatched_flows += COUNTER_GET(s->workers[w].unmatched_flows);
        if (s->workers[w].app) {
            t->classify = 1;
            sum_apps(t, app_counters(s->workers[w].app));
            t->app_memory_bytes += app_memory_bytes(s->workers[w].app);
        }
    }
    sort_apps(t);
    sum_defrag(t, s->defrag);
    for (int w = 0; w < s->nworkers; w++) {
        sum_defrag(t, s->workers[w].defrag);
        if (s->workers[w].streams) {
            const struct stream_counters *c = stream_counters(s->workers[w].streams);
            uint64_t *to = &t->st.started;
            const uint64_t *from = &c->started;
            for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)   /* all uint64_t */
                to[i] += COUNTER_GET(from[i]);
        }
    }
    if (s->ipfix) {
        t->ipfix = 1;
        ipfix_counters_get(s->ipfix, &t->ix);
    }
    t->rss_anon_kb = rss_anon_kb();
}

void stats_print(FILE *f, const struct stats_source *s, const struct stats_totals *t,
                 double elapsed, int final)
{
    double rate = elapsed > 0 ? (double)t->packets / elapsed : 0;
    fprintf(f, "dati: %s%llu packets, %llu bytes in %.2f s (%.0f packets/s)\n",
            final ? "" : "[stats] ", (unsigned long long)t->packets,
            (unsigned long long)t->bytes, elapsed, rate);
    for (int i = 0; i < s->nifaces; i++)
        fprintf(f, "dati:   %s: %llu received by the kernel, %llu dropped by the kernel\n",
                s->ifaces[i].name, (unsigned long long)s->ifaces[i].received,
                (unsigned long long)s->ifaces[i].dropped);
    fprintf(f, "dati:   decoded %llu:", (unsigned long long)t->decoded);
    for (int i = 0; i < DECODE_OK_COUNT; i++)
        fprintf(f, " %s %llu", decode_result_name((enum decode_result)i),
                (unsigned long long)t->decode[i]);
    fprintf(f, "\ndati:   malformed %llu", (unsigned long long)t->errors);
    for (int i = DECODE_OK_COUNT; i < DECODE_RESULT_COUNT; i++)
        if (t->decode[i])
            fprintf(f, " %s %llu", decode_result_name((enum decode_result)i),
                    (unsigned long long)t->decode[i]);
    fprintf(f, "\ndati:   filters:");
    for (int i = 0; i < s->pl->classifier.nfilters; i++)
        fprintf(f, " %s %llu matched %llu records;", s->pl->filter_name[i],
                (unsigned long long)t->matches[i], (unsigned long long)t->records[i]);
    fprintf(f, "\ndati:   flows: %llu created, %llu active, %llu idle, %llu end_of_input, "
               "%llu evicted, %llu shutdown\n",
            (unsigned long long)t->flows_created, (unsigned long long)t->flows_active,
            (unsigned long long)t->flows_ended[FLOW_END_IDLE],
            (unsigned long long)t->flows_ended[FLOW_END_EOF],
            (unsigned long long)t->flows_ended[FLOW_END_EVICTED],
            (unsigned long long)t->flows_ended[FLOW_END_SHUTDOWN]);
    fprintf(f, "dati:   records: %llu field, %llu flow; dropped %llu field, %llu flow; "
               "%llu lost by the output; %llu retransmitted segments skipped\n",
            (unsigned long long)t->records_total, (unsigned long long)t->flow_records,
            (unsigned long long)t->records_dropped, (unsigned long long)t->flow_records_dropped,
            (unsigned long long)t->output_lost, (unsigned long long)t->retransmitted);
    if (t->netpdl_regex_errors)
        fprintf(f, "dati:   netpdl: %llu regex searches failed (match limit, JIT stack)\n",
                (unsigned long long)t->netpdl_regex_errors);
    if (t->defrag && t->df.fragments)
        fprintf(f, "dati:   defrag: %llu fragments, %llu datagrams rebuilt from %llu; %llu "
                   "duplicates; dropped %llu timeout, %llu overlap, %llu too big, %llu no room, "
                   "%llu invalid; %llu held\n",
                (unsigned long long)t->df.fragments, (unsigned long long)t->df.datagrams,
                (unsigned long long)t->df.reassembled, (unsigned long long)t->df.duplicates,
                (unsigned long long)t->df.timeout, (unsigned long long)t->df.overlap,
                (unsigned long long)t->df.too_big, (unsigned long long)t->df.no_room,
                (unsigned long long)t->df.invalid, (unsigned long long)t->df.held);
    if (t->classify) {
        fprintf(f, "dati:   classify: %llu flows named, %llu unknown, %llu not classified "
                   "(pool full);", (unsigned long long)t->app.classified,
                (unsigned long long)t->app.unknown, (unsigned long long)t->app.pool_full);
        for (int i = 0; i < t->napps && i < 10; i++) {
            char name[APP_NAME_MAX];
            stats_app_name(t, i, name, sizeof name);
            fprintf(f, " %s %llu", name, (unsigned long long)t->app.name_flows[i]);
        }
        fprintf(f, "%s\n", t->napps > 10 ? " ..." : "");
    }
    if (s->pl->tap_filters)
        fprintf(f, "dati:   tap: %llu packets forwarded; dropped %llu queue full, %llu errors, "
                   "%llu not IP\n",
                (unsigned long long)t->tap.packets, (unsigned long long)t->tap.queue_full,
                (unsigned long long)t->tap.errors, (unsigned long long)t->tap.not_ip);
    if (t->redis)
        fprintf(f, "dati:   redis: %llu records (%llu lost), %llu flow records (%llu lost); "
                   "%llu commands, %llu error replies, %llu reconnects; queued %llu (peak %llu); "
                   "live drops: %llu queue full, %llu disconnected, %llu flow updates\n",
                (unsigned long long)t->rd.records, (unsigned long long)t->rd.lost,
                (unsigned long long)t->rd.flows, (unsigned long long)t->rd.flows_lost,
                (unsigned long long)t->rd.commands, (unsigned long long)t->rd.errors,
                (unsigned long long)t->rd.reconnects, (unsigned long long)t->rd.queued,
                (unsigned long long)t->rd.queued_peak, (unsigned long long)t->rd.dropped_queue_full,
                (unsigned long long)t->rd.dropped_disconnected,
                (unsigned long long)t->rd.flow_updates_dropped);
    if (t->cluster) {
        fprintf(f, "dati:   redis cluster: %llu masters; %llu moved, %llu ask, %llu retried, "
                   "%llu slots moved, %llu failovers, %llu rerouted\n",
                (unsigned long long)t->cl.masters, (unsigned long long)t->cl.moved,
                (unsigned long long)t->cl.ask, (unsigned long long)t->cl.retries,
                (unsigned long long)t->cl.refreshes, (unsigned long long)t->cl.failovers,
                (unsigned long long)t->rd.rerouted);
        for (int i = 0; i < t->nnodes; i++) {
            const struct redis_counters *rd = &t->node[i].rd;
            fprintf(f, "dati:     %s: %llu records (%llu lost), %llu flow records (%llu lost); "
                       "live drops: %llu queue full, %llu disconnected\n",
                    t->node[i].name, (unsigned long long)rd->records,
                    (unsigned long long)rd->lost, (unsigned long long)rd->flows,
                    (unsigned long long)rd->flows_lost, (unsigned long long)rd->dropped_queue_full,
                    (unsigned long long)rd->dropped_disconnected);
        }
    }
    if (t->ipfix)
        fprintf(f, "dati:   ipfix: %llu records in %llu messages (%llu bytes), %llu template "
                   "messages; %llu lost (send failed), %llu dropped (collector down), %llu "
                   "pending; %llu send errors, %llu reconnects\n",
                (unsigned long long)t->ix.records, (unsigned long long)t->ix.messages,
                (unsigned long long)t->ix.bytes, (unsigned long long)t->ix.templates,
                (unsigned long long)t->ix.lost, (unsigned long long)t->ix.dropped,
                (unsigned long long)t->ipfix_pending, (unsigned long long)t->ix.send_errors,
                (unsigned long long)t->ix.reconnects);
    if (s->fb) {
        const struct feedback_counters *c = feedback_counters(s->fb);
        fprintf(f, "dati:   feedback: %llu commands, %llu applied, %llu unknown flow, "
                   "%llu rejected, %llu dropped (queue full)\n",
                (unsigned long long)COUNTER_GET(c->received),
                (unsigned long long)COUNTER_GET(c->applied),
                (unsigned long long)COUNTER_GET(c->unknown_flow),
                (unsigned long long)(COUNTER_GET(c->malformed) + COUNTER_GET(c->unknown) +
                                     COUNTER_GET(c->invalid) + COUNTER_GET(c->oversized)),
                (unsigned long long)COUNTER_GET(c->queue_full));
    }
    fprintf(f, "dati:   memory: %llu KiB anonymous resident; %zu bytes per flow entry\n",
            (unsigned long long)t->rss_anon_kb, sizeof(struct flow));
}

static int member(struct outbuf *b, const char *name, uint64_t v, int *first)
{
    int rc = json_lit(b, *first ? "\"" : ",\"");
    rc |= json_lit(b, name);
    rc |= json_lit(b, "\":");
    rc |= json_u64(b, v);
    *first = 0;
    return rc;
}

int stats_json(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t,
               double elapsed, int final, const char *input_error)
{
    size_t start = b->len;
    char el[32];
    snprintf(el, sizeof el, "%.6f", elapsed);
    int first = 1;
    int rc = json_lit(b, "{\"type\":\"stats\",");
    if (s->pl->conf->probe_name[0])   /* PROBE_NAME's characters need no escaping */
        rc |= json_lit(b, "\"probe\":\"") | json_lit(b, s->pl->conf->probe_name) |
              json_lit(b, "\",");
    rc |= json_lit(b, "\"final\":");
    rc |= json_lit(b, final ? "true" : "false");
    rc |= json_lit(b, ",\"elapsed\":");
    rc |= json_lit(b, el);
    rc |= json_lit(b, ",\"packets\":");
    rc |= json_u64(b, t->packets);
    rc |= json_lit(b, ",\"bytes\":");
    rc |= json_u64(b, t->bytes);
    rc |= json_lit(b, ",\"processed\":");
    rc |= json_u64(b, t->processed);
    if (s->nifaces) {
        rc |= json_lit(b, ",\"interfaces\":{");
        for (int i = 0; i < s->nifaces; i++) {
            rc |= i ? json_lit(b, ",") : 0;   /* names: any character but '/' */
            rc |= json_str(b, (const uint8_t *)s->ifaces[i].name, strlen(s->ifaces[i].name));
            rc |= json_lit(b, ":{");
            first = 1;
            rc |= member(b, "received", s->ifaces[i].received, &first);
            rc |= member(b, "kernel_drops", s->ifaces[i].dropped, &first);
            rc |= json_lit(b, "}");
        }
        rc |= json_lit(b, "}");
        first = 1;
    }
    rc |= json_lit(b, ",\"decoded\":{");
    for (int i = 0; i < DECODE_OK_COUNT; i++)
        rc |= member(b, decode_result_name((enum decode_result)i), t->decode[i], &first);
    rc |= json_lit(b, "},\"malformed\":{");
    first = 1;
    for (int i = DECODE_OK_COUNT; i < DECODE_RESULT_COUNT; i++)
        rc |= member(b, decode_result_name((enum decode_result)i), t->decode[i], &first);
    rc |= json_lit(b, "},\"filters\":{");
    for (int i = 0; i < s->pl->classifier.nfilters; i++) {
        rc |= json_lit(b, i ? ",\"" : "\"");
        rc |= json_lit(b, s->pl->filter_name[i]);
        rc |= json_lit(b, "\":{");
        first = 1;
        rc |= member(b, "matches", t->matches[i], &first);
        rc |= member(b, "records", t->records[i], &first);
        rc |= member(b, "skipped_retransmissions", t->skipped[i], &first);
        if (t->defrag) {   /* REASSEMBLY 1 */
            rc |= member(b, "reassembled_segments", t->reasm_segments[i], &first);
            rc |= member(b, "reassembled_records", t->reasm_records[i], &first);
        }
        rc |= json_lit(b, "}");
    }
    rc |= json_lit(b, "},\"flows\":{");
    first = 1;
    rc |= member(b, "active", t->flows_active, &first);
    rc |= member(b, "created", t->flows_created, &first);
    for (int i = 0; i < FLOW_END_COUNT; i++)
        rc |= member(b, flow_end_name((enum flow_end)i), t->flows_ended[i], &first);
    rc |= member(b, "matched_without_flow", t->no_flow, &first);
    rc |= json_lit(b, "},\"records\":{");
    first = 1;
    rc |= member(b, "field", t->records_total, &first);
    rc |= member(b, "flow", t->flow_records, &first);
    rc |= member(b, "field_dropped", t->records_dropped, &first);
    rc |= member(b, "flow_dropped", t->flow_records_dropped, &first);
    rc |= member(b, "output_lost", t->output_lost, &first);
    rc |= member(b, "netpdl_regex_errors", t->netpdl_regex_errors, &first);
    rc |= json_lit(b, "},\"memory\":{");
    first = 1;
    rc |= member(b, "rss_anon_kb", t->rss_anon_kb, &first);
    rc |= member(b, "flow_entry_bytes", sizeof(struct flow), &first);
    rc |= json_lit(b, "}");
    if (t->defrag) {
        const struct defrag_counters *d = &t->df;
        rc |= json_lit(b, ",\"defrag\":{");
        first = 1;
        rc |= member(b, "fragments", d->fragments, &first);
        rc |= member(b, "datagrams", d->datagrams, &first);
        rc |= member(b, "reassembled", d->reassembled, &first);
        rc |= member(b, "duplicates", d->duplicates, &first);
        rc |= member(b, "conflicting", d->conflicting, &first);
        rc |= member(b, "undecodable", d->undecodable, &first);
        rc |= member(b, "held", d->held, &first);
        rc |= member(b, "held_kb", d->held_bytes >> 10, &first);
        rc |= json_lit(b, ",\"dropped\":{");
        first = 1;
        rc |= member(b, "timeout", d->timeout, &first);
        rc |= member(b, "overlap", d->overlap, &first);
        rc |= member(b, "too_big", d->too_big, &first);
        rc |= member(b, "no_room", d->no_room, &first);
        rc |= member(b, "invalid", d->invalid, &first);
        rc |= json_lit(b, "}}");
        const struct stream_counters *st = &t->st;
        rc |= json_lit(b, ",\"reassembly\":{");
        first = 1;
        rc |= member(b, "started", st->started, &first);
        rc |= member(b, "completed", st->completed, &first);
        rc |= member(b, "segments", st->segments, &first);
        rc |= member(b, "out_of_order", st->out_of_order, &first);
        rc |= member(b, "retransmitted", st->retransmitted, &first);
        rc |= member(b, "conflicting", st->conflicting, &first);
        rc |= member(b, "held", st->held, &first);
        rc |= json_lit(b, ",\"gave_up\":{");
        first = 1;
        rc |= member(b, "too_long", st->too_long, &first);
        rc |= member(b, "no_room", st->no_room, &first);
        rc |= member(b, "unfinished", st->unfinished, &first);
        rc |= member(b, "not_message", st->not_message, &first);
        rc |= member(b, "gap", st->gap, &first);
        rc |= json_lit(b, "}}");
    }
    if (t->classify) {
        rc |= json_lit(b, ",\"classify\":{");
        first = 1;
        rc |= member(b, "classified", t->app.classified, &first);
        rc |= member(b, "unknown", t->app.unknown, &first);
        rc |= member(b, "pool_full", t->app.pool_full, &first);
        rc |= member(b, "hosts_dropped", t->app.hosts_dropped, &first);
        rc |= member(b, "apps_uncounted", t->app.names_other, &first);
        rc |= member(b, "unmatched_flows", t->unmatched_flows, &first);
        rc |= member(b, "memory_kb", t->app_memory_bytes >> 10, &first);
        rc |= json_lit(b, ",\"apps\":{");
        for (int i = 0; i < t->napps; i++) {
            char name[APP_NAME_MAX];
            size_t n = stats_app_name(t, i, name, sizeof name);
            rc |= json_lit(b, i ? "," : "") | json_str(b, (const uint8_t *)name, n) |
                  json_lit(b, ":") | json_u64(b, t->app.name_flows[i]);
        }
        rc |= json_lit(b, "}}");
    }
    if (s->pl->tap_filters) {
        rc |= json_lit(b, ",\"tap\":{");
        first = 1;
        rc |= member(b, "forwarded", t->tap.packets, &first);
        rc |= member(b, "queue_full", t->tap.queue_full, &first);
        rc |= member(b, "errors", t->tap.errors, &first);
        rc |= member(b, "not_ip", t->tap.not_ip, &first);
        rc |= json_lit(b, "}");
    }
    if (t->redis) {
        rc |= json_lit(b, ",\"redis\":{");
        first = 1;
        rc |= member(b, "records", t->rd.records, &first);
        rc |= member(b, "flows", t->rd.flows, &first);
        rc |= member(b, "lost", t->rd.lost, &first);
        rc |= member(b, "flows_lost", t->rd.flows_lost, &first);
        rc |= member(b, "commands", t->rd.commands, &first);
        rc |= member(b, "errors", t->rd.errors, &first);
        rc |= member(b, "errors_oom", t->rd.errors_oom, &first);
        rc |= member(b, "errors_auth", t->rd.errors_auth, &first);
        rc |= member(b, "errors_wrongtype", t->rd.errors_wrongtype, &first);
        rc |= member(b, "errors_other", t->rd.errors_other, &first);
        rc |= member(b, "reconnects", t->rd.reconnects, &first);
        rc |= member(b, "flow_states", t->rd.flow_states, &first);
        rc |= member(b, "flow_events", t->rd.flow_events, &first);
        rc |= member(b, "flow_updates_dropped", t->rd.flow_updates_dropped, &first);
        rc |= member(b, "queued", t->rd.queued, &first);
        rc |= member(b, "queued_peak", t->rd.queued_peak, &first);
        rc |= member(b, "dropped_queue_full", t->rd.dropped_queue_full, &first);
        rc |= member(b, "dropped_disconnected", t->rd.dropped_disconnected, &first);
        if (t->cluster) {
            rc |= json_lit(b, ",\"cluster\":{");
            first = 1;
            rc |= member(b, "masters", t->cl.masters, &first);
            rc |= member(b, "moved", t->cl.moved, &first);
            rc |= member(b, "ask", t->cl.ask, &first);
            rc |= member(b, "retries", t->cl.retries, &first);
            rc |= member(b, "refreshes", t->cl.refreshes, &first);
            rc |= member(b, "failovers", t->cl.failovers, &first);
            rc |= member(b, "rerouted", t->rd.rerouted, &first);
            rc |= member(b, "wait_short", t->rd.wait_short, &first);
            rc |= json_lit(b, ",\"nodes\":{");
            for (int i = 0; i < t->nnodes; i++) {
                const struct redis_counters *rd = &t->node[i].rd;
                rc |= i ? json_lit(b, ",") : 0;   /* host names from CLUSTER SLOTS */
                rc |= json_str(b, (const uint8_t *)t->node[i].name, strlen(t->node[i].name));
                rc |= json_lit(b, ":{");
                first = 1;
                rc |= member(b, "records", rd->records, &first);
                rc |= member(b, "flows", rd->flows, &first);
                rc |= member(b, "lost", rd->lost, &first);
                rc |= member(b, "flows_lost", rd->flows_lost, &first);
                rc |= member(b, "commands", rd->commands, &first);
                rc |= member(b, "errors", rd->errors, &first);
                rc |= member(b, "reconnects", rd->reconnects, &first);
                rc |= member(b, "queued", rd->queued, &first);
                rc |= member(b, "dropped_queue_full", rd->dropped_queue_full, &first);
                rc |= member(b, "dropped_disconnected", rd->dropped_disconnected, &first);
                rc |= member(b, "rerouted", rd->rerouted, &first);
                rc |= json_lit(b, "}");
            }
            rc |= json_lit(b, "}}");
        }
        rc |= json_lit(b, "}");
    }
    if (t->ipfix) {
        rc |= json_lit(b, ",\"ipfix\":{");
        first = 1;
        rc |= member(b, "records", t->ix.records, &first);
        rc |= member(b, "messages", t->ix.messages, &first);
        rc |= member(b, "templates", t->ix.templates, &first);
        rc |= member(b, "bytes", t->ix.bytes, &first);
        rc |= member(b, "lost", t->ix.lost, &first);
        rc |= member(b, "dropped", t->ix.dropped, &first);
        rc |= member(b, "pending", t->ipfix_pending, &first);
        rc |= member(b, "send_errors", t->ix.send_errors, &first);
        rc |= member(b, "reconnects", t->ix.reconnects, &first);
        rc |= json_lit(b, "}");
    }
    if (s->fb) {
        rc |= json_lit(b, ",\"feedback\":");
        rc |= feedback_json(b, s->fb);
    }
    if (input_error) {
        rc |= json_lit(b, ",\"input_error\":");
        rc |= json_str(b, (const uint8_t *)input_error, strlen(input_error));
    }
    rc |= json_lit(b, "}\n");
    if (rc)
        b->len = start;
    return rc ? -1 : 0;
}
