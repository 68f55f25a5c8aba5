/* fuzz-netpdl.c - a NetPDL description and a payload: the input up to its
 * first NUL byte is the description, the rest the L4 payload. A description
 * that loads is run over the payload, every field asked for (in two orders,
 * so that protocols run lazily either way); every value must lie inside the
 * payload and agree between the orders. The payload is an exact-size heap
 * copy so that sanitizers catch overreads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netpdl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct netpdl_run run;   /* keeps its match data across inputs, as a worker does */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul || size > 1 << 20)
        return 0;
    size_t dlen = (size_t)(nul - data), plen = size - dlen - 1;
    struct netpdl_set *s = netpdl_set_create();
    if (!s)
        abort();
    int rc = netpdl_set_load_mem(s, (const char *)data, dlen, "fuzz.xml", NULL);
    int n = netpdl_set_nfields(s);
    if (rc < 0 || (rc > 0 && n != 0) || n > NETPDL_MAX_FIELDS)
        abort();   /* refused descriptions add nothing */
    uint8_t *pl = malloc(plen ? plen : 1);
    if (!pl)
        abort();
    memcpy(pl, nul + 1, plen);
    static struct netpdl_span first[NETPDL_MAX_FIELDS];
    static int present[NETPDL_MAX_FIELDS];
    for (int pass = 0; pass < 2; pass++) {
        netpdl_run_begin(&run, s, pl, (uint32_t)plen);
        for (int k = 0; k < n; k++) {
            int slot = pass ? n - 1 - k : k;
            struct netpdl_span sp;
            uint64_t num;
            enum netpdl_show show;
            int got = netpdl_field(&run, slot, &sp, &num, &show);
            if (got && (sp.off > plen || sp.len > plen - sp.off))
                abort();
            const char *name = netpdl_field_name(s, slot);
            if (!name || netpdl_set_lookup(s, name) != slot)
                abort();
            if (pass == 0) {
                present[slot] = got;
                first[slot] = sp;
            } else if (present[slot] != got ||
                       (got && (first[slot].off != sp.off || first[slot].len != sp.len))) {
                abort();   /* a value must not depend on the order fields are asked for */
            }
        }
    }
    free(pl);
    netpdl_set_destroy(s);
    return 0;
}
