/* feedback-cmd.h - the commands analyzers send on the feedback channel, as
 * JSON objects, and their parser. Pure: no I/O, no global state (fuzzed). */
#ifndef DATI_FEEDBACK_CMD_H
#define DATI_FEEDBACK_CMD_H

#include <stddef.h>
#include <stdint.h>

#define FB_MSG_MAX 1024    /* bytes: a longer message is rejected as oversized */
#define FB_TAG_MAX 32      /* characters of a tag: [A-Za-z0-9_.:-] */
#define FB_ID_MAX 64       /* characters of the client's "id", echoed in the ack */

enum fb_op { FB_TAG, FB_UNTAG, FB_WATCH, FB_IGNORE, FB_STATS };

/* Why a message was rejected (each counted apart). */
enum fb_reject {
    FB_OK = 0,
    FB_MALFORMED,          /* not a JSON object */
    FB_UNKNOWN,            /* no known command in it, or a key dati does not know */
    FB_INVALID,            /* a known command with a missing or wrong argument */
    FB_OVERSIZED,          /* longer than FB_MSG_MAX */
};

/* A 5-tuple pattern: "ip.src"/"ip.dst" are the flow's client and server,
 * ports likewise; a member not given matches anything. */
enum { FB_M_SRC = 1, FB_M_DST = 2, FB_M_SPORT = 4, FB_M_DPORT = 8, FB_M_PROTO = 16 };
struct fb_match {
    uint8_t has;           /* FB_M_* */
    uint8_t family;        /* 4 or 6 when an address is given */
    uint8_t proto;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
};

struct fb_cmd {
    enum fb_op op;
    uint64_t flow;         /* by flow id; 0: by match */
    struct fb_match match;
    int by_match;
    int on;                /* watch / ignore: true or false */
    uint32_t ttl;          /* match rules: seconds of packet time, 0: for the whole run */
    char tag[FB_TAG_MAX + 1];
    char id[FB_ID_MAX + 1];/* the client's "id", as JSON text (number or string); "" if none */
};

/* Parses one message. Returns FB_OK, or the reason with a few words about it
 * in why (a NUL-terminated string). */
enum fb_reject fb_cmd_parse(const char *msg, size_t len, struct fb_cmd *c, char *why,
                            size_t whylen);

const char *fb_op_name(enum fb_op op);
const char *fb_reject_name(enum fb_reject r);

#endif
