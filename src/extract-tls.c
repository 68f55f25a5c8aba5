/* extract-tls.c - the server name (SNI) of a TLS ClientHello at the start of
 * a TCP payload. Lengths declared beyond the segment are tolerated as long as
 * the server_name extension itself was captured whole. */
#include "bytes.h"
#include "extract.h"

/* Skips a length-prefixed vector of `width` length bytes at *off. */
static int skip_vector(const uint8_t *p, uint32_t len, uint32_t *off, int width)
{
    if (!BYTES_FITS(*off, (uint32_t)width, len))
        return -1;
    uint32_t n = width == 1 ? p[*off] : rd16(p + *off);
    *off += (uint32_t)width;
    if (!BYTES_FITS(*off, n, len))
        return -1;
    *off += n;
    return 0;
}

static int server_name(const uint8_t *e, uint32_t n, struct slice *sni)
{
    if (n < 5)
        return 0;
    uint32_t list = rd16(e);
    uint32_t off = 2;
    uint32_t end = 2 + list < n ? 2 + list : n;
    while (BYTES_FITS(off, 3, end)) {
        uint8_t type = e[off];
        uint32_t l = rd16(e + off + 1);
        off += 3;
        if (!BYTES_FITS(off, l, end))
            return 0;
        if (type == 0) {
            *sni = (struct slice){e + off, l};
            return 1;
        }
        off += l;
    }
    return 0;
}

int tls_parse_sni(const uint8_t *p, uint32_t len, struct slice *sni)
{
    /* record header (5) + handshake header (4) + version (2) + random (32) */
    if (len < 43 || p[0] != 0x16 || p[1] != 0x03 || p[5] != 0x01)
        return 0;
    uint32_t off = 43;
    if (skip_vector(p, len, &off, 1) < 0 ||    /* session id */
        skip_vector(p, len, &off, 2) < 0 ||    /* cipher suites */
        skip_vector(p, len, &off, 1) < 0)      /* compression methods */
        return 0;
    if (!BYTES_FITS(off, 2, len))
        return 0;
    off += 2;                                   /* extensions length: trust the segment */
    while (BYTES_FITS(off, 4, len)) {
        uint16_t type = rd16(p + off);
        uint32_t l = rd16(p + off + 2);
        off += 4;
        if (!BYTES_FITS(off, l, len))
            return 0;
        if (type == 0)
            return server_name(p + off, l, sni);
        off += l;
    }
    return 0;
}
