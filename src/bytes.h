/* bytes.h - bounds-safe reads of network-order integers and byte slices.
 * Generic: includes nothing of the daemon. Callers check lengths first with
 * BYTES_FITS(), written so that it cannot overflow. */
#ifndef DATI_BYTES_H
#define DATI_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A view into packet memory; never owns what it points to. */
struct slice {
    const uint8_t *ptr;
    uint32_t len;
};

/* True when [off, off + need) lies inside a buffer of len bytes. */
#define BYTES_FITS(off, need, len) ((off) <= (len) && (need) <= (len) - (off))

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[1] << 8 | p[0]); }
static inline uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Case-insensitive prefix test against a lower-case ASCII literal. */
static inline int bytes_iprefix(const uint8_t *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len < n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)lit[i])
            return 0;
    }
    return 1;
}

#endif
