/* output-redis.c - the Redis outputs: the layouts that turn records into
 * commands, over a connection (redis-conn.c) that pipelines, sends and
 * counts them. Two layouts, two ops tables: the seed's hash layout (a
 * unique id per record, HSET <prefix><id>, EXPIRE, PUBLISH of the key on
 * the filter's channel; flow records PUBLISHed as JSON on the session
 * channel) and the stream layout (one XADD per record on the channel).
 * Both keep a flow's live state and start events the same way. */
#include "output-redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "config.h"
#include "counter.h"
#include "flowtag.h"
#include "output-json.h"
#include "redis-cluster.h"
#include "redis-conn.h"
#include "stats.h"

#define MAX_ARGS (32 + 2 * CONFIG_MAX_FIELDS)   /* command, key, fixed members, fields */

struct redis_output {
    struct output base;
    struct redis_conn *conn;         /* one Redis; NULL with a cluster */
    struct redis_cluster *cl;        /* REDIS_CLUSTER: a connection per master */
    const struct config *conf;
    struct outbuf scratch;           /* values that are not bytes of the packet */
    unsigned shard_tag[64];          /* REDIS_STREAM_SHARDS: shard s is <channel>:{<tag[s]>} */
};

/* The connection for key: the one Redis, or the master of key's slot. */
static struct redis_conn *route(struct redis_output *ro, const char *key, size_t len)
{
    return ro->cl ? redis_cluster_conn(ro->cl, key, len) : ro->conn;
}

/* After a record's commands: what a cluster redirected is sent on. */
static void service(struct redis_output *ro)
{
    if (ro->cl)
        redis_cluster_service(ro->cl);
}

/* An argument: text in scratch (numbers, addresses, times, joined headers),
 * at an offset since scratch may move while it grows; or elsewhere (ptr). */
struct arg { size_t off, len; const uint8_t *ptr; };

#define ARG_LIT(s) ((struct arg){0, sizeof(s) - 1, (const uint8_t *)(s)})
#define ARG_STR(s, n) ((struct arg){0, (n), (const uint8_t *)(s)})

static int value_text(struct outbuf *s, const struct field_value *v, struct arg *a)
{
    if (v->kind == VALUE_STR && v->nparts == 1) {
        *a = (struct arg){0, v->parts[0].len, v->parts[0].ptr};
        return 0;
    }
    size_t start = s->len;
    int rc = 0;
    switch (v->kind) {
    case VALUE_UINT: rc = json_u64(s, v->num); break;
    case VALUE_TIME: rc = json_time(s, v->num); break;
    case VALUE_ADDR:
        rc = json_addr(s, v->parts[0].ptr, (int)v->parts[0].len);
        *a = (struct arg){start + 1, s->len - start - 2, NULL};   /* without the quotes */
        return rc;
    case VALUE_STR:
        for (uint32_t i = 0; i < v->nparts && rc == 0; i++)
            rc = (i ? json_raw(s, ",", 1) : 0) |
                 json_raw(s, (const char *)v->parts[i].ptr, v->parts[i].len);
        break;
    }
    *a = (struct arg){start, s->len - start, NULL};
    return rc;
}

/* A number, in scratch. */
static int num_arg(struct outbuf *s, uint64_t v, struct arg *a)
{
    size_t start = s->len;
    int rc = json_u64(s, v);
    *a = (struct arg){start, s->len - start, NULL};
    return rc;
}

/* A field record's members after the n arguments already in args: the
 * timestamp, filter, interface and flow, the fields the packet has, then
 * the flow's tags, worker and seq. Returns the new count, or -1 when out of
 * memory. */
static int field_members(struct outbuf *s, struct extract_ctx *x, const struct record_meta *m,
                         struct arg *args, int n)
{
    const struct filter_conf *f = m->filter;
    int rc = 0;
    args[n++] = ARG_LIT("Timestamp");
    size_t t0 = s->len;
    rc |= json_time(s, x->pkt->ts);
    args[n++] = (struct arg){t0, s->len - t0, NULL};
    args[n++] = ARG_LIT("filter");
    args[n++] = ARG_STR(f->name, strlen(f->name));
    const char *ifname = capture_iface_name(x->pkt->iface);
    if (ifname) {
        args[n++] = ARG_LIT("interface");
        args[n++] = ARG_STR(ifname, strlen(ifname));
    }
    if (m->flow_id) {
        args[n++] = ARG_LIT("flow");
        rc |= num_arg(s, m->flow_id, &args[n++]);
    }
    for (int i = 0; i < f->nfields && n + 2 <= MAX_ARGS; i++) {
        struct field_value v;
        if (!extract_field(x, f->field_id[i], &v))
            continue;
        args[n++] = ARG_STR(f->field_key[i], strlen(f->field_key[i]));
        rc |= value_text(s, &v, &args[n++]);
    }
    if (m->tags && n + 2 <= MAX_ARGS) {
        args[n++] = ARG_LIT("tags");
        args[n++] = ARG_STR(m->tags->csv, m->tags->csvlen);
    }
    if (m->seq && n + 4 <= MAX_ARGS) {
        args[n++] = ARG_LIT("worker");
        rc |= num_arg(s, m->worker, &args[n++]);
        args[n++] = ARG_LIT("seq");
        rc |= num_arg(s, m->seq, &args[n++]);
    }
    if (m->probe && n + 2 <= MAX_ARGS) {
        args[n++] = ARG_LIT("probe");
        args[n++] = ARG_STR(m->probe, strlen(m->probe));
    }
    return rc ? -1 : n;
}

/* args as hiredis-style argv/argl, once scratch no longer moves. */
static void argv_of(const struct outbuf *s, const struct arg *args, int n, const char **argv,
                    size_t *argl)
{
    for (int i = 0; i < n; i++) {
        argv[i] = args[i].ptr ? (const char *)args[i].ptr : s->buf + args[i].off;
        argl[i] = args[i].len;
    }
}

/* REDIS_STREAM_SHARDS N: a channel's records go to N streams, the record's
 * flow choosing one (its records stay in order). Shard s of N is the key
 * <channel>:{<t>}, t the smallest number whose key slot lies in the s-th
 * N-th of the slot space: an evenly split cluster keeps the shards on
 * different masters, and the names depend on N only. */
static void shard_tags(unsigned *tag, unsigned n)
{
    for (unsigned s = 0; s < n; s++) {
        unsigned lo = s * REDIS_CLUSTER_SLOTS / n, hi = (s + 1) * REDIS_CLUSTER_SLOTS / n;
        for (unsigned t = 0;; t++) {
            char d[16];
            unsigned slot = redis_keyslot(d, (size_t)snprintf(d, sizeof d, "%u", t));
            if (slot >= lo && slot < hi) {
                tag[s] = t;
                break;
            }
        }
    }
}

/* The hash tag of flow's shard. */
static unsigned shard_of(const struct redis_output *ro, uint64_t flow)
{
    unsigned n = ro->conf->redis_stream_shards;
    return ro->shard_tag[flow % (n ? n : 1)];
}

/* The stream key (REDIS_PUBSUB sharded: the channel shard) for a record of
 * flow `flow` on channel, appended to s (an argument by offset); with one
 * stream shard, the channel itself. -1: no memory. */
static int stream_key(struct redis_output *ro, struct outbuf *s, const char *channel,
                      uint64_t flow, struct arg *a)
{
    unsigned n = ro->conf->redis_stream_shards;
    size_t cl = strlen(channel), start = s->len;
    if (n <= 1 && !ro->conf->redis_spublish) {   /* sharded channels always have a tag */
        *a = ARG_STR(channel, cl);
        return 0;
    }
    char tag[24];
    size_t tl = redis_fmt_u64(tag, shard_of(ro, flow));
    int rc = json_raw(s, channel, cl) | json_raw(s, ":{", 2) | json_raw(s, tag, tl) |
             json_raw(s, "}", 1);
    *a = (struct arg){start, s->len - start, NULL};
    return rc;
}

/* Stream mode and sharded pub/sub: the shard keys (channels) of each
 * channel, for analyzers to read them all: HSET dati:streams <channel>
 * <key>,<key>,... (sent with the first pipeline to the channel's node). */
static void register_streams(struct redis_output *ro, const char *channel)
{
    struct outbuf *s = &ro->scratch;
    s->len = 0;
    for (unsigned i = 0; i < ro->conf->redis_stream_shards; i++) {
        struct arg a;
        if ((i && json_raw(s, ",", 1) < 0) || stream_key(ro, s, channel, i, &a) < 0)
            return;
        if (a.ptr && json_raw(s, channel, strlen(channel)) < 0)
            return;
    }
    const char *hset[] = {"HSET", "dati:streams", channel, s->buf};
    size_t hsetl[] = {4, 12, strlen(channel), s->len};
    struct redis_conn *c = route(ro, "dati:streams", 12);
    if (redis_conn_append(c, 4, hset, hsetl, REDIS_CMD_MORE) == 0)
        redis_conn_touch(c);
}

/* Hash layout: HSET <prefix><id> ..., EXPIRE, PUBLISH <channel> <key>.
 * REDIS_PUBSUB sharded: HSET <prefix>{<t>}:<id>, EXPIRE, SPUBLISH
 * <channel>:{<t>} <key>, t the shard of the record's flow: the three on one
 * master, in order (an analyzer never gets a key whose hash is not there). */
static int hash_field(struct output *o, struct extract_ctx *x, const struct record_meta *m)
{
    struct redis_output *ro = (struct redis_output *)o;
    const struct filter_conf *f = m->filter;
    uint64_t id;
    /* in a cluster ids come from dati:id's master, and the record goes
     * where its key's slot is, admitted there */
    struct redis_conn *c = ro->conn;
    if (ro->cl ? redis_cluster_next_id(ro->cl, &id) < 0
               : redis_conn_admit(c, NULL) < 0 || redis_conn_next_id(c, &id) < 0)
        return -1;   /* never queued: the caller counts it dropped (live: also by reason) */
    char key[128];   /* REDIS_PREFIX (at most 64 characters), {tag}:, the id */
    size_t keylen = strlen(f->redis_prefix);
    memcpy(key, f->redis_prefix, keylen);
    struct outbuf *s = &ro->scratch;
    s->len = 0;
    struct arg channel = ARG_STR(f->redis_channel, strlen(f->redis_channel));
    if (ro->conf->redis_spublish) {   /* the channel's and the key's tag: one slot */
        if (stream_key(ro, s, f->redis_channel, m->flow_id, &channel) < 0) {
            size_t cl = strlen(f->redis_channel);   /* out of memory: counted where it goes */
            COUNTER_INC(redis_conn_counters(route(ro, f->redis_channel, cl))->lost);
            return -1;
        }
        key[keylen++] = '{';
        keylen += redis_fmt_u64(key + keylen, shard_of(ro, m->flow_id));
        key[keylen++] = '}';
        key[keylen++] = ':';
    }
    keylen += redis_fmt_u64(key + keylen, id);
    if (ro->cl && redis_conn_admit(c = route(ro, key, keylen), NULL) < 0)
        return -1;
    struct arg args[MAX_ARGS];
    args[0] = ARG_LIT("HSET");
    args[1] = ARG_STR(key, keylen);
    int n = field_members(s, x, m, args, 2);
    if (n < 0) {
        COUNTER_INC(redis_conn_counters(c)->lost);
        return -1;
    }
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    argv_of(s, args, n, argv, argl);
    char ttl[24];
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, keylen, redis_fmt_u64(ttl, (uint64_t)f->redis_expire)};
    const char *pub[] = {ro->conf->redis_spublish ? "SPUBLISH" : "PUBLISH",
                         channel.ptr ? (const char *)channel.ptr : s->buf + channel.off, key};
    size_t publ[] = {strlen(pub[0]), channel.len, keylen};
    struct redis_mark mark = redis_conn_mark(c);
    if (redis_conn_append(c, n, argv, argl, REDIS_CMD_RECORD) < 0 ||
        redis_conn_append(c, 3, exp, expl, REDIS_CMD_MORE) < 0 ||
        redis_conn_append(c, 3, pub, publ, REDIS_CMD_MORE) < 0) {
        redis_conn_rollback(c, mark);   /* all three or none */
        COUNTER_INC(redis_conn_counters(c)->lost);
        return -1;
    }
    redis_conn_queued(c, 0);
    service(ro);
    return 0;
}

/* Stream layout: XADD <channel> MAXLEN ~ <n> * <member> <value> ... */
static int stream_field(struct output *o, struct extract_ctx *x, const struct record_meta *m)
{
    struct redis_output *ro = (struct redis_output *)o;
    const struct filter_conf *f = m->filter;
    struct outbuf *s = &ro->scratch;
    s->len = 0;
    struct arg args[MAX_ARGS];
    if (stream_key(ro, s, f->redis_channel, m->flow_id, &args[1]) < 0) {
        COUNTER_INC(redis_conn_counters(route(ro, f->redis_channel,
                                              strlen(f->redis_channel)))->lost);
        return -1;
    }
    struct redis_conn *c = route(ro, s->buf + args[1].off, args[1].len);
    if (redis_conn_admit(c, NULL) < 0)
        return -1;
    char maxlen[24];
    args[0] = ARG_LIT("XADD");
    args[2] = ARG_LIT("MAXLEN");
    args[3] = ARG_LIT("~");
    args[4] = ARG_STR(maxlen, redis_fmt_u64(maxlen, ro->conf->redis_maxlen));
    args[5] = ARG_LIT("*");
    int n = field_members(s, x, m, args, 6);
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    if (n >= 0)
        argv_of(s, args, n, argv, argl);
    if (n < 0 || redis_conn_append(c, n, argv, argl, REDIS_CMD_RECORD) < 0) {
        COUNTER_INC(redis_conn_counters(c)->lost);
        return -1;
    }
    redis_conn_queued(c, 0);
    service(ro);
    return 0;
}

/* Flow ids restart with each run: before its first write in this run,
 * dati:flow:<id> is deleted (in the same pipeline), so that a previous
 * run's hash kept by REDIS_FLOW_EXPIRE does not mix into it. */
static int fresh_hash(struct redis_conn *c, const char *key, size_t kl)
{
    const char *del[] = {"DEL", key};
    size_t dell[] = {3, kl};
    return redis_conn_append(c, 2, del, dell, REDIS_CMD_MORE);
}

/* The key of a flow's hash, dati:flow:<id> (with PROBE_NAME
 * dati:flow:<probe>:<id>), into k (FLOW_KEY_MAX bytes); its length. */
#define FLOW_KEY_MAX 96
static size_t flow_key(const struct redis_output *ro, char *k, uint64_t id)
{
    const char *probe = ro->conf->probe_name;   /* flow ids are a probe's own */
    size_t n = (size_t)snprintf(k, FLOW_KEY_MAX, probe[0] ? "dati:flow:%s:" : "dati:flow:", probe);
    return n + redis_fmt_u64(k + n, id);
}

/* REDIS_FLOW_EXPIRE: the flow record also as a hash dati:flow:<id> (json,
 * reason, packets, bytes) that expires on its own. */
static void flow_hash(struct redis_output *ro, const struct flow *fl, enum flow_end why,
                      const char *json, size_t len)
{
    char key[FLOW_KEY_MAX], packets[24], bytes[24], ttl[24];
    size_t kl = flow_key(ro, key, fl->id);
    struct redis_conn *c = route(ro, key, kl);
    if (ro->cl && redis_conn_admit(c, &redis_conn_counters(c)->flow_updates_dropped) < 0)
        return;
    size_t pl = redis_fmt_u64(packets, fl->packets[0] + fl->packets[1]);
    size_t bl = redis_fmt_u64(bytes, fl->bytes[0] + fl->bytes[1]);
    size_t tl = redis_fmt_u64(ttl, ro->conf->redis_flow_expire);
    const char *reason = flow_end_name(why);
    const char *hset[] = {"HSET", key, "json", json, "reason", reason, "packets", packets,
                          "bytes", bytes};
    size_t hsetl[] = {4, kl, 4, len, 6, strlen(reason), 7, pl, 5, bl};
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, kl, tl};
    if (!(fl->marks & FLOW_STATE_SENT) && fresh_hash(c, key, kl) < 0)
        return;
    if (redis_conn_append(c, 10, hset, hsetl, REDIS_CMD_MORE) < 0 ||
        redis_conn_append(c, 3, exp, expl, REDIS_CMD_MORE) < 0)
        redis_conn_log(c, "flow hash not queued", key);
}

/* A flow record: its JSON line in scratch (with tags, worker and seq), then
 * the layout's command for it (PUBLISH or XADD on the session channel). */
static int flow_record(struct output *o, const struct flow *fl, enum flow_end why,
                       const struct record_meta *m)
{
    struct redis_output *ro = (struct redis_output *)o;
    const struct config *conf = ro->conf;
    const char *channel = conf->session_channel ? conf->session_channel : "dati:sessions";
    struct outbuf *s = &ro->scratch;
    s->len = 0;
    /* the stream's key first (a shard by flow), then the JSON line */
    struct arg key = ARG_STR(channel, strlen(channel));
    if ((conf->redis_stream || conf->redis_spublish) && stream_key(ro, s, channel, fl->id, &key) < 0)
        s->len = 0, key.len = 0;
    size_t json = s->len;
    struct redis_conn *c = route(ro, key.ptr ? channel : s->buf + key.off, key.len);
    if (!key.len || json_flow(s, fl, why, m->filter_names) < 0 || json_meta(s, m) < 0) {
        COUNTER_INC(redis_conn_counters(c)->flows_lost);
        return -1;
    }
    const char *skey = key.ptr ? channel : s->buf + key.off;
    char maxlen[24];
    size_t ml = redis_fmt_u64(maxlen, conf->redis_maxlen);
    const char *pub[] = {conf->redis_spublish ? "SPUBLISH" : "PUBLISH", skey, s->buf + json};
    size_t publ[] = {strlen(pub[0]), key.len, s->len - json - 1};   /* without the newline */
    const char *xadd[] = {"XADD", skey, "MAXLEN", "~", maxlen, "*", "flow", s->buf + json};
    size_t xaddl[] = {4, key.len, 6, 1, ml, 1, 4, s->len - json - 1};
    if (redis_conn_admit(c, NULL) < 0)   /* counted there, by reason */
        return -1;
    if (conf->redis_stream ? redis_conn_append(c, 8, xadd, xaddl, REDIS_CMD_FLOW) < 0
                           : redis_conn_append(c, 3, pub, publ, REDIS_CMD_FLOW) < 0) {
        COUNTER_INC(redis_conn_counters(c)->flows_lost);
        return -1;
    }
    redis_conn_queued(c, 1);
    if (conf->redis_flow_expire)
        flow_hash(ro, fl, why, s->buf + json, s->len - json - 1);
    service(ro);
    return 0;
}

/* FLOW_STATE_INTERVAL: the state of a flow as hash dati:flow:<id> (counters,
 * first/last, filters, tags, "state" active or the end reason). Active: with
 * a TTL of PKT_TTL + 2 intervals, refreshed with each update. Ended: the
 * final counters, kept with the flow record for REDIS_FLOW_EXPIRE, else the
 * key is deleted. Live mode: skipped when the queue is full or Redis down. */
static void flow_state(struct output *o, const struct flow *fl, int ended, enum flow_end why,
                       const struct record_meta *m)
{
    struct redis_output *ro = (struct redis_output *)o;
    const struct config *conf = ro->conf;
    char key[FLOW_KEY_MAX];
    size_t kl = flow_key(ro, key, fl->id);
    struct redis_conn *c = route(ro, key, kl);
    struct redis_counters *n_ = redis_conn_counters(c);
    if (ended && !conf->redis_flow_expire && !(fl->marks & FLOW_STATE_SENT))
        return;   /* no hash to remove: nothing to send */
    if (redis_conn_admit(c, &n_->flow_updates_dropped) < 0)
        return;
    if (ended && !conf->redis_flow_expire) {
        const char *del[] = {"DEL", key};
        size_t dell[] = {3, kl};
        if (redis_conn_append(c, 2, del, dell, REDIS_CMD_MORE) < 0)
            COUNTER_INC(n_->flow_updates_dropped);
        else
            COUNTER_INC(n_->flow_states);
        return;
    }
    const struct flow_key *k = &fl->key;
    int alen = k->family == 4 ? 4 : 16;
    struct outbuf *s = &ro->scratch;
    s->len = 0;
    /* values in scratch, as offsets: it may move while growing */
    enum { F_CLIENT, F_CPORT, F_SERVER, F_SPORT, F_PROTO, F_FIRST, F_LAST, F_CP, F_CB, F_SP, F_SB,
           F_P, F_B, F_FILTERS, F_N };
    static const char *const members[F_N] = {"client", "client_port", "server", "server_port",
                                             "proto", "first", "last", "c2s_packets",
                                             "c2s_bytes", "s2c_packets", "s2c_bytes", "packets",
                                             "bytes", "filters"};
    size_t off[F_N + 1];
    int rc = 0;
    for (int i = 0; i < F_N; i++) {
        off[i] = s->len;
        switch (i) {
        case F_CLIENT: rc |= json_addr(s, fl->client_is_lo ? k->lo_addr : k->hi_addr, alen); break;
        case F_SERVER: rc |= json_addr(s, fl->client_is_lo ? k->hi_addr : k->lo_addr, alen); break;
        case F_CPORT: rc |= json_u64(s, fl->client_is_lo ? k->lo_port : k->hi_port); break;
        case F_SPORT: rc |= json_u64(s, fl->client_is_lo ? k->hi_port : k->lo_port); break;
        case F_PROTO: rc |= json_u64(s, k->proto); break;
        case F_FIRST: rc |= json_time(s, fl->first_ts); break;
        case F_LAST: rc |= json_time(s, fl->last_ts); break;
        case F_CP: rc |= json_u64(s, fl->packets[FLOW_C2S]); break;
        case F_CB: rc |= json_u64(s, fl->bytes[FLOW_C2S]); break;
        case F_SP: rc |= json_u64(s, fl->packets[FLOW_S2C]); break;
        case F_SB: rc |= json_u64(s, fl->bytes[FLOW_S2C]); break;
        case F_P: rc |= json_u64(s, fl->packets[0] + fl->packets[1]); break;
        case F_B: rc |= json_u64(s, fl->bytes[0] + fl->bytes[1]); break;
        case F_FILTERS:
            for (int f = 0, first = 1; f < 64; f++)
                if ((fl->filters >> f) & 1) {
                    rc |= (first ? 0 : json_raw(s, ",", 1)) | json_lit(s, m->filter_names[f]);
                    first = 0;
                }
            break;
        }
    }
    off[F_N] = s->len;
    if (rc) {   /* out of memory */
        COUNTER_INC(n_->flow_updates_dropped);
        return;
    }
    const char *argv[2 + 2 * (F_N + 2)];
    size_t argl[2 + 2 * (F_N + 2)];
    int n = 0;
    argv[n] = "HSET", argl[n++] = 4;
    argv[n] = key, argl[n++] = kl;
    for (int i = 0; i < F_N; i++) {
        int quoted = i == F_CLIENT || i == F_SERVER;   /* json_addr: without the quotes */
        argv[n] = members[i], argl[n++] = strlen(members[i]);
        argv[n] = s->buf + off[i] + quoted, argl[n++] = off[i + 1] - off[i] - 2 * (size_t)quoted;
    }
    const char *state = ended ? flow_end_name(why) : "active";
    argv[n] = "state", argl[n++] = 5;
    argv[n] = state, argl[n++] = strlen(state);
    if (m->tags) {
        argv[n] = "tags", argl[n++] = 4;
        argv[n] = m->tags->csv, argl[n++] = m->tags->csvlen;
    }
    if (!ended && !(fl->marks & FLOW_STATE_SENT) && fresh_hash(c, key, kl) < 0) {
        COUNTER_INC(n_->flow_updates_dropped);
        return;
    }
    char ttl[24];
    uint64_t secs = ended ? conf->redis_flow_expire
                          : (uint64_t)conf->pkt_ttl + 2 * (uint64_t)conf->flow_state_interval;
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, kl, redis_fmt_u64(ttl, secs)};
    if (redis_conn_append(c, n, argv, argl, REDIS_CMD_MORE) < 0 ||
        redis_conn_append(c, 3, exp, expl, REDIS_CMD_MORE) < 0) {
        COUNTER_INC(n_->flow_updates_dropped);
        return;
    }
    COUNTER_INC(n_->flow_states);
    redis_conn_touch(c);
    service(ro);
}

/* FLOW_EVENTS: PUBLISH <channel> <the flow record as it is now, reason
 * "start">, with its tags. Not counted as a flow record. Live mode: skipped
 * when the queue is full or Redis down. */
static void flow_event(struct output *o, const struct flow *fl, const struct record_meta *m)
{
    struct redis_output *ro = (struct redis_output *)o;
    const char *channel = ro->conf->flow_events;
    struct outbuf *s = &ro->scratch;
    s->len = 0;
    /* sharded pub/sub: the flow's shard of the channel, first in scratch */
    struct arg ch = ARG_STR(channel, strlen(channel));
    int bad = ro->conf->redis_spublish && stream_key(ro, s, channel, fl->id, &ch) < 0;
    size_t json = s->len;
    const char *chan = ch.ptr ? channel : s->buf + ch.off;
    struct redis_conn *c = route(ro, chan, ch.len);
    struct redis_counters *n = redis_conn_counters(c);
    if (bad || json_flow(s, fl, FLOW_START, m->filter_names) < 0 || json_meta(s, m) < 0) {
        COUNTER_INC(n->flow_updates_dropped);   /* out of memory */
        return;
    }
    if (redis_conn_admit(c, &n->flow_updates_dropped) < 0)
        return;
    const char *pub[] = {ro->conf->redis_spublish ? "SPUBLISH" : "PUBLISH",
                         ch.ptr ? channel : s->buf + ch.off, s->buf + json};
    size_t publ[] = {strlen(pub[0]), ch.len, s->len - json - 1};
    if (redis_conn_append(c, 3, pub, publ, REDIS_CMD_MORE) < 0) {
        COUNTER_INC(n->flow_updates_dropped);
        return;
    }
    COUNTER_INC(n->flow_events);
    redis_conn_touch(c);
    service(ro);
}

static void set_live(struct output *o)
{
    struct redis_output *ro = (struct redis_output *)o;
    if (ro->cl)
        redis_cluster_set_live(ro->cl);
    else
        redis_conn_set_live(ro->conn);
}

static void drain(struct output *o)
{
    struct redis_output *ro = (struct redis_output *)o;
    if (ro->cl)
        redis_cluster_drain(ro->cl);
    else
        redis_conn_drain(ro->conn);
}

static void flush(struct output *o)
{
    struct redis_output *ro = (struct redis_output *)o;
    if (ro->cl)
        redis_cluster_flush(ro->cl);
    else
        redis_conn_flush(ro->conn);
}

static void sum_conn(struct redis_conn *c, struct redis_counters *rd)
{
    const struct redis_counters *rc = redis_conn_counters(c);
    rd->records += COUNTER_GET(rc->records);
    rd->flows += COUNTER_GET(rc->flows);
    rd->lost += COUNTER_GET(rc->lost);
    rd->flows_lost += COUNTER_GET(rc->flows_lost);
    rd->commands += COUNTER_GET(rc->commands);
    rd->errors += COUNTER_GET(rc->errors);
    rd->errors_oom += COUNTER_GET(rc->errors_oom);
    rd->errors_auth += COUNTER_GET(rc->errors_auth);
    rd->errors_wrongtype += COUNTER_GET(rc->errors_wrongtype);
    rd->errors_other += COUNTER_GET(rc->errors_other);
    rd->reconnects += COUNTER_GET(rc->reconnects);
    rd->flow_states += COUNTER_GET(rc->flow_states);
    rd->flow_events += COUNTER_GET(rc->flow_events);
    rd->flow_updates_dropped += COUNTER_GET(rc->flow_updates_dropped);
    rd->queued += COUNTER_GET(rc->queued);
    rd->queued_peak += COUNTER_GET(rc->queued_peak);
    rd->dropped_queue_full += COUNTER_GET(rc->dropped_queue_full);
    rd->dropped_disconnected += COUNTER_GET(rc->dropped_disconnected);
    rd->rerouted += COUNTER_GET(rc->rerouted);
    rd->wait_short += COUNTER_GET(rc->wait_short);
}

/* The statistics read a cluster's node list while the worker may add a
 * node (a redirection to a new one): the count is read first, and nodes
 * are never removed. */
static void sum(const struct output *o, struct stats_totals *t)
{
    struct redis_output *ro = (struct redis_output *)o;
    t->redis = 1;
    if (!ro->cl) {
        sum_conn(ro->conn, &t->rd);
        return;
    }
    int n = redis_cluster_nodes(ro->cl);
    for (int i = 0; i < n; i++) {
        struct redis_conn *c = redis_cluster_node(ro->cl, i);
        sum_conn(c, &t->rd);
        const char *name = redis_cluster_node_name(ro->cl, i);
        int k = 0;   /* the same node in every worker's cluster: by name */
        while (k < t->nnodes && strcmp(t->node[k].name, name) != 0)
            k++;
        if (k == REDIS_CLUSTER_MAX_NODES)
            continue;
        if (k == t->nnodes) {
            snprintf(t->node[k].name, sizeof t->node[k].name, "%s", name);
            memset(&t->node[k].rd, 0, sizeof t->node[k].rd);
            t->nnodes++;
        }
        sum_conn(c, &t->node[k].rd);
    }
    const struct redis_cluster_counters *cc = redis_cluster_counters(ro->cl);
    t->cluster = 1;
    uint64_t masters = COUNTER_GET(cc->masters);   /* each worker connects to them all */
    if (masters > t->cl.masters)
        t->cl.masters = masters;
    t->cl.moved += COUNTER_GET(cc->moved);
    t->cl.ask += COUNTER_GET(cc->ask);
    t->cl.retries += COUNTER_GET(cc->retries);
    t->cl.refreshes += COUNTER_GET(cc->refreshes);
    t->cl.failovers += COUNTER_GET(cc->failovers);
}

static void close_(struct output *o)
{
    struct redis_output *ro = (struct redis_output *)o;
    if (ro->cl)
        redis_cluster_close(ro->cl);
    else
        redis_conn_close(ro->conn);
    outbuf_fini(&ro->scratch);
    free(ro);
}

static const struct output_ops hash_ops = {
    .field = hash_field, .flow = flow_record, .flow_state = flow_state,
    .flow_event = flow_event, .set_live = set_live, .drain = drain, .flush = flush,
    .sum = sum, .close = close_,
};

static const struct output_ops stream_ops = {
    .field = stream_field, .flow = flow_record, .flow_state = flow_state,
    .flow_event = flow_event, .set_live = set_live, .drain = drain, .flush = flush,
    .sum = sum, .close = close_,
};

struct output *output_redis_open(const struct config *conf, char *err, size_t errlen)
{
    struct redis_output *ro = calloc(1, sizeof *ro);
    if (!ro || outbuf_init(&ro->scratch, NULL) < 0) {
        snprintf(err, errlen, "out of memory");
        free(ro);
        return NULL;
    }
    ro->base.ops = conf->redis_stream ? &stream_ops : &hash_ops;
    ro->conf = conf;
    if (conf->redis_ncluster ? !(ro->cl = redis_cluster_open(conf, err, errlen))
                             : !(ro->conn = redis_conn_open(conf, err, errlen))) {
        outbuf_fini(&ro->scratch);
        free(ro);
        return NULL;
    }
    if ((conf->redis_stream && (conf->redis_stream_shards > 1 || conf->redis_ncluster)) ||
        conf->redis_spublish) {
        shard_tags(ro->shard_tag, conf->redis_stream_shards);
        for (int i = 0; i < conf->nfilters; i++)
            if (conf->filter[i].nfields)
                register_streams(ro, conf->filter[i].redis_channel);
        register_streams(ro, conf->session_channel ? conf->session_channel : "dati:sessions");
        if (conf->redis_spublish && conf->flow_events)
            register_streams(ro, conf->flow_events);
    }
    return &ro->base;
}
