/* worker.c - the per-packet path: advance the clock, find or create the
 * flow, run the filters, write records. Nothing here allocates per packet
 * (the output buffer grows only for a record larger than any before) and
 * the sink's lock is taken once per 64 KiB of records or per drain. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "counter.h"
#include "names.h"
#include "feedback.h"
#include "flowtag.h"
#include "log.h"

/* What a record of flow f carries besides its content: the filter names,
 * the flow's tags (into tt), and with seq, RECORD_SEQ's next number (taken
 * even if the record is then lost, which is how a gap shows). */
static struct record_meta meta(struct worker *w, const struct flow *f, struct tagtext *tt,
                               int seq)
{
    const char *probe = w->pl->conf->probe_name;
    struct record_meta m = {.filter_names = w->pl->filter_name, .worker = (unsigned)w->index,
                            .probe = probe[0] ? probe : NULL};
    if (f && w->ft && flowtag_text(w->ft, f, tt))
        m.tags = tt;
    if (seq && w->pl->conf->record_seq)
        m.seq = ++w->seq;
    return m;
}

/* A flow record: at the flow's end, or (why FLOW_INTERIM) an interim one. */
static void emit_flow(void *ctx, const struct flow *f, enum flow_end why)
{
    struct worker *w = ctx;
    uint32_t slot = (uint32_t)(f - w->flows.flows);
    if (w->app && why != FLOW_INTERIM)
        app_flow_end(w->app, slot);   /* the record has nDPI's last word */
    if (w->streams && f->stream_open && why != FLOW_INTERIM) {
        uint8_t open = f->stream_open;   /* the entry is reset when reused */
        stream_flow_end(w->streams, slot, &open);
    }
    /* read only for flows that had fragments: the table's pages stay untouched */
    uint64_t frags = f->fragmented ? w->frag_counts[slot] : 0;
    if (frags && why != FLOW_INTERIM)   /* zero for the slot's next flow */
        w->frag_counts[slot] = 0;
    if (!f->matched) {   /* a candidate for an APP filter that never matched: no
                          * record, and (flow_states skips it) no live hash */
        if (why != FLOW_INTERIM) {
            COUNTER_INC(w->unmatched_flows);
            if (w->ft)
                flowtag_ended(w->ft, f);
            if (w->app)
                app_flow_release(w->app, slot);
        }
        return;
    }
    struct tagtext tt;
    struct record_meta m = meta(w, f, &tt, 1);
    m.flow_slot = slot;
    m.app = w->app;
    m.frag_counts = frags;
    if (w->feat.mem) {
        m.feature_table = &w->feat;
        m.features = features_of(&w->feat, m.flow_slot);
    }
    if (w->ft && why != FLOW_INTERIM)
        flowtag_ended(w->ft, f);
    if (w->out->ops->flow(w->out, f, why, &m) < 0)
        COUNTER_INC(w->c.flow_records_dropped);
    else
        COUNTER_INC(w->c.flow_records);
    if (w->pl->conf->flow_state_interval && why != FLOW_INTERIM && w->out->ops->flow_state)
        w->out->ops->flow_state(w->out, f, 1, why, &m);
    if (w->app && why != FLOW_INTERIM)
        app_flow_release(w->app, slot);
}

static void write_records(struct worker *w, const struct packet *p, uint64_t mask,
                          const struct flow *fl, int from_stream);

/* REASSEMBLY: a TCP message is whole (or given up): its records, at the
 * segment that completed it. */
static void stream_records(void *ctx, const struct packet *msg, uint64_t mask, uint32_t slot)
{
    struct worker *w = ctx;
    const struct flow *f = &w->flows.flows[slot];
    mask &= w->pl->record_filters;
    if (f->marks & FLOW_IGNORE) {
        COUNTER_ADD(w->ft->c.ignored_records, (uint64_t)__builtin_popcountll(mask));
        return;
    }
    if (mask)
        write_records(w, msg, mask, f, 1);
}

int worker_init(struct worker *w, int index, const struct pipeline *pl, uint32_t max_flows,
                uint32_t buckets, uint32_t classify_flows, uint64_t reasm_memcap,
                const struct output_env *env, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->index = index;
    w->pl = pl;
    uint64_t idle_ns = (uint64_t)pl->conf->pkt_ttl * 1000000000u;
    if (flow_table_init(&w->flows, max_flows, buckets, idle_ns, emit_flow, w) < 0 ||
        (pl->conf->flow_features &&
         features_init(&w->feat, max_flows, pl->conf->flow_features) < 0)) {
        snprintf(err, errlen, "out of memory for %u flows per worker", max_flows);
        return -1;
    }
    if (pl->conf->reassembly &&
        (!(w->frag_counts = calloc(max_flows, sizeof *w->frag_counts)) ||
         !(w->streams = stream_new(max_flows, reasm_memcap,
                                   stream_records, w)))) {
        snprintf(err, errlen, "out of memory for %u flows per worker", max_flows);
        goto err;
    }
    if (pl->conf->classify && (app_names_init(err, errlen) < 0 ||
                               !(w->app = app_new(max_flows, classify_flows, err, errlen))))
        goto err;
    struct output_env e = *env;
    e.max_flows = max_flows;
    if (!(w->out = output_open(pl->conf, &e, err, errlen)))
        goto err;
    w->active_ns = (uint64_t)pl->conf->active_timeout * 1000000000u;
    if (pl->conf->feedback_channel &&
        (!(w->ft = malloc(sizeof *w->ft)) || flowtag_init(w->ft, &w->flows) < 0)) {
        snprintf(err, errlen, "out of memory for the flow id index");
        free(w->ft);
        w->ft = NULL;
        goto err;
    }
    if (w->ft)
        w->ft->track_state = w->out->ops->flow_state && pl->conf->flow_state_interval;
    return 0;
err:
    free(w->frag_counts);
    w->frag_counts = NULL;
    stream_free(w->streams);
    w->streams = NULL;
    app_free(w->app);
    w->app = NULL;
    features_fini(&w->feat);
    flow_table_fini(&w->flows);
    output_close(w->out);
    w->out = NULL;
    return -1;
}

void worker_fini(struct worker *w)
{
    output_close(w->out);
    if (w->ft)
        flowtag_fini(w->ft);
    free(w->ft);
    flow_table_fini(&w->flows);
    features_fini(&w->feat);
    app_free(w->app);
    extract_fini(&w->x);
    free(w->frag_counts);
    stream_free(w->streams);
    defrag_free(w->defrag);
    free(w->defrag_buf);
}

static void remap_counters(uint64_t *c, const int8_t *map, int n, uint64_t *retired)
{
    uint64_t old[CLASSIFY_MAX_FILTERS];
    memcpy(old, c, sizeof old);
    memset(c, 0, sizeof old);
    for (int i = 0; i < n; i++) {
        if (map[i] >= 0)
            c[map[i]] = old[i];
        else if (retired)
            *retired += old[i];
    }
}

void worker_take_pipeline(struct worker *w)
{
    const struct pipeline *np = __atomic_load_n(&w->next_pl, __ATOMIC_ACQUIRE);
    if (!np)
        return;
    const struct pipeline *op = w->pl;
    int8_t map[CLASSIFY_MAX_FILTERS];
    int n = op->classifier.nfilters;
    for (int i = 0; i < n; i++) {
        map[i] = -1;
        for (int j = 0; j < np->classifier.nfilters; j++)
            if (strcmp(op->filter_name[i], np->filter_name[j]) == 0)
                map[i] = (int8_t)j;
    }
    for (int i = n; i < CLASSIFY_MAX_FILTERS; i++)
        map[i] = -1;
    flow_table_remap_filters(&w->flows, map);
    remap_counters(w->c.matches, map, n, NULL);
    remap_counters(w->c.records, map, n, &w->c.records_retired);
    remap_counters(w->c.retransmitted, map, n, NULL);
    remap_counters(w->c.reasm_segments, map, n, NULL);
    remap_counters(w->c.reasm_records, map, n, NULL);
    memset(w->tap_turn, 0, sizeof w->tap_turn);
    w->pl = np;
    __atomic_store_n(&w->next_pl, NULL, __ATOMIC_RELEASE);
}

/* FLOW_STATE_INTERVAL: the live hash dati:flow:<id> of f. */
static void flow_state(struct worker *w, struct flow *f)
{
    struct tagtext tt;
    struct record_meta m = meta(w, f, &tt, 0);
    w->out->ops->flow_state(w->out, f, 0, FLOW_END_COUNT, &m);
    f->marks = (uint8_t)((f->marks | FLOW_STATE_SENT) & ~FLOW_STATE_DIRTY);
}

/* Tags and marks changed by commands show in dati:flow:<id> at once: the
 * flows listed, then (when more changed than the list holds) the marked ones. */
static void changed_states(struct worker *w)
{
    struct flowtag *ft = w->ft;
    for (int i = 0; i < ft->nchanged; i++) {
        struct flow *f = flowtag_find(ft, ft->changed[i]);
        if (f && f->matched)
            flow_state(w, f);
    }
    ft->nchanged = 0;
    struct flow_table *t = &w->flows;
    for (uint32_t i = t->lru_head; ft->dirty && i; i = t->flows[i - 1].lru_next)
        if ((t->flows[i - 1].marks & FLOW_STATE_DIRTY) && t->flows[i - 1].matched)
            flow_state(w, &t->flows[i - 1]);
    ft->dirty = 0;
}

/* The hashes of the flows updated since the last refresh, newest first: the
 * LRU list is in order of last packet. */
static void flow_states(struct worker *w)
{
    uint64_t now = outbuf_now();
    if (now - w->state_ns < (uint64_t)w->pl->conf->flow_state_interval * 1000000000u)
        return;
    w->state_ns = now;
    struct flow_table *t = &w->flows;
    uint64_t newest = 0;
    for (uint32_t i = t->lru_tail; i; i = t->flows[i - 1].lru_prev) {
        struct flow *f = &t->flows[i - 1];
        if (f->last_clock < w->state_clock)
            break;
        if (!newest)
            newest = f->last_clock;
        if (f->matched)   /* an APP filter's candidates have no live hash */
            flow_state(w, f);
    }
    if (newest)
        w->state_clock = newest;
}

void worker_drain(struct worker *w)
{
    if (w->out->ops->flow_state && w->pl->conf->flow_state_interval)
        flow_states(w);
    struct feedback *fb = __atomic_load_n(&w->fb, __ATOMIC_ACQUIRE);
    if (w->ft)   /* live: a quiet worker's rules still count TTLs from now */
        flowtag_advance(w->ft, w->clock);
    if (fb)
        feedback_poll(fb, w->index, w->ft);
    if (w->ft && (w->ft->nchanged || w->ft->dirty))   /* only with FLOW_STATE_INTERVAL */
        changed_states(w);
    w->out->ops->drain(w->out);
}

static void write_records(struct worker *w, const struct packet *p, uint64_t mask,
                          const struct flow *fl, int from_stream)
{
    const struct config *conf = w->pl->conf;
    if (!w->out->ops->field)   /* an output of flows only */
        return;
    struct tagtext tt;
    struct record_meta m = meta(w, fl, &tt, 0);
    m.flow_id = fl ? fl->id : 0;
    char app[APP_NAME_MAX];
    struct slice app_text = {(const uint8_t *)app, 0};
    if (w->app && fl) {
        const struct app_result *r = app_result_of(w->app, (uint32_t)(fl - w->flows.flows));
        if (r->state == APP_DONE)
            app_text.len = (uint32_t)app_name(r, app, sizeof app);
    }
    if (p->frame != w->rec_frame) {   /* a frame's records are numbered across calls */
        w->rec_frame = p->frame;
        memset(w->rec_sub, 0, sizeof w->rec_sub);
    }
    for (int i = 0; mask; i++, mask >>= 1) {
        if (!(mask & 1))
            continue;
        const struct filter_conf *f = &conf->filter[i];
        if (w->rec_sub[i] >= 64) {   /* the id has room for 64 records per frame and filter */
            COUNTER_INC(w->c.records_dropped);
            continue;
        }
        extract_begin(&w->x, p);
        w->x.app = app_text;
        extract_use_netpdl(&w->x, f->netpdl);
        m.filter = f;
        m.filter_index = i;
        m.sub = w->rec_sub[i];
        do {
            if (conf->record_seq)
                m.seq = ++w->seq;
            if (w->out->ops->field(w->out, &w->x, &m) == 0) {
                COUNTER_INC(w->c.records[i]);
                if (from_stream)
                    COUNTER_INC(w->c.reasm_records[i]);
                if (w->names && w->pl->name_kinds[i])
                    names_sample(w->names, &w->x, w->pl->name_kinds[i]);
            } else
                COUNTER_INC(w->c.records_dropped);
        } while (f->uses_http && ++m.sub < 64 && extract_http_next(&w->x));
        w->rec_sub[i] = (uint8_t)(f->uses_http ? m.sub : m.sub + 1);
    }
}

/* FLOW_EVENTS: a new flow, after its first packet. */
static void flow_event(struct worker *w, const struct flow *f)
{
    struct tagtext tt;
    struct record_meta m = meta(w, f, &tt, 0);
    w->out->ops->flow_event(w->out, f, &m);
}

/* counter[i]++ for every bit i set in mask */
static void count_bits(uint64_t *counter, uint64_t mask)
{
    for (; mask; mask &= mask - 1)
        COUNTER_INC(counter[__builtin_ctzll(mask)]);
}

/* Each matching filter's packet to one device of its pool: by flow (mixed,
 * since the worker was chosen by the hash's high bits) or in turn. */
static void forward_taps(struct worker *w, const struct packet *p, uint64_t mask)
{
    const struct pipeline *pl = w->pl;
    int linktype = pl->classifier.link[p->link_slot].linktype;
    for (; mask; mask &= mask - 1) {
        int i = __builtin_ctzll(mask);
        uint32_t n = (uint32_t)pl->tap[i].n, k;
        if (pl->tap[i].round_robin || !(p->flags & PKT_HAS_KEY))
            k = w->tap_turn[i]++ % n;
        else
            k = (uint32_t)(((uint64_t)(p->hash * 0x9e3779b1u) * n) >> 32);
        tap_write(&pl->taps->dev[pl->tap[i].dev[k]], p, linktype, &w->tapc);
    }
}

/* The APP filters among mask that the flow's final name satisfies: a
 * name alone ("TLS", "Google") is either of the flow's two ids, a pair
 * ("TLS.Google") both. */
static uint64_t app_match(const struct worker *w, const struct flow *f, uint64_t mask)
{
    if (!f || !w->app)
        return 0;
    const struct app_result *r = app_result_of(w->app, (uint32_t)(f - w->flows.flows));
    if (r->state != APP_DONE)
        return 0;
    uint64_t ok = 0;
    for (; mask; mask &= mask - 1) {
        int i = __builtin_ctzll(mask);
        const struct filter_conf *fc = &w->pl->conf->filter[i];
        for (int k = 0; k < fc->napps; k++) {
            uint16_t m = fc->app[k].master, a = fc->app[k].app;
            if (m ? m == r->master && a == r->app
                  : a ? a == r->app || a == r->master : !r->master && !r->app) {
                ok |= 1ull << i;
                break;
            }
        }
    }
    return ok;
}

void worker_process(struct worker *w, const struct packet *p)
{
    COUNTER_INC(w->c.packets);
    flow_table_advance(&w->flows, p->clock);
    struct flow *f = NULL;
    int created = 0;
    if (p->flags & PKT_HAS_KEY)
        f = flow_lookup(&w->flows, p);
    uint64_t mask = classify_packet(&w->pl->classifier, p);
    if (w->ft)
        w->ft->clock = p->clock;
    /* an APP filter's BPF (or every packet) only makes the flow a candidate */
    if (mask && !f && (p->flags & PKT_HAS_KEY) && (f = flow_create(&w->flows, p))) {
        created = 1;
        if (w->ft)
            flowtag_created(w->ft, f);
        if (w->app)
            app_flow_begin(w->app, (uint32_t)(f - w->flows.flows));
    }
    if (f && (p->flags & PKT_REASSEMBLED) && w->frag_counts) {
        if (!f->fragmented)
            w->frag_counts[f - w->flows.flows] = 0;
        f->fragmented = 1;
        w->frag_counts[f - w->flows.flows] += (uint64_t)(1u + p->extra_frames) << 32 | 1;
    }
    /* a flag in the entry, so that a classified flow costs no other load */
    if (f && w->app && !f->app_done &&
        (app_packet(w->app, (uint32_t)(f - w->flows.flows), p) ||
         app_result_of(w->app, (uint32_t)(f - w->flows.flows))->state == APP_POOL_FULL))
        f->app_done = 1;
    if (mask & w->pl->app_filters)
        mask = (mask & ~w->pl->app_filters) | app_match(w, f, mask & w->pl->app_filters);
    if (mask) {
        COUNTER_INC(w->c.matched);
        count_bits(w->c.matches, mask);
        if (!f)
            COUNTER_INC(w->c.no_flow);
        if (mask & w->pl->tap_filters)
            forward_taps(w, p, mask & w->pl->tap_filters);
    }
    uint64_t recorded = mask & w->pl->record_filters;
    if (f) {
        int first_match = mask && !f->matched;
        f->filters |= mask;
        f->matched |= mask != 0;
        /* feedback: ignored flows give none, watched ones every packet */
        if (f->marks & (FLOW_WATCH | FLOW_IGNORE)) {
            if (f->marks & FLOW_IGNORE) {
                COUNTER_ADD(w->ft->c.ignored_records, (uint64_t)__builtin_popcountll(recorded));
                recorded = 0;
            } else if (f->marks & FLOW_WATCH) {   /* every filter that matched the flow */
                uint64_t extra = f->filters & w->pl->record_filters & ~recorded;
                recorded |= extra;
                COUNTER_ADD(w->ft->c.watched_records, (uint64_t)__builtin_popcountll(extra));
            }
        }
        int seen = flow_update(&w->flows, f, p);
        if (w->feat.mem) {
            struct flow_features *ff = features_of(&w->feat, (uint32_t)(f - w->flows.flows));
            if (created)
                features_reset(&w->feat, ff);
            features_update(&w->feat, ff, flow_direction(f, p), p->wirelen + p->extra_bytes, p->ts);
        }
        /* FLOW_EVENTS: when the flow first matches a filter (its creation,
         * but for APP filters) */
        if (first_match && w->pl->conf->flow_events && w->out->ops->flow_event)
            flow_event(w, f);
        if (w->active_ns && f->matched && p->ts > f->first_ts && f->reports < 255 &&
            p->ts - f->first_ts >= (f->reports + 1u) * w->active_ns) {
            /* ACTIVE_TIMEOUT: an interim record of a long flow; one only
             * after a gap of several timeouts, not one per packet */
            uint64_t n = (p->ts - f->first_ts) / w->active_ns;
            f->reports = (uint8_t)(n < 255 ? n : 255);
            emit_flow(w, f, FLOW_INTERIM);
        }
        /* REASSEMBLY: a segment of a message split over several (or the
         * start of one) goes to its buffer; its records come with the message */
        if (w->streams && p->l4_proto == IPPROTO_TCP && p->payload_len &&
            (f->stream_open || (recorded && !seen))) {
            uint8_t open = f->stream_open;
            int taken = stream_segment(w->streams, (uint32_t)(f - w->flows.flows),
                                       flow_direction(f, p), &open, p, recorded, seen);
            f->stream_open = open & 3;
            if (taken) {
                count_bits(w->c.reasm_segments, recorded);
                return;
            }
        }
        if (seen && recorded) {
            count_bits(w->c.retransmitted, recorded);   /* seen before: no records */
            return;
        }
    }
    if (recorded)
        write_records(w, p, recorded, f, 0);
}

/* How far ahead the loads start: a bucket arrives in about the time of a
 * few packets' work, its entries then take as long again. */
#define AHEAD_BUCKET 8
#define AHEAD_ENTRY 4

void worker_process_batch(struct worker *w, const struct packet *ring, uint32_t first,
                          uint32_t n, uint32_t mask)
{
    const struct flow_table *t = &w->flows;
    for (uint32_t i = 0; i < n && i < AHEAD_BUCKET; i++) {
        const struct packet *q = &ring[(first + i) & mask];
        if (q->flags & PKT_HAS_KEY)
            flow_prefetch_bucket(t, q->hash);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (i + AHEAD_BUCKET < n) {
            const struct packet *q = &ring[(first + i + AHEAD_BUCKET) & mask];
            __builtin_prefetch(q->data + q->l3_off);   /* what the filters read */
            if (q->flags & PKT_HAS_KEY)
                flow_prefetch_bucket(t, q->hash);
        }
        if (i + AHEAD_ENTRY < n) {
            const struct packet *q = &ring[(first + i + AHEAD_ENTRY) & mask];
            if (q->flags & PKT_HAS_KEY)
                flow_prefetch_entry(t, q->hash);
        }
        worker_process(w, &ring[(first + i) & mask]);
    }
}

void worker_finish(struct worker *w, uint64_t clock, enum flow_end why)
{
    flow_table_advance(&w->flows, clock);
    flow_table_flush(&w->flows, why);
    w->out->ops->flush(w->out);
}

#define WORKER_CHUNK 256   /* packets processed between releases of queue slots */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint32_t first, n = 1;
    while (!pktq_done(w->q)) {
        n = pktq_wait(w->q, &first, n != 0);
        if (n > WORKER_CHUNK)
            n = WORKER_CHUNK;
        worker_process_batch(w, w->q->slot, first, n, PKTQ_SIZE - 1);
        if (n)
            pktq_release(w->q, n);
        worker_drain(w);
    }
    return NULL;
}

int worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void worker_stop(struct worker *w)
{
    pthread_join(w->thread, NULL);
}
