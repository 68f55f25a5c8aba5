/* output-redis.c - the seed's Redis layout over hiredis, pipelined. */
#include "output-redis.h"

#include <hiredis/hiredis.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "capture.h"
#include "config.h"
#include "counter.h"
#include "log.h"
#include "output-json.h"

#define ID_BLOCK 1024                    /* ids reserved per INCRBY */
#define LIVE_TIMEOUT_S 2                 /* live: the longest wait for Redis */
#define STOP_WAIT_S 5                    /* reading a file: the longest wait once stopping */
#define ID_KEY "dati:id"                 /* the counter the ids come from */
#define MAX_ARGS (32 + 2 * CONFIG_MAX_FIELDS)   /* command, key, fixed members, fields */

/* What each queued command carries, to count what an error reply loses. */
enum cmd_kind { CMD_RECORD, CMD_RECORD_MORE, CMD_FLOW, CMD_IDS };

/* A reply on the records' connections, read in place: every record takes
 * two or three replies, and hiredis would allocate a redisReply for each. */
struct reply {
    int type;                            /* REDIS_REPLY_* */
    long long integer;
    char str[128];                       /* an error's or status' text, cut */
};

struct redis_out {
    redisContext *c;
    struct reply reply;                  /* the last one read on c */
    const struct config *conf;
    uint64_t next_id, ids_left;          /* the reserved block */
    uint64_t spare_id;                   /* the next block, asked for ahead (CMD_IDS) */
    int spare_ready, ids_asked;
    int live;                            /* never wait: drop and count instead */
    int down;                            /* live: connection lost, retried from retry_at */
    uint64_t retry_at;
    unsigned retry_ms;
    /* live: a reconnection runs on a thread of its own (connector_main) */
    pthread_t connector;
    int connecting;                      /* started, not yet taken */
    int connector_threaded;              /* joinable: pthread_create succeeded */
    int connect_done;                    /* atomic: the attempt has ended */
    redisContext *fresh;                 /* its connection, or NULL with connect_err */
    char connect_err[256];
    /* Two pipelines: one being filled, one sent and waiting for its replies,
     * so that Redis works on one while dati formats the next. Each is kept,
     * in RESP, until Redis has answered all of it. */
    struct pipe {
        struct outbuf buf;
        uint8_t *kind;                   /* enum cmd_kind of each command */
        unsigned ncmds, nrecords, nflows;
        unsigned counted;                /* replies already counted (across a resend) */
        unsigned done;                   /* replies read since it was last sent */
    } pipes[2], *cur, *sent;             /* sent: NULL when nothing is in flight */
    struct pipe *behind;                 /* cur, already written behind sent (send_current) */
    unsigned max_cmds;
    uint64_t since;                      /* monotonic ns of the oldest queued record */
    uint64_t last_log;                   /* rate limit for error logs */
    struct outbuf scratch;               /* values that are not bytes of the packet */
    const char *tags_csv, *tags_json;    /* redis_out_set_tags() */
    size_t tags_csvlen, tags_jsonlen;
    int seq_on;                          /* redis_out_set_seq(), for the next record */
    unsigned seq_worker;
    uint64_t seq;
    struct redis_counters n;
};

static const volatile int *stop_flag;

void redis_out_set_stop(const volatile int *flag) { stop_flag = flag; }


/* Connects, authenticates and selects the database. Returns the context, or
 * NULL with the reason in err; *refused tells a server that answered (AUTH,
 * SELECT refused) from one that could not be reached. A server that accepts
 * and never answers (stopped, paused, a dead proxy's backend) holds AUTH and
 * SELECT for CONNECT_TIMEOUT_S at most; the context returned has no timeout
 * (blocking back-pressure reading a file): callers that must not wait set
 * their own. TCP connections get keepalives: a peer gone is noticed. */
#define CONNECT_TIMEOUT_S 2
static redisContext *connect_to(const struct config *conf, char *err, size_t errlen, int *refused)
{
    *refused = 0;
    struct timeval tv = {CONNECT_TIMEOUT_S, 0}, forever = {0, 0};
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
    redisSetTimeout(c, tv);
    if (!conf->redis_sock)
        redisEnableKeepAlive(c);
    redisReply *rep = NULL;
    if (conf->redis_auth) {
        /* "password" or "user password" (Redis 6 ACL) */
        const char *sp = strchr(conf->redis_auth, ' ');
        rep = sp ? redisCommand(c, "AUTH %b %s", conf->redis_auth,
                                (size_t)(sp - conf->redis_auth), sp + 1)
                 : redisCommand(c, "AUTH %s", conf->redis_auth);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            *refused = rep != NULL;
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
            *refused = rep != NULL;
            snprintf(err, errlen, "Redis at %s refused SELECT %u: %s", where, conf->redis_db,
                     rep ? rep->str : c->errstr);
            freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    redisSetTimeout(c, forever);
    return c;
}

redisContext *redis_out_connect(const struct config *conf, char *err, size_t errlen)
{
    int refused;
    redisContext *c = connect_to(conf, err, errlen, &refused);
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    if (c)   /* its users never wait for a stalled server */
        redisSetTimeout(c, tv);
    return c;
}

/* hiredis reader callbacks that fill struct reply (the reader's privdata)
 * instead of allocating: the records' commands are never answered with an
 * array, and should one come, its elements leave the reply as it was. */
static void *reply_set(const redisReadTask *t, int type, long long integer, const char *str,
                       size_t len)
{
    struct reply *rep = t->privdata;
    if (t->parent)
        return rep;
    rep->type = type;
    rep->integer = integer;
    if (len >= sizeof rep->str)
        len = sizeof rep->str - 1;
    memcpy(rep->str, str, len);
    rep->str[len] = '\0';
    return rep;
}

static void *reply_string(const redisReadTask *t, char *str, size_t len)
{
    return reply_set(t, t->type, 0, str, len);
}

#if HIREDIS_MAJOR >= 1   /* more reply types, and array sizes as size_t */
static void *reply_array(const redisReadTask *t, size_t elements)
{
    return reply_set(t, REDIS_REPLY_ARRAY, (long long)elements, "", 0);
}

static void *reply_double(const redisReadTask *t, double value, char *str, size_t len)
{
    (void)value;
    return reply_set(t, REDIS_REPLY_DOUBLE, 0, str, len);
}

static void *reply_bool(const redisReadTask *t, int value)
{
    return reply_set(t, REDIS_REPLY_BOOL, value, "", 0);
}
#else
static void *reply_array(const redisReadTask *t, int elements)
{
    return reply_set(t, REDIS_REPLY_ARRAY, elements, "", 0);
}
#endif

static void *reply_integer(const redisReadTask *t, long long v)
{
    return reply_set(t, REDIS_REPLY_INTEGER, v, "", 0);
}

static void *reply_nil(const redisReadTask *t)
{
    return reply_set(t, REDIS_REPLY_NIL, 0, "", 0);
}

static void reply_keep(void *rep)
{
    (void)rep;
}

static redisReplyObjectFunctions reply_in_place = {
    .createString = reply_string,
    .createArray = reply_array,
    .createInteger = reply_integer,
    .createNil = reply_nil,
#if HIREDIS_MAJOR >= 1
    .createDouble = reply_double,
    .createBool = reply_bool,
#endif
    .freeObject = reply_keep,
};

/* c becomes r's connection, its replies read into r->reply. */
static void attach(struct redis_out *r, redisContext *c)
{
    r->c = c;
    if (!c)
        return;
    c->reader->fn = &reply_in_place;
    c->reader->privdata = &r->reply;
    c->reader->maxbuf = 0;   /* keep the read buffer rather than free and grow it again */
}

static int wait_fd(struct redis_out *r, short events);
static void broken(struct redis_out *r, const char *why);
static int send_all(struct redis_out *r, const char *buf, size_t len);

/* A command on r's connection, waiting for its reply (r->reply) as the
 * pipelines do (wait_fd); NULL when the connection failed or was given up. */
static const struct reply *command(struct redis_out *r, const char *fmt, ...)
{
    if (!r->c || r->c->err)
        return NULL;
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    int rc = send_all(r, cmd, (size_t)len);
    redisFreeCommand(cmd);   /* hiredis' allocator, whichever it is */
    if (rc < 0)
        return NULL;
    void *rep = NULL;
    while (redisGetReplyFromReader(r->c, &rep) == REDIS_OK && !rep)
        if (wait_fd(r, POLLIN) < 0 || redisBufferRead(r->c) != REDIS_OK)
            return NULL;
    return rep;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* REDIS_RETRY: a Redis not reachable yet is tried again, with back-off (0.1 s
 * doubling to 2 s), for up to conf->redis_retry seconds or until dati is
 * stopped. A server that answers and refuses (AUTH, SELECT) is not retried. */
static redisContext *connect_start(const struct config *conf, char *err, size_t errlen)
{
    int refused;
    redisContext *c = connect_to(conf, err, errlen, &refused);
    if (c || refused || !conf->redis_retry)
        return c;
    uint64_t deadline = outbuf_now() + (uint64_t)conf->redis_retry * 1000000000u;
    uint64_t last_log = 0;
    unsigned delay_ms = 100;
    while (!(stop_flag && *stop_flag) && outbuf_now() < deadline) {
        if (log_due(&last_log, 5000000000u))   /* every 5 s at most */
            log_warn("%s; retrying (REDIS_RETRY %u)", err, conf->redis_retry);
        sleep_ms(delay_ms);
        delay_ms = delay_ms < 1000 ? delay_ms * 2 : 2000;
        if ((c = connect_to(conf, err, errlen, &refused)) || refused)
            return c;
    }
    return NULL;
}

struct redis_out *redis_out_open(const struct config *conf, char *err, size_t errlen)
{
    struct redis_out *r = calloc(1, sizeof *r);
    if (!r)
        goto oom;
    r->conf = conf;
    r->max_cmds = 3 * conf->redis_pipeline + 64;
    if (outbuf_init(&r->scratch, NULL) < 0)
        goto oom;
    for (int i = 0; i < 2; i++)
        if (!(r->pipes[i].kind = malloc(r->max_cmds)) || outbuf_init(&r->pipes[i].buf, NULL) < 0)
            goto oom;
    r->cur = &r->pipes[0];
    attach(r, connect_start(conf, err, errlen));
    if (!r->c)
        goto fail;
    /* Test hook (doc/records.md): the live capture's never-waiting mode,
     * exercised while reading a file. */
    const char *live = getenv("DATI_TEST_REDIS_LIVE");
    if (live && strcmp(live, "1") == 0)
        redis_out_set_live(r, 1);
    return r;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (r) {
        outbuf_fini(&r->scratch);
        for (int i = 0; i < 2; i++) {
            outbuf_fini(&r->pipes[i].buf);
            free(r->pipes[i].kind);
        }
    }
    free(r);
    return NULL;
}

static void connector_join(struct redis_out *r);

void redis_out_close(struct redis_out *r)
{
    if (!r)
        return;
    redis_out_flush(r);
    connector_join(r);
    redisFree(r->fresh);
    redisFree(r->c);
    outbuf_fini(&r->scratch);
    for (int i = 0; i < 2; i++) {
        outbuf_fini(&r->pipes[i].buf);
        free(r->pipes[i].kind);
    }
    free(r);
}

const struct redis_counters *redis_out_counters(const struct redis_out *r) { return &r->n; }

static void log_limited(struct redis_out *r, const char *what, const char *detail)
{
    if (log_due(&r->last_log, 1000000000u))
        log_warn("Redis %s: %s", what, detail);
}

/* Counts an error reply by its first word, and what the command carried. */
static void error_reply(struct redis_out *r, const struct reply *rep, enum cmd_kind kind)
{
    if (strncmp(rep->str, "OOM", 3) == 0)
        COUNTER_INC(r->n.errors_oom);
    else if (strncmp(rep->str, "NOAUTH", 6) == 0 || strncmp(rep->str, "NOPERM", 6) == 0)
        COUNTER_INC(r->n.errors_auth);
    else if (strncmp(rep->str, "WRONGTYPE", 9) == 0)
        COUNTER_INC(r->n.errors_wrongtype);
    else
        COUNTER_INC(r->n.errors_other);
    COUNTER_INC(r->n.errors);
    if (kind == CMD_RECORD)
        COUNTER_INC(r->n.lost);
    else if (kind == CMD_FLOW)
        COUNTER_INC(r->n.flows_lost);
    log_limited(r, "error reply", rep->str);
}

/* Connects again, waiting with back-off (0.1 s doubling to 2 s) for as long
 * as it takes: reading a file, waiting for Redis is the back-pressure that
 * keeps delivery lossless. Gives up only when dati is being stopped. */
static int reconnect(struct redis_out *r)
{
    unsigned delay_ms = 100;
    while (!(stop_flag && *stop_flag)) {
        char err[256];
        int refused;
        redisFree(r->c);
        attach(r, connect_to(r->conf, err, sizeof err, &refused));
        if (r->c) {
            COUNTER_INC(r->n.reconnects);
            return 0;
        }
        log_limited(r, "unreachable, retrying", err);
        sleep_ms(delay_ms);
        delay_ms = delay_ms < 1000 ? delay_ms * 2 : 2000;
    }
    return -1;
}

static void track_depth(struct redis_out *r)
{
    uint64_t d = r->cur->nrecords + r->cur->nflows;
    if (r->sent)
        d += r->sent->nrecords + r->sent->nflows;
    __atomic_store_n(&r->n.queued, d, __ATOMIC_RELAXED);
    if (d > r->n.queued_peak)
        __atomic_store_n(&r->n.queued_peak, d, __ATOMIC_RELAXED);
}

/* Writes buf whole, in non-blocking sends behind wait_fd(). Returns 0, or -1
 * when the connection broke or was given up. */
static int send_all(struct redis_out *r, const char *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = send(r->c->fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_fd(r, POLLOUT) < 0)
                return -1;
        } else {
            broken(r, n < 0 ? strerror(errno) : "connection closed");
            return -1;
        }
    }
    return 0;
}

/* Hands a pipeline to the socket now, straight from its buffer (hiredis
 * would copy it into its own; a TLS connection, should dati get one, would
 * need hiredis' write). Returns 0, or -1 on a broken connection. */
static int send_pipe(struct redis_out *r, struct pipe *p)
{
    p->done = 0;
    if (!r->c || r->c->err)
        return -1;
    return send_all(r, p->buf.buf, p->buf.len);
}

static int readable(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
}

/* The connection counts as broken from now on: what uses it fails at once. */
static void broken(struct redis_out *r, const char *why)
{
    r->c->err = REDIS_ERR_IO;
    snprintf(r->c->errstr, sizeof r->c->errstr, "%s", why);
}

/* Set once a wait gave up on a stalled Redis while dati was being stopped:
 * the other connections' waits need not wait their turn. */
static int stalled_at_stop;

/* Waits until r's socket is ready for events (POLLIN, POLLOUT), in short
 * polls, so that a stop is seen whichever thread the signal woke. Reading a
 * file it waits as long as it takes (back-pressure), and once dati is being
 * stopped STOP_WAIT_S at most; live, LIVE_TIMEOUT_S. Returns 0 when ready,
 * -1 when it gave up (the connection is then broken). */
static int wait_fd(struct redis_out *r, short events)
{
    if (r->c->err)
        return -1;   /* given up already: no 100 ms poll per pipeline at the end */
    uint64_t start = outbuf_now(), stop_seen = 0;
    for (;;) {
        struct pollfd pfd = {r->c->fd, events, 0};
        int n = poll(&pfd, 1, 100);
        if (n > 0)
            return 0;   /* an error or hang-up too: the read or write says which */
        if (n < 0 && errno != EINTR) {
            broken(r, strerror(errno));
            return -1;
        }
        uint64_t now = outbuf_now();
        if (r->live && now - start >= LIVE_TIMEOUT_S * 1000000000ull) {
            broken(r, "timed out");
            return -1;
        }
        if (!r->live && stop_flag && *stop_flag) {
            if (!stop_seen)
                stop_seen = now;
            if (__atomic_load_n(&stalled_at_stop, __ATOMIC_RELAXED) ||
                now - stop_seen >= STOP_WAIT_S * 1000000000ull) {
                __atomic_store_n(&stalled_at_stop, 1, __ATOMIC_RELAXED);
                broken(r, "not answering, given up as dati stops");
                return -1;
            }
        }
    }
}

/* One reply of a sent pipeline: an error counted once across resends, an
 * id block kept for later. */
static void take_reply(struct redis_out *r, struct pipe *p, const struct reply *rep)
{
    unsigned i = p->done++;
    enum cmd_kind kind = (enum cmd_kind)p->kind[i];
    if (kind == CMD_IDS) {
        r->ids_asked = 0;
        if (rep->type == REDIS_REPLY_INTEGER) {
            r->spare_id = (uint64_t)rep->integer - ID_BLOCK + 1;
            r->spare_ready = 1;
        }
    }
    if (rep->type == REDIS_REPLY_ERROR && i >= p->counted)
        error_reply(r, rep, kind);
    if (i >= p->counted)
        p->counted = i + 1;
}

/* Reads the replies of a sent pipeline; wait: until all are in, else only
 * those already arrived. Returns 0 when all are read, 1 when some are still
 * to come, -1 on a broken connection. */
static int collect(struct redis_out *r, struct pipe *p, int wait)
{
    while (p->done < p->ncmds) {
        void *rep = NULL;
        if (!r->c || redisGetReplyFromReader(r->c, &rep) != REDIS_OK)
            return -1;
        if (rep) {
            take_reply(r, p, rep);
            continue;
        }
        if (!wait && !readable(r->c->fd))
            return 1;
        if (wait && wait_fd(r, POLLIN) < 0)
            return -1;
        if (redisBufferRead(r->c) != REDIS_OK)
            return -1;
    }
    return 0;
}

/* The records of p that no reply has answered are lost (those answered
 * were stored, or counted lost by their error reply). */
static void count_unanswered(struct redis_out *r, const struct pipe *p)
{
    for (unsigned i = p->counted; i < p->ncmds; i++) {
        if (p->kind[i] == CMD_RECORD)
            COUNTER_INC(r->n.lost);
        else if (p->kind[i] == CMD_FLOW)
            COUNTER_INC(r->n.flows_lost);
    }
}

static void clear(struct pipe *p)
{
    p->buf.len = 0;
    p->ncmds = p->nrecords = p->nflows = p->counted = p->done = 0;
}

/* Live: the connection broke. What the pipelines held is lost (counted);
 * new records are dropped, counted as disconnected, until a reconnection
 * (tried with back-off from the records and the drain timer) succeeds. */
static void went_down(struct redis_out *r)
{
    for (int i = 0; i < 2; i++) {
        COUNTER_ADD(r->n.commands, r->pipes[i].counted);
        count_unanswered(r, &r->pipes[i]);
        clear(&r->pipes[i]);
    }
    log_limited(r, "connection lost", r->c ? r->c->errstr : "not connected");
    redisFree(r->c);
    r->c = NULL;
    r->sent = NULL;
    r->since = 0;
    r->ids_asked = 0;   /* its reply will not come */
    r->down = 1;
    r->retry_ms = 100;
    r->retry_at = outbuf_now() + 100000000u;
    track_depth(r);
}

/* Live: the waits that remain (the final flush, a full socket) end after
 * LIVE_TIMEOUT_S, as a broken connection, instead of hanging on a stalled
 * server. */
static void live_timeout(struct redis_out *r)
{
    struct timeval tv = {LIVE_TIMEOUT_S, 0};
    if (r->c)
        redisSetTimeout(r->c, tv);
}

/* Live: connecting (handshake, AUTH, SELECT) may take CONNECT_TIMEOUT_S a
 * step when the server's host does not answer; a thread does it, so that
 * the worker's capture never waits on it. */
static void *connector_main(void *arg)
{
    struct redis_out *r = arg;
    int refused;
    r->fresh = connect_to(r->conf, r->connect_err, sizeof r->connect_err, &refused);
    __atomic_store_n(&r->connect_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void connector_join(struct redis_out *r)
{
    if (r->connecting && r->connector_threaded)
        pthread_join(r->connector, NULL);
    r->connecting = 0;
}

/* Live: a reconnection attempt when its time has come, or its result; wait:
 * start one now and wait for it (the final flush). Returns 0 when connected. */
static int live_reconnect(struct redis_out *r, int wait)
{
    if (!r->down)
        return 0;
    if (!r->connecting) {
        if (!wait && outbuf_now() < r->retry_at)
            return -1;
        r->connect_done = 0;
        r->connecting = 1;
        /* signals are for the other threads: one here would cut a wait short */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r->connector_threaded = pthread_create(&r->connector, NULL, connector_main, r) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!r->connector_threaded) {
            log_limited(r, "reconnecting", "no thread for it: connecting from the worker");
            connector_main(r);
        }
    }
    if (!wait && !__atomic_load_n(&r->connect_done, __ATOMIC_ACQUIRE))
        return -1;
    connector_join(r);
    if (!r->fresh) {
        log_limited(r, "unreachable, retrying", r->connect_err);
        r->retry_ms = r->retry_ms < 1000 ? r->retry_ms * 2 : 2000;
        r->retry_at = outbuf_now() + (uint64_t)r->retry_ms * 1000000u;
        return -1;
    }
    attach(r, r->fresh);
    r->fresh = NULL;
    COUNTER_INC(r->n.reconnects);
    r->down = 0;
    live_timeout(r);
    return 0;
}

/* Waits for the pipeline in flight to be answered. When the connection
 * fails, reconnects and sends it again (HSET and EXPIRE repeat harmlessly; a
 * PUBLISH may reach a subscriber twice); live, drops it instead. */
static void settle(struct redis_out *r)
{
    struct pipe *p = r->sent;
    if (!p)
        return;
    while (collect(r, p, 1) < 0) {
        if (r->live) {
            went_down(r);
            return;
        }
        log_limited(r, "connection lost", r->c ? r->c->errstr : "not connected");
        if (reconnect(r) < 0) {   /* being stopped: what is in flight is lost */
            count_unanswered(r, p);
            break;
        }
        send_pipe(r, p);   /* a failure shows in collect() */
        if (r->behind)
            send_pipe(r, r->behind);
    }
    COUNTER_ADD(r->n.commands, p->counted);   /* all of them, unless given up */
    clear(p);
    r->sent = NULL;
    track_depth(r);
}

static void swap_pipes(struct redis_out *r)
{
    r->sent = r->cur;
    r->cur = r->cur == &r->pipes[0] ? &r->pipes[1] : &r->pipes[0];
    r->since = 0;
}

/* Sends the pipeline being filled, then waits for the one in flight to be
 * answered: Redis has the next pipeline in its socket when it finishes one
 * (no idle round trip), while dati fills the buffer just freed. */
static void send_current(struct redis_out *r)
{
    if (r->cur->ncmds == 0) {
        settle(r);
        return;
    }
    struct pipe *p = r->cur;
    if (r->live) {   /* one in flight at most */
        settle(r);
        if (r->down || p->ncmds == 0)
            return;
        if (send_pipe(r, p) < 0)
            went_down(r);
        else
            swap_pipes(r);
        return;
    }
    send_pipe(r, p);   /* a failure shows, and is mended, in settle() */
    r->behind = p;
    settle(r);
    r->behind = NULL;
    swap_pipes(r);
}

/* The pipeline being filled has reached its size. */
static int pipe_full(const struct redis_out *r)
{
    return r->cur->nrecords >= r->conf->redis_pipeline ||
           r->cur->ncmds >= 3 * r->conf->redis_pipeline || r->cur->ncmds + 16 >= r->max_cmds;
}

/* Live: takes the replies already arrived and, once the pipeline in flight
 * is answered, sends the one being filled when it is full, has waited the
 * drain time, or force. Never waits for Redis (but for the write of one
 * pipeline into a socket that the previous one has left empty). */
static void live_pump(struct redis_out *r, int force)
{
    if (r->down && live_reconnect(r, 0) < 0)
        return;
    if (r->sent) {
        int rc = collect(r, r->sent, 0);
        if (rc < 0) {
            went_down(r);
            return;
        }
        if (rc > 0)
            return;
        COUNTER_ADD(r->n.commands, r->sent->ncmds);
        clear(r->sent);
        r->sent = NULL;
        track_depth(r);
    }
    if (r->cur->ncmds == 0 ||
        !(force || pipe_full(r) || (r->since && outbuf_now() - r->since >= OUTBUF_DRAIN_NS)))
        return;
    if (send_pipe(r, r->cur) < 0) {
        went_down(r);
        return;
    }
    swap_pipes(r);
}

/* Live: whether a record may be queued now; if not, counts it by reason,
 * or, for a flow's state hash or start event (not records: the record drop
 * counters must add up to the records'), in *update_dropped. */
static int live_admit(struct redis_out *r, uint64_t *update_dropped)
{
    if (!r->down && pipe_full(r))
        live_pump(r, 0);
    uint64_t *dropped = r->down && live_reconnect(r, 0) < 0 ? &r->n.dropped_disconnected
                        : pipe_full(r)                       ? &r->n.dropped_queue_full
                                                             : NULL;
    if (!dropped)
        return 0;
    COUNTER_INC(*(update_dropped ? update_dropped : dropped));
    return -1;
}

/* After a record was queued: send when the pipeline is full. */
static void queued(struct redis_out *r)
{
    if (r->since == 0)
        r->since = outbuf_now();
    track_depth(r);
    if (pipe_full(r)) {
        if (r->live)
            live_pump(r, 0);
        else
            send_current(r);
    }
}

void redis_out_flush(struct redis_out *r)
{
    if (r->live && r->down) {   /* one last try, then what is queued is lost */
        if (live_reconnect(r, 1) < 0) {
            went_down(r);
            return;
        }
    }
    send_current(r);
    settle(r);
}

static int send_stats(struct redis_out *r, const char *json, size_t len, int final)
{
    const struct reply *rep = command(r, "HSET " REDIS_STATS_KEY " json %b final %d", json, len,
                                      final);
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    rep = command(r, "PUBLISH " REDIS_STATS_KEY " %b", json, len);   /* in the same place */
    return ok && rep && rep->type != REDIS_REPLY_ERROR;
}

int redis_out_stats(struct redis_out *r, const char *json, size_t len, int final)
{
    /* live, Redis unreachable: interim statistics do not wait for it (they
     * also go to the output, and signals are answered meanwhile) */
    if (r->live && r->down && !final && live_reconnect(r, 0) < 0)
        return -1;
    redis_out_flush(r);   /* nothing of ours in flight: the replies below are these */
    int ok = send_stats(r, json, len, final);
    /* reading a file, a connection that broke since the last statistics (a
     * Redis restarted) is mended as the records' connections are */
    if (!ok && !r->live && r->c && r->c->err && reconnect(r) == 0)
        ok = send_stats(r, json, len, final);
    if (!ok)
        log_limited(r, "statistics not stored", r->c && r->c->err ? r->c->errstr : "error reply");
    if (r->live && r->c && r->c->err)   /* timed out or broken: reconnect later */
        went_down(r);
    return ok ? 0 : -1;
}

void redis_out_drain(struct redis_out *r)
{
    if (r->live)
        live_pump(r, 0);
    else if (r->since && outbuf_now() - r->since >= OUTBUF_DRAIN_NS)
        redis_out_flush(r);
}

/* Decimal digits of v at d (room for 20); returns their number. Formatting
 * is most of the cost of a record: no printf on this path. */
static size_t fmt_u64(char *d, uint64_t v)
{
    char t[20];
    size_t n = 0, i = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        d[i++] = t[--n];
    return i;
}

/* "<type><n>\r\n" at o; returns the end. */
static char *resp_len(char *o, char type, size_t n)
{
    *o++ = type;
    o += fmt_u64(o, n);
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* Adds one command to the pipeline in RESP; nothing is sent yet. */
static int append(struct redis_out *r, int argc, const char **argv, const size_t *len,
                  enum cmd_kind kind)
{
    struct pipe *p = r->cur;
    size_t need = 24;
    for (int i = 0; i < argc; i++)
        need += len[i] + 24;
    if (p->ncmds == r->max_cmds || outbuf_room(&p->buf, need) < 0)
        return -1;
    char *o = resp_len(p->buf.buf + p->buf.len, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        o = resp_len(o, '$', len[i]);
        memcpy(o, argv[i], len[i]);
        o += len[i];
        *o++ = '\r';
        *o++ = '\n';
    }
    p->buf.len = (size_t)(o - p->buf.buf);
    p->kind[p->ncmds++] = (uint8_t)kind;
    return 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)

/* Takes the next id. The next block is asked for inside the pipeline (INCRBY)
 * when half of this one is used, so that a round trip of its own is needed
 * only when that reply has not come back in time; live, the record is then
 * dropped (counted as queue_full) instead of waiting. */
static int next_id(struct redis_out *r, uint64_t *id)
{
    int rc = -1;
    if (r->ids_left == 0 && !r->spare_ready && r->ids_asked && !r->live)
        redis_out_flush(r);   /* its reply is in flight: take it */
    if (r->ids_left == 0 && r->spare_ready) {
        r->next_id = r->spare_id;
        r->ids_left = ID_BLOCK;
        r->spare_ready = 0;
    }
    if (r->ids_left == 0 && r->live) {
        COUNTER_INC(r->n.dropped_queue_full);
        goto ask;
    }
    if (r->ids_left == 0) {
        redis_out_flush(r);   /* a synchronous round trip must not interleave replies */
        const struct reply *rep;
        while (!(rep = command(r, "INCRBY " ID_KEY " %d", ID_BLOCK)))
            if (reconnect(r) < 0)
                return -1;
        if (rep->type != REDIS_REPLY_INTEGER) {
            log_limited(r, "INCRBY " ID_KEY " failed", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
            return -1;
        }
        r->next_id = (uint64_t)rep->integer - ID_BLOCK + 1;
        r->ids_left = ID_BLOCK;
    }
    *id = r->next_id++;
    r->ids_left--;
    rc = 0;
ask:
    if (r->ids_left <= ID_BLOCK / 2 && !r->ids_asked && !r->spare_ready && !r->down) {
        const char *argv[] = {"INCRBY", ID_KEY, STR(ID_BLOCK)};
        size_t argl[] = {6, sizeof ID_KEY - 1, sizeof STR(ID_BLOCK) - 1};
        r->ids_asked = append(r, 3, argv, argl, CMD_IDS) == 0;
    }
    return rc;
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
    int stream = r->conf->redis_stream;
    uint64_t id = 0;
    if (r->live && live_admit(r, NULL) < 0)
        return -1;
    if (!stream && next_id(r, &id) < 0)
        return -1;   /* never queued: the caller counts it dropped */
    struct outbuf *s = &r->scratch;
    s->len = 0;
    struct arg args[MAX_ARGS];
    int n = 0, rc = 0;
    char key[96], maxlen[24];   /* REDIS_PREFIX is at most 64 characters */
    size_t keylen = 0;
    if (!stream) {
        keylen = strlen(f->redis_prefix);
        memcpy(key, f->redis_prefix, keylen);
        keylen += fmt_u64(key + keylen, id);
    }
    if (stream) {   /* XADD <channel> MAXLEN ~ <n> * <field> <value> ... */
        size_t ml = fmt_u64(maxlen, r->conf->redis_maxlen);
        args[n++] = (struct arg){0, 4, (const uint8_t *)"XADD"};
        args[n++] = (struct arg){0, strlen(f->redis_channel), (const uint8_t *)f->redis_channel};
        args[n++] = (struct arg){0, 6, (const uint8_t *)"MAXLEN"};
        args[n++] = (struct arg){0, 1, (const uint8_t *)"~"};
        args[n++] = (struct arg){0, (size_t)ml, (const uint8_t *)maxlen};
        args[n++] = (struct arg){0, 1, (const uint8_t *)"*"};
    } else {
        args[n++] = (struct arg){0, 4, (const uint8_t *)"HSET"};
        args[n++] = (struct arg){0, (size_t)keylen, (const uint8_t *)key};
    }
    args[n++] = (struct arg){0, 9, (const uint8_t *)"Timestamp"};
    size_t t0 = s->len;
    rc |= json_time(s, x->pkt->ts);
    args[n++] = (struct arg){t0, s->len - t0, NULL};
    args[n++] = (struct arg){0, 6, (const uint8_t *)"filter"};
    args[n++] = (struct arg){0, strlen(f->name), (const uint8_t *)f->name};
    const char *ifname = capture_iface_name(x->pkt->iface);
    if (ifname) {
        args[n++] = (struct arg){0, 9, (const uint8_t *)"interface"};
        args[n++] = (struct arg){0, strlen(ifname), (const uint8_t *)ifname};
    }
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
    if (r->tags_csv && n + 2 <= MAX_ARGS) {
        args[n++] = (struct arg){0, 4, (const uint8_t *)"tags"};
        args[n++] = (struct arg){0, r->tags_csvlen, (const uint8_t *)r->tags_csv};
    }
    if (r->seq_on && n + 4 <= MAX_ARGS) {
        args[n++] = (struct arg){0, 6, (const uint8_t *)"worker"};
        t0 = s->len;
        rc |= json_u64(s, r->seq_worker);
        args[n++] = (struct arg){t0, s->len - t0, NULL};
        args[n++] = (struct arg){0, 3, (const uint8_t *)"seq"};
        t0 = s->len;
        rc |= json_u64(s, r->seq);
        args[n++] = (struct arg){t0, s->len - t0, NULL};
    }
    r->seq_on = 0;
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
    size_t ttllen = fmt_u64(ttl, (uint64_t)f->redis_expire);
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, (size_t)keylen, (size_t)ttllen};
    const char *pub[] = {"PUBLISH", f->redis_channel, key};
    size_t publ[] = {7, strlen(f->redis_channel), (size_t)keylen};
    struct pipe *p = r->cur;
    size_t mark = p->buf.len;
    unsigned cmds = p->ncmds;
    if (append(r, n, argv, argl, CMD_RECORD) < 0 ||
        (!stream && (append(r, 3, exp, expl, CMD_RECORD_MORE) < 0 ||
                     append(r, 3, pub, publ, CMD_RECORD_MORE) < 0))) {
        p->buf.len = mark;   /* all three or none */
        p->ncmds = cmds;
        COUNTER_INC(r->n.lost);
        return -1;
    }
    COUNTER_INC(r->n.records);
    p->nrecords++;
    queued(r);
    return 0;
}

/* Flow ids restart with each run: before its first write in this run,
 * dati:flow:<id> is deleted (in the same pipeline), so that a previous
 * run's hash kept by REDIS_FLOW_EXPIRE does not mix into it. */
static int fresh_hash(struct redis_out *r, const char *key, size_t kl)
{
    const char *del[] = {"DEL", key};
    size_t dell[] = {3, kl};
    return append(r, 2, del, dell, CMD_RECORD_MORE);
}

/* The key of a flow's hash, dati:flow:<id>, into k (48 bytes); its length. */
static size_t flow_key(char *k, uint64_t id)
{
    memcpy(k, "dati:flow:", 10);
    return 10 + fmt_u64(k + 10, id);
}

/* REDIS_FLOW_EXPIRE: the flow record also as a hash dati:flow:<id> (json,
 * reason, packets, bytes) that expires on its own. */
static void flow_hash(struct redis_out *r, const struct flow *fl, enum flow_end why,
                     const char *json, size_t len)
{
    char key[48], packets[24], bytes[24], ttl[24];
    size_t kl = flow_key(key, fl->id);
    size_t pl = fmt_u64(packets, fl->packets[0] + fl->packets[1]);
    size_t bl = fmt_u64(bytes, fl->bytes[0] + fl->bytes[1]);
    size_t tl = fmt_u64(ttl, r->conf->redis_flow_expire);
    const char *reason = flow_end_name(why);
    const char *hset[] = {"HSET", key, "json", json, "reason", reason, "packets", packets,
                          "bytes", bytes};
    size_t hsetl[] = {4, kl, 4, len, 6, strlen(reason), 7, pl, 5, bl};
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, kl, tl};
    if (!(fl->marks & FLOW_STATE_SENT) && fresh_hash(r, key, kl) < 0)
        return;
    if (append(r, 10, hset, hsetl, CMD_RECORD_MORE) < 0 ||
        append(r, 3, exp, expl, CMD_RECORD_MORE) < 0)
        log_limited(r, "flow hash not queued", key);
}

int redis_out_flow(struct redis_out *r, const struct flow *fl, enum flow_end why,
                   const char *const *names)
{
    struct outbuf *s = &r->scratch;
    s->len = 0;
    if (json_flow(s, fl, why, names) < 0 ||
        (r->tags_json && (s->len -= 2, json_lit(s, ",\"tags\":") |
                                           json_raw(s, r->tags_json, r->tags_jsonlen) |
                                           json_lit(s, "}\n"))) ||
        (r->seq_on && (s->len -= 2, json_lit(s, ",\"worker\":") | json_u64(s, r->seq_worker) |
                                        json_lit(s, ",\"seq\":") | json_u64(s, r->seq) |
                                        json_lit(s, "}\n")))) {
        r->seq_on = 0;
        COUNTER_INC(r->n.flows_lost);
        return -1;
    }
    r->seq_on = 0;
    const char *channel = r->conf->session_channel ? r->conf->session_channel : "dati:sessions";
    char maxlen[24];
    size_t ml = fmt_u64(maxlen, r->conf->redis_maxlen);
    const char *pub[] = {"PUBLISH", channel, s->buf};
    size_t publ[] = {7, strlen(channel), s->len - 1};   /* without the newline */
    const char *xadd[] = {"XADD", channel, "MAXLEN", "~", maxlen, "*", "flow", s->buf};
    size_t xaddl[] = {4, strlen(channel), 6, 1, ml, 1, 4, s->len - 1};
    if (r->live && live_admit(r, NULL) < 0)   /* counted there, by reason */
        return -1;
    if (!r->live && pipe_full(r))
        send_current(r);
    if (r->conf->redis_stream ? append(r, 8, xadd, xaddl, CMD_FLOW) < 0
                              : append(r, 3, pub, publ, CMD_FLOW) < 0) {
        COUNTER_INC(r->n.flows_lost);
        return -1;
    }
    if (r->conf->redis_flow_expire)
        flow_hash(r, fl, why, s->buf, s->len - 1);
    COUNTER_INC(r->n.flows);
    r->cur->nflows++;
    queued(r);
    return 0;
}

void redis_out_set_live(struct redis_out *r, int live)
{
    uint64_t id;
    r->live = 0;
    /* the first id block with a round trip now, not by dropping records */
    if (live && !r->conf->redis_stream && r->ids_left == 0 && next_id(r, &id) == 0) {
        r->next_id--;
        r->ids_left++;
    }
    r->live = live;
    if (live)
        live_timeout(r);
}

void redis_out_set_tags(struct redis_out *r, const char *csv, size_t csvlen, const char *json,
                        size_t jsonlen)
{
    r->tags_csv = csv;
    r->tags_csvlen = csvlen;
    r->tags_json = json;
    r->tags_jsonlen = jsonlen;
}

void redis_out_flow_state(struct redis_out *r, const struct flow *fl, const char *const *names,
                          int ended, enum flow_end why)
{
    char key[48];
    size_t kl = flow_key(key, fl->id);
    if (ended && !r->conf->redis_flow_expire && !(fl->marks & FLOW_STATE_SENT))
        return;   /* no hash to remove: nothing to send */
    if (r->live && live_admit(r, &r->n.flow_updates_dropped) < 0)
        return;
    if (!r->live && pipe_full(r))
        send_current(r);
    if (ended && !r->conf->redis_flow_expire) {
        const char *del[] = {"DEL", key};
        size_t dell[] = {3, kl};
        if (append(r, 2, del, dell, CMD_RECORD_MORE) < 0)
            COUNTER_INC(r->n.flow_updates_dropped);
        else
            COUNTER_INC(r->n.flow_states);
        return;
    }
    const struct flow_key *k = &fl->key;
    int alen = k->family == 4 ? 4 : 16;
    struct outbuf *s = &r->scratch;
    s->len = 0;
    /* values in scratch, as offsets: it may move while growing */
    enum { F_CLIENT, F_CPORT, F_SERVER, F_SPORT, F_PROTO, F_FIRST, F_LAST, F_CP, F_CB, F_SP, F_SB,
           F_P, F_B, F_FILTERS, F_N };
    static const char *const names_[F_N] = {"client", "client_port", "server", "server_port",
                                            "proto", "first", "last", "c2s_packets", "c2s_bytes",
                                            "s2c_packets", "s2c_bytes", "packets", "bytes",
                                            "filters"};
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
                    rc |= (first ? 0 : json_raw(s, ",", 1)) | json_lit(s, names[f]);
                    first = 0;
                }
            break;
        }
    }
    off[F_N] = s->len;
    if (rc) {   /* out of memory */
        COUNTER_INC(r->n.flow_updates_dropped);
        return;
    }
    const char *argv[2 + 2 * (F_N + 2)];
    size_t argl[2 + 2 * (F_N + 2)];
    int n = 0;
    argv[n] = "HSET", argl[n++] = 4;
    argv[n] = key, argl[n++] = kl;
    for (int i = 0; i < F_N; i++) {
        int quoted = i == F_CLIENT || i == F_SERVER;   /* json_addr: without the quotes */
        argv[n] = names_[i], argl[n++] = strlen(names_[i]);
        argv[n] = s->buf + off[i] + quoted, argl[n++] = off[i + 1] - off[i] - 2 * (size_t)quoted;
    }
    const char *state = ended ? flow_end_name(why) : "active";
    argv[n] = "state", argl[n++] = 5;
    argv[n] = state, argl[n++] = strlen(state);
    if (r->tags_csv) {
        argv[n] = "tags", argl[n++] = 4;
        argv[n] = r->tags_csv, argl[n++] = r->tags_csvlen;
    }
    if (!ended && !(fl->marks & FLOW_STATE_SENT) && fresh_hash(r, key, kl) < 0) {
        COUNTER_INC(r->n.flow_updates_dropped);
        return;
    }
    char ttl[24];
    uint64_t secs = ended ? r->conf->redis_flow_expire
                          : (uint64_t)r->conf->pkt_ttl + 2 * (uint64_t)r->conf->flow_state_interval;
    const char *exp[] = {"EXPIRE", key, ttl};
    size_t expl[] = {6, kl, fmt_u64(ttl, secs)};
    if (append(r, n, argv, argl, CMD_RECORD_MORE) < 0 ||
        append(r, 3, exp, expl, CMD_RECORD_MORE) < 0) {
        COUNTER_INC(r->n.flow_updates_dropped);
        return;
    }
    COUNTER_INC(r->n.flow_states);
    if (r->since == 0)
        r->since = outbuf_now();
}

void redis_out_set_seq(struct redis_out *r, unsigned worker, uint64_t seq)
{
    r->seq_on = 1;
    r->seq_worker = worker;
    r->seq = seq;
}

void redis_out_flow_event(struct redis_out *r, const struct flow *fl, const char *const *names)
{
    struct outbuf *s = &r->scratch;
    s->len = 0;
    if (json_flow(s, fl, FLOW_START, names) < 0 ||
        (r->tags_json && (s->len -= 2, json_lit(s, ",\"tags\":") |
                                           json_raw(s, r->tags_json, r->tags_jsonlen) |
                                           json_lit(s, "}\n")))) {
        COUNTER_INC(r->n.flow_updates_dropped);   /* out of memory */
        return;
    }
    if (r->live && live_admit(r, &r->n.flow_updates_dropped) < 0)
        return;
    if (!r->live && pipe_full(r))
        send_current(r);
    const char *pub[] = {"PUBLISH", r->conf->flow_events, s->buf};
    size_t publ[] = {7, strlen(r->conf->flow_events), s->len - 1};
    if (append(r, 3, pub, publ, CMD_RECORD_MORE) < 0) {
        COUNTER_INC(r->n.flow_updates_dropped);
        return;
    }
    COUNTER_INC(r->n.flow_events);
    if (r->since == 0)
        r->since = outbuf_now();
}
