/* stream.h - TCP reassembly for application fields (REASSEMBLY 1). Only
 * what the extractors need is put back in order: an HTTP request's headers
 * up to the blank line, a TLS handshake record (the ClientHello), a DNS
 * message over TCP by its length prefix. A segment that starts such a
 * message and does not hold all of it opens a buffer for its direction of
 * the flow; later segments are placed by sequence number (out-of-order ones
 * held, retransmitted and overlapping bytes: the first copy wins) until the
 * message is whole, and the message then makes its records at the frame
 * that completed it. Flows that never split a message pay nothing. Buffers
 * come from a pool fixed at start (REASSEMBLY_MEMCAP). */
#ifndef DATI_STREAM_H
#define DATI_STREAM_H

#include <stdint.h>

#include "packet.h"

#define STREAM_WINDOW (16384 + 256)   /* bytes of a message held at most: a whole TLS record */

enum stream_kind { STREAM_NONE, STREAM_HTTP, STREAM_TLS, STREAM_DNS };

struct stream_counters {
    uint64_t started;          /* messages split over segments: a buffer opened */
    uint64_t completed;        /* of them, made whole: records made */
    uint64_t segments;         /* segments that went into a buffer after the first */
    uint64_t out_of_order;     /* of them, ahead of a gap: held */
    uint64_t retransmitted;    /* segments whose bytes were all held already */
    uint64_t conflicting;      /* overlapping bytes that differed from those held */
    uint64_t too_long;         /* gave up: more than STREAM_WINDOW bytes (records from what was held) */
    uint64_t no_room;          /* gave up: no buffer free (records from the segment alone) */
    uint64_t unfinished;       /* gave up: the flow ended with the message incomplete (no record) */
    uint64_t not_message;      /* gave up: the bytes held turned out not to start a message (a record of them) */
    uint64_t gap;              /* gave up: bytes missing that later data passed (records from what was held) */
    uint64_t held;             /* buffers in use now */
};

/* What makes the records of a message: the worker's callback, given a
 * packet whose payload is the message (headers as the frame's) and the
 * filters that selected it. */
typedef void (*stream_records_fn)(void *ctx, const struct packet *msg, uint64_t mask,
                                  uint32_t flow_slot);

struct stream_table;

/* Buffers for memcap bytes (the bound: pages are touched only as buffers
 * are first used); fewer than one: every message is given up as no_room.
 * NULL when the memory cannot be had. */
struct stream_table *stream_new(uint32_t max_flows, uint64_t memcap, stream_records_fn fn,
                                void *ctx);
void stream_free(struct stream_table *t);
const struct stream_counters *stream_counters(const struct stream_table *t);

/* A TCP segment with payload of flow slot `slot`, direction dir, whose
 * buffer state is *open (a bit per direction, kept in the flow entry);
 * mask: the record filters the segment matched; seen: its bytes were all
 * seen before (the flow's retransmission check). Returns 1 when the
 * segment was taken (its records, if any, were made or will be with its
 * message), 0 when the caller makes its records as for any packet. */
int stream_segment(struct stream_table *t, uint32_t slot, int dir, uint8_t *open,
                   const struct packet *p, uint64_t mask, int seen);

/* The flow in slot ends: its buffers are given up (unfinished). */
void stream_flow_end(struct stream_table *t, uint32_t slot, uint8_t *open);

/* The framing of a message starting at p (len bytes) of a TCP segment
 * between ports sport and dport: its kind, and in *end its length when it
 * is whole in those bytes (0 when it is not). STREAM_NONE: no message
 * dati reassembles starts there. */
enum stream_kind stream_message(const uint8_t *p, uint32_t len, uint16_t sport, uint16_t dport,
                                uint32_t *end);

#endif
