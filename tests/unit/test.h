/* test.h - the unit tests' harness: CHECK macros that count passes and
 * failures and print file:line (with both values) on failure, and
 * test_summary() that prints "<prog>: N passed, M failed" for
 * tests/run-unit.sh and gives main() its exit status.
 * Header-only, one translation unit per test program. */
#ifndef DATI_TEST_H
#define DATI_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned long test_passed, test_failed;

static inline int test_result(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        test_passed++;
        return 1;
    }
    test_failed++;
    fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
    return 0;
}

/* Printable form of n bytes for failure messages: \xNN for the rest. */
static inline void test_print_bytes(const char *label, const void *p, size_t n)
{
    const unsigned char *s = p;
    fprintf(stderr, "    %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < 200; i++)
        fprintf(stderr, s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' ? "%c"
                                                                                  : "\\x%02x",
                s[i]);
    fprintf(stderr, "%s\"\n", n > 200 ? "..." : "");
}

#define CHECK(cond) test_result(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_EQ_U64(a, b)                                                                    \
    do {                                                                                      \
        uint64_t test_a_ = (uint64_t)(a), test_b_ = (uint64_t)(b);                            \
        if (!test_result(test_a_ == test_b_, __FILE__, __LINE__, #a " == " #b))               \
            fprintf(stderr, "    got %" PRIu64 " (0x%" PRIx64 "), expected %" PRIu64         \
                            " (0x%" PRIx64 ")\n",                                             \
                    test_a_, test_a_, test_b_, test_b_);                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);                         \
        if (!test_result(test_a_ == test_b_, __FILE__, __LINE__, #a " == " #b))               \
            fprintf(stderr, "    got %lld, expected %lld\n", test_a_, test_b_);               \
    } while (0)

/* NUL-terminated strings; NULL compares equal only to NULL. */
#define CHECK_STR(a, b)                                                                       \
    do {                                                                                      \
        const char *test_a_ = (a), *test_b_ = (b);                                            \
        int test_ok_ = test_a_ && test_b_ ? strcmp(test_a_, test_b_) == 0 : test_a_ == test_b_; \
        if (!test_result(test_ok_, __FILE__, __LINE__, #a " == " #b))                         \
            fprintf(stderr, "    got \"%s\", expected \"%s\"\n", test_a_ ? test_a_ : "(null)", \
                    test_b_ ? test_b_ : "(null)");                                            \
    } while (0)

/* n bytes at p against a C string literal (its length, no NUL). */
#define CHECK_MEM_STR(p, n, lit)                                                              \
    do {                                                                                      \
        const void *test_p_ = (p);                                                            \
        size_t test_n_ = (size_t)(n), test_l_ = strlen(lit);                                  \
        int test_ok_ = test_n_ == test_l_ && (test_n_ == 0 || memcmp(test_p_, lit, test_n_) == 0); \
        if (!test_result(test_ok_, __FILE__, __LINE__, #p "[0.." #n ") == " #lit)) {          \
            test_print_bytes("got", test_p_, test_p_ ? test_n_ : 0);                          \
            test_print_bytes("expected", lit, test_l_);                                       \
        }                                                                                     \
    } while (0)

/* A struct slice against a C string literal. */
#define CHECK_SLICE(s, lit) CHECK_MEM_STR((s).ptr, (s).len, lit)

/* Prints the one summary line and gives main()'s exit status. */
static inline int test_summary(const char *prog)
{
    const char *base = strrchr(prog, '/');
    printf("%s: %lu passed, %lu failed\n", base ? base + 1 : prog, test_passed, test_failed);
    fflush(stdout);
    return test_failed ? 1 : 0;
}

#endif
