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

/* A socket bound to listen ("host:port", "[v6]:port") and listening: made
 * at start, as root if need be (a port below 1024). -1 with the reason. */
int http_listen_socket(const char *listen, char *err, size_t errlen);

/* Starts the server's thread on fd, after root was given up: the thread
 * that parses what clients send never holds a privilege. Requests whose
 * Host is not an IP address, localhost or listen's host are refused (a
 * page elsewhere cannot read the probe through DNS rebinding). NULL with
 * the reason in err. */
struct http_server *http_start(int fd, const char *listen, struct monitor *m, char *err,
                               size_t errlen);
void http_stop(struct http_server *h);

#endif
