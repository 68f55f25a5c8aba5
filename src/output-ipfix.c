/* output-ipfix.c - the IPFIX output of one worker: its flow records encoded
 * as data records into a message of its own, handed to the shared exporter
 * (ipfix.c) when the next record would not fit the path MTU, on the drain
 * timer, or at the end. Field records are not IPFIX's: it has no field op.
 * With ACTIVE_TIMEOUT a flow's records carry the counts since its previous
 * record (delta counters), so that a collector's sums are right; the counts
 * already reported are kept per flow table slot. */
#include "output-ipfix.h"

#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "counter.h"
#include "flowtag.h"
#include "ipfix-record.h"
#include "outbuf.h"
#include "stats.h"

struct ipfix_output {
    struct output base;
    struct ipfix_exporter *ex;
    size_t max;                    /* message size limit, bytes */
    size_t len;                    /* bytes in msg, the header's room included */
    size_t set_at;                 /* offset of the open data set, 0: none */
    uint16_t set_template;
    unsigned nrecords;             /* in msg (a counter: pending in the statistics) */
    uint64_t since;                /* monotonic ns of the oldest record in msg, 0: none */
    uint64_t (*reported)[4];       /* per flow slot: c2s packets, bytes, s2c packets, bytes */
    uint32_t nslots;
    uint8_t *msg;
};

static void close_set(struct ipfix_output *io)
{
    if (!io->set_at)
        return;
    size_t n = io->len - io->set_at;
    io->msg[io->set_at + 2] = (uint8_t)(n >> 8);
    io->msg[io->set_at + 3] = (uint8_t)n;
    io->set_at = 0;
}

static void send_message(struct ipfix_output *io)
{
    close_set(io);
    if (io->nrecords)
        ipfix_send(io->ex, io->msg, io->len, io->nrecords);
    io->len = IPFIX_HEADER_LEN;
    __atomic_store_n(&io->nrecords, 0, __ATOMIC_RELAXED);
    io->since = 0;
}

/* "a,b": the names of the filters that matched f, whole names only, in
 * fewer than room bytes (254 fit a record's string). */
static size_t filter_list(char *buf, size_t room, const struct flow *f, const char *const *names)
{
    size_t n = 0;
    for (uint64_t m = f->filters; m; m &= m - 1) {
        const char *name = names[__builtin_ctzll(m)];
        size_t l = strlen(name);
        if (n + l + 1 >= room)
            break;
        if (n)
            buf[n++] = ',';
        memcpy(buf + n, name, l);
        n += l;
    }
    return n;
}

static int ipfix_flow(struct output *o, const struct flow *f, enum flow_end why,
                      const struct record_meta *m)
{
    struct ipfix_output *io = (struct ipfix_output *)o;
    char filters[256];
    struct ipfix_flow_values v = {
        .packets = {f->packets[0], f->packets[1]},
        .bytes = {f->bytes[0], f->bytes[1]},
        .why = why,
        .filters = filters,
        .filterslen = filter_list(filters, sizeof filters - 1, f, m->filter_names),
        .tags = m->tags ? m->tags->csv : NULL,
        .tagslen = m->tags ? m->tags->csvlen : 0,
    };
    char app[APP_NAME_MAX];
    if (m->app && app_result_of(m->app, m->flow_slot)->state == APP_DONE) {
        v.app = app;
        v.applen = app_name(app_result_of(m->app, m->flow_slot), app, sizeof app);
    }
    /* only flows with interim records use their slot: reports counts them */
    if (io->reported && f->reports && m->flow_slot < io->nslots) {
        uint64_t *r = io->reported[m->flow_slot];
        v.packets[0] -= r[0], v.bytes[0] -= r[1], v.packets[1] -= r[2], v.bytes[1] -= r[3];
        if (why == FLOW_INTERIM)
            r[0] = f->packets[0], r[1] = f->bytes[0], r[2] = f->packets[1], r[3] = f->bytes[1];
        else   /* the slot's next flow starts from nothing */
            r[0] = r[1] = r[2] = r[3] = 0;
    }
    uint16_t tid = ipfix_record_template(f);
    if (io->len + 4 + IPFIX_RECORD_MAX > io->max)
        send_message(io);
    if (!io->set_at || io->set_template != tid) {
        close_set(io);
        io->set_at = io->len;
        io->set_template = tid;
        io->msg[io->len++] = (uint8_t)(tid >> 8);
        io->msg[io->len++] = (uint8_t)tid;
        io->len += 2;   /* length, at close_set */
    }
    io->len += ipfix_record_encode(io->msg + io->len, f, &v);
    __atomic_store_n(&io->nrecords, io->nrecords + 1, __ATOMIC_RELAXED);
    if (!io->since)
        io->since = outbuf_now();
    return 0;
}

static void ipfix_drain(struct output *o)
{
    struct ipfix_output *io = (struct ipfix_output *)o;
    if (io->since && outbuf_now() - io->since >= OUTBUF_DRAIN_NS)
        send_message(io);
}

static void ipfix_flush(struct output *o) { send_message((struct ipfix_output *)o); }

static void ipfix_sum(const struct output *o, struct stats_totals *t)
{
    t->ipfix_pending += COUNTER_GET(((const struct ipfix_output *)o)->nrecords);
}

static void ipfix_close_output(struct output *o)
{
    struct ipfix_output *io = (struct ipfix_output *)o;
    send_message(io);
    free(io->reported);
    free(io->msg);
    free(io);
}

/* no set_live: the exporter is the run's, put in live mode by live.c */
static const struct output_ops ipfix_ops = {
    .flow = ipfix_flow, .drain = ipfix_drain, .flush = ipfix_flush, .sum = ipfix_sum,
    .close = ipfix_close_output,
};

struct output *output_ipfix_open(const struct config *conf, struct ipfix_exporter *ex,
                                 uint32_t max_flows)
{
    struct ipfix_output *io = calloc(1, sizeof *io);
    if (!io)
        return NULL;
    io->base.ops = &ipfix_ops;
    io->ex = ex;
    io->max = ipfix_message_max(ex);
    io->len = IPFIX_HEADER_LEN;
    io->msg = malloc(io->max);
    /* zero pages until a long flow uses its slot */
    if (conf->active_timeout && max_flows) {
        io->reported = calloc(max_flows, sizeof *io->reported);
        io->nslots = max_flows;
    }
    if (!io->msg || (conf->active_timeout && max_flows && !io->reported)) {
        free(io->msg);
        free(io->reported);
        free(io);
        return NULL;
    }
    return &io->base;
}
