/* ipfix.c - the IPFIX exporter: the collector's socket (UDP, or TCP with
 * reconnection), the message header and sequence numbers of the observation
 * domain, and the templates (sent first, refreshed over UDP, sent again on
 * every TCP connection). Workers call ipfix_send() once per message. */
#define _GNU_SOURCE   /* IP_MTU */
#include "ipfix.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "counter.h"
#include "hostport.h"
#include "ipfix-record.h"
#include "log.h"
#include "outbuf.h"

#define TCP_MESSAGE_MAX 16384      /* bytes: a stream has no path MTU to fit */
#define TCP_SEND_TIMEOUT_S 2       /* a collector that takes nothing for this long is gone */
#define TCP_CONNECT_TIMEOUT_S 2    /* a connection not made by then is tried again later */
#define LIVE_STALL_S 2             /* live: a collector whose socket stays full this long is gone */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 30000

struct ipfix_exporter {
    pthread_mutex_t lock;          /* one message at a time: header, sequence, socket */
    const struct config *conf;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fd;                        /* -1: TCP, not connected */
    int tcp;
    int connecting;                /* TCP: a non-blocking connect is under way */
    int connected_once;
    int live;                      /* atomic: sends never wait (live capture) */
    uint64_t connect_at;           /* TCP: monotonic ns the connection attempt began */
    uint64_t stall_since;          /* live: first of the sends the full socket refused */
    size_t message_max;
    uint32_t sequence;             /* data records sent in this domain, mod 2^32 */
    uint64_t templates_at;         /* monotonic ns of the last template message */
    uint64_t messages_since;       /* data messages since then */
    int templates_due;
    uint64_t retry_at;             /* TCP: next connection attempt, monotonic ns */
    unsigned retry_ms;
    uint64_t last_log;
    uint8_t template_msg[512];
    size_t template_len;
    char where[300];               /* host:port, for messages */
    struct ipfix_counters n;
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)), put16(p + 2, (uint16_t)v); }

/* The message header: version 10, length, export time, sequence, domain. */
static void header(struct ipfix_exporter *e, uint8_t *msg, size_t len)
{
    put16(msg, 10);
    put16(msg + 2, (uint16_t)len);
    put32(msg + 4, (uint32_t)time(NULL));
    put32(msg + 8, e->sequence);
    put32(msg + 12, e->conf->ipfix_domain);
}

/* TCP: the connection is given up; the next is tried after back-off. */
static void tcp_drop(struct ipfix_exporter *e)
{
    close(e->fd);
    e->fd = -1;
    e->connecting = 0;
    e->retry_ms = RETRY_MIN_MS;
    e->retry_at = outbuf_now() + RETRY_MIN_MS * 1000000ull;
}

/* Sends a whole message; 0, or -1 (TCP: a connection that broke, or took
 * nothing for TCP_SEND_TIMEOUT_S, is closed and tried again later). */
static int send_msg(struct ipfix_exporter *e, const uint8_t *msg, size_t len)
{
    int live = __atomic_load_n(&e->live, __ATOMIC_RELAXED);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(e->fd, msg + off, len - off, MSG_NOSIGNAL | (live ? MSG_DONTWAIT : 0));
        if (n < 0 && errno == EINTR)
            continue;
        int err = n < 0 ? errno : EMSGSIZE;
        if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK) && live && off == 0) {
            /* live: the socket is full, the stream still whole; a collector
             * that stays this way for LIVE_STALL_S is gone */
            uint64_t now = outbuf_now();
            COUNTER_INC(e->n.send_errors);
            if (!e->stall_since)
                e->stall_since = now;
            if (!e->tcp || now - e->stall_since < LIVE_STALL_S * 1000000000ull)
                return -1;
        } else if (n >= 0 && (e->tcp || (size_t)n == len)) {
            off += (size_t)n;
            continue;
        } else {
            COUNTER_INC(e->n.send_errors);
        }
        if (log_due(&e->last_log, 5000000000u))
            log_warn("IPFIX collector %s: %s", e->where,
                     err == EAGAIN || err == EWOULDBLOCK ? "takes nothing: given up" : strerror(err));
        if (e->tcp)
            tcp_drop(e);
        e->stall_since = 0;
        return -1;
    }
    e->stall_since = 0;
    COUNTER_ADD(e->n.bytes, len);
    return 0;
}

/* Sends the templates; due again at once when that failed (a collector
 * just restarted must not wait a whole refresh period). */
static void send_templates(struct ipfix_exporter *e)
{
    header(e, e->template_msg, e->template_len);
    if (send_msg(e, e->template_msg, e->template_len) < 0)
        return;
    COUNTER_INC(e->n.templates);
    e->templates_at = outbuf_now();
    e->messages_since = 0;
    e->templates_due = 0;
}

static int new_socket(struct ipfix_exporter *e)
{
    int fd = socket(e->addr.ss_family, (e->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (e->tcp) {
        struct timeval tv = {TCP_SEND_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);   /* the connect only */
    }
    return fd;
}

/* TCP: starts a connection, or sees whether the one under way is made.
 * Returns 0 once connected (templates are then due), -1 meanwhile. */
static int tcp_connect(struct ipfix_exporter *e)
{
    if (!e->connecting) {
        if (outbuf_now() < e->retry_at)
            return -1;
        int fd = new_socket(e);
        if (fd < 0)
            goto failed;
        if (connect(fd, (struct sockaddr *)&e->addr, e->addrlen) < 0 && errno != EINPROGRESS) {
            int saved = errno;
            close(fd);
            errno = saved;
            goto failed;
        }
        e->fd = fd;
        e->connecting = 1;
        e->connect_at = outbuf_now();
    }
    struct pollfd pfd = {e->fd, POLLOUT, 0};
    if (poll(&pfd, 1, 0) == 0) {
        if (outbuf_now() - e->connect_at < TCP_CONNECT_TIMEOUT_S * 1000000000ull)
            return -1;   /* still connecting: what comes meanwhile is dropped */
        close(e->fd);    /* a host that does not answer: try again after back-off */
        e->fd = -1;
        e->connecting = 0;
        errno = ETIMEDOUT;
        goto failed;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    e->connecting = 0;
    if (soerr) {
        close(e->fd);
        e->fd = -1;
        errno = soerr;
        goto failed;
    }
    fcntl(e->fd, F_SETFL, fcntl(e->fd, F_GETFL) & ~O_NONBLOCK);
    if (e->connected_once)
        COUNTER_INC(e->n.reconnects);
    e->connected_once = 1;
    e->retry_ms = RETRY_MIN_MS;
    e->templates_due = 1;
    log_info("IPFIX collector %s: connected", e->where);
    return 0;
failed:
    if (log_due(&e->last_log, 5000000000u))
        log_warn("IPFIX collector %s: unreachable (%s), retrying", e->where, strerror(errno));
    e->retry_at = outbuf_now() + (uint64_t)e->retry_ms * 1000000u;
    e->retry_ms = e->retry_ms * 2 < RETRY_MAX_MS ? e->retry_ms * 2 : RETRY_MAX_MS;
    return -1;
}

void ipfix_send(struct ipfix_exporter *e, uint8_t *msg, size_t len, unsigned nrecords)
{
    pthread_mutex_lock(&e->lock);
    if (e->tcp && e->fd >= 0 && !e->connecting) {
        /* a collector never sends: a readable socket was closed by it (a
         * message written now would be taken by the kernel, then lost) */
        struct pollfd pfd = {e->fd, POLLIN | POLLRDHUP, 0};
        if (poll(&pfd, 1, 0) > 0) {
            log_warn("IPFIX collector %s: closed the connection, reconnecting", e->where);
            tcp_drop(e);
            e->retry_at = 0;
        }
    }
    if (e->tcp && (e->fd < 0 || e->connecting) && tcp_connect(e) < 0) {
        COUNTER_ADD(e->n.dropped, nrecords);   /* down, or still connecting */
        pthread_mutex_unlock(&e->lock);
        return;
    }
    const struct config *c = e->conf;
    if (!e->tcp && ((c->ipfix_refresh_s &&
                     outbuf_now() - e->templates_at >= (uint64_t)c->ipfix_refresh_s * 1000000000u) ||
                    (c->ipfix_refresh_msgs && e->messages_since >= c->ipfix_refresh_msgs)))
        e->templates_due = 1;
    if (e->templates_due)
        send_templates(e);
    header(e, msg, len);
    if (e->fd >= 0 && send_msg(e, msg, len) == 0) {
        COUNTER_INC(e->n.messages);
        COUNTER_ADD(e->n.records, nrecords);
    } else {
        COUNTER_ADD(e->n.lost, nrecords);
    }
    /* RFC 7011: the count of data records sent before; a lost message shows
     * at the collector as a gap */
    e->sequence += nrecords;
    e->messages_since++;
    pthread_mutex_unlock(&e->lock);
}

struct ipfix_exporter *ipfix_open(const struct config *conf, char *err, size_t errlen)
{
    struct ipfix_exporter *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->conf = conf;
    e->fd = -1;
    e->tcp = conf->ipfix_tcp;
    e->retry_ms = RETRY_MIN_MS;
    e->templates_due = 1;
    snprintf(e->where, sizeof e->where, "%s", conf->ipfix_collector);
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = e->tcp ? SOCK_STREAM : SOCK_DGRAM,
                             .ai_flags = AI_ADDRCONFIG}, *ai = NULL;
    unsigned portnum = hostport_split(conf->ipfix_collector, host, sizeof host);
    snprintf(port, sizeof port, "%u", portnum);
    if (!portnum) {
        snprintf(err, errlen, "IPFIX collector %s: not host:port", e->where);
        free(e);
        return NULL;
    }
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "IPFIX collector %s: %s", e->where,
                 rc ? gai_strerror(rc) : "no address");
        free(e);
        return NULL;
    }
    memcpy(&e->addr, ai->ai_addr, ai->ai_addrlen);
    e->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    e->template_len = IPFIX_HEADER_LEN +
                      ipfix_record_templates(e->template_msg + IPFIX_HEADER_LEN,
                                             sizeof e->template_msg - IPFIX_HEADER_LEN);
    if (e->tcp) {
        e->message_max = TCP_MESSAGE_MAX;
        /* a collector that is there gets everything from the first record;
         * one that is not is retried with back-off, not an error */
        if (tcp_connect(e) < 0 && e->connecting) {
            struct pollfd pfd = {e->fd, POLLOUT, 0};
            poll(&pfd, 1, 1000);
            tcp_connect(e);
        }
    } else {
        if ((e->fd = new_socket(e)) < 0 ||
            connect(e->fd, (struct sockaddr *)&e->addr, e->addrlen) < 0) {
            snprintf(err, errlen, "IPFIX collector %s: %s", e->where, strerror(errno));
            if (e->fd >= 0)
                close(e->fd);
            free(e);
            return NULL;
        }
        /* the path MTU of the connected socket, less the IP and UDP headers */
        int mtu = 0;
        socklen_t sl = sizeof mtu;
        int v6 = e->addr.ss_family == AF_INET6;
        if (getsockopt(e->fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &mtu,
                       &sl) < 0 || mtu < 576)
            mtu = 1500;
        size_t max = (size_t)mtu - (v6 ? 48 : 28);
        /* a record must fit, whatever the path says (the IP layer fragments) */
        size_t least = IPFIX_HEADER_LEN + 4 + IPFIX_RECORD_MAX;
        e->message_max = max > 65535 ? 65535 : max < least ? least : max;
    }
    pthread_mutex_init(&e->lock, NULL);
    if (e->fd >= 0 && !e->connecting)
        send_templates(e);   /* at start: a collector knows them before any record */
    return e;
}

void ipfix_close(struct ipfix_exporter *e)
{
    if (!e)
        return;
    if (e->fd >= 0)
        close(e->fd);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

size_t ipfix_message_max(const struct ipfix_exporter *e) { return e->message_max; }

void ipfix_set_live(struct ipfix_exporter *e, int on)
{
    __atomic_store_n(&e->live, on, __ATOMIC_RELAXED);
}

void ipfix_counters_get(const struct ipfix_exporter *e, struct ipfix_counters *out)
{
    out->records = COUNTER_GET(e->n.records);
    out->messages = COUNTER_GET(e->n.messages);
    out->templates = COUNTER_GET(e->n.templates);
    out->bytes = COUNTER_GET(e->n.bytes);
    out->lost = COUNTER_GET(e->n.lost);
    out->dropped = COUNTER_GET(e->n.dropped);
    out->send_errors = COUNTER_GET(e->n.send_errors);
    out->reconnects = COUNTER_GET(e->n.reconnects);
}
