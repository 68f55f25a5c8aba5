/* monitor.c - the documents of HTTP_LISTEN, rendered on the statistics
 * thread: /metrics (metrics.c), /api/stats (the stats record with the
 * history, the top names and a configuration summary around it) and the
 * page's tables for browsers without JavaScript. */
#include "monitor.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counter.h"
#include "output-json.h"
#include "version.h"

struct monitor *monitor_new(const struct config *conf, int nworkers, const char *input,
                            const char *output)
{
    struct monitor *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->conf = conf;
    m->input = input;
    m->output = output;
    top_names_init(&m->top, 0);
    int ok = (m->rings = calloc((size_t)nworkers, sizeof *m->rings)) != NULL;
    for (; ok && m->nrings < nworkers; m->nrings++) {   /* the queue's ends on lines of their own */
        struct name_ring *r = aligned_alloc(64, sizeof *r);
        if ((ok = r != NULL))
            memset(r, 0, sizeof *r);
        m->rings[m->nrings] = r;
    }
    for (int d = 0; ok && d < MONITOR_DOCS; d++)
        ok = outbuf_init(&m->doc[d], NULL) == 0 && outbuf_init(&m->next[d], NULL) == 0;
    if (!ok) {
        monitor_free(m);
        return NULL;
    }
    return m;
}

void monitor_free(struct monitor *m)
{
    if (!m)
        return;
    for (int d = 0; d < MONITOR_DOCS; d++) {
        free(m->doc[d].buf);   /* outbuf_fini would flush: these have no sink */
        free(m->next[d].buf);
    }
    for (int w = 0; w < m->nrings; w++)
        free(m->rings[w]);
    free(m->rings);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Everything counted as lost or dropped, for the history's loss graph. */
static uint64_t drops(const struct stats_totals *t)
{
    return t->kernel_dropped + t->records_dropped + t->flow_records_dropped + t->output_lost +
           t->rd.lost + t->rd.flows_lost + t->ix.lost + t->ix.dropped + t->tap.queue_full +
           t->tap.errors;
}

static void add_sample(struct monitor *m, const struct stats_totals *t, double uptime)
{
    m->hist[m->hnext] = (struct monitor_sample){uptime, t->packets, t->bytes,
                                                t->records_total + t->flow_records, drops(t)};
    m->hnext = (m->hnext + 1) % MONITOR_HISTORY;
    if (m->nhist < MONITOR_HISTORY)
        m->nhist++;
}

static int str(struct outbuf *b, const char *s)
{
    return json_str(b, (const uint8_t *)s, strlen(s));
}

static int history_json(struct outbuf *b, const struct monitor *m)
{
    static const char *const names[] = {"packets", "bytes", "records", "drops"};
    int first = (m->hnext - m->nhist + MONITOR_HISTORY) % MONITOR_HISTORY;
    int rc = outbuf_printf(b, "{\"interval\":%g,\"t\":[", MONITOR_PERIOD_S);
    for (int i = 0; i < m->nhist; i++)
        rc |= outbuf_printf(b, i ? ",%.3f" : "%.3f", m->hist[(first + i) % MONITOR_HISTORY].t);
    for (int k = 0; k < 4; k++) {
        rc |= outbuf_printf(b, "],\"%s\":[", names[k]);
        for (int i = 0; i < m->nhist; i++) {
            const struct monitor_sample *h = &m->hist[(first + i) % MONITOR_HISTORY];
            uint64_t v = k == 0 ? h->packets : k == 1 ? h->bytes : k == 2 ? h->records : h->drops;
            rc |= (i ? json_lit(b, ",") : 0) | json_u64(b, v);
        }
    }
    return rc | json_lit(b, "]}");
}

/* The settings in effect: a reload changes the filters only (the rest
 * waits for a restart, reload.c says), so those come from the first
 * configuration and the filters from the pipeline's. */
static int config_json(struct outbuf *b, const struct monitor *m, const struct stats_source *s)
{
    const struct config *c = m->conf;
    int rc = outbuf_printf(b, "{\"workers\":%d,\"pkt_ttl\":%u,\"max_flows\":%u,\"outputs\":[",
                           s->nworkers, c->pkt_ttl, c->max_flows);
    int n = 0;
    char out[300];
    if (strcmp(m->output, "none") != 0) {
        snprintf(out, sizeof out, "json:%s", strcmp(m->output, "-") ? m->output : "stdout");
        rc |= str(b, out);
        n++;
    }
    if (c->redis_line) {
        const char *mode = c->redis_stream ? "stream" : "hash";
        if (c->redis_ncluster)
            snprintf(out, sizeof out, "redis-cluster:%s (%s)", c->redis_cluster[0], mode);
        else if (c->redis_sock)
            snprintf(out, sizeof out, "redis:%s (%s)", c->redis_sock, mode);
        else
            snprintf(out, sizeof out, "redis:%s:%u (%s)", c->redis_host ? c->redis_host : "127.0.0.1",
                     c->redis_port, mode);
        rc |= (n++ ? json_lit(b, ",") : 0) | str(b, out);
    }
    if (c->ipfix_collector) {
        snprintf(out, sizeof out, "ipfix:%s", c->ipfix_collector);
        rc |= (n++ ? json_lit(b, ",") : 0) | str(b, out);
    }
    rc |= json_lit(b, "],\"filters\":[");
    c = s->pl->conf;
    for (int i = 0; i < c->nfilters; i++) {
        const struct filter_conf *f = &c->filter[i];
        rc |= json_lit(b, i ? ",{\"name\":" : "{\"name\":") | str(b, f->name) |
              json_lit(b, ",\"bpf\":") | str(b, f->bpf ? f->bpf : "") | json_lit(b, ",\"fields\":[");
        for (int j = 0; j < f->nfields; j++)
            rc |= (j ? json_lit(b, ",") : 0) | str(b, f->field_key[j]);
        rc |= json_lit(b, "]}");
    }
    return rc | json_lit(b, "]}");
}

static int api_json(struct outbuf *b, const struct monitor *m, const struct stats_source *s,
                    const struct stats_totals *t, double uptime, int final)
{
    const struct config *c = s->pl->conf;
    int rc = json_lit(b, "{\"version\":\"" DATI_VERSION "\",\"probe\":");
    rc |= c->probe_name[0] ? str(b, c->probe_name) : json_lit(b, "null");
    rc |= outbuf_printf(b, ",\"uptime\":%.3f,\"started\":%.0f,\"input\":", uptime,
                        m->started_unix);
    if (m->input) {
        rc |= json_lit(b, "{\"file\":") | str(b, strcmp(m->input, "-") ? m->input : "stdin");
    } else {
        rc |= json_lit(b, "{\"interfaces\":[");
        for (int i = 0; i < s->nifaces; i++)
            rc |= (i ? json_lit(b, ",") : 0) | str(b, s->ifaces[i].name);
        rc |= json_lit(b, "]");
    }
    rc |= json_lit(b, "},\"config\":") | config_json(b, m, s);
    rc |= json_lit(b, ",\"history\":") | history_json(b, m);
    rc |= json_lit(b, ",\"top\":") | top_names_json(b, &m->top);
    rc |= json_lit(b, ",\"stats\":");
    size_t at = b->len;
    rc |= stats_json(b, s, t, uptime, final, NULL);
    if (rc == 0 && b->len > at && b->buf[b->len - 1] == '\n')
        b->len--;   /* the record's line end */
    return rc | json_lit(b, "}\n");
}

/* Length of the valid UTF-8 sequence at s (the rest of the string), 0 if
 * there is none: traffic's names may hold any byte. */
static int utf8_len(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
            : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f))) ||
        (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))))
        return 0;   /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

/* Text from the configuration or the traffic, in HTML: markup escaped,
 * control characters and bytes that are not UTF-8 as U+FFFD. */
static int html(struct outbuf *b, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    int rc = 0;
    while (*s && rc == 0) {
        const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;"
                        : *s == '"' ? "&quot;" : NULL;
        int n = utf8_len(s);
        if (e)
            rc = json_lit(b, e);
        else if (n == 0 || *s < 0x20 || *s == 0x7f)
            rc = json_lit(b, "&#xFFFD;");
        else
            rc = outbuf_printf(b, "%.*s", n, (const char *)s);
        s += n ? n : 1;
    }
    return rc;
}

static int row(struct outbuf *b, const char *name, uint64_t v)
{
    return json_lit(b, "<tr><th>") | html(b, name) |
           outbuf_printf(b, "</th><td>%llu</td></tr>\n", (unsigned long long)v);
}

/* The page without JavaScript: the counters as tables. */
static int table_html(struct outbuf *b, const struct monitor *m, const struct stats_source *s,
                      const struct stats_totals *t, double uptime, int final)
{
    int rc = outbuf_printf(b, "<p>%s, up %.0f s; dati " DATI_VERSION "</p>\n",
                           final ? "finished" : "running", uptime);
    rc |= json_lit(b, "<h2>Traffic</h2>\n<table>\n");
    rc |= row(b, "packets", t->packets) | row(b, "bytes", t->bytes);
    rc |= row(b, "field records", t->records_total) | row(b, "flow records", t->flow_records);
    rc |= row(b, "active flows", t->flows_active) | row(b, "flows created", t->flows_created);
    for (int i = 0; i < FLOW_END_COUNT; i++) {
        char name[48];
        snprintf(name, sizeof name, "flows ended: %s", flow_end_name((enum flow_end)i));
        rc |= row(b, name, t->flows_ended[i]);
    }
    rc |= row(b, "memory (KiB)", t->rss_anon_kb);
    rc |= json_lit(b, "</table>\n<h2>Filters</h2>\n<table>\n"
                      "<tr><th>filter</th><th>matches</th><th>records</th></tr>\n");
    for (int i = 0; i < s->pl->classifier.nfilters; i++)
        rc |= json_lit(b, "<tr><td>") | html(b, s->pl->filter_name[i]) |
              outbuf_printf(b, "</td><td>%llu</td><td>%llu</td></tr>\n",
                            (unsigned long long)t->matches[i], (unsigned long long)t->records[i]);
    rc |= json_lit(b, "</table>\n<h2>Losses</h2>\n<table>\n");
    for (int i = 0; i < s->nifaces; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s: kernel drops", s->ifaces[i].name);
        rc |= row(b, name, s->ifaces[i].dropped);
    }
    rc |= row(b, "field records dropped", t->records_dropped);
    rc |= row(b, "flow records dropped", t->flow_records_dropped);
    rc |= row(b, "lost by the output", t->output_lost);
    if (t->redis)
        rc |= row(b, "lost by Redis", t->rd.lost + t->rd.flows_lost);
    if (t->ipfix)
        rc |= row(b, "IPFIX records not sent", t->ix.lost + t->ix.dropped);
    rc |= json_lit(b, "</table>\n<h2>Top names, last minute</h2>\n");
    for (int k = 0; k < NAME_KINDS; k++) {
        const struct top_entry *list[TOP_SHOWN];
        int n = top_names_list(&m->top, k, list);
        rc |= outbuf_printf(b, "<table>\n<tr><th>%s</th><th>records</th></tr>\n",
                            name_kind_field(k));
        for (int i = 0; i < n; i++) {
            char text[NAME_TEXT + 1];
            memcpy(text, list[i]->text, list[i]->len);
            text[list[i]->len] = 0;   /* a NUL in the name ends it here: only shown */
            rc |= json_lit(b, "<tr><td>") | html(b, text) |
                  outbuf_printf(b, "</td><td>%u</td></tr>\n", list[i]->total);
        }
        rc |= json_lit(b, "</table>\n");
    }
    return rc;
}

void monitor_update(struct monitor *m, const struct stats_source *s, const struct stats_totals *t,
                    double uptime, int final)
{
    if (m->nhist == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        m->started_unix = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - uptime;
    }
    m->last = uptime;
    top_names_drain(&m->top, m->rings, m->nrings, uptime);
    add_sample(m, t, uptime);
    struct metrics_extra x = {uptime, m->started_unix, final, {0},
                              m->top.sampled, m->top.unsampled};
    for (int i = 0; i < HTTP_STATUS_KINDS; i++)
        x.http[i] = __atomic_load_n(&m->http[i], __ATOMIC_RELAXED);
    int rc = 0;
    for (int d = 0; d < MONITOR_DOCS; d++)
        m->next[d].len = 0;
    rc |= metrics_render(&m->next[MONITOR_METRICS], s, t, &x);
    rc |= api_json(&m->next[MONITOR_API], m, s, t, uptime, final);
    rc |= table_html(&m->next[MONITOR_TABLE], m, s, t, uptime, final);
    if (rc)   /* out of memory: the last documents stay */
        return;
    pthread_mutex_lock(&m->lock);
    for (int d = 0; d < MONITOR_DOCS; d++) {
        struct outbuf tmp = m->doc[d];
        m->doc[d] = m->next[d];
        m->next[d] = tmp;
    }
    m->ready = 1;
    pthread_mutex_unlock(&m->lock);
}

char *monitor_copy(struct monitor *m, enum monitor_doc d, size_t *len)
{
    char *copy = NULL;
    pthread_mutex_lock(&m->lock);
    if (m->ready && (copy = malloc(m->doc[d].len + 1))) {
        memcpy(copy, m->doc[d].buf, m->doc[d].len);
        copy[m->doc[d].len] = 0;
        *len = m->doc[d].len;
    }
    pthread_mutex_unlock(&m->lock);
    return copy;
}
