/* http.c - the HTTP server of HTTP_LISTEN on libmicrohttpd: its own thread
 * polls the sockets; a request gets a copy of a document the statistics
 * thread made. dati binds the socket itself, so that a port in use or an
 * address not on this host is said in words at start. */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostport.h"
#include "monitor.h"
#include "page.h"

struct http_server {
    struct MHD_Daemon *d;
    struct monitor *m;
    char host[256];                /* HTTP_LISTEN's host, as a Host header may name it */
};

/* A Host header a browser sends only when it was asked for this server:
 * an address, localhost, or the configured name. A name that merely
 * resolves here (DNS rebinding) is not one of them. No Host (HTTP/1.0): a
 * program, not a page. */
static int host_allowed(const struct http_server *h, const char *value)
{
    char host[256];
    struct in6_addr a;
    if (!value)
        return 1;
    size_t n = strlen(value);
    if (n == 0 || n >= sizeof host)
        return 0;
    if (value[0] == '[') {   /* [v6]:port */
        const char *end = strchr(value, ']');
        if (!end || (end[1] && end[1] != ':'))
            return 0;
        snprintf(host, sizeof host, "%.*s", (int)(end - value - 1), value + 1);
        return inet_pton(AF_INET6, host, &a) == 1;
    }
    const char *colon = strchr(value, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon ? (size_t)(colon - value) : n), value);
    return inet_pton(AF_INET, host, &a) == 1 || strcasecmp(host, "localhost") == 0 ||
           strcasecmp(host, h->host) == 0;
}

static enum MHD_Result send_body(struct http_server *h, struct MHD_Connection *c,
                                 enum http_status_kind kind, const char *type, char *body,
                                 size_t len)
{
    static const unsigned status[HTTP_STATUS_KINDS] = {200, 403, 404, 405, 503};
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;   /* out of memory: the connection is closed */
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
    if (kind == HTTP_405)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(c, status[kind], r);
    MHD_destroy_response(r);
    monitor_count_response(h->m, kind);
    return ok;
}

static enum MHD_Result send_text(struct http_server *h, struct MHD_Connection *c,
                                 enum http_status_kind kind, const char *text)
{
    char *body = strdup(text);
    return body ? send_body(h, c, kind, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

/* The page with the counters' tables at its mark. */
static char *page(struct monitor *m, size_t *len)
{
    size_t tlen;
    char *table = monitor_copy(m, MONITOR_TABLE, &tlen);
    const char *mark = strstr(dati_page_html, PAGE_TABLE_MARK);
    if (!table || !mark) {
        free(table);
        return NULL;
    }
    size_t head = (size_t)(mark - dati_page_html);
    const char *tail = mark + strlen(PAGE_TABLE_MARK);
    *len = head + tlen + strlen(tail);
    char *p = malloc(*len + 1);
    if (p) {
        memcpy(p, dati_page_html, head);
        memcpy(p + head, table, tlen);
        strcpy(p + head + tlen, tail);
    }
    free(table);
    return p;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    struct http_server *h = cls;
    (void)version;
    (void)upload;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get)   /* answered at once: a body it may carry is never read */
        return send_text(h, c, HTTP_405, "dati serves GET and HEAD only\n");
    if (!host_allowed(h, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
        return send_text(h, c, HTTP_403, "dati answers requests for its address, localhost or "
                                         "the host of HTTP_LISTEN only\n");
    if (!*state) {   /* the headers: the body, if any, comes next and is skipped */
        *state = h;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    size_t len = 0;
    char *body = NULL;
    const char *type;
    if (strcmp(url, "/") == 0) {
        body = page(h->m, &len);
        type = "text/html; charset=utf-8";
    } else if (strcmp(url, "/metrics") == 0) {
        body = monitor_copy(h->m, MONITOR_METRICS, &len);
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/api/stats") == 0) {
        body = monitor_copy(h->m, MONITOR_API, &len);
        type = "application/json";
    } else {
        return send_text(h, c, HTTP_404, "not found: dati serves /, /metrics and /api/stats\n");
    }
    if (!body)
        return send_text(h, c, HTTP_503, "no statistics yet (or out of memory)\n");
    return send_body(h, c, HTTP_200, type, body, len);
}

int http_listen_socket(const char *spec, char *err, size_t errlen)
{
    char host[256], port[8];
    snprintf(port, sizeof port, "%u", hostport_split(spec, host, sizeof host));
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = strcmp(port, "0") ? getaddrinfo(host, port, &hints, &res) : EAI_NONAME;
    if (gai) {
        snprintf(err, errlen, "HTTP_LISTEN %s: %s", spec, gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 64) < 0) {
            e = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "HTTP_LISTEN %s: cannot listen there: %s", spec, strerror(e));
    return fd;
}

struct http_server *http_start(int fd, const char *listen, struct monitor *m, char *err,
                               size_t errlen)
{
    struct http_server *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->m = m;
    hostport_split(listen, h->host, sizeof h->host);
    sigset_t all, old;   /* signals are for the other threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_request, h,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_ADDRESS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_HEADER_MEMORY,
                            MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
                            MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->d) {   /* fd is left open: MHD may have closed it; dati exits now */
        snprintf(err, errlen, "cannot start the HTTP server on %s", listen);
        free(h);
        return NULL;
    }
    return h;
}

void http_stop(struct http_server *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);   /* closes the listening socket too */
    free(h);
}
