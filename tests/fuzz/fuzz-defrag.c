/* fuzz-defrag.c - IP fragments through the defragmenter: the input is a
 * sequence of raw IP frames, each as [clock step in ms][length, 2 bytes big
 * endian][bytes]. Every frame is decoded (raw IP) and, when it is a
 * fragment, given to defrag_packet with small limits, so that the memcap,
 * the datagram cap, the size limit and the timeout are all reached. Checks
 * by aborting: every fragment in exactly one counter after each step, a
 * rebuilt datagram inside its buffer and decoded as no fragment, nothing
 * held after the final expiry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "defrag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[DEFRAG_FRAME_MAX];

static void check(const struct defrag *d)
{
    const struct defrag_counters *c = defrag_counters(d);
    if (c->fragments != c->reassembled + c->duplicates + c->timeout + c->overlap + c->too_big +
                            c->no_room + c->invalid + c->held ||
        (c->held == 0) != (c->held_bytes == 0) || c->undecodable > c->datagrams)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct defrag_limits lim = {.memcap = 16384, .max_datagrams = 4, .max_size = 4000,
                                .timeout_ns = 1000000000ull};
    struct defrag *d = defrag_new(&lim);
    if (!d)
        abort();
    uint64_t clock = 1, frame = 0;
    while (size >= 3) {
        clock += (uint64_t)data[0] * 1000000u;
        uint32_t len = (uint32_t)data[1] << 8 | data[2];
        data += 3, size -= 3;
        if (len > size)
            len = (uint32_t)size;
        struct packet p, out;
        memset(&p, 0, sizeof p);
        p.data = data;
        p.caplen = p.wirelen = len;
        p.ts = p.clock = clock;
        p.frame = ++frame;
        decode_packet(&p, LINKTYPE_RAW);
        if (p.flags & PKT_FRAGMENT) {
            const struct packet *q = defrag_packet(d, &p, LINKTYPE_RAW, buf, &out);
            if (q == &out && (out.caplen > sizeof buf || out.data != buf ||
                              (out.flags & PKT_FRAGMENT) || !(out.flags & PKT_REASSEMBLED) ||
                              out.frame != p.frame))
                abort();
        }
        check(d);
        data += len, size -= len;
    }
    defrag_expire(d, UINT64_MAX);
    check(d);
    if (defrag_counters(d)->held)
        abort();
    defrag_free(d);
    return 0;
}
