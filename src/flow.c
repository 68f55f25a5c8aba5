/* flow.c - a preallocated array of flows, indexed by buckets of tagged
 * slots (flow.h), plus an LRU list ordered by the reader clock: since the
 * clock never goes backwards, the head is always the flow idle the longest,
 * so expiry pops heads and never scans. */
#include "flow.h"

#include "counter.h"
#include "hugemem.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* 1 M flows in about 150 MiB: a field added here costs that many times over */
_Static_assert(sizeof(struct flow) == 144, "struct flow grew");

#define AT(t, i) (&(t)->flows[(i) - 1])

static const char *const end_names[FLOW_END_COUNT] = {
    [FLOW_END_IDLE] = "idle",
    [FLOW_END_EOF] = "end_of_input",
    [FLOW_END_EVICTED] = "evicted",
    [FLOW_END_SHUTDOWN] = "shutdown",
};

const char *flow_end_name(enum flow_end why)
{
    return why < FLOW_END_COUNT ? end_names[why]
           : why == FLOW_INTERIM ? "active_timeout"
           : why == FLOW_START   ? "start"
                                 : "?";
}

int flow_table_init(struct flow_table *t, uint32_t max_flows, uint32_t buckets,
                    uint64_t idle_ns, flow_emit_fn emit, void *emit_ctx)
{
    memset(t, 0, sizeof *t);
    /* slots for twice the flows at least: probes stay short when it is full */
    uint64_t want = buckets > 2ull * max_flows ? buckets : 2ull * max_flows, n = 1;
    while (n * FLOW_BUCKET_SLOTS < want)
        n <<= 1;
    /* calloc of large blocks maps zero pages lazily: untouched flows cost nothing */
    t->flows = calloc(max_flows ? max_flows : 1, sizeof *t->flows);
    t->buckets = huge_alloc(n * sizeof *t->buckets);
    if (!t->flows || !t->buckets) {
        free(t->flows);
        huge_free(t->buckets, n * sizeof *t->buckets);
        t->flows = NULL;
        t->buckets = NULL;
        return -1;
    }
    t->bucket_mask = (uint32_t)(n - 1);
    if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != sizeof t->seed)
        t->seed = (uint32_t)(uintptr_t)t->buckets ^ 0x5bd1e995u;   /* no entropy yet: some */
    t->max_flows = max_flows;
    t->idle_ns = idle_ns;
    t->emit = emit;
    t->emit_ctx = emit_ctx;
    return 0;
}

void flow_table_fini(struct flow_table *t)
{
    free(t->flows);
    huge_free(t->buckets, ((size_t)t->bucket_mask + 1) * sizeof *t->buckets);
    memset(t, 0, sizeof *t);
}

void flow_table_prefault(struct flow_table *t)
{
    volatile uint32_t *o;
    for (uint32_t b = 0; b <= t->bucket_mask; b += 4096 / sizeof *t->buckets) {
        o = &t->buckets[b].overflow;
        *o = *o;
    }
}

static void lru_unlink(struct flow_table *t, uint32_t i)
{
    struct flow *f = AT(t, i);
    if (f->lru_prev)
        AT(t, f->lru_prev)->lru_next = f->lru_next;
    else
        t->lru_head = f->lru_next;
    if (f->lru_next)
        AT(t, f->lru_next)->lru_prev = f->lru_prev;
    else
        t->lru_tail = f->lru_prev;
}

static void lru_append(struct flow_table *t, uint32_t i)
{
    struct flow *f = AT(t, i);
    f->lru_prev = t->lru_tail;
    f->lru_next = 0;
    if (t->lru_tail)
        AT(t, t->lru_tail)->lru_next = i;
    else
        t->lru_head = i;
    t->lru_tail = i;
}

/* Frees the slot of entry i, from its home bucket on; the buckets it
 * passes no longer have it beyond them. */
static void index_remove(struct flow_table *t, uint32_t hash, uint32_t i)
{
    for (uint32_t b = flow_home(t, flow_index_hash(t, hash));; b = (b + 1) & t->bucket_mask) {
        struct flow_bucket *bk = &t->buckets[b];
        for (int s = 0; s < FLOW_BUCKET_SLOTS; s++)
            if (bk->idx[s] == i) {
                bk->idx[s] = 0;
                return;
            }
        bk->overflow--;
    }
}

/* A free slot for entry i, from its home bucket on (there is always one:
 * the index has twice the slots of the table). */
static void index_insert(struct flow_table *t, uint32_t hash, uint32_t i)
{
    uint64_t ih = flow_index_hash(t, hash);
    uint32_t b = flow_home(t, ih);
    for (uint32_t d = 0;; d++, b = (b + 1) & t->bucket_mask) {
        struct flow_bucket *bk = &t->buckets[b];
        for (int s = 0; s < FLOW_BUCKET_SLOTS; s++)
            if (!bk->idx[s]) {
                bk->idx[s] = i;
                bk->tag[s] = flow_tag(ih);
                if (d > t->probe_max)
                    t->probe_max = d;
                return;
            }
        bk->overflow++;
    }
}

/* Emits the flow's record, then returns its entry to the free list. */
static void end_flow(struct flow_table *t, uint32_t i, enum flow_end why)
{
    struct flow *f = AT(t, i);
    t->emit(t->emit_ctx, f, why);
    COUNTER_INC(t->ended[why]);
    COUNTER_ADD(t->active, (uint64_t)-1);
    lru_unlink(t, i);
    index_remove(t, f->hash, i);
    f->chain = t->free_head;
    t->free_head = i;
}

void flow_table_advance(struct flow_table *t, uint64_t clock)
{
    while (t->lru_head) {
        struct flow *f = AT(t, t->lru_head);
        if (clock <= f->last_clock || clock - f->last_clock <= t->idle_ns)
            break;
        end_flow(t, t->lru_head, FLOW_END_IDLE);
    }
}

struct flow *flow_lookup(struct flow_table *t, const struct packet *p)
{
    uint64_t ih = flow_index_hash(t, p->hash);
    uint16_t tag = flow_tag(ih);
    uint32_t b = flow_home(t, ih);
    /* overflow ends the search where no flow went further; probe_max bounds
     * it when flows that went further ended and left counts behind */
    for (uint32_t d = 0; d <= t->probe_max; d++, b = (b + 1) & t->bucket_mask) {
        const struct flow_bucket *bk = &t->buckets[b];
        for (int s = 0; s < FLOW_BUCKET_SLOTS; s++) {
            if (bk->tag[s] != tag || !bk->idx[s])
                continue;
            struct flow *f = AT(t, bk->idx[s]);
            if (f->hash == p->hash && flow_key_equal(&f->key, &p->key))
                return f;
        }
        if (!bk->overflow)
            break;
    }
    return NULL;
}

struct flow *flow_create(struct flow_table *t, const struct packet *p)
{
    if (t->max_flows == 0)
        return NULL;
    uint32_t i;
    if (t->free_head) {
        i = t->free_head;
        t->free_head = AT(t, i)->chain;
    } else if (t->used < t->max_flows) {
        i = ++t->used;
    } else {
        end_flow(t, t->lru_head, FLOW_END_EVICTED);
        i = t->free_head;
        t->free_head = AT(t, i)->chain;
    }
    struct flow *f = AT(t, i);
    memset(f, 0, sizeof *f);
    f->key = p->key;
    f->hash = p->hash;
    f->id = p->frame;
    f->first_ts = p->ts;
    f->client_is_lo = (p->flags & PKT_SRC_IS_LO) != 0;
    f->iface = p->iface;
    index_insert(t, p->hash, i);
    f->last_clock = p->clock;
    lru_append(t, i);
    COUNTER_INC(t->active);
    COUNTER_INC(t->created);
    return f;
}

/* Sequence numbers compare modulo 2^32 (RFC 1982 serial arithmetic). */
#define TCP_SYN 0x02

static int tcp_retransmitted(struct flow *f, const struct packet *p, int dir)
{
    if (p->l4_proto != IPPROTO_TCP)
        return 0;
    /* a SYN starts a new sequence space (the 5-tuple may be reused); data
     * on a SYN (TCP Fast Open) starts at seq + 1 */
    if (p->tcp_flags & TCP_SYN) {
        f->tcp_seen |= (uint8_t)(1u << dir);
        f->tcp_end[dir] = p->tcp_seq + 1 + p->payload_len;
        return 0;
    }
    if (p->payload_len == 0)
        return 0;
    uint32_t end = p->tcp_seq + p->payload_len;
    uint8_t bit = (uint8_t)(1u << dir);
    if ((f->tcp_seen & bit) && (int32_t)(end - f->tcp_end[dir]) <= 0)
        return 1;
    f->tcp_seen |= bit;
    f->tcp_end[dir] = end;
    return 0;
}

int flow_update(struct flow_table *t, struct flow *f, const struct packet *p)
{
    int dir = flow_direction(f, p);
    f->packets[dir] += 1u + p->extra_frames;   /* a reassembled datagram: all its frames */
    f->bytes[dir] += p->wirelen + (uint64_t)p->extra_bytes;
    f->last_ts = p->ts;
    f->last_clock = p->clock;
    uint32_t i = (uint32_t)(f - t->flows) + 1;
    if (t->lru_tail != i) {
        lru_unlink(t, i);
        lru_append(t, i);
    }
    return tcp_retransmitted(f, p, dir);
}

void flow_table_flush(struct flow_table *t, enum flow_end why)
{
    while (t->lru_head)
        end_flow(t, t->lru_head, why);
}

void flow_table_remap_filters(struct flow_table *t, const int8_t map[64])
{
    for (uint32_t i = t->lru_head; i; i = AT(t, i)->lru_next) {
        struct flow *f = AT(t, i);
        uint64_t old = f->filters, mask = 0;
        for (; old; old &= old - 1) {
            int b = __builtin_ctzll(old);
            if (map[b] >= 0)
                mask |= 1ull << map[b];
        }
        f->filters = mask;
    }
}
