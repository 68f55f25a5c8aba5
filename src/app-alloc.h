/* app-alloc.h - nDPI's memory for CLASSIFY. What nDPI allocates while it
 * dissects a flow (host names, URLs, TLS handshake buffers) comes from the
 * worker's own free lists, one per power-of-two size: once the lists have
 * grown to the busiest moment's need, classifying a flow calls malloc no
 * more, and the bytes nDPI holds are counted. */
#ifndef DATI_APP_ALLOC_H
#define DATI_APP_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#define APP_ARENA_CLASSES 13   /* 16 bytes to 64 KiB; larger ones go to malloc */

struct app_arena {
    void *free[APP_ARENA_CLASSES];
    char *chunk;               /* carved from its end */
    size_t left;
    void *chunks;              /* every chunk, chained through its first word */
    uint64_t bytes;            /* in chunks (blocks above 64 KiB are not counted): read by the statistics */
};

/* Makes nDPI allocate through this file (process-wide, before any module). */
void app_alloc_install(void);

/* nDPI's allocations on this thread come from a, until the next call (NULL:
 * malloc, e.g. a module's set-up on the main thread). */
void app_arena_use(struct app_arena *a);

/* After everything allocated from a was freed or is no longer used. */
void app_arena_fini(struct app_arena *a);

#endif
