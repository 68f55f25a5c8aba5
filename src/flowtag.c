/* flowtag.c - tags, marks, rules and the flow id index of one worker. */
#include "flowtag.h"

#include <stdlib.h>
#include <string.h>

#include "counter.h"

#define NO_TAG 0

int flowtag_init(struct flowtag *t, struct flow_table *flows)
{
    memset(t, 0, sizeof *t);
    t->flows = flows;
    uint32_t size = 16;
    while (size < 2 * (uint64_t)flows->max_flows)
        size *= 2;
    t->index = calloc(size, sizeof *t->index);
    t->index_mask = size - 1;
    return t->index ? 0 : -1;
}

void flowtag_fini(struct flowtag *t)
{
    free(t->index);
    t->index = NULL;
}

static uint32_t home(const struct flowtag *t, uint64_t id)
{
    return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & t->index_mask;
}

static struct flow *entry(const struct flowtag *t, uint32_t n) { return &t->flows->flows[n - 1]; }

struct flow *flowtag_find(struct flowtag *t, uint64_t id)
{
    for (uint32_t s = home(t, id); t->index[s]; s = (s + 1) & t->index_mask)
        if (entry(t, t->index[s])->id == id)
            return entry(t, t->index[s]);
    return NULL;
}

static int rule_matches(const struct fb_match *m, const struct flow *f)
{
    const struct flow_key *k = &f->key;
    if ((m->has & FB_M_PROTO) && k->proto != m->proto)
        return 0;
    if ((m->has & (FB_M_SRC | FB_M_DST)) && k->family != m->family)
        return 0;
    size_t alen = k->family == 4 ? 4 : 16;
    const uint8_t *client = f->client_is_lo ? k->lo_addr : k->hi_addr;
    const uint8_t *server = f->client_is_lo ? k->hi_addr : k->lo_addr;
    uint16_t cport = f->client_is_lo ? k->lo_port : k->hi_port;
    uint16_t sport = f->client_is_lo ? k->hi_port : k->lo_port;
    return !((m->has & FB_M_SRC) && memcmp(client, m->src, alen)) &&
           !((m->has & FB_M_DST) && memcmp(server, m->dst, alen)) &&
           !((m->has & FB_M_SPORT) && cport != m->sport) &&
           !((m->has & FB_M_DPORT) && sport != m->dport);
}

/* Adds tag (name index + 1) to f: 1 done (or already there), 0 no room. */
static int add_tag(struct flowtag *t, struct flow *f, uint8_t tag)
{
    for (int i = 0; i < FLOW_MAX_TAGS; i++) {
        if (f->tag[i] == tag)
            return 1;
        if (f->tag[i] == NO_TAG) {
            f->tag[i] = tag;
            return 1;
        }
    }
    COUNTER_INC(t->c.tags_full);
    COUNTER_INC(t->c.refused);
    return 0;
}

static void remove_tag(struct flow *f, uint8_t tag)
{
    int j = 0;
    for (int i = 0; i < FLOW_MAX_TAGS; i++)
        if (f->tag[i] != tag)
            f->tag[j++] = f->tag[i];
    while (j < FLOW_MAX_TAGS)
        f->tag[j++] = NO_TAG;
}

/* TTLs count from when the rule came, on the worker's clock; a rule that
 * came before the clock was known (no packet yet) counts from the first. */
static void start_ttls(struct flowtag *t)
{
    for (int i = 0; t->clock && i < t->nrules; i++)
        if (t->rule[i].ttl && !t->rule[i].until)
            t->rule[i].until = t->clock + t->rule[i].ttl;
}

void flowtag_advance(struct flowtag *t, uint64_t clock)
{
    if (clock > t->clock)
        t->clock = clock;
    start_ttls(t);
}

void flowtag_created(struct flowtag *t, struct flow *f)
{
    uint32_t n = (uint32_t)(f - t->flows->flows) + 1;
    uint32_t s = home(t, f->id);
    while (t->index[s])
        s = (s + 1) & t->index_mask;
    t->index[s] = n;
    if (t->nrules)
        start_ttls(t);
    for (int i = 0; i < t->nrules; i++) {
        struct ft_rule *r = &t->rule[i];
        if (r->until && t->clock > r->until) {   /* expired: the last takes its place */
            t->rule[i--] = t->rule[--t->nrules];
            COUNTER_INC(t->c.rules_expired);
            continue;
        }
        if (rule_matches(&r->m, f) && add_tag(t, f, r->tag))
            COUNTER_INC(t->c.rule_tagged);
    }
}

void flowtag_ended(struct flowtag *t, const struct flow *f)
{
    uint32_t s = home(t, f->id);
    while (t->index[s] && entry(t, t->index[s]) != f)
        s = (s + 1) & t->index_mask;
    if (!t->index[s])
        return;
    /* backward-shift deletion: no tombstones, lookups stay short */
    t->index[s] = 0;
    for (uint32_t j = (s + 1) & t->index_mask; t->index[j]; j = (j + 1) & t->index_mask) {
        uint32_t k = home(t, entry(t, t->index[j])->id);
        if (((j - k) & t->index_mask) >= ((j - s) & t->index_mask)) {
            t->index[s] = t->index[j];
            t->index[j] = 0;
            s = j;
        }
    }
}

/* The index + 1 of a tag name; NO_TAG when it is not known. */
static uint8_t lookup_name(const struct flowtag *t, const char *name)
{
    size_t len = strlen(name);
    for (unsigned i = 0; i < t->nnames; i++)
        if (t->name_len[i] == len && memcmp(t->name[i], name, len) == 0)
            return (uint8_t)(i + 1);
    return NO_TAG;
}

/* The index + 1 of a tag name, added when new; NO_TAG when the table is full.
 * Only for a tag actually given (to a flow of this worker, or a rule): names
 * sent for other workers' flows, ended flows or untag never fill the table. */
static uint8_t intern(struct flowtag *t, const char *name)
{
    uint8_t known = lookup_name(t, name);
    if (known)
        return known;
    size_t len = strlen(name);
    if (t->nnames == FT_MAX_NAMES) {
        COUNTER_INC(t->c.names_full);
        COUNTER_INC(t->c.refused);
        return NO_TAG;
    }
    memcpy(t->name[t->nnames], name, len + 1);
    t->name_len[t->nnames] = (uint8_t)len;
    return (uint8_t)++t->nnames;
}

/* FLOW_STATE_INTERVAL: f's tags or marks changed, its dati:flow:<id> is
 * written again at once (worker_drain): listed by id, or when the list is
 * full (a rule changes many flows), marked for a walk. */
static void note_change(struct flowtag *t, struct flow *f)
{
    if (!t->track_state)
        return;
    if (t->nchanged < (int)(sizeof t->changed / sizeof t->changed[0])) {
        t->changed[t->nchanged++] = f->id;
    } else {
        f->marks |= FLOW_STATE_DIRTY;
        t->dirty = 1;
    }
}

/* Adds (or removes) tag on every active flow that m matches. */
static void each_flow(struct flowtag *t, const struct fb_match *m, uint8_t tag, int add)
{
    struct flow_table *ft = t->flows;
    for (uint32_t i = ft->lru_head; i; i = ft->flows[i - 1].lru_next) {
        struct flow *f = &ft->flows[i - 1];
        if (!rule_matches(m, f))
            continue;
        note_change(t, f);
        if (!add)
            remove_tag(f, tag);
        else if (add_tag(t, f, tag))
            COUNTER_INC(t->c.rule_tagged);
    }
}

static int same_match(const struct fb_match *a, const struct fb_match *b)
{
    return a->has == b->has && a->family == b->family && a->proto == b->proto &&
           a->sport == b->sport && a->dport == b->dport && !memcmp(a->src, b->src, 16) &&
           !memcmp(a->dst, b->dst, 16);
}

static void set_ttl(const struct flowtag *t, struct ft_rule *r, uint32_t ttl_s)
{
    r->ttl = (uint64_t)ttl_s * 1000000000u;
    r->until = r->ttl && t->clock ? t->clock + r->ttl : 0;
}

static enum ft_result apply_match(struct flowtag *t, const struct fb_cmd *c, uint8_t tag,
                                  const char **why)
{
    int found = -1;
    for (int i = 0; i < t->nrules; i++)
        if (t->rule[i].tag == tag && same_match(&t->rule[i].m, &c->match))
            found = i;
    if (c->op == FB_UNTAG) {
        if (tag == NO_TAG) {   /* a name never given: nothing to remove */
            COUNTER_INC(t->c.applied);
            return FT_APPLIED;
        }
        if (found >= 0)
            t->rule[found] = t->rule[--t->nrules];
        each_flow(t, &c->match, tag, 0);
        COUNTER_INC(t->c.applied);
        return FT_APPLIED;
    }
    if (found >= 0) {   /* the same rule again: a new TTL only; no walk over the flows */
        set_ttl(t, &t->rule[found], c->ttl);
        COUNTER_INC(t->c.applied);
        return FT_APPLIED;
    }
    if (t->nrules == FT_MAX_RULES) {
        COUNTER_INC(t->c.rules_full);
        COUNTER_INC(t->c.refused);
        *why = "too many standing match rules";
        return FT_REFUSED;
    }
    struct ft_rule *r = &t->rule[t->nrules++];
    r->m = c->match;
    r->tag = tag;
    set_ttl(t, r, c->ttl);
    each_flow(t, &c->match, tag, 1);
    COUNTER_INC(t->c.applied);
    return FT_APPLIED;
}

enum ft_result flowtag_apply(struct flowtag *t, const struct fb_cmd *c, const char **why)
{
    struct flow *f = NULL;
    if (!c->by_match && !(f = flowtag_find(t, c->flow)))
        return FT_NOT_HERE;   /* before the name: others' flows cost this worker nothing */
    uint8_t tag = NO_TAG;
    if (c->op == FB_UNTAG)
        tag = lookup_name(t, c->tag);
    else if (c->op == FB_TAG && !(tag = intern(t, c->tag))) {
        *why = "too many distinct tags";
        return FT_REFUSED;
    }
    if (c->by_match)
        return apply_match(t, c, tag, why);
    switch (c->op) {
    case FB_TAG:
        if (!add_tag(t, f, tag)) {
            *why = "the flow has the most tags it can carry";
            return FT_REFUSED;
        }
        break;
    case FB_UNTAG:
        if (tag != NO_TAG)
            remove_tag(f, tag);
        break;
    case FB_WATCH:
    case FB_IGNORE: {
        uint8_t bit = c->op == FB_WATCH ? FLOW_WATCH : FLOW_IGNORE;
        f->marks = (uint8_t)(c->on ? f->marks | bit : f->marks & ~bit);
        break;
    }
    case FB_STATS: break;
    }
    note_change(t, f);
    COUNTER_INC(t->c.applied);
    return FT_APPLIED;
}

int flowtag_text(const struct flowtag *t, const struct flow *f, struct tagtext *out)
{
    if (!flow_tagged(f))
        return 0;   /* most flows: nothing to write out */
    char *c = out->csv, *j = out->json;
    *j++ = '[';
    for (int i = 0; i < FLOW_MAX_TAGS && f->tag[i]; i++) {
        unsigned n = f->tag[i] - 1u;
        size_t len = t->name_len[n];
        if (i) {
            *c++ = ',';
            *j++ = ',';
        }
        memcpy(c, t->name[n], len);   /* tag characters need no JSON escaping */
        c += len;
        *j++ = '"';
        memcpy(j, t->name[n], len);
        j += len;
        *j++ = '"';
    }
    *j++ = ']';
    out->csvlen = (size_t)(c - out->csv);
    out->jsonlen = (size_t)(j - out->json);
    return 1;
}
