/* netpdl-run.c - runs a compiled description over one L4 payload: a loop
 * over flat steps (jumps only go forward, so it always ends), values kept
 * as offsets into the payload. No allocation per packet: the regex match
 * data, match context and JIT stack are made once per worker.
 * Per-worker state only. */
#define _GNU_SOURCE   /* memmem */
#include <string.h>

#include "counter.h"
#include "netpdl-int.h"

void netpdl_run_begin(struct netpdl_run *r, const struct netpdl_set *set, const uint8_t *payload,
                      uint32_t len)
{
    r->set = set;
    r->payload = payload;
    r->len = len;
    r->done = 0;
}

#define RUN_MATCH_LIMIT 1000000      /* backtracking bound: counted, not timed */
#define RUN_DEPTH_LIMIT 10000
#define RUN_JIT_STACK_MIN (32u << 10)
#define RUN_JIT_STACK_MAX (1u << 20)  /* PCRE2's default, 32 KiB, is too small for
                                       * a pattern over thousands of header lines */

void netpdl_run_fini(struct netpdl_run *r)
{
    pcre2_match_data_free(r->match_data);
    pcre2_match_context_free(r->match_ctx);
    pcre2_jit_stack_free(r->jit_stack);
    r->match_data = r->match_ctx = r->jit_stack = NULL;
}

/* The worker's match data, limits and JIT stack: made once, on its first
 * regex, so that no packet allocates. */
static int run_regex_init(struct netpdl_run *r)
{
    if (r->match_ctx)
        return 0;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *js = pcre2_jit_stack_create(RUN_JIT_STACK_MIN, RUN_JIT_STACK_MAX, NULL);
    if (!md || !mc || !js) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        pcre2_jit_stack_free(js);
        return -1;
    }
    pcre2_set_match_limit(mc, RUN_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, RUN_DEPTH_LIMIT);
    pcre2_jit_stack_assign(mc, NULL, js);
    r->match_data = md;
    r->match_ctx = mc;
    r->jit_stack = js;
    return 0;
}

/* Searches payload[from, to) for regex re. Returns 1 with the match's
 * payload offsets, 0 when there is none, -1 when the search failed (match
 * or depth limit, JIT stack, out of memory): counted, and the caller stops
 * decoding rather than take "no match" for an answer it does not have. */
static int re_find(struct netpdl_run *r, int re, uint32_t from, uint32_t to, uint32_t *mstart,
                   uint32_t *mend)
{
    const struct netpdl_set *s = r->set;
    if (run_regex_init(r) < 0) {
        COUNTER_INC(r->regex_errors);
        return -1;
    }
    const struct pdl_regex *x = &s->re[re];
    PCRE2_SPTR subj = r->payload + from;
    int rc = x->jit ? pcre2_jit_match(x->code, subj, to - from, 0, 0, r->match_data, r->match_ctx)
                    : pcre2_match(x->code, subj, to - from, 0, 0, r->match_data, r->match_ctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        COUNTER_INC(r->regex_errors);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->match_data);
    if (ov[1] < ov[0] || ov[1] > to - from)
        return 0;   /* \K in a look-ahead can do that */
    *mstart = from + (uint32_t)ov[0];
    *mend = from + (uint32_t)ov[1];
    return 1;
}

/* Finds an end (token or regex) in payload[from, len): as re_find(). */
static int find_end(struct netpdl_run *r, const struct pdl_match *m, uint32_t from,
                    uint32_t *mstart, uint32_t *mend)
{
    if (m->re >= 0)
        return re_find(r, m->re, from, r->len, mstart, mend);
    const struct pdl_token *t = &r->set->tok[m->tok];
    const uint8_t *p = memmem(r->payload + from, r->len - from, t->bytes, t->len);
    if (!p)
        return 0;
    *mstart = (uint32_t)(p - r->payload);
    *mend = *mstart + t->len;
    return 1;
}

static void set_val(struct netpdl_run *r, uint16_t slot, uint32_t off, uint32_t len)
{
    r->present[slot] = 1;
    r->val[slot] = (struct netpdl_span){off, len};
}

/* Decodes one field at *cur. Returns 0 to go on, -1 when the field cannot
 * be decoded there (the payload ends first): decoding stops. */
static int run_field(struct netpdl_run *r, const struct pdl_step *st, uint32_t *cur)
{
    uint32_t at = *cur, len = r->len, rem = len - at;
    uint32_t a, b;
    int64_t n;
    switch ((enum pdl_ftype)st->ftype) {
    case FT_FIXED:
    case FT_BIT:
        if (st->size > rem)
            return -1;
        set_val(r, st->slot, at, st->size);
        /* bit fields share their bytes: the one ending at bit 0 moves on */
        if (st->ftype == FT_FIXED || (st->mask & 1))
            *cur = at + st->size;
        return 0;
    case FT_VARIABLE:
        if (pdl_expr_eval(r->set, st->expr, r, at, &n) < 0 || n < 0 || (uint64_t)n > rem)
            return -1;
        set_val(r, st->slot, at, (uint32_t)n);
        *cur = at + (uint32_t)n;
        return 0;
    case FT_LINE: {
        if (rem == 0)
            return -1;
        const uint8_t *lf = memchr(r->payload + at, '\n', rem);
        uint32_t end = lf ? (uint32_t)(lf - r->payload) : len;
        uint32_t vend = lf && end > at && r->payload[end - 1] == '\r' ? end - 1 : end;
        set_val(r, st->slot, at, vend - at);
        *cur = lf ? end + 1 : len;
        return 0;
    }
    case FT_TOKENENDED: {
        if (rem == 0)
            return -1;
        int found = find_end(r, &st->end, at, &a, &b);
        if (found < 0)
            return -1;   /* not "no end": the rest would be a guess */
        if (found) {
            set_val(r, st->slot, at, a - at);
            *cur = b;
        } else {
            set_val(r, st->slot, at, rem);   /* cut by the end of the payload */
            *cur = len;
        }
        return 0;
    }
    case FT_TOKENWRAPPED: {
        uint32_t body;
        if (st->begin.re >= 0) {
            if (re_find(r, st->begin.re, at, len, &a, &body) <= 0)
                return -1;
        } else {
            const struct pdl_token *t = &r->set->tok[st->begin.tok];
            if (t->len > rem || memcmp(r->payload + at, t->bytes, t->len) != 0)
                return -1;
            body = at + t->len;
        }
        int found = find_end(r, &st->end, body, &a, &b);
        if (found < 0)
            return -1;
        if (found) {
            set_val(r, st->slot, body, a - body);
            *cur = b;
        } else {
            set_val(r, st->slot, body, len - body);
            *cur = len;
        }
        return 0;
    }
    case FT_PATTERN:
        if (r->set->nwanted && !r->set->wanted[st->slot] && !r->set->field[st->slot].referenced)
            return 0;   /* nobody asked for it */
        switch (re_find(r, st->end.re, at, len, &a, &b)) {
        case 1:
            set_val(r, st->slot, a, b - a);
            return 0;
        case 0:
            return 0;   /* searches: absent is not the end, and the offset stays */
        default:
            return -1;  /* the search failed: stop, as for any field not decoded */
        }
    case FT_EATALL:
        set_val(r, st->slot, at, rem);
        *cur = len;
        return 0;
    case FT_PADDING: {
        uint32_t pad = (st->size - at % st->size) % st->size;
        if (pad > rem)
            return -1;
        set_val(r, st->slot, at, pad);
        *cur = at + pad;
        return 0;
    }
    }
    return -1;
}

static void run_proto(struct netpdl_run *r, int proto)
{
    const struct netpdl_set *s = r->set;
    const struct pdl_proto *pr = &s->proto[proto];
    memset(r->present + pr->first_slot, 0, pr->nslots);
    uint32_t cur = 0;
    uint32_t pc = pr->first_step;
    for (;;) {
        const struct pdl_step *st = &s->step[pc];
        switch ((enum pdl_step_kind)st->kind) {
        case STEP_END:
            return;
        case STEP_JUMP:
            pc = st->target;
            continue;
        case STEP_SWITCH: {
            int64_t v;
            if (pdl_expr_eval(s, st->expr, r, cur, &v) < 0)
                return;
            pc = st->target;
            for (uint32_t i = 0; i < st->ncases; i++) {   /* none: cases may be NULL */
                const struct pdl_case *c = &s->cases[st->case0 + i];
                if (v >= c->lo && v <= c->hi) {
                    pc = c->target;
                    break;
                }
            }
            continue;
        }
        case STEP_FIELD:
            if (run_field(r, st, &cur) < 0)
                return;
            pc++;
            continue;
        }
    }
}

int netpdl_field(struct netpdl_run *r, int slot, struct netpdl_span *span, uint64_t *num,
                 enum netpdl_show *show)
{
    const struct netpdl_set *s = r->set;
    if (!s || slot < 0 || slot >= s->nfields)
        return 0;
    const struct pdl_field *f = &s->field[slot];
    uint32_t bit = 1u << f->proto;
    if (!(r->done & bit)) {
        r->done |= bit;
        run_proto(r, f->proto);
    }
    if (!r->present[slot])
        return 0;
    *span = r->val[slot];
    *show = (enum netpdl_show)f->show;
    if (f->show == NETPDL_SHOW_NUMBER) {
        uint64_t w = 0;
        for (uint32_t i = 0; i < span->len && i < 8; i++)
            w = w << 8 | r->payload[span->off + i];
        *num = f->ftype == FT_BIT ? (w & f->mask) >> f->shift : w;
    }
    return 1;
}
