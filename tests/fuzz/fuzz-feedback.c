/* fuzz-feedback.c - fb_cmd_parse() on arbitrary bytes: never crashes, a
 * rejection always says why, and an accepted command is consistent (one
 * target, a valid tag, an id that is JSON text). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feedback-cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fb_cmd c;
    char why[128];
    enum fb_reject r = fb_cmd_parse((const char *)data, size, &c, why, sizeof why);
    if (r != FB_OK) {
        if (r > FB_OVERSIZED || why[0] == 0)
            abort();
        return 0;
    }
    if (c.op == FB_STATS) {
        if (c.flow || c.by_match)
            abort();
        return 0;
    }
    if (!!c.flow == c.by_match || (c.by_match && c.match.has == 0))
        abort();
    if ((c.op == FB_TAG || c.op == FB_UNTAG) && (c.tag[0] == 0 || strlen(c.tag) > FB_TAG_MAX))
        abort();
    if (strlen(c.id) > FB_ID_MAX)
        abort();
    return 0;
}
