/* output.c - choosing the output the configuration asks for. */
#include "output.h"

#include <stdio.h>

#include "config.h"
#include "output-json.h"
#include "output-redis.h"

struct output *output_open(const struct config *conf, struct output_sink *sink, char *err,
                           size_t errlen)
{
    if (conf->redis_line)
        return output_redis_open(conf, err, errlen);
    struct output *o = output_json_open(sink);
    if (!o)
        snprintf(err, errlen, "out of memory");
    return o;
}
