/* config-default.c - the configuration dati uses without -c, in the same
 * syntax as a file (examples/dati.conf shows it commented). The BPF
 * expressions look at the first bytes of the TCP/UDP payload; libpcap's
 * tcp[]/udp[] are IPv4-only, so IPv6 (without extension headers) is spelled
 * out with ip6[] offsets. */
#include "config.h"

#define TCP4_PAYLOAD "tcp[((tcp[12] & 0xf0) >> 2)"
#define TCP6_PAYLOAD "ip6[40 + ((ip6[52] & 0xf0) >> 2)"

#define HTTP_METHODS(P)                                                              \
    "(" P ":4] = 0x47455420 or " P ":4] = 0x504f5354 or " P ":4] = 0x48454144 or "  \
    P ":4] = 0x50555420 or " P ":4] = 0x44454c45 or " P ":4] = 0x4f505449 or "      \
    P ":4] = 0x50415443 or " P ":4] = 0x434f4e4e or " P ":4] = 0x54524143)"

const char config_default_text[] =
    "TIME_STATS 10\n"
    "PKT_TTL 30\n"
    "\n"
    "# HTTP requests: GET POST HEAD PUT DELETE OPTIONS PATCH CONNECT TRACE\n"
    "FILTER_NAME http\n"
    "BPF (tcp and " HTTP_METHODS(TCP4_PAYLOAD) ") or (ip6 and ip6[6] = 6 and "
    HTTP_METHODS(TCP6_PAYLOAD) ")\n"
    "FIELDS ip.src ip.dst tcp.sport tcp.dport http.method http.url http.version "
    "http.host http.useragent http.referer http.cookie\n"
    "\n"
    "# DNS queries (QR bit clear) over UDP and TCP\n"
    "FILTER_NAME dns\n"
    "BPF (udp port 53 and udp[10] & 0x80 = 0) or "
    "(ip6 and ip6[6] = 17 and (ip6[40:2] = 53 or ip6[42:2] = 53) and ip6[50] & 0x80 = 0) or "
    "(tcp port 53 and ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) >= 14 and "
    TCP4_PAYLOAD " + 4] & 0x80 = 0)\n"
    "FIELDS ip.src ip.dst udp.sport udp.dport tcp.sport tcp.dport dns.id dns.qry.name "
    "dns.qry.type\n"
    "\n"
    "# TLS ClientHello (handshake record, type 1)\n"
    "FILTER_NAME tls\n"
    "BPF (tcp and " TCP4_PAYLOAD "] = 0x16 and " TCP4_PAYLOAD " + 5] = 1) or "
    "(ip6 and ip6[6] = 6 and " TCP6_PAYLOAD "] = 0x16 and " TCP6_PAYLOAD " + 5] = 1)\n"
    "FIELDS ip.src ip.dst tcp.sport tcp.dport tls.sni\n";

struct config *config_default(void)
{
    int nerrors;
    return config_parse("<built-in>", config_default_text, sizeof config_default_text - 1,
                        stderr, &nerrors);
}
