/* output-redis.c - the seed's Redis layout over hiredis, pipelined. */
#include "output-redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "counter.h"
#include "log.h"
#include "output-json.h"

#define ID_BLOCK 1024                    /* ids reserved per INCRBY */
#define ID_KEY "dati:id"                 /* the counter the ids come from */
#define KEY_PREFIX "dati:rec:"           /* record hashes: dati:rec:<id> */
#define MAX_ARGS (8 + 2 * CONFIG_MAX_FIELDS)

struct redis_out {
    redisContext *c;
    const struct config *conf;
    uint64_t next_id, ids_left;          /* the reserved block */
    unsigned queued_records;             /* records in the pipeline */
    unsigned queued_replies;             /* replies to read at the flush */
    uint64_t since;                      /* monotonic ns of the oldest queued record */
    struct outbuf scratch;               /* values that are not bytes of the packet */
    struct redis_counters n;
};

static redisContext *connect_to(const struct config *conf, char *err, size_t errlen)
{
    struct timeval tv = {2, 0};
    redisContext *c = conf->redis_sock ? redisConnectUnixWithTimeout(conf->redis_sock, tv)
                                       : redisConnectWithTimeout(conf->redis_host ? conf->redis_host
                                                                                  : "127.0.0.1",
                                                                 (int)conf->redis_port, tv);
    const char *where = conf->redis_sock ? conf->redis_sock : conf->redis_host ? conf->redis_host
                                                                             : "127.0.0.1";
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s%s%.0u: %s", where,
                 conf->redis_sock ? "" : ":", conf->redis_sock ? 0 : conf->redis_port,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisReply *rep = NULL;
    if (conf->redis_auth) {
        /* "password" or "user password" (Redis 6 ACL) */
        const char *sp = strchr(conf->redis_auth, ' ');
        rep = sp ? redisCommand(c, "AUTH %b %s", conf->redis_auth,
                                (size_t)(sp - conf->redis_auth), sp + 1)
                 : redisCommand(c, "AUTH %s", conf->redis_auth);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused AUTH: %s", where,
                     rep ? rep->str : c->errstr);
            freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    if (conf->redis_db) {
        rep = redisCommand(c, "SELECT %u", conf->redis_db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s refused SELECT %u: %s", where, conf->redis_db,
                     rep ? rep->str : c->errstr);
            freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

struct redis_out *redis_out_open(const struct config *conf, char *err, size_t errlen)
{
    struct redis_out *r = calloc(1, sizeof *r);
    if (!r || outbuf_init(&r->scratch, NULL) < 0) {
        snprintf(err, errlen, "out of memory");
        free(r);
        return NULL;
    }
    r->conf = conf;
    r->c = connect_to(conf, err, errlen);
    if (!r->c) {
        outbuf_fini(&r->scratch);
        free(r);
        return NULL;
    }
    return r;
}

void redis_out_close(struct redis_out *r)
{
    if (!r)
        return;
    redis_out_flush(r);
    redisFree(r->c);
    outbuf_fini(&r->scratch);
    free(r);
}

const struct redis_counters *redis_out_counters(const struct redis_out *r) { return &r->n; }

/* Reads the replies of everything queued; an error reply or a lost
 * connection makes the pipeline's records count as lost. */
void redis_out_flush(struct redis_out *r)
{
    if (r->queued_replies == 0)
        return;
    int failed = 0;
    for (unsigned i = 0; i < r->queued_replies; i++) {
        redisReply *rep = NULL;
        if (!r->c || redisGetReply(r->c, (void **)&rep) != REDIS_OK) {
            failed = 1;
            break;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            COUNTER_INC(r->n.errors);
            log_warn("Redis error reply: %s", rep->str);
            failed = 1;
        }
        freeReplyObject(rep);
    }
    if (failed)
        COUNTER_ADD(r->n.lost, r->queued_records);
    else
        COUNTER_ADD(r->n.records, r->queued_records);
    if (failed && r->c && r->c->err) {
        log_warn("Redis connection lost: %s", r->c->errstr);
        char err[256];
        redisFree(r->c);
        r->c = connect_to(r->conf, err, sizeof err);
        if (r->c)
            COUNTER_INC(r->n.reconnects);
    }
    r->queued_records = 0;
    r->queued_replies = 0;
    r->since = 0;
}

void redis_out_drain(struct redis_out *r, uint64_t now)
{
    if (r->since && now - r->since >= OUTBUF_DRAIN_NS)
        redis_out_flush(r);
}

static int append(struct redis_out *r, int argc, const char **argv, const size_t *len)
{
    if (!r->c || redisAppendCommandArgv(r->c, argc, argv, len) != REDIS_OK)
        return -1;
    r->queued_replies++;
    COUNTER_INC(r->n.commands);
    return 0;
}

/* Takes the next id, reserving a block when the last one is used up. */
static int next_id(struct redis_out *r, uint64_t *id)
{
    if (r->ids_left == 0) {
        redis_out_flush(r);   /* a synchronous round trip must not interleave replies */
        redisReply *rep = r->c ? redisCommand(r->c, "INCRBY " ID_KEY " %d", ID_BLOCK) : NULL;
        if (!rep || rep->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(rep);
            return -1;
        }
        r->next_id = (uint64_t)rep->integer - ID_BLOCK + 1;
        r->ids_left = ID_BLOCK;
        freeReplyObject(rep);
    }
    *id = r->next_id++;
    r->ids_left--;
    return 0;
}

/* The text of a value in scratch (numbers, addresses, times, joined headers)
 * or in the packet (a plain string); offsets, since scratch may move. */
struct arg { size_t off, len; const uint8_t *ptr; };

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

int redis_out_record(struct redis_out *r, struct extract_ctx *x, const struct filter_conf *f,
                     int filter_index, uint64_t flow_id, unsigned sub)
{
    (void)filter_index;
    (void)sub;
    uint64_t id;
    if (next_id(r, &id) < 0) {
        COUNTER_INC(r->n.lost);
        return -1;
    }
    struct outbuf *s = &r->scratch;
    s->len = 0;
    struct arg args[MAX_ARGS];
    int n = 0, rc = 0;
    char key[48];
    int keylen = snprintf(key, sizeof key, KEY_PREFIX "%llu", (unsigned long long)id);
    args[n++] = (struct arg){0, 4, (const uint8_t *)"HSET"};
    args[n++] = (struct arg){0, (size_t)keylen, (const uint8_t *)key};
    args[n++] = (struct arg){0, 9, (const uint8_t *)"Timestamp"};
    size_t t0 = s->len;
    rc |= json_time(s, x->pkt->ts);
    args[n++] = (struct arg){t0, s->len - t0, NULL};
    args[n++] = (struct arg){0, 6, (const uint8_t *)"filter"};
    args[n++] = (struct arg){0, strlen(f->name), (const uint8_t *)f->name};
    if (flow_id) {
        args[n++] = (struct arg){0, 4, (const uint8_t *)"flow"};
        t0 = s->len;
        rc |= json_u64(s, flow_id);
        args[n++] = (struct arg){t0, s->len - t0, NULL};
    }
    for (int i = 0; i < f->nfields && n + 2 <= MAX_ARGS; i++) {
        struct field_value v;
        if (!extract_field(x, f->field_id[i], &v))
            continue;
        args[n++] = (struct arg){0, strlen(f->field_key[i]), (const uint8_t *)f->field_key[i]};
        rc |= value_text(s, &v, &args[n++]);
    }
    if (rc) {
        COUNTER_INC(r->n.lost);
        return -1;
    }
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    for (int i = 0; i < n; i++) {
        argv[i] = args[i].ptr ? (const char *)args[i].ptr : s->buf + args[i].off;
        argl[i] = args[i].len;
    }
    char ttl[24];
    int ttllen = snprintf(ttl, sizeof ttl, "%d", f->redis_expire);
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, (size_t)keylen, (size_t)ttllen};
    const char *pub[] = {"PUBLISH", f->redis_channel, key};
    size_t publ[] = {7, strlen(f->redis_channel), (size_t)keylen};
    if (append(r, n, argv, argl) < 0 || append(r, 3, exp, expl) < 0 || append(r, 3, pub, publ) < 0) {
        COUNTER_INC(r->n.lost);
        return -1;
    }
    if (r->since == 0)
        r->since = outbuf_now();
    if (++r->queued_records >= r->conf->redis_pipeline)
        redis_out_flush(r);
    return 0;
}

int redis_out_flow(struct redis_out *r, const struct flow *fl, enum flow_end why,
                   const char *const *names)
{
    struct outbuf *s = &r->scratch;
    s->len = 0;
    if (json_flow(s, fl, why, names) < 0) {
        COUNTER_INC(r->n.lost);
        return -1;
    }
    const char *channel = r->conf->session_channel ? r->conf->session_channel : "dati:sessions";
    const char *pub[] = {"PUBLISH", channel, s->buf};
    size_t publ[] = {7, strlen(channel), s->len - 1};   /* without the newline */
    if (append(r, 3, pub, publ) < 0) {
        COUNTER_INC(r->n.lost);
        return -1;
    }
    COUNTER_INC(r->n.flows);
    if (r->since == 0)
        r->since = outbuf_now();
    if (r->queued_replies >= 3 * r->conf->redis_pipeline)
        redis_out_flush(r);
    return 0;
}
