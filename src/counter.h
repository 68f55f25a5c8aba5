/* counter.h - statistics counters: written by one thread, read by the stats
 * reporter while they change. Relaxed atomics make that race well defined and
 * still compile to a plain load/add/store (no locked instruction). Also the
 * spin-wait hint the queues use. */
#ifndef DATI_COUNTER_H
#define DATI_COUNTER_H

#define COUNTER_ADD(c, n) \
    __atomic_store_n(&(c), __atomic_load_n(&(c), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define COUNTER_INC(c) COUNTER_ADD(c, 1)
#define COUNTER_GET(c) __atomic_load_n(&(c), __ATOMIC_RELAXED)

/* One round of a spin-wait: tells the CPU we are waiting (x86 PAUSE). */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#endif
