/* feedback.c - the feedback subscriber thread, the per-worker command
 * queues, and the acknowledgements. */
#include "feedback.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "counter.h"
#include "flowtag.h"
#include "log.h"
#include "output-json.h"
#include "redis-conn.h"
#include "worker.h"

struct feedback {
    const struct config *conf;
    struct worker *workers;
    int nworkers;
    struct fb_queue *q;            /* one per worker */
    uint32_t qcap;                 /* commands a queue holds: FB_QUEUE_SIZE (or the test hook's) */
    redisContext *sub, *pub;
    const char *channel;
    char reply[256];
    pthread_t thread;
    int started;
    int stop;                      /* atomic: the thread ends */
    struct fb_item *done;          /* atomic stack: workers push, the thread takes all */
    struct outbuf ack;
    unsigned pub_pending;          /* PUBLISH replies not read yet */
    uint64_t retry_at, last_log;
    uint64_t heard, pinged;        /* subscriber: last bytes read, PING outstanding since (0: none) */
    struct feedback_counters c;
};

/* ------------------------------------------------------------ the queues */

static int q_push(struct fb_queue *q, uint32_t cap, struct fb_item *it)
{
    uint32_t head = q->head;
    if (head - __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE) >= cap)
        return 0;
    q->slot[head & (FB_QUEUE_SIZE - 1)] = it;
    __atomic_store_n(&q->head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

static struct fb_item *q_peek(struct fb_queue *q)
{
    uint32_t tail = q->tail;
    if (tail == __atomic_load_n(&q->head, __ATOMIC_ACQUIRE))
        return NULL;
    return q->slot[tail & (FB_QUEUE_SIZE - 1)];
}

static void q_drop_front(struct fb_queue *q)
{
    __atomic_store_n(&q->tail, q->tail + 1, __ATOMIC_RELEASE);
}

static struct fb_item *q_pop(struct fb_queue *q)
{
    struct fb_item *it = q_peek(q);
    if (it)
        q_drop_front(q);
    return it;
}

/* One worker (or a full queue) is done with it; the last hands it back. */
static void release(struct feedback *fb, struct fb_item *it)
{
    if (__atomic_sub_fetch(&it->pending, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    struct fb_item *head = __atomic_load_n(&fb->done, __ATOMIC_RELAXED);
    do
        it->next = head;
    while (!__atomic_compare_exchange_n(&fb->done, &head, it, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

void feedback_poll(struct feedback *fb, int w, struct flowtag *t)
{
    struct fb_item *it;
    int rules = 0;
    for (int n = 0; n < FB_POLL_MAX && (it = q_peek(&fb->q[w])); n++) {
        if (it->cmd.by_match && rules++ == FB_POLL_RULES)
            break;   /* a flood of rules waits for the next drains: capture goes on */
        q_drop_front(&fb->q[w]);
        const char *why = NULL;
        enum ft_result r = flowtag_apply(t, &it->cmd, &why);
        if (r == FT_APPLIED)
            __atomic_add_fetch(&it->applied, 1, __ATOMIC_RELAXED);
        else if (r == FT_REFUSED) {
            __atomic_store_n(&it->why, why, __ATOMIC_RELAXED);
            __atomic_add_fetch(&it->refused, 1, __ATOMIC_RELAXED);
        }
        release(fb, it);
    }
}

/* ------------------------------------------------------------ replies */

static void log_limited(struct feedback *fb, const char *what, const char *detail)
{
    if (log_due(&fb->last_log, 1000000000u))
        log_warn("feedback: %s: %s", what, detail);
}


static void publish(struct feedback *fb)
{
    struct outbuf *b = &fb->ack;
    if (!fb->pub) {
        char err[256];
        uint64_t now = outbuf_now();
        if (now < fb->retry_at || !(fb->pub = redis_conn_connect(fb->conf, err, sizeof err))) {
            if (now >= fb->retry_at) {
                log_limited(fb, "reply connection", err);
                fb->retry_at = now + 1000000000u;
            }
            COUNTER_INC(fb->c.acks_lost);
            b->len = 0;
            return;
        }
        COUNTER_INC(fb->c.reconnects);
    }
    if (redisAppendCommand(fb->pub, "PUBLISH %s %b", fb->reply, b->buf, b->len) == REDIS_OK)
        fb->pub_pending++;
    else   /* no memory: no reply to wait for */
        COUNTER_INC(fb->c.acks_lost);
    b->len = 0;
}

/* Sends the replies and reads Redis's answers (numbers of receivers). */
static void flush_replies(struct feedback *fb)
{
    if (!fb->pub_pending)
        return;
    int done = 0;
    while (!done)
        if (redisBufferWrite(fb->pub, &done) != REDIS_OK)
            goto broken;
    for (; fb->pub_pending; fb->pub_pending--) {
        redisReply *rep;
        if (redisGetReply(fb->pub, (void **)&rep) != REDIS_OK)
            goto broken;
        if (rep->type == REDIS_REPLY_ERROR) {
            log_limited(fb, "reply refused", rep->str);
            COUNTER_INC(fb->c.acks_lost);
        } else {
            COUNTER_INC(fb->c.acks);
        }
        freeReplyObject(rep);
    }
    return;
broken:
    log_limited(fb, "reply connection lost", fb->pub->errstr);
    COUNTER_ADD(fb->c.acks_lost, fb->pub_pending);
    fb->pub_pending = 0;
    redisFree(fb->pub);
    fb->pub = NULL;
}

/* Starts a reply: outcome, the client's id, and the command (unless only_id:
 * a rejected message, of which the id is known when it came before the error). */
static int begin(struct feedback *fb, int ok, const struct fb_cmd *c, int only_id)
{
    struct outbuf *b = &fb->ack;
    int rc = json_lit(b, ok ? "{\"ok\":true" : "{\"ok\":false");
    if (c && c->id[0]) {
        rc |= json_lit(b, ",\"id\":");
        rc |= json_lit(b, c->id);   /* checked JSON text: a number or a string */
    }
    if (c && !only_id) {
        rc |= json_lit(b, ",\"op\":\"");
        rc |= json_lit(b, fb_op_name(c->op));
        rc |= json_lit(b, "\"");
        if (c->flow) {
            rc |= json_lit(b, ",\"flow\":");
            rc |= json_u64(b, c->flow);
        }
        if (c->by_match)
            rc |= json_lit(b, ",\"match\":true");
        if (c->op == FB_TAG || c->op == FB_UNTAG) {
            rc |= json_lit(b, ",\"tag\":\"");
            rc |= json_lit(b, c->tag);
            rc |= json_lit(b, "\"");
        }
    }
    return rc;
}

static void reject(struct feedback *fb, const struct fb_cmd *c, int only_id, const char *reason,
                   const char *error)
{
    struct outbuf *b = &fb->ack;
    int rc = begin(fb, 0, c, only_id);
    rc |= json_lit(b, ",\"reason\":\"");
    rc |= json_lit(b, reason);
    rc |= json_lit(b, "\",\"error\":");
    rc |= json_str(b, (const uint8_t *)error, strlen(error));
    rc |= json_lit(b, "}");
    if (rc == 0)
        publish(fb);
    b->len = 0;
}

/* A rejection that says how many workers a match rule reached. */
static void reject_counted(struct feedback *fb, const struct fb_item *it, const char *reason,
                           const char *error)
{
    char text[192];
    if (it->cmd.by_match && it->applied) {
        snprintf(text, sizeof text, "%s (installed by %d of %d workers)", error, it->applied,
                 fb->nworkers);
        error = text;
    }
    reject(fb, &it->cmd, 0, reason, error);
}

/* A flow command is done when the worker holding the flow applied it; a
 * match rule only when every worker installed it (else some flows would
 * silently miss the tag). */
static void acknowledge(struct feedback *fb, struct fb_item *it)
{
    const struct fb_cmd *c = &it->cmd;
    if (c->by_match ? it->applied == fb->nworkers : it->applied > 0) {
        COUNTER_INC(fb->c.applied);
        if (begin(fb, 1, c, 0) == 0 && json_lit(&fb->ack, "}") == 0)
            publish(fb);
        fb->ack.len = 0;
    } else if (it->refused) {
        COUNTER_INC(fb->c.refused);
        reject_counted(fb, it, "refused", it->why ? it->why : "refused");
    } else if (it->dropped) {
        COUNTER_INC(fb->c.queue_full);
        reject_counted(fb, it, "queue_full", "a worker's command queue was full");
    } else if (it->stopped) {
        COUNTER_INC(fb->c.stopped);
        reject_counted(fb, it, "stopped", "dati stopped before applying it");
    } else {
        COUNTER_INC(fb->c.unknown_flow);
        reject(fb, c, 0, "unknown_flow", "no active flow has this id");
    }
}

/* Acknowledges what the workers handed back, oldest first. */
static void finish_done(struct feedback *fb)
{
    struct fb_item *it = __atomic_exchange_n(&fb->done, NULL, __ATOMIC_ACQUIRE), *fifo = NULL;
    while (it) {
        struct fb_item *next = it->next;
        it->next = fifo;
        fifo = it;
        it = next;
    }
    while (fifo) {
        struct fb_item *next = fifo->next;
        acknowledge(fb, fifo);
        free(fifo);
        fifo = next;
    }
}

/* ------------------------------------------------------------ commands */

static void stats_reply(struct feedback *fb, const struct fb_cmd *c)
{
    struct outbuf *b = &fb->ack;
    uint64_t packets = 0, active = 0;
    for (int w = 0; w < fb->nworkers; w++) {
        packets += COUNTER_GET(fb->workers[w].c.packets);
        active += COUNTER_GET(fb->workers[w].flows.active);
    }
    int rc = begin(fb, 1, c, 0);
    rc |= json_lit(b, ",\"packets\":");
    rc |= json_u64(b, packets);
    rc |= json_lit(b, ",\"flows_active\":");
    rc |= json_u64(b, active);
    rc |= json_lit(b, ",\"feedback\":");
    rc |= feedback_json(b, fb);
    rc |= json_lit(b, "}");
    if (rc == 0)
        publish(fb);
    b->len = 0;
}

static void on_command(struct feedback *fb, const char *msg, size_t len)
{
    COUNTER_INC(fb->c.received);
    struct fb_item *it = calloc(1, sizeof *it);
    if (!it) {
        reject(fb, NULL, 1, "out_of_memory", "no memory for the command");
        return;
    }
    char why[128];
    enum fb_reject rj = fb_cmd_parse(msg, len, &it->cmd, why, sizeof why);
    if (rj != FB_OK) {
        uint64_t *n[] = {NULL, &fb->c.malformed, &fb->c.unknown, &fb->c.invalid, &fb->c.oversized};
        COUNTER_INC(*n[rj]);
        reject(fb, &it->cmd, 1, fb_reject_name(rj), why);
        free(it);
        return;
    }
    if (it->cmd.op == FB_STATS) {
        stats_reply(fb, &it->cmd);
        free(it);
        return;
    }
    it->received_ns = outbuf_now();
    __atomic_store_n(&it->pending, fb->nworkers, __ATOMIC_RELAXED);
    for (int w = 0; w < fb->nworkers; w++) {
        if (!q_push(&fb->q[w], fb->qcap, it)) {   /* only this thread writes dropped */
            it->dropped++;
            release(fb, it);
        }
    }
}

static void on_reply(struct feedback *fb, redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return;   /* subscribe confirmations */
    on_command(fb, rep->element[2]->str, rep->element[2]->len);
}

/* Handles the messages the subscriber connection has: those already in
 * hiredis's buffer, and (read) what the socket has. -1: the connection broke. */
static int take_messages(struct feedback *fb, int read)
{
    if (read) {
        if (redisBufferRead(fb->sub) != REDIS_OK)
            return -1;
        fb->heard = outbuf_now();
        fb->pinged = 0;
    }
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(fb->sub, &rep) != REDIS_OK)
            return -1;
        if (!rep)
            return 0;
        on_reply(fb, rep);
        freeReplyObject(rep);
    }
}

/* A silent subscriber connection gets a PING (allowed while subscribed; its
 * "pong" is ignored by on_reply); still silent PING_WAIT_NS later, it is
 * given up: a half-open connection or a stalled server would otherwise lose
 * every command for the rest of the run. -1: give it up. */
#define PING_IDLE_NS 3000000000u
#define PING_WAIT_NS 3000000000u
static int keepalive(struct feedback *fb)
{
    uint64_t now = outbuf_now();
    if (fb->pinged)
        return now - fb->pinged < PING_WAIT_NS ? 0 : -1;
    if (now - fb->heard < PING_IDLE_NS)
        return 0;
    fb->pinged = now;
    if (redisAppendCommand(fb->sub, "PING") != REDIS_OK)
        return -1;
    int done = 0;
    while (!done)   /* the connection's timeout bounds this */
        if (redisBufferWrite(fb->sub, &done) != REDIS_OK)
            return -1;
    return 0;
}

/* Connects and subscribes; the connection's timeout bounds each step, so
 * that a stalled server never keeps dati from stopping. */
static int subscribe(struct feedback *fb, char *err, size_t errlen)
{
    if (!(fb->sub = redis_conn_connect(fb->conf, err, errlen)))
        return -1;
    redisReply *rep = redisCommand(fb->sub, "SUBSCRIBE %s", fb->channel);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "SUBSCRIBE %s: %s", fb->channel,
                 rep ? rep->str : fb->sub->errstr);
        freeReplyObject(rep);
        redisFree(fb->sub);
        fb->sub = NULL;
        return -1;
    }
    freeReplyObject(rep);
    fb->heard = outbuf_now();
    fb->pinged = 0;
    return 0;
}

static void drop_subscriber(struct feedback *fb, const char *why)
{
    log_limited(fb, "subscriber connection lost", why);
    redisFree(fb->sub);
    fb->sub = NULL;
}

static void *fb_main(void *arg)
{
    struct feedback *fb = arg;
    uint64_t sub_retry = 0;
    while (!__atomic_load_n(&fb->stop, __ATOMIC_ACQUIRE)) {
        if (!fb->sub) {
            char err[256];
            uint64_t now = outbuf_now();
            if (now < sub_retry || subscribe(fb, err, sizeof err) < 0) {
                if (now >= sub_retry) {
                    log_limited(fb, "subscriber connection", err);
                    sub_retry = now + 1000000000u;
                }
                struct timespec ts = {0, 20000000};
                nanosleep(&ts, NULL);
                finish_done(fb);
                flush_replies(fb);
                continue;
            }
            COUNTER_INC(fb->c.reconnects);
        }
        /* messages that came in the same read as the SUBSCRIBE confirmation
         * are in hiredis's buffer already: poll() would not tell */
        if (take_messages(fb, 0) < 0) {
            drop_subscriber(fb, fb->sub->errstr);
            continue;
        }
        /* a short wait: acknowledgements of the workers' results go out
         * within some 10 ms even when no command comes */
        struct pollfd pfd = {fb->sub->fd, POLLIN, 0};
        if (poll(&pfd, 1, 10) > 0 && take_messages(fb, 1) < 0)
            drop_subscriber(fb, fb->sub->errstr);
        else if (keepalive(fb) < 0)
            drop_subscriber(fb, fb->sub->err ? fb->sub->errstr : "no answer to PING");
        finish_done(fb);
        flush_replies(fb);
    }
    return NULL;
}

/* ------------------------------------------------------------ start, stop */

struct feedback *feedback_start(const struct config *conf, struct worker *workers, int nworkers,
                                char *err, size_t errlen)
{
    struct feedback *fb = calloc(1, sizeof *fb);
    if (!fb || outbuf_init(&fb->ack, NULL) < 0 ||
        !(fb->q = aligned_alloc(64, sizeof *fb->q * (size_t)nworkers))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memset(fb->q, 0, sizeof *fb->q * (size_t)nworkers);
    fb->conf = conf;
    fb->workers = workers;
    fb->nworkers = nworkers;
    fb->channel = conf->feedback_channel;
    /* Test hook (doc/feedback.md): smaller queues, so that a test can make
     * one overflow whatever the machine's speed. */
    const char *cap = getenv("DATI_TEST_FB_QUEUE");
    fb->qcap = cap && atoi(cap) > 0 && atoi(cap) < FB_QUEUE_SIZE ? (uint32_t)atoi(cap)
                                                                  : FB_QUEUE_SIZE;
    if (conf->feedback_reply)
        snprintf(fb->reply, sizeof fb->reply, "%s", conf->feedback_reply);
    else
        snprintf(fb->reply, sizeof fb->reply, "%s:reply", conf->feedback_channel);
    if (subscribe(fb, err, errlen) < 0 || !(fb->pub = redis_conn_connect(fb->conf, err, errlen)))
        goto fail;
    if (pthread_create(&fb->thread, NULL, fb_main, fb) != 0) {
        snprintf(err, errlen, "cannot start the feedback thread");
        goto fail;
    }
    fb->started = 1;
    for (int w = 0; w < nworkers; w++)
        __atomic_store_n(&workers[w].fb, fb, __ATOMIC_RELEASE);
    return fb;
fail:
    feedback_free(fb);
    return NULL;
}

void feedback_stop(struct feedback *fb)
{
    if (fb && fb->started) {
        fb->started = 0;
        __atomic_store_n(&fb->stop, 1, __ATOMIC_RELEASE);
        pthread_join(fb->thread, NULL);
        for (int w = 0; w < fb->nworkers; w++)
            __atomic_store_n(&fb->workers[w].fb, NULL, __ATOMIC_RELEASE);
        /* what the workers did not take: acknowledged as not applied */
        for (int w = 0; w < fb->nworkers; w++)
            for (struct fb_item *it; (it = q_pop(&fb->q[w]));) {
                it->stopped++;   /* the workers have ended: no one else writes it */
                release(fb, it);
            }
        finish_done(fb);
        flush_replies(fb);
    }
}

void feedback_free(struct feedback *fb)
{
    if (!fb)
        return;
    feedback_stop(fb);
    redisFree(fb->sub);
    redisFree(fb->pub);
    outbuf_fini(&fb->ack);
    free(fb->q);
    free(fb);
}

const struct feedback_counters *feedback_counters(const struct feedback *fb) { return &fb->c; }

static int member(struct outbuf *b, const char *name, uint64_t v)
{
    int rc = json_lit(b, ",\"");
    rc |= json_lit(b, name);
    rc |= json_lit(b, "\":");
    return rc | json_u64(b, v);
}

void feedback_totals(const struct feedback *fb, struct feedback_totals *t)
{
    memset(t, 0, sizeof *t);
    for (int w = 0; w < fb->nworkers; w++) {
        const struct ft_counters *c = &fb->workers[w].ft->c;
        t->ft.tags_full += COUNTER_GET(c->tags_full);
        t->ft.names_full += COUNTER_GET(c->names_full);
        t->ft.rules_full += COUNTER_GET(c->rules_full);
        t->ft.rule_tagged += COUNTER_GET(c->rule_tagged);
        t->ft.rules_expired += COUNTER_GET(c->rules_expired);
        t->ft.watched_records += COUNTER_GET(c->watched_records);
        t->ft.ignored_records += COUNTER_GET(c->ignored_records);
    }
    const struct feedback_counters *c = &fb->c;
    t->c.received = COUNTER_GET(c->received);
    t->c.applied = COUNTER_GET(c->applied);
    t->c.malformed = COUNTER_GET(c->malformed);
    t->c.unknown = COUNTER_GET(c->unknown);
    t->c.invalid = COUNTER_GET(c->invalid);
    t->c.oversized = COUNTER_GET(c->oversized);
    t->c.queue_full = COUNTER_GET(c->queue_full);
    t->c.unknown_flow = COUNTER_GET(c->unknown_flow);
    t->c.stopped = COUNTER_GET(c->stopped);
    t->c.refused = COUNTER_GET(c->refused);
    t->c.acks = COUNTER_GET(c->acks);
    t->c.acks_lost = COUNTER_GET(c->acks_lost);
    t->c.reconnects = COUNTER_GET(c->reconnects);
}

int feedback_json(struct outbuf *b, const struct feedback *fb)
{
    struct feedback_totals t;
    feedback_totals(fb, &t);
    int rc = json_lit(b, "{\"received\":");
    rc |= json_u64(b, t.c.received);
    rc |= member(b, "applied", t.c.applied);
    rc |= member(b, "malformed", t.c.malformed);
    rc |= member(b, "unknown", t.c.unknown);
    rc |= member(b, "invalid", t.c.invalid);
    rc |= member(b, "oversized", t.c.oversized);
    rc |= member(b, "queue_full", t.c.queue_full);
    rc |= member(b, "unknown_flow", t.c.unknown_flow);
    rc |= member(b, "stopped", t.c.stopped);
    rc |= member(b, "refused", t.c.refused);
    rc |= member(b, "tags_full", t.ft.tags_full);
    rc |= member(b, "names_full", t.ft.names_full);
    rc |= member(b, "rules_full", t.ft.rules_full);
    rc |= member(b, "rule_tagged", t.ft.rule_tagged);
    rc |= member(b, "rules_expired", t.ft.rules_expired);
    rc |= member(b, "watched_records", t.ft.watched_records);
    rc |= member(b, "ignored_records", t.ft.ignored_records);
    rc |= member(b, "acks", t.c.acks);
    rc |= member(b, "acks_lost", t.c.acks_lost);
    rc |= member(b, "reconnects", t.c.reconnects);
    return rc | json_lit(b, "}");
}
