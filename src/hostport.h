/* hostport.h - "host:port" and "[v6]:port", as the configuration
 * (IPFIX_COLLECTOR, REDIS_CLUSTER, HTTP_LISTEN) and Redis Cluster's
 * replies name a server: one splitter for all of them. */
#ifndef DATI_HOSTPORT_H
#define DATI_HOSTPORT_H

#include <stddef.h>

/* The host (brackets removed) into host and the port, 1..65535; 0 when
 * spec is not that form or the host does not fit (never cut: a cut name
 * is another host). */
unsigned hostport_split(const char *spec, char *host, size_t hostlen);

#endif
