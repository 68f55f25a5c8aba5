/* names.c - sampling names from field records into per-worker rings, and
 * the statistics thread's table of the most seen names per kind over the
 * last minute. The table is bounded: when it is full, a new name takes the
 * place of the least counted of a few entries (as Redis evicts by
 * sampling), so a flood of one-off names replaces one-off names and cannot
 * push out the busy ones. Counts are exact for names never pushed out, and
 * a name pushed out and seen again counts from then: never more than seen
 * (space saving's inherited counts put one-off names at the top). */
#include "names.h"

#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "extract.h"
#include "output-json.h"

static const int kind_field[NAME_KINDS] = {FIELD_HTTP_HOST, FIELD_TLS_SNI, FIELD_DNS_QRY_NAME};
static const char *const kind_name[NAME_KINDS] = {"http.host", "tls.sni", "dns.qry.name"};

unsigned names_of_fields(const int *field_ids, int nfields)
{
    unsigned kinds = 0;
    for (int i = 0; i < nfields; i++)
        for (int k = 0; k < NAME_KINDS; k++)
            if (field_ids[i] == kind_field[k])
                kinds |= 1u << k;
    return kinds;
}

void names_sample(struct name_ring *r, struct extract_ctx *x, unsigned kinds)
{
    for (int k = 0; kinds; k++, kinds >>= 1) {
        struct field_value v;
        if (!(kinds & 1) || !extract_field(x, kind_field[k], &v))
            continue;
        uint32_t head = r->head;
        if (head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= NAME_RING) {
            COUNTER_INC(r->unsampled);
            continue;
        }
        struct name_sample *s = &r->slot[head % NAME_RING];
        uint32_t n = 0;
        for (uint32_t p = 0; p < v.nparts && n < NAME_TEXT; p++)
            for (uint32_t i = 0; i < v.parts[p].len && n < NAME_TEXT; i++) {
                uint8_t c = v.parts[p].ptr[i];   /* names are case-insensitive */
                s->text[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
        if (n == 0)
            continue;
        s->kind = (uint8_t)k;
        s->len = (uint8_t)n;
        __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
        COUNTER_INC(r->sampled);
    }
}

static uint32_t hash_name(const char *s, unsigned len)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (unsigned i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h % (TOP_ENTRIES * 2);
}

static void table_init(struct top_table *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < TOP_ENTRIES * 2; i++)
        t->bucket[i] = -1;
    for (int i = 0; i < TOP_ENTRIES; i++)
        t->e[i].next = (int16_t)(i + 1 < TOP_ENTRIES ? i + 1 : -1);
    t->free_list = 0;
}

static void unlink_entry(struct top_table *t, int i)
{
    int16_t *p = &t->bucket[hash_name(t->e[i].text, t->e[i].len)];
    while (*p != i)
        p = &t->e[*p].next;
    *p = t->e[i].next;
    t->e[i].used = 0;
    t->e[i].next = t->free_list;
    t->free_list = (int16_t)i;
    t->used--;
}

static void count_name(struct top_table *t, const struct name_sample *s, int slot)
{
    uint32_t h = hash_name(s->text, s->len);
    int i;
    for (i = t->bucket[h]; i >= 0; i = t->e[i].next)
        if (t->e[i].len == s->len && memcmp(t->e[i].text, s->text, s->len) == 0)
            break;
    if (i < 0) {
        if (t->free_list < 0) {
            /* full: the least counted of the next TOP_EVICT_SCAN entries
             * makes room (a scan of all of them per new name would cost
             * more than the records it counts, under a flood of names) */
            int min = t->cursor;
            for (int j = 1; j < TOP_EVICT_SCAN; j++) {
                int c = (t->cursor + j) % TOP_ENTRIES;
                if (t->e[c].total < t->e[min].total)
                    min = c;
            }
            t->cursor = (t->cursor + TOP_EVICT_SCAN) % TOP_ENTRIES;
            unlink_entry(t, min);
        }
        i = t->free_list;
        struct top_entry *e = &t->e[i];
        t->free_list = e->next;
        memset(e, 0, sizeof *e);
        memcpy(e->text, s->text, s->len);
        e->len = s->len;
        e->used = 1;
        e->next = t->bucket[h];
        t->bucket[h] = (int16_t)i;
        t->used++;
    }
    t->e[i].count[slot]++;
    t->e[i].total++;
}

/* A new slot begins: what the oldest one counted leaves the window. */
static void age(struct top_table *t, int slot)
{
    for (int i = 0; i < TOP_ENTRIES; i++) {
        struct top_entry *e = &t->e[i];
        if (!e->used)
            continue;
        e->total -= e->count[slot];
        e->count[slot] = 0;
        if (e->total == 0)
            unlink_entry(t, i);
    }
}

void top_names_init(struct top_names *t, double now)
{
    memset(t, 0, sizeof *t);
    for (int k = 0; k < NAME_KINDS; k++)
        table_init(&t->kind[k]);
    t->slot_started = now;
}

void top_names_drain(struct top_names *t, struct name_ring *const *rings, int nrings, double now)
{
    if (now - t->slot_started >= TOP_SLOT_S * (TOP_WINDOW_SLOTS + 1)) {
        /* a long pause (a stopped clock, a suspended process): all aged */
        for (int k = 0; k < NAME_KINDS; k++)
            table_init(&t->kind[k]);
        t->slot_started = now;
    }
    while (now - t->slot_started >= TOP_SLOT_S) {
        t->slot = (t->slot + 1) % TOP_WINDOW_SLOTS;
        t->slot_started += TOP_SLOT_S;
        for (int k = 0; k < NAME_KINDS; k++)
            age(&t->kind[k], t->slot);
    }
    t->sampled = t->unsampled = 0;
    for (int w = 0; w < nrings; w++) {
        struct name_ring *r = rings[w];
        uint32_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        for (uint32_t tail = r->tail; tail != head; tail++) {
            const struct name_sample *s = &r->slot[tail % NAME_RING];
            count_name(&t->kind[s->kind], s, t->slot);
        }
        __atomic_store_n(&r->tail, head, __ATOMIC_RELEASE);
        t->sampled += COUNTER_GET(r->sampled);
        t->unsampled += COUNTER_GET(r->unsampled);
    }
}

static int by_total(const void *a, const void *b)
{
    const struct top_entry *x = *(const struct top_entry *const *)a;
    const struct top_entry *y = *(const struct top_entry *const *)b;
    if (x->total != y->total)
        return x->total < y->total ? 1 : -1;
    int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
    return c ? c : (int)x->len - (int)y->len;
}

int top_names_list(const struct top_names *t, int kind, const struct top_entry **out)
{
    const struct top_table *tt = &t->kind[kind];
    const struct top_entry *list[TOP_ENTRIES];
    int n = 0;
    for (int i = 0; i < TOP_ENTRIES; i++)
        if (tt->e[i].used)
            list[n++] = &tt->e[i];
    qsort(list, (size_t)n, sizeof list[0], by_total);
    n = n < TOP_SHOWN ? n : TOP_SHOWN;
    memcpy(out, list, (size_t)n * sizeof list[0]);
    return n;
}

const char *name_kind_field(int kind) { return kind_name[kind]; }

int top_names_json(struct outbuf *b, const struct top_names *t)
{
    char head[96];
    snprintf(head, sizeof head, "{\"window\":%d,\"sampled\":", TOP_SLOT_S * TOP_WINDOW_SLOTS);
    int rc = json_lit(b, head) | json_u64(b, t->sampled) | json_lit(b, ",\"unsampled\":") |
             json_u64(b, t->unsampled) | json_lit(b, ",\"names\":{");
    for (int k = 0; k < NAME_KINDS; k++) {
        const struct top_entry *list[TOP_SHOWN];
        int n = top_names_list(t, k, list);
        rc |= json_lit(b, k ? ",\"" : "\"") | json_lit(b, kind_name[k]) | json_lit(b, "\":[");
        for (int i = 0; i < n; i++) {
            rc |= json_lit(b, i ? ",[" : "[");
            rc |= json_str(b, (const uint8_t *)list[i]->text, list[i]->len);
            rc |= json_lit(b, ",") | json_u64(b, list[i]->total) | json_lit(b, "]");
        }
        rc |= json_lit(b, "]");
    }
    return rc | json_lit(b, "}}");
}
