/* app-alloc.c - nDPI's allocator for CLASSIFY (app-alloc.h): size classes
 * with free lists per worker, carved from 2 MiB chunks. Each block has a
 * 16-byte head saying where it goes back, so a block freed on another
 * thread (a module's caches, at exit) still returns to its own lists. */
#include "app-alloc.h"

#include <ndpi_api.h>
#include <pthread.h>
#include <stdlib.h>

#include "counter.h"
#include "hugemem.h"

#define CHUNK (2u << 20)   /* one transparent huge page: one fault, not 512 */
#define HEAD_MAGIC 0x64617469u   /* "dati": a block of ours, not libc's */

struct head {
    struct app_arena *arena;   /* NULL: from malloc */
    uint32_t cls;
    uint32_t magic;
};

static __thread struct app_arena *current;

void app_arena_use(struct app_arena *a) { current = a; }

static unsigned class_of(size_t size)
{
    unsigned c = 0;
    while (((size_t)16 << c) < size)
        c++;
    return c;
}

static void *arena_malloc(size_t size)
{
    struct app_arena *a = current;
    unsigned c = class_of(size);
    struct head *h;
    if (!a || c >= APP_ARENA_CLASSES) {
        if (!(h = malloc(sizeof *h + size)))
            return NULL;
        *h = (struct head){NULL, (uint32_t)c, HEAD_MAGIC};
        return h + 1;
    }
    if ((h = a->free[c])) {
        a->free[c] = *(void **)(void *)(h + 1);
    } else {
        size_t need = sizeof *h + ((size_t)16 << c);
        if (a->left < need) {   /* the rest of the chunk is left unused */
            char *chunk = huge_alloc(CHUNK);
            if (!chunk)
                return NULL;
            *(void **)(void *)chunk = a->chunks;
            a->chunks = chunk;
            a->chunk = chunk + 16;
            a->left = CHUNK - 16;
            COUNTER_ADD(a->bytes, CHUNK);
        }
        h = (struct head *)(void *)a->chunk;
        a->chunk += need;
        a->left -= need;
    }
    *h = (struct head){a, (uint32_t)c, HEAD_MAGIC};
    return h + 1;
}

static void arena_free(void *p)
{
    struct head *h = (struct head *)p - 1;
    /* libc's: nDPI 4.2 frees with ndpi_free a few strings it strdup()ed
     * (ndpi_add_trusted_issuer_dn, which dati does not call). glibc keeps
     * a chunk's size in the 8 bytes before it, whose high half is 0 below
     * 4 GiB, so the magic cannot match; AddressSanitizer would flag the read. */
    if (h->magic != HEAD_MAGIC) {
        free(p);
        return;
    }
    if (!h->arena) {
        h->magic = 0;
        free(h);
        return;
    }
    *(void **)p = h->arena->free[h->cls];
    h->arena->free[h->cls] = h;
}

static void install(void)
{
    set_ndpi_malloc(arena_malloc);
    set_ndpi_free(arena_free);
}

void app_alloc_install(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);   /* a reload must not write nDPI's hooks as workers run */
}

void app_arena_fini(struct app_arena *a)
{
    for (void *c = a->chunks, *next; c; c = next) {
        next = *(void **)c;
        huge_free(c, CHUNK);
    }
    a->chunks = NULL;
}
