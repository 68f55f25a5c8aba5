/* http.h - HTTP_LISTEN: a small HTTP server (libmicrohttpd) in a thread of
 * its own, serving the monitor's documents: / (the live page), /metrics
 * (Prometheus) and /api/stats (JSON). It never touches a worker: it copies
 * what the statistics thread rendered last (monitor.h). Clients are
 * bounded: connections in all and per address, header memory, idle time. */
#ifndef DATI_HTTP_H
#define DATI_HTTP_H

#include <stddef.h>

struct monitor;
struct http_server;

#define HTTP_MAX_CONNECTIONS 64
#define HTTP_MAX_PER_ADDRESS 16
#define HTTP_IDLE_TIMEOUT_S 10
#define HTTP_HEADER_MEMORY (32u << 10)   /* request line and headers; more: 431 */

/* Binds listen ("host:port", "[v6]:port") and starts the thread. NULL
 * with the reason in err. */
struct http_server *http_start(const char *listen, struct monitor *m, char *err, size_t errlen);
void http_stop(struct http_server *h);

#endif
