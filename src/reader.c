/* reader.c - reading a capture file: this thread reads the input, keeps the
 * clock, decodes, counts, and dispatches each packet to the worker that
 * owns its flow (symmetric hash, so both directions meet). Every packet's
 * clock stamp is the reader's clock, which is why flow expiry gives the
 * same records for any number of workers. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "feedback.h"
#include "log.h"
#include "run.h"

#define CHECK_EVERY 4096          /* packets between looks at the time and signals */

/* One worker, inline: the decoded packets waiting in r->batch. */
static void flush_batch(struct run *r)
{
    if (r->nbatch)
        worker_process_batch(&r->workers[0], r->batch, 0, r->nbatch, WORKER_BATCH - 1);
    r->nbatch = 0;
    r->batch_slots = 0;
}

static void tick(struct run *r)
{
    flush_batch(r);
    if (run_reload_requested) {
        run_reload_requested = 0;
        log_warn("SIGHUP: reloading applies to live capture; reading a file, it is ignored");
    }
    if (r->nworkers == 1)
        worker_drain(&r->workers[0]);
    run_tick(r);
}

/* REASSEMBLY: p is a fragment. Returns p when it is to be processed as it
 * is (not a fragment after all), the datagram it completed (decoded, in
 * the next of the rebuilt-frame buffers, which a worker may still be
 * reading: wait for it), or NULL when there is nothing to process. */
static struct packet *defragment(struct run *r, struct packet *p, int linktype,
                                 struct packet *out)
{
    unsigned k = r->nworkers > 1 ? r->defrag_turn % DEFRAG_SLOTS : 0;
    int w = r->defrag_worker[k];
    while (w >= 0 && !pktq_consumed(&r->queues[w], r->defrag_fence[k])) {
        pktq_publish(&r->queues[w]);
        sched_yield();
    }
    r->defrag_worker[k] = -1;
    struct packet *q = defrag_packet(r->defrag, p, linktype, r->defrag_buf[k], out);
    if (q == out)
        r->defrag_turn++;
    return q;
}

/* Reads everything; returns 1 at the clean end, 0 when stopped, -1 on damage. */
static int read_loop(struct run *r, uint64_t *clock_out)
{
    struct packet one, whole;
    int linktype, last_linktype = -1;
    uint16_t slot = 0;
    uint64_t clock = 0, frame = 0;
    int rc, inline_batch = r->nworkers == 1;
    memset(&one, 0, sizeof one);
    memset(r->batch, 0, sizeof r->batch);
    for (;;) {
        /* inline, the packet is read straight into the batch */
        struct packet *pkt = inline_batch ? &r->batch[r->nbatch] : &one;
        /* between packets, so that a stop never leaves one half-counted */
        if (frame % CHECK_EVERY == 0 && frame) {
            if (r->defrag)   /* also on quiet datagrams, not only when fragments come */
                defrag_expire(r->defrag, clock);
            tick(r);
            if (run_stopping() || r->sink.error) {
                rc = 0;
                break;
            }
        }
        if ((rc = capture_next(&r->cap, pkt, &linktype)) <= 0)
            break;
        if (inline_batch && pkt != &r->batch[r->nbatch]) {   /* a wait for input flushed it */
            r->batch[r->nbatch] = *pkt;
            pkt = &r->batch[r->nbatch];
        }
        pkt->frame = ++frame;
        if (pkt->ts > clock)
            clock = pkt->ts;
        pkt->clock = clock;
        COUNTER_INC(r->rc.packets);
        COUNTER_ADD(r->rc.bytes, pkt->wirelen);
        if (linktype != last_linktype && decode_linktype_supported(linktype)) {
            int s = classify_link_slot(&r->pl->classifier, linktype);
            if (s >= 0) {
                last_linktype = linktype;
                slot = (uint16_t)s;
            }
        }
        enum decode_result res = linktype == last_linktype ? decode_packet(pkt, linktype)
                                                           : DECODE_ERR_LINKTYPE;
        pkt->link_slot = slot;
        struct packet *p = pkt;
        if (r->defrag && (pkt->flags & PKT_FRAGMENT)) {
            /* a piece: its transport header is judged once the datagram is whole */
            COUNTER_INC(r->rc.decode[DECODE_FRAGMENT]);
            if (inline_batch) {   /* the rebuilt frame's buffer is reused: no batch */
                flush_batch(r);
                if ((p = defragment(r, pkt, linktype, &whole)))
                    worker_process(&r->workers[0], p);
                continue;
            }
            if (!(p = defragment(r, pkt, linktype, &whole)))
                continue;
        } else {
            COUNTER_INC(r->rc.decode[res]);
            if (decode_is_error(res))
                continue;
        }
        if (inline_batch) {
            r->batch_slots |= 1u << r->cap.slot;
            /* a batch of huge packets must not hold a quarter of the read buffers */
            if (++r->nbatch == WORKER_BATCH ||
                __builtin_popcount(r->batch_slots) > READAHEAD_SLOTS / 4)
                flush_batch(r);
            continue;
        }
        /* the high bits pick the worker: the flow table uses the low ones */
        int w = (p->flags & PKT_HAS_KEY)
                    ? (int)(((uint64_t)p->hash * (uint32_t)r->nworkers) >> 32) : 0;
        *pktq_reserve(&r->queues[w]) = *p;
        pktq_commit(&r->queues[w]);
        r->fence[r->cap.slot][w] = r->queues[w].head_local;
        if (p == &whole) {
            unsigned k = (r->defrag_turn - 1) % DEFRAG_SLOTS;
            r->defrag_worker[k] = w;
            r->defrag_fence[k] = r->queues[w].head_local;
        }
    }
    flush_batch(r);   /* what was read before the end, a stop or damage */
    *clock_out = clock;
    if (rc < 0)
        return -1;
    return rc == 0 && !run_stopping() && !r->sink.error ? 1 : 0;
}

/* Capture callbacks: an input buffer is free once every worker's queue tail has
 * passed the last packet from it; before the capture waits for input, hand
 * the workers everything queued so far. */
static int buffer_free(void *ctx, unsigned slot)
{
    struct run *r = ctx;
    if (r->nworkers == 1)
        return !(r->batch_slots & (1u << slot));
    for (int w = 0; w < r->nworkers; w++)
        if (!pktq_consumed(&r->queues[w], r->fence[slot][w]))
            return 0;
    /* a fence left behind would compare wrongly after 2^31 more packets */
    for (int w = 0; w < r->nworkers; w++)
        r->fence[slot][w] = r->queues[w].head_local;
    return 1;
}

/* The capture waits for input: hand the workers what is queued, write out
 * records that have waited long enough, keep the statistics on time, and
 * tell it to give up when dati is being stopped. */
static int on_input_wait(void *ctx)
{
    struct run *r = ctx;
    if (r->nworkers > 1)
        for (int w = 0; w < r->nworkers; w++)
            pktq_publish(&r->queues[w]);
    tick(r);
    return run_stopping() || __atomic_load_n(&r->sink.error, __ATOMIC_RELAXED);
}

static int start_workers(struct run *r)
{
    r->queues = aligned_alloc(64, sizeof *r->queues * (size_t)r->nworkers);
    if (!r->queues)
        return -1;
    for (int i = 0; i < r->nworkers; i++) {
        pktq_init(&r->queues[i], r->spins);
        r->workers[i].q = &r->queues[i];
        if (worker_start(&r->workers[i]) < 0) {
            log_error("cannot start worker thread %d", i);
            for (int j = 0; j < i; j++) {
                pktq_close(&r->queues[j]);
                worker_stop(&r->workers[j]);
            }
            return -1;
        }
    }
    return 0;
}

int reader_run(struct run *r)
{
    const struct run_options *opt = r->opt;
    if (run_start_feedback(r) < 0 || run_start_http(r) < 0 || (r->nworkers > 1 && start_workers(r) < 0))
        return 2;
    uint64_t clock = 0;
    int done = -1;
    struct capture_options copt = {
        .idle = on_input_wait, .ctx = r, .read_thread = r->read_thread, .spins = r->spins};
    copt.slot_free = buffer_free;
    /* opened by run_main, which said so if it could not be; what is in it
     * (not a capture, a cut header) is damage, reported with the statistics */
    int fd = r->input_fd;
    r->input_fd = -1;
    if (capture_open_input(&r->cap, fd, &copt) == 0)
        done = read_loop(r, &clock);
    if (r->defrag)   /* what is still incomplete at the end is given up */
        defrag_expire(r->defrag, UINT64_MAX);
    enum flow_end why = done == 0 && (run_stopping() || r->sink.error) ? FLOW_END_SHUTDOWN
                                                                           : FLOW_END_EOF;
    if (r->nworkers > 1) {
        for (int i = 0; i < r->nworkers; i++)
            pktq_close(&r->queues[i]);
        for (int i = 0; i < r->nworkers; i++)
            worker_stop(&r->workers[i]);
    }
    for (int i = 0; i < r->nworkers; i++)
        worker_finish(&r->workers[i], clock, why);

    const char *input_error = done < 0 ? r->cap.errbuf : NULL;
    feedback_stop(r->fb);   /* before the final report: it counts what was left */
    run_report(r, 1, input_error);
    int status = 0;
    if (done < 0) {
        log_error("%s: %s%s", opt->input, r->cap.errbuf,
                  r->rc.packets ? " (the packets before it were processed)" : "");
        status = 1;
    }
    if (r->sink.error) {
        log_error("writing %s: %s", opt->output, strerror(r->sink.error));
        status = 1;
    }
    return status;
}
