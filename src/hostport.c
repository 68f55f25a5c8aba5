/* hostport.c - splitting host:port (hostport.h). */
#include "hostport.h"

#include <string.h>

unsigned hostport_split(const char *spec, char *host, size_t hostlen)
{
    const char *colon = strrchr(spec, ':'), *h = spec, *end = colon;
    if (!colon || !hostlen)
        return 0;
    if (*h == '[' && end > h + 1 && end[-1] == ']')
        h++, end--;
    size_t n = (size_t)(end - h);
    unsigned long port = 0;
    const char *d = colon + 1;
    for (; *d >= '0' && *d <= '9' && port <= 65535; d++)
        port = port * 10 + (unsigned long)(*d - '0');
    if (n == 0 || n >= hostlen || *d || d == colon + 1 || port == 0 || port > 65535)
        return 0;
    memcpy(host, h, n);
    host[n] = 0;
    return (unsigned)port;
}
