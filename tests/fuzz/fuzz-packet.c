/* fuzz-packet.c - one packet through the data path: the first input byte
 * picks a link type among those dati decodes, the rest is the packet. It is
 * decoded twice (as captured whole, and as cut by a snaplen), then every
 * field is extracted and formatted as a field record (all pipelined HTTP
 * requests) and, when keyed, as a flow record. Checks the decoder's
 * promises (offsets inside caplen, key and hash consistent) by aborting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "decode.h"
#include "extract.h"
#include "flow.h"
#include "output-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int linktypes[] = {
    LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
    LINKTYPE_IPV4,     LINKTYPE_IPV6,      LINKTYPE_NULL,       LINKTYPE_LOOP,
};
#define NLINKTYPES (sizeof linktypes / sizeof linktypes[0])

static struct filter_conf every_field;   /* a filter listing every field */
static struct outbuf ob;
static const char *const names[64] = {"f0", "f1", "f2"};

static void setup(void)
{
    every_field.name = "all";
    every_field.nfields = FIELD_COUNT;
    for (int i = 0; i < FIELD_COUNT; i++) {
        every_field.field_id[i] = i;
        every_field.field_key[i] = (char *)extract_field_def(i)->name;
    }
    if (outbuf_init(&ob, NULL) < 0)
        abort();
}

/* A slice of packet bytes must lie inside the packet. */
static void check_inside(const struct packet *p, const uint8_t *ptr, uint32_t len)
{
    if (ptr < p->data || ptr > p->data + p->caplen || len > (uint32_t)(p->data + p->caplen - ptr))
        abort();
}

static void check_record(void)
{
    if (ob.len < 3 || memcmp(ob.buf + ob.len - 3, "}}\n", 3) != 0 ||
        memchr(ob.buf, '\n', ob.len) != ob.buf + ob.len - 1)
        abort();   /* one whole line per record */
}

static void one(const uint8_t *pkt, uint32_t caplen, uint32_t wirelen, int linktype)
{
    struct packet p;
    memset(&p, 0, sizeof p);
    p.data = pkt;
    p.caplen = caplen;
    p.wirelen = wirelen;
    p.ts = 1700000000123456789ull;
    p.clock = p.ts;
    p.frame = 1;
    enum decode_result r = decode_packet(&p, linktype);
    if (r >= DECODE_RESULT_COUNT)
        abort();
    if (decode_is_error(r))
        return;
    if (p.ip_version) {
        check_inside(&p, p.data + p.l3_off, p.ip_version == 4 ? 20 : 40);
        check_inside(&p, p.data + p.payload_off, p.payload_len);
        if (p.l4_off > p.payload_off)
            abort();
    }
    if (p.flags & PKT_HAS_KEY) {
        if (r != DECODE_TCP && r != DECODE_UDP && r != DECODE_ICMP)
            abort();
        if (p.hash != flow_key_hash(&p.key) || p.key.family != p.ip_version)
            abort();
    }

    struct extract_ctx x;
    extract_begin(&x, &p);
    for (int id = 0; id < FIELD_COUNT; id++) {
        struct field_value v;
        if (!extract_field(&x, id, &v))
            continue;
        if (v.kind == VALUE_STR && id != FIELD_DNS_QRY_NAME) {
            if (v.nparts < 1 || v.nparts > VALUE_MAX_PARTS)
                abort();
            for (uint32_t i = 0; i < v.nparts; i++)
                check_inside(&p, v.parts[i].ptr, v.parts[i].len);
        }
        if (v.kind == VALUE_ADDR)
            check_inside(&p, v.parts[0].ptr, v.parts[0].len);
    }
    extract_begin(&x, &p);
    ob.len = 0;
    if (json_record(&ob, &x, &every_field, 3, 42, 0) < 0)
        abort();
    check_record();
    for (unsigned sub = 1; sub < 64 && extract_http_next(&x); sub++) {
        ob.len = 0;
        if (json_record(&ob, &x, &every_field, 3, 42, sub) < 0)
            abort();
        check_record();
    }
    if (p.flags & PKT_HAS_KEY) {
        struct flow f;
        memset(&f, 0, sizeof f);
        f.key = p.key;
        f.client_is_lo = (p.flags & PKT_SRC_IS_LO) != 0;
        f.id = p.frame;
        f.first_ts = f.last_ts = p.ts;
        f.packets[FLOW_C2S] = 1;
        f.bytes[FLOW_C2S] = p.wirelen;
        f.filters = p.hash & 7;
        ob.len = 0;
        if (json_flow(&ob, &f, (enum flow_end)(p.hash % FLOW_END_COUNT), names) < 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1 || size > 65536 + 1)
        return 0;
    int linktype = linktypes[data[0] % NLINKTYPES];
    uint32_t caplen = (uint32_t)(size - 1);
    one(data + 1, caplen, caplen, linktype);          /* captured whole */
    one(data + 1, caplen, caplen + 1500, linktype);   /* cut by a snaplen */
    return 0;
}
