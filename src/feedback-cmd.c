/* feedback-cmd.c - parsing feedback commands: a small strict JSON reader for
 * one flat object (and the one nested "match" object), nothing more. */
#include "feedback-cmd.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct js {
    const char *p, *end;
};

static void ws(struct js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int peek(struct js *j) { return j->p < j->end ? (unsigned char)*j->p : -1; }

static int eat(struct js *j, char ch)
{
    ws(j);
    if (peek(j) != ch)
        return 0;
    j->p++;
    return 1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A string (at the opening quote) into out, NUL-terminated. Escapes are
 * decoded; \u beyond ASCII becomes '?' (no tag or key uses it). Control
 * characters, escaped or not, are refused: "flow\u0000x" must not read as
 * "flow". Returns its length, -1 when malformed, -2 when longer than cap - 1. */
static int str(struct js *j, char *out, size_t cap)
{
    if (!eat(j, '"'))
        return -1;
    size_t n = 0;
    int toolong = 0;
    for (;;) {
        int ch = peek(j);
        if (ch < 0 || ch < 0x20)
            return -1;
        j->p++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            int e = peek(j);
            if (e < 0)   /* a backslash at the very end */
                return -1;
            j->p++;
            switch (e) {
            case '"': case '\\': case '/': ch = e; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                if (j->end - j->p < 4)
                    return -1;
                int v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval((unsigned char)j->p[i]);
                    if (h < 0)
                        return -1;
                    v = v * 16 + h;
                }
                j->p += 4;
                ch = v < 0x80 ? v : '?';
                break;
            }
            default: return -1;
            }
            if (ch < 0x20)
                return -1;
        }
        if (n + 1 < cap)
            out[n++] = (char)ch;
        else
            toolong = 1;
    }
    out[n] = 0;
    return toolong ? -2 : (int)n;
}

/* A number. Returns 1 and *v when it is a whole number from 0 to 2^63,
 * 0 for any other valid number, -1 when malformed. */
static int num(struct js *j, uint64_t *v)
{
    ws(j);
    int whole = 1;
    uint64_t n = 0;
    if (peek(j) == '-') {
        whole = 0;
        j->p++;
    }
    if (peek(j) < '0' || peek(j) > '9')
        return -1;
    if (peek(j) == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return -1;   /* no leading zeros */
    while (peek(j) >= '0' && peek(j) <= '9') {
        if (n > (UINT64_C(1) << 63) / 10)
            whole = 0;
        n = n * 10 + (uint64_t)(*j->p++ - '0');
    }
    if (peek(j) == '.') {
        whole = 0;
        j->p++;
        if (peek(j) < '0' || peek(j) > '9')
            return -1;
        while (peek(j) >= '0' && peek(j) <= '9')
            j->p++;
    }
    if (peek(j) == 'e' || peek(j) == 'E') {
        whole = 0;
        j->p++;
        if (peek(j) == '+' || peek(j) == '-')
            j->p++;
        if (peek(j) < '0' || peek(j) > '9')
            return -1;
        while (peek(j) >= '0' && peek(j) <= '9')
            j->p++;
    }
    *v = n;
    return whole;
}

static int word(struct js *j, const char *w)
{
    size_t n = strlen(w);
    ws(j);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

/* true / false: 1 / 0; anything else -1. */
static int boolean(struct js *j)
{
    if (word(j, "true"))
        return 1;
    if (word(j, "false"))
        return 0;
    return -1;
}

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates, or
 * code points past U+10FFFF): a string id is echoed as it came, in JSON. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], len = 0;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4;
        if (!len || n - i < len)
            return 0;
        for (unsigned k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += len;
    }
    return 1;
}

static int valid_tag(const char *t)
{
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_.:-", *p)))
            return 0;
    return *t != 0;
}

struct ctx {
    char *why;
    size_t whylen;
};

static enum fb_reject fail(struct ctx *x, enum fb_reject r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum fb_reject fail(struct ctx *x, enum fb_reject r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->why, x->whylen, fmt, ap);
    va_end(ap);
    return r;
}

static int is_number_start(struct js *j)
{
    ws(j);
    return peek(j) == '-' || (peek(j) >= '0' && peek(j) <= '9');
}

/* A JSON value we are not going to use: only to tell malformed from wrong. */
static int is_value_start(struct js *j)
{
    ws(j);
    int ch = peek(j);
    return ch == '"' || ch == '{' || ch == '[' || ch == '-' || (ch >= '0' && ch <= '9') ||
           ch == 't' || ch == 'f' || ch == 'n';
}

/* The bit of a match key, to refuse one given twice (the tcp and udp ports
 * share theirs); 0 for an unknown key. */
static unsigned match_key_bit(const char *key)
{
    static const char *const keys[] = {"ip.src",    "ip.dst",    "tcp.sport", "udp.sport",
                                       "tcp.dport", "udp.dport", "ip.proto"};
    static const unsigned bits[] = {1, 2, 4, 4, 8, 8, 16};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return bits[i];
    return 0;
}

static enum fb_reject parse_match(struct js *j, struct fb_match *m, struct ctx *x)
{
    if (!eat(j, '{'))
        return is_value_start(j) ? fail(x, FB_INVALID, "match is an object")
                                 : fail(x, FB_MALFORMED, "bad value for match");
    memset(m, 0, sizeof *m);
    if (eat(j, '}'))
        return fail(x, FB_INVALID, "empty match");
    unsigned seen = 0;   /* keys given: a second one would silently win */
    do {
        char key[16], val[64];
        ws(j);
        int kl = str(j, key, sizeof key);
        if (kl == -1 || !eat(j, ':'))
            return fail(x, FB_MALFORMED, "bad key in match");
        ws(j);
        unsigned bit = match_key_bit(key);
        if (seen & bit)
            return fail(x, FB_INVALID, "match: %s given twice", key);
        seen |= bit;
        if (kl >= 0 && (strcmp(key, "ip.src") == 0 || strcmp(key, "ip.dst") == 0)) {
            int is_src = key[3] == 's';
            if (peek(j) != '"')
                return fail(x, FB_INVALID, "%s is an address in a string", key);
            if (str(j, val, sizeof val) < 0)
                return fail(x, FB_INVALID, "%s: bad address", key);
            uint8_t *a = is_src ? m->src : m->dst;
            int fam = strchr(val, ':') ? 6 : 4;
            if (inet_pton(fam == 4 ? AF_INET : AF_INET6, val, a) != 1)
                return fail(x, FB_INVALID, "%s: bad address '%s'", key, val);
            if (m->family && m->family != fam)
                return fail(x, FB_INVALID, "ip.src and ip.dst of different families");
            m->family = (uint8_t)fam;
            m->has |= is_src ? FB_M_SRC : FB_M_DST;
            continue;
        }
        int tcp = kl >= 0 && (strcmp(key, "tcp.sport") == 0 || strcmp(key, "tcp.dport") == 0);
        int udp = kl >= 0 && (strcmp(key, "udp.sport") == 0 || strcmp(key, "udp.dport") == 0);
        int proto = kl >= 0 && strcmp(key, "ip.proto") == 0;
        if (!tcp && !udp && !proto)
            return fail(x, FB_UNKNOWN, "unknown match key '%s'", kl >= 0 ? key : "(too long)");
        uint64_t v;
        if (!is_number_start(j))
            return is_value_start(j) ? fail(x, FB_INVALID, "%s is a number", key)
                                     : fail(x, FB_MALFORMED, "bad value for %s", key);
        int rc = num(j, &v);
        if (rc < 0)
            return fail(x, FB_MALFORMED, "bad number for %s", key);
        if (rc == 0 || v > (proto ? 255u : 65535u))
            return fail(x, FB_INVALID, "%s out of range", key);
        uint8_t want = proto ? (uint8_t)v : tcp ? 6 : 17;
        if ((m->has & FB_M_PROTO) && m->proto != want)
            return fail(x, FB_INVALID, "%s contradicts the protocol", key);
        m->proto = want;
        m->has |= FB_M_PROTO;
        if (!proto) {
            if (key[4] == 's') {
                m->sport = (uint16_t)v;
                m->has |= FB_M_SPORT;
            } else {
                m->dport = (uint16_t)v;
                m->has |= FB_M_DPORT;
            }
        }
    } while (eat(j, ','));
    if (!eat(j, '}'))
        return fail(x, FB_MALFORMED, "match: expected , or }");
    return FB_OK;
}

enum fb_reject fb_cmd_parse(const char *msg, size_t len, struct fb_cmd *c, char *why,
                            size_t whylen)
{
    struct ctx x = {why, whylen};
    struct js j = {msg, msg + len};
    enum fb_reject rc;
    memset(c, 0, sizeof *c);
    why[0] = 0;
    if (len > FB_MSG_MAX)
        return fail(&x, FB_OVERSIZED, "longer than %d bytes", FB_MSG_MAX);
    if (!eat(&j, '{'))
        return fail(&x, FB_MALFORMED, "not a JSON object");
    int ops = 0, have_ttl = 0;
    unsigned seen = 0;   /* flow, ttl, match, id: a second one would silently win */
    if (!eat(&j, '}')) {
        do {
            char key[16];
            ws(&j);
            int kl = str(&j, key, sizeof key);
            if (kl == -1 || !eat(&j, ':'))
                return fail(&x, FB_MALFORMED, "bad key");
            if (kl == -2)
                return fail(&x, FB_UNKNOWN, "unknown key");
            ws(&j);
            unsigned bit = strcmp(key, "flow") == 0 ? 1 : strcmp(key, "ttl") == 0 ? 2
                         : strcmp(key, "match") == 0 ? 4 : strcmp(key, "id") == 0 ? 8 : 0;
            if (seen & bit)
                return fail(&x, FB_INVALID, "%s given twice", key);
            seen |= bit;
            if (strcmp(key, "flow") == 0 || strcmp(key, "ttl") == 0) {
                uint64_t v;
                if (!is_number_start(&j))
                    return is_value_start(&j) ? fail(&x, FB_INVALID, "%s is a number", key)
                                              : fail(&x, FB_MALFORMED, "bad value for %s", key);
                int n = num(&j, &v);
                if (n < 0)
                    return fail(&x, FB_MALFORMED, "bad number for %s", key);
                if (key[0] == 'f') {
                    if (n == 0 || v == 0)
                        return fail(&x, FB_INVALID, "flow is a flow id (a whole number > 0)");
                    c->flow = v;
                } else {
                    if (n == 0 || v > 1000000000u)
                        return fail(&x, FB_INVALID, "ttl is seconds, 0 to 10^9");
                    c->ttl = (uint32_t)v;
                    have_ttl = 1;
                }
            } else if (strcmp(key, "tag") == 0 || strcmp(key, "untag") == 0) {
                if (peek(&j) != '"')
                    return is_value_start(&j) ? fail(&x, FB_INVALID, "%s is a string", key)
                                              : fail(&x, FB_MALFORMED, "bad value for %s", key);
                int tl = str(&j, c->tag, sizeof c->tag);
                if (tl == -1)
                    return fail(&x, FB_MALFORMED, "bad string");
                if (tl == -2 || !valid_tag(c->tag))
                    return fail(&x, FB_INVALID,
                                "a tag is 1 to %d of A-Z a-z 0-9 _ . : -", FB_TAG_MAX);
                c->op = key[0] == 't' ? FB_TAG : FB_UNTAG;
                ops++;
            } else if (strcmp(key, "watch") == 0 || strcmp(key, "ignore") == 0 ||
                       strcmp(key, "stats") == 0) {
                int b = boolean(&j);
                if (b < 0)
                    return is_value_start(&j) ? fail(&x, FB_INVALID, "%s is true or false", key)
                                              : fail(&x, FB_MALFORMED, "bad value for %s", key);
                c->op = key[0] == 'w' ? FB_WATCH : key[0] == 'i' ? FB_IGNORE : FB_STATS;
                c->on = b;
                ops++;
            } else if (strcmp(key, "match") == 0) {
                if ((rc = parse_match(&j, &c->match, &x)) != FB_OK)
                    return rc;
                c->by_match = 1;
            } else if (strcmp(key, "id") == 0) {
                const char *s = j.p;
                char tmp[FB_ID_MAX + 1];
                uint64_t v;
                int ok = peek(&j) == '"' ? str(&j, tmp, sizeof tmp) >= 0 &&
                                               valid_utf8((const unsigned char *)s,
                                                          (size_t)(j.p - s))
                                         : num(&j, &v) >= 0;
                if (!ok || (size_t)(j.p - s) > FB_ID_MAX)
                    return fail(&x, FB_INVALID, "id is a number or a string of at most %d bytes",
                                FB_ID_MAX - 2);
                memcpy(c->id, s, (size_t)(j.p - s));
                c->id[j.p - s] = 0;
            } else {
                return fail(&x, FB_UNKNOWN, "unknown key '%s'", key);
            }
        } while (eat(&j, ','));
        if (!eat(&j, '}'))
            return fail(&x, FB_MALFORMED, "expected , or }");
    }
    ws(&j);
    if (j.p != j.end)
        return fail(&x, FB_MALFORMED, "text after the object");
    if (ops == 0)
        return fail(&x, FB_UNKNOWN, "no command (tag, untag, watch, ignore, stats)");
    if (ops > 1)
        return fail(&x, FB_INVALID, "one command per message");
    if (c->op == FB_STATS) {
        if (c->flow || c->by_match || have_ttl)
            return fail(&x, FB_INVALID, "stats takes no flow, match or ttl");
        return FB_OK;
    }
    if (!!c->flow == c->by_match)
        return fail(&x, FB_INVALID, "give either flow or match");
    if (c->by_match && c->op != FB_TAG && c->op != FB_UNTAG)
        return fail(&x, FB_INVALID, "%s takes a flow id", fb_op_name(c->op));
    if (have_ttl && !(c->by_match && c->op == FB_TAG))
        return fail(&x, FB_INVALID, "ttl belongs to a tag by match");
    return FB_OK;
}

const char *fb_op_name(enum fb_op op)
{
    static const char *const names[] = {"tag", "untag", "watch", "ignore", "stats"};
    return names[op];
}

const char *fb_reject_name(enum fb_reject r)
{
    static const char *const names[] = {"ok", "malformed", "unknown", "invalid", "oversized"};
    return names[r];
}
