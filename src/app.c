/* app.c - nDPI per worker: a detection module, a pool of nDPI flow states,
 * the per-flow results, a shared table of host names and the per-name flow
 * counts (app.h). The feeding policy is ndpiReader's, so that a flow gets
 * the name ndpiReader prints for it: the tests compare the two. */
#include "app.h"

#include <ndpi_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app-alloc.h"
#include "counter.h"
#include "output-json.h"
#include "packet.h"

#define APP_TCP_PACKETS 80        /* ndpiReader gives up after more than this */
#define APP_UDP_PACKETS 24

/* Host names nDPI found, shared by the flows that carry them (most flows of
 * a busy probe go to few names), counted by reference. */
struct host_table {
    char (*text)[APP_HOST_MAX];
    uint32_t *refs, *next, *hash; /* next: the bucket's chain, or the free list */
    uint32_t *bucket;
    uint32_t mask, free_head;
};

struct app_classifier {
    struct app_result *result;    /* one per flow entry */
    struct ndpi_detection_module_struct *mod;
    int shared_mod;               /* mod is the names module: never freed */
    uint32_t max_flows;
    uint8_t *pool;                /* pool_size nDPI flow states */
    uint8_t *fed;                 /* per pool entry: packets given to nDPI */
    uint32_t *free_list;          /* 1-based pool entries not in use */
    uint32_t nfree, pool_size;
    struct host_table hosts;
    struct app_arena arena;       /* what nDPI allocates for the flows it dissects */
    size_t fixed_bytes;           /* results, pool, hosts: allocated at start */
    struct app_counters c;
};

static struct ndpi_detection_module_struct *module_new(void)
{
    struct ndpi_detection_module_struct *m = ndpi_init_detection_module(ndpi_no_prefs);
    if (!m)
        return NULL;
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(m, &all);
    ndpi_finalize_initialization(m);   /* without it, no sub-protocols (HTTP.Wikipedia) */
    return m;
}

static struct ndpi_flow_struct *pool_flow(const struct app_classifier *a, uint32_t i)
{
    return (struct ndpi_flow_struct *)(void *)(a->pool + (size_t)(i - 1) * SIZEOF_FLOW_STRUCT);
}

static int hosts_init(struct host_table *h, uint32_t cap)
{
    uint32_t nb = 64;
    while (nb < cap)
        nb <<= 1;
    h->mask = nb - 1;
    h->text = calloc(cap, sizeof *h->text);
    h->refs = calloc(cap, sizeof *h->refs);
    h->next = calloc(cap, sizeof *h->next);
    h->hash = calloc(cap, sizeof *h->hash);
    h->bucket = calloc(nb, sizeof *h->bucket);
    if (!h->text || !h->refs || !h->next || !h->hash || !h->bucket)
        return -1;
    for (uint32_t i = 0; i < cap; i++)
        h->next[i] = i + 1 < cap ? i + 2 : 0;
    h->free_head = 1;
    return 0;
}

static void hosts_fini(struct host_table *h)
{
    free(h->text);
    free(h->refs);
    free(h->next);
    free(h->hash);
    free(h->bucket);
}

/* The entry holding name, made or shared; 0 for none or no room. */
static uint32_t host_get(struct app_classifier *a, const char *name)
{
    struct host_table *h = &a->hosts;
    if (!name[0])
        return 0;
    uint32_t hash = 2166136261u;
    for (const char *s = name; *s; s++)
        hash = (hash ^ (uint8_t)*s) * 16777619u;
    uint32_t *head = &h->bucket[hash & h->mask];
    for (uint32_t i = *head; i; i = h->next[i - 1])
        if (h->hash[i - 1] == hash && strcmp(h->text[i - 1], name) == 0) {
            h->refs[i - 1]++;
            return i;
        }
    uint32_t i = h->free_head;
    if (!i) {
        COUNTER_INC(a->c.hosts_dropped);
        return 0;
    }
    h->free_head = h->next[i - 1];
    snprintf(h->text[i - 1], APP_HOST_MAX, "%s", name);
    h->refs[i - 1] = 1;
    h->hash[i - 1] = hash;
    h->next[i - 1] = *head;
    *head = i;
    return i;
}

static void host_put(struct host_table *h, uint32_t i)
{
    if (!i || --h->refs[i - 1])
        return;
    uint32_t *link = &h->bucket[h->hash[i - 1] & h->mask];
    while (*link != i)
        link = &h->next[*link - 1];
    *link = h->next[i - 1];
    h->next[i - 1] = h->free_head;
    h->free_head = i;
}

/* The process's module for names (configuration, statistics), made first;
 * the first classifier detects with it too (a module is 8.5 MB and tens of
 * milliseconds to make), the others with modules of their own. Names are
 * only read, so other threads may look them up while it detects. */
static struct ndpi_detection_module_struct *names_mod;
static int names_mod_taken;

struct app_classifier *app_new(uint32_t max_flows, uint32_t pool_size, char *err, size_t errlen)
{
    app_alloc_install();
    app_arena_use(NULL);   /* the module's tables: malloc's */
    struct app_classifier *a = calloc(1, sizeof *a);
    if (a && names_mod && !names_mod_taken) {
        a->mod = names_mod;
        a->shared_mod = names_mod_taken = 1;
    }
    if (!a || (!a->mod && !(a->mod = module_new()))) {
        snprintf(err, errlen, "nDPI: cannot make a detection module (out of memory)");
        free(a);
        return NULL;
    }
    a->max_flows = max_flows;
    a->pool_size = pool_size;
    a->result = calloc(max_flows, sizeof *a->result);
    a->pool = calloc(pool_size, SIZEOF_FLOW_STRUCT);
    a->fed = calloc(pool_size, 1);
    a->free_list = calloc(pool_size, sizeof *a->free_list);
    /* a name outlives its flow's pool entry: room for twice as many */
    if (!a->result || !a->pool || !a->fed || !a->free_list ||
        hosts_init(&a->hosts, 2 * pool_size) < 0) {
        snprintf(err, errlen, "out of memory for classification (%u flows, pool of %u)",
                 max_flows, pool_size);
        app_free(a);
        return NULL;
    }
    for (uint32_t i = 0; i < pool_size; i++)
        a->free_list[i] = pool_size - i;
    a->nfree = pool_size;
    a->fixed_bytes = (size_t)max_flows * sizeof *a->result +
                     (size_t)pool_size * (SIZEOF_FLOW_STRUCT + 1 + sizeof *a->free_list) +
                     (size_t)2 * pool_size * (APP_HOST_MAX + 3 * sizeof(uint32_t)) +
                     (a->hosts.mask + 1) * sizeof(uint32_t);
    return a;
}

void app_free(struct app_classifier *a)
{
    if (!a)
        return;
    app_arena_use(&a->arena);
    for (uint32_t s = 0; a->result && a->nfree < a->pool_size && s < a->max_flows; s++)
        if (a->result[s].state == APP_CLASSIFYING)
            ndpi_free_flow_data(pool_flow(a, a->result[s].ref));
    if (a->mod)   /* the shared one too: its caches are in this arena (exit only) */
        ndpi_exit_detection_module(a->mod);
    if (a->shared_mod)
        names_mod = NULL, names_mod_taken = 0;
    free(a->result);
    free(a->pool);
    free(a->fed);
    free(a->free_list);
    hosts_fini(&a->hosts);
    app_arena_use(NULL);
    app_arena_fini(&a->arena);
    free(a);
}

uint64_t app_memory_bytes(const struct app_classifier *a)
{
    return a->fixed_bytes + COUNTER_GET(a->arena.bytes);
}

void app_flow_begin(struct app_classifier *a, uint32_t slot)
{
    struct app_result *r = &a->result[slot];
    memset(r, 0, sizeof *r);
    if (a->nfree == 0) {
        r->state = APP_POOL_FULL;
        COUNTER_INC(a->c.pool_full);
        return;
    }
    r->ref = a->free_list[--a->nfree];
    memset(pool_flow(a, r->ref), 0, SIZEOF_FLOW_STRUCT);
    a->fed[r->ref - 1] = 0;
    r->state = APP_CLASSIFYING;
}

/* Flows per name, in a table the statistics read while it grows: a slot's
 * count is set before its key is published. */
static void count_name(struct app_counters *c, uint16_t master, uint16_t app)
{
    uint32_t key = ((uint32_t)master << 16 | app) + 1;
    uint32_t s = (key * 2654435761u) >> 22;   /* 10 bits: APP_COUNT_SLOTS */
    for (uint32_t n = 0; n < APP_COUNT_SLOTS; n++, s = (s + 1) & (APP_COUNT_SLOTS - 1)) {
        uint32_t k = c->name_key[s];
        if (k == key || k == 0) {
            COUNTER_INC(c->name_flows[s]);
            if (k == 0)
                __atomic_store_n(&c->name_key[s], key, __ATOMIC_RELEASE);
            return;
        }
    }
    COUNTER_INC(c->names_other);
}

/* The flow's answer is final: keep it, give the nDPI state back. */
static void finish(struct app_classifier *a, struct app_result *r, ndpi_protocol p)
{
    struct ndpi_flow_struct *f = pool_flow(a, r->ref);
    uint32_t entry = r->ref;
    r->master = p.master_protocol;
    r->app = p.app_protocol;
    r->category = (uint16_t)p.category;
    r->confidence = (uint8_t)f->confidence;
    r->ref = host_get(a, f->host_server_name);
    r->state = APP_DONE;
    ndpi_free_flow_data(f);
    a->free_list[a->nfree++] = entry;
    if (p.app_protocol || p.master_protocol)
        COUNTER_INC(a->c.classified);
    else
        COUNTER_INC(a->c.unknown);
    count_name(&a->c, r->master, r->app);
}

int app_packet(struct app_classifier *a, uint32_t slot, const struct packet *p)
{
    struct app_result *r = &a->result[slot];
    /* ndpiReader never feeds what its decoder refuses: cut datagrams, later fragments */
    if (r->state != APP_CLASSIFYING || (p->flags & PKT_SNAPPED))
        return 0;
    app_arena_use(&a->arena);
    uint32_t len = p->caplen - p->l3_off;
    int tcp = p->l4_proto == 6;
    unsigned fed = ++a->fed[r->ref - 1];
    int enough = (tcp && fed > APP_TCP_PACKETS) || (!tcp && p->l4_proto == 17 && fed > APP_UDP_PACKETS);
    if (fed > 250)   /* other protocols: ndpiReader has no limit; nDPI stops at 32 */
        enough = 1;
    struct ndpi_flow_struct *f = pool_flow(a, r->ref);
    ndpi_protocol pr = ndpi_detection_process_packet(a->mod, f, p->data + p->l3_off,
                                                     (unsigned short)(len > 65535 ? 65535 : len),
                                                     p->clock / 1000000);
    if (!enough && (pr.app_protocol == NDPI_PROTOCOL_UNKNOWN ||
                    ndpi_extra_dissection_possible(a->mod, f)))
        return 0;
    if (pr.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
        uint8_t guessed = 0;
        pr = ndpi_detection_giveup(a->mod, f, 1, &guessed);
    }
    finish(a, r, pr);
    return 1;
}

void app_flow_end(struct app_classifier *a, uint32_t slot)
{
    struct app_result *r = &a->result[slot];
    if (r->state != APP_CLASSIFYING)
        return;
    app_arena_use(&a->arena);
    uint8_t guessed = 0;
    finish(a, r, ndpi_detection_giveup(a->mod, pool_flow(a, r->ref), 1, &guessed));
}

void app_flow_release(struct app_classifier *a, uint32_t slot)
{
    struct app_result *r = &a->result[slot];
    if (r->state == APP_DONE)
        host_put(&a->hosts, r->ref);
    r->ref = 0;
    r->state = APP_NONE;
}

const struct app_result *app_result_of(const struct app_classifier *a, uint32_t slot)
{
    return &a->result[slot];
}


const char *app_library_version(void) { return ndpi_revision(); }

int app_names_init(char *err, size_t errlen)
{
    app_alloc_install();
    if (ndpi_get_api_version() != NDPI_API_VERSION) {
        snprintf(err, errlen, "nDPI: the library's API is %u (%s), dati was built for %u: rebuild dati",
                 ndpi_get_api_version(), ndpi_revision(), (unsigned)NDPI_API_VERSION);
        return -1;
    }
    if (!names_mod && !(names_mod = module_new())) {
        snprintf(err, errlen, "nDPI: cannot make a detection module (out of memory)");
        return -1;
    }
    return 0;
}

size_t app_pair_name(uint16_t master, uint16_t app, char *buf, size_t len)
{
    ndpi_protocol p = {.master_protocol = master, .app_protocol = app};
    ndpi_protocol2name(names_mod, p, buf, (u_int)len);
    return strlen(buf);
}

size_t app_name(const struct app_result *r, char *buf, size_t len)
{
    return app_pair_name(r->master, r->app, buf, len);
}

int app_lookup(const char *name, uint16_t *master, uint16_t *app)
{
    char buf[APP_NAME_MAX];
    if (!names_mod || snprintf(buf, sizeof buf, "%s", name) >= (int)sizeof buf)
        return -1;
    int id = ndpi_get_protocol_id(names_mod, buf);
    if (id >= 0) {
        *master = 0;
        *app = (uint16_t)id;
        return 0;
    }
    /* "TLS.YouTube": master and app; a dot may also be part of a name (Z39.50) */
    for (char *dot = strchr(buf, '.'); dot; dot = strchr(dot + 1, '.')) {
        *dot = 0;
        int m = ndpi_get_protocol_id(names_mod, buf), s = ndpi_get_protocol_id(names_mod, dot + 1);
        *dot = '.';
        if (m > 0 && s > 0) {
            *master = (uint16_t)m;
            *app = (uint16_t)s;
            return 0;
        }
    }
    return -1;
}

int app_json(struct outbuf *b, const struct app_classifier *a, uint32_t slot)
{
    const struct app_result *r = &a->result[slot];
    if (r->state != APP_DONE)
        return json_lit(b, r->state == APP_POOL_FULL ? ",\"app\":null,\"app_state\":\"pool_full\""
                                                     : ",\"app\":null");
    char name[APP_NAME_MAX];
    size_t n = app_name(r, name, sizeof name);
    const char *cat = ndpi_category_get_name(a->mod, (ndpi_protocol_category_t)r->category);
    const char *conf = ndpi_confidence_get_name((ndpi_confidence_t)r->confidence);
    int rc = json_lit(b, ",\"app\":") | json_str(b, (const uint8_t *)name, n);
    if (cat)
        rc |= json_lit(b, ",\"category\":") | json_str(b, (const uint8_t *)cat, strlen(cat));
    if (conf)
        rc |= json_lit(b, ",\"confidence\":") | json_str(b, (const uint8_t *)conf, strlen(conf));
    if (r->ref) {
        const char *host = a->hosts.text[r->ref - 1];
        rc |= json_lit(b, ",\"app_host\":") | json_str(b, (const uint8_t *)host, strlen(host));
    }
    return rc;
}

const struct app_counters *app_counters(const struct app_classifier *a) { return &a->c; }
