/* flow-features.c - FLOW_FEATURES: updating a flow's statistics per packet and
 * writing them in its flow record. Gaps are in microseconds, truncated, as
 * captures give times; a time that goes backwards (merged captures) is a
 * gap of 0. The deviation is the population's (over every packet, not a
 * sample of them). */
#include "flow-features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output-json.h"

int features_init(struct feature_table *t, uint32_t nslots, unsigned splt)
{
    memset(t, 0, sizeof *t);
    t->splt = splt;
    t->nslots = nslots;
    t->stride = (sizeof(struct flow_features) + 2 * splt * sizeof(uint32_t) + 7) & ~(size_t)7;
    t->mem = calloc(nslots, t->stride);   /* pages are touched as flows use them */
    return t->mem ? 0 : -1;
}

void features_fini(struct feature_table *t)
{
    free(t->mem);
    t->mem = NULL;
}

void features_reset(const struct feature_table *t, struct flow_features *f)
{
    memset(f, 0, t->stride);
}

static uint32_t gap_us(uint64_t ts, uint64_t before)
{
    uint64_t us = ts > before ? (ts - before) / 1000 : 0;
    return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* One more value of a series: its min, max, sum and sum of squares. */
static void accumulate(uint32_t *min, uint32_t *max, uint64_t *sum, double *sq, uint32_t v,
                       int first)
{
    if (first || v < *min)
        *min = v;
    if (v > *max)
        *max = v;
    *sum += v;
    *sq += (double)v * v;
}

void features_update(const struct feature_table *t, struct flow_features *f, int dir, uint32_t len,
                     uint64_t ts)
{
    struct feature_dir *d = &f->d[dir];
    accumulate(&d->len_min, &d->len_max, &d->len_sum, &d->len_sq, len, d->packets == 0);
    if (d->packets)
        accumulate(&d->iat_min, &d->iat_max, &d->iat_sum, &d->iat_sq, gap_us(ts, d->last_ts),
                   d->packets == 1);
    d->packets++;
    d->last_ts = ts;
    if (f->n < t->splt) {
        f->splt[f->n] = len;
        f->splt[t->splt + f->n] = f->n ? gap_us(ts, f->prev_ts) : 0;
        f->dirs |= (uint64_t)dir << f->n;
        f->n++;
    }
    f->prev_ts = ts;
}

/* v with three decimals, as printf's %.3f: whole numbers (a direction's
 * single packet, equal sizes: most flows) without printf, which costs more
 * than the rest of a flow record. */
static int fixed3(struct outbuf *b, double v)
{
    if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v)
        return json_u64(b, (uint64_t)v) | json_lit(b, ".000");
    return outbuf_printf(b, "%.3f", v);
}

/* ,"<what>_mean<unit>":M,"<what>_std<unit>":S of n values from their sum
 * and sum of squares */
static int moments(struct outbuf *b, const char *what, const char *unit, uint64_t n, uint64_t sum,
                   double sq)
{
    double mean = (double)sum / (double)n, var = sq / (double)n - mean * mean;
    return json_lit(b, ",\"") | json_lit(b, what) | json_lit(b, "_mean") | json_lit(b, unit) |
           json_lit(b, "\":") | fixed3(b, mean) | json_lit(b, ",\"") | json_lit(b, what) |
           json_lit(b, "_std") | json_lit(b, unit) | json_lit(b, "\":") |
           fixed3(b, var > 0 ? sqrt(var) : 0.0);
}

static int member_u64(struct outbuf *b, const char *name, uint64_t v)
{
    return json_lit(b, ",\"") | json_lit(b, name) | json_lit(b, "\":") | json_u64(b, v);
}

static int direction(struct outbuf *b, const char *name, const struct feature_dir *d)
{
    int rc = json_lit(b, ",\"") | json_lit(b, name) | json_lit(b, "\":{\"packets\":") |
             json_u64(b, d->packets);
    if (d->packets) {
        rc |= member_u64(b, "len_min", d->len_min) | member_u64(b, "len_max", d->len_max);
        rc |= moments(b, "len", "", d->packets, d->len_sum, d->len_sq);
    }
    if (d->packets > 1) {
        rc |= member_u64(b, "iat_min_us", d->iat_min) | member_u64(b, "iat_max_us", d->iat_max);
        rc |= moments(b, "iat", "_us", d->packets - 1, d->iat_sum, d->iat_sq);
    }
    return rc | json_lit(b, "}");
}

int features_json(struct outbuf *b, const struct feature_table *t, const struct flow_features *f)
{
    int rc = json_lit(b, ",\"features\":{\"splt\":{\"len\":[");
    for (uint32_t i = 0; i < f->n; i++)
        rc |= (i ? json_lit(b, ",") : 0) | json_u64(b, f->splt[i]);
    rc |= json_lit(b, "],\"dir\":[");
    for (uint32_t i = 0; i < f->n; i++)
        rc |= json_lit(b, i ? ((f->dirs >> i) & 1 ? ",1" : ",0") : ((f->dirs & 1) ? "1" : "0"));
    rc |= json_lit(b, "],\"iat_us\":[");
    for (uint32_t i = 0; i < f->n; i++)
        rc |= (i ? json_lit(b, ",") : 0) | json_u64(b, f->splt[t->splt + i]);
    rc |= json_lit(b, "]}");
    rc |= direction(b, "c2s", &f->d[0]) | direction(b, "s2c", &f->d[1]);
    return rc | json_lit(b, "}");
}
