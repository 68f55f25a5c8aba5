/* output.c - choosing the outputs the configuration asks for, and the tee
 * that gives flow records to two of them (JSON lines or Redis, and IPFIX). */
#include "output.h"

#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "output-ipfix.h"
#include "output-json.h"
#include "output-redis.h"

/* The records' output, and a second that takes flow records too. Its ops
 * table is its own: the optional operations are the records' output's. */
struct tee {
    struct output base;
    struct output_ops ops;
    struct output *records, *flows;
};

static int tee_field(struct output *o, struct extract_ctx *x, const struct record_meta *m)
{
    struct output *r = ((struct tee *)o)->records;
    return r->ops->field(r, x, m);
}

/* The records' output decides what the worker counts; the other counts its
 * own (IPFIX: sent, lost, dropped). */
static int tee_flow(struct output *o, const struct flow *f, enum flow_end why,
                    const struct record_meta *m)
{
    struct tee *t = (struct tee *)o;
    t->flows->ops->flow(t->flows, f, why, m);
    return t->records->ops->flow(t->records, f, why, m);
}

static void tee_flow_state(struct output *o, const struct flow *f, int ended, enum flow_end why,
                           const struct record_meta *m)
{
    struct output *r = ((struct tee *)o)->records;
    r->ops->flow_state(r, f, ended, why, m);
}

static void tee_flow_event(struct output *o, const struct flow *f, const struct record_meta *m)
{
    struct output *r = ((struct tee *)o)->records;
    r->ops->flow_event(r, f, m);
}

static void tee_set_live(struct output *o)
{
    struct output *r = ((struct tee *)o)->records;
    r->ops->set_live(r);
}

static void tee_drain(struct output *o)
{
    struct tee *t = (struct tee *)o;
    t->records->ops->drain(t->records);
    t->flows->ops->drain(t->flows);
}

static void tee_flush(struct output *o)
{
    struct tee *t = (struct tee *)o;
    t->records->ops->flush(t->records);
    t->flows->ops->flush(t->flows);
}

static void tee_sum(const struct output *o, struct stats_totals *st)
{
    const struct tee *t = (const struct tee *)o;
    t->records->ops->sum(t->records, st);
    t->flows->ops->sum(t->flows, st);
}

static void tee_close(struct output *o)
{
    struct tee *t = (struct tee *)o;
    output_close(t->records);
    output_close(t->flows);
    free(t);
}

static struct output *tee_open(struct output *records, struct output *flows)
{
    struct tee *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    const struct output_ops *r = records->ops;
    t->ops = (struct output_ops){
        .field = r->field ? tee_field : NULL,
        .flow = tee_flow,
        .flow_state = r->flow_state ? tee_flow_state : NULL,
        .flow_event = r->flow_event ? tee_flow_event : NULL,
        .set_live = r->set_live ? tee_set_live : NULL,
        .drain = tee_drain, .flush = tee_flush, .sum = tee_sum, .close = tee_close,
    };
    t->base.ops = &t->ops;
    t->records = records;
    t->flows = flows;
    return &t->base;
}

struct output *output_open(const struct config *conf, const struct output_env *env, char *err,
                           size_t errlen)
{
    struct output *records = NULL, *flows = NULL, *o = NULL;
    if (conf->redis_line) {
        if (!(records = output_redis_open(conf, err, errlen)))
            return NULL;
    } else if (env->sink && !(records = output_json_open(env->sink))) {
        goto oom;
    }
    if (env->ipfix && !(flows = output_ipfix_open(conf, env->ipfix, env->max_flows)))
        goto oom;
    o = records && flows ? tee_open(records, flows) : records ? records : flows;
    if (o)
        return o;
oom:
    snprintf(err, errlen, "out of memory");
    output_close(records);
    output_close(flows);
    return NULL;
}
