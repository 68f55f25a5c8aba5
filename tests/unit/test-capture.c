/* test-capture.c - the pcap/pcapng reader on generated files: ~25 MB of
 * packets (sizes from 1 byte to the 262144-byte limit) so that records
 * straddle read chunks and the ring of chunks wraps; every packet's bytes,
 * lengths, time and link type checked, and packets still held by the
 * (simulated) workers checked again until the hooks let their buffer go. The same through a pipe fed in
 * odd-sized writes. Then damaged and foreign files and their messages. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture.h"
#include "decode.h"
#include "test.h"

#define NPKT 12000

struct img {
    uint8_t *d;
    size_t n, cap;
};

static void put(struct img *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->d = realloc(b->d, b->cap);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put32(struct img *b, uint32_t v) { put(b, &v, 4); }   /* little-endian host */
static void put16(struct img *b, uint16_t v) { put(b, &v, 2); }

static uint32_t pkt_len(uint32_t i)
{
    if (i % 500 == 7)
        return CAPTURE_MAX_CAPLEN;
    return (i * 7919u) % 3000u + 1;
}

static uint8_t pkt_byte(uint32_t i, uint32_t j) { return (uint8_t)(i * 31u + j); }

static void put_data(struct img *b, uint32_t i)
{
    uint32_t n = pkt_len(i);
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->d = realloc(b->d, b->cap);
    }
    for (uint32_t j = 0; j < n; j++)
        b->d[b->n + j] = pkt_byte(i, j);
    b->n += n;
}

static struct img make_pcap(void)
{
    struct img b = {0};
    put32(&b, 0xa1b2c3d4u);
    put16(&b, 2);
    put16(&b, 4);
    put32(&b, 0);
    put32(&b, 0);
    put32(&b, 262144);
    put32(&b, LINKTYPE_ETHERNET);
    for (uint32_t i = 0; i < NPKT; i++) {
        put32(&b, 1700000000u + i);
        put32(&b, i % 1000000u);
        put32(&b, pkt_len(i));
        put32(&b, pkt_len(i) + i % 3);
        put_data(&b, i);
    }
    return b;
}

static void ng_block_end(struct img *b, size_t start)
{
    while ((b->n - start) % 4)
        put(b, "", 1);
    uint32_t len = (uint32_t)(b->n - start + 4);
    memcpy(b->d + start + 4, &len, 4);
    put32(b, len);
}

/* Two interfaces: Ethernet with nanosecond stamps, raw IP with the default
 * microseconds; packet i goes to interface i % 2. */
static struct img make_pcapng(void)
{
    struct img b = {0};
    size_t s = b.n;
    put32(&b, 0x0a0d0d0au);
    put32(&b, 0);
    put32(&b, 0x1a2b3c4du);
    put16(&b, 1);
    put16(&b, 0);
    put32(&b, 0xffffffffu);
    put32(&b, 0xffffffffu);
    ng_block_end(&b, s);
    s = b.n;
    put32(&b, 1);
    put32(&b, 0);
    put16(&b, LINKTYPE_ETHERNET);
    put16(&b, 0);
    put32(&b, 0);
    put16(&b, 9);   /* if_tsresol: 10^-9 */
    put16(&b, 1);
    put(&b, "\x09\0\0\0", 4);
    put16(&b, 0);
    put16(&b, 0);
    ng_block_end(&b, s);
    s = b.n;
    put32(&b, 1);
    put32(&b, 0);
    put16(&b, LINKTYPE_RAW);
    put16(&b, 0);
    put32(&b, 0);
    ng_block_end(&b, s);
    for (uint32_t i = 0; i < NPKT; i++) {
        s = b.n;
        uint64_t ts = (i % 2) ? (1700000000ull + i) * 1000000u + i % 1000000u
                              : (1700000000ull + i) * 1000000000u + i % 1000000u;
        put32(&b, 6);
        put32(&b, 0);
        put32(&b, i % 2);
        put32(&b, (uint32_t)(ts >> 32));
        put32(&b, (uint32_t)ts);
        put32(&b, pkt_len(i));
        put32(&b, pkt_len(i) + i % 3);
        put_data(&b, i);
        ng_block_end(&b, s);
        if (i % 1000 == 999) {   /* an unknown block type now and then: skipped */
            s = b.n;
            put32(&b, 0x0bad);
            put32(&b, 0);
            put32(&b, 42);
            ng_block_end(&b, s);
        }
    }
    return b;
}

/* The workers of the test: they hold on to the last HOLD packets handed out
 * (more in busy mode), and run dry when the reader says it is idle. A held
 * packet's bytes must stay intact; slot_free() says a buffer is free only
 * when no held packet is in it. */
#define HOLD 3000
struct held {
    const uint8_t *data;
    uint32_t frame;
    unsigned slot;
};

static struct held held[NPKT];
static unsigned nheld, slot_free_calls, idle_calls, stale;

static int content_ok(const uint8_t *d, uint32_t i)
{
    uint32_t n = pkt_len(i);
    for (uint32_t j = 0; j < n; j += (j < 64 || j + 64 > n) ? 1 : 61)
        if (d[j] != pkt_byte(i, j))
            return 0;
    return 1;
}

/* The oldest held packets are done with: checked, then dropped. */
static void finish_oldest(unsigned n)
{
    if (n > nheld)
        n = nheld;
    for (unsigned k = 0; k < n; k++)
        stale += !content_ok(held[k].data, held[k].frame);
    memmove(held, held + n, (nheld - n) * sizeof held[0]);
    nheld -= n;
}

static int slot_free(void *ctx, unsigned slot)
{
    (void)ctx;
    slot_free_calls++;
    for (unsigned k = 0; k < nheld; k++)
        if (held[k].slot == slot)
            return 0;
    return 1;
}

static int idle(void *ctx)
{
    (void)ctx;
    idle_calls++;
    finish_oldest(nheld);
    return 0;
}

static const struct capture_options hooks = {.slot_free = slot_free, .idle = idle};

/* Reads c to the end, checking every packet. Returns the packets read. */
static uint32_t read_all(struct capture *c, int ng)
{
    struct packet p;
    int linktype, rc;
    uint32_t i = 0;
    unsigned bad_len = 0, bad_data = 0, bad_ts = 0, bad_link = 0;
    nheld = slot_free_calls = idle_calls = stale = 0;
    while ((rc = capture_next(c, &p, &linktype)) == 1) {
        if (i >= NPKT)
            break;
        bad_len += p.caplen != pkt_len(i) || p.wirelen != pkt_len(i) + i % 3;
        bad_data += !content_ok(p.data, i);
        uint64_t want_ts = (1700000000ull + i) * 1000000000u +
                           (ng && i % 2 == 0 ? i % 1000000u : (uint64_t)(i % 1000000u) * 1000u);
        bad_ts += p.ts != want_ts;
        bad_link += linktype != (ng && i % 2 ? LINKTYPE_RAW : LINKTYPE_ETHERNET);
        held[nheld++] = (struct held){p.data, i, c->slot};
        if (nheld > HOLD)
            finish_oldest(nheld - HOLD);
        i++;
    }
    CHECK_EQ_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "    error: %s\n", c->errbuf);
    CHECK_EQ_U64(bad_len, 0);
    CHECK_EQ_U64(bad_data, 0);
    CHECK_EQ_U64(bad_ts, 0);
    CHECK_EQ_U64(bad_link, 0);
    CHECK(slot_free_calls > 0);   /* buffers were recycled, after asking */
    finish_oldest(nheld);
    CHECK_EQ_U64(stale, 0);
    return i;
}

static int memfd_of(const struct img *b, char *path, size_t len)
{
    int fd = memfd_create("test-capture", MFD_CLOEXEC);
    size_t off = 0;
    while (fd >= 0 && off < b->n) {
        ssize_t w = write(fd, b->d + off, b->n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

static void test_big_file(const struct img *b, int ng)
{
    char path[64];
    int fd = memfd_of(b, path, sizeof path);
    struct capture c;
    CHECK_EQ_INT(capture_open_file(&c, path, &hooks), 0);
    CHECK_STR(c.kind, ng ? "pcapng" : "pcap");
    CHECK_EQ_U64(c.size, b->n);
    CHECK_EQ_U64(read_all(&c, ng), NPKT);
    CHECK_EQ_U64(c.offset, b->n);
    capture_close(&c);
    close(fd);
}

/* A writer thread feeding a pipe in odd-sized pieces. */
struct feed {
    const struct img *b;
    int fd;
};

static void *feeder(void *arg)
{
    struct feed *f = arg;
    size_t off = 0, step = 1;
    while (off < f->b->n) {
        size_t n = step < f->b->n - off ? step : f->b->n - off;
        ssize_t w = write(f->fd, f->b->d + off, n);
        if (w <= 0)
            break;
        off += (size_t)w;
        step = step * 7 % 70001 + 1;
    }
    close(f->fd);
    return NULL;
}

static void test_pipe(const struct img *b, int ng)
{
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    struct feed f = {b, fds[1]};
    pthread_t t;
    pthread_create(&t, NULL, feeder, &f);
    struct capture c;
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(capture_file_open_fd(&c, fds[0], 1, &hooks), 0);
    CHECK_EQ_U64(read_all(&c, ng), NPKT);
    capture_close(&c);
    pthread_join(t, NULL);
}

/* Opens bytes as a file; returns what opening and reading to the end gave:
 * -2 when the open failed, else the last capture_next() result. Messages
 * go to err. */
static int try_bytes(const void *bytes, size_t n, char *err, size_t errlen, uint32_t *npackets)
{
    struct img b = {(uint8_t *)bytes, n, n};
    char path[64];
    int fd = memfd_of(&b, path, sizeof path);
    struct capture c;
    int rc = -2;
    *npackets = 0;
    if (capture_open_file(&c, path, NULL) == 0) {
        struct packet p;
        int linktype;
        while ((rc = capture_next(&c, &p, &linktype)) == 1)
            ++*npackets;
        snprintf(err, errlen, "%s", rc < 0 ? c.errbuf : "");
        capture_close(&c);
    } else {
        snprintf(err, errlen, "%s", c.errbuf);
    }
    close(fd);
    return rc;
}

static void test_damage(void)
{
    char err[256];
    uint32_t n;
    CHECK_EQ_INT(try_bytes("", 0, err, sizeof err, &n), -2);
    CHECK_STR(err, "empty file: not a capture");
    CHECK_EQ_INT(try_bytes("\xd4\xc3\xb2", 3, err, sizeof err, &n), -2);
    CHECK_STR(err, "too short for a capture file");
    CHECK_EQ_INT(try_bytes("GET / HTTP/1.1\r\n", 16, err, sizeof err, &n), -2);
    CHECK(strstr(err, "not a pcap or pcapng file") != NULL);

    struct img b = {0};
    put32(&b, 0xa1b2c3d4u);
    put16(&b, 2);
    put16(&b, 4);
    put32(&b, 0);
    put32(&b, 0);
    put32(&b, 65535);
    put32(&b, LINKTYPE_ETHERNET);
    CHECK_EQ_INT(try_bytes(b.d, 20, err, sizeof err, &n), -2);
    CHECK(strstr(err, "truncated pcap file header") != NULL);
    CHECK_EQ_INT(try_bytes(b.d, b.n, err, sizeof err, &n), 0);   /* a header, no packets */
    CHECK_EQ_U64(n, 0);
    put32(&b, 1);
    put32(&b, 2);
    put32(&b, 100);
    put32(&b, 100);
    put(&b, "0123456789", 10);
    CHECK_EQ_INT(try_bytes(b.d, b.n, err, sizeof err, &n), -1);
    CHECK_STR(err, "truncated record: 100 bytes of data announced, 10 left at byte 24");
    CHECK_EQ_INT(try_bytes(b.d, 24 + 7, err, sizeof err, &n), -1);
    CHECK_STR(err, "truncated record header: 7 of 16 bytes at byte 24");
    uint32_t huge = CAPTURE_MAX_CAPLEN + 1;
    memcpy(b.d + 24 + 8, &huge, 4);
    CHECK_EQ_INT(try_bytes(b.d, b.n, err, sizeof err, &n), -1);
    CHECK(strstr(err, "more than the limit of 262144 at byte 24") != NULL);
    /* link types dati cannot decode, a version it does not know */
    uint32_t lt = 105;
    memcpy(b.d + 20, &lt, 4);
    CHECK_EQ_INT(try_bytes(b.d, 24, err, sizeof err, &n), -2);
    CHECK(strstr(err, "unsupported link type 105") != NULL);
    lt = LINKTYPE_ETHERNET;
    memcpy(b.d + 20, &lt, 4);
    b.d[4] = 3;
    CHECK_EQ_INT(try_bytes(b.d, 24, err, sizeof err, &n), -2);
    CHECK(strstr(err, "unsupported pcap version 3") != NULL);
    free(b.d);

    /* pcapng: a block whose length is not repeated, a packet for an
     * interface never described */
    struct img g = make_pcapng();
    size_t first_epb = 28 + 32 + 20;
    uint32_t bad = 12345;
    struct img d = {malloc(first_epb + 200), 0, first_epb + 200};
    put(&d, g.d, first_epb + 36);   /* through the first EPB: 28 + 1 + 3 padding + 4 */
    memcpy(d.d + d.n - 4, &bad, 4);
    CHECK_EQ_INT(try_bytes(d.d, d.n, err, sizeof err, &n), -1);
    CHECK(strstr(err, "not repeated at its end") != NULL);
    CHECK(strstr(err, "at byte 80") != NULL);
    memcpy(g.d + first_epb + 8, &bad, 4);
    CHECK_EQ_INT(try_bytes(g.d, g.n, err, sizeof err, &n), -1);
    CHECK(strstr(err, "packet for interface 12345, but only 2 are described") != NULL);
    CHECK_EQ_INT(try_bytes(g.d, 75, err, sizeof err, &n), -1);   /* cut in the second IDB */
    CHECK_STR(err, "truncated block: 20 bytes announced, 15 left at byte 60");
    CHECK_EQ_INT(try_bytes(g.d, 70, err, sizeof err, &n), -1);
    CHECK_STR(err, "truncated block header: 10 of 12 bytes at byte 60");
    CHECK_EQ_INT(try_bytes(g.d, 60, err, sizeof err, &n), 0);    /* ends between blocks */
    free(d.d);
    free(g.d);
}

int main(int argc, char **argv)
{
    (void)argc;
    struct img pcap = make_pcap(), ng = make_pcapng();
    test_big_file(&pcap, 0);
    test_big_file(&ng, 1);
    test_pipe(&pcap, 0);
    test_pipe(&ng, 1);
    free(pcap.d);
    free(ng.d);
    test_damage();
    return test_summary(argv[0]);
}
