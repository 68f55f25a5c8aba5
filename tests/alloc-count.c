/* alloc-count.c - an LD_PRELOAD library for the tests: counts the calls to
 * malloc, calloc and realloc of the process it is loaded into and writes
 * the number to the file $ALLOC_COUNT_FILE at exit, so that a test can check
 * that dati allocates nothing per packet (the count must not grow with the
 * input). glibc's own entry points do the work. Not for sanitizer builds,
 * whose allocator replaces these. */
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static unsigned long calls;

void *malloc(size_t size)
{
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size)
{
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return __libc_realloc(ptr, size);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "%lu\n", __atomic_load_n(&calls, __ATOMIC_RELAXED));
        fclose(f);
    }
}
