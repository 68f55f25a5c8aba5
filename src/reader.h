/* reader.h - one run of dati over an input: sets up the pipeline and the
 * workers, reads and decodes every packet on the calling thread, hands
 * each to its flow's worker, then drains, flushes and reports. */
#ifndef DATI_READER_H
#define DATI_READER_H

#include "config.h"

#define MAX_WORKERS 64

struct run_options {
    const char *input;         /* capture file, "-" for stdin */
    const char *output;        /* JSON lines, "-" for stdout */
    unsigned workers;
    unsigned cpus;             /* CPUs to plan threads for; 0: those this process may use */
    int progress;              /* draw a progress line on stderr */
    int quiet;                 /* no statistics on stderr */
};

/* Returns the process exit status: 0 when everything was read and written,
 * 1 when the input was damaged or the output failed (what came before is
 * processed and reported either way). */
int reader_run(const struct config *conf, const struct run_options *opt);

#endif
