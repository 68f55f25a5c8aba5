/* stream.c - TCP reassembly of the messages extractors read (stream.h).
 * A buffer holds one direction of one flow from the start of a message on:
 * its first STREAM_WINDOW bytes by offset from the message's first sequence
 * number, a bitmap of the bytes received (so that out-of-order segments
 * wait at their place and a byte, once held, is never replaced), and the
 * filters that selected the message. Past the window (an HTTP body) only
 * how far the bytes have come in order is followed, not the bytes. */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "counter.h"
#include "extract.h"

#define HEADERS_MAX 4096   /* a segment's link, IP and TCP headers, copied before a message */

struct sbuf {
    uint32_t next;                 /* free list, 1-based */
    uint32_t base;                 /* sequence number of data[0] */
    uint32_t have;                 /* [0, have) all received (past the window: in order) */
    uint32_t top;                  /* data[0, top) holds every byte stored */
    uint32_t end;                  /* the message's length with its body; 0: not known yet */
    uint64_t mask;                 /* the filters that selected the message */
    uint8_t got[STREAM_WINDOW / 8];
    uint8_t data[STREAM_WINDOW];
};

struct stream_table {
    struct stream_counters c;
    struct sbuf *buf;              /* nbufs; pages touched only when used */
    uint32_t nbufs, used, free;    /* used: buffers ever handed out */
    uint32_t (*of)[2];             /* per flow slot and direction: buffer, 1-based */
    stream_records_fn records;
    void *ctx;
    uint8_t *scratch;              /* a message as a frame: headers, then the message */
};

#define BUF(t, i) (&(t)->buf[(i) - 1])

struct stream_table *stream_new(uint32_t max_flows, uint64_t memcap, stream_records_fn fn,
                                void *ctx)
{
    struct stream_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    uint64_t n = memcap / sizeof(struct sbuf);
    t->nbufs = n > (1u << 20) ? 1u << 20 : (uint32_t)n;
    t->records = fn;
    t->ctx = ctx;
    t->buf = t->nbufs ? malloc(sizeof *t->buf * t->nbufs) : NULL;
    t->of = calloc(max_flows ? max_flows : 1, sizeof *t->of);
    t->scratch = malloc(HEADERS_MAX + STREAM_WINDOW);
    if ((t->nbufs && !t->buf) || !t->of || !t->scratch) {
        stream_free(t);
        return NULL;
    }
    return t;
}

void stream_free(struct stream_table *t)
{
    if (!t)
        return;
    free(t->buf);
    free(t->of);
    free(t->scratch);
    free(t);
}

const struct stream_counters *stream_counters(const struct stream_table *t) { return &t->c; }

/* Where an HTTP request at p ends: after the blank line that ends its
 * headers, and its body (Content-Length); 0 while the headers are cut. The
 * same blank line and length as http_parse_request, found faster: this
 * runs on every request a filter selects. */
static uint32_t http_end(const uint8_t *p, uint32_t len)
{
    uint64_t body = 0;
    const uint8_t *line = memchr(p, '\n', len);   /* the request line's end */
    while (line) {
        line++;
        uint32_t left = len - (uint32_t)(line - p);
        if (left && (line[0] == '\n' || (line[0] == '\r' && left > 1 && line[1] == '\n'))) {
            uint64_t end = (uint64_t)(line - p) + (line[0] == '\n' ? 1 : 2) + body;
            return end < UINT32_MAX / 2 ? (uint32_t)end : UINT32_MAX / 2;
        }
        if (left > 15 && (line[0] | 0x20) == 'c' && bytes_iprefix(line, 15, "content-length:")) {
            const uint8_t *v = line + 15, *e = p + len;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            for (body = 0; v < e && *v >= '0' && *v <= '9' && body <= UINT32_MAX; v++)
                body = body * 10 + (uint64_t)(*v - '0');
        }
        line = memchr(line, '\n', left);
    }
    return 0;
}

enum stream_kind stream_message(const uint8_t *p, uint32_t len, uint16_t sport, uint16_t dport,
                                uint32_t *end)
{
    *end = 0;
    if (len == 0)
        return STREAM_NONE;
    if (sport == 53 || dport == 53) {   /* a 2-byte length, then the message */
        if (len >= 2)
            *end = 2 + (uint32_t)rd16(p);
        return STREAM_DNS;
    }
    if (p[0] == 0x16) {                 /* a TLS handshake record: a ClientHello? */
        if ((len > 1 && p[1] != 3) || (len > 5 && p[5] != 1))
            return STREAM_NONE;
        if (len >= 5)
            *end = 5 + (uint32_t)rd16(p + 3);
        return STREAM_TLS;
    }
    if (!http_request_start(p, len))
        return STREAM_NONE;
    *end = http_end(p, len);
    return STREAM_HTTP;
}

/* The bytes of a message (n of it held) its records are made from: an HTTP
 * request's headers, without the body; what is held of the rest. */
static uint32_t record_part(const uint8_t *p, uint32_t n, uint16_t sport, uint16_t dport)
{
    uint32_t end;
    if (stream_message(p, n, sport, dport, &end) == STREAM_HTTP) {
        struct http_request r;
        if (http_parse_request(p, n, 0, &r) && r.end)
            return r.end;
    }
    return end && end < n ? end : n;
}

static uint32_t get_bit(const struct sbuf *b, uint32_t i) { return b->got[i / 8] >> (i % 8) & 1; }

/* Marks bytes [from, to) received. */
static void set_bits(struct sbuf *b, uint32_t from, uint32_t to)
{
    while (from < to && from % 8)
        b->got[from / 8] |= (uint8_t)(1u << (from % 8)), from++;
    if (to - from >= 8) {
        memset(b->got + from / 8, 0xff, (to - from) / 8);
        from += (to - from) / 8 * 8;
    }
    while (from < to)
        b->got[from / 8] |= (uint8_t)(1u << (from % 8)), from++;
}

static void release(struct stream_table *t, uint32_t slot, int dir, unsigned *open)
{
    uint32_t i = t->of[slot][dir];
    memset(BUF(t, i)->got, 0, (BUF(t, i)->top + 7) / 8);   /* clean for the next message */
    BUF(t, i)->next = t->free;
    t->free = i;
    t->of[slot][dir] = 0;
    *open &= ~(1u << dir);
    COUNTER_ADD(t->c.held, -1);
}

/* The records of a message, from n bytes: a frame of p's headers and them. */
static void emit(struct stream_table *t, const struct packet *p, const uint8_t *data, uint32_t n,
                 uint64_t mask, uint32_t slot)
{
    if (p->payload_off > HEADERS_MAX || !mask)   /* !mask: no filter selected it */
        return;
    memcpy(t->scratch, p->data, p->payload_off);
    memcpy(t->scratch + p->payload_off, data, n);
    struct packet m = *p;
    m.data = t->scratch;
    m.caplen = p->payload_off + n;
    m.payload_len = n;
    t->records(t->ctx, &m, mask, slot);
}

/* Puts the segment's bytes at their place; returns how many were new. */
static uint32_t place(struct stream_table *t, struct sbuf *b, const struct packet *p)
{
    const uint8_t *d = packet_payload(p);
    uint32_t len = p->payload_len, seq = p->tcp_seq + (p->tcp_flags & 0x02 ? 1 : 0);
    uint32_t off = seq - b->base;
    if ((int32_t)off < 0) {   /* begins before the message: those bytes were consumed */
        uint32_t back = b->base - seq;
        if (back >= len)
            return 0;
        d += back, len -= back, off = 0;
    }
    uint32_t start = off, end = start + len, fresh = 0;
    if (start > b->have)
        COUNTER_INC(t->c.out_of_order);
    int conflict = 0;
    uint32_t from = start;   /* of what the byte loop below looks at */
    if (b->top == b->have && start <= b->have) {
        /* no hole: what is below have was received, what is above is new */
        uint32_t old = b->have < end ? b->have : end;
        uint32_t cmp = old < STREAM_WINDOW ? old : STREAM_WINDOW;
        conflict = start < cmp && memcmp(b->data + start, d, cmp - start) != 0;
        uint32_t to = end < STREAM_WINDOW ? end : STREAM_WINDOW;
        if (to > old) {
            memcpy(b->data + old, d + (old - start), to - old);
            set_bits(b, old, to);
            fresh = to - old;
            b->have = b->top = to;
        }
        from = end;   /* nothing left for the byte loop */
    }
    for (uint32_t i = from; i < end && i < STREAM_WINDOW; i++) {
        if (get_bit(b, i)) {
            conflict |= b->data[i] != d[i - start];   /* the first copy stays */
            continue;
        }
        b->data[i] = d[i - start];
        b->got[i / 8] |= (uint8_t)(1u << (i % 8));
        fresh++;
    }
    if (conflict)
        COUNTER_INC(t->c.conflicting);
    uint32_t stored = end < STREAM_WINDOW ? end : STREAM_WINDOW;
    if (stored > b->top)
        b->top = stored;
    while (b->have < b->top && get_bit(b, b->have))
        b->have++;
    if (b->end && b->have >= STREAM_WINDOW && start <= b->have && end > b->have) {
        fresh += end - b->have;   /* past the window: in-order bytes, counted, not kept */
        b->have = end;
    }
    return fresh;
}

/* Drops the first n bytes (a message done); what is stored after them
 * moves to the front. */
static void consume(struct sbuf *b, uint32_t n)
{
    uint32_t keep = b->top > n ? b->top - n : 0;
    memmove(b->data, b->data + (n < b->top ? n : b->top), keep);
    for (uint32_t i = 0; i < keep; i++) {
        uint32_t bit = get_bit(b, i + n);
        b->got[i / 8] = (uint8_t)((b->got[i / 8] & ~(1u << (i % 8))) | bit << (i % 8));
    }
    for (uint32_t i = keep; i < b->top; i++)
        b->got[i / 8] &= (uint8_t)~(1u << (i % 8));
    b->base += n;
    b->top = keep;
    b->have = 0;
    b->end = 0;
    while (b->have < b->top && get_bit(b, b->have))
        b->have++;
}

/* Makes the records of every message now whole at the front of the buffer;
 * a message after one that ended there is selected by the filters of the
 * one before and of the segment that completed it (mask): a filter that
 * looks for a request's first bytes sees only the first segment of a
 * pipelined stream. Returns 0 while the buffer waits for
 * more, 1 when it is done with, 2 when it is done with because its last
 * message ended where nothing is stored. */
static int advance(struct stream_table *t, struct sbuf *b, const struct packet *p, uint32_t slot,
                   uint64_t mask)
{
    for (;;) {
        uint32_t held = b->have < STREAM_WINDOW ? b->have : STREAM_WINDOW;
        if (!held)
            return 0;   /* the next message's first bytes are still missing */
        if (stream_message(b->data, held, p->sport, p->dport, &b->end) == STREAM_NONE) {
            /* what looked like a message start (or what followed one) is
             * not: one record of what is held, then per packet again */
            COUNTER_INC(t->c.not_message);
            emit(t, p, b->data, held, b->mask, slot);
            return 1;
        }
        if (b->end && b->end <= b->have) {
            emit(t, p, b->data, record_part(b->data, held, p->sport, p->dport), b->mask, slot);
            COUNTER_INC(t->c.completed);
            uint32_t end = b->end;
            consume(b, end);
            b->mask |= mask;
            if (b->top == 0)
                return 2;
            continue;
        }
        if (!b->end && b->top >= STREAM_WINDOW) {   /* headers longer than a buffer */
            COUNTER_INC(t->c.too_long);
            emit(t, p, b->data, held, b->mask, slot);
            return 1;
        }
        return 0;
    }
}

/* The records of payload bytes [from, to) of p, as a packet of their own. */
static void emit_part(struct stream_table *t, const struct packet *p, uint32_t from, uint32_t to,
                      uint64_t mask, uint32_t slot)
{
    if (to <= from || !mask)
        return;
    struct packet part = *p;
    part.payload_off += from;
    part.payload_len = to - from;
    t->records(t->ctx, &part, mask, slot);
}

/* Where p's payload starts in sequence space: a SYN takes a number first. */
static uint32_t data_seq(const struct packet *p) { return p->tcp_seq + (p->tcp_flags & 0x02 ? 1 : 0); }

/* From payload offset `from` of p on: the whole messages' records now, and
 * a buffer for the one the segment cuts. Returns 1 when it made (or will
 * make) the records of those bytes, 0 when from is 0 and the segment cuts
 * no message: its records are then made as for any packet. */
static int start(struct stream_table *t, uint32_t slot, int dir, unsigned *open,
                 const struct packet *p, uint32_t from, uint64_t mask)
{
    const uint8_t *d = packet_payload(p);
    uint32_t len = p->payload_len, off = from, end;
    enum stream_kind k = STREAM_NONE;
    while (off < len &&
           (k = stream_message(d + off, len - off, p->sport, p->dport, &end)) != STREAM_NONE &&
           end && end <= len - off)
        off += end;   /* whole messages */
    uint32_t i = 0;
    if (off < len && k != STREAM_NONE) {
        if ((i = t->free)) {
            t->free = BUF(t, i)->next;
        } else if (t->used < t->nbufs) {
            i = ++t->used;   /* never used: its pages are touched from now on */
            memset(BUF(t, i)->got, 0, sizeof BUF(t, i)->got);
        } else {
            COUNTER_INC(t->c.no_room);
        }
    }
    if (!i) {   /* nothing to hold (or no room): the rest as a packet */
        if (from == 0)
            return 0;
        emit_part(t, p, from, len, mask, slot);
        return 1;
    }
    emit_part(t, p, from, off, mask, slot);   /* the whole messages before it */
    struct sbuf *b = BUF(t, i);
    b->base = data_seq(p) + off;
    b->have = b->top = b->end = 0;
    b->mask = mask;
    t->of[slot][dir] = i;
    *open |= 1u << dir;
    COUNTER_INC(t->c.held);
    COUNTER_INC(t->c.started);
    place(t, b, p);
    if (advance(t, b, p, slot, mask))   /* e.g. headers longer than a buffer in one segment */
        release(t, slot, dir, open);
    return 1;
}

/* Whether p's payload starts an HTTP request or a TLS ClientHello (DNS's
 * length prefix could be any two bytes). */
static int starts_request(const struct packet *p)
{
    uint32_t end;
    enum stream_kind k = stream_message(packet_payload(p), p->payload_len, p->sport, p->dport,
                                        &end);
    return k == STREAM_HTTP || k == STREAM_TLS;
}

/* The message in b cannot be completed (its end is known and data past it
 * came, or bytes came past what a buffer follows while some are missing):
 * records from what is held, and the buffer goes. */
static void give_up(struct stream_table *t, struct sbuf *b, const struct packet *p, uint32_t slot,
                    int dir, unsigned *open, uint64_t *reason)
{
    uint32_t held = b->have < STREAM_WINDOW ? b->have : STREAM_WINDOW;
    COUNTER_INC(*reason);
    if (held)
        emit(t, p, b->data, record_part(b->data, held, p->sport, p->dport), b->mask, slot);
    release(t, slot, dir, open);
}

int stream_segment(struct stream_table *t, uint32_t slot, int dir, uint8_t *open,
                   const struct packet *p, uint64_t mask, int seen)
{
    unsigned o = *open;
    int taken = 1;
    if ((o & (1u << dir)) && (p->tcp_flags & 0x02)) {   /* a SYN: a new connection */
        COUNTER_INC(t->c.unfinished);
        release(t, slot, dir, &o);
    }
    if (o & (1u << dir)) {
        struct sbuf *b = BUF(t, t->of[slot][dir]);
        uint32_t off = data_seq(p) - b->base, seg_end = off + p->payload_len;
        int ahead = (int32_t)off >= 0;
        COUNTER_INC(t->c.segments);
        if (ahead && ((b->end && off >= b->end) ||
                      (off >= STREAM_WINDOW && off > b->have) ||
                      (off > b->have && mask && starts_request(p)))) {
            /* past the message's end, past what is followed, or a new
             * request beyond a hole (the rest of this one was lost): it
             * cannot complete; this segment starts afresh */
            give_up(t, b, p, slot, dir, &o, &t->c.gap);
            taken = mask && !seen && start(t, slot, dir, &o, p, 0, mask);
        } else if (!b->end && ahead && seg_end > STREAM_WINDOW) {
            /* headers that reach past a buffer: given up with what is
             * held, and this segment is a packet like any other */
            give_up(t, b, p, slot, dir, &o, &t->c.too_long);
            taken = 0;
        } else {
            b->mask |= mask;   /* a filter that matched a segment of it selects the message */
            if (!place(t, b, p)) {
                COUNTER_INC(t->c.retransmitted);
            } else {
                int r = advance(t, b, p, slot, mask);
                if (r) {
                    uint32_t done = b->base - data_seq(p);   /* where the message ended */
                    uint64_t m = b->mask | mask;
                    release(t, slot, dir, &o);
                    /* the segment that completed it may hold more */
                    if (r == 2 && (int32_t)done > 0 && done < p->payload_len)
                        start(t, slot, dir, &o, p, done, m);
                }
            }
        }
    } else if (!mask || seen || !start(t, slot, dir, &o, p, 0, mask)) {
        taken = 0;   /* no message cut at the segment's end: records as for any packet */
    }
    *open = (uint8_t)o;
    return taken;
}

void stream_flow_end(struct stream_table *t, uint32_t slot, uint8_t *open)
{
    unsigned o = *open;
    for (int dir = 0; dir < 2; dir++)
        if (o & (1u << dir)) {
            COUNTER_INC(t->c.unfinished);
            release(t, slot, dir, &o);
        }
    *open = (uint8_t)o;
}
