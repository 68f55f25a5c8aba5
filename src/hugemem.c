/* hugemem.c - anonymous mappings aligned to 2 MiB and advised as huge. */
#include "hugemem.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE (2u << 20)

static size_t round_up(size_t n) { return (n + HUGE - 1) & ~(size_t)(HUGE - 1); }

void *huge_alloc(size_t size)
{
    size_t len = round_up(size ? size : 1);
    /* a 2 MiB-aligned range inside a larger mapping; the rest is given back */
    uint8_t *m = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (p > m)
        munmap(m, (size_t)(p - m));
    if (p + len < m + len + HUGE)
        munmap(p + len, (size_t)(m + len + HUGE - (p + len)));
    madvise(p, len, MADV_HUGEPAGE);   /* a hint: without it, small pages */
    return p;
}

void huge_free(void *p, size_t size)
{
    if (p)
        munmap(p, round_up(size ? size : 1));
}
