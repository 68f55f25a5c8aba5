/* output-redis.h - records into Redis, in the seed's hash layout (a unique
 * id per record from INCRBY blocks, HSET <prefix><id> Timestamp ts field
 * value ... with a TTL, the key PUBLISHed on the filter's channel; flow
 * records PUBLISHed as JSON on the session channel) or, with REDIS_MODE
 * stream, one XADD per record. One connection per worker, commands
 * pipelined (redis-conn.h); reading a file, the pipelines' replies are the
 * back-pressure that makes delivery lossless. */
#ifndef DATI_OUTPUT_REDIS_H
#define DATI_OUTPUT_REDIS_H

#include <stddef.h>

#include "output.h"

/* Connects as the configuration says (REDIS_RETRY: retrying an unreachable
 * server that long). Returns the output, or NULL with the reason (naming
 * the address) in err. */
struct output *output_redis_open(const struct config *conf, char *err, size_t errlen);

#endif
