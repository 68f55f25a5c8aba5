/* capture-pcap.c - libpcap's offline reader, for inputs that cannot be
 * mapped (standard input, pipes). Packet bytes live in libpcap's buffer and
 * are replaced by the next call. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#include "capture.h"
#include "decode.h"

static int lp_next(struct capture *c, struct packet *p, int *linktype)
{
    pcap_t *pc = c->priv;
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(pc, &h, &data);
    if (rc == PCAP_ERROR_BREAK)
        return 0;
    if (rc != 1) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", pcap_geterr(pc));
        return -1;
    }
    p->data = data;
    p->caplen = h->caplen;
    p->wirelen = h->len < h->caplen ? h->caplen : h->len;
    /* opened with nanosecond precision: tv_usec holds nanoseconds */
    p->ts = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
    int dlt = pcap_datalink(pc);
    *linktype = dlt == DLT_RAW ? LINKTYPE_RAW : dlt;
    return 1;
}

static void lp_close(struct capture *c)
{
    pcap_close(c->priv);
    c->priv = NULL;
}

static const struct capture_ops libpcap_ops = {lp_next, lp_close};

int capture_pcap_open(struct capture *c, const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!pc) {
        snprintf(c->errbuf, sizeof c->errbuf, "%s", err);
        return -1;
    }
    c->ops = &libpcap_ops;
    c->kind = "libpcap";
    c->priv = pc;
    c->stable_data = 0;
    return 0;
}
