/* monitor.h - what HTTP_LISTEN serves, made ready by the statistics thread.
 * Once a second (and at the final report) that thread sums the counters as
 * for the stats record, keeps five minutes of history, drains the workers'
 * name rings, and renders the three documents: /metrics, /api/stats and
 * the page's table. The HTTP thread only copies a finished document under
 * the lock, so a slow client never holds anything the probe needs, and the
 * workers are never asked for anything. */
#ifndef DATI_MONITOR_H
#define DATI_MONITOR_H

#include <pthread.h>

#include "metrics.h"
#include "names.h"
#include "outbuf.h"
#include "stats.h"

enum monitor_doc { MONITOR_METRICS, MONITOR_API, MONITOR_TABLE, MONITOR_DOCS };

#define MONITOR_HISTORY 300       /* one sample a second: five minutes */
#define MONITOR_PERIOD_S 1.0

struct monitor_sample {
    double t;                     /* uptime, s */
    uint64_t packets, bytes, records, drops;
};

struct monitor {
    pthread_mutex_t lock;
    struct outbuf doc[MONITOR_DOCS];   /* the latest, under lock */
    int ready;                         /* doc holds a first rendering */
    uint64_t http[HTTP_STATUS_KINDS];  /* responses: the HTTP thread counts */
    /* the statistics thread's own */
    struct outbuf next[MONITOR_DOCS];  /* rendered here, then swapped with doc */
    const struct config *conf;         /* the settings in effect but the filters */
    const char *input;                 /* the file; NULL: live interfaces */
    const char *output;                /* JSON lines: a path, "-" or "none" */
    double started_unix;               /* the run's start, Unix time */
    double last;                       /* elapsed at the last update */
    int nhist, hnext;
    struct monitor_sample hist[MONITOR_HISTORY];
    struct name_ring **rings;
    int nrings;
    struct top_names top;
};

/* NULL when memory ran out. conf (the first configuration: what a reload
 * cannot change), input and output live as long as the monitor. */
struct monitor *monitor_new(const struct config *conf, int nworkers, const char *input,
                            const char *output);
void monitor_free(struct monitor *m);

/* The ring worker w samples its records' names into. */
static inline struct name_ring *monitor_ring(struct monitor *m, int w) { return m->rings[w]; }

/* Statistics thread; elapsed is the run's time so far, s: a second since
 * the last update. */
static inline int monitor_due(const struct monitor *m, double elapsed)
{
    return m->nhist == 0 || elapsed - m->last >= MONITOR_PERIOD_S;
}

/* Statistics thread, at every tick: takes the names the workers sampled,
 * so that their rings rarely fill between two updates. */
static inline void monitor_drain(struct monitor *m, double elapsed)
{
    top_names_drain(&m->top, m->rings, m->nrings, elapsed);
}

void monitor_update(struct monitor *m, const struct stats_source *s, const struct stats_totals *t,
                    double elapsed, int final);

/* HTTP thread: a copy of a document (malloc'd, to free) and its length;
 * NULL when there is none yet or memory ran out. */
char *monitor_copy(struct monitor *m, enum monitor_doc d, size_t *len);

static inline void monitor_count_response(struct monitor *m, enum http_status_kind k)
{
    __atomic_fetch_add(&m->http[k], 1, __ATOMIC_RELAXED);
}

#endif
