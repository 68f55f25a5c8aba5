/* redis-conn.c - a connection to Redis and its two pipelines: connecting
 * (AUTH, SELECT, REDIS_RETRY), commands formatted in RESP into dati's own
 * buffers and written from there, replies read in place, id blocks, and the
 * accounting of what a pipeline carries (lost when unanswered or refused).
 * Reading a file it waits for Redis and resends after a reconnection; live
 * mode's admission and reconnection are in redis-live.c. */
#include "redis-conn-int.h"
#include "redis-cluster.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "counter.h"
#include "hostport.h"
#include "log.h"

#define STOP_WAIT_S 5                    /* reading a file: the longest wait once stopping */

static const volatile int *stop_flag;

void redis_conn_set_stop(const volatile int *flag) { stop_flag = flag; }

/* Test hook (doc/records.md): the live capture's never-waiting mode,
 * exercised while reading a file. */
int redis_test_live(void)
{
    const char *live = getenv("DATI_TEST_REDIS_LIVE");
    return live && strcmp(live, "1") == 0;
}

int redis_conn_stopping(void)
{
    return stop_flag && __atomic_load_n(stop_flag, __ATOMIC_RELAXED);
}

void conn_count_lost(struct redis_conn *r, int kind)
{
    if (kind == REDIS_CMD_RECORD)
        COUNTER_INC(r->n.lost);
    else if (kind == REDIS_CMD_FLOW)
        COUNTER_INC(r->n.flows_lost);
}

/* Connects, authenticates and selects the database. Returns the context, or
 * NULL with the reason in err; *refused tells a server that answered (AUTH,
 * SELECT refused) from one that could not be reached. A server that accepts
 * and never answers (stopped, paused, a dead proxy's backend) holds AUTH and
 * SELECT for CONNECT_TIMEOUT_S at most; the context returned has no timeout
 * (blocking back-pressure reading a file): callers that must not wait set
 * their own. TCP connections get keepalives: a peer gone is noticed. */
redisContext *conn_connect_to(const struct config *conf, const struct redis_addr *a, char *err,
                              size_t errlen, int *refused)
{
    *refused = 0;
    struct timeval tv = {CONNECT_TIMEOUT_S, 0}, forever = {0, 0};
    redisContext *c = a->sock ? redisConnectUnixWithTimeout(a->sock, tv)
                              : redisConnectWithTimeout(a->host, (int)a->port, tv);
    char where[300];
    if (a->sock)
        snprintf(where, sizeof where, "%s", a->sock);
    else
        snprintf(where, sizeof where, "%s:%u", a->host, a->port);
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", where,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (!a->sock)
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

struct redis_addr redis_addr_of(const struct config *conf, char *hostbuf, size_t hostlen)
{
    if (conf->redis_ncluster)
        return (struct redis_addr){NULL, hostbuf,
                                   hostport_split(conf->redis_cluster[0], hostbuf, hostlen)};
    return (struct redis_addr){conf->redis_sock, conf->redis_host ? conf->redis_host : "127.0.0.1",
                               conf->redis_port};
}

redisContext *redis_conn_connect(const struct config *conf, char *err, size_t errlen)
{
    int refused;
    char host[256];
    struct redis_addr a = redis_addr_of(conf, host, sizeof host);
    redisContext *c = conn_connect_to(conf, &a, err, errlen, &refused);
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
void conn_attach(struct redis_conn *r, redisContext *c)
{
    r->c = c;
    if (!c)
        return;
    c->reader->fn = &reply_in_place;
    c->reader->privdata = &r->reply;
    c->reader->maxbuf = 0;   /* keep the read buffer rather than free and grow it again */
}

static int wait_fd(struct redis_conn *r, short events);
static int pipe_append_raw(struct redis_conn *r, struct pipe *p, const char *cmd, size_t len,
                           enum redis_cmd_kind kind);
static void broken(struct redis_conn *r, const char *why);
static int send_all(struct redis_conn *r, const char *buf, size_t len);

/* A command on r's connection, waiting for its reply (r->reply) as the
 * pipelines do (wait_fd); NULL when the connection failed or was given up. */
static const struct reply *command(struct redis_conn *r, const char *fmt, ...)
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

int redis_conn_incrby(struct redis_conn *r, const char *key, long long n, int asking,
                      long long *val, char *err, size_t errlen)
{
    redis_conn_flush(r);   /* a synchronous round trip must not interleave replies */
    const struct reply *rep = asking ? command(r, "ASKING") : NULL;
    if (!asking || rep)
        rep = command(r, "INCRBY %s %lld", key, n);
    if (!rep) {
        snprintf(err, errlen, "%s", "");
        return -1;
    }
    if (rep->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "%s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        return -1;
    }
    *val = rep->integer;
    return 0;
}

void conn_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* REDIS_RETRY: a Redis not reachable yet is tried again, with back-off (0.1 s
 * doubling to 2 s), for up to conf->redis_retry seconds or until dati is
 * stopped. A server that answers and refuses (AUTH, SELECT) is not retried. */
static redisContext *connect_start(const struct config *conf, const struct redis_addr *a,
                                   char *err, size_t errlen)
{
    int refused;
    redisContext *c = conn_connect_to(conf, a, err, errlen, &refused);
    if (c || refused || !conf->redis_retry)
        return c;
    uint64_t deadline = outbuf_now() + (uint64_t)conf->redis_retry * 1000000000u;
    uint64_t last_log = 0;
    unsigned delay_ms = 100;
    while (!redis_conn_stopping() && outbuf_now() < deadline) {
        if (log_due(&last_log, 5000000000u))   /* every 5 s at most */
            log_warn("%s; retrying (REDIS_RETRY %u)", err, conf->redis_retry);
        conn_sleep_ms(delay_ms);
        delay_ms = delay_ms < 1000 ? delay_ms * 2 : 2000;
        if ((c = conn_connect_to(conf, a, err, errlen, &refused)) || refused)
            return c;
    }
    return NULL;
}

static void free_conn(struct redis_conn *r)
{
    for (int i = 0; i < 2; i++) {
        outbuf_fini(&r->pipes[i].buf);
        free(r->pipes[i].kind);
        free(r->pipes[i].off);
    }
    redis_redirects_free(&r->redir);
    free((char *)r->addr.host);
    free((char *)r->addr.sock);
    free(r);
}

static struct redis_conn *open_at(const struct config *conf, const struct redis_addr *a,
                                  int cluster, int later, char *err, size_t errlen)
{
    struct redis_conn *r = calloc(1, sizeof *r);
    if (!r)
        goto oom;
    r->conf = conf;
    r->cluster = cluster;
    r->addr.port = a->port;
    if ((a->host && !(r->addr.host = strdup(a->host))) ||
        (a->sock && !(r->addr.sock = strdup(a->sock))))
        goto oom;
    r->max_cmds = 3 * conf->redis_pipeline + 64;
    for (int i = 0; i < 2; i++)
        if (!(r->pipes[i].kind = malloc(r->max_cmds)) ||
            !(r->pipes[i].off = malloc(sizeof *r->pipes[i].off * r->max_cmds)) ||
            outbuf_init(&r->pipes[i].buf, NULL) < 0)
            goto oom;
    r->cur = &r->pipes[0];
    if (later) {   /* live: down until live mode's connector thread has connected it */
        r->live = r->down = 1;
        r->retry_ms = 100;
        return r;
    }
    conn_attach(r, connect_start(conf, &r->addr, err, errlen));
    if (!r->c)
        goto fail;
    if (!r->cluster && redis_test_live())   /* a cluster's: redis_cluster_open */
        redis_conn_set_live(r);
    return r;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (r)
        free_conn(r);
    return NULL;
}

struct redis_conn *redis_conn_open(const struct config *conf, char *err, size_t errlen)
{
    char host[256];
    struct redis_addr a = redis_addr_of(conf, host, sizeof host);
    return open_at(conf, &a, 0, 0, err, errlen);
}

struct redis_conn *redis_conn_open_node(const struct config *conf, const char *host, unsigned port,
                                        int live, char *err, size_t errlen)
{
    struct redis_addr a = {NULL, host, port};
    return open_at(conf, &a, 1, live, err, errlen);
}

void redis_conn_close(struct redis_conn *r)
{
    if (!r)
        return;
    redis_conn_flush(r);
    live_connector_join(r);
    redisFree(r->fresh);
    redisFree(r->c);
    free_conn(r);
}

struct redis_counters *redis_conn_counters(struct redis_conn *r) { return &r->n; }

void redis_conn_log(struct redis_conn *r, const char *what, const char *detail)
{
    if (log_due(&r->last_log, 1000000000u))
        log_warn("Redis %s: %s", what, detail);
}

/* Counts an error reply by its first word, and what the command carried. */
static void error_reply(struct redis_conn *r, const struct reply *rep, enum redis_cmd_kind kind)
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
    conn_count_lost(r, kind);
    redis_conn_log(r, "error reply", rep->str);
}

/* Connects again, waiting with back-off (0.1 s doubling to 2 s) for as long
 * as it takes: reading a file, waiting for Redis is the back-pressure that
 * keeps delivery lossless. Gives up only when dati is being stopped. */
static int reconnect(struct redis_conn *r)
{
    unsigned delay_ms = 100;
    while (!redis_conn_stopping()) {
        char err[256];
        int refused;
        redisFree(r->c);
        conn_attach(r, conn_connect_to(r->conf, &r->addr, err, sizeof err, &refused));
        if (r->c) {
            COUNTER_INC(r->n.reconnects);
            return 0;
        }
        redis_conn_log(r, "unreachable, retrying", err);
        conn_sleep_ms(delay_ms);
        delay_ms = delay_ms < 1000 ? delay_ms * 2 : 2000;
    }
    return -1;
}

void conn_track_depth(struct redis_conn *r)
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
static int send_all(struct redis_conn *r, const char *buf, size_t len)
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
int conn_send_pipe(struct redis_conn *r, struct pipe *p)
{
    p->done = 0;
    if (r->cluster && r->conf->redis_wait_replicas && !p->waited && p->ncmds) {
        /* the pipeline counts as stored once replicas have it (WAIT); after
         * one timed out (a master with no replica left, say after a
         * failover), 10 ms until one succeeds again: not a second a pipeline */
        char cmd[96];
        unsigned ms = r->wait_short && r->conf->redis_wait_ms > 10 ? 10 : r->conf->redis_wait_ms;
        int n = snprintf(cmd, sizeof cmd, "*3\r\n$4\r\nWAIT\r\n$%d\r\n%u\r\n$%d\r\n%u\r\n",
                         snprintf(NULL, 0, "%u", r->conf->redis_wait_replicas),
                         r->conf->redis_wait_replicas, snprintf(NULL, 0, "%u", ms), ms);
        if (pipe_append_raw(r, p, cmd, (size_t)n, REDIS_CMD_WAIT) == 0)
            p->waited = 1;
    }
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
static void broken(struct redis_conn *r, const char *why)
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
static int wait_fd(struct redis_conn *r, short events)
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
        if (!r->live && redis_conn_stopping()) {
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

/* Keeps command i of p, with its bytes, to be sent again; NULL when out of
 * memory. */
static struct redirect *keep(struct redis_conn *r, struct pipe *p, unsigned i, int how)
{
    struct redis_redirects *l = &r->redir;
    uint32_t start = p->off[i], end = i + 1 < p->ncmds ? p->off[i + 1] : (uint32_t)p->buf.len;
    if (l->n == l->cap) {
        unsigned cap = l->cap ? 2 * l->cap : 64;
        struct redirect *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    if ((!l->bytes.buf && outbuf_init(&l->bytes, NULL) < 0) ||
        outbuf_room(&l->bytes, end - start) < 0)
        return NULL;
    struct redirect *d = &l->v[l->n++];
    memset(d, 0, sizeof *d);
    d->kind = p->kind[i];
    d->how = (uint8_t)how;
    d->off = (uint32_t)l->bytes.len;
    d->len = end - start;
    memcpy(l->bytes.buf + l->bytes.len, p->buf.buf + start, d->len);
    l->bytes.len += d->len;
    return d;
}

void redis_redirects_free(struct redis_redirects *l)
{
    if (l->bytes.buf)
        outbuf_fini(&l->bytes);
    free(l->v);
    memset(l, 0, sizeof *l);
}

unsigned redis_conn_take_redirects(struct redis_conn *r, struct redis_redirects *out)
{
    *out = r->redir;
    memset(&r->redir, 0, sizeof r->redir);
    return out->n;
}

/* Cluster: command i of p, answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN, is
 * kept with its bytes for the cluster to send again (not an error, not
 * lost). Returns 1 when rep was one of those (and the command is kept, or
 * is an id request, asked again of dati:id's node), 0 otherwise or when out
 * of memory (then it counts as an error reply). */
static int redirected(struct redis_conn *r, struct pipe *p, unsigned i, const struct reply *rep)
{
    const char *s = rep->str;
    int how = strncmp(s, "MOVED ", 6) == 0 ? REDIRECT_MOVED
              : strncmp(s, "ASK ", 4) == 0 ? REDIRECT_ASK
              : strncmp(s, "TRYAGAIN", 8) == 0 || strncmp(s, "CLUSTERDOWN", 11) == 0
                  ? REDIRECT_RETRY : -1;
    if (how < 0)
        return 0;
    if (p->kind[i] == REDIS_CMD_IDS)
        r->ids_moved = 1;   /* live: the slot map is asked for (ids_asked was reset) */
    if (p->kind[i] == REDIS_CMD_IDS || p->kind[i] == REDIS_CMD_WAIT)
        return 1;   /* the next request goes where dati:id is */
    struct redirect *d = keep(r, p, i, how);
    if (d && how != REDIRECT_RETRY) {   /* "MOVED 3999 127.0.0.1:6381" */
        const char *sp = strchr(s, ' ');
        d->slot = (uint16_t)(atoi(sp + 1) & 16383);
        const char *t = sp ? strchr(sp + 1, ' ') : NULL;
        snprintf(d->target, sizeof d->target, "%s", t ? t + 1 : "");
    }
    return d != NULL;
}

/* The key slot of a command in RESP (its second argument), -1 for one
 * without a key or that is not resent on its own (ASKING, WAIT). */
static int command_slot(const char *c, size_t len)
{
    const char *end = c + len;
    char *q;
    if (len < 4 || c[0] != '*' || strtol(c + 1, &q, 10) < 2 || q[0] != '\r')
        return -1;
    const char *p = q + 2;
    if (p >= end || *p != '$')
        return -1;
    long nl = strtol(p + 1, &q, 10);
    const char *name = q + 2;
    if (name + nl + 2 >= end || (nl == 4 && memcmp(name, "WAIT", 4) == 0))
        return -1;
    p = name + nl + 2;
    if (*p != '$')
        return -1;
    long kl = strtol(p + 1, &q, 10);
    if (q + 2 + kl > end)
        return -1;
    return (int)redis_keyslot(q + 2, (size_t)kl);
}

/* Cluster: the commands of p from `from` on, kept to go where their slots
 * are now (their node was lost); p is emptied. */
static void reroute(struct redis_conn *r, struct pipe *p, unsigned from)
{
    for (unsigned i = from; i < p->ncmds; i++) {
        if (p->kind[i] == REDIS_CMD_IDS || p->kind[i] == REDIS_CMD_WAIT)
            continue;
        uint32_t start = p->off[i], end = i + 1 < p->ncmds ? p->off[i + 1] : (uint32_t)p->buf.len;
        int slot = command_slot(p->buf.buf + start, end - start);
        struct redirect *d = slot < 0 ? NULL : keep(r, p, i, REDIRECT_REROUTE);
        if (d) {
            d->slot = (uint16_t)slot;
            COUNTER_INC(r->n.rerouted);
        } else if (slot >= 0) {
            conn_count_lost(r, p->kind[i]);   /* out of memory */
        }
    }
    COUNTER_ADD(r->n.commands, p->counted);
    conn_clear(p);
}

/* Cluster: the node's connection is lost and could not be made again. What
 * its pipelines hold goes to the cluster, to be sent where the slots are
 * now (the whole pipeline in flight with REDIS_WAIT_REPLICAS: nothing of it
 * is known to be on a replica); the node stays down until it answers. */
static void node_lost(struct redis_conn *r, struct pipe *sent)
{
    redis_conn_log(r, "cluster node lost", "its commands go where its slots are now");
    reroute(r, sent, r->conf->redis_wait_replicas ? 0 : sent->counted);
    for (int i = 0; i < 2; i++)
        if (&r->pipes[i] != sent)
            reroute(r, &r->pipes[i], 0);
    redisFree(r->c);
    r->c = NULL;
    r->ids_asked = 0;
    r->ids_left = 0;
    r->spare_ready = 0;
}

int redis_conn_alive(struct redis_conn *r)
{
    if (r->c && !r->c->err)
        return 1;
    char err[256];
    int refused;
    redisFree(r->c);
    conn_attach(r, conn_connect_to(r->conf, &r->addr, err, sizeof err, &refused));
    if (r->c)
        COUNTER_INC(r->n.reconnects);
    return r->c != NULL;
}

/* One reply of a sent pipeline: an error counted once across resends, an
 * id block kept for later. */
static void take_reply(struct redis_conn *r, struct pipe *p, const struct reply *rep)
{
    unsigned i = p->done++;
    enum redis_cmd_kind kind = (enum redis_cmd_kind)p->kind[i];
    if (kind == REDIS_CMD_IDS) {
        r->ids_asked = 0;
        if (rep->type == REDIS_REPLY_INTEGER) {
            r->spare_id = (uint64_t)rep->integer - ID_BLOCK + 1;
            r->spare_ready = 1;
        }
    }
    if (kind == REDIS_CMD_WAIT && rep->type == REDIS_REPLY_INTEGER && i >= p->counted) {
        r->wait_short = rep->integer < (long long)r->conf->redis_wait_replicas;
        if (r->wait_short)
            COUNTER_INC(r->n.wait_short);
    }
    if (rep->type == REDIS_REPLY_ERROR && i >= p->counted && !(r->cluster && redirected(r, p, i, rep)))
        error_reply(r, rep, kind);
    if (i >= p->counted)
        p->counted = i + 1;
}

/* Reads the replies of a sent pipeline; wait: until all are in, else only
 * those already arrived. Returns 0 when all are read, 1 when some are still
 * to come, -1 on a broken connection. */
int conn_collect(struct redis_conn *r, struct pipe *p, int wait)
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
void conn_count_unanswered(struct redis_conn *r, const struct pipe *p)
{
    for (unsigned i = p->counted; i < p->ncmds; i++)
        conn_count_lost(r, p->kind[i]);
}

void conn_clear(struct pipe *p)
{
    p->buf.len = 0;
    p->ncmds = p->nrecords = p->nflows = p->counted = p->done = 0;
    p->waited = 0;
}

/* Waits for the pipeline in flight to be answered. When the connection
 * fails, reconnects and sends it again (HSET and EXPIRE repeat harmlessly; a
 * PUBLISH may reach a subscriber twice); live, drops it instead. */
static void conn_settle(struct redis_conn *r)
{
    struct pipe *p = r->sent;
    if (!p)
        return;
    while (conn_collect(r, p, 1) < 0) {
        if (r->live) {
            live_went_down(r);
            return;
        }
        redis_conn_log(r, "connection lost", r->c ? r->c->errstr : "not connected");
        if (r->cluster && !redis_conn_stopping() && !redis_conn_alive(r)) {
            node_lost(r, p);   /* the cluster sends it where the slots are now */
            r->sent = NULL;
            conn_track_depth(r);
            return;
        }
        if (!r->cluster && reconnect(r) < 0) {   /* being stopped: what is in flight is lost */
            conn_count_unanswered(r, p);
            break;
        }
        if (r->cluster && redis_conn_stopping()) {
            conn_count_unanswered(r, p);
            break;
        }
        conn_send_pipe(r, p);   /* a failure shows in conn_collect() */
        if (r->behind)
            conn_send_pipe(r, r->behind);
    }
    COUNTER_ADD(r->n.commands, p->counted);   /* all of them, unless given up */
    conn_clear(p);
    r->sent = NULL;
    conn_track_depth(r);
}

void conn_swap_pipes(struct redis_conn *r)
{
    r->sent = r->cur;
    r->sent_at = outbuf_now();
    r->cur = r->cur == &r->pipes[0] ? &r->pipes[1] : &r->pipes[0];
    r->since = 0;
}

/* Sends the pipeline being filled, then waits for the one in flight to be
 * answered: Redis has the next pipeline in its socket when it finishes one
 * (no idle round trip), while dati fills the buffer just freed. */
static void send_current(struct redis_conn *r)
{
    if (r->cur->ncmds == 0) {
        conn_settle(r);
        return;
    }
    struct pipe *p = r->cur;
    if (r->live) {   /* one in flight at most */
        conn_settle(r);
        if (r->down || p->ncmds == 0)
            return;
        if (conn_send_pipe(r, p) < 0)
            live_went_down(r);
        else
            conn_swap_pipes(r);
        return;
    }
    conn_send_pipe(r, p);   /* a failure shows, and is mended, in conn_settle() */
    r->behind = p;
    conn_settle(r);
    r->behind = NULL;
    conn_swap_pipes(r);
}

/* The pipeline being filled has reached its size. */
int conn_pipe_full(const struct redis_conn *r)
{
    return r->cur->nrecords >= r->conf->redis_pipeline ||
           r->cur->ncmds >= 3 * r->conf->redis_pipeline || r->cur->ncmds + 16 >= r->max_cmds;
}

int redis_conn_admit(struct redis_conn *r, uint64_t *update_dropped)
{
    if (r->live)
        return live_admit(r, update_dropped);
    if (conn_pipe_full(r))
        send_current(r);
    return 0;
}

struct redis_mark redis_conn_mark(const struct redis_conn *r)
{
    return (struct redis_mark){r->cur->buf.len, r->cur->ncmds};
}

void redis_conn_rollback(struct redis_conn *r, struct redis_mark m)
{
    r->cur->buf.len = m.len;
    r->cur->ncmds = m.ncmds;
}

void redis_conn_touch(struct redis_conn *r)
{
    if (r->since == 0)
        r->since = outbuf_now();
}

void redis_conn_queued(struct redis_conn *r, int flow)
{
    if (flow) {
        COUNTER_INC(r->n.flows);
        r->cur->nflows++;
    } else {
        COUNTER_INC(r->n.records);
        r->cur->nrecords++;
    }
    redis_conn_touch(r);
    conn_track_depth(r);
    if (conn_pipe_full(r)) {
        if (r->live)
            live_pump(r, 0);
        else
            send_current(r);
    }
}

void redis_conn_flush(struct redis_conn *r)
{
    if (r->live && r->down) {   /* one last try, then what is queued is lost */
        if (live_reconnect(r, 1) < 0) {
            live_went_down(r);
            return;
        }
    }
    send_current(r);
    conn_settle(r);
}

static int send_stats(struct redis_conn *r, const char *key, const char *json, size_t len,
                      int final)
{
    const struct reply *rep = command(r, "HSET %s json %b final %d", key, json, len, final);
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    /* one channel for every probe: the record says which */
    rep = command(r, "PUBLISH " REDIS_STATS_KEY " %b", json, len);
    return ok && rep && rep->type != REDIS_REPLY_ERROR;
}

int redis_conn_stats(struct redis_conn *r, const char *key, const char *json, size_t len,
                     int final)
{
    /* live, Redis unreachable: interim statistics do not wait for it (they
     * also go to the output, and signals are answered meanwhile) */
    if (r->live && r->down && !final && live_reconnect(r, 0) < 0)
        return -1;
    redis_conn_flush(r);   /* nothing of ours in flight: the replies below are these */
    int ok = send_stats(r, key, json, len, final);
    /* reading a file, a connection that broke since the last statistics (a
     * Redis restarted) is mended as the records' connections are */
    if (!ok && !r->live && r->c && r->c->err &&
        (r->cluster ? redis_conn_alive(r) : reconnect(r) == 0))   /* a cluster node: once */
        ok = send_stats(r, key, json, len, final);
    if (!ok)
        redis_conn_log(r, "statistics not stored", r->c && r->c->err ? r->c->errstr : "error reply");
    if (r->live && r->c && r->c->err)   /* timed out or broken: reconnect later */
        live_went_down(r);
    return ok ? 0 : -1;
}

void redis_conn_drain(struct redis_conn *r)
{
    if (r->live)
        live_pump(r, 0);
    else if (r->since && outbuf_now() - r->since >= OUTBUF_DRAIN_NS)
        redis_conn_flush(r);
}

/* "<type><n>\r\n" at o; returns the end. Called for every argument: out
 * of line (as gcc chose once append was no longer static) it cost 2 % of
 * the instructions per record in hash mode. */
static inline __attribute__((always_inline)) char *resp_len(char *o, char type, size_t n)
{
    *o++ = type;
    o += redis_fmt_u64(o, n);
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* Adds one command to the pipeline in RESP; nothing is sent yet. */
int redis_conn_append(struct redis_conn *r, int argc, const char **argv, const size_t *len,
                      enum redis_cmd_kind kind)
{
    struct pipe *p = r->cur;
    size_t need = 24;
    for (int i = 0; i < argc; i++)
        need += len[i] + 24;
    if (p->ncmds == r->max_cmds || outbuf_room(&p->buf, need) < 0)
        return -1;
    p->off[p->ncmds] = (uint32_t)p->buf.len;
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

int redis_conn_append_raw(struct redis_conn *r, const char *cmd, size_t len,
                          enum redis_cmd_kind kind)
{
    return pipe_append_raw(r, r->cur, cmd, len, kind);
}

static int pipe_append_raw(struct redis_conn *r, struct pipe *p, const char *cmd, size_t len,
                           enum redis_cmd_kind kind)
{
    if (p->ncmds == r->max_cmds || outbuf_room(&p->buf, len) < 0)
        return -1;
    p->off[p->ncmds] = (uint32_t)p->buf.len;
    memcpy(p->buf.buf + p->buf.len, cmd, len);
    p->buf.len += len;
    p->kind[p->ncmds++] = (uint8_t)kind;
    return 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)

void redis_conn_ask_ids(struct redis_conn *r)
{
    if (r->ids_asked || r->spare_ready || r->down)
        return;
    const char *argv[] = {"INCRBY", ID_KEY, STR(ID_BLOCK)};
    size_t argl[] = {6, sizeof ID_KEY - 1, sizeof STR(ID_BLOCK) - 1};
    r->ids_asked = r->ids_unsent = redis_conn_append(r, 3, argv, argl, REDIS_CMD_IDS) == 0;
}

int redis_conn_take_ids(struct redis_conn *r, int flush, uint64_t *first)
{
    if (flush && r->ids_asked && !r->spare_ready)
        redis_conn_flush(r);
    if (!r->spare_ready)
        return -1;
    r->spare_ready = 0;
    *first = r->spare_id;
    return 0;
}

/* Takes the next id. The next block is asked for inside the pipeline (INCRBY)
 * when half of this one is used, so that a round trip of its own is needed
 * only when that reply has not come back in time; live, the record is then
 * dropped (counted as queue_full) instead of waiting. */
int redis_conn_next_id(struct redis_conn *r, uint64_t *id)
{
    int rc = -1;
    /* the block asked for ahead; reading a file, its reply waited for */
    if (r->ids_left == 0 && redis_conn_take_ids(r, !r->live, &r->next_id) == 0)
        r->ids_left = ID_BLOCK;
    if (r->ids_left == 0 && r->live) {
        COUNTER_INC(*(r->down ? &r->n.dropped_disconnected : &r->n.dropped_queue_full));
        goto ask;
    }
    if (r->ids_left == 0) {
        redis_conn_flush(r);   /* a synchronous round trip must not interleave replies */
        const struct reply *rep;
        while (!(rep = command(r, "INCRBY " ID_KEY " %d", ID_BLOCK)))
            if (reconnect(r) < 0)
                return -1;
        if (rep->type != REDIS_REPLY_INTEGER) {
            redis_conn_log(r, "INCRBY " ID_KEY " failed", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
            return -1;
        }
        r->next_id = (uint64_t)rep->integer - ID_BLOCK + 1;
        r->ids_left = ID_BLOCK;
    }
    *id = r->next_id++;
    r->ids_left--;
    rc = 0;
ask:
    if (r->ids_left <= ID_BLOCK / 2)
        redis_conn_ask_ids(r);
    /* live: the request goes out as soon as the pipeline in flight is
     * answered, not when this one is full or drained (a cluster's dati:id
     * master gets only its share of the records) */
    if (r->live && r->ids_unsent)
        live_pump(r, 1);
    return rc;
}
