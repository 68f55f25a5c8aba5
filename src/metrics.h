/* metrics.h - the statistics in Prometheus' text exposition format (0.0.4),
 * for HTTP_LISTEN's /metrics: the same totals the stats record prints, one
 * family per counter, with HELP and TYPE lines and labels for the filter,
 * interface, node, kind and cause. doc/live.md lists them. */
#ifndef DATI_METRICS_H
#define DATI_METRICS_H

#include <stdint.h>

#include "outbuf.h"
#include "stats.h"

/* Responses of the HTTP server, by status (http.c counts them). */
enum http_status_kind { HTTP_200, HTTP_403, HTTP_404, HTTP_405, HTTP_503, HTTP_STATUS_KINDS };
extern const char *const http_status_code[HTTP_STATUS_KINDS];

/* What the metrics say besides the totals. */
struct metrics_extra {
    double uptime;                 /* seconds since the start */
    double started;                /* the start, Unix time */
    int final;                     /* the input has ended */
    uint64_t http[HTTP_STATUS_KINDS];
    uint64_t names_sampled, names_unsampled;
};

/* Returns 0, or -1 when memory ran out. */
int metrics_render(struct outbuf *b, const struct stats_source *s, const struct stats_totals *t,
                   const struct metrics_extra *x);

#endif
