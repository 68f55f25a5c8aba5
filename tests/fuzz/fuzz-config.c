/* fuzz-config.c - config_parse() on arbitrary text, with and without an
 * error stream; a config that parses must be complete (filters with an
 * expression and a channel) and its error count 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();
    if (size > 65536)
        return 0;
    for (int with_errs = 0; with_errs < 2; with_errs++) {
        int nerrors = -99;
        struct config *c = config_parse("fuzz.conf", (const char *)data, size,
                                        with_errs ? devnull : NULL, &nerrors);
        if (c) {
            if (nerrors != 0 || c->nfilters < 1 || c->nfilters > CONFIG_MAX_FILTERS)
                abort();
            for (int i = 0; i < c->nfilters; i++) {
                const struct filter_conf *f = &c->filter[i];
                if (!f->name || !f->bpf || !f->redis_channel || f->nfields > CONFIG_MAX_FIELDS)
                    abort();
            }
            if (c->redis_sock && c->redis_host)
                abort();
        } else if (nerrors == 0 || nerrors < -1) {
            abort();
        }
        config_free(c);
    }
    return 0;
}
