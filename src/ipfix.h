/* ipfix.h - IPFIX (RFC 7011) export of flow records to a collector over UDP
 * or TCP. The exporter is one per run, shared by the workers: the socket,
 * the observation domain's sequence number, templates and reconnection,
 * behind a lock taken once per message. Each worker encodes its flow
 * records into a message buffer of its own (output-ipfix.c): no lock and
 * no allocation per record. */
#ifndef DATI_IPFIX_H
#define DATI_IPFIX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct config;

#define IPFIX_HEADER_LEN 16
#define IPFIX_TEMPLATE_V4 256   /* template ids: one per address family */
#define IPFIX_TEMPLATE_V6 257
#define IPFIX_PEN_REVERSE 29305 /* RFC 5103: reverse (server to client) counters */
#define IPFIX_PEN_DATI 32473    /* dati's own elements (RFC 5612's documentation PEN) */

struct ipfix_counters {
    uint64_t records;          /* data records sent */
    uint64_t messages;         /* data messages sent */
    uint64_t templates;        /* template messages sent */
    uint64_t bytes;            /* of all messages sent */
    uint64_t lost;             /* records in messages whose send failed */
    uint64_t dropped;          /* records not sent: the TCP collector was down */
    uint64_t send_errors;
    uint64_t reconnects;       /* TCP connections made after the first */
};

struct ipfix_exporter;

/* Resolves IPFIX_COLLECTOR (once, the first address: a name that does not
 * resolve is an error at start) and opens the socket, sending the
 * templates (TCP: starts connecting; a collector that is down is retried
 * with back-off, not an error). Returns the exporter, or NULL with the
 * reason in err. */
struct ipfix_exporter *ipfix_open(const struct config *conf, char *err, size_t errlen);
void ipfix_close(struct ipfix_exporter *e);

/* The largest message a worker may build: the path MTU less the IP and UDP
 * headers over UDP, 64 KiB - 1 at most. */
size_t ipfix_message_max(const struct ipfix_exporter *e);

/* Sends the message in msg (len bytes, IPFIX_HEADER_LEN of them left for
 * the header, which is filled here) holding nrecords data records, after
 * the templates when they are due. Never fails: what is not sent is counted
 * (lost, dropped). Takes the exporter's lock. */
void ipfix_send(struct ipfix_exporter *e, uint8_t *msg, size_t len, unsigned nrecords);

/* Live capture (on): a send never waits. A message the socket cannot take
 * at once is counted lost; a TCP collector that takes nothing for
 * LIVE_STALL_S is taken as gone and reconnected. Off again for the final
 * flush, once the capture has stopped. */
void ipfix_set_live(struct ipfix_exporter *e, int on);

/* The exporter's counters, read with relaxed loads. */
void ipfix_counters_get(const struct ipfix_exporter *e, struct ipfix_counters *out);

#endif
