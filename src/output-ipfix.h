/* output-ipfix.h - flow records as IPFIX data records (ipfix.h), one output
 * per worker over the run's shared exporter. */
#ifndef DATI_OUTPUT_IPFIX_H
#define DATI_OUTPUT_IPFIX_H

#include <stdint.h>

#include "ipfix.h"
#include "output.h"

/* max_flows: the worker's flow table size (ACTIVE_TIMEOUT's delta counters
 * are kept per slot). NULL when out of memory. */
struct output *output_ipfix_open(const struct config *conf, struct ipfix_exporter *ex,
                                 uint32_t max_flows);

#endif
