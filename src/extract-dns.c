/* extract-dns.c - the DNS header and first question of a message over UDP,
 * or over TCP after its 2-byte length prefix. Names are written in dotted
 * form; compression pointers are followed with a hop limit. */
#include <string.h>

#include "bytes.h"
#include "extract.h"

#define DNS_MAX_HOPS 32

/* Dotted text of the name at off in the message m into name (DNS_NAME_TEXT
 * bytes); sets *end to the offset after the name where it started. Returns 0,
 * or -1 for a malformed name. */
int dns_name_text(const uint8_t *m, uint32_t len, uint32_t off, char *name, uint16_t *name_len,
                  uint32_t *end)
{
    uint32_t out = 0, wire = 0;
    int hops = 0;
    *end = 0;
    for (;;) {
        if (off >= len)
            return -1;
        uint8_t l = m[off];
        if ((l & 0xc0) == 0xc0) {
            if (!BYTES_FITS(off, 2, len) || ++hops > DNS_MAX_HOPS)
                return -1;
            if (*end == 0)
                *end = off + 2;
            off = (uint32_t)(rd16(m + off) & 0x3fff);
            continue;
        }
        if (l & 0xc0)
            return -1;     /* extended label types are obsolete */
        if (l == 0) {
            if (*end == 0)
                *end = off + 1;
            break;
        }
        /* RFC 1035 3.1: 255 octets at most, length bytes and the root's included */
        if (!BYTES_FITS(off + 1, l, len) || (wire += l + 1u) > 254)
            return -1;
        if (out)
            name[out++] = '.';
        memcpy(name + out, m + off + 1, l);
        out += l;
        off += 1u + l;
    }
    if (out == 0) {
        memcpy(name, "<Root>", 6);
        out = 6;
    }
    *name_len = (uint16_t)out;
    return 0;
}

int dns_parse_query(const uint8_t *p, uint32_t len, int over_tcp, struct dns_query *q)
{
    if (over_tcp) {
        if (len < 2)
            return 0;
        p += 2;
        len -= 2;
    }
    if (len < 12)
        return 0;
    q->id = rd16(p);
    q->qr = p[2] >> 7;
    q->qdcount = rd16(p + 4);
    q->has_question = 0;
    uint32_t end;
    if (q->qdcount > 0 && dns_name_text(p, len, 12, q->name, &q->name_len, &end) == 0 &&
        BYTES_FITS(end, 4, len)) {
        q->qtype = rd16(p + end);
        q->qclass = rd16(p + end + 2);
        q->has_question = 1;
    }
    return 1;
}
