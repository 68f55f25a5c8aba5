/* config.c - parsing and validating the configuration file. A table of
 * keywords, each with its scope and handler; every error is reported with
 * file:line and the offending text, and parsing goes on to find the rest. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/stat.h>

#include "app.h"
#include "classify.h"
#include "extract.h"
#include "netpdl.h"

#define IFNAME_MAX 15   /* IFNAMSIZ - 1 */

struct parser {
    struct config *c;
    const char *name;
    int line;
    FILE *errs;
    int nerrors;
    int oom;
    struct filter_conf *filter;   /* the open FILTER_NAME block, or NULL */
    int skip_block;               /* its FILTER_NAME was rejected: ignore the block */
};

static void perr(struct parser *ps, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *ps, const char *text, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ps->errs)
        fprintf(ps->errs, "%s:%d: %s: '%s'\n", ps->name, ps->line, msg, text);
    ps->nerrors++;
}

static char *dup(struct parser *ps, const char *s)
{
    char *d = strdup(s);
    if (!d)
        ps->oom = 1;
    return d;
}

/* Parses an unsigned decimal in [min, max]. */
static int parse_uint(struct parser *ps, const char *kw, const char *v, unsigned long min,
                      unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)*v) || *end || errno || n < min || n > max) {
        perr(ps, v, "%s needs a whole number from %lu to %lu", kw, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int valid_ifname(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > IFNAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] == '/' || isspace((unsigned char)v[i]) || !isprint((unsigned char)v[i]))
            return 0;
    return 1;
}

static int valid_name(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-.:", *p))
            return 0;
    return *v != 0;
}

static void kw_filter_name(struct parser *ps, char *v)
{
    struct config *c = ps->c;
    ps->filter = NULL;
    ps->skip_block = 1;   /* until the name is accepted */
    if (!valid_name(v)) {
        perr(ps, v, "a filter name uses letters, digits and _ - . : only");
        return;
    }
    for (int i = 0; i < c->nfilters; i++) {
        if (strcmp(c->filter[i].name, v) == 0) {
            perr(ps, v, "filter already defined at line %d", c->filter[i].line);
            return;
        }
    }
    if (c->nfilters == CONFIG_MAX_FILTERS) {
        perr(ps, v, "too many filters (at most %d)", CONFIG_MAX_FILTERS);
        return;
    }
    struct filter_conf *f = &c->filter[c->nfilters++];
    f->name = dup(ps, v);
    f->line = ps->line;
    f->redis_expire = 300;
    ps->filter = f;
    ps->skip_block = 0;
}

static void kw_bpf(struct parser *ps, char *v)
{
    struct filter_conf *f = ps->filter;
    char err[PCAP_ERRBUF_SIZE + 64];
    if (f->bpf_line) {
        perr(ps, v, "filter %s already has a BPF expression", f->name);
        return;
    }
    f->bpf_line = ps->line;
    if (classify_check(v, err, sizeof err) < 0) {
        perr(ps, v, "filter %s: bad BPF expression: %s", f->name, err);
        return;
    }
    f->bpf = dup(ps, v);
}

static void kw_fields(struct parser *ps, char *v)
{
    struct filter_conf *f = ps->filter;
    for (char *save, *tok = strtok_r(v, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        /* a description's names come first: it may redefine a built-in one */
        int slot = netpdl_set_lookup(f->netpdl, tok);
        int id = slot >= 0 ? FIELD_COUNT + slot : extract_field_lookup(tok);
        if (id < 0) {
            perr(ps, tok, "filter %s: unknown field", f->name);
            continue;
        }
        int dup_of = -1;
        for (int i = 0; i < f->nfields; i++)
            if (f->field_id[i] == id)
                dup_of = i;
        if (dup_of >= 0) {
            perr(ps, tok, "filter %s: field listed twice", f->name);
            continue;
        }
        if (f->nfields == CONFIG_MAX_FIELDS) {
            perr(ps, tok, "filter %s: too many fields (at most %d)", f->name, CONFIG_MAX_FIELDS);
            return;
        }
        netpdl_set_want(f->netpdl, slot);
        f->field_id[f->nfields] = id;
        f->field_key[f->nfields++] = dup(ps, tok);
        if (id < FIELD_COUNT && extract_field_def(id)->layer == LAYER_HTTP)
            f->uses_http = 1;
        if (id == FIELD_APP)
            f->uses_app = 1;
    }
}

/* Relative paths: against the config file's directory first, then the
 * working directory. */
static void kw_protocol_def(struct parser *ps, char *v)
{
    struct filter_conf *f = ps->filter;
    if (f->nfields) {
        perr(ps, v, "filter %s: PROTOCOL_DEF must come before FIELDS", f->name);
        return;
    }
    char path[4096];
    struct stat st;
    const char *slash = strrchr(ps->name, '/');
    path[0] = 0;
    if (v[0] != '/' && slash &&
        (size_t)snprintf(path, sizeof path, "%.*s/%s", (int)(slash - ps->name), ps->name, v) <
            sizeof path &&
        stat(path, &st) != 0)
        path[0] = 0;
    if (!path[0])
        snprintf(path, sizeof path, "%s", v);
    if (!f->netpdl && !(f->netpdl = netpdl_set_create())) {
        ps->oom = 1;
        return;
    }
    int n = netpdl_set_load(f->netpdl, path, path, ps->errs);
    if (n < 0)
        ps->oom = 1;
    else if (n > 0)
        perr(ps, v, "filter %s: protocol description refused (%d error%s above)", f->name, n,
             n == 1 ? "" : "s");
}

/* APP TLS.YouTube, BitTorrent: nDPI's names, checked against the library's
 * list now, kept as ids. */
static void kw_app(struct parser *ps, char *v)
{
    struct filter_conf *f = ps->filter;
    char err[128];
    if (f->app_line) {
        perr(ps, v, "filter %s already has an APP line", f->name);
        return;
    }
    f->app_line = ps->line;
    if (app_names_init(err, sizeof err) < 0) {
        perr(ps, v, "%s", err);
        return;
    }
    for (char *save, *tok = strtok_r(v, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        uint16_t master, app;
        if (app_lookup(tok, &master, &app) < 0) {
            perr(ps, tok, "filter %s: unknown application (not a protocol name of nDPI %s)",
                 f->name, app_library_version());
            continue;
        }
        if (f->napps == CONFIG_MAX_APPS) {
            perr(ps, tok, "filter %s: too many applications (at most %d)", f->name, CONFIG_MAX_APPS);
            return;
        }
        f->app[f->napps].master = master;
        f->app[f->napps++].app = app;
    }
    if (!f->napps && !ps->nerrors)
        perr(ps, v, "filter %s: APP needs at least one application name", f->name);
}

static void kw_tap_if(struct parser *ps, char *v)
{
    struct filter_conf *f = ps->filter;
    if (!valid_ifname(v)) {
        perr(ps, v, "TAP_IF needs an interface name of 1 to %d characters", IFNAME_MAX);
        return;
    }
    if (f->ntaps == CONFIG_MAX_TAPS) {
        perr(ps, v, "filter %s: too many TAP_IF (at most %d)", f->name, CONFIG_MAX_TAPS);
        return;
    }
    if (!f->tap_line)
        f->tap_line = ps->line;
    f->tap_if[f->ntaps++] = dup(ps, v);
}

static int parse_yes_no(struct parser *ps, const char *kw, const char *v, int *out)
{
    if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
        *out = v[0] == 'y';
        return 0;
    }
    perr(ps, v, "%s is yes or no", kw);
    return -1;
}

static void kw_tap_balance(struct parser *ps, char *v)
{
    if (strcmp(v, "flow") == 0)
        ps->filter->tap_round_robin = 0;
    else if (strcmp(v, "roundrobin") == 0)
        ps->filter->tap_round_robin = 1;
    else
        perr(ps, v, "TAP_BALANCE is flow (a flow stays on one device) or roundrobin");
}

static void kw_promisc(struct parser *ps, char *v) { parse_yes_no(ps, "PROMISC", v, &ps->c->promisc); }

static void kw_ring_block_size(struct parser *ps, char *v)
{
    unsigned long n;
    if (parse_uint(ps, "RING_BLOCK_SIZE", v, 4096, 1ul << 30, &n) < 0)
        return;
    if (n % 4096)
        perr(ps, v, "RING_BLOCK_SIZE must be a multiple of 4096 (the page size)");
    else {
        ps->c->ring_block_size = (unsigned)n;
        ps->c->ring_line = ps->line;
    }
}

static void kw_ring_blocks(struct parser *ps, char *v)
{
    unsigned long n;
    if (parse_uint(ps, "RING_BLOCKS", v, 2, 65536, &n) == 0) {
        ps->c->ring_blocks = (unsigned)n;
        ps->c->ring_line = ps->line;
    }
}

static void kw_redis_channel(struct parser *ps, char *v)
{
    if (strpbrk(v, " \t")) {
        perr(ps, v, "a channel name has no spaces");
        return;
    }
    free(ps->filter->redis_channel);
    ps->filter->redis_channel = dup(ps, v);
}

static void kw_redis_prefix(struct parser *ps, char *v)
{
    if (strpbrk(v, " \t") || strlen(v) > 64) {
        perr(ps, v, "REDIS_PREFIX is at most 64 characters, without spaces");
        return;
    }
    free(ps->filter->redis_prefix);
    ps->filter->redis_prefix = dup(ps, v);
}

static void kw_redis_expire(struct parser *ps, char *v)
{
    unsigned long n;
    if (parse_uint(ps, "REDIS_EXPIRE", v, 0, 100000000, &n) == 0)
        ps->filter->redis_expire = (int)n;
}

static void kw_ifname(struct parser *ps, char *v)
{
    struct config *c = ps->c;
    if (!valid_ifname(v)) {
        perr(ps, v, "IFNAME needs an interface name of 1 to %d characters", IFNAME_MAX);
        return;
    }
    if (c->nifnames == CONFIG_MAX_IFNAMES) {
        perr(ps, v, "too many IFNAME (at most %d)", CONFIG_MAX_IFNAMES);
        return;
    }
    if (!c->ifname_line)
        c->ifname_line = ps->line;
    c->ifname[c->nifnames++] = dup(ps, v);
}

static void kw_output(struct parser *ps, char *v)
{
    free(ps->c->output);
    ps->c->output = dup(ps, v);
    ps->c->output_line = ps->line;
}

/* host:port, an IPv6 address in brackets; the name is resolved at start.
 * Returns 0 or -1 (said, with the example). */
static int check_host_port(struct parser *ps, const char *kw, const char *v, const char *example)
{
    const char *colon = strrchr(v, ':');
    size_t hostlen = colon ? (size_t)(colon - v) : 0;
    unsigned long port;
    char what[64];
    if (!colon || hostlen == 0 || strpbrk(v, " \t") ||
        (v[0] == '[' && (hostlen < 3 || v[hostlen - 1] != ']')) ||
        (v[0] != '[' && memchr(v, ':', hostlen))) {
        perr(ps, v, "%s is host:port (an IPv6 address in brackets: %s)", kw, example);
        return -1;
    }
    snprintf(what, sizeof what, "%s's port", kw);
    return parse_uint(ps, what, colon + 1, 1, 65535, &port);
}

static void kw_ipfix_collector(struct parser *ps, char *v)
{
    if (check_host_port(ps, "IPFIX_COLLECTOR", v, "[::1]:4739") < 0)
        return;
    free(ps->c->ipfix_collector);
    ps->c->ipfix_collector = dup(ps, v);
}

/* HTTP_LISTEN [host:]port: a bare port listens on loopback only, so that
 * the page is never exposed by accident. */
static void kw_http_listen(struct parser *ps, char *v)
{
    char local[32];
    if (v[0] && strspn(v, "0123456789") == strlen(v)) {
        snprintf(local, sizeof local, "127.0.0.1:%.8s", v);
        v = local;
    }
    if (check_host_port(ps, "HTTP_LISTEN", v, "[::1]:8080") < 0)
        return;
    free(ps->c->http_listen);
    ps->c->http_listen = dup(ps, v);
}

static void kw_ipfix_transport(struct parser *ps, char *v)
{
    if (strcmp(v, "udp") == 0 || strcmp(v, "tcp") == 0)
        ps->c->ipfix_tcp = v[0] == 't';
    else
        perr(ps, v, "IPFIX_TRANSPORT is udp or tcp");
}

/* "N [M]": ends v after its first word; the second, or NULL. */
static char *second_word(char *v)
{
    char *w = strpbrk(v, " \t");
    if (w) {
        *w++ = 0;
        while (isspace((unsigned char)*w))
            w++;
    }
    return w;
}

/* SECONDS [MESSAGES] */
static void kw_ipfix_refresh(struct parser *ps, char *v)
{
    char *msgs = second_word(v);
    unsigned long s, m = ps->c->ipfix_refresh_msgs;
    if (parse_uint(ps, "IPFIX_TEMPLATE_REFRESH", v, 0, 86400, &s) == 0 &&
        (!msgs || parse_uint(ps, "IPFIX_TEMPLATE_REFRESH's messages", msgs, 0, 1000000000,
                             &m) == 0)) {
        ps->c->ipfix_refresh_s = (unsigned)s;
        ps->c->ipfix_refresh_msgs = (unsigned)m;
    }
}

static void set_redis_str(struct parser *ps, char **dst, char *v)
{
    free(*dst);
    *dst = dup(ps, v);
}

static void kw_redis_sock(struct parser *ps, char *v)
{
    if (strlen(v) >= 108) {   /* sizeof sun_path */
        perr(ps, v, "REDIS_SOCK path longer than a unix socket allows (107 bytes)");
        return;
    }
    set_redis_str(ps, &ps->c->redis_sock, v);
}

static void kw_redis_host(struct parser *ps, char *v) { set_redis_str(ps, &ps->c->redis_host, v); }

/* REDIS_WAIT_REPLICAS N [TIMEOUT_MS] */
static void kw_redis_wait(struct parser *ps, char *v)
{
    char *ms = second_word(v);
    unsigned long n, t = ps->c->redis_wait_ms;
    if (parse_uint(ps, "REDIS_WAIT_REPLICAS", v, 0, 16, &n) == 0 &&
        (!ms || parse_uint(ps, "REDIS_WAIT_REPLICAS's timeout", ms, 1, 60000, &t) == 0)) {
        ps->c->redis_wait_replicas = (unsigned)n;
        ps->c->redis_wait_ms = (unsigned)t;
        ps->c->redis_wait_line = ps->line;
    }
}

/* REDIS_CLUSTER host:port [host:port ...]: the seed nodes */
static void kw_redis_cluster(struct parser *ps, char *v)
{
    struct config *c = ps->c;
    for (int i = 0; i < c->redis_ncluster; i++)
        free(c->redis_cluster[i]);
    c->redis_ncluster = 0;
    for (char *save, *tok = strtok_r(v, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *colon = strrchr(tok, ':');
        unsigned long port;
        int v6 = tok[0] == '[' && colon && colon > tok + 2 && colon[-1] == ']';
        if (!colon || colon == tok || (!v6 && strchr(tok, ':') != colon)) {
            perr(ps, tok, "REDIS_CLUSTER lists host:port seed nodes ([v6]:port)");
            return;
        }
        if (parse_uint(ps, "REDIS_CLUSTER's port", colon + 1, 1, 65535, &port) < 0)
            return;
        if (c->redis_ncluster == (int)(sizeof c->redis_cluster / sizeof c->redis_cluster[0])) {
            perr(ps, tok, "REDIS_CLUSTER takes at most 16 seed nodes");
            return;
        }
        c->redis_cluster[c->redis_ncluster++] = dup(ps, tok);
    }
}
#define PROBE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* PROBE_NAME name: what tells several probes' records and statistics
 * apart; a key and a JSON string, so letters, digits, '.', '_', '-'. */
static void kw_probe_name(struct parser *ps, char *v)
{
    size_t n = strspn(v, PROBE_CHARS "._-");
    if (v[n] || n >= sizeof ps->c->probe_name) {
        perr(ps, v, "PROBE_NAME is 1 to 63 letters, digits, '.', '_' or '-'");
        return;
    }
    memcpy(ps->c->probe_name, v, n + 1);
}

static void kw_redis_auth(struct parser *ps, char *v) { set_redis_str(ps, &ps->c->redis_auth, v); }

/* REDIS_PUBSUB plain|sharded: PUBLISH (the seed's), or Redis 7's sharded
 * pub/sub, SPUBLISH on the channel's shards (REDIS_STREAM_SHARDS) */
static void kw_redis_pubsub(struct parser *ps, char *v)
{
    if (strcmp(v, "plain") == 0 || strcmp(v, "sharded") == 0) {
        ps->c->redis_spublish = v[0] == 's';
        ps->c->redis_pubsub_line = ps->line;
    } else {
        perr(ps, v, "REDIS_PUBSUB is plain (PUBLISH) or sharded (SPUBLISH)");
    }
}

static void kw_redis_mode(struct parser *ps, char *v)
{
    if (strcmp(v, "hash") == 0)
        ps->c->redis_stream = 0;
    else if (strcmp(v, "stream") == 0)
        ps->c->redis_stream = 1;
    else
        perr(ps, v, "REDIS_MODE is hash (the seed's layout) or stream");
}

static void kw_session_channel(struct parser *ps, char *v)
{
    if (strpbrk(v, " \t")) {
        perr(ps, v, "a channel name has no spaces");
        return;
    }
    set_redis_str(ps, &ps->c->session_channel, v);
}

static void kw_feedback_channel(struct parser *ps, char *v)
{
    if (strpbrk(v, " \t")) {
        perr(ps, v, "a channel name has no spaces");
        return;
    }
    set_redis_str(ps, &ps->c->feedback_channel, v);
    ps->c->feedback_line = ps->line;
}

static void kw_feedback_reply(struct parser *ps, char *v)
{
    if (strpbrk(v, " \t")) {
        perr(ps, v, "a channel name has no spaces");
        return;
    }
    set_redis_str(ps, &ps->c->feedback_reply, v);
}

static void kw_classify(struct parser *ps, char *v)
{
    unsigned long on;
    char err[160];
    if (parse_uint(ps, "CLASSIFY", v, 0, 1, &on) < 0)
        return;
    ps->c->classify = (unsigned)on;
    ps->c->classify_line = ps->line;
    if (on && app_names_init(err, sizeof err) < 0)
        perr(ps, v, "%s", err);
}

static void kw_flow_events(struct parser *ps, char *v)
{
    if (strpbrk(v, " \t")) {
        perr(ps, v, "a channel name has no spaces");
        return;
    }
    set_redis_str(ps, &ps->c->flow_events, v);
    ps->c->flow_events_line = ps->line;
}

enum scope { GLOBAL, FILTER };

/* A keyword: either a handler, or (handle NULL) a whole number in
 * [min, max] stored in the unsigned config member at `offset`. */
static const struct keyword {
    const char *name;
    enum scope scope;
    void (*handle)(struct parser *ps, char *value);
    unsigned long min, max;
    size_t offset;
} keywords[] = {
#define HANDLER(name, scope, fn) {name, scope, fn, 0, 0, 0}
#define NUMBER(name, min, max, member) {name, GLOBAL, NULL, min, max, offsetof(struct config, member)}
    HANDLER("FILTER_NAME", GLOBAL, kw_filter_name),
    HANDLER("BPF", FILTER, kw_bpf),
    HANDLER("FIELDS", FILTER, kw_fields),
    HANDLER("TAP_IF", FILTER, kw_tap_if),
    HANDLER("APP", FILTER, kw_app),
    HANDLER("TAP_BALANCE", FILTER, kw_tap_balance),
    HANDLER("PROTOCOL_DEF", FILTER, kw_protocol_def),
    HANDLER("REDIS_CHANNEL", FILTER, kw_redis_channel),
    HANDLER("REDIS_EXPIRE", FILTER, kw_redis_expire),
    HANDLER("REDIS_PREFIX", FILTER, kw_redis_prefix),
    HANDLER("IFNAME", GLOBAL, kw_ifname),
    HANDLER("PROMISC", GLOBAL, kw_promisc),
    HANDLER("RING_BLOCK_SIZE", GLOBAL, kw_ring_block_size),
    HANDLER("RING_BLOCKS", GLOBAL, kw_ring_blocks),
    NUMBER("RING_BLOCK_TIMEOUT", 1, 10000, ring_block_timeout_ms),
    NUMBER("SNAPLEN", 0, 262144, snaplen),
    NUMBER("TIME_STATS", 0, 86400, time_stats),
    NUMBER("PKT_TTL", 1, 1000000000, pkt_ttl),
    NUMBER("MAX_FLOWS", 1, 1ul << 30, max_flows),
    NUMBER("FLOW_TABLE_SIZE", 1, 1ul << 30, flow_table_size),
    NUMBER("WORKERS", 1, 64, workers),
    HANDLER("OUTPUT", GLOBAL, kw_output),
    HANDLER("REDIS_SOCK", GLOBAL, kw_redis_sock),
    HANDLER("REDIS_HOST", GLOBAL, kw_redis_host),
    HANDLER("REDIS_CLUSTER", GLOBAL, kw_redis_cluster),
    NUMBER("REDIS_STREAM_SHARDS", 1, 64, redis_stream_shards),
    HANDLER("REDIS_WAIT_REPLICAS", GLOBAL, kw_redis_wait),
    NUMBER("REDIS_PORT", 1, 65535, redis_port),
    HANDLER("REDIS_AUTH", GLOBAL, kw_redis_auth),
    NUMBER("REDIS_DB", 0, 65535, redis_db),
    NUMBER("REDIS_PIPELINE", 1, 100000, redis_pipeline),
    HANDLER("REDIS_MODE", GLOBAL, kw_redis_mode),
    HANDLER("REDIS_PUBSUB", GLOBAL, kw_redis_pubsub),
    NUMBER("REDIS_MAXLEN", 1, 1u << 30, redis_maxlen),
    NUMBER("REDIS_FLOW_EXPIRE", 0, 100000000, redis_flow_expire),
    HANDLER("SESSION_CHANNEL", GLOBAL, kw_session_channel),
    NUMBER("REDIS_RETRY", 0, 1000000000, redis_retry),
    HANDLER("FEEDBACK_CHANNEL", GLOBAL, kw_feedback_channel),
    HANDLER("FEEDBACK_REPLY", GLOBAL, kw_feedback_reply),
    NUMBER("FLOW_STATE_INTERVAL", 0, 86400, flow_state_interval),
    HANDLER("FLOW_EVENTS", GLOBAL, kw_flow_events),
    NUMBER("ACTIVE_TIMEOUT", 0, 1000000000, active_timeout),
    NUMBER("RECORD_SEQ", 0, 1, record_seq),
    NUMBER("FLOW_FEATURES", 0, 64, flow_features),
    NUMBER("REASSEMBLY", 0, 1, reassembly),
    NUMBER("DEFRAG_TIMEOUT", 1, 86400, defrag_timeout),
    NUMBER("DEFRAG_MEMCAP", 4096, 4294967295ul, defrag_memcap),
    NUMBER("DEFRAG_MAX_DATAGRAMS", 1, 1u << 24, defrag_max_datagrams),
    NUMBER("DEFRAG_MAX_SIZE", 68, 65535, defrag_max_size),
    NUMBER("REASSEMBLY_MEMCAP", 0, 4294967295ul, reassembly_memcap),
    HANDLER("CLASSIFY", GLOBAL, kw_classify),
    NUMBER("CLASSIFY_MAX_FLOWS", 1, 1u << 24, classify_max_flows),
    HANDLER("IPFIX_COLLECTOR", GLOBAL, kw_ipfix_collector),
    HANDLER("IPFIX_TRANSPORT", GLOBAL, kw_ipfix_transport),
    NUMBER("IPFIX_DOMAIN", 0, 4294967295ul, ipfix_domain),
    HANDLER("IPFIX_TEMPLATE_REFRESH", GLOBAL, kw_ipfix_refresh),
    HANDLER("PROBE_NAME", GLOBAL, kw_probe_name),
    HANDLER("HTTP_LISTEN", GLOBAL, kw_http_listen),
};

static void parse_line(struct parser *ps, char *line)
{
    while (isspace((unsigned char)*line))
        line++;
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
        line[--n] = 0;
    if (n == 0 || line[0] == '#')
        return;
    char *value = line;
    while (*value && !isspace((unsigned char)*value))
        value++;
    if (*value) {
        *value++ = 0;
        while (isspace((unsigned char)*value))
            value++;
    }
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        const struct keyword *k = &keywords[i];
        if (strcmp(k->name, line) != 0)
            continue;
        if (k->scope == FILTER && !ps->filter && ps->skip_block) {
            /* the block's FILTER_NAME was rejected and reported already */
        } else if (*value == 0) {
            perr(ps, line, "%s needs a value", k->name);
            if (k->handle == kw_filter_name) {
                ps->filter = NULL;
                ps->skip_block = 1;
            }
        } else if (k->scope == FILTER && !ps->filter) {
            perr(ps, line, "%s belongs to a filter: put it after a FILTER_NAME line", k->name);
        } else if (k->handle) {
            k->handle(ps, value);
        } else {
            unsigned long number;
            if (parse_uint(ps, k->name, value, k->min, k->max, &number) == 0)
                *(unsigned *)(void *)((char *)ps->c + k->offset) = (unsigned)number;
        }
        /* remembered so that dati can say where Redis was asked for */
        if (k->scope == GLOBAL && !ps->c->redis_line &&
            (strncmp(k->name, "REDIS_", 6) == 0 || strcmp(k->name, "SESSION_CHANNEL") == 0))
            ps->c->redis_line = ps->line;
        return;
    }
    perr(ps, line, "unknown keyword");
}

/* Checks that need the whole file: every filter has an expression. */
/* Several probes feeding one cluster must not overwrite each other's
 * statistics and flow hashes: without PROBE_NAME, the host name (its
 * first label, cut to what PROBE_NAME allows). */
static void default_probe_name(struct config *c)
{
    char host[256] = "";
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(host, sizeof host, "%s", u.nodename);
    size_t n = strspn(host, PROBE_CHARS "_-");   /* the first label: no '.' */
    if (n >= sizeof c->probe_name)
        n = sizeof c->probe_name - 1;
    memcpy(c->probe_name, n ? host : "probe", n ? n : 6);
    c->probe_name[n ? n : 5] = 0;
}

static void check_whole(struct parser *ps)
{
    struct config *c = ps->c;
    if ((uint64_t)c->ring_block_size * c->ring_blocks > UINT32_MAX) {   /* the kernel's limit */
        char text[64];
        snprintf(text, sizeof text, "%u x %u", c->ring_blocks, c->ring_block_size);
        ps->line = c->ring_line;
        perr(ps, text, "a ring (RING_BLOCKS x RING_BLOCK_SIZE) must stay below 4 GiB");
    }
    for (int i = 0; i < c->nfilters; i++) {
        struct filter_conf *f = &c->filter[i];
        if (!f->bpf_line && !f->app_line && f->name) {
            ps->line = f->line;
            perr(ps, f->name, "filter has no BPF line (nor APP)");
        }
        if (!f->bpf && f->napps)   /* APP alone: every packet is a candidate */
            f->bpf = dup(ps, "");
        if (f->uses_app && !c->classify) {
            ps->line = f->line;
            perr(ps, f->name, "the field app needs CLASSIFY 1");
        }
        if (f->app_line && !c->classify) {
            ps->line = f->app_line;
            perr(ps, f->name, "APP needs CLASSIFY 1");
        }
        if (!f->redis_channel && f->name)
            f->redis_channel = dup(ps, f->name);
        if (!f->redis_prefix && f->name)
            f->redis_prefix = dup(ps, "dati:rec:");
    }
    if (c->redis_sock && c->redis_host) {
        ps->line = c->redis_line;
        perr(ps, c->redis_sock, "REDIS_SOCK and REDIS_HOST are exclusive: pick one");
    }
    if (c->redis_ncluster && (c->redis_sock || c->redis_host)) {
        ps->line = c->redis_line;
        perr(ps, c->redis_cluster[0], "REDIS_CLUSTER and REDIS_SOCK/REDIS_HOST are exclusive: "
                                      "pick one");
    }
    if (c->redis_wait_replicas && !c->redis_ncluster) {
        ps->line = c->redis_wait_line;
        perr(ps, "REDIS_WAIT_REPLICAS", "REDIS_WAIT_REPLICAS is for a Redis Cluster (REDIS_CLUSTER)");
    }
    /* sharded channels and streams are <channel>:{t}: a brace of their own
     * would make the hash tag theirs, every shard in one slot */
    for (int i = 0; (c->redis_spublish || c->redis_stream_shards > 1) && i < c->nfilters; i++) {
        const struct filter_conf *f = &c->filter[i];
        const char *bad = f->redis_channel && strpbrk(f->redis_channel, "{}") ? f->redis_channel
                          : c->redis_spublish && f->redis_prefix && strpbrk(f->redis_prefix, "{}")
                              ? f->redis_prefix : NULL;
        if (bad) {
            ps->line = c->redis_pubsub_line ? c->redis_pubsub_line : c->redis_line;
            perr(ps, bad, "sharded channels and keys (REDIS_PUBSUB sharded, REDIS_STREAM_SHARDS) "
                          "add a {hash tag}: REDIS_CHANNEL and REDIS_PREFIX must have no braces");
        }
    }
    if (c->redis_spublish && c->redis_stream) {
        ps->line = c->redis_pubsub_line;
        perr(ps, "sharded", "REDIS_PUBSUB sharded is for the hash layout: REDIS_MODE stream "
                            "publishes nothing");
    }
    if (c->redis_ncluster && c->redis_db) {
        ps->line = c->redis_line;
        perr(ps, c->redis_cluster[0], "a Redis Cluster has no databases: REDIS_DB must be 0");
    }
    if (c->feedback_channel && !c->redis_line) {
        ps->line = c->feedback_line;
        perr(ps, c->feedback_channel, "FEEDBACK_CHANNEL needs Redis (REDIS_SOCK or REDIS_HOST)");
    }
    if (c->output && strcmp(c->output, "none") == 0 && !c->ipfix_collector && !c->redis_line) {
        ps->line = c->output_line;
        perr(ps, c->output, "OUTPUT none leaves the records nowhere to go: it needs "
                            "IPFIX_COLLECTOR or Redis");
    }
    if (c->redis_ncluster && !c->probe_name[0])
        default_probe_name(c);
    if (c->flow_events && !c->redis_line) {
        ps->line = c->flow_events_line;
        perr(ps, c->flow_events, "FLOW_EVENTS needs Redis (REDIS_SOCK or REDIS_HOST)");
    }
}

struct config *config_parse(const char *name, const char *text, size_t len, FILE *errs,
                            int *nerrors)
{
    struct config *c = calloc(1, sizeof *c);
    char *buf = malloc(len + 1);
    if (!c || !buf) {
        free(c);
        free(buf);
        *nerrors = -1;
        return NULL;
    }
    memcpy(buf, text, len);
    buf[len] = 0;
    c->time_stats = 10;
    c->pkt_ttl = 30;
    c->promisc = 1;
    c->ring_block_size = 256u << 10;
    c->ring_blocks = 128;
    c->ring_block_timeout_ms = 10;
    c->max_flows = 1u << 20;
    c->redis_port = 6379;
    c->redis_pipeline = 50;
    c->redis_maxlen = 1000000;
    c->redis_stream_shards = 1;
    c->redis_wait_ms = 1000;
    c->ipfix_refresh_s = 60;
    c->ipfix_refresh_msgs = 1000;
    c->classify_max_flows = 16384;
    c->reassembly = 1;
    c->defrag_timeout = 30;
    c->defrag_memcap = 32u << 20;
    c->defrag_max_datagrams = 16384;
    c->defrag_max_size = 65535;
    c->reassembly_memcap = 64u << 20;
    struct parser ps = {.c = c, .name = name, .errs = errs};
    c->path = dup(&ps, name);
    char *line = buf;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || buf[i] == '\n') {
            buf[i] = 0;
            ps.line++;
            if (memchr(line, 0, (size_t)(buf + i - line)) != NULL)
                perr(&ps, "\\0", "NUL byte in the line");
            else
                parse_line(&ps, line);
            line = buf + i + 1;
        }
    }
    free(buf);
    check_whole(&ps);
    if (c->nfilters == 0 && ps.nerrors == 0) {
        ps.line = 0;
        perr(&ps, name, "no FILTER_NAME: nothing would be classified");
    }
    if (ps.oom) {
        *nerrors = -1;
        config_free(c);
        return NULL;
    }
    *nerrors = ps.nerrors;
    if (ps.nerrors) {
        config_free(c);
        return NULL;
    }
    return c;
}

struct config *config_load(const char *path, FILE *errs, int *nerrors)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errs)
            fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        *nerrors = 1;
        return NULL;
    }
    char *text = malloc(CONFIG_MAX_SIZE + 1);
    size_t n = text ? fread(text, 1, CONFIG_MAX_SIZE + 1, f) : 0;
    int bad = !text || ferror(f) || n > CONFIG_MAX_SIZE;
    fclose(f);
    if (bad) {
        if (errs)
            fprintf(errs, "%s: cannot read%s\n", path,
                    n > CONFIG_MAX_SIZE ? ": larger than 16 MiB" : "");
        free(text);
        *nerrors = 1;
        return NULL;
    }
    struct config *c = config_parse(path, text, n, errs, nerrors);
    free(text);
    return c;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nfilters; i++) {
        struct filter_conf *f = &c->filter[i];
        free(f->name);
        free(f->bpf);
        free(f->redis_channel);
        free(f->redis_prefix);
        for (int j = 0; j < f->nfields; j++)
            free(f->field_key[j]);
        for (int j = 0; j < f->ntaps; j++)
            free(f->tap_if[j]);
        netpdl_set_destroy(f->netpdl);
    }
    for (int i = 0; i < c->nifnames; i++)
        free(c->ifname[i]);
    free(c->path);
    free(c->output);
    free(c->ipfix_collector);
    free(c->http_listen);
    for (int i = 0; i < c->redis_ncluster; i++)
        free(c->redis_cluster[i]);
    free(c->redis_sock);
    free(c->redis_host);
    free(c->redis_auth);
    free(c->session_channel);
    free(c->feedback_channel);
    free(c->feedback_reply);
    free(c->flow_events);
    free(c);
}
