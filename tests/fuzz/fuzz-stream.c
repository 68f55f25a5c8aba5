/* fuzz-stream.c - TCP segments through the message reassembler: the input
 * is a sequence of [flags][sequence offset, 2 bytes][length, 2 bytes]
 * [payload] (flags: flow slot, direction, server port 80/443/53, whether a
 * filter matched, whether the flow saw the bytes before), given to
 * stream_segment with a small buffer pool. Checks by aborting: every
 * message handed to the records callback lies in its buffer and within the
 * window, and nothing is held after the flows end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t sink;

static void records(void *ctx, const struct packet *msg, uint64_t mask, uint32_t slot)
{
    (void)ctx;
    if (msg->payload_off + msg->payload_len > msg->caplen || slot > 3 || !mask ||
        msg->payload_len > STREAM_WINDOW)
        abort();
    for (uint32_t i = 0; i < msg->caplen; i++)   /* every byte readable */
        sink += msg->data[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t ports[4] = {80, 443, 53, 8080};
    struct stream_table *t = stream_new(4, 3 * 20000, records, NULL);
    if (!t)
        abort();
    uint8_t open[4] = {0};
    uint32_t isn[4][2] = {{1000, 2000}, {0xfffff000u, 5}, {7, 7}, {0, 0}};
    while (size >= 5) {
        uint8_t flags = data[0];
        uint32_t seq = (uint32_t)data[1] << 8 | data[2];
        uint32_t len = (uint32_t)data[3] << 8 | data[4];
        data += 5, size -= 5;
        if (len > size)
            len = (uint32_t)size;
        uint32_t slot = flags & 3;
        int dir = flags >> 2 & 1;
        struct packet p;
        memset(&p, 0, sizeof p);
        p.data = data;
        p.caplen = p.payload_len = len;
        p.l4_proto = 6;
        p.tcp_seq = isn[slot][dir] + seq;
        uint16_t server = ports[flags >> 3 & 3];
        p.sport = dir ? server : 40000;
        p.dport = dir ? 40000 : server;
        if (len)
            stream_segment(t, slot, dir, &open[slot], &p, (flags & 0x20) ? 1 : 0,
                           (flags & 0x40) != 0);
        if (flags & 0x80) {   /* the flow ends (and a new one takes the slot) */
            stream_flow_end(t, slot, &open[slot]);
            if (open[slot])
                abort();
        }
        data += len, size -= len;
    }
    for (uint32_t s = 0; s < 4; s++)
        stream_flow_end(t, s, &open[s]);
    if (stream_counters(t)->held)
        abort();
    stream_free(t);
    return 0;
}
