/* classify.c - compiling the named filters with libpcap for each link type
 * met in the input. */
#include "classify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "log.h"

/* Above this, bpf_filter() would not see the whole packet anyway. */
#define CLASSIFY_SNAPLEN 262144

void classify_init(struct classifier *c)
{
    memset(c, 0, sizeof *c);
}

void classify_fini(struct classifier *c)
{
    for (int l = 0; l < c->nlinks; l++)
        for (int i = 0; i < c->nfilters; i++)
            if ((c->link[l].usable >> i) & 1)
                pcap_freecode(&c->link[l].prog[i]);
    memset(c, 0, sizeof *c);
}

int classify_add(struct classifier *c, const char *name, const char *expr)
{
    if (c->nfilters == CLASSIFY_MAX_FILTERS || c->nlinks > 0)
        return -1;
    c->name[c->nfilters] = name;
    c->expr[c->nfilters] = expr;
    return c->nfilters++;
}

int classify_dlt(int linktype)
{
    return linktype == LINKTYPE_RAW ? DLT_RAW : linktype;
}

/* On Ethernet, a filter also looks inside one or two VLAN tags (802.1Q,
 * QinQ): probes sit on trunk ports, and libpcap's tcp[]/ip[] offsets stop at
 * the first tag. "vlan" must come after the untagged test, because libpcap
 * shifts every offset that follows it. An expression that handles tags
 * itself (it names vlan, mpls or pppoes) is used as written, and so is
 * the empty one (every packet: an APP filter without BPF). */
static const char *link_expr(int linktype, const char *expr, char *buf, size_t len)
{
    if (linktype != LINKTYPE_ETHERNET || !expr[0] || strstr(expr, "vlan") || strstr(expr, "mpls") ||
        strstr(expr, "pppoes"))
        return expr;
    int n = snprintf(buf, len, "(%s) or (vlan and ((%s) or (vlan and (%s))))", expr, expr, expr);
    return n > 0 && (size_t)n < len ? buf : expr;
}

int classify_link_slot(struct classifier *c, int linktype)
{
    for (int l = 0; l < c->nlinks; l++)
        if (c->link[l].linktype == linktype)
            return l;
    if (c->nlinks == CLASSIFY_MAX_LINKS)
        return -1;
    struct classify_link *link = &c->link[c->nlinks];
    link->linktype = linktype;
    link->usable = 0;
    pcap_t *dead = pcap_open_dead(classify_dlt(linktype), CLASSIFY_SNAPLEN);
    if (!dead)
        return -1;
    for (int i = 0; i < c->nfilters; i++) {
        size_t len = strlen(c->expr[i]) * 3 + 64;
        char *buf = malloc(len);
        const char *expr = buf ? link_expr(linktype, c->expr[i], buf, len) : c->expr[i];
        int rc = pcap_compile(dead, &link->prog[i], expr, 1, PCAP_NETMASK_UNKNOWN);
        free(buf);
        if (rc == 0)
            link->usable |= 1ull << i;
        else
            log_warn("filter %s: cannot be used on link type %d (%s): %s", c->name[i],
                     linktype, pcap_datalink_val_to_name(classify_dlt(linktype))
                         ? pcap_datalink_val_to_name(classify_dlt(linktype)) : "?",
                     pcap_geterr(dead));
    }
    pcap_close(dead);
    return c->nlinks++;
}

int classify_check(const char *expr, char *err, size_t errlen)
{
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, CLASSIFY_SNAPLEN);
    if (!dead) {
        snprintf(err, errlen, "libpcap could not be initialised");
        return -1;
    }
    struct bpf_program prog;
    int rc = 0;
    if (pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "%s", pcap_geterr(dead));
        rc = -1;
    } else {
        pcap_freecode(&prog);
    }
    pcap_close(dead);
    return rc;
}
