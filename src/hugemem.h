/* hugemem.h - large zeroed memory the hot path walks at random or streams
 * through (the flow index, read buffers), in 2 MiB transparent huge pages
 * where the kernel gives them: a TLB miss per random access, paid twice
 * under a hypervisor, was the largest cost of a lookup. Pages are touched
 * only as they are used. */
#ifndef DATI_HUGEMEM_H
#define DATI_HUGEMEM_H

#include <stddef.h>

/* size bytes, zeroed, 2 MiB-aligned; NULL when the mapping fails. */
void *huge_alloc(size_t size);
void huge_free(void *p, size_t size);

#endif
