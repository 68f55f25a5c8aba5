/* flowtag.h - a worker's side of the feedback channel: tags, watch and
 * ignore marks on its flows, standing match rules, and an index from flow
 * id to flow. Only the owning worker touches it; commands reach it through
 * its queue (feedback.h) and are applied between batches of packets, never
 * per packet. Limits (counted when reached): FLOW_MAX_TAGS tags per flow,
 * FT_MAX_NAMES distinct tag names per worker for the run, FT_MAX_RULES
 * standing match rules. */
#ifndef DATI_FLOWTAG_H
#define DATI_FLOWTAG_H

#include <stddef.h>
#include <stdint.h>

#include "feedback-cmd.h"
#include "flow.h"

#define FT_MAX_NAMES 255
#define FT_MAX_RULES 64

struct ft_counters {
    uint64_t applied;          /* commands applied to a flow or rule of this worker */
    uint64_t refused;          /* limits: tags_full + names_full + rules_full */
    uint64_t tags_full;        /* the flow already had FLOW_MAX_TAGS tags */
    uint64_t names_full;       /* FT_MAX_NAMES distinct tags already in this worker */
    uint64_t rules_full;       /* FT_MAX_RULES standing rules already */
    uint64_t rule_tagged;      /* flows tagged by a match rule */
    uint64_t rules_expired;
    uint64_t watched_records;  /* field records written only because the flow is watched */
    uint64_t ignored_records;  /* field records not written because the flow is ignored */
};

struct ft_rule {
    struct fb_match m;
    uint8_t tag;               /* name index + 1 */
    uint64_t ttl;              /* ns; 0: for the whole run */
    uint64_t until;            /* clock, ns, when it ends; 0: not known yet (no packet seen) */
};

struct flowtag {
    struct flow_table *flows;
    uint32_t *index;           /* open addressing by id: flow entry number (1-based), 0 empty */
    uint32_t index_mask;
    unsigned nnames;
    char name[FT_MAX_NAMES][FB_TAG_MAX + 1];
    uint8_t name_len[FT_MAX_NAMES];
    int nrules;
    struct ft_rule rule[FT_MAX_RULES];
    uint64_t clock;            /* the worker's clock, ns: latest packet (live: or wall) time */
    int track_state;           /* FLOW_STATE_INTERVAL: changed flows are noted (below) */
    int nchanged;              /* flows changed by commands since the worker looked */
    uint64_t changed[64];      /* their ids; more: marked FLOW_STATE_DIRTY, and dirty set */
    int dirty;                 /* some flow is marked FLOW_STATE_DIRTY */
    struct ft_counters c;
};

/* The tags of a flow as text: "a,b" (Redis values) and ["a","b"] (JSON). */
#define FT_TEXT_MAX (FLOW_MAX_TAGS * (FB_TAG_MAX + 3) + 3)
struct tagtext {
    size_t csvlen, jsonlen;
    char csv[FT_TEXT_MAX], json[FT_TEXT_MAX];
};

/* Returns 0, or -1 when out of memory. */
int flowtag_init(struct flowtag *t, struct flow_table *flows);
void flowtag_fini(struct flowtag *t);

/* A flow was created / is ending: indexed, rules applied / unindexed. */
void flowtag_created(struct flowtag *t, struct flow *f);
void flowtag_ended(struct flowtag *t, const struct flow *f);

struct flow *flowtag_find(struct flowtag *t, uint64_t id);

/* The worker's clock moved to clock (live: wall time while idle; 0: no
 * change). Rules set before any packet start their TTL at the first. */
void flowtag_advance(struct flowtag *t, uint64_t clock);

enum ft_result { FT_NOT_HERE = 0, FT_APPLIED = 1, FT_REFUSED = -1 };

/* Applies a command (not FB_STATS). *why says why it was refused. */
enum ft_result flowtag_apply(struct flowtag *t, const struct fb_cmd *c, const char **why);

/* Fills out with f's tags; returns 0 when it has none. */
int flowtag_text(const struct flowtag *t, const struct flow *f, struct tagtext *out);

static inline int flow_tagged(const struct flow *f) { return f->tag[0] != 0; }

#endif
